#!/bin/bash
# vmferry-sync, a shut-off qcow2 disk refreshed by its dirty bitmap
# (docs/design-dr.md, section 3, step 3): the first run adds bitmap
# vmferry.<DEST8>.2 to the source; after ~1% of the guest's data is
# rewritten (qemu-io: QEMU's own writes, which the bitmap records), a
# refresh reads only the chunks the bitmap marks (bytes read far below
# the disk's size), sends at most 5% of a full stream, says "method:
# bitmap", swaps bitmap 2 for 3, and the standby compares identical with
# the source.  A bitmap removed by hand, and one left in use by a writer
# killed with SIGKILL (as by a QEMU crash), make the refresh scan and say
# why, still identical.  Killed after the bitmap was added and before the
# receiver's commit, the standby is as it was and the same command again
# reads the same bitmap; killed after the commit, before the sender
# recorded it, the next run compares in full.  --no-bitmap leaves no
# bitmap of ours on the source.
# ctest-labels: safety
. "$(dirname "$0")/functions.sh"

requires qemu-img
requires qemu-io

vm=t-sync-bm
sb=t-sync-bm-dr
export VMFERRY_SYNC_STATE_DIR=$SCRATCH/sync-state
make_vm "$vm" qcow2 320M
cleanup_add purge_vm "$sb"
img_a=$IMAGES_A/$vm.qcow2
top_b=$IMAGES_B/$sb.qcow2.top.qcow2
# same [IMG]: the standby's view (its top's chain) holds what IMG (the
# source) holds, as the guest reads both.
same() { qemu-img compare -q -f qcow2 -F qcow2 "${1:-$img_a}" "$top_b"; }
# bitmaps: the source's bitmaps, "NAME FLAGS" a line.
bitmaps() {
    qemu-img info -U --output=json "$img_a" | python3 -c '
import json, sys
for b in json.load(sys.stdin)["format-specific"]["data"].get("bitmaps", []):
    print(b["name"], ",".join(b["flags"]))'
}
read_of() { sed -n 's/.*: read [^(]*(\([0-9]*\) bytes).*/\1/p' <<<"$1"; }
sent_of() { sed -n 's/.*sent [^(]*(\([0-9]*\) bytes).*/\1/p' <<<"$1"; }
method_of() { sed -n 's/.*, method: \(.*\); definition: [a-z ()]*$/\1/p' <<<"$1"; }
# change N SEED: N writes of 64 KiB through QEMU's qcow2 driver, spread
# over the disk (5120 blocks of 64 KiB).
change() {
    local -a cmds=()
    local i
    for ((i = 0; i < $1; i++)); do
        cmds+=(-c "write -P $(((i * 37 + $2) % 255 + 1)) $(((RANDOM % 5120) * 65536)) 64k")
    done
    qemu-io -f qcow2 "${cmds[@]}" "$img_a" >/dev/null || fail "qemu-io cannot write"
}
# sync_ [VAR=VALUE]...: a run with that environment; sync_opt OPTION...
sync_() { on_a env "$@" vmferry-sync "$vm" hostb --rename "$sb"; }
sync_opt() { on_a vmferry-sync "$@" "$vm" hostb --rename "$sb"; }
changed_of() { sed -n 's/.*, \([0-9]*\) of [0-9]* chunks changed.*/\1/p' <<<"$1"; }

# Data that does not compress: 256 MiB of random bytes, 64 MiB unallocated.
dd if=/dev/urandom of="$SCRATCH/data.img" bs=1M count=256 seek=32 status=none
truncate -s 320M "$SCRATCH/data.img"
qemu-img convert -q -f raw -O qcow2 "$SCRATCH/data.img" "$img_a" ||
    fail "cannot fill the source"
rm -f "$SCRATCH/data.img"

# The first run killed on B once the standby was defined on its top:
# the same command again finishes it (the top's header names the qcow2
# base's format).
cleanup_add rm -f "$FAULT_FILE_B"
printf 'VMFERRY_FAULT=sync-init-defined\n' >"$FAULT_FILE_B"
sync_ >/dev/null 2>"$SCRATCH/err" && fail "the first sync was not killed"
rm -f "$FAULT_FILE_B"
sync_ >"$SCRATCH/err" 2>&1 || fail "the first sync failed: $(cat "$SCRATCH/err")"
echo "   first: $(cat "$SCRATCH/err")"
grep -q "^backing file format: qcow2" <<<"$(qemu-img info -U "$top_b")" ||
    fail "the top is not over the qcow2 base: $(qemu-img info -U "$top_b")"
list=$(bitmaps)
[[ $list =~ ^vmferry\.([0-9a-f]{8})\.2\ auto$ ]] ||
    fail "the first copy did not leave bitmap 2 enabled on the source: $list"
d8=${BASH_REMATCH[1]}
same || fail "the first copy differs"
[[ $(qemu-img info -U --output=json "$IMAGES_B/$sb.qcow2") != *'"bitmaps"'* ]] ||
    fail "the standby's base carries a bitmap"

full=$(on_a vmferry-export --compress=none "$vm" | wc -c)
((full > 256 * 1024 * 1024)) || fail "the full stream is $full bytes"

# ~1%: 48 writes of 64 KiB (3 MiB of 320).
change 48 1
same && fail "the change did not change the source"
out=$(sync_ 2>&1) || fail "the refresh failed: $out"
echo "   refresh: $out"
[[ $(method_of "$out") == bitmap ]] || fail "the refresh did not use the bitmap: $out"
grep -q "compared in full" <<<"$out" && fail "the bitmap refresh compared in full: $out"
rd=$(read_of "$out") sent=$(sent_of "$out")
[[ -n $rd && -n $sent ]] || fail "no bytes read or sent in the summary: $out"
# At most the 48 chunks of 1 MiB the writes fell in.
((rd <= 48 * 1048576)) || fail "the refresh read $rd bytes: the bitmap was not used"
((rd >= 48 * 65536)) || fail "the refresh read only $rd bytes for 48 changed blocks"
((sent * 20 <= full)) || fail "the refresh sent $sent bytes, more than 5% of $full"
((sent >= 48 * 65536 / 2)) || fail "the refresh sent only $sent bytes for 48 changed blocks"
same || fail "the standby differs from the source after the bitmap refresh"
[[ $(bitmaps) == "vmferry.$d8.3 auto" ]] ||
    fail "bitmap 2 not replaced by 3 after the commit: $(bitmaps)"
echo "   read $rd, sent $sent of $full bytes ($((sent * 1000 / full))‰)"

# The sender's map stayed right: a refresh that compares both sides in
# full finds nothing to send.
out=$(sync_opt --compare 2>&1) || fail "the compare refresh failed: $out"
grep -q ", 0 of [0-9]* chunks changed" <<<"$out" ||
    fail "after a bitmap refresh, a compare found differences: $out"
[[ $(bitmaps) == "vmferry.$d8.4 auto" ]] || fail "after --compare: $(bitmaps)"

# Our bitmap removed by hand: scan, and say so.
qemu-img bitmap --remove "$img_a" "vmferry.$d8.4" || fail "cannot remove the bitmap"
change 8 2
out=$(sync_ 2>&1) || fail "the refresh without a bitmap failed: $out"
[[ $(method_of "$out") == "scan (bitmap vmferry.$d8.4 missing)" ]] ||
    fail "the missing bitmap is not said: $out"
# The scan diffs against the sender's map, which the bitmap refreshes
# kept: only the chunks of these 8 writes differ from it.
grep -q "compared in full" <<<"$out" && fail "the scan did not trust the records: $out"
(($(changed_of "$out") <= 8)) || fail "the scan found more than 8 chunks changed: $out"
same || fail "the standby differs after the scan of a missing bitmap"
[[ $(bitmaps) == "vmferry.$d8.5 auto" ]] || fail "after the scan: $(bitmaps)"
echo "   missing: $(method_of "$out")"

# A writer killed mid-way leaves the bitmap in use: scan, say so,
# remove it.
qemu-io -f qcow2 -c "write -P 0x77 $((100 * 1048576)) 64k" -c "sigraise 9" "$img_a" \
    >/dev/null 2>&1 && fail "qemu-io was not killed"
[[ $(bitmaps) == "vmferry.$d8.5 in-use,auto" ]] || fail "the bitmap is not in use: $(bitmaps)"
out=$(sync_ 2>&1) || fail "the refresh with an in-use bitmap failed: $out"
[[ $(method_of "$out") == "scan (bitmap vmferry.$d8.5 in use: "* ]] ||
    fail "the in-use bitmap is not said: $out"
same || fail "the standby differs after the scan of an in-use bitmap"
[[ $(bitmaps) == "vmferry.$d8.6 auto" ]] || fail "after the in-use scan: $(bitmaps)"
echo "   in use: $(method_of "$out")"
out=$(sync_ 2>&1) || fail "the refresh after the scan failed: $out"
[[ $(method_of "$out") == bitmap ]] || fail "the bitmap is not used again: $out"

# Killed after the bitmap was added, before the commit (and mid-stream):
# the standby is the previous one; the same command again uses the same
# bitmap (its stale successor removed first).
for point in sync-bitmap-added sync-sent-chunk; do
    gen=$(bitmaps | sed -n "s/^vmferry\.$d8\.\([0-9]*\) auto$/\1/p")
    [[ -n $gen ]] || fail "$point: no bitmap before: $(bitmaps)"
    cp "$img_a" "$SCRATCH/prev.qcow2"
    change 16 3
    sync_ VMFERRY_FAULT="$point" >"$SCRATCH/out" 2>&1 && fail "$point: the refresh was not killed"
    same "$SCRATCH/prev.qcow2" || fail "$point: the standby changed"
    [[ $(bitmaps | sort -V) == "vmferry.$d8.$gen auto"$'\n'"vmferry.$d8.$((gen + 1)) auto" ]] ||
        fail "$point: not bitmaps $gen and $((gen + 1)) after the kill: $(bitmaps)"
    out=$(sync_ 2>&1) || fail "$point: the same command again failed: $out"
    [[ $(method_of "$out") == bitmap ]] || fail "$point: the rerun did not use bitmap $gen: $out"
    same || fail "$point: the standby differs after the rerun"
    [[ $(bitmaps) == "vmferry.$d8.$((gen + 1)) auto" ]] || fail "$point: after the rerun: $(bitmaps)"
    echo "   $point: killed, rerun: $(method_of "$out")"
    report fault "sync-bitmap-$point" survived
done
# Killed after the receiver's commit, before the sender recorded it: the
# records disagree, the next run compares in full (its bitmap is not one
# of the standby's generation) and is right.
change 16 4
sync_ VMFERRY_FAULT=sync-applied >"$SCRATCH/out" 2>&1 && fail "sync-applied: the refresh was not killed"
out=$(sync_ 2>&1) || fail "sync-applied: the same command again failed: $out"
grep -q "compared in full" <<<"$out" || fail "sync-applied: the rerun trusted the records: $out"
[[ $(method_of "$out") == scan* ]] || fail "sync-applied: the rerun used a bitmap: $out"
same || fail "sync-applied: the standby differs after the rerun"
report fault sync-bitmap-sync-applied survived
out=$(sync_ 2>&1) || fail "the refresh after sync-applied failed: $out"
[[ $(method_of "$out") == bitmap ]] || fail "the bitmap is not used after sync-applied: $out"

# --no-bitmap: scanned, and no bitmap of ours is left on the source.
change 8 5
out=$(sync_opt --no-bitmap 2>&1) || fail "the --no-bitmap refresh failed: $out"
[[ $(method_of "$out") == "scan (--no-bitmap)" ]] || fail "--no-bitmap: $out"
same || fail "the standby differs after --no-bitmap"
list=$(bitmaps)
[[ -z $list ]] || fail "--no-bitmap left bitmaps on the source: $list"
[[ $(virsh_b domstate "$sb") == "shut off"* ]] || fail "standby $sb is not shut off"
virsh_b -q start "$sb" >/dev/null || fail "the standby does not start"
wait_state b "$sb" running 30 || fail "the standby does not run"
virsh_b -q destroy "$sb" >/dev/null
echo "sync qcow2 bitmap OK"
