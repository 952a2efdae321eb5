#!/bin/bash
# vmferry-export and vmferry-import --define without a daemon: libvirt's
# embedded QEMU driver (qemu:///embed?root=DIR, the real driver running
# inside each tool, its configuration under DIR) holds a domain with a
# qcow2 disk on a backing file, a raw disk with holes and NVRAM, all in
# a temporary directory.  The export carries every file (the backing
# file too, found in the qcow2 header), reads the source without
# changing it, with any compression and thread count; the import into a
# second root writes them byte for byte, points the overlay at its copied
# backing file, and defines the domain on them; the same stream again is
# "already there"; --name defines a second copy; a newer copy replaces
# it only with --force, and only whole.  Hermetic
# (tests/engine/engine.sh); needs virsh, qemu-img and the QEMU binary
# (libvirt reads its capabilities), else skipped.
# shellcheck source=engine.sh
. "$(dirname "$0")/engine.sh"

qemu=qemu-system-$(uname -m)
for p in virsh qemu-img qemu-io "$qemu"; do
    command -v "$p" >/dev/null || { echo "SKIP: no $p"; exit 77; }
done
A="qemu:///embed?root=$tmp/rootA"
B="qemu:///embed?root=$tmp/rootB"

mkdir "$tmp/src" "$tmp/dst" "$tmp/copy"
s=$tmp/src
qemu-img create -q -f qcow2 "$s/base.qcow2" 8M
qemu-io -f qcow2 -c 'write -P 0x11 0 192k' -c 'write -P 0x12 4M 64k' \
    "$s/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b "$s/base.qcow2" -F qcow2 "$s/top.qcow2"
qemu-io -f qcow2 -c 'write -P 0x22 64k 64k' -c 'write -z 4M 64k' \
    "$s/top.qcow2" >/dev/null
mkimage "$s/data.raw" 32 0=random 3=zero 4=byte 30=random tail=1000
mkimage "$s/VARS.fd" 2 0=random 1=random
head -c 65536 /dev/zero >"$tmp/loader.fd"     # host firmware: not carried
cat >"$tmp/dom.xml" <<EOF
<domain type='qemu'>
  <name>emb</name>
  <memory unit='KiB'>65536</memory>
  <os>
    <type arch='$(uname -m)'>hvm</type>
    <loader readonly='yes' type='pflash'>$tmp/loader.fd</loader>
    <nvram>$s/VARS.fd</nvram>
  </os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$s/top.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$s/data.raw'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
  </devices>
</domain>
EOF
if ! timeout 120 virsh -q -c "$A" define "$tmp/dom.xml" >"$tmp/err" 2>&1; then
    echo "SKIP: the embedded QEMU driver cannot define a domain here:" \
        "$(cat "$tmp/err")"
    exit 77
fi
uuid=$(virsh -q -c "$A" domuuid emb)
sums() { (cd "$s" && sha256sum base.qcow2 top.qcow2 data.raw VARS.fd); }
before=$(sums)

# 1. Export: the overlay's backing file first, every file verified.
run 0 vmferry-export -c "$A" -o "$tmp/e.vmf" emb &&
    errs "domain emb exported to $tmp/e.vmf (4 files,"
if run 0 vmferry-info --json --verify "$tmp/e.vmf"; then
    jq -e --arg u "$uuid" '.manifest.domain.uuid == $u and
        [.manifest.files[] | [.role, .name, .target]] ==
        [["backing", "base.qcow2", null], ["disk", "top.qcow2", "vda"],
         ["disk", "data.raw", "vdb"], ["nvram", "VARS.fd", null]] and
        .manifest.files[1].backing == 0' "$tmp/out" >/dev/null ||
        bad "export: the manifest: $(jq .manifest "$tmp/out")"
fi
[[ $(sums) == "$before" ]] || bad "the export changed its source"

# same NAME DIR [PREFIX]: DIR holds the source files (named PREFIX-...),
# the overlay reading the same through its own copy of the backing file.
same() {
    local d=$2 p=${3:+$3-}
    qemu-img compare -q -f qcow2 -F qcow2 "$s/top.qcow2" "$d/${p}top.qcow2" ||
        bad "$1: ${p}top.qcow2 differs"
    cmp -s "$s/base.qcow2" "$d/${p}base.qcow2" ||
        bad "$1: ${p}base.qcow2 differs"
    cmp -s "$s/data.raw" "$d/${p}data.raw" || bad "$1: ${p}data.raw differs"
    cmp -s "$s/VARS.fd" "$d/${p}VARS.fd" || bad "$1: ${p}VARS.fd differs"
    local want="backing file: ${p}base.qcow2 (actual path: $d/${p}base.qcow2)"
    qemu-img info "$d/${p}top.qcow2" >"$tmp/info"
    grep -qxF "$want" "$tmp/info" ||
        bad "$1: the overlay's backing file: $(cat "$tmp/info")"
}

# 2. Other compressions and thread counts, through a pipe: the same files.
for how in "--compress none --threads 1" "--compress zstd:5 --threads 3"; do
    rm -rf "$tmp/plain"
    mkdir "$tmp/plain"
    # shellcheck disable=SC2086 # how holds separate words
    if ! timeout 120 "$T/vmferry-export" -q -c "$A" $how emb |
        timeout 120 "$T/vmferry-import" -q --dir "$tmp/plain" -; then
        bad "export $how | import: failed"
        continue
    fi
    same "export $how" "$tmp/plain"
done

# 3. Import, defined in the second root on the copies; the loader is the
# host's own firmware, named with --allow-path.
run 0 vmferry-import -c "$B" --define --allow-path "$tmp/loader.fd" \
    --dir "$tmp/dst" "$tmp/e.vmf" &&
    errs "domain emb imported into $tmp/dst and defined (4 files,"
same import "$tmp/dst"
virsh -q -c "$B" dumpxml --inactive emb >"$tmp/b.xml" 2>&1 || bad "not defined"
for f in top.qcow2 data.raw; do
    grep -qF "<source file='$tmp/dst/$f'/>" "$tmp/b.xml" ||
        bad "import: the domain is not on $tmp/dst/$f: $(cat "$tmp/b.xml")"
done
grep -qF "<nvram>$tmp/dst/VARS.fd</nvram>" "$tmp/b.xml" ||
    bad "import: the NVRAM: $(grep nvram "$tmp/b.xml")"
grep -qF "<uuid>$uuid</uuid>" "$tmp/b.xml" || bad "import: not the UUID $uuid"
grep -qF "$s/" "$tmp/b.xml" && bad "import: a source path is left"
[[ -z $(leftovers "$tmp/dst") ]] || bad "import: left $(leftovers "$tmp/dst")"

# 4. The same stream again: already there, nothing touched.
after=$(cd "$tmp/dst" && sha256sum ./*)
run 0 vmferry-import -c "$B" --define --allow-path "$tmp/loader.fd" \
    --dir "$tmp/dst" "$tmp/e.vmf" && errs 'already on this host'
[[ $(cd "$tmp/dst" && sha256sum ./*) == "$after" ]] ||
    bad "again: files changed"

# 5. --name: a second domain beside it, its own UUID and files.
run 0 vmferry-import -c "$B" --define --name copy \
    --allow-path "$tmp/loader.fd" --dir "$tmp/copy" "$tmp/e.vmf"
same --name "$tmp/copy" copy
u2=$(virsh -q -c "$B" domuuid copy) || bad "--name: not defined"
[[ -n $u2 && $u2 != "$uuid" ]] || bad "--name: the UUID is $u2"
virsh -q -c "$B" dumpxml --inactive copy |
    grep -qF "$tmp/copy/copy-top.qcow2" ||
    bad "--name: the domain is not on its copy"

# 6. A newer state of the source: refused over the domain and files
# there without --force, and a cut stream with --force changes nothing;
# with --force and the whole stream, replaced once verified.
mkimage "$tmp/block" 1 0=random
dd if="$tmp/block" of="$s/data.raw" bs=64K seek=9 conv=notrunc status=none
run 0 vmferry-export -q -c "$A" -o "$tmp/e2.vmf" emb
had=$(cd "$tmp/dst" && sha256sum ./*)
run 1 vmferry-import -c "$B" --define --allow-path "$tmp/loader.fd" \
    --dir "$tmp/dst" "$tmp/e2.vmf" && errs 'already exists'
head -c $(($(stat -c %s "$tmp/e2.vmf") - 100)) "$tmp/e2.vmf" >"$tmp/cut.vmf"
run 1 vmferry-import -c "$B" --define --force --allow-path "$tmp/loader.fd" \
    --dir "$tmp/dst" "$tmp/cut.vmf" && errs truncated
[[ $(cd "$tmp/dst" && sha256sum ./*) == "$had" ]] ||
    bad "a refused import changed the files there"
run 0 vmferry-import -c "$B" --define --force --allow-path "$tmp/loader.fd" \
    --dir "$tmp/dst" "$tmp/e2.vmf"
same --force "$tmp/dst"
[[ $(virsh -q -c "$B" domuuid emb) == "$uuid" ]] || bad "--force: not $uuid"
[[ -z $(leftovers "$tmp/dst") ]] || bad "--force: left $(leftovers "$tmp/dst")"

# 7. A domain the driver does not have: refused, nothing written.
run 1 vmferry-export -c "$A" -o "$tmp/none.vmf" nosuch && errs 'no such domain'
[[ ! -e $tmp/none.vmf ]] || bad "a stream was left for no domain"

finish
