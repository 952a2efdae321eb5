# shellcheck shell=bash
# Hostile streams: each breaks one rule of vmferry-stream(5) that the
# records' own checks cannot see (the manifest, the domain XML, what the
# records say together), and every reader must refuse it with a message
# that names the problem.  Sourced by the tests that feed them to a
# reader (info-refuse.sh here; the importer's tests reuse the list).
#
#   hostile_setup DIR   write the input files the cases read into DIR
#   hostile_cases DIR   call  hostile_case NAME EXPECTED MKSTREAM-OPTION...
#                       once per case; the sourcing test defines
#                       hostile_case, builds the stream with
#                       "$VMFERRY_TEST_TOOLS_DIR/mkstream" OPTION... FILE
#                       and checks that the error contains EXPECTED (a
#                       fixed string)
#
# A NAME starting with "digest-" is refused only by a reader that checks
# file digests (vmferry-info --verify, vmferry-import); every other case
# by any reader.

hostile_setup() {
    local dir=$1
    printf '<domain type="kvm"><name>a\0b</name></domain>\n' >"$dir/xml-nul.xml"
    printf '<domain type="kvm"><name>caf\xe9</name></domain>\n' >"$dir/xml-latin1.xml"
    printf '{"format": "vmferry-manifest", "version": 1,' >"$dir/manifest-cut.json"
    printf '{"format": "vmferry-manifest", "version": 1} {}' >"$dir/manifest-two.json"
    {
        printf '{"format": "vmferry-manifest", "version": 1, "x": '
        printf '[%.0s' {1..40}
        printf ']%.0s' {1..40}
        printf '}'
    } >"$dir/manifest-deep.json"
}

hostile_cases() {
    local dir=$1
    # The manifest's version and format (the spec: refuse what you do not know)
    hostile_case manifest-version-2 'manifest: version 2 is not supported' --set version=2
    hostile_case manifest-version-2-zstd 'manifest: version 2 is not supported' \
        --set version=2 --manifest-zstd
    hostile_case manifest-version-string 'version: missing or not an integer' --set 'version="1"'
    hostile_case manifest-format 'format: not a vmferry manifest' --set 'format="other"'
    hostile_case manifest-cut 'manifest: not valid JSON' --manifest "$dir/manifest-cut.json"
    hostile_case manifest-two-objects 'manifest: not valid JSON' --manifest "$dir/manifest-two.json"
    hostile_case manifest-deep 'nesting too deep' --manifest "$dir/manifest-deep.json"
    # Types and ranges
    hostile_case size-missing 'files[0].size: missing' --del files.0.size
    hostile_case size-string 'files[0].size: must be an integer' --set 'files.0.size="200000"'
    hostile_case size-negative 'files[0].size: must be an integer from 0 to 2^63 - 1' \
        --set files.0.size=-1
    hostile_case size-2-63 'files[0].size: must be an integer from 0 to 2^63 - 1' \
        --set files.0.size=9223372036854775808
    hostile_case index-wrong "files[0].index: is 1, the file's position is 0" --set files.0.index=1
    hostile_case role-unknown 'files[0].role: not a role' --set 'files.0.role="kernel"'
    hostile_case totals-wrong "totals.size: is 1, the files' sizes add up to" --set totals.size=1
    # Names that become paths
    hostile_case name-dotdot 'files[0].name: not a safe file name' --set 'files.0.name="../escaped"'
    hostile_case name-slash 'files[0].name: not a safe file name' --set 'files.0.name="/etc/passwd"'
    hostile_case name-hidden 'files[0].name: not a safe file name' --set 'files.0.name=".disk0.img.vmferry-x"'
    hostile_case name-dup 'files[1].name: file 0 has the same name' \
        --files 2 --set 'files.1.name="disk0.img"'
    hostile_case tpm-name-dotdot 'files[0].name: not a safe relative path' \
        --set 'files.0.role="tpm"' --set 'files.0.name="tpm2/../../../escaped"'
    hostile_case pool-dotdot 'files[0].pool: not a safe pool name' \
        --set 'files.0.pool="../p"' --set 'files.0.volume="v"'
    hostile_case pool-on-nvram 'files[0].pool: only a disk can be a volume' \
        --set 'files.0.role="nvram"' --set 'files.0.pool="p"' --set 'files.0.volume="v"'
    hostile_case backing-forward 'files[0].backing: 1 is not the index of an earlier file' \
        --files 2 --set files.0.backing=1 --set 'files.0.backing_format="raw"'
    hostile_case domain-name-slash 'domain.name: not a name' --set 'domain.name="../../escaped"'
    hostile_case domain-uuid-dotdot 'domain.uuid: not a UUID' --set 'domain.uuid="../../escaped"'
    # Control characters, quoted escaped in the message
    hostile_case name-escape 'files[0].name: the string holds a control character or is not UTF-8: "x\x1b[2J\x1b]0;owned\x07"' \
        --set 'files.0.name="x\u001b[2J\u001b]0;owned\u0007"'
    hostile_case name-nul 'manifest: a string holds a NUL character' \
        --set 'files.0.name="disk0.img\u0000/../x"'
    hostile_case host-c1 'source.host: the string holds a control character' \
        --set 'source.host="\u009b2J"'
    hostile_case unknown-member-escape 'future: the string holds a control character' \
        --set 'future="\u001b[31m"'
    # The domain XML
    hostile_case xml-nul 'text contains a NUL byte' --xml "$dir/xml-nul.xml"
    hostile_case xml-nul-zstd 'text contains a NUL byte' --xml "$dir/xml-nul.xml" --xml-zstd
    hostile_case xml-latin1 'the domain XML is not valid UTF-8 (at byte 28)' --xml "$dir/xml-latin1.xml"
    hostile_case xml-17mib-zstd 'decompresses to 17825792 bytes, more than the limit of 16777216' \
        --xml-size 17825792 --xml-zstd
    hostile_case xml-17mib-raw 'payload of 17825792 bytes exceeds the limit of 16777216' \
        --xml-size 17825792 --raw
    # What the records say against the manifest
    hostile_case begin-size-larger 'file 0 (disk0.img) is 1048576 bytes, the manifest says 200000' \
        --begin-size 0=1048576
    hostile_case begin-size-smaller 'file 0 (disk0.img) is 65536 bytes, the manifest says 200000' \
        --begin-size 0=65536
    hostile_case file-missing 'the stream counts 1 files, the manifest lists 2' \
        --files 2 --omit-files 1
    hostile_case file-extra 'file 1 is not in the manifest (it lists 1 files)' \
        --files 2 --del files.1
    hostile_case end-count 'end record counts 5 files, the stream has 1' --end-count 5 --raw
    hostile_case truncated 'truncated: end of input before the END record' --no-end
    hostile_case digest-wrong 'digest mismatch' --bad-digest 0
}

# hostile_reader_setup: what a test that feeds the cases to vmferry-info
# needs: MKSTREAM and INFO (the tools), VG (valgrind when
# VMFERRY_VALGRIND=1), a temporary directory $tmp removed at exit, and
# bad MESSAGE, which counts a failure in $failed, report NAME RESULT and
# report_case NAME BEFORE.
hostile_reader_setup() {
    MKSTREAM=${VMFERRY_TEST_TOOLS_DIR:?}/mkstream
    INFO=${VMFERRY_TOOLS_DIR:?}/vmferry-info
    VG=""
    if [[ ${VMFERRY_VALGRIND:-0} == 1 ]]; then
        command -v valgrind >/dev/null || { echo "SKIP: no valgrind"; exit 77; }
        VG="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q"
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    failed=0 count=0
    # report NAME RESULT: a line of the report printed by scripts/test.sh
    # (tests/report-summary.sh), in the file of the calling test.
    report() {
        [[ -n ${VMFERRY_REPORT_DIR:-} ]] || return 0
        mkdir -p "$VMFERRY_REPORT_DIR"
        printf 'hostile\t%s\t%s\t1\n' "$1" "$2" \
            >>"$VMFERRY_REPORT_DIR/$(basename "$0" .sh).tsv"
    }
    bad() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
    # report_case NAME BEFORE: NAME was refused as it should be unless a
    # failure was recorded since $failed was BEFORE.
    report_case() {
        if ((failed == $2)); then
            report "$1" refused
        else
            report "$1" FAILED
        fi
    }
}

