#!/bin/bash
# Run an integration test of the sanitizer build: CMD [ARG...], then fail
# if any sanitizer report appeared in $VMFERRY_SANITIZER_LOG_DIR while it
# ran.  The tools write their reports there (log_path in ASAN_OPTIONS and
# UBSAN_OPTIONS, see tests/CMakeLists.txt), on this machine and on the
# test bed's host B, so that a tool killed by a sanitizer fails its test
# even when the test expected that tool to fail (`cmd && fail`).  Tests
# that use the test bed run one at a time (RESOURCE_LOCK testbed), so
# every report new since the start belongs to this test.
set -u

dir=${VMFERRY_SANITIZER_LOG_DIR:?run.sh: VMFERRY_SANITIZER_LOG_DIR is not set}
mkdir -p "$dir"
before=$(LC_ALL=C ls -1 "$dir")

"$@"
rc=$?

new=$(LC_ALL=C comm -13 <(printf '%s\n' "$before") <(LC_ALL=C ls -1 "$dir"))
reports=0
while IFS= read -r f; do
    # A directory is another test's own log directory (tests/engine).
    [[ -n $f && -f $dir/$f ]] || continue
    # LeakSanitizer cannot check a process run under strace (ptrace): no
    # finding, the check did not happen.  Said, not failed.
    if ! grep -qv -e 'LeakSanitizer has encountered a fatal error' \
        -e 'HINT: ' -e '^$' "$dir/$f"; then
        echo "run.sh: note: $dir/$f: no leak check under ptrace" >&2
        continue
    fi
    echo "run.sh: sanitizer report $dir/$f:" >&2
    cat "$dir/$f" >&2
    reports=$((reports + 1))
done <<<"$new"
if ((reports)); then
    echo "run.sh: FAIL: $reports sanitizer report(s) while running: $*" >&2
    exit 1
fi
exit "$rc"
