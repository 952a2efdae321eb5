#!/bin/bash
# vmferry-export of a shut-off domain whose disk another process writes
# (the copy could be inconsistent, as for a running domain):
#  - another running domain of the host has it as a disk, through a
#    symbolic link (libvirt's view, matched by what the path is): refused,
#    naming that domain and its disk;
#  - a QEMU outside libvirt (qemu-io) has it open read-write: refused by
#    QEMU's image lock, naming the process;
#  - another running domain reads it only (<readonly/>): exported;
#  - once the writer is gone: exported.
# Nothing is written when refused.
. "$(dirname "$0")/functions.sh"

requires qemu-io

vm=t-use
make_vm "$vm" raw 32M 0x5a@0+4M
disk=$IMAGES_DIR/$vm.img

# expect_refused WHAT...: the export fails, its message has every WHAT,
# and no stream or temporary file is left.
expect_refused() {
    local rc=0 out w
    out=$(on_a timeout 120 $VG vmferry-export -c qemu:///system "$vm" \
        -o "$SCRATCH/$vm.vmf" 2>&1) || rc=$?
    ((rc == 1)) || fail "status $rc, not 1: $out"
    for w in "$@"; do
        grep -qF -- "$w" <<<"$out" || fail "the message does not say '$w': $out"
    done
    [[ -z $(find "$SCRATCH" -name "*$vm.vmf*") ]] ||
        fail "left $(find "$SCRATCH" -name "*$vm.vmf*")"
    echo "refused: $out"
}

exports() {
    on_a $VG vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/$vm.vmf" ||
        fail "$1: the export failed"
    rm -f "$SCRATCH/$vm.vmf"
    echo "$1: exported"
}

# 1. A running domain with the disk as its vdb, through a symlink.
on_a ln -s "$disk" "$IMAGES_DIR/t-use-other-link.img"
cleanup_add on_a rm -f "$IMAGES_DIR/t-use-other-link.img"
make_vm t-use-other raw 16M
virsh_a -q attach-disk t-use-other "$IMAGES_DIR/t-use-other-link.img" vdb \
    --driver qemu --subdriver raw --targetbus virtio --config >/dev/null
virsh_a -q start t-use-other >/dev/null
wait_state a t-use-other running 60
expect_refused "disk vda ($disk) is in use by running domain t-use-other (its disk vdb)" \
    "shut t-use-other down first" "nothing was written"
virsh_a -q destroy t-use-other >/dev/null
wait_state a t-use-other "shut off" 60
exports "the other domain shut off"

# 2. QEMU outside libvirt: qemu-io holds the image open read-write (its
# commands come from a FIFO this shell keeps open).
mkfifo "$SCRATCH/qemu-io.in"
exec 3<>"$SCRATCH/qemu-io.in"
on_a sh -c 'echo $$ >"$1"; exec qemu-io -f raw "$2"' sh "$SCRATCH/qemu-io.pid" "$disk" \
    <&3 3>&- >"$SCRATCH/qemu-io.out" 2>&1 &
qio=$!
cleanup_add kill_qemu_io
kill_qemu_io() {
    [[ -s $SCRATCH/qemu-io.pid ]] && kill "$(cat "$SCRATCH/qemu-io.pid")" 2>/dev/null
    return 0
}
# It has the image open once it answers a command.
echo "read -P 0x5a 0 4k" >&3
for ((i = 0; i < 300; i++)); do
    grep -q "read 4096/4096 bytes" "$SCRATCH/qemu-io.out" && break
    kill -0 "$qio" 2>/dev/null || fail "qemu-io ended: $(cat "$SCRATCH/qemu-io.out")"
    sleep 0.1
done
grep -q "read 4096/4096 bytes" "$SCRATCH/qemu-io.out" || fail "qemu-io did not answer"
expect_refused "disk vda ($disk) is open for writing by qemu-io (pid " \
    "QEMU's write lock" "nothing was written"
echo "quit" >&3
wait "$qio" || true
exec 3>&-
exports "qemu-io gone"

# 3. A running domain that only reads it.
make_vm t-use-reader raw 16M
virsh_a -q attach-disk t-use-reader "$disk" vdb --driver qemu --subdriver raw \
    --targetbus virtio --mode readonly --config >/dev/null
virsh_a -q start t-use-reader >/dev/null
wait_state a t-use-reader running 60
exports "a running domain reading it"
echo "export of a disk in use: OK"
