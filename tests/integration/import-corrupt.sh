#!/bin/bash
# Streams cut at random offsets and with random bytes flipped, several
# seeds each: the import fails with an error naming the record and byte
# offset, nothing is defined, nothing is left under a final name, and no
# temporary file remains.
. "$(dirname "$0")/functions.sh"

on_a vmferry-export -c qemu:///system vmf-qcow2 -o "$SCRATCH/good.vmf"
len=$(stat -c %s "$SCRATCH/good.vmf")
vmferry-info --verify "$SCRATCH/good.vmf" >/dev/null || fail "the good stream does not verify"
echo "good stream: $len bytes"

dest=/var/lib/libvirt/images/corrupt
dir_on_b "$dest"
cleanup_add virsh_b -q undefine t-corrupt

# expect_refused DESCRIPTION STREAM
expect_refused() {
    if on_b $VG vmferry-import --dir "$dest" --define --name t-corrupt "$2" 2>"$SCRATCH/err"; then
        fail "$1: import succeeded"
    fi
    grep -qE 'record [0-9]+|truncated|digest mismatch' "$SCRATCH/err" ||
        fail "$1: the error does not say where: $(cat "$SCRATCH/err")"
    grep -q 'nothing was defined and no file was left' "$SCRATCH/err" ||
        fail "$1: the error does not say what was left: $(cat "$SCRATCH/err")"
    virsh_b domuuid t-corrupt >/dev/null 2>&1 && fail "$1: t-corrupt was defined"
    [[ -z $(on_b ls -A "$dest") ]] || fail "$1: files left in $dest: $(on_b ls -A "$dest")"
    echo "   $1: $(head -c 160 "$SCRATCH/err")"
}

for seed in 1 2 3 4 5 6; do
    RANDOM=$seed
    cut=$(((RANDOM * 32768 + RANDOM) % len))
    head -c "$cut" "$SCRATCH/good.vmf" >"$SCRATCH/cut.vmf"
    expect_refused "seed $seed: cut at byte $cut" "$SCRATCH/cut.vmf"

    cp "$SCRATCH/good.vmf" "$SCRATCH/flip.vmf"
    for _ in 1 2 3; do
        off=$(((RANDOM * 32768 + RANDOM) % len))
        byte=$(od -An -tu1 -j "$off" -N1 "$SCRATCH/flip.vmf" | tr -d ' ')
        printf "$(printf '\\%03o' $(((byte ^ (1 + RANDOM % 255)) & 255)))" |
            dd of="$SCRATCH/flip.vmf" bs=1 seek="$off" conv=notrunc status=none
    done
    cmp -s "$SCRATCH/good.vmf" "$SCRATCH/flip.vmf" && fail "seed $seed: flipping changed nothing"
    expect_refused "seed $seed: 3 bytes flipped" "$SCRATCH/flip.vmf"
done

# A cut right before the END record: all data is there but not the end.
head -c $((len - 56)) "$SCRATCH/good.vmf" >"$SCRATCH/noend.vmf"
expect_refused "no END record" "$SCRATCH/noend.vmf"

# And the good stream still imports afterwards.
on_b vmferry-import --dir "$dest" --define --name t-corrupt "$SCRATCH/good.vmf" ||
    fail "the good stream does not import"
echo "corrupt streams refused"
