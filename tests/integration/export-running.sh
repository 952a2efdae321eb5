#!/bin/bash
# vmferry-export of a running domain (issue 16, design-dr.md step 3):
# the disks are read through a libvirt pull backup, all at one point in
# time, and the guest keeps running.
#  - a qcow2 disk over a raw backing file and a raw disk, exported to a
#    file while writes go into both disks through QEMU (HMP qemu-io) once
#    the backup job exists: the stream holds the disks as they were when
#    the job began (imported on B, qemu-img compare with the guest's view
#    taken before), the running disks hold the new data;
#  - the stream marks the disks guest content (GUEST), the domain XML on
#    B says raw for both and has no backingStore;
#  - SIGKILL of the export mid-stream leaves its backup job; the next
#    export ends it, says so, removes its directory and works;
#  - SIGTERM ends the job and removes its directory and scratch files;
#  - --offline refuses the running domain; the domain runs throughout.
# The export is made slow on purpose (zstd -19 on one thread over random
# data), so the signals and the writes land while it reads.
. "$(dirname "$0")/functions.sh"

requires env --default-signal=INT true
caps=$(virsh_a domcapabilities) || fail "no domcapabilities on host A"
grep -q "<backup supported='yes'/>" <<<"$caps" ||
    skip "host A's libvirt/QEMU has no backup support (domcapabilities)"

vm=t-running
dest=/var/lib/libvirt/images/running
dir_on_b "$dest"
drop_b() {
    virsh_b -q destroy "$1" >/dev/null 2>&1 || true
    virsh_b -q undefine "$1" >/dev/null 2>&1 || true
}
cleanup_add drop_b "$vm"

# vda: a qcow2 over a raw base: 0xaa in its first MiB (over the base's
# 0xcc), the base's 0xbb showing through at 1M, random data from 4M to
# 20M, 0xee in its last MiB.  vdb: raw, 0xdd in its first 2 MiB, random
# data from 4M to 20M, 0xee in its last MiB.
make_vm "$vm" qcow2 32M 0xaa@0+1M 0xee@31M+1M
base=$IMAGES_DIR/$vm.base.img data=$IMAGES_DIR/$vm.data.img
tb_make_disk on_a "$base" raw 32M "" 0xcc@0+1M 0xbb@1M+1M ||
    fail "cannot make $base"
on_a qemu-img rebase -q -u -f qcow2 -b "$base" -F raw "$IMAGES_DIR/$vm.qcow2"
tb_make_disk on_a "$data" raw 32M "" 0xdd@0+2M 0xee@31M+1M ||
    fail "cannot make $data"
on_a dd if=/dev/urandom of="$SCRATCH/rnd" bs=1M count=16 status=none
on_a qemu-io -f qcow2 -c "write -q -s $SCRATCH/rnd 4M 16M" "$IMAGES_DIR/$vm.qcow2"
on_a dd if=/dev/urandom of="$data" bs=1M seek=4 count=16 conv=notrunc \
    status=none
virsh_a -q attach-disk "$vm" "$data" vdb --config --driver qemu \
    --subdriver raw >/dev/null
virsh_a -q start "$vm" >/dev/null
wait_state a "$vm" running 30

# The guest's view before anything else writes (SeaBIOS finds nothing
# to boot and writes nothing).
on_a qemu-img convert -U -f qcow2 -O raw "$IMAGES_DIR/$vm.qcow2" "$SCRATCH/ref-vda.raw"
on_a qemu-img convert -U -f raw -O raw "$data" "$SCRATCH/ref-vdb.raw"
check_disk "" "$SCRATCH/ref-vda.raw" raw 0xaa@0+1M 0xbb@1M+1M 0xee@31M+1M

out=$SCRATCH/out.vmf
running() {
    [[ $(virsh_a domstate "$vm" 2>/dev/null | head -n 1) == running ]] ||
        fail "$vm is not running ($1)"
}
# job_socket: the socket of $vm's backup job, empty when it has none.
job_socket() {
    virsh_a backup-dumpxml "$vm" 2>/dev/null |
        sed -n "s/.*<server transport='unix' socket='\([^']*\)'.*/\1/p" || true
}
# start_slow ARGS...: a slow export in the background, with the signals
# a terminal would deliver at their defaults; its pid in $pid, once its
# backup job exists (its socket in $sock).
start_slow() {
    local i
    rm -f "$SCRATCH/pid"
    on_a env --default-signal=INT,QUIT sh -c 'echo $$ >"$1"; shift; exec "$@"' \
        sh "$SCRATCH/pid" vmferry-export -c qemu:///system --compress zstd:19 \
        --threads 1 "$@" "$vm" -o "$out" 2>"$SCRATCH/slow.err" &
    job=$!
    sock=""
    for ((i = 0; i < 600; i++)); do
        sock=$(job_socket)
        [[ -n $sock && -s $SCRATCH/pid ]] && break
        kill -0 "$job" 2>/dev/null || fail "the slow export ended: $(cat "$SCRATCH/slow.err")"
        sleep 0.1
    done
    [[ -n $sock ]] || fail "no backup job appeared"
    [[ $sock == */vmferry-backup-??????/nbd.sock ]] || fail "the job's socket is $sock"
    # Should the export leave it, the test does not.
    cleanup_add rm -rf -- "${sock%/*}"
    pid=$(cat "$SCRATCH/pid")
}
# hmp_write DISK CMD: a write through QEMU into the running disk (the
# guest's path).  qemu-monitor-command exits 0 even when HMP fails, and
# prints nothing when it works; check_disk shows the write landed.
hmp_write() {
    local o
    o=$(virsh_a qemu-monitor-command "$vm" --hmp \
        "qemu-io -d /machine/peripheral/virtio-disk$1/virtio-backend \"$2\"")
    [[ -z ${o//[[:space:]]/} ]] || fail "HMP qemu-io on disk $1: $o"
}

# ---- --offline keeps the refusal
msg=$(on_a $VG vmferry-export -c qemu:///system --offline "$vm" -o "$out" 2>&1) &&
    fail "--offline exported the running domain"
grep -q "is running and the export is offline: shut it down first" <<<"$msg" ||
    fail "--offline: $msg"
[[ ! -e $out && -z $(job_socket) ]] || fail "--offline left something"
echo "--offline: refused: $msg"

# ---- point in time: writes during the job are not in the stream
start_slow
hmp_write 0 "write -P 0x55 31M 64k"
hmp_write 1 "write -P 0x66 31M 64k"
hmp_write 0 "write -P 0x57 0 64k"
kill -0 "$job" 2>/dev/null || fail "the export ended before the writes: \
the test proves nothing (make it slower)"
wait "$job" || fail "the export failed: $(cat "$SCRATCH/slow.err")"
running "after the export"
[[ -z $(job_socket) ]] || fail "the export left its backup job"
[[ ! -e ${sock%/*} ]] || fail "the export left ${sock%/*}"
check_disk on_a "$IMAGES_DIR/$vm.qcow2" qcow2 0x57@0+64k 0x55@31M+64k
check_disk on_a "$data" raw 0x66@31M+64k
cat "$SCRATCH/slow.err"
grep -q "crash-consistent" "$SCRATCH/slow.err" ||
    fail "no word of crash-consistency: $(cat "$SCRATCH/slow.err")"
on_a $VG vmferry-info --verify "$out" >/dev/null || fail "$out does not verify"
# Both disks are guest content, and a filter keeps them so.
info=$(on_a $VG vmferry-rewrite --rename "$vm-r" <"$out" |
    on_a $VG vmferry-info --verify --json -) || fail "rewrite | info failed"
n=$(grep -o '"content": *"guest"' <<<"$info" | wc -l)
((n == 2)) || fail "$n guest-content files after a rewrite, not 2: $info"

on_b $VG vmferry-import --dir "$dest" --define "$out" >/dev/null ||
    fail "the import on B failed"
xml=$(virsh_b dumpxml --inactive "$vm")
[[ $(grep -c "type='raw'" <<<"$xml") -ge 2 ]] || fail "the disks on B are not raw: $xml"
grep -q "type='qcow2'" <<<"$xml" && fail "a disk on B still says qcow2: $xml"
grep -q "<backingStore" <<<"$xml" && fail "a backingStore on B: $xml"
n=0
while read -r target src; do
    [[ $target == vd[ab] ]] || continue
    n=$((n + 1))
    [[ $src == "$dest/"* ]] || fail "disk $target on B is '$src'"
    on_a qemu-img compare -q -f raw -F raw "$SCRATCH/ref-$target.raw" \
        "$IMAGES_B/running/${src##*/}" ||
        fail "disk $target on B is not the guest's view when the job began"
    echo "disk $target on B: the guest's view at the job's start"
done < <(virsh_b domblklist "$vm" | awk 'NR > 2 {print $1, $2}')
((n == 2)) || fail "$n disks compared on B, not 2"
drop_b "$vm"
running "after the import"

# The same stream through vmferry-send: the headers it writes (resume
# query, push) keep GUEST, or B refuses the guest content.
cleanup_add drop_b "$vm-s"
on_a $VG vmferry-send -i "$out" hostb -- --dir "$dest" --define \
    --name "$vm-s" >/dev/null || fail "vmferry-send of the guest stream failed"
n=0
while read -r target src; do
    [[ $target == vd[ab] ]] || continue
    n=$((n + 1))
    on_a qemu-img compare -q -f raw -F raw "$SCRATCH/ref-$target.raw" \
        "$IMAGES_B/running/${src##*/}" ||
        fail "disk $target sent to B is not the guest's view"
done < <(virsh_b domblklist "$vm-s" | awk 'NR > 2 {print $1, $2}')
((n == 2)) || fail "$n disks sent to B compared, not 2"
drop_b "$vm-s"
rm -f "$out"
echo "vmferry-send: the guest stream imported on B"

# ---- a paused domain: exported the same way, left paused
virsh_a -q suspend "$vm" >/dev/null
wait_state a "$vm" paused 30
msg=$(on_a $VG vmferry-export -c qemu:///system "$vm" -o "$out" 2>&1) ||
    fail "the export of the paused domain failed: $msg"
on_a $VG vmferry-info --verify "$out" >/dev/null || fail "$out does not verify"
[[ $(virsh_a domstate "$vm" | head -n 1) == paused ]] || fail "$vm is not paused"
[[ -z $(job_socket) ]] || fail "the paused export left its job"
# The same as an archive: read back with the guest content's feature.
msg=$(on_a $VG vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/p.tar" 2>&1) ||
    fail "the export of the paused domain to an archive failed: $msg"
on_a $VG vmferry-info --verify "$SCRATCH/p.tar" >/dev/null ||
    fail "the paused domain's archive does not verify"
rm -f "$SCRATCH/p.tar"
virsh_a -q resume "$vm" >/dev/null
rm -f "$out"
echo "paused: exported, left paused: $msg"

# ---- someone else's backup job is refused, never touched
mkdir -m 0700 "$SCRATCH/foreign"
cat >"$SCRATCH/foreign.xml" <<XML
<domainbackup mode='pull'>
  <server transport='unix' socket='$SCRATCH/foreign/nbd.sock'/>
  <disks>
    <disk name='vda' backup='yes' type='file'><scratch file='$SCRATCH/foreign/s.qcow2'/></disk>
    <disk name='vdb' backup='no'/>
  </disks>
</domainbackup>
XML
virsh_a -q backup-begin "$vm" "$SCRATCH/foreign.xml" >/dev/null
# Should the test fail before it ends the job itself.
end_job() { virsh_a -q domjobabort "$vm" >/dev/null 2>&1 || true; }
cleanup_add end_job
msg=$(on_a $VG vmferry-export -c qemu:///system "$vm" -o "$out" 2>&1) &&
    fail "exported beside someone else's backup job"
grep -qF "has a backup job that is not vmferry's (socket $SCRATCH/foreign/nbd.sock)" <<<"$msg" ||
    fail "the foreign job is not named: $msg"
[[ $(job_socket) == "$SCRATCH/foreign/nbd.sock" ]] || fail "the foreign job was touched"
virsh_a -q domjobabort "$vm" >/dev/null
for ((i = 0; i < 300; i++)); do
    [[ -z $(job_socket) ]] && break
    sleep 0.1
done
[[ -z $(job_socket) ]] || fail "the foreign job does not end"
echo "a foreign backup job: refused, left alone: $msg"

# ---- SIGKILL: the job stays; the next export ends it and works
start_slow
kill -s KILL "$pid"
wait "$job" || true
[[ $(job_socket) == "$sock" ]] || fail "after SIGKILL: job '$(job_socket)', not $sock"
msg=$(on_a $VG vmferry-export -c qemu:///system "$vm" -o "$out" 2>&1) ||
    fail "the export after SIGKILL failed: $msg"
grep -qF "ended the backup job of an interrupted run and removed ${sock%/*}" <<<"$msg" ||
    fail "the stale job's end is not said: $msg"
[[ ! -e ${sock%/*} && -z $(job_socket) ]] || fail "after the next export: ${sock%/*} or a job left"
on_a $VG vmferry-info --verify "$out" >/dev/null || fail "$out does not verify"
running "after SIGKILL"
echo "SIGKILL: the next export ended the stale job: $msg"
rm -f "$out"

# ---- SIGTERM: the job ends, no scratch, no directory
start_slow
kill -s TERM "$pid"
rc=0
wait "$job" || rc=$?
((rc == 143)) || fail "SIGTERM: status $rc: $(cat "$SCRATCH/slow.err")"
[[ -z $(job_socket) ]] || fail "SIGTERM left the job $(job_socket)"
[[ ! -e ${sock%/*} ]] || fail "SIGTERM left ${sock%/*}: $(ls -la "${sock%/*}")"
[[ ! -e $out ]] || fail "SIGTERM: $out exists"
running "after SIGTERM"
echo "SIGTERM: job ended, ${sock%/*} removed"
# ---- UEFI NVRAM and TPM state of a running domain: carried as files
# (its own QEMU holds the NVRAM's write lock: not a refusal here)
fw=t-running-fw
tpm=()
[[ ${TESTBED_TPM:-0} == 1 ]] && tpm=(--tpm)
make_vm --uefi "${tpm[@]}" --start "$fw" raw 16M 0x42@0+1M
msg=$(on_a $VG vmferry-export -c qemu:///system "$fw" -o "$SCRATCH/fw.vmf" 2>&1) ||
    fail "the export of running $fw failed: $msg"
info=$(on_a $VG vmferry-info --verify --json "$SCRATCH/fw.vmf") ||
    fail "$SCRATCH/fw.vmf does not verify"
grep -q '"role": *"nvram"' <<<"$info" || fail "no NVRAM in the stream: $info"
if ((${#tpm[@]})); then
    grep -q '"role": *"tpm"' <<<"$info" || fail "no TPM state in the stream: $info"
fi
[[ $(virsh_a domstate "$fw" | head -n 1) == running ]] || fail "$fw stopped"
echo "UEFI${tpm[*]:+ and TPM}: carried while running"
echo "export of a running domain: OK"
