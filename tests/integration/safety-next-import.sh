#!/bin/bash
# What an admin may do next, after an import was killed or while one runs,
# that the fault and race matrices do not: each must leave every file
# whole and the next import able to finish.
#   removed   killed (--force) after the first file was exchanged, the old
#             copy under its temporary name looks like a leftover and is
#             removed by hand: the next import still finishes (the undo
#             does not stop there for good)
#   other     killed likewise, then another stream of the domain without
#             --force: the old files are back, that import refuses
#   twice     a second import of the same domain into the same directory
#             while the first runs: refused once it has waited for the
#             lock, and the first one's state and temporary files are
#             untouched, so the first finishes
#   full      the disk fills up right before the placement (its journal
#             cannot be written), with --force over older files: refused,
#             the older files whole, and what the message says is kept is
#             what is there
. "$(dirname "$0")/functions.sh"

type report >/dev/null 2>&1 || report() { :; }
MKSTREAM=${VMFERRY_TEST_TOOLS_DIR:-$VMFERRY_BUILD_DIR/tests/tools}/mkstream
[[ -x $MKSTREAM ]] || fail "no mkstream at $MKSTREAM"
requires mkfifo

dest=/var/lib/libvirt/images/next
dir_on_b "$dest"
ident=(--set 'files.0.source_identity="ino:1 mtime:1.0 size:300000"'
       --set 'files.1.source_identity="ino:2 mtime:1.0 size:300000"')
"$MKSTREAM" --files 2 "$SCRATCH/a.vmf"
"$MKSTREAM" --files 2 --size 300000 "${ident[@]}" "$SCRATCH/b.vmf"
sum_b=$("$VMFERRY_TOOLS_DIR/vmferry-import" --dir "$SCRATCH" "$SCRATCH/b.vmf" >/dev/null &&
        cat "$SCRATCH/disk0.img" "$SCRATCH/disk1.img" | sha256sum)
rm -f "$SCRATCH/disk0.img" "$SCRATCH/disk1.img"

clean() { on_b sh -c "rm -rf $dest/* $dest/.[!.]*"; }
cleanup_add clean
files() { on_b sh -c "cd $dest && cat disk0.img disk1.img" | sha256sum; }

# killed: the older files (old0, old1) in place, an import --force of
# b.vmf killed right after it exchanged the first file.
killed() {
    clean
    on_b vmferry-import --dir "$dest" "$SCRATCH/a.vmf" >/dev/null
    on_b sh -c "echo old0 >$dest/disk0.img; echo old1 >$dest/disk1.img"
    on_b env VMFERRY_FAULT=place-renamed:kill vmferry-import --force --dir "$dest" \
        "$SCRATCH/b.vmf" >/dev/null 2>&1 && fail "$1: the import was not killed"
    echo old1 | on_b cmp -s - "$dest/disk1.img" && ! echo old0 | on_b cmp -s - "$dest/disk0.img" ||
        fail "$1: not killed between the two exchanges"
}

# removed
killed removed
tmp=$(on_b ls -A "$dest" | grep '^\.disk0\.img\.vmferry-')
[[ $(on_b cat "$dest/$tmp") == old0 ]] || fail "removed: the old copy is not at $tmp"
on_b rm "$dest/$tmp"
on_b vmferry-import --force --dir "$dest" "$SCRATCH/b.vmf" >"$SCRATCH/out" 2>&1 ||
    fail "removed: the next import did not finish: $(cat "$SCRATCH/out")"
grep -q 'old copy of disk0.img was removed' "$SCRATCH/out" || fail "removed: not said: $(cat "$SCRATCH/out")"
[[ $(files) == "$sum_b" ]] || fail "removed: the copy is not whole"
[[ -z $(on_b find "$dest" -name '.*vmferry*') ]] || fail "removed: left over: $(on_b ls -A "$dest")"
report fault import-next-old-copy-removed survived
echo "   killed, the old copy removed by hand: the next import finishes"

# other
killed other
on_b vmferry-import --dir "$dest" "$SCRATCH/a.vmf" >"$SCRATCH/out" 2>&1 &&
    fail "other: another stream replaced files without --force"
grep -q 'already exists' "$SCRATCH/out" || fail "other: unclear: $(cat "$SCRATCH/out")"
[[ $(on_b cat "$dest/disk0.img") == old0 && $(on_b cat "$dest/disk1.img") == old1 ]] ||
    fail "other: the old files are not back"
on_b vmferry-import --abort=mk --dir "$dest" >/dev/null 2>&1 || fail "other: --abort failed"
[[ -z $(on_b find "$dest" -name '.*vmferry*') ]] || fail "other: left over: $(on_b ls -A "$dest")"
report fault import-next-other-stream survived
echo "   killed, then another stream: the old files back, refused"

# twice
clean
rm -f "$SCRATCH/notify"
mkfifo "$SCRATCH/notify"
on_b env VMFERRY_FAULT=import-file-verified:stop VMFERRY_FAULT_NOTIFY="$SCRATCH/notify" \
    vmferry-import --resumable --dir "$dest" "$SCRATCH/b.vmf" >"$SCRATCH/first" 2>&1 &
job=$!
read -r at pid <"$SCRATCH/notify" || fail "twice: no word from the first import"
[[ $at == import-file-verified && $pid =~ ^[0-9]+$ ]] || fail "twice: stopped at '$at $pid'"
held=$(on_b ls -A "$dest")
on_b vmferry-import --dir "$dest" "$SCRATCH/b.vmf" >"$SCRATCH/out" 2>&1 &&
    fail "twice: a second import ran beside the first"
grep -q 'another import of domain mk' "$SCRATCH/out" || fail "twice: unclear: $(cat "$SCRATCH/out")"
[[ $(on_b ls -A "$dest") == "$held" ]] ||
    fail "twice: the second import changed the first one's files: $held / $(on_b ls -A "$dest")"
kill -CONT "$pid"
wait "$job" || fail "twice: the first import failed: $(cat "$SCRATCH/first")"
[[ $(files) == "$sum_b" ]] || fail "twice: the copy is not whole"
report race import-twice-at-once refused
echo "   a second import of the domain meanwhile: refused, the first finishes"

# full
full=/var/lib/libvirt/images/next-full
dir_on_b "$full"
on_b mount -t tmpfs -o size=2M tmpfs "$full"
cleanup_add on_b umount "$full"
for res in "" --resumable; do
    on_b sh -c "rm -rf $full/* $full/.[!.]*; echo old0 >$full/disk0.img; echo old1 >$full/disk1.img"
    rm -f "$SCRATCH/notify"
    mkfifo "$SCRATCH/notify"
    on_b env VMFERRY_FAULT=import-end:stop VMFERRY_FAULT_NOTIFY="$SCRATCH/notify" \
        vmferry-import $res --force --dir "$full" "$SCRATCH/b.vmf" >"$SCRATCH/out" 2>&1 &
    job=$!
    read -r at pid <"$SCRATCH/notify" || fail "full: no word from the import"
    free=$(on_b df -B1 --output=avail "$full" | tail -n 1)
    on_b fallocate -l "$free" "$full/filler"
    kill -CONT "$pid"
    wait "$job" && fail "full$res: placed on a full disk"
    grep -q 'No space left' "$SCRATCH/out" || fail "full$res: unclear: $(cat "$SCRATCH/out")"
    echo old0 | on_b cmp -s - "$full/disk0.img" && echo old1 | on_b cmp -s - "$full/disk1.img" ||
        fail "full$res: the older files changed"
    left=$(on_b ls -A "$full" | grep vmferry || true)
    if grep -q 'is kept\|was kept' "$SCRATCH/out"; then
        [[ -n $left ]] || fail "full$res: the message says kept, nothing is: $(cat "$SCRATCH/out")"
        on_b rm "$full/filler"
        on_b vmferry-import --force --dir "$full" "$SCRATCH/b.vmf" >"$SCRATCH/out" 2>&1 ||
            fail "full$res: the next import failed: $(cat "$SCRATCH/out")"
        [[ $(on_b sh -c "cd $full && cat disk0.img disk1.img" | sha256sum) == "$sum_b" ]] ||
            fail "full$res: the next import's copy is not whole"
    else
        grep -q 'no file was left' "$SCRATCH/out" || fail "full$res: unclear: $(cat "$SCRATCH/out")"
        [[ -z $left ]] || fail "full$res: left over: $left"
    fi
    report fault "import-next-disk-full$res" survived
done
echo "   the disk full before the placement: refused, the older files whole"
