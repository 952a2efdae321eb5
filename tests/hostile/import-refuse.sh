#!/bin/bash
# vmferry-import refuses every hostile stream of cases.sh with the
# message vmferry-info gives, exit status 1, and leaves nothing: not in
# its target directory (no temporary file, no resume state, no XML), and
# nothing outside it where a name tried to lead.  Hermetic: streams from
# mkstream in a temporary directory, no --define.
set -euo pipefail

# shellcheck source=cases.sh
. "$(dirname "$0")/cases.sh"
hostile_reader_setup
IMPORT=${VMFERRY_TOOLS_DIR:?}/vmferry-import

# The directory the import writes into, one level below $tmp/top, so
# that a name with ".." would land in $tmp/top or $tmp.
dest=$tmp/top/dest
mkdir -p "$dest"

hostile_case() {
    local name=$1 expected=$2 rc=0 before=$failed
    shift 2
    count=$((count + 1))
    if ! "$MKSTREAM" "$@" "$tmp/$name.vmf"; then
        bad "$name: mkstream $* failed"
        return 0
    fi
    $VG "$IMPORT" --dir "$dest" "$tmp/$name.vmf" </dev/null \
        >"$tmp/out" 2>"$tmp/err" || rc=$?
    if [[ $rc == 0 ]]; then
        bad "$name: imported"
    elif [[ $rc != 1 ]]; then
        bad "$name: exited $rc: $(cat -v "$tmp/err")"
    fi
    grep -qF -- "$expected" "$tmp/err" ||
        bad "$name: expected '$expected', got: $(cat -v "$tmp/err")"
    [[ -z $(ls -A "$dest") ]] || bad "$name: left $(ls -A "$dest")"
    [[ $(ls -A "$tmp/top") == dest ]] ||
        bad "$name: wrote beside the target: $(ls -A "$tmp/top")"
    [[ -z $(find "$tmp" -name 'escaped*') ]] ||
        bad "$name: escaped: $(find "$tmp" -name 'escaped*')"
    report_case "import-$name" "$before"
    rm -rf "${dest:?}"/* "${dest:?}"/.[!.]* "$tmp/$name.vmf"
}

# mkstream's valid stream is imported, or every refusal could be its doing.
"$MKSTREAM" --files 2 "$tmp/good.vmf"
$VG "$IMPORT" -q --dir "$dest" "$tmp/good.vmf" || bad "the valid stream was refused"
[[ $(ls "$dest") == $'disk0.img\ndisk1.img\nmk.xml' ]] ||
    bad "the valid stream gave: $(ls -A "$dest")"
rm -f "$dest"/*

hostile_setup "$tmp"
hostile_cases "$tmp"

[[ $failed == 0 ]] || exit 1
echo "vmferry-import refused $count hostile streams, each naming its problem"
