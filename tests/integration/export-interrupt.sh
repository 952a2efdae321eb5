#!/bin/bash
# vmferry-export -o FILE interrupted (a cron job's timeout, Ctrl-C, a
# closed terminal) leaves no hidden .FILE.vmferry-* temporary file:
#  - SIGINT, SIGTERM, SIGHUP in the middle: the export dies of the
#    signal and its temporary file is gone;
#  - SIGKILL leaves one; the next export to FILE removes it, says so,
#    and writes FILE;
#  - an export still running keeps its temporary file while another
#    export to the same FILE runs (its file is locked, not stale);
#  - FILE is created mode 0600 less the umask (it holds TPM state).
# The export is made slow on purpose (zstd -19 on one thread over
# random data); each signal is sent once its temporary file has data.
. "$(dirname "$0")/functions.sh"

requires env --default-signal=INT true

vm=t-intr
make_vm "$vm" raw 64M
on_a dd if=/dev/urandom of="$IMAGES_DIR/$vm.img" bs=1M count=64 conv=notrunc \
    status=none
out=$SCRATCH/out.vmf

temps() { find "$SCRATCH" -maxdepth 1 -name '.out.vmf.vmferry-*' -printf '%f\n' | sort; }

# start_slow: a slow export to $out in the background, with the signals a
# terminal would deliver at their defaults (a background job of a script
# ignores SIGINT); its pid in $pid, once its temporary file holds data.
start_slow() {
    local before i t
    before=$(temps)
    on_a env --default-signal=INT,QUIT sh -c 'echo $$ >"$1"; shift; exec "$@"' \
        sh "$SCRATCH/pid" vmferry-export -c qemu:///system --compress zstd:19 \
        --threads 1 "$vm" -o "$out" 2>"$SCRATCH/slow.err" &
    job=$!
    for ((i = 0; i < 600; i++)); do
        t=$(comm -13 <(echo "$before") <(temps) | head -n 1)
        [[ -n $t && -s $SCRATCH/$t ]] && break
        kill -0 "$job" 2>/dev/null || fail "the slow export ended: $(cat "$SCRATCH/slow.err")"
        sleep 0.1
    done
    [[ -n $t && -s $SCRATCH/$t ]] || fail "the slow export wrote nothing"
    pid=$(cat "$SCRATCH/pid")
    tmp=$t
}

for sig in INT TERM HUP; do
    start_slow
    kill -s "$sig" "$pid"
    rc=0
    wait "$job" || rc=$?
    ((rc == 128 + $(kill -l "$sig"))) || fail "SIG$sig: status $rc: $(cat "$SCRATCH/slow.err")"
    [[ -z $(temps) ]] || fail "SIG$sig left $(temps)"
    [[ ! -e $out ]] || fail "SIG$sig: $out exists"
    echo "SIG$sig: died of it, $tmp removed"
done

# SIGKILL leaves the file; the next run removes it and says so.
start_slow
kill -s KILL "$pid"
wait "$job" || true
[[ $(temps) == "$tmp" ]] || fail "after SIGKILL: $(temps), not $tmp"
msg=$(on_a $VG vmferry-export -c qemu:///system "$vm" -o "$out" 2>&1) ||
    fail "the export after SIGKILL failed: $msg"
[[ -z $(temps) ]] || fail "the next export left $(temps)"
grep -qF "$SCRATCH/$tmp: removed the temporary file of an interrupted run" <<<"$msg" ||
    fail "the removal is not said: $msg"
on_a $VG vmferry-info --verify "$out" >/dev/null || fail "$out does not verify"
echo "SIGKILL: $tmp removed by the next run: $msg"
mode=$(stat -c %a "$out")
[[ $mode == 600 ]] || fail "$out has mode $mode, not 600 (umask $(umask))"
rm -f "$out"

# A live export's file is not stale: another export to FILE leaves it
# (and takes the name).  (Stopped, the first one cannot end meanwhile.)
start_slow
kill -s STOP "$pid"
msg=$(on_a $VG vmferry-export -c qemu:///system "$vm" -o "$out" 2>&1) ||
    fail "an export beside a live one failed: $msg"
[[ $(temps) == "$tmp" ]] || fail "the live export's file is not kept: $(temps)"
grep -q "removed" <<<"$msg" && fail "something was removed: $msg"
on_a $VG vmferry-info --verify "$out" >/dev/null || fail "$out does not verify"
kill -s TERM "$pid"
kill -s CONT "$pid"
wait "$job" || true
[[ -z $(temps) ]] || fail "the first export left $(temps)"
echo "a live export's file kept beside another export"
rm -f "$out"

# Mode 0600 less the umask.
on_a sh -c 'umask 0277 && exec "$@"' sh vmferry-export -c qemu:///system "$vm" \
    --compress none -o "$out"
mode=$(stat -c %a "$out")
[[ $mode == 400 ]] || fail "with umask 0277, $out has mode $mode, not 400"
echo "export -o FILE after interrupts: OK"
