# shellcheck shell=bash
# Sourced by every integration test:   . "$(dirname "$0")/functions.sh"
#
# A test exits 0 (pass), 1 (fail) or 77 (skip, with the reason printed).
# It runs under `set -euo pipefail`; a failing command is reported with its
# line.  Write negative checks as `cmd && fail "cmd should have failed"`
# (an && list does not trip set -e).  With pipefail, do not end a pipeline
# in a reader that stops early (`| grep -q`, `| head`): the writer may die
# of SIGPIPE and the pipeline fail at random; capture the output in a
# variable and test that instead.
#
# The test bed must be up (tests/testbed/testbed.sh up; ctest does it as a
# fixture).  Its $VMFERRY_TESTBED_DIR/env provides URI_A, URI_B, TCP_URI_A,
# TCP_URI_B, PID_A, PID_B, SSH_CONFIG, SSH_HOST_B, VIRT_TYPE, IMAGES_DIR
# (the in-namespace path), IMAGES_A/IMAGES_B (the same directories seen from
# the machine), PATTERNS and more; see write_env in testbed.sh.
#
# Rules for tests sharing the bed: never modify the shared vmf-* VMs or
# their files (read them with qemu-img/qemu-io -U); make your own VMs with
# make_vm and your own files under $SCRATCH.
#
# Provided:
#   fail MSG / skip MSG           exit 1 / exit 77 with MSG
#   requires CMD                  skip unless CMD is on PATH
#   requires CMD ARG...           skip unless the command succeeds
#   cleanup_add CMD [ARG...]      run at exit, last added first
#   end_jobs                      SIGTERM and wait for the background jobs
#   on_a CMD... / on_b CMD...     run in host A's / B's mount namespace
#   dir_on_b DIR                  make DIR on host B, removed at exit
#   virsh_a ARGS / virsh_b ARGS   virsh against host A / B
#   ssh_b CMD...                  ssh -F $SSH_CONFIG hostb CMD... (the remote
#                                 shell joins the words, quote accordingly)
#   ssh_a CMD...                  the same for host A (its sshd: moves to A
#                                 run on B or C; Ansible reaches A over SSH)
#   on_c, virsh_c, ssh_c          the same for host C (bed with three hosts:
#                                 requires_host_c skips without it)
#   $VG                           valgrind prefix when VMFERRY_VALGRIND=1
#   $SCRATCH                      per-test directory, visible on both hosts
#                                 and over ssh_b (removed at exit unless
#                                 VMFERRY_KEEP_SCRATCH=1)
#   make_vm [opts] NAME FMT SIZE [0xNN@OFF+LEN...]   throwaway VM on host A
#   purge_vm NAME                 remove NAME (domain, disks, NVRAM, TPM)
#                                 from both hosts
#   check_disk RUNNER PATH FMT 0xNN@OFF+LEN...       verify disk contents
#   wait_state HOST|URI DOM STATE [SECONDS]          poll the domain state
#   report KIND NAME RESULT [COUNT]  record one try for the run's report

set -euo pipefail
set -E

TEST_NAME=$(basename "$0" .sh)
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../testbed/vmlib.sh
. "$TESTS_DIR/../testbed/vmlib.sh"

fail() {
    echo "FAIL: $TEST_NAME: $*" >&2
    exit 1
}

skip() {
    echo "SKIP: $TEST_NAME: $*" >&2
    exit 77
}

# requires CMD: skip unless CMD is on PATH.  requires CMD ARG...: skip
# unless running it succeeds (e.g. `requires qemu-img --help`).
requires() {
    (($#)) || fail "requires: no command"
    if (($# == 1)); then
        command -v "$1" >/dev/null 2>&1 || skip "requires $1 (not found on PATH)"
    else
        "$@" </dev/null >/dev/null 2>&1 || skip "requires '$*' to succeed"
    fi
}

# ---------------------------------------------------------------- report

# report KIND NAME RESULT [COUNT]: record what this test tried, for the
# report scripts/test.sh prints at the end (tests/report-summary.sh).
# KIND: fault (a fault injected: a kill, a cut), race (a change made at
# the destination while an import runs), hostile (a hostile input fed to
# a tool), fuzz.  NAME: what was tried, e.g. "import: SIGKILL in
# placement, seed 3" (tabs and newlines become spaces).  RESULT: one
# word; survived (a fault), refused (a hostile input), ok, skipped, or
# FAILED -- any other word is listed as a failure.  COUNT (default 1):
# how many tries the line stands for.  Call it once the outcome is
# known, also for a failure, before `fail`:
#     if vmferry-import ... <"$bad"; then
#         report hostile "$bad" FAILED; fail "accepted $bad"
#     fi
#     report hostile "$bad" refused
# Appends one line to $VMFERRY_REPORT_DIR/$TEST_NAME.tsv (ctest sets it;
# nothing is recorded when it is unset).
report() {
    (($# == 3 || $# == 4)) || fail "report: usage: report KIND NAME RESULT [COUNT]"
    local kind=$1 name=$2 result=$3 count=${4:-1}
    case $kind in
        fault | race | hostile | fuzz) ;;
        *) fail "report: unknown kind '$kind' (fault, race, hostile, fuzz)" ;;
    esac
    [[ $result =~ ^[A-Za-z_-]+$ ]] || fail "report: RESULT must be one word: '$result'"
    [[ $count =~ ^[0-9]+$ ]] || fail "report: COUNT must be a number: '$count'"
    [[ -n ${VMFERRY_REPORT_DIR:-} ]] || return 0
    name=${name//[$'\t\n\r']/ }
    mkdir -p "$VMFERRY_REPORT_DIR"
    # One write of one short line to a file opened O_APPEND: lines of
    # concurrent writers do not mix.
    printf '%s\t%s\t%s\t%s\n' "$kind" "$name" "$result" "$count" \
        >>"$VMFERRY_REPORT_DIR/$TEST_NAME.tsv"
}

# ---------------------------------------------------------------- cleanup

_cleanup_cmds=()

# cleanup_add CMD [ARG...]: run CMD at exit (normal, fail, skip, signal),
# in reverse order of registration.  Failures are reported, not fatal.
cleanup_add() {
    (($#)) || fail "cleanup_add: no command"
    _cleanup_cmds+=("$(printf '%q ' "$@")")
}

# end_jobs: the test's background jobs still running are sent SIGTERM
# (a tool then ends what it started, an appliance or a job) and waited
# for; for cleanup_add, before the cleanup removes what they use.
end_jobs() {
    local p
    for p in $(jobs -p); do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null || true
    done
    return 0
}

# dir_on_b DIR: make DIR on host B, removed with its contents at exit.
dir_on_b() {
    on_b mkdir -p "$1"
    cleanup_add on_b rm -rf "$1"
}

_run_cleanup() {
    local rc=$? i
    set +e
    trap - ERR
    for ((i = ${#_cleanup_cmds[@]} - 1; i >= 0; i--)); do
        eval "${_cleanup_cmds[i]}" || echo "$TEST_NAME: cleanup failed: ${_cleanup_cmds[i]}" >&2
    done
    exit "$rc"
}

# Report a failing command once: in the test's own shell, not again in each
# command substitution or pipeline subshell it propagates through.
_on_err() {
    ((BASH_SUBSHELL == 0)) || return 0
    local where="line $1"
    [[ ${FUNCNAME[1]:-main} == main ]] || where+=" (in ${FUNCNAME[1]})"
    echo "$TEST_NAME: $where: command failed with status $2: $3" >&2
}

trap _run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap '_on_err "$LINENO" "$?" "$BASH_COMMAND"' ERR

# ---------------------------------------------------------------- test bed

: "${VMFERRY_TESTBED_DIR:=/var/tmp/vmferry-testbed}"
if [[ ! -r $VMFERRY_TESTBED_DIR/env ]]; then
    echo "FAIL: $TEST_NAME: the test bed is not up: no $VMFERRY_TESTBED_DIR/env" \
        "(run tests/testbed/testbed.sh up)" >&2
    exit 1
fi
# shellcheck source=/dev/null
. "$VMFERRY_TESTBED_DIR/env"
for _h in A B; do
    _pid=PID_$_h _ns=MNTNS_$_h
    if [[ $(readlink "/proc/${!_pid}/ns/mnt" 2>/dev/null) != "${!_ns}" ]]; then
        fail "the test bed is not running (host $_h's namespace is gone);" \
            "run tests/testbed/testbed.sh up"
    fi
done
unset _h _pid _ns

if [[ ${VMFERRY_VALGRIND:-0} == 1 ]]; then
    requires valgrind
    VG="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q"
else
    VG=""
fi
export VG

mkdir -p "$VMFERRY_TESTBED_DIR/scratch"
SCRATCH=$(mktemp -d "$VMFERRY_TESTBED_DIR/scratch/$TEST_NAME.XXXXXX")
export SCRATCH
if [[ ${VMFERRY_KEEP_SCRATCH:-0} != 1 ]]; then
    cleanup_add rm -rf -- "$SCRATCH"
fi

# _in_ns PID CMD...: run CMD in PID's mount namespace, in the current
# directory if that exists there too (else in /).
_in_ns() {
    local pid=$1
    shift
    if [[ -d /proc/$pid/root$PWD ]]; then
        nsenter --mount --target "$pid" --wd="$PWD" -- "$@"
    else
        nsenter --mount --target "$pid" -- "$@"
    fi
}
on_a() { _in_ns "$PID_A" "$@"; }
on_b() { _in_ns "$PID_B" "$@"; }
virsh_a() { virsh -c "$URI_A" "$@"; }
virsh_b() { virsh -c "$URI_B" "$@"; }
ssh_b() { ssh -F "$SSH_CONFIG" "$SSH_HOST_B" "$@"; }
ssh_a() { ssh -F "$SSH_CONFIG" "$SSH_HOST_A" "$@"; }
on_c() { _in_ns "$PID_C" "$@"; }
virsh_c() { virsh -c "$URI_C" "$@"; }
ssh_c() { ssh -F "$SSH_CONFIG" "$SSH_HOST_C" "$@"; }
requires_host_c() {
    [[ " ${TESTBED_HOSTS:-a b} " == *" c "* ]] ||
        skip "the test bed has no host C (VMFERRY_TESTBED_HOSTS=2)"
}

# host_uri a|b|URI
host_uri() {
    case $1 in
        a | A) echo "$URI_A" ;;
        b | B) echo "$URI_B" ;;
        c | C) echo "$URI_C" ;;
        *) echo "$1" ;;
    esac
}

# wait_state HOST|URI DOMAIN STATE [SECONDS]: poll until `virsh domstate`
# says STATE (running, "shut off", paused...); 1 with a message on timeout.
wait_state() {
    local uri want=$3 secs=${4:-60} got="" i
    uri=$(host_uri "$1")
    for ((i = 0; i < secs * 5; i++)); do
        got=$(virsh -c "$uri" domstate "$2" 2>/dev/null) || got=""
        got=${got%%$'\n'*}
        [[ $got == "$want" ]] && return 0
        sleep 0.2
    done
    echo "$TEST_NAME: domain $2 on $uri is '${got:-absent}', not '$want', after $secs s" >&2
    return 1
}

# check_disk RUNNER PATH FORMAT 0xNN@OFFSET+LENGTH...: every range reads
# back as the pattern (0x00 for holes/zeros).  RUNNER: on_a, on_b or "".
# Opens the image read-only and without locking (-U), so it works on the
# disk of a running VM.
check_disk() {
    local runner=$1 path=$2 fmt=$3 p pat rest
    shift 3
    local -a io=()
    for p in "$@"; do
        pat=${p%%@*}
        rest=${p#*@}
        io+=(-c "read -P $pat ${rest%%+*} ${rest#*+}")
    done
    if ! $runner qemu-io -U -r -f "$fmt" "${io[@]}" "$path" >"$SCRATCH/check_disk.out" 2>&1; then
        cat "$SCRATCH/check_disk.out" >&2
        echo "$TEST_NAME: $path does not hold $*" >&2
        return 1
    fi
}

# make_vm [--uefi] [--tpm] [--mem MIB] [--start] NAME FORMAT SIZE [PATTERN...]
# Create disk $IMAGES_DIR/NAME.img (raw) or NAME.qcow2 on host A with the
# given 0xNN@OFFSET+LENGTH patterns, define domain NAME on host A (type
# $VIRT_TYPE, no network) and register purge_vm NAME for cleanup.  With
# --start, start it and wait until it runs.  Prints nothing; the disk path
# is $IMAGES_DIR/NAME.<ext>.
make_vm() {
    local -a feats=()
    local mem=128 start=0 name fmt size ext xml
    while (($#)); do
        case $1 in
            --uefi) feats+=(uefi) ;;
            --tpm) feats+=(tpm) ;;
            --mem) mem=$2; shift ;;
            --start) start=1 ;;
            --) shift; break ;;
            -*) fail "make_vm: unknown option $1" ;;
            *) break ;;
        esac
        shift
    done
    (($# >= 3)) || fail "make_vm: usage: make_vm [opts] NAME FORMAT SIZE [PATTERN...]"
    name=$1 fmt=$2 size=$3
    shift 3
    tb_check_name "$name" || fail "make_vm: bad name"
    case $fmt in raw) ext=img ;; qcow2) ext=qcow2 ;; *) fail "make_vm: format $fmt" ;; esac
    case $name in
        vmf-*) fail "make_vm: names vmf-* belong to the shared test VMs" ;;
    esac
    if virsh_a domuuid "$name" >/dev/null 2>&1 || [[ -e $IMAGES_A/$name.$ext ]]; then
        fail "make_vm: $name already exists on host A"
    fi
    cleanup_add purge_vm "$name"
    tb_make_disk on_a "$IMAGES_DIR/$name.$ext" "$fmt" "$size" "" "$@" ||
        fail "make_vm: cannot make the disk of $name"
    # A UEFI guest runs under TCG, as the bed's vmf-uefi does: OVMF under
    # nested KVM stops at once with an "emulation failure" on some
    # machines of this kind, and the domain pauses.
    local vt=$VIRT_TYPE
    [[ " ${feats[*]} " == *" uefi "* ]] && vt=qemu
    xml=$(tb_domain_xml "$name" "$vt" "$IMAGES_DIR/$name.$ext" "$fmt" "$mem" "${feats[@]}")
    echo "$xml" >"$SCRATCH/$name.xml"
    virsh_a -q define "$SCRATCH/$name.xml" >/dev/null || fail "make_vm: cannot define $name"
    virsh_a -q pool-refresh default >/dev/null 2>&1 || true
    if ((start)); then
        virsh_a -q start "$name" >/dev/null || fail "make_vm: cannot start $name"
        wait_state a "$name" running 30 || fail "make_vm: $name does not run"
    fi
}

# purge_vm NAME: remove domain NAME and its files ($IMAGES_DIR/NAME.*,
# NVRAM, TPM state) from every host.  Quiet, and fine if nothing exists.
purge_vm() {
    local name=$1 uri h dir
    tb_check_name "$name" || return 1
    case $name in vmf-*) echo "purge_vm: refusing to remove shared VM $name" >&2; return 1 ;; esac
    for h in ${TESTBED_HOSTS:-a b}; do
        uri=$(host_uri "$h")
        if virsh -c "$uri" domuuid "$name" >/dev/null 2>&1; then
            virsh -c "$uri" destroy "$name" >/dev/null 2>&1 || true
            virsh -c "$uri" undefine --nvram --tpm --managed-save --snapshots-metadata \
                --checkpoints-metadata "$name" >/dev/null 2>&1 ||
                virsh -c "$uri" undefine "$name" >/dev/null 2>&1 ||
                echo "purge_vm: cannot undefine $name on host $h" >&2
        fi
        dir=$VMFERRY_TESTBED_DIR/$h/lib/images
        rm -f -- "$dir/$name".* "$VMFERRY_TESTBED_DIR/$h/lib/qemu/nvram/${name}_VARS.fd"
        virsh -c "$uri" pool-refresh default >/dev/null 2>&1 || true
    done
}

# make_guest_disk PATH HOSTNAME MAC: a raw 256 MiB disk holding what
# inspection and the guest checks look at: a DOS partition table, and at
# 1 MiB an ext4 root filesystem (label "root") with a Debian 12-like
# tree: /etc/os-release, /etc/hostname, an fstab naming the root by
# /dev/vda1 and a /data filesystem by UUID, a netplan file matching MAC.
# Built with mke2fs -d: no loop device, no mount.
make_guest_disk() {
    local path=$1 host=$2 mac=$3 tree
    tree=$(mktemp -d "$SCRATCH/tree.XXXXXX")
    mkdir -p "$tree"/{etc/netplan,bin,usr/bin,var/lib,boot/grub,root,tmp}
    cat >"$tree/etc/os-release" <<'OSR'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
OSR
    echo "$host" >"$tree/etc/hostname"
    printf '/dev/vda1 / ext4 errors=remount-ro 0 1\n' >"$tree/etc/fstab"
    printf 'UUID=%s /data xfs defaults 0 2\n' "$GUEST_DATA_UUID" >>"$tree/etc/fstab"
    cat >"$tree/etc/netplan/50-vmferry.yaml" <<NP
network:
  version: 2
  ethernets:
    lan0:
      match:
        macaddress: "$mac"
      set-name: lan0
      dhcp4: true
NP
    printf 'linux /boot/vmlinuz root=/dev/vda1 ro quiet\n' >"$tree/boot/grub/grub.cfg"
    truncate -s 256M "$path"
    printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$path" ||
        fail "make_guest_disk: sfdisk"
    mke2fs -q -t ext4 -L root -d "$tree" -E offset=1048576 -F "$path" 255M ||
        fail "make_guest_disk: mke2fs"
}

# A fixed UUID for the /data filesystem make_guest_disk's fstab names.
GUEST_DATA_UUID=6f1c2a7e-1b2d-4c3e-9f4a-5b6c7d8e9f01

# make_guest_data PATH: a raw 300 MiB (sparse) xfs filesystem (label "data", UUID
# $GUEST_DATA_UUID), unpartitioned, as a guest's second disk.
make_guest_data() {
    truncate -s 300M "$1"
    mkfs.xfs -q -f -L data -m uuid="$GUEST_DATA_UUID" "$1" ||
        fail "make_guest_data: mkfs.xfs"
}

# guestfs_env: run the libguestfs appliance as this machine allows.  Under
# nested KVM the appliance's "-cpu max" aborts (../shared/TESTHOSTS.md),
# so tests run it under TCG unless VMFERRY_TEST_GUESTFS_KVM=1.
guestfs_env() {
    export LIBGUESTFS_BACKEND=direct
    [[ ${VMFERRY_TEST_GUESTFS_KVM:-0} == 1 ]] ||
        export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
}
