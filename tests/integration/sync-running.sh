#!/bin/bash
# vmferry-sync of a running domain (issue 16; docs/design-dr.md, section
# 3, step 2): the guest keeps running throughout.
#  - the first copy reads the disks through a backup job: writes made
#    through QEMU (HMP qemu-io) once the job exists are not in the
#    standby, which holds the guest's view from before them;
#  - a refresh reads the disks through a backup job too and sends what
#    changed; the summary says how the changes were found and that the
#    copy is crash-consistent (the test VMs have no guest agent); the
#    standby then holds the guest's view, and with ~1% of the data
#    changed the refresh sends at most 5% of a full copy's bytes;
#  - SIGKILL of the sender mid-refresh leaves the standby's files as
#    they were (checksums) and its backup job behind; the next run ends
#    that job, says so, and finishes; no job is left;
#  - the summary says "method: checkpoint" once a checkpoint of the
#    standby's generation exists, "method: scan (...)" otherwise, and
#    "definition: unchanged" (the source's XML says qcow2, the standby's
#    disks are its own);
#  - a bitmap of the shut-off path's name (vmferry.DEST8.N) in the image
#    does not stop the checkpoint (vmferry.cp.DEST8.N) being made;
#  - SIGTERM while the refresh's job is open (the sender stopped at the
#    fault point sync-sent-chunk): status 143, the job and its directory
#    gone, the standby's files as they were; the next run has no job to
#    end and goes on from the checkpoint;
#  - the standby starts on B, and its ext4 file system checks clean
#    (vmferry-info --verify-guest, one appliance launch);
#  - --trim, the domain shut off: garbage in the ext4's free space is
#    sent as zero records and reads as zeros on the standby, the source
#    unchanged (sha256), also after a SIGKILL mid-read, whose overlays the
#    next run removes (two appliance launches);
#  - --forget: refused under the pair's lock; removes our checkpoint and
#    the sender's records, names the bitmap a running QEMU holds as left
#    (status 1) and removes it once the domain is shut off; the standby
#    on B is left as it was.
# The disk is a qcow2 (the standby's base is raw: the guest's view) with
# an ext4 file system in a partition over its first 256 MiB and random
# data beyond, where the writes go (the guest, SeaBIOS with nothing to
# boot, writes nothing itself).
. "$(dirname "$0")/functions.sh"

requires qemu-img
requires sfdisk
requires mke2fs
requires env --default-signal=INT true
caps=$(virsh_a domcapabilities) || fail "no domcapabilities on host A"
grep -q "<backup supported='yes'/>" <<<"$caps" ||
    skip "host A's libvirt/QEMU has no backup support (domcapabilities)"
guestfs_env

vm=t-syncrun
sb=t-syncrun-dr
export VMFERRY_SYNC_STATE_DIR=$SCRATCH/sync-state
make_vm "$vm" qcow2 1M
cleanup_add purge_vm "$sb"
img_a=$IMAGES_A/$vm.qcow2
top_b=""
# The guest disk: ext4 in [1M, 256M), random data in [256M, 352M), 384M.
make_guest_disk "$SCRATCH/guest.raw" web01 52:54:00:12:34:57
truncate -s 384M "$SCRATCH/guest.raw"
dd if=/dev/urandom of="$SCRATCH/guest.raw" bs=1M count=96 seek=256 \
    conv=notrunc status=none
# Boot code that halts (cli; hlt; jmp back): SeaBIOS boots the MBR, and
# zeros run on into the disk's data, which nested KVM stops with an
# emulation failure (the domain paused, no longer running).
printf '\xfa\xf4\xeb\xfd' | dd of="$SCRATCH/guest.raw" conv=notrunc status=none
rm -f "$img_a"
qemu-img convert -q -f raw -O qcow2 "$SCRATCH/guest.raw" "$img_a"
rm -f "$SCRATCH/guest.raw"
virsh_a -q start "$vm" >/dev/null || fail "cannot start $vm"
wait_state a "$vm" running 30 || fail "$vm does not run"

running() {
    [[ $(virsh_a domstate "$vm" 2>/dev/null | head -n 1) == running ]] ||
        fail "$vm is not running ($1)"
}
# view FILE: the guest's view of the running disk now.
view() { on_a qemu-img convert -U -f qcow2 -O raw "$IMAGES_DIR/$vm.qcow2" "$1"; }
# same FILE: the standby's view (its top's chain) holds FILE.
same() { qemu-img compare -q -f raw -F qcow2 "$1" "$top_b"; }
job_socket() {
    virsh_a backup-dumpxml "$vm" 2>/dev/null |
        sed -n "s/.*<server transport='unix' socket='\([^']*\)'.*/\1/p" || true
}
hmp_write() {
    local o
    o=$(virsh_a qemu-monitor-command "$vm" --hmp \
        "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"$1\"")
    [[ -z ${o//[[:space:]]/} ]] || fail "HMP qemu-io: $o"
}
# start_sync ARGS...: vmferry-sync in the background, its pid in $pid
# once its backup job exists (the socket in $sock).
start_sync() {
    local i
    rm -f "$SCRATCH/pid"
    on_a env --default-signal=INT,QUIT sh -c 'echo $$ >"$1"; shift; exec "$@"' \
        sh "$SCRATCH/pid" vmferry-sync "$@" "$vm" hostb --rename "$sb" \
        2>"$SCRATCH/slow.err" &
    job=$!
    sock=""
    for ((i = 0; i < 1200; i++)); do
        sock=$(job_socket)
        [[ -n $sock && -s $SCRATCH/pid ]] && break
        kill -0 "$job" 2>/dev/null || fail "the sync ended before its job: $(cat "$SCRATCH/slow.err")"
        sleep 0.1
    done
    [[ -n $sock ]] || fail "no backup job appeared"
    [[ $sock == */vmferry-backup-??????/nbd.sock ]] || fail "the job's socket is $sock"
    cleanup_add rm -rf -- "${sock%/*}"
    pid=$(cat "$SCRATCH/pid")
}
sent_of() { sed -n 's/.*sent [^(]*(\([0-9]*\) bytes).*/\1/p' <<<"$1"; }
read_of() { sed -n 's/.*: read [^(]*(\([0-9]*\) bytes).*/\1/p' <<<"$1"; }
checkpoints() { virsh_a checkpoint-list --name "$vm" | grep -v '^$' || true; }

# ---- the first copy: the point in time of its backup job
view "$SCRATCH/t0.raw"
# Slow on purpose (a small buffer, 8 MB/s on the link), so the writes
# land while the job serves the disk.
start_sync --buffer=1M --bandwidth=8M
hmp_write "write -P 0x55 300M 64k"
hmp_write "write -P 0x56 352M 512"
kill -0 "$job" 2>/dev/null || fail "the first copy ended before the writes: \
the test proves nothing (make it slower): $(cat "$SCRATCH/slow.err")"
wait "$job" || fail "the first copy failed: $(cat "$SCRATCH/slow.err")"
echo "   first: $(cat "$SCRATCH/slow.err")"
grep -q "copied in full to hostb as standby $sb" "$SCRATCH/slow.err" ||
    fail "the first sync does not say what it did"
grep -q "crash-consistent" "$SCRATCH/slow.err" ||
    fail "no word of crash-consistency: $(cat "$SCRATCH/slow.err")"
running "after the first copy"
[[ -z $(job_socket) ]] || fail "the first copy left its backup job"
[[ ! -e ${sock%/*} ]] || fail "the first copy left ${sock%/*}"
# Read from outside QEMU: its qcow2 metadata for the new cluster at 352M
# reaches the file at a flush (it did not, unasked, in 2026-12's runs).
hmp_write "flush"
check_disk on_a "$img_a" qcow2 0x55@300M+64k 0x56@352M+512
[[ $(virsh_b domstate "$sb") == "shut off"* ]] || fail "standby $sb is not defined shut off on B"
top_b=$(virsh_b domblklist "$sb" | awk '$1 == "vda" {print $2}')
[[ $top_b == "$IMAGES_DIR/"*.top.qcow2 ]] || fail "the standby's disk is '$top_b'"
top_b=$IMAGES_B/${top_b#"$IMAGES_DIR"/}
same "$SCRATCH/t0.raw" ||
    fail "the standby is not the guest's view from before the job"
echo "   the standby holds the guest's view at the job's start"

# ---- a refresh while running: the writes above arrive
view "$SCRATCH/t1.raw"
out=$(on_a vmferry-sync "$vm" hostb --rename "$sb" 2>&1) || fail "the refresh failed: $out"
echo "   refresh: $out"
grep -q "method: scan (the standby's own map was compared); read running, crash-consistent" <<<"$out" ||
    fail "the summary does not say how: $out"
# The source's inactive XML says qcow2, the standby's top is qcow2 over a
# raw base: the disks are the standby's, nothing else changed.
grep -q "; definition: unchanged$" <<<"$out" ||
    fail "the running refresh redefined the standby: $out"
running "after the refresh"
[[ -z $(job_socket) ]] || fail "the refresh left its backup job"
same "$SCRATCH/t1.raw" || fail "the standby differs from the guest's view after the refresh"
# Its job made the checkpoint of the standby's generation 2.
[[ $(checkpoints) =~ ^vmferry\.cp\.[0-9a-f]{8}\.2$ ]] ||
    fail "not one checkpoint of generation 2: $(checkpoints)"

# ---- ~1% changed: 40 writes of 64 KiB (2.5 MiB of 384)
full=$(on_a vmferry-export -c qemu:///system --compress=none "$vm" 2>/dev/null | wc -c)
((full > 96 * 1024 * 1024)) || fail "the full stream is $full bytes"
for ((i = 0; i < 40; i++)); do
    hmp_write "write -P $((i + 1)) $((256 * 1024 * 1024 + (RANDOM % 1536) * 65536)) 64k"
done
view "$SCRATCH/t2.raw"
same "$SCRATCH/t2.raw" && fail "the writes did not change the source"
out=$(on_a vmferry-sync "$vm" hostb --rename "$sb" 2>&1) || fail "the 1% refresh failed: $out"
echo "   1% refresh: $out"
sent=$(sent_of "$out")
[[ -n $sent ]] || fail "no bytes sent in the summary: $out"
((sent * 20 <= full)) || fail "the refresh sent $sent bytes, more than 5% of $full"
((sent >= 40 * 65536 / 2)) || fail "the refresh sent only $sent bytes for 40 changed blocks"
grep -q "method: checkpoint; read running, crash-consistent; definition: unchanged$" <<<"$out" ||
    fail "not found by the checkpoint: $out"
rd=$(read_of "$out")
((rd <= 48 * 1024 * 1024)) || fail "the checkpoint's refresh read $rd bytes"
[[ $(checkpoints) =~ ^vmferry\.cp\.[0-9a-f]{8}\.3$ ]] ||
    fail "not one checkpoint of generation 3: $(checkpoints)"
same "$SCRATCH/t2.raw" || fail "the standby differs from the guest's view after the 1% refresh"
echo "   sent $sent of $full bytes ($((sent * 1000 / full))‰)"

# ---- SIGKILL mid-refresh: the standby as it was; the next run finishes
for ((i = 0; i < 64; i++)); do
    hmp_write "write -P 0x77 $((256 * 1024 * 1024 + i * 1024 * 1024)) 1M"
done
sums() { sha256sum "${top_b%.top.qcow2}"* | sort; }
before=$(sums)
start_sync --bandwidth=1M
kill -0 "$job" 2>/dev/null || fail "the refresh ended before the kill: $(cat "$SCRATCH/slow.err")"
kill -s KILL "$pid"
wait "$job" || true
[[ $(job_socket) == "$sock" ]] || fail "after SIGKILL: job '$(job_socket)', not $sock"
# The receiver stops once its input ends.
for ((i = 0; i < 300; i++)); do
    pgrep -f "vmferry-sync --receiver=refresh .*-- $sb\$" >/dev/null || break
    sleep 0.1
done
pgrep -f "vmferry-sync --receiver=refresh .*-- $sb\$" >/dev/null &&
    fail "the receiver did not stop after the sender's SIGKILL"
[[ $(sums) == "$before" ]] || fail "SIGKILL changed the standby's files"
view "$SCRATCH/t3.raw"
out=$(on_a vmferry-sync "$vm" hostb --rename "$sb" 2>&1) || fail "the re-run failed: $out"
echo "   re-run: $out"
grep -q "ended the backup job of an interrupted run" <<<"$out" ||
    fail "the stale job's end is not said: $out"
grep -q "method: checkpoint; read running" <<<"$out" || fail "the re-run did not use checkpoint 3: $out"
[[ $(checkpoints) =~ ^vmferry\.cp\.[0-9a-f]{8}\.4$ ]] ||
    fail "not one checkpoint of generation 4: $(checkpoints)"
[[ -z $(job_socket) && ! -e ${sock%/*} ]] || fail "a job or ${sock%/*} left"
same "$SCRATCH/t3.raw" || fail "the standby differs from the guest's view after the re-run"
running "after the re-run"

# ---- SIGTERM with the job open (stopped at a fault point after a chunk
# was sent): the job is ended and its directory gone, the standby's files
# are as they were, the status is 143; the next run has no job to end.
# A second changed chunk far after the first: the signal, sent while the
# process is stopped, may be taken by another of its threads after
# SIGCONT; the main thread then finds the flag at a later chunk (with one
# changed chunk it once ran past the last one first, under load).
hmp_write "write -P 0x7a 270M 64k"
hmp_write "write -P 0x7b 340M 64k"
before=$(sums)
rm -f "$SCRATCH/notify"
mkfifo "$SCRATCH/notify"
on_a env --default-signal=INT,QUIT VMFERRY_FAULT=sync-sent-chunk:stop \
    VMFERRY_FAULT_NOTIFY="$SCRATCH/notify" \
    vmferry-sync "$vm" hostb --rename "$sb" >"$SCRATCH/term.err" 2>&1 &
job=$!
read -r at pid <"$SCRATCH/notify" || fail "no word from the refresh"
[[ $at == sync-sent-chunk && $pid =~ ^[0-9]+$ ]] || fail "stopped at '$at $pid'"
sock=$(job_socket)
[[ $sock == */vmferry-backup-??????/nbd.sock ]] || fail "no backup job at sync-sent-chunk: '$sock'"
kill -s TERM "$pid"
kill -s CONT "$pid"
rc=0
wait "$job" || rc=$?
((rc == 143)) || fail "SIGTERM: status $rc: $(cat "$SCRATCH/term.err")"
grep -q "interrupted: standby $sb on hostb is as it was" "$SCRATCH/term.err" ||
    fail "SIGTERM: not said: $(cat "$SCRATCH/term.err")"
[[ -z $(job_socket) ]] || fail "SIGTERM left the backup job: $(job_socket)"
[[ ! -e ${sock%/*} ]] || fail "SIGTERM left ${sock%/*}"
for ((i = 0; i < 300; i++)); do
    pgrep -f "vmferry-sync --receiver=refresh .*-- $sb\$" >/dev/null || break
    sleep 0.1
done
[[ $(sums) == "$before" ]] || fail "SIGTERM changed the standby's files"
view "$SCRATCH/t3.raw"
out=$(on_a vmferry-sync "$vm" hostb --rename "$sb" 2>&1) || fail "the run after SIGTERM failed: $out"
echo "   after SIGTERM: $out"
grep -q "ended the backup job" <<<"$out" && fail "SIGTERM left a job for the next run: $out"
grep -q "method: checkpoint; read running" <<<"$out" || fail "the run after SIGTERM did not use checkpoint 4: $out"
[[ $(checkpoints) =~ ^vmferry\.cp\.[0-9a-f]{8}\.5$ ]] ||
    fail "not one checkpoint of generation 5: $(checkpoints)"
same "$SCRATCH/t3.raw" || fail "the standby differs from the guest's view after the run after SIGTERM"
report fault "sync of a running domain: SIGTERM at sync-sent-chunk" survived

# ---- QEMU killed: its bitmaps are gone, the checkpoint inconsistent;
# the refresh says so, scans, and makes the next checkpoint
qpid=$(cat "$VMFERRY_TESTBED_DIR/a/run/libvirt/qemu/$vm.pid") || fail "$vm has no pid file"
kill -s KILL "$qpid"
wait_state a "$vm" "shut off" 30 || fail "$vm did not stop"
virsh_a -q start "$vm" >/dev/null || fail "cannot start $vm again"
wait_state a "$vm" running 30 || fail "$vm does not run again"
hmp_write "write -P 0x78 260M 64k"
view "$SCRATCH/t4.raw"
out=$(on_a vmferry-sync "$vm" hostb --rename "$sb" 2>&1) ||
    fail "the refresh after QEMU's kill failed: $out"
echo "   after QEMU's kill: $out"
grep -q "is of no use" <<<"$out" || fail "the lost checkpoint is not said: $out"
grep -q "method: scan (no usable checkpoint); read running" <<<"$out" || fail "not found by scan: $out"
same "$SCRATCH/t4.raw" || fail "the standby differs after the refresh that scanned"
[[ $(checkpoints) =~ ^vmferry\.cp\.[0-9a-f]{8}\.6$ ]] ||
    fail "not one checkpoint of generation 6: $(checkpoints)"

# ---- a bitmap of the shut-off path (sync-bitmap.h: vmferry.DEST8.N, N
# the generation the next refresh makes) is in the image, as a shut-off
# refresh leaves it before the domain is started: the checkpoint the
# running refresh makes must not take its name
[[ $(checkpoints) =~ ^vmferry\.cp\.([0-9a-f]{8})\.6$ ]] || fail "no checkpoint 6"
d8=${BASH_REMATCH[1]}
node=$(virsh_a qemu-monitor-command "$vm" '{"execute":"query-block"}' |
    python3 -c 'import json, sys
for b in json.load(sys.stdin)["return"]:
    if b.get("qdev", "").startswith("/machine/peripheral/virtio-disk0"):
        print(b["inserted"]["node-name"])')
[[ -n $node ]] || fail "no block node of vda"
o=$(virsh_a qemu-monitor-command "$vm" "{\"execute\":\"block-dirty-bitmap-add\",\"arguments\":{\"node\":\"$node\",\"name\":\"vmferry.$d8.7\",\"persistent\":true}}") ||
    fail "cannot add bitmap vmferry.$d8.7: $o"
hmp_write "write -P 0x79 264M 64k"
view "$SCRATCH/t5.raw"
out=$(on_a vmferry-sync "$vm" hostb --rename "$sb" 2>&1) ||
    fail "the refresh beside the shut-off path's bitmap failed: $out"
echo "   beside bitmap vmferry.$d8.7: $out"
grep -q "method: checkpoint; read running" <<<"$out" || fail "not found by the checkpoint: $out"
same "$SCRATCH/t5.raw" || fail "the standby differs after the refresh beside the bitmap"
[[ $(checkpoints) =~ ^vmferry\.cp\.[0-9a-f]{8}\.7$ ]] ||
    fail "not one checkpoint of generation 7: $(checkpoints)"

# ---- the standby starts on B, and its file system checks clean
virsh_b -q start "$sb" >/dev/null || fail "the standby does not start on B"
wait_state b "$sb" running 30 || fail "the standby does not run"
virsh_b -q destroy "$sb" >/dev/null
wait_state b "$sb" "shut off" 30 || fail "the standby does not stop"
t0=$SECONDS
res=$(on_b vmferry-info -c qemu:///system --domain "$sb" --verify-guest 2>&1) ||
    fail "the standby's file systems do not check clean: $res"
echo "   --verify-guest on B ($((SECONDS - t0)) s): $res"
grep -q '^vda1 (ext4): clean' <<<"$res" || fail "vda1 not checked clean: $res"

# ---- --trim, the domain shut off: garbage in the ext4's free space (as
# a deleted file leaves it), which a refresh without --trim carried to
# the standby, is read as zeros through the trimmed overlay: its chunks
# differ from the records and are sent as zero records (a few bytes),
# zeros on the standby; the source unchanged (sha256 of what the guest
# reads, and its allocation), also when the run is killed after the trim
# (mid-read: its overlays are left, and the next run removes them).  Two
# appliance launches.
virsh_a -q destroy "$vm" >/dev/null
wait_state a "$vm" "shut off" 30 || fail "$vm did not stop"
# [164M, 180M): free blocks of groups 20-22 of the ext4 (1 KiB blocks,
# 8 MiB groups), which hold no backup superblock: a used block keeps its
# 64 KiB cluster of the overlay from being freed.
on_a qemu-io -f qcow2 -c "write -P 0x5a 164M 16M" "$img_a" >/dev/null ||
    fail "qemu-io cannot write the source"
out=$(on_a vmferry-sync "$vm" hostb --rename "$sb" 2>&1) || fail "the refresh before --trim failed: $out"
qemu-io -r -f qcow2 -c "read -P 0x5a 164M 16M" "$top_b" >/dev/null ||
    fail "the garbage did not reach the standby: $out"
# Overlay directories (every bed's: /var/tmp is the machine's), and
# those not in $pre.
trimdirs() { on_a sh -c 'ls -d /var/tmp/vmferry-trim-* 2>/dev/null' || true; }
newdirs() { comm -13 <(sort <<<"$pre") <(trimdirs | sort) | grep . || true; }
# The source as the guest reads it, and its clusters' map (a discard
# that reached it would free them): the file's own bytes change with the
# bitmaps of the shut-off path (DIRTY BITMAPS in vmferry-sync(1)).
src_sums() {
    view "$SCRATCH/src.raw"
    sha256sum <"$SCRATCH/src.raw"
    rm -f "$SCRATCH/src.raw"
    on_a qemu-img map -U --output=json "$img_a"
}
src_before=$(src_sums)
pre=$(trimdirs)
rm -f "$SCRATCH/notify"
mkfifo "$SCRATCH/notify"
sb_before=$(sums)
on_a env VMFERRY_FAULT=sync-sent-chunk:stop VMFERRY_FAULT_NOTIFY="$SCRATCH/notify" \
    vmferry-sync --trim "$vm" hostb --rename "$sb" >"$SCRATCH/trim1.err" 2>&1 &
job=$!
t0=$SECONDS
read -r at pid <"$SCRATCH/notify" || fail "no word from the --trim run: $(cat "$SCRATCH/trim1.err")"
[[ $at == sync-sent-chunk && $pid =~ ^[0-9]+$ ]] || fail "stopped at '$at $pid'"
stale=$(newdirs)
[[ -n $stale ]] || fail "no overlay directory while --trim reads"
kill -s KILL "$pid"
wait "$job" || true
[[ $(src_sums) == "$src_before" ]] || fail "--trim killed mid-read changed the source"
[[ $(sums) == "$sb_before" ]] || fail "--trim killed mid-read changed the standby"
report fault "sync --trim: SIGKILL after the trim" survived
out=$(on_a vmferry-sync --trim "$vm" hostb --rename "$sb" 2>&1) || fail "sync --trim failed: $out"
echo "   --trim (two runs, $((SECONDS - t0)) s): $out"
grep -q "removed .*vmferry-trim-" <<<"$out" || fail "the stale overlays' removal is not said: $out"
for d in $stale; do
    [[ ! -e $d ]] || fail "the next run did not remove $d"
done
[[ -z $(newdirs) ]] || fail "--trim left overlays: $(newdirs)"
[[ $(src_sums) == "$src_before" ]] || fail "--trim changed the source"
grep -q ", method: scan (--trim); every filesystem trimmed; definition: unchanged$" <<<"$out" ||
    fail "the --trim summary: $out"
changed=$(sed -n 's/.*, \([0-9]*\) of [0-9]* chunks changed.*/\1/p' <<<"$out")
((changed >= 16)) || fail "--trim found $changed chunks changed, not the 16 it freed: $out"
sent=$(sent_of "$out")
((sent < 1024 * 1024)) || fail "--trim sent $sent bytes for 16 MiB freed"
# Each 64 KiB of the garbage reads as zeros on the standby, but those a
# group boundary of the ext4 crosses (169M, 177M: each group's discard
# covers a part only, and QEMU frees whole clusters).  (Elsewhere the
# standby is not the source: the appliance's mount wrote the ext4's
# superblock and journal on the overlay, as export --trim carries them.)
qemu-img convert -f qcow2 -O raw "$top_b" "$SCRATCH/sb.raw"
zeros=$(python3 - "$SCRATCH/sb.raw" <<'PY'
import sys
sb = open(sys.argv[1], "rb")
n = 0
for off in range(164 << 20, 180 << 20, 65536):
    sb.seek(off)
    a = sb.read(65536)
    if a == bytes(65536):
        n += 1
    elif a != b"\x5a" * 65536:
        sys.exit("neither zeros nor the source's at %d" % off)
print(n)
PY
) || fail "the freed region on the standby: $zeros"
((zeros >= 240)) || fail "only $zeros of 256 pieces of 64 KiB read as zeros on the standby"
rm -f "$SCRATCH/sb.raw"
check_disk on_a "$img_a" qcow2 0x5a@164M+16M || fail "the source lost what the trim freed"

# ---- --forget: refused under the pair's lock; with the domain running,
# our checkpoint and the sender's records go, and the bitmap of the
# shut-off path in the file (QEMU holds it) is named as left (status 1);
# shut off, the same command removes it.  The standby on B is left.
bitmaps() {
    on_a qemu-img info -U --output=json "$img_a" | python3 -c '
import json, sys
for b in json.load(sys.stdin)["format-specific"]["data"].get("bitmaps", []):
    print(b["name"])'
}
forget() { on_a vmferry-sync --forget "$vm" hostb --rename "$sb" "$@"; }
lock=$(ls "$VMFERRY_SYNC_STATE_DIR"/*/*.lock) || fail "no lock file of the pair"
[[ $(wc -l <<<"$lock") == 1 ]] || fail "lock files: $lock"
records=${lock%.lock}
sb_before=$(sums)
[[ $(bitmaps) == *"vmferry.$d8.10"* ]] || fail "no bitmap vmferry.$d8.10 after the shut-off refresh: $(bitmaps)"
out=$(on_a flock "$lock" vmferry-sync --forget "$vm" hostb --rename "$sb" 2>&1) &&
    fail "--forget ran under the pair's lock: $out"
grep -q "a vmferry-sync of domain $vm to it runs" <<<"$out" || fail "--forget under the lock: unclear: $out"
[[ -n $(checkpoints) ]] || fail "--forget under the lock removed the checkpoints"
virsh_a -q start "$vm" >/dev/null || fail "cannot start $vm again"
wait_state a "$vm" running 30 || fail "$vm does not run again"
rc=0
out=$(forget 2>&1) || rc=$?
echo "   --forget, running: $out"
((rc == 1)) || fail "--forget left a bitmap and exits $rc: $out"
grep -q "removed checkpoint vmferry\.cp\.$d8\.7, the sender's records (3 files in .*; left: .*bitmap vmferry\.$d8\.10 of disk vda (the domain runs) (run --forget again once" <<<"$out" ||
    fail "--forget does not say what it removed and left: $out"
[[ -z $(checkpoints) ]] || fail "--forget left checkpoints: $(checkpoints)"
compgen -G "$records.*" >/dev/null && fail "--forget left records: $(ls "$records".*)"
virsh_a -q destroy "$vm" >/dev/null
wait_state a "$vm" "shut off" 30 || fail "$vm did not stop"
out=$(forget 2>&1) || fail "--forget with the domain shut off failed: $out"
echo "   --forget, shut off: $out"
grep -q "removed .*bitmap vmferry\.$d8\.10 of disk vda; the standby on hostb is left as it is$" <<<"$out" ||
    fail "--forget did not remove bitmap vmferry.$d8.10: $out"
[[ -z $(bitmaps) ]] || fail "bitmaps left: $(bitmaps)"
[[ $(sums) == "$sb_before" ]] || fail "--forget changed the standby's files"
[[ $(virsh_b domstate "$sb") == "shut off"* ]] || fail "--forget touched the standby's definition"
out=$(forget 2>&1) || fail "--forget again failed: $out"
grep -q "removed nothing (no bitmap, checkpoint or record of it)" <<<"$out" || fail "--forget again: $out"
echo "sync of a running domain: OK"
