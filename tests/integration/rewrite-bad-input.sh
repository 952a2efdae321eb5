#!/bin/bash
# vmferry-rewrite and vmferry-check on hostile or broken input: malformed
# XML, a DOCTYPE, external entities (a file and a URL), an entity expansion
# bomb, absurd nesting, a mapping file with errors, a mapping that sends
# two files to one path.  Each gets a clear error, nothing is written
# (no output file, nothing on stdout), and nothing is fetched: the external
# entity names a FIFO, whose open(2) would block until the timeout, and,
# when strace is installed, no connect(2) and no open of it is traced.
. "$(dirname "$0")/functions.sh"

canary=$SCRATCH/canary
mkfifo "$canary"
good=$SCRATCH/good.xml
tb_domain_xml t-bad "$VIRT_TYPE" /var/lib/libvirt/images/t-bad.qcow2 qcow2 128 >"$good"

# expect_refused NAME STDERR-FRAGMENT CMD...: exit 1 (or $RC: 2 for rules
# that are wrong, a usage error), the message, no output file, nothing on
# stdout, and no hang on the canary.
expect_refused() {
    local name=$1 want=$2 rc=0 want_rc=${RC:-1}
    shift 2
    rm -f "$SCRATCH/out"
    timeout 20 "$@" >"$SCRATCH/stdout" 2>"$SCRATCH/stderr" || rc=$?
    ((rc != 124)) || fail "$name: hung (opened the FIFO named by the input?)"
    ((rc == want_rc)) || { cat "$SCRATCH/stderr"; fail "$name: exit $rc, not $want_rc"; }
    grep -qF -- "$want" "$SCRATCH/stderr" ||
        { cat "$SCRATCH/stderr"; fail "$name: the error does not say '$want'"; }
    [[ ! -s $SCRATCH/stdout ]] || fail "$name: something was written to stdout"
    [[ ! -e $SCRATCH/out ]] || fail "$name: an output file was left"
    [[ -z $(find "$SCRATCH" -name '.out.vmferry-*') ]] || fail "$name: a temporary file was left"
    echo "   $name: refused: $(head -n1 "$SCRATCH/stderr")"
}

deep=$SCRATCH/deep.xml
{
    echo "<domain type='kvm'><name>x</name><metadata>"
    for ((i = 0; i < 300; i++)); do printf '<a>'; done
    for ((i = 0; i < 300; i++)); do printf '</a>'; done
    echo "</metadata></domain>"
} >"$deep"

declare -A cases=(
    [malformed]="<domain type='kvm'><name>x</name><devices>"
    [doctype]="<!DOCTYPE domain><domain type='kvm'><name>x</name></domain>"
    [external-file]="<?xml version='1.0'?>
<!DOCTYPE domain [<!ENTITY e SYSTEM 'file://$canary'>]>
<domain type='kvm'><name>&e;</name></domain>"
    [external-url]="<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/domain.dtd'>
<domain type='kvm'><name>x</name></domain>"
    [parameter-entity]="<!DOCTYPE domain [<!ENTITY % p SYSTEM 'file://$canary'> %p;]>
<domain type='kvm'><name>x</name></domain>"
    [entity-bomb]="<!DOCTYPE domain [
<!ENTITY a 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'>
<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>
<!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;'><!ENTITY e '&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;'>
<!ENTITY f '&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;'><!ENTITY g '&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;'>]>
<domain type='kvm'><name>&g;</name></domain>"
    [undeclared-entity]="<domain type='kvm'><name>&xxe;</name></domain>"
)
declare -A want=(
    [malformed]="cannot parse XML"
    [doctype]="a DOCTYPE is not allowed"
    [external-file]="a DOCTYPE is not allowed"
    [external-url]="a DOCTYPE is not allowed"
    [parameter-entity]="a DOCTYPE is not allowed"
    [entity-bomb]="a DOCTYPE is not allowed"
    [undeclared-entity]="cannot parse XML"
)
for c in "${!cases[@]}"; do
    printf '%s\n' "${cases[$c]}" >"$SCRATCH/$c.xml"
    expect_refused "rewrite $c" "${want[$c]}" \
        $VG vmferry-rewrite --rename y --xml "$SCRATCH/$c.xml" -o "$SCRATCH/out"
    expect_refused "rewrite $c (stdout)" "${want[$c]}" \
        $VG vmferry-rewrite --rename y --xml "$SCRATCH/$c.xml"
    rc=0
    timeout 20 vmferry-check -c "$URI_B" "$SCRATCH/$c.xml" >"$SCRATCH/stdout" 2>"$SCRATCH/stderr" || rc=$?
    ((rc == 2)) || fail "check $c: exit $rc, not 2 (could not check)"
    grep -qF -- "${want[$c]}" "$SCRATCH/stderr" || fail "check $c: unclear error"
done
expect_refused "rewrite deep nesting" "nested more than 256 deep" \
    $VG vmferry-rewrite --xml "$deep" -o "$SCRATCH/out"

# Nothing fetched, seen from the system calls.
if command -v strace >/dev/null; then
    for c in external-file external-url parameter-entity; do
        strace -f -qq -e trace=connect,openat,open -o "$SCRATCH/trace" \
            vmferry-rewrite --xml "$SCRATCH/$c.xml" >/dev/null 2>&1 && fail "$c accepted"
        grep -E 'connect\(|canary' "$SCRATCH/trace" &&
            fail "$c: vmferry-rewrite connected or opened what the input named"
        grep -qF "$c.xml" "$SCRATCH/trace" || fail "strace saw nothing: test is void"
    done
    echo "   strace: no connect(2), no open of the canary"
else
    echo "   (strace not installed: the FIFO canary alone shows no file was opened)"
fi

# A mapping file with errors: the file and line, and nothing written.
printf 'map-path /var/lib/libvirt/images=/srv/vm\nmap-network a=b\nmap-network a=c\n' >"$SCRATCH/contra.map"
printf '# ok\n\nmap-bridge br0=br1\nfrobnicate yes\n' >"$SCRATCH/unknown.map"
printf 'map-path relative=/srv\n' >"$SCRATCH/relative.map"
printf 'map-network a=b\nmap-network b=c\n' >"$SCRATCH/chain.map"
printf 'map-file %s\n' "$SCRATCH/chain.map" >"$SCRATCH/nested.map"
RC=2 expect_refused "map file contradiction" "contra.map:3: --map-network a=c contradicts a=b (" \
    $VG vmferry-rewrite -m "$SCRATCH/contra.map" --xml "$good" -o "$SCRATCH/out"
RC=2 expect_refused "map file unknown option" "unknown.map:4: unknown rewrite option 'frobnicate'" \
    $VG vmferry-rewrite -m "$SCRATCH/unknown.map" --xml "$good" -o "$SCRATCH/out"
RC=2 expect_refused "map file relative path" "relative.map:1: --map-path: OLD 'relative' is not an absolute path" \
    $VG vmferry-rewrite -m "$SCRATCH/relative.map" --xml "$good" -o "$SCRATCH/out"
RC=2 expect_refused "map file chain" "chain.map:2: --map-network b=c and a=b" \
    $VG vmferry-rewrite -m "$SCRATCH/chain.map" --xml "$good" -o "$SCRATCH/out"
RC=2 expect_refused "map file nesting" "nested.map:1: a map file cannot read another map file" \
    $VG vmferry-rewrite -m "$SCRATCH/nested.map" --xml "$good" -o "$SCRATCH/out"
RC=2 expect_refused "map file missing" "nonexistent.map: cannot open map file" \
    $VG vmferry-rewrite -m "$SCRATCH/nonexistent.map" --xml "$good" -o "$SCRATCH/out"
printf 'map-bridge br0=br1\n' >"$SCRATCH/site.map"
RC=2 expect_refused "map file contradicting the command line" \
    "site.map:1: --map-bridge br0=br1 contradicts br0=br2 (command line)" \
    $VG vmferry-rewrite --map-bridge br0=br2 -m "$SCRATCH/site.map" --xml "$good" -o "$SCRATCH/out"

# Two files to one path: bare XML, and a real stream (disk and NVRAM of
# the UEFI guest), where not a byte may come out.
two=$SCRATCH/two.xml
sed "s|</devices>|<disk type='file' device='disk'><source file='/other/t-bad.qcow2'/><target dev='vdb' bus='virtio'/></disk></devices>|" \
    "$good" >"$two"
expect_refused "two disks to one path" "would both become /srv/vm/t-bad.qcow2" \
    $VG vmferry-rewrite --map-path /var/lib/libvirt/images=/srv/vm --map-path /other=/srv/vm \
    --xml "$two" -o "$SCRATCH/out"
on_a vmferry-export -c qemu:///system -o "$SCRATCH/uefi.vmf" vmf-uefi || fail "export vmf-uefi failed"
expect_refused "stream: disk and NVRAM to one path" "would both become /srv/one" \
    $VG vmferry-rewrite --map-path "$IMAGES_DIR/vmf-uefi.qcow2=/srv/one" \
    --map-path "$NVRAM_DIR/vmf-uefi_VARS.fd=/srv/one" -o "$SCRATCH/out" "$SCRATCH/uefi.vmf"
expect_refused "stream on stdout: disk and NVRAM to one path" "would both become" \
    $VG vmferry-rewrite --map-path "$IMAGES_DIR/vmf-uefi.qcow2=/srv/one" \
    --map-path "$NVRAM_DIR/vmf-uefi_VARS.fd=/srv/one" <"$SCRATCH/uefi.vmf"
# Two names for the importer's one directory.
expect_refused "stream: two files of one name" "would both be named" \
    $VG vmferry-rewrite --map-path "$IMAGES_DIR/vmf-uefi.qcow2=/srv/a/x.fd" \
    --map-path "$NVRAM_DIR/vmf-uefi_VARS.fd=/srv/b/x.fd" -o "$SCRATCH/out" "$SCRATCH/uefi.vmf"
# A stream cut after its XML: what was written ends without END.
head -c 2000 "$SCRATCH/uefi.vmf" >"$SCRATCH/cut.vmf"
expect_refused "truncated stream to a file" "truncated" \
    $VG vmferry-rewrite --rename y -o "$SCRATCH/out" "$SCRATCH/cut.vmf"
# Cut inside the data: the XML was written already, so the file must go.
size=$(stat -c %s "$SCRATCH/uefi.vmf")
head -c $((size - 60)) "$SCRATCH/uefi.vmf" >"$SCRATCH/cut2.vmf"
expect_refused "stream cut inside its data" "truncated" \
    $VG vmferry-rewrite --rename y -o "$SCRATCH/out" "$SCRATCH/cut2.vmf"
echo "bad input refused, nothing written, nothing fetched"
