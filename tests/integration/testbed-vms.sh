#!/bin/bash
# The shared test VMs on host A are what tests rely on: states, disk
# formats, backing chain, sparseness, known contents, UEFI NVRAM, TPM state.
# Read-only: opens images with -U and never changes a VM.
# shellcheck source-path=SCRIPTDIR source=functions.sh
. "$(dirname "$0")/functions.sh"

requires virsh
requires qemu-img
requires qemu-io
requires jq
requires xmllint
requires debugfs
requires e2fsck

GIB=$((1024 * 1024 * 1024))
MIB=$((1024 * 1024))

declare -A want_state=(
    [vmf-raw]="shut off"
    [vmf-qcow2]="shut off"
    [vmf-chain]="shut off"
    [vmf-uefi]="shut off"
    [vmf-running]="running"
)
if [[ $TESTBED_TPM == 1 ]]; then
    want_state[vmf-tpm]="shut off"
else
    echo "$TEST_NAME: note: the bed has no TPM guest: $TESTBED_TPM_REASON" >&2
fi

xpath() { virsh_a dumpxml --inactive "$1" | xmllint --xpath "$2" -; }
info() { on_a qemu-img info -U --output=json "$@"; }

# Domains: on A only, expected state, expected virt type, disk path.
for d in "${!want_state[@]}"; do
    st=$(virsh_a domstate "$d") || fail "domain $d missing on host A"
    st=${st%%$'\n'*}
    [[ $st == "${want_state[$d]}" ]] || fail "$d is '$st', expected '${want_state[$d]}'"
    virsh_b domuuid "$d" >/dev/null 2>&1 && fail "$d exists on host B"
    want_type=$VIRT_TYPE
    [[ $d == vmf-uefi ]] && want_type=qemu   # OVMF runs under TCG: see testbed.sh
    [[ $(xpath "$d" 'string(/domain/@type)') == "$want_type" ]] || fail "$d is not of type $want_type"
    [[ $(xpath "$d" 'count(/domain/devices/interface)') == 0 ]] || fail "$d has a network interface"
done
for d in $TESTBED_VMS; do
    [[ -n ${want_state[$d]:-} ]] || fail "TESTBED_VMS lists $d, unknown to this test"
done
id=$(virsh_a domid vmf-running)
[[ ${id%%$'\n'*} =~ ^[0-9]+$ ]] || fail "vmf-running has no domain id ($id)"

# Disk paths in the definitions.
declare -A disk=(
    [vmf-raw]=$IMAGES_DIR/vmf-raw.img
    [vmf-qcow2]=$IMAGES_DIR/vmf-qcow2.qcow2
    [vmf-chain]=$IMAGES_DIR/vmf-chain.qcow2
    [vmf-uefi]=$IMAGES_DIR/vmf-uefi.qcow2
    [vmf-running]=$IMAGES_DIR/vmf-running.qcow2
    [vmf-tpm]=$IMAGES_DIR/vmf-tpm.qcow2
)
for d in "${!want_state[@]}"; do
    src=$(xpath "$d" 'string(/domain/devices/disk[@device="disk"]/source/@file)')
    [[ $src == "${disk[$d]}" ]] || fail "$d's disk is '$src', expected ${disk[$d]}"
    on_a test -f "$src" || fail "$d's disk $src does not exist on host A"
done

# Formats, sizes, sparseness, backing relations.
check_image() { # PATH FORMAT VIRTUAL-SIZE MAX-ALLOCATED BACKING
    local j fmt vsize asize backing
    j=$(info "$1") || fail "qemu-img info $1 failed"
    fmt=$(jq -r '.format' <<<"$j")
    vsize=$(jq -r '."virtual-size"' <<<"$j")
    asize=$(jq -r '."actual-size"' <<<"$j")
    backing=$(jq -r '."backing-filename" // ""' <<<"$j")
    [[ $fmt == "$2" ]] || fail "$1 is $fmt, expected $2"
    [[ $vsize == "$3" ]] || fail "$1 has virtual size $vsize, expected $3"
    ((asize > 0 && asize <= $4)) || fail "$1 has $asize bytes allocated, expected 1..$4 (sparse)"
    [[ $backing == "$5" ]] || fail "$1 has backing file '$backing', expected '$5'"
}
check_image "$IMAGES_DIR/vmf-raw.img" raw "$GIB" $((16 * MIB)) ""
check_image "$IMAGES_DIR/vmf-qcow2.qcow2" qcow2 "$GIB" $((32 * MIB)) ""
check_image "$IMAGES_DIR/vmf-chain-base.qcow2" qcow2 "$GIB" $((16 * MIB)) ""
check_image "$IMAGES_DIR/vmf-chain.qcow2" qcow2 "$GIB" $((16 * MIB)) "$IMAGES_DIR/vmf-chain-base.qcow2"
check_image "$IMAGES_DIR/vmf-uefi.qcow2" qcow2 $((256 * MIB)) $((16 * MIB)) ""
check_image "$IMAGES_DIR/vmf-running.qcow2" qcow2 $((256 * MIB)) $((16 * MIB)) ""
[[ $TESTBED_TPM != 1 ]] || check_image "$IMAGES_DIR/vmf-tpm.qcow2" qcow2 $((64 * MIB)) $((16 * MIB)) ""
# The overlay records its backing format, and the base is a real file there.
[[ $(info "$IMAGES_DIR/vmf-chain.qcow2" | jq -r '."backing-filename-format"') == qcow2 ]] ||
    fail "vmf-chain.qcow2 does not record backing format qcow2"
[[ $(info --backing-chain "$IMAGES_DIR/vmf-chain.qcow2" | jq 'length') == 2 ]] ||
    fail "vmf-chain's backing chain is not 2 images long"
# The raw disk is sparse on the file system too (holes, not zeros).
alloc=$(($(stat -c '%b * %B' "$IMAGES_A/vmf-raw.img")))
((alloc < 16 * MIB)) || fail "vmf-raw.img has $alloc bytes allocated on disk"

# Contents: every recorded pattern reads back; a wrong one does not.
declare -A pats=() fmts=()
while read -r _dom file fmt pat off len; do
    pats[$file]+=" $pat@$off+$len"
    fmts[$file]=$fmt
done <"$PATTERNS"
((${#pats[@]} >= 6)) || fail "$PATTERNS describes only ${#pats[@]} images"
for file in "${!pats[@]}"; do
    # shellcheck disable=SC2086 # one pattern per word
    check_disk on_a "$file" "${fmts[$file]}" ${pats[$file]} || fail "$file does not hold its patterns"
done
check_disk on_a "$IMAGES_DIR/vmf-raw.img" raw 0xa2@0+1M 2>/dev/null &&
    fail "check_disk accepts a wrong pattern"
# Through the chain the overlay shows the base where it has no data of its
# own; alone (no backing) it does not.
check_disk on_a "$IMAGES_DIR/vmf-chain.qcow2" qcow2 0xc1@0+1M || fail "vmf-chain does not show its base"
on_a qemu-io -U -r -f qcow2 -c 'read -P 0xc1 0 1M' \
    "json:{\"driver\":\"qcow2\",\"backing\":null,\"file\":{\"driver\":\"file\",\"filename\":\"$IMAGES_DIR/vmf-chain.qcow2\"}}" \
    >/dev/null 2>&1 && fail "vmf-chain.qcow2 itself holds the base's data"

# The ext4 file system on vmf-qcow2 holds the source tree.
on_a qemu-img dd -U -f qcow2 -O raw bs=1M count=$((EXT4_SIZE / MIB)) \
    if="$IMAGES_DIR/vmf-qcow2.qcow2" of="$SCRATCH/ext4.img" >/dev/null
e2fsck -fn "$SCRATCH/ext4.img" >"$SCRATCH/e2fsck.out" 2>&1 ||
    fail "ext4 on vmf-qcow2 is not clean: $(cat "$SCRATCH/e2fsck.out")"
mkdir "$SCRATCH/ext4"
debugfs -R "rdump / $SCRATCH/ext4" "$SCRATCH/ext4.img" >/dev/null 2>&1
(cd "$SCRATCH/ext4" && sha256sum --quiet -c "$EXT4_SUMS") || fail "ext4 on vmf-qcow2 does not hold the source tree"
[[ $(debugfs -R 'stat /data/hello-link' "$SCRATCH/ext4.img" 2>/dev/null) == *'Type: symlink'* ]] ||
    fail "ext4 on vmf-qcow2 lacks the symlink"

# UEFI: OVMF loader, NVRAM made from the template.
[[ $(xpath vmf-uefi 'string(/domain/os/loader)') == "$TB_OVMF_CODE" ]] || fail "vmf-uefi does not use $TB_OVMF_CODE"
nvram=$(xpath vmf-uefi 'string(/domain/os/nvram)')
[[ $nvram == "$NVRAM_DIR/vmf-uefi_VARS.fd" ]] || fail "vmf-uefi's NVRAM is '$nvram'"
size=$(on_a stat -c %s "$nvram") || fail "vmf-uefi's NVRAM $nvram does not exist"
tsize=$(stat -c %s "$TB_OVMF_VARS")
[[ $size == "$tsize" && $size == 540672 ]] || fail "vmf-uefi's NVRAM has $size bytes, template $tsize"

# TPM: emulator state under the domain's UUID.
if [[ $TESTBED_TPM == 1 ]]; then
    [[ $(xpath vmf-tpm 'string(/domain/devices/tpm/@model)') == tpm-crb ]] || fail "vmf-tpm has no tpm-crb"
    [[ $(xpath vmf-tpm 'string(/domain/devices/tpm/backend/@version)') == 2.0 ]] || fail "vmf-tpm is not TPM 2.0"
    uuid=$(virsh_a domuuid vmf-tpm)
    on_a test -s "$SWTPM_DIR/$uuid/tpm2/tpm2-00.permall" || fail "no TPM state for vmf-tpm under $SWTPM_DIR/$uuid"
fi

# vmf-running really runs, as a QEMU process in host A's namespace.
qpid=$(cat "$ROOT_A/run/libvirt/qemu/vmf-running.pid") || fail "vmf-running has no pid file"
[[ $(readlink "/proc/$qpid/ns/mnt") == "$MNTNS_A" ]] || fail "vmf-running's QEMU ($qpid) is not in host A's namespace"
# (domblkinfo asks QEMU itself, without tainting the domain.)
cap=$(virsh_a domblkinfo vmf-running vda | awk '$1 == "Capacity:" { print $2 }')
[[ $cap == $((256 * MIB)) ]] || fail "vmf-running's QEMU reports disk capacity '$cap'"

exit 0
