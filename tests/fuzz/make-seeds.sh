#!/bin/bash
# Regenerate the committed seed corpora in tests/fuzz/seeds/ (see its
# README):   tests/fuzz/make-seeds.sh BUILD_DIR
# BUILD_DIR is a build tree configured with -DVMFERRY_FUZZ=ON (it has
# tests/make_seeds).  Needs qemu-img.  Review `git diff --stat` after:
# a seed changes only when the format it holds changes.
set -euo pipefail

if (($# != 1)); then
    echo "usage: make-seeds.sh BUILD_DIR" >&2
    exit 2
fi
build=$1
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/seeds
die() {
    echo "make-seeds.sh: $*" >&2
    exit 1
}
[[ -x $build/tests/make_seeds ]] ||
    die "no $build/tests/make_seeds (configure with -DVMFERRY_FUZZ=ON)"
command -v qemu-img >/dev/null || die "needs qemu-img"

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# Streams, resume state and answers, domain XML: vmferry's own writers.
"$build/tests/make_seeds" "$work/out"

# qcow2 headers as QEMU writes them.  512-byte clusters keep each image
# under 2 KiB (the probe reads the first cluster only); -u writes a
# backing name without opening it.
q=$work/out/fuzz_qcow2
mkdir -p "$q"
(
    cd "$q"
    mk() { qemu-img create -q -f qcow2 "$@"; }
    mk -o cluster_size=512 plain.qcow2 1M
    mk -o cluster_size=512,compat=0.10 v2.qcow2 1M
    mk -o cluster_size=512 -u -b base.raw -F raw backing-raw.qcow2 1M
    mk -o cluster_size=512 -u -b /etc/shadow -F qcow2 backing-host-file.qcow2 1M
    mk -o cluster_size=512 -u -b nbd://127.0.0.1:10809/x -F raw \
        backing-nbd.qcow2 1M
    mk -o cluster_size=512,data_file=data.raw,data_file_raw=on \
        data-file.qcow2 64K
    mk -o cluster_size=512,compression_type=zstd zstd.qcow2 1M
    rm -f data.raw
)

for d in "$work"/out/*/; do
    name=$(basename "$d")
    rm -rf -- "${seeds:?}/$name"
    mkdir -p "$seeds/$name"
    cp -- "$d"* "$seeds/$name/"
done
du -ab "$seeds" | sort -k2
