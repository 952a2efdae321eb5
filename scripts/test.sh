#!/bin/sh
# The whole test suite, from a bare Debian 12 machine, as root:
# installs the packages, builds into build/, and runs every test with ctest
# (unit suites, docs checks, and the integration tests on the real two-host
# test bed, which ctest starts before them and tears down after them).
set -eu
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"

# The test bed must leave the machine's own libvirt configuration as it
# was, and no daemon behind: checked after the run.
etc_before=$(find /etc/libvirt -type f -exec md5sum {} + 2>/dev/null | sort)

# If this script is interrupted, take the test bed down too.
trap 'tests/testbed/testbed.sh down >/dev/null 2>&1 || true' INT TERM
rc=0
clean=yes
ctest --test-dir build --output-on-failure --timeout 1200 "$@" || rc=$?

if [ "$(find /etc/libvirt -type f -exec md5sum {} + 2>/dev/null | sort)" != "$etc_before" ]; then
    echo "test.sh: the test run changed /etc/libvirt" >&2
    clean=NO
    rc=1
fi
if [ -e "${VMFERRY_TESTBED_DIR:-/var/tmp/vmferry-testbed}" ]; then
    echo "test.sh: the test bed was not taken down:" >&2
    tests/testbed/testbed.sh status >&2 || true
    clean=NO
    rc=1
fi
echo "test.sh: /etc/libvirt unchanged and no test bed left running: $clean"
exit $rc
