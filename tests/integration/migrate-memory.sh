#!/bin/bash
# vmferry-migrate stays within its memory budget (128 MiB, send.h) with
# the default --buffer, also where the ring fills: 256 MiB of random
# data (incompressible) over a link held to 64 MiB/s (--bandwidth), so
# the export runs as far ahead as it may.  Peak RSS by GNU time, with
# the default threads and with --threads=16.  The same move with the
# old fixed default (--buffer=64M) shows that the ring does fill here:
# its peak is higher by what the default ring leaves out.
. "$(dirname "$0")/functions.sh"

requires qemu-img
[[ -x /usr/bin/time ]] || skip "requires /usr/bin/time (package time)"
[[ -z $VG ]] || skip "peak RSS under valgrind says nothing"
[[ -z ${ASAN_OPTIONS:-} ]] || skip "peak RSS with AddressSanitizer says nothing"

BUDGET_KIB=$((128 * 1024))
vm=t-memory
dest=/var/lib/libvirt/images/memory
dir_on_b "$dest"
make_vm "$vm" raw 512M
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M seek=128 count=256 \
    conv=notrunc status=none

drop_b() {
    virsh_b -q undefine "$vm" >/dev/null 2>&1 || true
    on_b rm -f "$dest/$vm.img"
}
cleanup_add drop_b

# peak TAG [OPTION...]: migrate with OPTIONs; prints its peak RSS in KiB.
peak() {
    local tag=$1
    shift
    drop_b
    on_a /usr/bin/time -f %M -o "$SCRATCH/$tag.rss" vmferry-migrate -v \
        --bandwidth=64M "$@" "$vm" hostb --dest-dir "$dest" \
        >"$SCRATCH/$tag.out" 2>"$SCRATCH/$tag.err" || {
        cat "$SCRATCH/$tag.err" >&2
        fail "$tag: vmferry-migrate failed"
    }
    on_a qemu-img compare -q -f raw -F raw "$IMAGES_DIR/$vm.img" \
        "$IMAGES_B/memory/$vm.img" || fail "$tag: the copy differs"
    tail -n 1 "$SCRATCH/$tag.rss"
}

rss=$(peak default)
ring=$(sed -n 's/.*--buffer: \([0-9.]*\) MiB.*/\1/p' "$SCRATCH/default.err")
[[ -n $ring ]] || ring=0
echo "default: peak RSS $((rss / 1024)) MiB, ring ${ring} MiB ($(nproc) CPUs)"
((rss <= BUDGET_KIB)) || fail "default: peak RSS $rss KiB is over the budget"

rss64=$(peak fixed --buffer=64M)
echo "--buffer=64M: peak RSS $((rss64 / 1024)) MiB"
# The ring filled: the fixed 64 MiB one shows nearly all of its extra.
extra=$(awk -v r="$ring" 'BEGIN { printf "%d", (64 - r - 4) * 1024 }')
((rss64 - rss >= extra)) ||
    fail "the ring did not fill: --buffer=64M peaked at $rss64 KiB," \
        "the default ($ring MiB) at $rss KiB: the test proves nothing"

rss16=$(peak threads16 --threads=16)
echo "--threads=16: peak RSS $((rss16 / 1024)) MiB"
((rss16 <= BUDGET_KIB)) || fail "--threads=16: peak RSS $rss16 KiB is over the budget"
echo "within the budget"
