#!/bin/bash
# Disks as volumes of storage pools, both ways a user meets them:
#  - a source disk that is a volume (<disk type='volume'>) travels and
#    lands as the same volume of the destination's pool;
#  - a file disk rewritten with vmferry-rewrite --pool DIR=POOL lands as a
#    volume of POOL on the destination;
# each time by "export | (rewrite |) ssh B vmferry-import --define" with no
# --dir: the stream says where.  The domains start on B; data identical.
. "$(dirname "$0")/functions.sh"

drop() {
    local name=$1 vol=$2
    virsh_b -q destroy "$name" >/dev/null 2>&1 || true
    virsh_b -q undefine "$name" >/dev/null 2>&1 || true
    on_b rm -f "/var/lib/libvirt/images/$vol"
    virsh_b -q pool-refresh default >/dev/null 2>&1 || true
}

# 1. A volume disk at the source.
virsh_a -q vol-create-as default t-vol.qcow2 256M --format qcow2 >/dev/null
cleanup_add virsh_a -q vol-delete t-vol.qcow2 --pool default
on_a qemu-io -f qcow2 -c 'write -P 0x61 0 1M' -c 'write -P 0x62 100M 64K' \
    /var/lib/libvirt/images/t-vol.qcow2 >/dev/null
cat >"$SCRATCH/t-vol.xml" <<XML
<domain type='$VIRT_TYPE'><name>t-vol</name><memory unit='MiB'>128</memory>
<os><type arch='x86_64'>hvm</type></os><devices>
<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>
<source pool='default' volume='t-vol.qcow2'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>
XML
virsh_a -q define "$SCRATCH/t-vol.xml" >/dev/null
cleanup_add virsh_a -q undefine t-vol
cleanup_add drop t-vol t-vol.qcow2

on_a $VG vmferry-export -c qemu:///system t-vol | ssh_b "$VG vmferry-import --define" ||
    fail "volume disk: export | ssh import --define failed"
xml=$(virsh_b dumpxml --inactive t-vol)
grep -q "<source pool='default' volume='t-vol.qcow2'" <<<"$xml" ||
    fail "the copy is not a volume disk: $xml"
grep -q 't-vol.qcow2' <<<"$(virsh_b vol-list default)" || fail "not a volume of B's pool"
check_disk on_b /var/lib/libvirt/images/t-vol.qcow2 qcow2 0x61@0+1M 0x62@100M+64K ||
    fail "the volume's data differs"
virsh_b -q start t-vol >/dev/null || fail "t-vol does not start on B"
wait_state b t-vol running 30 || fail "t-vol does not run on B"
echo "   a volume disk arrived as a volume and runs"

# 2. A file disk rewritten into a pool.
make_vm t-topool qcow2 256M 0x71@0+1M
cleanup_add drop t-topool t-topool.qcow2
on_a $VG vmferry-export -c qemu:///system t-topool |
    $VG vmferry-rewrite --pool /var/lib/libvirt/images=default |
    ssh_b "$VG vmferry-import --define" ||
    fail "rewrite --pool: export | rewrite | ssh import --define failed"
xml=$(virsh_b dumpxml --inactive t-topool)
grep -q "<source pool='default' volume='t-topool.qcow2'" <<<"$xml" ||
    fail "the rewritten copy is not a volume disk: $xml"
check_disk on_b /var/lib/libvirt/images/t-topool.qcow2 qcow2 0x71@0+1M ||
    fail "the rewritten copy's data differs"
virsh_b -q start t-topool >/dev/null || fail "t-topool does not start on B"
wait_state b t-topool running 30 || fail "t-topool does not run on B"
echo "   a file disk rewritten with --pool arrived as a volume and runs"

# A volume stream cannot be put elsewhere with --dir.
on_a vmferry-export -c qemu:///system t-vol |
    ssh_b "vmferry-import --dir /var/tmp" 2>"$SCRATCH/err" &&
    fail "--dir placed a volume"
grep -q 'volumes of pool default' "$SCRATCH/err" || fail "unclear: $(cat "$SCRATCH/err")"
echo "volumes OK"
