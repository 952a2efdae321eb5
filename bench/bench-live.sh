#!/bin/bash
# bench-live.sh: vmferry's live migration beside plain libvirt, on the
# same running VM, in one run:
#
#   virsh:   virsh migrate --live --copy-storage-all --persistent DOM B
#            (libvirt pre-creates the destination disk itself)
#   vmferry: vmferry-migrate --live (thin pre-created disks, detect_zeroes
#            on the destination, NVRAM, progress, roll-back)
#
# For each disk format (BENCH_FORMATS, default "qcow2 raw") one VM on host
# A with a BENCH_DISK_GIB GiB disk holding BENCH_DATA_MIB MiB of data and
# BENCH_ZERO_MIB MiB of allocated zeros; each contender migrates it A -> B
# BENCH_ROUNDS times (the VM is restarted on A between runs and B is
# emptied).  Printed: wall time (median) and the destination's allocation
# beside the source's.  The data channel is tcp://127.0.0.1 for both.
#
# Environment: see bench/lib.sh; also BENCH_FORMATS, BENCH_DISK_GIB (2),
# BENCH_DATA_MIB (256), BENCH_ZERO_MIB (128), BENCH_ROUNDS (1),
# BENCH_LIVE_CMD (the live command; default the build's vmferry-migrate).
: "${BENCH_TESTBED_DIR:=/var/tmp/vmf-bench-live}"
: "${BENCH_PORT_OFFSET:=500}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../tests/testbed/vmlib.sh
. "$REPO_DIR/tests/testbed/vmlib.sh"

: "${BENCH_FORMATS:=qcow2 raw}"
: "${BENCH_DISK_GIB:=2}"
: "${BENCH_DATA_MIB:=256}"
: "${BENCH_ZERO_MIB:=128}"
: "${BENCH_ROUNDS:=1}"

DOM=bench-live

run_virsh() {
    virsh_a migrate --live --copy-storage-all --persistent "$DOM" "$TCP_URI_B" tcp://127.0.0.1
}

run_vmferry() {
    # shellcheck disable=SC2086 # BENCH_LIVE_CMD: words
    $BENCH_LIVE_CMD --live -c "$URI_A" --dest-uri "$TCP_URI_B" \
        --migrate-uri tcp://127.0.0.1 "$DOM" hostb
}

empty_b() {
    virsh_b -q destroy "$DOM" >/dev/null 2>&1 || true
    virsh_b -q undefine "$DOM" >/dev/null 2>&1 || true
    rm -f "$IMAGES_B/$DOM".*
    virsh_b -q pool-refresh default >/dev/null
}

bench_check
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive number"
if [[ -z ${BENCH_LIVE_CMD:-} ]]; then
    [[ -x $VMFERRY_TOOLS_DIR/vmferry-migrate ]] ||
        die "no $VMFERRY_TOOLS_DIR/vmferry-migrate: build first"
    BENCH_LIVE_CMD=$VMFERRY_TOOLS_DIR/vmferry-migrate
fi
mkdir -p "$BENCH_OUT"
say "bench-live: $(machine_state); output $BENCH_OUT; live command: $BENCH_LIVE_CMD"
bench_bed_up
bench_cleanup_add empty_b

results=$BENCH_OUT/results.tsv
: >"$results"
for fmt in $BENCH_FORMATS; do
    ext=$([[ $fmt == raw ]] && echo img || echo qcow2)
    disk=$IMAGES_DIR/$DOM.$ext
    virsh_a -q destroy "$DOM" >/dev/null 2>&1 || true
    virsh_a -q undefine "$DOM" >/dev/null 2>&1 || true
    rm -f "$IMAGES_A/$DOM".*
    tb_make_disk on_a "$disk" "$fmt" "${BENCH_DISK_GIB}G" "" \
        "0x5a@0+${BENCH_DATA_MIB}M" "0x00@$((BENCH_DISK_GIB * 512))M+${BENCH_ZERO_MIB}M"
    tb_domain_xml "$DOM" "$VIRT_TYPE" "$disk" "$fmt" 128 >"$BENCH_TMP/$DOM.xml"
    virsh_a -q define "$BENCH_TMP/$DOM.xml" >/dev/null
    src_kib=$(alloc_kib "$IMAGES_A/$DOM.$ext")
    say "$fmt: ${BENCH_DISK_GIB} GiB disk, $(mib $((src_kib * 1024))) MiB allocated on A"
    for ((round = 1; round <= BENCH_ROUNDS; round++)); do
        for c in virsh vmferry; do
            empty_b
            virsh_a -q start "$DOM" >/dev/null
            t0=$(now)
            "run_$c" >"$BENCH_OUT/$c-$fmt-$round.log" 2>&1 ||
                { cat "$BENCH_OUT/$c-$fmt-$round.log" >&2; die "$c ($fmt) failed"; }
            t1=$(now)
            [[ $(virsh_b domstate "$DOM") == running* ]] || die "$c ($fmt): $DOM does not run on B"
            dst_kib=$(alloc_kib "$IMAGES_B/$DOM.$ext")
            printf '%s\t%s\t%s\t%s\t%s\n' "$c" "$fmt" "$(elapsed "$t0" "$t1")" \
                "$src_kib" "$dst_kib" >>"$results"
            say "$c $fmt round $round: $(elapsed "$t0" "$t1") s, B holds $(mib $((dst_kib * 1024))) MiB"
        done
    done
    virsh_a -q undefine "$DOM" >/dev/null
    rm -f "$IMAGES_A/$DOM".*
done

echo
{
    printf 'contender\tformat\twall s (median)\tsource alloc MiB\tdest alloc MiB\tdest/source\n'
    for fmt in $BENCH_FORMATS; do
        for c in virsh vmferry; do
            w=$(awk -F '\t' -v c="$c" -v f="$fmt" '$1 == c && $2 == f { print $3 }' "$results" | median_stdin)
            read -r s d < <(awk -F '\t' -v c="$c" -v f="$fmt" '$1 == c && $2 == f { s = $4; d = $5 } END { print s, d }' "$results")
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$fmt" "$w" "$(mib $((s * 1024)))" \
                "$(mib $((d * 1024)))" "$(ratio "$d" "$s")"
        done
    done
} | print_table
echo "target: destination allocation <= 1.1x the source's (vmferry rows)"
echo "machine now: $(machine_state)"
echo "raw figures and logs: $BENCH_OUT"
