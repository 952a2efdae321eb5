#!/bin/bash
# The Ansible collection (ansible/ansible_collections/vmferry/fleet) passes
# ansible-lint (production profile), its module's documentation parses
# (ansible-doc), and its filter vmferry.fleet.waves cuts plans right.  Skipped, saying so, without ansible-lint or ansible-doc.
set -euo pipefail

src=${VMFERRY_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
coll=$src/ansible/ansible_collections/vmferry/fleet
for c in ansible-lint ansible-doc; do
    command -v "$c" >/dev/null || { echo "SKIP: no $c (Debian: ansible, ansible-lint)"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Their caches and settings go to a scratch home, not the user's.
export HOME=$tmp ANSIBLE_HOME=$tmp/ansible NO_COLOR=1
# ansible-lint writes a .ansible cache and Python writes __pycache__ in
# the directory it lints: lint a copy.
cp -a "$coll" "$tmp/fleet"
(cd "$tmp/fleet" && ansible-lint --profile production) >"$tmp/lint.out" 2>&1 || {
    cat "$tmp/lint.out" >&2
    echo "FAIL: ansible-lint finds problems in the collection" >&2
    exit 1
}
ANSIBLE_COLLECTIONS_PATH=$src/ansible ansible-doc vmferry.fleet.migrate >"$tmp/doc.out" 2>&1 || {
    cat "$tmp/doc.out" >&2
    echo "FAIL: ansible-doc cannot read vmferry.fleet.migrate's documentation" >&2
    exit 1
}
grep -q "^= domain" "$tmp/doc.out" || {
    echo "FAIL: ansible-doc does not show the option domain" >&2
    exit 1
}
# The filter vmferry.fleet.waves (pure code): every wave within the
# limits, the plan's order kept where they allow, bad plans refused.
PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 - "$src/ansible" <<'PY' || {
import sys
sys.path.insert(0, sys.argv[1])
from ansible.errors import AnsibleFilterError
from ansible_collections.vmferry.fleet.plugins.filter.waves import waves


def names(ws):
    return [[m["domain"] for m in w] for w in ws]


plan = [dict(domain=d, source=s, dest=t) for d, s, t in [
    ("ab", "a", "b"), ("ac", "a", "c"), ("ba", "b", "a"),
    ("live", "a", "b"), ("ren", "a", "c"), ("blk", "a", "c")]]
assert names(waves(plan)) == [[m["domain"] for m in plan]]
assert names(waves(plan, per_host=2)) == [["ab", "ac"], ["ba", "live"], ["ren", "blk"]]
assert names(waves(plan, per_source=2, per_dest=2)) == \
    [["ab", "ac", "ba"], ["live", "ren"], ["blk"]]
assert {m["domain"]: m["wave"] for w in waves(plan, per_source=1) for m in w} == \
    dict(ab=0, ac=1, ba=0, live=2, ren=3, blk=4)
# 500 moves over 20 hosts, 2 out and 2 in at once: within the limits.
big = [dict(domain="vm%d" % i, source="h%d" % (i % 20),
            dest="h%d" % ((i % 20 + 1 + i // 20 % 19) % 20)) for i in range(500)]
ws = waves(big, per_source=2, per_dest=2)
assert sum(len(w) for w in ws) == 500 and len(ws) >= 13, len(ws)
for w in ws:
    for key in ("source", "dest"):
        counts = {}
        for m in w:
            counts[m[key]] = counts.get(m[key], 0) + 1
        assert max(counts.values()) <= 2, (key, counts)
for bad, args in (([dict(domain="x", source="a", dest="a")], {}),
                  ([dict(domain="x", source="a")], {}),
                  ([dict(domain="x", source="a", dest="b")] * 2, {}),
                  (plan, {"per_host": -1}), ("not a list", {})):
    try:
        waves(bad, **args)
    except AnsibleFilterError:
        continue
    raise AssertionError("waves accepted %r %r" % (bad, args))
PY
    echo "FAIL: the filter vmferry.fleet.waves breaks a limit or takes a bad plan" >&2
    exit 1
}
find "$coll" -name __pycache__ -prune -exec rm -rf {} +
echo "ansible collection OK"
