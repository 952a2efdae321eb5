#!/bin/bash
# vmferry-info refuses every hostile stream of cases.sh (the ones the
# importer refuses), naming the problem, and never prints a control
# character that came from a stream: not in a description, not in an
# error.  Hermetic: streams from mkstream in a temporary directory.
set -euo pipefail

# shellcheck source=cases.sh
. "$(dirname "$0")/cases.sh"
hostile_reader_setup

# Output with a control character other than the newline.
has_control() { LC_ALL=C grep -q '[[:cntrl:]]' "$1"; }

# Refused, with EXPECTED in the message, nothing on stdout.
refuses() {
    local name=$1 expected=$2 rc=0
    shift 2
    $VG "$INFO" "$@" "$tmp/$name.vmf" >"$tmp/out" 2>"$tmp/err" || rc=$?
    if [[ $rc == 0 ]]; then
        bad "$name: vmferry-info $* accepted it"
    elif [[ $rc != 1 ]]; then
        bad "$name: vmferry-info $* exited $rc"
    fi
    grep -qF -- "$expected" "$tmp/err" ||
        bad "$name: vmferry-info $*: expected '$expected', got: $(cat -v "$tmp/err")"
    [[ -s $tmp/out ]] && bad "$name: vmferry-info $* described a refused stream"
    has_control "$tmp/err" && bad "$name: a control character in: $(cat -v "$tmp/err")"
    return 0
}

hostile_case() {
    local name=$1 expected=$2
    shift 2
    count=$((count + 1))
    if ! "$MKSTREAM" "$@" "$tmp/$name.vmf"; then
        bad "$name: mkstream $* failed"
        return 0
    fi
    local before=$failed
    refuses "$name" "$expected" --verify
    if [[ $name == digest-* ]]; then
        $VG "$INFO" "$tmp/$name.vmf" >/dev/null ||
            bad "$name: without --verify, digests are not checked"
    else
        refuses "$name" "$expected"
    fi
    report_case "info-$name" "$before"
    rm -f "$tmp/$name.vmf"
}

# The streams are mkstream's valid one with one thing broken: that one
# is accepted, or every refusal could be mkstream's doing.
"$MKSTREAM" --files 2 "$tmp/good.vmf"
$VG "$INFO" --verify "$tmp/good.vmf" >"$tmp/out" || bad "the valid stream was refused"
grep -q 'every checksum and digest verified' "$tmp/out" || bad "no verdict: $(cat "$tmp/out")"
"$MKSTREAM" --xml-size 16000000 --xml-zstd "$tmp/good.vmf"
$VG "$INFO" --verify "$tmp/good.vmf" >/dev/null || bad "a 16 MB XML was refused"

hostile_setup "$tmp"
hostile_cases "$tmp"

# Text the parser lets through (it is UTF-8 without control characters)
# but that would mislead on a terminal: shown escaped.
"$MKSTREAM" --set 'domain.name="\u202eexe.gpj"' --set 'files.0.name="back\\slash"' \
    --set 'source.host="h\u2028x"' "$tmp/shown.vmf"
$VG "$INFO" "$tmp/shown.vmf" >"$tmp/out" || bad "shown.vmf refused: $(cat -v "$tmp/out")"
grep -qF 'domain:   \u202eexe.gpj' "$tmp/out" || bad "the RLO is not escaped: $(cat -v "$tmp/out")"
grep -qF 'back\\slash' "$tmp/out" || bad "the backslash is not doubled: $(cat -v "$tmp/out")"
grep -qF 'source:   h\u2028x' "$tmp/out" || bad "U+2028 is not escaped: $(cat -v "$tmp/out")"
has_control "$tmp/out" && bad "a control character in: $(cat -v "$tmp/out")"
# JSON keeps the text (it is data for programs) and escapes what JSON must.
$VG "$INFO" --json "$tmp/shown.vmf" >"$tmp/out"
[[ $(jq -r .manifest.files[0].name "$tmp/out") == 'back\slash' ]] ||
    bad "--json: the name is not kept: $(cat "$tmp/out")"
has_control "$tmp/out" && bad "--json: a control character in: $(cat -v "$tmp/out")"

[[ $failed == 0 ]] || exit 1
echo "vmferry-info refused $count hostile streams, each naming its problem"
