#!/bin/bash
# The Ansible collection (ansible/ansible_collections/vmferry/fleet) passes
# ansible-lint (production profile) and its module's documentation parses
# (ansible-doc).  Skipped, saying so, without ansible-lint or ansible-doc.
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
find "$coll" -name __pycache__ -prune -exec rm -rf {} +
echo "ansible collection OK"
