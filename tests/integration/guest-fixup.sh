#!/bin/bash
# Fix-ups in the destination copy (issue 18), through the real libguestfs
# appliance (one launch per import).  A Debian-like guest on host A
# (make_guest_disk: fstab by /dev/vda1 and by UUID, grub.cfg with
# root=/dev/vda1, a netplan file matching its MAC):
# - migrated to host B with --disk-bus=virtio=scsi --new-uuid --new-macs
#   --json, the copy's fstab and root= name /dev/sda1, the UUID entry is
#   kept, the netplan file names the new MAC (the import there learnt the
#   old one from the manifest's mac_map), each change is a line of the
#   output and an element of the result's "fixups", and no other file of
#   the guest changed;
# the stream exported from A and rewritten with --disk-bus=virtio=scsi:
# - with --no-fixup nothing in the guest changes and the summary says the
#   fix-ups were not done; with no appliance (one that cannot
#   be found) the same, with a warning naming the appliance;
# - vmferry-check, from the stream's inspection (export --inspect),
#   reports the disk that becomes sda with its fix-up.
# The stream rewritten with --new-uuid --new-macs (the MAC the guest knows
# is in its manifest only), imported later with --new-identity=web02 and
# --json, gets a new UUID and MAC in its definition, and in the guest
# exactly what it lists, in its output and its JSON: the netplan MAC (the
# guest's, to the new one of the definition), the hostname, an emptied
# machine-id, the SSH host keys removed; every other file is the same
# (a listing with checksums before and after).  The source disk is
# unchanged (sha256) through all of it.  The appliance runs one vCPU
# (under TCG, one core's work): the --new-identity import, to a name of
# its own, runs beside the --disk-bus one, each asserting as alone.
. "$(dirname "$0")/functions.sh"
requires mkfs.xfs
requires sfdisk
requires debugfs
requires jq
guestfs_env

mac=52:54:00:12:34:56
name=t-fix
make_vm "$name" raw 1M
make_guest_disk "$IMAGES_A/$name.img" web01 "$mac"
# What --new-identity must change: a machine-id and SSH host keys, put in
# the filesystem (at 1 MiB of the disk) with debugfs.
dd if="$IMAGES_A/$name.img" of="$SCRATCH/fs.img" bs=1M skip=1 status=none
printf '0123456789abcdef0123456789abcdef\n' >"$SCRATCH/machine-id"
printf 'not a real key\n' >"$SCRATCH/key"
cat >"$SCRATCH/debugfs.cmd" <<EOF
mkdir /etc/ssh
cd /etc
write $SCRATCH/machine-id machine-id
cd /etc/ssh
write $SCRATCH/key ssh_host_ed25519_key
write $SCRATCH/key ssh_host_ed25519_key.pub
write $SCRATCH/key sshd_config
EOF
debugfs -w -f "$SCRATCH/debugfs.cmd" "$SCRATCH/fs.img" >/dev/null 2>&1
dd if="$SCRATCH/fs.img" of="$IMAGES_A/$name.img" bs=1M seek=1 \
    conv=notrunc,sparse status=none
rm -f "$SCRATCH/fs.img"
# One interface with the guest's MAC (type ethernet: defined, never run).
uuid=$(virsh_a domuuid "$name")
sed -e "s|</name>|</name><uuid>$uuid</uuid>|" \
    -e "s|</disk>|</disk><interface type='ethernet'><mac address='$mac'/><model type='virtio'/></interface>|" \
    "$SCRATCH/$name.xml" >"$SCRATCH/$name-2.xml"
virsh_a -q define "$SCRATCH/$name-2.xml" >/dev/null
src_sum=$(sha256sum <"$IMAGES_A/$name.img")

# tree IMAGE DIR: the guest's root filesystem (at 1 MiB of IMAGE) copied
# out into DIR with debugfs (no appliance, no mount); then its listing
# with a checksum per file into DIR.list.
tree() {
    dd if="$1" of="$SCRATCH/t.img" bs=1M skip=1 status=none
    mkdir -p "$2"
    debugfs -R "rdump / $2" "$SCRATCH/t.img" >/dev/null 2>&1
    rm -f "$SCRATCH/t.img"
    (cd "$2" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$2.list"
    (cd "$2" && find . ! -type f | sort) >>"$2.list"
}
tree "$IMAGES_A/$name.img" "$SCRATCH/before"
grep -q 'etc/machine-id$' "$SCRATCH/before.list" || fail "no machine-id: test is void"
grep -q 'ssh_host_ed25519_key$' "$SCRATCH/before.list" || fail "no host key: test is void"

on_a vmferry-export -c "$URI_A" --inspect "$name" -o "$SCRATCH/$name.vmf"
vmferry-rewrite --disk-bus=virtio=scsi -o "$SCRATCH/scsi.vmf" "$SCRATCH/$name.vmf"

# vmferry-check reads the stream's inspection: the disk that becomes sda
# is reported with its fix-up; with no rewrite, nothing of the guest.
vmferry-check -c "$URI_B" --json "$SCRATCH/scsi.vmf" >"$SCRATCH/c.json" || true
jq . "$SCRATCH/c.json"
msg=$(jq -r '.findings[] | select(.check == "guest") | .message' "$SCRATCH/c.json")
[[ $msg == "disk vda becomes sda in the guest, which mounts vda1 on /: the copy's /etc/fstab and the boot loader's root= will be rewritten where they name /dev/vda (UUID= and LABEL= entries need nothing)" ]] ||
    fail "check: the guest finding: $msg"
vmferry-check -c "$URI_B" --json "$SCRATCH/$name.vmf" >"$SCRATCH/c.json" || true
[[ $(jq '[.findings[] | select(.check == "guest")] | length' "$SCRATCH/c.json") == 0 ]] ||
    fail "check: a guest finding without a rewrite"
dest=/var/lib/libvirt/images/fixup
dir_on_b "$dest"
cleanup_add purge_vm t-fixid
# A job still running when the test fails is ended before the cleanup
# removes its domain (functions.sh: end_jobs).
cleanup_add end_jobs

# --new-identity (checked below) beside the --disk-bus move, on a
# stream whose MACs a rewrite changed.
vmferry-rewrite --new-uuid --new-macs -o "$SCRATCH/macs.vmf" "$SCRATCH/$name.vmf"
on_b $VG vmferry-import -c "$URI_B" --dir "$dest" --define --name t-fixid \
    --new-identity=web02 --json "$SCRATCH/macs.vmf" >"$SCRATCH/id.json" \
    2>"$SCRATCH/id.out" &
id_job=$!

# migrate --disk-bus=virtio=scsi --new-uuid --new-macs: fstab and root=
# follow, the UUID entry stays, netplan names the new MAC.  The import
# on B gets the appliance's settings (guestfs_env) from the command that
# reaches B (migrate's libvirt connection goes through it too).
cat >"$SCRATCH/ssh-guestfs" <<EOF
#!/bin/bash
args=("\$@")
case \${args[-1]} in
vmferry-import*|\'vmferry-import\'*)
    args[-1]="env LIBGUESTFS_BACKEND=$LIBGUESTFS_BACKEND \
${LIBGUESTFS_BACKEND_SETTINGS:+LIBGUESTFS_BACKEND_SETTINGS=$LIBGUESTFS_BACKEND_SETTINGS} \${args[-1]}" ;;
esac
exec ssh "\${args[@]}"
EOF
chmod +x "$SCRATCH/ssh-guestfs"
t0=$SECONDS
on_a $VG vmferry-migrate --json --ssh-command "$SCRATCH/ssh-guestfs" \
    --dest-dir "$dest" --disk-bus=virtio=scsi --new-uuid --new-macs \
    "$name" hostb >"$SCRATCH/mig.json" 2>"$SCRATCH/imp.out" ||
    fail "migrate: $(cat "$SCRATCH/imp.out" "$SCRATCH/mig.json")"
echo "migrate with fix-ups: $((SECONDS - t0)) s"
cat "$SCRATCH/imp.out"
jq . "$SCRATCH/mig.json"
migmac=$(virsh_b dumpxml "$name" | sed -n "s/.*<mac address='\([^']*\)'.*/\1/p")
[[ $migmac =~ ^52:54:00: && $migmac != "$mac" ]] || fail "migrated MAC: $migmac"
grep -qx "vmferry-import: $name: fix-up: /etc/fstab: /dev/vda1 -> /dev/sda1" "$SCRATCH/imp.out" ||
    fail "fstab's change not listed"
grep -qx "vmferry-import: $name: fix-up: /boot/grub/grub.cfg: /dev/vda1 -> /dev/sda1" \
    "$SCRATCH/imp.out" || fail "grub.cfg's change not listed"
grep -qx "vmferry-import: $name: fix-up: /etc/netplan/50-vmferry.yaml: $mac -> $migmac" \
    "$SCRATCH/imp.out" || fail "netplan's change not listed"
[[ $(grep -c 'fix-up:' "$SCRATCH/imp.out") == 3 ]] || fail "other changes listed"
grep -q 'not done' "$SCRATCH/imp.out" && fail "says not done"
# The same three in the result, as the import listed them.
got=$(jq -r '.fixups[] | "\(.file): \(.change)"' "$SCRATCH/mig.json" | sort)
want=$(printf '%s\n' "/etc/fstab: /dev/vda1 -> /dev/sda1" \
    "/boot/grub/grub.cfg: /dev/vda1 -> /dev/sda1" \
    "/etc/netplan/50-vmferry.yaml: $mac -> $migmac" | sort)
[[ $got == "$want" ]] || fail "the result's fixups: $got"
[[ $(jq -r '.state, .fixups_not_done' "$SCRATCH/mig.json") == $'moved\nnull' ]] ||
    fail "the result's state or fixups_not_done"
[[ $(virsh_b dumpxml "$name" | grep -c "<target dev='sda' bus='scsi'/>") == 1 ]] ||
    fail "the domain's disk is not sda on scsi"
tree "$IMAGES_B/fixup/$name.img" "$SCRATCH/scsi"
cat "$SCRATCH/scsi/etc/fstab"
[[ $(head -1 "$SCRATCH/scsi/etc/fstab") == '/dev/sda1 / ext4 errors=remount-ro 0 1' ]] ||
    fail "fstab's root entry: $(head -1 "$SCRATCH/scsi/etc/fstab")"
grep -qx "UUID=$GUEST_DATA_UUID /data xfs defaults 0 2" "$SCRATCH/scsi/etc/fstab" ||
    fail "the UUID entry changed"
grep -qx 'linux /boot/vmlinuz root=/dev/sda1 ro quiet' \
    "$SCRATCH/scsi/boot/grub/grub.cfg" || fail "grub.cfg's root="
changed=$({ diff "$SCRATCH/before.list" "$SCRATCH/scsi.list" || true; } | sed -n 's/^> [0-9a-f]*  //p' | sort)
[[ $changed == $'./boot/grub/grub.cfg\n./etc/fstab\n./etc/netplan/50-vmferry.yaml' ]] ||
    fail "other files changed: $changed"
grep -q "macaddress: \"$migmac\"" "$SCRATCH/scsi/etc/netplan/50-vmferry.yaml" ||
    fail "netplan: $(cat "$SCRATCH/scsi/etc/netplan/50-vmferry.yaml")"
[[ $(sha256sum <"$IMAGES_A/$name.img") == "$src_sum" ]] || fail "the source changed"
virsh_b -q undefine "$name" >/dev/null
on_b rm -f "$dest/$name.img"

# --no-fixup: the guest is as sent, and the summary says so.
on_b vmferry-import -c "$URI_B" --dir "$dest" --no-fixup \
    "$SCRATCH/scsi.vmf" >"$SCRATCH/no.out" 2>&1 || fail "import --no-fixup"
cat "$SCRATCH/no.out"
grep -q "fix-ups not done (--no-fixup)" "$SCRATCH/no.out" || fail "no notice"
grep -q "the guest's fix-ups were not done" "$SCRATCH/no.out" || fail "summary"
tree "$IMAGES_B/fixup/$name.img" "$SCRATCH/no"
cmp "$SCRATCH/before.list" "$SCRATCH/no.list" || fail "--no-fixup changed the guest"
on_b rm -f "$dest/$name.img" "$dest/$name.xml"

# No appliance (none where libguestfs looks): a warning, the summary, the
# copy as sent.
on_b env LIBGUESTFS_PATH="$SCRATCH/no-appliance" vmferry-import -c "$URI_B" \
    --dir "$dest" "$SCRATCH/scsi.vmf" >"$SCRATCH/none.out" 2>&1 ||
    fail "import without an appliance: $(cat "$SCRATCH/none.out")"
cat "$SCRATCH/none.out"
grep -q "$name: fix-ups not done: .*guest appliance" "$SCRATCH/none.out" ||
    fail "no warning naming the appliance"
grep -q "the guest's fix-ups were not done" "$SCRATCH/none.out" || fail "summary"
on_b rm -f "$dest/$name.img" "$dest/$name.xml"

# --new-identity: exactly what it lists, the netplan MAC from the
# guest's to the definition's.
wait "$id_job" || fail "import --new-identity: $(cat "$SCRATCH/id.out")"
cat "$SCRATCH/id.out"
newmac=$(virsh_b dumpxml t-fixid | sed -n "s/.*<mac address='\([^']*\)'.*/\1/p")
[[ $newmac =~ ^52:54:00: && $newmac != "$mac" ]] || fail "MAC: $newmac"
[[ $(virsh_b domuuid t-fixid) != "$uuid" ]] || fail "the UUID is the source's"
tree "$IMAGES_B/fixup/t-fixid.img" "$SCRATCH/id"
grep -q "macaddress: \"$newmac\"" "$SCRATCH/id/etc/netplan/50-vmferry.yaml" ||
    fail "netplan: $(cat "$SCRATCH/id/etc/netplan/50-vmferry.yaml")"
[[ $(cat "$SCRATCH/id/etc/hostname") == web02 ]] || fail "hostname"
[[ -e $SCRATCH/id/etc/machine-id && ! -s $SCRATCH/id/etc/machine-id ]] ||
    fail "machine-id not empty"
[[ -e $SCRATCH/id/etc/ssh/sshd_config ]] || fail "sshd_config removed"
for f in ssh_host_ed25519_key ssh_host_ed25519_key.pub; do
    [[ ! -e $SCRATCH/id/etc/ssh/$f ]] || fail "$f kept"
done
listed=$(sed -n 's/^vmferry-import: t-fixid: fix-up: \([^:]*\): .*/\1/p' "$SCRATCH/id.out" | sort)
expect=$(printf '%s\n' /etc/hostname /etc/machine-id /etc/netplan/50-vmferry.yaml \
    /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub | sort)
[[ $listed == "$expect" ]] || fail "listed: $listed"
[[ $(jq -r '.fixups[].file' "$SCRATCH/id.json" | sort) == "$expect" ]] ||
    fail "--json: $(cat "$SCRATCH/id.json")"
[[ $(jq -r '.domain, .state, .fixups_not_done' "$SCRATCH/id.json") == $'t-fixid\nimported\nnull' ]] ||
    fail "--json: $(cat "$SCRATCH/id.json")"
grep -qx "vmferry-import: t-fixid: fix-up: /etc/netplan/50-vmferry.yaml: $mac -> $newmac" \
    "$SCRATCH/id.out" || fail "the netplan line"
# Every file not listed is the same; the listed ones differ or are gone.
changed=$({ diff "$SCRATCH/before.list" "$SCRATCH/id.list" || true; } |
    sed -n 's/^[<>] [0-9a-f]*  \.//p' | sort -u)
[[ $changed == "$expect" ]] || fail "changed: $changed"
[[ $(sha256sum <"$IMAGES_A/$name.img") == "$src_sum" ]] || fail "the source changed"

# A host name that is not one is refused before anything is read.
vmferry-import --dir "$SCRATCH" --new-identity='web/../x' "$SCRATCH/$name.vmf" \
    2>"$SCRATCH/bad.err" && fail "a bad host name was taken"
grep -q "is not a host name" "$SCRATCH/bad.err" || fail "unclear: $(cat "$SCRATCH/bad.err")"
echo "guest fixup OK"
