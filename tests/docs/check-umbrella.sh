#!/bin/bash
# Docs test for vmferry(1), the overview: it names every tool, and every
# option it quotes exists.  An option after a tool's name on the same line
# (up to a '|' or ';') must be in that tool's synopsis, after
# "vmferry-send ... --" in vmferry-import's; any other long option in
# some tool's (after another program's name, such as ssh or cmake, its
# own).  The same for the options README.md and CONTRIBUTING.md quote.
# Its EXIT STATUS is the table every tool's page carries.
# Usage: check-umbrella.sh SOURCE_DIR
set -u
src=$1
page=$src/man/vmferry.1.scd
fail=0

[ -r "$page" ] || { echo "vmferry(1): $page missing"; exit 1; }

declare -A opts # tool -> " --long -s ... "
all=' '
for syn in "$src"/tools/vmferry-*.synopsis; do
    tool=$(basename "$syn" .synopsis)
    long=$(grep -oE -- '--[a-z][a-z0-9-]*' "$syn" | sort -u | tr '\n' ' ')
    short=$(grep -oE '^ +-[A-Za-z0-9],' "$syn" | tr -d ' ,' | tr '\n' ' ')
    opts[$tool]=" $long$short"
    all+="$long"
    grep -qx -- "\*$tool\*(1)" "$page" ||
        { echo "vmferry(1): $tool is not among THE TOOLS"; fail=1; }
done

# check_options FILE: every option FILE quotes after a tool's name is that
# tool's, every other long option some tool's, except after the name of
# another program (cmake, ssh, ...).
n=0
check_options() {
    local file=$1 name lineno=0 line seg tool w found o
    local -a segments words
    name=$(basename "$file")
    while IFS= read -r line; do
    lineno=$((lineno + 1))
    # Without markup: *bold*, _underline_, escapes, `code`.
    line=${line//[*_\\\`]/}
    IFS='|;' read -ra segments <<<"$line"
    tool=
    for seg in "${segments[@]}"; do
        # A '|' in another program's arguments (ctest -R 'a|b') goes on
        # with that program; a pipe into a tool names the tool.
        [[ $tool == other ]] || tool=
        read -ra words <<<"$seg"
        for w in "${words[@]}"; do
            w=${w#\'} w=${w#\(}
            [[ -n $w ]] || continue
            if [[ -n ${opts[$w]+set} ]]; then
                tool=$w
                continue
            fi
            # Another program's options are its own.
            case $w in
            cmake|ctest|ssh|zstd|virsh|virt-xml-validate|git|tar|scdoc|\
                ansible-playbook|ansible-lint|ansible-doc)
                tool=other
                continue ;;
            esac
            [[ $tool == other ]] && continue
            if [[ $w == -- && $tool == vmferry-send ]]; then
                tool=vmferry-import
                continue
            fi
            [[ $w == -* ]] || continue
            found=$(grep -oE -- '(^|/)--[a-z][a-z0-9-]*' <<<"$w" | tr -d /)
            [[ -n $tool && $w =~ ^(-[A-Za-z0-9])($|[/,.:=\)]) ]] &&
                found+=" ${BASH_REMATCH[1]}"
            for o in $found; do
                n=$((n + 1))
                if [[ -n $tool ]]; then
                    [[ ${opts[$tool]} == *" $o "* ]] ||
                        { echo "$name line $lineno: $tool has no option $o"; fail=1; }
                else
                    [[ $all == *" $o "* ]] ||
                        { echo "$name line $lineno: no tool has an option $o"; fail=1; }
                fi
            done
        done
    done
    done <"$file"
}
check_options "$page"
check_options "$src/README.md"
check_options "$src/CONTRIBUTING.md"

# EXIT STATUS: the shared table (tests/docs/exit-status.scd) word for
# word, as in every tool's page, so that the overview cannot drift.
table=$(dirname "$0")/exit-status.scd
if ! sed -n '/^# EXIT STATUS$/,/^# /p' "$page" | sed '$d' |
        sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' | diff -u "$table" - >&2; then
    echo "vmferry(1): its EXIT STATUS is not the table of $table"; fail=1
fi

[ $n -gt 50 ] || { echo "vmferry(1): only $n options found: is the parsing broken?"; fail=1; }
[ $fail -eq 0 ] && echo "vmferry(1) names every tool and carries the exit-status table;" \
    "the $n options it, README.md and CONTRIBUTING.md quote exist"
exit $fail
