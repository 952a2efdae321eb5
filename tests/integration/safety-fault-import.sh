#!/bin/bash
# The fault matrix of vmferry-import: SIGKILL at every named point of an
# import (tests of lib/fault.h), each occurrence of each point, for
#   1. a fresh import --define (nothing of the domain on B yet), and
#   2. an import --define --force over an older copy of the same domain
#      (same UUID: its disk, NVRAM and TPM state are replaced),
# of a UEFI guest with TPM state.  After every kill:
#   - nothing outside the target directory changed, but for libvirt's own
#     TPM directory of this UUID;
#   - case 2, after vmferry-import --abort: the domain and every file are
#     wholly the old copy or (the kill came after the commit) wholly the
#     new one, never a mix, and nothing of the import is left;
#   - running the same import again finishes the move: the copy compares
#     identical with the source (disk with qemu-img compare, NVRAM and TPM
#     state byte for byte), the domain is defined once, nothing is left.
. "$(dirname "$0")/functions.sh"

type report >/dev/null 2>&1 || report() { :; }
[[ ${TESTBED_TPM:-0} == 1 ]] || skip "the test bed has no swtpm: ${TESTBED_TPM_REASON:-}"
requires qemu-img

vm=t-fault
dest=/var/lib/libvirt/images/fault
tpm_root=$VMFERRY_TESTBED_DIR/b/lib/swtpm
dir_on_b "$dest"

make_vm --uefi --tpm --start "$vm" qcow2 64M 0x11@0+1M 0x22@32M+2M
virsh_a -q destroy "$vm" >/dev/null
uuid=$(virsh_a domuuid "$vm")
[[ -n $(find "$VMFERRY_TESTBED_DIR/a/lib/swtpm/$uuid" -type f) ]] || fail "no TPM state made on A"
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/old.vmf"
# A newer state of the same domain: other data, so another stream.
on_a qemu-io -f qcow2 -c 'write -P 0x33 8M 1M' "$IMAGES_DIR/$vm.qcow2" >/dev/null
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/new.vmf"

drop_b() {
    virsh_b -q undefine --nvram --tpm "$vm" >/dev/null 2>&1 ||
        virsh_b -q undefine "$vm" >/dev/null 2>&1 || true
    for d in $(virsh_b -q list --all --name | grep "^$vm\." || true); do
        virsh_b -q undefine --keep-nvram "$d" >/dev/null 2>&1 || true
    done
    on_b sh -c "rm -rf $dest/* $dest/.[!.]* /var/lib/libvirt/swtpm/$uuid /var/lib/libvirt/swtpm/.$uuid.*"
}
cleanup_add drop_b

# import [ENV=VALUE...] ARGS...: vmferry-import on B into $dest.
import() {
    local -a env=()
    while [[ $1 == *=* ]]; do env+=("$1"); shift; done
    on_b env "${env[@]}" vmferry-import --dir "$dest" --define "$@"
}

# snapshot: what the domain and its files are on B, one line each.
snapshot() {
    {
        virsh_b domuuid "$vm" 2>/dev/null || echo "no domain"
        virsh_b -q list --all --name | grep -c "^$vm" || true
        on_b sh -c "cd $dest && find . -type f | sort | xargs -r sha256sum"
        if [[ -d $tpm_root/$uuid ]]; then
            (cd "$tpm_root/$uuid" && find . -type f ! -name .lock | sort | xargs -r sha256sum)
        else
            echo "no TPM state"
        fi
    }
}

# outside: everything of B's that is not the target or this UUID's TPM
# state (names, sizes, times): it must never change.
outside() {
    find "$IMAGES_B" "$tpm_root" -path "$IMAGES_B/fault" -prune -o \
        -path "$tpm_root/$uuid" -prune -o -name ".$uuid.vmferry-*" -prune -o \
        \( -type d -printf '%p/\n' \) -o -printf '%p %s %T@\n' 2>/dev/null | sort
}

# leftovers: anything of an import still in the target or TPM root.
leftovers() {
    find "$IMAGES_B/fault" "$tpm_root" -maxdepth 1 -name '.*vmferry*' 2>/dev/null || true
}

# same_as STREAM: the copy on B is exactly what STREAM holds (and no mark of
# another import left behind).
same_as() {
    local src=$1 what=$2
    [[ $(virsh_b domuuid "$vm") == "$uuid" ]] || fail "$what: domain $vm is not there with its UUID"
    [[ $(virsh_b -q list --all --name | grep -c "^$vm") == 1 ]] ||
        fail "$what: more than one domain: $(virsh_b -q list --all --name)"
    [[ -z $(leftovers) ]] || fail "$what: left over: $(leftovers) ($(cat "$SCRATCH/abort.out" 2>/dev/null))"
    [[ $(snapshot) == "$(cat "$SCRATCH/$src.snap")" ]] ||
        fail "$what: the copy is not the $src one ($(cat "$SCRATCH/abort.out" 2>/dev/null)): $(diff <(snapshot) "$SCRATCH/$src.snap")"
}

# The reference copies: import each stream once, cleanly, and take a
# snapshot of what it leaves; the new one also compared with the source.
for s in old new; do
    drop_b
    import "$SCRATCH/$s.vmf" >/dev/null 2>&1 || fail "clean import of the $s stream failed"
    snapshot >"$SCRATCH/$s.snap"
done
on_a qemu-img compare -U "$IMAGES_DIR/$vm.qcow2" "$IMAGES_B/fault/$vm.qcow2" >/dev/null ||
    fail "the clean copy differs from the source"
cmp "$VMFERRY_TESTBED_DIR/a/lib/qemu/nvram/${vm}_VARS.fd" "$IMAGES_B/fault/${vm}_VARS.fd" ||
    fail "the clean copy's NVRAM differs"
cmp <(sed 1,3d "$SCRATCH/old.snap") <(sed 1,3d "$SCRATCH/new.snap") >/dev/null &&
    fail "the two streams make the same files: test is void"

# trace_points ARGS...: the points an import with ARGS passes, each
# occurrence as POINT@N (a fault for each).
trace_points() {
    : >"$SCRATCH/trace"
    import VMFERRY_FAULT_TRACE="$SCRATCH/trace" "$@" >/dev/null 2>&1 ||
        fail "the traced import $* failed"
    awk '{n[$1]++; if (n[$1] == 1) order[++k] = $1}
        END {for (i = 1; i <= k; i++) for (j = 1; j <= n[order[i]]; j++) print order[i] "@" j}' \
        "$SCRATCH/trace"
}
drop_b
mapfile -t fresh_points < <(trace_points "$SCRATCH/old.vmf")
mapfile -t force_points < <(trace_points --force "$SCRATCH/new.vmf")
((${#fresh_points[@]} >= 8 && ${#force_points[@]} >= 8)) ||
    fail "too few fault points: ${fresh_points[*]} / ${force_points[*]}"
echo "fresh import: ${fresh_points[*]}"
echo "--force over the old copy: ${force_points[*]}"
ref_outside=$(outside)

faults=0
# 1. A fresh import killed at P, then run again.
for p in "${fresh_points[@]}"; do
    drop_b
    rc=0
    import VMFERRY_FAULT="$p" "$SCRATCH/old.vmf" >"$SCRATCH/out" 2>&1 || rc=$?
    ((rc == 137)) || fail "fresh, $p: not killed there (status $rc): $(cat "$SCRATCH/out")"
    [[ $(outside) == "$ref_outside" ]] || fail "fresh, $p: something outside the target changed"
    import "$SCRATCH/old.vmf" >"$SCRATCH/out" 2>&1 || fail "fresh, $p: the re-run failed: $(cat "$SCRATCH/out")"
    same_as old "fresh, $p"
    report fault "import-fresh-$p" survived
    faults=$((faults + 1))
done

# 2. Replacing the old copy with --force, killed at P; then --abort (the
# old copy whole, or the new one if the kill came after the commit) and
# the re-run; and killed again with the re-run alone recovering.
for p in "${force_points[@]}"; do
    drop_b
    import "$SCRATCH/old.vmf" >/dev/null 2>&1 || fail "force, $p: cannot set up the old copy"
    rc=0
    import VMFERRY_FAULT="$p" --force "$SCRATCH/new.vmf" >"$SCRATCH/out" 2>&1 || rc=$?
    ((rc == 137)) || fail "force, $p: not killed there (status $rc): $(cat "$SCRATCH/out")"
    [[ $(outside) == "$ref_outside" ]] || fail "force, $p: something outside the target changed"
    on_b vmferry-import --abort="$vm" --dir "$dest" >"$SCRATCH/abort.out" 2>&1 || true
    if [[ $(snapshot) == "$(cat "$SCRATCH/new.snap")" ]]; then
        same_as new "force, $p, aborted (after the commit)"
    else
        same_as old "force, $p, aborted"
    fi
    import --force "$SCRATCH/new.vmf" >"$SCRATCH/out" 2>&1 ||
        fail "force, $p: the re-run failed: $(cat "$SCRATCH/out")"
    same_as new "force, $p"
    report fault "import-force-$p" survived

    drop_b
    import "$SCRATCH/old.vmf" >/dev/null 2>&1 || fail "force again, $p: cannot set up the old copy"
    rc=0
    import VMFERRY_FAULT="$p" --force "$SCRATCH/new.vmf" >"$SCRATCH/out" 2>&1 || rc=$?
    ((rc == 137)) || fail "force again, $p: not killed there (status $rc)"
    import --force "$SCRATCH/new.vmf" >"$SCRATCH/out" 2>&1 ||
        fail "force again, $p: the re-run failed: $(cat "$SCRATCH/out")"
    same_as new "force again, $p"
    report fault "import-force-rerun-$p" survived
    faults=$((faults + 2))
done
echo "$faults faults injected at $((${#fresh_points[@]} + ${#force_points[@]})) points, every one survived"
