#!/bin/bash
# The exit-status table (tools/tool.h) and the one line a successful run
# ends with, where libvirt and SSH are needed (the hermetic part:
# tests/cli/exit-codes.sh): export of a domain that does not exist fails
# with 1, a move the pre-flight blocks with 1, a check that cannot reach
# its destination with 2; export, send (with the remote import's line)
# and migrate succeed with 0 and say what they did, in one line each,
# and nothing with -q; a migration that is already done is 0 again.
. "$(dirname "$0")/functions.sh"

vm=t-exitc
make_vm "$vm" qcow2 64M 0xab@0+1M
dest=/var/lib/libvirt/images/exitc
dir_on_b "$dest"
dir_on_b "$dest-send"

# run WANT CMD...: CMD on host A ends with WANT; its output is left in
# $SCRATCH/out and $SCRATCH/err.
run() {
    local want=$1 rc=0
    shift
    on_a "$@" >"$SCRATCH/out" 2>"$SCRATCH/err" </dev/null || rc=$?
    ((rc == want)) || fail "$*: status $rc, not $want: $(cat "$SCRATCH/err")"
    echo "$*: $rc"
}
# said PATTERN: stderr is exactly one line, matching the glob PATTERN.
said() {
    local err
    err=$(cat "$SCRATCH/err")
    # shellcheck disable=SC2053
    [[ $err == $1 ]] || fail "the line is not '$1': $err"
    echo "   $err"
}

# export
run 1 $VG vmferry-export no-such-domain-x -o "$SCRATCH/x.vmf"
run 0 $VG vmferry-export "$vm" -o "$SCRATCH/$vm.vmf"
said "vmferry-export: domain $vm exported to $SCRATCH/$vm.vmf (1 file, * in *:*)"
rm -f "$SCRATCH/$vm.vmf"
run 0 $VG vmferry-export -q "$vm" -o "$SCRATCH/$vm.vmf"
said ""

# check: blocked (a domain of that name is defined there) is 1 and
# prints the findings; could not check is 2.
virsh_b -q define "$SCRATCH/$vm.xml" >/dev/null
run 1 $VG vmferry-check -c "$URI_B" --json "$SCRATCH/$vm.vmf"
jq -e '.format == "vmferry-check/1" and .ok == false' "$SCRATCH/out" >/dev/null ||
    fail "check --json: $(cat "$SCRATCH/out")"
virsh_b -q undefine "$vm" >/dev/null
run 0 $VG vmferry-check -c "$URI_B" --json "$SCRATCH/$vm.vmf"
jq -e '.format == "vmferry-check/1" and .ok == true' "$SCRATCH/out" >/dev/null ||
    fail "check --json: $(cat "$SCRATCH/out")"
run 2 $VG vmferry-check -c qemu+tcp://127.0.0.1:9/system "$SCRATCH/$vm.vmf"

# send: its own line, and the remote import's.
run 0 $VG vmferry-send -i "$SCRATCH/$vm.vmf" hostb -- --dir "$dest-send"
grep -q "^vmferry-send: stream sent to hostb (.* in [0-9]*:[0-9]*)$" "$SCRATCH/err" ||
    fail "send: no line: $(cat "$SCRATCH/err")"
grep -q "^vmferry-import: domain $vm imported into $dest-send (1 file, " "$SCRATCH/err" ||
    fail "send: the remote import said nothing: $(cat "$SCRATCH/err")"
sed 's/^/   /' "$SCRATCH/err"

# migrate: done, then already done (0 again, no data sent).
run 0 $VG vmferry-migrate "$vm" hostb --dest-dir "$dest"
grep -q "^vmferry-migrate: domain $vm copied, verified and defined on hostb in [0-9]*:[0-9]*$" \
    "$SCRATCH/err" || fail "migrate: no line: $(cat "$SCRATCH/err")"
sed 's/^/   /' "$SCRATCH/err"
run 0 $VG vmferry-migrate "$vm" hostb --dest-dir "$dest"
grep -q "already" "$SCRATCH/err" || fail "migrate again: $(cat "$SCRATCH/err")"
sed 's/^/   /' "$SCRATCH/err"
echo "exit statuses and summaries with libvirt: OK"
