#!/bin/bash
# vmferry-check's other findings, each against host B with a definition
# that has exactly that problem: a clean domain passes (exit 0); a name or
# UUID already defined there, a PCI device B lacks, firmware and an NVRAM
# template B does not have, a volume of a pool B lacks, a network defined
# but not started, a CD-ROM image that does not travel (refused unless
# allowed, then missing on B), a directory without the room
# the disks need; a destination that does not answer is exit 2.
. "$(dirname "$0")/functions.sh"

requires jq

base=$SCRATCH/base.xml
tb_domain_xml t-chk "$VIRT_TYPE" "$IMAGES_DIR/t-chk.qcow2" qcow2 128 >"$base"
cleanup_add purge_vm t-chk
cleanup_add purge_vm t-chk-other
cleanup_add virsh_b -q net-undefine t-chk-net

# check XML: run vmferry-check against B, leave the JSON in $SCRATCH/c.json.
check() {
    rc=0
    $VG vmferry-check -c "$URI_B" --json "$@" >"$SCRATCH/c.json" 2>"$SCRATCH/c.err" || rc=$?
}
# expect CHECK OBJECT FIX-JSON: one error finding, with that fix (null: none).
expect() {
    local got
    ((rc == 1)) || { cat "$SCRATCH/c.err"; jq . "$SCRATCH/c.json"; fail "$1: exit $rc, not 1"; }
    got=$(jq -c --arg c "$1" --arg o "$2" \
        '[.findings[] | select(.severity == "error" and .check == $c and .object == $o) | .fix]' \
        "$SCRATCH/c.json")
    [[ $got == "[$3]" ]] || { jq . "$SCRATCH/c.json" >&2; fail "expected $1 '$2' with fix $3, got $got"; }
    echo "   $1: $2 -> $(jq -r --arg c "$1" '[.findings[] | select(.check == $c)][0].message' "$SCRATCH/c.json")"
}
edit() { sed "$1" "$base" >"$SCRATCH/$2.xml"; echo "$SCRATCH/$2.xml"; }

# A clean definition passes.
check "$base"
((rc == 0)) || { jq . "$SCRATCH/c.json"; fail "a clean domain does not pass (exit $rc)"; }
[[ $(jq -r .ok "$SCRATCH/c.json") == true ]] || fail "ok is not true"

# Name and UUID taken.
virsh_b -q define "$base" >/dev/null || fail "cannot define t-chk on B"
check "$base"
expect name "domain t-chk" '["--rename","t-chk-copy","--new-uuid","--new-macs"]'
uuid=$(virsh_b domuuid t-chk)
virsh_b -q undefine t-chk >/dev/null
sed "s|<name>t-chk</name>|<name>t-chk-other</name><uuid>$uuid</uuid>|" "$base" >"$SCRATCH/other.xml"
virsh_b -q define "$SCRATCH/other.xml" >/dev/null || fail "cannot define t-chk-other on B"
check "$(edit "s|<name>t-chk</name>|<name>t-chk</name><uuid>$uuid</uuid>|" uuid)"
expect uuid "uuid $uuid" '["--new-uuid"]'
virsh_b -q undefine t-chk-other >/dev/null

# A PCI device for passthrough that B does not have.
check "$(edit "s|</devices>|<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x7e' slot='0x1f' function='0x7'/></source></hostdev></devices>|" hostdev)"
expect device "hostdev pci 0000:7e:1f.7" '["--drop-device","hostdev"]'

# Firmware from another distribution's paths.
check "$(edit "s|<type arch='x86_64' machine='pc'>hvm</type>|<type arch='x86_64' machine='q35'>hvm</type><loader readonly='yes' type='pflash'>/usr/share/edk2/ovmf/OVMF_CODE_4M.fd</loader><nvram template='/usr/share/edk2/ovmf/OVMF_VARS_4M.fd'>$NVRAM_DIR/t-chk_VARS.fd</nvram>|" fw)"
expect firmware "loader /usr/share/edk2/ovmf/OVMF_CODE_4M.fd" \
    '["--map-path","/usr/share/edk2/ovmf/OVMF_CODE_4M.fd=/usr/share/OVMF/OVMF_CODE_4M.fd"]'
expect firmware "nvram template /usr/share/edk2/ovmf/OVMF_VARS_4M.fd" 'null'

# A volume of a pool B lacks.
check "$(edit "s|<disk type='file' device='disk'>|<disk type='volume' device='disk'>|; s|<source file='[^']*'/>|<source pool='fastpool' volume='t-chk.qcow2'/>|" vol)"
expect pool "pool fastpool" '["--pool","fastpool=default"]'

# A network defined but not started.
printf "<network><name>t-chk-net</name><bridge name='vmfchk%s'/></network>\n" "${VMFERRY_TESTBED_PORT_OFFSET:-0}" \
    >"$SCRATCH/net.xml"
virsh_b -q net-define "$SCRATCH/net.xml" >/dev/null || fail "cannot define t-chk-net on B"
check "$(edit "s|</devices>|<interface type='network'><source network='t-chk-net'/></interface></devices>|" net)"
((rc == 1)) || fail "inactive network: exit $rc"
[[ $(jq -r '.findings[] | select(.check == "network") | .hint' "$SCRATCH/c.json") == *"virsh net-start t-chk-net"* ]] ||
    { jq . "$SCRATCH/c.json"; fail "no hint to start the network"; }
echo "   network: inactive network reported with net-start"

# A CD-ROM image that does not travel: the import would refuse it unless
# allowed; allowed, it must be on B, and is not.
cdrom=$(edit "s|</devices>|<disk type='file' device='cdrom'><source file='$IMAGES_DIR/t-chk-install.iso'/><target dev='sda' bus='sata'/><readonly/></disk></devices>|" cdrom)
check "$cdrom"
expect reference "disk sda source $IMAGES_DIR/t-chk-install.iso" 'null'
check --allow-path "$IMAGES_DIR" "$cdrom"
expect path "disk sda $IMAGES_DIR/t-chk-install.iso" 'null'
[[ $(jq '[.findings[] | select(.check == "reference")] | length' "$SCRATCH/c.json") == 0 ]] ||
    { jq . "$SCRATCH/c.json"; fail "--allow-path $IMAGES_DIR did not allow the CD-ROM"; }

# Room: a 1 MiB directory on B for a disk with 4 MiB allocated on A.
on_b mkdir -p /var/lib/libvirt/t-chk-small
on_b mount -t tmpfs -o size=1m vmferry-small /var/lib/libvirt/t-chk-small
cleanup_add on_b umount /var/lib/libvirt/t-chk-small
on_a mkdir -p /var/lib/libvirt/t-chk-small
cleanup_add on_a rm -rf /var/lib/libvirt/t-chk-small
tb_make_disk on_a /var/lib/libvirt/t-chk-small/t-chk.qcow2 qcow2 64M "" 0x33@0+4M ||
    fail "cannot make the disk on A"
sed "s|$IMAGES_DIR/t-chk.qcow2|/var/lib/libvirt/t-chk-small/t-chk.qcow2|" "$base" >"$SCRATCH/small.xml"
virsh_a -q define "$SCRATCH/small.xml" >/dev/null || fail "cannot define t-chk on A"
rc=0
$VG vmferry-check -c "$URI_B" -s "$URI_A" --json t-chk >"$SCRATCH/c.json" || rc=$?
expect space "directory /var/lib/libvirt/t-chk-small" 'null'
# Sizes as people read them in the message, exact bytes beside it.
jq -e '[.findings[] | select(.check == "space")][0] |
       (.message | test("^the files need [0-9.]+ [KMGTPE]iB, [0-9.]+ ([KMGTPE]i)?B (is|are) free$"))
       and (.need_bytes > .free_bytes)' "$SCRATCH/c.json" >/dev/null ||
    fail "space: not in binary units with exact bytes: $(jq -c .findings "$SCRATCH/c.json")"

# A destination that does not answer: exit 2, not a finding.
rc=0
vmferry-check -c "qemu+tcp://127.0.0.1:9/system" "$base" >/dev/null 2>"$SCRATCH/c.err" || rc=$?
((rc == 2)) || fail "unreachable destination: exit $rc, not 2"
grep -q "cannot connect" "$SCRATCH/c.err" || { cat "$SCRATCH/c.err"; fail "no clear error"; }
echo "check findings OK"
