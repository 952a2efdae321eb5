#!/bin/bash
# vmferry-migrate --live of a UEFI guest (TCG: OVMF does not run under
# this machine's nested KVM): it is persistent on B, its NVRAM file is
# there at the path of its definition holding the source's variables, and
# it runs there.
# The guest is moved paused, then resumed on B: a running OVMF goes on
# writing variables on B after the switch (its boot continues there), so
# only a paused guest leaves two files to compare byte for byte.  The
# source's file carries a mark of its own, so a file B's libvirt made
# from the template would not pass.
. "$(dirname "$0")/functions.sh"

[[ -r /usr/share/OVMF/OVMF_CODE_4M.fd ]] || skip "no OVMF firmware (package ovmf)"
[[ -r $TB_OVMF_VARS ]] || skip "no OVMF variables template $TB_OVMF_VARS (package ovmf)"
LIVE=(vmferry-migrate --live -c "$URI_A" --dest-uri "$TCP_URI_B" --migrate-uri tcp://127.0.0.1)

name=t-live-uefi
nv_a=$VMFERRY_TESTBED_DIR/a/lib/qemu/nvram/${name}_VARS.fd
nv_b=$VMFERRY_TESTBED_DIR/b/lib/qemu/nvram/${name}_VARS.fd
cleanup_add purge_vm "$name"
tb_make_disk on_a "$IMAGES_DIR/$name.qcow2" qcow2 128M "" 0x4b@0+1M ||
    fail "cannot make the disk"
tb_domain_xml "$name" qemu "$IMAGES_DIR/$name.qcow2" qcow2 128 uefi >"$SCRATCH/$name.xml"
virsh_a -q define "$SCRATCH/$name.xml" >/dev/null
# The NVRAM file made here (libvirt keeps an existing one): the template
# with a mark in its last bytes.
cp "$TB_OVMF_VARS" "$nv_a"
printf 'vmferry live-uefi mark' |
    dd of="$nv_a" bs=1 seek=$(($(stat -c %s "$nv_a") - 64)) conv=notrunc status=none
cmp -s "$nv_a" "$TB_OVMF_VARS" && fail "marking the NVRAM failed: test is void"
virsh_a -q start --paused "$name" >/dev/null || fail "the UEFI guest does not start on A"
wait_state a "$name" paused 30 || fail "the UEFI guest is not paused on A"
cmp -s "$nv_a" "$TB_OVMF_VARS" && fail "libvirt replaced the marked NVRAM: test is void"

$VG "${LIVE[@]}" "$name" hostb || fail "live migration failed"
wait_state b "$name" paused 60 || fail "$name is not on B, paused as it was on A"
[[ $(virsh_b dominfo "$name" | awk '/^Persistent:/ {print $2}') == yes ]] ||
    fail "$name is not persistent on B"
grep -q "/var/lib/libvirt/qemu/nvram/${name}_VARS.fd" <<<"$(virsh_b dumpxml --inactive "$name")" ||
    fail "B's definition lost its NVRAM path"
cmp "$nv_a" "$nv_b" || fail "NVRAM on B differs from the source's"
virsh_b -q resume "$name" >/dev/null || fail "$name cannot be resumed on B"
wait_state b "$name" running 30 || fail "$name does not run on B"
[[ $(virsh_a domstate "$name") == "shut off" ]] || fail "the source is not shut off"
echo "live UEFI with NVRAM OK"
