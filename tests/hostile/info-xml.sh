#!/bin/bash
# vmferry-info --xml prints the domain XML a stream carries, byte for byte
# as stored, only after the whole stream passed its checks (every hostile
# stream of cases.sh is refused with nothing printed), and on a terminal
# escapes the control characters a stream's XML may hold.  Hermetic:
# streams from mkstream in a temporary directory.
set -euo pipefail

# shellcheck source=cases.sh
. "$(dirname "$0")/cases.sh"
hostile_reader_setup

# ---- as stored: single quotes, a comment, no final newline
printf "<?xml version='1.0'?>\n<!-- kept -->\n<domain type='kvm'>\n  <name>web01</name>\n</domain>" \
    >"$tmp/web01.xml"
"$MKSTREAM" --xml "$tmp/web01.xml" "$tmp/ok.vmf"
"$MKSTREAM" --xml "$tmp/web01.xml" --xml-zstd "$tmp/okz.vmf"
for s in ok okz; do
    for v in "" --verify; do
        $VG "$INFO" --xml $v "$tmp/$s.vmf" >"$tmp/out" || bad "$s: --xml $v failed"
        cmp -s "$tmp/out" "$tmp/web01.xml" || bad "$s: --xml $v is not the XML as stored"
    done
done
$VG "$INFO" --xml <"$tmp/ok.vmf" >"$tmp/out" || bad "--xml from stdin failed"
cmp -s "$tmp/out" "$tmp/web01.xml" || bad "--xml from stdin is not the XML as stored"
rc=0
"$INFO" --xml --json "$tmp/ok.vmf" >"$tmp/out" 2>"$tmp/err" || rc=$?
# A usage error (2); with --json, said as the JSON error object only.
[[ $rc == 2 ]] || bad "--xml --json was accepted (status $rc)"
grep -q '"exit_status": *2' "$tmp/out" && ! grep -q '<domain' "$tmp/out" ||
    bad "--xml --json: not one JSON error: $(cat "$tmp/out")"
echo "   --xml: the XML as stored, plain and compressed, checked or verified"

# ---- nothing from a stream that does not pass
hostile_case() {
    local name=$1 expected=$2 rc=0 before=$failed
    shift 2
    count=$((count + 1))
    "$MKSTREAM" "$@" "$tmp/$name.vmf" || { bad "$name: mkstream $* failed"; return 0; }
    $VG "$INFO" --xml --verify "$tmp/$name.vmf" >"$tmp/out" 2>"$tmp/err" || rc=$?
    [[ $rc == 1 ]] || bad "$name: vmferry-info --xml --verify exited $rc"
    [[ -s $tmp/out ]] && bad "$name: --xml printed from a refused stream"
    grep -qF -- "$expected" "$tmp/err" || bad "$name: expected '$expected', got: $(cat -v "$tmp/err")"
    report_case "info-xml-$name" "$before"
    return 0
}
hostile_setup "$tmp"
hostile_cases "$tmp"
"$MKSTREAM" --xml "$tmp/web01.xml" --no-end "$tmp/cut.vmf"
rc=0
"$INFO" --xml "$tmp/cut.vmf" >"$tmp/out" 2>/dev/null || rc=$?
[[ $rc == 1 && ! -s $tmp/out ]] || bad "a truncated stream: rc $rc, or its XML printed"
echo "   --xml: $count hostile streams and a truncated one refused, nothing printed"

# ---- a terminal gets no control character from the stream
printf "<domain type='kvm'>\n  <name>x\033]0;owned\007\033[2J</name>\n</domain>\n" >"$tmp/esc.xml"
"$MKSTREAM" --xml "$tmp/esc.xml" "$tmp/esc.vmf"
"$INFO" --xml "$tmp/esc.vmf" >"$tmp/out" || bad "--xml of the escape stream failed"
cmp -s "$tmp/out" "$tmp/esc.xml" || bad "--xml to a file is not the XML as stored"
if command -v script >/dev/null; then
    script -qec "'$INFO' --xml '$tmp/esc.vmf'" /dev/null >"$tmp/tty" </dev/null ||
        bad "--xml on a terminal failed"
    LC_ALL=C grep -q $'\033' "$tmp/tty" && bad "--xml wrote ESC to a terminal: $(cat -v "$tmp/tty")"
    grep -qF 'x\x1b]0;owned\x07\x1b[2J</name>' "$tmp/tty" ||
        bad "--xml on a terminal: not escaped as expected: $(cat -v "$tmp/tty")"
    echo "   --xml: control characters escaped on a terminal, kept in a file"
else
    echo "   (no script(1): the terminal case is not tried)"
fi

[[ $failed == 0 ]] || exit 1
