#!/bin/bash
# An import --force over an older copy of a domain is killed while it
# puts its files in place; the admin then types `virsh start NAME`.  The
# older definition must not run on the new copy: whatever it wrote there
# would go when the next run undoes the placement.  Once the files start
# to change, no domain of that name exists (the old one is renamed aside
# first), so the start fails; the next run, or --abort, brings back the
# old domain or finishes the new one.
#   1. same UUID (a newer state of the same VM), killed at every point
#      between the rename aside and the define's rename;
#   2. another UUID under the same name, killed after a file exchange.
. "$(dirname "$0")/functions.sh"

requires qemu-img

vm=t-startkill
dest=/var/lib/libvirt/images/startkill
dir_on_b "$dest"
make_vm "$vm" raw 16M 0x46@0+1M
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/old.vmf"
sum_old=$(sha256sum <"$IMAGES_A/$vm.img")
on_a qemu-io -f raw -c 'write -P 0x47 4M 1M' "$IMAGES_DIR/$vm.img" >/dev/null
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/new.vmf"
sum_new=$(sha256sum <"$IMAGES_A/$vm.img")
on_a vmferry-rewrite --new-uuid "$SCRATCH/new.vmf" -o "$SCRATCH/other.vmf"
[[ $sum_old != "$sum_new" ]] || fail "the two streams hold the same disk: test is void"

drop_b() {
    local d
    for d in $(virsh_b -q list --all --name | grep "^$vm" || true); do
        virsh_b -q destroy "$d" >/dev/null 2>&1 || true
        virsh_b -q undefine "$d" >/dev/null 2>&1 || true
    done
    on_b sh -c "rm -rf $dest/* $dest/.[!.]*"
}
cleanup_add drop_b

# disk_sum: the sha256 of the disk domain $vm has on B.
disk_sum() {
    local disk
    disk=$(virsh_b domblklist "$vm" | awk '$1 == "vda" { print $2 }')
    sha256sum <"$IMAGES_B/startkill/${disk##*/}"
}

# killed_then_start CASE POINT OLD NEW: import OLD, kill an import
# --force of NEW at POINT, start the domain; it must not run on the new
# copy.  Then AFTER (rerun or abort) and check what is there.
killed_then_start() {
    local what=$1 point=$2 old=$3 new=$4 after=$5 rc=0
    drop_b
    on_b vmferry-import --dir "$dest" --define "$SCRATCH/$old.vmf" >/dev/null
    on_b env VMFERRY_FAULT="$point" vmferry-import --dir "$dest" --define \
        --force "$SCRATCH/$new.vmf" >"$SCRATCH/out" 2>&1 || rc=$?
    ((rc == 137)) || fail "$what, $point: not killed there (status $rc): $(cat "$SCRATCH/out")"
    if virsh_b -q start "$vm" >/dev/null 2>&1; then
        [[ $(disk_sum) == "$sum_old" ]] ||
            fail "$what, $point: the older domain runs on the new copy after the kill"
        virsh_b -q destroy "$vm" >/dev/null
    fi
    if [[ $after == abort ]]; then
        on_b vmferry-import --abort="$vm" --dir "$dest" >"$SCRATCH/out" 2>&1 ||
            fail "$what, $point: --abort failed: $(cat "$SCRATCH/out")"
        # Past the define under the aside name the old definition is
        # gone: the abort finishes the new one.
        local want=$sum_old
        [[ $what$point == sameplace-defined-tmp ]] && want=$sum_new
        [[ $(disk_sum) == "$want" ]] ||
            fail "$what, $point: after --abort the domain is not the expected copy"
    else
        on_b vmferry-import --dir "$dest" --define --force "$SCRATCH/$new.vmf" \
            >"$SCRATCH/out" 2>&1 || fail "$what, $point: the re-run failed: $(cat "$SCRATCH/out")"
        [[ $(disk_sum) == "$sum_new" ]] ||
            fail "$what, $point: after the re-run the domain is not the new copy"
    fi
    [[ $(virsh_b -q list --all --name | grep -c "^$vm") == 1 ]] ||
        fail "$what, $point: domains left: $(virsh_b -q list --all --name)"
    [[ -z $(on_b find "$dest" -name '.*vmferry*') ]] ||
        fail "$what, $point: left over: $(on_b find "$dest" -name '.*vmferry*')"
    report fault "start-after-kill-$what-$point" survived
}

n=0
for point in place-aside place-renamed place-files-done place-defined-tmp; do
    for after in rerun abort; do
        killed_then_start same "$point" old new "$after"
        n=$((n + 1))
    done
done
for after in rerun abort; do
    killed_then_start other place-renamed old other "$after"
    n=$((n + 1))
done
echo "$n kills during the placement: the older domain never ran on the new copy"
