#!/bin/bash
# bench/bench-migrate.sh: move the bench set's VM from host A to host B
# three ways, over two links, in one run, and print them side by side:
#
#   vmferry  vmferry-migrate DOM HOST --dest-dir D   (libssh, in-process
#            export, send and the remote vmferry-import; the domain is
#            defined on B, then undefined again for the next contender)
#   tar      tar -cS FILES | zstd -1 -T0 | ssh HOST 'zstd -d | tar -xS'
#   rsync    rsync -aS FILES HOST:D/
#
# The tar and rsync pipelines, the bench set (cached in $BENCH_SET_DIR),
# BENCH_SYNC and BENCH_CACHE are bench-offline's (bench/lib.sh).
#
# Links (BENCH_LINKS, both by default, each contender on each):
#   loopback  the bed's sshd on 127.0.0.1, as bench-offline uses it;
#   1gbit     an emulated 1 Gbit/s link to B (bench/lib.sh: link_up), B's
#             second sshd reached as the ssh alias hostb-1g.
# Both are torn down at exit, also on failure or interrupt.
#
# What is counted:
#   payload   the bytes handed to SSH to encrypt, A->B: for tar and rsync
#             the counting stage before ssh (pv, as in bench-offline);
#             for vmferry, which has no pipe to count through, what
#             vmferry-migrate -v reports it wrote into the SSH channel
#             ("sent N bytes": the import stream, the same bytes).
#   wire      1gbit only: the bytes tbf let through on A's veth end (A->B)
#             and on B's (B->A), from `tc -s qdisc`: Ethernet frames with
#             their IP, TCP and SSH headers, a GSO packet counted as the
#             frames it becomes (qdisc_pkt_len), i.e. exactly what the
#             shaper charges at 1e9 bit/s.  wire s = bytes * 8 / 1e9, the
#             least time those bytes need on the link; wall/wire is the
#             target figure.  The veth's own tx_bytes (a GSO packet once,
#             with one header) are kept in results.tsv for comparison.
#   CPU       GNU time around everything on A (vmferry-migrate; or the
#             pipeline with pv and the ssh client) and around the receiver
#             on B (vmferry: every vmferry-import that B's sshd runs, via
#             a wrapper first in PATH of B's SSH sessions; tar/rsync: the
#             receiving command).  sshd is in neither.
# Every copy is checked with qemu-img compare; vmferry's domain on B must
# point at the copies.
#
# The machine (lib.sh: bench_machine), once, before the contenders: its
# buffered and O_DIRECT read rates, its write rate and the local-copy
# floor (cp --sparse=always of the set + sync, cold), printed as
# "machine:" lines; every wall time is also a ratio to that floor (the
# tables' last column, "x floor").  BENCH_FLOOR=0 skips it.
#
# Targets on 2 cores: vmferry wall <= 0.35x tar+zstd's on loopback; on
# 1gbit, vmferry wall <= 1.10x its wire time.  Issue 20's: loopback
# <= 1.5x the local-copy floor; 1gbit <= 1.10x the larger of the floor
# and the wire time.
#
# Environment, besides bench/lib.sh's:
#   BENCH_LINKS         which links, in which order ("loopback 1gbit")
#   BENCH_ROUNDS        rounds of everything (1); medians when > 1
#   BENCH_CONTENDERS    which, in which order ("vmferry tar rsync"); also
#                       "pipeline": vmferry-export | vmferry-send -- --define,
#                       the same move as a Unix pipeline (no check or rewrite)
#   BENCH_MIGRATE_OPTS  extra vmferry-migrate options, e.g.
#                       "--connections 4" ("").  Tried once with --dry-run
#                       before anything is timed: a refused option stops
#                       the run with vmferry-migrate's message.
#   BENCH_SEND_OPTS     extra vmferry-send options for "pipeline" ("")
#   BENCH_TBF_OPTS, BENCH_LINK_NET  the 1gbit link (see lib.sh)
#   BENCH_FLOOR_MIB     zeros pushed through plain ssh on each link first,
#                       to show what the link and ssh alone achieve (512;
#                       0: skip)
#   BENCH_IMPORT_OPTS   extra options for B's vmferry-import (experiments)
#   BENCH_PROBE         a command (bash -c) run once the links are up and
#                       before the contenders, for experiments; it gets
#                       the bed's env file ($BENCH_ENV), HOST_1G, NETNS,
#                       VETH_A, VETH_B, BENCH_OUT and the tools in PATH
#   BENCH_REBUILD, BENCH_*_MIB   the bench set (see lib.sh)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

: "${BENCH_LINKS:=loopback 1gbit}"
: "${BENCH_ROUNDS:=1}"
: "${BENCH_CONTENDERS:=vmferry tar rsync}"
: "${BENCH_MIGRATE_OPTS:=}"
: "${BENCH_SEND_OPTS:=}"
: "${BENCH_FLOOR_MIB:=512}"

BENCH_OUT=$(realpath -m -- "$BENCH_OUT")
# B's SSH sessions find vmferry-import here first (see write_b_tools).
BENCH_B_TOOLS_DIR=$BENCH_OUT/b-tools
IMPORT_TIME_TARGET=$BENCH_B_TOOLS_DIR/time-target

# vmferry's contender, run like the peers' (lib.sh: BENCH_SCRIPT_*,
# bench_run_script), with MIGRATE_OPTS and DEST_URI.  -v: the byte count.
# Its stdout (the pre-flight check's findings) goes to $T.out, its
# stderr to $T.err, and again with the time of each line to $T.stamped.
# shellcheck disable=SC2016,SC2034 # expanded by bash -c; used via ${!var}
BENCH_SCRIPT_vmferry='
echo "$EPOCHREALTIME (start)" >"$T.stamped"
"$TOOLS/vmferry-migrate" -v -c "$URI_A" --dest-uri "$DEST_URI" --dest-dir "$DST" $MIGRATE_OPTS "$DOM" "$HOST" 2>&1 >"$T.out" |
    while IFS= read -r l; do printf "%s\n" "$l" >&3; printf "%s %s\n" "$EPOCHREALTIME" "$l"; done 3>"$T.err" >>"$T.stamped"'

# The same move as a pipeline of the two tools: vmferry-send reads the
# export's output ahead (its --buffer) in place of migrate's in-memory ring.
# shellcheck disable=SC2016,SC2034 # expanded by bash -c; used via ${!var}
BENCH_SCRIPT_pipeline='
echo "$EPOCHREALTIME (start)" >"$T.stamped"
{ "$TOOLS/vmferry-export" -c "$URI_A" "$DOM" |
    "$TOOLS/vmferry-send" -v $SEND_OPTS "$HOST" -- --dir "$DST" --define; } 2>&1 >"$T.out" |
    while IFS= read -r l; do printf "%s\n" "$l" >&3; printf "%s %s\n" "$EPOCHREALTIME" "$l"; done 3>"$T.err" >>"$T.stamped"'

# is_ours NAME: a contender that is vmferry (defines the domain on B,
# reports its bytes with -v).
is_ours() { [[ $1 == vmferry || $1 == pipeline ]]; }

# ---------------------------------------------------------------- host B's tools

# write_b_tools: $BENCH_B_TOOLS_DIR, first in PATH of B's SSH sessions (the
# bed's sshd and ours): the build's tools, vmferry-import wrapped in GNU
# time appending to the file named in $IMPORT_TIME_TARGET (vmferry-migrate
# runs it twice: --resume-query, then the import).
write_b_tools() {
    local f
    rm -rf -- "$BENCH_B_TOOLS_DIR"
    mkdir -p -- "$BENCH_B_TOOLS_DIR"
    for f in "$VMFERRY_TOOLS_DIR"/vmferry-*; do
        [[ -f $f && -x $f ]] && ln -s -- "$(realpath -- "$f")" "$BENCH_B_TOOLS_DIR/${f##*/}"
    done
    rm -f -- "$BENCH_B_TOOLS_DIR/vmferry-import"
    # shellcheck disable=SC2016 # expanded by the wrapper
    {
        echo '#!/bin/sh'
        echo '# bench-migrate: vmferry-import as B runs it, timed like the peers'"'"' receivers.'
        printf 't=$(cat %q 2>/dev/null)\n' "$IMPORT_TIME_TARGET"
        printf 'exec /usr/bin/time -a -f %q -o "${t:-/dev/null}" %q "$@" %s\n' \
            "$TIME_FMT" "$(realpath -- "$VMFERRY_TOOLS_DIR/vmferry-import")" "${BENCH_IMPORT_OPTS:-}"
    } >"$BENCH_B_TOOLS_DIR/vmferry-import"
    chmod +x "$BENCH_B_TOOLS_DIR/vmferry-import"
    echo /dev/null >"$IMPORT_TIME_TARGET"
}

# ---------------------------------------------------------------- helpers

# sum_time FILE: CPU seconds (user + sys) over all GNU time lines in FILE;
# max_rss FILE: the largest peak RSS among them, MiB.
sum_time() {
    awk 'NF == 4 && $2 ~ /^[0-9.]+$/ { s += $2 + $3; n++ } END { if (n) printf "%.2f", s; else print "-" }' "$1" 2>/dev/null || echo -
}
max_rss() {
    awk 'NF == 4 && $4 ~ /^[0-9]+$/ { if ($4 > m) m = $4; n++ } END { if (n) printf "%.1f", m / 1024; else print "-" }' "$1" 2>/dev/null || echo -
}

# drop_b_domain: the bench set's domain on B, if vmferry defined it.
drop_b_domain() {
    if virsh_b -q domuuid "$BENCH_SET_DOM" >/dev/null 2>&1; then
        virsh_b -q undefine "$BENCH_SET_DOM" >/dev/null
    fi
}

# check_options: BENCH_MIGRATE_OPTS as vmferry-migrate takes them, tried
# with --dry-run before anything is timed.
check_options() {
    local out=$BENCH_OUT/migrate-dry-run.log rc=0
    say "vmferry-migrate options: ${BENCH_MIGRATE_OPTS:-(none)}; trying them with --dry-run"
    mkdir -p -- "$IMAGES_B/bench-vmferry" # as for the real runs, or the check blocks
    # shellcheck disable=SC2086 # BENCH_MIGRATE_OPTS: words
    on_a_timed "$VMFERRY_TOOLS_DIR/vmferry-migrate" --dry-run -c "$URI_A" --dest-uri "$URI_B" \
        --dest-dir "$IMAGES_DIR/bench-vmferry" $BENCH_MIGRATE_OPTS "$BENCH_SET_DOM" "$SSH_HOST_B" \
        >"$out" 2>&1 || rc=$?
    if ((rc)); then
        sed 's/^/   /' "$out" >&2
        die "vmferry-migrate refuses BENCH_MIGRATE_OPTS=\"$BENCH_MIGRATE_OPTS\" (status $rc, above; log $out)"
    fi
    grep -q '^blocked' "$out" && { sed 's/^/   /' "$out" >&2; die "vmferry-migrate's pre-flight check blocks $BENCH_SET_DOM (above; log $out)"; }
    rmdir -- "$IMAGES_B/bench-vmferry"
}

# floor LINK: BENCH_FLOOR_MIB of zeros through plain ssh (cat >/dev/null on
# B): what the link and OpenSSH alone achieve.  Appends to floor.tsv.
floor() {
    local link=$1 host t0 t1 w0 w1 wall wire=-
    ((BENCH_FLOOR_MIB > 0)) || return 0
    host=$(link_host "$link")
    [[ $link == 1gbit ]] && w0=$(qdisc_sent "$VETH_A")
    t0=$(now)
    # shellcheck disable=SC2086 # BENCH_SSH_OPTS: words
    bg_run bash -c "head -c $((BENCH_FLOOR_MIB * MIB)) /dev/zero | ssh -F '$SSH_CONFIG' $BENCH_SSH_OPTS $host 'cat >/dev/null'" ||
        die "plain ssh to $host failed"
    t1=$(now)
    wall=$(elapsed "$t0" "$t1")
    if [[ $link == 1gbit ]]; then
        w1=$(qdisc_sent "$VETH_A")
        wire=$((w1 - w0))
    fi
    printf '%s\t%s\t%s\t%s\n' "$link" "$((BENCH_FLOOR_MIB * MIB))" "$wall" "$wire" >>"$BENCH_OUT/floor.tsv"
    tail -n 1 "$BENCH_OUT/floor.tsv" | floor_print
}

# floor_print < floor.tsv rows: one line each.
floor_print() {
    awk -F '\t' -v bps=$LINK_BPS '
        { printf "floor, %s: %.0f MiB of zeros through plain ssh in %.2f s (%.0f MiB/s)", $1, $2 / 1048576, $3, $2 / 1048576 / $3
          if ($4 != "-") printf "; wire %.1f MiB, wire s %.2f, wall/wire %.2f", $4 / 1048576, $4 * 8 / bps, $3 / ($4 * 8 / bps)
          printf "\n" }'
}

# ---------------------------------------------------------------- contenders

# run_contender NAME LINK ROUND: one timed copy, checked, measured,
# removed.  Appends a row to $BENCH_OUT/results.tsv.
run_contender() {
    local name=$1 link=$2 round=$3 t=$BENCH_OUT/$2.$1.$3
    local dst_ns=$IMAGES_DIR/bench-$1 dst=$IMAGES_B/bench-$1 host script_var=BENCH_SCRIPT_$1
    local load t0 t1 rc=0 per payload back=- wire=- wire_back=- veth=- alloc src_alloc
    local qa0 qb0 v0 disks left
    host=$(link_host "$link")
    rm -rf -- "$dst"
    mkdir -p -- "$dst"
    rm -f -- "$t".*
    is_ours "$name" && drop_b_domain
    echo "$t.b" >"$IMPORT_TIME_TARGET"
    prepare_cache "${BENCH_SET_FILES[@]/#/$IMAGES_A/}"
    load=$(loadavg1)
    local sampler='' e0 e1
    if [[ $link == 1gbit ]]; then
        qa0=$(qdisc_sent "$VETH_A") qb0=$(qdisc_sent "$VETH_B" "$NETNS") v0=$(veth_tx)
        sample_link "$t.link" &
        sampler=$!
    fi
    e0=$EPOCHREALTIME
    t0=$(now)
    bench_run_script "$t" "$host" "$dst_ns" "${!script_var}" \
        MIGRATE_OPTS="$BENCH_MIGRATE_OPTS" SEND_OPTS="$BENCH_SEND_OPTS" DEST_URI="$URI_B" || rc=$?
    t1=$(now)
    e1=$EPOCHREALTIME
    if [[ -n $sampler ]]; then
        if kill "$sampler"; then wait "$sampler" 2>/dev/null || true; fi
        link_timeline "$e0" "$e1" "$t.link" >"$t.timeline"
    fi
    if [[ $link == 1gbit ]]; then
        wire=$(($(qdisc_sent "$VETH_A") - qa0))
        wire_back=$(($(qdisc_sent "$VETH_B" "$NETNS") - qb0))
        veth=$(($(veth_tx) - v0))
    fi
    echo /dev/null >"$IMPORT_TIME_TARGET"
    if ((rc)); then
        local f
        for f in "$t".err*; do
            [[ -s $f ]] && { echo "--- ${f##*/}:"; cat "$f"; }
        done >&2
        [[ $name == vmferry ]] &&
            echo "$BENCH_NAME: the command (on A): $VMFERRY_TOOLS_DIR/vmferry-migrate -v -c $URI_A --dest-uri $URI_B --dest-dir $dst_ns $BENCH_MIGRATE_OPTS $BENCH_SET_DOM $host" >&2
        ((rc == 124)) && echo "$BENCH_NAME: it ran longer than BENCH_TIMEOUT=$BENCH_TIMEOUT s" >&2
        die "$name on $link (round $round) failed with status $rc (logs: $t.*)"
    fi
    per=$(bench_set_compare "$dst") || die "$name on $link (round $round): the copy on B is wrong"
    if is_ours "$name"; then
        payload=$(sed -n 's/.*: sent \([0-9][0-9]*\) bytes.*/\1/p' "$t.err" | tail -n 1)
        [[ -n $payload ]] || die "$name on $link: -v did not report the bytes it sent (see $t.err)"
        # The domain on B must be defined over the copies.
        disks=$(virsh_b domblklist "$BENCH_SET_DOM" | awk 'NR > 2 && NF >= 2 { print $2 }') ||
            die "$name on $link: $BENCH_SET_DOM is not defined on B"
        if [[ $(grep -c . <<<"$disks") != "${#BENCH_SET_FILES[@]}" ]] || grep -qv "^$dst_ns/" <<<"$disks"; then
            die "$name on $link: $BENCH_SET_DOM on B does not point at the copies in $dst_ns: $disks"
        fi
        drop_b_domain
        [[ $(sum_time "$t.b") != - ]] ||
            die "$name on $link: B's vmferry-import was not timed (the wrapper in $BENCH_B_TOOLS_DIR did not run)"
        left=$(find "$dst" -mindepth 1 -name '.*' -printf '%f ')
        [[ -z $left ]] || echo "$BENCH_NAME: WARNING: $name on $link left in $dst_ns: $left" | tee -a "$BENCH_OUT/warnings.txt" >&2
    else
        payload=$(wire_bytes "$t.wire")
        [[ -f $t.wire-back ]] && back=$(wire_bytes "$t.wire-back")
    fi
    alloc=$(alloc_kib "$dst")
    src_alloc=$(alloc_kib "${BENCH_SET_FILES[@]/#/$IMAGES_A/}")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$link" "$name" "$round" "$(elapsed "$t0" "$t1")" "$payload" "$back" "$wire" "$wire_back" \
        "$veth" "$((alloc * 1024))" "$(cpu_s "$t.a")" "$(sum_time "$t.b")" "$load" \
        "$(max_rss "$t.a")" "$(max_rss "$t.b")" "$src_alloc" >>"$BENCH_OUT/results.tsv"
    printf '   %-8s %-8s %7s s  payload %8s MiB%s  B alloc %8s MiB  (%s)\n' "$link" "$name" \
        "$(elapsed "$t0" "$t1")" "$(mib "$payload")" \
        "$([[ $wire != - ]] && echo "  wire $(mib "$wire") MiB")" "$(mib $((alloc * 1024)))" \
        "$(awk '{ printf "%s%s %s KiB", s, $1, $2; s = ", " }' <<<"$per")"
    [[ -s $t.timeline ]] && echo "            $(cat "$t.timeline")"
    rm -rf -- "$dst"
}

# ---------------------------------------------------------------- report

# results.tsv columns (first line: these names)
RESULT_COLS='link	contender	round	wall_s	payload_bytes	payload_back_bytes	wire_bytes	wire_back_bytes	veth_tx_bytes	b_alloc_bytes	cpu_a_s	cpu_b_s	load1	rss_a_mib	rss_b_mib	src_alloc_kib'

# report_link LINK: its table; the last column, x floor, is the wall time
# as a ratio to the sitting's local-copy floor (lib.sh: bench_machine).
report_link() {
    local link=$1 r=$BENCH_OUT/results.tsv fl
    fl=$(floor_s)
    echo
    if [[ $link == 1gbit ]]; then
        say "1gbit: emulated 1 Gbit/s link (tbf $BENCH_TBF_OPTS); wire = frames through the shaper A->B, wire s = wire * 8 / 1e9"
        {
            printf 'contender\tround\twall s\tx tar\tpayload MiB\twire MiB\twire s\twall/wire\tB alloc MiB\tCPU A s\tCPU B s\tCPU x tar\tload\tx floor\n'
            awk -F '\t' -v bps=$LINK_BPS -v fl="$fl" '
                NR > 1 && $1 == "1gbit" { row[++n] = $0; if ($2 == "tar") { tw[$3] = $4; tc[$3] = $11 + $12 } }
                function rt(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
                END { for (i = 1; i <= n; i++) { split(row[i], f, "\t"); ws = f[7] * 8 / bps
                    printf "%s\t%s\t%.2f\t%s\t%.1f\t%.1f\t%.2f\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\n", f[2], f[3], f[4],
                        rt(f[4], tw[f[3]]), f[5] / 1048576, f[7] / 1048576, ws, rt(f[4], ws),
                        f[10] / 1048576, f[11], f[12], rt(f[11] + f[12], tc[f[3]]), f[13],
                        fl == "-" ? "-" : rt(f[4], fl) } }' "$r"
        } | print_table
    else
        say "loopback: the bed's sshd on 127.0.0.1; payload = bytes into SSH A->B"
        {
            printf 'contender\tround\twall s\tx tar\tpayload MiB\tx tar\tB alloc MiB\tx tar\tCPU A s\tCPU B s\tCPU x tar\tload\tx floor\n'
            awk -F '\t' -v fl="$fl" '
                NR > 1 && $1 == "loopback" { row[++n] = $0; if ($2 == "tar") { tw[$3] = $4; tb[$3] = $5; ta[$3] = $10; tc[$3] = $11 + $12 } }
                function rt(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
                END { for (i = 1; i <= n; i++) { split(row[i], f, "\t")
                    printf "%s\t%s\t%.2f\t%s\t%.1f\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\n", f[2], f[3], f[4],
                        rt(f[4], tw[f[3]]), f[5] / 1048576, rt(f[5], tb[f[3]]), f[10] / 1048576,
                        rt(f[10], ta[f[3]]), f[11], f[12], rt(f[11] + f[12], tc[f[3]]), f[13],
                        fl == "-" ? "-" : rt(f[4], fl) } }' "$r"
        } | print_table
    fi
    if ((BENCH_ROUNDS > 1)); then
        local c w tw
        echo
        tw=$(awk -F '\t' -v l="$link" 'NR > 1 && $1 == l && $2 == "tar" { print $4 }' "$r" | median_stdin)
        {
            printf 'contender\tmedian wall s\tx tar\tx floor\n'
            for c in $BENCH_CONTENDERS; do
                w=$(awk -F '\t' -v l="$link" -v c="$c" 'NR > 1 && $1 == l && $2 == c { print $4 }' "$r" | median_stdin)
                printf '%s\t%s\t%s\t%s\n' "$c" "$w" "$(ratio "$w" "$tw")" \
                    "$(x_floor "$w")"
            done
        } | print_table
    fi
}

report() {
    local r=$BENCH_OUT/results.tsv link vw tw x ws fl
    fl=$(floor_s)
    echo
    say "results ($BENCH_CACHE cache, BENCH_SYNC=$BENCH_SYNC, rounds $BENCH_ROUNDS, $(nproc) CPUs," \
        "BENCH_MIGRATE_OPTS=\"$BENCH_MIGRATE_OPTS\", BENCH_SSH_OPTS=\"$BENCH_SSH_OPTS\"; ratios to tar+zstd of the same round and link)"
    for link in $BENCH_LINKS; do
        report_link "$link"
    done
    echo
    awk -F '\t' '{ s = $16 } END { printf "source allocation on A: %.1f MiB\n", s / 1024 }' "$r"
    [[ -s $BENCH_OUT/floor.tsv ]] && floor_print <"$BENCH_OUT/floor.tsv"
    bench_machine_print "$BENCH_OUT/machine.tsv"
    awk -F '\t' 'NR > 1 && $2 == "rsync" && $6 != "-" { printf "rsync B->A payload (%s, round %s): %.1f KiB\n", $1, $3, $6 / 1024 }' "$r"
    awk -F '\t' 'NR > 1 && $8 != "-" { printf "%s B->A on the 1gbit link (round %s): %.1f MiB (ACKs, replies: the link'"'"'s other direction)\n", $2, $3, $8 / 1048576 }' "$r"
    awk -F '\t' 'NR > 1 && $2 == "vmferry" { a = a " " $14; b = b " " $15 }
        END { if (a != "") printf "vmferry peak RSS (MiB): vmferry-migrate%s; vmferry-import%s\n", a, b }' "$r"
    [[ -s $BENCH_OUT/warnings.txt ]] && { echo "warnings:"; sed 's/^/  /' "$BENCH_OUT/warnings.txt"; }
    for link in $BENCH_LINKS; do
        [[ " $BENCH_CONTENDERS " == *" vmferry "* ]] || continue
        vw=$(awk -F '\t' -v l="$link" 'NR > 1 && $1 == l && $2 == "vmferry" { print $4 }' "$r" | median_stdin)
        if [[ $link == loopback && " $BENCH_CONTENDERS " == *" tar "* ]]; then
            tw=$(awk -F '\t' 'NR > 1 && $1 == "loopback" && $2 == "tar" { print $4 }' "$r" | median_stdin)
            x=$(ratio "$vw" "$tw")
            echo "target loopback: vmferry wall <= 0.35x tar+zstd: ${x}x -> $(awk -v v="$vw" -v t="$tw" 'BEGIN { print (v <= 0.35 * t) ? "MET" : "MISSED" }')"
        elif [[ $link == 1gbit ]]; then
            ws=$(awk -F '\t' -v bps=$LINK_BPS 'NR > 1 && $1 == "1gbit" && $2 == "vmferry" { printf "%.3f\n", $7 * 8 / bps }' "$r" | median_stdin)
            x=$(ratio "$vw" "$ws")
            echo "target 1gbit: vmferry wall <= 1.10x its wire time: ${vw} s / ${ws} s = ${x}x -> $(awk -v v="$vw" -v w="$ws" 'BEGIN { print (v <= 1.10 * w) ? "MET" : "MISSED" }')"
        fi
        [[ $fl == - ]] && continue
        if [[ $link == loopback ]]; then
            echo "target loopback (issue 20): vmferry wall <= 1.5x the local-copy floor: ${vw} s / ${fl} s = $(ratio "$vw" "$fl")x -> $(awk -v v="$vw" -v f="$fl" 'BEGIN { print (v <= 1.5 * f) ? "MET" : "MISSED" }')"
        else
            awk -v v="$vw" -v f="$fl" -v w="$ws" 'BEGIN { m = (f > w) ? f : w
                printf "target 1gbit (issue 20): vmferry wall <= 1.10x the larger of the local-copy floor and its wire time: %s s / %.2f s = %.2fx -> %s\n", v, m, v / m, (v <= 1.10 * m) ? "MET" : "MISSED" }'
        fi
    done
    echo "machine now: $(machine_state)"
    echo "raw figures and logs: $BENCH_OUT"
}

# ---------------------------------------------------------------- main

bench_check
[[ -x $VMFERRY_TOOLS_DIR/vmferry-migrate ]] || die "no $VMFERRY_TOOLS_DIR/vmferry-migrate: build first"
for c in ip tc realpath; do
    command -v "$c" >/dev/null || die "missing $c (run scripts/install-deps.sh)"
done
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive number"
[[ $BENCH_FLOOR_MIB =~ ^[0-9]+$ ]] || die "BENCH_FLOOR_MIB must be a number"
[[ -n $BENCH_LINKS ]] || die "BENCH_LINKS is empty"
for l in $BENCH_LINKS; do
    case $l in loopback | 1gbit) ;; *) die "unknown link $l (loopback 1gbit)" ;; esac
done
[[ -n $BENCH_CONTENDERS ]] || die "BENCH_CONTENDERS is empty"
for c in $BENCH_CONTENDERS; do
    case $c in vmferry | pipeline | tar | rsync) ;; *) die "unknown contender $c (vmferry pipeline tar rsync)" ;; esac
done
mkdir -p "$BENCH_OUT"
say "bench-migrate: $(machine_state); links $BENCH_LINKS; cache $BENCH_CACHE; sync $BENCH_SYNC; output $BENCH_OUT"
bench_set_build
write_b_tools
bench_bed_up
bench_set_install
bench_write_rsync_rsh
[[ " $BENCH_CONTENDERS " == *" vmferry "* ]] && check_options
[[ " $BENCH_LINKS " == *" 1gbit "* ]] && link_up
bench_pv_cost | tee "$BENCH_OUT/pv-cost.txt"
: >"$BENCH_OUT/floor.tsv"
for l in $BENCH_LINKS; do floor "$l"; done
((BENCH_FLOOR)) && say "the machine and the local-copy floor (cold cache; BENCH_FLOOR=0 skips)"
bench_machine "$IMAGES_B/bench-machine"
if [[ -n ${BENCH_PROBE:-} ]]; then
    say "probe: $BENCH_PROBE"
    BENCH_ENV=$VMFERRY_TESTBED_DIR/env HOST_1G=$HOST_1G NETNS=$NETNS VETH_A=$VETH_A \
        VETH_B=$VETH_B BENCH_OUT=$BENCH_OUT PATH=$VMFERRY_TOOLS_DIR:$PATH \
        bash -c "$BENCH_PROBE" || die "the probe failed (status $?)"
fi
echo "$RESULT_COLS" >"$BENCH_OUT/results.tsv"
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    for l in $BENCH_LINKS; do
        say "round $round, $l"
        for c in $BENCH_CONTENDERS; do
            run_contender "$c" "$l" "$round"
        done
    done
done
report | tee "$BENCH_OUT/report.txt"
