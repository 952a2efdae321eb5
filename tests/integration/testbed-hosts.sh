#!/bin/bash
# The test bed's two hosts are really separate: each libvirtd answers on its
# own unix socket and TCP port with its own host UUID, domains and images;
# host B's sshd lands in B (same domains, same files) and checks host keys.
# shellcheck source-path=SCRIPTDIR source=functions.sh
. "$(dirname "$0")/functions.sh"

requires virsh
requires ssh
requires ssh-keygen
requires xmllint

host_uuid() {
    virsh -c "$1" capabilities | xmllint --xpath 'string(/capabilities/host/uuid)' -
}

# Both daemons answer on both URIs, and each pair reaches the same daemon.
for u in "$URI_A" "$TCP_URI_A" "$URI_B" "$TCP_URI_B"; do
    virsh -q -c "$u" uri >/dev/null || fail "no libvirtd answers on $u"
done
ua=$(host_uuid "$URI_A")
ua_tcp=$(host_uuid "$TCP_URI_A")
ub=$(host_uuid "$URI_B")
ub_tcp=$(host_uuid "$TCP_URI_B")
[[ -n $ua && -n $ub ]] || fail "empty host UUID (A: '$ua', B: '$ub')"
[[ $ua == "$ua_tcp" ]] || fail "host A: unix socket ($ua) and TCP ($ua_tcp) reach different daemons"
[[ $ub == "$ub_tcp" ]] || fail "host B: unix socket ($ub) and TCP ($ub_tcp) reach different daemons"
[[ $ua == "$HOST_UUID_A" ]] || fail "host A reports UUID $ua, configured $HOST_UUID_A"
[[ $ub == "$HOST_UUID_B" ]] || fail "host B reports UUID $ub, configured $HOST_UUID_B"
[[ $ua != "$ub" ]] || fail "hosts A and B have the same host UUID $ua"
# The bed's daemons leave the machine's default TCP port alone.
if command -v ss >/dev/null; then
    listeners=$(ss -Hltnp 'sport = :16509')
    for h in a b; do
        pid=$(cat "$VMFERRY_TESTBED_DIR/$h/run/libvirtd.pid")
        [[ $listeners != *"pid=$pid,"* ]] || fail "host $h's libvirtd listens on the default port 16509"
    done
fi

# Each host runs in its own mount namespace.
[[ $(on_a readlink /proc/self/ns/mnt) == "$MNTNS_A" ]] || fail "on_a does not enter host A's namespace"
[[ $(on_b readlink /proc/self/ns/mnt) == "$MNTNS_B" ]] || fail "on_b does not enter host B's namespace"
[[ $MNTNS_A != "$MNTNS_B" ]] || fail "hosts A and B share a mount namespace"
[[ $MNTNS_A != "$(readlink /proc/self/ns/mnt)" ]] || fail "host A is the machine's namespace"

# A's domains are A's only.
mapfile -t doms_a < <(virsh_a -q list --all --name | sed '/^$/d')
((${#doms_a[@]} >= 5)) || fail "host A has only ${#doms_a[@]} domains: ${doms_a[*]}"
for d in "${doms_a[@]}"; do
    virsh_b -q domuuid "$d" >/dev/null 2>&1 && fail "host A's domain $d is visible on host B"
    [[ -e $ROOT_B/etc/qemu/$d.xml ]] && fail "host A's domain $d has a definition in B's /etc/libvirt"
    [[ -e /etc/libvirt/qemu/$d.xml ]] && fail "host A's domain $d was defined in the machine's /etc/libvirt"
done

# Give B a domain of its own, so that comparing lists means something.
name=t-hosts-b$$
cleanup_add purge_vm "$name"
tb_domain_xml "$name" "$VIRT_TYPE" "$IMAGES_DIR/$name.qcow2" qcow2 128 >"$SCRATCH/$name.xml"
virsh_b -q define "$SCRATCH/$name.xml" >/dev/null
virsh_a -q domuuid "$name" >/dev/null 2>&1 && fail "domain $name defined on B is visible on A"

# Host B through SSH: same domains, same daemon.
list_b=$(virsh_b -q list --all --name | sed '/^$/d' | sort)
list_ssh=$(ssh_b virsh -q list --all --name | sed '/^$/d' | sort)
[[ $list_ssh == "$list_b" ]] || fail "ssh_b lists '$list_ssh', URI_B lists '$list_b'"
grep -q -x -F "$name" <<<"$list_ssh" || fail "ssh_b does not list B's domain $name"
ub_ssh=$(ssh_b virsh capabilities | xmllint --xpath 'string(/capabilities/host/uuid)' -)
[[ $ub_ssh == "$ub" ]] || fail "ssh_b reaches a libvirtd with UUID $ub_ssh, not B's $ub"
[[ $(ssh_b readlink /proc/self/ns/mnt) == "$MNTNS_B" ]] || fail "SSH sessions do not run in host B's namespace"

# A file written on B over SSH is B's only.
f=t-hosts-$$.txt
cleanup_add rm -f -- "$IMAGES_B/$f" "$IMAGES_A/$f"
ssh_b "echo hello-$$ >$IMAGES_DIR/$f"
[[ $(on_b cat "$IMAGES_DIR/$f") == "hello-$$" ]] || fail "file written over ssh_b is not in B's $IMAGES_DIR"
[[ $(cat "$IMAGES_B/$f") == "hello-$$" ]] || fail "file written over ssh_b is not in $IMAGES_B"
on_a test -e "$IMAGES_DIR/$f" && fail "file written on B is visible in A's $IMAGES_DIR"
[[ -e $IMAGES_A/$f ]] && fail "file written on B is in $IMAGES_A"
[[ -e /var/lib/libvirt/images/$f ]] && fail "file written on B is in the machine's /var/lib/libvirt/images"

# SSH sessions get the PATH set up by the bed, tools dir first.
# shellcheck disable=SC2016 # expanded by the remote shell
path_ssh=$(ssh_b 'printf %s "$PATH"')
[[ $path_ssh == "$SSH_PATH_B" ]] || fail "SSH sessions get PATH=$path_ssh, expected $SSH_PATH_B"
if [[ -n ${VMFERRY_TOOLS_DIR:-} ]]; then
    [[ ${path_ssh%%:*} == "$VMFERRY_TOOLS_DIR" ]] ||
        fail "VMFERRY_TOOLS_DIR=$VMFERRY_TOOLS_DIR is not first in PATH of SSH sessions" \
            "($path_ssh); bring the bed up with it set"
    for t in "$VMFERRY_TOOLS_DIR"/vmferry-*; do
        [[ -x $t ]] || continue
        got=$(ssh_b command -v "${t##*/}") || fail "SSH sessions do not find ${t##*/}"
        [[ $got == "$t" ]] || fail "SSH sessions run $got, not $t"
    done
fi

# Host A's root (a private home) reaches hostb with ssh's defaults, and
# the machine's own ~/.ssh knows nothing of the bed.
[[ $(on_a ssh hostb readlink /proc/self/ns/mnt) == "$MNTNS_B" ]] ||
    fail "ssh hostb with host A's default ~/.ssh does not reach host B"
[[ $(on_a sh -c 'echo ~') == /root && -f $ROOT_A/root/.ssh/config ]] || fail "host A's /root is not the bed's"
grep -rqsF "$(cut -d' ' -f2 "$SSH_KEY.pub")" /root/.ssh/ && fail "the machine's /root/.ssh has the bed's key"
grep -rqsF "$(cut -d' ' -f2 "$SSH_KNOWN_HOSTS")" /root/.ssh/ && fail "the machine's /root/.ssh knows host B"

# Host keys are checked: an empty or wrong known_hosts fails closed.
ssh_b true || fail "ssh_b true fails"
: >"$SCRATCH/known_hosts.empty"
ssh -F "$SSH_CONFIG" -o UserKnownHostsFile="$SCRATCH/known_hosts.empty" "$SSH_HOST_B" true \
    2>"$SCRATCH/ssh.err" && fail "ssh with an empty known_hosts succeeded"
grep -q 'Host key verification failed' "$SCRATCH/ssh.err" ||
    fail "ssh with an empty known_hosts failed for another reason: $(cat "$SCRATCH/ssh.err")"
ssh-keygen -q -t ed25519 -N '' -f "$SCRATCH/otherkey"
printf '[%s]:%s %s\n' "$SSH_ADDR_B" "$SSH_PORT_B" "$(cut -d' ' -f1,2 "$SCRATCH/otherkey.pub")" \
    >"$SCRATCH/known_hosts.wrong"
ssh -F "$SSH_CONFIG" -o UserKnownHostsFile="$SCRATCH/known_hosts.wrong" "$SSH_HOST_B" true \
    2>"$SCRATCH/ssh.err" && fail "ssh with a wrong host key in known_hosts succeeded"
grep -q 'Host key verification failed' "$SCRATCH/ssh.err" ||
    fail "ssh with a wrong host key failed for another reason: $(cat "$SCRATCH/ssh.err")"
# ... and only the test key gets in.
ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i "$SCRATCH/otherkey" \
    -o UserKnownHostsFile="$SSH_KNOWN_HOSTS" -o StrictHostKeyChecking=yes \
    -p "$SSH_PORT_B" "$SSH_USER_B@$SSH_ADDR_B" true 2>/dev/null &&
    fail "an unknown client key was accepted by host B's sshd"

# Host A's sshd lands in A (moves to A run on B or C; Ansible reaches
# every host over SSH): from the machine and from B with its defaults.
[[ $(ssh_a readlink /proc/self/ns/mnt) == "$MNTNS_A" ]] || fail "ssh_a does not land in host A"
# shellcheck disable=SC2016 # expanded by the remote shell
[[ $(ssh_a 'printf %s "$PATH"') == "$SSH_PATH_A" ]] || fail "host A's sessions get another PATH"
[[ $(ssh_b ssh hosta readlink /proc/self/ns/mnt) == "$MNTNS_A" ]] ||
    fail "host B does not reach host A with its default ~/.ssh"
[[ $SSH_PORT_A != "$SSH_PORT_B" && $SSH_PORT_A != "${SSH_PORT_C:-}" ]] ||
    fail "host A's sshd shares a port with B or C"

# Host C (beds with three hosts): B's construction, its own daemon,
# namespace, files and sshd; reachable from A and from B.
if [[ " ${TESTBED_HOSTS:-a b} " == *" c "* ]]; then
    for u in "$URI_C" "$TCP_URI_C"; do
        virsh -q -c "$u" uri >/dev/null || fail "no libvirtd answers on $u"
    done
    uc=$(host_uuid "$URI_C")
    [[ -n $uc && $uc == "$(host_uuid "$TCP_URI_C")" ]] ||
        fail "host C: unix socket ($uc) and TCP reach different daemons"
    [[ $uc == "$HOST_UUID_C" ]] || fail "host C reports UUID $uc, configured $HOST_UUID_C"
    [[ $uc != "$ua" && $uc != "$ub" ]] || fail "host C shares its host UUID $uc with A or B"
    [[ $(on_c readlink /proc/self/ns/mnt) == "$MNTNS_C" ]] || fail "on_c does not enter host C's namespace"
    [[ $MNTNS_C != "$MNTNS_A" && $MNTNS_C != "$MNTNS_B" ]] || fail "host C shares a mount namespace"
    [[ $TCP_URI_C != "$TCP_URI_A" && $TCP_URI_C != "$TCP_URI_B" &&
        $SSH_PORT_C != "$SSH_PORT_B" && $MIGRATION_PORTS_C != "$MIGRATION_PORTS_A" &&
        $MIGRATION_PORTS_C != "$MIGRATION_PORTS_B" ]] || fail "host C shares a port with A or B"
    for d in "${doms_a[@]}"; do
        virsh_c -q domuuid "$d" >/dev/null 2>&1 && fail "host A's domain $d is visible on host C"
    done
    virsh_c -q domuuid "$name" >/dev/null 2>&1 && fail "host B's domain $name is visible on host C"
    virsh_c -q pool-info default >/dev/null || fail "host C has no default pool"
    # Its sshd lands in C, seen from the machine, from A and from B.
    [[ $(ssh_c readlink /proc/self/ns/mnt) == "$MNTNS_C" ]] || fail "ssh_c does not land in host C"
    [[ $(ssh_c virsh capabilities | xmllint --xpath 'string(/capabilities/host/uuid)' -) == "$uc" ]] ||
        fail "ssh_c reaches another libvirtd than C's"
    # shellcheck disable=SC2016 # expanded by the remote shell
    [[ $(ssh_c 'printf %s "$PATH"') == "$SSH_PATH_C" ]] || fail "host C's sessions get another PATH"
    [[ $(on_a ssh hostc readlink /proc/self/ns/mnt) == "$MNTNS_C" ]] ||
        fail "host A does not reach host C with its default ~/.ssh"
    [[ $(ssh_b ssh hostc readlink /proc/self/ns/mnt) == "$MNTNS_C" ]] ||
        fail "host B does not reach host C with its default ~/.ssh"
    [[ $(ssh_c ssh hostb readlink /proc/self/ns/mnt) == "$MNTNS_B" ]] ||
        fail "host C does not reach host B with its default ~/.ssh"
    # Files are C's own.
    cleanup_add rm -f -- "$IMAGES_C/$f"
    ssh_c "echo hello-c-$$ >$IMAGES_DIR/$f"
    [[ $(cat "$IMAGES_C/$f") == "hello-c-$$" ]] || fail "file written over ssh_c is not in $IMAGES_C"
    [[ $(cat "$IMAGES_B/$f" 2>/dev/null) != "hello-c-$$" ]] || fail "file written on C is in B's images"
    on_a test -e "$IMAGES_DIR/$f" && fail "file written on C is visible in A's $IMAGES_DIR"
    # Its host key is checked too.
    ssh -F "$SSH_CONFIG" -o UserKnownHostsFile="$SCRATCH/known_hosts.wrong" "$SSH_HOST_C" true \
        2>/dev/null && fail "ssh to host C with a wrong known_hosts succeeded"
fi

exit 0
