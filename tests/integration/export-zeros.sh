#!/bin/bash
# A 2 GiB disk filled with written zeros (fully allocated on the source)
# costs less than 1 MiB of stream and lands unallocated; a stream written
# with -o verifies with vmferry-info, and -o never overwrites a file.
. "$(dirname "$0")/functions.sh"

make_vm t-zeros raw 2G 0x00@0+2G 0x5a@1G+64K
src_alloc=$(du -k "$IMAGES_A/t-zeros.img" | cut -f1)
((src_alloc > 2000000)) || fail "the source is not allocated ($src_alloc KiB): test is void"

on_a $VG vmferry-export -c qemu:///system t-zeros -o "$SCRATCH/zeros.vmf"
size=$(stat -c %s "$SCRATCH/zeros.vmf")
echo "stream: $size bytes for 2 GiB of written zeros"
((size < 1048576)) || fail "stream is $size bytes, not under 1 MiB"

$VG vmferry-info --verify "$SCRATCH/zeros.vmf" | tee "$SCRATCH/info.txt"
grep -q 'every checksum and digest verified' "$SCRATCH/info.txt" || fail "info did not verify"
grep -q '"name": "t-zeros"' <<<"$(vmferry-info --json "$SCRATCH/zeros.vmf")" ||
    fail "info --json lacks the name"

# -o refuses to overwrite, and leaves the existing file alone.
sum=$(sha256sum <"$SCRATCH/zeros.vmf")
on_a vmferry-export -c qemu:///system t-zeros -o "$SCRATCH/zeros.vmf" 2>"$SCRATCH/err" &&
    fail "export overwrote an existing file"
grep -q 'already exists' "$SCRATCH/err" || fail "unclear error: $(cat "$SCRATCH/err")"
[[ $(sha256sum <"$SCRATCH/zeros.vmf") == "$sum" ]] || fail "existing output was changed"

dest=/var/lib/libvirt/images/zeros
dir_on_b "$dest"
on_b $VG vmferry-import --dir "$dest" "$SCRATCH/zeros.vmf"
dst_alloc=$(du -k "$IMAGES_B/zeros/t-zeros.img" | cut -f1)
echo "destination allocation: $dst_alloc KiB (source $src_alloc KiB)"
((dst_alloc <= 1024)) || fail "destination allocates $dst_alloc KiB"
on_b qemu-img compare -f raw -F raw "$dest/t-zeros.img" "$IMAGES_A/t-zeros.img" ||
    fail "content differs"
echo "zeros OK"
