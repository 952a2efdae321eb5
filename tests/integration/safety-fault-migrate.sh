#!/bin/bash
# The fault matrix of an offline vmferry-migrate: SIGKILL of the migrating
# process on A at each of its named points (after the pre-flight check,
# after the resume query, after several data records chosen by seed, after
# the stream's end was sent and before the remote said it was done, after
# the remote said so), and SIGKILL of the remote import on B at each of
# its points (through the test bed's VMFERRY_FAULT_FILE for B's sshd).
# After every kill the source is untouched and still defined, and the same
# command run again finishes the move: the copy on B compares identical,
# the domain is defined there once, nothing of the transfer is left; with
# --undefine-source the source is undefined only then, its disk kept.
# A kill after the remote had finished is answered "already there".
. "$(dirname "$0")/functions.sh"

type report >/dev/null 2>&1 || report() { :; }
requires qemu-img
[[ -n ${FAULT_FILE_B:-} ]] || skip "the test bed has no fault file for B (older testbed.sh)"

vm=t-fmig
make_vm "$vm" raw 128M 0x51@0+4M
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M seek=64 count=40 conv=notrunc status=none
uuid=$(virsh_a domuuid "$vm")
virsh_a dumpxml --inactive "$vm" >"$SCRATCH/source.xml"
sum=$(sha256sum <"$IMAGES_A/$vm.img")
dest=/var/lib/libvirt/images/fmig
dir_on_b "$dest"
cleanup_add rm -f "$FAULT_FILE_B"

drop_b() {
    virsh_b -q undefine "$vm" >/dev/null 2>&1 || true
    on_b sh -c "rm -rf $dest/* $dest/.[!.]*"
}
cleanup_add drop_b

# migrate [ENV=VALUE...] [OPTION...]: the move, as an admin types it.
migrate() {
    local -a env=()
    while [[ ${1:-} == *=* ]]; do env+=("$1"); shift; done
    on_a env "${env[@]}" vmferry-migrate "$vm" hostb --dest-dir "$dest" "$@"
}

# moved [undefined]: the move is complete and nothing is left over.
moved() {
    local what=$1
    [[ $(virsh_b domuuid "$vm" 2>/dev/null) == "$uuid" ]] || fail "$what: not defined on B"
    [[ $(sha256sum <"$IMAGES_B/fmig/$vm.img") == "$sum" ]] || fail "$what: the copy differs"
    [[ -z $(on_b find "$dest" -name '.*') ]] || fail "$what: left on B: $(on_b find "$dest" -name '.*')"
    on_a test -f "$IMAGES_DIR/$vm.img" || fail "$what: the source disk is gone"
    [[ $(sha256sum <"$IMAGES_A/$vm.img") == "$sum" ]] || fail "$what: the source disk changed"
    if [[ ${2:-} == undefined ]]; then
        virsh_a domuuid "$vm" >/dev/null 2>&1 && fail "$what: the source is still defined"
        virsh_a -q define "$SCRATCH/source.xml" >/dev/null
    else
        [[ $(virsh_a domuuid "$vm") == "$uuid" ]] || fail "$what: the source is not defined"
    fi
}

# The sender's points, with how often each is passed; data records by
# seed (first, last, and four in between).
: >"$SCRATCH/trace"
migrate VMFERRY_FAULT_TRACE="$SCRATCH/trace" >/dev/null 2>&1 || fail "the traced migration failed"
moved traced
drop_b
nrec=$(grep -c '^send-data$' "$SCRATCH/trace")
((nrec >= 8)) || fail "only $nrec data records: test is void"
points=(migrate-checked send-queried "send-data@1" "send-data@$nrec")
RANDOM=4242
for _ in 1 2 3 4; do points+=("send-data@$((2 + RANDOM % (nrec - 2)))"); done
points+=(send-end-sent migrate-sent)
for p in "${points[@]}"; do
    grep -q "^${p%@*}$" "$SCRATCH/trace" || fail "point ${p%@*} not passed by a migration"
done

faults=0
for p in "${points[@]}"; do
    rc=0
    migrate VMFERRY_FAULT="$p" >"$SCRATCH/out" 2>&1 || rc=$?
    ((rc == 137)) || fail "A, $p: not killed there (status $rc): $(cat "$SCRATCH/out")"
    [[ $(virsh_a domuuid "$vm") == "$uuid" ]] || fail "A, $p: the source is not defined"
    migrate >"$SCRATCH/out" 2>&1 || fail "A, $p: the same command again failed: $(cat "$SCRATCH/out")"
    if [[ $p == send-end-sent || $p == migrate-sent ]]; then
        # The remote may well have finished: then nothing is sent again.
        grep -q 'already' "$SCRATCH/out" && echo "   A, $p: already there"
    fi
    moved "A, $p"
    report fault "migrate-A-$p" survived
    faults=$((faults + 1))
    drop_b
done

# The remote import's points, each killed once; then with --undefine-source.
: >"$SCRATCH/trace-b"
printf 'VMFERRY_FAULT_TRACE=%s\n' "$SCRATCH/trace-b" >"$FAULT_FILE_B"
migrate >/dev/null 2>&1 || fail "the traced migration (B) failed"
rm -f "$FAULT_FILE_B"
moved "traced on B"
drop_b
mapfile -t bpoints < <(grep -v -e '^import-temp-named$' -e '^import-file-verified$' "$SCRATCH/trace-b" |
    awk '!seen[$0]++')
((${#bpoints[@]} >= 6)) || fail "too few points on B: ${bpoints[*]}"
for p in "${bpoints[@]}"; do
    for undef in "" --undefine-source; do
        printf 'VMFERRY_FAULT=%s\n' "$p" >"$FAULT_FILE_B"
        rc=0
        migrate $undef >"$SCRATCH/out" 2>&1 || rc=$?
        rm -f "$FAULT_FILE_B"
        [[ $(virsh_a domuuid "$vm" 2>/dev/null) == "$uuid" || ($rc == 0 && -n $undef) ]] ||
            fail "B, $p: the source was undefined after a failure"
        if ((rc == 0)); then
            # Killed after the commit: the move is done (said or not).
            :
        else
            grep -qi 'import\|remote\|resume' "$SCRATCH/out" ||
                fail "B, $p: the failure is not explained: $(cat "$SCRATCH/out")"
            migrate $undef >"$SCRATCH/out" 2>&1 ||
                fail "B, $p: the same command again failed: $(cat "$SCRATCH/out")"
        fi
        moved "B, $p${undef:+, $undef}" ${undef:+undefined}
        report fault "migrate-B-$p${undef}" survived
        faults=$((faults + 1))
        drop_b
    done
done
echo "$faults faults injected into migrations, every one survived"
