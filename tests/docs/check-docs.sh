#!/bin/sh
# Docs test for one tool: the options --help lists and the options the man
# page documents must be the same set, and the common ones must be there;
# the page's EXIT STATUS section is the one table of every tool
# (tests/docs/exit-status.scd, the codes of tools/tool.h).
# Usage: check-docs.sh TOOL MANPAGE
set -u
tool=$1 page=$2
fail=0

[ -r "$page" ] || { echo "$tool: man page $page not built"; exit 1; }

help=$("$tool" --help) || { echo "$tool: --help failed"; exit 1; }
"$tool" --version | grep -q "^$tool [0-9]" || { echo "$tool: --version is wrong"; fail=1; }

opts() { grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }
help_opts=$(printf '%s\n' "$help" | opts)
# The man page's OPTIONS section (roff escapes the dashes: \-\-name);
# examples and prose elsewhere may name other tools' options.
man_opts=$(sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$page" | sed 's/\\-/-/g' | opts)
[ -n "$man_opts" ] || { echo "$tool: $page has no OPTIONS section"; exit 1; }

for o in --help --version --verbose --quiet; do
    printf '%s\n' "$help_opts" | grep -qx -- "$o" || { echo "$tool: --help lacks $o"; fail=1; }
done
for o in $help_opts; do
    printf '%s\n' "$man_opts" | grep -qx -- "$o" ||
        { echo "$tool: $o is in --help but not in the man page"; fail=1; }
done
for o in $man_opts; do
    printf '%s\n' "$help_opts" | grep -qx -- "$o" ||
        { echo "$tool: $o is in the man page but not in --help"; fail=1; }
done
# Every option --help lists must be accepted by the parser.
for o in $help_opts; do
    "$tool" "$o" </dev/null 2>&1 | grep -q "unrecognized option" &&
        { echo "$tool: $o is in --help but the parser rejects it"; fail=1; }
done
# The EXIT STATUS section of the page's source, to the next section (less
# the blank lines before it), must be the shared table, word for word.
here=$(cd "$(dirname "$0")" && pwd)
table=$here/exit-status.scd
src=$here/../../man/$(basename "$tool").1.scd
if [ ! -r "$src" ]; then
    echo "$tool: no man page source $src"; fail=1
elif ! sed -n '/^# EXIT STATUS$/,/^# /p' "$src" | sed '$d' |
        sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' | diff -u "$table" - >&2; then
    echo "$tool: the EXIT STATUS of $src is not the table of $table"; fail=1
fi
# Every code of the table is one tools/tool.h names, and back.
codes_h=$(sed -n 's/^ *VMFERRY_EXIT_[A-Z_]* = \([0-9]*\),.*/\1/p' \
    "$here/../../tools/tool.h" | grep -vx 128 | sort -un)
codes_t=$(sed -n 's/^\*\([0-9]*\)\*$/\1/p' "$table" | sort -un)
[ "$codes_h" = "$codes_t" ] ||
    { echo "$tool: tools/tool.h has codes $(echo $codes_h), the table $(echo $codes_t)"; fail=1; }
[ $fail -eq 0 ] && echo "$tool: $(printf '%s\n' "$help_opts" | wc -l) options documented in --help and $page"
exit $fail
