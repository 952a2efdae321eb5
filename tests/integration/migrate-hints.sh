#!/bin/bash
# What vmferry-migrate says when its pre-flight check blocks, and its exit
# status, must fit vmferry-migrate:
#   1. --dest-dir naming a directory B lacks: the hint is --dest-dir (or
#      mkdir), not a --map-path of that directory, which would not move
#      the files; fix words are migrate's own options, not vmferry-rewrite;
#   2. a file of the plan already on B: no "vmferry-import --force"
#      (migrate has none), the options migrate has;
#   3. a domain of that name on B: no "vmferry-import --force" either;
#   4. --live --dry-run of a blocked move exits 1 like the move, and its
#      hint for a file in the way is not --force;
#   5. a live move that failed and could not remove its disk from B (the
#      message says so and nothing else: not "nothing had been made"),
#      then a dry run (the leftover is no blocker: the run removes it
#      first), then the same command, which clears it and moves the VM.
. "$(dirname "$0")/functions.sh"

requires qemu-img

dest=/var/lib/libvirt/images/hints
dir_on_b "$dest"

# blocked WHAT STATUS CMD...: CMD exits STATUS, its output in $out.
blocked() {
    local what=$1 want=$2 rc=0
    shift 2
    out=$("$@" 2>&1) || rc=$?
    echo "$out" | sed 's/^/   | /'
    ((rc == want)) || fail "$what: exit status $rc, not $want"
    grep -q 'vmferry-import --force' <<<"$out" && fail "$what: hints at vmferry-import --force"
    grep -q 'vmferry-rewrite' <<<"$out" && fail "$what: hints at vmferry-rewrite"
    return 0
}

# 1. --dest-dir that B does not have.
blocked "missing --dest-dir" 1 on_a vmferry-migrate vmf-qcow2 hostb --rename t-hints \
    --dest-dir /nonexistent/dir --dry-run
grep -q 'would be refused' <<<"$out" || fail "missing --dest-dir: not refused"
grep -q -- '--map-path' <<<"$out" && fail "missing --dest-dir: a --map-path fix for --dest-dir's path"
grep -q 'give --dest-dir a directory' <<<"$out" || fail "missing --dest-dir: no --dest-dir hint"
grep -q 'mkdir -p /nonexistent/dir' <<<"$out" || fail "missing --dest-dir: no mkdir hint"
# Without --dest-dir the directory comes from the disk's path, which
# --map-path does move: that fix is right then, as migrate's option.
blocked "missing disk directory" 1 on_a vmferry-migrate vmf-qcow2 hostb --rename t-hints \
    --map-path "$IMAGES_DIR=/nonexistent/dir" --dry-run
grep -q "fix: add --map-path '\?/nonexistent/dir=" <<<"$out" ||
    fail "missing disk directory: no --map-path fix as migrate's option"

# 2. The file is already there under the name the copy's file takes (a
# real run: refused before any data).
on_b qemu-img create -q -f raw "$dest/t-hints.qcow2" 1M
blocked "file exists" 1 on_a vmferry-migrate vmf-qcow2 hostb --rename t-hints --dest-dir "$dest"
grep -q 'already exists on the destination' <<<"$out" || fail "file exists: not found"
grep -q 'remove it on the destination if nothing needs it, or put the files elsewhere: --dest-dir' \
    <<<"$out" || fail "file exists: no hint migrate can follow"
on_b rm -f "$dest/t-hints.qcow2"

# 3. A domain of that name on B.
virsh_a dumpxml --inactive vmf-raw | sed -e '/<uuid>/d' -e 's|<name>vmf-raw<|<name>t-hints<|' \
    -e "s|$IMAGES_DIR/vmf-raw.img|$dest/other.img|" >"$SCRATCH/other.xml"
virsh_b -q define "$SCRATCH/other.xml" >/dev/null
cleanup_add virsh_b -q undefine t-hints
blocked "name exists" 1 on_a vmferry-migrate vmf-qcow2 hostb --rename t-hints --dest-dir "$dest" \
    --dry-run
grep -q 'a domain of this name is already defined' <<<"$out" || fail "name exists: not found"
grep -q 'undefine it there first' <<<"$out" || fail "name exists: no hint migrate can follow"

# Live: the command a user runs, to host B's libvirtd over TCP.
export VMFERRY_STATE_DIR=$SCRATCH/state
LIVE=(vmferry-migrate --live -c "$URI_A" --dest-uri "$TCP_URI_B" --migrate-uri tcp://127.0.0.1)
name=t-hints-live
make_vm --start "$name" qcow2 64M 0x33@0+8M
path=$IMAGES_DIR/$name.qcow2
drop_b() {
    virsh_b -q destroy "$name" >/dev/null 2>&1 || true
    virsh_b -q undefine "$name" >/dev/null 2>&1 || true
    rm -f "$IMAGES_B/$name.qcow2"
}
cleanup_add drop_b

# 4. --live --dry-run with a file in the way: exits 1, as the move does.
on_b qemu-img create -q -f raw "$path" 1M
virsh_b -q pool-refresh default >/dev/null
blocked "live dry run, file exists" 1 "${LIVE[@]}" --dry-run "$name" hostb
grep -q 'would be refused' <<<"$out" || fail "live dry run: does not say it would be refused"
grep -q "virsh vol-delete $path" <<<"$out" || fail "live dry run: no hint the live move can follow"
blocked "live, file exists" 1 "${LIVE[@]}" "$name" hostb
rm -f "$IMAGES_B/$name.qcow2"
virsh_b -q pool-refresh default >/dev/null
"${LIVE[@]}" --dry-run "$name" hostb >"$SCRATCH/out" 2>&1 ||
    fail "live dry run of a move that can go: $(cat "$SCRATCH/out")"

# 5. A live move fails after its disk was made on B, and removing that
# disk fails too (fault points): exit 3, the message names what is left
# and nothing contradicts it.
rc=0
VMFERRY_FAULT=live-created:fail,live-rollback-delete:fail \
    "${LIVE[@]}" "$name" hostb 2>"$SCRATCH/err" || rc=$?
msg=$(<"$SCRATCH/err")
echo "$msg" | sed 's/^/   | /'
((rc == 4)) || fail "failed cleanup: exit status $rc, not 4 (leftovers)"
[[ -e $IMAGES_B/$name.qcow2 ]] || fail "failed cleanup: the disk is not on B: test is void"
grep -q "could not remove from $TCP_URI_B: $path" <<<"$msg" || fail "failed cleanup: does not name $path"
grep -q 'nothing had been made' <<<"$msg" && fail "failed cleanup: the message contradicts itself"
grep -q 'run the same command again' <<<"$msg" || fail "failed cleanup: no way on"
# The dry run: the leftover is the run's own, removed first; no blocker.
"${LIVE[@]}" --dry-run "$name" hostb >"$SCRATCH/out" 2>&1 ||
    fail "dry run after the failed cleanup: $(cat "$SCRATCH/out")"
grep -q 'made there by an interrupted live migration of this domain' "$SCRATCH/out" ||
    fail "dry run after the failed cleanup: leftover not recognised: $(cat "$SCRATCH/out")"
# The same command clears it and moves the VM.
"${LIVE[@]}" "$name" hostb 2>"$SCRATCH/err" || fail "retry: $(cat "$SCRATCH/err")"
grep -q "removed what it had made there: $path" "$SCRATCH/err" ||
    fail "retry: does not say it removed the leftover: $(cat "$SCRATCH/err")"
wait_state b "$name" running 30 || fail "retry: $name does not run on B"
echo "migrate hints OK"
