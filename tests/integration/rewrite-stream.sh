#!/bin/bash
# vmferry-rewrite as a stream filter on real exports:
#  - no rules: the output is the input, byte for byte;
#  - rules: only the manifest and the XML change, every other record is
#    copied byte for byte, the result verifies, and rewriting it again
#    with the same rules changes nothing;
#  - a DR copy beside its original on the same host (--rename, --new-uuid,
#    --new-macs, --map-path giving its files new names), from a map file,
#    imported and defined next to the untouched original;
#  - --machine auto and --emulator auto resolved against the destination
#    (a RHEL-style definition: /usr/libexec/qemu-kvm and a RHEL machine
#    type), after which the definition validates, passes vmferry-check and
#    is defined and started on B.
. "$(dirname "$0")/functions.sh"

requires jq

vm=t-rw
copy=t-rw-dr
make_vm --uefi "$vm" qcow2 64M 0x11@0+2M 0x22@32M+1M
cleanup_add purge_vm "$copy"
# An interface, so that --new-macs has something to change.
virsh_a dumpxml --inactive "$vm" |
    sed "s|</devices>|<interface type='user'><mac address='52:54:00:aa:bb:cc'/><model type='virtio'/></interface></devices>|" \
        >"$SCRATCH/$vm-nic.xml"
virsh_a -q define "$SCRATCH/$vm-nic.xml" >/dev/null || fail "cannot add a NIC to $vm"
on_a vmferry-export -c qemu:///system -o "$SCRATCH/a.vmf" "$vm" || fail "export failed"

# Byte offset after record 2 (the stream header, manifest and XML).
meta_end() {
    local f=$1 off=0 len
    for _ in 0 1 2; do
        len=$(od -An -tu4 -j $((off + 12)) -N4 "$f" | tr -d ' ')
        off=$((off + 48 + len))
    done
    echo "$off"
}
same_tail() {
    local ea eb
    ea=$(meta_end "$1") eb=$(meta_end "$2")
    cmp <(tail -c +$((ea + 1)) "$1") <(tail -c +$((eb + 1)) "$2") ||
        fail "$2: records after the XML differ from $1's"
}

# ---- identity
$VG vmferry-rewrite <"$SCRATCH/a.vmf" >"$SCRATCH/id.vmf" || fail "identity rewrite failed"
cmp "$SCRATCH/a.vmf" "$SCRATCH/id.vmf" || fail "an identity rewrite changed bytes"
echo "   identity: byte for byte"

# ---- a DR copy from a map file, beside the original on host A
cat >"$SCRATCH/dr.map" <<EOF
# DR copy of $vm on the same host
rename       $copy
new-uuid
new-macs
map-path     $IMAGES_DIR/$vm.qcow2=$IMAGES_DIR/$copy.qcow2
map-path     $NVRAM_DIR/${vm}_VARS.fd=$NVRAM_DIR/${copy}_VARS.fd
EOF
$VG vmferry-rewrite -m "$SCRATCH/dr.map" -o "$SCRATCH/dr.vmf" "$SCRATCH/a.vmf" || fail "DR rewrite failed"
vmferry-info --verify "$SCRATCH/dr.vmf" >/dev/null || fail "the DR stream does not verify"
same_tail "$SCRATCH/a.vmf" "$SCRATCH/dr.vmf"
j=$(vmferry-info --json "$SCRATCH/dr.vmf")
[[ $(jq -r .manifest.domain.name <<<"$j") == "$copy" ]] || fail "manifest keeps the old name"
[[ $(jq -r '.manifest.files[0].name' <<<"$j") == "$copy.qcow2" ]] || fail "manifest file name not rewritten"
[[ $(jq -r '.manifest.files[0].source_path' <<<"$j") == "$IMAGES_DIR/$copy.qcow2" ]] ||
    fail "manifest source_path not rewritten"
# Idempotent: the same rules again (the UUID is now fixed in the stream).
uuid=$(jq -r .manifest.domain.uuid <<<"$j")
sed "s|^new-uuid\$|new-uuid $uuid|" "$SCRATCH/dr.map" >"$SCRATCH/dr2.map"
vmferry-rewrite -m "$SCRATCH/dr2.map" <"$SCRATCH/dr.vmf" >"$SCRATCH/dr2.vmf" || fail "second rewrite failed"
cmp "$SCRATCH/dr.vmf" "$SCRATCH/dr2.vmf" || fail "rewriting again changed the stream"
echo "   DR stream: manifest consistent, data identical, idempotent"

orig_uuid=$(virsh_a domuuid "$vm")
orig_xml=$(virsh_a dumpxml --inactive "$vm")
on_a $VG vmferry-import -c qemu:///system --dir "$IMAGES_DIR" --define "$SCRATCH/dr.vmf" ||
    fail "importing the DR copy beside the original failed"
[[ $(virsh_a domuuid "$copy") == "$uuid" ]] || fail "the copy has not the rewritten UUID"
[[ $uuid != "$orig_uuid" ]] || fail "the copy kept the original UUID"
cxml=$(virsh_a dumpxml --inactive "$copy")
grep -qF "$IMAGES_DIR/$copy.qcow2" <<<"$cxml" || fail "the copy does not use its own disk"
grep -qF "${copy}_VARS.fd" <<<"$cxml" || fail "the copy does not use its own NVRAM"
grep -qF "52:54:00:aa:bb:cc" <<<"$cxml" && fail "the copy kept the original MAC"
[[ $(virsh_a dumpxml --inactive "$vm") == "$orig_xml" ]] || fail "the original was changed"
check_disk on_a "$IMAGES_DIR/$copy.qcow2" qcow2 0x11@0+2M 0x22@32M+1M
echo "   DR copy defined beside the original"

# ---- auto, against the destination (a BIOS guest: it is started on B)
auto=t-rw-auto
cleanup_add purge_vm "$auto"
tb_domain_xml "$auto" "$VIRT_TYPE" "$IMAGES_DIR/$auto.qcow2" qcow2 128 |
    sed -e "s|<emulator>[^<]*</emulator>|<emulator>/usr/libexec/qemu-kvm</emulator>|" \
        -e "s|machine='[^']*'|machine='pc-i440fx-rhel7.6.0'|" >"$SCRATCH/rhel.xml"
grep -q "pc-i440fx-rhel7.6.0" "$SCRATCH/rhel.xml" || fail "test setup: no machine to replace"
rc=0
vmferry-check -c "$URI_B" --json "$SCRATCH/rhel.xml" >"$SCRATCH/c1.json" || rc=$?
((rc == 1)) || fail "check of the RHEL-style XML exits $rc, not 1"
for c in emulator machine; do
    [[ $(jq "[.findings[] | select(.check == \"$c\")] | length" "$SCRATCH/c1.json") == 1 ]] ||
        { jq . "$SCRATCH/c1.json"; fail "no $c finding"; }
done
vmferry-rewrite --machine auto && fail "auto without -c accepted"
$VG vmferry-rewrite -c "$URI_B" --machine auto --emulator auto --xml "$SCRATCH/rhel.xml" \
    -o "$SCRATCH/auto.xml" || fail "rewrite with auto failed"
emulator_b=$(virsh_b domcapabilities --virttype "$VIRT_TYPE" | sed -n 's|.*<path>\(.*\)</path>.*|\1|p')
grep -qF "<emulator>$emulator_b</emulator>" "$SCRATCH/auto.xml" || fail "--emulator auto did not pick B's"
# The rewrite keeps the input's quoting: single quotes, as libvirt writes.
machine=$(sed -n "s|.*machine='\([^']*\)'.*|\1|p" "$SCRATCH/auto.xml")
[[ $machine == pc-i440fx-* && $machine != *rhel* ]] || fail "--machine auto gave '$machine'"
if command -v virt-xml-validate >/dev/null; then
    virt-xml-validate "$SCRATCH/auto.xml" domain >/dev/null || fail "the rewritten XML does not validate"
fi
vmferry-check -c "$URI_B" "$SCRATCH/auto.xml" >"$SCRATCH/c2.txt" ||
    { cat "$SCRATCH/c2.txt"; fail "check fails after --machine/--emulator auto"; }
on_b qemu-img create -q -f qcow2 "$IMAGES_DIR/$auto.qcow2" 64M
virsh_b -q define "$SCRATCH/auto.xml" >/dev/null || fail "B refuses the auto-rewritten definition"
virsh_b -q start "$auto" >/dev/null || fail "the auto-rewritten domain does not start on B"
wait_state b "$auto" running 30
echo "   auto: $machine, $emulator_b; defined and running on B"
echo "stream rewrite OK"
