#!/bin/bash
# vmferry-migrate --live of a running UEFI guest (TCG: OVMF does not run
# under this machine's nested KVM): it runs and is persistent on B, and
# its NVRAM file is there at the path of its definition, holding the
# source's variables.
. "$(dirname "$0")/functions.sh"

[[ -r /usr/share/OVMF/OVMF_CODE_4M.fd ]] || skip "no OVMF firmware (package ovmf)"
LIVE=(vmferry-migrate --live -c "$URI_A" --dest-uri "$TCP_URI_B" --migrate-uri tcp://127.0.0.1)

name=t-live-uefi
cleanup_add purge_vm "$name"
tb_make_disk on_a "$IMAGES_DIR/$name.qcow2" qcow2 128M "" 0x4b@0+1M ||
    fail "cannot make the disk"
tb_domain_xml "$name" qemu "$IMAGES_DIR/$name.qcow2" qcow2 128 uefi >"$SCRATCH/$name.xml"
virsh_a -q define "$SCRATCH/$name.xml" >/dev/null
virsh_a -q start "$name" >/dev/null || fail "the UEFI guest does not start on A"
wait_state a "$name" running 30 || fail "the UEFI guest does not run on A"
nv=/var/lib/libvirt/qemu/nvram/${name}_VARS.fd
[[ -s $VMFERRY_TESTBED_DIR/a/lib/qemu/nvram/${name}_VARS.fd ]] || fail "no NVRAM on A: test is void"

$VG "${LIVE[@]}" "$name" hostb || fail "live migration failed"
wait_state b "$name" running 60 || fail "$name does not run on B"
[[ $(virsh_b dominfo "$name" | awk '/^Persistent:/ {print $2}') == yes ]] ||
    fail "$name is not persistent on B"
grep -q "$nv" <<<"$(virsh_b dumpxml --inactive "$name")" || fail "B's definition lost its NVRAM path"
virsh_b -q destroy "$name" >/dev/null
cmp "$VMFERRY_TESTBED_DIR/a/lib/qemu/nvram/${name}_VARS.fd" \
    "$VMFERRY_TESTBED_DIR/b/lib/qemu/nvram/${name}_VARS.fd" ||
    fail "NVRAM on B differs from the source's"
[[ $(virsh_a domstate "$name") == "shut off" ]] || fail "the source is not shut off"
echo "live UEFI with NVRAM OK"
