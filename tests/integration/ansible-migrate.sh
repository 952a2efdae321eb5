#!/bin/bash
# The Ansible module vmferry.fleet.migrate (ansible/) on host A, moving a
# domain to host C: check mode moves nothing and shows the plan
# (would-move, changed); the run moves it (changed, the copy verified on
# C); the same task again is already-there, not changed, no byte sent; a
# move the pre-flight blocks fails the task with the finding in msg and
# creates nothing on C.
# shellcheck source-path=SCRIPTDIR source=functions.sh
. "$(dirname "$0")/functions.sh"

requires ansible
requires python3
requires qemu-io
requires_host_c

export ANSIBLE_COLLECTIONS_PATH=$VMFERRY_SOURCE_DIR/ansible
export ANSIBLE_LOCAL_TEMP=$SCRATCH/ansible-tmp ANSIBLE_REMOTE_TEMP=$SCRATCH/ansible-tmp
export ANSIBLE_NOCOLOR=1 ANSIBLE_LOAD_CALLBACK_PLUGINS=1 ANSIBLE_STDOUT_CALLBACK=json
export ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_HOME=$SCRATCH/ansible-home

vm=t-ans
make_vm "$vm" raw 32M 0x6c@0+1M

# task NAME [-C] ARGS: the module on A (local connection), its task
# result as JSON in $SCRATCH/NAME.json.
task() {
    local name=$1
    shift
    on_a env PATH="$PATH" ansible localhost -c local -i localhost, \
        -m vmferry.fleet.migrate "$@" >"$SCRATCH/$name.out" 2>"$SCRATCH/$name.err" || true
    python3 - "$SCRATCH/$name.out" >"$SCRATCH/$name.json" <<'PY' ||
import json, sys
o = json.load(open(sys.argv[1]))
r = o["plays"][0]["tasks"][0]["hosts"]["localhost"]
json.dump(r, sys.stdout)
PY
        fail "$name: no task result: $(cat "$SCRATCH/$name.out" "$SCRATCH/$name.err")"
}

# check NAME PYTHON: assertions on r, the task's result.
check() {
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); exec(sys.argv[2])" \
        "$SCRATCH/$1.json" "$2" ||
        fail "$1: unexpected task result: $(cat "$SCRATCH/$1.json")"
}

task check -C -a "domain=$vm dest=hostc"
check check '
assert not r.get("failed"), r
assert r["changed"] is True and r["state"] == "would-move", r
assert r["result"]["plan"]["files"] == 1 and "--dry-run" in r["cmd"]'
virsh_c -q domuuid "$vm" >/dev/null 2>&1 && fail "check mode defined $vm on C"

task move -a "domain=$vm dest=hostc"
check move '
assert not r.get("failed"), r
assert r["changed"] is True and r["state"] == "moved", r
assert r["result"]["bytes"]["written"] >= 1 << 20'
virsh_c -q domuuid "$vm" >/dev/null || fail "the module said moved, but $vm is not on C"
check_disk on_c "$IMAGES_DIR/$vm.img" raw 0x6c@0+1M 0x00@1M+31M || fail "$vm's disk on C differs"

task again -a "domain=$vm dest=hostc"
check again '
assert not r.get("failed"), r
assert r["changed"] is False and r["state"] == "already-there", r
assert r["result"]["bytes"]["sent"] == 0'

if [[ ${SITE_OK:-0} == 1 ]]; then
    nvm=t-ans-net
    make_vm "$nvm" raw 16M 0x11@0+1M
    virsh_a dumpxml --inactive "$nvm" |
        sed "s|</devices>|<interface type='network'><source network='$SITE_NET_A'/><model type='virtio'/></interface></devices>|" \
            >"$SCRATCH/$nvm-net.xml"
    virsh_a -q define "$SCRATCH/$nvm-net.xml" >/dev/null || fail "cannot give $nvm a network"
    task blocked -a "domain=$nvm dest=hostc"
    check blocked '
assert r.get("failed") is True and r["changed"] is False, r
assert r["state"] == "blocked"
assert "network '"$SITE_NET_A"'" in r["msg"] and "--map-network" in r["msg"], r["msg"]'
    virsh_c -q domuuid "$nvm" >/dev/null 2>&1 && fail "the blocked move defined $nvm on C"
    echo "   blocked: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["msg"])' "$SCRATCH/blocked.json")"
fi

echo "ansible vmferry.fleet.migrate OK"
