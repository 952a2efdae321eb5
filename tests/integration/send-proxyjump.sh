#!/bin/bash
# vmferry-send (libssh, the default transport) reaches host B through a
# jump host named by ProxyJump in ~/.ssh/config: B's own sshd serves as
# the jump host, and the final hop goes from there to B's sshd again.
#  - The stream arrives, is verified by the import and defined, and the
#    copy is identical (qemu-img compare).
#  - B's sshd saw two authenticated connections: the jump (no session,
#    only the forwarding) and the final one (the import's sessions).
#  - Through the jump the final host's key is still checked: an unknown
#    or changed key fails closed, nothing is sent, no session is started.
#  - A jump to a host where nothing listens fails with an error that
#    names the command libssh ran.
# The configuration is a copy of host A's ~/.ssh, bind-mounted over
# /root/.ssh in a private mount namespace for each command, so the test
# bed's own files are never changed.
# shellcheck source-path=SCRIPTDIR source=functions.sh
. "$(dirname "$0")/functions.sh"

requires ssh
requires ssh-keygen
requires unshare
requires qemu-img

dot=$SCRATCH/dot-ssh
mkdir -m 700 "$dot"
cp -p "$ROOT_A"/root/.ssh/{config,id_ed25519,id_ed25519.pub,known_hosts} "$dot/"
: >"$dot/known_hosts.empty"
ssh-keygen -q -t ed25519 -N '' -f "$SCRATCH/other" -C other
printf '[127.0.0.1]:%s %s\n' "$SSH_PORT_B" "$(cut -d' ' -f1,2 "$SCRATCH/other.pub")" \
    >"$dot/known_hosts.other"
# jump_host NAME KNOWN-HOSTS JUMP: a config entry for B through JUMP,
# checking B's key against ~/.ssh/KNOWN-HOSTS.  hostb, the jump host, is
# the test bed's own entry (the ssh that libssh runs reads it).
jump_host() {
    printf '\nHost %s\n    HostName 127.0.0.1\n    Port %s\n    User root\n' "$1" "$SSH_PORT_B"
    printf '    IdentityFile ~/.ssh/id_ed25519\n    IdentitiesOnly yes\n'
    printf '    UserKnownHostsFile ~/.ssh/%s\n    GlobalKnownHostsFile /dev/null\n' "$2"
    printf '    ProxyJump %s\n' "$3"
}
{
    jump_host hostb-via-jump known_hosts hostb
    jump_host hostb-jump-unknown known_hosts.empty hostb
    jump_host hostb-jump-changed known_hosts.other hostb
    # Nothing listens on port 1.
    jump_host hostb-jump-nowhere known_hosts root@127.0.0.1:1
} >>"$dot/config"

# with_dot CMD...: run CMD on host A with $dot as root's ~/.ssh.
with_dot() {
    # shellcheck disable=SC2016 # expanded by that sh
    on_a unshare --mount --propagation private \
        sh -c 'mount --bind "$1" /root/.ssh && shift && exec "$@"' _ "$dot" "$@"
}

dest=/var/lib/libvirt/images/proxyjump
dir_on_b "$dest"
drop_copy() { virsh_b -q undefine t-proxyjump >/dev/null 2>&1 || true; }
cleanup_add drop_copy
on_a vmferry-export -c qemu:///system vmf-qcow2 -o "$SCRATCH/s.vmf"
sshd_log=$VMFERRY_TESTBED_DIR/ssh/sshd.log

# send HOST [SEND-OPTION...]: vmferry-send the stream to HOST; its output
# is in $SCRATCH/err, B's sshd log lines since in $SCRATCH/sshd.
send() {
    local host=$1 from rc=0
    shift
    from=$(($(wc -l <"$sshd_log") + 1))
    # shellcheck disable=SC2086 # $VG is a command prefix
    with_dot $VG vmferry-send -v "$@" -i "$SCRATCH/s.vmf" "$host" -- --dir "$dest" \
        --define --name t-proxyjump >"$SCRATCH/err" 2>&1 || rc=$?
    # The lines looked at are written before the client hears back.
    tail -n "+$from" "$sshd_log" >"$SCRATCH/sshd"
    return $rc
}
# ports PATTERN: the client ports of B's sshd log lines matching PATTERN.
ports() {
    sed -n "s/.*$1.* port \\([0-9]*\\).*/\\1/p" "$SCRATCH/sshd" | sort -u
}
nothing_on_b() {
    [[ -z $(on_b ls -A "$dest") ]] || fail "$1: files on B: $(on_b ls -A "$dest")"
    virsh_b domuuid t-proxyjump >/dev/null 2>&1 && fail "$1: defined on B"
    [[ -z $(ports 'Starting session') ]] || fail "$1: a session was started on B"
}

# Through the jump.
send hostb-via-jump || fail "through the jump: $(cat "$SCRATCH/err")"
grep -q "connecting to root@127.0.0.1 port $SSH_PORT_B through ssh .*-W '\\[127.0.0.1\\]:$SSH_PORT_B' hostb" \
    "$SCRATCH/err" || fail "through the jump: no jump in: $(cat "$SCRATCH/err")"
on_a qemu-img compare -U "$IMAGES_DIR/vmf-qcow2.qcow2" "$IMAGES_B/proxyjump/t-proxyjump.qcow2" \
    >/dev/null || fail "through the jump: the copy differs"
virsh_b domuuid t-proxyjump >/dev/null || fail "through the jump: not defined on B"
mapfile -t authed < <(ports 'Accepted publickey for root')
mapfile -t sessions < <(ports 'Starting session')
((${#authed[@]} == 2)) || fail "through the jump: ${#authed[@]} authenticated connections on B, not 2"
((${#sessions[@]} == 1)) || fail "through the jump: sessions on ${#sessions[@]} connections"
if [[ ${authed[0]} == "${sessions[0]}" ]]; then jump=${authed[1]}; else jump=${authed[0]}; fi
[[ " ${authed[*]} " == *" ${sessions[0]} "* ]] || fail "through the jump: a session on an unknown connection"
echo "   through the jump: sent, verified, defined; B's sshd authenticated the jump" \
    "(port $jump, no session) and the final hop (port ${sessions[0]}, the sessions)"
drop_copy
on_b sh -c "rm -f $dest/*"

# The final host's key through the jump: unknown, then changed.
fp=$(ssh-keygen -lf "$VMFERRY_TESTBED_DIR/ssh/ssh_host_ed25519_key.pub" | awk '{print $2}')
for c in unknown:'unknown host key' changed:'CHANGED'; do
    send "hostb-jump-${c%%:*}" && fail "${c%%:*} key through the jump: vmferry-send succeeded"
    grep -q -- "${c#*:}" "$SCRATCH/err" || fail "${c%%:*} key: unexpected message: $(cat "$SCRATCH/err")"
    grep -q -- "$fp" "$SCRATCH/err" || fail "${c%%:*} key: no fingerprint: $(cat "$SCRATCH/err")"
    grep -q 'nothing was sent' "$SCRATCH/err" || fail "${c%%:*} key: does not say nothing was sent"
    # The jump itself went through: the refusal is the final host's key.
    [[ -n $(ports 'Accepted publickey for root') ]] || fail "${c%%:*} key: the jump did not connect"
    nothing_on_b "${c%%:*} key"
    echo "   ${c%%:*} key through the jump: $(grep -o 'hostb-jump-.*nothing was sent' "$SCRATCH/err")"
done

# A jump host where nothing listens.
send hostb-jump-nowhere && fail "a jump to nowhere: vmferry-send succeeded"
grep -q "cannot connect through the configuration's ProxyJump or ProxyCommand, ssh .*-p 1 .*-W '\\[127.0.0.1\\]:$SSH_PORT_B' 127.0.0.1" \
    "$SCRATCH/err" || fail "a jump to nowhere: unclear message: $(cat "$SCRATCH/err")"
[[ -z $(ports 'Accepted publickey') ]] || fail "a jump to nowhere: B's sshd authenticated a connection"
nothing_on_b "a jump to nowhere"
echo "   a jump to nowhere: $(grep -o 'hostb-jump-nowhere: cannot.*' "$SCRATCH/err")"
echo "ProxyJump OK"
