#!/bin/bash
# vmferry-check and vmferry-rewrite read a stream's manifest with the
# importer's parser: each hostile manifest of cases.sh is refused by
# both.  vmferry-check says it in vmferry-info's very words and exits 2
# (it could not check); vmferry-rewrite, with rules or without, exits 1
# and writes nothing.  The cases about the records after the domain XML
# are not theirs (check reads no further, rewrite copies those records
# as they are).  Hermetic: streams from mkstream in a temporary
# directory; vmferry-check refuses before it connects, so its
# destination is a socket nobody listens on.
set -euo pipefail

# shellcheck source=cases.sh
. "$(dirname "$0")/cases.sh"
hostile_reader_setup
CHECK=${VMFERRY_TOOLS_DIR:?}/vmferry-check
REWRITE=${VMFERRY_TOOLS_DIR:?}/vmferry-rewrite
nowhere="qemu+unix:///system?socket=$tmp/no-libvirtd"

# The message without the tool's name ("vmferry-info: ").
words() { sed -n '1s/^vmferry-[a-z]*: //p' "$1"; }

# vmferry-rewrite ARGS... refuses $tmp/$name.vmf with EXPECTED.
rewrite_refuses() {
    local rc=0
    rm -f "$tmp/out.vmf"
    $VG "$REWRITE" "$@" -o "$tmp/out.vmf" "$tmp/$name.vmf" \
        >/dev/null 2>"$tmp/err" || rc=$?
    [[ $rc == 1 ]] || bad "$name: vmferry-rewrite $* exited $rc"
    grep -qF -- "$expected" "$tmp/err" ||
        bad "$name: vmferry-rewrite $*: expected '$expected', got: $(cat -v "$tmp/err")"
    [[ ! -e $tmp/out.vmf ]] || bad "$name: vmferry-rewrite $* left an output file"
    return 0
}

hostile_case() {
    local name=$1 expected=$2 rc=0 before=$failed
    shift 2
    case $name in
    xml-* | begin-* | file-* | end-* | truncated | digest-*) return 0 ;;
    esac
    count=$((count + 1))
    if ! "$MKSTREAM" "$@" "$tmp/$name.vmf"; then
        bad "$name: mkstream $* failed"
        return 0
    fi
    "$INFO" "$tmp/$name.vmf" >/dev/null 2>"$tmp/info-err" || true
    $VG "$CHECK" -c "$nowhere" "$tmp/$name.vmf" >/dev/null 2>"$tmp/err" || rc=$?
    [[ $rc == 2 ]] || bad "$name: vmferry-check exited $rc"
    grep -qF -- "$expected" "$tmp/err" ||
        bad "$name: vmferry-check: expected '$expected', got: $(cat -v "$tmp/err")"
    [[ $(words "$tmp/err") == "$(words "$tmp/info-err")" ]] ||
        bad "$name: vmferry-check said: $(cat -v "$tmp/err")
  vmferry-info said: $(cat -v "$tmp/info-err")"
    rewrite_refuses
    rewrite_refuses --rename copy --map-path /var/lib/libvirt/images=/srv
    report_case "filter-$name" "$before"
    rm -f "$tmp/$name.vmf"
}

# mkstream's valid stream passes both (check then fails to connect), or
# every refusal could be mkstream's doing.
"$MKSTREAM" --files 2 "$tmp/good.vmf"
rc=0
"$CHECK" -c "$nowhere" "$tmp/good.vmf" >/dev/null 2>"$tmp/err" || rc=$?
[[ $rc != 0 ]] || bad "vmferry-check reached a destination that is not there"
grep -q 'manifest' "$tmp/err" && bad "the valid stream was refused: $(cat "$tmp/err")"
grep -qF 'no-libvirtd' "$tmp/err" || bad "check did not try to connect: $(cat "$tmp/err")"
$VG "$REWRITE" --rename copy -o "$tmp/out.vmf" "$tmp/good.vmf" ||
    bad "vmferry-rewrite refused the valid stream"
"$INFO" --verify "$tmp/out.vmf" >/dev/null || bad "the rewritten stream does not verify"

hostile_setup "$tmp"
hostile_cases "$tmp"

[[ $failed == 0 ]] || exit 1
echo "vmferry-check and vmferry-rewrite refused $count hostile manifests as the importer does"
