#!/bin/bash
# vmferry-export --flatten (issue 17): a disk on a qcow2 chain of three
# (base, middle, top; the middle overwrites what the base wrote) goes
# into the stream as one raw disk of its guest-visible content, read
# through a local read-only qemu-nbd over QEMU's JSON node description:
#  - the stream carries one file, and fewer bytes than the chain (the
#    overwritten base data is not sent);
#  - imported on host B it is one file that qemu-img compare finds
#    identical to the chain, with no backing file, its holes kept, and
#    the domain's disk says raw with no <backingStore>;
#  - the chain's files are unchanged (sha256) and no qemu-nbd is left.
. "$(dirname "$0")/functions.sh"
requires jq

vm=t-flat
base=$IMAGES_DIR/$vm-base.qcow2
mid=$IMAGES_DIR/$vm-mid.qcow2
cleanup_add on_a rm -f "$IMAGES_DIR/$vm-base.qcow2" "$IMAGES_DIR/$vm-mid.qcow2"
tb_make_disk on_a "$base" qcow2 256M "" 0x11@0+8M 0x12@200M+1M ||
    fail "cannot make the base"
tb_make_disk on_a "$mid" qcow2 256M "$base" 0x22@0+8M 0x23@64M+64K ||
    fail "cannot make the middle"
make_vm "$vm" qcow2 256M
on_a rm -f "$IMAGES_DIR/$vm.qcow2"
tb_make_disk on_a "$IMAGES_DIR/$vm.qcow2" qcow2 256M "$mid" 0x33@100M+1M ||
    fail "cannot make the top"
drop_b() {
    virsh_b -q undefine "$vm" >/dev/null 2>&1 || true
    on_b sh -c 'rm -f -- "$1/$2".* "$1/$2"-*' sh "$IMAGES_DIR" "$vm"
}
cleanup_add drop_b
sums() { sha256sum "$IMAGES_A/$vm".qcow2 "$IMAGES_A/$vm"-*.qcow2; }
before=$(sums)

on_a $VG vmferry-export -c qemu:///system --compress=none "$vm" \
    -o "$SCRATCH/chain.vmf" || fail "export of the chain failed"
on_a $VG vmferry-export -c qemu:///system --compress=none --flatten "$vm" \
    -o "$SCRATCH/flat.vmf" || fail "export --flatten failed"
[[ $(sums) == "$before" ]] || fail "the chain's files changed"
pgrep -x qemu-nbd -a | grep -q "$vm" && fail "a qemu-nbd was left running"

on_a vmferry-info --json "$SCRATCH/flat.vmf" >"$SCRATCH/flat.json" ||
    fail "vmferry-info on the flattened stream failed"
n=$(jq '.manifest.files | length' "$SCRATCH/flat.json")
((n == 1)) || fail "the flattened stream carries $n files: $(cat "$SCRATCH/flat.json")"
[[ $(jq -r '.manifest.files[0].format' "$SCRATCH/flat.json") == raw ]] ||
    fail "the flattened disk is not raw in the manifest"
chain=$(stat -c %s "$SCRATCH/chain.vmf")
flat=$(stat -c %s "$SCRATCH/flat.vmf")
echo "stream: chain $chain bytes, flattened $flat bytes"
((flat < chain - 4 * 1048576)) ||
    fail "the flattened stream is not smaller than the chain's"
((flat < 16 * 1048576)) || fail "the flattened stream sends holes ($flat bytes)"

on_b $VG vmferry-import --define --dir "$IMAGES_DIR" "$SCRATCH/flat.vmf" ||
    fail "import of the flattened stream failed"
copy=$IMAGES_DIR/$vm.qcow2
info=$(on_b qemu-img info --output=json -f raw "$copy")
grep -q '"format": "raw"' <<<"$info" || fail "$copy is not raw: $info"
grep -q backing <<<"$info" && fail "$copy has a backing file: $info"
on_a qemu-img compare -U -f qcow2 -F raw "$IMAGES_DIR/$vm.qcow2" "$IMAGES_B/$vm.qcow2" ||
    fail "the flattened copy differs from the chain's guest view"
for f in "$vm-base.qcow2" "$vm-mid.qcow2"; do
    [[ ! -e $IMAGES_B/$f ]] || fail "$f was carried and placed"
done
a=$(on_b du -k "$copy" | cut -f1)
echo "flattened copy: $a KiB allocated for 10 MiB of data in 256 MiB"
((a < 16384)) || fail "holes lost ($a KiB)"
xml=$(virsh_b dumpxml --inactive "$vm")
grep -q "<driver name='qemu' type='raw'/>" <<<"$xml" ||
    fail "the domain's driver does not say raw: $xml"
grep -q "<backingStore type=" <<<"$xml" &&
    fail "the flattened disk keeps a backing store: $xml"
echo "ok"
