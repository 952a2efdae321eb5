#!/bin/bash
# vmferry-import writes what a stream carries into a directory, byte for
# byte and sparse: data records (raw and zstd, any thread count), written
# zeros and holes, a short last block, a block whose only non-zero byte is
# its last; disks, NVRAM and TPM state where each belongs, and the domain
# XML beside them pointing at them; under --name; from a pipe.  It
# refuses to replace a file (--force asks libvirt: export-embed.sh),
# never writes through a link, and a cut stream leaves nothing.
# vmferry-info describes and verifies the same streams, and gives the
# domain XML as it came.  Hermetic (tests/engine/engine.sh).
# shellcheck source=engine.sh
. "$(dirname "$0")/engine.sh"

# Images: A has random, written-zero, last-byte and hole blocks and a
# short tail; B a last-byte block and a random one; C (NVRAM) and D (a
# TPM state file, shorter than a block).
mkimage "$tmp/A" 20 0=random 1=zero 2=byte 5=random 6=zero 19=random tail=5000
mkimage "$tmp/B" 3 0=byte 2=random
mkimage "$tmp/C" 2 1=random
mkimage "$tmp/D" 0 tail=3000
data_a=$((4 * 65536 + 5000))          # A's bytes in non-zero blocks

# same NAME FILE COPY: COPY holds FILE's bytes.
same() { cmp -s "$2" "$3" || bad "$1: $3 differs from $2"; }

# sparse NAME FILE MAX: FILE occupies at most MAX bytes (+ one block of
# the file system's own).
sparse_ok=yes
holes_work "$tmp" || {
    sparse_ok=no
    echo "note: $tmp keeps no holes: sparseness not checked"
}
sparse() {
    [[ $sparse_ok == yes ]] || return 0
    local a
    a=$(allocated "$2")
    ((a <= $3 + 65536)) || bad "$1: $2 occupies $a bytes for $3 of data"
}

# 1. Raw data records: every byte, holes kept holes.
"$MKSTREAM" --files 2 --content "$tmp/A" --content "$tmp/B" "$tmp/raw.vmf"
mkdir "$tmp/d1"
run 0 vmferry-import --dir "$tmp/d1" "$tmp/raw.vmf" &&
    errs "domain mk imported into $tmp/d1 (2 files,"
same raw "$tmp/A" "$tmp/d1/disk0.img"
same raw "$tmp/B" "$tmp/d1/disk1.img"
sparse raw "$tmp/d1/disk0.img" $data_a
[[ -z $(leftovers "$tmp/d1") ]] || bad "raw: left $(leftovers "$tmp/d1")"

# 2. zstd records, written zeros as ZERO records: the same files with one
# thread and with four; ZERO records are not written.
"$MKSTREAM" --files 2 --content "$tmp/A" --content "$tmp/B" --zstd --zeros \
    "$tmp/zstd.vmf"
for threads in 1 4; do
    d=$tmp/z$threads
    mkdir "$d"
    if run 0 vmferry-import -q --threads $threads --dir "$d" \
        "$tmp/zstd.vmf"; then
        [[ ! -s $tmp/err ]] || bad "-q printed: $(cat "$tmp/err")"
    fi
    same "zstd, $threads threads" "$tmp/A" "$d/disk0.img"
    same "zstd, $threads threads" "$tmp/B" "$d/disk1.img"
    sparse "zstd, $threads threads" "$d/disk0.img" $data_a
done

# 3. vmferry-info: the same streams, described and verified.
if run 0 vmferry-info --verify "$tmp/zstd.vmf"; then
    grep -q 'every checksum and digest verified' "$tmp/out" ||
        bad "info --verify: $(cat "$tmp/out")"
fi
if run 0 vmferry-info --json "$tmp/zstd.vmf"; then
    jq -e --argjson a "$(stat -c %s "$tmp/A")" \
        --argjson b "$(stat -c %s "$tmp/B")" \
        '.manifest.domain.name == "mk" and
         [.manifest.files[].size] == [$a, $b] and
         [.manifest.files[].name] == ["disk0.img", "disk1.img"]' \
        "$tmp/out" >/dev/null || bad "info --json: $(cat "$tmp/out")"
fi
"$MKSTREAM" --files 2 --content "$tmp/A" --content "$tmp/B" --bad-digest 1 \
    "$tmp/bad-digest.vmf"
run 1 vmferry-info --verify "$tmp/bad-digest.vmf" && errs "digest mismatch"
run 0 vmferry-info "$tmp/bad-digest.vmf"      # digests only with --verify

# 4. A disk, NVRAM and TPM state, with a domain XML naming the disk and
# the NVRAM at the source: each file where it belongs (the TPM's below
# NAME-tpm, private), and NAME.xml beside them pointing at them.
cat >"$tmp/dom.xml" <<'EOF'
<domain type='kvm'>
  <name>mk</name>
  <uuid>6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e</uuid>
  <memory unit='KiB'>65536</memory>
  <os>
    <type>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>
    <nvram>/var/lib/libvirt/qemu/nvram/mk_VARS.fd</nvram>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/disk0.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
  </devices>
</domain>
EOF
"$MKSTREAM" --files 3 --content "$tmp/A" --content "$tmp/C" --content "$tmp/D" \
    --set 'files.0.target="vda"' \
    --set 'files.1.role="nvram"' --set 'files.1.name="mk_VARS.fd"' \
    --set 'files.1.source_path="/var/lib/libvirt/qemu/nvram/mk_VARS.fd"' \
    --set 'files.2.role="tpm"' --set 'files.2.name="tpm2/tpm2-00.permall"' \
    --xml "$tmp/dom.xml" --zstd "$tmp/roles.vmf"
run 0 vmferry-info --xml "$tmp/roles.vmf" &&
    { cmp -s "$tmp/dom.xml" "$tmp/out" || bad "info --xml: $(cat "$tmp/out")"; }
mkdir "$tmp/d4"
run 0 vmferry-import --dir "$tmp/d4" "$tmp/roles.vmf"
same roles "$tmp/A" "$tmp/d4/disk0.img"
same roles "$tmp/C" "$tmp/d4/mk_VARS.fd"
same roles "$tmp/D" "$tmp/d4/mk-tpm/tpm2/tpm2-00.permall"
[[ $(stat -c %a "$tmp/d4/mk-tpm" "$tmp/d4/mk-tpm/tpm2/tpm2-00.permall" |
     tr '\n' ' ') == "700 600 " ]] ||
    bad "roles: the TPM state is not private: $(ls -lR "$tmp/d4/mk-tpm")"
[[ $(stat -c %a "$tmp/d4/mk.xml") == 600 ]] || bad "roles: mk.xml is not 0600"
x=$tmp/d4/mk.xml
grep -qF "<source file=\"$tmp/d4/disk0.img\"/>" "$x" ||
    bad "roles: the disk does not point at its copy: $(cat "$x")"
grep -qF "<nvram>$tmp/d4/mk_VARS.fd</nvram>" "$x" ||
    bad "roles: the NVRAM does not point at its copy: $(cat "$x")"
grep -q '/var/lib/libvirt' "$x" &&
    bad "roles: a source path is left: $(cat "$x")"
[[ -z $(leftovers "$tmp/d4") ]] || bad "roles: left $(leftovers "$tmp/d4")"

# 5. --name: the domain and the files that carry its name take the new
# one, the others get it in front; a new UUID.
mkdir "$tmp/d5"
run 0 vmferry-import --name copy --dir "$tmp/d5" "$tmp/roles.vmf"
same --name "$tmp/A" "$tmp/d5/copy-disk0.img"
same --name "$tmp/C" "$tmp/d5/copy_VARS.fd"
same --name "$tmp/D" "$tmp/d5/copy-tpm/tpm2/tpm2-00.permall"
x=$tmp/d5/copy.xml
grep -q '<name>copy</name>' "$x" || bad "--name: $(cat "$x")"
grep -q '6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e' "$x" &&
    bad "--name: the copy kept the UUID"
grep -qF "$tmp/d5/copy-disk0.img" "$x" || bad "--name: $(cat "$x")"

# 6. Files of the same name: refused, and unchanged.  (--force asks
# libvirt which domains use them: export-embed.sh.)
printf 'not the stream' >"$tmp/d1/disk1.img"
run 1 vmferry-import --dir "$tmp/d1" "$tmp/raw.vmf" && errs 'already exists'
[[ $(cat "$tmp/d1/disk1.img") == 'not the stream' ]] ||
    bad "refused, but changed"
same refused "$tmp/A" "$tmp/d1/disk0.img"
[[ -z $(leftovers "$tmp/d1") ]] || bad "refused: left $(leftovers "$tmp/d1")"

# 7. A link where a file goes is never written through: refused, and the
# file it points at stays as it was.
mkdir "$tmp/d7"
printf 'victim' >"$tmp/victim"
ln -s "$tmp/victim" "$tmp/d7/disk1.img"
run 1 vmferry-import --dir "$tmp/d7" "$tmp/raw.vmf" && errs 'disk1.img'
[[ $(cat "$tmp/victim") == victim ]] || bad "link: written through"
[[ $(readlink "$tmp/d7/disk1.img") == "$tmp/victim" ]] || bad "the link changed"
[[ $(ls -A "$tmp/d7") == disk1.img ]] || bad "link: left $(ls -A "$tmp/d7")"

# 8. --progress: every file begins and ends, and the run ends complete.
mkdir "$tmp/d8"
run 0 vmferry-import -q --progress=3 --dir "$tmp/d8" "$tmp/zstd.vmf" \
    3>"$tmp/prog"
jq -se --argjson t $(($(stat -c %s "$tmp/A") + $(stat -c %s "$tmp/B"))) \
    '([.[] | select(.event == "end") | .label] == ["disk0.img", "disk1.img"])
     and (map(select(.event == "end" and .done != .total)) == [])
     and (last | .run_done == $t and .run_total == $t)' \
    "$tmp/prog" >/dev/null ||
    bad "--progress: $(cat "$tmp/prog")"

# 9. From a pipe, as standard input.
mkdir "$tmp/d9"
$VG "$T/vmferry-import" -q --dir "$tmp/d9" - <"$tmp/zstd.vmf" ||
    bad "from standard input: failed"
same stdin "$tmp/A" "$tmp/d9/disk0.img"

# 10. A stream cut anywhere leaves nothing (no --resumable): in the
# manifest, inside a file's data, just before END.
size=$(stat -c %s "$tmp/roles.vmf")
for at in 100 $((size / 2)) $((size - 60)); do
    rm -rf "$tmp/d10"
    mkdir "$tmp/d10"
    head -c "$at" "$tmp/roles.vmf" >"$tmp/cut.vmf"
    run 1 vmferry-import --dir "$tmp/d10" "$tmp/cut.vmf" && errs truncated
    [[ -z $(ls -A "$tmp/d10") ]] || bad "cut at $at: left $(ls -A "$tmp/d10")"
    run 1 vmferry-info "$tmp/cut.vmf" && errs truncated
done

# 11. A kill while NAME.xml is written (it is written unnamed, then
# linked) leaves no temporary file of it and no partial NAME.xml; the
# placed files stay.
mkdir "$tmp/d11"
VMFERRY_FAULT=place-xml-written:kill \
    run 137 vmferry-import --dir "$tmp/d11" "$tmp/roles.vmf"
same killed "$tmp/A" "$tmp/d11/disk0.img"
[[ ! -e $tmp/d11/mk.xml ]] || bad "killed: mk.xml written: $(cat "$tmp/d11/mk.xml")"
leftovers "$tmp/d11" | grep -q 'xml' &&
    bad "killed: left $(leftovers "$tmp/d11")"

# 12. Where the unnamed file cannot be linked (no CAP_DAC_READ_SEARCH and
# no /proc, as in a bare chroot), NAME.xml is still written, through a
# named temporary file.
if [[ -n ${ASAN_OPTIONS:-} ]]; then
    # ASan reads its options from /proc/self/environ and its leak check
    # walks /proc/PID/task: without /proc it ends the run with an error.
    echo "skip 12: the sanitizer build cannot run without /proc"
elif [[ $(id -u) == 0 ]] && command -v capsh >/dev/null &&
    unshare -m true 2>/dev/null; then
    mkdir "$tmp/d12"
    unshare -m --propagation private sh -c 'umount -l /proc &&
        exec capsh --drop=cap_dac_read_search -- -c "exec \"\$0\" \"\$@\"" \
            "$@"' sh "$T/vmferry-import" --dir "$tmp/d12" "$tmp/roles.vmf" \
        >"$tmp/out" 2>"$tmp/err" || bad "no /proc: $(cat -v "$tmp/err")"
    [[ -s $tmp/d12/mk.xml ]] || bad "no /proc: no mk.xml: $(cat -v "$tmp/err")"
    [[ -z $(leftovers "$tmp/d12") ]] || bad "no /proc: left $(leftovers "$tmp/d12")"
else
    echo "skip 12: needs root, capsh and unshare (a mount namespace without /proc)"
fi

finish
