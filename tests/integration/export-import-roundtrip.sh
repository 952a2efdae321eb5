#!/bin/bash
# Round trips A -> B through OpenSSH, as a user would run them:
#   vmferry-export VM | ssh hostB vmferry-import --dir D --define --name COPY
# for the raw, qcow2, backing-chain and UEFI test VMs.  The files follow
# the new name (vmf-chain-base.qcow2 -> rt-chain-base.qcow2).  Every disk must be
# identical (qemu-img compare), NVRAM byte-identical, the domain defined on
# B with paths into D, its allocation no more than the source's + 1 MiB,
# and it must start and run on B.
. "$(dirname "$0")/functions.sh"

dest=/var/lib/libvirt/images/roundtrip
dir_on_b "$dest"

# drop_b NAME: stop and undefine NAME on host B, if it is there.
drop_b() {
    virsh_b -q destroy "$1" >/dev/null 2>&1 || true
    virsh_b -q undefine --nvram "$1" >/dev/null 2>&1 || true
}

# alloc_kib RUNNER PATH: allocated KiB of a file as its host sees it.
alloc_kib() { "$1" du -k "$2" | cut -f1; }

for vm in vmf-raw vmf-qcow2 vmf-chain vmf-uefi; do
    copy=rt-${vm#vmf-}
    cleanup_add drop_b "$copy"
    echo "== $vm -> host B as $copy"
    # One of them with --start: it must be running when import returns.
    start=""
    [[ $vm == vmf-qcow2 ]] && start=--start
    on_a $VG vmferry-export -c qemu:///system "$vm" |
        ssh_b "$VG vmferry-import --dir $dest --define $start --name $copy" ||
        fail "$vm: export | ssh | import failed"

    if [[ -n $start ]]; then
        [[ $(virsh_b domstate "$copy") == running ]] || fail "$copy: --start did not start it"
        virsh_b -q destroy "$copy" >/dev/null
    fi
    [[ $(virsh_b domstate "$copy") == "shut off" ]] || fail "$copy is not defined on B"
    [[ $(virsh_b domuuid "$copy") != $(virsh_a domuuid "$vm") ]] || fail "$copy kept the source UUID"

    # Each disk of the source and its copy, by target.
    while read -r target src; do
        [[ -n $target ]] || continue
        dst=$(virsh_b domblklist "$copy" | awk -v t="$target" '$1 == t {print $2}')
        [[ $dst == "$dest/"* ]] || fail "$copy: disk $target points at '$dst', not into $dest"
        # B's overlays name their backing file relatively, so the copy can
        # be opened from host A's namespace through the machine's path.
        on_a qemu-img compare -U "$src" "$IMAGES_B/roundtrip/${dst##*/}" ||
            fail "$vm: disk $target differs from its copy"
        a=$(alloc_kib on_a "$src") b=$(alloc_kib on_b "$dst")
        ((b <= a + 1024)) || fail "$vm: disk $target: copy allocates $b KiB, source $a KiB"
        echo "   $target: identical, allocation $b KiB (source $a KiB)"
    done < <(virsh_a domblklist "$vm" | awk 'NR > 2 && $2 ~ /^\// {print $1, $2}')

    # The backing file travels as its own file, still a backing file.
    if [[ $vm == vmf-chain ]]; then
        info=$(on_b qemu-img info -U --output=json "$dest/$copy.qcow2")
        grep -q "\"backing-filename\": \"$copy-base.qcow2\"" <<<"$info" ||
            fail "vmf-chain copy does not use the copied base: $info"
    fi

    if [[ $vm == vmf-uefi ]]; then
        nv=$(virsh_b dumpxml "$copy" | sed -n 's:.*<nvram[^>]*>\(.*\)</nvram>.*:\1:p')
        [[ $nv == "$dest/${copy}_VARS.fd" ]] || fail "NVRAM path on B is '$nv'"
        cmp "$VMFERRY_TESTBED_DIR/a/lib/qemu/nvram/vmf-uefi_VARS.fd" \
            "$IMAGES_B/roundtrip/${copy}_VARS.fd" || fail "NVRAM differs"
        echo "   NVRAM byte-identical"
    fi

    virsh_b -q start "$copy" >/dev/null || fail "$copy does not start on B"
    wait_state b "$copy" running 30 || fail "$copy does not run on B"
    virsh_b -q destroy "$copy" >/dev/null
    echo "   started and ran on B"
done

# Nothing but final files was left in the directory.
leftovers=$(on_b find "$dest" -name '.*vmferry*')
[[ -z $leftovers ]] || fail "temporary files left: $leftovers"
echo "round trips OK"
