#!/bin/bash
# An interrupted vmferry-migrate says in one line what the destination
# keeps and how to resume or abort; --abort removes it.
#  1. SIGTERM in the middle of the send: status 143, one line naming B,
#     the domain and the directory, partial files and resume state on B;
#     `vmferry-migrate --abort` with the same arguments removes all of
#     it, and the source is as it was.
#  2. SIGINT (a Ctrl-C): status 130, the same line; the same command
#     again resumes and finishes.
#  3. --live: a run killed after it made the disk on B; --abort --live
#     removes that disk and the journal, the domain runs on A.
. "$(dirname "$0")/functions.sh"

requires qemu-img

vm=t-intr
make_vm "$vm" raw 192M
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M count=160 conv=notrunc status=none
dest=/var/lib/libvirt/images/intr
dir_on_b "$dest"
sum=$(sha256sum <"$IMAGES_A/$vm.img")
ARGS=("$vm" hostb --dest-dir "$dest" --bandwidth 16M)

# interrupt SIG: start the migration, send SIG once part of the disk is
# on B; its status in $rc, its stderr in $SCRATCH/err.
interrupt() {
    local f i pid
    rc=0
    # Job control: a background job's SIGINT is then not ignored.
    set -m
    nsenter --mount --target "$PID_A" -- vmferry-migrate "${ARGS[@]}" 2>"$SCRATCH/err" &
    pid=$!
    set +m
    for ((i = 0; i < 3000; i++)); do
        f=$(compgen -G "$IMAGES_B/intr/.$vm.img.vmferry-*" | head -n1) || true
        [[ -n $f ]] && (($(stat -c %b "$f") * 512 >= 16 << 20)) && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.01
    done
    kill -"$1" $pid 2>/dev/null || fail "$1: the migration ended before the signal"
    wait $pid || rc=$?
}

# said SIG STATUS: the one line, naming what is kept and how to go on.
said() {
    ((rc == $2)) || fail "$1: status $rc, not $2: $(cat "$SCRATCH/err")"
    # The remote import has seen the cut and saved its state.
    on_b flock -w 60 "$dest/.vmferry-resume-$vm.lock" true
    grep -q "interrupted: hostb keeps what arrived of domain $vm in $dest (partial files" \
        "$SCRATCH/err" || fail "$1: no word of what B keeps: $(cat "$SCRATCH/err")"
    grep -q -- "--abort" "$SCRATCH/err" || fail "$1: no word of --abort: $(cat "$SCRATCH/err")"
    [[ $(wc -l <"$SCRATCH/err") == 1 ]] || fail "$1: more than one line: $(cat "$SCRATCH/err")"
    on_b test -e "$dest/.vmferry-resume-$vm.json" || fail "$1: no resume state on B"
    [[ -n $(compgen -G "$IMAGES_B/intr/.$vm.img.vmferry-*") ]] || fail "$1: no partial file"
    [[ $(virsh_a domstate "$vm") == "shut off" ]] || fail "$1: the source changed"
    echo "   $1: status $rc, said what B keeps"
}

# 1. SIGTERM, then --abort.
interrupt TERM
said TERM 143
on_a vmferry-migrate --abort "${ARGS[@]}" >"$SCRATCH/out" 2>&1 ||
    fail "--abort failed: $(cat "$SCRATCH/out")"
grep -q "removed the interrupted transfer of $vm" "$SCRATCH/out" ||
    fail "--abort did not say what it removed: $(cat "$SCRATCH/out")"
[[ -z $(on_b ls -A "$dest") ]] || fail "--abort left: $(on_b ls -A "$dest")"
virsh_b domuuid "$vm" >/dev/null 2>&1 && fail "defined on B"
[[ $(sha256sum <"$IMAGES_A/$vm.img") == "$sum" ]] || fail "the source disk changed"
# Nothing left to abort: said so, status 1.
on_a vmferry-migrate --abort "${ARGS[@]}" >"$SCRATCH/out" 2>&1 &&
    fail "a second --abort succeeded: $(cat "$SCRATCH/out")"
grep -q "no interrupted transfer" "$SCRATCH/out" ||
    fail "a second --abort does not say why: $(cat "$SCRATCH/out")"
echo "   --abort: nothing left on B"

# 2. SIGINT, then the same command resumes.
interrupt INT
said INT 130
on_a vmferry-migrate -v "${ARGS[@]}" 2>"$SCRATCH/err" ||
    fail "the same command did not finish: $(cat "$SCRATCH/err")"
grep -q 'resuming an interrupted transfer' "$SCRATCH/err" || fail "did not resume"
qemu-img compare -U -f raw -F raw "$IMAGES_A/$vm.img" "$IMAGES_B/intr/$vm.img" >/dev/null ||
    fail "the copy differs"
[[ -z $(on_b find "$dest" -name '.*') ]] || fail "left: $(on_b find "$dest" -name '.*')"
echo "   the same command resumed and finished"
virsh_b -q undefine "$vm" >/dev/null

# 3. --live: killed after the disk was made on B; --abort --live.
lvm=t-intr-live
make_vm --start "$lvm" qcow2 64M 0x61@0+8M
export VMFERRY_STATE_DIR=$SCRATCH/state
LIVE=(vmferry-migrate --live -c "$URI_A" --dest-uri "$TCP_URI_B" --migrate-uri tcp://127.0.0.1)
rc=0
VMFERRY_FAULT=live-created@1 "${LIVE[@]}" "$lvm" hostb >"$SCRATCH/out" 2>&1 || rc=$?
((rc == 137)) || fail "--live: not killed after the disk was made (status $rc): $(cat "$SCRATCH/out")"
on_b test -e "$IMAGES_DIR/$lvm.qcow2" || fail "--live: no disk on B after the kill"
[[ -n $(find "$VMFERRY_STATE_DIR" -type f) ]] || fail "--live: no journal after the kill"
"${LIVE[@]}" --abort "$lvm" hostb >"$SCRATCH/out" 2>&1 ||
    fail "--live --abort failed: $(cat "$SCRATCH/out")"
on_b test -e "$IMAGES_DIR/$lvm.qcow2" && fail "--live --abort left the disk on B"
[[ -z $(find "$VMFERRY_STATE_DIR" -type f) ]] || fail "--live --abort left the journal"
[[ $(virsh_a domstate "$lvm") == running ]] || fail "--live --abort: $lvm does not run on A"
echo "   --live --abort: the disk on B and the journal removed, runs on A"
echo "migrate interrupt and --abort OK"
