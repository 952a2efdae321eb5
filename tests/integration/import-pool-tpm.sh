#!/bin/bash
# The TPM guest through a pipe into a storage pool, as a copy beside the
# original:
#   vmferry-export vmf-tpm | ssh hostb vmferry-import --pool default --define --name COPY
# Its swtpm state lands under the copy's new UUID, byte-identical; the disk
# is a volume of the pool; the domain then starts with that state.
. "$(dirname "$0")/functions.sh"

[[ ${TESTBED_TPM:-0} == 1 ]] || skip "the test bed has no TPM guest: ${TESTBED_TPM_REASON:-swtpm unavailable}"

copy=t-tpm-copy
drop_b() {
    virsh_b -q destroy "$copy" >/dev/null 2>&1 || true
    virsh_b -q undefine --nvram --tpm "$copy" >/dev/null 2>&1 || true
    on_b rm -f /var/lib/libvirt/images/$copy.qcow2
    virsh_b -q pool-refresh default >/dev/null 2>&1 || true
}
cleanup_add drop_b

src_uuid=$(virsh_a domuuid vmf-tpm)
src_state=$VMFERRY_TESTBED_DIR/a/lib/swtpm/$src_uuid
[[ -n $(find "$src_state" -type f) ]] || fail "vmf-tpm has no TPM state on A: test is void"

on_a $VG vmferry-export -c qemu:///system vmf-tpm |
    ssh_b "$VG vmferry-import --pool default --define --name $copy" ||
    fail "export | ssh | import --pool --define failed"

uuid=$(virsh_b domuuid "$copy")
[[ $uuid != "$src_uuid" ]] || fail "the copy kept the source UUID"

# The pool knows the disk as a volume, named after the copy: a copy
# never shares a file name with its original.
grep -q "$copy.qcow2" <<<"$(virsh_b vol-list default)" || fail "the disk is not a volume of pool default"

# TPM state: every state file of the source (not swtpm's dot-lock), byte
# for byte, under the copy's UUID, before the copy first runs.
dst_state=$VMFERRY_TESTBED_DIR/b/lib/swtpm/$uuid
[[ -d $dst_state ]] || fail "no TPM state under the copy's UUID ($dst_state)"
n=0
while IFS= read -r f; do
    rel=${f#"$src_state"/}
    cmp "$f" "$dst_state/$rel" || fail "TPM state file $rel differs or is missing on B"
    echo "   TPM state $rel identical"
    n=$((n + 1))
done < <(find "$src_state" -type f ! -name '.*')
((n > 0)) || fail "no TPM state file compared"
[[ ! -e $VMFERRY_TESTBED_DIR/b/lib/swtpm/$src_uuid ]] || fail "state was also put under the source UUID"

virsh_b -q start "$copy" >/dev/null || fail "$copy does not start on B"
wait_state b "$copy" running 30 || fail "$copy does not run on B"
echo "pool + TPM OK"
