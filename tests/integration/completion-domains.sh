#!/bin/bash
# The bash completion offers the domains of the host that -c/--connect
# (export, migrate) or -s/--source (check) names, as virsh lists them:
# host A's for the first word of vmferry-export and vmferry-migrate, not
# host B's; and for vmferry-check besides the files.
# shellcheck source-path=SCRIPTDIR source=functions.sh
. "$(dirname "$0")/functions.sh"

requires virsh
completion=$VMFERRY_BUILD_DIR/completion/vmferry
[[ -r $completion ]] || fail "$completion not built"
# shellcheck source=/dev/null
. "$completion"

# comp WORD...: complete the last WORD (cursor at its end) of the line
# made of WORD... joined by blanks; COMPREPLY holds the result.  The words
# are given as bash makes them (split at '=', ':' and '@' too).
comp() {
    local w line=''
    COMP_WORDS=("$@") COMP_CWORD=$(($# - 1)) COMPREPLY=()
    for w in "$@"; do
        case $w in
        [=:@]*) line+=$w ;;
        *) [[ $line == *[=:@] || -z $line ]] && line+=$w || line+=" $w" ;;
        esac
    done
    COMP_LINE=$line COMP_POINT=${#line}
    _vmferry
}

in_reply() {
    local w
    for w in "${COMPREPLY[@]}"; do [[ $w == "$1" ]] && return 0; done
    return 1
}

# The bed's URIs are local ones (a socket, no host part): asked.
[[ $URI_A == qemu:///* && $URI_B == qemu:///* ]] || skip "the bed's URIs are not local"
a_doms=$(virsh -q -c "$URI_A" list --all --name)
b_doms=$(virsh -q -c "$URI_B" list --all --name)
dom_a=vmf-uefi
in_a=0 in_b=0
for d in $a_doms; do [[ $d == "$dom_a" ]] && in_a=1; done
for d in $b_doms; do [[ $d == "$dom_a" ]] && in_b=1; done
((in_a)) || fail "$dom_a is not defined on host A"
((!in_b)) || skip "$dom_a is defined on host B too: cannot tell the hosts apart"

# COMP_WORDS as bash splits "-c qemu:///system?socket=..." (at ':' and '=').
uri_words() {
    local tok=$1
    while [[ $tok =~ ^([=:@]+|[^=:@]+)(.*)$ ]]; do
        printf '%s\n' "${BASH_REMATCH[1]}"
        tok=${BASH_REMATCH[2]}
    done
}
mapfile -t ua < <(uri_words "$URI_A")
mapfile -t ub < <(uri_words "$URI_B")

comp vmferry-export -c "${ua[@]}" vmf-u
in_reply "$dom_a" || fail "export -c A: '$dom_a' not offered (got: ${COMPREPLY[*]})"
comp vmferry-export -c "${ub[@]}" vmf-u
in_reply "$dom_a" && fail "export -c B: offers A's '$dom_a' (got: ${COMPREPLY[*]})"
comp vmferry-migrate --connect = "${ua[@]}" ''
n=$(wc -w <<<"$a_doms")
((${#COMPREPLY[@]} == n)) ||
    fail "migrate --connect=A: ${#COMPREPLY[@]} domains offered, A has $n (${COMPREPLY[*]})"
in_reply "$dom_a" || fail "migrate --connect=A: '$dom_a' not offered"
comp vmferry-check -c "${ub[@]}" -s "${ua[@]}" vmf-u
in_reply "$dom_a" || fail "check -s A: '$dom_a' not offered (got: ${COMPREPLY[*]})"
echo "completion: host A's domains offered for export, migrate and check, not B's"
