#!/bin/bash
# The journal of an import that carried TPM state says where that state
# is: in the target directory (without --define) or in libvirt's swtpm
# directory (with --define).  A run of the other kind finds it there:
# an import without --define, killed after its last rename (the commit),
# is finished by the next run with --define, not undone (it looked in the
# swtpm directory, took the placement for unfinished and left the TPM
# directory behind); that run then refuses, the files being there.
. "$(dirname "$0")/functions.sh"

type report >/dev/null 2>&1 || report() { :; }
[[ ${TESTBED_TPM:-0} == 1 ]] || skip "the test bed has no swtpm: ${TESTBED_TPM_REASON:-}"

vm=t-tpmroot
dest=/var/lib/libvirt/images/tpmroot
dir_on_b "$dest"
make_vm --uefi --tpm --start "$vm" qcow2 32M 0x11@0+1M
virsh_a -q destroy "$vm" >/dev/null
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/s.vmf"
drop_b() {
    virsh_b -q undefine --nvram --tpm "$vm" >/dev/null 2>&1 || true
    on_b sh -c "rm -rf $dest/* $dest/.[!.]*"
}
cleanup_add drop_b

on_b env VMFERRY_FAULT=place-committed:kill vmferry-import --dir "$dest" "$SCRATCH/s.vmf" \
    >/dev/null 2>&1 && fail "the import was not killed"
placed=$(on_b ls -A "$dest" | grep -v vmferry)
[[ $placed == *"$vm-tpm"* ]] || fail "not killed after the TPM state was placed: $placed"
on_b vmferry-import --dir "$dest" --define "$SCRATCH/s.vmf" >"$SCRATCH/out" 2>&1 &&
    fail "the files were there, yet the import with --define did not refuse"
grep -q 'finishing it' "$SCRATCH/out" || fail "the committed placement was not finished: $(cat "$SCRATCH/out")"
grep -q 'already exists' "$SCRATCH/out" || fail "unclear: $(cat "$SCRATCH/out")"
[[ $(on_b ls -A "$dest") == "$placed" ]] ||
    fail "the target is not as the finished import left it: $(on_b ls -A "$dest")"
virsh_b domuuid "$vm" >/dev/null 2>&1 && fail "a domain was defined"
report fault import-tpm-root-other-mode survived
echo "a journal of the other kind: finished, its TPM state found"
