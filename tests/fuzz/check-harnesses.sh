#!/bin/bash
# Every libFuzzer harness tests/fuzz/fuzz_*.c is built and run: it has its
# vmferry_fuzzer() line in tests/CMakeLists.txt (which makes the test
# fuzz/NAME, run in the sanitizer tree of scripts/test.sh), committed
# seeds in tests/fuzz/seeds/NAME/ and a paragraph in their README; and
# no seed directory is left without a harness.  Runs in any tree (label
# docs): the harnesses themselves need clang.
#   check-harnesses.sh SOURCE_DIR
set -euo pipefail

src=${1:?usage: check-harnesses.sh SOURCE_DIR}
fuzz=$src/tests/fuzz
failed=0
bad() { echo "FAIL: $*" >&2; failed=1; }

n=0
for c in "$fuzz"/fuzz_*.c; do
    name=$(basename "$c" .c)
    n=$((n + 1))
    grep -qx "vmferry_fuzzer($name)" "$src/tests/CMakeLists.txt" ||
        bad "$name: no vmferry_fuzzer($name) in tests/CMakeLists.txt"
    seeds=$(find "$fuzz/seeds/$name" -maxdepth 1 -type f ! -name 'README*' \
        2>/dev/null | wc -l)
    ((seeds > 0)) || bad "$name: no seeds in tests/fuzz/seeds/$name/"
    grep -q "^$name/" "$fuzz/seeds/README" ||
        bad "$name: its seeds are not described in tests/fuzz/seeds/README"
    echo "$name: $seeds seeds"
done
((n > 0)) || bad "no harness in $fuzz"
for d in "$fuzz"/seeds/*/; do
    name=$(basename "$d")
    [[ -f $fuzz/$name.c ]] || bad "seeds of no harness: tests/fuzz/seeds/$name"
done
((failed == 0)) && echo "every one of the $n harnesses is built, run and seeded"
exit $failed
