#!/bin/bash
# Resume state that does not belong to this source and stream is not used:
# after a cut, a changed source disk, a damaged state file and a forged one
# (a temporary file outside the directory) each make the next run start
# afresh (never write through the forged path), and the copy is identical.
# The cut here is SIGTERM to the remote import, which must keep its state
# and say how to resume.  An import that gets no stream at all leaves the
# state as it was, and a failed resume query is reported once.  A plain vmferry-export | ssh | vmferry-import run
# is unaffected by resume state.
. "$(dirname "$0")/functions.sh"

vm=t-refuse
make_vm "$vm" raw 512M
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M count=384 conv=notrunc status=none
dest=/var/lib/libvirt/images/refuse
dir_on_b "$dest"
state=$IMAGES_B/refuse/.vmferry-resume-$vm.json
total=$((384 << 20))

send() { on_a bash -c 'vmferry-export -c qemu:///system "$1" | vmferry-send -v hostb -- --dir "$2" --define' _ "$vm" "$dest"; }
cut() {
    local pid i f victim=""
    send >"$SCRATCH/cut.out" 2>&1 &
    pid=$!
    for ((i = 0; i < 3000; i++)); do
        f=$(compgen -G "$IMAGES_B/refuse/.$vm.img.vmferry-*" | head -n1) || true
        [[ -n $f ]] && (($(stat -c %b "$f") * 512 >= total / 2)) && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.01
    done
    for p in $(pgrep -f -- "^vmferry-import --resumable --dir $dest "); do
        [[ $(readlink "/proc/$p/ns/mnt" 2>/dev/null) == "$MNTNS_B" ]] && victim=$p
    done
    [[ -n $victim ]] || fail "cut: no import to kill: $(cat "$SCRATCH/cut.out")"
    kill -TERM "$victim"
    wait $pid && fail "cut: the transfer succeeded: $(cat "$SCRATCH/cut.out")"
    [[ -f $state ]] || fail "cut: no state: $(cat "$SCRATCH/cut.out")"
    grep -q 'interrupted by signal 15.*verified progress was kept' "$SCRATCH/cut.out" ||
        fail "cut: SIGTERM not reported with the resume hint: $(cat "$SCRATCH/cut.out")"
}
finish() {
    send >"$SCRATCH/run.out" 2>&1 || fail "$1: the next run failed: $(cat "$SCRATCH/run.out")"
    grep -q 'resuming an interrupted transfer' "$SCRATCH/run.out" &&
        fail "$1: it resumed from state it should refuse"
    grep -q ' 0 bytes of file data were already there' "$SCRATCH/run.out" ||
        fail "$1: not sent afresh: $(cat "$SCRATCH/run.out")"
    on_a qemu-img compare -U -f raw -F raw "$IMAGES_DIR/$vm.img" "$IMAGES_B/refuse/$vm.img" >/dev/null ||
        fail "$1: the copy differs"
    [[ -z $(on_b find "$dest" -name '.*') ]] || fail "$1: left: $(on_b find "$dest" -name '.*')"
    virsh_b -q undefine "$vm" >/dev/null
    on_b rm -f "$dest/$vm.img"
    echo "   $1: refused, sent afresh, copy identical"
}
cleanup_add virsh_b -q undefine "$vm"

# Changed source disk after the cut.
cut
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M count=1 seek=10 conv=notrunc status=none
finish "changed source"

# Damaged state file: one byte changed.
cut
sed -i 's/"offset":/"offset":1/' "$state"
finish "damaged state"

# Forged state: its temporary file pointed at /etc/passwd (the check
# line then no longer matches; a forgery with a valid check line is
# refused on its content: see tests/unit/check_resume.c).
cut
sed -i 's|"tmp":"[^"]*"|"tmp":"../../../../etc/passwd"|' "$state"
grep -q 'etc/passwd' "$state" || fail "forging the state failed"
cp /etc/passwd "$SCRATCH/passwd.before"
finish "forged state"
cmp -s /etc/passwd "$SCRATCH/passwd.before" || fail "forged state: /etc/passwd changed"

# An import whose input ends before any stream (vmferry-send starts one
# beside the resume query, and drops it unread when the query fails)
# leaves an interrupted transfer as it was: the next run resumes it.
snap() {
    on_b bash -c 'cd "$1" && stat -c "%n %s %b %Y" .[!.]* && md5sum .vmferry-resume-*.json' _ "$dest"
}
cut
before=$(snap)
on_b vmferry-import --resumable --dir "$dest" --define </dev/null 2>"$SCRATCH/empty.err" &&
    fail "an import of no stream succeeded"
[[ -s $SCRATCH/empty.err ]] || fail "an import of no stream failed without a word"
[[ $(snap) == "$before" ]] ||
    fail "an import of no stream changed the interrupted transfer: $before // $(snap)"
send >"$SCRATCH/run.out" 2>&1 || fail "after an import of no stream: $(cat "$SCRATCH/run.out")"
grep -q 'resuming an interrupted transfer' "$SCRATCH/run.out" ||
    fail "after an import of no stream: not resumed: $(cat "$SCRATCH/run.out")"
on_a qemu-img compare -U -f raw -F raw "$IMAGES_DIR/$vm.img" "$IMAGES_B/refuse/$vm.img" >/dev/null ||
    fail "after an import of no stream: the copy differs"
virsh_b -q undefine "$vm" >/dev/null
on_b rm -f "$dest/$vm.img"
echo "   an import of no stream: the interrupted transfer kept, resumed"

# A query that fails is reported once: the import started beside it is
# dropped unseen.
on_a bash -c 'vmferry-export -c qemu:///system "$1" | vmferry-send hostb -- --dir "$2" --define' \
    _ "$vm" "$dest/missing" >"$SCRATCH/missing.out" 2>&1 && fail "a send into a missing directory succeeded"
[[ $(grep -c 'not a directory' "$SCRATCH/missing.out") == 1 ]] ||
    fail "a failed query not reported exactly once: $(cat "$SCRATCH/missing.out")"
[[ -z $(on_b find "$dest" -name '.*') ]] || fail "a failed query left: $(on_b find "$dest" -name '.*')"

# A plain pipeline does not look at resume state at all.
on_a vmferry-export -c qemu:///system "$vm" | ssh_b "vmferry-import --dir $dest --define" ||
    fail "export | ssh | import failed"
echo "resume state refusal OK"
