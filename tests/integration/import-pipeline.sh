#!/bin/bash
# The scripted pipeline of the design, with the system's own OpenSSH:
#   vmferry-export VM | vmferry-rewrite --map-path OLD=NEW ... | ssh B vmferry-import --define
# No --dir: the files land where the rewritten stream says, if that is a
# storage pool of B (a stream does not choose any directory of the host),
# the domain is defined there, and the data is identical.
. "$(dirname "$0")/functions.sh"

make_vm t-pipe qcow2 512M 0x3c@0+2M 0x3d@200M+1M
newdir=/var/lib/libvirt/pipeline
on_b mkdir -p "$newdir"
cleanup_add on_b rm -rf "$newdir"
cleanup_add virsh_b -q undefine t-pipe-copy

# Not yet a pool: refused, nothing written.
on_a vmferry-export -c qemu:///system t-pipe |
    vmferry-rewrite --map-path "/var/lib/libvirt/images=$newdir" --rename t-pipe-copy --new-uuid |
    ssh_b "vmferry-import --define" 2>"$SCRATCH/err" &&
    fail "a stream chose a directory that is not a pool"
grep -q "neither a storage pool of this host" "$SCRATCH/err" || fail "unclear: $(cat "$SCRATCH/err")"
[[ -z $(on_b ls -A "$newdir") ]] || fail "left in $newdir: $(on_b ls -A "$newdir")"
virsh_b domuuid t-pipe-copy >/dev/null 2>&1 && fail "t-pipe-copy was defined"

virsh_b -q pool-define-as vmf-pipeline dir --target "$newdir" >/dev/null
cleanup_add virsh_b -q pool-undefine vmf-pipeline
virsh_b -q pool-start vmf-pipeline >/dev/null
cleanup_add virsh_b -q pool-destroy vmf-pipeline

on_a $VG vmferry-export -c qemu:///system t-pipe |
    $VG vmferry-rewrite --map-path "/var/lib/libvirt/images=$newdir" \
        --rename t-pipe-copy --new-uuid |
    ssh_b "$VG vmferry-import --define" ||
    fail "export | rewrite | ssh import --define failed"

src=$(virsh_b domblklist t-pipe-copy | awk '$1 == "vda" {print $2}')
[[ $src == "$newdir/t-pipe.qcow2" ]] || fail "disk of the copy is at '$src', not in $newdir"
check_disk on_b "$src" qcow2 0x3c@0+2M 0x3d@200M+1M 0x00@2M+198M ||
    fail "the copy does not hold the source's data"
on_a qemu-img compare -U "$IMAGES_DIR/t-pipe.qcow2" "$VMFERRY_TESTBED_DIR/b/lib/pipeline/t-pipe.qcow2" ||
    fail "disk differs"
[[ $(virsh_b domuuid t-pipe-copy) != $(virsh_a domuuid t-pipe) ]] || fail "UUID not renewed"

# A directory that does not exist on B: refused, nothing written anywhere.
on_a vmferry-export -c qemu:///system t-pipe |
    vmferry-rewrite --map-path "/var/lib/libvirt/images=/var/lib/libvirt/nowhere" |
    ssh_b "vmferry-import --define" 2>"$SCRATCH/err" &&
    fail "an import into a missing directory succeeded"
grep -q '/var/lib/libvirt/nowhere, which is neither a storage pool' "$SCRATCH/err" ||
    fail "unclear: $(cat "$SCRATCH/err")"
echo "pipeline OK"
