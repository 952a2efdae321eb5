#!/bin/sh
# Install test: `cmake --install BUILD --prefix P` gives tools that load
# P's own private library, whatever prefix the tree was configured with.
# Installs into two prefixes under a scratch directory and checks, for
# every installed tool, that its RUNPATH is relative to the binary
# ($ORIGIN) and names no absolute directory, and that the dynamic loader
# (ldd, and LD_DEBUG in a real run) resolves libvmferry inside the same
# prefix.  Then moves one install away: it must still find its own.  Each
# tool's bash completion and the overview page vmferry(1) are installed too.
# Usage: runpath.sh BUILD_DIR
set -u
build=$1
fail=0

for cmd in readelf ldd; do
    command -v $cmd >/dev/null 2>&1 || { echo "SKIP: runpath: no $cmd"; exit 77; }
done

ntools=$(find "$build/tools" -maxdepth 1 -name 'vmferry-*' -type f -perm -u+x |
    wc -l)
[ "$ntools" -gt 0 ] || { echo "no tools in $build/tools"; exit 1; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/vmferry-runpath.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT

# check_prefix P: every tool under P/bin loads P's libvmferry.
check_prefix() {
    p=$1
    n=0
    for tool in "$p"/bin/vmferry-*; do
        [ -x "$tool" ] || continue
        n=$((n + 1))
        name=$(basename "$tool")
        runpath=$(readelf -d "$tool" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]$/\1/p')
        # shellcheck disable=SC2016 # a literal $ORIGIN
        case $runpath in
        '$ORIGIN/'*) ;;
        *) echo "$name: RUNPATH is '$runpath', not relative to \$ORIGIN"; fail=1 ;;
        esac
        # No second, absolute entry (the build tree, the configured prefix).
        case ":$runpath" in
        *:/*) echo "$name: RUNPATH '$runpath' names an absolute directory"; fail=1 ;;
        esac
        lib=$(ldd "$tool" | sed -n 's/^[[:space:]]*libvmferry\.so[^ ]* => \(.*\) (0x.*/\1/p;
                                    s/^[[:space:]]*libvmferry\.so[^ ]* => not found/not found/p')
        case $lib in
        "$p"/*) ;;
        *) echo "$name: ldd resolves libvmferry to '$lib', not under $p"; fail=1 ;;
        esac
    done
    [ $n -eq "$ntools" ] ||
        { echo "$p: $n tools installed, the build has $ntools"; fail=1; }
    [ -s "$p/share/man/man1/vmferry.1" ] ||
        { echo "$p: vmferry(1) not installed"; fail=1; }
    # Their bash completion, where bash-completion looks for it.
    for tool in "$p"/bin/vmferry-*; do
        c=$p/share/bash-completion/completions/$(basename "$tool")
        grep -q '^complete -F _vmferry' "$c" 2>/dev/null ||
            { echo "$c: no completion installed"; fail=1; }
    done
    # A real run: the loader's own record of the file it initialised.
    loaded=$(LD_DEBUG=libs "$p/bin/vmferry-info" --version 2>&1 >/dev/null |
        sed -n 's/.*calling init: \(.*libvmferry\.so.*\)$/\1/p')
    case $loaded in
    "$p"/*) ;;
    *) echo "vmferry-info under $p: LD_DEBUG: loaded libvmferry '$loaded'"; fail=1 ;;
    esac
    "$p/bin/vmferry-info" --version >/dev/null ||
        { echo "vmferry-info under $p does not run"; fail=1; }
}

for p in "$scratch/x" "$scratch/y"; do
    cmake --install "$build" --prefix "$p" >"$scratch/install.log" 2>&1 ||
        { cat "$scratch/install.log"; echo "cmake --install --prefix $p failed"; exit 1; }
done
check_prefix "$scratch/x"
check_prefix "$scratch/y"
# Relocated after the install (a package unpacked elsewhere).
mv "$scratch/y" "$scratch/moved"
check_prefix "$scratch/moved"

[ $fail -eq 0 ] && echo "runpath: every tool of each install loads its own libvmferry"
exit $fail
