#!/bin/bash
# vmferry-check's reference check against host B (issue 13, "what a
# defined domain may point at"): a definition (XML, or a stream from A)
# that adds a disk on /etc/shadow or /dev/sda that does not travel, boots
# a kernel from the host, takes an NVRAM
# template from outside the firmware directories, names an emulator that
# is not B's, or carries qemu:commandline is blocked (exit 1) with a
# finding that names the element and the path and says how to allow it;
# the foreign emulator is reported without being run; --allow-path
# accepts exactly what it names, component by component; a stream whose
# CD-ROM does not travel is blocked until the CD-ROM travels
# (--include-readonly) or is allowed.
. "$(dirname "$0")/functions.sh"

requires jq

vm=t-refs
base=$SCRATCH/base.xml
tb_domain_xml $vm "$VIRT_TYPE" "$IMAGES_DIR/$vm.qcow2" qcow2 128 >"$base"
cleanup_add purge_vm $vm

# check ARG...: vmferry-check against B, the JSON in $SCRATCH/c.json.
check() {
    rc=0
    $VG vmferry-check -c "$URI_B" --json "$@" >"$SCRATCH/c.json" 2>"$SCRATCH/c.err" || rc=$?
}
# refused CHECK OBJECT ALLOW: exit 1, an error finding CHECK about OBJECT
# whose message or hint says "--allow-path ALLOW".
refused() {
    local got
    ((rc == 1)) || { cat "$SCRATCH/c.err"; jq . "$SCRATCH/c.json"; fail "$2: exit $rc, not 1"; }
    [[ $(jq -r .ok "$SCRATCH/c.json") == false ]] || fail "$2: ok is not false"
    got=$(jq -r --arg c "$1" --arg o "$2" \
        '.findings[] | select(.severity == "error" and .check == $c and .object == $o) |
         .message + " | " + (.hint // "")' "$SCRATCH/c.json")
    [[ -n $got ]] || { jq . "$SCRATCH/c.json" >&2; fail "no $1 error for '$2'"; }
    [[ $got == *"--allow-path $3"* ]] || fail "$2: '$got' does not say --allow-path $3"
    echo "   $1: $2 -> ${got%% | *}"
}
# no_reference: no reference finding at all.
no_reference() {
    [[ $(jq '[.findings[] | select(.check == "reference")] | length' "$SCRATCH/c.json") == 0 ]] ||
        { jq . "$SCRATCH/c.json" >&2; fail "$1: a reference finding is left"; }
}
edit() { sed "$1" "$base" >"$SCRATCH/$2.xml"; echo "$SCRATCH/$2.xml"; }
add_device() { edit "s|</devices>|$1</devices>|" "$2"; }

# The clean definition passes: its disk travels, its emulator is B's.
check "$base"
((rc == 0)) || { jq . "$SCRATCH/c.json"; fail "a clean domain does not pass (exit $rc)"; }
no_reference "clean"

# A second disk on a host file, and on a host block device, that do not
# travel (read-only disks stay unless exported with --include-readonly;
# a writable one in XML is one export would carry).
shadow_disk="<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/etc/shadow'/><target dev='vdb' bus='virtio'/><readonly/></disk>"
check "$(add_device "$shadow_disk" shadow)"
refused reference "disk vdb source /etc/shadow" /etc/shadow
check "$(add_device "<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='/dev/sda'/><target dev='vdb' bus='virtio'/><readonly/></disk>" sda)"
refused reference "disk vdb source /dev/sda" /dev/sda
# The text form blocks too.
rc=0
vmferry-check -c "$URI_B" "$SCRATCH/sda.xml" >"$SCRATCH/c.txt" 2>&1 || rc=$?
((rc == 1)) || { cat "$SCRATCH/c.txt"; fail "text check of /dev/sda exits $rc"; }
grep -q "^error: reference: disk vdb source /dev/sda: not carried" "$SCRATCH/c.txt" ||
    { cat "$SCRATCH/c.txt"; fail "the text output does not name /dev/sda"; }
grep -q "^ok:" "$SCRATCH/c.txt" && fail "the text output says ok"

# Direct kernel boot from the host, and an NVRAM template from elsewhere.
check "$(edit "s|</type>|</type><kernel>/boot/vmlinuz-evil</kernel><initrd>/etc/ssh/ssh_host_ed25519_key</initrd>|" kernel)"
refused reference "os/kernel /boot/vmlinuz-evil" /boot/vmlinuz-evil
refused reference "os/initrd /etc/ssh/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
check "$(edit "s|</type>|</type><nvram template='/root/vars.fd'>$NVRAM_DIR/$vm""_VARS.fd</nvram>|" template)"
refused reference "os/nvram template /root/vars.fd" /root/vars.fd

# An emulator that is not B's: reported, and never run (libvirt runs an
# emulator to probe it).
cat >"$SCRATCH/evil-emu" <<EOF
#!/bin/sh
touch '$SCRATCH/evil-ran'
exit 1
EOF
chmod 755 "$SCRATCH/evil-emu"
check "$(edit "s|<emulator>[^<]*</emulator>|<emulator>$SCRATCH/evil-emu</emulator>|" emu)"
refused emulator "emulator $SCRATCH/evil-emu" "$SCRATCH/evil-emu"
[[ $(jq -c '[.findings[] | select(.check == "emulator") | .fix[0]]' "$SCRATCH/c.json") == '["--emulator"]' ]] ||
    { jq . "$SCRATCH/c.json"; fail "the foreign emulator has no --emulator fix"; }
[[ ! -e $SCRATCH/evil-ran ]] || fail "vmferry-check ran the foreign emulator"

# Arbitrary QEMU arguments; allowed by name, they pass.
qcl=$(edit "s|<domain type='\([a-z]*\)'>|<domain type='\1' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>|; s|</devices>|</devices><qemu:commandline><qemu:arg value='-drive'/><qemu:arg value='file=/etc/shadow,if=virtio'/></qemu:commandline>|" qcl)
check "$qcl"
refused reference "<qemu:commandline> in libvirt's qemu namespace qemu-commandline" qemu-commandline
check --allow-path qemu-commandline "$qcl"
((rc == 0)) || { jq . "$SCRATCH/c.json"; fail "qemu-commandline allowed: exit $rc"; }

# A CD-ROM on a file of B, allowed by its directory (not by a string
# prefix of it).
mkdir -p "$SCRATCH/iso" "$SCRATCH/isos"
: >"$SCRATCH/iso/x.iso"
cd_xml=$(add_device "<disk type='file' device='cdrom'><source file='$SCRATCH/iso/x.iso'/><target dev='sda' bus='sata'/><readonly/></disk>" cd)
check "$cd_xml"
refused reference "disk sda source $SCRATCH/iso/x.iso" "$SCRATCH/iso/x.iso"
check --allow-path "$SCRATCH/isos" --allow-path "$SCRATCH/iso/x" "$cd_xml"
refused reference "disk sda source $SCRATCH/iso/x.iso" "$SCRATCH/iso/x.iso"
check --allow-path "$SCRATCH/iso/" "$cd_xml"
((rc == 0)) || { jq . "$SCRATCH/c.json"; fail "an allowed CD-ROM that B has: exit $rc"; }
no_reference "allowed CD-ROM"

# A relative --allow-path is refused before anything is checked.
rc=0
vmferry-check -c "$URI_B" --allow-path iso/x.iso "$cd_xml" >/dev/null 2>"$SCRATCH/c.err" || rc=$?
((rc != 0)) || fail "a relative --allow-path was accepted"
grep -q "allow-path: 'iso/x.iso' is neither an absolute path" "$SCRATCH/c.err" ||
    { cat "$SCRATCH/c.err"; fail "no clear error for a relative --allow-path"; }

# A stream from A whose definition names /etc/shadow and a CD-ROM that
# did not travel: the check reads the manifest to know what travelled.
# Exported with --include-readonly, the CD-ROM travels and passes.
tb_make_disk on_a "$IMAGES_DIR/$vm.qcow2" qcow2 16M "" 0x5a@0+64K || fail "cannot make the disk on A"
sed "s|</devices>|$shadow_disk</devices>|" "$cd_xml" >"$SCRATCH/a.xml"
virsh_a -q define "$SCRATCH/a.xml" >/dev/null || fail "cannot define $vm on A"
on_a $VG vmferry-export -c qemu:///system -o "$SCRATCH/a.vmf" $vm || fail "export failed"
check "$SCRATCH/a.vmf"
refused reference "disk vdb source /etc/shadow" /etc/shadow
refused reference "disk sda source $SCRATCH/iso/x.iso" "$SCRATCH/iso/x.iso"
check --allow-path /etc/shadow "$SCRATCH/a.vmf"
[[ $(jq -c '[.findings[] | select(.check == "reference") | .object]' "$SCRATCH/c.json") == "[\"disk sda source $SCRATCH/iso/x.iso\"]" ]] ||
    { jq . "$SCRATCH/c.json"; fail "--allow-path /etc/shadow: not exactly the CD-ROM left"; }
virsh_a -q undefine $vm >/dev/null || fail "cannot undefine $vm on A"
virsh_a -q define "$cd_xml" >/dev/null || fail "cannot redefine $vm on A"
on_a $VG vmferry-export -c qemu:///system --include-readonly -o "$SCRATCH/b.vmf" $vm ||
    fail "export --include-readonly failed"
check "$SCRATCH/b.vmf"
no_reference "CD-ROM carried"
echo "check refs OK"
