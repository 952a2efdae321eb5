#!/bin/bash
# The bash completion, sourced as bash-completion would, completes what an
# admin types: option values by kind, files, hosts from ~/.ssh (config and
# known_hosts, of a HOME made here), the migrate's second word as a host,
# vmferry-import's options after vmferry-send's "--".  Hermetic: domain
# names need a libvirtd, see tests/integration/completion-domains.sh.
# Usage: completion-cases.sh COMPLETION_FILE
# As strict as a script that sources the completion: a failing command in
# it stops the test, and says where.
set -eEu
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND failed"' ERR
file=$1
fail=0

scratch=$(mktemp -d "${TMPDIR:-/tmp}/vmferry-completion.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
export HOME=$scratch/home
mkdir -p "$HOME/.ssh" "$scratch/files/streams"
cat >"$HOME/.ssh/config" <<'EOF'
Host usa-east bastion *.corp
    HostName 10.0.0.1
host=dr-site
Match host dr-site
EOF
cat >"$HOME/.ssh/known_hosts" <<'EOF'
[hostb]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB
hosta,10.0.0.5 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ
|1|c2FsdA==|aGFzaA== ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC
@revoked usa-old ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID
# a comment
EOF
: >"$scratch/files/web01.vmf"
: >"$scratch/files/web02.vmf"

COMP_WORDBREAKS=$' \t\n"\'@><=;|&(:'  # bash's default
# shellcheck source=/dev/null
. "$file"
complete -p vmferry-migrate >/dev/null || { echo "vmferry-migrate has no completion"; exit 1; }

# comp LINE: call the completion on LINE (the cursor at its end) with the
# words bash would make of it: split at blanks, and at '=', ':' and '@'
# (of bash's default COMP_WORDBREAKS) into words of their own.
comp() {
    local line=$1 tok
    local -a toks
    COMP_LINE=$line COMP_POINT=${#line} COMP_WORDS=() COMPREPLY=()
    read -ra toks <<<"$line"
    for tok in "${toks[@]}"; do
        while [[ $tok =~ ^([=:@]+|[^=:@]+)(.*)$ ]]; do
            COMP_WORDS+=("${BASH_REMATCH[1]}")
            tok=${BASH_REMATCH[2]}
        done
    done
    [[ $line == *' ' ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    _vmferry
}

# expect LINE WORD...: the completion of LINE is exactly WORD... (sorted).
expect() {
    local line=$1 got want
    shift
    comp "$line"
    got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    [[ ${#COMPREPLY[@]} -eq 0 ]] && got=
    [[ $# -eq 0 ]] && want=
    if [[ $got == "$want" ]]; then
        echo "ok: '$line' -> $got"
    else
        echo "FAIL: '$line': got '$got', expected '$want'"
        fail=1
    fi
}

cd "$scratch/files" || exit 1

# Options, and values by the option's metavariable.
expect 'vmferry-export --comp' --compress=
expect 'vmferry-export --compress=n' none
expect 'vmferry-export --compress=zstd:1' 1 19
expect 'vmferry-migrate --cpu=host-' host-model host-passthrough
expect 'vmferry-send --de'
expect 'vmferry-import --ab' --abort
expect 'vmferry-import -' --connect= --dir= --pool= --define --start --name= \
    --force --verify-guest --no-fixup --new-identity= --json --format= --flatten --disk= --from-dir= --xml= --allow-path= --threads= --progress= --resumable --resume-query \
    --abort --stripes= --join= --verbose --quiet --help --version \
    -c -d -p -n -f -v -q -h -V
# Files: a stream argument, -o FILE and --output=FILE; a directory only.
expect 'vmferry-info w' web01.vmf web02.vmf
expect 'vmferry-export -o web0' web01.vmf web02.vmf
expect 'vmferry-export --output=web01' web01.vmf
expect 'vmferry-import --dir s' streams
expect 'vmferry-import --dir=' streams
expect 'vmferry-import --from-dir s' streams
# Hosts: ~/.ssh/config's Host names without patterns, known_hosts' names
# but not hashed or revoked ones; with a user or ssh:// in front (bash
# replaces what follows the last '@' or ':').
expect 'vmferry-send ' usa-east bastion dr-site hostb hosta 10.0.0.5
expect 'vmferry-send root@host' hostb hosta
expect 'vmferry-send us' usa-east
expect 'vmferry-send ssh://admin@ho' hosta hostb
expect 'vmferry-migrate web01 ssh://h' //hosta //hostb
# vmferry-migrate DOMAIN HOST: the second word is a host, also after
# options with values (separate, attached, and with ':' in them).
expect 'vmferry-migrate -c qemu:///system --rename=web01-dr web01 dr' dr-site
expect 'vmferry-migrate --connect=qemu:///system --buffer 64M web01 host' \
    hosta hostb
expect 'vmferry-migrate web01 hostb --map-b' --map-bridge=
# vmferry-sync DOMAIN HOST, as migrate.
expect 'vmferry-sync --rename=web01-dr web01 dr' dr-site
expect 'vmferry-sync web01 hostb --comp' --compare --compress=
# After vmferry-send's "--": vmferry-import's options, not send's.
expect 'vmferry-send hostb -- --def' --define
expect 'vmferry-send hostb -- --inp'
expect 'vmferry-send hostb --inp' --input=

[ $fail -eq 0 ] && echo "completion: every case completed as expected"
exit $fail
