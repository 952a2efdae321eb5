#!/bin/bash
# vmferry-info --domain looks inside a shut-off domain through the real
# libguestfs appliance (one launch per run): --inspect finds the Debian 12
# guest, its hostname and its two filesystems with their mount points;
# --verify-guest passes a clean guest and fails (status 1, the damaged
# filesystem named) a guest whose ext4 lost an inode; the images are
# bit for bit unchanged by both; a running domain is refused before any
# launch.  vmferry-export --inspect records the guest in the stream and
# vmferry-info shows it.  vmferry-import --verify-guest on host B checks the verified
# copy before placing it: the clean guest (a qcow2 overlay over a raw
# base: the chain is followed under the temporary names) is defined, the
# damaged one fails with nothing defined and no file left.
# The appliance runs one vCPU (under TCG, one core's work), so launches
# on disjoint files run two at once, each asserting as alone: the two
# guests' checks by info, then the damaged copy's import on B beside
# export --inspect on A.
. "$(dirname "$0")/functions.sh"
requires mkfs.xfs
requires sfdisk
requires debugfs
guestfs_env

mac=52:54:00:12:34:56
for name in t-guest t-guestbad; do
    if [[ $name == t-guest ]]; then
        # vda: a qcow2 overlay over the raw guest disk.
        make_vm "$name" qcow2 1M
        cleanup_add rm -f "$IMAGES_A/$name-base.img"
        make_guest_disk "$IMAGES_A/$name-base.img" web01 "$mac"
        on_a qemu-img create -q -f qcow2 -F raw -b "$IMAGES_DIR/$name-base.img" \
            "$IMAGES_DIR/$name.qcow2" 256M
    else
        make_vm "$name" raw 1M
        make_guest_disk "$IMAGES_A/$name.img" web01 "$mac"
    fi
    make_guest_data "$IMAGES_A/$name-data.img"
    cleanup_add rm -f "$IMAGES_A/$name-data.img"
    # A second disk, vdb, for the xfs filesystem (same UUID: redefined).
    uuid=$(virsh_a domuuid "$name")
    sed -e "s|</name>|</name><uuid>$uuid</uuid>|" -e "s|</disk>|</disk><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$IMAGES_DIR/$name-data.img'/><target dev='vdb' bus='virtio'/></disk>|" \
        "$SCRATCH/$name.xml" >"$SCRATCH/$name-2.xml"
    virsh_a -q define "$SCRATCH/$name-2.xml" >/dev/null
done

# Damage t-guestbad's root filesystem: clear inode 12 (a file of the
# tree) in a copy of the filesystem, and put it back at the partition.
dd if="$IMAGES_A/t-guestbad.img" of="$SCRATCH/fs.img" bs=1M skip=1 status=none
debugfs -w -R 'clri <12>' "$SCRATCH/fs.img" 2>/dev/null
e2fsck -fn "$SCRATCH/fs.img" >/dev/null 2>&1 &&
    fail "the damage did not make e2fsck fail: test is void"
dd if="$SCRATCH/fs.img" of="$IMAGES_A/t-guestbad.img" bs=1M seek=1 \
    conv=notrunc,sparse status=none

sums() { sha256sum "$IMAGES_A/$1".* "$IMAGES_A/$1"-*.img; }
before=$(sums t-guest)
before_bad=$(sums t-guestbad)
# Where the imports (below) put their copies on B.
dest=/var/lib/libvirt/images/guest
dir_on_b "$dest"
# A job still running when the test fails is ended before the cleanup
# removes its domain (functions.sh: end_jobs).
cleanup_add end_jobs

# The damaged guest's check (below) runs beside the clean guest's.
on_a $VG vmferry-info -c "$URI_A" --domain t-guestbad --verify-guest \
    >"$SCRATCH/bad.txt" 2>"$SCRATCH/bad.err" &
bad_job=$!

# A clean guest: inspected and checked in one launch.
t0=$SECONDS
on_a $VG vmferry-info -c "$URI_A" --domain t-guest --inspect --verify-guest \
    --json >"$SCRATCH/good.json" || fail "clean guest: status $?"
echo "appliance run: $((SECONDS - t0)) s"
jq . "$SCRATCH/good.json"
q() { jq -r "$1" "$SCRATCH/good.json"; }
[[ $(q '.format') == vmferry-info/1 ]] || fail "format"
[[ $(q '.guest.os | length') == 1 ]] || fail "not one operating system"
[[ $(q '.guest.os[0].type') == linux ]] || fail "type: $(q '.guest.os[0].type')"
[[ $(q '.guest.os[0].distro') == debian ]] || fail "distro: $(q '.guest.os[0].distro')"
[[ $(q '.guest.os[0].major') == 12 ]] || fail "major: $(q '.guest.os[0].major')"
[[ $(q '.guest.os[0].hostname') == web01 ]] || fail "hostname: $(q '.guest.os[0].hostname')"
[[ $(q '.guest.os[0].root') == vda1 ]] || fail "root: $(q '.guest.os[0].root')"
[[ $(q '.guest.os[0].product') == 'Debian GNU/Linux 12 (bookworm)' ]] ||
    fail "product: $(q '.guest.os[0].product')"
[[ $(q '.guest.filesystems[] | select(.device == "vda1") | .mountpoint') == / ]] ||
    fail "vda1 is not mounted at /"
[[ $(q '.guest.filesystems[] | select(.device == "vda1") | .label') == root ]] ||
    fail "vda1's label"
[[ $(q '.guest.filesystems[] | select(.device == "vdb") | .type') == xfs ]] ||
    fail "vdb is not xfs"
[[ $(q '.guest.filesystems[] | select(.device == "vdb") | .uuid') == "$GUEST_DATA_UUID" ]] ||
    fail "vdb's UUID"
[[ $(q '.guest.filesystems[] | select(.device == "vdb") | .mountpoint') == /data ]] ||
    fail "vdb is not mounted at /data (fstab by UUID)"
[[ $(q '.damaged') == 0 ]] || fail "clean guest: damaged $(q '.damaged')"
[[ $(q '[.checks[] | select(.state == "clean")] | length') == 2 ]] ||
    fail "not both filesystems checked clean"
[[ $(sums t-guest) == "$before" ]] || fail "the check changed the images"

# A damaged guest: status 1, the line names vda1; its images unchanged.
rc=0
wait "$bad_job" || rc=$?
((rc != 0)) || fail "a damaged filesystem passed"
cat "$SCRATCH/bad.txt" "$SCRATCH/bad.err"
grep -q '^vda1 (ext4): damaged: ' "$SCRATCH/bad.txt" || fail "vda1 not named damaged"
grep -q '^vdb (xfs): clean: ' "$SCRATCH/bad.txt" || fail "vdb not checked clean"
grep -q 'domain t-guestbad: 1 filesystem is damaged' "$SCRATCH/bad.err" ||
    fail "unclear error"
[[ $(sums t-guestbad) == "$before_bad" ]] || fail "the check changed the images"

# A running domain is refused before the appliance starts.
make_vm --start t-guestrun raw 16M
on_a vmferry-info -c "$URI_A" --domain t-guestrun --verify-guest \
    2>"$SCRATCH/run.err" && fail "a running domain was checked"
grep -q 'domain t-guestrun is running: its filesystems would change' \
    "$SCRATCH/run.err" || fail "unclear error: $(cat "$SCRATCH/run.err")"
# import --verify-guest: the clean copy is checked, then defined.
# export --inspect records the guest in the stream; info shows it.  The
# damaged copy's import (checked below) runs beside it.
on_a vmferry-export -c "$URI_A" t-guestbad -o "$SCRATCH/t-guestbad.vmf"
on_b $VG vmferry-import -c "$URI_B" --dir "$dest" --define --verify-guest \
    "$SCRATCH/t-guestbad.vmf" 2>"$SCRATCH/impbad.err" &
impbad_job=$!
on_a $VG vmferry-export -c "$URI_A" --inspect t-guest -o "$SCRATCH/t-guest.vmf"
on_a $VG vmferry-info "$SCRATCH/t-guest.vmf" >"$SCRATCH/info.txt"
cat "$SCRATCH/info.txt"
grep -q '^  operating system: Debian GNU/Linux 12 (bookworm) (linux debian 12.0), hostname web01, root vda1$' \
    "$SCRATCH/info.txt" || fail "info does not show the inspected system"
grep -q '^  filesystem vdb: xfs on /data, UUID '"$GUEST_DATA_UUID"', label data$' \
    "$SCRATCH/info.txt" || fail "info does not show vdb"
[[ $(on_a vmferry-info --json "$SCRATCH/t-guest.vmf" |
    jq -r '.manifest.guest.os[0].hostname') == web01 ]] ||
    fail "info --json: no manifest.guest"
[[ $(on_a vmferry-info --json "$SCRATCH/t-guestbad.vmf" |
    jq -r '.manifest.guest') == null ]] || fail "inspected without --inspect"
on_b $VG vmferry-import -c "$URI_B" --dir "$dest" --define --verify-guest \
    "$SCRATCH/t-guest.vmf" 2>"$SCRATCH/imp.err" ||
    fail "import --verify-guest of a clean guest: $(cat "$SCRATCH/imp.err")"
cat "$SCRATCH/imp.err"
grep -q 't-guest: vda1 (ext4): clean' "$SCRATCH/imp.err" || fail "vda1 not checked"
grep -q 't-guest: vdb (xfs): clean' "$SCRATCH/imp.err" || fail "vdb not checked"
virsh_b -q domuuid t-guest >/dev/null || fail "t-guest not defined on B"
on_a qemu-img compare -q "$IMAGES_B/guest/t-guest.qcow2" "$IMAGES_DIR/t-guest.qcow2" ||
    fail "the copy differs"

# The damaged copy: refused, nothing defined, no file left.
rc=0
wait "$impbad_job" || rc=$?
((rc != 0)) || fail "a damaged guest was imported"
cat "$SCRATCH/impbad.err"
grep -q 'domain t-guestbad: 1 filesystem is damaged in the copy' "$SCRATCH/impbad.err" ||
    fail "unclear error"
grep -q 'nothing was defined and no file was left' "$SCRATCH/impbad.err" ||
    fail "the error does not say what was left"
ls /tmp/vmferry-guest-* 2>/dev/null && fail "the checks left their links"
virsh_b -q domuuid t-guestbad >/dev/null 2>&1 && fail "t-guestbad was defined"
left=$(on_b ls -A "$dest" | grep -v '^t-guest\(-base\|-data\)\?\.\(img\|qcow2\)$' || true)
[[ -z $left ]] || fail "files left in $dest: $left"
echo "guest verify OK"
