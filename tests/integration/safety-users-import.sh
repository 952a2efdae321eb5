#!/bin/bash
# --force never replaces a file another domain of the host depends on,
# however that domain names it (see vmferry-import(1), --force):
#   backing   an overlay of another domain has the file as its qcow2
#             backing file (named in the image's header, not in the
#             domain's definition: libvirt finds it at start)
#   volume    another domain has it as a volume of a storage pool
#             (<disk type='volume'>: no path in the definition)
# In each case the import refuses, names the domain, and the file (so the
# other domain's data) is unchanged.
. "$(dirname "$0")/functions.sh"

type report >/dev/null 2>&1 || report() { :; }
requires qemu-img

vm=t-users
dest=/var/lib/libvirt/images/users
other=/var/lib/libvirt/images/users-other
dir_on_b "$dest"
dir_on_b "$other"

make_vm "$vm" qcow2 32M 0x51@0+1M
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/old.vmf"
on_a qemu-io -f qcow2 -c 'write -P 0x52 4M 1M' "$IMAGES_DIR/$vm.qcow2" >/dev/null
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/new.vmf"

drop_b() {
    local d
    for d in "$vm" t-users-clone t-users-vol; do
        virsh_b -q undefine "$d" >/dev/null 2>&1 || true
    done
    virsh_b -q pool-destroy t-users-pool >/dev/null 2>&1 || true
    virsh_b -q pool-undefine t-users-pool >/dev/null 2>&1 || true
    on_b sh -c "rm -rf $dest/* $dest/.[!.]* $other/*"
}
cleanup_add drop_b

# A domain of B named NAME with disk XML DISK (another VM of the host).
define_other() {   # define_other NAME DISK-XML
    printf "<domain type='%s'><name>%s</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64'>hvm</type></os><devices>%s</devices></domain>\n" \
        "$VIRT_TYPE" "$1" "$2" >"$SCRATCH/other.xml"
    virsh_b -q define "$SCRATCH/other.xml" >/dev/null
}
qcow2_disk() {   # qcow2_disk PATH: the XML of a qcow2 disk on PATH
    echo "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$1'/><target dev='vda' bus='virtio'/></disk>"
}

# refused CASE: the --force import of the newer copy is refused naming
# domain USER, and the older copy's disk is what it was.
refused() {   # refused CASE USER
    local rc=0 before
    before=$(on_b sha256sum "$dest/$vm.qcow2")
    on_b vmferry-import --dir "$dest" --define --force "$SCRATCH/new.vmf" >"$SCRATCH/out" 2>&1 ||
        rc=$?
    ((rc == 1)) || fail "$1: replaced a file domain $2 depends on (rc $rc): $(cat "$SCRATCH/out")"
    grep -q "used by domain $2" "$SCRATCH/out" || fail "$1: unclear: $(cat "$SCRATCH/out")"
    [[ $(on_b sha256sum "$dest/$vm.qcow2") == "$before" ]] || fail "$1: the file changed"
    [[ -z $(on_b find "$dest" -name '.*vmferry*') ]] ||
        fail "$1: left over: $(on_b find "$dest" -name '.*vmferry*')"
    report race "import-force-user-$1" refused
}

# 1. An overlay of another domain on the older copy's disk; and one two
# images further down a chain, named relative to the overlay's directory.
drop_b
on_b vmferry-import --dir "$dest" --define "$SCRATCH/old.vmf" >/dev/null
on_b qemu-img create -q -f qcow2 -b "$dest/$vm.qcow2" -F qcow2 "$other/clone.qcow2"
define_other t-users-clone "$(qcow2_disk "$other/clone.qcow2")"
refused backing t-users-clone
echo "   an overlay's backing file: refused"
virsh_b -q undefine t-users-clone >/dev/null
on_b qemu-img create -q -f qcow2 -b "../users/$vm.qcow2" -F qcow2 "$other/mid.qcow2"
on_b qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 "$other/top.qcow2"
define_other t-users-clone "$(qcow2_disk "$other/top.qcow2")"
refused backing-relative-chain t-users-clone
echo "   the base of a chain, by a relative name: refused"

# 2. A volume of a pool over the target directory.
drop_b
on_b vmferry-import --dir "$dest" --define "$SCRATCH/old.vmf" >/dev/null
virsh_b -q pool-define-as t-users-pool dir --target "$dest" >/dev/null
virsh_b -q pool-start t-users-pool >/dev/null
define_other t-users-vol "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/><source pool='t-users-pool' volume='$vm.qcow2'/><target dev='vda' bus='virtio'/></disk>"
refused volume t-users-vol
echo "   a pool volume: refused"
