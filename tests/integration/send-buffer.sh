#!/bin/bash
# vmferry-send --buffer over B's real sshd: a thread reads the stream
# ahead into a ring.  Through a pipe from vmferry-export, with a ring far
# smaller than a record (every read and write wraps around its end) and
# without one, the copy is identical and defined.  An input that stays
# open after the stream's end does not hold the send up, on success or
# after the remote failed; a failed read of the input is the error
# reported.  (vmferry-migrate's --buffer: migrate-vms.)
. "$(dirname "$0")/functions.sh"

requires qemu-img

vm=t-buffer
dest=/var/lib/libvirt/images/buffer
dir_on_b "$dest"

drop_b() {
    virsh_b -q undefine "$1" >/dev/null 2>&1 || true
    on_b rm -f "$dest/$1.img"
}
drop_all() {
    local d
    for d in buf-small buf-none buf-open; do
        drop_b "$d"
    done
}
drop_all
cleanup_add drop_all

# 40 MiB of data in three places, a fifth of it random.
make_vm "$vm" raw 128M 0x5a@0+16M 0xa5@64M+16M
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M seek=100 count=8 \
    conv=notrunc status=none
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/s.vmf"

# same_copy WHAT COPY: the copy (its files follow its name) is identical.
same_copy() {
    qemu-img compare -q -f raw -F raw "$IMAGES_A/$vm.img" "$IMAGES_B/buffer/$2.img" ||
        fail "$1: the copy differs"
    virsh_b domuuid "$2" >/dev/null || fail "$1: $2 not defined on B"
    echo "$1: identical and defined"
}

# 1. From vmferry-export through a pipe: a ring of 4093 bytes, and none.
for buffer in 4093 0; do
    copy=buf-small
    [[ $buffer == 0 ]] && copy=buf-none
    on_a bash -c 'vmferry-export -c qemu:///system "$1" |
                  vmferry-send --buffer="$2" hostb -- --dir "$3" --define --name "$4"' \
        sh "$vm" "$buffer" "$dest" "$copy" ||
        fail "export | send --buffer=$buffer failed"
    same_copy "--buffer=$buffer" "$copy"
    drop_b "$copy"
done

# 2. An input that stays open after the stream: a FIFO this shell holds
# open for writing, so it never reaches its end.  `timeout` only guards
# against a hang: the send must not wait for more input.
fifo=$SCRATCH/fifo
mkfifo "$fifo"
exec 3<>"$fifo"
cat "$SCRATCH/s.vmf" >&3 &
on_a timeout 120 vmferry-send -i "$fifo" hostb -- --dir "$dest" --define --name buf-open ||
    fail "a stream followed by an open input: send failed or hung (status $?)"
wait
same_copy "input left open" buf-open
drop_b buf-open

# The remote fails (no such directory) while the input is open and idle.
cat "$SCRATCH/s.vmf" >&3 &
rc=0
out=$(on_a timeout 120 vmferry-send -i "$fifo" hostb -- --dir /nonexistent/dir \
    --define --name buf-open 2>&1) || rc=$?
((rc != 0 && rc != 124)) || fail "the remote's failure: status $rc (124: it hung): $out"
grep -q '/nonexistent/dir' <<<"$out" || fail "the remote's failure is not reported: $out"
echo "remote failure with the input open: status $rc, reported"
exec 3>&-
wait

# 3. A read that fails is what is reported (not a cut stream).
rc=0
out=$(on_a vmferry-send -i "$SCRATCH" hostb -- --dir "$dest" --define 2>&1) || rc=$?
((rc != 0)) || fail "reading a directory succeeded"
grep -q "$SCRATCH: read: Is a directory" <<<"$out" || fail "the read error is not reported: $out"
echo "read error reported: $out"
echo "send --buffer OK"
