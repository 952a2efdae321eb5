#!/bin/bash
# Layout test: no line of the C sources of lib/, formats/, base/ and
# tools/ (the git-tracked *.c, *.h and *.h.in; in a tree without git,
# the files there) is wider than 80 columns (.editorconfig,
# CONTRIBUTING.md).  Columns are display columns as `wc -L` counts them
# in a UTF-8 locale: a tab runs to the next multiple of 8, a character
# takes its width, not its bytes (comments and messages hold UTF-8).
# Names each line over as FILE:LINE.  tests/unit is not held to it: its
# tables and expected messages run wider, over 250 lines.
# Usage: check-columns.sh SOURCE_DIR
set -u
src=$1
max=80
fail=0

# In the C locale wc -L gives a byte outside ASCII no width at all, so a
# line of UTF-8 would measure short: find a locale that measures "é中"
# as 3 columns and a tab after one character as 7 more.
loc=
wide_chars=$'\303\251\344\270\255' # "é中": 1 and 2 columns
for l in C.UTF-8 C.utf8 en_US.UTF-8 en_US.utf8; do
    if [ "$(printf '%s\n' "$wide_chars" | LC_ALL=$l wc -L 2>/dev/null)" = 3 ] &&
        [ "$(printf 'a\tb\n' | LC_ALL=$l wc -L 2>/dev/null)" = 9 ]; then
        loc=$l
        break
    fi
done
if [ -z "$loc" ]; then
    echo "check-columns: skipped: no UTF-8 locale in which wc -L" \
        "counts display columns (tried C.UTF-8, en_US.UTF-8)"
    exit 77
fi
export LC_ALL=$loc

cd "$src" || exit 1
pats=()
for d in lib formats base tools; do
    pats+=("$d/*.c" "$d/*.h" "$d/*.h.in")
done
mapfile -t files < <(git ls-files -- "${pats[@]}" 2>/dev/null)
if [ ${#files[@]} -eq 0 ]; then
    # Not a git checkout (a release tarball): what is there.
    mapfile -t files < <(find lib formats base tools -type f \
        \( -name '*.c' -o -name '*.h' -o -name '*.h.in' \) 2>/dev/null | sort)
fi
if [ ${#files[@]} -eq 0 ]; then
    echo "check-columns: no C sources in $src"
    exit 1
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# The widest line of each file, all in one wc; then the lines of the
# files over.
wc -L -- "${files[@]}" >"$tmp/widths" || fail=1
wide=()
while read -r w f; do
    [ "$f" != total ] && [ "$w" -gt $max ] && wide+=("$f")
done <"$tmp/widths"
over=0
for f in "${wide[@]}"; do
    # Which lines: the file cut into one file a line (numbered from 0),
    # each measured the same way, in one wc.
    rm -f "$tmp"/l*
    split -l 1 -a 7 -d -- "$f" "$tmp/l" || { fail=1; continue; }
    while read -r lw name; do
        [ "$name" = total ] && continue
        [ "$lw" -le $max ] && continue
        n=${name##*/l}
        echo "$f:$((10#$n + 1)): $lw columns, over $max"
        over=$((over + 1))
    done < <(wc -L "$tmp"/l*)
    fail=1
done

if [ $fail -ne 0 ]; then
    echo "check-columns: $over line(s) over $max columns" \
        "(wrap them as the code around them wraps)"
    exit 1
fi
echo "check-columns: ${#files[@]} files, every line within $max columns"
