#!/bin/bash
# The scout: while a slow reader of the stream keeps the export waiting,
# the written zeros after the data are found ahead and not read again by
# the export's reader; the stream is still exact (every checksum and
# digest verifies, and the imported disk is identical).
. "$(dirname "$0")/functions.sh"

# 64 MiB of random data (it does not compress, so the slow pipe below is
# the bottleneck), then 256 MiB of written zeros.
make_vm t-scout raw 320M 0x00@0+320M
on_a dd if=/dev/urandom of="$IMAGES_DIR/t-scout.img" bs=1M count=64 conv=notrunc,fsync status=none
src_alloc=$(du -k "$IMAGES_A/t-scout.img" | cut -f1)
((src_alloc > 320000)) || fail "the source is not allocated ($src_alloc KiB): test is void"

# 16 MiB/s: the 64 MiB of data take ~4 s to pass, the zeros ~0.6 s to read.
on_a vmferry-export -v -c qemu:///system t-scout 2>"$SCRATCH/err" |
    pv -q -L 16m >"$SCRATCH/scout.vmf" || fail "export failed: $(cat "$SCRATCH/err")"
cat "$SCRATCH/err"
skipped=$(sed -n 's/.*: \([0-9][0-9]*\) bytes of written zeros found ahead by the scout.*/\1/p' "$SCRATCH/err")
echo "scout: ${skipped:-0} bytes not read again"
((${skipped:-0} >= 128 * 1048576)) ||
    fail "the scout found ${skipped:-0} bytes of the 256 MiB of zeros ahead (want at least half)"

$VG vmferry-info --verify "$SCRATCH/scout.vmf" | tee "$SCRATCH/info.txt"
grep -q 'every checksum and digest verified' "$SCRATCH/info.txt" || fail "info did not verify"

dest=/var/lib/libvirt/images/scout
dir_on_b "$dest"
on_b $VG vmferry-import --dir "$dest" "$SCRATCH/scout.vmf"
on_b qemu-img compare -f raw -F raw "$dest/t-scout.img" "$IMAGES_A/t-scout.img" ||
    fail "content differs"
dst_alloc=$(du -k "$IMAGES_B/scout/t-scout.img" | cut -f1)
echo "destination allocation: $dst_alloc KiB (source $src_alloc KiB)"
((dst_alloc < 80000)) || fail "the zeros were written on B ($dst_alloc KiB allocated)"
echo "scout OK"
