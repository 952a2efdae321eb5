#!/bin/bash
# bench/bench-tar.sh: write the bench set's domain as a zstd-compressed
# tar on host A three ways, in one run, and unpack each, side by side:
#
#   vmferry  vmferry-export DOM --format=tar -o X.tar.zst   (pax, sparse
#            entries, libarchive's zstd filter, level 1, threads = CPUs)
#   tar      tar -S -c FILES | zstd -1 -T0 > X.tar.zst
#   bsdtar   bsdtar --zstd --options zstd:compression-level=1,zstd:threads=N
#            -cf X.tar.zst FILES   (bsdtar 3.6's -S is for x mode only:
#            in c mode it reads sparse files by default, --read-sparse)
#
# and unpacks each with its own reader:
#
#   vmferry  vmferry-import X.tar.zst --dir D   (every file verified against
#            the archive's digests, no define)
#   vmferry-gnutar  tar --zstd -xSf of vmferry's archive (what an admin
#            without vmferry does)
#   tar      zstd -dc X.tar.zst | tar -xS
#   bsdtar   bsdtar -xSf X.tar.zst
#
# Every unpacked copy is checked with qemu-img compare against its source
# (lib.sh: bench_set_compare) and removed after it is measured.  The bench
# set is lib.sh's (bench-offline's), cached in $BENCH_SET_DIR.  With
# BENCH_SYNC=1 each side's time includes making what it wrote durable:
# `sync FILE` of the archive, `sync FILE...` of the unpacked files
# (vmferry-import fdatasyncs by itself and is synced the same way).
#
# Prints per contender and phase: wall seconds, archive size, CPU seconds
# (user + sys of the whole pipeline), the load average when it started,
# ratios to tar+zstd's; the machine and the local-copy floor (lib.sh:
# bench_machine) and each wall time as a ratio to that floor.
#
# Environment, besides bench/lib.sh's:
#   BENCH_CONTENDERS    which, in which order ("vmferry tar bsdtar")
#   BENCH_TAR_DIR       where archives and unpacked copies go, a path on
#                       the machine (default: B's image directory,
#                       $IMAGES_B/bench-tar, on the bed's file system)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

: "${BENCH_CONTENDERS:=vmferry tar bsdtar}"

# pack NAME ARCHIVE: NAME's archive of the set (files in $IMAGES_A).
# Run by timed in a new bash: the set's files come in BENCH_SET_FILES_LIST.
pack() {
    local name=$1 out=$2 files
    read -ra files <<<"$BENCH_SET_FILES_LIST"
    case $name in
        vmferry)
            nsenter --mount --target "$PID_A" -- "$VMFERRY_TOOLS_DIR/vmferry-export" \
                -q -c "$URI_A" "$BENCH_SET_DOM" --format=tar -o "$out" ;;
        tar)
            tar -S -c -C "$IMAGES_A" -- "${files[@]}" | zstd -q -1 -T0 >"$out" ;;
        bsdtar)
            bsdtar --zstd --options "zstd:compression-level=1,zstd:threads=$(nproc)" \
                -cf "$out" -C "$IMAGES_A" -- "${files[@]}" ;;
    esac
    if ((BENCH_SYNC)); then sync -- "$out"; fi
}

# unpack NAME ARCHIVE DIR: ARCHIVE unpacked into DIR by NAME's reader;
# prints the directory that holds the disks.
unpack() {
    local name=$1 in=$2 dir=$3 sub=$3 files
    read -ra files <<<"$BENCH_SET_FILES_LIST"
    case $name in
        vmferry)
            "$VMFERRY_TOOLS_DIR/vmferry-import" -q --dir "$dir" "$in" ;;
        vmferry-gnutar)
            tar --zstd -xSf "$in" -C "$dir"
            sub=$dir/$BENCH_SET_DOM ;;
        tar)
            zstd -q -dc "$in" | tar -xS -C "$dir" ;;
        bsdtar)
            bsdtar -xSf "$in" -C "$dir" ;;
    esac
    if ((BENCH_SYNC)); then sync -- "${files[@]/#/$sub/}"; fi
    echo "$sub"
}

# timed T CMD...: run CMD under GNU time into T.time; the wall seconds on
# the monotonic clock to stdout, CMD's own stdout to T.out.
timed() {
    local t=$1 t0 t1
    shift
    t0=$(now)
    bg_run /usr/bin/time -f "$TIME_FMT" -o "$t.time" bash -c 'set -o pipefail; "$@"' _ "$@" \
        >"$t.out" 2>"$t.err" || { cat "$t.err" >&2; die "$(basename "$t") failed"; }
    t1=$(now)
    elapsed "$t0" "$t1"
}

# run_contender NAME: pack, then unpack (with vmferry's archive, also by
# GNU tar); rows into $BENCH_OUT/results.tsv:
# name phase wall size cpu load.
run_contender() {
    local name=$1 arc=$WORK/$1.tar.zst wall load size dir sub per readers r
    rm -f -- "$arc"
    prepare_cache "${BENCH_SET_FILES[@]/#/$IMAGES_A/}"
    load=$(loadavg1)
    export -f pack
    wall=$(timed "$BENCH_OUT/$name.pack" pack "$name" "$arc")
    size=$(stat -c %s -- "$arc")
    printf '%s\tpack\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$size" \
        "$(cpu_s "$BENCH_OUT/$name.pack.time")" "$load" >>"$BENCH_OUT/results.tsv"
    printf '   %-15s pack    %7s s  %9s MiB\n' "$name" "$wall" "$(mib "$size")"
    readers=$name
    [[ $name == vmferry ]] && readers="vmferry vmferry-gnutar"
    for r in $readers; do
        dir=$WORK/unpack-$r
        rm -rf -- "$dir"
        mkdir -p -- "$dir"
        prepare_cache "$arc"
        load=$(loadavg1)
        export -f unpack
        wall=$(timed "$BENCH_OUT/$r.unpack" unpack "$r" "$arc" "$dir")
        sub=$(tail -n 1 "$BENCH_OUT/$r.unpack.out")
        per=$(bench_set_compare "$sub") || die "$r: the unpacked copy is wrong"
        printf '%s\tunpack\t%s\t%s\t%s\t%s\n' "$r" "$wall" "$(($(alloc_kib "$sub") * 1024))" \
            "$(cpu_s "$BENCH_OUT/$r.unpack.time")" "$load" >>"$BENCH_OUT/results.tsv"
        printf '   %-15s unpack  %7s s  (%s)\n' "$r" "$wall" \
            "$(echo "$per" | awk '{ printf "%s%s %s KiB", s, $1, $2; s = ", " }')"
        rm -rf -- "$dir"
    done
    rm -f -- "$arc"
}

report() {
    local r=$BENCH_OUT/results.tsv fl
    fl=$(floor_s)
    echo
    say "results ($BENCH_CACHE cache, BENCH_SYNC=$BENCH_SYNC, $(nproc) CPUs; ratios to tar+zstd; size: the archive (pack) or B's allocation (unpack))"
    {
        printf 'contender\tphase\twall s\tx tar\tsize MiB\tx tar\tCPU s\tx tar\tload\tx floor\n'
        awk -F '\t' -v fl="$fl" '
            { row[NR] = $0; if ($1 == "tar") { w[$2] = $3; s[$2] = $4; c[$2] = $5 } }
            function rt(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
            END { for (i = 1; i <= NR; i++) { split(row[i], f, "\t")
                printf "%s\t%s\t%.2f\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\n", f[1], f[2], f[3], rt(f[3], w[f[2]]),
                    f[4] / 1048576, rt(f[4], s[f[2]]), f[5], rt(f[5], c[f[2]]), f[6],
                    fl == "-" ? "-" : rt(f[3], fl) } }' "$r"
    } | print_table
    echo
    echo "source allocation on A: $(mib $(($(alloc_kib "${BENCH_SET_FILES[@]/#/$IMAGES_A/}") * 1024))) MiB"
    bench_machine_print "$BENCH_OUT/machine.tsv"
    echo "machine now: $(machine_state)"
    echo "raw figures and logs: $BENCH_OUT"
}

# ---------------------------------------------------------------- main

bench_check
for c in bsdtar zstd; do
    command -v "$c" >/dev/null || die "missing $c"
done
for c in $BENCH_CONTENDERS; do
    case $c in vmferry | tar | bsdtar) ;; *) die "unknown contender $c (vmferry tar bsdtar)" ;; esac
done
mkdir -p "$BENCH_OUT"
say "bench-tar: $(machine_state); cache $BENCH_CACHE; sync $BENCH_SYNC; output $BENCH_OUT"
bench_set_build
bench_bed_up
bench_set_install
((BENCH_FLOOR)) && say "the machine and the local-copy floor (cold cache; BENCH_FLOOR=0 skips)"
bench_machine "$IMAGES_B/bench-machine"
WORK=${BENCH_TAR_DIR:-$IMAGES_B/bench-tar}
rm -rf -- "$WORK"
mkdir -p -- "$WORK"
bench_cleanup_add rm -rf -- "$WORK"
export PID_A URI_A BENCH_SET_DOM VMFERRY_TOOLS_DIR IMAGES_A BENCH_SYNC
export BENCH_SET_FILES_LIST="${BENCH_SET_FILES[*]}"
: >"$BENCH_OUT/results.tsv"
for c in $BENCH_CONTENDERS; do
    run_contender "$c"
done
report | tee "$BENCH_OUT/report.txt"
