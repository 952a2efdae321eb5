#!/bin/bash
# The fault matrix of vmferry-migrate --live: SIGKILL of the migrating
# process at each of its named points -- after its journal is written and
# before anything exists on B, after each file is made on B (the thin
# disk, the NVRAM file), twice while libvirt copies the disk (polls chosen
# by seed), after libvirt's job is done -- for a running UEFI guest.
# After every kill, once libvirt has settled, the domain runs on exactly
# one host; the same command run again finishes the move (clearing what
# the killed run made on B first, or, if libvirt had completed it, saying
# so): the domain runs and is persistent on B, is shut off on A, its disk
# on B compares identical with A's, and nothing else of it is on B.
. "$(dirname "$0")/functions.sh"

type report >/dev/null 2>&1 || report() { :; }
requires qemu-img

LIVE=(vmferry-migrate --live -c "$URI_A" --dest-uri "$TCP_URI_B" --migrate-uri tcp://127.0.0.1)
export VMFERRY_STATE_DIR=$SCRATCH/state
vm=t-flive
make_vm --uefi --start "$vm" qcow2 128M 0x61@0+24M
uuid=$(virsh_a domuuid "$vm")

drop_b() {
    virsh_b -q destroy "$vm" >/dev/null 2>&1 || true
    virsh_b -q undefine --nvram --tpm "$vm" >/dev/null 2>&1 ||
        virsh_b -q undefine "$vm" >/dev/null 2>&1 || true
    on_b rm -f "$IMAGES_DIR/$vm.qcow2" "$NVRAM_DIR/${vm}_VARS.fd"
}
cleanup_add drop_b

# settle: libvirt has finished with the killed run's job on both hosts:
# A's job has ended, and B has let go of the incoming domain a killed
# run left paused there (B's libvirtd destroys it once it sees the
# client's connection closed, a moment after A ends its job) or runs it.
settle() {
    local i job
    for ((i = 0; i < 600; i++)); do
        job=$(virsh_a domjobinfo "$vm" 2>/dev/null | awk '/^Job type:/ {print $3}' || true)
        [[ -z $job || $job == None ]] && break
        sleep 0.1
    done
    ((i < 600)) || fail "$1: the migration job on A does not end"
    for ((i = 0; i < 600; i++)); do
        [[ $(where) != both ]] && return 0
        sleep 0.1
    done
    fail "$1: 60 s after the kill the domain still runs on both"
}

# where: "A", "B", or what else (both, neither).
where() {
    local a b
    a=$(virsh_a domstate "$vm" 2>/dev/null | head -n1)
    b=$(virsh_b domstate "$vm" 2>/dev/null | head -n1)
    case "$a/$b" in
        running/running | paused/running | running/paused) echo both ;;
        running/* | paused/*) echo A ;;
        */running) echo B ;;
        *) echo "neither (A: ${a:-absent}, B: ${b:-absent})" ;;
    esac
}

# moved WHAT: on B, persistent, shut off on A, disk identical, nothing left.
moved() {
    [[ $(where) == B ]] || fail "$1: the domain is not running on B only: $(where)"
    [[ $(virsh_b dominfo "$vm" | awk '/^Persistent:/ {print $2}') == yes ]] ||
        fail "$1: not persistent on B"
    on_a qemu-img compare -U "$IMAGES_DIR/$vm.qcow2" "$IMAGES_B/$vm.qcow2" >/dev/null ||
        fail "$1: the disk on B differs from A's"
    [[ -z $(find "$VMFERRY_STATE_DIR" -type f 2>/dev/null) ]] ||
        fail "$1: a journal was left: $(ls "$VMFERRY_STATE_DIR")"
    [[ $(virsh_b -q vol-list default | awk '{print $1}' | grep -c "^$vm") == 1 ]] ||
        fail "$1: B's images: $(virsh_b -q vol-list default)"
}

# back: the domain runs on A again, nothing of it on B.
back() {
    drop_b
    virsh_b -q pool-refresh default >/dev/null
    [[ $(virsh_a domstate "$vm" | head -n1) == running ]] || virsh_a -q start "$vm" >/dev/null
    wait_state a "$vm" running 60
}

# The points of a run, and seeded polls while the disk is copied.
: >"$SCRATCH/trace"
VMFERRY_FAULT_TRACE="$SCRATCH/trace" "${LIVE[@]}" --bandwidth 8M "$vm" hostb \
    >"$SCRATCH/out" 2>&1 || fail "the traced live migration failed: $(cat "$SCRATCH/out")"
moved traced
polls=$(grep -c '^live-poll$' "$SCRATCH/trace")
((polls >= 10)) || fail "only $polls polls: the migration was too quick to kill in"
RANDOM=9191
points=(live-journaled live-created@1 live-created@2 "live-poll@$((2 + RANDOM % (polls / 2)))"
        "live-poll@$((polls / 2 + RANDOM % (polls / 2 - 1)))" live-migrated)
for p in "${points[@]}"; do
    grep -q "^${p%@*}$" "$SCRATCH/trace" || fail "point ${p%@*} not passed"
done
back

faults=0
for p in "${points[@]}"; do
    rc=0
    VMFERRY_FAULT=$p "${LIVE[@]}" --bandwidth 8M "$vm" hostb >"$SCRATCH/out" 2>&1 || rc=$?
    ((rc == 137)) || fail "$p: not killed there (status $rc): $(cat "$SCRATCH/out")"
    settle "$p"
    w=$(where)
    [[ $w == A || $w == B ]] || fail "$p: after the kill the domain runs on $w"
    "${LIVE[@]}" "$vm" hostb >"$SCRATCH/out" 2>&1 ||
        fail "$p ($w after the kill): the same command again failed: $(cat "$SCRATCH/out")"
    [[ $w == B ]] && { grep -q 'already runs' "$SCRATCH/out" || fail "$p: done, but not said"; }
    moved "$p"
    echo "   $p: after the kill on $w; moved"
    report fault "live-$p" survived
    faults=$((faults + 1))
    back
done
echo "$faults faults injected into live migrations, every one survived"
