#!/bin/bash
# The main job, for real, on a fresh Debian 12 machine as root: install,
# build and install vmferry, start the two local test hosts (tests/testbed),
# and move the UEFI test VM from host A to host B through OpenSSH:
#
#   vmferry-export vmf-uefi | ssh hostb vmferry-import --dir ... --define
#
# then show it defined and verified on B, start it there, and take the test
# hosts down again (--keep leaves them up; tests/testbed/testbed.sh down).
set -euo pipefail
cd "$(dirname "$0")/.."

keep=0
[[ ${1:-} == --keep ]] && keep=1

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr/local >/dev/null
cmake --build build -j"$(nproc)"
cmake --install build >/dev/null
echo "== installed: $(command -v vmferry-export vmferry-import vmferry-info | tr '\n' ' ')"

if ((!keep)); then
    trap 'echo "== taking the test hosts down"; tests/testbed/testbed.sh down >/dev/null' EXIT
fi
# The demo needs two hosts: host C (a second destination) stays out.
VMFERRY_TESTBED_HOSTS=${VMFERRY_TESTBED_HOSTS:-2} tests/testbed/testbed.sh up
. "${VMFERRY_TESTBED_DIR:-/var/tmp/vmferry-testbed}/env"
ssh_b() { ssh -F "$SSH_CONFIG" "$SSH_HOST_B" "$@"; }
on_a() { nsenter --mount --target "$PID_A" -- "$@"; }

echo
echo "== host A: virsh list --all"
virsh -c "$URI_A" list --all
echo "== host B (over ssh): virsh list --all"
ssh_b virsh list --all

echo "== moving vmf-uefi: vmferry-export | ssh hostb vmferry-import --define"
on_a vmferry-export -v vmf-uefi |
    ssh_b vmferry-import -v --dir /var/lib/libvirt/images --define

echo
echo "== host B: the domain and its files"
ssh_b virsh list --all
ssh_b virsh domblklist vmf-uefi
ssh_b "virsh dumpxml vmf-uefi | grep -E '<nvram|<loader'"
echo "== verifying: disks compared with qemu-img, NVRAM with cmp"
on_a qemu-img compare -U /var/lib/libvirt/images/vmf-uefi.qcow2 \
    "$VMFERRY_TESTBED_DIR/b/lib/images/vmf-uefi.qcow2"
cmp "$VMFERRY_TESTBED_DIR/a/lib/qemu/nvram/vmf-uefi_VARS.fd" \
    "$VMFERRY_TESTBED_DIR/b/lib/images/vmf-uefi_VARS.fd" && echo "NVRAM identical"
echo "== starting it on host B"
ssh_b virsh start vmf-uefi
ssh_b virsh domstate vmf-uefi
ssh_b virsh destroy vmf-uefi >/dev/null
echo "== done: vmf-uefi moved from host A to host B"
