#!/bin/bash
# vmferry-sync, a raw disk refreshed by scan: the first run copies the
# domain and defines the standby on B shut off; after ~1% of the data is
# rewritten in random 64 KiB pieces, a refresh sends at most 5% of what a
# full (uncompressed) stream of the domain holds, says so in its summary,
# and the standby then compares identical with the source.  The standby
# is an overlay chain on B (docs/design-dr.md, section 4): its XML names
# a qcow2 top over the first copy, a refresh writes only the changed
# blocks into a new overlay (B allocates a few MiB, no copy of the disk),
# --keep=1 leaves the previous generation as a restore point that reads
# as the source did, and the next refresh with the default --keep=0
# merges it into the base.  A refresh with nothing changed sends no
# chunk; the standby's definition is the same domain (UUID) throughout;
# a refresh refuses while the standby runs; the standby starts.
. "$(dirname "$0")/functions.sh"

requires qemu-img

vm=t-sync-raw
sb=t-sync-raw-dr
export VMFERRY_SYNC_STATE_DIR=$SCRATCH/sync-state
make_vm "$vm" raw 320M
cleanup_add purge_vm "$sb"
img_a=$IMAGES_A/$vm.img
img_b=$IMAGES_B/$sb.img
top_b=$IMAGES_B/$sb.img.top.qcow2
# same: the standby's view (its top's chain) holds what the source holds.
same() { qemu-img compare -q -f raw -F qcow2 "$img_a" "$top_b"; }

# Data that does not compress: 256 MiB of random bytes, 64 MiB of holes.
dd if=/dev/urandom of="$img_a" bs=1M count=256 seek=32 conv=notrunc status=none

# summary_field OUT WORD: the number before WORD in the summary line.
sent_of() { sed -n 's/.*sent [^(]*(\([0-9]*\) bytes).*/\1/p' <<<"$1"; }
changed_of() { sed -n 's/.*, \([0-9]*\) of [0-9]* chunks changed.*/\1/p' <<<"$1"; }

on_a vmferry-sync "$vm" hostb --rename "$sb" 2>"$SCRATCH/err" ||
    fail "the first sync failed: $(cat "$SCRATCH/err")"
grep -q "copied in full to hostb as standby $sb" "$SCRATCH/err" ||
    fail "the first sync does not say what it did: $(cat "$SCRATCH/err")"
echo "   first: $(cat "$SCRATCH/err")"
[[ $(virsh_b domstate "$sb") == "shut off"* ]] || fail "standby $sb is not defined shut off on B"
uuid=$(virsh_b domuuid "$sb")
xml_b=$(virsh_b dumpxml --inactive "$sb")
grep -q "<driver name='qemu' type='qcow2'" <<<"$xml_b" ||
    fail "the standby's disk is not its qcow2 top: $(grep -A3 '<disk' <<<"$xml_b")"
[[ $(virsh_b domblklist "$sb" | awk '$1 == "vda" {print $2}') == */"$sb.img.top.qcow2" ]] ||
    fail "the standby does not name its top: $(virsh_b domblklist "$sb")"
grep -q "^backing file: $sb.img\( \|\$\)" <<<"$(qemu-img info "$top_b")" ||
    fail "the top is not over the first copy: $(qemu-img info "$top_b")"
same || fail "the first copy differs"

# The size of a full copy, as a stream without compression.
full=$(on_a vmferry-export --compress=none "$vm" | wc -c)
((full > 256 * 1024 * 1024)) || fail "the full stream is $full bytes"

# Nothing changed: nothing sent but the stream's frame.
out=$(on_a vmferry-sync "$vm" hostb --rename "$sb" 2>&1) || fail "an idle refresh failed: $out"
[[ $(changed_of "$out") == 0 ]] || fail "an idle refresh changed chunks: $out"
same || fail "the standby differs from the source after an idle refresh"
echo "   idle refresh: $out"

# ~1%: 48 random 64 KiB writes (3 MiB of 320).
cp --sparse=always "$img_a" "$SCRATCH/prev.img"
for ((i = 0; i < 48; i++)); do
    dd if=/dev/urandom of="$img_a" bs=64K count=1 seek=$((RANDOM % 5120)) \
        conv=notrunc status=none
done
same && fail "the change did not change the source"
out=$(on_a vmferry-sync --keep=1 "$vm" hostb --rename "$sb" 2>&1) || fail "the refresh failed: $out"
echo "   refresh: $out"
sent=$(sent_of "$out")
[[ -n $sent ]] || fail "no bytes sent in the summary: $out"
((sent * 20 <= full)) || fail "the refresh sent $sent bytes, more than 5% of $full"
((sent >= 48 * 65536 / 2)) || fail "the refresh sent only $sent bytes for 48 changed blocks"
grep -q "generation 3" <<<"$out" || fail "not generation 3: $out"
same || fail "the standby differs from the source after the refresh"
# No copy of the disk on B: the new top holds the changed blocks only
# (48 of 64 KiB, its metadata, the base is 256 MiB of data).
alloc=$(($(stat -c %b "$top_b") * 512))
((alloc <= 12 * 1024 * 1024)) || fail "the new top allocates $alloc bytes"
((alloc >= 40 * 65536)) || fail "the new top allocates only $alloc bytes"
echo "   the new overlay allocates $alloc bytes"
# The previous generation is a restore point that reads as the source
# did before (gen 2, the idle refresh's).
rp=$IMAGES_B/$sb.img.top.qcow2.g2
[[ -f $rp ]] || fail "no restore point g2: $(ls "$IMAGES_B" | grep "^$sb")"
qemu-img compare -q -f raw -F qcow2 "$SCRATCH/prev.img" "$rp" ||
    fail "restore point g2 does not read as the source did"
list=$(on_a vmferry-sync --list "$vm" hostb --rename "$sb" 2>&1) || fail "--list failed: $list"
[[ $list == "vda 2 "*"/$sb.img.top.qcow2.g2" ]] || fail "--list does not list g2: $list"
# As the man page says to start one: an overlay of its own.
on_b qemu-img create -q -f qcow2 -F qcow2 -b "$sb.img.top.qcow2.g2" "$IMAGES_DIR/$sb.at-g2.qcow2" ||
    fail "cannot make an overlay of the restore point"
qemu-img compare -q -f raw -F qcow2 "$SCRATCH/prev.img" "$IMAGES_B/$sb.at-g2.qcow2" ||
    fail "an overlay of restore point g2 does not read as the source did"
rm -f "$IMAGES_B/$sb.at-g2.qcow2"
[[ $(virsh_b domuuid "$sb") == "$uuid" ]] || fail "the standby was redefined with another UUID"
[[ $(virsh_b domstate "$sb") == "shut off"* ]] || fail "standby $sb is not shut off"
leftover=$(find "$IMAGES_B" -name ".vmferry-sync-$sb.new-*")
[[ -z $leftover ]] || fail "left on B: $leftover"
echo "   sent $sent of $full bytes ($((sent * 1000 / full))‰)"

# A zeroed range must reach the standby as zeros, not show the old data.
dd if=/dev/zero of="$img_a" bs=1M count=3 seek=40 conv=notrunc status=none
out=$(on_a vmferry-sync "$vm" hostb --rename "$sb" 2>&1) || fail "the zero refresh failed: $out"
same || fail "zeros did not reach the standby"
# --keep=0: the restore points went into the base, the view unchanged.
left=$(find "$IMAGES_B" -name "$sb.img.top.qcow2.g*")
[[ -z $left ]] || fail "restore points beyond --keep=0 left: $left"
grep -q "^backing file: $sb.img\( \|\$\)" <<<"$(qemu-img info "$top_b")" ||
    fail "the top is not over the base after the merge: $(qemu-img info "$top_b")"

# The standby running: refused, nothing touched.
virsh_b -q start "$sb" >/dev/null || fail "cannot start the standby"
cp --sparse=always "$img_a" "$SCRATCH/last.img"
dd if=/dev/urandom of="$img_a" bs=64K count=1 seek=7 conv=notrunc status=none
out=$(on_a vmferry-sync "$vm" hostb --rename "$sb" 2>&1) && fail "a refresh of a running standby succeeded: $out"
grep -q "standby $sb is running on this host: it may have taken over" <<<"$out" ||
    fail "the refusal does not say why: $out"
virsh_b -q destroy "$sb" >/dev/null
wait_state b "$sb" "shut off" 30 || fail "the standby does not stop"
qemu-img compare -q -f raw -F qcow2 "$SCRATCH/last.img" "$top_b" ||
    fail "the standby started and stopped no longer reads as it was"
echo "sync raw scan OK"
