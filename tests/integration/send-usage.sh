#!/bin/bash
# vmferry-send given vmferry-import's options before the '--' (as a new
# admin types them): getopt's "unrecognized option" is followed by the
# hint that import options go after the destination and '--'.  Its own
# option with a missing argument gets no such hint.
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
echo "send usage hints: OK"
