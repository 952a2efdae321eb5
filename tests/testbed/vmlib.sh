# shellcheck shell=bash
# Helpers shared by testbed.sh and tests/integration/functions.sh to build
# test disks and domain XML.  Sourced, never run.  Nothing here prints
# except on error; callers decide what to do with a non-zero return.

# Paths as seen *inside* a test host's mount namespace.
# shellcheck disable=SC2034 # used by the scripts that source this file
TB_IMAGES_DIR=/var/lib/libvirt/images
TB_NVRAM_DIR=/var/lib/libvirt/qemu/nvram
TB_SWTPM_DIR=/var/lib/libvirt/swtpm
TB_OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
TB_OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
TB_GIB=$((1024 * 1024 * 1024))

# tb_bytes SIZE: print SIZE (a number with an optional K/M/G suffix, powers
# of 1024) in bytes.
tb_bytes() {
    local n=$1 mult=1
    case $n in
        *[kK]) mult=1024; n=${n%?} ;;
        *[mM]) mult=$((1024 * 1024)); n=${n%?} ;;
        *[gG]) mult=$((1024 * 1024 * 1024)); n=${n%?} ;;
    esac
    case $n in
        '' | *[!0-9]*)
            echo "tb_bytes: not a size: $1" >&2
            return 1
            ;;
    esac
    echo $((n * mult))
}

# tb_check_name NAME: domain and file names we build paths from must be
# plain, so they can go into XML and paths without quoting.
tb_check_name() {
    case $1 in
        '' | *[!A-Za-z0-9_.-]* | .*)
            echo "bad test VM name '$1' (use [A-Za-z0-9_.-], no leading dot)" >&2
            return 1
            ;;
    esac
}

# tb_make_disk RUNNER PATH FORMAT SIZE BACKING PATTERN...
#   RUNNER  command prefix that runs a command in the target host's mount
#           namespace (a function name such as on_a); may be "" for none.
#   PATH    image path inside that namespace; must not exist yet.
#   FORMAT  raw or qcow2.
#   SIZE    virtual size (qemu-img syntax).
#   BACKING backing file (qcow2 only, format qcow2, recorded with -F) or "".
#   PATTERN 0xNN@OFFSET+LENGTH, written with qemu-io 'write -P'.
# Raw images are created sparse (truncate), so untouched ranges are holes.
tb_make_disk() {
    local runner=$1 path=$2 fmt=$3 size=$4 backing=$5
    shift 5
    local -a io=()
    local p pat rest off len chunk
    for p in "$@"; do
        pat=${p%%@*}
        rest=${p#*@}
        off=${rest%%+*}
        len=${rest#*+}
        if [[ $p != *@*+* || -z $pat || -z $off || -z $len ]]; then
            echo "tb_make_disk: bad pattern '$p' (want 0xNN@OFFSET+LENGTH)" >&2
            return 1
        fi
        off=$(tb_bytes "$off") && len=$(tb_bytes "$len") || return 1
        # qemu-io takes at most 2 GiB - 512 per request.
        while ((len > 0)); do
            chunk=$((len < TB_GIB ? len : TB_GIB))
            io+=(-c "write -P $pat $off $chunk")
            off=$((off + chunk))
            len=$((len - chunk))
        done
    done
    case $fmt in
        raw)
            [[ -z $backing ]] || { echo "tb_make_disk: raw cannot have a backing file" >&2; return 1; }
            $runner qemu-img create -q -f raw "$path" "$size" || return 1
            ;;
        qcow2)
            if [[ -n $backing ]]; then
                $runner qemu-img create -q -f qcow2 -b "$backing" -F qcow2 "$path" "$size" || return 1
            else
                $runner qemu-img create -q -f qcow2 "$path" "$size" || return 1
            fi
            ;;
        *)
            echo "tb_make_disk: unsupported format '$fmt'" >&2
            return 1
            ;;
    esac
    if ((${#io[@]})); then
        local out
        if ! out=$($runner qemu-io -f "$fmt" "${io[@]}" "$path" 2>&1); then
            echo "tb_make_disk: writing patterns into $path failed:" >&2
            grep -v -e '^wrote ' -e ' ops; ' <<<"$out" >&2
            return 1
        fi
    fi
}

# tb_domain_xml NAME VIRT_TYPE DISK FORMAT MEM_MIB [FEATURE...]
# Print a domain definition: no network, no graphics, one virtio disk.
# FEATURE: uefi (q35 + OVMF pflash + NVRAM from the template), tpm
# (q35 + tpm-crb with an emulator backend, TPM 2.0).  The NVRAM file is
# <nvram dir>/NAME_VARS.fd.
tb_domain_xml() {
    local name=$1 type=$2 disk=$3 fmt=$4 mem=$5
    shift 5
    local machine=pc uefi=0 tpm=0 f
    for f in "$@"; do
        case $f in
            uefi) uefi=1; machine=q35 ;;
            tpm) tpm=1; machine=q35 ;;
            *) echo "tb_domain_xml: unknown feature '$f'" >&2; return 1 ;;
        esac
    done
    tb_check_name "$name" || return 1
    echo "<domain type='$type'>"
    echo "  <name>$name</name>"
    echo "  <memory unit='MiB'>$mem</memory>"
    echo "  <vcpu>1</vcpu>"
    echo "  <os>"
    echo "    <type arch='x86_64' machine='$machine'>hvm</type>"
    if ((uefi)); then
        echo "    <loader readonly='yes' type='pflash'>$TB_OVMF_CODE</loader>"
        echo "    <nvram template='$TB_OVMF_VARS'>$TB_NVRAM_DIR/${name}_VARS.fd</nvram>"
    fi
    echo "  </os>"
    echo "  <features><acpi/></features>"
    echo "  <on_poweroff>destroy</on_poweroff>"
    echo "  <on_reboot>restart</on_reboot>"
    echo "  <on_crash>destroy</on_crash>"
    echo "  <devices>"
    echo "    <emulator>/usr/bin/qemu-system-x86_64</emulator>"
    echo "    <disk type='file' device='disk'>"
    echo "      <driver name='qemu' type='$fmt'/>"
    echo "      <source file='$disk'/>"
    echo "      <target dev='vda' bus='virtio'/>"
    echo "    </disk>"
    if ((tpm)); then
        echo "    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"
    fi
    echo "    <memballoon model='none'/>"
    echo "  </devices>"
    echo "</domain>"
}
