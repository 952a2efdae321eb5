#!/bin/bash
# vmferry-import and vmferry-info --verify refuse hand-made archives
# (mktar.py: Python's tarfile, not libarchive) that break the rules of
# formats/tar.h: an entry named "../x" or by an absolute path, a symbolic
# or hard link, a device node, a FIFO, a directory, a name the manifest
# does not list, an entry after the last digest, no manifest first, a
# file shorter than its manifest says, a digest that does not match.
# Tars made by hand (mkplain.py; no manifest, read as --from-dir reads a
# directory): the XML naming a disk the tar has not, or through "..",
# two XMLs, a disk entry that is a link or a FIFO, "../" and absolute
# names, an entry twice, a vmferry manifest not first; and one from a
# pipe, which cannot be read twice.
# Each is refused with exit status 1 and a message naming the problem,
# and nothing is left in the target or written outside it (a canary
# directory, $tmp, holds no "escaped*" file).  The same archive
# unbroken, plain and zstd-compressed, imports, the zeros it stores
# arriving as holes.  Hermetic.
set -euo pipefail

# shellcheck source=cases.sh
. "$(dirname "$0")/cases.sh"
hostile_reader_setup
IMPORT=${VMFERRY_TOOLS_DIR:?}/vmferry-import
MKTAR=$(dirname "$0")/mktar.py
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
export ESCAPE=$tmp

dest=$tmp/top/dest
mkdir -p "$dest"
"$MKSTREAM" --files 2 "$tmp/good.vmf"

# tar_case NAME EXPECTED: build case NAME, feed it to info and import.
tar_case() {
    local name=$1
    python3 "$MKTAR" "$tmp/good.vmf" "$tmp/$name.tar" "$name" ||
        { bad "$name: mktar.py failed"; return 0; }
    tar_check "$@"
}

# tar_check NAME EXPECTED: feed $tmp/NAME.tar to info and import.
tar_check() {
    local name=$1 expected=$2 rc before=$failed
    count=$((count + 1))
    for tool in info import; do
        rc=0
        if [[ $tool == info ]]; then
            $VG "$INFO" --verify "$tmp/$name.tar" >"$tmp/out" 2>"$tmp/err" || rc=$?
        else
            $VG "$IMPORT" --dir "$dest" "$tmp/$name.tar" </dev/null \
                >"$tmp/out" 2>"$tmp/err" || rc=$?
        fi
        [[ $rc == 1 ]] || bad "$name: $tool exited $rc: $(cat -v "$tmp/err")"
        grep -qF -- "$expected" "$tmp/err" ||
            bad "$name: $tool: expected '$expected', got: $(cat -v "$tmp/err")"
    done
    [[ -z $(ls -A "$dest") ]] || bad "$name: left $(ls -A "$dest")"
    [[ $(ls -A "$tmp/top") == dest ]] ||
        bad "$name: wrote beside the target: $(ls -A "$tmp/top")"
    [[ -z $(find "$tmp" -name 'escaped*') ]] ||
        bad "$name: escaped: $(find "$tmp" -name 'escaped*')"
    report_case "import-tar-$name" "$before"
    rm -rf "${dest:?}"/* "${dest:?}"/.[!.]* "$tmp/$name.tar"
}

# The unbroken archive imports, plain and as zstd, so every refusal
# below is the breakage's doing.
python3 "$MKTAR" "$tmp/good.vmf" "$tmp/good.tar" good
zstd -q "$tmp/good.tar" -o "$tmp/good.tar.zst"
for f in good.tar good.tar.zst; do
    $VG "$INFO" --verify "$tmp/$f" >"$tmp/out" || bad "$f: info refused it"
    grep -q 'every checksum and digest verified' "$tmp/out" || bad "$f: not verified"
    $VG "$IMPORT" -q --dir "$dest" "$tmp/$f" </dev/null || bad "$f: import refused it"
    [[ $(ls "$dest") == $'disk0.img\ndisk1.img\nmk.xml' ]] ||
        bad "$f gave: $(ls -A "$dest")"
    cmp -s <(head -c 65536 "$dest/disk0.img") \
        <(python3 -c 'import sys; sys.stdout.buffer.write(bytes(65536))') &&
        bad "$f: disk0's data block came out as zeros"
    # tarfile stores the zeros around it: they arrive as holes.
    (($(du -k "$dest/disk0.img" | cut -f1) < 128)) ||
        bad "$f: stored zeros came back allocated: $(du -k "$dest/disk0.img")"
    rm -rf "${dest:?}"/*
done

unsafe='not a relative path within the archive'
notreg='not a regular file'
tar_case dotdot "$unsafe"
tar_case dotdot-inner "$unsafe"
tar_case absolute "$unsafe"
tar_case absolute-first "$unsafe"
tar_case symlink "$notreg"
tar_case symlink-abs "$notreg"
tar_case hardlink "$notreg"
tar_case chardev "$notreg"
tar_case blockdev "$notreg"
tar_case fifo "$notreg"
# (tarfile names a directory "mk/disk0.img/", refused as a name first)
tar_case directory 'entry "mk/disk0.img/"'
tar_case unlisted 'only what its manifest lists'
tar_case unlisted-extra 'only what its manifest lists'
tar_case other-top 'only what its manifest lists'
tar_case after-end 'after the last file'
tar_case no-manifest 'the first entry must be'
tar_case short 'the manifest says'
tar_case digest-flipped 'digest mismatch'
tar_case digest-data 'digest mismatch'
tar_case digest-name 'not "DIGEST  disk0.img"'

# Tars made by hand (no manifest): read as --from-dir reads a directory,
# every entry through the same checks.  The unbroken one imports, from
# GNU tar (its disk sparse, plain and zstd, with "./" names) and from
# mkplain.py (the disk before the XML), so each refusal is the case's.
mkdir "$tmp/hand"
cat >"$tmp/hand/vm.xml" <<'EOF'
<domain type='kvm'>
  <name>hand</name>
  <uuid>6d8c1d2e-1111-4a2b-9c3d-123456789abc</uuid>
  <memory unit='KiB'>65536</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/disk.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
EOF
truncate -s 8M "$tmp/hand/disk.img"
printf 'hand-made' | dd of="$tmp/hand/disk.img" bs=1 seek=1048576 \
    conv=notrunc status=none
tar -C "$tmp/hand" -cSf "$tmp/hand.tar" .
tar -C "$tmp/hand" -cSf - disk.img vm.xml | zstd -q >"$tmp/hand.tar.zst"
python3 "$(dirname "$0")/mkplain.py" "$tmp/hand" "$tmp/hand-py.tar" good
for f in hand.tar hand.tar.zst hand-py.tar; do
    $VG "$INFO" --verify "$tmp/$f" >"$tmp/out" || bad "$f: info refused it"
    grep -q 'made by hand: no manifest' "$tmp/out" ||
        bad "$f: info: $(cat "$tmp/out")"
    grep -q 'NOT verified' "$tmp/out" || bad "$f: info says verified"
    $VG "$IMPORT" --dir "$dest" "$tmp/$f" </dev/null 2>"$tmp/err" ||
        bad "$f: import refused it: $(cat "$tmp/err")"
    grep -q 'not verified against a sender' "$tmp/err" ||
        bad "$f: summary: $(cat "$tmp/err")"
    [[ $(ls "$dest") == $'disk.img\nhand.xml' ]] ||
        bad "$f gave: $(ls -A "$dest")"
    cmp "$tmp/hand/disk.img" "$dest/disk.img" || bad "$f: disk differs"
    rm -rf "${dest:?}"/*
done
# A pipe cannot be read twice: refused, saying what to do.
count=$((count + 1))
before=$failed rc=0
$VG "$IMPORT" --dir "$dest" - < <(cat "$tmp/hand.tar") 2>"$tmp/err" || rc=$?
[[ $rc == 1 ]] && grep -q 'cannot be read again: save it to a file' "$tmp/err" ||
    bad "pipe: exited $rc: $(cat -v "$tmp/err")"
[[ -z $(ls -A "$dest") ]] || bad "pipe: left $(ls -A "$dest")"
report_case import-tar-hand-pipe "$before"

# A qcow2 chain and a raw disk, in an order that makes the second pass
# start the archive again twice (the base is last, the manifest's
# first): it imports, the overlay's guest view identical; without its
# base the overlay is refused.
if command -v qemu-img >/dev/null; then
    mkdir "$tmp/chain"
    sed -e 's|images/disk.img|images/over.qcow2|' -e "s|type='raw'|type='qcow2'|" \
        -e 's|</devices>|<disk type="file" device="disk"><source file="/x/b.img"/><target dev="vdb" bus="virtio"/></disk></devices>|' \
        "$tmp/hand/vm.xml" >"$tmp/chain/vm.xml"
    qemu-img create -q -f qcow2 "$tmp/chain/base.qcow2" 16M
    qemu-io -c 'write -P 0x61 0 1M' "$tmp/chain/base.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -b /elsewhere/base.qcow2 -F qcow2 -u \
        "$tmp/chain/over.qcow2" 16M
    # The chain where it is, not where the overlay's header says.
    chain="json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$tmp/chain/over.qcow2\"},\"backing\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$tmp/chain/base.qcow2\"}}}"
    qemu-io -c 'write -P 0x62 4M 64k' "$chain" >/dev/null
    truncate -s 4M "$tmp/chain/b.img"
    printf 'b' | dd of="$tmp/chain/b.img" bs=1 seek=8192 conv=notrunc status=none
    tar -C "$tmp/chain" -cSf "$tmp/chain.tar" b.img over.qcow2 vm.xml base.qcow2
    $VG "$IMPORT" -q --dir "$dest" "$tmp/chain.tar" </dev/null 2>"$tmp/err" ||
        bad "chain.tar: import refused it: $(cat "$tmp/err")"
    qemu-img compare -q -f qcow2 "$chain" "$dest/over.qcow2" ||
        bad "chain.tar: the overlay's guest view differs"
    cmp "$tmp/chain/b.img" "$dest/b.img" || bad "chain.tar: b.img differs"
    rm -rf "${dest:?}"/*
    tar -C "$tmp/chain" -cSf "$tmp/hand-nobase.tar" over.qcow2 vm.xml b.img
    tar_check hand-nobase 'is outside the archive'
else
    echo "(no qemu-img: the chain case is left out)"
fi

# plain_case NAME EXPECTED: build hand-made case NAME, feed it.
plain_case() {
    python3 "$(dirname "$0")/mkplain.py" "$tmp/hand" "$tmp/hand-$1.tar" "$1" ||
        { bad "$1: mkplain.py failed"; return 0; }
    tar_check "hand-$1" "$2"
}
plain_case disk-outside 'and the archive has no'
plain_case disk-dotdot 'a path with ".." is refused'
plain_case two-xml 'holds more than one *.xml'
plain_case two-xml-dirs 'holds more than one *.xml'
plain_case disk-symlink "$notreg"
plain_case disk-symlink-rel "$notreg"
plain_case disk-hardlink "$notreg"
plain_case disk-fifo "$notreg"
plain_case dotdot "$unsafe"
plain_case dotdot-disk "$unsafe"
plain_case absolute "$unsafe"
plain_case twice 'is there twice'
plain_case vmferry-meta 'the first entry must be'

# Neither a stream nor an archive.
count=$((count + 1))
head -c 4096 /dev/urandom >"$tmp/noise"
rc=0
$VG "$IMPORT" --dir "$dest" "$tmp/noise" </dev/null 2>"$tmp/err" || rc=$?
[[ $rc == 1 ]] && grep -q 'neither a vmferry stream nor a tar archive' "$tmp/err" ||
    bad "noise: exited $rc: $(cat -v "$tmp/err")"

[[ $failed == 0 ]] || exit 1
echo "vmferry-import and vmferry-info refused $count hostile archives, each naming its problem"
