#!/bin/bash
# vmferry-send --connections N over B's real sshd: the stream travels over
# N SSH sessions (B's sshd log shows N sessions and N-1 joining imports),
# the copy is identical and defined; a stream shorter than the connections
# works; the system's ssh (--ssh-command) works the same; a joining
# connection killed in the middle is a cut that the same command resumes;
# vmferry-migrate passes --connections on.  Nothing is left running on B
# and no rendezvous socket stays behind.
. "$(dirname "$0")/functions.sh"

requires qemu-img

vm=t-conn
dest=/var/lib/libvirt/images/connections
dir_on_b "$dest"
sshd_log=$VMFERRY_TESTBED_DIR/ssh/sshd.log
join_dir=/tmp/vmferry-join-0

drop_b() {
    virsh_b -q undefine "$1" >/dev/null 2>&1 || true
    on_b rm -f "$dest/$1.img" "$dest/$vm.img"
}

drop_all() {
    local d
    for d in c4 tiny8 c2 cut3 mig3; do
        virsh_b -q undefine "$d" >/dev/null 2>&1 || true
    done
}
drop_all
cleanup_add drop_all

# b_pids PATTERN: processes on host B (its mount namespace) matching.
b_pids() {
    local p
    for p in $(pgrep -f -- "$1" || true); do
        [[ $(readlink "/proc/$p/ns/mnt" 2>/dev/null) == "$MNTNS_B" ]] && echo "$p"
    done
    return 0
}

# No vmferry-import left on B, no socket left in the join directory.
nothing_left() {
    local procs
    procs=$(b_pids '^vmferry-import ')
    [[ -z $procs ]] || fail "$1: processes left on B: $(ps -o pid,args -p "${procs//$'\n'/,}")"
    [[ -z $(on_b find "$join_dir" -type s 2>/dev/null) ]] ||
        fail "$1: sockets left in $join_dir: $(on_b ls -A "$join_dir")"
}

# 48 MiB of data at spread offsets: about 30 chunks of 1 MiB after zstd.
make_vm "$vm" raw 256M 0x5a@0+16M 0xa5@64M+16M 0x3c@200M+16M
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M seek=100 count=24 \
    conv=notrunc status=none
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/s.vmf"

# send_n COPY N [SEND-OPTION...]: send the stream over N connections.
send_n() {
    local copy=$1 n=$2
    shift 2
    on_a vmferry-send -v --connections "$n" "$@" -i "$SCRATCH/s.vmf" hostb -- \
        --dir "$dest" --define --name "$copy"
}

# 1. Four connections (libssh).
before=$(grep -c 'Accepted publickey' "$sshd_log" || true)
out=$(send_n c4 4 2>&1) || fail "--connections 4 failed: $out"
grep -q 'sending over 4 connections' <<<"$out" || fail "not sent over 4 connections: $out"
after=$(grep -c 'Accepted publickey' "$sshd_log" || true)
# The resume query and the import share the first session.
((after - before == 4)) || fail "B's sshd saw $((after - before)) sessions, not 4"
qemu-img compare -q -f raw -F raw "$IMAGES_A/$vm.img" "$IMAGES_B/connections/c4.img" ||
    fail "the copy over 4 connections differs"
virsh_b domuuid c4 >/dev/null || fail "c4 not defined on B"
nothing_left "4 connections"
drop_b c4

# 2. More connections than chunks: a 1 MiB disk makes a stream of two.
make_vm t-conn-tiny raw 8M 0x11@0+1M
on_a vmferry-export -c qemu:///system t-conn-tiny -o "$SCRATCH/tiny.vmf"
on_a vmferry-send --connections 8 -i "$SCRATCH/tiny.vmf" hostb -- \
    --dir "$dest" --define --name tiny8 || fail "8 connections for a tiny stream failed"
qemu-img compare -q -f raw -F raw "$IMAGES_A/t-conn-tiny.img" "$IMAGES_B/connections/tiny8.img" ||
    fail "the tiny copy differs"
nothing_left "8 connections, tiny stream"
virsh_b -q undefine tiny8 >/dev/null
on_b rm -f "$dest/tiny8.img"

# 3. The system's ssh.
send_n c2 2 --ssh-command "ssh -F $SSH_CONFIG" >/dev/null 2>&1 ||
    fail "--connections 2 --ssh-command failed"
qemu-img compare -q -f raw -F raw "$IMAGES_A/$vm.img" "$IMAGES_B/connections/c2.img" ||
    fail "the copy over 2 ssh processes differs"
nothing_left "--ssh-command"
drop_b c2

# 4. A joining connection killed in the middle is a cut; the same command
# resumes.  --bandwidth keeps the transfer going long enough to cut it
# where we choose: when the temporary file holds 8 MiB.
on_a vmferry-send --connections 3 --bandwidth 8M -i "$SCRATCH/s.vmf" hostb -- \
    --dir "$dest" --define --name cut3 >"$SCRATCH/cut.out" 2>&1 &
send_pid=$!
cut=""
for ((i = 0; i < 3000; i++)); do
    f=$(compgen -G "$IMAGES_B/connections/.$vm.img.vmferry-*" | head -n1) || true
    if [[ -n $f ]] && (($(stat -c %b "$f" 2>/dev/null || echo 0) * 512 >= 8 << 20)); then
        cut=$(b_pids '^vmferry-import --join=[0-9a-f]*:2$' | head -n1)
        break
    fi
    kill -0 "$send_pid" 2>/dev/null || break
    sleep 0.01
done
[[ -n $cut ]] || fail "no joining import to cut (the transfer ended first?)"
kill -KILL "$cut"
wait "$send_pid" && fail "the cut transfer succeeded"
grep -qi 'resume\|cut\|connection' "$SCRATCH/cut.out" ||
    fail "the cut is not explained: $(cat "$SCRATCH/cut.out")"
virsh_b domuuid cut3 >/dev/null 2>&1 && fail "a cut transfer defined the domain"
out=$(on_a vmferry-send -v --connections 3 -i "$SCRATCH/s.vmf" hostb -- \
    --dir "$dest" --define --name cut3 2>&1) || fail "the resumed transfer failed: $out"
grep -q 'resuming' <<<"$out" || fail "the second run did not resume: $out"
qemu-img compare -q -f raw -F raw "$IMAGES_A/$vm.img" "$IMAGES_B/connections/cut3.img" ||
    fail "the resumed copy differs"
nothing_left "cut and resumed"
drop_b cut3

# 5. vmferry-migrate --connections.
out=$(on_a vmferry-migrate -v "$vm" hostb --rename mig3 --dest-dir "$dest" --connections 3 2>&1) ||
    fail "vmferry-migrate --connections 3 failed: $out"
grep -q 'sending over 3 connections' <<<"$out" || fail "migrate did not use 3 connections"
qemu-img compare -q -f raw -F raw "$IMAGES_A/$vm.img" "$IMAGES_B/connections/mig3.img" ||
    fail "the migrated copy differs"
nothing_left "migrate"
drop_b mig3
echo "ok: 4, 8 (tiny) and 2 (ssh) connections, a cut joiner resumed, migrate"
