#!/bin/bash
# The site differences of the test bed (testbed.sh header): host B lacks
# A's image directory, A's network, A's bridge and A's emulator path, and
# cannot run the CPU model the VM asks for.  vmferry-check must report each
# with the fix; applying exactly the suggested rewrites must make the check
# pass; the rewritten stream (disk data byte for byte, still verifying) is
# imported over SSH, defined and started on B, and uses B's things.
. "$(dirname "$0")/functions.sh"

requires jq
[[ ${SITE_OK:-0} == 1 ]] || skip "the test bed has no site differences: ${SITE_REASON:-unknown}"

vm=t-site
disk_a=$SITE_DIR_A/$vm.qcow2
cleanup_add purge_vm "$vm"
cleanup_add on_a rm -f "$disk_a"

# A CPU model B can run, made unrunnable by a feature this CPU lacks.
caps=$(virsh_b domcapabilities --virttype "$VIRT_TYPE")
model=$(sed -n "s|.*<model usable='yes'[^>]*>qemu64</model>.*|qemu64|p" <<<"$caps" | head -n1)
[[ -n $model ]] || model=$(sed -n "s|.*<model usable='yes'[^>]*>\([^<]*\)</model>.*|\1|p" <<<"$caps" | head -n1)
[[ -n $model ]] || skip "host B's domain capabilities list no usable CPU model"
flags=" $(sed -n 's/^flags[[:space:]]*: //p' /proc/cpuinfo | head -n1) "
feature=
for pair in avx512f:avx512f avx512bw:avx512bw avx512vl:avx512vl amx-tile:amx_tile \
    avx512-fp16:avx512_fp16 avx512vnni:avx512_vnni; do
    if [[ $flags != *" ${pair#*:} "* ]]; then
        feature=${pair%%:*}
        break
    fi
done
[[ -n $feature ]] || skip "this CPU has every feature we could require and it lack"
echo "   CPU: model $model requiring $feature (absent here)"

tb_make_disk on_a "$disk_a" qcow2 64M "" 0x5a@0+1M 0xa5@8M+512K || fail "cannot make the disk on A"
cat >"$SCRATCH/$vm.xml" <<EOF
<domain type='$VIRT_TYPE'>
  <name>$vm</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <cpu mode='custom' match='exact' check='partial'>
    <model fallback='forbid'>$model</model>
    <feature policy='require' name='$feature'/>
  </cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>$SITE_EMULATOR_A</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$disk_a'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <source network='$SITE_NET_A'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <source bridge='$SITE_BRIDGE_A'/>
      <model type='virtio'/>
    </interface>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
virsh_a -q define "$SCRATCH/$vm.xml" >/dev/null || fail "cannot define $vm on A"

# ---- the check, before anything moves: on host A, against B over SSH
rc=0
on_a $VG vmferry-check -c qemu+ssh://hostb/system --json "$vm" >"$SCRATCH/check1.json" || rc=$?
((rc == 1)) || { cat "$SCRATCH/check1.json"; fail "vmferry-check exits $rc, not 1, for a VM B cannot run"; }
[[ $(jq -r .ok "$SCRATCH/check1.json") == false ]] || fail "check says ok"

# finding CHECK OBJECT FIX...: there is an error finding with exactly this fix.
finding() {
    local check=$1 object=$2 want got
    shift 2
    want=$(printf '%s\n' "$@" | jq -R . | jq -cs .)
    got=$(jq -c --arg c "$check" --arg o "$object" \
        '[.findings[] | select(.severity == "error" and .check == $c and .object == $o) | .fix]' \
        "$SCRATCH/check1.json")
    [[ $got == "[$want]" ]] || {
        jq . "$SCRATCH/check1.json" >&2
        fail "expected one $check error for '$object' with fix $want, got $got"
    }
    echo "   found: $check $object -> $*"
}
emulator_b=$(sed -n 's|.*<path>\(.*\)</path>.*|\1|p' <<<"$caps" | head -n1)
finding path "directory $SITE_DIR_A" --map-path "$SITE_DIR_A=$IMAGES_DIR"
finding emulator "emulator $SITE_EMULATOR_A" --emulator "$emulator_b"
finding network "network $SITE_NET_A" --map-network "$SITE_NET_A=$SITE_NET_B"
finding bridge "bridge $SITE_BRIDGE_A" --map-bridge "$SITE_BRIDGE_A=$SITE_BRIDGE_B"
finding cpu "cpu model $model" --cpu "$model"
n=$(jq '[.findings[] | select(.severity == "error")] | length' "$SCRATCH/check1.json")
((n == 5)) || { jq . "$SCRATCH/check1.json" >&2; fail "$n errors, expected exactly the 5 differences"; }

# The text form says the same and ends with the combined command.
rc=0
vmferry-check -c "$URI_B" -s "$URI_A" "$vm" >"$SCRATCH/check1.txt" || rc=$?
((rc == 1)) || fail "text check exits $rc"
mapfile -t fix < <(jq -r '.fix[]' "$SCRATCH/check1.json")
grep -qxF "rewrite with: vmferry-rewrite ${fix[*]}" "$SCRATCH/check1.txt" ||
    { cat "$SCRATCH/check1.txt"; fail "the text output lacks the combined rewrite"; }

# ---- export, apply exactly the suggested rewrites, check again
on_a $VG vmferry-export -c qemu:///system -o "$SCRATCH/a.vmf" "$vm" || fail "export failed"
$VG vmferry-rewrite "${fix[@]}" -o "$SCRATCH/b.vmf" "$SCRATCH/a.vmf" || fail "rewrite failed"
vmferry-info --verify "$SCRATCH/b.vmf" >/dev/null || fail "the rewritten stream does not verify"
$VG vmferry-check -c "$URI_B" --json "$SCRATCH/b.vmf" >"$SCRATCH/check2.json" ||
    { jq . "$SCRATCH/check2.json"; fail "the check still fails after the suggested rewrites"; }
[[ $(jq -r .ok "$SCRATCH/check2.json") == true ]] || fail "check2 not ok"
echo "   after the rewrite: check passes"

# Only the manifest and the XML changed: every record from the first
# FILE_BEGIN on is the same bytes (records 0-2 are header, manifest, XML).
meta_end() { # byte offset after record 2
    local f=$1 off=0 len
    for _ in 0 1 2; do
        len=$(od -An -tu4 -j $((off + 12)) -N4 "$f" | tr -d ' ')
        off=$((off + 48 + len))
    done
    echo "$off"
}
ea=$(meta_end "$SCRATCH/a.vmf") eb=$(meta_end "$SCRATCH/b.vmf")
cmp <(tail -c +$((ea + 1)) "$SCRATCH/a.vmf") <(tail -c +$((eb + 1)) "$SCRATCH/b.vmf") ||
    fail "records after the XML differ between the exported and the rewritten stream"
records=$(vmferry-info --json "$SCRATCH/a.vmf" | jq '[.files[].records] | add')
((records >= 3)) || fail "only $records file records in the stream: test is void"
echo "   $records file records identical ($(($(stat -c %s "$SCRATCH/a.vmf") - ea)) bytes)"

# ---- import on B over SSH, define, start
ssh_b "$VG vmferry-import --dir $IMAGES_DIR --start" <"$SCRATCH/b.vmf" ||
    fail "import --start on B failed"
wait_state b "$vm" running 30 || fail "$vm does not run on B"
xml=$(virsh_b dumpxml --inactive "$vm")
for want in "<emulator>$emulator_b</emulator>" "network='$SITE_NET_B'" "bridge='$SITE_BRIDGE_B'" \
    "file='$IMAGES_DIR/$vm.qcow2'" ">$model</model>"; do
    grep -qF "$want" <<<"$xml" || { echo "$xml" >&2; fail "B's definition lacks $want"; }
done
grep -qF "$feature" <<<"$xml" && fail "B's definition still requires $feature"
grep -q "$SITE_BRIDGE_B" <<<"$(virsh_b domiflist "$vm")" || fail "no interface on $SITE_BRIDGE_B"
check_disk on_b "$IMAGES_DIR/$vm.qcow2" qcow2 0x5a@0+1M 0xa5@8M+512K 0x00@1M+7M
echo "site move OK: checked, rewritten as suggested, imported and running on B"
