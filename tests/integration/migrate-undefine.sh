#!/bin/bash
# --undefine-source: the source is undefined only after the copy is
# verified and defined on B; after every failure it is kept, as it was.
# Failures: the destination refuses (the domain exists there), the host
# key is unknown, the remote import is killed mid-transfer, the source
# runs.  Then the same migration succeeds (resuming after the cut), the
# source is undefined and its disk kept.
. "$(dirname "$0")/functions.sh"

vm=t-undef
make_vm "$vm" raw 256M
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M count=192 conv=notrunc status=none
dest=/var/lib/libvirt/images/undef
dir_on_b "$dest"
kh=$ROOT_A/root/.ssh/known_hosts
cp "$kh" "$SCRATCH/kh"
cleanup_add cp "$SCRATCH/kh" "$kh"
uuid=$(virsh_a domuuid "$vm")

migrate() {
    on_a vmferry-migrate --no-check "$vm" hostb --dest-dir "$dest" --undefine-source "$@"
}
kept() {
    [[ $(virsh_a domuuid "$vm" 2>/dev/null) == "$uuid" ]] || fail "$1: the source was undefined"
    on_a test -f "$IMAGES_DIR/$vm.img" || fail "$1: the source disk is gone"
    echo "   $1: source kept"
}

# 1. The destination already has a domain of this name.
virsh_b -q define "$SCRATCH/$vm.xml" >/dev/null
migrate 2>"$SCRATCH/err" && fail "migrated onto an existing domain"
grep -q 'already exists' "$SCRATCH/err" || fail "unexpected: $(cat "$SCRATCH/err")"
kept "destination refuses"
virsh_b -q undefine "$vm" >/dev/null

# 2. Unknown host key.
: >"$kh"
migrate 2>"$SCRATCH/err" && fail "migrated with an unknown host key"
kept "unknown host key"
cp "$SCRATCH/kh" "$kh"

# 3. The source runs.
virsh_a -q start "$vm" >/dev/null
wait_state a "$vm" running 30
migrate 2>"$SCRATCH/err" && fail "migrated a running domain"
kept "source running"
virsh_a -q destroy "$vm" >/dev/null

# 4. The remote import is killed in the middle.
migrate 2>"$SCRATCH/err" &
pid=$!
for ((i = 0; i < 3000; i++)); do
    f=$(compgen -G "$IMAGES_B/undef/.$vm.img.vmferry-*" | head -n1) || true
    [[ -n $f ]] && (($(stat -c %b "$f") * 512 >= 64 << 20)) && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
done
victim=""
for p in $(pgrep -f -- "^vmferry-import --resumable --dir $dest "); do
    [[ $(readlink "/proc/$p/ns/mnt" 2>/dev/null) == "$MNTNS_B" ]] && victim=$p
done
[[ -n $victim ]] || fail "no remote import to kill (transfer over already?)"
kill -KILL "$victim"
wait $pid && fail "migrated although the remote import was killed"
virsh_b domuuid "$vm" >/dev/null 2>&1 && fail "defined on B after the cut"
kept "remote import killed"

# 5. Success (resuming): undefined only now, its disk kept.
migrate -v 2>"$SCRATCH/err" || fail "migration failed: $(cat "$SCRATCH/err")"
grep -q 'resuming an interrupted transfer' "$SCRATCH/err" || fail "did not resume"
virsh_a domuuid "$vm" >/dev/null 2>&1 && fail "the source is still defined"
on_a test -f "$IMAGES_DIR/$vm.img" || fail "the source disk was removed"
[[ $(virsh_b domuuid "$vm") == "$uuid" ]] || fail "not defined on B with its UUID"
on_a qemu-img compare -U -f raw -F raw "$IMAGES_DIR/$vm.img" "$IMAGES_B/undef/$vm.img" >/dev/null ||
    fail "copy differs"
echo "   success: undefined at the source, defined on B, disk identical"
echo "--undefine-source OK"
