#!/bin/bash
# The one exit-status table (tools/tool.h, EXIT STATUS of every page), seen
# from the command line: every tool ends a usage error with 2 and a job
# that failed with 1 (vmferry-check: 2 when it could not check), a
# success with 0 and one line saying what was done (none with -q), an
# interrupted import with 128 + the signal; with --json an error is an
# object on stdout.  Hermetic: streams from mkstream in a temporary
# directory, libvirt URIs on a loopback port nothing listens on.  The
# same with libvirt and SSH: tests/integration/tools-exit-codes.sh.
set -euo pipefail

T=${VMFERRY_TOOLS_DIR:?}
MKSTREAM=${VMFERRY_TEST_TOOLS_DIR:?}/mkstream
VG=""
if [[ ${VMFERRY_VALGRIND:-0} == 1 ]]; then
    command -v valgrind >/dev/null || { echo "SKIP: no valgrind"; exit 77; }
    VG="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q"
fi
tmp=$(mktemp -d)
pid=
trap '[[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
# Nothing listens there: libvirt's connection is refused at once.
NOWHERE=qemu+tcp://127.0.0.1:9/system

failed=0
bad() { echo "FAIL: $*" >&2; failed=1; }

# status WANT CMD...: CMD (a tool of $T and its arguments) ends with WANT;
# its stdout and stderr are left in $tmp/out and $tmp/err.
status() {
    local want=$1 tool=$2 rc=0
    shift 2
    timeout 60 $VG "$T/$tool" "$@" </dev/null >"$tmp/out" 2>"$tmp/err" || rc=$?
    if [[ $rc != "$want" ]]; then
        bad "$tool $*: status $rc, not $want: $(cat "$tmp/err")"
        return 1
    fi
    echo "$tool $*: $rc"
}

tools=(vmferry-check vmferry-export vmferry-import vmferry-info
       vmferry-migrate vmferry-rewrite vmferry-send vmferry-sync)
[[ ${#tools[@]} == $(ls "$T"/vmferry-* | wc -l) ]] ||
    bad "the tools are not the eight this test knows: $(ls "$T")"

# 2: usage errors, with getopt's complaint or the tool's, then --help.
for t in "${tools[@]}"; do
    status 2 "$t" --no-such-option && {
        grep -q "Try '$t --help'" "$tmp/err" || bad "$t: no pointer to --help"
    }
done
status 2 vmferry-check ok.vmf                      # no -c
status 2 vmferry-export                            # no DOMAIN
status 2 vmferry-export --threads 0 dom
status 2 vmferry-import --dir a --pool b
status 2 vmferry-info a b
status 2 vmferry-migrate dom                       # no HOST
status 2 vmferry-rewrite --xml a b
status 2 vmferry-send                              # no HOST
status 2 vmferry-sync dom                          # no HOST
status 2 vmferry-sync --full --compare dom host
status 2 vmferry-sync --receiver=bogus dom

# 1: the job failed.  2 for vmferry-check, which could not check.
"$MKSTREAM" "$tmp/ok.vmf"
"$MKSTREAM" --no-end "$tmp/cut.vmf"
printf '<domain>' >"$tmp/bad.xml"
mkdir "$tmp/dest"
status 1 vmferry-export -o "$tmp/no/such/dir/x.vmf" dom
status 1 vmferry-import --dir "$tmp/dest" "$tmp/cut.vmf"
status 1 vmferry-import --dir "$tmp/no-such-dir" "$tmp/ok.vmf"
status 1 vmferry-info "$tmp/cut.vmf"
status 1 vmferry-migrate -c "$NOWHERE" dom hostb
status 1 vmferry-rewrite --rename x --xml "$tmp/bad.xml"
status 1 vmferry-send -i "$tmp/no-such.vmf" hostb
status 2 vmferry-check -c "$NOWHERE" "$tmp/ok.vmf"
[[ -z $(ls -A "$tmp/dest") ]] || bad "a failed import left $(ls -A "$tmp/dest")"

# --json: the error as one object on stdout, with the status.
json_error() {
    local want=$1 format=$2
    shift 2
    status "$want" "$@" || return 0
    jq -e --arg f "$format" --argjson s "$want" \
        '.format == $f and .exit_status == $s and (.error | length > 0)' \
        "$tmp/out" >/dev/null || bad "$*: not the error object: $(cat "$tmp/out")"
}
json_error 1 vmferry-info/1 vmferry-info --json "$tmp/cut.vmf"
json_error 2 vmferry-info/1 vmferry-info --json a b
json_error 2 vmferry-check/1 vmferry-check --json -c "$NOWHERE" "$tmp/ok.vmf"
json_error 2 vmferry-check/1 vmferry-check --json --no-such-option
# ... and every --json output names its format.
status 0 vmferry-info --json "$tmp/ok.vmf" &&
    { jq -e '.format == "vmferry-info/1"' "$tmp/out" >/dev/null ||
          bad "vmferry-info --json: no format: $(head -3 "$tmp/out")"; }

# 0: done, and one line on stderr saying what; -q: nothing at all.
status 0 vmferry-import --dir "$tmp/dest" "$tmp/ok.vmf" &&
    { [[ $(cat "$tmp/err") == "vmferry-import: domain mk imported into $tmp/dest (1 file, "*" in "*")" ]] ||
          bad "import: the summary is '$(cat "$tmp/err")'"; }
rm -f "$tmp/dest/"*
status 0 vmferry-import -q --dir "$tmp/dest" "$tmp/ok.vmf" &&
    { [[ ! -s $tmp/err ]] || bad "import -q printed: $(cat "$tmp/err")"; }
printf '<domain type="kvm"><name>x</name></domain>\n' >"$tmp/x.xml"
status 0 vmferry-rewrite --rename y --xml "$tmp/x.xml" -o "$tmp/y.xml" &&
    { [[ $(cat "$tmp/err") == "vmferry-rewrite: $tmp/x.xml rewritten to $tmp/y.xml" ]] ||
          bad "rewrite: the summary is '$(cat "$tmp/err")'"; }
# To stdout the output is the result: no line.
status 0 vmferry-rewrite --rename y --xml "$tmp/x.xml" &&
    { [[ ! -s $tmp/err ]] || bad "rewrite to stdout printed: $(cat "$tmp/err")"; }

# 130, 143: an import interrupted by SIGINT or SIGTERM while it waits for
# the rest of the stream.  It has begun once its temporary file exists.
"$MKSTREAM" --size 4000000 "$tmp/big.vmf"
for sig in INT TERM; do
    rm -rf "$tmp/dest" "$tmp/fifo"
    mkdir "$tmp/dest"
    mkfifo "$tmp/fifo"
    "$T/vmferry-import" --dir "$tmp/dest" "$tmp/fifo" 2>"$tmp/err" &
    pid=$!
    exec 3>"$tmp/fifo"
    head -c 30000 "$tmp/big.vmf" >&3
    for ((i = 0; i < 600; i++)); do
        [[ -n $(find "$tmp/dest" -name '.disk0.img.vmferry-*') ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $(find "$tmp/dest" -name '.disk0.img.vmferry-*') ]] ||
        bad "SIG$sig: the import did not begin: $(cat "$tmp/err")"
    kill -"$sig" "$pid"
    rc=0
    wait "$pid" || rc=$?
    pid=
    exec 3>&-
    want=$((128 + $(kill -l "$sig")))
    ((rc == want)) || bad "import, SIG$sig: status $rc, not $want: $(cat "$tmp/err")"
    grep -q "interrupted by signal" "$tmp/err" || bad "import, SIG$sig: $(cat "$tmp/err")"
    echo "vmferry-import, SIG$sig: $rc: $(cat "$tmp/err")"
done

((failed == 0)) && echo "exit statuses: OK"
exit $failed
