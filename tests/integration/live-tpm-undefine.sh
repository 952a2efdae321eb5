#!/bin/bash
# vmferry-migrate --live --undefine-source of a running TPM guest:
#   - it runs on B, persistent there, with the TPM state libvirt carried
#     under the same UUID on B;
#   - the source is undefined only after that (so A no longer has it), and
#     its disk file is kept on A;
#   - the disk on B holds the data written before the move.
. "$(dirname "$0")/functions.sh"

[[ ${TESTBED_TPM:-0} == 1 ]] || skip "the test bed has no swtpm: ${TESTBED_TPM_REASON:-swtpm unavailable}"
LIVE=(vmferry-migrate --live -c "$URI_A" --dest-uri "$TCP_URI_B" --migrate-uri tcp://127.0.0.1)

name=t-live-tpm
make_vm --tpm --start "$name" qcow2 256M 0x5e@0+4M
uuid=$(virsh_a domuuid "$name")
[[ -n $(find "$VMFERRY_TESTBED_DIR/a/lib/swtpm/$uuid" -type f ! -name '.*' 2>/dev/null) ]] ||
    fail "no TPM state on A for the running guest: test is void"

$VG "${LIVE[@]}" --undefine-source "$name" hostb || fail "live migration failed"

wait_state b "$name" running 30 || fail "$name does not run on B"
[[ $(virsh_b dominfo "$name" | awk '/^Persistent:/ {print $2}') == yes ]] ||
    fail "$name is not persistent on B"
[[ $(virsh_b domuuid "$name") == "$uuid" ]] || fail "the UUID changed"
[[ -n $(find "$VMFERRY_TESTBED_DIR/b/lib/swtpm/$uuid" -type f ! -name '.*' 2>/dev/null) ]] ||
    fail "no TPM state on B under $uuid"
virsh_a domuuid "$name" >/dev/null 2>&1 && fail "the source was not undefined"
[[ -f $IMAGES_A/$name.qcow2 ]] || fail "the source's disk file was removed"

virsh_b -q destroy "$name" >/dev/null
check_disk on_b "$IMAGES_DIR/$name.qcow2" qcow2 0x5e@0+4M 0x00@4M+64M ||
    fail "the disk on B does not hold what the guest had"
echo "live TPM + undefine-source OK"
