#!/bin/bash
# bench/bench-offline.sh: copy one shut-off VM's disks from host A to host B
# three ways, in one run, and print them side by side:
#
#   vmferry  vmferry-export DOM | ssh hostb vmferry-import --dir D
#   tar      tar -cS FILES | zstd -1 -T0 | ssh hostb 'zstd -d | tar -xS'
#   rsync    rsync -aS FILES hostb:D/
#
# The bench set (built once, cached in $BENCH_SET_DIR):
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
# <= 0.5x tar+zstd's.
#
# Environment, besides bench/lib.sh's:
#   BENCH_ROUNDS        rounds of all contenders (1); medians when > 1
#   BENCH_CONTENDERS    which, in which order ("vmferry tar rsync")
#   BENCH_REBUILD       1: rebuild the cached bench set (0)
#   BENCH_FILES_MIB     real files in the ext4 (2200)
#   BENCH_RANDOM_MIB    random data in the ext4 (512)
#   BENCH_ZEROS_MIB     the disk of written zeros (2048)
#   BENCH_QCOW2_MIB     real files in the qcow2's ext4 (400)
#   BENCH_EXPORT_OPTS / BENCH_IMPORT_OPTS   extra vmferry options, e.g.
#                       "--threads=2" or "--compress=none" (for profiling)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

: "${BENCH_ROUNDS:=1}"
: "${BENCH_CONTENDERS:=vmferry tar rsync}"
: "${BENCH_REBUILD:=0}"
: "${BENCH_FILES_MIB:=2200}"
: "${BENCH_RANDOM_MIB:=512}"
: "${BENCH_ZEROS_MIB:=2048}"
: "${BENCH_QCOW2_MIB:=400}"
: "${BENCH_EXPORT_OPTS:=}"
: "${BENCH_IMPORT_OPTS:=}"

DOM=bench-set
# name:format, as in the cache and in A's image directory
DISKS=(bench-ext4.img:raw bench-zeros.img:raw bench-disk.qcow2:qcow2)
FILES=()
for d in "${DISKS[@]}"; do FILES+=("${d%:*}"); done

# ---------------------------------------------------------------- bench set

# pick_files BUDGET_MIB SKIP_MIB > list: regular files of /usr/share then
# /usr/lib (sorted, each under 64 MiB), skipping the first SKIP_MIB, up to
# BUDGET_MIB.
pick_files() {
    { find /usr/share -xdev -type f -size -64M -printf '%s\t%p\n' | LC_ALL=C sort -t $'\t' -k2
      find /usr/lib -xdev -type f -size -64M -printf '%s\t%p\n' | LC_ALL=C sort -t $'\t' -k2; } |
        awk -F '\t' -v budget=$(($1 * MIB)) -v skip=$(($2 * MIB)) '
            $2 ~ /\n/ { next }
            { if (seen < skip) { seen += $1; next }
              if (full || sum + $1 > budget) { full = 1; next }
              sum += $1; print $2 }'
}

# copy_files LIST DIR: the listed files under DIR, with their paths.
copy_files() {
    tar -cf - --no-recursion --verbatim-files-from -T "$1" 2>/dev/null | tar -xf - -C "$2"
}

build_set() {
    local set=$BENCH_SET_DIR params stage
    params="v1 ext4=16G files=$BENCH_FILES_MIB random=$BENCH_RANDOM_MIB zeros=$BENCH_ZEROS_MIB qcow2=$BENCH_QCOW2_MIB"
    if [[ $BENCH_REBUILD != 1 && -f $set/.offline-set && $(cat "$set/.offline-set") == "$params" ]]; then
        say "bench set: cached in $set ($params)"
        return 0
    fi
    say "bench set: building in $set ($params)"
    local t0
    t0=$(now)
    mkdir -p "$set"
    rm -f "$set/.offline-set" "${FILES[@]/#/$set/}"
    stage=$set/stage
    rm -rf "$stage"
    mkdir -p "$stage/root/data" "$stage/q"

    pick_files "$BENCH_FILES_MIB" 0 >"$stage/list1"
    copy_files "$stage/list1" "$stage/root"
    head -c $((BENCH_RANDOM_MIB * MIB)) /dev/urandom >"$stage/root/data/random.bin"
    mke2fs -q -t ext4 -L benchroot -d "$stage/root" -F "$set/bench-ext4.img" 16G >/dev/null

    dd if=/dev/zero of="$set/bench-zeros.img" bs=4M count=$((BENCH_ZEROS_MIB / 4)) \
        conv=fsync status=none

    pick_files "$BENCH_QCOW2_MIB" "$BENCH_FILES_MIB" >"$stage/list2"
    copy_files "$stage/list2" "$stage/q"
    mke2fs -q -t ext4 -L benchq -d "$stage/q" -F "$stage/q.img" 2G >/dev/null
    qemu-img convert -f raw -O qcow2 "$stage/q.img" "$set/bench-disk.qcow2"
    qemu-img resize -q -f qcow2 "$set/bench-disk.qcow2" 8G
    qemu-io -f qcow2 -c "write -P 0x5a 6G 64M" "$set/bench-disk.qcow2" >/dev/null

    {
        echo "built $(date -u +%FT%TZ) on $(hostname): $params"
        echo "ext4: $(wc -l <"$stage/list1") files, $(du -sm "$stage/root" | cut -f1) MiB in the tree"
        echo "qcow2 ext4: $(wc -l <"$stage/list2") files, $(du -sm "$stage/q" | cut -f1) MiB in the tree"
        du -k --apparent-size "${FILES[@]/#/$set/}" | sed 's/^/apparent KiB /'
        du -k "${FILES[@]/#/$set/}" | sed 's/^/allocated KiB /'
    } >"$set/offline-set.info"
    rm -rf "$stage"
    sync
    echo "$params" >"$set/.offline-set"
    say "bench set: built in $(elapsed "$t0" "$(now)") s"
}

# ---------------------------------------------------------------- contenders

# Each runs on A (its mount namespace) under GNU time, whole pipeline
# included, with its files' A->B bytes through the counting stage.
# Environment for the scripts: T (output prefix), TOOLS, URI_A, DOM,
# SSH_CONFIG, SSHO, SRC (A's image dir), FILES, DST (B's dir), TIME_FMT.
# shellcheck disable=SC2016,SC2034 # expanded by the bash -c below; used via ${!var}
SCRIPT_vmferry='
/usr/bin/time -f "$TIME_FMT" -o "$T.export" "$TOOLS/vmferry-export" -c "$URI_A" $EXPORT_OPTS "$DOM" 2>"$T.err" |
    pv -n -b -i 3600 2>"$T.wire" |
    ssh -F "$SSH_CONFIG" $SSHO hostb "/usr/bin/time -f '"'"'$TIME_FMT'"'"' -o $T.b $TOOLS/vmferry-import --dir $DST $IMPORT_OPTS 2>$T.err-b"'
# shellcheck disable=SC2016,SC2034
SCRIPT_tar='
cd "$SRC" && tar -cSf - $FILES 2>"$T.err" | zstd -1 -T0 -q |
    pv -n -b -i 3600 2>"$T.wire" |
    ssh -F "$SSH_CONFIG" $SSHO hostb "/usr/bin/time -f '"'"'$TIME_FMT'"'"' -o $T.b sh -c '"'"'cd $DST && zstd -d -q | tar -xSf - $SYNC_CMD'"'"' 2>$T.err-b"'
# (rsync waits for its remote shell to exit before it closes the pipe to
# it, so the counting stage, which ends at EOF, is left running in the
# background when ssh is done; its count is complete once it exits.)
# shellcheck disable=SC2016,SC2034
SCRIPT_rsync='
cd "$SRC" && rsync -a -S $RSYNC_FSYNC -e "$BENCH_TMP/rsync-rsh" $FILES "hostb:$DST/" 2>"$T.err" &&
    while kill -0 "$(cat "$T.pvpid")" 2>/dev/null; do sleep 0.02; done'

# rsync's remote shell: ssh with the counting stage in the same place as
# the others' (A->B), the B->A direction counted too, the server timed.
write_rsync_rsh() {
    # shellcheck disable=SC2016
    printf '%s\n' '#!/bin/bash' \
        'host=$1; shift' \
        'rm -f "$T.fifo"; mkfifo "$T.fifo"' \
        'exec 3<&0   # a background job would get /dev/null as stdin' \
        'pv -n -b -i 3600 <&3 2>"$T.wire" >"$T.fifo" 3<&- &' \
        'exec 3<&-' \
        'echo $! >"$T.pvpid"' \
        'ssh -F "$SSH_CONFIG" $SSHO "$host" /usr/bin/time -f "'"'"'$TIME_FMT'"'"'" -o "$T.b" "$@" <"$T.fifo" |' \
        '    pv -n -b -i 3600 2>"$T.wire-back"' >"$BENCH_TMP/rsync-rsh"
    chmod +x "$BENCH_TMP/rsync-rsh"
}

# run_contender NAME ROUND: one timed copy, checked, measured, removed.
# Appends a row to $BENCH_OUT/results.tsv.
run_contender() {
    local name=$1 round=$2 t=$BENCH_OUT/$1.$2 dst_ns=$IMAGES_DIR/bench-$1 dst=$IMAGES_B/bench-$1
    local load t0 t1 rc=0 d f fmt wire back alloc src_alloc per=()
    rm -rf -- "$dst"
    mkdir -p -- "$dst"
    rm -f -- "$t".*
    prepare_cache "${FILES[@]/#/$IMAGES_A/}"
    load=$(loadavg1)
    local script_var=SCRIPT_$name
    t0=$(now)
    on_a_timed env T="$t" TOOLS="$VMFERRY_TOOLS_DIR" URI_A="$URI_A" DOM="$DOM" \
        SSH_CONFIG="$SSH_CONFIG" SSHO="$BENCH_SSH_OPTS" SRC="$IMAGES_DIR" FILES="${FILES[*]}" \
        DST="$dst_ns" TIME_FMT="$TIME_FMT" BENCH_TMP="$BENCH_TMP" \
        EXPORT_OPTS="$BENCH_EXPORT_OPTS" IMPORT_OPTS="$BENCH_IMPORT_OPTS" \
        SYNC_CMD="$( ((BENCH_SYNC)) && echo "&& sync ${FILES[*]}")" \
        RSYNC_FSYNC="$( ((BENCH_SYNC)) && echo --fsync)" \
        /usr/bin/time -f "$TIME_FMT" -o "$t.a" bash -c "set -o pipefail; ${!script_var}" || rc=$?
    t1=$(now)
    if ((rc)); then
        cat "$t".err* >&2 2>/dev/null || true
        die "$name (round $round) failed with status $rc"
    fi
    for d in "${DISKS[@]}"; do
        f=${d%:*} fmt=${d##*:}
        qemu-img compare -q -f "$fmt" -F "$fmt" "$IMAGES_A/$f" "$dst/$f" ||
            die "$name: $f on B differs from the source (qemu-img compare)"
        per+=("$f $(alloc_kib "$dst/$f")")
    done
    wire=$(wire_bytes "$t.wire")
    back=-
    [[ -f $t.wire-back ]] && back=$(wire_bytes "$t.wire-back")
    alloc=$(alloc_kib "$dst")
    src_alloc=$(alloc_kib "${FILES[@]/#/$IMAGES_A/}")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$name" "$round" "$(elapsed "$t0" "$t1")" "$wire" "$((alloc * 1024))" \
        "$(cpu_s "$t.a")" "$(cpu_s "$t.b")" "$load" "$back" \
        "$( [[ -f $t.export ]] && rss_mib "$t.export" || echo -)" \
        "$(rss_mib "$t.b")" "$src_alloc" >>"$BENCH_OUT/results.tsv"
    printf '   %-8s %6s s  wire %8s MiB  B alloc %8s MiB  (%s)\n' "$name" "$(elapsed "$t0" "$t1")" \
        "$(mib "$wire")" "$(mib $((alloc * 1024)))" "${per[*]/%/ KiB}"
    rm -rf -- "$dst"
}

# ---------------------------------------------------------------- report

report() {
    local r=$BENCH_OUT/results.tsv
    echo
    say "results ($BENCH_CACHE cache, BENCH_SYNC=$BENCH_SYNC, rounds $BENCH_ROUNDS, $(nproc) CPUs; ratios to tar+zstd of the same round)"
    {
        printf 'contender\tround\twall s\tx tar\twire MiB\tx tar\tB alloc MiB\tx tar\tCPU A s\tCPU B s\tCPU x tar\tload\n'
        awk -F '\t' '
            { row[NR] = $0; if ($1 == "tar") { tw[$2] = $3; tb[$2] = $4; ta[$2] = $5; tc[$2] = $6 + $7 } }
            function rt(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
            END { for (i = 1; i <= NR; i++) { split(row[i], f, "\t")
                printf "%s\t%s\t%.2f\t%s\t%.1f\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\n", f[1], f[2], f[3], rt(f[3], tw[f[2]]),
                    f[4] / 1048576, rt(f[4], tb[f[2]]), f[5] / 1048576, rt(f[5], ta[f[2]]), f[6], f[7],
                    rt(f[6] + f[7], tc[f[2]]), f[8] } }' "$r"
    } | print_table
    if ((BENCH_ROUNDS > 1)); then
        echo
        say "medians over $BENCH_ROUNDS rounds"
        local c w tw
        tw=$(awk -F '\t' '$1 == "tar" { print $3 }' "$r" | median_stdin)
        {
            printf 'contender\twall s\tx tar\n'
            for c in $BENCH_CONTENDERS; do
                w=$(awk -F '\t' -v c="$c" '$1 == c { print $3 }' "$r" | median_stdin)
                printf '%s\t%s\t%s\n' "$c" "$w" "$(ratio "$w" "$tw")"
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
build_set
bench_bed_up
bench_pv_cost | tee "$BENCH_OUT/pv-cost.txt"
for d in "${DISKS[@]}"; do
    bench_link_image "$BENCH_SET_DIR/${d%:*}" "$IMAGES_A/${d%:*}"
done
args=()
for d in "${DISKS[@]}"; do args+=("$IMAGES_DIR/${d%:*}:${d##*:}"); done
bench_define_vm "$DOM" "${args[@]}"
say "source on A: $(du -k "${FILES[@]/#/$IMAGES_A/}" | awk '{ printf "%s%s %.1f MiB", s, substr($2, match($2, /[^\/]*$/)), $1 / 1024; s = ", " }') allocated"
write_rsync_rsh
: >"$BENCH_OUT/results.tsv"
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    say "round $round"
    for c in $BENCH_CONTENDERS; do
        run_contender "$c" "$round"
    done
done
report | tee "$BENCH_OUT/report.txt"
