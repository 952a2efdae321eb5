#!/bin/sh
# Install every Debian 12 package vmferry needs to build, test and benchmark.
# Idempotent: safe to run again; apt-get skips what is already installed.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: must run as root (apt-get install)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# clang and its runtime (libFuzzer): the fuzz harnesses of test.sh's
# sanitizer build; llvm for llvm-symbolizer, without which its ASan
# reports name no functions (clang only recommends it).
build="build-essential cmake pkg-config scdoc
  libvirt-dev libxml2-dev libzstd-dev libssh-dev libarchive-dev
  libguestfs-dev libxxhash-dev libjson-c-dev libnbd-dev check
  clang libclang-rt-14-dev llvm"

# nbdkit serves check_source's NBD cases; libnbd-bin (nbdinfo, nbdcopy)
# looks at an NBD export by hand.  libarchive-tools (bsdtar) unpacks
# vmferry-export --format=tar's archives beside GNU tar.  xfsprogs and
# fdisk (sfdisk) build the guest disks of the libguestfs tests;
# libguestfs-xfs puts xfs into its appliance.  ansible (with the
# community.libvirt collection) and ansible-lint run and check
# ansible/vmferry.fleet.  parted makes and removes the partitions of a
# libvirt disk pool (libvirt runs it; the import too, where libvirt 9
# cannot remove one: integration/import-pool).  virtnbdbackup is
# bench/bench-sync.sh's peer for a running domain (full and incremental
# backups from libvirt checkpoints).
run="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils ovmf swtpm swtpm-tools
  openssh-server openssh-client libguestfs-tools linux-image-amd64
  libxml2-utils iproute2 util-linux procps psmisc e2fsprogs
  zstd tar rsync pv time jq valgrind strace coreutils gawk
  nbdkit libnbd-bin libarchive-tools xfsprogs fdisk libguestfs-xfs
  ansible ansible-lint parted virtnbdbackup"

# Only hit the network when something is missing, so a second run is quick.
missing=""
for p in $build $run; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi

# The QEMU driver will not start without its user (normally made by
# libvirt-daemon-system, which pulls in systemd units we do not use).
getent group kvm >/dev/null || groupadd -r kvm
# Debian's build also resolves the default group libvirt-qemu at start,
# even when qemu.conf sets user/group to root.
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
    useradd -r -g kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
