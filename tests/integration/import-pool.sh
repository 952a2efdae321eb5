#!/bin/bash
# Disks into volumes of a block storage pool (issue 17): a libvirt disk
# pool (GPT) over a loop device on host B, the disk's bytes at 0xff
# first so that whatever is not written shows.
#  1. import --pool: a partition of the disk's size is created through
#     libvirt, the disk written onto it and defined as that block
#     device; it compares identical to the source, its holes read as
#     zeros; the same import again finds it there;
#  2. a pool too small for the disk is refused before any byte, with no
#     volume made, and vmferry-check says so first (and, with
#     --dest-disk, of a device a domain uses or a volume too small);
#  3. killed (SIGKILL) once the volume is made: the state names it, and
#     the re-run deletes it and imports; killed again, --abort deletes
#     it, and so does a failure; a volume the import did not make is
#     never touched; killed
#     after naming the volume but before making it, the re-run imports;
#  4. a logical pool on a host without device-mapper: the import says
#     what LVM needs, nothing is written;
#  5. vmferry-migrate --dest-pool into the disk pool.
. "$(dirname "$0")/functions.sh"
requires losetup
requires parted --version
requires qemu-io

# diskpool NAME SIZE: a disk pool NAME over a new loop device ($LOOP) of
# SIZE, its bytes 0xff; undefined and detached at the end.
diskpool() {
    local img
    img=$(mktemp "$SCRATCH/dev.XXXXXX")
    qemu-img create -q -f raw "$img" "$2" || fail "cannot make $img"
    qemu-io -f raw -c "write -P 0xff 0 $2" "$img" >/dev/null || fail "cannot fill $img"
    LOOP=$(losetup -f --show -P "$img") || fail "losetup $img failed"
    cleanup_add losetup -d "$LOOP"
    cat >"$SCRATCH/$1.xml" <<EOF
<pool type='disk'><name>$1</name>
  <source><device path='$LOOP'/><format type='gpt'/></source>
  <target><path>/dev</path></target></pool>
EOF
    virsh_b -q pool-define "$SCRATCH/$1.xml" >/dev/null || fail "pool-define $1"
    cleanup_add virsh_b -q pool-undefine "$1"
    virsh_b -q pool-build "$1" --overwrite >/dev/null || fail "pool-build $1"
    virsh_b -q pool-start "$1" >/dev/null || fail "pool-start $1"
    cleanup_add virsh_b -q pool-destroy "$1"
}
vols() { virsh_b -q vol-list "$1" | awk '{print $1}' | sort | tr '\n' ' '; }
drop_b() {
    virsh_b -q undefine "$1" >/dev/null 2>&1 || true
    on_b vmferry-import -q --abort="$1" --dir "$IMAGES_DIR" >/dev/null 2>&1 || true
}
dev_view() {
    echo "json:{\"driver\":\"raw\",\"size\":$2,\"file\":{\"driver\":\"host_device\",\"filename\":\"$1\"}}"
}

vm=t-pool
size=$((64 * 1048576))
make_vm "$vm" raw 64M 0x5a@0+1M 0xa5@32M+64K 0x3c@63M+4K
cleanup_add drop_b "$vm"
on_a $VG vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/raw.vmf" ||
    fail "export of $vm failed"
holes=(0x00@1M+31M 0x00@$((32 * 1048576 + 65536))+$((31 * 1048576 - 65536)))

# 1. into a partition made for it.
diskpool vmfdisk 100M
pool_loop=$LOOP
out=$(on_b $VG vmferry-import --define --pool vmfdisk "$SCRATCH/raw.vmf" 2>&1) ||
    fail "import --pool vmfdisk failed: $out"
echo "$out"
vol=$(basename "$pool_loop")p1
[[ $(vols vmfdisk) == "$vol " ]] || fail "pool vmfdisk holds '$(vols vmfdisk)', not $vol"
dev=$(virsh_b vol-path --pool vmfdisk "$vol")
grep -q "disk vda: written to $dev and read back as sent" <<<"$out" ||
    fail "not written straight onto $dev: $out"
xml=$(virsh_b dumpxml --inactive "$vm")
grep -q "<disk type='block' device='disk'>" <<<"$xml" || fail "not a block disk: $xml"
grep -q "<source dev='$dev'/>" <<<"$xml" || fail "not on $dev: $xml"
qemu-img compare -U -f raw "$IMAGES_A/$vm.img" "$(dev_view "$dev" $size)" ||
    fail "$dev does not read as the source"
check_disk "" "$dev" raw "${holes[@]}" || fail "$dev: the holes are not zeroed"
[[ -z $(find "$IMAGES_B" -maxdepth 1 -name '*vmferry*' -print -quit) ]] ||
    fail "temporary files left: $(ls -a "$IMAGES_B")"
# the same stream again: already there (the pool has no room for a
# second copy, and needs none).
out=$(on_b $VG vmferry-import --define --pool vmfdisk "$SCRATCH/raw.vmf" 2>&1) ||
    fail "the same import again failed: $out"
grep -q "domain $vm is already on this host" <<<"$out" ||
    fail "the same import again: not found already there: $out"
[[ $(vols vmfdisk) == "$vol " ]] || fail "the same import again: '$(vols vmfdisk)'"
# vmferry-check --dest-disk: a device a domain uses is refused.
out=$($VG vmferry-check -c "$URI_B" --dest-disk "vda=$dev" "$SCRATCH/raw.vmf" 2>&1) &&
    fail "vmferry-check passed a device that $vm uses: $out"
grep -q "error: device: $dev: disk vda: $dev is used by domain $vm on the destination" <<<"$out" ||
    fail "vmferry-check --dest-disk: no finding for a used device: $out"
drop_b "$vm"
virsh_b -q vol-delete --pool vmfdisk "$vol" >/dev/null 2>&1 ||
    on_b parted --script "$pool_loop" rm 1 || fail "cannot empty vmfdisk"
virsh_b -q pool-refresh vmfdisk >/dev/null

# 2. too small: refused by the check and by the import, before any byte.
diskpool vmfsmall 40M
small=$LOOP
before=$(sha256sum <"$small")
out=$($VG vmferry-check --json -c "$URI_B" --dest-pool vmfsmall "$SCRATCH/raw.vmf" 2>&1) &&
    fail "vmferry-check passed a too-small pool: $out"
echo "$out"
space=$(grep -A1 '"check": "space"' <<<"$out" || true)
grep -q '"object": "pool vmfsmall (disk)"' <<<"$space" ||
    fail "vmferry-check: no finding for the too-small pool: $out"
grep -q '"need_bytes": *67108864' <<<"$out" ||
    fail "vmferry-check: the disk's size is not what the pool must hold: $out"
out=$(on_b $VG vmferry-import --define --pool vmfsmall "$SCRATCH/raw.vmf" 2>&1) &&
    fail "a too-small pool was accepted: $out"
echo "$out"
grep -q "storage pool vmfsmall (disk): not enough free space: the disks need 64.0 MiB" <<<"$out" ||
    fail "too small: unclear: $out"
[[ -z $(vols vmfsmall) ]] || fail "too small: a volume was made: $(vols vmfsmall)"
[[ $before == "$(sha256sum <"$small")" ]] || fail "too small: $small was written"
! virsh_b domuuid "$vm" >/dev/null 2>&1 || fail "too small: $vm was defined"

# 3. killed once the volume is made: the re-run deletes it, so does
#    --abort; a volume of another's is left alone.
virsh_b -q vol-create-as vmfdisk "$(basename "$pool_loop")p1" 8M >/dev/null ||
    fail "cannot make another's volume"
theirs="$(basename "$pool_loop")p1"
# vmferry-check --dest-disk: a pool's volume smaller than the disk.
out=$($VG vmferry-check --json -c "$URI_B" --dest-disk \
    "vda=$(virsh_b vol-path --pool vmfdisk "$theirs")" "$SCRATCH/raw.vmf" 2>&1) &&
    fail "vmferry-check passed an 8 MiB volume for a 64 MiB disk: $out"
space=$(grep -A1 '"check": "space"' <<<"$out" || true)
grep -q "\"object\": \"/dev/$theirs\"" <<<"$space" ||
    fail "vmferry-check --dest-disk: no finding for a too-small volume: $out"
on_b env VMFERRY_FAULT=import-volume-made vmferry-import --define --pool vmfdisk \
    "$SCRATCH/raw.vmf" >"$SCRATCH/out" 2>&1 && fail "the killed import succeeded"
mine="$(basename "$pool_loop")p2"
[[ $(vols vmfdisk) == "$theirs $mine " ]] ||
    fail "after the kill: '$(vols vmfdisk)', not '$theirs $mine '"
grep -q "\"volume\": *\"vmfdisk/$mine\"" "$IMAGES_B/.vmferry-resume-$vm.json" ||
    fail "the state does not name vmfdisk/$mine"
out=$(on_b $VG vmferry-import --define --pool vmfdisk "$SCRATCH/raw.vmf" 2>&1) ||
    fail "the run after the kill failed: $out"
echo "$out"
grep -q "volume vmfdisk/$mine, created for $vm.img by an import that did not finish, deleted" <<<"$out" ||
    fail "the re-run does not say it deleted $mine: $out"
[[ $(vols vmfdisk) == "$theirs $mine " ]] ||
    fail "after the re-run: '$(vols vmfdisk)', not '$theirs $mine '"
qemu-img compare -U -f raw "$IMAGES_A/$vm.img" \
    "$(dev_view "$(virsh_b vol-path --pool vmfdisk "$mine")" $size)" ||
    fail "after the re-run: $mine does not read as the source"
report fault "import-pool kill at import-volume-made, re-run" survived
drop_b "$vm"
on_b parted --script "$pool_loop" rm 2 || fail "cannot remove $mine"
virsh_b -q pool-refresh vmfdisk >/dev/null
on_b env VMFERRY_FAULT=import-volume-made vmferry-import --define --pool vmfdisk \
    "$SCRATCH/raw.vmf" >"$SCRATCH/out" 2>&1 && fail "the killed import succeeded"
[[ $(vols vmfdisk) == "$theirs $mine " ]] || fail "no volume after the second kill"
out=$(on_b $VG vmferry-import --abort="$vm" --pool vmfdisk 2>&1) ||
    fail "--abort failed: $out"
[[ $(vols vmfdisk) == "$theirs " ]] ||
    fail "after --abort: '$(vols vmfdisk)', not '$theirs '"
[[ ! -e $IMAGES_B/.vmferry-resume-$vm.json ]] || fail "--abort left the state"
report fault "import-pool kill at import-volume-made, --abort" survived
# a failure once the volume is made: the import deletes it itself.
out=$(on_b env VMFERRY_FAULT=import-volume-made:fail vmferry-import --define \
    --pool vmfdisk "$SCRATCH/raw.vmf" 2>&1) && fail "the failed import succeeded"
grep -q "volume vmfdisk/$mine, created for $vm.img .*, deleted" <<<"$out" ||
    fail "the failure does not say it deleted $mine: $out"
[[ $(vols vmfdisk) == "$theirs " ]] ||
    fail "after the failure: '$(vols vmfdisk)', not '$theirs '"
on_b parted --script "$pool_loop" rm 1 || fail "cannot remove $theirs"
virsh_b -q pool-refresh vmfdisk >/dev/null
# killed after naming the volume, before making it: nothing to delete.
on_b env VMFERRY_FAULT=import-volume-named vmferry-import --define --pool vmfdisk \
    "$SCRATCH/raw.vmf" >"$SCRATCH/out" 2>&1 && fail "the killed import succeeded"
grep -q '"volume_made": *false' "$IMAGES_B/.vmferry-resume-$vm.json" ||
    fail "the state does not name the volume as not made"
[[ -z $(vols vmfdisk) ]] || fail "a volume before the create: $(vols vmfdisk)"
out=$(on_b $VG vmferry-import --define --pool vmfdisk "$SCRATCH/raw.vmf" 2>&1) ||
    fail "the run after the kill before the create failed: $out"
[[ $(vols vmfdisk) == "$(basename "$pool_loop")p1 " ]] ||
    fail "after the kill before the create: '$(vols vmfdisk)'"
report fault "import-pool kill at import-volume-named, re-run" survived
drop_b "$vm"
on_b parted --script "$pool_loop" rm 1 || fail "cannot empty vmfdisk"
virsh_b -q pool-refresh vmfdisk >/dev/null

# 4. a logical pool where the kernel has no device-mapper.
if [[ ! -e /dev/mapper/control ]] || ! : 2>/dev/null </dev/mapper/control; then
    virsh_b -q pool-define-as vmflvm logical --source-name vmfvg \
        --target /dev/vmfvg >/dev/null || fail "pool-define-as vmflvm"
    cleanup_add virsh_b -q pool-undefine vmflvm
    out=$(on_b $VG vmferry-import --define --pool vmflvm "$SCRATCH/raw.vmf" 2>&1) &&
        fail "an unusable logical pool was accepted: $out"
    echo "$out"
    grep -q "storage pool vmflvm (logical) is not active, and cannot be on this host: it has no device-mapper" <<<"$out" ||
        fail "logical: does not say what is missing: $out"
    grep -q "the lvm2 package, device-mapper in the kernel" <<<"$out" ||
        fail "logical: does not say what LVM needs: $out"
fi

# 5. vmferry-migrate --dest-pool.
on_a $VG vmferry-migrate "$vm" hostb --dest-pool vmfdisk ||
    fail "migrate --dest-pool vmfdisk failed"
vol=$(basename "$pool_loop")p1
dev=$(virsh_b vol-path --pool vmfdisk "$vol")
grep -q "<source dev='$dev'/>" <<<"$(virsh_b dumpxml --inactive "$vm")" ||
    fail "migrate: not on $dev"
qemu-img compare -U -f raw "$IMAGES_A/$vm.img" "$(dev_view "$dev" $size)" ||
    fail "migrate: $dev does not read as the source"
drop_b "$vm"
on_b parted --script "$pool_loop" rm 1 || true
echo "$TEST_NAME: ok"
