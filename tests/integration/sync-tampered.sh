#!/bin/bash
# vmferry-sync does not trust a standby changed by hand on B.  The standby
# is an overlay chain (a qcow2 top over the first copy, restore points
# between): what its guest reads changes when any file of the chain is
# written, so each is checked.  Data written into the standby's view
# through its top (qemu-io, its mtime even put back as it was, so that
# only the ctime and the content tell), and then into the base file
# under it directly (likewise), is detected at the next refresh, which
# asks B for the map of what the view holds, sends the chunks that differ
# from the source, and says "standby changed by hand: compared in full";
# the standby then compares identical with the source, and the refresh
# after trusts the records again.  A standby on B that is another copy
# (its records gone) is refused, not overwritten.
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
top_b=$IMAGES_B/$sb.img.top.qcow2
same() { qemu-img compare -q -f raw -F qcow2 "$img_a" "$top_b"; }

sync_() { on_a vmferry-sync "$@" "$vm" hostb --rename "$sb"; }
sync_ 2>"$SCRATCH/err" || fail "the first sync failed: $(cat "$SCRATCH/err")"
same || fail "the first copy differs"
# A refresh, so that the chain has a restore point under the top.
out=$(sync_ --keep=1 2>&1) || fail "the first refresh failed: $out"
[[ -f $top_b.g1 ]] || fail "no restore point g1: $out"

# By hand on B, through the top: 3 blocks overwritten, the mtime put back.
top=$IMAGES_DIR/$sb.img.top.qcow2
mtime=$(stat -c %y "$top_b")
on_b qemu-io -f qcow2 -c "write -P 0x33 320k 64k" -c "write -z 6400k 64k" \
    -c "write -P 0x77 40320k 64k" "$top" >/dev/null || fail "cannot write the top on B"
on_b touch -d "$mtime" "$top"
same && fail "the tampering did not change the standby"

# The source unchanged: the refresh finds the standby's changes and
# repairs them, sending about those three chunks.
out=$(sync_ 2>&1) || fail "the refresh after tampering failed: $out"
echo "   $out"
grep -q "standby changed by hand: compared in full" <<<"$out" ||
    fail "the tampering was not noticed: $out"
grep -q ", 3 of 40 chunks changed" <<<"$out" || fail "not the 3 tampered chunks sent: $out"
same || fail "the standby was not repaired"
report hostile sync-tampered-top ok

# By hand on B, into the base under the chain (a raw file): one block,
# the mtime put back; the top and the restore point are untouched.
mtime=$(stat -c %y "$img_b")
on_b dd if=/dev/urandom of="$IMAGES_DIR/$sb.img" bs=64K count=1 seek=200 conv=notrunc status=none
on_b touch -d "$mtime" "$IMAGES_DIR/$sb.img"
same && fail "the base's tampering does not show through the top"
out=$(sync_ --keep=1 2>&1) || fail "the refresh after the base's tampering failed: $out"
echo "   $out"
grep -q "standby changed by hand: compared in full" <<<"$out" ||
    fail "the base's tampering was not noticed: $out"
grep -q ", 1 of 40 chunks changed" <<<"$out" || fail "not the tampered chunk sent: $out"
same || fail "the standby was not repaired after the base's tampering"
report hostile sync-tampered-base ok

# Trusted again: an idle refresh sends no chunk and compares nothing.
out=$(sync_ 2>&1) || fail "the refresh after the repair failed: $out"
grep -q ", 0 of 40 chunks changed" <<<"$out" || fail "the idle refresh sent chunks: $out"
grep -q "compared in full" <<<"$out" && fail "the repaired standby is still doubted: $out"

# Its records removed on B: another copy for all the sender knows.
on_b rm -f "$IMAGES_DIR/.vmferry-sync-$sb.json"
sum=$(cat "$img_b" "$top_b" | sha256sum)
out=$(sync_ 2>&1) && fail "a standby without records was refreshed: $out"
grep -q "is not the copy this source recorded: run with --full" <<<"$out" ||
    fail "the refusal does not say why: $out"
[[ $(cat "$img_b" "$top_b" | sha256sum) == "$sum" ]] || fail "the refused refresh changed the standby"
report hostile sync-tampered-other-copy refused
echo "sync tampered OK"
