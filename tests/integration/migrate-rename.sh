#!/bin/bash
# vmferry-migrate --rename: a new name never shares a file with another
# domain.  The original is moved to B first; then copies of it go to the
# same destination under new names: each copy's disk carries its new name
# (or the name a --map-path gives it), the original on B keeps its own
# file, untouched.  --rename with --map-path OLD=NEW (a file renamed by a
# rule) passes the pre-flight check, which judges the paths as the
# import will place them.  A rule that names a file itself is obeyed.
. "$(dirname "$0")/functions.sh"

requires qemu-img

vm=t-ren
make_vm "$vm" raw 64M 0xa1@0+1M 0xb2@32M+1M
src=$IMAGES_DIR/$vm.img
for copy in t-ren-copy t-ren-two t-ren-three t-ren-four; do
    cleanup_add purge_vm "$copy"
done
dest3=/var/lib/libvirt/ren3
dir_on_b "$dest3"
cleanup_add on_b rm -f "$IMAGES_DIR/t-ren-two-disk.img"

# disk_of URI DOMAIN: the one disk's path.
disk_of() {
    virsh -c "$(host_uri "$1")" domblklist "$2" | awk 'NR > 2 && $2 ~ /^\// {print $2}'
}

# The original on B, at the same path as on A.
on_a vmferry-migrate -q "$vm" hostb || fail "the first migration failed"
[[ $(disk_of b "$vm") == "$src" ]] || fail "$vm on B is on '$(disk_of b "$vm")'"
sum_orig=$(on_b sha256sum "$src")

# 1. A renamed copy to the same destination: its own file.
out=$(on_a vmferry-migrate "$vm" hostb --rename t-ren-copy --new-uuid --dry-run) ||
    fail "--dry-run of the renamed copy failed: $out"
grep -q "$IMAGES_DIR/t-ren-copy.img" <<<"$out" ||
    fail "--dry-run does not name the copy's own file: $out"
on_a vmferry-migrate -q "$vm" hostb --rename t-ren-copy --new-uuid 2>"$SCRATCH/err" ||
    fail "the renamed copy failed: $(cat "$SCRATCH/err")"
d=$(disk_of b t-ren-copy)
[[ $d == "$IMAGES_DIR/t-ren-copy.img" ]] || fail "t-ren-copy's disk is '$d'"
echo "   --rename: t-ren-copy on $d"

# 2. --map-path names the file: the check passes, the rule is obeyed.
on_a vmferry-migrate -q "$vm" hostb --rename t-ren-two --new-uuid \
    --map-path "$src=$IMAGES_DIR/t-ren-two-disk.img" 2>"$SCRATCH/err" ||
    fail "--rename with --map-path OLD=NEW failed: $(cat "$SCRATCH/err")"
d=$(disk_of b t-ren-two)
[[ $d == "$IMAGES_DIR/t-ren-two-disk.img" ]] || fail "t-ren-two's disk is '$d'"
echo "   --rename --map-path FILE=FILE: t-ren-two on $d"

# 3. --map-path moves the directory: the file follows the name there.
on_a vmferry-migrate -q "$vm" hostb --rename t-ren-three --new-uuid \
    --map-path "$IMAGES_DIR=$dest3" 2>"$SCRATCH/err" ||
    fail "--rename with a directory --map-path failed: $(cat "$SCRATCH/err")"
d=$(disk_of b t-ren-three)
[[ $d == "$dest3/t-ren-three.img" ]] || fail "t-ren-three's disk is '$d'"
echo "   --rename --map-path DIR=DIR: t-ren-three on $d"

# 4. --map-path names the file, in another directory, by its old name:
# the admin's path is obeyed.
on_a vmferry-migrate -q "$vm" hostb --rename t-ren-four --new-uuid \
    --map-path "$src=$dest3/$vm.img" 2>"$SCRATCH/err" ||
    fail "--rename with a file --map-path keeping its name failed: $(cat "$SCRATCH/err")"
d=$(disk_of b t-ren-four)
[[ $d == "$dest3/$vm.img" ]] || fail "t-ren-four's disk is '$d'"
echo "   --rename --map-path FILE=DIR/FILE: t-ren-four on $d"

# Five domains on B, five files, each the source's content; the original's
# file was not touched.
[[ $(disk_of b "$vm") == "$src" ]] || fail "$vm on B was moved to '$(disk_of b "$vm")'"
[[ $(on_b sha256sum "$src") == "$sum_orig" ]] || fail "$vm's file on B changed"
paths=$(for dom in "$vm" t-ren-copy t-ren-two t-ren-three t-ren-four; do
    disk_of b "$dom"
done)
[[ $(sort -u <<<"$paths" | wc -l) == 5 ]] || fail "domains share files: $paths"
while read -r p; do
    check_disk on_b "$p" raw 0xa1@0+1M 0xb2@32M+1M 0x00@1M+31M || fail "$p differs"
done <<<"$paths"
echo "migrate --rename OK"
