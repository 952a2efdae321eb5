#!/bin/bash
# vmferry-migrate --undefine-source --remove-source-storage: after the
# copy is verified and defined on B and the source undefined, the
# source's disk, NVRAM and TPM state are removed; a file another defined
# domain refers to is kept, naming that domain; a failed move removes
# nothing; without --undefine-source the option is refused.
. "$(dirname "$0")/functions.sh"

requires qemu-img
[[ $TESTBED_TPM == 1 ]] || skip "no TPM on the test bed: $TESTBED_TPM_REASON"

vm=t-rss
make_vm --uefi --tpm --start "$vm" raw 64M 0x5a@0+1M
virsh_a -q destroy "$vm" >/dev/null
wait_state a "$vm" "shut off" 30
uuid=$(virsh_a domuuid "$vm")
disk=$IMAGES_A/$vm.img
nvram=$VMFERRY_TESTBED_DIR/a/lib/qemu/nvram/${vm}_VARS.fd
tpm=$VMFERRY_TESTBED_DIR/a/lib/swtpm/$uuid   # $SWTPM_DIR on A
[[ -f $nvram ]] || fail "no NVRAM after the first start: test is void"
[[ -d $tpm ]] || fail "no TPM state after the first start: test is void"
dest=/var/lib/libvirt/images/rss
dir_on_b "$dest"
cleanup_add purge_vm "$vm"

migrate() {
    on_a vmferry-migrate "$vm" hostb --dest-dir "$dest" "$@"
}
all_there() {
    [[ -f $disk && -f $nvram && -d $tpm ]] || fail "$1: a source file is gone"
    [[ $(virsh_a domuuid "$vm" 2>/dev/null) == "$uuid" ]] || fail "$1: source undefined"
}

# Refused without --undefine-source.
migrate --remove-source-storage 2>"$SCRATCH/err" && fail "accepted without --undefine-source"
grep -q 'needs --undefine-source' "$SCRATCH/err" || fail "no reason: $(cat "$SCRATCH/err")"
all_there "usage error"

# --dry-run says so, and removes nothing.
out=$(migrate --undefine-source --remove-source-storage --dry-run) ||
    fail "--dry-run failed: $out"
grep -q 'remove its files' <<<"$out" || fail "--dry-run does not say it: $out"
all_there "--dry-run"

# A failed move (the domain exists on B) removes nothing.
virsh_b -q define "$SCRATCH/$vm.xml" >/dev/null
migrate --undefine-source --remove-source-storage 2>"$SCRATCH/err" &&
    fail "migrated onto an existing domain"
all_there "failed move"
virsh_b -q undefine --nvram "$vm" >/dev/null

# Another domain refers to the disk (read-only, so the export takes it):
# the disk is kept, naming it; the NVRAM and the TPM state go.
peer=t-rss-peer
cleanup_add purge_vm "$peer"
sed -e "s|<name>$vm</name>|<name>$peer</name>|" -e "/<nvram/d" -e "/<loader/d" \
    -e "/<tpm /d" -e "s|<target dev='vda' bus='virtio'/>|&<readonly/>|" \
    "$SCRATCH/$vm.xml" >"$SCRATCH/$peer.xml"
virsh_a -q define "$SCRATCH/$peer.xml" >/dev/null
migrate -v --undefine-source --remove-source-storage 2>"$SCRATCH/err" ||
    fail "the move failed: $(cat "$SCRATCH/err")"
virsh_a domuuid "$vm" >/dev/null 2>&1 && fail "the source is still defined"
[[ -f $disk ]] || fail "the disk another domain uses was removed"
grep -q "$IMAGES_DIR/$vm.img: kept: used by domain $peer" "$SCRATCH/err" ||
    fail "the kept disk is not said: $(cat "$SCRATCH/err")"
[[ -e $nvram ]] && fail "the NVRAM was kept"
[[ -e $tpm ]] && fail "the TPM state was kept"
check_disk on_b "$dest/$vm.img" raw 0x5a@0+1M || fail "the copy on B differs"
[[ -f $IMAGES_B/rss/${vm}_VARS.fd ]] || fail "no NVRAM on B"
virsh_b -q undefine --nvram --tpm "$vm" >/dev/null
echo "   a shared disk kept, NVRAM and TPM state removed"

# Nothing shared: everything goes.
virsh_a -q undefine "$peer" >/dev/null
virsh_a -q define "$SCRATCH/$vm.xml" >/dev/null
on_b rm -f "$dest/$vm.img" "$dest/${vm}_VARS.fd"
migrate --undefine-source --remove-source-storage 2>"$SCRATCH/err" ||
    fail "the second move failed: $(cat "$SCRATCH/err")"
[[ -e $disk ]] && fail "the disk was kept"
check_disk on_b "$dest/$vm.img" raw 0x5a@0+1M || fail "the second copy on B differs"
echo "   the disk removed once no other domain uses it"
echo "migrate --remove-source-storage OK"
