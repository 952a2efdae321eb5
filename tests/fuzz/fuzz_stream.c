/* libFuzzer harness: the stream reader (formats/stream.c), as an
 * importer uses it.  Built with -DVMFERRY_FUZZ=ON (clang) and run by
 * ctest (fuzz/fuzz_stream); seeds in tests/fuzz/seeds/fuzz_stream.
 *
 * Every record is read to the end of the input; STREAM_HEADER payloads
 * are parsed, DATA payloads decoded (decompressed) into a buffer of
 * exactly the record's length, so ASan sees any write beyond it, and
 * fed to the file's digest; MANIFEST and DOMAIN_XML payloads are decoded.
 *
 * The reader trusts its input here (checksums are not verified), or
 * nearly every mutation would stop at "checksum mismatch" and the rules
 * behind it would go untested; check_stream covers the checksum.
 *
 * An invariant is checked too: what the reader accepts, the digest
 * accepts (DATA records in order, aligned, short only at the end).
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "error.h"
#include "stream.h"
#include "validate.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

struct input {
  const uint8_t *data;
  size_t size, pos;
};

static ssize_t
input_read (void *opaque, void *buf, size_t len)
{
  struct input *in = opaque;

  if (len > in->size - in->pos)
    len = in->size - in->pos;
  memcpy (buf, in->data + in->pos, len);
  in->pos += len;
  return len;
}

static void
data_record (const struct vmferry_record *rec, struct vmferry_digest *d)
{
  /* The reader bounds rec->length by VMFERRY_CHUNK_SIZE. */
  unsigned char *out = malloc (rec->length ? rec->length : 1);

  if (out == NULL)
    abort ();
  if (vmferry_record_data (rec, rec->payload, out) == 0 && d != NULL &&
      vmferry_digest_update (d, rec->offset, out, rec->length) < 0) {
    fprintf (stderr, "fuzz_stream: the reader accepted a DATA record the "
             "digest refuses: %s\n", vmferry_get_error ());
    abort ();
  }
  free (out);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct input in = { data, size, 0 };
  struct vmferry_stream_reader *r;
  /* Every record also through the validator both readers use. */
  struct vmferry_validator *v = vmferry_validator_new ("fuzz");
  bool valid = v != NULL;
  struct vmferry_digest *d = NULL;
  struct vmferry_record rec;
  unsigned char digest[VMFERRY_DIGEST_SIZE];
  unsigned major, minor;

  r = vmferry_stream_reader_new_fn (input_read, &in, "fuzz");
  if (r == NULL)
    abort ();
  vmferry_stream_reader_trust (r);
  while (vmferry_stream_read_record (r, &rec) > 0) {
    if (valid && vmferry_validator_record (v, &rec) < 0)
      valid = false;
    switch (rec.type) {
    case VMFERRY_REC_STREAM_HEADER:
      if (vmferry_stream_parse_header (rec.payload, rec.payload_len,
                                       &major, &minor) == 0)
        vmferry_stream_header_mandatory (rec.payload, rec.payload_len);
      break;
    case VMFERRY_REC_MANIFEST:
    case VMFERRY_REC_DOMAIN_XML:
      free (vmferry_record_metadata (&rec, rec.payload, NULL));
      break;
    case VMFERRY_REC_FILE_BEGIN:
      vmferry_digest_free (d);
      if ((d = vmferry_digest_new ()) == NULL)
        abort ();
      break;
    case VMFERRY_REC_DATA:
      data_record (&rec, d);
      break;
    case VMFERRY_REC_FILE_END:
      /* A mismatch is the importer's refusal, not a harness error. */
      if (d != NULL)
        vmferry_digest_final (d, digest);
      break;
    default:
      /* ZERO: the range reads as zeros (nothing to decode; the digest
       * skips zeros).  END: nothing follows.
       */
      break;
    }
  }
  if (valid)
    vmferry_validator_finish (v);
  vmferry_validator_free (v);
  vmferry_digest_free (d);
  vmferry_stream_reader_free (r);
  return 0;
}
