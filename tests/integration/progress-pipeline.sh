#!/bin/bash
# Progress bars on a terminal, as a user sees them: each command runs
# under a pseudo-terminal (script(1)), all its stages' standard error on
# that one terminal, and what the terminal received is read back.
#   - vmferry-export | vmferry-rewrite | vmferry-send hostb: one bar for the
#     pipeline, on one line, ending at 100% of the whole stream (the disk
#     and the NVRAM); export to a pipe draws nothing, export -o FILE and
#     vmferry-import from a pipe draw the one bar;
#   - vmferry-migrate (offline): one bar, at 100%;
#   - vmferry-migrate --live: a disks bar and a memory bar, each at 100%.
. "$(dirname "$0")/functions.sh"

requires script
requires python3

vm=t-progress
dest=/var/lib/libvirt/images/progress
dir_on_b "$dest"

# Each copy in a directory of its own on B.
drop_b() {
    virsh_b -q destroy "$1" >/dev/null 2>&1 || true
    virsh_b -q undefine --nvram "$1" >/dev/null 2>&1 || true
    on_b rm -rf "$dest/$1"
    on_b rm -f "$IMAGES_DIR/$1.img"
}
drop_all() {
    local d
    for d in pr-pipe pr-migrate t-progress-live; do
        drop_b "$d"
    done
}
drop_all
cleanup_add drop_all

# A UEFI domain, started once so that its NVRAM exists: the stream holds
# two files, and a bar per file would show as two lines.
make_vm --uefi --start "$vm" raw 48M 0x5a@0+16M 0xa5@32M+8M
virsh_a -q destroy "$vm" >/dev/null
wait_state a "$vm" "shut off" 30
nvram=$VMFERRY_TESTBED_DIR/a/lib/qemu/nvram/${vm}_VARS.fd
[[ -f $nvram ]] || fail "$vm has no NVRAM after its start"
total=$(($(stat -c %s "$IMAGES_A/$vm.img") + $(stat -c %s "$nvram")))

# on_tty LOG CMD: run the shell command CMD on host A under a new
# pseudo-terminal (standard input, output and error), the terminal's
# output in LOG.  Returns CMD's status.
on_tty() {
    on_a script -qfec "$2" "$1" </dev/null >/dev/null
}

# bars LOG: one line per terminal line that holds a bar, as
#   DRAWS PCT DONE TOTAL END
# DRAWS: the bars drawn on that line (carriage returns); PCT, DONE, TOTAL:
# the last one's figures; END: "in" when it is a finished bar, else "ETA".
bars() {
    python3 - "$1" <<'EOF'
import re, sys
units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
bar = re.compile(r"^(.{14}) +(\d+)% \[[=> ]{9}\] ([\d.]+) (\S+)/([\d.]+) (\S+) "
                 r"\S+ \S+/s (ETA|in) \S+\x1b\[K$")
text = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
# The terminal turns "\n" into "\r\n".
for line in text.replace("\r\n", "\n").split("\n"):
    if "\r" not in line:
        continue
    draws = [m for m in map(bar.match, line.split("\r")[1:]) if m]
    if not draws:
        continue
    m = draws[-1]
    print(line.count("\r"), m.group(2),
          round(float(m.group(3)) * units[m.group(4)]),
          round(float(m.group(5)) * units[m.group(6)]), m.group(7),
          m.group(1).strip().replace(" ", "/"))
EOF
}

# one_bar WHAT LOG TOTAL: exactly one line with bars, every carriage
# return on it a bar, the last at 100% of TOTAL (to 0.05 MiB: the bar
# shows one decimal), finished.
one_bar() {
    local what=$1 out draws pct got tot end label
    out=$(bars "$2")
    [[ -n $out ]] || fail "$what: no bar was drawn: $(od -c "$2" | head -20)"
    [[ $out != *$'\n'* ]] || fail "$what: more than one line of bars: $out"
    read -r draws pct got tot end label <<<"$out"
    ((pct == 100)) || fail "$what: the bar ends at $pct%: $out"
    [[ $end == in ]] || fail "$what: the bar is not finished: $out"
    ((got == tot)) || fail "$what: $got of $tot bytes: $out"
    (((tot > $3 ? tot - $3 : $3 - tot) <= 52429)) ||
        fail "$what: total $tot, the stream holds $3"
    echo "$what: one bar ($draws draws), 100% of $tot bytes, label $label"
}

# 1. export | rewrite | send: the send draws, for the whole stream.
on_b mkdir "$dest/pr-pipe" "$dest/pr-migrate"
log=$SCRATCH/pipe.log
on_tty "$log" "vmferry-export -c qemu:///system $vm |
    vmferry-rewrite --rename pr-pipe |
    vmferry-send hostb -- --dir $dest/pr-pipe --define" ||
    fail "export | rewrite | send failed: $(cat "$log")"
virsh_b domuuid pr-pipe >/dev/null || fail "pr-pipe not defined on B"
one_bar "export | rewrite | send" "$log" "$total"
drop_b pr-pipe

# 2. export to a pipe draws nothing; export -o FILE draws the bar; an
# import reading a pipe draws it.
log=$SCRATCH/export-pipe.log
on_tty "$log" "vmferry-export -c qemu:///system $vm | cat >$SCRATCH/s.vmf" ||
    fail "export | cat failed: $(cat "$log")"
out=$(bars "$log")
[[ -z $out ]] || fail "export to a pipe drew a bar: $out"
crs=$(python3 -c 'import sys
print(open(sys.argv[1], "rb").read().replace(b"\r\n", b"").count(b"\r"))' "$log")
((crs == 0)) || fail "export to a pipe drew: $(od -c "$log" | head)"
echo "export to a pipe: no bar"

log=$SCRATCH/export-file.log
on_tty "$log" "vmferry-export -c qemu:///system $vm -o $SCRATCH/f.vmf" ||
    fail "export -o failed: $(cat "$log")"
one_bar "export -o FILE" "$log" "$total"

log=$SCRATCH/import.log
mkdir "$SCRATCH/imported"
on_tty "$log" "cat $SCRATCH/f.vmf | vmferry-import --dir $SCRATCH/imported" ||
    fail "cat | import failed: $(cat "$log")"
one_bar "cat | import" "$log" "$total"

# 3. vmferry-migrate: the bar is the send's (what reached B).
log=$SCRATCH/migrate.log
on_tty "$log" "vmferry-migrate $vm hostb --rename pr-migrate --new-uuid \
    --dest-dir $dest/pr-migrate" || fail "migrate failed: $(cat "$log")"
one_bar "migrate" "$log" "$total"
drop_b pr-migrate

# 4. vmferry-migrate --live: the disks, then memory, each ending at 100%.
live=t-progress-live
make_vm --start "$live" raw 64M 0x11@0+16M
log=$SCRATCH/live.log
on_tty "$log" "vmferry-migrate --live -c '$URI_A' --dest-uri '$TCP_URI_B' \
    --migrate-uri tcp://127.0.0.1 $live hostb" ||
    fail "live migrate failed: $(cat "$log")"
out=$(bars "$log")
echo "live: $out"
labels=$(awk '{print $6}' <<<"$out" | tr '\n' ' ')
[[ $labels == "disks memory " ]] || fail "live: bars $labels, not disks then memory"
while read -r draws pct got tot end label; do
    if ((pct != 100)) || [[ $end != in ]] || ((got != tot)); then
        fail "live: the $label bar ends at $pct% ($got of $tot, $end)"
    fi
done <<<"$out"
