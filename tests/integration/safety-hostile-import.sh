#!/bin/bash
# The hostile-input corpus of vmferry-import, on host B: streams that break
# the format (tests/hostile/cases.sh, the same list vmferry-info refuses),
# names that would become paths outside the target, domain definitions
# that point at host files, qcow2 headers that name host files, forged
# and planted state files.  Each is refused with its own message, nothing
# is defined, and nothing outside the target changes: a before/after
# listing of B's image, TPM and NVRAM directories and of canary files the
# attacks aim at (their content and link count) must be the same.
. "$(dirname "$0")/functions.sh"

type report >/dev/null 2>&1 || report() { :; }
MKSTREAM=${VMFERRY_TEST_TOOLS_DIR:-$VMFERRY_BUILD_DIR/tests/tools}/mkstream
[[ -x $MKSTREAM ]] || fail "no mkstream at $MKSTREAM"
requires qemu-img

dest=/var/lib/libvirt/images/hostile
dir_on_b "$dest"
canary_dir=/var/lib/libvirt/images/canary
dir_on_b "$canary_dir"
on_b sh -c "echo precious >$canary_dir/canary"
canary=$IMAGES_B/canary/canary

# What must never change: B's storage outside the target, and the canary.
outside() {
    find "$IMAGES_B" "$ROOT_B/lib/swtpm" "$ROOT_B/lib/qemu/nvram" \
        -path "$IMAGES_B/hostile" -prune -o \
        \( -type d -printf '%p/\n' \) -o -printf '%p %s %n %T@\n' 2>/dev/null | sort
    cat "$canary"
}
before=$(outside)
domains_before=$(virsh_b -q list --all --name | sort)

# refused NAME EXPECTED IMPORT-ARGS...: the import fails naming EXPECTED,
# the target is empty, nothing else changed, no domain appeared.
refused() {
    local name=$1 expected=$2 rc=0
    shift 2
    on_b vmferry-import --dir "$dest" "$@" >"$SCRATCH/out" 2>&1 || rc=$?
    ((rc == 1)) || fail "$name: exit status $rc, not 1: $(cat "$SCRATCH/out")"
    grep -qF -- "$expected" "$SCRATCH/out" || fail "$name: expected '$expected', got: $(cat "$SCRATCH/out")"
    LC_ALL=C grep -q '[[:cntrl:]]' "$SCRATCH/out" && fail "$name: a control character in: $(cat -v "$SCRATCH/out")"
    [[ -z $(on_b ls -A "$dest") ]] || fail "$name: left in the target: $(on_b ls -A "$dest")"
    [[ $(outside) == "$before" ]] || fail "$name: something outside the target changed: $(diff <(outside) <(echo "$before"))"
    [[ $(virsh_b -q list --all --name | sort) == "$domains_before" ]] || fail "$name: a domain was defined"
    report hostile "import-$name" refused
    count=$((count + 1))
}
count=0

# 1. Streams that break the format: the validator vmferry-info uses.
. "$VMFERRY_SOURCE_DIR/tests/hostile/cases.sh"
mkdir "$SCRATCH/in"
hostile_setup "$SCRATCH/in"
hostile_case() {
    local name=$1 expected=$2
    shift 2
    "$MKSTREAM" "$@" "$SCRATCH/$name.vmf" || fail "$name: mkstream $* failed"
    refused "stream-$name" "$expected" "$SCRATCH/$name.vmf"
    rm -f "$SCRATCH/$name.vmf"
}
hostile_cases "$SCRATCH/in"

# 2. Names from the stream that would make paths.  The domain XML's name
# and UUID (the manifest's are checked by the validator above).
xml() {   # xml NAME UUID [EXTRA-DEVICES]
    printf "<domain type='%s'><name>%s</name><uuid>%s</uuid><memory unit='KiB'>65536</memory>
<os><type arch='x86_64'>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='%s'/><source file='/var/lib/libvirt/images/disk0.img'/><target dev='vda' bus='virtio'/></disk>
%s</devices>%s</domain>\n" "$VIRT_TYPE" "$1" "$2" "${FORMAT:-raw}" "${3:-}" "${4:-}"
}
uuid=6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e
xml '../../escaped' "$uuid" >"$SCRATCH/name.xml"
"$MKSTREAM" --xml "$SCRATCH/name.xml" "$SCRATCH/s.vmf"
refused name-dotdot "domain name '../../escaped' cannot be used" "$SCRATCH/s.vmf"
refused name-dotdot-define "domain name '../../escaped' cannot be used" --define "$SCRATCH/s.vmf"
xml 'mk' '../../../../../../tmp/escaped' >"$SCRATCH/uuid.xml"
"$MKSTREAM" --xml "$SCRATCH/uuid.xml" "$SCRATCH/s.vmf"
refused uuid-dotdot "is not a UUID" --define "$SCRATCH/s.vmf"
# Without --dir the stream would choose the directory: refused.
"$MKSTREAM" --set 'files.0.source_path="/etc/disk0.img"' "$SCRATCH/s.vmf"
on_b vmferry-import "$SCRATCH/s.vmf" >"$SCRATCH/out" 2>&1 && fail "a stream chose /etc"
grep -q "/etc, which is neither a storage pool" "$SCRATCH/out" || fail "unclear: $(cat "$SCRATCH/out")"
[[ $(outside) == "$before" ]] || fail "source_path /etc: something changed"
report hostile import-dir-from-stream refused
count=$((count + 1))

# 3. Definitions that point at the host.  Each refused with its element
# and path named; what the stream carried is fine.
defines() {   # defines NAME EXPECTED XML-EXTRA [IMPORT-ARGS...]
    local name=$1 expected=$2 extra=$3
    shift 3
    xml mk "$uuid" "$extra" >"$SCRATCH/$name.xml"
    "$MKSTREAM" --xml "$SCRATCH/$name.xml" "$SCRATCH/$name.vmf"
    refused "refs-$name" "$expected" --define "$@" "$SCRATCH/$name.vmf"
}
defines disk-host-file '/var/lib/libvirt/images/canary/canary' \
    "<disk type='file' device='disk'><source file='$canary_dir/canary'/><target dev='vdb' bus='virtio'/></disk>"
defines disk-block-device '/dev/vda' \
    "<disk type='block' device='disk'><source dev='/dev/vda'/><target dev='vdb' bus='virtio'/></disk>"
defines serial-file '/etc/shadow' \
    "<serial type='file'><source path='/etc/shadow'/><target port='0'/></serial>"
defines emulator '/tmp/vmferry-evil-emulator' "<emulator>/tmp/vmferry-evil-emulator</emulator>"
defines filesystem '/etc' \
    "<filesystem type='mount'><source dir='/etc'/><target dir='etc'/></filesystem>"
defines hostdev 'pci:0000:00:01.0' \
    "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0' bus='0' slot='1' function='0'/></source></hostdev>"
# In <os>: a host kernel, and NVRAM outside the target.
xml mk "$uuid" "" | sed "s|<type arch='x86_64'>hvm</type>|&<kernel>/boot/vmlinuz</kernel>|" >"$SCRATCH/kernel.xml"
"$MKSTREAM" --xml "$SCRATCH/kernel.xml" "$SCRATCH/kernel.vmf"
refused refs-kernel '/boot/vmlinuz' --define "$SCRATCH/kernel.vmf"
# An NVRAM path the stream names but does not carry (as for a domain that
# never ran): the definition gets one in the target instead, never the
# host file, which stays as it was.
xml mk "$uuid" "" |
    sed -e "s|<domain type='[a-z]*'>|&|" \
        -e "s|<type arch='x86_64'>hvm</type>|<type arch='x86_64' machine='q35'>hvm</type><loader readonly='yes' type='pflash'>$TB_OVMF_CODE</loader><nvram template='$TB_OVMF_VARS'>$canary_dir/canary</nvram>|" \
        -e "s|</os>|</os><features><acpi/></features>|" >"$SCRATCH/nvram.xml"
"$MKSTREAM" --xml "$SCRATCH/nvram.xml" "$SCRATCH/nvram.vmf"
on_b vmferry-import --dir "$dest" --define "$SCRATCH/nvram.vmf" >"$SCRATCH/out" 2>&1 ||
    fail "refs-nvram: the import failed: $(cat "$SCRATCH/out")"
nv=$(virsh_b dumpxml mk | sed -n 's:.*<nvram[^>]*>\(.*\)</nvram>.*:\1:p')
[[ $nv == "$dest/mk_VARS.fd" ]] || fail "refs-nvram: the NVRAM is '$nv', not in the target"
[[ $(cat "$canary") == precious ]] || fail "refs-nvram: the canary changed"
virsh_b -q undefine --nvram mk >/dev/null
on_b sh -c "rm -f $dest/*"
[[ $(outside) == "$before" ]] || fail "refs-nvram: something outside the target changed"
report hostile import-refs-nvram refused
count=$((count + 1))
# qemu:commandline: any QEMU argument at all.
xml mk "$uuid" "" "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:arg value='-device'/></qemu:commandline>" \
    >"$SCRATCH/qemu.xml"
"$MKSTREAM" --xml "$SCRATCH/qemu.xml" "$SCRATCH/qemu.vmf"
refused refs-qemu-commandline 'qemu-commandline' --define "$SCRATCH/qemu.vmf"
# Allowed by name, the disk on a host file is defined (and not written).
xml mk "$uuid" "<disk type='file' device='cdrom'><source file='$canary_dir/canary'/><target dev='sda' bus='sata'/><readonly/></disk>" \
    >"$SCRATCH/allowed.xml"
"$MKSTREAM" --xml "$SCRATCH/allowed.xml" "$SCRATCH/allowed.vmf"
refused refs-cdrom-not-allowed "$canary_dir/canary" --define "$SCRATCH/allowed.vmf"
on_b vmferry-import --dir "$dest" --define --allow-path "$canary_dir" "$SCRATCH/allowed.vmf" \
    >"$SCRATCH/out" 2>&1 || fail "--allow-path: the import failed: $(cat "$SCRATCH/out")"
virsh_b domuuid mk >/dev/null || fail "--allow-path: not defined"
[[ $(cat "$canary") == precious ]] || fail "--allow-path: the allowed file changed"
virsh_b -q undefine mk >/dev/null
on_b sh -c "rm -f $dest/*"
echo "   --allow-path $canary_dir: defined, the file untouched"

# 4. qcow2 headers that name host files.  Made with qemu-img -u (the
# backing file is not opened) and an external data file in the scratch
# directory, never a system file.
qemu-img create -q -f qcow2 -u -b /etc/passwd -F raw "$SCRATCH/backing.qcow2" 1M
qemu-img create -q -f qcow2 -o data_file="$SCRATCH/ext.raw",data_file_raw=on "$SCRATCH/datafile.qcow2" 1M
FORMAT=qcow2 xml mk "$uuid" >"$SCRATCH/qcow2.xml"
for img in backing datafile; do
    "$MKSTREAM" --content "$SCRATCH/$img.qcow2" --set 'files.0.format="qcow2"' \
        --xml "$SCRATCH/qcow2.xml" "$SCRATCH/$img.vmf"
done
refused qcow2-backing-host-file "names the backing file '/etc/passwd', but the stream gives it none" \
    --define "$SCRATCH/backing.vmf"
refused qcow2-external-data-file "external data file" --define "$SCRATCH/datafile.vmf"
refused qcow2-external-data-file-nodefine "external data file" "$SCRATCH/datafile.vmf"

# 5. State files: planted links and forgeries in the target.  The stream
# is valid (and resumable: its file has a source identity); the state
# must be refused (never read or written through) and the canary keep its
# content and its single link.
ident=(--set 'files.0.source_identity="ino:1 mtime:1.0 size:200000"')
"$MKSTREAM" "${ident[@]}" "$SCRATCH/good.vmf"
"$MKSTREAM" "${ident[@]}" --no-end "$SCRATCH/cut.vmf"
plant() {   # plant NAME: a hard link to the canary at NAME in the target
    on_b ln "$canary_dir/canary" "$dest/$1"
}
planted() {   # planted WHAT: after an import, the canary untouched, the link gone
    [[ $(cat "$canary") == precious ]] || fail "$1: the canary changed"
    on_b sh -c "rm -f $dest/* $dest/.[!.]*"
    [[ $(outside) == "$before" ]] || fail "$1: something outside the target changed"
    report hostile "import-$1" refused
    count=$((count + 1))
}
plant .vmferry-resume-mk.json
on_b vmferry-import --dir "$dest" "$SCRATCH/good.vmf" >"$SCRATCH/out" 2>&1 ||
    fail "state hard link: the import failed: $(cat "$SCRATCH/out")"
grep -q "links" "$SCRATCH/out" || fail "state hard link: not said: $(cat "$SCRATCH/out")"
[[ $(on_b stat -c %h "$canary_dir/canary") == 1 ]] || fail "state hard link: still linked"
planted state-hard-link
plant .vmferry-resume-mk.written
on_b vmferry-import --resumable --dir "$dest" "$SCRATCH/good.vmf" >"$SCRATCH/out" 2>&1 ||
    fail ".written hard link: the import failed: $(cat "$SCRATCH/out")"
planted written-hard-link
on_b ln -s "$canary_dir/canary" "$dest/.vmferry-resume-mk.json"
on_b vmferry-import --dir "$dest" "$SCRATCH/good.vmf" >"$SCRATCH/out" 2>&1 ||
    fail "state symlink: the import failed: $(cat "$SCRATCH/out")"
planted state-symlink
# A cut resumable import, whose temporary file is then replaced by a hard
# link to the canary: the resume query does not offer it, the import of
# the whole stream starts afresh without writing through it, --abort of a
# second such state removes only the link.
for how in query abort; do
    on_b vmferry-import --resumable --dir "$dest" "$SCRATCH/cut.vmf" >"$SCRATCH/out" 2>&1 &&
        fail "a cut stream was imported"
    grep -q 'verified progress was kept' "$SCRATCH/out" || fail "cut: no state kept: $(cat "$SCRATCH/out")"
    tmp=$(on_b ls -A "$dest" | grep '^\.disk0\.img\.vmferry-')
    on_b rm "$dest/$tmp"
    plant "$tmp"
    if [[ $how == query ]]; then
        on_b vmferry-import --resume-query --dir "$dest" "$SCRATCH/good.vmf" >"$SCRATCH/out" 2>&1 || true
        grep -q '"resume":false' "$SCRATCH/out" || fail "hard-linked temp: a resume was offered: $(cat "$SCRATCH/out")"
        on_b vmferry-import --resumable --dir "$dest" "$SCRATCH/good.vmf" >"$SCRATCH/out" 2>&1 ||
            fail "hard-linked temp: the fresh import failed: $(cat "$SCRATCH/out")"
    else
        on_b vmferry-import --abort=mk --dir "$dest" >"$SCRATCH/out" 2>&1 ||
            fail "hard-linked temp: --abort failed: $(cat "$SCRATCH/out")"
    fi
    [[ $(on_b stat -c %h "$canary_dir/canary") == 1 ]] || fail "hard-linked temp ($how): still linked"
    planted "hard-linked-temp-$how"
done
# A forged placement journal (sealed with a valid check line) that names
# another domain of the host as the one the placement renamed aside, or
# as its temporary definition: recovery (--abort here, or the next
# import) renames aside-domains back and undefines temporary ones, so it
# must not act on any domain but this import's own.
printf "<domain type='%s'><name>t-hostile-victim</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>\n" \
    "$VIRT_TYPE" >"$SCRATCH/victim.xml"
virsh_b -q define "$SCRATCH/victim.xml" >/dev/null
cleanup_add virsh_b -q undefine t-hostile-victim
victim_uuid=$(virsh_b domuuid t-hostile-victim)
journal() {   # journal DEFINE_TMP ASIDE: forge mk's journal in the target
    printf '{"format":"vmferry-resume","version":1,"name":"mk","stream_id":"%s","token":"%s","phase":"place","define":true,"uuid":"%s","define_tmp":"%s"%s,"files":[]}\n' \
        0123456789abcdef0123456789abcdef fedcba9876543210fedcba9876543210 \
        "$uuid" "$1" "${2:+,\"aside\":\"$2\"}" >"$SCRATCH/journal.json"
    "$MKSTREAM" --seal-state "$SCRATCH/journal.json" "$SCRATCH/journal"
    on_b cp "$SCRATCH/journal" "$dest/.vmferry-resume-mk.json"
}
for forged in aside define_tmp; do
    if [[ $forged == aside ]]; then journal mk.vmferry-new-aaaaaa t-hostile-victim
    else journal t-hostile-victim ""; fi
    on_b vmferry-import --abort=mk --dir "$dest" >"$SCRATCH/out" 2>&1 || true
    [[ $(virsh_b domuuid t-hostile-victim 2>/dev/null) == "$victim_uuid" ]] ||
        fail "forged journal ($forged): another domain was renamed or undefined: $(cat "$SCRATCH/out")"
    virsh_b domuuid mk >/dev/null 2>&1 && fail "forged journal ($forged): a domain mk appeared"
    planted "forged-journal-$forged"
done
# A forged state naming a file above the target, for --abort.
on_b sh -c "printf '%s\n' '{\"format\":\"vmferry-resume\",\"name\":\"mk\",\"files\":[{\"name\":\"x\",\"tmp\":\"../canary/canary\",\"size\":1,\"offset\":0}]}' >$dest/.vmferry-resume-mk.json"
on_b vmferry-import --abort=mk --dir "$dest" >"$SCRATCH/out" 2>&1 || true
planted forged-state-dotdot

echo "$count hostile inputs refused, nothing written outside the target"
