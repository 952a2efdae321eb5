#!/bin/bash
# What must be refused, losing nothing: exporting a running domain
# offline;
# importing over an existing domain or file without --force; a target that
# is full or read-only.  Pre-existing files stay unchanged throughout.
. "$(dirname "$0")/functions.sh"

# A running domain is refused by an offline export, and nothing is
# written to -o (without --offline it is exported: export-running).
on_a vmferry-export -c qemu:///system --offline vmf-running \
    -o "$SCRATCH/running.vmf" 2>"$SCRATCH/err" &&
    fail "a running domain was exported"
grep -q 'vmf-running is running' "$SCRATCH/err" || fail "unclear: $(cat "$SCRATCH/err")"
[[ ! -e $SCRATCH/running.vmf ]] || fail "a stream was left for the running domain"
[[ -z $(find "$SCRATCH" -name '.*vmferry*') ]] || fail "a temporary stream was left"

make_vm t-refuse qcow2 256M 0x77@0+1M
on_a vmferry-export -c qemu:///system t-refuse -o "$SCRATCH/t.vmf"

dest=/var/lib/libvirt/images/refuse
dir_on_b "$dest"
on_b vmferry-import --dir "$dest" --define "$SCRATCH/t.vmf"
uuid=$(virsh_b domuuid t-refuse)
sum=$(on_b sha256sum "$dest/t-refuse.qcow2")

# The same stream again: that move is already done.  Said, exit 0, and
# nothing is touched (issue: a re-run of a completed move looked failed).
on_b vmferry-import --dir "$dest" --define "$SCRATCH/t.vmf" 2>"$SCRATCH/err" ||
    fail "a re-run of a completed import failed: $(cat "$SCRATCH/err")"
grep -q 'already on this host' "$SCRATCH/err" || fail "unclear: $(cat "$SCRATCH/err")"
[[ $(on_b sha256sum "$dest/t-refuse.qcow2") == "$sum" ]] || fail "existing file changed"
[[ $(virsh_b domuuid t-refuse) == "$uuid" ]] || fail "existing domain changed"

# A newer state of the source: the existing domain and file are refused
# before anything is written.
on_a qemu-io -f qcow2 -c 'write -P 0x78 0 64k' "$IMAGES_DIR/t-refuse.qcow2" >/dev/null
on_a vmferry-export -c qemu:///system t-refuse -o "$SCRATCH/t2.vmf"
on_b vmferry-import --dir "$dest" --define "$SCRATCH/t2.vmf" 2>"$SCRATCH/err" &&
    fail "an existing domain was replaced without --force"
grep -q 'already exists' "$SCRATCH/err" || fail "unclear: $(cat "$SCRATCH/err")"
[[ $(on_b sha256sum "$dest/t-refuse.qcow2") == "$sum" ]] || fail "existing file changed"
[[ $(virsh_b domuuid t-refuse) == "$uuid" ]] || fail "existing domain changed"
[[ -z $(on_b find "$dest" -name '.*') ]] || fail "left behind: $(on_b find "$dest" -name '.*')"

# Only the file: also refused.
virsh_b -q undefine t-refuse
on_b vmferry-import --dir "$dest" "$SCRATCH/t.vmf" 2>"$SCRATCH/err" &&
    fail "an existing file was replaced without --force"
grep -q "$dest/t-refuse.qcow2: already exists" "$SCRATCH/err" || fail "unclear: $(cat "$SCRATCH/err")"

# --force replaces them once the new copy is verified; a corrupt stream
# with --force leaves the old file as it was.
head -c $(($(stat -c %s "$SCRATCH/t.vmf") - 100)) "$SCRATCH/t.vmf" >"$SCRATCH/cut.vmf"
on_b vmferry-import --dir "$dest" --force "$SCRATCH/cut.vmf" 2>/dev/null &&
    fail "a truncated stream was accepted with --force"
[[ $(on_b sha256sum "$dest/t-refuse.qcow2") == "$sum" ]] || fail "--force damaged the old file"
on_b vmferry-import --dir "$dest" --define --force "$SCRATCH/t.vmf" || fail "--force failed"
virsh_b domuuid t-refuse >/dev/null || fail "--force did not define"

# A full target: a small tmpfs holding a file that must survive.
small=/var/lib/libvirt/images/small
on_b mkdir -p "$small"
cleanup_add on_b rmdir "$small"
on_b mount -t tmpfs -o size=512k tmpfs "$small"
cleanup_add on_b umount "$small"
on_b sh -c "echo precious >$small/keep.txt"
on_b vmferry-import --dir "$small" "$SCRATCH/t.vmf" 2>"$SCRATCH/err" &&
    fail "import into a full tmpfs succeeded"
grep -qE 'not enough free space|No space left' "$SCRATCH/err" || fail "unclear: $(cat "$SCRATCH/err")"
[[ $(on_b ls -A "$small") == keep.txt ]] || fail "left behind in $small: $(on_b ls -A "$small")"
[[ $(on_b cat "$small/keep.txt") == precious ]] || fail "pre-existing file damaged"
echo "   full: $(cat "$SCRATCH/err")"

# A read-only target with room enough.
ro=/var/lib/libvirt/images/ro
on_b mkdir -p "$ro"
cleanup_add on_b rmdir "$ro"
on_b mount -t tmpfs -o size=64m,ro tmpfs "$ro"
cleanup_add on_b umount "$ro"
on_b vmferry-import --dir "$ro" "$SCRATCH/t.vmf" 2>"$SCRATCH/err" &&
    fail "import into a read-only directory succeeded"
grep -q 'Read-only file system' "$SCRATCH/err" || fail "unclear: $(cat "$SCRATCH/err")"
echo "   read-only: $(cat "$SCRATCH/err")"
echo "refusals OK"
