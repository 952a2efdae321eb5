#!/bin/bash
# testbed.sh up|down|status
#
# Three libvirt "hosts" on this one machine (A, B and C; two with
# VMFERRY_TESTBED_HOSTS=2), for vmferry's integration tests.
# Each host is a private mount namespace (unshare --mount --propagation
# private) in which directories of the state dir are bind-mounted over /run,
# /etc/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt,
# /var/log/swtpm, /var/lib/swtpm-localca and /root.  The private /root
# means B's SSH sessions do not run the machine's ~/.bashrc, and A's root
# has a ~/.ssh (config, key, known_hosts) that reaches `hostb` (and
# hosta, hostc) with no options, like a real user's, without touching the
# machine's /root/.ssh.  A long-lived holder
# process (`sleep infinity`, pid in $STATE/<h>/holder.pid) keeps each
# namespace alive; virtlogd, libvirtd and sshd are started in it
# with nsenter, and so are QEMU and swtpm, their children.  Nothing is
# written to the machine's own /etc/libvirt, /run/libvirt, /var/lib/libvirt,
# /etc/ssh or /root/.ssh (missing mount points such as /var/lib/libvirt are
# created empty and left, as libvirt's packages would have them).
#
#   host A: qemu:///system?socket=$STATE/a/run/libvirt/libvirt-sock
#           qemu+tcp://127.0.0.1:16521/system
#           ssh -F $STATE/ssh/config hosta   (sshd on 127.0.0.1:6222), so
#           that B and C reach A (moves B->A, C->A run on their source)
#           and Ansible reaches all three hosts alike
#   host B: qemu:///system?socket=$STATE/b/run/libvirt/libvirt-sock
#           qemu+tcp://127.0.0.1:16522/system
#           ssh -F $STATE/ssh/config hostb   (sshd on 127.0.0.1:2222)
#   host C: B's construction, its own namespace, host UUID, ports and
#           sshd: qemu+tcp://127.0.0.1:18523/system, ssh ... hostc (4222);
#           a second destination, for moves A->C, B->C and C->B.  Every
#           host's root has the client setup (~/.ssh), so B and C reach
#           each other as A reaches both.  It costs the bed's start-up
#           a few seconds: about 4 s of serial steps (its daemons, sshd,
#           pool, network), and its capabilities probe shares the CPU
#           with making the VMs (measured at load 6-9 on 2 cores, 2 vs 3
#           hosts: 35/37, 53/56, 52/59 s).
# `up` writes $STATE/env (sourced by tests/integration/functions.sh).
#
# Teardown when a test run is killed: every process of the test bed lives
# in one of the two mount namespaces, whatever its name or parent.  `down`
# finds them by namespace (the ids recorded at `up`, plus any namespace
# whose /run carries this state dir's marker or whose mounts come from this
# state dir), kills them, waits for them, and removes the state dir.  ctest
# runs `testbed.sh up` as the FIXTURES_SETUP test and `testbed.sh down` as
# FIXTURES_CLEANUP; and `up` always starts with `down`, so whatever a killed
# earlier run (even SIGKILL, where no cleanup runs) left behind is removed
# by the next run.  By hand: `tests/testbed/testbed.sh down`.
#
# Site differences (for vmferry-check and vmferry-rewrite): host B
# deliberately differs from host A the way two sites do.
#   - image directory: /var/lib/libvirt/site-a exists on A only (A's
#     private /var/lib/libvirt);
#   - emulator: /usr/libexec/qemu-kvm (as on RHEL) exists on A only: an
#     overlay over /usr/libexec in A's namespace adds it as a symlink to
#     qemu-system-x86_64;
#   - bridges: vmf<offset>a0 and vmf<offset>b0 (bridges are host-wide in the
#     one network stack, so each is hidden from the other host's libvirt by
#     a tmpfs over its /sys/devices/virtual/net/<name> in that namespace;
#     `down` deletes them);
#   - networks: vmf-lan-a on A, vmf-lan-b on B, vmf-lan-c on C (forward
#     mode bridge over the host's own bridge; no dnsmasq needed), each on
#     its host only.
# The names are in $STATE/env (SITE_*); SITE_OK=0 with SITE_REASON says
# why when the machine cannot provide them (no overlayfs, no bridges).
#
# Environment: VMFERRY_TESTBED_DIR (state dir, default
# /var/tmp/vmferry-testbed); VMFERRY_TESTBED_PORT_OFFSET (see below); VMFERRY_TOOLS_DIR (put first in PATH of SSH
# sessions on hosts B and C); VMFERRY_TESTBED_VIRT_TYPE=kvm|qemu (skip
# detection); VMFERRY_TESTBED_HOSTS=2|3 (default 3: with host C).

set -euo pipefail

prog=testbed.sh
SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
# shellcheck source-path=SCRIPTDIR source=vmlib.sh
. "$(dirname "$SELF")/vmlib.sh"

STATE=${VMFERRY_TESTBED_DIR:-/var/tmp/vmferry-testbed}
STAMP=.vmferry-testbed
MARKER=vmferry-testbed.id # in each host's /run
# A second test bed (another VMFERRY_TESTBED_DIR, e.g. for benchmarks run
# beside the test suite) needs its own ports: VMFERRY_TESTBED_PORT_OFFSET
# shifts every port below (0 to 1000).
PORT_OFFSET=${VMFERRY_TESTBED_PORT_OFFSET:-0}
if ! [[ $PORT_OFFSET =~ ^[0-9]+$ ]] || ((PORT_OFFSET > 1000)); then
    echo "$prog: VMFERRY_TESTBED_PORT_OFFSET must be 0 to 1000" >&2
    exit 1
fi
# Host C is on unless VMFERRY_TESTBED_HOSTS=2 (see the header).
case ${VMFERRY_TESTBED_HOSTS:-3} in
    2) HOSTS=(a b) ;;
    3) HOSTS=(a b c) ;;
    *)
        echo "$prog: VMFERRY_TESTBED_HOSTS must be 2 or 3" >&2
        exit 2
        ;;
esac
# Every host a bed can have: `down` looks for all of them, whatever `up`
# made.
ALL_HOSTS=(a b c)
# C's ports lie in ranges of their own (not next to B's), so that beds
# whose offsets differ by 1 or 2 do not meet there.
# A's sshd (moves B->A and C->A run on B or C; Ansible reaches every
# host over SSH) has a range of its own too.
declare -A SSH_PORTS=([a]=$((6222 + PORT_OFFSET)) [b]=$((2222 + PORT_OFFSET))
    [c]=$((4222 + PORT_OFFSET)))
SSH_PORT=${SSH_PORTS[b]}
declare -A TCP_PORT=([a]=$((16521 + PORT_OFFSET)) [b]=$((16522 + PORT_OFFSET))
    [c]=$((18523 + PORT_OFFSET)))
# Distinct migration/NBD port ranges: the hosts share one network stack,
# and a bed's three ranges end where the next hundred's bed begins.
declare -A MIG_MIN=([a]=$((49200 + PORT_OFFSET * 3)) [b]=$((49300 + PORT_OFFSET * 3))
    [c]=$((49400 + PORT_OFFSET * 3)))
declare -A MIG_MAX=([a]=$((49299 + PORT_OFFSET * 3)) [b]=$((49399 + PORT_OFFSET * 3))
    [c]=$((49499 + PORT_OFFSET * 3)))
MIB=$((1024 * 1024))

# mount point : subdirectory of $STATE/<host>
MOUNTS=(
    /run:run
    /etc/libvirt:etc
    /var/lib/libvirt:lib
    /var/log/libvirt:log
    /var/cache/libvirt:cache
    /var/log/swtpm:swtpm-log
    /var/lib/swtpm-localca:swtpm-localca
    /root:root
)

die() {
    echo "$prog: $*" >&2
    exit 1
}
info() { echo "$prog: $*"; }

check_state_dir() {
    case $STATE in
        /*) ;;
        *) die "VMFERRY_TESTBED_DIR must be an absolute path: $STATE" ;;
    esac
    STATE=$(realpath -m -- "$STATE")
    case $STATE in
        / | /etc* | /usr* | /bin* | /sbin* | /lib* | /boot* | /dev* | /proc* | /sys* | /run | /root | /home | /var | /var/tmp | /tmp)
            die "refusing to use $STATE as the test bed state dir" ;;
    esac
}

uri() { echo "qemu:///system?socket=$STATE/$1/run/libvirt/libvirt-sock"; }
tcp_uri() { echo "qemu+tcp://127.0.0.1:${TCP_PORT[$1]}/system"; }
vs() {
    local h=$1
    shift
    timeout 60 virsh -q -c "$(uri "$h")" "$@"
}
holder_pid() { cat "$STATE/$1/holder.pid" 2>/dev/null; }
# Run a command in host $1's mount namespace.
ns_exec() {
    local h=$1 pid
    shift
    pid=$(holder_pid "$h") || die "host $h: no holder pid"
    nsenter --mount --target "$pid" -- "$@"
}
run_a() { ns_exec a "$@"; }

# ---------------------------------------------------------------- down

# Site differences (see the header): names depend on the port offset so
# that two beds do not share bridges.
SITE_DIR=/var/lib/libvirt/site-a
SITE_EMULATOR=/usr/libexec/qemu-kvm
declare -A SITE_BRIDGE=([a]="vmf${PORT_OFFSET}a0" [b]="vmf${PORT_OFFSET}b0"
    [c]="vmf${PORT_OFFSET}c0")
declare -A SITE_NET=([a]=vmf-lan-a [b]=vmf-lan-b [c]=vmf-lan-c)

remove_site_bridges() {
    local h
    command -v ip >/dev/null || return 0
    for h in "${ALL_HOSTS[@]}"; do
        ip link show "${SITE_BRIDGE[$h]}" >/dev/null 2>&1 &&
            ip link del "${SITE_BRIDGE[$h]}" 2>/dev/null || true
    done
}

# Print "pid mntns" for every process.
all_ns() {
    # find prints nothing for processes that vanished in between.
    { find /proc/[0-9]*/ns/mnt -maxdepth 0 -printf '%h %l\n' 2>/dev/null || true; } |
        sed -n 's|^/proc/\([0-9]*\)/ns \(mnt:\[[0-9]*\]\)$|\1 \2|p' || true
}

# Mount namespace ids that belong to this state dir: recorded ones, and any
# namespace whose /run has our marker or whose mounts come from $STATE
# (found even if the recorded ids were lost).
bed_namespaces() {
    local self init h pid ns
    self=$(readlink /proc/self/ns/mnt)
    init=$(readlink /proc/1/ns/mnt 2>/dev/null || true)
    declare -A seen=()
    {
        for h in "${ALL_HOSTS[@]}"; do
            [[ -s $STATE/$h/mntns ]] && cat "$STATE/$h/mntns"
        done
        all_ns | while read -r pid ns; do
            [[ $ns == "$self" || $ns == "$init" ]] && continue
            [[ -n ${seen[$ns]:-} ]] && continue
            seen[$ns]=1
            if [[ $(cat "/proc/$pid/root/run/$MARKER" 2>/dev/null) == "$STATE" ]] ||
                awk -v s="$STATE/" 'index($4, s) == 1 { f = 1 } END { exit !f }' \
                    "/proc/$pid/mountinfo" 2>/dev/null; then
                echo "$ns"
            fi
        done
    } | sort -u | grep -v -x -F -e "$self" -e "${init:-none}" || true
}

pids_in() {
    local pid ns want
    all_ns | while read -r pid ns; do
        for want in "$@"; do
            if [[ $ns == "$want" ]]; then
                [[ $pid != "$$" && $pid != "$BASHPID" ]] && echo "$pid"
                break
            fi
        done
    done
}

# Destroy running domains while the daemons still answer, so libvirt can
# clean up after QEMU and swtpm itself; the kill below catches the rest.
destroy_domains() {
    local h d
    for h in "${ALL_HOSTS[@]}"; do
        [[ -S $STATE/$h/run/libvirt/libvirt-sock ]] || continue
        for d in $(timeout 20 virsh -q -c "$(uri "$h")" list --name --state-running 2>/dev/null); do
            timeout 30 virsh -q -c "$(uri "$h")" destroy "$d" >/dev/null 2>&1 ||
                echo "$prog: host $h: could not destroy $d, killing it" >&2
        done
    done
}

kill_namespaces() {
    local -a nss pids
    local i sig
    mapfile -t nss < <(bed_namespaces)
    ((${#nss[@]})) || return 0
    for sig in TERM KILL; do
        mapfile -t pids < <(pids_in "${nss[@]}")
        ((${#pids[@]})) || return 0
        kill "-$sig" "${pids[@]}" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            mapfile -t pids < <(pids_in "${nss[@]}")
            ((${#pids[@]})) || return 0
            sleep 0.1
        done
    done
    ps -o pid,comm,args -p "$(
        IFS=,
        echo "${pids[*]}"
    )" >&2 || true
    die "processes of the test bed survived SIGKILL: ${pids[*]}"
}

cmd_down() {
    check_state_dir
    # Inside a host (on_a, ssh hostb) we would not see, nor kill, our own.
    if [[ -e /run/$MARKER ]]; then
        die "run testbed.sh from outside the test bed's namespaces"
    fi
    destroy_domains
    kill_namespaces
    remove_site_bridges
    # The mount points made at `up` (empty /var/lib/libvirt and the like,
    # where libvirt's packages would put them) stay: removing a directory
    # unmounts it in every namespace, and another bed (a benchmark beside
    # the test suite) may be using them.
    if [[ -e $STATE ]]; then
        if [[ ! -e $STATE/$STAMP ]] && [[ -n $(ls -A "$STATE") ]]; then
            die "$STATE is not a test bed state dir (no $STAMP); not removing it"
        fi
        if awk -v s="$STATE/" 'index($5 "/", s) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
            die "something is mounted under $STATE; not removing it"
        fi
        rm -rf --one-file-system -- "$STATE"
    fi
    info "down"
}

# ---------------------------------------------------------------- up

write_host_config() {
    local h=$1 d=$STATE/$1 uuid
    local m
    for m in "${MOUNTS[@]}"; do mkdir -p "$d/${m#*:}"; done
    chmod 700 "$d/root"
    mkdir -p "$d/run/sshd" "$d/lib/images"
    chmod 711 "$d/lib/images"
    # The machine's client and daemon configuration, without its domains,
    # networks and pools (they would start in both hosts).
    if [[ -d /etc/libvirt ]]; then
        cp -a /etc/libvirt/. "$d/etc/"
    fi
    rm -f "$d"/etc/qemu/*.xml "$d"/etc/qemu/networks/*.xml "$d"/etc/storage/*.xml
    rm -rf "$d/etc/qemu/autostart" "$d/etc/qemu/networks/autostart" "$d/etc/storage/autostart"
    uuid=$(cat /proc/sys/kernel/random/uuid)
    echo "$uuid" >"$d/host-uuid"
    cat >"$d/etc/libvirtd.conf" <<EOF
# vmferry test bed, host $h (test only: no authentication on TCP)
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "${TCP_PORT[$h]}"
auth_tcp = "none"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "$uuid"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
    # cgroup_controllers: both daemons would name their cgroups
    # qemu-<id>-<name> in the same hierarchy.  namespaces: keep QEMU in the
    # host's mount namespace so `down` finds it there.
    cat >"$d/etc/qemu.conf" <<EOF
# vmferry test bed, host $h
user = "root"
group = "root"
security_driver = "none"
swtpm_user = "root"
swtpm_group = "root"
cgroup_controllers = [ ]
namespaces = [ ]
migration_port_min = ${MIG_MIN[$h]}
migration_port_max = ${MIG_MAX[$h]}
EOF
    cat >"$d/etc/virtlogd.conf" <<EOF
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
EOF
}

make_mountpoints() {
    local m
    for m in "${MOUNTS[@]}"; do
        mkdir -p "${m%%:*}"
    done
}

# Runs inside the new mount namespace (via unshare): mount, mark, hold.
ns_init() {
    local h=$1 d=$STATE/$1 m
    for m in "${MOUNTS[@]}"; do
        mount --bind "$d/${m#*:}" "${m%%:*}"
    done
    echo "$STATE" >"/run/$MARKER"
    # Host A's own emulator path (see the header); failure is reported by
    # make_site_differences, not fatal here.
    if [[ $h == a ]]; then
        mkdir -p "$d/libexec-upper" "$d/libexec-work"
        ln -sfn /usr/bin/qemu-system-x86_64 "$d/libexec-upper/qemu-kvm"
        mount -t overlay vmferry-site -o "lowerdir=/usr/libexec,upperdir=$d/libexec-upper,workdir=$d/libexec-work" \
            /usr/libexec 2>"$d/site-overlay.err" || true
    fi
    echo $$ >"$d/holder.pid.tmp"
    mv "$d/holder.pid.tmp" "$d/holder.pid"
    exec sleep infinity
}

start_holder() {
    local h=$1 d=$STATE/$1 i pid ns
    setsid unshare --mount --propagation private -- "$BASH" "$SELF" __ns_init "$h" \
        </dev/null >>"$d/ns.log" 2>&1 &
    for ((i = 0; i < 100; i++)); do
        [[ -s $d/holder.pid ]] && break
        sleep 0.1
    done
    pid=$(holder_pid "$h") || die "host $h: namespace did not come up: $(tail -n 20 "$d/ns.log")"
    ns=$(readlink "/proc/$pid/ns/mnt") || die "host $h: holder $pid is gone: $(tail -n 20 "$d/ns.log")"
    [[ $ns != "$(readlink /proc/self/ns/mnt)" ]] || die "host $h: holder is not in a new mount namespace"
    echo "$ns" >"$d/mntns"
}

start_daemons() {
    local h=$1 d=$STATE/$1 i
    ns_exec "$h" env -u LIBVIRT_DEFAULT_URI virtlogd -d </dev/null >>"$d/daemons.log" 2>&1 ||
        die "host $h: virtlogd failed: $(tail -n 20 "$d/daemons.log")"
    for ((i = 0; i < 100; i++)); do
        [[ -S $d/run/libvirt/virtlogd-sock ]] && break
        sleep 0.1
    done
    [[ -S $d/run/libvirt/virtlogd-sock ]] ||
        die "host $h: virtlogd socket did not appear; log: $(tail -n 20 "$d/log/virtlogd.log" 2>/dev/null)"
    ns_exec "$h" env -u LIBVIRT_DEFAULT_URI libvirtd -d --listen </dev/null >>"$d/daemons.log" 2>&1 ||
        die "host $h: libvirtd failed to start: $(tail -n 20 "$d/daemons.log")
$(tail -n 30 "$d/log/libvirtd.log" 2>/dev/null)"
}

wait_daemon() {
    local h=$1 d=$STATE/$1 i u
    for u in "$(uri "$h")" "$(tcp_uri "$h")"; do
        for ((i = 0; i < 150; i++)); do
            timeout 10 virsh -q -c "$u" uri >/dev/null 2>&1 && continue 2
            # Give up early once the daemon is gone (it exits, and removes
            # its pid file, when driver initialisation fails).
            if ((i >= 10)) && ! kill -0 "$(cat "$d/run/libvirtd.pid" 2>/dev/null || echo none)" 2>/dev/null; then
                break
            fi
            sleep 0.2
        done
        die "host $h: libvirtd does not answer on $u (within 30 s); log tail:
$(tail -n 30 "$d/log/libvirtd.log" 2>/dev/null)
$(tail -n 10 "$d/daemons.log" 2>/dev/null)"
    done
}

detect_virt_type() {
    local t=${VMFERRY_TESTBED_VIRT_TYPE:-}
    if [[ -z $t ]]; then
        t=qemu
        # The CPU model libvirt uses by default: under nested KVM some
        # models abort when their MSRs are set, which happens before -S.
        if [[ -r /dev/kvm && -w /dev/kvm ]] &&
            echo quit | timeout 30 qemu-system-x86_64 -accel kvm -M pc -cpu qemu64 \
                -nodefaults -display none -S -monitor stdio >"$STATE/kvm-probe.log" 2>&1; then
            t=kvm
        fi
    fi
    case $t in kvm | qemu) ;; *) die "VMFERRY_TESTBED_VIRT_TYPE must be kvm or qemu" ;; esac
    echo "$t" >"$STATE/virt-type"
    VIRT_TYPE=$t
}

# The client side, shared by every SSH host of the bed: one key, the
# hosts' keys, `ssh -F $STATE/ssh/config hostb` (and hosta, hostc); each
# host's root gets the same setup as its defaults, so B reaches C and A
# as A reaches both.
# Sets SSH_PATH (the PATH of the sessions).
ssh_client_setup() {
    local s=$STATE/ssh h r
    mkdir -p "$s"
    chmod 700 "$s"
    ssh-keygen -q -t ed25519 -N '' -C vmferry-testbed-client -f "$s/id_ed25519"
    cp "$s/id_ed25519.pub" "$s/authorized_keys"
    : >"$s/known_hosts"
    echo "# vmferry test bed: ssh -F $s/config hostb (or hosta, hostc)" >"$s/config"
    for h in "${HOSTS[@]}"; do
        [[ -n ${SSH_PORTS[$h]:-} ]] || continue
        ssh-keygen -q -t ed25519 -N '' -C "vmferry-testbed-host$h" -f "$(host_key "$h")"
        printf '[127.0.0.1]:%s %s\n[localhost]:%s %s\n' \
            "${SSH_PORTS[$h]}" "$(cut -d' ' -f1,2 "$(host_key "$h").pub")" \
            "${SSH_PORTS[$h]}" "$(cut -d' ' -f1,2 "$(host_key "$h").pub")" \
            >>"$s/known_hosts"
        cat >>"$s/config" <<EOF
Host host$h
    HostName 127.0.0.1
    Port ${SSH_PORTS[$h]}
    User root
    IdentityFile $s/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $s/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    BatchMode yes
    ControlMaster no
    ControlPath none
    ConnectTimeout 10
    LogLevel ERROR
EOF
    done
    SSH_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    if [[ -n ${VMFERRY_TOOLS_DIR:-} ]]; then
        [[ $VMFERRY_TOOLS_DIR == /* ]] || die "VMFERRY_TOOLS_DIR must be absolute: $VMFERRY_TOOLS_DIR"
        SSH_PATH=$VMFERRY_TOOLS_DIR:$SSH_PATH
    fi
    for h in "${HOSTS[@]}"; do
        r=$STATE/$h/root/.ssh
        mkdir -p "$r"
        chmod 700 "$r"
        cp "$s/id_ed25519" "$s/id_ed25519.pub" "$s/known_hosts" "$r/"
        sed -e "s|$s/id_ed25519|~/.ssh/id_ed25519|" -e "s|$s/known_hosts|~/.ssh/known_hosts|" \
            "$s/config" >"$r/config"
        chmod 600 "$r/config"
    done
}

# Host H's sshd key: B's where it always was, A's and C's beside it.
host_key() {
    if [[ $1 == b ]]; then
        echo "$STATE/ssh/ssh_host_ed25519_key"
    else
        echo "$STATE/ssh/ssh_host_$1_ed25519_key"
    fi
}

# Host H's files of its sshd: B's under their old names, A's and C's
# with "_a" and "_c".
sshd_suffix() { [[ $1 == b ]] || echo "_$1"; }

# Start host H's sshd in its namespace.
start_sshd() {
    local h=$1 s=$STATE/ssh sfx v
    sfx=$(sshd_suffix "$h")
    # A sanitizer build's options (tests/CMakeLists.txt) reach the tools
    # that the hosts' SSH sessions run too.
    local senv="PATH=$SSH_PATH VMFERRY_FAULT_FILE=$STATE/fault-$h"
    for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
        [[ -z ${!v:-} ]] || senv+=" $v=${!v}"
    done
    # StrictModes no: authorized_keys lives under /var/tmp (mode 1777),
    # which sshd's path check would reject.  Test-only sshd on loopback.
    cat >"$s/sshd_config$sfx" <<EOF
# vmferry test bed: host ${h^^}'s sshd (runs in ${h^^}'s mount namespace)
Port ${SSH_PORTS[$h]}
ListenAddress 127.0.0.1
HostKey $(host_key "$h")
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile $s/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxStartups 64:30:128
MaxSessions 32
LogLevel VERBOSE
SetEnv $senv
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    ns_exec "$h" /usr/sbin/sshd -t -f "$s/sshd_config$sfx" || die "host $h: bad sshd_config"
    ns_exec "$h" /usr/sbin/sshd -f "$s/sshd_config$sfx" -E "$s/sshd$sfx.log" </dev/null >>"$STATE/$h/daemons.log" 2>&1 ||
        die "host $h: sshd failed to start: $(tail -n 20 "$s/sshd$sfx.log" 2>/dev/null)"
}

# Wait until host H's sshd takes the test key, and its sessions get the
# PATH configured (a shell rc file could still change it).
wait_sshd() {
    local h=$1 s=$STATE/ssh sfx i got
    sfx=$(sshd_suffix "$h")
    for ((i = 0; i < 100; i++)); do
        timeout 10 ssh -F "$s/config" "host$h" true </dev/null 2>/dev/null && break
        sleep 0.2
    done
    timeout 10 ssh -F "$s/config" "host$h" true </dev/null ||
        die "host $h: sshd does not accept the test key; log tail:
$(tail -n 20 "$s/sshd$sfx.log" 2>/dev/null)"
    # shellcheck disable=SC2016 # expanded remotely
    got=$(timeout 10 ssh -F "$s/config" "host$h" 'printf %s "$PATH"' </dev/null)
    [[ $got == "$SSH_PATH" ]] || die "host $h: SSH sessions get PATH=$got, expected $SSH_PATH"
}

# See the header.  Sets SITE_OK and SITE_REASON.
make_site_differences() {
    local h o br net
    SITE_OK=1 SITE_REASON=
    run_a mkdir -p "$SITE_DIR"
    if ! run_a test -x "$SITE_EMULATOR"; then
        SITE_OK=0 SITE_REASON="no $SITE_EMULATOR on host A (overlay over /usr/libexec failed: $(tr '\n' ' ' <"$STATE/a/site-overlay.err" 2>/dev/null))"
        return 0
    fi
    if ! command -v ip >/dev/null; then
        SITE_OK=0 SITE_REASON="no ip command (iproute2) to make bridges"
        return 0
    fi
    remove_site_bridges
    for h in "${HOSTS[@]}"; do
        br=${SITE_BRIDGE[$h]}
        if ! ip link add name "$br" type bridge 2>"$STATE/site-bridge.err" ||
            ! ip link set "$br" up 2>>"$STATE/site-bridge.err"; then
            SITE_OK=0 SITE_REASON="cannot make bridge $br: $(tr '\n' ' ' <"$STATE/site-bridge.err")"
            return 0
        fi
    done
    # Each host's libvirt must not see the others' bridges.
    for h in "${HOSTS[@]}"; do
        for o in "${HOSTS[@]}"; do
            [[ $o != "$h" ]] || continue
            if ! ns_exec "$h" mount -t tmpfs -o size=4k,mode=0555 vmferry-hide \
                "/sys/devices/virtual/net/${SITE_BRIDGE[$o]}" 2>"$STATE/site-hide.err"; then
                SITE_OK=0 SITE_REASON="host $h: cannot hide bridge ${SITE_BRIDGE[$o]}: $(tr '\n' ' ' <"$STATE/site-hide.err")"
                return 0
            fi
        done
        net=${SITE_NET[$h]}
        printf "<network><name>%s</name><forward mode='bridge'/><bridge name='%s'/></network>\n" \
            "$net" "${SITE_BRIDGE[$h]}" >"$STATE/$h/$net.xml"
        if ! vs "$h" net-define "$STATE/$h/$net.xml" >/dev/null 2>"$STATE/site-net.err" ||
            ! vs "$h" net-start "$net" >/dev/null 2>>"$STATE/site-net.err"; then
            SITE_OK=0 SITE_REASON="host $h: network $net: $(tr '\n' ' ' <"$STATE/site-net.err")"
            return 0
        fi
    done
}

make_pool() {
    local h=$1
    vs "$h" pool-define-as default dir --target "$TB_IMAGES_DIR" >/dev/null
    vs "$h" pool-build default >/dev/null
    vs "$h" pool-start default >/dev/null
    vs "$h" pool-autostart default >/dev/null
}

# Record what a disk must contain: DOMAIN FILE FORMAT PATTERN OFFSET LENGTH
# (bytes; pattern 0x00 on a hole).  Read by tests/integration/testbed-vms.sh
# and available to any test as $PATTERNS.
expect() {
    local dom=$1 file=$2 fmt=$3 p=$4 pat rest
    pat=${p%%@*}
    rest=${p#*@}
    printf '%s %s %s %s %s %s\n' "$dom" "$file" "$fmt" "$pat" \
        "$(tb_bytes "${rest%%+*}")" "$(tb_bytes "${rest#*+}")" >>"$STATE/patterns"
}

define() {
    local name=$1 xml
    shift
    xml=$(tb_domain_xml "$name" "$VIRT_TYPE" "$@")
    echo "$xml" >"$STATE/xml/$name.xml"
    vs a define "$STATE/xml/$name.xml" >/dev/null
}

make_ext4_source() {
    local src=$STATE/ext4-src
    mkdir -p "$src/etc" "$src/data/sub"
    echo vmf-qcow2 >"$src/etc/hostname"
    printf 'hello from the vmferry test bed\n' >"$src/hello.txt"
    head -c $((3 * MIB)) /dev/urandom >"$src/data/random.bin"
    truncate -s $((8 * MIB)) "$src/data/sparse.bin"
    printf 'tail\n' >>"$src/data/sparse.bin"
    seq 1 20000 >"$src/data/sub/numbers.txt"
    ln -s ../hello.txt "$src/data/hello-link"
    (cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$STATE/ext4.sha256"
}

make_vms() {
    local img=$TB_IMAGES_DIR p f
    mkdir -p "$STATE/xml"
    : >"$STATE/patterns"

    # vmf-raw: sparse raw with scattered patterns and holes.
    local raw_pats=(0xa1@0+1M 0xa2@100M+64K 0xa3@512M+2M 0xa4@1023M+1M)
    tb_make_disk run_a "$img/vmf-raw.img" raw 1G "" "${raw_pats[@]}"
    for p in "${raw_pats[@]}" 0x00@200M+1M 0x00@900M+1M; do expect vmf-raw "$img/vmf-raw.img" raw "$p"; done
    define vmf-raw "$img/vmf-raw.img" raw 128

    # vmf-qcow2: populated ext4 (64 MiB at offset 0) plus patterns further on.
    make_ext4_source
    mke2fs -q -t ext4 -L vmferry -d "$STATE/ext4-src" -F "$STATE/ext4.img" 64M >/dev/null
    f=$img/vmf-qcow2.qcow2
    run_a qemu-img convert -f raw -O qcow2 "$STATE/ext4.img" "$f"
    run_a qemu-img resize -q -f qcow2 "$f" 1G
    rm -f "$STATE/ext4.img"
    local q_pats=(0xb1@256M+1M 0xb2@768M+512K)
    run_a qemu-io -f qcow2 -c "write -P 0xb1 256M 1M" -c "write -P 0xb2 768M 512K" "$f" >/dev/null
    for p in "${q_pats[@]}" 0x00@512M+1M 0x00@1000M+1M; do expect vmf-qcow2 "$f" qcow2 "$p"; done
    define vmf-qcow2 "$f" qcow2 128

    # vmf-chain: overlay over a qcow2 base; the overlay hides part of the
    # base's second region.
    tb_make_disk run_a "$img/vmf-chain-base.qcow2" qcow2 1G "" 0xc1@0+1M 0xc2@300M+1M
    tb_make_disk run_a "$img/vmf-chain.qcow2" qcow2 1G "$img/vmf-chain-base.qcow2" \
        0xc3@300M+512K 0xc4@600M+1M
    for p in 0xc1@0+1M 0xc2@300M+1M 0x00@600M+1M; do
        expect vmf-chain-base "$img/vmf-chain-base.qcow2" qcow2 "$p"
    done
    for p in 0xc1@0+1M 0xc3@300M+512K "0xc2@$((300 * MIB + 512 * 1024))+512K" 0xc4@600M+1M 0x00@800M+1M; do
        expect vmf-chain "$img/vmf-chain.qcow2" qcow2 "$p"
    done
    define vmf-chain "$img/vmf-chain.qcow2" qcow2 128

    # vmf-uefi: OVMF, NVRAM made from the template at its first start.
    tb_make_disk run_a "$img/vmf-uefi.qcow2" qcow2 256M "" 0xd1@0+1M
    expect vmf-uefi "$img/vmf-uefi.qcow2" qcow2 0xd1@0+1M
    # Under TCG everywhere: OVMF under this machine's nested KVM stops at
    # once with a KVM "emulation failure" (seen here), and a test bed
    # whose UEFI guest could not run would prove nothing.
    VIRT_TYPE=qemu define vmf-uefi "$img/vmf-uefi.qcow2" qcow2 256 uefi

    # vmf-tpm: TPM 2.0 emulator; swtpm_setup creates its state at first start.
    tb_make_disk run_a "$img/vmf-tpm.qcow2" qcow2 64M "" 0xf1@0+1M
    expect vmf-tpm "$img/vmf-tpm.qcow2" qcow2 0xf1@0+1M
    define vmf-tpm "$img/vmf-tpm.qcow2" qcow2 128 tpm

    # vmf-running: stays running after `up`.
    tb_make_disk run_a "$img/vmf-running.qcow2" qcow2 256M "" 0xe1@0+1M 0xe2@128M+1M
    for p in 0xe1@0+1M 0xe2@128M+1M; do expect vmf-running "$img/vmf-running.qcow2" qcow2 "$p"; done
    define vmf-running "$img/vmf-running.qcow2" qcow2 128

    vs a pool-refresh default >/dev/null

    # First starts: NVRAM and TPM state exist only after them.
    vs a start vmf-uefi >/dev/null || die "vmf-uefi does not start: $(tail -n 20 "$STATE/a/log/qemu/vmf-uefi.log" 2>/dev/null)"
    vs a destroy vmf-uefi >/dev/null
    [[ -f $STATE/a/lib/qemu/nvram/vmf-uefi_VARS.fd ]] || die "vmf-uefi: no NVRAM file after first start"

    TPM_OK=1
    TPM_REASON=
    if vs a start vmf-tpm >"$STATE/tpm-start.log" 2>&1; then
        vs a destroy vmf-tpm >/dev/null
        local uuid
        uuid=$(vs a domuuid vmf-tpm)
        if ! compgen -G "$STATE/a/lib/swtpm/$uuid/tpm2/tpm2-00.permall" >/dev/null; then
            TPM_OK=0
            TPM_REASON="no swtpm state under /var/lib/libvirt/swtpm/$uuid after first start"
        fi
    else
        TPM_OK=0
        TPM_REASON="vmf-tpm does not start: $(tr '\n' ' ' <"$STATE/tpm-start.log")"
    fi
    if ((!TPM_OK)); then
        echo "$prog: WARNING: TPM guest left out: $TPM_REASON" >&2
        vs a undefine --tpm vmf-tpm >/dev/null 2>&1 || vs a undefine vmf-tpm >/dev/null 2>&1 || true
        run_a rm -f "$img/vmf-tpm.qcow2"
        sed -i '/^vmf-tpm /d' "$STATE/patterns"
    fi

    vs a start vmf-running >/dev/null ||
        die "vmf-running does not start: $(tail -n 20 "$STATE/a/log/qemu/vmf-running.log" 2>/dev/null)"
}

write_env() {
    local e=$STATE/env.tmp vms="vmf-raw vmf-qcow2 vmf-chain vmf-uefi vmf-running"
    ((TPM_OK)) && vms+=" vmf-tpm"
    {
        echo "# written by tests/testbed/testbed.sh up; source it"
        local kv
        for kv in \
            "VMFERRY_TESTBED_DIR=$STATE" \
            "URI_A=$(uri a)" "URI_B=$(uri b)" \
            "TCP_URI_A=$(tcp_uri a)" "TCP_URI_B=$(tcp_uri b)" \
            "PID_A=$(holder_pid a)" "PID_B=$(holder_pid b)" \
            "MNTNS_A=$(cat "$STATE/a/mntns")" "MNTNS_B=$(cat "$STATE/b/mntns")" \
            "HOST_UUID_A=$(cat "$STATE/a/host-uuid")" "HOST_UUID_B=$(cat "$STATE/b/host-uuid")" \
            "ROOT_A=$STATE/a" "ROOT_B=$STATE/b" \
            "IMAGES_DIR=$TB_IMAGES_DIR" "NVRAM_DIR=$TB_NVRAM_DIR" "SWTPM_DIR=$TB_SWTPM_DIR" \
            "IMAGES_A=$STATE/a/lib/images" "IMAGES_B=$STATE/b/lib/images" \
            "VIRT_TYPE=$VIRT_TYPE" \
            "SSH_CONFIG=$STATE/ssh/config" "SSH_HOST_A=hosta" \
            "SSH_ADDR_A=127.0.0.1" "SSH_PORT_A=${SSH_PORTS[a]}" "SSH_USER_A=root" \
            "SSH_PATH_A=$SSH_PATH" "SSH_HOST_B=hostb" \
            "SSH_ADDR_B=127.0.0.1" "SSH_PORT_B=$SSH_PORT" "SSH_USER_B=root" \
            "SSH_KEY=$STATE/ssh/id_ed25519" "SSH_KNOWN_HOSTS=$STATE/ssh/known_hosts" \
            "SSH_PATH_B=$SSH_PATH" \
            "MIGRATION_PORTS_A=${MIG_MIN[a]}-${MIG_MAX[a]}" \
            "MIGRATION_PORTS_B=${MIG_MIN[b]}-${MIG_MAX[b]}" \
            "TESTBED_VMS=$vms" "TESTBED_TPM=$TPM_OK" "TESTBED_TPM_REASON=$TPM_REASON" \
            "PATTERNS=$STATE/patterns" "EXT4_SUMS=$STATE/ext4.sha256" \
            "EXT4_SRC=$STATE/ext4-src" "EXT4_SIZE=$((64 * MIB))" \
            "SITE_OK=$SITE_OK" "SITE_REASON=$SITE_REASON" "SITE_DIR_A=$SITE_DIR" \
            "SITE_EMULATOR_A=$SITE_EMULATOR" "SITE_NET_A=${SITE_NET[a]}" \
            "SITE_NET_B=${SITE_NET[b]}" "SITE_BRIDGE_A=${SITE_BRIDGE[a]}" \
            "SITE_BRIDGE_B=${SITE_BRIDGE[b]}" \
            "FAULT_FILE_B=$STATE/fault-b" \
            "TESTBED_HOSTS=${HOSTS[*]}"; do
            printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
        done
        # Host C, when the bed has it (tests that need it check
        # TESTBED_HOSTS).
        if [[ " ${HOSTS[*]} " == *" c "* ]]; then
            for kv in \
                "URI_C=$(uri c)" "TCP_URI_C=$(tcp_uri c)" "PID_C=$(holder_pid c)" \
                "MNTNS_C=$(cat "$STATE/c/mntns")" \
                "HOST_UUID_C=$(cat "$STATE/c/host-uuid")" "ROOT_C=$STATE/c" \
                "IMAGES_C=$STATE/c/lib/images" "SSH_HOST_C=hostc" \
                "SSH_ADDR_C=127.0.0.1" "SSH_PORT_C=${SSH_PORTS[c]}" "SSH_USER_C=root" \
                "SSH_PATH_C=$SSH_PATH" \
                "MIGRATION_PORTS_C=${MIG_MIN[c]}-${MIG_MAX[c]}" \
                "SITE_NET_C=${SITE_NET[c]}" "SITE_BRIDGE_C=${SITE_BRIDGE[c]}" \
                "FAULT_FILE_C=$STATE/fault-c"; do
                printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
            done
        fi
    } >"$e"
    mv "$e" "$STATE/env"
}

cmd_up() {
    local t0=$SECONDS
    for c in virsh libvirtd virtlogd qemu-img qemu-io qemu-system-x86_64 mke2fs \
        nsenter unshare setsid ssh ssh-keygen /usr/sbin/sshd; do
        command -v "$c" >/dev/null || die "missing $c (run scripts/install-deps.sh)"
    done
    if ! getent passwd libvirt-qemu >/dev/null || ! getent group libvirt-qemu >/dev/null; then
        die "user or group libvirt-qemu missing; the QEMU driver will not load (run scripts/install-deps.sh)"
    fi
    [[ -f $TB_OVMF_CODE && -f $TB_OVMF_VARS ]] || die "OVMF missing (package ovmf)"
    cmd_down >/dev/null
    mkdir -p "$STATE"
    chmod 755 "$STATE"
    : >"$STATE/$STAMP"
    local h
    for h in "${HOSTS[@]}"; do write_host_config "$h"; done
    make_mountpoints
    detect_virt_type
    for h in "${HOSTS[@]}"; do start_holder "$h"; done
    for h in "${HOSTS[@]}"; do start_daemons "$h"; done
    ssh_client_setup
    for h in "${HOSTS[@]}"; do
        [[ -z ${SSH_PORTS[$h]:-} ]] || start_sshd "$h"
    done
    for h in "${HOSTS[@]}"; do
        [[ -z ${SSH_PORTS[$h]:-} ]] || wait_sshd "$h"
    done
    for h in "${HOSTS[@]}"; do wait_daemon "$h"; done
    for h in "${HOSTS[@]}"; do make_pool "$h"; done
    make_site_differences
    # The first capabilities call of a daemon takes seconds (host and QEMU
    # probing); pay it here, in parallel, not in the first test that asks.
    local -a warm=()
    for h in "${HOSTS[@]}"; do
        { vs "$h" capabilities && vs "$h" domcapabilities --virttype "$VIRT_TYPE"; } \
            </dev/null >/dev/null 2>&1 &
        warm+=($!)
    done
    make_vms
    for h in "${warm[@]}"; do
        wait "$h" || die "virsh capabilities fails on a host"
    done
    write_env
    info "up in $((SECONDS - t0)) s: hosts ${HOSTS[*]}, virt type $VIRT_TYPE, TPM $( ((TPM_OK)) && echo yes || echo "no ($TPM_REASON)"), env in $STATE/env"
}

# ---------------------------------------------------------------- status

cmd_status() {
    check_state_dir
    local h pid nss
    if [[ ! -e $STATE/env ]]; then
        echo "test bed: not up (no $STATE/env)"
    else
        echo "test bed: $STATE (virt type $(cat "$STATE/virt-type" 2>/dev/null))"
    fi
    for h in "${ALL_HOSTS[@]}"; do
        [[ -e $STATE/$h ]] || continue
        pid=$(holder_pid "$h" || true)
        if [[ -n $pid ]] && [[ $(readlink "/proc/$pid/ns/mnt" 2>/dev/null) == "$(cat "$STATE/$h/mntns" 2>/dev/null)" ]]; then
            echo "host $h: namespace $(cat "$STATE/$h/mntns") (holder pid $pid)"
        else
            echo "host $h: no namespace"
            continue
        fi
        if timeout 10 virsh -q -c "$(uri "$h")" uri >/dev/null 2>&1; then
            echo "  libvirtd: up on $(uri "$h") and $(tcp_uri "$h")"
            timeout 10 virsh -c "$(uri "$h")" list --all | sed -n '3,$s/^/  /p' | sed '/^ *$/d'
        else
            echo "  libvirtd: not answering"
        fi
    done
    for h in a b c; do
        [[ -e $STATE/$h ]] || continue
        if [[ -f $STATE/ssh/config ]] && timeout 10 ssh -F "$STATE/ssh/config" "host$h" true </dev/null 2>/dev/null; then
            echo "host $h: sshd up (ssh -F $STATE/ssh/config host$h)"
        else
            echo "host $h: sshd not answering"
        fi
    done
    nss=$(bed_namespaces)
    if [[ -n $nss ]]; then
        # shellcheck disable=SC2086 # one namespace id per word
        echo "processes in the test bed's namespaces: $(pids_in $nss | wc -l)"
        # shellcheck disable=SC2086
        pids_in $nss | xargs -r ps -o pid=,comm= -p | awk '{print "  " $0}'
    else
        echo "processes in the test bed's namespaces: none"
    fi
}

case ${1:-} in
    up) check_state_dir; cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    __ns_init) check_state_dir; ns_init "$2" ;;
    *)
        echo "usage: $prog up|down|status" >&2
        exit 2
        ;;
esac
