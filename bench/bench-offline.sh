#!/bin/bash
# bench/bench-offline.sh: copy one shut-off VM's disks from host A to host B
# three ways, in one run, and print them side by side:
#
#   vmferry  vmferry-export DOM | ssh hostb vmferry-import --dir D
#   tar      tar -cS FILES | zstd -1 -T0 | ssh hostb 'zstd -d | tar -xS'
#   rsync    rsync -aS FILES hostb:D/
#
# The bench set (built once, cached in $BENCH_SET_DIR; lib.sh builds it):
#   bench-ext4.img    16 GiB sparse raw: ext4 holding ~2.2 GiB of real files
#                     (this machine's /usr/share, then /usr/lib) and
#                     512 MiB from /dev/urandom (mke2fs -d)
#   bench-zeros.img   2 GiB raw of written (allocated) zeros
#   bench-disk.qcow2  8 GiB qcow2: an ext4 of the next ~400 MiB of /usr/lib
#                     files (qemu-img convert) plus 64 MiB of a pattern
# defined as one domain with three disks on A.  Every copy is checked
# with qemu-img compare.  Each contender writes into its own empty
# directory on B, removed after it is measured.
#
# Prints per contender: wall seconds, bytes on the wire (A->B), allocation
# on B, ratios to the tar+zstd pipeline, CPU seconds on A (everything:
# sender, pv, ssh client) and on B (the receiver, not sshd) and the
# ratio of their sum to tar+zstd's (less sensitive to a busy machine than
# wall time); and
# vmferry's peak RSS of export and import.  Target: vmferry's wall time
# <= 0.5x tar+zstd's.  Before the contenders, once, the machine (lib.sh:
# bench_machine): its read and write rates and the local-copy floor,
# printed as "machine:" lines; each wall time is also given as a ratio
# to that floor (the last column, "x floor").
#
# Environment, besides bench/lib.sh's:
#   BENCH_ROUNDS        rounds of all contenders (1); medians when > 1
#   BENCH_CONTENDERS    which, in which order ("vmferry tar rsync")
#   BENCH_REBUILD, BENCH_*_MIB   the bench set (see lib.sh)
#   BENCH_EXPORT_OPTS / BENCH_IMPORT_OPTS   extra vmferry options, e.g.
#                       "--threads=2" or "--compress=none" (for profiling)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

: "${BENCH_ROUNDS:=1}"
: "${BENCH_CONTENDERS:=vmferry tar rsync}"
: "${BENCH_EXPORT_OPTS:=}"
: "${BENCH_IMPORT_OPTS:=}"

# vmferry's pipeline, run like the peers' (lib.sh: BENCH_SCRIPT_*,
# bench_run_script), with EXPORT_OPTS and IMPORT_OPTS.
# shellcheck disable=SC2016,SC2034 # expanded by bash -c; used via ${!var}
BENCH_SCRIPT_vmferry='
/usr/bin/time -f "$TIME_FMT" -o "$T.export" "$TOOLS/vmferry-export" -c "$URI_A" $EXPORT_OPTS "$DOM" 2>"$T.err" |
    pv -n -b -i 3600 2>"$T.wire" |
    ssh -F "$SSH_CONFIG" $SSHO "$HOST" "/usr/bin/time -f '"'"'$TIME_FMT'"'"' -o $T.b $TOOLS/vmferry-import --dir $DST $IMPORT_OPTS 2>$T.err-b"'

# run_contender NAME ROUND: one timed copy, checked, measured, removed.
# Appends a row to $BENCH_OUT/results.tsv.
run_contender() {
    local name=$1 round=$2 t=$BENCH_OUT/$1.$2 dst_ns=$IMAGES_DIR/bench-$1 dst=$IMAGES_B/bench-$1
    local load t0 t1 rc=0 wire back alloc src_alloc per script_var=BENCH_SCRIPT_$1
    rm -rf -- "$dst"
    mkdir -p -- "$dst"
    rm -f -- "$t".*
    prepare_cache "${BENCH_SET_FILES[@]/#/$IMAGES_A/}"
    load=$(loadavg1)
    t0=$(now)
    bench_run_script "$t" "$SSH_HOST_B" "$dst_ns" "${!script_var}" \
        EXPORT_OPTS="$BENCH_EXPORT_OPTS" IMPORT_OPTS="$BENCH_IMPORT_OPTS" || rc=$?
    t1=$(now)
    if ((rc)); then
        cat "$t".err* >&2 2>/dev/null || true
        die "$name (round $round) failed with status $rc"
    fi
    per=$(bench_set_compare "$dst") || die "$name (round $round): the copy on B is wrong"
    wire=$(wire_bytes "$t.wire")
    back=-
    [[ -f $t.wire-back ]] && back=$(wire_bytes "$t.wire-back")
    alloc=$(alloc_kib "$dst")
    src_alloc=$(alloc_kib "${BENCH_SET_FILES[@]/#/$IMAGES_A/}")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$name" "$round" "$(elapsed "$t0" "$t1")" "$wire" "$((alloc * 1024))" \
        "$(cpu_s "$t.a")" "$(cpu_s "$t.b")" "$load" "$back" \
        "$( [[ -f $t.export ]] && rss_mib "$t.export" || echo -)" \
        "$(rss_mib "$t.b")" "$src_alloc" >>"$BENCH_OUT/results.tsv"
    printf '   %-8s %6s s  wire %8s MiB  B alloc %8s MiB  (%s)\n' "$name" "$(elapsed "$t0" "$t1")" \
        "$(mib "$wire")" "$(mib $((alloc * 1024)))" "$(echo "$per" | awk '{ printf "%s%s %s KiB", s, $1, $2; s = ", " }')"
    rm -rf -- "$dst"
}

# ---------------------------------------------------------------- report

report() {
    local r=$BENCH_OUT/results.tsv fl vw
    fl=$(floor_s)
    echo
    say "results ($BENCH_CACHE cache, BENCH_SYNC=$BENCH_SYNC, rounds $BENCH_ROUNDS, $(nproc) CPUs; ratios to tar+zstd of the same round)"
    {
        printf 'contender\tround\twall s\tx tar\twire MiB\tx tar\tB alloc MiB\tx tar\tCPU A s\tCPU B s\tCPU x tar\tload\tx floor\n'
        awk -F '\t' -v fl="$fl" '
            { row[NR] = $0; if ($1 == "tar") { tw[$2] = $3; tb[$2] = $4; ta[$2] = $5; tc[$2] = $6 + $7 } }
            function rt(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
            END { for (i = 1; i <= NR; i++) { split(row[i], f, "\t")
                printf "%s\t%s\t%.2f\t%s\t%.1f\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\n", f[1], f[2], f[3], rt(f[3], tw[f[2]]),
                    f[4] / 1048576, rt(f[4], tb[f[2]]), f[5] / 1048576, rt(f[5], ta[f[2]]), f[6], f[7],
                    rt(f[6] + f[7], tc[f[2]]), f[8], fl == "-" ? "-" : rt(f[3], fl) } }' "$r"
    } | print_table
    if ((BENCH_ROUNDS > 1)); then
        echo
        say "medians over $BENCH_ROUNDS rounds"
        local c w tw
        tw=$(awk -F '\t' '$1 == "tar" { print $3 }' "$r" | median_stdin)
        {
            printf 'contender\twall s\tx tar\tx floor\n'
            for c in $BENCH_CONTENDERS; do
                w=$(awk -F '\t' -v c="$c" '$1 == c { print $3 }' "$r" | median_stdin)
                printf '%s\t%s\t%s\t%s\n' "$c" "$w" "$(ratio "$w" "$tw")" "$(x_floor "$w")"
            done
        } | print_table
    fi
    echo
    awk -F '\t' '$1 == "rsync" && $9 != "-" { printf "rsync B->A: %.1f KiB (not in the wire column)\n", $9 / 1024; exit }' "$r"
    awk -F '\t' '{ s = $12 } END { printf "source allocation on A: %.1f MiB\n", s / 1024 }' "$r"
    awk -F '\t' '$1 == "vmferry" { e = e " " $10; i = i " " $11 }
        END { if (e != "") printf "vmferry peak RSS (MiB): export%s; import%s (target <= 128)\n", e, i }' "$r"
    if [[ " $BENCH_CONTENDERS " == *" vmferry "* && " $BENCH_CONTENDERS " == *" tar "* ]]; then
        local vw tw2 x
        vw=$(awk -F '\t' '$1 == "vmferry" { print $3 }' "$r" | median_stdin)
        tw2=$(awk -F '\t' '$1 == "tar" { print $3 }' "$r" | median_stdin)
        x=$(ratio "$vw" "$tw2")
        echo "target: vmferry wall <= 0.5x tar+zstd: ${x}x -> $(awk -v x="$x" 'BEGIN { print (x <= 0.5) ? "MET" : "MISSED" }')"
    fi
    bench_machine_print "$BENCH_OUT/machine.tsv"
    if [[ $fl != - && " $BENCH_CONTENDERS " == *" vmferry "* ]]; then
        vw=$(awk -F '\t' '$1 == "vmferry" { print $3 }' "$r" | median_stdin)
        echo "vmferry wall / the local-copy floor: ${vw} s / ${fl} s = $(ratio "$vw" "$fl")x"
    fi
    echo "machine now: $(machine_state)"
    echo "raw figures and logs: $BENCH_OUT"
}

# ---------------------------------------------------------------- main

bench_check
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive number"
for c in $BENCH_CONTENDERS; do
    case $c in vmferry | tar | rsync) ;; *) die "unknown contender $c (vmferry tar rsync)" ;; esac
done
mkdir -p "$BENCH_OUT"
say "bench-offline: $(machine_state); cache $BENCH_CACHE; sync $BENCH_SYNC; output $BENCH_OUT"
bench_set_build
bench_bed_up
bench_pv_cost | tee "$BENCH_OUT/pv-cost.txt"
bench_set_install
((BENCH_FLOOR)) && say "the machine and the local-copy floor (cold cache; BENCH_FLOOR=0 skips)"
bench_machine "$IMAGES_B/bench-machine"
bench_write_rsync_rsh
: >"$BENCH_OUT/results.tsv"
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    say "round $round"
    for c in $BENCH_CONTENDERS; do
        run_contender "$c" "$round"
    done
done
report | tee "$BENCH_OUT/report.txt"
