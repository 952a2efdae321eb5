#!/bin/bash
# --compress=auto's zstd level follows the link and the machine's idle
# CPU (lib/adapt.c): on a link slower than the compressors (--bandwidth
# 8M, a 4 MiB ring) the export waits for it most of the time.  Whatever
# level the run chose (the machine's load decides between 1 and 6; the
# decisions themselves are unit-tested in check_adapt), the copy is
# identical, the chunks at different levels all verified by B, and the
# bytes sent are never more than a fixed zstd:1 sends of the same disk.
. "$(dirname "$0")/functions.sh"

requires qemu-img

vm=t-adapt
copy=t-adapt-copy
cleanup_add purge_vm "$copy"
make_vm "$vm" raw 160M
# Compressible, varied data: the shared libraries' bytes.
{ tar -cf - /usr/lib/x86_64-linux-gnu 2>/dev/null || true; } |
    head -c 150M | dd of="$IMAGES_A/$vm.img" conv=notrunc,fsync status=none ||
    fail "cannot fill the disk of $vm"

# run ARGS...: migrate $vm to B as $copy; prints the bytes sent.
run() {
    on_a vmferry-migrate -v --json "$vm" hostb --rename "$copy" --new-uuid \
        --bandwidth 8M --buffer 4M "$@" >"$SCRATCH/json" 2>"$SCRATCH/err" || {
        cat "$SCRATCH/err" >&2
        fail "migrate $* failed"
    }
    on_b qemu-img compare -q -f raw -F raw "$IMAGES_A/$vm.img" \
        "$IMAGES_B/$copy.img" ||
        fail "migrate $*: the copy on B differs from the source"
    jq -r .bytes.sent "$SCRATCH/json"
}

auto=$(run)
line=$(grep -o 'zstd level (auto): .*' "$SCRATCH/err") ||
    fail "no adaptive level reported: $(cat "$SCRATCH/err")"
echo "auto: $line; sent $auto"
[[ $line =~ ^zstd\ level\ \(auto\):\ ([1-6])\ to\ ([1-6]), ]] ||
    fail "levels out of range: $line"
# The link was the bottleneck: the export waited for it.
[[ $line =~ waited\ ([0-9]+)\.[0-9]\ s ]] && ((BASH_REMATCH[1] >= 3)) ||
    fail "the export did not wait for an 8M link: $line"
purge_vm "$copy"

fixed=$(run --compress zstd:1)
grep -q 'zstd level (auto)' "$SCRATCH/err" &&
    fail "zstd:1 reported an adaptive level"
echo "zstd:1: sent $fixed"
((auto <= fixed)) || fail "auto sent $auto bytes, more than zstd:1's $fixed"
