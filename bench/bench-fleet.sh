#!/bin/bash
# bench-fleet.sh: what concurrent moves per host buy, for the fleet
# limits of docs/fleet.md.  BENCH_FLEET_VMS shut-off VMs on host A, each
# one raw disk of BENCH_FLEET_MIB MiB from /dev/urandom (incompressible:
# what the link and B's disk carry is the data), are moved A -> B by
# vmferry-migrate (run on A, as the playbook vmferry.fleet.move runs it),
# BENCH_FLEET_CONCURRENCY at a time (default "1 2 4": one row each; B is
# emptied between rows).  Printed per row: wall time, the aggregate rate
# (file bytes written on B per second), the median time of one move, the
# peak of SSH connections on B's sshd (sampled every 0.2 s), and the load
# average before and after.
#
# Environment: see bench/lib.sh (BENCH_TESTBED_DIR default
# /var/tmp/vmf-bench-fleet, BENCH_PORT_OFFSET default 600); also
# BENCH_FLEET_VMS (4), BENCH_FLEET_MIB (128), BENCH_FLEET_CONCURRENCY
# ("1 2 4"), BENCH_FLEET_OPTS (more vmferry-migrate options, e.g.
# "--bandwidth=50M").
: "${BENCH_TESTBED_DIR:=/var/tmp/vmf-bench-fleet}"
: "${BENCH_PORT_OFFSET:=600}"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

: "${BENCH_FLEET_VMS:=4}"
: "${BENCH_FLEET_MIB:=128}"
: "${BENCH_FLEET_CONCURRENCY:=1 2 4}"
: "${BENCH_FLEET_OPTS:=}"

[[ $BENCH_FLEET_VMS =~ ^[1-9][0-9]*$ ]] || die "BENCH_FLEET_VMS must be a positive number"
[[ $BENCH_FLEET_MIB =~ ^[1-9][0-9]*$ ]] || die "BENCH_FLEET_MIB must be a positive number"
for n in $BENCH_FLEET_CONCURRENCY; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_FLEET_CONCURRENCY: not a positive number: $n"
done
bench_check
[[ -x $VMFERRY_TOOLS_DIR/vmferry-migrate ]] || die "no $VMFERRY_TOOLS_DIR/vmferry-migrate: build first"
say "bench-fleet: $(machine_state); output $BENCH_OUT"
bench_bed_up

vms=()
for ((i = 1; i <= BENCH_FLEET_VMS; i++)); do
    v=bench-fleet-$i
    head -c $((BENCH_FLEET_MIB * MIB)) /dev/urandom >"$IMAGES_A/$v.img"
    bench_define_vm "$v" "$IMAGES_DIR/$v.img:raw"
    vms+=("$v")
done
virsh_a -q pool-refresh default >/dev/null
say "$BENCH_FLEET_VMS VMs of $BENCH_FLEET_MIB MiB (random) on A"

empty_b() {
    local v
    for v in "${vms[@]}"; do
        virsh_b -q undefine "$v" >/dev/null 2>&1 || true
        rm -f "$IMAGES_B/$v".*
    done
    virsh_b -q pool-refresh default >/dev/null
}

# One move, on A, its JSON result in $BENCH_OUT/N-VM.json.
move_one() {
    # shellcheck disable=SC2086 # BENCH_FLEET_OPTS: words
    nsenter --mount --target "$PID_A" -- "$VMFERRY_TOOLS_DIR/vmferry-migrate" --json -q \
        $BENCH_FLEET_OPTS -- "$2" hostb >"$BENCH_OUT/$1-$2.json" 2>"$BENCH_OUT/$1-$2.err"
}
export -f move_one
export PID_A VMFERRY_TOOLS_DIR BENCH_OUT BENCH_FLEET_OPTS

# sample_ssh FILE: the number of established connections to B's sshd,
# every 0.2 s, one a line, until killed.
sample_ssh() {
    while :; do
        ss -Htn state established "( sport = :$SSH_PORT_B )" | wc -l
        sleep 0.2
    done >"$1"
}

printf 'per host\twall s\tMB/s\tmove s (median)\tpeak SSH conns on B\tload before\tload after\n' \
    >"$BENCH_OUT/table.tsv"
for n in $BENCH_FLEET_CONCURRENCY; do
    empty_b
    sync
    l0=$(loadavg1)
    sample_ssh "$BENCH_OUT/$n-ssh.txt" &
    sampler=$!
    t0=$(now)
    # shellcheck disable=SC2016 # for the inner bash
    bench_timed_run "$BENCH_TIMEOUT" bash -c \
        'printf "%s\n" "${@:2}" | xargs -P "$1" -I{} bash -c "move_one $1 {}"' _ "$n" "${vms[@]}" ||
        die "concurrency $n: a move failed: $(cat "$BENCH_OUT/$n"-*.err)"
    t1=$(now)
    kill "$sampler"
    wait "$sampler" 2>/dev/null || true
    written=0
    secs=()
    for v in "${vms[@]}"; do
        j=$BENCH_OUT/$n-$v.json
        [[ $(jq -r .state "$j") == moved ]] || die "concurrency $n: $v: $(cat "$j")"
        written=$((written + $(jq -r .bytes.written "$j")))
        secs+=("$(jq -r .time.seconds "$j")")
    done
    wall=$(elapsed "$t0" "$t1")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$wall" \
        "$(awk -v b="$written" -v s="$wall" 'BEGIN { printf "%.0f", b / s / 1e6 }')" \
        "$(printf '%.1f' "$(median "${secs[@]}")")" \
        "$(sort -n "$BENCH_OUT/$n-ssh.txt" | tail -n 1)" "$l0" "$(loadavg1)" >>"$BENCH_OUT/table.tsv"
    say "concurrency $n done in $wall s"
done
empty_b
say "bench-fleet: $BENCH_FLEET_VMS moves of $BENCH_FLEET_MIB MiB A -> B, $(nproc) CPUs"
print_table <"$BENCH_OUT/table.tsv"
