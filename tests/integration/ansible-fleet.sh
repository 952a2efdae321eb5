#!/bin/bash
# The playbook vmferry.fleet.move (ansible/) moves a plan of six domains
# across the three hosts, Ansible reaching each host over SSH as root and
# each move running on its source: A->B, A->C, B->A, one live (A->B,
# running under the bed's virt type), one renamed with a bridge map (A->C),
# one the pre-flight blocks (A->C, a network C lacks; first in the plan,
# so in the first wave, and the later waves still run), with a per-host
# limit of 2 (a host takes part in at most 2 moves at once):
#   - check mode first: every plan line is shown (would-move, the blocked
#     one blocked with its finding), nothing is defined or written on B/C;
#   - the run: five arrive (defined there, each disk compared with
#     qemu-img compare to its source), the blocked one is reported with
#     its finding and nothing of it is on C; no wave has a host in more
#     than 2 moves; the run fails (status 2) because of the blocked one;
#   - the same run again: zero changed in Ansible's recap, every move
#     already-there, 0 bytes sent.
# Prints each run's wall time.
# shellcheck source-path=SCRIPTDIR source=functions.sh
. "$(dirname "$0")/functions.sh"

requires ansible-playbook
requires /usr/bin/python3
requires qemu-img
requires_host_c
[[ ${SITE_OK:-0} == 1 ]] || skip "the bed has no site networks/bridges: ${SITE_REASON:-}"

export ANSIBLE_COLLECTIONS_PATH=$VMFERRY_SOURCE_DIR/ansible
export ANSIBLE_LOCAL_TEMP=$SCRATCH/ansible-tmp ANSIBLE_HOME=$SCRATCH/ansible-home
export ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=json ANSIBLE_HOST_KEY_CHECKING=True
export ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_FORKS=8

# The admin host is this machine; it reaches A, B and C with the bed's
# SSH setup, as root.  Remote temporary files go under $SCRATCH (seen by
# every host).
cat >"$SCRATCH/hosts.yml" <<EOF
all:
  vars:
    ansible_user: root
    ansible_ssh_common_args: -F $SSH_CONFIG
    ansible_python_interpreter: /usr/bin/python3
    ansible_remote_tmp: $SCRATCH/ansible-remote
  hosts:
    hosta:
    hostb:
    hostc:
EOF

# The six domains, small disks.  f-ba starts on B.
make_vm f-ab raw 24M 0x61@0+1M 0x62@20M+1M
make_vm f-ac qcow2 24M 0x63@0+1M
cleanup_add purge_vm f-ba
tb_make_disk on_b "$IMAGES_DIR/f-ba.img" raw 24M "" 0x64@0+1M 0x65@16M+1M ||
    fail "cannot make f-ba's disk on B"
tb_domain_xml f-ba "$VIRT_TYPE" "$IMAGES_DIR/f-ba.img" raw 128 >"$SCRATCH/f-ba.xml"
virsh_b -q define "$SCRATCH/f-ba.xml" >/dev/null || fail "cannot define f-ba on B"
make_vm --start f-live raw 24M 0x66@0+1M
# nic NAME XML: add an interface to NAME's definition on A.
nic() {
    virsh_a dumpxml --inactive "$1" | sed "s|</devices>|$2</devices>|" >"$SCRATCH/$1-nic.xml"
    virsh_a -q define "$SCRATCH/$1-nic.xml" >/dev/null || fail "cannot give $1 an interface"
}
make_vm f-ren raw 24M 0x67@0+1M
cleanup_add purge_vm f-ren-c
nic f-ren "<interface type='bridge'><source bridge='$SITE_BRIDGE_A'/><model type='virtio'/></interface>"
make_vm f-blk raw 24M 0x68@0+1M
nic f-blk "<interface type='network'><source network='$SITE_NET_A'/><model type='virtio'/></interface>"

cat >"$SCRATCH/plan.yml" <<EOF
vmferry_fleet_per_host: 2
vmferry_fleet_plan:
  - {domain: f-blk, source: hosta, dest: hostc}
  - {domain: f-ab, source: hosta, dest: hostb}
  - {domain: f-ac, source: hosta, dest: hostc, bandwidth: 200M}
  - {domain: f-ba, source: hostb, dest: hosta}
  - domain: f-live
    source: hosta
    dest: hostb
    live: true
    extra_args: ["--migrate-uri=tcp://127.0.0.1"]
  - domain: f-ren
    source: hosta
    dest: hostc
    rename: f-ren-c
    new_uuid: true
    map_bridge: ["$SITE_BRIDGE_A=$SITE_BRIDGE_C"]
EOF

# summary_lines NAME: the summary task's lines in NAME's output.
summary_lines() {
    /usr/bin/python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
for p in o["plays"]:
    for t in p["tasks"]:
        if t["task"]["name"] == "Show each move'"'"'s state and bytes":
            print("\n".join(t["hosts"]["localhost"]["msg"]))' "$SCRATCH/$1.out"
}

# play NAME [ARGS]: ansible-playbook vmferry.fleet.move with the plan;
# its JSON output in NAME.out, status in $rc, report in NAME.json.
play() {
    local name=$1 t0
    shift
    t0=$EPOCHREALTIME
    rc=0
    ansible-playbook -i "$SCRATCH/hosts.yml" vmferry.fleet.move -e "@$SCRATCH/plan.yml" \
        -e "vmferry_fleet_report=$SCRATCH/$name.json" "$@" \
        >"$SCRATCH/$name.out" 2>"$SCRATCH/$name.err" || rc=$?
    echo "   $name: ansible-playbook exited $rc in $(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $t0 }") s"
    [[ -s $SCRATCH/$name.json ]] ||
        fail "$name: no report: $(tail -c 3000 "$SCRATCH/$name.out") $(cat "$SCRATCH/$name.err")"
    # The summary task's lines, as an admin sees them.
    summary_lines "$name" >"$SCRATCH/$name.lines" ||
        fail "$name: no summary task in the output: $(tail -c 3000 "$SCRATCH/$name.out")"
    sed 's/^/     /' "$SCRATCH/$name.lines" | cut -c 1-200
}

# check NAME PYTHON: assertions on r (the report: moves by domain, and
# "out", ansible-playbook's JSON output).
check() {
    /usr/bin/python3 -c '
import json, sys
rep = json.load(open(sys.argv[1]))
r = {m["domain"]: m for m in rep["moves"]}
out = json.load(open(sys.argv[2]))
exec(sys.argv[3])' "$SCRATCH/$1.json" "$SCRATCH/$1.out" "$2" ||
        fail "$1: unexpected result: $(cat "$SCRATCH/$1.json")"
}

# nothing_on HOST NAME...: no domain NAME on HOST, and no file whose
# name holds NAME (a copy, a temporary or resume file) in its images.
nothing_on() {
    local h=$1 n f
    shift
    for n in "$@"; do
        virsh -c "$(host_uri "$h")" -q domuuid "$n" >/dev/null 2>&1 && fail "$n is defined on $h"
        f=$(find "$VMFERRY_TESTBED_DIR/$h/lib/images" -name "*$n*" -print -quit)
        [[ -z $f ]] || fail "$n left $f on $h"
    done
    return 0
}

# ---- check mode: the plan, nothing moved
# (with a fleet-wide cap too: the migrate task's throttle takes it)
play check --check -e vmferry_fleet_max_parallel=2
((rc == 2)) || fail "check mode exited $rc, not 2 (the blocked move fails the run)"
check check '
assert rep["check_mode"] is True
assert sorted(r) == sorted(["f-ab", "f-ac", "f-ba", "f-live", "f-ren", "f-blk"]), r
for d in ("f-ab", "f-ac", "f-ba", "f-live", "f-ren"):
    assert r[d]["state"] == "would-move", r[d]
for d in ("f-ab", "f-ac", "f-ba", "f-ren"):
    assert r[d]["plan"]["files"] == 1, r[d]
assert r["f-blk"]["state"] == "blocked", r["f-blk"]'
# Every plan line is shown, each with its state (and the blocked one's
# finding).
/usr/bin/python3 - "$SCRATCH/check.lines" <<'PY' || fail "check mode does not show the six plan lines"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
want = {"f-blk": "blocked", "f-ab": "would-move", "f-ac": "would-move",
        "f-ba": "would-move", "f-live": "would-move", "f-ren": "would-move"}
got = {}
for line in lines:
    m = re.match(r"(f-[a-z]+) host[abc]->host[abc] \(wave \d\): ([a-z-]+)", line)
    assert m, line
    got[m.group(1)] = m.group(2)
    assert m.group(2) != "blocked" or "--map-network" in line, line
assert got == want and len(lines) == 6, (got, lines)
PY
nothing_on b f-ab f-live
nothing_on c f-ac f-ren f-ren-c f-blk
nothing_on a f-ba

# ---- the run
play run
((rc == 2)) || fail "the run exited $rc, not 2 (the blocked move fails the run)"
check run '
for d in ("f-ab", "f-ac", "f-ba", "f-live", "f-ren"):
    assert r[d]["state"] == "moved" and r[d]["changed"] is True, r[d]
for d in ("f-ab", "f-ac", "f-ba", "f-ren"):
    assert r[d]["written"] >= 1 << 20, r[d]
assert r["f-live"]["mode"] == "live", r["f-live"]
assert r["f-ren"]["dest_domain"] == "f-ren-c", r["f-ren"]
b = r["f-blk"]
assert b["state"] == "blocked" and b["changed"] is False, b
assert "network '"$SITE_NET_A"'" in b["msg"] and "--map-network" in b["msg"], b["msg"]
# The per-host limit: in a wave, no host is in more than 2 moves.
waves = {}
for m in rep["moves"]:
    for h in (m["source"], m["dest"]):
        waves.setdefault((m["wave"], h), []).append(m["domain"])
over = {k: v for k, v in waves.items() if len(v) > 2}
assert not over, over
assert max(m["wave"] for m in rep["moves"]) >= 3, rep
assert b["wave"] == 1, b
# Some wave runs more than one move at once.
assert any(len(v) == 2 for v in waves.values()), waves'

# Each copy is defined on its destination and holds its source's data.
virsh_b -q domuuid f-ab >/dev/null || fail "f-ab is not on B"
virsh_c -q domuuid f-ac >/dev/null || fail "f-ac is not on C"
virsh_a -q domuuid f-ba >/dev/null || fail "f-ba is not on A"
wait_state b f-live running 30 || fail "f-live does not run on B"
virsh_c -q domuuid f-ren-c >/dev/null || fail "f-ren-c is not on C"
virsh_c -q domuuid f-ren >/dev/null 2>&1 && fail "f-ren is on C under its old name"
[[ $(virsh_c dumpxml --inactive f-ren-c | xmllint --xpath 'string(//interface/source/@bridge)' -) == "$SITE_BRIDGE_C" ]] ||
    fail "f-ren-c's interface is not on $SITE_BRIDGE_C"
[[ $(virsh_c domuuid f-ren-c) != "$(virsh_a domuuid f-ren)" ]] || fail "f-ren-c kept f-ren's UUID"
# compare_disk SRC_HOST SRC DST_HOST DST FORMAT
compare_disk() {
    qemu-img compare -U -f "$5" -F "$5" "$VMFERRY_TESTBED_DIR/$1/lib/images/$2" \
        "$VMFERRY_TESTBED_DIR/$3/lib/images/$4" >"$SCRATCH/compare.out" 2>&1 ||
        fail "$4 on $3 differs from $2 on $1: $(cat "$SCRATCH/compare.out")"
}
compare_disk a f-ab.img b f-ab.img raw
compare_disk a f-ac.qcow2 c f-ac.qcow2 qcow2
compare_disk b f-ba.img a f-ba.img raw
compare_disk a f-live.img b f-live.img raw
compare_disk a f-ren.img c f-ren-c.img raw
check_disk on_b "$IMAGES_DIR/f-ab.img" raw 0x61@0+1M 0x62@20M+1M || fail "f-ab on B"
check_disk on_a "$IMAGES_DIR/f-ba.img" raw 0x64@0+1M 0x65@16M+1M || fail "f-ba on A"
# The blocked move touched nothing on C.
nothing_on c f-blk

# ---- the same run again: nothing to do, nothing sent
play again
((rc == 2)) || fail "the second run exited $rc, not 2 (f-blk is still blocked)"
check again '
for d in ("f-ab", "f-ac", "f-ba", "f-live", "f-ren"):
    assert r[d]["state"] == "already-there" and r[d]["changed"] is False, r[d]
    assert r[d]["sent"] in (0, None), r[d]
for d in ("f-ab", "f-ac", "f-ba", "f-ren"):
    assert r[d]["sent"] == 0 and r[d]["written"] == 0, r[d]
assert r["f-blk"]["state"] == "blocked", r["f-blk"]
changed = {h: s["changed"] for h, s in out["stats"].items() if s["changed"]}
assert not changed, changed'
nothing_on c f-blk

echo "ansible vmferry.fleet.move OK"
