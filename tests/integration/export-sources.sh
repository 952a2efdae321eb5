#!/bin/bash
# vmferry-export of a domain whose XML names something that is not a
# disk image: a FIFO (open(2) waited for a writer, for ever), a
# character device, a directory, a qcow2 whose backing file is a FIFO,
# an NVRAM path that is a FIFO.  Each is refused at once, naming the
# disk and what the path is, and leaves nothing behind.  An export with
# -c naming another host says that it must run on the source host.
. "$(dirname "$0")/functions.sh"

requires qemu-img

# define_on_a NAME DISK-PATH FORMAT [FEATURE...]: a domain on host A
# (removed at exit with its files, as make_vm's are).
define_on_a() {
    local name=$1 disk=$2 fmt=$3
    shift 3
    cleanup_add purge_vm "$name"
    tb_domain_xml "$name" "$VIRT_TYPE" "$disk" "$fmt" 128 "$@" >"$SCRATCH/$name.xml"
    virsh_a -q define "$SCRATCH/$name.xml" >/dev/null || fail "cannot define $name"
}

# refused NAME WHAT...: the export of NAME (from $uri) fails at once
# (`timeout` only guards against a hang), its message has every WHAT,
# and no stream or temporary file is left.
uri=qemu:///system
refused() {
    local name=$1 rc=0 out w
    shift
    out=$(on_a timeout 60 $VG vmferry-export -c "$uri" "$name" \
        -o "$SCRATCH/$name.vmf" 2>&1) || rc=$?
    ((rc != 124)) || fail "$name: the export hung"
    ((rc == 1)) || fail "$name: status $rc, not 1: $out"
    for w in "$@"; do
        grep -qF -- "$w" <<<"$out" || fail "$name: the message does not say '$w': $out"
    done
    [[ -z $(find "$SCRATCH" -name "*$name.vmf*") ]] ||
        fail "$name: left $(find "$SCRATCH" -name "*$name.vmf*")"
    echo "$name: refused: $out"
}

# A FIFO where the disk should be.
on_a mkfifo "$IMAGES_DIR/t-src-fifo.img"
define_on_a t-src-fifo "$IMAGES_DIR/t-src-fifo.img" raw
refused t-src-fifo "disk vda" "$IMAGES_DIR/t-src-fifo.img is a FIFO (named pipe)" \
    "not a regular file or a block device"

# A character device (opening some acts: never opened).
define_on_a t-src-chr /dev/zero raw
refused t-src-chr "disk vda" "/dev/zero is a character device"

# A directory.
on_a mkdir "$IMAGES_DIR/t-src-dir.img"
define_on_a t-src-dir "$IMAGES_DIR/t-src-dir.img" raw
cleanup_add on_a rmdir "$IMAGES_DIR/t-src-dir.img"
refused t-src-dir "disk vda" "$IMAGES_DIR/t-src-dir.img is a directory"

# A qcow2 whose backing file is a FIFO (-u: qemu-img would open it).
on_a mkfifo "$IMAGES_DIR/t-src-base.img"
cleanup_add on_a rm -f "$IMAGES_DIR/t-src-base.img"
on_a qemu-img create -q -f qcow2 -u -b "$IMAGES_DIR/t-src-base.img" -F raw \
    "$IMAGES_DIR/t-src-ovl.qcow2" 16M
define_on_a t-src-ovl "$IMAGES_DIR/t-src-ovl.qcow2" qcow2
refused t-src-ovl "disk vda" "backing file" "$IMAGES_DIR/t-src-base.img is a FIFO"

# A UEFI domain never started has no NVRAM yet: a FIFO in its place.
on_a qemu-img create -q -f raw "$IMAGES_DIR/t-src-nv.img" 16M
define_on_a t-src-nv "$IMAGES_DIR/t-src-nv.img" raw uefi
on_a mkfifo "$NVRAM_DIR/t-src-nv_VARS.fd"
refused t-src-nv "NVRAM" "$NVRAM_DIR/t-src-nv_VARS.fd is a FIFO"

# A URI naming another host: refused before anything is opened, saying
# where to run it (the disks are read from this machine's files).
make_vm t-src-ok raw 16M 0x11@0+1M
uri=qemu+ssh://hostb/system
refused t-src-ok "qemu+ssh://hostb/system is another host (hostb)" \
    "must run on the host that has them" "ssh hostb vmferry-export t-src-ok"
rc=0
out=$(on_a $VG vmferry-export -c qemu+ssh://root@db7.example.com:2222/system t-src-ok \
    2>&1 >/dev/null) || rc=$?
((rc == 1)) && grep -qF "is another host (db7.example.com)" <<<"$out" ||
    fail "a URI with user and port: status $rc: $out"

uri=qemu:///system
# This host by its name is not another host (port 1: nothing listens, the
# connection is refused by libvirt, not by the check).
out=$(on_a $VG vmferry-export -c "qemu+tcp://$(hostname):1/system" t-src-ok \
    2>&1 >/dev/null) && fail "a connection to port 1 succeeded"
grep -q "is another host" <<<"$out" && fail "this host's name taken for another host: $out"

# The same domain, local, exports.
on_a $VG vmferry-export -c qemu:///system t-src-ok -o "$SCRATCH/ok.vmf" ||
    fail "a plain domain did not export"
echo "export of sources that are not disks: OK"
