#!/bin/bash
# A raw disk written straight onto a block device (issue 17): loop
# devices on host B, filled with 0xff first so that whatever is not
# written shows.
#  1. import --disk vda=LOOP: stopped in the middle of the write, no file
#     of the disk's size exists in the import directory (the device is
#     written, not a temporary file); then the domain is defined on the
#     device, which compares identical to the source, its hole ranges
#     read as zeros and the bytes beyond the disk keep their 0xff;
#  2. a run killed (SIGKILL) in the middle of the write: nothing is
#     defined, the state left behind names the device, and the next run
#     says the device holds an incomplete disk and writes it in full;
#  3. a failure in the middle of the write says the device was written
#     in part;
#  4. a too-small device is refused before any byte is written
#     (checksum before and after);
#  5. a qcow2 disk onto a device still goes through a verified file and
#     qemu-img (the converting path);
#  6. vmferry-migrate --dest-disk onto a loop device of host B.
. "$(dirname "$0")/functions.sh"
requires losetup
requires mkfifo
requires qemu-io

# loopdev SIZE PATTERN: LOOP, a loop device over a new scratch file full
# of byte PATTERN; detached at the end.
loopdev() {
    local img
    img=$(mktemp "$SCRATCH/dev.XXXXXX")
    qemu-img create -q -f raw "$img" "$1" || fail "cannot make $img"
    qemu-io -f raw -c "write -P $2 0 $1" "$img" >/dev/null || fail "cannot fill $img"
    LOOP=$(losetup -f --show "$img") || fail "losetup $img failed"
    cleanup_add losetup -d "$LOOP"
}
dev_view() {
    echo "json:{\"driver\":\"raw\",\"size\":$2,\"file\":{\"driver\":\"host_device\",\"filename\":\"$1\"}}"
}
drop_b() {
    virsh_b -q undefine "$1" >/dev/null 2>&1 || true
    on_b vmferry-import -q --abort="$1" --dir "$IMAGES_DIR" >/dev/null 2>&1 || true
}
# stopped POINT N CMD...: run CMD on B with the fault POINT set to stop
# the Nth time it is reached; returns once it stopped there, its pid in
# $PID, its job in $JOB.  The FIFO is opened read-write, so that an import
# that never gets there fails the test instead of hanging it.
stopped() {
    local point=$1 n=$2 at
    shift 2
    rm -f "$SCRATCH/notify"
    mkfifo "$SCRATCH/notify"
    exec 3<>"$SCRATCH/notify"
    on_b env VMFERRY_FAULT="$point:stop@$n" VMFERRY_FAULT_NOTIFY="$SCRATCH/notify" \
        "$@" >"$SCRATCH/out" 2>&1 &
    JOB=$!
    read -r -t 120 -u 3 at PID ||
        fail "$point: the import never reached it: $(cat "$SCRATCH/out")"
    exec 3<&-
    [[ $at == "$point" && $PID =~ ^[0-9]+$ ]] || fail "$point: stopped at '$at $PID'"
}

vm=t-dev
size=$((256 * 1048576))
make_vm "$vm" raw 256M 0x5a@0+1M 0xa5@128M+64K 0x3c@255M+4K
cleanup_add drop_b "$vm"
on_a $VG vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/raw.vmf" ||
    fail "export of $vm failed"
M=1048576
holes=(0x00@1M+127M 0x00@$((128 * M + 65536))+$((127 * M - 65536))
       0x00@$((255 * M + 4096))+$((M - 4096)))

# 1. written straight onto the device.
loopdev 300M 0xff
dev=$LOOP
stopped import-device-gap 2 vmferry-import --define --disk "vda=$dev" \
    --dir "$IMAGES_DIR" "$SCRATCH/raw.vmf"
big=$(find "$IMAGES_B" -maxdepth 1 -type f -size +1M -printf '%f %s\n')
kill -CONT "$PID"
wait "$JOB" || fail "import --disk vda=$dev failed: $(cat "$SCRATCH/out")"
[[ -z $big ]] || fail "a file of the disk's size was made during the write: $big"
cat "$SCRATCH/out"
grep -q "disk vda: written to $dev and read back as sent" "$SCRATCH/out" ||
    fail "not written straight to $dev: $(cat "$SCRATCH/out")"
xml=$(virsh_b dumpxml --inactive "$vm")
grep -q "<source dev='$dev'/>" <<<"$xml" || fail "not on $dev: $xml"
grep -q "<driver name='qemu' type='raw'/>" <<<"$xml" || fail "driver not raw: $xml"
qemu-img compare -U -f raw "$IMAGES_A/$vm.img" "$(dev_view "$dev" $size)" ||
    fail "$dev does not read as the source"
check_disk "" "$dev" raw "${holes[@]}" 0x5a@0+1M 0x3c@255M+4K ||
    fail "$dev: the holes are not zeroed"
check_disk "" "$dev" raw 0xff@256M+44M || fail "$dev: written beyond the disk"
ls -a "$IMAGES_B" | grep -q "vmferry-" && fail "temporary files left: $(ls -a "$IMAGES_B")"
drop_b "$vm"

# 2. SIGKILL in the middle of the write.
loopdev 300M 0xff
dev=$LOOP
stopped import-device-gap 2 vmferry-import --define --disk "vda=$dev" \
    --dir "$IMAGES_DIR" "$SCRATCH/raw.vmf"
kill -KILL "$PID"
wait "$JOB" && fail "the killed import succeeded"
! virsh_b domuuid "$vm" >/dev/null 2>&1 || fail "$vm defined after the kill"
state=$IMAGES_B/.vmferry-resume-$vm.json
grep -q "\"device\": *\"$dev\"" "$state" ||
    fail "what the kill left does not name $dev: $(on_b ls -a "$IMAGES_DIR")"
out=$(on_b $VG vmferry-import --define --disk "vda=$dev" --dir "$IMAGES_DIR" \
    "$SCRATCH/raw.vmf" 2>&1) || fail "the run after the kill failed: $out"
echo "$out"
grep -q "onto $dev: the device holds an incomplete disk; it is written again in full" <<<"$out" ||
    fail "the run after the kill does not say what the kill left on $dev: $out"
qemu-img compare -U -f raw "$IMAGES_A/$vm.img" "$(dev_view "$dev" $size)" ||
    fail "$dev does not read as the source after the re-run"
check_disk "" "$dev" raw "${holes[@]}" || fail "$dev: the holes are not zeroed"
drop_b "$vm"

# 3. a failure in the middle of the write names the device.
if out=$(on_b env VMFERRY_FAULT=import-device-gap:fail@2 vmferry-import --define \
    --disk "vda=$dev" --dir "$IMAGES_DIR" "$SCRATCH/raw.vmf" 2>&1); then
    fail "the failed import succeeded"
fi
echo "$out"
grep -q "disk vda: $dev was written in part: what it held before is overwritten" <<<"$out" ||
    fail "the failure does not name $dev: $out"
! virsh_b domuuid "$vm" >/dev/null 2>&1 || fail "$vm defined after the failure"

# 4. too small: refused before any byte.
loopdev 128M 0xff
small=$LOOP
before=$(sha256sum <"$small")
if out=$(on_b $VG vmferry-import --define --disk "vda=$small" --dir "$IMAGES_DIR" \
    "$SCRATCH/raw.vmf" 2>&1); then
    fail "a too-small device was accepted"
fi
echo "$out"
grep -q "is too small.*nothing was written to it" <<<"$out" || fail "too small: unclear: $out"
[[ $before == "$(sha256sum <"$small")" ]] || fail "too small: $small was written"
! virsh_b domuuid "$vm" >/dev/null 2>&1 || fail "too small: $vm was defined"

# 5. a qcow2 disk onto a device: received, verified, converted, compared.
vq=t-devq
make_vm "$vq" qcow2 64M 0x77@0+1M 0x78@60M+1M
cleanup_add drop_b "$vq"
on_a $VG vmferry-export -c qemu:///system "$vq" -o "$SCRATCH/q.vmf" ||
    fail "export of $vq failed"
loopdev 64M 0xff
dev=$LOOP
out=$(on_b $VG vmferry-import --define --disk "vda=$dev" --dir "$IMAGES_DIR" \
    "$SCRATCH/q.vmf" 2>&1) || fail "qcow2 onto $dev failed: $out"
grep -q "disk vda: written to $dev, compared with the verified copy" <<<"$out" ||
    fail "qcow2 onto $dev: not through the conversion: $out"
qemu-img compare -U -f qcow2 "$IMAGES_A/$vq.qcow2" "$(dev_view "$dev" $((64 * 1048576)))" ||
    fail "qcow2 onto $dev: differs"
drop_b "$vq"

# 6. vmferry-migrate --dest-disk.
loopdev 300M 0xff
dev=$LOOP
on_a $VG vmferry-migrate "$vm" hostb --dest-disk "vda=$dev" ||
    fail "migrate --dest-disk vda=$dev failed"
grep -q "<source dev='$dev'/>" <<<"$(virsh_b dumpxml --inactive "$vm")" ||
    fail "migrate: not on $dev"
qemu-img compare -U -f raw "$IMAGES_A/$vm.img" "$(dev_view "$dev" $size)" ||
    fail "migrate: $dev does not read as the source"
check_disk "" "$dev" raw "${holes[@]}" || fail "migrate: $dev: the holes are not zeroed"
drop_b "$vm"
echo "$TEST_NAME: ok"
