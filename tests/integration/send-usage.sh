#!/bin/bash
# vmferry-send given vmferry-import's options before the '--' (as a new
# admin types them): getopt's "unrecognized option" is followed by the
# hint that import options go after the destination and '--'.  Its own
# option with a missing argument gets no such hint.  vmferry-migrate and
# vmferry-check answer another tool's options with their own form.
. "$(dirname "$0")/functions.sh"

hint="options for the remote vmferry-import go after the destination and '--'"

# usage_error WANT-HINT SEND-ARG...: status 2 (usage), getopt's own complaint,
# the hint (or not), and the pointer to --help.
usage_error() {
    local want=$1 rc=0 out
    shift
    out=$(on_a $VG vmferry-send "$@" 2>&1 </dev/null) || rc=$?
    ((rc == 2)) || fail "vmferry-send $*: status $rc, not 2: $out"
    grep -q "Try 'vmferry-send --help'" <<<"$out" || fail "vmferry-send $*: $out"
    if ((want)); then
        grep -qF "$hint" <<<"$out" || fail "vmferry-send $*: no hint: $out"
    else
        grep -qF "$hint" <<<"$out" && fail "vmferry-send $*: a hint that does not apply: $out"
    fi
    echo "vmferry-send $*: $out"
}

usage_error 1 hostb --dir /srv/vm
usage_error 1 hostb --define
usage_error 1 --pool=default hostb
usage_error 1 hostb -d /srv/vm
usage_error 0 hostb --connections

# The same for the tools that take another tool's options in their own
# form: vmferry-migrate (vmferry-import's), vmferry-check
# (vmferry-rewrite's).
# other_tool TOOL WANT-HINT-TEXT ARG...: status 2 (a usage error),
# getopt's complaint and the hint (or, with an empty WANT, only the
# complaint).
other_tool() {
    local tool=$1 want=$2 rc=0 out
    shift 2
    out=$(on_a $VG "$tool" "$@" 2>&1 </dev/null) || rc=$?
    ((rc == 2)) || fail "$tool $*: status $rc, not 2: $out"
    grep -q "unrecognized option" <<<"$out" || fail "$tool $*: $out"
    if [[ -n $want ]]; then
        grep -qF -- "$want" <<<"$out" || fail "$tool $*: no hint: $out"
    else
        [[ $(wc -l <<<"$out") == 2 ]] || fail "$tool $*: a hint that does not apply: $out"
    fi
    echo "$tool $*: $out"
}
other_tool vmferry-migrate "is --dest-dir DIR here" web01 hostb --dir /srv/vm
other_tool vmferry-migrate "use --rename NAME" web01 hostb --name=web02
other_tool vmferry-migrate "replaces nothing on HOST" web01 hostb --force
other_tool vmferry-migrate "" web01 hostb --no-such-option
other_tool vmferry-check "rewrite it first" -c "$URI_B" web01 --map-path /a=/b
other_tool vmferry-check "" -c "$URI_B" web01 --no-such-option
echo "send usage hints: OK"
