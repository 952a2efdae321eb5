#!/bin/bash
# Docs test for one tool's bash completion: the options it offers after
# "-" are exactly the long and short options the tool's --help lists.
# Usage: check-completion.sh TOOL COMPLETION_FILE
set -u
tool=$1 file=$2
fail=0

[ -r "$file" ] || { echo "$tool: completion $file not built"; exit 1; }
help=$("$tool" --help) || { echo "$tool: --help failed"; exit 1; }

# As check-docs.sh reads --help: every long option named, and every short
# one at the start of an option line ("  -c, --connect=URI").
help_long=$(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
help_short=$(printf '%s\n' "$help" | grep -oE '^ +-[A-Za-z0-9],' |
    tr -d ' ,' | sort -u)

# shellcheck source=/dev/null
. "$file"
# The words of "TOOL -" as bash hands them to the completion function.
COMP_LINE="$tool -" COMP_POINT=${#COMP_LINE}
COMP_WORDS=("$tool" -) COMP_CWORD=1 COMPREPLY=()
_vmferry
offered=$(printf '%s\n' "${COMPREPLY[@]}" | sed 's/=$//' | sort -u)
comp_long=$(printf '%s\n' "$offered" | grep -E -- '^--')
comp_short=$(printf '%s\n' "$offered" | grep -E -- '^-[^-]')

for o in $help_long; do
    printf '%s\n' "$comp_long" | grep -qx -- "$o" ||
        { echo "$tool: $o is in --help but not completed"; fail=1; }
done
for o in $comp_long; do
    printf '%s\n' "$help_long" | grep -qx -- "$o" ||
        { echo "$tool: $o is completed but not in --help"; fail=1; }
done
for o in $help_short; do
    printf '%s\n' "$comp_short" | grep -qx -- "$o" ||
        { echo "$tool: $o is in --help but not completed"; fail=1; }
done
for o in $comp_short; do
    printf '%s\n' "$help_short" | grep -qx -- "$o" ||
        { echo "$tool: $o is completed but not in --help"; fail=1; }
done
# An option that needs a value is offered as "--name=", so that the
# value follows without a space; one whose value is optional as "--name".
need=$(printf '%s\n' "$help" | grep -oE -- '^ +(-[A-Za-z0-9], +)?--[a-z][a-z0-9-]*=' |
    grep -oE -- '--[a-z][a-z0-9-]*=' | sort -u)
with_eq=$(printf '%s\n' "${COMPREPLY[@]}" | grep -E -- '^--.*=$' | sort -u)
[ "$need" = "$with_eq" ] || {
    echo "$tool: options offered with '=' differ from those --help gives a value:"
    diff <(printf '%s\n' "$need") <(printf '%s\n' "$with_eq")
    fail=1
}
[ $fail -eq 0 ] && echo "$tool: $(printf '%s\n' "$help_long" | wc -l) long and" \
    "$(printf '%s\n' "$help_short" | wc -l) short options completed, as in --help"
exit $fail
