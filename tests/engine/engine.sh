# shellcheck shell=bash
# Sourced by the hermetic engine tests (tests/engine/*.sh): the import,
# info and send engines driven through their tools by synthetic streams
# (tests/tools/mkstream.c) in a temporary directory.  No daemon, no
# libvirt (no --define, no --pool), no test bed, no root: they run in
# seconds, in the normal tree and in the sanitizer tree (there under
# tests/sanitizer/run.sh, so that a sanitizer report fails the test even
# where the tool was expected to fail).
#
# Gives: T (the tools), MKSTREAM, VG (valgrind with VMFERRY_VALGRIND=1),
# $tmp (removed at exit), bad MESSAGE (records a failure), finish (the
# exit status), and the helpers below.
set -euo pipefail

T=${VMFERRY_TOOLS_DIR:?}
# shellcheck disable=SC2034 # for the tests that source this
MKSTREAM=${VMFERRY_TEST_TOOLS_DIR:?}/mkstream
VG=""
if [[ ${VMFERRY_VALGRIND:-0} == 1 ]]; then
    command -v valgrind >/dev/null || { echo "SKIP: no valgrind"; exit 77; }
    VG="valgrind --error-exitcode=99 --leak-check=full"
    VG+=" --errors-for-leak-kinds=definite -q"
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmferry-engine.XXXXXX")
engine_pids=()
engine_cleanup() {
    local p
    for p in "${engine_pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap engine_cleanup EXIT

failed=0
bad() { echo "FAIL: $*" >&2; failed=1; }
finish() {
    ((failed == 0)) && echo "$(basename "$0" .sh): OK"
    exit $failed
}

# run WANT TOOL ARG...: TOOL (of $T) ends with status WANT; its stdout and
# stderr are left in $tmp/out and $tmp/err.  Returns 1 (after bad) if not.
run() {
    local want=$1 tool=$2 rc=0
    shift 2
    # shellcheck disable=SC2086 # VG holds separate words
    timeout 120 $VG "$T/$tool" "$@" </dev/null >"$tmp/out" 2>"$tmp/err" ||
        rc=$?
    if [[ $rc != "$want" ]]; then
        bad "$tool $*: status $rc, not $want: $(cat -v "$tmp/err")"
        return 1
    fi
}

# errs TEXT: the last run's stderr holds TEXT (a fixed string).
errs() {
    grep -qF -- "$1" "$tmp/err" ||
        bad "expected '$1' in: $(cat -v "$tmp/err")"
}

# leftovers DIR: DIR's hidden entries (temporary files, resume state).
leftovers() { find "$1" -mindepth 1 -name '.*' -printf '%P\n' | sort; }

# mkimage FILE BLOCKS SPEC...: a raw image of BLOCKS blocks of 64 KiB,
# plus TAIL bytes when SPEC "tail=TAIL" is given (a short last block),
# then each SPEC "K=random" (block K random bytes), "K=zero" (written
# zeros: allocated at the source) or "K=byte" (zeros but for the block's
# last byte, which no block-wise zero test may miss); other blocks are
# holes.
mkimage() {
    local file=$1 blocks=$2 spec k what tail=0
    shift 2
    for spec in "$@"; do
        [[ $spec == tail=* ]] && tail=${spec#tail=}
    done
    rm -f "$file"
    truncate -s $((blocks * 65536 + tail)) "$file"
    for spec in "$@"; do
        k=${spec%%=*} what=${spec#*=}
        case $what in
        random) dd if=/dev/urandom of="$file" bs=64K seek="$k" count=1 \
                    conv=notrunc status=none ;;
        zero) dd if=/dev/zero of="$file" bs=64K seek="$k" count=1 \
                  conv=notrunc status=none ;;
        byte) printf '\x5a' | dd of="$file" bs=1 seek=$((k * 65536 + 65535)) \
                  conv=notrunc status=none ;;
        *) [[ $k == tail ]] || { echo "mkimage: $spec?" >&2; exit 2; } ;;
        esac
    done
    if ((tail)); then
        head -c "$tail" /dev/urandom |
            dd of="$file" bs=64K seek="$blocks" conv=notrunc status=none
    fi
}

# holes_work DIR: the file system of DIR keeps holes (else the tests of
# sparseness say so and skip that check).
holes_work() {
    truncate -s 1M "$1/.holes-probe"
    local blocks
    blocks=$(stat -c %b "$1/.holes-probe")
    rm -f "$1/.holes-probe"
    ((blocks == 0))
}

# allocated FILE: the bytes FILE occupies on disk.
allocated() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1"))); }

# The transport of vmferry-send for these tests: instead of ssh, run the
# remote command on this machine (vmferry-send --ssh-command runs
# "CMD DESTINATION COMMAND").  What goes over it is the real stream
# between the real send and import engines; real SSH is the test bed's
# (tests/integration/send-*.sh).  With LOCAL_SSH_TEE set, the stream of
# the --resumable import is also copied there.
LOCAL_SSH=$tmp/local-ssh
cat >"$LOCAL_SSH" <<'EOF'
#!/bin/bash
shift
if [[ -n ${LOCAL_SSH_TEE:-} && $1 == *"'--resumable'"* ]]; then
    tee "$LOCAL_SSH_TEE" | bash -c "$1"
    exit "${PIPESTATUS[1]}"
fi
exec bash -c "$1"
EOF
chmod +x "$LOCAL_SSH"

# send STREAM ARG...: vmferry-send STREAM to "localhost" through
# LOCAL_SSH, the import run with ARGs; status, stdout, stderr as for run.
send() {
    local stream=$1
    shift
    run "${SEND_WANT:-0}" vmferry-send --ssh-command "$LOCAL_SSH" \
        --remote-import "$T/vmferry-import" -i "$stream" localhost -- "$@"
}
