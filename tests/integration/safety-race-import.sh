#!/bin/bash
# The race matrix of vmferry-import: the destination changes while an
# import waits at each named point (lib/fault.h, action "stop": the import
# stops itself there and says so through a FIFO; the test changes the
# host, then lets it go on), with and without --force:
#   file    a file appears at the disk's final name
#   domain  another domain of the same name (another UUID) is defined
#   start   (--force over an older copy) that older domain is started
#   user    (--force) another domain is defined on the older copy's disk
# Whatever the moment, the outcome is one of two, never a mix: the import
# refuses, names what it found, and what appeared is untouched (the file's
# content, the domain's definition, a running domain and its disk); or
# (--force, where --force allows it) the import replaces it and the copy is
# whole.  A running domain never loses a file, and no domain's file is
# replaced while another domain refers to it.
. "$(dirname "$0")/functions.sh"

type report >/dev/null 2>&1 || report() { :; }
requires qemu-img
requires mkfifo

vm=t-race
dest=/var/lib/libvirt/images/race
other=/var/lib/libvirt/images/race-other
dir_on_b "$dest"
dir_on_b "$other"

make_vm "$vm" raw 32M 0x44@0+1M
uuid=$(virsh_a domuuid "$vm")
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/old.vmf"
sum_old=$(sha256sum <"$IMAGES_A/$vm.img")
on_a qemu-io -f raw -c 'write -P 0x45 4M 1M' "$IMAGES_DIR/$vm.img" >/dev/null
on_a vmferry-export -c qemu:///system "$vm" -o "$SCRATCH/new.vmf"
sum_new=$(sha256sum <"$IMAGES_A/$vm.img")

drop_b() {
    local d
    for d in "$vm" t-race-user; do
        virsh_b -q destroy "$d" >/dev/null 2>&1 || true
        virsh_b -q undefine "$d" >/dev/null 2>&1 || true
    done
    for d in $(virsh_b -q list --all --name | grep "^$vm\." || true); do
        virsh_b -q undefine "$d" >/dev/null 2>&1 || true
    done
    on_b sh -c "rm -rf $dest/* $dest/.[!.]* $other/*"
}
cleanup_add drop_b

# A domain of B on FILE, named NAME, with UUID U (another VM of the host).
define_other() {   # define_other NAME UUID FILE
    tb_domain_xml "$1" "$VIRT_TYPE" "$3" raw 64 | sed "s|<uuid>[^<]*</uuid>||; s|<name>$1</name>|&<uuid>$2</uuid>|" \
        >"$SCRATCH/other.xml"
    grep -q "<uuid>$2</uuid>" "$SCRATCH/other.xml" || fail "cannot write the other domain's XML"
    virsh_b -q define "$SCRATCH/other.xml" >/dev/null
}

# trace: the points of an import with ARGS.
trace() {
    : >"$SCRATCH/trace"
    on_b env VMFERRY_FAULT_TRACE="$SCRATCH/trace" vmferry-import --dir "$dest" --define "$@" \
        >/dev/null 2>&1 || fail "the traced import $* failed"
    sort -u "$SCRATCH/trace"
}
wanted='import-checked|import-end|place-locked|place-journaled|place-renamed|place-files-done|place-defined-tmp'

# race FORCE POINT ACTION: one run.  Sets $outcome to "refused" or "done".
race() {
    local force=$1 point=$2 action=$3 pid job at rc=0 stream=old.vmf
    local -a args=(--dir "$dest" --define)
    drop_b
    if [[ $force == force ]]; then
        on_b vmferry-import "${args[@]}" "$SCRATCH/old.vmf" >/dev/null 2>&1 ||
            fail "$force $point $action: cannot set up the older copy"
        args+=(--force)
        stream=new.vmf
    fi
    rm -f "$SCRATCH/notify"
    mkfifo "$SCRATCH/notify"
    on_b env VMFERRY_FAULT="$point:stop" VMFERRY_FAULT_NOTIFY="$SCRATCH/notify" \
        vmferry-import "${args[@]}" "$SCRATCH/$stream" >"$SCRATCH/out" 2>&1 &
    job=$!
    # Blocks until the import has stopped itself at POINT (it says where
    # and its pid, which SIGCONT then reaches: $! is a subshell's).
    read -r at pid <"$SCRATCH/notify" || fail "$force $point $action: no word from the import"
    [[ $at == "$point" && $pid =~ ^[0-9]+$ ]] || fail "$force $point $action: stopped at '$at $pid'"
    intruder="" started=0 user=0
    case $action in
        file)
            if on_b sh -c "set -C; echo intruder >$dest/$vm.img" 2>/dev/null; then
                intruder=1
            fi
            ;;
        dir)
            on_b mkdir "$dest/$vm.img" 2>/dev/null && intruder=1
            ;;
        domain)
            virsh_b -q undefine "$vm" >/dev/null 2>&1 || true
            define_other "$vm" 11111111-2222-3333-4444-555555555555 "$other/intruder.img"
            intruder=1
            ;;
        start)
            virsh_b -q start "$vm" >/dev/null 2>&1 && started=1
            ;;
        user)
            define_other t-race-user 21111111-2222-3333-4444-555555555555 "/var/lib/libvirt/images/race/$vm.img"
            user=1
            ;;
    esac
    kill -CONT "$pid"
    wait "$job" || rc=$?
    ((rc == 0 || rc == 1)) || fail "$force $point $action: exit status $rc: $(cat "$SCRATCH/out")"
    case $action in
        file)
            if [[ -n $intruder && $force != force ]]; then
                ((rc == 1)) || fail "$point file: a file that appeared was replaced without --force"
                [[ $(on_b cat "$dest/$vm.img") == intruder ]] || fail "$point file: the intruder changed"
                grep -q 'was created during the transfer\|already exists' "$SCRATCH/out" ||
                    fail "$point file: unclear: $(cat "$SCRATCH/out")"
            fi
            ;;
        dir)
            if [[ -n $intruder ]]; then
                ((rc == 1)) || fail "$point dir: a directory that appeared was replaced"
                on_b test -d "$dest/$vm.img" || fail "$point dir: the directory is gone"
                grep -q 'was created during the transfer\|already exists\|not a plain file' \
                    "$SCRATCH/out" || fail "$point dir: unclear: $(cat "$SCRATCH/out")"
            fi
            ;;
        domain)
            if [[ $force != force ]]; then
                ((rc == 1)) || fail "$point domain: a domain defined meanwhile was replaced"
                [[ $(virsh_b domuuid "$vm") == 11111111-2222-3333-4444-555555555555 ]] ||
                    fail "$point domain: the other domain of that name is gone"
                grep -q 'already exists\|defined on this host during the transfer\|defined on this host meanwhile' \
                    "$SCRATCH/out" || fail "$point domain: unclear: $(cat "$SCRATCH/out")"
            fi
            ;;
        start)
            if ((started)); then
                ((rc == 1)) || fail "$point start: a domain started meanwhile was replaced"
                [[ $(virsh_b domstate "$vm") == running ]] || fail "$point start: the domain stopped"
                grep -q 'running\|in use' "$SCRATCH/out" || fail "$point start: unclear: $(cat "$SCRATCH/out")"
                [[ $(sha256sum <"$IMAGES_B/race/$vm.img") == "$sum_old" ]] ||
                    fail "$point start: the running domain's disk was replaced"
                virsh_b -q destroy "$vm" >/dev/null
            else
                ((rc == 0)) || fail "$point start: the start failed (locked) but so did the import: $(cat "$SCRATCH/out")"
            fi
            ;;
        user)
            if ((rc == 0)); then
                # Replaced only if the other domain came too late to be
                # seen (after the file was exchanged): then it refers to
                # the new file, and the old one is not its data.
                [[ $point == place-renamed || $point == place-files-done ||
                   $point == place-defined-tmp ]] ||
                    fail "$point user: replaced a file another domain refers to"
            else
                grep -q 'used by domain t-race-user' "$SCRATCH/out" ||
                    fail "$point user: unclear: $(cat "$SCRATCH/out")"
            fi
            ;;
    esac
    # In every case: no half-done move, nothing of the import left.
    [[ -z $(on_b find "$dest" -name '.*vmferry*') ]] ||
        fail "$force $point $action: left over: $(on_b find "$dest" -name '.*vmferry*')"
    if ((rc == 0)); then
        want=$sum_old
        [[ $force == force ]] && want=$sum_new
        [[ $(sha256sum <"$IMAGES_B/race/$vm.img") == "$want" ]] ||
            fail "$force $point $action: succeeded but the copy is not whole"
        outcome=done
    else
        outcome=refused
    fi
    report race "import-$force-$point-$action ($outcome)" ok
    races=$((races + 1))
}

races=0
drop_b
mapfile -t fresh < <(trace "$SCRATCH/old.vmf" | grep -E "^($wanted)$")
drop_b
on_b vmferry-import --dir "$dest" --define "$SCRATCH/old.vmf" >/dev/null 2>&1
mapfile -t forced < <(trace --force "$SCRATCH/new.vmf" | grep -E "^($wanted)$")
((${#fresh[@]} >= 6 && ${#forced[@]} >= 6)) || fail "too few points: ${fresh[*]} / ${forced[*]}"
for p in "${fresh[@]}"; do
    for a in file dir domain; do
        race fresh "$p" "$a"
        echo "   fresh, $p, $a: $outcome"
    done
done
for p in "${forced[@]}"; do
    for a in file domain start user; do
        race force "$p" "$a"
        echo "   --force, $p, $a: $outcome"
    done
done
echo "$races races tried, nothing lost"
