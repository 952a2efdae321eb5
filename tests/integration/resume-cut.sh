#!/bin/bash
# Cuts three ways: kill the local ssh session (vmferry-send --ssh-command
# ssh: its ssh process), kill the remote vmferry-import, kill vmferry-send
# itself.  Each time the same command run again finishes, sends only what
# was not held on B, and the copy is identical (qemu-img compare).
#  - For each way, two cuts at half the data (seeds 1 and 2): the second
#    run sends at most 55 % of a full stream.
#  - Every cut, and for each way one at a point between 30 % and 70 %
#    chosen by seed 3: with B holding fraction C of the data after the
#    cut, the second run sends at most (1 - C + 0.01) of a full stream
#    when the link was cut (ssh, sender: the import writes and keeps all
#    it received whole), (1 - C + 0.05) when the import was killed (what
#    its workers wrote ahead of the last record it finished is lost).
#  - A killed import cannot sync: what it wrote since its last sync is
#    kept only as a claim (.vmferry-resume-NAME.written) that the next
#    run reads back; an intact claim is held (not sent again), and one
#    whose data was lost meanwhile (a hole punched into it, as a crash
#    would leave it) is sent again, and the copy is still identical.
# A cut is detected by watching the temporary file's allocation on B grow
# past the chosen point (no sleeps stand in for it).
. "$(dirname "$0")/functions.sh"

requires qemu-img
requires ssh

vm=t-resume
mib=1024
make_vm "$vm" raw ${mib}M
# Random data: incompressible, so stream bytes are data bytes.
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M count=$mib conv=notrunc status=none
dest=/var/lib/libvirt/images/resume
dir_on_b "$dest"

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
    on_b rm -f "$dest/$vm-copy.img"
}
cleanup_add drop_copy

check_copy() {
    on_a qemu-img compare -U -f raw -F raw "$IMAGES_DIR/$vm.img" "$IMAGES_B/resume/$vm-copy.img" >/dev/null ||
        fail "$1: the copy differs from the source"
    virsh_b domuuid "$vm-copy" >/dev/null || fail "$1: $vm-copy is not defined on B"
    [[ -z $(on_b find "$dest" -name '.*') ]] || fail "$1: left over: $(on_b find "$dest" -name '.*')"
}

# json_num FILE KEY: the first number KEY has in FILE (the resume state
# and claim files on B are one line of JSON; one file in this stream).
json_num() {
    sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" 2>/dev/null | head -n1
}
state=$IMAGES_B/resume/.vmferry-resume-$vm-copy.json
claims=$IMAGES_B/resume/.vmferry-resume-$vm-copy.written

# cut_transfer HOW PCT: start the transfer, kill HOW once B holds PCT %
# of the data.  Sets $cut (bytes allocated on B after the kill), $held
# (B's durable offset), $claim_ends (where B's claimed ranges end) and
# $claimed (how far they go; $held if none).
cut_transfer() {
    local how=$1 pct=$2 at pid
    at=$((total / 100 * pct))
    opts=()
    [[ $how == ssh ]] && opts=(--ssh-command "ssh -o BatchMode=yes")
    send_bg "$SCRATCH/run1.out" "${opts[@]}"
    wait_alloc "$at" "$send_pid" ||
        fail "$how: the transfer ended before $pct %: $(cat "$SCRATCH/run1.out")"
    case $how in
        ssh) pid=$(find_pid '^ssh -o BatchMode=yes .*vmferry-import' "$send_pid") ;;
        import) pid=$(find_pid "^vmferry-import --resumable --dir $dest --define --name $vm-copy") ;;
        sender) pid=$(find_pid '^vmferry-send -v hostb' "$send_pid") ;;
    esac
    [[ -n $pid ]] || fail "$how: cannot find the process to kill"
    kill -KILL "$pid"
    wait "$send_pid" && fail "$how: the cut transfer succeeded"
    # A cut import keeps its progress before it exits; the send may end
    # first: wait for the lock (held while the import runs).
    on_b flock -w 60 "$dest/.vmferry-resume-$vm-copy.lock" true
    cut=$(temp_alloc)
    virsh_b domuuid "$vm-copy" >/dev/null 2>&1 && fail "$how: defined after a cut"
    [[ -e $state ]] || fail "$how: no resume state after the cut: $(cat "$SCRATCH/run1.out")"
    held=$(json_num "$state" offset)
    claim_ends=()
    [[ -e $claims ]] && mapfile -t claim_ends < <(grep -o '"end":[0-9]*' "$claims" | cut -d: -f2)
    claimed=$held
    for c in "${claim_ends[@]}"; do
        if ((c > claimed)); then claimed=$c; fi
    done
}

# resume LABEL: the same command again (the ssh cut again through ssh);
# sets $sent and $skipped.
resume() {
    on_a bash -c 'vmferry-export -c qemu:///system "$1" | vmferry-send -v "${@:2}"' \
        _ "$vm" "${opts[@]}" hostb -- --dir "$dest" --define --name "$vm-copy" \
        >"$SCRATCH/run2.out" 2>&1 || fail "$1: resume failed: $(cat "$SCRATCH/run2.out")"
    grep -q 'resuming an interrupted transfer' "$SCRATCH/run2.out" ||
        fail "$1: the second run did not resume: $(cat "$SCRATCH/run2.out")"
    check_copy "$1"
    skipped=$(sed -n 's/.* \([0-9]*\) bytes of file data were already there.*/\1/p' "$SCRATCH/run2.out")
    if [[ ${opts[*]} == --ssh-command* ]]; then
        # ssh's own byte count is not ours: the resume point is.
        sent=$((full - skipped))
    else
        sent=$(sed -n 's/.*sent \([0-9]*\) bytes.*/\1/p' "$SCRATCH/run2.out")
    fi
    [[ -n $sent && -n $skipped ]] || fail "$1: no byte count: $(cat "$SCRATCH/run2.out")"
}

pct1() { echo "$(($1 * 1000 / full / 10)).$(($1 * 1000 / full % 10))"; }

for how in ssh import sender; do
    for seed in 1 2 3; do
        RANDOM=$((seed * 7 + ${#how}))
        pct=$((30 + RANDOM % 41))       # between 30 % and 70 %
        ((seed < 3)) && pct=50
        cut_transfer "$how" "$pct"
        resume "$how/$seed"
        # (1 - cut fraction + 1 % or 5 %) of the full stream; at half,
        # also at most 55 %.
        frac=$((cut * 1000 / total))
        margin=10
        [[ $how == import ]] && margin=50
        limit=$((full / 1000 * (1000 - frac + margin)))
        ((pct == 50 && limit > full / 100 * 55)) && limit=$((full / 100 * 55))
        echo "   $how/$seed: cut at $pct % (B had $((cut >> 20)) MiB, $((held >> 20)) MiB durable," \
            "$((claimed >> 20)) MiB claimed), resent $((sent >> 20)) MiB =" \
            "$(pct1 "$sent") % of the stream (limit $(pct1 "$limit") %)"
        ((sent <= limit)) || fail "$how/$seed: resent $sent bytes, more than $limit"
        # An intact claim is held.
        ((skipped >= claimed)) ||
            fail "$how/$seed: B claimed $claimed bytes but held only $skipped on resume"
        drop_copy
    done
done

# A claim whose data is gone is not trusted: the range is sent again.
for try in 1 2 3 4 5 6; do
    cut_transfer import 25
    ((claimed > held + 2 * 65536)) && break
    # The kill came right after a sync: nothing claimed; cut again.
    on_b vmferry-import --abort="$vm-copy" --dir "$dest" >/dev/null
done
((claimed > held + 2 * 65536)) || fail "claims: no claim after $try cuts"
tmp=$(compgen -G "$IMAGES_B/resume/.$vm.img.vmferry-*" | head -n1)
hole=$(((held + claimed) / 2 / 65536 * 65536))
fallocate -p -o "$hole" -l 65536 "$tmp"
# Held: the durable part and the claimed ranges before the hole.
want=$held
for c in "${claim_ends[@]}"; do
    if ((c <= hole && c > want)); then want=$c; fi
done
resume claims
((skipped == want)) || fail "claims: held $skipped bytes, expected $want"
echo "   claims to $((claimed >> 20)) MiB, durable $((held >> 20)) MiB, a hole punched at" \
    "$((hole >> 20)) MiB: $((skipped >> 20)) MiB were held, the copy is identical"
drop_copy

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
