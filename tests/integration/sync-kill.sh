#!/bin/bash
# vmferry-sync killed during a refresh (SIGKILL, fault points of lib/fault.h)
# on either side, a domain with two raw disks, the standby an overlay
# chain on B (each disk a qcow2 top over the first copy):
# - before the receiver journaled the commit (the sender mid-stream, the
#   receiver mid-overlay, after it verified, after it linked the restore
#   point, before the rename): the standby's view on B compares
#   identical, disk for disk, with the source as it was at the previous
#   refresh, and is still defined and shut off; nothing is left beside it
#   (no new overlay, no restore point name) once the next run is done,
#   and a kill before the link leaves nothing to doubt: the next run
#   trusts the records (no compare in full);
# - after the journal (before, between and after the renames, before the
#   sender recorded): the next run finishes the switch;
# - once the receiver answered the commit (before the merge, and
#   mid-merge, --keep=0: the restore point committed into the base, its
#   child rebased, neither): the view already is the new generation's and
#   stays so, the run fails saying the data is refreshed, the sender has
#   recorded it (the next run trusts the records) and the next run
#   finishes the merge;
# after every kill, the same command again completes and the standby then
# compares identical with the source.  The first run, killed on B after
# it defined the standby on its tops, is finished by the same command.  At the end the standby starts.
# ctest-labels: safety
. "$(dirname "$0")/functions.sh"

requires qemu-img

vm=t-sync-kill
sb=t-sync-kill-dr
export VMFERRY_SYNC_STATE_DIR=$SCRATCH/sync-state
make_vm "$vm" raw 48M
cleanup_add purge_vm "$sb"
cleanup_add rm -f "$FAULT_FILE_B"
dd if=/dev/urandom of="$IMAGES_A/$vm.img" bs=1M count=40 conv=notrunc status=none
dd if=/dev/urandom of="$IMAGES_A/$vm.b.img" bs=1M count=24 status=none
virsh_a -q attach-disk "$vm" "$IMAGES_DIR/$vm.b.img" vdb --config --driver qemu \
    --subdriver raw >/dev/null || fail "cannot attach the second disk"

sync_() { on_a env "$@" vmferry-sync "$vm" hostb --rename "$sb"; }
# The first run killed on B once the standby was defined on its tops,
# before B recorded anything: the same command again finishes it.
printf 'VMFERRY_FAULT=sync-init-defined\n' >"$FAULT_FILE_B"
sync_ >/dev/null 2>"$SCRATCH/err" && fail "the first sync was not killed"
rm -f "$FAULT_FILE_B"
sync_ >/dev/null 2>"$SCRATCH/err" || fail "the first sync failed: $(cat "$SCRATCH/err")"

# The standby's disks on B, in the order of the source's (vda, vdb).
mapfile -t sbdisks < <(virsh_b domblklist "$sb" | awk 'NR > 2 && $2 ~ /^\// {print $2}')
((${#sbdisks[@]} == 2)) || fail "the standby has disks: ${sbdisks[*]}"
srcs=("$IMAGES_A/$vm.img" "$IMAGES_A/$vm.b.img")
on_b_path() { echo "$IMAGES_B/${1#"$IMAGES_DIR"/}"; }

# same_as WHAT A0 A1: the standby's disks (their tops' chains) hold what
# A0 and A1 hold.
same_as() {
    local what=$1 k
    shift
    for k in 0 1; do
        qemu-img compare -q -f raw -F qcow2 "${@:k+1:1}" "$(on_b_path "${sbdisks[k]}")" ||
            fail "$what: standby disk $k differs"
    done
}
same_as "after the first sync" "${srcs[@]}"

change() {
    local k i
    for k in 0 1; do
        for ((i = 0; i < 6; i++)); do
            dd if=/dev/urandom of="${srcs[k]}" bs=64K count=1 conv=notrunc status=none \
                seek=$((RANDOM % (k ? 384 : 768)))
        done
    done
}

points_a=(sync-sent-chunk sync-applied)
points_b=(sync-received-data@2 sync-verified sync-linked sync-journaled sync-renamed
    sync-recorded sync-answered sync-merge-journaled sync-merge-committed
    sync-merge-rebased)
faults=0
for p in "${points_a[@]/#/a:}" "${points_b[@]/#/b:}"; do
    side=${p%%:*} point=${p#*:}
    cp --sparse=always "${srcs[0]}" "$SCRATCH/prev0.img"
    cp --sparse=always "${srcs[1]}" "$SCRATCH/prev1.img"
    change
    rc=0
    if [[ $side == a ]]; then
        sync_ VMFERRY_FAULT="$point" >"$SCRATCH/out" 2>&1 || rc=$?
    else
        printf 'VMFERRY_FAULT=%s\n' "$point" >"$FAULT_FILE_B"
        sync_ >"$SCRATCH/out" 2>&1 || rc=$?
        rm -f "$FAULT_FILE_B"
    fi
    ((rc != 0)) || fail "$p: the refresh did not fail: $(cat "$SCRATCH/out")"
    [[ $(virsh_b domstate "$sb") == "shut off"* ]] || fail "$p: the standby is not defined shut off"
    case $point in
        sync-sent-chunk | sync-linked | sync-received-data* | sync-verified)
            # Before the commit: the previous standby, whole.
            same_as "$p, killed" "$SCRATCH/prev0.img" "$SCRATCH/prev1.img"
            ;;
        sync-answered | sync-merge-*)
            # Committed and answered; the merge under way changes no
            # view, and the sender recorded the commit before it.
            same_as "$p, killed" "${srcs[@]}"
            grep -q "the data is refreshed" "$SCRATCH/out" ||
                fail "$p: the failed merge is not said: $(cat "$SCRATCH/out")"
            ;;
    esac
    out=$(sync_ 2>&1) || fail "$p: the same command again failed: $out"
    case $p in
        a:sync-sent-chunk | b:sync-received-data* | b:sync-verified | \
            b:sync-answered | b:sync-merge-*)
            grep -q "compared in full" <<<"$out" && fail "$p: the rerun doubted the standby: $out"
            ;;
    esac
    same_as "$p, rerun" "${srcs[@]}"
    leftover=$(find "$IMAGES_B" -name ".vmferry-sync-$sb.new-*" -o -name ".vmferry-sync-$sb.commit" \
        -o -name ".vmferry-sync-$sb.merge" -o -name "$sb*.top.qcow2.g*")
    [[ -z $leftover ]] || fail "$p: left on B after the rerun: $leftover"
    echo "   $p: killed (status $rc), rerun: ${out##*: }"
    report fault "sync-$side-$point" survived
    faults=$((faults + 1))
done

# Killed once the commit was journaled, then the standby written on B
# before the next run (it took over, say): that refresh is dropped, not
# rolled over the standby's own data; the next run compares in full.
cp --sparse=always "${srcs[0]}" "$SCRATCH/prev0.img"
change
printf 'VMFERRY_FAULT=sync-journaled\n' >"$FAULT_FILE_B"
sync_ >"$SCRATCH/out" 2>&1 && fail "the journaled refresh did not fail"
rm -f "$FAULT_FILE_B"
on_b qemu-io -f qcow2 -c "write -P 0x5a 192k 64k" "${sbdisks[0]}" >/dev/null ||
    fail "cannot write into the standby on B"
out=$(sync_ 2>&1) || fail "the run after a take-over failed: $out"
grep -q "changed since a refresh was made ready: that refresh is dropped" <<<"$out" ||
    fail "the dropped refresh is not said: $out"
grep -q "compared in full" <<<"$out" || fail "the taken-over standby was trusted: $out"
same_as "after the take-over" "${srcs[@]}"
echo "   journaled, then written on B: dropped, compared in full"

# Still a domain that starts.
virsh_b -q start "$sb" >/dev/null || fail "the standby does not start"
wait_state b "$sb" running 30 || fail "the standby does not run"
virsh_b -q destroy "$sb" >/dev/null
echo "$faults kills during refreshes, every one survived"
