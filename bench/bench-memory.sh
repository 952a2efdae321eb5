#!/bin/bash
# bench/bench-memory.sh: vmferry's memory must stay flat whatever the disk
# size.  Two sparse raw disks, 16 GiB and 64 GiB, holding the same data:
# 512 MiB from /dev/urandom in 64 pieces of 8 MiB and 256 MiB of written
# zeros in 32 pieces, spread evenly over the disk (so the larger disk has
# larger holes between the same pieces).  Each is copied A -> B by
#   vmferry-export DOM | ssh hostb vmferry-import --dir D
# with export and import each under GNU time, then moved again by
#   vmferry-migrate DOM hostb --dest-dir D
# under GNU time, with the default --buffer: its ring fills where the link
# is the bottleneck, so the link is held to BENCH_MEM_MIGRATE_OPTS'
# --bandwidth, the worst case for its memory.  Prints the three peak RSS
# side by side and whether each is <= 128 MiB (the target), plus wall
# times and bytes on the wire.  Every copy is checked with qemu-img
# compare.
#
# Environment, besides bench/lib.sh's:
#   BENCH_MEM_SIZES     disk sizes in GiB ("16 64")
#   BENCH_MEM_THREADS   --threads settings for all the tools; "default"
#                       is none (the number of CPUs here).  A larger
#                       count shows the memory a many-core host would
#                       use ("default 16 64")
#   BENCH_MEM_MIGRATE_OPTS  vmferry-migrate's options ("--bandwidth=256M";
#                       e.g. "--buffer=64M" adds the old fixed ring)
#   BENCH_MEM_LIMIT_MIB the target (128)
#   BENCH_REBUILD       1: rebuild the cached disks (0)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

: "${BENCH_MEM_SIZES:=16 64}"
: "${BENCH_MEM_THREADS:=default 16 64}"
: "${BENCH_MEM_MIGRATE_OPTS=--bandwidth=256M}"
: "${BENCH_MEM_LIMIT_MIB:=128}"
: "${BENCH_REBUILD:=0}"

PIECE=$((8 * MIB))
NR_RANDOM=64 # x 8 MiB = 512 MiB
NR_ZERO=32   # x 8 MiB = 256 MiB

# build_disk GIB: $BENCH_SET_DIR/mem-<GIB>g.img, cached.
build_disk() {
    local gib=$1 img=$BENCH_SET_DIR/mem-$1g.img size i off params
    size=$((gib * GIB))
    params="v1 size=${gib}G random=${NR_RANDOM}x8M zero=${NR_ZERO}x8M"
    if [[ $BENCH_REBUILD != 1 && -f $img.done && $(cat "$img.done") == "$params" ]]; then
        return 0
    fi
    say "building $img ($params)"
    mkdir -p "$BENCH_SET_DIR"
    rm -f "$img" "$img.done"
    if [[ ! -f $BENCH_SET_DIR/mem-random.bin || $BENCH_REBUILD == 1 ]]; then
        head -c $((NR_RANDOM * PIECE)) /dev/urandom >"$BENCH_SET_DIR/mem-random.bin.tmp"
        mv "$BENCH_SET_DIR/mem-random.bin.tmp" "$BENCH_SET_DIR/mem-random.bin"
    fi
    truncate -s "$size" "$img"
    for ((i = 0; i < NR_RANDOM; i++)); do
        off=$((i * size / NR_RANDOM))
        dd if="$BENCH_SET_DIR/mem-random.bin" of="$img" bs=$PIECE skip="$i" \
            seek=$((off / PIECE)) count=1 conv=notrunc status=none
    done
    # Between the random pieces, never on them.
    for ((i = 0; i < NR_ZERO; i++)); do
        off=$((i * size / NR_ZERO + size / (NR_RANDOM * 2)))
        dd if=/dev/zero of="$img" bs=$PIECE seek=$((off / PIECE)) count=1 \
            conv=notrunc status=none
    done
    sync "$img"
    echo "$params" >"$img.done"
}

# run_size GIB THREADS: one copy; appends a row to results.tsv.
run_size() {
    local gib=$1 th=$2 dom=bench-mem$1 t=$BENCH_OUT/mem$1-$2 opt=""
    local dst_ns=$IMAGES_DIR/bench-mem dst=$IMAGES_B/bench-mem t0 t1 rc=0 load alloc
    local mig_wall mig_ring
    [[ $th != default ]] && opt=--threads=$th
    rm -rf -- "$dst"
    mkdir -p -- "$dst"
    rm -f -- "$t".*
    prepare_cache "$IMAGES_A/mem-${gib}g.img"
    load=$(loadavg1)
    t0=$(now)
    # shellcheck disable=SC2016 # expanded by bash -c
    on_a_timed env T="$t" TOOLS="$VMFERRY_TOOLS_DIR" URI_A="$URI_A" DOM="$dom" \
        SSH_CONFIG="$SSH_CONFIG" SSHO="$BENCH_SSH_OPTS" DST="$dst_ns" TIME_FMT="$TIME_FMT" OPT="$opt" \
        bash -c 'set -o pipefail
/usr/bin/time -f "$TIME_FMT" -o "$T.export" "$TOOLS/vmferry-export" -c "$URI_A" $OPT "$DOM" 2>"$T.err" |
    pv -n -b -i 3600 2>"$T.wire" |
    ssh -F "$SSH_CONFIG" $SSHO hostb "/usr/bin/time -f '"'"'$TIME_FMT'"'"' -o $T.import $TOOLS/vmferry-import --dir $DST $OPT 2>$T.err-b"' ||
        rc=$?
    t1=$(now)
    if ((rc)); then
        cat "$t".err* >&2 2>/dev/null || true
        die "${gib} GiB (threads $th) failed with status $rc"
    fi
    qemu-img compare -q -f raw -F raw "$IMAGES_A/mem-${gib}g.img" "$dst/mem-${gib}g.img" ||
        die "${gib} GiB: the copy on B differs from the source (qemu-img compare)"
    alloc=$(alloc_kib "$dst/mem-${gib}g.img")
    rm -rf -- "$dst"
    mkdir -p -- "$dst"
    migrate_size "$gib" "$th" "$dom" "$t" "$dst_ns" "$opt"
    qemu-img compare -q -f raw -F raw "$IMAGES_A/mem-${gib}g.img" "$dst/mem-${gib}g.img" ||
        die "${gib} GiB: vmferry-migrate's copy on B differs from the source (qemu-img compare)"
    virsh_b -q undefine "$dom" >/dev/null
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$gib" "$th" "$(elapsed "$t0" "$t1")" \
        "$(wire_bytes "$t.wire")" "$(rss_mib "$t.export")" "$(rss_mib "$t.import")" \
        "$alloc" "$load" "$mig_wall" "$(rss_mib "$t.migrate")" "$mig_ring" >>"$BENCH_OUT/results.tsv"
    printf '   %3s GiB, threads %-7s %6s s  export %6s MiB  import %6s MiB;  migrate %6s s %6s MiB peak RSS (ring %s)\n' \
        "$gib" "$th" "$(elapsed "$t0" "$t1")" "$(rss_mib "$t.export")" "$(rss_mib "$t.import")" \
        "$mig_wall" "$(rss_mib "$t.migrate")" "$mig_ring"
    rm -rf -- "$dst"
}

# migrate_size GIB THREADS DOM T DEST OPT: the same disk by vmferry-migrate
# (sets mig_wall, and mig_ring: the ring its -v reports).
migrate_size() {
    local gib=$1 th=$2 dom=$3 t=$4 dst_ns=$5 opt=$6 t0 t1 rc=0
    prepare_cache "$IMAGES_A/mem-${gib}g.img"
    t0=$(now)
    # shellcheck disable=SC2016 # expanded by bash -c
    on_a_timed env T="$t" TOOLS="$VMFERRY_TOOLS_DIR" URI_A="$URI_A" URI_B="$URI_B" DOM="$dom" \
        HOST="$SSH_HOST_B" DST="$dst_ns" TIME_FMT="$TIME_FMT" OPT="$opt" MOPTS="$BENCH_MEM_MIGRATE_OPTS" \
        bash -c '/usr/bin/time -f "$TIME_FMT" -o "$T.migrate" "$TOOLS/vmferry-migrate" -v -c "$URI_A" \
            --dest-uri "$URI_B" --dest-dir "$DST" $OPT $MOPTS "$DOM" "$HOST" >"$T.mout" 2>"$T.merr"' ||
        rc=$?
    t1=$(now)
    if ((rc)); then
        cat "$t.merr" >&2 2>/dev/null || true
        die "${gib} GiB (threads $th): vmferry-migrate failed with status $rc"
    fi
    mig_wall=$(elapsed "$t0" "$t1")
    mig_ring=$(sed -n 's/.*--buffer: \(.*\) ([0-9.]* [KMG]*i*B held.*/\1/p' "$t.merr" | tr -d ' ')
    [[ -n $mig_ring ]] || mig_ring=given
}

report() {
    echo
    say "peak RSS ($BENCH_CACHE cache, $(nproc) CPUs; target <= $BENCH_MEM_LIMIT_MIB MiB each; migrate: ${BENCH_MEM_MIGRATE_OPTS:-no options})"
    {
        printf 'disk\tthreads\twall s\twire MiB\texport RSS MiB\timport RSS MiB\tmigrate s\tmigrate RSS MiB\tring\t<= %s MiB\tB alloc MiB\tload\n' "$BENCH_MEM_LIMIT_MIB"
        awk -F '\t' -v lim="$BENCH_MEM_LIMIT_MIB" '{
            ok = ($5 <= lim && $6 <= lim && $10 <= lim) ? "yes" : "NO"
            printf "%s GiB\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\n", $1, $2, $3, $4 / 1048576, $5, $6, $9, $10, $11, ok, $7 / 1024, $8 }' \
            "$BENCH_OUT/results.tsv"
    } | print_table
    echo
    # Flat: for each thread setting, the spread of RSS over the sizes.
    awk -F '\t' '{ k = $2; for (c = 5; c <= 10; c += (c == 6 ? 4 : 1)) { v = $c + 0
            if (!(k SUBSEP c in lo) || v < lo[k, c]) lo[k, c] = v
            if (!(k SUBSEP c in hi) || v > hi[k, c]) hi[k, c] = v }
          if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
        END { for (i = 1; i <= n; i++) { k = order[i]; printf "threads %s: RSS spread over disk sizes: export %.1f MiB, import %.1f MiB, migrate %.1f MiB\n",
                  k, hi[k, 5] - lo[k, 5], hi[k, 6] - lo[k, 6], hi[k, 10] - lo[k, 10] } }' "$BENCH_OUT/results.tsv"
    echo "machine now: $(machine_state)"
    echo "raw figures and logs: $BENCH_OUT"
}

# ---------------------------------------------------------------- main

bench_check
[[ -x $VMFERRY_TOOLS_DIR/vmferry-migrate ]] || die "no $VMFERRY_TOOLS_DIR/vmferry-migrate: build first"
for g in $BENCH_MEM_SIZES; do
    [[ $g =~ ^[1-9][0-9]*$ ]] || die "BENCH_MEM_SIZES: '$g' is not a size in GiB"
done
for th in $BENCH_MEM_THREADS; do
    [[ $th == default || $th =~ ^[1-9][0-9]*$ ]] || die "BENCH_MEM_THREADS: '$th' is not default or a number"
done
mkdir -p "$BENCH_OUT"
say "bench-memory: $(machine_state); cache $BENCH_CACHE; output $BENCH_OUT"
for g in $BENCH_MEM_SIZES; do build_disk "$g"; done
bench_bed_up
for g in $BENCH_MEM_SIZES; do
    bench_link_image "$BENCH_SET_DIR/mem-${g}g.img" "$IMAGES_A/mem-${g}g.img"
    bench_define_vm "bench-mem$g" "$IMAGES_DIR/mem-${g}g.img:raw"
done
: >"$BENCH_OUT/results.tsv"
for th in $BENCH_MEM_THREADS; do
    for g in $BENCH_MEM_SIZES; do
        run_size "$g" "$th"
    done
done
report | tee "$BENCH_OUT/report.txt"
