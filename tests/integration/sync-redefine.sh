#!/bin/bash
# vmferry-sync redefines the standby only when its definition changed: the
# first copy records its rewrite rules (here --new-uuid and --new-macs); a
# refresh rewrites the source's XML with them, gives it the standby's name,
# UUID and disks (its qcow2 tops), and compares it with the standby's
# definition.  An idle refresh says "definition: unchanged" and does not
# define (B's config file keeps its mtime, the XML is the same); a memory
# change and an added interface are picked up ("definition: updated"), the
# interface with the MAC --new-macs derives from the standby's UUID, and
# the refresh after that is unchanged again.  Rules given again must be
# the recorded ones; other rules are refused, the standby as it was.  A
# disk added to the source is refused with a word about --full, the
# standby intact; detached again, the refresh goes on.  A refresh killed
# after its data's commit, before the define, leaves a standby on files
# that exist, and the next run defines it.
. "$(dirname "$0")/functions.sh"

requires qemu-img

vm=t-sync-redef
sb=t-sync-redef-dr
export VMFERRY_SYNC_STATE_DIR=$SCRATCH/sync-state
make_vm "$vm" raw 64M 0x5a@0+8M
cleanup_add purge_vm "$sb"
cleanup_add rm -f -- "$IMAGES_B/.vmferry-sync-$sb".*
img_a=$IMAGES_A/$vm.img
top_b=$IMAGES_B/$sb.img.top.qcow2
conf_b=$VMFERRY_TESTBED_DIR/b/etc/qemu/$sb.xml
same() { qemu-img compare -q -f raw -F qcow2 "$img_a" "$top_b"; }
xml_b() { virsh_b dumpxml --inactive "$sb"; }
mtime_b() { stat -c %y "$conf_b"; }
# sync [OPTION...]: a refresh; its summary (and errors) in $out.
sync() { out=$(on_a vmferry-sync "$@" "$vm" hostb 2>&1); }
definition_of() { sed -n 's/.*; definition: \([a-z]*\).*/\1/p' <<<"$out"; }

sync --rename "$sb" --new-uuid --new-macs || fail "the first sync failed: $out"
[[ -f $conf_b ]] || fail "no config file $conf_b for the standby on B"
uuid_b=$(virsh_b domuuid "$sb")
[[ $uuid_b != "$(virsh_a domuuid "$vm")" ]] || fail "--new-uuid gave the standby the source's UUID"

# Idle, no rule given: the recorded ones are used, nothing is defined.
xml0=$(xml_b) t0=$(mtime_b)
sync --rename "$sb" || fail "an idle refresh failed: $out"
[[ $(definition_of) == unchanged ]] || fail "an idle refresh did not say 'definition: unchanged': $out"
[[ $(mtime_b) == "$t0" ]] || fail "an idle refresh defined the standby again (config mtime $t0 -> $(mtime_b))"
[[ $(xml_b) == "$xml0" ]] || fail "an idle refresh changed the standby's XML: $(diff <(echo "$xml0") <(xml_b))"
echo "   idle: $out"

# Memory: 128 -> 192 MiB on the source.
virsh_a -q setmaxmem "$vm" 192M --config >/dev/null || fail "cannot set the source's memory"
virsh_a -q setmem "$vm" 192M --config >/dev/null || fail "cannot set the source's current memory"
sync --rename "$sb" || fail "the refresh after a memory change failed: $out"
[[ $(definition_of) == updated ]] || fail "a memory change did not say 'definition: updated': $out"
[[ $(virsh_b dominfo "$sb" | awk '/^Max memory/ {print $3}') == 196608 ]] ||
    fail "the standby's memory is not 192 MiB: $(virsh_b dominfo "$sb")"
[[ $(virsh_b domuuid "$sb") == "$uuid_b" ]] || fail "the redefine changed the standby's UUID"
[[ $(virsh_b domblklist "$sb" | awk '$1 == "vda" {print $2}') == "$IMAGES_DIR/$sb.img.top.qcow2" ]] ||
    fail "the redefined standby does not name its top: $(virsh_b domblklist "$sb")"
grep -q "<driver name='qemu' type='qcow2'" <<<"$(xml_b)" || fail "the redefined standby's disk is not qcow2"
same || fail "the standby's data differs after the redefine"
echo "   memory: $out"

# An interface: the standby's MAC is derived from its UUID, not the source's.
virsh_a -q attach-interface "$vm" network default --config >/dev/null ||
    fail "cannot add an interface to the source"
mac_a=$(virsh_a domiflist "$vm" | awk 'NR > 2 && $5 {print $5}')
sync --rename "$sb" --new-uuid --new-macs || fail "the refresh after an added interface failed: $out"
[[ $(definition_of) == updated ]] || fail "an added interface did not say 'definition: updated': $out"
mac_b=$(virsh_b domiflist "$sb" | awk 'NR > 2 && $5 {print $5}')
[[ -n $mac_b ]] || fail "the standby has no interface: $(virsh_b domiflist "$sb")"
[[ $mac_b != "$mac_a" ]] || fail "--new-macs was not applied on the refresh: the standby has the source's MAC $mac_a"
echo "   interface: $out (MAC $mac_a on A, $mac_b on B)"
xml1=$(xml_b) t1=$(mtime_b)
sync --rename "$sb" || fail "the refresh after the interface failed: $out"
[[ $(definition_of) == unchanged ]] || fail "the refresh after an applied change is not unchanged: $out"
[[ $(mtime_b) == "$t1" && $(xml_b) == "$xml1" ]] || fail "the standby was defined again with nothing changed"

# Other rules than the recorded ones: refused, nothing done.
if sync --rename "$sb" --new-uuid; then fail "a refresh with other rules (no --new-macs) was not refused: $out"; fi
grep -q 'other rewrite rules.*--full' <<<"$out" || fail "the refusal of other rules does not say why: $out"
[[ $(mtime_b) == "$t1" && $(xml_b) == "$xml1" ]] || fail "a refused refresh changed the standby's definition"
echo "   other rules: $out"

# A disk added to the source: refused, the standby and its data intact.
on_a qemu-img create -q -f raw "$IMAGES_DIR/$vm-b.img" 16M || fail "cannot make a second disk"
cleanup_add rm -f "$IMAGES_A/$vm-b.img"
virsh_a -q attach-disk "$vm" "$IMAGES_DIR/$vm-b.img" vdb --driver qemu --subdriver raw --config >/dev/null ||
    fail "cannot add a disk to the source"
sums_before=$(sha256sum "$IMAGES_B/$sb".* | sort)
if sync --rename "$sb"; then fail "a refresh with a disk added was not refused: $out"; fi
grep -q 'disk vdb was added to the source.*--full' <<<"$out" || fail "the refusal does not say a disk was added and --full: $out"
[[ $(sha256sum "$IMAGES_B/$sb".* | sort) == "$sums_before" ]] || fail "the refused refresh changed the standby's files"
[[ $(mtime_b) == "$t1" && $(xml_b) == "$xml1" ]] || fail "the refused refresh changed the standby's definition"
echo "   disk added: $out"
virsh_a -q detach-disk "$vm" vdb --config >/dev/null || fail "cannot detach the second disk"

# Killed after the commit, before the define: the standby names its top
# (a file that is there), and the next run defines the change.
virsh_a -q setmaxmem "$vm" 256M --config >/dev/null && virsh_a -q setmem "$vm" 256M --config >/dev/null ||
    fail "cannot set the source's memory"
cleanup_add rm -f "$FAULT_FILE_B"
printf 'VMFERRY_FAULT=sync-redefine\n' >"$FAULT_FILE_B"
if sync --rename "$sb"; then fail "the refresh killed before its define succeeded: $out"; fi
rm -f "$FAULT_FILE_B"
[[ -f $top_b ]] || fail "the standby's top is gone after the kill"
[[ $(virsh_b domblklist "$sb" | awk '$1 == "vda" {print $2}') == "$IMAGES_DIR/$sb.img.top.qcow2" ]] ||
    fail "after the kill the standby does not name its top"
[[ $(virsh_b dominfo "$sb" | awk '/^Max memory/ {print $3}') == 196608 ]] ||
    fail "the killed refresh defined the standby anyway: $(virsh_b dominfo "$sb")"
sync --rename "$sb" || fail "the refresh after the kill failed: $out"
[[ $(definition_of) == updated ]] || fail "the refresh after the kill did not define the change: $out"
[[ $(virsh_b dominfo "$sb" | awk '/^Max memory/ {print $3}') == 262144 ]] ||
    fail "the standby's memory is not 256 MiB after the re-run: $(virsh_b dominfo "$sb")"
same || fail "the standby differs from the source after the re-run"
echo "   killed before the define, then: $out"
report fault sync-redefine survived
report hostile "rules other than the recorded ones" refused
report hostile "a disk added to the source" refused
