#!/bin/bash
# bench/bench-sync.sh: a standby copy kept on host B, first copied in full
# and then refreshed after ~1% of the source changed, beside its peers in
# one run, on each link, and printed side by side:
#
#   sync     vmferry-sync DOM HOST --rename bench-sync-dr: the first copy
#            (vmferry-migrate's, the source kept, then both sides record
#            their maps), then a refresh that sends only the changed
#            blocks, found as the summary's "method:" says
#   migrate  a second full vmferry-migrate (--new-uuid) of the changed
#            source to a fresh name: the fastest full copy, what a
#            refresh costs without vmferry-sync (a running domain: the
#            same copy as vmferry-export | vmferry-send, which read it
#            through a backup job as vmferry-sync does; migrate would
#            move the domain itself, --live)
#   rsync    rsync --inplace --no-whole-file of the image over ssh (the
#            bed's sshd): a full first copy, then rsync's delta against
#            the copy B holds (both sides read in full)
#   virtnbdbackup  (the running case, when installed) a full backup and
#            then an incremental one from the libvirt checkpoint it made,
#            each written as a zip to standard output (-o -) and kept on
#            B through ssh: what the field uses to read a running
#            domain's changed blocks (it makes a backup, not a standby)
# bdsync and blocksync-fast are not packaged in Debian 12 (apt-cache
# policy: nothing); the run says so, and why each peer it skips is
# skipped.
#
# The cases (BENCH_SYNC_CASES), each on a fresh source of one disk of
# BENCH_SYNC_MIB (default 4096: the order of the bench set's raw disks,
# bench/lib.sh), its first three quarters random data (incompressible,
# so bytes are bytes), the rest a hole:
#   raw      a shut-off raw disk: the refresh reads it all (method: scan)
#   qcow2    the same disk as a shut-off qcow2: the dirty bitmap that the
#            first copy adds says what changed (method: bitmap)
#   running  the qcow2, its domain running (SeaBIOS with nothing to boot,
#            so it writes nothing itself): the checkpoint of the
#            previous copy says what changed (method: checkpoint)
# The change: 160 random 64 KiB writes per GiB (1%), each of its own
# random bytes, made by qemu-io as a guest would (running: through QEMU's
# monitor, HMP qemu-io, then a flush).
#
# Links (BENCH_LINKS, both by default): loopback, the bed's sshd on
# 127.0.0.1; 1gbit, the emulated 1 Gbit/s link of bench/lib.sh (link_up),
# B's second sshd as hostb-1g, where "wire MiB" is what the shaper let
# through A->B.
#
# What is counted, per contender and phase: wall seconds (the whole
# pipeline, lib.sh's clock), bytes into SSH A->B (vmferry: what -v and
# the summary report; the peers: lib.sh's counting stage), CPU on A, the
# load average before it started; each refresh as a ratio to the same
# tool's full copy and to the fastest full copy of the case and link
# (the least wall time of sync's first copy and the second full
# migrate; the bytes of that copy), and each wall time as a ratio to the
# local-copy floor (lib.sh: bench_machine, of this disk).  vmferry-sync's
# -v lines are kept with the time of each ($T.stamped), so a refresh's
# phases can be read off.  Every standby and copy is checked with
# qemu-img compare (virtnbdbackup's backups are not restored).
#
# Targets (issue 16): refresh <= 0.35x the fastest full copy's wall time
# for raw by scan, <= 0.2x where a bitmap or checkpoint says what
# changed; bytes <= 5% of that full copy's; each printed MET or MISSED.
#
# Environment, besides bench/lib.sh's (BENCH_TESTBED_DIR, BENCH_PORT_OFFSET,
# VMFERRY_TOOLS_DIR, BENCH_CACHE, BENCH_SYNC, BENCH_FLOOR, BENCH_TBF_OPTS,
# BENCH_LINK_NET, ...):
#   BENCH_SYNC_MIB      the source disk's size, MiB (4096)
#   BENCH_SYNC_CASES    which cases, in order ("raw qcow2 running")
#   BENCH_LINKS         which links, in order ("loopback 1gbit")
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

: "${BENCH_SYNC_MIB:=4096}"
: "${BENCH_SYNC_CASES:=raw qcow2 running}"
: "${BENCH_LINKS:=loopback 1gbit}"

SRC_DOM=bench-sync
VDOM=bench-sync-v # virtnbdbackup's: its own domain over a copy of the disk
SB=bench-sync-dr
MDOM=bench-sync-m
BENCH_OUT=$(realpath -m -- "$BENCH_OUT")
# The running source's disk, for HMP qemu-io (libvirt's alias of vda).
QDEV=/machine/peripheral/virtio-disk0/virtio-backend
VNB=0 # 1: virtnbdbackup is measured (peers_check)

# The contenders, run by bench_run_script on A.  vmferry's stderr goes
# to $T.err, and again with the time of each line to $T.stamped.
# shellcheck disable=SC2016,SC2034 # expanded by bash -c; used via ${!var}
BENCH_SCRIPT_sync='
echo "$EPOCHREALTIME (start)" >"$T.stamped"
VMFERRY_SYNC_STATE_DIR=$BENCH_TMP/sync-state "$TOOLS/vmferry-sync" -v -c "$URI_A" --dest-uri "$DEST_URI" --dest-dir "$DST" --rename "$SB" "$DOM" "$HOST" 2>&1 >"$T.out" |
    while IFS= read -r l; do printf "%s\n" "$l" >&3; printf "%s %s\n" "$EPOCHREALTIME" "$l"; done 3>"$T.err" >>"$T.stamped"'
# shellcheck disable=SC2016,SC2034
BENCH_SCRIPT_migrate='
echo "$EPOCHREALTIME (start)" >"$T.stamped"
"$TOOLS/vmferry-migrate" -v -c "$URI_A" --dest-uri "$DEST_URI" --dest-dir "$DST" --rename "$MDOM" --new-uuid "$DOM" "$HOST" 2>&1 >"$T.out" |
    while IFS= read -r l; do printf "%s\n" "$l" >&3; printf "%s %s\n" "$EPOCHREALTIME" "$l"; done 3>"$T.err" >>"$T.stamped"'
# A running domain's full copy: export reads it through a backup job.
# shellcheck disable=SC2016,SC2034
BENCH_SCRIPT_export='
echo "$EPOCHREALTIME (start)" >"$T.stamped"
{ "$TOOLS/vmferry-export" -c "$URI_A" "$DOM" |
    "$TOOLS/vmferry-send" -v "$HOST" -- --dir "$DST"; } 2>&1 >"$T.out" |
    while IFS= read -r l; do printf "%s\n" "$l" >&3; printf "%s %s\n" "$EPOCHREALTIME" "$l"; done 3>"$T.err" >>"$T.stamped"'
# shellcheck disable=SC2016,SC2034
BENCH_SCRIPT_rsync='
cd "$SRC" && rsync --inplace --no-whole-file $RSYNC_FSYNC -e "$BENCH_TMP/rsync-rsh" $FILES "$HOST:$DST/" 2>"$T.err" &&
    while kill -0 "$(cat "$T.pvpid")" 2>/dev/null; do sleep 0.02; done'
# LEVEL: full, then inc (its checkpoints are libvirt's, of the domain).
# shellcheck disable=SC2016,SC2034
BENCH_SCRIPT_virtnbdbackup='
mkdir -p "$BENCH_TMP/vnb-work" && cd "$BENCH_TMP/vnb-work" &&
virtnbdbackup -U "$URI_A" -d "$VDOM" -l "$LEVEL" -o - 2>"$T.err" |
    pv -n -b -i 3600 2>"$T.wire" |
    ssh -F "$SSH_CONFIG" $SSHO "$HOST" "cat >$DST/$LEVEL.zip $SYNC_CMD"'

RESULT_COLS='link	case	contender	phase	wall_s	payload_bytes	cpu_a_s	load1	wire_bytes'

case_fmt() { [[ $1 == raw ]] && echo raw || echo qcow2; }
src_file() { [[ $1 == raw ]] && echo "$SRC_DOM.img" || echo "$SRC_DOM.qcow2"; }
# src_compare CASE FILE FORMAT: the source (as the guest sees it) and
# FILE are the same.  A running source is read beside QEMU (-U).
src_compare() {
    local u=()
    [[ $1 == running ]] && u=(-U)
    qemu-img compare -q "${u[@]}" -f "$(case_fmt "$1")" -F "$3" "$IMAGES_A/$(src_file "$1")" "$2"
}

# make_source CASE: the disk on A and the domain over it (running: started).
make_source() {
    local c=$1 raw=$IMAGES_A/$SRC_DOM.img data=$((BENCH_SYNC_MIB * 3 / 4))
    drop_source
    truncate -s "${BENCH_SYNC_MIB}M" "$raw"
    head -c "$((data * MIB))" /dev/urandom | dd of="$raw" bs=4M conv=notrunc,fsync iflag=fullblock status=none
    if [[ $c != raw ]]; then
        qemu-img convert -f raw -O qcow2 "$raw" "$IMAGES_A/$SRC_DOM.qcow2"
        rm -f -- "$raw"
    fi
    bench_define_vm "$SRC_DOM" "$IMAGES_DIR/$(src_file "$c"):$(case_fmt "$c")"
    if [[ $c == running ]]; then
        if ((VNB)); then
            cp --sparse=always -- "$IMAGES_A/$SRC_DOM.qcow2" "$IMAGES_A/$VDOM.qcow2"
            bench_define_vm "$VDOM" "$IMAGES_DIR/$VDOM.qcow2:qcow2"
            virsh_a -q start "$VDOM" >/dev/null || die "cannot start $VDOM on A"
        fi
        virsh_a -q start "$SRC_DOM" >/dev/null || die "cannot start $SRC_DOM on A"
    fi
}
drop_source() {
    local d
    for d in "$SRC_DOM" "$VDOM"; do
        virsh_a -q destroy "$d" >/dev/null 2>&1 || true
        virsh_a -q undefine --checkpoints-metadata "$d" >/dev/null 2>&1 || true
        rm -f -- "$IMAGES_A/$d".*
    done
    rm -rf -- "$BENCH_TMP/vnb-work"
}

# change CASE: 160 random 64 KiB writes per GiB, each its own random
# bytes (no two alike: nothing a compressor could fold), through qemu-io
# (running: QEMU's, through the monitor, then flushed; the same writes
# into virtnbdbackup's domain).
change() {
    local c=$1 n=$((160 * BENCH_SYNC_MIB / 1024)) blocks=$((BENCH_SYNC_MIB * 16)) i o d cmds=() args=()
    local pat=$BENCH_TMP/pattern
    rm -rf -- "$pat"
    mkdir -p -- "$pat"
    for ((i = 0; i < n; i++)); do
        head -c 65536 /dev/urandom >"$pat/$i"
        cmds+=("write -q -s $pat/$i $(((RANDOM * 32768 + RANDOM) % blocks * 65536)) 64k")
    done
    if [[ $c == running ]]; then
        for d in "$SRC_DOM" $( ((VNB)) && echo "$VDOM"); do
            for i in "${cmds[@]}" flush; do
                o=$(virsh_a qemu-monitor-command "$d" --hmp "qemu-io -d $QDEV \"$i\"") ||
                    die "HMP qemu-io $i ($d): failed"
                [[ -z ${o//[[:space:]]/} ]] || die "HMP qemu-io $i ($d): $o"
            done
        done
    else
        for i in "${cmds[@]}"; do args+=(-c "$i"); done
        on_a qemu-io -f "$(case_fmt "$c")" "${args[@]}" "$IMAGES_DIR/$(src_file "$c")" >/dev/null
    fi
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

# run NAME CASE LINK PHASE [VAR=VALUE...]: one timed contender; a
# results row.
run() {
    local name=$1 c=$2 link=$3 phase=$4 t=$BENCH_OUT/$3.$2.$1.$4 dst=$IMAGES_B/bench-$1 rc=0
    local script_var=BENCH_SCRIPT_$1 load t0 t1 payload wire=- qa0=0 f
    shift 4
    mkdir -p -- "$dst"
    rm -f -- "$t".*
    prepare_cache "$IMAGES_A/$(src_file "$c")"
    load=$(loadavg1)
    [[ $link == 1gbit ]] && qa0=$(qdisc_sent "$VETH_A")
    t0=$(now)
    bench_run_script "$t" "$(link_host "$link")" "$IMAGES_DIR/bench-$name" "${!script_var}" \
        DOM="$SRC_DOM" FILES="$(src_file "$c")" SB="$SB" MDOM="$MDOM" VDOM="$VDOM" DEST_URI="$URI_B" \
        SYNC_CMD="$( ((BENCH_SYNC)) && echo "&& sync $IMAGES_DIR/bench-$name")" "$@" || rc=$?
    t1=$(now)
    [[ $link == 1gbit ]] && wire=$(($(qdisc_sent "$VETH_A") - qa0))
    if ((rc)); then
        for f in "$t".err*; do
            [[ -s $f ]] && { echo "--- ${f##*/}:"; cat "$f"; }
        done >&2
        die "$name $phase ($c, $link) failed with status $rc (logs: $t.*)"
    fi
    case $name in
        sync)
            payload=$(sed -n -e 's/.*, sent [^(]*(\([0-9][0-9]*\) bytes).*/\1/p' \
                -e 's/.*: sent \([0-9][0-9]*\) bytes.*/\1/p' "$t.err" | tail -n 1)
            src_compare "$c" "$(b_disk "$SB")" qcow2 ||
                die "sync $phase ($c, $link): the standby differs from the source"
            [[ $phase != full ]] && echo "   $(grep 'refreshed to generation' "$t.err")"
            ;;
        migrate | export)
            payload=$(sed -n 's/.*: sent \([0-9][0-9]*\) bytes.*/\1/p' "$t.err" | tail -n 1)
            if [[ $name == migrate ]]; then
                f=$(b_disk "$MDOM")
                virsh_b -q undefine "$MDOM" >/dev/null
            else
                f=$dst/$(src_file "$c")
            fi
            src_compare "$c" "$f" "$(qemu-img info --output=json "$f" | sed -n 's/.*"format": "\([a-z0-9]*\)".*/\1/p' | head -n 1)" ||
                die "$name ($c, $link): the copy differs from the source"
            rm -rf -- "$dst"
            ;;
        rsync)
            payload=$(wire_bytes "$t.wire")
            src_compare "$c" "$dst/$(src_file "$c")" "$(case_fmt "$c")" ||
                die "rsync $phase ($c, $link): the copy differs from the source"
            ;;
        virtnbdbackup)
            payload=$(wire_bytes "$t.wire")
            [[ -s $dst/$phase.zip ]] || die "virtnbdbackup $phase ($c, $link): no backup on B"
            ;;
    esac
    [[ -n $payload ]] || die "$name $phase ($c, $link): no byte count (see $t.err)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$link" "$c" "$name" "$phase" "$(elapsed "$t0" "$t1")" \
        "$payload" "$(cpu_s "$t.a")" "$load" "$wire" >>"$BENCH_OUT/results.tsv"
    printf '   %-8s %-7s %-13s %-8s %8s s  %10s MiB  load %s\n' "$link" "$c" "$name" "$phase" \
        "$(elapsed "$t0" "$t1")" "$(mib "$payload")" "$load"
}

# drop_case: what a case left on A and B.
drop_case() {
    virsh_b -q undefine "$SB" >/dev/null 2>&1 || true
    virsh_b -q undefine "$MDOM" >/dev/null 2>&1 || true
    drop_source
    rm -rf -- "$IMAGES_B"/bench-sync "$IMAGES_B"/bench-migrate "$IMAGES_B"/bench-export \
        "$IMAGES_B"/bench-rsync "$IMAGES_B"/bench-virtnbdbackup "$BENCH_TMP/sync-state"
}

# run_case CASE LINK: full copies, the change, refreshes, the second full copy.
run_case() {
    local c=$1 link=$2 vnb=0 full=migrate
    if [[ $c == running ]]; then
        vnb=$VNB
        full="export"
    fi
    say "case $c on $link: $BENCH_SYNC_MIB MiB disk, $((BENCH_SYNC_MIB * 3 / 4)) MiB of it random data"
    drop_case
    make_source "$c"
    run sync "$c" "$link" full
    run rsync "$c" "$link" full
    ((vnb)) && run virtnbdbackup "$c" "$link" full LEVEL=full
    # A running domain's first copy records no map (the job's point in
    # time is gone): its first refresh compares both sides in full and
    # makes the checkpoint that the next one reads.
    [[ $c == running ]] && run sync "$c" "$link" prime
    change "$c"
    run sync "$c" "$link" refresh
    run rsync "$c" "$link" refresh
    ((vnb)) && run virtnbdbackup "$c" "$link" inc LEVEL=inc
    run "$full" "$c" "$link" full
    drop_case
}

# skipped NAME WHY: a peer or case not measured, and why.
skipped() { echo "skipped: $1: $2" | tee -a "$BENCH_OUT/skipped.txt"; }

peers_check() {
    local c
    if [[ " $BENCH_SYNC_CASES " != *" running "* ]]; then
        skipped virtnbdbackup "it reads running domains only, and the running case is not in BENCH_SYNC_CASES"
    elif command -v virtnbdbackup >/dev/null; then
        VNB=1
    else
        c=$(apt-cache policy virtnbdbackup 2>/dev/null | awk '/Candidate:/ { print $2 }')
        skipped virtnbdbackup "not installed here (Debian 12 packages it: candidate ${c:-none}; scripts/install-deps.sh installs it)"
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
    if [[ " $BENCH_SYNC_CASES " == *" running "* ]] &&
        ! virsh_a domcapabilities | grep -q "<backup supported='yes'/>"; then
        skipped running "host A's libvirt/QEMU has no backup support (domcapabilities)"
        BENCH_SYNC_CASES=${BENCH_SYNC_CASES//running/}
    fi
}

report_case() {
    local link=$1 c=$2 r=$BENCH_OUT/results.tsv fl
    fl=$(floor_s)
    echo
    say "$c on $link"
    {
        printf 'contender\tphase\twall s\tx full\tx fastest\tpayload MiB\tx full\tx fastest\twire MiB\tCPU A s\tload\tx floor\n'
        awk -F '\t' -v l="$link" -v c="$c" -v fl="$fl" '
            NR > 1 && $1 == l && $2 == c { row[++n] = $0
                if ($4 == "full") { w[$3] = $5; b[$3] = $6
                    if ($3 != "rsync" && $3 != "virtnbdbackup" && (fw == "" || $5 < fw)) { fw = $5; fb = $6 } } }
            function rt(a, b) { return b > 0 ? sprintf("%.3f", a / b) : "-" }
            END { for (i = 1; i <= n; i++) { split(row[i], f, "\t"); ref = f[4] != "full"
                printf "%s\t%s\t%.2f\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\n", f[3], f[4], f[5],
                    ref ? rt(f[5], w[f[3]]) : "-", ref ? rt(f[5], fw) : "-", f[6] / 1048576,
                    ref ? rt(f[6], b[f[3]]) : "-", ref ? rt(f[6], fb) : "-",
                    f[9] == "-" ? "-" : sprintf("%.1f", f[9] / 1048576), f[7], f[8],
                    fl == "-" ? "-" : rt(f[5], fl) } }' "$r"
    } | print_table
    awk -F '\t' -v l="$link" -v c="$c" '
        NR > 1 && $1 == l && $2 == c && $4 == "full" && $3 != "rsync" && $3 != "virtnbdbackup" {
            if (fw == "" || $5 < fw) { fw = $5; fb = $6; fn = $3; fl = $8 } }
        NR > 1 && $1 == l && $2 == c && $3 == "sync" && $4 == "refresh" { w = $5; b = $6; ld = $8 }
        END { if (w == "" || fw == "") exit
              t = (c == "raw") ? 0.35 : 0.2
              how = (c == "raw") ? "by scan" : (c == "qcow2") ? "by bitmap" : "by checkpoint"
              printf "target %s %s (%s): sync refresh wall <= %.2fx the fastest full copy (%s full, %.2f s, load %s): %.2f s, load %s: %.3fx -> %s\n",
                  c, l, how, t, fn, fw, fl, w, ld, w / fw, w <= t * fw ? "MET" : "MISSED"
              printf "target %s %s (%s): sync refresh bytes <= 5%% of that copy'"'"'s (%.1f MiB): %.1f MiB: %.2f%% -> %s\n",
                  c, l, how, fb / 1048576, b / 1048576, 100 * b / fb, b <= 0.05 * fb ? "MET" : "MISSED" }' "$r" |
        tee -a "$BENCH_OUT/targets.txt"
}

report() {
    local link c
    echo
    say "results ($BENCH_CACHE cache, BENCH_SYNC=$BENCH_SYNC, $(nproc) CPUs; x full: the same tool's full copy; x fastest: the fastest full copy of the case and link, sync's or the second migrate's)"
    : >"$BENCH_OUT/targets.txt"
    for link in $BENCH_LINKS; do
        for c in $BENCH_SYNC_CASES; do
            report_case "$link" "$c"
        done
    done
    echo
    echo "targets:"
    sed 's/^/  /' "$BENCH_OUT/targets.txt"
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
for c in $BENCH_SYNC_CASES; do
    case $c in raw | qcow2 | running) ;; *) die "unknown case $c (raw qcow2 running)" ;; esac
done
[[ -n $BENCH_LINKS ]] || die "BENCH_LINKS is empty"
for l in $BENCH_LINKS; do
    case $l in loopback | 1gbit) ;; *) die "unknown link $l (loopback 1gbit)" ;; esac
done
[[ " $BENCH_LINKS " == *" 1gbit "* ]] && for c in ip tc; do
    command -v "$c" >/dev/null || die "missing $c (run scripts/install-deps.sh)"
done
mkdir -p "$BENCH_OUT"
: >"$BENCH_OUT/skipped.txt"
say "bench-sync: $(machine_state); disk $BENCH_SYNC_MIB MiB; cases $BENCH_SYNC_CASES; links $BENCH_LINKS; cache $BENCH_CACHE; sync $BENCH_SYNC; output $BENCH_OUT"
bench_bed_up
bench_write_rsync_rsh
bench_cleanup_add drop_case
peers_check
[[ " $BENCH_LINKS " == *" 1gbit "* ]] && link_up
echo "$RESULT_COLS" >"$BENCH_OUT/results.tsv"
# The floor: of the raw source disk, as lib.sh measures the set's.
make_source raw
BENCH_SET_FILES=("$SRC_DOM.img")
((BENCH_FLOOR)) && say "the machine and the local-copy floor of the $BENCH_SYNC_MIB MiB disk (cold cache; BENCH_FLOOR=0 skips)"
bench_machine "$IMAGES_B/bench-machine"
for l in $BENCH_LINKS; do
    for c in $BENCH_SYNC_CASES; do
        run_case "$c" "$l"
    done
done
report | tee "$BENCH_OUT/report.txt"
