#!/bin/bash
# Structure test: the include graph drawn from the sources runs one way,
# tools -> operations -> engine -> formats -> base (tests/docs/tiers.map
# places every file).  Fails on an include of a later tier, on a source
# file no tier holds, on a quoted include that names no file of the
# project, on two files of one name (a header is included by its name
# alone, the include path covering base/, formats/ and lib/), and on a
# libvirt or libxml2 header in base/ or formats/ (parsers of hostile
# input stay clear of them).  Prints the graph between tiers.
# Usage: check-layers.sh SOURCE_DIR
set -u
src=$1
map=$src/tests/docs/tiers.map
fail=0

[ -r "$map" ] || { echo "check-layers: $map missing"; exit 1; }

tiers=()                        # bottom up
declare -A rank globs           # tier -> index, tier -> " glob glob "
while read -r tier rest; do
    case $tier in '' | '#'*) continue ;; esac
    if [ -z "${rank[$tier]+set}" ]; then
        rank[$tier]=${#tiers[@]}
        tiers+=("$tier")
    fi
    globs[$tier]+=" $rest "
done <"$map"

# The globs are matched against paths, never expanded to files.
set -f

# tier_of PATH: set $found to the first tier (bottom up) one of whose
# globs matches; false if none does.  Globs only, no subshells: it runs
# once per include.
tier_of() {
    local t g
    for t in "${tiers[@]}"; do
        for g in ${globs[$t]}; do
            # shellcheck disable=SC2053 # $g is a glob on purpose
            [[ $1 == $g ]] && { found=$t; return 0; }
        done
    done
    return 1
}

cd "$src" || exit 1
declare -A path_of tier # header name -> path; path -> tier
set +f
files=(base/*.[ch] formats/*.[ch] lib/*.[ch] tools/*.[ch])
set -f
for f in "${files[@]}"; do
    [ -e "$f" ] || continue
    name=${f##*/}
    if [ -n "${path_of[$name]+set}" ]; then
        echo "$f and ${path_of[$name]}: one name, two files" \
            "(\"$name\" would include either)"
        fail=1
    else
        path_of[$name]=$f
    fi
    if tier_of "$f"; then
        tier[$f]=$found
    else
        echo "$f: in no tier: add it to tests/docs/tiers.map"
        fail=1
    fi
done

declare -A edges                # "from -> to" -> count
for f in "${files[@]}"; do
    [ -n "${tier[$f]+set}" ] || continue
    from=${tier[$f]}
    while IFS=: read -r line inc; do
        if [[ $inc =~ ^#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
            name=${BASH_REMATCH[1]}
            to_path=${path_of[$name]:-$name}
            if [ -n "${tier[$to_path]+set}" ]; then
                to=${tier[$to_path]}
            elif tier_of "$to_path"; then
                to=$found           # a generated header
            else
                echo "$f:$line: \"$name\" is no file of base/, formats/," \
                    "lib/, tools/ nor a generated header in tiers.map"
                fail=1
                continue
            fi
            edges["$from -> $to"]=$((${edges["$from -> $to"]:-0} + 1))
            if [ "${rank[$to]}" -gt "${rank[$from]}" ]; then
                echo "$f:$line: includes $to_path: $from includes $to," \
                    "a tier above it"
                fail=1
            fi
        elif [[ $inc =~ \<(libvirt|libxml)/ ]] &&
            [ "${rank[$from]}" -le "${rank[formats]}" ]; then
            echo "$f:$line: a ${BASH_REMATCH[1]} header in $from"
            fail=1
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include' "$f")
done

for t in "${tiers[@]}"; do
    for u in "${tiers[@]}"; do
        n=${edges["$t -> $u"]:-0}
        [ "$n" -gt 0 ] && printf '%-10s -> %-10s %4d includes\n' "$t" "$u" "$n"
    done
done
[ "$fail" = 0 ] && echo "check-layers: no include points up a tier"
exit "$fail"
