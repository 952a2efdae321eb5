#!/bin/bash
# The report printed at the end of scripts/test.sh: what the tests of each
# build tree tried -- faults injected and survived, races tried, hostile
# inputs tried and refused, fuzz executions -- with every failure named.
#
#   tests/report-summary.sh BUILD_DIR...
#
# Exits 1 when anything failed or went missing, 0 otherwise.
#
# Input, per build tree:
#
#   BUILD_DIR/report/*.tsv   one file per test, $VMFERRY_REPORT_DIR/NAME.tsv,
#       written by `report` in tests/integration/functions.sh and by
#       tests/fuzz/run-fuzzer.sh.  One line per try (or group of tries):
#           KIND <TAB> NAME <TAB> RESULT <TAB> COUNT
#       KIND     fault | race | hostile | fuzz
#       NAME     what was tried (free text without tabs or newlines)
#       RESULT   one word: survived, refused, ok or skipped count as
#                success; FAILED or any other word as a failure
#       COUNT    how many tries the line stands for (fuzz: executions);
#                optional, default 1
#   BUILD_DIR/report/ctest.xml   ctest --output-junit, written by test.sh:
#       which tests ran and which failed.
#
# A test labelled `safety` or `fuzz` that ran but recorded nothing is
# reported too: whatever it tried would otherwise be lost.
set -uo pipefail

if (($# == 0)); then
    echo "usage: report-summary.sh BUILD_DIR..." >&2
    exit 2
fi

KINDS=(fault race hostile fuzz)
declare -A VERB=([fault]=injected [race]=tried [hostile]=tried [fuzz]=executions)
declare -A TOTAL=([fault]=0 [race]=0 [hostile]=0 [fuzz]=0)
declare -A GOOD=([fault]=0 [race]=0 [hostile]=0 [fuzz]=0)
problems=()

# describe BUILD_DIR: "Clang 14.0.6, ASan+UBSan, libFuzzer"
describe() {
    local cache=$1/CMakeCache.txt id ver san fuzz
    local -a cc=("$1"/CMakeFiles/*/CMakeCCompiler.cmake)
    id=$(sed -n 's/^set(CMAKE_C_COMPILER_ID "\(.*\)")$/\1/p' "${cc[0]}" 2>/dev/null)
    ver=$(sed -n 's/^set(CMAKE_C_COMPILER_VERSION "\(.*\)")$/\1/p' \
        "${cc[0]}" 2>/dev/null)
    san=$(sed -n 's/^VMFERRY_SANITIZE:BOOL=//p' "$cache" 2>/dev/null)
    fuzz=$(sed -n 's/^VMFERRY_FUZZ:BOOL=//p' "$cache" 2>/dev/null)
    printf '%s' "${id:-C compiler}${ver:+ $ver}"
    [[ $san == ON ]] && printf ', ASan+UBSan'
    [[ $fuzz == ON ]] && printf ', libFuzzer'
}

# Tests of BUILD_DIR labelled safety or fuzz, one name a line.
reporting_tests() {
    ctest --test-dir "$1" --show-only=json-v1 2>/dev/null |
        jq -r '.tests[] | select([.properties[]? | select(.name == "LABELS")
               | .value[]] | any(. == "safety" or . == "fuzz")) | .name' 2>/dev/null
}

# names JUNIT_XML CONDITION: the names of the test cases that meet it.
names() {
    xmllint --xpath "//testcase[$2]/@name" "$1" 2>/dev/null |
        sed -n 's/^ *name="\(.*\)"$/\1/p'
}

summarise() {
    local dir=$1 tree report xml ran=0 failed=0 skipped=0 t base kind
    local -a failed_tests=() ran_tests=()
    tree=$(basename "$dir")
    report=$dir/report
    xml=$report/ctest.xml

    printf '%s (%s):' "$tree" "$(describe "$dir")"
    if [[ -r $xml ]]; then
        mapfile -t ran_tests < <(names "$xml" '@status="run" or @status="fail"')
        mapfile -t failed_tests < <(names "$xml" '@status="fail"')
        ran=${#ran_tests[@]}
        failed=${#failed_tests[@]}
        skipped=$(xmllint --xpath 'count(//testcase[skipped])' "$xml" \
            2>/dev/null || echo 0)
        printf ' %d tests run, %d failed, %s skipped\n' \
            "$ran" "$failed" "$skipped"
        for t in "${failed_tests[@]}"; do
            problems+=("$tree: test $t failed")
        done
    else
        printf ' no ctest results (%s)\n' "$xml"
        problems+=("$tree: no ctest results: $xml")
    fi

    # Per kind: tries (sum of COUNT), from how many tests, the tally of
    # results, and how many of the tries succeeded.
    for kind in "${KINDS[@]}"; do
        local line tries good
        line=$(awk -F'\t' -v k="$kind" '
            $1 == k {
                n = ($4 == "" ? 1 : $4) + 0
                tries += n; res[$3] += n
                if ($3 ~ /^(survived|refused|ok|skipped)$/) good += n
                if (!(FILENAME in seen)) { seen[FILENAME] = 1; tests++ }
            }
            END {
                out = (tries + 0) " " (good + 0) " " (tests + 0)
                sep = " "
                for (r in res) { out = out sep r " " res[r]; sep = ", " }
                print out
            }' /dev/null "$report"/*.tsv 2>/dev/null)
        read -r tries good tests rest <<<"$line"
        # (Tests that recorded only skips have 0 tries, said as such.)
        if ((tests == 0)); then
            printf '  %-8s none\n' "$kind"
        else
            printf '  %-8s %d %s in %d test(s): %s\n' "$kind" "$tries" \
                "${VERB[$kind]}" "$tests" "$rest"
        fi
        TOTAL[$kind]=$((TOTAL[$kind] + tries))
        GOOD[$kind]=$((GOOD[$kind] + good))
    done

    # Every line that is not a success, by name.
    while IFS=$'\t' read -r base kind name result count; do
        problems+=("$tree: $base: $kind '$name': $result${count:+ ($count)}")
    done < <(for f in "$report"/*.tsv; do
        [[ -e $f ]] || continue
        awk -F'\t' -v b="$(basename "$f" .tsv)" 'BEGIN { OFS = "\t" }
            $3 !~ /^(survived|refused|ok|skipped)$/ { print b, $1, $2, $3, $4 }' "$f"
    done)

    # Tests that should have recorded their tries and did not.
    if ((ran > 0)); then
        local -A did=()
        for t in "${ran_tests[@]}"; do
            did[$t]=1
        done
        while IFS= read -r t; do
            [[ -n $t && -n ${did[$t]:-} ]] || continue
            base=${t##*/}
            [[ -s $report/$base.tsv ]] ||
                problems+=("$tree: test $t recorded nothing")
        done < <(reporting_tests "$dir")
    fi
}

echo "==== vmferry test report ===="
for d in "$@"; do
    d=${d%/}
    if [[ ! -d $d ]]; then
        problems+=("$d: no such build tree")
        continue
    fi
    summarise "$d"
done
printf 'totals: %d faults injected, %d survived; %d races tried, %d ok;' \
    "${TOTAL[fault]}" "${GOOD[fault]}" "${TOTAL[race]}" "${GOOD[race]}"
printf ' %d hostile inputs tried, %d refused or handled; %d fuzz executions\n' \
    "${TOTAL[hostile]}" "${GOOD[hostile]}" "${TOTAL[fuzz]}"
if ((${#problems[@]})); then
    echo "failures (${#problems[@]}):"
    printf '  %s\n' "${problems[@]}"
    exit 1
fi
echo "failures: none"
exit 0
