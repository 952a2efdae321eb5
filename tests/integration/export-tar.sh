#!/bin/bash
# vmferry-export --format=tar: a domain with a sparse raw disk and a qcow2
# disk (and the shared UEFI VM, for its NVRAM) as .tar and .tar.zst.
# GNU tar (-xS) and bsdtar unpack them to files identical to the sources
# (qemu-img compare) that keep their holes (du); the unpacked XML defines
# on host B after the documented vmferry-rewrite --map-path; vmferry-info
# --verify passes, and fails on one flipped byte; the TPM VM's state comes
# back byte for byte, mode 0600; vmferry-import reads the
# archive directly (detected by content) and defines a domain on B whose
# disks are identical, from a file and through a pipe.  An allocated run
# of written zeros in the source (8 MiB) is a hole in the archive's
# sparse map: GNU tar, bsdtar, vmferry-import and its --format=qcow2
# conversion leave it unallocated (du, before and after).  A tar made by
# hand with GNU tar (the disks before the XML) imports, its disks
# identical, said to be unverified.
. "$(dirname "$0")/functions.sh"
requires bsdtar
requires zstd

vm=t-tar
make_vm "$vm" raw 1G 0x5a@0+1M 0xa5@512M+64K 0x3c@1020M+4K
dd if=/dev/zero of="$IMAGES_A/$vm.img" bs=1M seek=256 count=8 conv=notrunc \
    status=none || fail "cannot write the zero run"
data="$IMAGES_DIR/$vm.data.qcow2"
tb_make_disk on_a "$data" qcow2 256M "" 0x77@0+128K 0x33@100M+1M ||
    fail "cannot make the qcow2 disk"
virsh_a -q attach-disk "$vm" "$data" vdb --subdriver qcow2 --config >/dev/null ||
    fail "cannot attach the qcow2 disk"

# by name: .tar plain, .tar.zst compressed; the option wins over a name.
on_a $VG vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/a.tar"
on_a $VG vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/a.tar.zst" --threads 2
on_a $VG vmferry-export -c qemu:///system "$vm" --format=tar --compress=none \
    -o "$SCRATCH/named.vmf"
on_a vmferry-export -c qemu:///system vmf-uefi -o "$SCRATCH/uefi.tar.zst"
[[ $(head -c 4 "$SCRATCH/a.tar.zst" | od -An -tx1 | tr -d ' ') == 28b52ffd ]] ||
    fail "a.tar.zst is not zstd"
tar -tf "$SCRATCH/named.vmf" >/dev/null || fail "--format=tar did not win over .vmf"
listing=$(tar -tvf "$SCRATCH/a.tar")
echo "$listing"
grep -q "^-rw------- .* $vm/$vm.img$" <<<"$listing" || fail "disk entry missing or not 0600"
grep -q " $vm/.vmferry/manifest.json$" <<<"$listing" || fail "no manifest"
tsize=$(stat -c %s "$SCRATCH/a.tar")
echo "a.tar: $tsize bytes for 1.25 GiB of disks"
((tsize < 16 * 1048576)) || fail "the plain tar stores holes ($tsize bytes)"

alloc_kib() { du -k "$1" | cut -f1; }
# drop_b NAME: undefine NAME on host B, if it is there.
drop_b() { virsh_b -q undefine "$1" >/dev/null 2>&1 || true; }
src_raw=$IMAGES_A/$vm.img src_q=$IMAGES_A/$vm.data.qcow2

# unpack_check DIR: the unpacked disks are the sources, holes kept.
unpack_check() {
    local d=$1/$vm
    qemu-img compare -U -f raw -F raw "$src_raw" "$d/$vm.img" ||
        fail "$1: raw disk differs"
    qemu-img compare -U -f qcow2 -F qcow2 "$src_q" "$d/$vm.data.qcow2" ||
        fail "$1: qcow2 disk differs"
    cmp "$src_q" "$d/$vm.data.qcow2" || fail "$1: qcow2 file not byte-identical"
    local a b
    a=$(alloc_kib "$src_raw") b=$(alloc_kib "$d/$vm.img")
    echo "   $1: raw allocation $b KiB (source $a KiB, 8192 of it zeros)"
    ((b <= a - 8192 + 1024)) || fail "$1: holes or zeros kept: $b KiB for $a KiB"
    [[ $(stat -c %a "$d/$vm.img") == 600 ]] || fail "$1: mode not kept"
}
for how in gnu gnu-zst bsd bsd-zst; do
    out=$SCRATCH/x-$how
    mkdir "$out"
    case $how in
        gnu) tar -xSf "$SCRATCH/a.tar" -C "$out" ;;
        gnu-zst) tar --zstd -xSf "$SCRATCH/a.tar.zst" -C "$out" ;;
        bsd) bsdtar -xf "$SCRATCH/a.tar" -C "$out" ;;
        bsd-zst) bsdtar -xf "$SCRATCH/a.tar.zst" -C "$out" ;;
    esac
    unpack_check "$out"
done

# NVRAM of the UEFI VM, byte for byte.
mkdir "$SCRATCH/uefi"
tar --zstd -xSf "$SCRATCH/uefi.tar.zst" -C "$SCRATCH/uefi"
nv=$(virsh_a dumpxml vmf-uefi | sed -n 's:.*<nvram[^>]*>\(.*\)</nvram>.*:\1:p')
if [[ -n $nv ]]; then
    cmp "$VMFERRY_TESTBED_DIR/a/lib/${nv#/var/lib/libvirt/}" \
        "$SCRATCH/uefi/vmf-uefi/${nv##*/}" || fail "NVRAM differs"
    echo "   NVRAM identical"
fi

# TPM state of the TPM VM, byte for byte and mode 0600 (the entries
# are 0600, and GNU tar as root keeps the archive's mode).
if [[ ${TESTBED_TPM:-0} == 1 ]]; then
    on_a vmferry-export -c qemu:///system vmf-tpm -o "$SCRATCH/tpm.tar"
    mkdir "$SCRATCH/tpm"
    tar -xSf "$SCRATCH/tpm.tar" -C "$SCRATCH/tpm"
    state=$VMFERRY_TESTBED_DIR/a/lib/swtpm/$(virsh_a domuuid vmf-tpm)
    n=0
    while read -r f; do
        rel=${f#"$state"/}
        u=$SCRATCH/tpm/vmf-tpm/$rel
        [[ -f $u ]] || fail "TPM state file $rel not in the archive"
        cmp "$f" "$u" || fail "TPM state file $rel differs"
        [[ $(stat -c %a "$u") == 600 ]] || fail "TPM state file $rel: mode $(stat -c %a "$u")"
        n=$((n + 1))
    done < <(find "$state" -type f ! -name '.lock')
    ((n > 0)) || fail "vmf-tpm has no TPM state: test is void"
    echo "   TPM state: $n files identical, mode 0600"
else
    echo "   (no TPM guest on this bed: ${TESTBED_TPM_REASON:-swtpm unavailable})"
fi

# The documented one-line rewrite makes the unpacked XML definable.
unp=$SCRATCH/x-gnu/$vm
vmferry-rewrite --map-path "$IMAGES_DIR=$unp" --xml "$unp/.vmferry/domain.xml" \
    >"$SCRATCH/unpacked.xml"
cleanup_add drop_b "$vm"
virsh_b -q define "$SCRATCH/unpacked.xml" >/dev/null || fail "unpacked XML does not define"
blk=$(virsh_b domblklist "$vm")
grep -q " $unp/$vm.img$" <<<"$blk" || fail "defined domain does not use the unpacked disk: $blk"
virsh_b -q undefine "$vm" >/dev/null

# --verify passes, and a flipped byte in a disk's data fails it.
for f in a.tar a.tar.zst; do
    $VG vmferry-info --verify "$SCRATCH/$f" >"$SCRATCH/info.txt" ||
        fail "$f: info --verify failed"
    grep -q 'every checksum and digest verified' "$SCRATCH/info.txt" ||
        fail "$f: info did not verify"
done
cp "$SCRATCH/a.tar" "$SCRATCH/flip.tar"
python3 - "$SCRATCH/flip.tar" <<'EOF'
import sys
p = sys.argv[1]
with open(p, 'r+b') as f:
    b = f.read()
    at = b.index(b'\xa5' * 4096) + 100
    f.seek(at)
    f.write(b'\xa4')
EOF
vmferry-info --verify "$SCRATCH/flip.tar" 2>"$SCRATCH/err" &&
    fail "info --verify passed a flipped byte"
grep -q 'digest' "$SCRATCH/err" || fail "unclear error: $(cat "$SCRATCH/err")"

# Import on B, read as an archive by content (the name says nothing).
dest=/var/lib/libvirt/images/tar
dir_on_b "$dest"
cp "$SCRATCH/a.tar.zst" "$SCRATCH/archive.bin"
cleanup_add drop_b tar-b
on_b $VG vmferry-import --dir "$dest" --define --name tar-b "$SCRATCH/archive.bin"
blk=$(virsh_b domblklist tar-b)
echo "$blk"
qemu-img compare -U -f raw -F raw "$src_raw" "$IMAGES_B/tar/tar-b.img" ||
    fail "imported raw disk differs"
qemu-img compare -U "$src_q" "$IMAGES_B/tar/tar-b.data.qcow2" ||
    fail "imported qcow2 disk differs"
a=$(alloc_kib "$src_raw") b=$(alloc_kib "$IMAGES_B/tar/tar-b.img")
echo "   imported raw allocation $b KiB (source $a KiB, 8192 of it zeros)"
((b <= a - 8192 + 1024)) || fail "import: holes or zeros kept: $b KiB for $a KiB"
# Converted on arrival: the zero run stays unallocated in the qcow2.
on_b vmferry-import -q --dir "$dest" --name tar-q --format=qcow2 "$SCRATCH/a.tar" ||
    fail "import --format=qcow2 failed"
qemu-img compare -U -f raw -F qcow2 "$src_raw" "$IMAGES_B/tar/tar-q.img" ||
    fail "converted raw disk differs"
b=$(alloc_kib "$IMAGES_B/tar/tar-q.img")
echo "   converted qcow2 allocation $b KiB"
((b <= a - 8192 + 1024)) || fail "--format=qcow2: zeros allocated: $b KiB"

# A tar made by hand with GNU tar, its disks first, the XML renamed.
tar -C "$unp" -cSf "$SCRATCH/hand.tar" --transform "s,^.vmferry/domain,$vm," \
    "$vm.img" "$vm.data.qcow2" .vmferry/domain.xml
tar -tf "$SCRATCH/hand.tar" | tail -1 | grep -qx "$vm.xml" ||
    fail "hand.tar: the XML is not last: $(tar -tf "$SCRATCH/hand.tar")"
out=$(on_b vmferry-import --dir "$dest" --name tar-h "$SCRATCH/hand.tar" 2>&1) ||
    fail "import of a hand-made tar failed: $out"
echo "$out"
grep -q "not verified against a sender" <<<"$out" || fail "not said unverified"
qemu-img compare -U -f raw -F raw "$src_raw" "$IMAGES_B/tar/tar-h.img" ||
    fail "hand-made tar: raw disk differs"
qemu-img compare -U "$src_q" "$IMAGES_B/tar/tar-h.data.qcow2" ||
    fail "hand-made tar: qcow2 disk differs"
# Through a pipe as well, where nothing can be looked at twice.
on_b vmferry-import --dir "$dest" --name tar-c - <"$SCRATCH/a.tar" ||
    fail "import of a tar on stdin failed"
qemu-img compare -U -f raw -F raw "$src_raw" "$IMAGES_B/tar/tar-c.img" ||
    fail "stdin import: raw disk differs"
# Export into a pipe, import from it: the archive is never a file.
on_a vmferry-export -c qemu:///system "$vm" --format=tar |
    on_b vmferry-import --dir "$dest" --name tar-d - ||
    fail "export --format=tar | import failed"
qemu-img compare -U "$src_q" "$IMAGES_B/tar/tar-d.data.qcow2" ||
    fail "piped import: qcow2 disk differs"
echo "export-tar OK"
