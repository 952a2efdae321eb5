#!/bin/bash
# Domain XML of pathological shapes, each within the 16 MiB size limit:
# every tool that reads domain XML (vmferry-rewrite and vmferry-check on
# bare XML; vmferry-rewrite and vmferry-import on a stream's XML record)
# finishes each within a generous time, and either handles it or refuses
# it with a message naming the input and the limit (vmferry-stream(5)).
# Shapes that once took time quadratic or cubic in their size: 200000
# attributes on one element (libxml2 checks and appends each against all
# the others), disks renamed by --disk-bus (every disk scanned per name
# tried).  Hermetic: XML and streams in a temporary directory.
set -euo pipefail

# shellcheck source=cases.sh
. "$(dirname "$0")/cases.sh"
hostile_reader_setup
REWRITE=$VMFERRY_TOOLS_DIR/vmferry-rewrite
CHECK=$VMFERRY_TOOLS_DIR/vmferry-check
IMPORT=$VMFERRY_TOOLS_DIR/vmferry-import
# Seconds a tool may take on one input: the slow shapes took minutes.
LIMIT=${VMFERRY_XML_SHAPE_TIMEOUT:-20}
# No libvirtd: vmferry-check reads the XML, then fails to connect here.
DEST="qemu:///system?socket=$tmp/no-such-socket"
RULES=(--map-path /var/lib/libvirt/images=/srv --new-macs --rename x
       --map-network default=n2 --disk-bus virtio=sata)

head='<name>mk</name><uuid>6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e</uuid><memory unit="KiB">65536</memory><os><type>hvm</type></os>'
disk() { printf '<disk type="file" device="disk"><source file="/var/lib/libvirt/images/d%s.img"/><target dev="vd%s" bus="virtio"/></disk>\n' "$1" "$1"; }

# shape NAME: write $tmp/NAME.xml
shape() {
    local f=$tmp/$1.xml
    case $1 in
    attrs-200000)       # one element, 200000 attributes (2.3 MB)
        { printf '<domain type="kvm"'; seq -f ' a%.0f=""' 0 199999 | tr -d '\n'
          printf '>%s<devices>' "$head"; disk 0; printf '</devices></domain>\n'; } >"$f" ;;
    attrs-256)          # the most attributes an element may have
        { printf '<domain type="kvm">%s<devices><disk type="file" device="disk"><source file="/var/lib/libvirt/images/d0.img"' "$head"
          seq -f ' a%.0f=""' 0 254 | tr -d '\n'
          printf '/><target dev="vda" bus="virtio"/></disk></devices></domain>\n'; } >"$f" ;;
    siblings-1000000)   # a million sibling elements (4 MB)
        { printf '<domain type="kvm">%s<devices>' "$head"; disk 0
          head -c 1000000 /dev/zero | tr '\0' 'x' | sed 's/x/<x\/>/g'
          printf '</devices></domain>\n'; } >"$f" ;;
    siblings-90000)     # as many as a domain may have
        { printf '<domain type="kvm">%s<devices>' "$head"; disk 0
          head -c 90000 /dev/zero | tr '\0' 'x' | sed 's/x/<x\/>/g'
          printf '</devices></domain>\n'; } >"$f" ;;
    comments-1000000)   # a million comments (7 MB)
        { printf '<domain type="kvm">%s<devices>' "$head"; disk 0
          head -c 1000000 /dev/zero | tr '\0' 'x' | sed 's/x/<!---->/g'
          printf '</devices></domain>\n'; } >"$f" ;;
    namespaces-deep)    # 250 levels declaring 2 namespaces each in scope
        { printf '<domain type="kvm">%s<metadata>' "$head"
          for i in $(seq 250); do printf '<a%s:x xmlns:a%s="u" xmlns:b%s="u">' $i $i $i; done
          for i in $(seq 250 -1 1); do printf '</a%s:x>' $i; done
          printf '</metadata><devices>'; disk 0; printf '</devices></domain>\n'; } >"$f" ;;
    disks-3000)         # 3000 disks, all renamed by --disk-bus
        { printf '<domain type="kvm">%s<devices>' "$head"
          for i in $(seq 0 2999); do disk $i; done
          printf '</devices></domain>\n'; } >"$f" ;;
    value-9mb)          # one attribute value of 9 MB
        { printf '<domain type="kvm">%s<devices><disk type="file" device="disk"><source file="/var/lib/libvirt/images/d0.img" x="' "$head"
          head -c 9000000 /dev/zero | tr '\0' 'a'
          printf '"/><target dev="vda" bus="virtio"/></disk></devices></domain>\n'; } >"$f" ;;
    depth-250)          # 251 levels deep, 350 times over
        { printf '<domain type="kvm">%s<devices>' "$head"; disk 0; printf '</devices>'
          d=$(printf '<d>%.0s' {1..250})$(printf '</d>%.0s' {1..250})
          for i in $(seq 350); do printf '%s' "$d"; done
          printf '</domain>\n'; } >"$f" ;;
    esac
}

# run NAME EXPECTED LABEL CMD...: CMD finishes within LIMIT seconds, and
# succeeds (EXPECTED "") or fails with EXPECTED in its message.  For
# vmferry-check, success is getting past the XML to the connection.
run() {
    local name=$1 expected=$2 label=$3 rc=0 start end
    shift 3
    start=$(date +%s%N)
    # A tool catches SIGTERM but acts on it only between steps.
    timeout -k 5 "$LIMIT" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    end=$(date +%s%N)
    printf '   %-18s %-14s %5d ms  rc %d\n' "$name" "$label" $(((end - start) / 1000000)) $rc
    if [[ $rc == 124 || $rc == 137 ]]; then
        bad "$name: $label took more than $LIMIT s"
    elif [[ -z $expected && $label == check ]]; then
        grep -q 'cannot connect' "$tmp/err" ||
            bad "$name: $label did not get past the XML: $(head -c 300 "$tmp/err")"
    elif [[ -z $expected && $rc != 0 ]]; then
        bad "$name: $label failed: $(head -c 300 "$tmp/err")"
    elif [[ -n $expected ]]; then
        [[ $rc != 0 ]] || bad "$name: $label accepted it"
        grep -qF -- "$expected" "$tmp/err" ||
            bad "$name: $label: expected '$expected', got: $(head -c 300 "$tmp/err")"
    fi
    return 0
}

# try NAME EXPECTED-FOR-FILE EXPECTED-FOR-STREAM
try() {
    local name=$1 file_msg=$2 stream_msg=$3 before=$failed
    count=$((count + 1))
    shape "$name"
    "$MKSTREAM" --xml "$tmp/$name.xml" "$tmp/$name.vmf" || bad "$name: mkstream failed"
    run "$name" "${file_msg:+$tmp/$name.xml: $file_msg}" rewrite-xml \
        "$REWRITE" "${RULES[@]}" --xml "$tmp/$name.xml"
    run "$name" "${file_msg:+$tmp/$name.xml: $file_msg}" check \
        "$CHECK" -c "$DEST" "$tmp/$name.xml"
    run "$name" "$stream_msg" rewrite-stream "$REWRITE" "${RULES[@]}" "$tmp/$name.vmf"
    rm -rf "$tmp/imp"
    mkdir "$tmp/imp"
    run "$name" "$stream_msg" import "$IMPORT" --dir "$tmp/imp" "$tmp/$name.vmf"
    rm -f "$tmp/$name.xml" "$tmp/$name.vmf"
    if ((failed == before)); then
        # One word: refused (the limit named) or ok (handled in time).
        if [[ -n $file_msg ]]; then
            report "xml-shape-$name" refused
        else
            report "xml-shape-$name" ok
        fi
    else
        report "xml-shape-$name" FAILED
    fi
}

# The message names the input (a file, or the stream's XML record) and
# the limit.
in_stream='domain XML in the stream: line '
attrs='an element has more than 256 attributes'
nodes='more than 100000 elements, attributes, comments and processing instructions'
ns='more than 256 XML namespace declarations in scope'
try attrs-200000 "line 1: $attrs" "${in_stream}1: $attrs"
try attrs-256 '' ''
try siblings-1000000 "line 2: $nodes" "${in_stream}2: $nodes"
try siblings-90000 '' ''
try comments-1000000 "line 2: $nodes" "${in_stream}2: $nodes"
try namespaces-deep "line 1: $ns" "${in_stream}1: $ns"
try disks-3000 '' ''
try value-9mb '' ''
try depth-250 '' ''
((failed)) || echo "   $count shapes, each tool within $LIMIT s"
exit $failed
