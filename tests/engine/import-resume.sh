#!/bin/bash
# A resumable import cut anywhere keeps what it verified, and vmferry-send
# resumes it: the files come out byte for byte, nothing is left over.
# What is kept is checked again, not trusted: a held file changed in the
# meantime is refused, a resumed stream is refused by a directory that
# has no state for it, a stream of a changed source is not resumed.  An
# import killed (SIGKILL) resumes too.  --abort removes an interrupted
# transfer, not a running one, and not when there is none.  Hermetic
# (tests/engine/engine.sh; vmferry-send runs the import through a local
# command in place of ssh).
# shellcheck source=engine.sh
. "$(dirname "$0")/engine.sh"

mkimage "$tmp/A" 24 0=random 1=zero 3=random 7=byte 8=random 20=random tail=777
mkimage "$tmp/B" 40 0=random 5=random 6=random 30=random 39=random
id() { printf '"ino:%s mtime:1714564800.000000000 size:%s"' "$1" "$2"; }
ids=(--set "files.0.source_identity=$(id 1 "$(stat -c %s "$tmp/A")")"
     --set "files.1.source_identity=$(id 2 "$(stat -c %s "$tmp/B")")")
"$MKSTREAM" --files 2 --content "$tmp/A" --content "$tmp/B" --zstd "${ids[@]}" \
    "$tmp/s.vmf"
size=$(stat -c %s "$tmp/s.vmf")
d=$tmp/dest
state=$d/.vmferry-resume-mk.json

# copied NAME: the destination holds A and B, and nothing else.
copied() {
    cmp -s "$tmp/A" "$d/disk0.img" || bad "$1: disk0.img differs"
    cmp -s "$tmp/B" "$d/disk1.img" || bad "$1: disk1.img differs"
    [[ -z $(leftovers "$d") ]] || bad "$1: left $(leftovers "$d")"
}

# cut AT: a --resumable import of the first AT bytes into an empty $d.
cut() {
    rm -rf "$d"
    mkdir "$d"
    head -c "$1" "$tmp/s.vmf" >"$tmp/cut.vmf"
    run 1 vmferry-import --resumable --dir "$d" "$tmp/cut.vmf" || return 1
    errs truncated
    [[ ! -e $d/disk0.img && ! -e $d/disk1.img ]] ||
        bad "cut at $1: a file under its final name"
}

# 1. Cut before the files, in the first, in the second, before END:
# the same vmferry-send finishes it; from the first file on it resumes.
for at in 100 $((size / 4)) $((size * 3 / 4)) $((size - 60)); do
    cut "$at" || continue
    if ((at > size / 8)); then
        [[ -f $state ]] || bad "cut at $at: no resume state: $(ls -A "$d")"
        errs 'the verified progress was kept'
        if run 0 vmferry-import --resume-query --dir "$d" "$tmp/s.vmf"; then
            jq -e '.resume == true' "$tmp/out" >/dev/null ||
                bad "cut at $at: the query: $(cat "$tmp/out")"
        fi
    fi
    send "$tmp/s.vmf" --dir "$d" || continue
    if ((at > size / 8)); then
        errs '; resumed,'
    fi
    copied "cut at $at"
done

# 2. What was kept is read back: a byte changed in a held file fails the
# resumed import, naming the file and its digest; that transfer is
# dropped whole, and the next send starts afresh.
cut $((size * 3 / 4))
held=$(jq -r '.files[0].tmp' <(head -n 1 "$state"))
printf '\x01' | dd of="$d/$held" bs=1 seek=70000 conv=notrunc status=none
SEND_WANT=1 send "$tmp/s.vmf" --dir "$d" &&
    errs 'file disk0.img: digest mismatch after writing'
[[ -z $(ls -A "$d") ]] || bad "a refused resume left $(ls -A "$d")"
send "$tmp/s.vmf" --dir "$d"
grep -qF 'resumed' "$tmp/err" && bad "resumed from nothing: $(cat "$tmp/err")"
copied "after a changed held file"

# 3. --abort: not a transfer of another name, then this one, then none.
cut $((size * 3 / 4))
run 1 vmferry-import --abort=other --dir "$d"
[[ -f $state ]] || bad "--abort=other removed mk's state"
run 0 vmferry-import --abort=mk --dir "$d"
[[ -z $(ls -A "$d") ]] || bad "--abort left $(ls -A "$d")"
run 1 vmferry-import --abort --dir "$d"

# 4. The resumed stream itself: refused by a directory without its state,
# leaving nothing; vmferry-info reads it, and --verify finds that the
# digests cover what it left out.
cut $((size * 3 / 4))
LOCAL_SSH_TEE=$tmp/resumed.vmf send "$tmp/s.vmf" --dir "$d"
copied "resumed, captured"
(($(stat -c %s "$tmp/resumed.vmf") < size / 2)) ||
    bad "the resumed stream is not shorter: $(stat -c %s "$tmp/resumed.vmf")"
rm -rf "$tmp/other"
mkdir "$tmp/other"
run 1 vmferry-import --resumable --dir "$tmp/other" "$tmp/resumed.vmf" &&
    errs 'resume'
[[ -z $(ls -A "$tmp/other") ]] ||
    bad "a refused resume left $(ls -A "$tmp/other")"
run 0 vmferry-info "$tmp/resumed.vmf"
run 1 vmferry-info --verify "$tmp/resumed.vmf" && errs 'digest mismatch'

# 5. The source changed since (another source_identity): not resumed, all
# of it sent, the old temporary files gone.
cut $((size * 3 / 4))
"$MKSTREAM" --files 2 --content "$tmp/A" --content "$tmp/B" --zstd \
    --set "files.0.source_identity=$(id 1 "$(stat -c %s "$tmp/A")")" \
    --set "files.1.source_identity=$(id 3 "$(stat -c %s "$tmp/B")")" \
    "$tmp/changed.vmf"
send "$tmp/changed.vmf" --dir "$d"
grep -qF 'resumed' "$tmp/err" &&
    bad "a changed source was resumed: $(cat "$tmp/err")"
copied "changed source"

# 6. A running import: --abort refuses it; killed (SIGKILL, no chance to
# save anything), the next send resumes and finishes it.
rm -rf "$d" "$tmp/fifo"
mkdir "$d"
mkfifo "$tmp/fifo"
"$T/vmferry-import" --resumable --dir "$d" "$tmp/fifo" 2>"$tmp/import-err" &
pid=$!
engine_pids+=("$pid")
exec 3>"$tmp/fifo"
head -c $((size * 3 / 4)) "$tmp/s.vmf" >&3
# Killed once its state says the first file is complete and verified.
first_done() {
    [[ -f $state ]] &&
        [[ $(head -n 1 "$state" | jq '.files[0].complete') == true ]]
}
for ((i = 0; i < 600; i++)); do
    first_done && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
first_done ||
    bad "the import did not verify disk0.img: $(cat "$tmp/import-err")"
run 1 vmferry-import --abort=mk --dir "$d" && errs 'is running'
held=$(jq -r '.files[0].tmp' <(head -n 1 "$state"))
[[ -f $d/$held ]] || bad "--abort removed a running import's files"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
exec 3>&-
send "$tmp/s.vmf" --dir "$d" && errs '; resumed,'
copied "killed"

finish
