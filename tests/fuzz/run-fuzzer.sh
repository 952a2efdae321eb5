#!/bin/bash
# Run a libFuzzer harness for a fixed time, as the ctest test fuzz/NAME:
#   run-fuzzer.sh HARNESS SEED_DIR
# It fuzzes from a fresh copy of SEED_DIR (the committed seeds are never
# changed) for $VMFERRY_FUZZ_SECONDS seconds (default 20), and fails on a
# crash, a leak, a sanitizer report, an input slower than 10 s or an
# allocation over 2 GiB.  The input that did it is kept in
# $VMFERRY_BUILD_DIR/fuzz-artifacts/NAME/ (reproduce: HARNESS FILE).
# The number of inputs run goes to the report (tests/report-summary.sh):
#   fuzz <TAB> NAME <TAB> ok|FAILED|skipped <TAB> EXECUTIONS
#
#   run-fuzzer.sh --unbuilt NAME
# stands for a harness that this build tree could not build (it was not
# configured with clang and -DVMFERRY_FUZZ=ON): it says so and why,
# records NAME as skipped, and exits 77 (skipped, for ctest).
set -uo pipefail

if (($# == 2)) && [[ $1 == --unbuilt ]]; then
    echo "run-fuzzer.sh: SKIP: $2 is not built in this tree: libFuzzer" \
        "needs clang (configure with -DCMAKE_C_COMPILER=clang" \
        "-DVMFERRY_FUZZ=ON; scripts/test.sh does when clang is installed)"
    if [[ -n ${VMFERRY_REPORT_DIR:-} ]]; then
        mkdir -p "$VMFERRY_REPORT_DIR"
        printf 'fuzz\t%s\tskipped\t0\n' "$2" >>"$VMFERRY_REPORT_DIR/$2.tsv"
    fi
    exit 77
fi
if (($# != 2)); then
    echo "usage: run-fuzzer.sh HARNESS SEED_DIR | --unbuilt NAME" >&2
    exit 2
fi
harness=$1 seeds=$2
name=$(basename "$harness")
secs=${VMFERRY_FUZZ_SECONDS:-20}
build=${VMFERRY_BUILD_DIR:-$(dirname "$(dirname "$harness")")}
if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs < 1)); then
    echo "run-fuzzer.sh: VMFERRY_FUZZ_SECONDS must be seconds: $secs" >&2
    exit 2
fi
if [[ ! -d $seeds ]] || [[ -z $(ls -A "$seeds") ]]; then
    echo "run-fuzzer.sh: $name: no seeds in $seeds" >&2
    exit 1
fi

work=$(mktemp -d "$build/fuzz-$name.XXXXXX") || exit 1
trap 'rm -rf -- "$work"' EXIT
artifacts=$build/fuzz-artifacts/$name
rm -rf -- "$artifacts"
mkdir -p "$work/corpus" "$artifacts"
# Only the seed files: a README or the like is not an input.
find "$seeds" -maxdepth 1 -type f ! -name 'README*' \
    -exec cp -t "$work/corpus" {} +

echo "run-fuzzer.sh: $name for $secs s from $(ls "$work/corpus" | wc -l) seeds"
# -error_exitcode=1: libFuzzer's default, 77, is ctest's "skipped".
"$harness" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=2048 -error_exitcode=1 \
    -artifact_prefix="$artifacts/" "$work/corpus" 2>&1 | tee "$work/log" |
    grep -v -e '^#[0-9]*[[:space:]]*\(NEW\|REDUCE\|pulse\)' \
        -e '^"' -e '^###### \(Recommended\|End of recommended\)'
rc=${PIPESTATUS[0]}

execs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' \
    "$work/log" | tail -n 1)
[[ $execs =~ ^[0-9]+$ ]] || execs=0
if ((rc == 0 && execs == 0)); then
    echo "run-fuzzer.sh: $name ran no input" >&2
    rc=1
fi
result=ok
if ((rc != 0)); then
    result=FAILED
    echo "run-fuzzer.sh: $name FAILED (exit $rc) after $execs inputs;" \
        "kept: $(ls "$artifacts" 2>/dev/null | tr '\n' ' ')" >&2
else
    rmdir "$artifacts" 2>/dev/null
fi
if [[ -n ${VMFERRY_REPORT_DIR:-} ]]; then
    mkdir -p "$VMFERRY_REPORT_DIR"
    printf 'fuzz\t%s\t%s\t%s\n' "$name" "$result" "$execs" \
        >>"$VMFERRY_REPORT_DIR/$name.tsv"
fi
echo "run-fuzzer.sh: $name: $execs inputs in $secs s: $result"
((rc == 0)) || exit 1
exit 0
