#!/bin/bash
# Formats on arrival and block-device destinations (issue 17), host A to
# host B through a stream file:
#  - a raw disk imported --format=qcow2 lands as a qcow2 file that
#    qemu-img compare finds identical to the source, holes kept, and the
#    domain's driver says qcow2;
#  - a qcow2 chain (overlay on a base) imported --flatten --format=raw is
#    one raw file, identical to the source's guest view, holes kept, no
#    <backingStore>, the base not placed;
#  - --disk vda=LOOP writes the disk onto a loop device that held
#    garbage: the domain is defined with <disk type='block'> on it and the
#    device reads as the source (holes zeroed);
#  - a too-small loop device, a mounted one, a regular file and a target
#    the stream lacks are refused before anything is written (the
#    devices' checksums unchanged) and nothing is defined.
. "$(dirname "$0")/functions.sh"
requires losetup
requires mkfs.ext4

alloc_kib() { on_b du -k "$1" | cut -f1; }
drop_b() {
    virsh_b -q undefine "$1" >/dev/null 2>&1 || true
    on_b vmferry-import -q --abort="$1" --dir "$IMAGES_DIR" >/dev/null 2>&1 || true
    on_b sh -c 'rm -f -- "$1/$2".* "$1/$2-base".*' sh "$IMAGES_DIR" "$1"
}
# loopdev SIZE PATTERN: LOOP, a loop device over a new scratch file full
# of byte PATTERN (so that what is not written shows); detached at the end.
loopdev() {
    local img
    img=$(mktemp "$SCRATCH/dev.XXXXXX")
    qemu-img create -q -f raw "$img" "$1" || fail "cannot make $img"
    qemu-io -f raw -c "write -P $2 0 $1" "$img" >/dev/null || fail "cannot fill $img"
    LOOP=$(losetup -f --show "$img") || fail "losetup $img failed"
    cleanup_add losetup -d "$LOOP"
}
# dev_view DEV SIZE: the first SIZE bytes of DEV as a qemu-img file name.
dev_view() {
    echo "json:{\"driver\":\"raw\",\"size\":$2,\"file\":{\"driver\":\"host_device\",\"filename\":\"$1\"}}"
}

# 1. raw -> qcow2.
vm=t-fmt
make_vm "$vm" raw 256M 0x5a@0+1M 0xa5@128M+64K 0x3c@255M+4K
cleanup_add drop_b "$vm"
on_a $VG vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/raw.vmf" ||
    fail "export of $vm failed"
on_b $VG vmferry-import --define --format=qcow2 --dir "$IMAGES_DIR" \
    "$SCRATCH/raw.vmf" || fail "import --format=qcow2 failed"
copy=$IMAGES_DIR/$vm.img
on_b qemu-img info --output=json -f qcow2 "$copy" | grep -q '"format": "qcow2"' ||
    fail "$copy is not qcow2"
qemu-img compare -U -f raw -F qcow2 "$IMAGES_A/$vm.img" "$IMAGES_B/$vm.img" ||
    fail "raw -> qcow2: the copy differs from the source"
a=$(alloc_kib "$copy")
echo "qcow2 copy: $a KiB allocated for 1.1 MiB of data in 256 MiB"
((a < 8192)) || fail "raw -> qcow2: holes lost ($a KiB)"
xml=$(virsh_b dumpxml --inactive "$vm")
grep -q "<driver name='qemu' type='qcow2'/>" <<<"$xml" ||
    fail "the domain's driver does not say qcow2: $xml"
drop_b "$vm"

# 2. a qcow2 chain -> one raw file.
vm=t-chain
base=$IMAGES_DIR/$vm-base.qcow2
tb_make_disk on_a "$base" qcow2 256M "" 0x11@0+2M 0x22@200M+1M ||
    fail "cannot make the base"
cleanup_add on_a rm -f "$base"
make_vm "$vm" qcow2 256M
on_a rm -f "$IMAGES_DIR/$vm.qcow2"
tb_make_disk on_a "$IMAGES_DIR/$vm.qcow2" qcow2 256M "$base" 0x33@1M+64K \
    0x44@100M+1M || fail "cannot make the overlay"
cleanup_add drop_b "$vm"
on_a $VG vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/chain.vmf" ||
    fail "export of $vm failed"
on_b $VG vmferry-import --define --flatten --format=raw --dir "$IMAGES_DIR" \
    "$SCRATCH/chain.vmf" || fail "import --flatten --format=raw failed"
copy=$IMAGES_DIR/$vm.qcow2
on_b qemu-img info --output=json -f raw "$copy" | grep -q '"format": "raw"' ||
    fail "$copy is not raw"
# on A: the overlay names its base by A's path
on_a qemu-img compare -U -f qcow2 -F raw "$IMAGES_DIR/$vm.qcow2" "$IMAGES_B/$vm.qcow2" ||
    fail "flatten: the copy differs from the source's guest view"
[[ ! -e $IMAGES_B/$vm-base.qcow2 ]] || fail "flatten: the base was placed too"
a=$(alloc_kib "$copy")
echo "flattened raw copy: $a KiB allocated"
((a < 8192)) || fail "flatten: holes lost ($a KiB)"
xml=$(virsh_b dumpxml --inactive "$vm")
grep -q "<driver name='qemu' type='raw'/>" <<<"$xml" ||
    fail "the domain's driver does not say raw: $xml"
! grep -q "<backingStore type='file'" <<<"$xml" ||
    fail "the flattened disk keeps a backing store: $xml"
ls -a "$IMAGES_B" | grep -q "vmferry-" && fail "temporary files left: $(ls -a "$IMAGES_B")"
drop_b "$vm"

# 2b. through vmferry-migrate, which passes the options on: --flatten
# alone keeps the format (qcow2), one file.  With --disk-bus the disk
# arrives as sda: the import finds it by its path, not the stream's vda.
on_a $VG vmferry-migrate -q "$vm" hostb --flatten --disk-bus virtio=scsi ||
    fail "migrate --flatten --disk-bus failed"
on_a qemu-img compare -U -f qcow2 -F qcow2 "$IMAGES_DIR/$vm.qcow2" "$IMAGES_B/$vm.qcow2" ||
    fail "migrate --flatten: the copy differs from the source's guest view"
[[ ! -e $IMAGES_B/$vm-base.qcow2 ]] || fail "migrate --flatten: the base was placed"
on_b qemu-img info -f qcow2 "$IMAGES_DIR/$vm.qcow2" | grep -q "backing file" &&
    fail "migrate --flatten: the copy still has a backing file"
xml=$(virsh_b dumpxml --inactive "$vm")
grep -q "<driver name='qemu' type='qcow2'/>" <<<"$xml" ||
    fail "migrate --flatten: the driver does not say qcow2: $xml"
grep -q "<target dev='sda' bus='scsi'/>" <<<"$xml" ||
    fail "migrate --flatten --disk-bus: the disk is not sda on scsi: $xml"
! grep -q "<backingStore type='file'" <<<"$xml" ||
    fail "migrate --flatten --disk-bus: the disk keeps a backing store: $xml"
drop_b "$vm"

# 3. onto a loop device that held 0xee everywhere.
vm=t-fmt
size=$((256 * 1048576))
loopdev 300M 0xee
dev=$LOOP
on_b $VG vmferry-import --define --disk "vda=$dev" --dir "$IMAGES_DIR" \
    "$SCRATCH/raw.vmf" || fail "import --disk vda=$dev failed"
xml=$(virsh_b dumpxml --inactive "$vm")
grep -q "<disk type='block' device='disk'>" <<<"$xml" ||
    fail "not a block disk: $xml"
grep -q "<source dev='$dev'/>" <<<"$xml" || fail "not on $dev: $xml"
grep -q "<driver name='qemu' type='raw'/>" <<<"$xml" || fail "driver not raw: $xml"
qemu-img compare -U -f raw "$IMAGES_A/$vm.img" "$(dev_view "$dev" $size)" ||
    fail "$dev does not read as the source"
[[ ! -e $IMAGES_B/$vm.img ]] || fail "a file was placed besides the device"
ls -a "$IMAGES_B" | grep -q "vmferry-" && fail "temporary files left: $(ls -a "$IMAGES_B")"
drop_b "$vm"

# 3b. killed after the conversion (before and after the state names the
# converted file): nothing defined; the next run imports it in full and
# leaves no temporary file, and so does --abort.
leftovers() { ls -a "$IMAGES_B" | grep "vmferry-" || true; }
for p in import-converted import-convert-recorded; do
    for next in again abort; do
        rc=0
        on_b env VMFERRY_FAULT="$p" vmferry-import --define --format=qcow2 \
            --dir "$IMAGES_DIR" "$SCRATCH/raw.vmf" >/dev/null 2>&1 || rc=$?
        ((rc == 137)) || fail "$p: the import was not killed there (status $rc)"
        ! virsh_b domuuid "$vm" >/dev/null 2>&1 || fail "$p: $vm defined after the kill"
        if [[ $next == abort ]]; then
            on_b vmferry-import --abort="$vm" --dir "$IMAGES_DIR" ||
                fail "$p: --abort failed"
            [[ -z $(leftovers) ]] || fail "$p: --abort left $(leftovers)"
        fi
        on_b vmferry-import --define --format=qcow2 --dir "$IMAGES_DIR" \
            "$SCRATCH/raw.vmf" || fail "$p: the run after the kill failed"
        qemu-img compare -U -f raw -F qcow2 "$IMAGES_A/$vm.img" "$IMAGES_B/$vm.img" ||
            fail "$p: the copy after the kill differs"
        [[ -z $(leftovers) ]] || fail "$p, $next: left $(leftovers)"
        drop_b "$vm"
    done
done

# 4. refusals: nothing written, nothing defined.
loopdev 128M 0xee
small=$LOOP
loopdev 300M 0x00
mounted=$LOOP
# read-only and initialised up front: the kernel writes nothing to it
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$mounted" ||
    fail "mkfs on $mounted failed"
mkdir -p "$SCRATCH/mnt"
on_b mount -o ro "$mounted" "$SCRATCH/mnt" || fail "cannot mount $mounted on B"
cleanup_add on_b umount "$SCRATCH/mnt"
plainfile=$SCRATCH/plain.img
truncate -s 300M "$plainfile"
refused() {
    local what=$1 dev=$2 want=$3 before after out
    shift 3
    before=$(sha256sum <"$dev")
    if out=$(on_b $VG vmferry-import --define "$@" --dir "$IMAGES_DIR" \
        "$SCRATCH/raw.vmf" 2>&1); then
        fail "$what: imported"
    fi
    echo "$what: $out"
    grep -q -- "$want" <<<"$out" || fail "$what: not refused for '$want': $out"
    after=$(sha256sum <"$dev")
    [[ $before == "$after" ]] || fail "$what: $dev was written"
    ! virsh_b domuuid "$vm" >/dev/null 2>&1 || fail "$what: $vm was defined"
}
refused "too small" "$small" "too small" --disk "vda=$small"
refused "mounted" "$mounted" "mounted or in use" --disk "vda=$mounted"
refused "a regular file" "$plainfile" "not a block device" --disk "vda=$plainfile"
refused "no such disk" "$small" "no disk of this target" --disk "vdz=$small"

# 5. a disk pool defined but not started (nothing touches the device): the
# import says so before anything is written.
virsh_b -q pool-define-as t-diskpool disk --source-dev "$small" --target /dev \
    >/dev/null || fail "cannot define a disk pool on B"
cleanup_add virsh_b -q pool-undefine t-diskpool
before=$(sha256sum <"$small")
if out=$(on_b $VG vmferry-import --define --pool t-diskpool "$SCRATCH/raw.vmf" 2>&1); then
    fail "--pool of type disk, not started: imported"
fi
echo "disk pool: $out"
grep -q "storage pool t-diskpool (disk) is not active (virsh pool-start t-diskpool" <<<"$out" ||
    fail "--pool of type disk: unclear: $out"
[[ $before == "$(sha256sum <"$small")" ]] || fail "disk pool: $small was written"
echo "$TEST_NAME: ok"
