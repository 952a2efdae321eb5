#!/bin/bash
# vmferry-send's host key policy, against B's real sshd: an unknown key, a
# changed key, a key of another type and a @revoked key are refused with
# the fingerprint and nothing is sent (B's sshd sees no authenticated
# session, nothing appears on B); --accept-new-host-key adds an unknown key
# (then it works) but still refuses a changed one.  -F FILE is the only
# configuration read.  Remote errors come back
# verbatim and set the exit status.  --ssh-command runs the system's ssh.
. "$(dirname "$0")/functions.sh"

requires ssh-keygen

kh=$ROOT_A/root/.ssh/known_hosts
cp "$kh" "$SCRATCH/known_hosts.orig"
cleanup_add cp "$SCRATCH/known_hosts.orig" "$kh"
dest=/var/lib/libvirt/images/hostkey
dir_on_b "$dest"
cleanup_add virsh_b -q undefine t-hostkey
on_a vmferry-export -c qemu:///system vmf-qcow2 -o "$SCRATCH/s.vmf"
fp=$(ssh-keygen -lf "$VMFERRY_TESTBED_DIR/ssh/ssh_host_ed25519_key.pub" | awk '{print $2}')
sshd_log=$VMFERRY_TESTBED_DIR/ssh/sshd.log

# refused WHAT PATTERN [SEND-OPTION...]
refused() {
    local what=$1 pat=$2 before
    shift 2
    before=$(grep -c 'Accepted publickey' "$sshd_log" || true)
    if on_a vmferry-send "$@" -i "$SCRATCH/s.vmf" hostb -- --dir "$dest" --define \
        --name t-hostkey 2>"$SCRATCH/err"; then
        fail "$what: vmferry-send succeeded"
    fi
    grep -q -- "$pat" "$SCRATCH/err" || fail "$what: unexpected message: $(cat "$SCRATCH/err")"
    grep -q -- "$fp" "$SCRATCH/err" || fail "$what: no fingerprint: $(cat "$SCRATCH/err")"
    grep -q 'nothing was sent' "$SCRATCH/err" || fail "$what: does not say nothing was sent"
    [[ $(grep -c 'Accepted publickey' "$sshd_log" || true) == "$before" ]] ||
        fail "$what: B's sshd authenticated a session"
    [[ -z $(on_b ls -A "$dest") ]] || fail "$what: files on B: $(on_b ls -A "$dest")"
    virsh_b domuuid t-hostkey >/dev/null 2>&1 && fail "$what: defined on B"
    echo "   $what: $(head -c 150 "$SCRATCH/err")"
}

# Unknown: an empty known_hosts.
: >"$kh"
refused "unknown key" "unknown host key"
# Changed: another ed25519 key for the host.
ssh-keygen -q -t ed25519 -N '' -f "$SCRATCH/other" -C other
printf '[127.0.0.1]:%s %s\n' "$SSH_PORT_B" "$(cut -d' ' -f1,2 "$SCRATCH/other.pub")" >"$kh"
refused "changed key" "CHANGED"
refused "changed key, --accept-new-host-key" "CHANGED" --accept-new-host-key
# Other type: only an RSA key is known for the host.
ssh-keygen -q -t rsa -b 2048 -N '' -f "$SCRATCH/rsa" -C rsa
printf '[127.0.0.1]:%s %s\n' "$SSH_PORT_B" "$(cut -d' ' -f1,2 "$SCRATCH/rsa.pub")" >"$kh"
refused "other key type" "key of another type"
# Revoked, though also listed as the host's key.
{ cat "$SCRATCH/known_hosts.orig"
  echo "@revoked * $(cut -d' ' -f1,2 "$VMFERRY_TESTBED_DIR/ssh/ssh_host_ed25519_key.pub")"; } >"$kh"
refused "revoked key" "@revoked"

# accept-new: first contact adds the key, and the transfer works.
: >"$kh"
on_a vmferry-send --accept-new-host-key -i "$SCRATCH/s.vmf" hostb -- --dir "$dest" \
    --define --name t-hostkey 2>"$SCRATCH/err" || fail "accept-new: $(cat "$SCRATCH/err")"
grep -q "first contact" "$SCRATCH/err" || fail "accept-new: not reported"
grep -q "$(cut -d' ' -f2 "$VMFERRY_TESTBED_DIR/ssh/ssh_host_ed25519_key.pub")" "$kh" ||
    fail "accept-new: key not added to known_hosts"
virsh_b domuuid t-hostkey >/dev/null || fail "accept-new: not defined"
echo "   accept-new: added and sent"

# The same stream again: that move is done; said, exit 0, nothing sent.
cp "$SCRATCH/known_hosts.orig" "$kh"
on_a vmferry-send -i "$SCRATCH/s.vmf" hostb -- --dir "$dest" --define --name t-hostkey \
    2>"$SCRATCH/err" || fail "re-send of a completed move: $(cat "$SCRATCH/err")"
grep -q 'already defined on this host from the same source state: nothing was sent' \
    "$SCRATCH/err" || fail "re-send: not reported: $(cat "$SCRATCH/err")"

# Remote errors verbatim, with the remote's exit status: another stream
# for a domain of that name, which exists now.
on_a vmferry-export -c qemu:///system vmf-raw -o "$SCRATCH/s2.vmf"
rc=0
on_a vmferry-send -i "$SCRATCH/s2.vmf" hostb -- --dir "$dest" --define --name t-hostkey \
    2>"$SCRATCH/err" || rc=$?
((rc == 1)) || fail "remote refusal: exit status $rc"
grep -q '^vmferry-import: domain t-hostkey already exists on this host' "$SCRATCH/err" ||
    fail "remote error not verbatim: $(cat "$SCRATCH/err")"
rc=0
on_a vmferry-send -i "$SCRATCH/s.vmf" hostb -- --no-such-option 2>"$SCRATCH/err" || rc=$?
((rc != 0)) || fail "a bad remote option succeeded"
grep -q "^vmferry-import: unrecognized option '--no-such-option'" "$SCRATCH/err" ||
    fail "remote usage error not verbatim: $(cat "$SCRATCH/err")"
echo "   remote errors come back verbatim"

# -F FILE: the alias hostf and its known_hosts exist only in FILE (not in
# ~/.ssh/config); an unknown key is still refused, then accepted into
# FILE's known_hosts with --accept-new-host-key.
virsh_b -q undefine t-hostkey >/dev/null
on_b sh -c "rm -f $dest/*"
: >"$SCRATCH/kh-f"
printf '%s\n' "Host hostf" "  HostName $SSH_ADDR_B" "  Port $SSH_PORT_B" "  User $SSH_USER_B" \
    "  IdentityFile /root/.ssh/id_ed25519" "  UserKnownHostsFile $SCRATCH/kh-f" \
    "  GlobalKnownHostsFile /dev/null" >"$SCRATCH/conf"
on_a vmferry-send -F "$SCRATCH/conf" -i "$SCRATCH/s.vmf" hostf -- --dir "$dest" --define \
    --name t-hostkey 2>"$SCRATCH/err" && fail "-F: an unknown key was accepted"
grep -q "unknown host key" "$SCRATCH/err" || fail "-F: $(cat "$SCRATCH/err")"
on_a vmferry-send -F "$SCRATCH/conf" --accept-new-host-key -i "$SCRATCH/s.vmf" hostf -- \
    --dir "$dest" --define --name t-hostkey 2>"$SCRATCH/err" || fail "-F: $(cat "$SCRATCH/err")"
grep -q "$(cut -d' ' -f2 "$VMFERRY_TESTBED_DIR/ssh/ssh_host_ed25519_key.pub")" "$SCRATCH/kh-f" ||
    fail "-F: key not added to the file's known_hosts"
echo "   -F: the file's host, user, key and known_hosts"

# --ssh-command: the system's ssh (with its own host key checking).
virsh_b -q undefine t-hostkey >/dev/null
on_b sh -c "rm -f $dest/*"
on_a vmferry-send --ssh-command "ssh -o BatchMode=yes" -i "$SCRATCH/s.vmf" hostb -- \
    --dir "$dest" --define --name t-hostkey || fail "--ssh-command failed"
on_a qemu-img compare -U "$IMAGES_DIR/vmf-qcow2.qcow2" "$IMAGES_B/hostkey/t-hostkey.qcow2" >/dev/null ||
    fail "--ssh-command: copy differs"
echo "host key policy OK"
