#!/bin/bash
# Live migration that does not complete leaves the source running and the
# destination holding nothing:
#   1. SIGINT while the disk copy runs (throttled to 1 MiB/s);
#   2. the destination's QEMU killed while the disk copy runs;
#   3. a destination that already has a file at the disk's path (refused
#      before the job starts; that file is left untouched);
#   4. a destination that already defines a domain of that name;
# and, after all that, a plain migration of the same VM still works.
. "$(dirname "$0")/functions.sh"

requires qemu-io
# The command a user runs: vmferry-migrate --live, to host B's libvirtd
# over TCP (the test bed's hosts share one machine, so QEMU's data goes
# to 127.0.0.1).
LIVE=(vmferry-migrate --live -c "$URI_A" --dest-uri "$TCP_URI_B" --migrate-uri tcp://127.0.0.1)

name=t-live-abort
make_vm --start "$name" qcow2 256M 0x11@0+32M 0x22@128M+8M
path=$IMAGES_DIR/$name.qcow2
uuid=$(virsh_a domuuid "$name")
uuid=${uuid%%$'\n'*}

start_live() {   # extra options...: run in the background, progress in $prog
    prog=$SCRATCH/progress.$case
    err=$SCRATCH/err.$case
    : >"$prog"
    $VG "${LIVE[@]}" --progress 3 "$@" \
        "$name" hostb 3>"$prog" 2>"$err" &
    pid=$!
}

wait_line() {   # until $prog has its first line; 1 if the job ended first
    local i
    for ((i = 0; i < 1200; i++)); do
        [[ -s $prog ]] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# B holds nothing of the VM: no definition (by name or UUID), no file.
assert_b_clean() {
    virsh_b domuuid "$name" >/dev/null 2>&1 && fail "$case: B still defines $name"
    virsh_b domname "$uuid" >/dev/null 2>&1 && fail "$case: B still has a domain with $name's UUID"
    [[ ! -e $IMAGES_B/$name.qcow2 ]] || fail "$case: $IMAGES_B/$name.qcow2 was left on B"
    grep -q "$name" <<<"$(virsh_b vol-list default)" && fail "$case: pool default on B lists a volume of $name"
    return 0
}

assert_a_running() {
    [[ $(virsh_a domstate "$name") == running* ]] || fail "$case: $name no longer runs on A"
    check_disk on_a "$path" qcow2 0x11@0+32M 0x22@128M+8M || fail "$case: A's disk changed"
}

# 1. SIGINT during the copy.
case=sigint
start_live --bandwidth 1M
wait_line || { cat "$err" >&2; fail "$case: no progress line"; }
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
msg=$(<"$err")
echo "$msg" >&2
# Interrupted: 128 + SIGINT, as the exit-status table says.
((rc == 130)) || fail "$case: exit status $rc, not 130"
grep -q "aborted" <<<"$msg" || fail "$case: the message does not say it was aborted"
grep -q "still runs on the source" <<<"$msg" || fail "$case: the message does not say the source runs"
grep -q "removed from .*$path" <<<"$msg" || fail "$case: the message does not say $path was removed"
assert_a_running
assert_b_clean

# 2. The destination QEMU dies during the copy.
case=dest-killed
start_live --bandwidth 1M
wait_line || { cat "$err" >&2; fail "$case: no progress line"; }
qpid=$(cat "$VMFERRY_TESTBED_DIR/b/run/libvirt/qemu/$name.pid")
[[ $qpid =~ ^[0-9]+$ ]] || fail "$case: no QEMU pid for $name on B"
kill -KILL "$qpid"
rc=0
wait "$pid" || rc=$?
msg=$(<"$err")
echo "$msg" >&2
((rc == 1)) || fail "$case: exit status $rc, not 1"
grep -q "still runs on the source" <<<"$msg" || fail "$case: the message does not say the source runs"
assert_a_running
assert_b_clean

# 3. A file already at the destination path: the pre-flight check refuses
# it (findings on stdout, the verdict on stderr), that file untouched.
case=dest-file
on_b qemu-img create -q -f raw "$path" 1M
cleanup_add rm -f "$IMAGES_B/$name.qcow2"
sum=$(sha256sum <"$IMAGES_B/$name.qcow2")
virsh_b -q pool-refresh default >/dev/null
rc=0
$VG "${LIVE[@]}" "$name" hostb >"$SCRATCH/err.$case" 2>&1 || rc=$?
msg=$(<"$SCRATCH/err.$case")
echo "$msg" >&2
((rc == 1)) || fail "$case: exit status $rc, not 1"
grep -q "already exists on the destination" <<<"$msg" || fail "$case: the message does not name the existing file"
[[ $(sha256sum <"$IMAGES_B/$name.qcow2") == "$sum" ]] || fail "$case: the existing file on B was changed"
virsh_b domuuid "$name" >/dev/null 2>&1 && fail "$case: B defines $name"
assert_a_running
rm -f "$IMAGES_B/$name.qcow2"
virsh_b -q pool-refresh default >/dev/null

# 4. A domain of that name already on B.
case=dest-domain
virsh_a dumpxml --inactive "$name" | sed '/<uuid>/d' >"$SCRATCH/other.xml"
virsh_b -q define "$SCRATCH/other.xml" >/dev/null
rc=0
$VG "${LIVE[@]}" "$name" hostb >"$SCRATCH/err.$case" 2>&1 || rc=$?
msg=$(<"$SCRATCH/err.$case")
echo "$msg" >&2
((rc == 1)) || fail "$case: exit status $rc, not 1"
grep -qE "already (defined|exists)" <<<"$msg" || fail "$case: the message does not say the domain exists on B"
[[ ! -e $IMAGES_B/$name.qcow2 ]] || fail "$case: a file was made on B"
virsh_b -q undefine "$name" >/dev/null
assert_a_running
assert_b_clean

# Nothing of the failed attempts is in the way of a real migration.
case=after
$VG "${LIVE[@]}" "$name" hostb ||
    fail "$case: live migration after the failed attempts failed"
wait_state b "$name" running 30 || fail "$case: $name does not run on B"
echo "live abort and refusals OK"
