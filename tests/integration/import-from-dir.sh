#!/bin/bash
# vmferry-import --from-dir (issue 17): a directory made by hand imports
# as a stream would.
#  - virsh dumpxml beside a raw disk and a qcow2 disk copied with
#    cp --sparse=always, and a qcow2 overlay whose base is beside it
#    (its header names the base's path on A): imported on host B, every
#    disk identical to the source (qemu-img compare), holes kept, the
#    domain's paths in B's images directory, the summary says no manifest
#    verified it;
#  - a vmferry tar unpacked with tar -xSf imports with --from-dir (its XML
#    is .vmferry/domain.xml);
#  - hostile directories are refused with a message saying why, nothing
#    defined, nothing written in B's images directory, the directory and a
#    canary outside it unchanged: a disk that is a symbolic link out, a
#    ".." in the XML's source, a qcow2 whose backing file is outside (an
#    absolute name not in the directory, "../", a protocol), a
#    FIFO (refused without blocking), a hard link, a missing disk (the
#    message names both paths), two *.xml.
. "$(dirname "$0")/functions.sh"
# ctest-labels: safety

vm=t-fdir
make_vm "$vm" raw 256M 0x5a@0+1M 0xa5@128M+64K 0x3c@255M+4K
data=$IMAGES_DIR/$vm.data.qcow2
tb_make_disk on_a "$data" qcow2 128M "" 0x77@0+128K 0x33@100M+1M ||
    fail "cannot make the qcow2 disk"
virsh_a -q attach-disk "$vm" "$data" vdb --subdriver qcow2 --config >/dev/null ||
    fail "cannot attach the qcow2 disk"
base=$IMAGES_DIR/$vm.base.qcow2 over=$IMAGES_DIR/$vm.over.qcow2
tb_make_disk on_a "$base" qcow2 64M "" 0x11@0+1M 0x22@60M+64K ||
    fail "cannot make the base"
tb_make_disk on_a "$over" qcow2 64M "$base" 0x44@1M+64K ||
    fail "cannot make the overlay"
virsh_a -q attach-disk "$vm" "$over" vdc --subdriver qcow2 --config >/dev/null ||
    fail "cannot attach the overlay"

drop_b() {
    virsh_b -q undefine "$1" >/dev/null 2>&1 || true
    on_b sh -c 'rm -f -- "$1/$2".*' sh "$IMAGES_DIR" "$1"
}
cleanup_add drop_b "$vm"
alloc_kib() { du -k "$1" | cut -f1; }

# The directory an admin makes.
d=$SCRATCH/by-hand
mkdir "$d"
virsh_a dumpxml --inactive "$vm" >"$d/$vm.xml"
for f in "$vm.img" "$vm.data.qcow2" "$vm.base.qcow2" "$vm.over.qcow2"; do
    cp --sparse=always "$IMAGES_A/$f" "$d/$f"
done
# the overlay still names its base by host A's path: found beside it

# same_disks WHAT: B's copies are A's disks, holes kept.
same_disks() {
    qemu-img compare -U -f raw -F raw "$IMAGES_A/$vm.img" "$IMAGES_B/$vm.img" ||
        fail "$1: the raw disk differs"
    qemu-img compare -U -f qcow2 -F qcow2 "$IMAGES_A/$vm.data.qcow2" \
        "$IMAGES_B/$vm.data.qcow2" || fail "$1: the qcow2 disk differs"
    on_a qemu-img compare -U -f qcow2 -F qcow2 "$over" "$IMAGES_B/$vm.over.qcow2" ||
        fail "$1: the overlay's guest view differs"
    local a
    a=$(alloc_kib "$IMAGES_B/$vm.img")
    echo "   $1: raw copy $a KiB allocated for 1.1 MiB of data in 256 MiB"
    ((a < 8192)) || fail "$1: holes lost ($a KiB)"
    local xml
    xml=$(virsh_b dumpxml --inactive "$vm")
    grep -q "<source file='$IMAGES_DIR/$vm.data.qcow2'/>" <<<"$xml" ||
        fail "$1: the qcow2 disk is not in B's images directory: $xml"
    grep -q "$SCRATCH" <<<"$xml" && fail "$1: the domain names the source directory: $xml"
    return 0
}

# 1. the directory made by hand.
out=$(on_b $VG vmferry-import --from-dir "$d" --dir "$IMAGES_DIR" --define 2>&1) ||
    fail "import --from-dir failed: $out"
echo "$out"
grep -q "no manifest: copied as found, not verified against a sender" <<<"$out" ||
    fail "the summary does not say there was no manifest: $out"
same_disks "by hand"
ls -a "$IMAGES_B" | grep -q "vmferry-" && fail "temporary files left: $(ls -a "$IMAGES_B")"
drop_b "$vm"

# 2. a vmferry tar unpacked with GNU tar.
on_a $VG vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/a.tar" ||
    fail "export --format=tar failed"
mkdir "$SCRATCH/unpacked"
tar -xSf "$SCRATCH/a.tar" -C "$SCRATCH/unpacked"
on_b $VG vmferry-import --from-dir "$SCRATCH/unpacked/$vm" --dir "$IMAGES_DIR" \
    --define || fail "import --from-dir of the unpacked tar failed"
same_disks "unpacked tar"
drop_b "$vm"
# the tar itself as --from-dir says what to do
out=$(on_b $VG vmferry-import --from-dir "$SCRATCH/a.tar" --dir "$IMAGES_DIR" 2>&1) &&
    fail "--from-dir of a file: imported"
grep -q "not a directory.*imports as FILE" <<<"$out" || fail "--from-dir of a file: unclear: $out"

# 3. hostile directories.
canary=$SCRATCH/canary.img
qemu-img create -q -f raw "$canary" 256M
canary_sum=$(sha256sum <"$canary")
images_before=$(ls -a "$IMAGES_B")
# hostile NAME WANT SETUP...: a fresh copy of the directory, changed by
# SETUP (run in it), is refused for WANT with nothing written.
hostile() {
    local name=$1 want=$2 h listing rc=0
    shift 2
    h=$SCRATCH/hostile-$name
    cp -r --sparse=always "$d" "$h"
    (cd "$h" && "$@") || fail "$name: setup failed"
    listing=$(ls -la "$h")
    out=$(on_b timeout 60 $VG vmferry-import --from-dir "$h" --dir "$IMAGES_DIR" \
        --define 2>&1) || rc=$?
    ((rc != 0)) || fail "$name: imported"
    ((rc != 124)) || fail "$name: the import hung"
    echo "$name: $out"
    grep -q -- "$want" <<<"$out" || fail "$name: not refused for '$want': $out"
    ! virsh_b domuuid "$vm" >/dev/null 2>&1 || fail "$name: $vm was defined"
    [[ $(ls -a "$IMAGES_B") == "$images_before" ]] ||
        fail "$name: B's images directory changed: $(ls -a "$IMAGES_B")"
    [[ $(ls -la "$h") == "$listing" ]] || fail "$name: the directory changed"
    [[ $(sha256sum <"$canary") == "$canary_sum" ]] || fail "$name: the canary changed"
    rm -rf "$h"
    report hostile "from-dir $name" refused
}
hostile symlink "a symbolic link" \
    sh -c "rm $vm.img && ln -s '$canary' $vm.img"
hostile dotdot 'a path with ".."' \
    sed -i "s|<source file='[^']*/$vm.img'/>|<source file='$IMAGES_DIR/../../$vm.img'/>|" "$vm.xml"
hostile backing-out "is outside the directory" \
    sh -c "rm $vm.data.qcow2 && qemu-img create -q -f qcow2 -b '$canary' -F raw $vm.data.qcow2"
hostile backing-dotdot "is outside the directory" \
    qemu-img rebase -u -b "../$vm.base.qcow2" -F qcow2 -f qcow2 "$vm.over.qcow2"
hostile backing-protocol "backing" \
    qemu-img rebase -u -b "nbd:127.0.0.1:1" -F raw -f qcow2 "$vm.over.qcow2"
hostile fifo "not a regular file" sh -c "rm $vm.img && mkfifo $vm.img"
hostile hardlink "links" sh -c "rm $vm.img && ln '$canary' $vm.img"
hostile missing "names $IMAGES_DIR/$vm.data.qcow2, and the directory has no .*/$vm.data.qcow2" \
    rm "$vm.data.qcow2"
hostile two-xml "more than one \*.xml" cp "$vm.xml" other.xml
hostile not-qcow2 "says qcow2, but it is not a qcow2 image" \
    sh -c "rm $vm.data.qcow2 && truncate -s 1M $vm.data.qcow2"
echo "$TEST_NAME: ok"
