#!/bin/bash
# Live migration A -> B of a running raw VM and a running qcow2 VM, with
# the guest writing while its disks are copied:
#   - the domain runs on B and is persistent there; A keeps it shut off;
#   - after stopping it on B, each disk holds exactly what the guest wrote
#     (patterns written before start, plus writes made through the QEMU
#     monitor during the copy) and compares identical to A's final disk;
#   - B's allocation is at most 1.1 x A's (A's disks hold 16 MiB of
#     allocated zeros, which arrive as holes);
#   - the running domain on B has detect_zeroes, its persistent
#     definition is the source's unchanged;
#   - progress came as JSON lines, disk copy first.
. "$(dirname "$0")/functions.sh"

requires qemu-io
requires qemu-img
# The command a user runs: vmferry-migrate --live, to host B's libvirtd
# over TCP (the test bed's hosts share one machine, so QEMU's data goes
# to 127.0.0.1).
LIVE=(vmferry-migrate --live -c "$URI_A" --dest-uri "$TCP_URI_B" --migrate-uri tcp://127.0.0.1)

MIB=$((1024 * 1024))
patterns=(0x11@0+16M 0x00@64M+16M 0x22@128M+8M)

# wait_line FILE SECONDS: until FILE has a line (the first progress line).
wait_line() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [[ -s $1 ]] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

hmp_write() {   # DOMAIN PATTERN OFFSET LENGTH: a guest write, through QEMU
    local out
    out=$(virsh_a qemu-monitor-command --hmp "$1" \
        "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"write -P $2 $3 $4\"")
    [[ -z ${out//[$'\n\r ']/} ]] || fail "$1: qemu-io in the monitor: $out"
}

alloc() { local b s; read -r b s < <(stat -c '%b %B' "$1"); echo $((b * s)); }

for fmt in raw qcow2; do
    name=t-live-$fmt
    ext=$([[ $fmt == raw ]] && echo img || echo qcow2)
    make_vm --start "$name" "$fmt" 256M "${patterns[@]}"
    path=$IMAGES_DIR/$name.$ext

    prog=$SCRATCH/$name.progress
    : >"$prog"
    # Throttled so the copy is still running when the guest writes.
    $VG "${LIVE[@]}" --bandwidth 32M \
        --progress 3 "$name" hostb 3>"$prog" 2>"$SCRATCH/$name.err" &
    pid=$!
    wait_line "$prog" 120 || { cat "$SCRATCH/$name.err" >&2; fail "$name: no progress line"; }
    # One write into a range copied early, one into a range copied late.
    hmp_write "$name" 0x42 32M 1M
    hmp_write "$name" 0x43 200M 64k
    rc=0
    wait "$pid" || rc=$?
    cat "$SCRATCH/$name.err" >&2
    ((rc == 0)) || fail "$name: live migration failed (status $rc)"

    wait_state b "$name" running 30 || fail "$name does not run on B"
    [[ $(virsh_b domstate "$name") == running* ]] || fail "$name is not running on B"
    grep -q '^Persistent: *yes' <<<"$(virsh_b dominfo "$name")" || fail "$name is not persistent on B"
    wait_state a "$name" "shut off" 30 || fail "$name is still active on A"
    grep -q "detect_zeroes='unmap'" <<<"$(virsh_b dumpxml "$name")" ||
        fail "$name: the running domain on B has no detect_zeroes"
    grep -q "detect_zeroes" <<<"$(virsh_b dumpxml --inactive "$name")" &&
        fail "$name: detect_zeroes leaked into the persistent definition"

    lines=$(<"$prog")
    grep -q '"event":"begin","label":"disks"' <<<"$lines" || fail "$name: no disk progress"
    grep -q '"event":"end","label":"disks"' <<<"$lines" || fail "$name: disk progress did not end"

    virsh_b -q destroy "$name" >/dev/null
    wait_state b "$name" "shut off" 30
    check_disk on_b "$path" "$fmt" 0x11@0+16M 0x00@16M+16M 0x42@32M+1M \
        0x00@33M+95M 0x22@128M+8M 0x00@136M+64M 0x43@200M+64k \
        0x00@$((200 * MIB + 65536))+$((56 * MIB - 65536)) ||
        fail "$name: the disk on B is not what the guest wrote"
    on_b qemu-img compare -q -f "$fmt" -F "$fmt" "$path" "$IMAGES_A/$name.$ext" ||
        fail "$name: the disk on B differs from A's final disk"

    a=$(alloc "$IMAGES_A/$name.$ext")
    b=$(alloc "$IMAGES_B/$name.$ext")
    echo "   $name: allocated on A $((a / MIB)) MiB, on B $((b / MIB)) MiB"
    ((b * 10 <= a * 11)) || fail "$name: B allocates $b bytes, more than 1.1 x A's $a"
done
echo "live migration of raw and qcow2 OK"
