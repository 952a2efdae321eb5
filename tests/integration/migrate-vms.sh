#!/bin/bash
# One-command migration of each test VM from host A to host B over B's sshd
# (vmferry-migrate: pre-flight check over qemu+ssh, export, rewrite, send
# with libssh, import, verify, define, start).  Each copy starts and runs
# on B, every disk is identical (qemu-img compare), NVRAM byte-identical.
# The shared VMs are copied under new names (--rename) into their own
# directory, so the sources stay untouched.  --dry-run changes nothing.
# --buffer's ring is used at its default, off and tiny.
. "$(dirname "$0")/functions.sh"

requires qemu-img

dest=/var/lib/libvirt/images/migrate
dir_on_b "$dest"

drop_b() {
    virsh_b -q destroy "$1" >/dev/null 2>&1 || true
    virsh_b -q undefine --nvram --tpm "$1" >/dev/null 2>&1 ||
        virsh_b -q undefine --nvram "$1" >/dev/null 2>&1 || true
}

# --dry-run prints the plan and the check, and changes nothing.
out=$(on_a vmferry-migrate vmf-qcow2 hostb --rename mig-dry --dest-dir "$dest" --dry-run) ||
    fail "--dry-run failed"
grep -q 'Dry run' <<<"$out" || fail "--dry-run printed no plan: $out"
# The file under the name it will have there (it follows --rename).
grep -q "$dest/mig-dry.qcow2" <<<"$out" || fail "--dry-run does not say where: $out"
# A qcow2's plan line gives the disk's virtual size beside the file's.
vsize=$(on_a qemu-img info --output=json "$IMAGES_DIR/vmf-qcow2.qcow2" | jq -r '."virtual-size"')
fsize=$(stat -c %s "$IMAGES_A/vmf-qcow2.qcow2")
((vsize != fsize)) || fail "vmf-qcow2's virtual size equals its file size: test is void"
grep -qE "mig-dry\.qcow2 \(file size [^,]+, virtual size [^,]+, allocated" <<<"$out" ||
    fail "--dry-run does not give the qcow2's virtual size: $out"
grep -qE '^ok:|^blocked|^warning' <<<"$out" || fail "--dry-run printed no findings: $out"
virsh_b domuuid mig-dry >/dev/null 2>&1 && fail "--dry-run defined the domain"
[[ -z $(on_b ls -A "$dest") ]] || fail "--dry-run wrote files: $(on_b ls -A "$dest")"
# A plan the check blocks (no such directory on B) fails the dry run.
if out=$(on_a vmferry-migrate vmf-qcow2 hostb --rename mig-dry --dest-dir /nonexistent/dir \
    --dry-run 2>&1); then
    fail "--dry-run of a blocked plan exited 0: $out"
fi
grep -q '^blocked' <<<"$out" || fail "--dry-run of a blocked plan printed no blocker: $out"
grep -q 'would be refused' <<<"$out" || fail "--dry-run does not say it would be refused: $out"

for vm in $TESTBED_VMS; do
    [[ $vm == vmf-running ]] && continue
    copy=mig-${vm#vmf-}
    cleanup_add drop_b "$copy"
    echo "== $vm -> host B as $copy"
    # The plan first, with the check's findings, then the move itself,
    # which runs the same check and must not be blocked by it.
    on_a vmferry-migrate "$vm" hostb --rename "$copy" --new-uuid --dest-dir "$dest" \
        --dry-run >"$SCRATCH/dry.out" || fail "$vm: --dry-run failed"
    grep -E '^(ok|blocked):' "$SCRATCH/dry.out" || fail "$vm: no check result"
    # The export runs ahead of the send by the default --buffer, or
    # without one, or through a ring far smaller than a record.
    case $vm in
        vmf-qcow2) buffer=--buffer=0 ;;
        vmf-uefi) buffer=--buffer=4093 ;;
        *) buffer= ;;
    esac
    on_a $VG vmferry-migrate -q $buffer "$vm" hostb --rename "$copy" --new-uuid \
        --dest-dir "$dest" --start ||
        fail "$vm: vmferry-migrate failed"
    wait_state b "$copy" running 30 || fail "$copy does not run on B"
    [[ $(virsh_a domstate "$vm") == "shut off" ]] || fail "$vm: source is not as it was"
    while read -r target src; do
        [[ -n $target ]] || continue
        dst=$(virsh_b domblklist "$copy" | awk -v t="$target" '$1 == t {print $2}')
        [[ $dst == "$dest/"* ]] || fail "$copy: disk $target points at '$dst'"
        on_a qemu-img compare -U "$src" "$IMAGES_B/migrate/${dst##*/}" >/dev/null ||
            fail "$vm: disk $target differs from its copy"
        echo "   $target: identical"
    done < <(virsh_a domblklist "$vm" | awk 'NR > 2 && $2 ~ /^\// {print $1, $2}')
    if [[ $vm == vmf-uefi ]]; then
        cmp "$VMFERRY_TESTBED_DIR/a/lib/qemu/nvram/vmf-uefi_VARS.fd" \
            "$IMAGES_B/migrate/${copy}_VARS.fd" || fail "NVRAM differs"
        echo "   NVRAM identical"
    fi
    echo "   runs on B"
    drop_b "$copy"
done
leftovers=$(on_b find "$dest" -name '.*')
[[ -z $leftovers ]] || fail "temporary files left: $leftovers"
echo "migrations OK"
