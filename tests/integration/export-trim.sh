#!/bin/bash
# vmferry-export --trim (issue 18): a shut-off guest whose ext4 (vda, the
# whole 2 GiB disk) had 1 GiB of files written and then deleted, and a
# swap disk (vdb), is exported with and without --trim:
#  - without, the stream carries the deleted gigabyte; with --trim under
#    100 MiB of vda's data (the appliance fstrims on a temporary qcow2
#    overlay, and the export reads through it), and the summary names
#    vdb's swap as sent untrimmed;
#  - --trim --inspect launches the appliance once (libguestfs's own
#    trace counts the launches), and that stream's manifest has both the
#    guest's inspection (its hostname, both disks' filesystems) and the
#    trimmed vda;
#  - the source images are bit for bit unchanged (sha256);
#  - the trimmed copy imported on host B passes e2fsck -fn and still
#    holds the guest's files;
#  - a run SIGKILLed after the trim (the overlay written, the appliance
#    running) leaves the source unchanged and its overlay directory,
#    which the next run removes; that run, given SIGTERM at the same
#    point, removes its own overlays: no vmferry-trim-* directory is
#    left and no appliance runs on;
#  - vmferry-migrate --live --trim is refused.
# Three appliance launches (TCG here: up to a minute each).
. "$(dirname "$0")/functions.sh"
requires mkswap
requires debugfs
requires e2fsck
requires jq
guestfs_env

vm=t-trim
make_vm "$vm" raw 1M
img=$IMAGES_A/$vm.img
swap=$IMAGES_A/$vm-swap.img
cleanup_add rm -f "$swap"
tree=$SCRATCH/tree
mkdir -p "$tree/etc" "$tree/bin"
echo trim01 >"$tree/etc/hostname"
printf 'ID=debian\nVERSION_ID="12"\n' >"$tree/etc/os-release"
# What libguestfs's inspection needs to call it a Linux root.
printf 'LABEL=root / ext4 defaults 0 1\n' >"$tree/etc/fstab"
head -c 1G /dev/urandom >"$tree/big" || fail "cannot write the big file"
rm -f "$img"
truncate -s 2G "$img"
mke2fs -q -t ext4 -L root -d "$tree" -F "$img" || fail "mke2fs"
rm -f "$tree/big"
# Deleted in the guest's filesystem: its blocks freed, their data kept.
debugfs -w -R 'rm /big' "$img" >/dev/null 2>&1 || fail "debugfs rm"
e2fsck -fn "$img" >/dev/null 2>&1 || fail "the guest filesystem is not clean"
a=$(du -k "$img" | cut -f1)
((a > 1048576)) || fail "the deleted gigabyte is not allocated ($a KiB): test is void"
truncate -s 64M "$swap"
mkswap -q "$swap" || fail "mkswap"
uuid=$(virsh_a domuuid "$vm")
sed -e "s|</name>|</name><uuid>$uuid</uuid>|" \
    -e "s|</disk>|</disk><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$IMAGES_DIR/$vm-swap.img'/><target dev='vdb' bus='virtio'/></disk>|" \
    "$SCRATCH/$vm.xml" >"$SCRATCH/$vm-2.xml"
virsh_a -q define "$SCRATCH/$vm-2.xml" >/dev/null
drop_b() {
    virsh_b -q undefine "$vm" >/dev/null 2>&1 || true
    on_b sh -c 'rm -f -- "$1/$2".* "$1/$2"-*' sh "$IMAGES_DIR" "$vm"
}
cleanup_add drop_b

sums() { sha256sum "$img" "$swap"; }
before=$(sums)
trimdirs() { on_a sh -c 'ls -d /var/tmp/vmferry-trim-* 2>/dev/null' || true; }
[[ -z $(trimdirs) ]] || fail "overlay directories there before the test: $(trimdirs)"
# vda_data STREAM: the data bytes (not zero runs, not holes) of vda.
vda_data() {
    vmferry-info --json "$1" >"$SCRATCH/info.json" || fail "vmferry-info $1"
    jq '.manifest.files as $m | [.files[] | select($m[.index].target == "vda")
        | .data_bytes] | add' "$SCRATCH/info.json"
}

on_a $VG vmferry-export -c qemu:///system --compress=none "$vm" \
    -o "$SCRATCH/plain.vmf" || fail "export without --trim failed"
plain=$(vda_data "$SCRATCH/plain.vmf")
echo "without --trim: vda sends $((plain >> 20)) MiB of data"
((plain > 1024 * 1048576)) || fail "the deleted gigabyte was not sent without --trim: test is void"

# --inspect too: one launch trims and inspects (LIBGUESTFS_TRACE prints
# each call of the library, "libguestfs: trace: launch" once a launch).
t0=$SECONDS
on_a env LIBGUESTFS_TRACE=1 $VG vmferry-export -c qemu:///system \
    --compress=none --trim --inspect "$vm" -o "$SCRATCH/trim.vmf" \
    2>"$SCRATCH/trim.err" ||
    fail "export --trim failed: $(grep -v '^libguestfs: trace' "$SCRATCH/trim.err")"
grep -v '^libguestfs: trace' "$SCRATCH/trim.err"
launches=$(grep -c '^libguestfs: trace: launch$' "$SCRATCH/trim.err" || true)
echo "export --trim --inspect: $((SECONDS - t0)) s, $launches appliance launch(es)"
((launches == 1)) || fail "--trim --inspect launched the appliance $launches times"
trimmed=$(vda_data "$SCRATCH/trim.vmf")
echo "with --trim: vda sends $((trimmed >> 20)) MiB of data"
((trimmed < 100 * 1048576)) || fail "--trim sent $((trimmed >> 20)) MiB of vda"
q() { jq -r "$1" "$SCRATCH/info.json"; }
[[ $(q '.manifest.guest.os[0].hostname') == trim01 ]] ||
    fail "--trim --inspect: no inspection in the manifest: $(q '.manifest.guest')"
[[ $(q '.manifest.guest.filesystems | map(.device + ":" + .type) | join(" ")') \
   == "vda:ext4 vdb:swap" ]] ||
    fail "--trim --inspect: filesystems: $(q '.manifest.guest.filesystems')"
grep -q "vdb (swap" "$SCRATCH/trim.err" ||
    fail "the summary does not name the untrimmed swap: $(cat "$SCRATCH/trim.err")"
[[ $(sums) == "$before" ]] || fail "--trim changed the source"
[[ -z $(trimdirs) ]] || fail "--trim left its overlays: $(trimdirs)"

on_b $VG vmferry-import --define --dir "$IMAGES_DIR" "$SCRATCH/trim.vmf" ||
    fail "import of the trimmed stream failed"
on_b e2fsck -fn "$IMAGES_DIR/$vm.img" || fail "the trimmed copy fails e2fsck"
host=$(on_b debugfs -R 'cat /etc/hostname' "$IMAGES_DIR/$vm.img" 2>/dev/null)
[[ $host == trim01 ]] || fail "the trimmed copy lost the guest's files ('$host')"
on_a qemu-img compare -q -f raw -F raw "$IMAGES_DIR/$vm-swap.img" \
    "$IMAGES_B/$vm-swap.img" || fail "the swap disk did not arrive as it was"
echo "trimmed copy: e2fsck clean, files there"

# migrate takes --trim too, not with --live (refused before anything).
rc=0
on_a vmferry-migrate --live --trim "$vm" hostb >/dev/null 2>"$SCRATCH/live.err" || rc=$?
((rc != 0)) || fail "migrate --live --trim was accepted"
grep -q -- "--trim does not go with --live" "$SCRATCH/live.err" ||
    fail "migrate --live --trim: unclear: $(cat "$SCRATCH/live.err")"

# SIGKILL after the trim, the appliance running.
rc=0
on_a env VMFERRY_FAULT=guest-trimmed vmferry-export -c qemu:///system --trim \
    "$vm" -o "$SCRATCH/killed.vmf" >/dev/null 2>&1 || rc=$?
((rc == 137)) || fail "the export was not killed after the trim (status $rc)"
[[ $(sums) == "$before" ]] || fail "a SIGKILL during --trim changed the source"
stale=$(trimdirs)
[[ -n $stale ]] || fail "no overlay directory after the SIGKILL: the next run's cleanup is untested"
report fault "export --trim: SIGKILL after fstrim" survived

# The next run removes it; SIGTERM at the same point removes its own.
rm -f "$SCRATCH/notify"
mkfifo "$SCRATCH/notify"
on_a env VMFERRY_FAULT=guest-trimmed:stop VMFERRY_FAULT_NOTIFY="$SCRATCH/notify" \
    vmferry-export -c qemu:///system --trim "$vm" -o "$SCRATCH/termed.vmf" \
    >"$SCRATCH/termed.err" 2>&1 &
job=$!
read -r at pid <"$SCRATCH/notify" || fail "no word from the second run"
[[ $at == guest-trimmed && $pid =~ ^[0-9]+$ ]] || fail "stopped at '$at $pid'"
for d in $stale; do
    [[ ! -e $d ]] || fail "the next run did not remove $d"
done
mine=$(trimdirs)
[[ -n $mine ]] || fail "the second run has no overlay directory"
kill -TERM "$pid"
kill -CONT "$pid"
rc=0
wait "$job" || rc=$?
((rc == 143)) || fail "SIGTERM: status $rc: $(cat "$SCRATCH/termed.err")"
grep -q "removed .*vmferry-trim-" "$SCRATCH/termed.err" ||
    fail "the next run did not say it removed the stale overlays: $(cat "$SCRATCH/termed.err")"
[[ -z $(trimdirs) ]] || fail "SIGTERM left the overlays: $(trimdirs)"
[[ $(sums) == "$before" ]] || fail "SIGTERM during --trim changed the source"
[[ ! -e $SCRATCH/termed.vmf ]] || fail "SIGTERM left a partial stream"
# The appliance's QEMU ends with its parent (libguestfs's recovery
# process); give it a bounded time to go.
for ((i = 0; i < 60; i++)); do
    pgrep -f "$mine" >/dev/null || break
    sleep 1
done
pgrep -af "$mine" && fail "an appliance still runs on the removed overlays"
report fault "export --trim: SIGTERM after fstrim" survived
echo "ok"
