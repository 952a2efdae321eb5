#!/bin/bash
# vmferry-migrate reaches B twice: its own SSH session (libssh) for the
# data, and libvirt's qemu+ssh connection for the pre-flight check (and
# the live migration).  Both follow one host key policy, one SSH
# configuration file (-F) and one known_hosts:
#   - an unknown host key is refused with its fingerprint by vmferry's
#     check, before libvirt's ssh runs, and nothing is copied;
#   - --accept-new-host-key adds it, and libvirt's ssh then finds it (it
#     failed with "Host key verification failed");
#   - -F FILE: a host alias and a known_hosts that only FILE names (not
#     ~/.ssh/config) work for the data, the check and a live dry run;
#   - --ssh-command CMD runs libvirt's ssh as CMD too.
. "$(dirname "$0")/functions.sh"

requires ssh-keygen

kh=$ROOT_A/root/.ssh/known_hosts
cp "$kh" "$SCRATCH/known_hosts.orig"
cleanup_add cp "$SCRATCH/known_hosts.orig" "$kh"
dest=/var/lib/libvirt/images/mhostkey
dir_on_b "$dest"
undefine_copy() { virsh_b -q undefine t-mhostkey >/dev/null 2>&1 || true; }
cleanup_add undefine_copy
# The helper libvirt runs as ssh is made under TMPDIR: none may stay.
export TMPDIR=$SCRATCH/tmp
mkdir -p "$TMPDIR"
fp=$(ssh-keygen -lf "$VMFERRY_TESTBED_DIR/ssh/ssh_host_ed25519_key.pub" | awk '{print $2}')
key=$(cut -d' ' -f2 "$VMFERRY_TESTBED_DIR/ssh/ssh_host_ed25519_key.pub")

# 1. Unknown key, no --accept-new-host-key: vmferry's refusal, not
# libvirt's, and nothing on B.
: >"$kh"
rc=0
on_a vmferry-migrate vmf-qcow2 hostb --rename t-mhostkey --dest-dir "$dest" \
    >"$SCRATCH/out" 2>"$SCRATCH/err" || rc=$?
((rc == 1)) || fail "unknown key: exit status $rc: $(cat "$SCRATCH/err")"
grep -q "unknown host key" "$SCRATCH/err" || fail "unknown key: $(cat "$SCRATCH/err")"
grep -qF -- "$fp" "$SCRATCH/err" || fail "unknown key: no fingerprint: $(cat "$SCRATCH/err")"
grep -q "Host key verification failed" "$SCRATCH/err" &&
    fail "unknown key: libvirt's ssh ran: $(cat "$SCRATCH/err")"
[[ -z $(on_b ls -A "$dest") ]] || fail "unknown key: files on B"
[[ -s $kh ]] && fail "unknown key: known_hosts was written"
echo "   unknown key: refused by vmferry, with the fingerprint"

# 2. --accept-new-host-key: the key is added, the check (libvirt's ssh,
# which found no key before) and the copy both go through.
on_a vmferry-migrate --accept-new-host-key vmf-qcow2 hostb --rename t-mhostkey \
    --dest-dir "$dest" >"$SCRATCH/out" 2>"$SCRATCH/err" ||
    fail "accept-new: $(cat "$SCRATCH/err")"
grep -qF -- "$key" "$kh" || fail "accept-new: key not added to known_hosts"
virsh_b domuuid t-mhostkey >/dev/null || fail "accept-new: not defined on B"
echo "   accept-new: key added, checked and copied"
virsh_b -q undefine t-mhostkey >/dev/null
on_b sh -c "rm -f $dest/*"

# 3. -F FILE: the alias "hostf" and its known_hosts exist only there.
# ~/.ssh/config does not know hostf, so without -F reaching libvirt's
# ssh the check fails.
cp "$SCRATCH/known_hosts.orig" "$kh"
: >"$SCRATCH/kh-f"
cat >"$SCRATCH/conf" <<EOF
Host hostf
    HostName $SSH_ADDR_B
    Port $SSH_PORT_B
    User $SSH_USER_B
    IdentityFile /root/.ssh/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $SCRATCH/kh-f
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    LogLevel ERROR
EOF
on_a vmferry-migrate -F "$SCRATCH/conf" --accept-new-host-key vmf-qcow2 hostf \
    --rename t-mhostkey --dest-dir "$dest" >"$SCRATCH/out" 2>"$SCRATCH/err" ||
    fail "-F: $(cat "$SCRATCH/err")"
grep -qF -- "$key" "$SCRATCH/kh-f" || fail "-F: key not added to the file's known_hosts"
cmp -s "$kh" "$SCRATCH/known_hosts.orig" || fail "-F: ~/.ssh/known_hosts was changed"
virsh_b domuuid t-mhostkey >/dev/null || fail "-F: not defined on B"
echo "   -F: the data, the check and known_hosts from FILE"

# The same with --live --dry-run: the pre-flight's connection of a live
# move, for the running VM.
on_a vmferry-migrate -F "$SCRATCH/conf" --live --dry-run vmf-running hostf \
    >"$SCRATCH/out" 2>"$SCRATCH/err" || rc=$?
grep -qE "^(ok|blocked):" "$SCRATCH/out" ||
    fail "-F --live --dry-run: no check: $(cat "$SCRATCH/out" "$SCRATCH/err")"
grep -q "Host key verification failed\|Could not resolve" "$SCRATCH/err" &&
    fail "-F --live --dry-run: libvirt's ssh did not get -F: $(cat "$SCRATCH/err")"
echo "   -F --live --dry-run: checked through FILE"

# 4. --ssh-command: libvirt's ssh is that command too (hostf is known to
# it only through its -F).
virsh_b -q undefine t-mhostkey >/dev/null
on_b sh -c "rm -f $dest/*"
on_a vmferry-migrate --ssh-command "ssh -F $SCRATCH/conf" --dry-run vmf-qcow2 hostf \
    --rename t-mhostkey --dest-dir "$dest" >"$SCRATCH/out" 2>"$SCRATCH/err" ||
    fail "--ssh-command: $(cat "$SCRATCH/err")"
grep -q "^ok:" "$SCRATCH/out" || fail "--ssh-command: no check: $(cat "$SCRATCH/out")"
rc=0
on_a vmferry-migrate --ssh-command ssh -F "$SCRATCH/conf" vmf-qcow2 hostf \
    2>"$SCRATCH/err" || rc=$?
((rc == 2)) || fail "-F with --ssh-command: status $rc"
grep -q "give -F inside --ssh-command" "$SCRATCH/err" || fail "-F with --ssh-command: $(cat "$SCRATCH/err")"
# No helper is left behind.
[[ -z $(ls -A "$TMPDIR") ]] || fail "a helper was left: $(ls -A "$TMPDIR")"
echo "migrate host keys, -F and --ssh-command OK"
