#!/usr/bin/env python3
# mktar.py STREAM OUTPUT CASE: turn a valid stream made by mkstream (raw
# DATA records) into an archive as vmferry-export --format=tar lays it
# out (formats/tar.h), written by Python's tarfile, not libarchive, then
# break it as CASE says.  For tests/hostile/import-tar.sh; CASE "good"
# breaks nothing.  ESCAPE (environment) is the absolute directory an
# absolute entry name points into.
import io
import json
import os
import struct
import sys
import tarfile

stream, output, case = sys.argv[1:4]
data = open(stream, 'rb').read()
manifest = xml = None
files, digests = [], []
pos = 0
while pos < len(data):
    (magic, rtype, flags, fidx, plen, off, length, seq,
     csum) = struct.unpack_from('<4sHHIIQQQQ', data, pos)
    payload = data[pos + 48:pos + 48 + plen]
    pos += 48 + plen
    if rtype == 2:
        manifest = payload
    elif rtype == 3:
        xml = payload
    elif rtype == 4:
        files.append(bytearray(struct.unpack('<Q', payload)[0]))
    elif rtype == 5:
        assert flags == 0, 'mkstream made a compressed record'
        files[fidx][off:off + length] = payload
    elif rtype == 7:
        digests.append(payload.hex())
m = json.loads(manifest)
top = m['domain']['name']
names = [f['name'] for f in m['files']]


def reg(name, body):
    ti = tarfile.TarInfo(name)
    ti.size = len(body)
    ti.mode = 0o600
    return [ti, bytes(body)]


entries = [reg(top + '/.vmferry/manifest.json', manifest),
           reg(top + '/.vmferry/domain.xml', xml)]
for i, body in enumerate(files):
    entries.append(reg(top + '/' + names[i], body))
    entries.append(reg('%s/.vmferry/%d.digest' % (top, i),
                       ('%s  %s\n' % (digests[i], names[i])).encode()))
file0 = 2                       # the entry of the first file


def link(kind, target):
    ti = tarfile.TarInfo(entries[file0][0].name)
    ti.type = kind
    ti.linkname = target
    return [ti, None]


def special(kind):
    ti = tarfile.TarInfo(entries[file0][0].name)
    ti.type = kind
    ti.devmajor, ti.devminor = 1, 3
    return [ti, None]


if case == 'good':
    pass
elif case == 'dotdot':
    entries.insert(file0, reg('../escaped-dotdot', b'x'))
elif case == 'dotdot-inner':
    entries.insert(file0, reg(top + '/../../escaped-inner', b'x'))
elif case == 'absolute':
    entries.insert(file0, reg(os.environ['ESCAPE'] + '/escaped-abs', b'x'))
elif case == 'absolute-first':
    entries.insert(0, reg(os.environ['ESCAPE'] + '/escaped-abs', b'x'))
elif case == 'symlink':
    entries[file0] = link(tarfile.SYMTYPE, '../../escaped-link')
elif case == 'symlink-abs':
    entries[file0] = link(tarfile.SYMTYPE, os.environ['ESCAPE'] + '/escaped-l')
elif case == 'hardlink':
    entries[file0] = link(tarfile.LNKTYPE, top + '/.vmferry/manifest.json')
elif case == 'chardev':
    entries[file0] = special(tarfile.CHRTYPE)
elif case == 'blockdev':
    entries[file0] = special(tarfile.BLKTYPE)
elif case == 'fifo':
    entries[file0] = special(tarfile.FIFOTYPE)
elif case == 'directory':
    entries[file0] = special(tarfile.DIRTYPE)
elif case == 'unlisted':
    entries[file0][0].name = top + '/escaped-unlisted.img'
elif case == 'unlisted-extra':
    entries.insert(file0, reg(top + '/escaped-extra.img', b'x'))
elif case == 'after-end':
    entries.append(reg(top + '/escaped-after.img', b'x'))
elif case == 'no-manifest':
    del entries[0]
elif case == 'other-top':
    entries[file0][0].name = 'other/' + names[0]
elif case == 'short':
    body = entries[file0][1][:-1]
    entries[file0] = reg(entries[file0][0].name, body)
elif case == 'digest-flipped':
    d = entries[file0 + 1][1]
    entries[file0 + 1][1] = (b'0' if d[:1] != b'0' else b'1') + d[1:]
elif case == 'digest-data':
    body = bytearray(entries[file0][1])
    body[0] ^= 1
    entries[file0][1] = bytes(body)
elif case == 'digest-name':
    entries[file0 + 1] = reg(entries[file0 + 1][0].name,
                             entries[file0 + 1][1].replace(
                                 names[0].encode(), b'x.img'))
else:
    sys.exit('mktar.py: unknown case ' + case)

with tarfile.open(output, 'w', format=tarfile.PAX_FORMAT) as t:
    for ti, body in entries:
        t.addfile(ti, io.BytesIO(body) if body is not None else None)
