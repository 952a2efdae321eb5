#!/bin/bash
# vmferry-sync does not trust a standby changed by hand on B: data written
# into its disk (its mtime even put back as it was, so that only the
# ctime and the content tell) is detected at the next refresh, which asks
# B for the map of what it holds, sends the chunks that differ from the
# source, and says "standby changed by hand: compared in full"; the
# standby then compares identical with the source, and the refresh after
# trusts the records again.  A standby on B that is another copy (its
# records gone) is refused, not overwritten.
# ctest-labels: safety
. "$(dirname "$0")/functions.sh"

requires qemu-img

vm=t-sync-tamp
sb=t-sync-tamp-dr
export VMFERRY_SYNC_STATE_DIR=$SCRATCH/sync-state
make_vm "$vm" raw 40M
cleanup_add purge_vm "$sb"
dd if=/dev/urandom of="$IMAGES_A/$vm.img" bs=1M count=32 conv=notrunc status=none
img_a=$IMAGES_A/$vm.img
img_b=$IMAGES_B/$sb.img

sync_() { on_a vmferry-sync "$@" "$vm" hostb --rename "$sb"; }
sync_ 2>"$SCRATCH/err" || fail "the first sync failed: $(cat "$SCRATCH/err")"
qemu-img compare -q -f raw -F raw "$img_a" "$img_b" || fail "the first copy differs"

# By hand on B: 3 blocks overwritten, the mtime put back.
on_b dd if=/dev/urandom of="$IMAGES_DIR/$sb.img" bs=64K count=1 seek=5 conv=notrunc status=none
on_b dd if=/dev/zero of="$IMAGES_DIR/$sb.img" bs=64K count=1 seek=100 conv=notrunc status=none
on_b dd if=/dev/urandom of="$IMAGES_DIR/$sb.img" bs=64K count=1 seek=630 conv=notrunc status=none
on_b touch -r "$IMAGES_DIR/$vm.img" "$IMAGES_DIR/$sb.img" 2>/dev/null ||
    on_b touch -d '2020-01-01' "$IMAGES_DIR/$sb.img"
qemu-img compare -q -f raw -F raw "$img_a" "$img_b" && fail "the tampering did not change the standby"

# The source unchanged: the refresh finds the standby's changes and
# repairs them, sending about those three chunks.
out=$(sync_ 2>&1) || fail "the refresh after tampering failed: $out"
echo "   $out"
grep -q "standby changed by hand: compared in full" <<<"$out" ||
    fail "the tampering was not noticed: $out"
grep -q ", 3 of 40 chunks changed" <<<"$out" || fail "not the 3 tampered chunks sent: $out"
qemu-img compare -f raw -F raw "$img_a" "$img_b" || fail "the standby was not repaired"

# Trusted again: an idle refresh sends no chunk and compares nothing.
out=$(sync_ 2>&1) || fail "the refresh after the repair failed: $out"
grep -q ", 0 of 40 chunks changed" <<<"$out" || fail "the idle refresh sent chunks: $out"
grep -q "compared in full" <<<"$out" && fail "the repaired standby is still doubted: $out"

# Its records removed on B: another copy for all the sender knows.
on_b rm -f "$IMAGES_DIR/.vmferry-sync-$sb.json"
sum=$(sha256sum <"$img_b")
out=$(sync_ 2>&1) && fail "a standby without records was refreshed: $out"
grep -q "is not the copy this source recorded: run with --full" <<<"$out" ||
    fail "the refusal does not say why: $out"
[[ $(sha256sum <"$img_b") == "$sum" ]] || fail "the refused refresh changed the standby"
echo "sync tampered OK"
