#!/bin/bash
# vmferry-import --from-dir refuses hand-made directories that break the
# rules of lib/import-dir.h: a disk that is a symbolic link out of the
# directory, a symbolic link as a component of TPM state, a ".." in the
# XML's source, a qcow2 whose backing file is outside (an absolute name
# the directory lacks, "../", a protocol), a FIFO (without blocking), a
# socket, a device node, a hard link, a disk missing (the message names
# both paths), two *.xml, a file the XML calls qcow2 that is not, an
# --xml that is not a plain name.  Each is refused with exit status 1 and
# a message naming the problem; nothing is left in the target or written
# beside it, the directory is as it was and a canary outside it is
# unchanged.  The same directory unbroken imports (no --define: nothing
# of libvirt is needed) and the copies are the sources.  Hermetic.
set -euo pipefail

# shellcheck source=cases.sh
. "$(dirname "$0")/cases.sh"
hostile_reader_setup
IMPORT=${VMFERRY_TOOLS_DIR:?}/vmferry-import
command -v qemu-img >/dev/null || { echo "SKIP: no qemu-img"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }

dest=$tmp/top/dest
mkdir -p "$dest"
canary=$tmp/canary.img
head -c 65536 /dev/urandom >"$canary"
canary_sum=$(sha256sum <"$canary")

# The good directory: a raw disk, a qcow2 overlay whose header names its
# base by an absolute path elsewhere (as a copied overlay does), the
# base, NVRAM, TPM state.
good=$tmp/good
mkdir -p "$good/tpm2"
qemu-img create -q -f raw "$good/web.img" 8M
qemu-io -f raw -c "write -P 0x5a 1M 64k" "$good/web.img" >/dev/null
qemu-img create -q -f qcow2 "$good/base.qcow2" 8M
qemu-io -f qcow2 -c "write -P 0x11 0 64k" "$good/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b "$good/base.qcow2" -F qcow2 "$good/data.qcow2" 8M
qemu-io -f qcow2 -c "write -P 0x22 2M 64k" "$good/data.qcow2" >/dev/null
qemu-img rebase -u -b /var/lib/libvirt/images/base.qcow2 -F qcow2 -f qcow2 \
    "$good/data.qcow2"
head -c 131072 /dev/urandom >"$good/web_VARS.fd"
head -c 4096 /dev/urandom >"$good/tpm2/tpm2-00.permall"
cat >"$good/web.xml" <<'EOF'
<domain type='kvm'>
  <name>web</name>
  <uuid>0b8a1a53-8d3c-4a9e-9f3a-3f2f9a6f1c11</uuid>
  <memory unit='MiB'>128</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <nvram>/var/lib/libvirt/qemu/nvram/web_VARS.fd</nvram>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/web.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/elsewhere/data.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <tpm model='tpm-crb'>
      <backend type='emulator' version='2.0'/>
    </tpm>
  </devices>
</domain>
EOF

# The unbroken directory imports, so every refusal below is the
# breakage's doing.
out=$($VG "$IMPORT" --from-dir "$good" --dir "$dest" 2>&1) || bad "good: refused: $out"
grep -qF "no manifest: copied as found, not verified against a sender" <<<"$out" ||
    bad "good: the summary does not say there was no manifest: $out"
cmp "$good/web.img" "$dest/web.img" || bad "good: web.img differs"
cmp "$good/web_VARS.fd" "$dest/web_VARS.fd" || bad "good: NVRAM differs"
cmp "$good/base.qcow2" "$dest/base.qcow2" || bad "good: base.qcow2 differs"
# the source overlay's guest view, its base named here
view="json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$good/data.qcow2\"},\"backing\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$good/base.qcow2\"}}}"
qemu-img compare -q -F qcow2 "$view" "$dest/data.qcow2" ||
    bad "good: the overlay's guest view differs"
[[ $(qemu-img info -f qcow2 --output=json "$dest/data.qcow2") == *"\"full-backing-filename\": \"$dest/base.qcow2\""* ]] ||
    bad "good: the overlay does not name the copied base: $(qemu-img info -f qcow2 "$dest/data.qcow2")"
grep -q "<source file=\"$dest/data.qcow2\"/>" "$dest/web.xml" ||
    bad "good: the XML does not point at the copy: $(cat "$dest/web.xml")"
[[ -f $dest/web-tpm/tpm2/tpm2-00.permall ]] ||
    bad "good: TPM state not carried: $(find "$dest")"
rm -rf "$dest"
mkdir -p "$dest"

# dir_case NAME EXPECTED SETUP...: a copy of the good directory changed by
# SETUP (run in it) is refused for EXPECTED with nothing written.
dir_case() {
    local name=$1 expected=$2 h=$tmp/$1 rc=0 before=$failed listing
    shift 2
    count=$((count + 1))
    cp -a "$good" "$h"
    (cd "$h" && "$@") || { bad "$name: setup failed"; return 0; }
    # names, types, sizes, times ("total" follows delayed allocation)
    listing=$(ls -lAR "$h" | grep -v '^total')
    timeout 60 $VG "$IMPORT" --from-dir "$h" ${XML:+--xml="$XML"} --dir "$dest" \
        </dev/null >"$tmp/out" 2>"$tmp/err" || rc=$?
    [[ $rc == 1 ]] || bad "$name: exited $rc: $(cat -v "$tmp/err")"
    grep -qF -- "$expected" "$tmp/err" ||
        bad "$name: expected '$expected', got: $(cat -v "$tmp/err")"
    [[ -z $(ls -A "$dest") ]] || bad "$name: left $(ls -A "$dest")"
    [[ $(ls -A "$tmp/top") == dest ]] ||
        bad "$name: wrote beside the target: $(ls -A "$tmp/top")"
    [[ $(ls -lAR "$h" | grep -v '^total') == "$listing" ]] ||
        bad "$name: the directory changed: $(ls -lAR "$h")"
    [[ $(sha256sum <"$canary") == "$canary_sum" ]] || bad "$name: the canary changed"
    report_case "import-dir-$name" "$before"
    rm -rf "$h"
}

dir_case symlink-out "a symbolic link" sh -c "rm web.img && ln -s '$canary' web.img"
dir_case symlink-tpm "a symbolic link" ln -s "$tmp" tpm2/sub
dir_case symlink-tpm-dir "TPM state must be a directory" \
    sh -c "rm -rf tpm2 && ln -s '$tmp' tpm2"
dir_case dotdot 'a path with ".."' \
    sed -i "s|/var/lib/libvirt/images/web.img|/var/lib/libvirt/images/../../web.img|" web.xml
dir_case backing-out "is outside the directory" \
    qemu-img rebase -u -b "$canary" -F raw -f qcow2 data.qcow2
dir_case backing-dotdot "is outside the directory" \
    qemu-img rebase -u -b ../base.qcow2 -F qcow2 -f qcow2 data.qcow2
dir_case backing-protocol "uses the protocol" \
    qemu-img rebase -u -b nbd:127.0.0.1:1 -F raw -f qcow2 data.qcow2
dir_case fifo "not a regular file" sh -c "rm web.img && mkfifo web.img"
dir_case socket "not a regular file" \
    sh -c "rm web.img && python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"web.img\")'"
# a character device (like /dev/null's) in the scratch directory: root only
if [[ $(id -u) == 0 ]]; then
    dir_case device "not a regular file" sh -c "rm web.img && mknod web.img c 1 3"
fi
dir_case hardlink "has 2 links" sh -c "rm web.img && ln '$canary' web.img"
dir_case missing "names /var/lib/libvirt/images/web.img, and the directory has no" rm web.img
dir_case two-xml "more than one *.xml" cp web.xml other.xml
dir_case no-xml "no domain XML" rm web.xml
dir_case not-qcow2 "says qcow2, but it is not a qcow2 image" \
    sh -c "rm data.qcow2 && truncate -s 1M data.qcow2"
XML=../web.xml dir_case xml-name "not a file name" true
dir_case uuid "is not a UUID" sed -i "s|<uuid>.*</uuid>|<uuid>../../x</uuid>|" web.xml

# A file, not a directory: what to do with a tar made by hand.
count=$((count + 1))
rc=0
$VG "$IMPORT" --from-dir "$canary" --dir "$dest" </dev/null 2>"$tmp/err" || rc=$?
[[ $rc == 1 ]] && grep -q 'not a directory.*imports as FILE' "$tmp/err" ||
    bad "a file: exited $rc: $(cat -v "$tmp/err")"

[[ $failed == 0 ]] || exit 1
echo "vmferry-import --from-dir refused $count hostile directories, each naming its problem"
