#!/bin/bash
# bench/bench-trim.sh: what --trim saves (issue 18).  One domain on host A
# with the bench set's three disks (lib.sh) and a fourth, an ext4 in
# which BENCH_TRIM_DELETED_MIB (1024) of random files were written and
# then deleted (mke2fs -d, then debugfs rm: the blocks freed, their data
# still on the disk, as tests/integration/export-trim.sh makes it), moved
# to host B in one run each way:
#
#   vmferry            vmferry-migrate DOM HOST --dest-dir D
#   vmferry-trim       vmferry-migrate --trim DOM HOST --dest-dir D (one
#                      appliance launch fstrims temporary overlays over
#                      the source; every writable disk goes raw)
#   sparsify-vmferry   the peer: the images copied on A (cp
#                      --sparse=always: virt-sparsify --in-place writes
#                      its input, and the source must stay as it is),
#                      virt-sparsify --in-place on each copy (one appliance
#                      launch per disk), then vmferry-migrate of a domain
#                      over the copies
#   tar                tar -cS FILES | zstd -1 -T0 | ssh HOST 'zstd -d |
#                      tar -xS' of the source (lib.sh's pipeline)
#   sparsify-tar       the same pipeline of the sparsified copies
#
# The copy and the sparsify are made once, timed as the "prep" of both
# sparsify rows, whose total is prep + transfer.  Prints per contender:
# prep, transfer and total wall seconds, the payload (the bytes handed
# to SSH: vmferry-migrate -v's "sent N bytes", tar's through lib.sh's
# counting stage), B's allocation, A's CPU (GNU time around the whole
# pipeline: vmferry-migrate with its appliance, or tar, zstd, pv, ssh;
# the sparsify's own CPU is in the prep line), the load when it started,
# ratios to vmferry without --trim, and each total as a ratio to the
# local-copy floor (lib.sh: bench_machine).  The appliance's launch is
# timed on its own first: guestfish -a /dev/null run, once, beside the
# time vmferry --trim's appliance took (launch and fstrim, from -v) and
# each virt-sparsify's.
#
# Checks before a figure counts: vmferry and tar copies are identical to
# the source, the sparsify copies to the sparsified images (qemu-img
# compare); --trim's copies are raw, their ext4 filesystems pass e2fsck
# -fn, the zeros disk is identical; the domain on B points at the copies.
#
# The appliance runs as the tests run it: LIBGUESTFS_BACKEND=direct, and
# under TCG (LIBGUESTFS_BACKEND_SETTINGS=force_tcg: nested KVM here
# aborts it, ../shared/TESTHOSTS.md) unless BENCH_GUESTFS_KVM=1.
#
# Environment, besides bench/lib.sh's (its bench set sizes apply: a
# small set, in a BENCH_SET_DIR of its own, makes a run of a few
# minutes, see bench/README.md):
#   BENCH_CONTENDERS         which, in which order
#                            ("vmferry vmferry-trim sparsify-vmferry tar
#                            sparsify-tar")
#   BENCH_TRIM_DELETED_MIB   random data written then deleted in the
#                            fourth disk's ext4 (1024)
#   BENCH_TRIM_KEPT_MIB      random data kept there (64)
#   BENCH_GUESTFS_KVM        1: let the appliance use KVM (0)
#   BENCH_MIGRATE_OPTS       extra vmferry-migrate options, both vmferry
#                            rows ("")
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

: "${BENCH_CONTENDERS:=vmferry vmferry-trim sparsify-vmferry tar sparsify-tar}"
: "${BENCH_TRIM_DELETED_MIB:=1024}"
: "${BENCH_TRIM_KEPT_MIB:=64}"
: "${BENCH_GUESTFS_KVM:=0}"
: "${BENCH_MIGRATE_OPTS:=}"

export LIBGUESTFS_BACKEND=direct
if [[ $BENCH_GUESTFS_KVM == 1 ]]; then
    unset LIBGUESTFS_BACKEND_SETTINGS
else
    export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
fi

TRIM_DOM=bench-trim
SPARSE_DOM=bench-trim-sparse
# The set's disks and the deleted one, name:format.
TRIM_DISKS=("${BENCH_SET_DISKS[@]}" bench-deleted.img:raw)
TRIM_FILES=()
for _d in "${TRIM_DISKS[@]}"; do TRIM_FILES+=("${_d%:*}"); done
unset _d
# The ext4 disks (their filesystem on the whole disk), for the check of
# --trim's copies.
TRIM_EXT4=(bench-ext4.img bench-disk.qcow2 bench-deleted.img)

# vmferry's contender, run like lib.sh's peers (bench_run_script).
# shellcheck disable=SC2016,SC2034 # expanded by bash -c; used via ${!var}
BENCH_SCRIPT_vmferry='
"$TOOLS/vmferry-migrate" -v -c "$URI_A" --dest-uri "$DEST_URI" --dest-dir "$DST" $MIGRATE_OPTS "$DOM" "$HOST" >"$T.out" 2>"$T.err"'

# ---------------------------------------------------------------- the deleted disk

# build_deleted: $BENCH_SET_DIR/bench-deleted.img, unless cached with the
# same parameters: an ext4 (room for both files and 1 GiB more) holding
# KEPT MiB of random data and the tree inspection wants, in which DELETED
# MiB of random data was written and then removed.
build_deleted() {
    local set=$BENCH_SET_DIR img=$BENCH_SET_DIR/bench-deleted.img tree params size t0
    params="v1 deleted=$BENCH_TRIM_DELETED_MIB kept=$BENCH_TRIM_KEPT_MIB"
    if [[ $BENCH_REBUILD != 1 && -f $set/.trim-set && $(cat "$set/.trim-set") == "$params" ]]; then
        say "deleted disk: cached in $img ($params)"
        return 0
    fi
    say "deleted disk: building $img ($params)"
    t0=$(now)
    rm -f -- "$set/.trim-set" "$img"
    tree=$set/stage-trim
    rm -rf -- "$tree"
    mkdir -p -- "$tree/etc" "$tree/bin" "$tree/data"
    echo benchtrim >"$tree/etc/hostname"
    printf 'ID=debian\nVERSION_ID="12"\n' >"$tree/etc/os-release"
    printf 'LABEL=benchdel / ext4 defaults 0 1\n' >"$tree/etc/fstab"
    head -c $((BENCH_TRIM_KEPT_MIB * MIB)) /dev/urandom >"$tree/data/kept.bin"
    head -c $((BENCH_TRIM_DELETED_MIB * MIB)) /dev/urandom >"$tree/deleted.bin"
    size=$((BENCH_TRIM_DELETED_MIB + BENCH_TRIM_KEPT_MIB + 1024))
    mke2fs -q -t ext4 -L benchdel -d "$tree" -F "$img" "${size}M" >/dev/null
    rm -rf -- "$tree"
    # Deleted in the guest's filesystem: its blocks freed, their data kept.
    debugfs -w -R 'rm /deleted.bin' "$img" >/dev/null 2>&1 || die "debugfs rm in $img"
    e2fsck -fn "$img" >/dev/null 2>&1 || die "$img: the filesystem is not clean after the delete"
    (($(alloc_kib "$img") > BENCH_TRIM_DELETED_MIB * 1024)) ||
        die "$img: the deleted data is not allocated"
    sync -- "$img"
    echo "$params" >"$set/.trim-set"
    say "deleted disk: built in $(elapsed "$t0" "$(now)") s"
}

# ---------------------------------------------------------------- the appliance

# time_launch: guestfish -a /dev/null run, once, on the machine: the
# appliance's launch alone (whether its supermin appliance was cached
# before is said: a first launch builds it).
time_launch() {
    local cached=no t0 t1
    [[ -d /var/tmp/.guestfs-$(id -u)/appliance.d ]] && cached=yes
    t0=$(now)
    bg_run /usr/bin/time -f "$TIME_FMT" -o "$BENCH_OUT/launch.time" \
        guestfish -a /dev/null run >"$BENCH_OUT/launch.log" 2>&1 ||
        die "guestfish -a /dev/null run failed: $(tail -n 5 "$BENCH_OUT/launch.log")"
    t1=$(now)
    printf '%s\t%s\t%s\n' "$(elapsed "$t0" "$t1")" "$(cpu_s "$BENCH_OUT/launch.time")" \
        "$cached" >"$BENCH_OUT/launch.tsv"
    echo "appliance launch (guestfish -a /dev/null run, $LIBGUESTFS_BACKEND${LIBGUESTFS_BACKEND_SETTINGS:+, $LIBGUESTFS_BACKEND_SETTINGS}): $(elapsed "$t0" "$t1") s wall, $(cpu_s "$BENCH_OUT/launch.time") s CPU (supermin appliance cached before: $cached)"
}

# ---------------------------------------------------------------- the peer's preparation

SPARSE_DIR=
# sparsify_prep: the images copied into $IMAGES_A/bench-trim-sparse
# (cp --sparse=always --reflink=never), virt-sparsify --in-place on each
# copy, $SPARSE_DOM defined over them.  Row "prep" of results.tsv.
sparsify_prep() {
    local d f fmt t0 t1 t2 load ts args=() per=()
    SPARSE_DIR=$IMAGES_A/bench-trim-sparse
    rm -rf -- "$SPARSE_DIR"
    mkdir -p -- "$SPARSE_DIR"
    bench_cleanup_add rm -rf -- "$SPARSE_DIR"
    prepare_cache "${TRIM_FILES[@]/#/$IMAGES_A/}"
    load=$(loadavg1)
    t0=$(now)
    bg_run cp --sparse=always --reflink=never -- "${TRIM_FILES[@]/#/$IMAGES_A/}" "$SPARSE_DIR/"
    t1=$(now)
    : >"$BENCH_OUT/sparsify.time"
    for d in "${TRIM_DISKS[@]}"; do
        f=${d%:*} fmt=${d##*:}
        ts=$(now)
        bg_run /usr/bin/time -a -f "$TIME_FMT" -o "$BENCH_OUT/sparsify.time" \
            virt-sparsify --in-place --format "$fmt" "$SPARSE_DIR/$f" \
            >>"$BENCH_OUT/sparsify.log" 2>&1 ||
            die "virt-sparsify --in-place $f failed: $(tail -n 5 "$BENCH_OUT/sparsify.log")"
        per+=("$f $(elapsed "$ts" "$(now)") s")
        args+=("$IMAGES_DIR/bench-trim-sparse/$f:$fmt")
    done
    t2=$(now)
    bench_define_vm "$SPARSE_DOM" "${args[@]}"
    printf 'sparsify\tprep\t%s\t%s\t%s\t%s\n' "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" \
        "$(sum_time "$BENCH_OUT/sparsify.time")" "$load" >"$BENCH_OUT/prep.tsv"
    printf '%s\n' "${per[@]}" >"$BENCH_OUT/sparsify-per-disk.txt"
    printf '   %-17s copy %7s s, virt-sparsify --in-place %7s s (%s); copies %s MiB allocated\n' \
        prep "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" \
        "$(paste -sd, "$BENCH_OUT/sparsify-per-disk.txt" | sed 's/,/, /g')" \
        "$(mib $(($(alloc_kib "$SPARSE_DIR") * 1024)))"
}

# ---------------------------------------------------------------- checks

# sum_time FILE: CPU seconds (user + sys) over all GNU time lines in FILE.
sum_time() {
    awk 'NF == 4 && $2 ~ /^[0-9.]+$/ { s += $2 + $3; n++ } END { if (n) printf "%.2f", s; else print "-" }' "$1" 2>/dev/null || echo -
}

# compare_to DIR REF_DIR: every disk in DIR identical to REF_DIR's
# (formats as in TRIM_DISKS), or die.
compare_to() {
    local d f fmt
    for d in "${TRIM_DISKS[@]}"; do
        f=${d%:*} fmt=${d##*:}
        [[ -f $1/$f ]] || die "no $f in $1"
        qemu-img compare -q -f "$fmt" -F "$fmt" "$2/$f" "$1/$f" ||
            die "$f in $1 differs from $2/$f (qemu-img compare)"
    done
}

# check_trimmed DIR: --trim's copies: raw, the ext4 ones clean, the zeros
# disk identical to the source.
check_trimmed() {
    local f
    for f in "${TRIM_FILES[@]}"; do
        [[ -f $1/$f ]] || die "no $f in $1"
        [[ $(qemu-img info --output=json "$1/$f" | jq -r .format) == raw ]] ||
            die "--trim's copy of $f is not raw"
    done
    for f in "${TRIM_EXT4[@]}"; do
        e2fsck -fn "$1/$f" >"$BENCH_OUT/e2fsck-$f.log" 2>&1 ||
            die "--trim's copy of $f fails e2fsck -fn (log $BENCH_OUT/e2fsck-$f.log)"
    done
    qemu-img compare -q -f raw -F raw "$IMAGES_A/bench-zeros.img" "$1/bench-zeros.img" ||
        die "--trim's copy of bench-zeros.img differs from the source"
}

# drop_b DOM: DOM on B, if vmferry defined it.
drop_b() {
    if virsh_b -q domuuid "$1" >/dev/null 2>&1; then
        virsh_b -q undefine "$1" >/dev/null
    fi
}

# ---------------------------------------------------------------- contenders

# run_contender NAME: one timed copy, checked, measured, removed; a row
# into $BENCH_OUT/results.tsv: name prep transfer payload b_alloc cpu_a
# load trim_s (prep and trim_s "-" where none).
run_contender() {
    local name=$1 t=$BENCH_OUT/$1 dst_ns=$IMAGES_DIR/bench-$1 dst=$IMAGES_B/bench-$1
    local dom=$TRIM_DOM from=$IMAGES_DIR src_m=$IMAGES_A opts=$BENCH_MIGRATE_OPTS
    local script=$BENCH_SCRIPT_vmferry prep=- trim_s=- load t0 t1 rc=0 payload disks
    case $name in
        vmferry-trim) opts="--trim $opts" ;;
        sparsify-*) dom=$SPARSE_DOM from=$IMAGES_DIR/bench-trim-sparse src_m=$SPARSE_DIR
            prep=$(awk -F '\t' '{ printf "%.2f", $3 + $4 }' "$BENCH_OUT/prep.tsv") ;;
    esac
    [[ $name == *tar ]] && script=$BENCH_SCRIPT_tar
    rm -rf -- "$dst"
    mkdir -p -- "$dst"
    rm -f -- "$t".*
    drop_b "$dom"
    prepare_cache "${TRIM_FILES[@]/#/$src_m/}"
    load=$(loadavg1)
    t0=$(now)
    bench_run_script "$t" "$SSH_HOST_B" "$dst_ns" "$script" \
        DOM="$dom" SRC="$from" FILES="${TRIM_FILES[*]}" DEST_URI="$URI_B" MIGRATE_OPTS="$opts" \
        SYNC_CMD="$( ((BENCH_SYNC)) && echo "&& sync ${TRIM_FILES[*]}")" || rc=$?
    t1=$(now)
    if ((rc)); then
        local f
        for f in "$t".err*; do
            [[ -s $f ]] && { echo "--- ${f##*/}:"; tail -n 30 "$f"; }
        done >&2
        ((rc == 124)) && echo "$BENCH_NAME: it ran longer than BENCH_TIMEOUT=$BENCH_TIMEOUT s" >&2
        die "$name failed with status $rc (logs: $t.*)"
    fi
    case $name in
        vmferry) compare_to "$dst" "$IMAGES_A" ;;
        vmferry-trim) check_trimmed "$dst" ;;
        *) compare_to "$dst" "$src_m" ;;
    esac
    if [[ $name == *tar ]]; then
        payload=$(wire_bytes "$t.wire")
    else
        payload=$(sed -n 's/.*: sent \([0-9][0-9]*\) bytes.*/\1/p' "$t.err" | tail -n 1)
        [[ -n $payload ]] || die "$name: -v did not report the bytes it sent (see $t.err)"
        disks=$(virsh_b domblklist "$dom" | awk 'NR > 2 && NF >= 2 { print $2 }') ||
            die "$name: $dom is not defined on B"
        if [[ $(grep -c . <<<"$disks") != "${#TRIM_FILES[@]}" ]] || grep -qv "^$dst_ns/" <<<"$disks"; then
            die "$name: $dom on B does not point at the copies in $dst_ns: $disks"
        fi
        drop_b "$dom"
        # "domain D: N filesystems trimmed in 1:02; ..." (-v).
        if [[ $name == vmferry-trim ]]; then
            trim_s=$(sed -n 's/.*filesystems\{0,1\} trimmed[a-z ]* in \([0-9:]*\).*/\1/p' "$t.err" | tail -n 1)
            [[ -n $trim_s ]] || die "$name: -v did not say how long the trim took (see $t.err)"
            trim_s=$(awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }' <<<"$trim_s")
        fi
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$prep" "$(elapsed "$t0" "$t1")" "$payload" \
        "$(($(alloc_kib "$dst") * 1024))" "$(cpu_s "$t.a")" "$load" "$trim_s" >>"$BENCH_OUT/results.tsv"
    printf '   %-17s %7s s  payload %8s MiB  B alloc %8s MiB%s\n' "$name" "$(elapsed "$t0" "$t1")" \
        "$(mib "$payload")" "$(mib $(($(alloc_kib "$dst") * 1024)))" \
        "$([[ $trim_s != - ]] && echo "  (appliance: launch + fstrim $trim_s s)")"
    rm -rf -- "$dst"
}

# ---------------------------------------------------------------- report

report() {
    local r=$BENCH_OUT/results.tsv fl
    fl=$(floor_s)
    echo
    say "results ($BENCH_CACHE cache, BENCH_SYNC=$BENCH_SYNC, $(nproc) CPUs; total = prep + transfer; ratios to vmferry without --trim)"
    {
        printf 'contender\tprep s\ttransfer s\ttotal s\tx vmferry\tpayload MiB\tx vmferry\tB alloc MiB\tCPU A s\tload\tx floor\n'
        awk -F '\t' -v fl="$fl" '
            { row[NR] = $0; t = ($2 == "-" ? 0 : $2) + $3
              if ($1 == "vmferry") { w = t; p = $4 } }
            function rt(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
            END { for (i = 1; i <= NR; i++) { split(row[i], f, "\t")
                t = (f[2] == "-" ? 0 : f[2]) + f[3]
                printf "%s\t%s\t%.2f\t%.2f\t%s\t%.1f\t%s\t%.1f\t%s\t%s\t%s\n", f[1], f[2], f[3], t,
                    rt(t, w), f[4] / 1048576, rt(f[4], p), f[5] / 1048576, f[6], f[7],
                    fl == "-" ? "-" : rt(t, fl) } }' "$r"
    } | print_table
    echo
    echo "source allocation on A: $(mib $(($(alloc_kib "${TRIM_FILES[@]/#/$IMAGES_A/}") * 1024))) MiB" \
        "(bench-deleted.img: $BENCH_TRIM_DELETED_MIB MiB written then deleted, $BENCH_TRIM_KEPT_MIB MiB kept)"
    [[ -s $BENCH_OUT/launch.tsv ]] && awk -F '\t' '{ printf "appliance launch alone (guestfish -a /dev/null run): %s s wall, %s s CPU (supermin appliance cached before: %s)\n", $1, $2, $3 }' "$BENCH_OUT/launch.tsv"
    awk -F '\t' '$1 == "vmferry-trim" && $8 != "-" { printf "vmferry --trim: the appliance (one launch over the four overlays, fstrim of each filesystem) %s s of its %.2f s\n", $8, $3 }' "$r"
    [[ -s $BENCH_OUT/prep.tsv ]] && awk -F '\t' '{ printf "sparsify prep: copy %s s, virt-sparsify --in-place %s s (one launch per disk), its CPU %s s, load %s\n", $3, $4, $5, $6 }' "$BENCH_OUT/prep.tsv"
    [[ -s $BENCH_OUT/sparsify-per-disk.txt ]] && echo "virt-sparsify per disk: $(paste -sd, "$BENCH_OUT/sparsify-per-disk.txt" | sed 's/,/, /g')"
    bench_machine_print "$BENCH_OUT/machine.tsv"
    echo "machine now: $(machine_state)"
    echo "raw figures and logs: $BENCH_OUT"
}

# ---------------------------------------------------------------- main

bench_check
for c in virt-sparsify guestfish debugfs e2fsck jq; do
    command -v "$c" >/dev/null || die "missing $c (run scripts/install-deps.sh)"
done
[[ -x $VMFERRY_TOOLS_DIR/vmferry-migrate ]] || die "no $VMFERRY_TOOLS_DIR/vmferry-migrate: build first"
[[ $BENCH_TRIM_DELETED_MIB =~ ^[1-9][0-9]*$ ]] || die "BENCH_TRIM_DELETED_MIB must be a positive number"
[[ $BENCH_TRIM_KEPT_MIB =~ ^[0-9]+$ ]] || die "BENCH_TRIM_KEPT_MIB must be a number"
[[ -n $BENCH_CONTENDERS ]] || die "BENCH_CONTENDERS is empty"
for c in $BENCH_CONTENDERS; do
    case $c in vmferry | vmferry-trim | sparsify-vmferry | tar | sparsify-tar) ;;
        *) die "unknown contender $c (vmferry vmferry-trim sparsify-vmferry tar sparsify-tar)" ;;
    esac
done
mkdir -p "$BENCH_OUT"
BENCH_OUT=$(realpath -- "$BENCH_OUT")
say "bench-trim: $(machine_state); cache $BENCH_CACHE; sync $BENCH_SYNC; output $BENCH_OUT"
bench_set_build
build_deleted
bench_bed_up
bench_set_install "$TRIM_DOM" "${TRIM_DISKS[@]}"
# The floor of this set: the four disks.
BENCH_SET_FILES=("${TRIM_FILES[@]}")
((BENCH_FLOOR)) && say "the machine and the local-copy floor (cold cache; BENCH_FLOOR=0 skips)"
bench_machine "$IMAGES_B/bench-machine"
time_launch | tee "$BENCH_OUT/launch.txt"
: >"$BENCH_OUT/results.tsv"
for c in $BENCH_CONTENDERS; do
    if [[ $c == sparsify-* && ! -s $BENCH_OUT/prep.tsv ]]; then
        sparsify_prep
    fi
    run_contender "$c"
done
report | tee "$BENCH_OUT/report.txt"
