#!/bin/bash
# bench/bench-sync.sh: a standby copy kept on host B, first copied in full
# and then refreshed after ~1% of the source changed, beside its peers in
# one run, and printed side by side:
#
#   sync     vmferry-sync DOM HOST --rename bench-sync-dr: the first copy
#            (vmferry-migrate's, the source kept), then a refresh that
#            sends only the changed blocks (raw: "method: scan"; qcow2:
#            "method: bitmap", the persistent dirty bitmap, when
#            vmferry-sync has it)
#   migrate  a second full vmferry-migrate (--new-uuid) of the changed source to a
#            fresh name (what a refresh costs without vmferry-sync)
#   rsync    rsync --inplace --no-whole-file of the image over ssh (the
#            bed's sshd): a full first copy, then rsync's delta against
#            the copy B holds (both sides read in full)
# and, when this machine has them, virtnbdbackup (full, then inc), and
# bdsync or blocksync-fast; the run says why each one it skips is skipped.
#
# The source: one domain on A with one disk of BENCH_SYNC_MIB (default
# 4096: the order of the bench set's raw disks, bench/lib.sh), its first
# three quarters random data (incompressible, so bytes are bytes), the
# rest a hole.  The change: 160 random 64 KiB writes per GiB (1%), each
# of its own random bytes, written by qemu-io as a guest would.  For
# qcow2 (BENCH_SYNC_FORMATS), the same disk converted; its refresh is the
# bitmap method's when `vmferry-sync --help` mentions --no-bitmap, else it
# is skipped and the run says why.  A running domain is measured when
# vmferry-sync accepts running domains; this version of the script says
# whether it does and skips it either way (see bench/README.md).
#
# What is counted, per contender and phase: wall seconds (the whole
# pipeline, lib.sh's clock), bytes into SSH A->B (vmferry: what -v and the
# summary report; rsync: lib.sh's counting stage), CPU on A, the load
# average before it started; refresh/full ratios of the same tool, and
# each wall time as a ratio to the local-copy floor (lib.sh:
# bench_machine, of this disk).  Every standby and copy is checked with
# qemu-img compare.  Loopback only (the bed's sshd on 127.0.0.1); the
# 1 Gbit/s link of bench-migrate.sh is not built here.
#
# Targets (issue 16): refresh <= 0.35x the full copy's wall time for raw
# by scan, <= 0.2x where a bitmap says what changed; bytes <= 5% of a
# full copy's.
#
# Environment, besides bench/lib.sh's (BENCH_TESTBED_DIR, BENCH_PORT_OFFSET,
# VMFERRY_TOOLS_DIR, BENCH_CACHE, BENCH_SYNC, BENCH_FLOOR, ...):
#   BENCH_SYNC_MIB      the source disk's size, MiB (4096)
#   BENCH_SYNC_FORMATS  which cases, in order ("raw qcow2")
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

: "${BENCH_SYNC_MIB:=4096}"
: "${BENCH_SYNC_FORMATS:=raw qcow2}"

SRC_DOM=bench-sync
SB=bench-sync-dr
MDOM=bench-sync-m
BENCH_OUT=$(realpath -m -- "$BENCH_OUT")

# shellcheck disable=SC2016,SC2034 # expanded by bash -c; used via ${!var}
BENCH_SCRIPT_sync='
VMFERRY_SYNC_STATE_DIR=$BENCH_TMP/sync-state "$TOOLS/vmferry-sync" -v -c "$URI_A" --dest-uri "$DEST_URI" --dest-dir "$DST" --rename "$SB" "$DOM" "$HOST" 2>"$T.err" >"$T.out"'
# shellcheck disable=SC2016,SC2034
BENCH_SCRIPT_migrate='
"$TOOLS/vmferry-migrate" -v -c "$URI_A" --dest-uri "$DEST_URI" --dest-dir "$DST" --rename "$MDOM" --new-uuid "$DOM" "$HOST" 2>"$T.err" >"$T.out"'
# shellcheck disable=SC2016,SC2034
BENCH_SCRIPT_rsync='
cd "$SRC" && rsync --inplace --no-whole-file $RSYNC_FSYNC -e "$BENCH_TMP/rsync-rsh" $FILES "$HOST:$DST/" 2>"$T.err" &&
    while kill -0 "$(cat "$T.pvpid")" 2>/dev/null; do sleep 0.02; done'

RESULT_COLS='format	contender	phase	wall_s	payload_bytes	cpu_a_s	load1'

# make_source FORMAT: the disk on A and the domain over it.
make_source() {
    local fmt=$1 raw=$IMAGES_A/$SRC_DOM.img data=$((BENCH_SYNC_MIB * 3 / 4))
    virsh_a -q undefine "$SRC_DOM" >/dev/null 2>&1 || true
    rm -f -- "$IMAGES_A/$SRC_DOM".*
    truncate -s "${BENCH_SYNC_MIB}M" "$raw"
    head -c "$((data * MIB))" /dev/urandom | dd of="$raw" bs=4M conv=notrunc,fsync iflag=fullblock status=none
    if [[ $fmt == qcow2 ]]; then
        qemu-img convert -f raw -O qcow2 "$raw" "$IMAGES_A/$SRC_DOM.qcow2"
        rm -f -- "$raw"
    fi
    bench_define_vm "$SRC_DOM" "$IMAGES_DIR/$(src_file "$fmt"):$fmt"
}
src_file() { [[ $1 == qcow2 ]] && echo "$SRC_DOM.qcow2" || echo "$SRC_DOM.img"; }

# change FORMAT: 160 random 64 KiB writes per GiB, each its own random
# bytes (no two alike: nothing a compressor could fold), through qemu-io.
change() {
    local fmt=$1 n=$((160 * BENCH_SYNC_MIB / 1024)) blocks=$((BENCH_SYNC_MIB * 16)) i args=()
    local pat=$BENCH_TMP/pattern
    rm -rf -- "$pat"
    mkdir -p -- "$pat"
    for ((i = 0; i < n; i++)); do
        head -c 65536 /dev/urandom >"$pat/$i"
        args+=(-c "write -q -s $pat/$i $(((RANDOM * 32768 + RANDOM) % blocks * 65536)) 64k")
    done
    on_a qemu-io -f "$fmt" "${args[@]}" "$IMAGES_DIR/$(src_file "$fmt")" >/dev/null
    rm -rf -- "$pat"
    say "changed: $n random 64 KiB writes ($(mib $((n * 65536))) MiB of $BENCH_SYNC_MIB MiB)"
}

# b_disk DOMAIN: the file DOMAIN's disk names on B, as the machine sees it.
b_disk() {
    local p
    p=$(virsh_b domblklist "$1" | awk 'NR > 2 && NF >= 2 { print $2; exit }')
    [[ $p == "$IMAGES_DIR"/* ]] || die "$1 on B names $p, not a file under $IMAGES_DIR"
    echo "$IMAGES_B/${p#"$IMAGES_DIR"/}"
}

# run NAME FORMAT PHASE: one timed contender; a results row.
run() {
    local name=$1 fmt=$2 phase=$3 t=$BENCH_OUT/$2.$1.$3 dst=$IMAGES_B/bench-$1 rc=0
    local script_var=BENCH_SCRIPT_$1 load t0 t1 payload
    mkdir -p -- "$dst"
    rm -f -- "$t".*
    prepare_cache "$IMAGES_A/$(src_file "$fmt")"
    load=$(loadavg1)
    t0=$(now)
    bench_run_script "$t" "$SSH_HOST_B" "$IMAGES_DIR/bench-$1" "${!script_var}" \
        DOM="$SRC_DOM" FILES="$(src_file "$fmt")" SB="$SB" MDOM="$MDOM" DEST_URI="$URI_B" || rc=$?
    t1=$(now)
    if ((rc)); then
        cat "$t".err* >&2 2>/dev/null || true
        die "$name $phase ($fmt) failed with status $rc (logs: $t.*)"
    fi
    case $name in
        sync)
            payload=$(sed -n -e 's/.*, sent [^(]*(\([0-9][0-9]*\) bytes).*/\1/p' \
                -e 's/.*: sent \([0-9][0-9]*\) bytes.*/\1/p' "$t.err" | tail -n 1)
            qemu-img compare -q -f "$fmt" -F qcow2 "$IMAGES_A/$(src_file "$fmt")" "$(b_disk "$SB")" ||
                die "sync $phase ($fmt): the standby differs from the source"
            [[ $phase == refresh ]] && echo "   $(grep 'refreshed to generation' "$t.err")"
            ;;
        migrate)
            payload=$(sed -n 's/.*: sent \([0-9][0-9]*\) bytes.*/\1/p' "$t.err" | tail -n 1)
            qemu-img compare -q -f "$fmt" -F "$fmt" "$IMAGES_A/$(src_file "$fmt")" "$(b_disk "$MDOM")" ||
                die "migrate ($fmt): the copy differs from the source"
            virsh_b -q undefine "$MDOM" >/dev/null
            rm -rf -- "$dst"
            ;;
        rsync)
            payload=$(wire_bytes "$t.wire")
            qemu-img compare -q -f "$fmt" -F "$fmt" "$IMAGES_A/$(src_file "$fmt")" "$dst/$(src_file "$fmt")" ||
                die "rsync $phase ($fmt): the copy differs from the source"
            ;;
    esac
    [[ -n $payload ]] || die "$name $phase ($fmt): no byte count (see $t.err)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fmt" "$name" "$phase" "$(elapsed "$t0" "$t1")" \
        "$payload" "$(cpu_s "$t.a")" "$load" >>"$BENCH_OUT/results.tsv"
    printf '   %-6s %-8s %-8s %8s s  %10s MiB  load %s\n' "$fmt" "$name" "$phase" \
        "$(elapsed "$t0" "$t1")" "$(mib "$payload")" "$load"
}

# drop_case: what a case left on A and B.
drop_case() {
    virsh_b -q undefine "$SB" >/dev/null 2>&1 || true
    virsh_b -q undefine "$MDOM" >/dev/null 2>&1 || true
    rm -rf -- "$IMAGES_B"/bench-sync "$IMAGES_B"/bench-migrate "$IMAGES_B"/bench-rsync "$BENCH_TMP/sync-state"
}

# case FORMAT: full copies, the change, refreshes.
run_case() {
    local fmt=$1
    say "case $fmt: $BENCH_SYNC_MIB MiB disk, $((BENCH_SYNC_MIB * 3 / 4)) MiB of it random data"
    drop_case
    make_source "$fmt"
    run sync "$fmt" full
    run rsync "$fmt" full
    change "$fmt"
    run sync "$fmt" refresh
    run rsync "$fmt" refresh
    run migrate "$fmt" full
    drop_case
}

# skipped NAME WHY: a peer or case not measured, and why.
skipped() { echo "skipped: $1: $2" | tee -a "$BENCH_OUT/skipped.txt"; }

peers_check() {
    local c
    if command -v virtnbdbackup >/dev/null; then
        skipped virtnbdbackup "installed, but not run by this version of the script (it writes a backup directory, not a standby; its incremental mode follows libvirt checkpoints of a running domain)"
    else
        c=$(apt-cache policy virtnbdbackup 2>/dev/null | awk '/Candidate:/ { print $2 }')
        skipped virtnbdbackup "not installed here (Debian 12 packages it: candidate ${c:-none}; apt-get install virtnbdbackup); its incremental mode follows libvirt checkpoints of a running domain"
    fi
    for c in bdsync blocksync-fast; do
        if command -v "$c" >/dev/null; then
            skipped "$c" "installed, but not run by this version of the script"
        elif [[ -z $(apt-cache policy "$c" 2>/dev/null) ]]; then
            skipped "$c" "not packaged in Debian 12 (apt-cache policy $c: nothing)"
        else
            skipped "$c" "not installed (apt-get install $c)"
        fi
    done
    if ! "$VMFERRY_TOOLS_DIR/vmferry-sync" --help | grep -q -- --no-bitmap && [[ " $BENCH_SYNC_FORMATS " == *" qcow2 "* ]]; then
        skipped qcow2 "this vmferry-sync has no bitmap method (no --no-bitmap in --help): it refuses qcow2 disks"
        BENCH_SYNC_FORMATS=${BENCH_SYNC_FORMATS//qcow2/}
    fi
    if "$VMFERRY_TOOLS_DIR/vmferry-sync" --help | grep -q 'shut-off libvirt domain'; then
        skipped running "this vmferry-sync copies shut-off domains only"
    else
        skipped running "vmferry-sync accepts running domains (method: checkpoint, read through a backup job); this version of the script does not measure it"
    fi
}

report() {
    local r=$BENCH_OUT/results.tsv fl fmt
    fl=$(floor_s)
    echo
    say "results ($BENCH_CACHE cache, BENCH_SYNC=$BENCH_SYNC, $(nproc) CPUs, loopback; refresh x full: the same tool's full copy)"
    for fmt in $BENCH_SYNC_FORMATS; do
        echo
        {
            printf 'contender\tphase\twall s\tx full\tpayload MiB\tx full\tCPU A s\tload\tx floor\n'
            awk -F '\t' -v f="$fmt" -v fl="$fl" '
                NR > 1 && $1 == f { row[++n] = $0; if ($3 == "full") { w[$2] = $4; b[$2] = $5 } }
                function rt(a, b) { return b > 0 ? sprintf("%.3f", a / b) : "-" }
                END { for (i = 1; i <= n; i++) { split(row[i], c, "\t")
                    printf "%s\t%s\t%.2f\t%s\t%.1f\t%s\t%s\t%s\t%s\n", c[2], c[3], c[4],
                        c[3] == "refresh" ? rt(c[4], w[c[2]]) : "-", c[5] / 1048576,
                        c[3] == "refresh" ? rt(c[5], b[c[2]]) : "-", c[6], c[7],
                        fl == "-" ? "-" : rt(c[4], fl) } }' "$r"
        } | print_table
        awk -F '\t' -v f="$fmt" '
            NR > 1 && $1 == f && $2 == "sync" { w[$3] = $4; b[$3] = $5 }
            NR > 1 && $1 == f && $2 == "migrate" { mw = $4 }
            END { if (!("refresh" in w)) exit
                  t = (f == "raw") ? 0.35 : 0.2
                  printf "target %s: sync refresh wall <= %.2fx its full copy: %.3fx -> %s\n", f, t, w["refresh"] / w["full"], w["refresh"] <= t * w["full"] ? "MET" : "MISSED"
                  printf "target %s: sync refresh bytes <= 5%% of its full copy: %.2f%% -> %s\n", f, 100 * b["refresh"] / b["full"], b["refresh"] <= 0.05 * b["full"] ? "MET" : "MISSED"
                  if (mw) printf "sync refresh vs a second full vmferry-migrate: %.3fx the wall time\n", w["refresh"] / mw }' "$r"
    done
    echo
    [[ -s $BENCH_OUT/skipped.txt ]] && cat "$BENCH_OUT/skipped.txt"
    bench_machine_print "$BENCH_OUT/machine.tsv"
    echo "machine now: $(machine_state)"
    echo "raw figures and logs: $BENCH_OUT"
}

# ---------------------------------------------------------------- main

bench_check
[[ -x $VMFERRY_TOOLS_DIR/vmferry-sync ]] || die "no $VMFERRY_TOOLS_DIR/vmferry-sync: build first"
if ! [[ $BENCH_SYNC_MIB =~ ^[0-9]+$ ]] || ((BENCH_SYNC_MIB < 64)); then
    die "BENCH_SYNC_MIB must be a number >= 64"
fi
for f in $BENCH_SYNC_FORMATS; do
    case $f in raw | qcow2) ;; *) die "unknown format $f (raw qcow2)" ;; esac
done
mkdir -p "$BENCH_OUT"
: >"$BENCH_OUT/skipped.txt"
say "bench-sync: $(machine_state); disk $BENCH_SYNC_MIB MiB; formats $BENCH_SYNC_FORMATS; cache $BENCH_CACHE; sync $BENCH_SYNC; output $BENCH_OUT"
bench_bed_up
bench_write_rsync_rsh
bench_cleanup_add drop_case
peers_check
echo "$RESULT_COLS" >"$BENCH_OUT/results.tsv"
# The floor: of the raw source disk, as lib.sh measures the set's.
make_source raw
BENCH_SET_FILES=("$SRC_DOM.img")
((BENCH_FLOOR)) && say "the machine and the local-copy floor of the $BENCH_SYNC_MIB MiB disk (cold cache; BENCH_FLOOR=0 skips)"
bench_machine "$IMAGES_B/bench-machine"
for f in $BENCH_SYNC_FORMATS; do
    run_case "$f"
done
report | tee "$BENCH_OUT/report.txt"
