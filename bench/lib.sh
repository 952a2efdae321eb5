# shellcheck shell=bash
# bench/lib.sh: shared by the benchmarks in bench/.  Sourced, never run.
#
# Benchmarks, not timed tests: they run vmferry side by side with peer
# commands in one run and print figures and ratios; nothing here passes or
# fails on a figure.  Not part of ctest.
#
# Every benchmark brings up its OWN two-host test bed
# (tests/testbed/testbed.sh) in its own state dir and ports, and takes it
# down at exit, also on failure or interrupt.  It never touches the
# default bed that the test suite and CI use.
#
# Environment (all optional):
#   BENCH_TESTBED_DIR   state dir of the bench's bed    (/var/tmp/vmf-bench)
#   BENCH_PORT_OFFSET   port offset of the bench's bed  (300)
#   BENCH_BUILD         vmferry build dir               (<repo>/build-bench)
#   VMFERRY_TOOLS_DIR   where vmferry-export/-import are (BENCH_BUILD/tools)
#   BENCH_SET_DIR       cache of built bench disks      (/var/tmp/vmf-bench-set)
#   BENCH_CACHE         cold: drop the page cache before every contender
#                       (sync; echo 3 >/proc/sys/vm/drop_caches), so each
#                       reads its source from disk; warm: read the source
#                       into the page cache before every contender (cold)
#   BENCH_SYNC          1: a contender's time includes making its files
#                       durable on B (vmferry fdatasyncs by itself; tar's
#                       receiver ends with `sync FILE...`, rsync gets
#                       --fsync); 0: no flush for the peers            (1)
#   BENCH_SSH_OPTS      extra ssh options for every contender, e.g.
#                       "-c aes128-gcm@openssh.com"                    ("")
#   BENCH_KEEP_BED      1: leave the bed up at exit (debugging)        (0)
#   BENCH_TIMEOUT       seconds one contender's copy may take       (3600)
#   BENCH_OUT           where logs and per-run figures go
#                       (/var/tmp/vmf-bench-results/<script>-<date>)
#   BENCH_B_TOOLS_DIR   first in PATH of B's SSH sessions, set by a
#                       benchmark that wraps a tool there  (VMFERRY_TOOLS_DIR)
#   BENCH_FLOOR         1: measure the machine and the local-copy floor
#                       once per sitting (bench_machine); 0: skip       (1)
#   BENCH_MACHINE_WRITE_MIB  bench_machine's write, MiB, >= 16       (1024)
# The 1gbit link (link_up, used by bench-migrate and bench-sync):
#   BENCH_TBF_OPTS      tbf parameters besides the rate
#                       ("burst 256kb latency 10ms")
#   BENCH_LINK_NET      first three octets of the link's /30
#                       (10.213.<BENCH_PORT_OFFSET % 250>)
# The bench set (bench_set_build, used by bench-offline and bench-migrate):
#   BENCH_REBUILD       1: rebuild the cached bench set                (0)
#   BENCH_FILES_MIB     real files in the ext4                      (2200)
#   BENCH_RANDOM_MIB    random data in the ext4                      (512)
#   BENCH_ZEROS_MIB     the disk of written zeros                   (2048)
#   BENCH_QCOW2_MIB     real files in the qcow2's ext4               (400)
#
# Timing: a monotonic clock (/proc/uptime, CLOCK_BOOTTIME, 10 ms steps)
# read right before and after each contender's whole pipeline.  CPU and
# peak RSS come from GNU time (/usr/bin/time -f) around each side.
#
# Bytes on the wire: every contender's A->B byte stream passes through the
# same counting stage, `pv -n -b` (splice(2), no copy into user space),
# placed between the sender and ssh; that is the payload ssh encrypts, the
# same measure for all.  rsync runs its ssh through a wrapper that puts the
# stage in the same place (and counts the B->A direction separately).
# bench_pv_cost prints the stage's own cost.

set -euo pipefail
set -E

BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_LIB_DIR")
BENCH_NAME=$(basename "$0" .sh)

: "${BENCH_TESTBED_DIR:=/var/tmp/vmf-bench}"
: "${BENCH_PORT_OFFSET:=300}"
: "${BENCH_BUILD:=$REPO_DIR/build-bench}"
: "${VMFERRY_TOOLS_DIR:=$BENCH_BUILD/tools}"
: "${BENCH_SET_DIR:=/var/tmp/vmf-bench-set}"
: "${BENCH_CACHE:=cold}"
: "${BENCH_SYNC:=1}"
: "${BENCH_SSH_OPTS:=}"
: "${BENCH_KEEP_BED:=0}"
: "${BENCH_TIMEOUT:=3600}"
: "${BENCH_OUT:=/var/tmp/vmf-bench-results/$BENCH_NAME-$(date +%Y%m%d-%H%M%S)}"
: "${BENCH_REBUILD:=0}"
: "${BENCH_FILES_MIB:=2200}"
: "${BENCH_RANDOM_MIB:=512}"
: "${BENCH_ZEROS_MIB:=2048}"
: "${BENCH_QCOW2_MIB:=400}"
: "${BENCH_FLOOR:=1}"
: "${BENCH_MACHINE_WRITE_MIB:=1024}"
: "${BENCH_TBF_OPTS:=burst 256kb latency 10ms}"
: "${BENCH_LINK_NET:=10.213.$((BENCH_PORT_OFFSET % 250))}"

# The bench's bed, whatever VMFERRY_TESTBED_* the caller's shell holds.
VMFERRY_TESTBED_DIR=$BENCH_TESTBED_DIR
VMFERRY_TESTBED_PORT_OFFSET=$BENCH_PORT_OFFSET
export VMFERRY_TESTBED_DIR VMFERRY_TESTBED_PORT_OFFSET VMFERRY_TOOLS_DIR

TESTBED=$REPO_DIR/tests/testbed/testbed.sh
MIB=$((1024 * 1024))
GIB=$((1024 * MIB))
# GNU time: elapsed s, user s, sys s, max RSS KiB.
TIME_FMT='%e %U %S %M'

die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}
say() { echo "== $*"; }

# ---------------------------------------------------------------- checks

bench_check() {
    [[ $(id -u) == 0 ]] || die "must run as root (test bed, drop_caches)"
    [[ $BENCH_CACHE == cold || $BENCH_CACHE == warm ]] || die "BENCH_CACHE must be cold or warm"
    [[ $BENCH_SYNC == 0 || $BENCH_SYNC == 1 ]] || die "BENCH_SYNC must be 0 or 1"
    [[ $BENCH_FLOOR == 0 || $BENCH_FLOOR == 1 ]] || die "BENCH_FLOOR must be 0 or 1"
    if ! [[ $BENCH_MACHINE_WRITE_MIB =~ ^[0-9]+$ ]] || ((BENCH_MACHINE_WRITE_MIB < 16)); then
        die "BENCH_MACHINE_WRITE_MIB must be a number >= 16"
    fi
    case $(realpath -m -- "$BENCH_TESTBED_DIR") in
        /var/tmp/vmferry-testbed) die "BENCH_TESTBED_DIR is the default test bed (the suite's); use another" ;;
    esac
    if ! [[ $BENCH_PORT_OFFSET =~ ^[0-9]+$ ]] || ((BENCH_PORT_OFFSET == 0)); then
        die "BENCH_PORT_OFFSET must be a positive number (0 is the suite's bed)"
    fi
    local c
    for c in pv zstd tar rsync ssh qemu-img qemu-io mke2fs virsh nsenter du awk flock; do
        command -v "$c" >/dev/null || die "missing $c (run scripts/install-deps.sh)"
    done
    [[ -x /usr/bin/time ]] || die "missing /usr/bin/time (package time)"
    for c in vmferry-export vmferry-import vmferry-info; do
        [[ -x $VMFERRY_TOOLS_DIR/$c ]] ||
            die "no $VMFERRY_TOOLS_DIR/$c: build first (cmake -S $REPO_DIR -B $BENCH_BUILD -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build $BENCH_BUILD -j2)"
    done
}

# ---------------------------------------------------------------- test bed

_bench_cleanup_cmds=()
# bench_cleanup_add CMD [ARG...]: run at exit, last added first.
bench_cleanup_add() { _bench_cleanup_cmds+=("$(printf '%q ' "$@")"); }

_bench_exit() {
    local rc=$? i
    set +e
    trap - ERR INT TERM
    ((rc == 130 || rc == 143)) && echo "$BENCH_NAME: interrupted; cleaning up" >&2
    if [[ -n ${_bench_child:-} ]] && kill -0 "$_bench_child" 2>/dev/null; then
        kill -TERM "$_bench_child" 2>/dev/null
        wait "$_bench_child" 2>/dev/null
    fi
    for ((i = ${#_bench_cleanup_cmds[@]} - 1; i >= 0; i--)); do
        eval "${_bench_cleanup_cmds[i]}" || echo "$BENCH_NAME: cleanup failed: ${_bench_cleanup_cmds[i]}" >&2
    done
    if [[ ${_bench_bed_started:-0} == 1 ]]; then
        if [[ $BENCH_KEEP_BED == 1 ]]; then
            echo "$BENCH_NAME: BENCH_KEEP_BED=1: bed left up in $BENCH_TESTBED_DIR" \
                "(take it down: VMFERRY_TESTBED_DIR=$BENCH_TESTBED_DIR VMFERRY_TESTBED_PORT_OFFSET=$BENCH_PORT_OFFSET $TESTBED down)" >&2
        else
            "$TESTBED" down >"$BENCH_OUT/testbed-down.log" 2>&1 ||
                { echo "$BENCH_NAME: testbed down failed:" >&2; tail -n 20 "$BENCH_OUT/testbed-down.log" >&2; }
        fi
    fi
    exit "$rc"
}

_bench_on_err() {
    ((BASH_SUBSHELL == 0)) || return 0
    echo "$BENCH_NAME: line $1: command failed with status $2: $3" >&2
}

# bench_bed_up: lock, bring up the bench's own bed, source its env.  The
# traps (set when this file is sourced) take it down at exit, also when
# `up` fails half-way.
bench_bed_up() {
    mkdir -p "$BENCH_OUT"
    exec 9>"$BENCH_TESTBED_DIR.lock"
    flock -n 9 || die "another benchmark holds $BENCH_TESTBED_DIR.lock (same BENCH_TESTBED_DIR)"
    _bench_bed_started=1
    say "test bed up in $BENCH_TESTBED_DIR (port offset $BENCH_PORT_OFFSET, tools $VMFERRY_TOOLS_DIR)"
    # B's SSH sessions get BENCH_B_TOOLS_DIR first in PATH (testbed.sh puts
    # VMFERRY_TOOLS_DIR there), so a benchmark can wrap what vmferry runs
    # on B by name.
    if ! bg_run env VMFERRY_TOOLS_DIR="${BENCH_B_TOOLS_DIR:-$VMFERRY_TOOLS_DIR}" \
        "$TESTBED" up >"$BENCH_OUT/testbed-up.log" 2>&1; then
        tail -n 30 "$BENCH_OUT/testbed-up.log" >&2
        die "testbed.sh up failed (log: $BENCH_OUT/testbed-up.log)"
    fi
    tail -n 1 "$BENCH_OUT/testbed-up.log"
    # shellcheck source=/dev/null
    . "$BENCH_TESTBED_DIR/env"
    # The bed's standing VM would only add noise to the timings.
    virsh_a -q destroy vmf-running >/dev/null 2>&1 || true
    BENCH_TMP=$BENCH_TESTBED_DIR/bench   # seen alike by both hosts and ssh
    mkdir -p "$BENCH_TMP"
}

# bg_run CMD...: run CMD in the background and wait for it, so a signal
# is acted on at once (bash runs traps only after a foreground command
# ends), and the exit trap can stop it.  Returns CMD's status.
bg_run() {
    local rc=0
    "$@" &
    _bench_child=$!
    wait "$_bench_child" || rc=$?
    _bench_child=
    return "$rc"
}

# bench_timed_run SECONDS CMD...: bg_run with a time limit; timeout(1)
# signals the whole process group of CMD.  124 on timeout.
bench_timed_run() {
    local secs=$1
    shift
    bg_run timeout -k 10 "$secs" "$@"
}

trap _bench_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap '_bench_on_err "$LINENO" "$?" "$BASH_COMMAND"' ERR

_in_ns() {
    local pid=$1
    shift
    nsenter --mount --target "$pid" -- "$@"
}
on_a() { _in_ns "$PID_A" "$@"; }
on_b() { _in_ns "$PID_B" "$@"; }
# on_a_timed CMD...: on_a under bench_timed_run with BENCH_TIMEOUT.
on_a_timed() { bench_timed_run "$BENCH_TIMEOUT" nsenter --mount --target "$PID_A" -- "$@"; }
virsh_a() { virsh -c "$URI_A" "$@"; }
virsh_b() { virsh -c "$URI_B" "$@"; }
# shellcheck disable=SC2086 # BENCH_SSH_OPTS: words
ssh_b() { ssh -F "$SSH_CONFIG" $BENCH_SSH_OPTS "$SSH_HOST_B" "$@"; }

# bench_link_image SRC DEST: put a cached image into a host's image dir as
# a hard link (instant; every contender only reads it; `down` removes the
# link, the cache keeps the file), or a copy that keeps holes and
# allocated zeros as they are when the link is impossible.
bench_link_image() {
    ln -f -- "$1" "$2" 2>/dev/null || cp --sparse=auto -- "$1" "$2"
}

# bench_define_vm NAME DISK:FORMAT...: a shut-off domain on host A with
# one virtio disk per argument (vda, vdb, ...), paths as A sees them.
bench_define_vm() {
    local name=$1 d i=0 letters=abcdefghijklmnop
    shift
    {
        echo "<domain type='$VIRT_TYPE'>"
        echo "  <name>$name</name>"
        echo "  <memory unit='MiB'>128</memory>"
        echo "  <vcpu>1</vcpu>"
        echo "  <os><type arch='x86_64' machine='pc'>hvm</type></os>"
        echo "  <features><acpi/></features>"
        echo "  <devices>"
        echo "    <emulator>/usr/bin/qemu-system-x86_64</emulator>"
        for d in "$@"; do
            echo "    <disk type='file' device='disk'>"
            echo "      <driver name='qemu' type='${d##*:}'/>"
            echo "      <source file='${d%:*}'/>"
            echo "      <target dev='vd${letters:i:1}' bus='virtio'/>"
            echo "    </disk>"
            i=$((i + 1))
        done
        echo "    <memballoon model='none'/>"
        echo "  </devices>"
        echo "</domain>"
    } >"$BENCH_TMP/$name.xml"
    virsh_a -q define "$BENCH_TMP/$name.xml" >/dev/null
}

# ---------------------------------------------------------------- the bench set

# Built once, cached in $BENCH_SET_DIR, with real tools:
#   bench-ext4.img    16 GiB sparse raw: ext4 holding ~2.2 GiB of real files
#                     (this machine's /usr/share, then /usr/lib) and
#                     512 MiB from /dev/urandom (mke2fs -d)
#   bench-zeros.img   2 GiB raw of written (allocated) zeros
#   bench-disk.qcow2  8 GiB qcow2: an ext4 of the next ~400 MiB of /usr/lib
#                     files (qemu-img convert) plus 64 MiB of a pattern
# and defined on A as one domain with three virtio disks (bench_set_install).
BENCH_SET_DOM=bench-set
# name:format, as in the cache and in A's image directory
BENCH_SET_DISKS=(bench-ext4.img:raw bench-zeros.img:raw bench-disk.qcow2:qcow2)
BENCH_SET_FILES=()
for _d in "${BENCH_SET_DISKS[@]}"; do BENCH_SET_FILES+=("${_d%:*}"); done
unset _d

# _set_pick_files BUDGET_MIB SKIP_MIB > list: regular files of /usr/share
# then /usr/lib (sorted, each under 64 MiB), skipping the first SKIP_MIB,
# up to BUDGET_MIB.
_set_pick_files() {
    { find /usr/share -xdev -type f -size -64M -printf '%s\t%p\n' | LC_ALL=C sort -t $'\t' -k2
      find /usr/lib -xdev -type f -size -64M -printf '%s\t%p\n' | LC_ALL=C sort -t $'\t' -k2; } |
        awk -F '\t' -v budget=$(($1 * MIB)) -v skip=$(($2 * MIB)) '
            $2 ~ /\n/ { next }
            { if (seen < skip) { seen += $1; next }
              if (full || sum + $1 > budget) { full = 1; next }
              sum += $1; print $2 }'
}

# _set_copy_files LIST DIR: the listed files under DIR, with their paths.
_set_copy_files() {
    tar -cf - --no-recursion --verbatim-files-from -T "$1" 2>/dev/null | tar -xf - -C "$2"
}

# bench_set_build: the bench set in $BENCH_SET_DIR, unless it is there
# with the same parameters (or BENCH_REBUILD=1).
bench_set_build() {
    local set=$BENCH_SET_DIR params stage t0
    local files=("${BENCH_SET_FILES[@]/#/$set/}")
    params="v1 ext4=16G files=$BENCH_FILES_MIB random=$BENCH_RANDOM_MIB zeros=$BENCH_ZEROS_MIB qcow2=$BENCH_QCOW2_MIB"
    if [[ $BENCH_REBUILD != 1 && -f $set/.offline-set && $(cat "$set/.offline-set") == "$params" ]]; then
        say "bench set: cached in $set ($params)"
        return 0
    fi
    say "bench set: building in $set ($params)"
    t0=$(now)
    mkdir -p "$set"
    rm -f "$set/.offline-set" "${files[@]}"
    stage=$set/stage
    rm -rf "$stage"
    mkdir -p "$stage/root/data" "$stage/q"

    _set_pick_files "$BENCH_FILES_MIB" 0 >"$stage/list1"
    _set_copy_files "$stage/list1" "$stage/root"
    head -c $((BENCH_RANDOM_MIB * MIB)) /dev/urandom >"$stage/root/data/random.bin"
    mke2fs -q -t ext4 -L benchroot -d "$stage/root" -F "$set/bench-ext4.img" 16G >/dev/null

    dd if=/dev/zero of="$set/bench-zeros.img" bs=4M count=$((BENCH_ZEROS_MIB / 4)) \
        conv=fsync status=none

    _set_pick_files "$BENCH_QCOW2_MIB" "$BENCH_FILES_MIB" >"$stage/list2"
    _set_copy_files "$stage/list2" "$stage/q"
    mke2fs -q -t ext4 -L benchq -d "$stage/q" -F "$stage/q.img" 2G >/dev/null
    qemu-img convert -f raw -O qcow2 "$stage/q.img" "$set/bench-disk.qcow2"
    qemu-img resize -q -f qcow2 "$set/bench-disk.qcow2" 8G
    qemu-io -f qcow2 -c "write -P 0x5a 6G 64M" "$set/bench-disk.qcow2" >/dev/null

    {
        echo "built $(date -u +%FT%TZ) on $(hostname): $params"
        echo "ext4: $(wc -l <"$stage/list1") files, $(du -sm "$stage/root" | cut -f1) MiB in the tree"
        echo "qcow2 ext4: $(wc -l <"$stage/list2") files, $(du -sm "$stage/q" | cut -f1) MiB in the tree"
        du -k --apparent-size "${files[@]}" | sed 's/^/apparent KiB /'
        du -k "${files[@]}" | sed 's/^/allocated KiB /'
    } >"$set/offline-set.info"
    rm -rf "$stage"
    sync
    echo "$params" >"$set/.offline-set"
    say "bench set: built in $(elapsed "$t0" "$(now)") s"
}

# bench_set_install [DOM DISK:FORMAT...]: after bench_bed_up, the cached
# disks (default: the bench set's) hard-linked into A's image directory
# and the domain DOM (default $BENCH_SET_DOM) defined on A over them.
bench_set_install() {
    local dom=${1:-$BENCH_SET_DOM} d args=() files=()
    (($#)) && shift
    (($#)) || set -- "${BENCH_SET_DISKS[@]}"
    for d; do
        bench_link_image "$BENCH_SET_DIR/${d%:*}" "$IMAGES_A/${d%:*}"
        args+=("$IMAGES_DIR/${d%:*}:${d##*:}")
        files+=("$IMAGES_A/${d%:*}")
    done
    bench_define_vm "$dom" "${args[@]}"
    say "source on A: $(du -k "${files[@]}" | awk '{ printf "%s%s %.1f MiB", s, substr($2, match($2, /[^\/]*$/)), $1 / 1024; s = ", " }') allocated"
}

# bench_set_compare DIR: every disk of the set in DIR (a path as the
# machine sees it) is identical to its source (qemu-img compare), or die.
# Prints "NAME ALLOC_KIB" per disk.
bench_set_compare() {
    local dir=$1 d f fmt
    for d in "${BENCH_SET_DISKS[@]}"; do
        f=${d%:*} fmt=${d##*:}
        [[ -f $dir/$f ]] || die "no $f in $dir"
        qemu-img compare -q -f "$fmt" -F "$fmt" "$IMAGES_A/$f" "$dir/$f" ||
            die "$f in $dir differs from the source (qemu-img compare)"
        echo "$f $(alloc_kib "$dir/$f")"
    done
}

# ---------------------------------------------------------------- peer contenders

# The peers' pipelines, run by bench_run_script on A (its mount namespace)
# under GNU time, whole pipeline included, with their A->B bytes through
# the counting stage.  Environment of the scripts: T (output prefix),
# HOST (ssh host alias in SSH_CONFIG), SSH_CONFIG, SSHO (BENCH_SSH_OPTS),
# SRC (A's image dir), FILES, DST (B's dir), TIME_FMT, SYNC_CMD,
# RSYNC_FSYNC, BENCH_TMP, TOOLS, URI_A, DOM, and whatever the caller adds.
# shellcheck disable=SC2016,SC2034 # expanded by bash -c; used via ${!var}
BENCH_SCRIPT_tar='
cd "$SRC" && tar -cSf - $FILES 2>"$T.err" | zstd -1 -T0 -q |
    pv -n -b -i 3600 2>"$T.wire" |
    ssh -F "$SSH_CONFIG" $SSHO "$HOST" "/usr/bin/time -f '"'"'$TIME_FMT'"'"' -o $T.b sh -c '"'"'cd $DST && zstd -d -q | tar -xSf - $SYNC_CMD'"'"' 2>$T.err-b"'
# (rsync waits for its remote shell to exit before it closes the pipe to
# it, so the counting stage, which ends at EOF, is left running in the
# background when ssh is done; its count is complete once it exits.)
# shellcheck disable=SC2016,SC2034
BENCH_SCRIPT_rsync='
cd "$SRC" && rsync -a -S $RSYNC_FSYNC -e "$BENCH_TMP/rsync-rsh" $FILES "$HOST:$DST/" 2>"$T.err" &&
    while kill -0 "$(cat "$T.pvpid")" 2>/dev/null; do sleep 0.02; done'

# bench_write_rsync_rsh: rsync's remote shell, $BENCH_TMP/rsync-rsh: ssh
# with the counting stage in the same place as the others' (A->B), the
# B->A direction counted too, the server timed.
bench_write_rsync_rsh() {
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

# bench_run_script T HOST DST SCRIPT [VAR=VALUE...]: run SCRIPT (a
# contender's pipeline, see above) on A under bench_timed_run, with GNU
# time around all of it into T.a.  DST is B's directory as B sees it.
bench_run_script() {
    local t=$1 host=$2 dst=$3 script=$4
    shift 4
    on_a_timed env T="$t" HOST="$host" TOOLS="$VMFERRY_TOOLS_DIR" URI_A="$URI_A" \
        DOM="$BENCH_SET_DOM" SSH_CONFIG="$SSH_CONFIG" SSHO="$BENCH_SSH_OPTS" \
        SRC="$IMAGES_DIR" FILES="${BENCH_SET_FILES[*]}" DST="$dst" TIME_FMT="$TIME_FMT" \
        BENCH_TMP="$BENCH_TMP" \
        SYNC_CMD="$( ((BENCH_SYNC)) && echo "&& sync ${BENCH_SET_FILES[*]}")" \
        RSYNC_FSYNC="$( ((BENCH_SYNC)) && echo --fsync)" \
        "$@" \
        /usr/bin/time -f "$TIME_FMT" -o "$t.a" bash -c "set -o pipefail; $script"
}

# ---------------------------------------------------------------- the 1gbit link

# An emulated 1 Gbit/s link to host B, for the benchmarks that measure
# one (bench-migrate, bench-sync): a veth pair, one end in the host's
# network namespace (host A's side), the other in a network namespace
# $NETNS with a second sshd for host B, started in B's mount namespace
# (so it sees B's files and libvirtd socket) from the bed's sshd config
# and keys, and reached as the ssh alias $HOST_1G (by the ssh client
# through SSH_CONFIG, by libssh through A's ~/.ssh).  tc tbf shapes both
# veth ends (egress) to 1 Gbit/s.  link_up after bench_bed_up; link_down
# runs at exit, also on failure or interrupt.
# shellcheck disable=SC2034 # used by the benchmarks
LINK_BPS=1000000000 # the 1gbit link, bits per second
NETNS=vmfbench$BENCH_PORT_OFFSET-b
VETH_A=vmfbench${BENCH_PORT_OFFSET}a # host A's end, in the host's network namespace
VETH_B=vmfbench${BENCH_PORT_OFFSET}b # in $NETNS
ADDR_A=$BENCH_LINK_NET.1
ADDR_B=$BENCH_LINK_NET.2
HOST_1G=hostb-1g
SSHD_1G_PID=

# link_host LINK: the ssh host of B over LINK (loopback or 1gbit).
link_host() { [[ $1 == 1gbit ]] && echo "$HOST_1G" || echo "$SSH_HOST_B"; }

qdisc_sent() { # DEV [NETNS]: bytes the root qdisc of DEV has sent
    local dev=$1 ns=${2:-}
    tc ${ns:+-n "$ns"} -s qdisc show dev "$dev" root | awk '$1 == "Sent" { print $2; f = 1; exit } END { exit !f }'
}
veth_tx() { cat "/sys/class/net/$VETH_A/statistics/tx_bytes"; }

# sample_link FILE: every 0.2 s until killed, "EPOCH BYTES CPU..." into
# FILE: the bytes that have left A's end of the 1gbit link (after the
# shaper), then the machine's CPU ticks from /proc/stat (user nice system
# idle iowait irq softirq ...).
sample_link() {
    local b c
    while :; do
        read -r b <"/sys/class/net/$VETH_A/statistics/tx_bytes"
        read -r c </proc/stat
        echo "$EPOCHREALTIME $b ${c#cpu }"
        sleep 0.2
    done >"$1"
}

# link_timeline T0 T1 FILE: when the link carried the move, from
# sample_link's FILE: seconds from the start (T0, epoch) to 1 % and to
# 99 % of the bytes, and from there to the end (T1).
link_timeline() {
    awk -v t0="$1" -v t1="$2" '
        { t[NR] = $1; b[NR] = $2 }
        END { if (NR < 2) exit; n = b[NR] - b[1]; for (i = 1; i <= NR; i++) {
                if (!s && b[i] - b[1] >= n / 100) s = t[i]
                if (!e && b[i] - b[1] >= n * 99 / 100) e = t[i] }
              printf "link: 1 %% of the bytes by %.1f s, 99 %% by %.1f s; then %.1f s to the end", s - t0, e - t0, t1 - e }' "$3"
}

# link_down: our sshd, qdiscs, veth pair and namespace, whichever exist
# (also a killed run's: the names are this bed's).
link_down() {
    local rc=0
    if [[ -n $SSHD_1G_PID ]]; then
        kill -TERM "$SSHD_1G_PID" 2>/dev/null || true
        wait "$SSHD_1G_PID" 2>/dev/null || true
        SSHD_1G_PID=
    fi
    if ip link show "$VETH_A" >/dev/null 2>&1; then
        tc qdisc del dev "$VETH_A" root 2>/dev/null || true
        ip link del "$VETH_A" || rc=1 # takes its peer along
    fi
    if ip netns list | awk '{ print $1 }' | grep -qx -- "$NETNS"; then
        ip -n "$NETNS" link show "$VETH_B" >/dev/null 2>&1 &&
            { tc -n "$NETNS" qdisc del dev "$VETH_B" root 2>/dev/null || true; }
        ip netns del "$NETNS" || rc=1
    fi
    return "$rc"
}

link_up() {
    local s=$VMFERRY_TESTBED_DIR/ssh cfg=$BENCH_TMP/sshd-1g_config i f key
    [[ $BENCH_LINK_NET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
        die "BENCH_LINK_NET must be three octets, e.g. 10.213.44"
    link_down
    bench_cleanup_add link_down
    if ip -4 route show to match "$ADDR_B" | grep -qv '^default'; then
        die "$ADDR_B is already routed here ($(ip -4 route show to match "$ADDR_B" | grep -v '^default' | head -n 1)); choose another BENCH_LINK_NET"
    fi
    say "1gbit link: $VETH_A $ADDR_A <-> $VETH_B $ADDR_B in netns $NETNS, tbf rate 1gbit $BENCH_TBF_OPTS on both ends"
    ip netns add "$NETNS"
    ip link add "$VETH_A" type veth peer name "$VETH_B" netns "$NETNS"
    ip addr add "$ADDR_A/30" dev "$VETH_A"
    ip link set "$VETH_A" up
    ip -n "$NETNS" link set lo up
    ip -n "$NETNS" addr add "$ADDR_B/30" dev "$VETH_B"
    ip -n "$NETNS" link set "$VETH_B" up
    # shellcheck disable=SC2086 # BENCH_TBF_OPTS: words
    tc qdisc add dev "$VETH_A" root tbf rate 1gbit $BENCH_TBF_OPTS
    # shellcheck disable=SC2086
    tc -n "$NETNS" qdisc add dev "$VETH_B" root tbf rate 1gbit $BENCH_TBF_OPTS

    # Host B's second sshd: the bed's config and keys, on the veth address,
    # in B's mount namespace and our network namespace.
    sed -e "s/^ListenAddress .*/ListenAddress $ADDR_B/" \
        -e "s|^PidFile .*|PidFile /run/sshd-$HOST_1G.pid|" "$s/sshd_config" >"$cfg"
    grep -qx "ListenAddress $ADDR_B" "$cfg" || die "cannot set ListenAddress in $cfg (the bed's sshd_config changed?)"
    on_b /usr/sbin/sshd -t -f "$cfg" || die "sshd rejects $cfg"
    nsenter --mount="/proc/$PID_B/ns/mnt" --net="/run/netns/$NETNS" -- \
        /usr/sbin/sshd -D -f "$cfg" -E "$BENCH_OUT/sshd-$HOST_1G.log" </dev/null &
    SSHD_1G_PID=$!

    # The alias, for the ssh client (SSH_CONFIG) and for libssh in
    # vmferry-migrate (A's ~/.ssh), both in the bench's own bed: the
    # bed's Host hostb entry with the veth address; the same host key.
    key=$(cut -d' ' -f1,2 "$s/ssh_host_ed25519_key.pub")
    for f in "$SSH_CONFIG" "$ROOT_A/root/.ssh/config"; do
        awk -v alias="$HOST_1G" -v addr="$ADDR_B" -v host="$SSH_HOST_B" '
            $1 == "Host" { inblk = ($2 == host); if (inblk) { print ""; print "Host " alias; n++ } next }
            inblk && $1 == "HostName" { print "    HostName " addr; next }
            inblk { print }
            END { exit n != 1 }' "$f" >"$f.1g" || die "no single Host $SSH_HOST_B entry in $f"
        cat "$f.1g" >>"$f"
        rm -f "$f.1g"
    done
    for f in "$SSH_KNOWN_HOSTS" "$ROOT_A/root/.ssh/known_hosts"; do
        printf '[%s]:%s %s\n' "$ADDR_B" "$SSH_PORT_B" "$key" >>"$f"
    done
    for ((i = 0; i < 50; i++)); do
        timeout 10 ssh -F "$SSH_CONFIG" "$HOST_1G" true </dev/null 2>/dev/null && break
        kill -0 "$SSHD_1G_PID" 2>/dev/null || break
        sleep 0.2
    done
    timeout 10 ssh -F "$SSH_CONFIG" "$HOST_1G" true </dev/null ||
        die "sshd on $ADDR_B:$SSH_PORT_B (netns $NETNS) does not answer; log: $(tail -n 20 "$BENCH_OUT/sshd-$HOST_1G.log" 2>/dev/null)"
    # It must be host B: its libvirtd (unix socket, in B's mount
    # namespace: the bed gives each host its own host UUID) and its PATH.
    timeout 30 ssh -F "$SSH_CONFIG" "$HOST_1G" virsh -q capabilities </dev/null |
        grep -q "<uuid>$HOST_UUID_B</uuid>" || die "$HOST_1G does not reach host B's libvirtd"
    # And B's PATH, as the bed's sshd gives it (bench_bed_up).
    # shellcheck disable=SC2016 # expanded remotely
    [[ $(timeout 10 ssh -F "$SSH_CONFIG" "$HOST_1G" 'command -v vmferry-import' </dev/null) == \
        "${BENCH_B_TOOLS_DIR:-$VMFERRY_TOOLS_DIR}/vmferry-import" ]] ||
        die "$HOST_1G: vmferry-import is not ${BENCH_B_TOOLS_DIR:-$VMFERRY_TOOLS_DIR}'s"
}

# ---------------------------------------------------------------- measuring

# now: seconds on a monotonic clock (CLOCK_BOOTTIME via /proc/uptime).
now() {
    local up _
    read -r up _ </proc/uptime
    echo "$up"
}

# elapsed T0 T1
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# prepare_cache FILE...: per BENCH_CACHE, start the next contender cold
# (flush dirty pages, drop the page cache) or warm (source data read in).
# FILEs are paths as the machine sees them.
prepare_cache() {
    sync
    if [[ $BENCH_CACHE == cold ]]; then
        echo 3 >/proc/sys/vm/drop_caches
    else
        # tar -S reads data extents only (SEEK_DATA/SEEK_HOLE).
        tar -cSf - -- "$@" 2>/dev/null | cat >/dev/null
    fi
    sleep 1
}

# alloc_kib PATH...: allocated KiB (du -k, total).
alloc_kib() { du -kcs -- "$@" | tail -n 1 | cut -f1; }

# time_field FILE N: field N of the last line GNU time wrote to FILE (its
# first lines may be "Command exited with non-zero status").
time_field() { tail -n 1 "$1" | awk -v n="$2" '{ print $n }'; }
# cpu_s FILE: user + sys seconds.
cpu_s() { tail -n 1 "$1" | awk '{ printf "%.2f", $2 + $3 }'; }
# rss_mib FILE
rss_mib() { tail -n 1 "$1" | awk '{ printf "%.1f", $4 / 1024 }'; }

# wire_bytes FILE: the total pv -n -b printed last.
wire_bytes() { tail -n 1 "$1" | tr -dc 0-9; }

# The counting stage (see the header).  -i 3600: print only at the end.
count_stage() { pv -n -b -i 3600 2>"$1"; }

# bench_pv_cost: push 2 GiB through a pipe with and without the counting
# stage; prints the added wall and CPU seconds per GiB.
bench_pv_cost() {
    local t1 t2 t3 c
    head -c $((2 * GIB)) /dev/zero | cat >/dev/null   # warm-up
    t1=$(now)
    # shellcheck disable=SC2016 # for the inner bash
    /usr/bin/time -f "$TIME_FMT" -o "$BENCH_OUT/pv-cost.time" \
        bash -c 'head -c $((2 << 30)) /dev/zero | pv -n -b -i 3600 2>/dev/null | cat >/dev/null'
    t2=$(now)
    # shellcheck disable=SC2016
    /usr/bin/time -f "$TIME_FMT" -o "$BENCH_OUT/nopv-cost.time" \
        bash -c 'head -c $((2 << 30)) /dev/zero | cat >/dev/null'
    t3=$(now)
    c=$(awk -v a="$(cpu_s "$BENCH_OUT/pv-cost.time")" -v b="$(cpu_s "$BENCH_OUT/nopv-cost.time")" \
        'BEGIN { printf "%.2f", (a - b) / 2 }')
    echo "counting stage (pv -n -b): +$(awk -v a="$t1" -v b="$t2" -v c="$t3" 'BEGIN { printf "%.2f", ((b - a) - (c - b)) / 2 }') s wall," \
        "+$c s CPU per GiB passed (2 GiB through a pipe, with vs without it)"
}

machine_state() {
    local load
    read -r load _ _ _ _ </proc/loadavg
    echo "load $load, $(nproc) CPUs, $(awk '/MemAvailable/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) available"
}
loadavg1() { awk '{ print $1 }' /proc/loadavg; }

# ---------------------------------------------------------------- the machine and the floor

# bench_machine DIR: measure the machine once per sitting, before the
# contenders, so a figure read later says what machine it came from and
# how far it is from what a local copy costs there.  DIR is a scratch
# directory on host B's file system (made and removed here).  Every step
# starts with a cold cache (whatever BENCH_CACHE says) and is timed with
# now():
#   read_buffered  dd bs=4M of the set's largest dense file (allocation
#                  >= 90 % of its size: a sparse file would time its
#                  holes, not the disk), the page cache in between;
#   read_direct    the same with iflag=direct (what O_DIRECT achieves
#                  with one 4 MiB read in flight);
#   write          BENCH_MACHINE_WRITE_MIB (1024; whole 16 MiB) of a
#                  16 MiB random pattern into DIR, dd bs=4M oflag=direct
#                  conv=fdatasync (not zeros: a virtual disk may skip
#                  writing them);
#   floor          the local-copy floor: cp --sparse=always
#                  --reflink=never of the set's files into DIR, then
#                  `sync FILE...` of the copies (as tar's receiver does
#                  with BENCH_SYNC=1): every allocated byte read,
#                  zeros turned into holes, the rest written durably
#                  (and cp's CPU seconds, user + sys).
# Writes "key<TAB>value" rows to $BENCH_OUT/machine.tsv and prints them
# as "machine:" lines (bench_machine_print).  BENCH_FLOOR=0 skips all of
# it (then machine.tsv is empty and the ratios print "-").
bench_machine() {
    local dir=$1 out=$BENCH_OUT/machine.tsv f best='' best_alloc=0 size alloc
    local t0 t1 pat i n load0 src=("${BENCH_SET_FILES[@]/#/$IMAGES_A/}")
    : >"$out"
    ((BENCH_FLOOR)) || return 0
    n=$BENCH_MACHINE_WRITE_MIB
    load0=$(loadavg1)
    rm -rf -- "$dir"
    mkdir -p -- "$dir"
    bench_cleanup_add rm -rf -- "$dir"
    {
        printf 'cpu\t%s\n' "$(nproc) x $(awk -F ': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
        printf 'memory\t%s\n' "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
        printf 'kernel\t%s\n' "$(uname -r)"
        printf 'fs\t%s\n' "$(findmnt -n -o FSTYPE,SOURCE -T "$dir" | awk '{ print $1 " on " $2 }')"
    } >>"$out"

    for f in "${src[@]}"; do
        size=$(stat -c %s -- "$f")
        alloc=$(($(alloc_kib "$f") * 1024))
        if ((alloc * 10 >= size * 9 && alloc > best_alloc)); then
            best=$f best_alloc=$alloc
        fi
    done
    if [[ -n $best ]]; then
        size=$(stat -c %s -- "$best")
        _machine_drop_cache
        t0=$(now)
        bg_run dd if="$best" of=/dev/null bs=4M status=none
        t1=$(now)
        printf 'read_buffered\t%s\t%s\t%s\n' "$size" "$(elapsed "$t0" "$t1")" "${best##*/}" >>"$out"
        _machine_drop_cache
        t0=$(now)
        bg_run dd if="$best" of=/dev/null bs=4M iflag=direct status=none
        t1=$(now)
        printf 'read_direct\t%s\t%s\t%s\n' "$size" "$(elapsed "$t0" "$t1")" "${best##*/}" >>"$out"
    fi

    pat=$dir/pattern
    head -c $((16 * MIB)) /dev/urandom >"$pat"
    _machine_drop_cache
    cat -- "$pat" >/dev/null # the pattern only, back in the cache
    t0=$(now)
    # shellcheck disable=SC2016 # for the inner bash
    bg_run bash -c 'for ((i = 0; i < $2 / 16; i++)); do cat -- "$1"; done |
        dd of="$3" bs=4M iflag=fullblock oflag=direct conv=fdatasync status=none' \
        _ "$pat" "$n" "$dir/write"
    t1=$(now)
    printf 'write\t%s\t%s\t%s\n' "$(stat -c %s -- "$dir/write")" "$(elapsed "$t0" "$t1")" \
        "dd bs=4M oflag=direct conv=fdatasync" >>"$out"
    rm -f -- "$pat" "$dir/write"

    mkdir -p -- "$dir/copy"
    _machine_drop_cache
    t0=$(now)
    bg_run /usr/bin/time -f "$TIME_FMT" -o "$BENCH_OUT/machine-floor.time" \
        cp --sparse=always --reflink=never -- "${src[@]}" "$dir/copy/"
    bg_run sync -- "${BENCH_SET_FILES[@]/#/$dir/copy/}"
    t1=$(now)
    for i in "${BENCH_SET_FILES[@]}"; do
        [[ $(stat -c %s -- "$dir/copy/$i") == $(stat -c %s -- "$IMAGES_A/$i") ]] ||
            die "the local copy of $i has not its source's size"
    done
    printf 'floor\t%s\t%s\t%s\t%s\n' "$(($(alloc_kib "${src[@]}") * 1024))" "$(elapsed "$t0" "$t1")" \
        "$(($(alloc_kib "$dir/copy") * 1024))" "$(cpu_s "$BENCH_OUT/machine-floor.time")" >>"$out"
    printf 'load\t%s\t%s\n' "$load0" "$(loadavg1)" >>"$out"
    rm -rf -- "$dir"
    bench_machine_print "$out"
}

# _machine_drop_cache: flush dirty pages and drop the page cache.
_machine_drop_cache() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
    sleep 1
}

# bench_machine_print FILE: machine.tsv's rows as "machine:" lines.
# Rates in MB/s (1e6 bytes a second), sizes in MiB.
bench_machine_print() {
    awk -F '\t' '
        function rate(b, s) { return s > 0 ? sprintf("%.0f MB/s", b / s / 1e6) : "- MB/s" }
        { v[$1] = $0 }
        END {
            if (!("cpu" in v)) exit
            split(v["cpu"], c, "\t"); split(v["memory"], m, "\t"); split(v["kernel"], k, "\t")
            split(v["fs"], fs, "\t"); split(v["load"], l, "\t")
            printf "machine: %s, %s RAM, kernel %s; B'"'"'s images on %s\n", c[2], m[2], k[2], fs[2]
            if ("read_buffered" in v) {
                split(v["read_buffered"], r, "\t")
                printf "machine: buffered read %s (%s, %.0f MiB, cold, dd bs=4M: %.2f s)\n", rate(r[2], r[3]), r[4], r[2] / 1048576, r[3]
                split(v["read_direct"], r, "\t")
                printf "machine: O_DIRECT read %s (the same, dd bs=4M iflag=direct: %.2f s)\n", rate(r[2], r[3]), r[3]
            }
            split(v["write"], r, "\t")
            printf "machine: write %s (%.0f MiB on B'"'"'s file system, %s: %.2f s)\n", rate(r[2], r[3]), r[2] / 1048576, r[4], r[3]
            split(v["floor"], r, "\t")
            printf "machine: local-copy floor %.2f s (cp --sparse=always of the set + sync of the copies, cold: %.1f MiB allocated read, %.1f MiB written; cp CPU %s s)\n", r[3], r[2] / 1048576, r[4] / 1048576, r[5]
            printf "machine: load %s before these figures, %s after\n", l[2], l[3]
        }' "$1"
}

# floor_s: the local-copy floor of this sitting in seconds, or "-".
floor_s() {
    awk -F '\t' '$1 == "floor" { print $3; f = 1 } END { if (!f) print "-" }' "$BENCH_OUT/machine.tsv" 2>/dev/null || echo -
}

# x_floor WALL_S: WALL_S as a ratio to floor_s, or "-" without a floor.
x_floor() {
    local fl
    fl=$(floor_s)
    if [[ $fl == - ]]; then echo -; else ratio "$1" "$fl"; fi
}

# ---------------------------------------------------------------- printing

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# print_table < TSV: the first line is the header; the first column is
# left-aligned, the others right-aligned.
print_table() {
    awk -F '\t' '
        { for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }
          if (NF > nf) nf = NF; n = NR }
        END {
            for (r = 1; r <= n; r++) {
                line = ""
                for (i = 1; i <= nf; i++) {
                    f = (i == 1) ? "%-" w[i] "s" : "  %" w[i] "s"
                    line = line sprintf(f, c[r, i])
                }
                print line
                if (r == 1) { s = ""; for (i = 1; i <= length(line); i++) s = s "-"; print s }
            }
        }'
}

# median NUMBER...: the median of the arguments.  median_stdin: of the
# numbers on stdin, one a line.
median() { printf '%s\n' "$@" | median_stdin; }
median_stdin() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
