#!/bin/bash
# vmferry-send over B's real sshd, to a remote import that stops reading
# while the sender still has most of a 128 MiB stream to push: the send
# ends promptly, with the remote's exit status, its message relayed.
#  1. The import refuses after 1 MiB and exits.  (libssh held back the
#     channel's close while that message was unread, and waited for a
#     window that never opened: without a ConnectTimeout, for ever.)
#  2. It exits, but a process it started keeps its output open, so sshd
#     keeps the channel and swallows what is sent (the sender pushed it
#     all, then waited for that process).
#  3. It is killed by a signal.
#  4. With --connections 3, the main import refuses while the joining
#     connections' remote commands read nothing (as joiners wait for an
#     import that never takes them).
# The sessions read a copy of host A's ~/.ssh/config without its
# ConnectTimeout (libssh's only deadline; a user's config rarely has
# one), so a wait with no end of its own shows as one.
. "$(dirname "$0")/functions.sh"

vm=t-rexit
dest=/var/lib/libvirt/images/rexit
dir_on_b "$dest"
# 128 MiB of random data, not compressed: far more than the channel's
# window, so the sender is waiting on the remote when it goes away.
make_vm "$vm" raw 136M
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M count=128 conv=notrunc \
    status=none
on_a vmferry-export -c qemu:///system --compress none "$vm" -o "$SCRATCH/s.vmf"

# Host A's ssh configuration, without ConnectTimeout, for the sessions
# below only (a private mount over /root/.ssh).
mkdir "$SCRATCH/ssh"
on_a cp -a /root/.ssh/. "$SCRATCH/ssh/"
sed -i '/ConnectTimeout/d' "$SCRATCH/ssh/config"
grep -q ConnectTimeout "$SCRATCH/ssh/config" && fail "ConnectTimeout still set"

# The remote's processes this test starts and leaves: killed at exit.
: >"$SCRATCH/pids"
kill_left() {
    local p
    while read -r p; do
        on_b kill "$p" 2>/dev/null || true
    done <"$SCRATCH/pids"
}
cleanup_add kill_left

# fake_import MODE: a remote "vmferry-import" that answers the resume
# query for real, then reads 1 MiB of the stream and stops, as MODE says.
fake_import() {
    cat >"$SCRATCH/import-$1" <<EOF
#!/bin/bash
case \$1 in
    --resume-query) exec vmferry-import "\$@" ;;
    --join=*) echo \$\$ >>"$SCRATCH/pids"; exec sleep 600 ;;
esac
head -c 1048576 >/dev/null
case $1 in
    refuse) ;;
    hold) sleep 600 & echo \$! >>"$SCRATCH/pids" ;;
    killed) kill -KILL \$\$ ;;
esac
echo "fake-import: refusing: the target is in use" >&2
exit 3
EOF
    chmod +x "$SCRATCH/import-$1"
}

# send_to MODE [SEND-OPTION...]: sets $rc, $out, $secs.  `timeout` only
# guards against a hang.
send_to() {
    local mode=$1 t0
    shift
    fake_import "$mode"
    t0=$(date +%s)
    rc=0
    out=$(on_a unshare --mount sh -c 'mount --bind "$1" /root/.ssh && shift &&
              exec "$@"' sh "$SCRATCH/ssh" \
              timeout 120 $VG vmferry-send -i "$SCRATCH/s.vmf" "$@" \
              --remote-import="$SCRATCH/import-$mode" hostb -- --dir "$dest" 2>&1) ||
        rc=$?
    secs=$(($(date +%s) - t0))
    ((rc != 124)) || fail "$mode: the send hung (killed after 120 s): $out"
    echo "$mode: status $rc after $secs s"
}

# The send ends soon (60 s is generous: it takes a few here), with the
# remote's status in its final line and, but for a killed remote, the
# remote's own message before it.
ends_with() {
    local mode=$1 want_rc=$2 want_msg=$3
    ((rc == want_rc)) || fail "$mode: status $rc, not $want_rc: $out"
    ((secs < 60)) || fail "$mode: the send took $secs s to end: $out"
    [[ $(tail -n 1 <<<"$out") == "vmferry-send: "*"$want_msg"* ]] ||
        fail "$mode: the final message does not say '$want_msg': $out"
    [[ $mode == killed ]] || grep -q "^fake-import: refusing: the target is in use" <<<"$out" ||
        fail "$mode: the remote's message is not relayed: $out"
}

send_to refuse
ends_with refuse 3 "vmferry-import failed (exit status 3)"

send_to hold
ends_with hold 3 "vmferry-import failed (exit status 3)"

send_to killed
ends_with killed 1 "killed by signal KILL"

send_to refuse --connections 3
ends_with "refuse, 3 connections" 3 "vmferry-import failed (exit status 3)"
(($(wc -l <"$SCRATCH/pids") >= 3)) || fail "the joining connections did not start"

echo "send to a remote that stops reading: OK"
