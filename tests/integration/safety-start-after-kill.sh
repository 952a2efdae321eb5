#!/bin/bash
# An import --force over an older copy of a domain is killed right after
# it exchanged the disk; the admin then starts the domain.  Its definition
# is still the older copy's, but its disk path now holds the new copy: the
# older domain must not run on the new copy (whatever it writes there goes
# when the next run undoes the placement).  OPEN FINDING (adversarial pass
# on issue 13, not fixed): today the domain starts on the new copy.  Skipped
# unless VMFERRY_TEST_OPEN_FINDINGS=1, so that the suite stays green while
# it is open; run it with that to see it fail.
. "$(dirname "$0")/functions.sh"

[[ ${VMFERRY_TEST_OPEN_FINDINGS:-0} == 1 ]] ||
    skip "open finding (the older domain starts on the new copy after a kill at place-renamed); VMFERRY_TEST_OPEN_FINDINGS=1 runs it"
requires qemu-img

vm=t-startkill
dest=/var/lib/libvirt/images/startkill
dir_on_b "$dest"
make_vm "$vm" raw 16M 0x46@0+1M
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/old.vmf"
sum_old=$(sha256sum <"$IMAGES_A/$vm.img")
on_a qemu-io -f raw -c 'write -P 0x47 4M 1M' "$IMAGES_DIR/$vm.img" >/dev/null
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/new.vmf"
drop_b() {
    virsh_b -q destroy "$vm" >/dev/null 2>&1 || true
    virsh_b -q undefine "$vm" >/dev/null 2>&1 || true
    on_b sh -c "rm -rf $dest/* $dest/.[!.]*"
}
cleanup_add drop_b

on_b vmferry-import --dir "$dest" --define "$SCRATCH/old.vmf" >/dev/null
on_b env VMFERRY_FAULT=place-renamed:kill vmferry-import --dir "$dest" --define --force \
    "$SCRATCH/new.vmf" >/dev/null 2>&1 && fail "the import was not killed"
if virsh_b -q start "$vm" >/dev/null 2>&1; then
    disk=$(virsh_b domblklist "$vm" | awk '$1 == "vda" { print $2 }')
    [[ $(sha256sum <"$IMAGES_B/startkill/${disk##*/}") == "$sum_old" ]] ||
        fail "the older domain runs on the new copy ($disk) after a kill at place-renamed"
fi
echo "the older domain does not run on the new copy"
