/* libFuzzer harness for the stream reader (formats/stream.c).  Not part of
 * the CMake build.  With clang and a configured build/ (for config.h):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ibuild -Ilib -Iformats tests/fuzz/fuzz_stream.c formats/stream.c lib/error.c $(pkg-config --cflags --libs libzstd libxxhash) -o fuzz_stream
 *   mkdir -p corpus && ./fuzz_stream -max_total_time=60 corpus   (seed corpus: any small .vmf)
 *
 * Each record's checksum is recomputed before the input is read, or
 * nearly every mutation would stop at "checksum mismatch" and the rules
 * behind it would go untested (check_stream covers the checksum itself).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stream.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
fix_checksums (unsigned char *buf, size_t size)
{
  size_t pos = 0;

  while (size - pos >= VMFERRY_REC_HEADER_SIZE) {
    unsigned char *h = buf + pos;
    uint32_t plen = h[12] | h[13] << 8 | h[14] << 16 | (uint32_t) h[15] << 24;
    uint64_t c;

    if (plen > size - pos - VMFERRY_REC_HEADER_SIZE)
      break;
    c = vmferry_record_checksum (h, h + VMFERRY_REC_HEADER_SIZE, plen);
    for (int i = 0; i < 8; i++)
      h[40 + i] = c >> (8 * i);
    pos += VMFERRY_REC_HEADER_SIZE + plen;
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static int fd = -1;
  struct vmferry_stream_reader *r;
  struct vmferry_record rec;
  unsigned char *buf;

  if (fd < 0 && (fd = memfd_create ("fuzz", 0)) < 0)
    abort ();
  buf = malloc (size + 1);
  if (buf == NULL)
    return 0;
  memcpy (buf, data, size);
  fix_checksums (buf, size);
  if (ftruncate (fd, 0) < 0 || pwrite (fd, buf, size, 0) != (ssize_t) size ||
      lseek (fd, 0, SEEK_SET) != 0)
    abort ();
  free (buf);

  vmferry_stream_parse_header (data, size, NULL, NULL);

  r = vmferry_stream_reader_new (fd, "fuzz");
  if (r == NULL)
    abort ();
  while (vmferry_stream_read_record (r, &rec) > 0) {
    if (rec.type == VMFERRY_REC_DATA) {
      /* Exactly rec.length bytes, so ASan sees any write beyond it. */
      void *out = malloc (rec.length ? rec.length : 1);
      if (out) {
        vmferry_record_data (&rec, rec.payload, out);
        free (out);
      }
    }
    else if (rec.type == VMFERRY_REC_MANIFEST ||
             rec.type == VMFERRY_REC_DOMAIN_XML)
      free (vmferry_record_metadata (&rec, rec.payload, NULL));
  }
  vmferry_stream_reader_free (r);
  return 0;
}
