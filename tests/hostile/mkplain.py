#!/usr/bin/env python3
# mkplain.py DIR OUTPUT CASE: a tar "made by hand" (no vmferry manifest)
# from DIR's vm.xml and disk.img, written by Python's tarfile, then broken
# as CASE says.  For tests/hostile/import-tar.sh; CASE "good" breaks
# nothing.  ESCAPE (environment) is the absolute directory an absolute
# entry name or a link points into.
import io
import os
import sys
import tarfile

src, output, case = sys.argv[1:4]
esc = os.environ.get('ESCAPE', '/tmp')
xml = open(os.path.join(src, 'vm.xml'), 'rb').read()
disk = open(os.path.join(src, 'disk.img'), 'rb').read()


def reg(name, body):
    ti = tarfile.TarInfo(name)
    ti.size = len(body)
    ti.mode = 0o600
    return [ti, bytes(body)]


def link(name, kind, target):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = target
    return [ti, None]


# The disk before the XML: a stream's order is not a tar's.
entries = [reg('vm/disk.img', disk), reg('vm/vm.xml', xml)]
if case == 'good':
    pass
elif case == 'disk-outside':       # the XML names a file the tar has not
    entries[1][1] = xml.replace(b'disk.img', b'passwd')
    entries[1][0].size = len(entries[1][1])
elif case == 'disk-dotdot':        # ... or by a path through ".."
    entries[1][1] = xml.replace(b'/images/disk.img', b'/images/../disk.img')
    entries[1][0].size = len(entries[1][1])
elif case == 'two-xml':
    entries.append(reg('vm/other.xml', xml))
elif case == 'two-xml-dirs':
    entries.append(reg('vm2/vm.xml', xml))
elif case == 'disk-symlink':
    entries[0] = link('vm/disk.img', tarfile.SYMTYPE, esc + '/escaped-t')
elif case == 'disk-symlink-rel':
    entries[0] = link('vm/disk.img', tarfile.SYMTYPE, '../../escaped-t')
elif case == 'disk-hardlink':
    entries[0] = link('vm/disk.img', tarfile.LNKTYPE, 'vm/vm.xml')
elif case == 'disk-fifo':
    entries[0][0].type = tarfile.FIFOTYPE
    entries[0][0].size = 0
    entries[0][1] = b''
elif case == 'dotdot':
    entries.insert(0, reg('../escaped-dotdot', b'x'))
elif case == 'dotdot-disk':
    entries[0][0].name = 'vm/../../escaped-disk.img'
elif case == 'absolute':
    entries.insert(0, reg(esc + '/escaped-abs', b'x'))
elif case == 'twice':
    entries.append(reg('vm/disk.img', b'x' * 512))
elif case == 'vmferry-meta':       # a vmferry archive's manifest, not first
    entries.append(reg('vm/.vmferry/manifest.json', b'{}'))
else:
    sys.exit('mkplain.py: unknown case ' + case)

with tarfile.open(output, 'w', format=tarfile.PAX_FORMAT) as t:
    for ti, body in entries:
        t.addfile(ti, io.BytesIO(body) if body else None)
