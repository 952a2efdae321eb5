#!/bin/sh
# The whole test suite, from a bare Debian 12 machine, as root:
# installs the packages, builds into build/, and runs every test with ctest
# (unit suites, docs checks, and the integration tests on the real two-host
# test bed, which ctest starts before them and tears down after them).
# Builds build-san/ with ASan and UBSan (with clang: also the libFuzzer
# harnesses) at the lowest priority while build/'s tests run, then runs
# there the unit suites, the hermetic engine tests, the fuzz harnesses
# (VMFERRY_FUZZ_SECONDS each, default 20) and the tests labelled `safety`
# (hostile inputs, faults, races: see tests/CMakeLists.txt), with the
# tools of build-san; the safety tests run there only, not in build/.
# Ends with the report of tests/report-summary.sh.
# Arguments go to both ctest runs (e.g. -R 'unit/').  The test bed is
# VMFERRY_TESTBED_DIR with VMFERRY_TESTBED_PORT_OFFSET when they are set
# (CONTRIBUTING.md: a bed of one's own), as for ctest.
set -eu
cd "$(dirname "$0")/.."

now() { date +%s; }
mins() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }
t0=$(now)
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"

# clang has libFuzzer; GCC builds the same sanitizer tree without it.
if command -v clang >/dev/null 2>&1; then
    san_cfg="-DCMAKE_C_COMPILER=clang -DVMFERRY_FUZZ=ON"
else
    echo "test.sh: no clang: build-san without the fuzz harnesses" >&2
    san_cfg="-DVMFERRY_FUZZ=OFF"
fi
t1=$(now)
# shellcheck disable=SC2086 # san_cfg holds separate words
cmake -S . -B build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DVMFERRY_SANITIZE=ON $san_cfg
# The sanitizer tree compiles at the lowest CPU priority while build/'s
# tests run, which leave a core idle much of the time (the integration
# tests take the bed one at a time; an appliance under TCG is one vCPU);
# its tests start once it is built.  Its output goes to
# build-san/build.log, shown if it fails; the time it ended to
# build-san/build.end.
rm -f build-san/build.log build-san/build.end
# shellcheck disable=SC2016 # expanded by the inner sh
setsid sh -c 'nice -n 19 cmake --build build-san -j"$1" \
    >build-san/build.log 2>&1
    rc=$?; date +%s >build-san/build.end; exit $rc' sh "$(nproc)" &
san_build=$!
t2=$(now)

# Each run's report starts empty (tests/report-summary.sh).
for b in build build-san; do
    rm -rf "$b/report" "$b/sanitizer-logs" "$b/fuzz-artifacts"
    mkdir -p "$b/report" "$b/sanitizer-logs"
done

# The test bed must leave the machine's own libvirt configuration as it
# was, and no daemon behind: checked after the run.
etc_before=$(find /etc/libvirt -type f -exec md5sum {} + 2>/dev/null | sort)

# If this script is interrupted, stop the sanitizer tree's build and
# take the test bed down too.
trap 'kill -- -$san_build 2>/dev/null
    tests/testbed/testbed.sh down >/dev/null 2>&1 || true' INT TERM
rc=0
clean=yes
# The safety tests (hostile inputs, fault and race matrices) run once,
# in the sanitizer tree below, where they also catch memory errors.
# In both trees the hermetic tests (unit, docs, cli, engine, fuzz) run
# beside the test bed's start-up and beside the integration tests, which
# take the bed one at a time (tests/CMakeLists.txt: RESOURCE_LOCK, COST).
ctest --test-dir build --output-on-failure --timeout 1200 -j"$(nproc)" \
    -LE safety --output-junit report/ctest.xml "$@" || rc=$?
t3=$(now)
if ! wait "$san_build"; then
    cat build-san/build.log >&2
    echo "test.sh: the sanitizer tree did not build (build-san/build.log)" >&2
    exit 1
fi
t4w=$(now)
ctest --test-dir build-san --output-on-failure --timeout 1200 -j"$(nproc)" \
    -L 'unit|engine|fuzz|safety' --output-junit report/ctest.xml "$@" || rc=$?
t4=$(now)

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
echo
tests/report-summary.sh build build-san || rc=1
echo "test.sh: /etc/libvirt unchanged and no test bed left running: $clean"
echo "test.sh: time (m:ss): build $(mins $((t1 - t0)))," \
    "build-san $(mins $(($(cat build-san/build.end) - t1)))" \
    "(beside the tests)," \
    "tests $(mins $((t3 - t2))), waited for build-san $(mins $((t4w - t3)))," \
    "sanitizer tests $(mins $((t4 - t4w))), total $(mins $((t4 - t0)))"
exit $rc
