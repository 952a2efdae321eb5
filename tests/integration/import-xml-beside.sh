#!/bin/bash
# vmferry-import --dir D without --define writes the definition beside
# the files, as it would have been defined (paths into D, the new name),
# so that an admin can `virsh define D/NAME.xml` by hand.  It is a new
# file (0600: it may name a TPM secret), never written through a link or
# over a file that was there, unless --force and a plain file.
. "$(dirname "$0")/functions.sh"

make_vm --uefi t-beside qcow2 256M 0x5a@0+1M
on_a vmferry-export -c qemu:///system t-beside -o "$SCRATCH/t.vmf"
dest=/var/lib/libvirt/images/beside
dir_on_b "$dest"
cleanup_add virsh_b -q undefine --nvram t-beside-dr

on_b vmferry-import --dir "$dest" --name t-beside-dr "$SCRATCH/t.vmf" ||
    fail "import without --define failed"
xml=$dest/t-beside-dr.xml
on_b test -f "$xml" || fail "no definition beside the files: $(on_b ls -A "$dest")"
[[ $(on_b stat -c %a "$xml") == 600 ]] || fail "$xml is mode $(on_b stat -c %a "$xml")"
virsh_b domuuid t-beside-dr >/dev/null 2>&1 && fail "defined without --define"
# As it would be defined: the new name, every file in D.
on_b grep -q '<name>t-beside-dr</name>' "$xml" || fail "$xml does not carry the new name"
# (A NVRAM the source never made is made by libvirt from its template.)
while read -r p; do
    [[ $p == "$dest/"* ]] || fail "$xml names $p, outside $dest"
    on_b test -f "$p" || fail "$xml names the disk $p, which is not there"
done < <(on_b sed -n "s:.*<source file=['\"]\([^'\"]*\).*:\1:p" "$xml")
nv=$(on_b sed -n "s:.*<nvram[^>]*>\(.*\)</nvram>.*:\1:p" "$xml")
[[ $nv == "$dest/"* ]] || fail "$xml: NVRAM $nv outside $dest"
on_b virsh -q define "$xml" >/dev/null || fail "virsh define $xml failed"
[[ $(virsh_b domblklist t-beside-dr | awk '$2 ~ /^\// {print $2}') == "$dest/t-beside-dr.qcow2" ]] ||
    fail "the hand-defined domain does not use $dest/t-beside-dr.qcow2"
echo "   $xml: defines t-beside-dr on its files"

# A link planted at the name: not followed, its target untouched, the
# import itself done (the definition is in the stream).
on_b sh -c "echo canary >$SCRATCH/canary"
on_b ln -s "$SCRATCH/canary" "$dest/t-beside-2.xml"
on_b vmferry-import --dir "$dest" --name t-beside-2 "$SCRATCH/t.vmf" 2>"$SCRATCH/err" ||
    fail "the import failed over a planted link: $(cat "$SCRATCH/err")"
grep -q "t-beside-2.xml: exists" "$SCRATCH/err" || fail "unclear: $(cat "$SCRATCH/err")"
[[ $(on_b cat "$SCRATCH/canary") == canary ]] || fail "written through the link"
on_b test -L "$dest/t-beside-2.xml" || fail "the link was replaced"
[[ -z $(on_b find "$dest" -name '.*') ]] || fail "left behind: $(on_b find "$dest" -name '.*')"
echo "import writes the definition beside OK"
