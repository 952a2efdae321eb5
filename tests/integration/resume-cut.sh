#!/bin/bash
# Cuts at points chosen by seed, three ways: kill the local ssh session
# (vmferry-send --ssh-command ssh: its ssh process), kill the remote
# vmferry-import, kill vmferry-send itself.  Each time the same command run
# again finishes, sends only what was not durable on B, and the copy is
# identical (qemu-img compare).  With the cut at fraction C of the data,
# the second run sends at most (1 - C + 0.05) of a full stream: at half,
# at most 55 % of the bytes again.  A cut is detected by watching the
# temporary file's allocation on B grow past the chosen point (no sleeps
# stand in for it).
. "$(dirname "$0")/functions.sh"

requires qemu-img
requires ssh

vm=t-resume
mib=1024
make_vm "$vm" raw ${mib}M
# Random data: incompressible, so stream bytes are data bytes.
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M count=$mib conv=notrunc status=none
dest=/var/lib/libvirt/images/resume
on_b mkdir -p "$dest"
cleanup_add on_b rm -rf "$dest"

full=$(on_a vmferry-export -c qemu:///system "$vm" | wc -c)
echo "full stream: $full bytes"
total=$((mib * 1024 * 1024))

# temp_alloc: allocated bytes of the temporary file of the disk on B.
temp_alloc() {
    local f
    f=$(compgen -G "$IMAGES_B/resume/.$vm.img.vmferry-*" | head -n1) || true
    [[ -n $f ]] || { echo 0; return; }
    echo $(($(stat -c %b "$f" 2>/dev/null || echo 0) * 512))
}

# send_cmd OUTFILE [SEND-OPTION...]: start the transfer in the background
# on host A; its pid is in $send_pid.
send_bg() {
    local out=$1
    shift
    on_a bash -c 'vmferry-export -c qemu:///system "$1" | vmferry-send -v "${@:2}"' \
        _ "$vm" "$@" hostb -- --dir "$dest" --define --name "$vm-copy" >"$out" 2>&1 &
    send_pid=$!
}

# wait_alloc BYTES PID: until the temp file holds BYTES, or PID exits.
wait_alloc() {
    local want=$1 pid=$2 i
    for ((i = 0; i < 6000; i++)); do
        (($(temp_alloc) >= want)) && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# is_under PID ANCESTOR: whether PID descends from ANCESTOR.
is_under() {
    local p=$1 i
    for ((i = 0; i < 64 && p > 1; i++)); do
        [[ $p == "$2" ]] && return 0
        p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || return 1
    done
    return 1
}

# find_pid PATTERN [ANCESTOR]: the pid of the process we started whose
# command line matches PATTERN: a descendant of ANCESTOR, or (without one)
# a process in host B's namespace.  Found by what it is, killed by pid.
find_pid() {
    local pat=$1 anc=${2:-} p
    for p in $(pgrep -f -- "$pat"); do
        if [[ -n $anc ]]; then
            is_under "$p" "$anc" || continue
        else
            [[ $(readlink "/proc/$p/ns/mnt" 2>/dev/null) == "$MNTNS_B" ]] || continue
        fi
        echo "$p"
        return 0
    done
    return 1
}

drop_copy() {
    virsh_b -q undefine "$vm-copy" >/dev/null 2>&1 || true
    on_b rm -f "$dest/$vm.img"
}
cleanup_add drop_copy

check_copy() {
    on_a qemu-img compare -U -f raw -F raw "$IMAGES_DIR/$vm.img" "$IMAGES_B/resume/$vm.img" >/dev/null ||
        fail "$1: the copy differs from the source"
    virsh_b domuuid "$vm-copy" >/dev/null || fail "$1: $vm-copy is not defined on B"
    [[ -z $(on_b find "$dest" -name '.*') ]] || fail "$1: left over: $(on_b find "$dest" -name '.*')"
}

for how in ssh import sender; do
    for seed in 1 2; do
        RANDOM=$((seed * 7 + ${#how}))
        pct=$((30 + RANDOM % 41))     # cut between 30 % and 70 %
        at=$((total / 100 * pct))
        opts=()
        [[ $how == ssh ]] && opts=(--ssh-command "ssh -o BatchMode=yes")
        send_bg "$SCRATCH/run1.out" "${opts[@]}"
        wait_alloc "$at" "$send_pid" ||
            fail "$how/$seed: the transfer ended before $pct %: $(cat "$SCRATCH/run1.out")"
        case $how in
            ssh) pid=$(find_pid '^ssh -o BatchMode=yes .*vmferry-import' "$send_pid") ;;
            import) pid=$(find_pid "^vmferry-import --resumable --dir $dest --define --name $vm-copy") ;;
            sender) pid=$(find_pid '^vmferry-send -v hostb' "$send_pid") ;;
        esac
        [[ -n $pid ]] || fail "$how/$seed: cannot find the process to kill"
        kill -KILL "$pid"
        wait "$send_pid" && fail "$how/$seed: the cut transfer succeeded"
        cut=$(temp_alloc)
        virsh_b domuuid "$vm-copy" >/dev/null 2>&1 && fail "$how/$seed: defined after a cut"
        on_b test -e "$dest/.vmferry-resume-$vm-copy.json" ||
            fail "$how/$seed: no resume state after the cut: $(cat "$SCRATCH/run1.out")"

        # The same command again (the ssh cut again through ssh).
        on_a bash -c 'vmferry-export -c qemu:///system "$1" | vmferry-send -v "${@:2}"' \
            _ "$vm" "${opts[@]}" hostb -- --dir "$dest" --define --name "$vm-copy" \
            >"$SCRATCH/run2.out" 2>&1 || fail "$how/$seed: resume failed: $(cat "$SCRATCH/run2.out")"
        grep -q 'resuming an interrupted transfer' "$SCRATCH/run2.out" ||
            fail "$how/$seed: the second run did not resume: $(cat "$SCRATCH/run2.out")"
        check_copy "$how/$seed"
        if [[ $how == ssh ]]; then
            # ssh's own byte count is not ours: the resume point is.
            skipped=$(sed -n 's/.* \([0-9]*\) bytes of file data were already there.*/\1/p' "$SCRATCH/run2.out")
            sent=$((full - skipped))
        else
            sent=$(sed -n 's/.*sent \([0-9]*\) bytes.*/\1/p' "$SCRATCH/run2.out")
        fi
        [[ -n $sent ]] || fail "$how/$seed: no byte count: $(cat "$SCRATCH/run2.out")"
        # Bound: (1 - cut fraction + 5 %) of the full stream.
        frac=$((cut * 1000 / total))
        limit=$((full / 1000 * (1000 - frac + 50)))
        again=$((sent * 1000 / full))
        echo "   $how/$seed: cut at $pct % (B had $((cut >> 20)) MiB), resent $((sent >> 20)) MiB = $((again / 10)).$((again % 10)) % of the stream (limit $(((1000 - frac + 50) / 10)) %)"
        ((sent <= limit)) || fail "$how/$seed: resent $sent bytes, more than $limit"
        drop_copy
    done
done

# An abandoned transfer is removed by --abort, and only then.
send_bg "$SCRATCH/run1.out"
wait_alloc $((total / 4)) "$send_pid" || fail "abort: transfer ended early"
pid=$(find_pid '^vmferry-send -v hostb' "$send_pid")
kill -KILL "$pid"
wait "$send_pid" && fail "abort: the cut transfer succeeded"
on_b test -e "$dest/.vmferry-resume-$vm-copy.json" || fail "abort: no state to abort"
on_b vmferry-import --abort="$vm-copy" --dir "$dest" || fail "--abort failed"
[[ -z $(on_b ls -A "$dest") ]] || fail "--abort left: $(on_b ls -A "$dest")"
on_b vmferry-import --abort="$vm-copy" --dir "$dest" 2>/dev/null && fail "--abort of nothing succeeded"
echo "resume after cuts OK"
