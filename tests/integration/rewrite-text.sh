#!/bin/bash
# vmferry-rewrite keeps the definition's text, on a real export:
#  - the XML inside the rewritten stream (vmferry-info --xml) differs from
#    the original's in the lines the rules change and no others, in
#    libvirt's single quotes;
#  - --diff prints that diff (the same hunks diff -u gives) and writes no
#    stream, from a file and from a pipe; a stream that does not pass its
#    checks gives no diff;
#  - stream and XML files made with -o are 0600 whatever the umask (the
#    stream carries the TPM state and NVRAM; the XML may hold graphics
#    passwords), as export's are.
. "$(dirname "$0")/functions.sh"

vm=t-rwtext
make_vm --uefi "$vm" qcow2 32M 0x33@0+1M
on_a vmferry-export -c qemu:///system -o "$SCRATCH/a.vmf" "$vm" || fail "export failed"
vmferry-info --xml "$SCRATCH/a.vmf" >"$SCRATCH/a.xml" || fail "info --xml failed"
grep -q "<domain type='" "$SCRATCH/a.xml" || fail "test setup: the exported XML is not in single quotes"
grep -qF "$IMAGES_DIR/$vm.qcow2" "$SCRATCH/a.xml" || fail "test setup: the disk path is not in the XML"

# ---- the XML in the rewritten stream: changed lines only
rules=(--rename t-rwtext2 --map-path "$IMAGES_DIR/$vm.qcow2=$IMAGES_DIR/t-rwtext2.qcow2")
$VG vmferry-rewrite "${rules[@]}" -o "$SCRATCH/b.vmf" "$SCRATCH/a.vmf" || fail "rewrite failed"
vmferry-info --verify --xml "$SCRATCH/b.vmf" >"$SCRATCH/b.xml" || fail "the rewritten stream does not verify"
diff -U0 "$SCRATCH/a.xml" "$SCRATCH/b.xml" >"$SCRATCH/d0" && fail "the rewrite changed nothing"
removed=$(grep -c '^-[^-]' "$SCRATCH/d0" || true)
added=$(grep -c '^+[^+]' "$SCRATCH/d0" || true)
[[ $removed == 2 && $added == 2 ]] ||
    { cat "$SCRATCH/d0"; fail "expected the name and the disk line to change ($removed out, $added in)"; }
grep -qx "+  <name>t-rwtext2</name>" "$SCRATCH/d0" || { cat "$SCRATCH/d0"; fail "no new <name> line"; }
grep -qx "+      <source file='$IMAGES_DIR/t-rwtext2.qcow2'.*" "$SCRATCH/d0" ||
    { cat "$SCRATCH/d0"; fail "the new disk line is not in the input's quotes"; }
echo "   stream: 2 lines changed, the rest as exported"

# ---- --diff: the same hunks, no stream written
(cd "$SCRATCH" && $VG vmferry-rewrite --diff "${rules[@]}" a.vmf >"$SCRATCH/d1") ||
    fail "--diff failed"
diff -u "$SCRATCH/a.xml" "$SCRATCH/b.xml" | tail -n +3 >"$SCRATCH/d2" || true
head -2 "$SCRATCH/d1" >"$SCRATCH/d1.head"
printf -- '--- a.vmf\n+++ a.vmf (rewritten)\n' | cmp -s - "$SCRATCH/d1.head" ||
    { cat "$SCRATCH/d1.head"; fail "--diff headers"; }
tail -n +3 "$SCRATCH/d1" | cmp -s - "$SCRATCH/d2" ||
    { diff "$SCRATCH/d1" "$SCRATCH/d2"; fail "--diff differs from diff -u of the two XMLs"; }
$VG vmferry-rewrite --diff "${rules[@]}" <"$SCRATCH/a.vmf" >"$SCRATCH/d3" || fail "--diff from a pipe failed"
tail -n +3 "$SCRATCH/d3" | cmp -s - "$SCRATCH/d2" || fail "--diff from a pipe differs"
[[ $(head -1 "$SCRATCH/d3") == "--- stdin" ]] || fail "--diff from a pipe: header $(head -1 "$SCRATCH/d3")"
vmferry-rewrite --diff <"$SCRATCH/a.vmf" >"$SCRATCH/d4" || fail "--diff without rules failed"
[[ ! -s $SCRATCH/d4 ]] || fail "--diff without rules printed something"
vmferry-rewrite --diff --rename x -o "$SCRATCH/x.vmf" "$SCRATCH/a.vmf" 2>/dev/null &&
    fail "--diff with -o accepted"
[[ ! -e $SCRATCH/x.vmf ]] || fail "--diff wrote a stream"
# A stream cut in its data: no diff, a failure.
head -c $(($(stat -c %s "$SCRATCH/a.vmf") - 200)) "$SCRATCH/a.vmf" >"$SCRATCH/cut.vmf"
rc=0
vmferry-rewrite --diff "${rules[@]}" "$SCRATCH/cut.vmf" >"$SCRATCH/d5" 2>"$SCRATCH/e5" || rc=$?
[[ $rc == 1 && ! -s $SCRATCH/d5 ]] || fail "--diff of a cut stream: rc $rc, output $(wc -c <"$SCRATCH/d5") bytes"
echo "   --diff: diff -u's hunks, from a file and a pipe; nothing for a cut stream"

# ---- modes of what -o makes
for mask in 022 002 000; do
    rm -f "$SCRATCH/m.vmf" "$SCRATCH/m.xml" "$SCRATCH/e.vmf"
    (umask $mask && vmferry-rewrite --rename m -o "$SCRATCH/m.vmf" "$SCRATCH/a.vmf") ||
        fail "rewrite -o (umask $mask) failed"
    (umask $mask && vmferry-rewrite --rename m --xml "$SCRATCH/a.xml" -o "$SCRATCH/m.xml") ||
        fail "rewrite --xml -o (umask $mask) failed"
    [[ $(stat -c %a "$SCRATCH/m.vmf") == 600 ]] ||
        fail "rewrite -o made a stream $(stat -c %a "$SCRATCH/m.vmf") under umask $mask"
    [[ $(stat -c %a "$SCRATCH/m.xml") == 600 ]] ||
        fail "rewrite --xml -o made a file $(stat -c %a "$SCRATCH/m.xml") under umask $mask"
    on_a sh -c "umask $mask && vmferry-export -c qemu:///system -o '$SCRATCH/e.vmf' '$vm'" ||
        fail "export -o (umask $mask) failed"
    [[ $(stat -c %a "$SCRATCH/e.vmf") == 600 ]] ||
        fail "export -o made a stream $(stat -c %a "$SCRATCH/e.vmf") under umask $mask"
done
echo "   -o: streams and XML 0600 under umask 022, 002, 000"
echo "rewrite text OK"
