/* Unit tests for formats/validate.c: what the records of a stream must
 * say together, which vmferry-import and vmferry-info refuse alike.
 */
#include "config.h"

#include "unit.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zstd.h>

#include "digest.h"
#include "error.h"
#include "stream.h"
#include "validate.h"

#define UUID "6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e"
#define FILE_SIZE 100000

/* A manifest of N raw disks of FILE_SIZE bytes (VERSION as given). */
static char *
manifest (unsigned n, int version)
{
  char *s = malloc (4096);
  size_t len;

  ck_assert_ptr_nonnull (s);
  len = snprintf (s, 4096, "{\"format\": \"vmferry-manifest\", \"version\": %d,"
                  " \"domain\": {\"name\": \"d\", \"uuid\": \"" UUID "\"},"
                  " \"files\": [", version);
  for (unsigned i = 0; i < n; i++)
    len += snprintf (s + len, 4096 - len,
                     "%s{\"index\": %u, \"role\": \"disk\","
                     " \"name\": \"f%u\", \"source_path\": \"/f%u\","
                     " \"format\": \"raw\", \"size\": %d, \"allocated\": 0}",
                     i ? ", " : "", i, i, i, FILE_SIZE);
  snprintf (s + len, 4096 - len, "]}");
  return s;
}

/* The error message contains S. */
static void
error_has (const char *s)
{
  ck_assert_msg (strstr (vmferry_get_error (), s) != NULL,
                 "error '%s', expected '%s'", vmferry_get_error (), s);
}

static const char xml[] = "<domain type='kvm'><name>d</name></domain>";

/* What a test stream breaks. */
struct shape {
  int version;                  /* of the manifest: 1 */
  unsigned listed;              /* files in the manifest */
  unsigned carried;             /* files in the stream */
  uint64_t begin_size;          /* FILE_BEGIN's size */
  const void *xml;              /* the XML payload, XML_LEN bytes */
  size_t xml_len;
  bool xml_zstd;
};

static const struct shape normal = {
  .version = 1, .listed = 2, .carried = 2, .begin_size = FILE_SIZE,
  .xml = xml, .xml_len = sizeof xml - 1,
};

/* Write the stream of SH into a memfd, positioned at its start. */
static int
make_stream (const struct shape *sh)
{
  int fd = memfd_create ("validate", 0);
  struct vmferry_stream_writer *w = vmferry_stream_writer_new (fd, "t.vmf");
  struct vmferry_record rec = { .type = VMFERRY_REC_DOMAIN_XML };
  char *m = manifest (sh->listed, sh->version);
  static unsigned char block[VMFERRY_BLOCK_SIZE];
  unsigned char digest[16] = { 0 };
  size_t len = sh->begin_size < sizeof block ? sh->begin_size : sizeof block;
  void *frame = NULL;

  ck_assert_ptr_nonnull (w);
  ck_assert_int_eq (vmferry_stream_write_header (w), 0);
  ck_assert_int_eq (vmferry_stream_write_manifest (w, m), 0);
  if (sh->xml_zstd) {
    size_t cap = ZSTD_compressBound (sh->xml_len);
    frame = malloc (cap);
    ck_assert_ptr_nonnull (frame);
    rec.payload_len = ZSTD_compress (frame, cap, sh->xml, sh->xml_len, 1);
    ck_assert (!ZSTD_isError (rec.payload_len));
    rec.flags = VMFERRY_REC_F_ZSTD;
  }
  else
    rec.payload_len = sh->xml_len;
  ck_assert_int_eq (vmferry_stream_write_record (w, &rec,
                                                 frame ? frame : sh->xml), 0);
  memset (block, 0x5a, sizeof block);
  for (unsigned i = 0; i < sh->carried; i++) {
    ck_assert_int_eq (vmferry_stream_write_file_begin (w, i, sh->begin_size),
                      0);
    ck_assert_int_eq (vmferry_stream_write_data (w, i, 0, len, 0, block, len),
                      0);
    ck_assert_int_eq (vmferry_stream_write_file_end (w, i, digest), 0);
  }
  ck_assert_int_eq (vmferry_stream_write_end (w, sh->carried), 0);
  vmferry_stream_writer_free (w);
  free (frame);
  free (m);
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  return fd;
}

/* Read the stream of SH through a validator, as vmferry-info does.
 * Returns 0 when both accept it, else -1 with the error set.
 */
static int
validate (const struct shape *sh)
{
  int fd = make_stream (sh);
  struct vmferry_stream_reader *r = vmferry_stream_reader_new (fd, "t.vmf");
  struct vmferry_validator *v = vmferry_validator_new ("t.vmf");
  struct vmferry_record rec;
  int ret;

  ck_assert_ptr_nonnull (r);
  ck_assert_ptr_nonnull (v);
  while ((ret = vmferry_stream_read_record (r, &rec)) == 1)
    if (vmferry_validator_record (v, &rec) < 0) {
      ret = -1;
      break;
    }
  if (ret == 0) {
    ret = vmferry_validator_finish (v);
    if (ret == 0) {
      size_t len;
      ck_assert_ptr_nonnull (vmferry_validator_header (v));
      ck_assert_uint_eq (vmferry_validator_manifest (v)->nr_files, sh->listed);
      ck_assert_ptr_nonnull (vmferry_validator_manifest_text (v, &len));
      ck_assert_uint_gt (len, 0);
      ck_assert_str_eq (vmferry_validator_xml (v, &len), xml);
      ck_assert_uint_eq (len, sizeof xml - 1);
    }
  }
  vmferry_validator_free (v);
  vmferry_stream_reader_free (r);
  close (fd);
  return ret;
}

static void
refused (const struct shape *sh, const char *error)
{
  ck_assert_int_eq (validate (sh), -1);
  ck_assert_msg (strstr (vmferry_get_error (), error) != NULL,
                 "error '%s', expected '%s'", vmferry_get_error (), error);
  ck_assert_msg (strncmp (vmferry_get_error (), "t.vmf: record ", 14) == 0,
                 "error '%s' does not name the record", vmferry_get_error ());
}

START_TEST (test_valid)
{
  struct shape sh = normal;

  ck_assert_msg (validate (&sh) == 0, "%s", vmferry_get_error ());
  sh.listed = sh.carried = 0;
  ck_assert_msg (validate (&sh) == 0, "%s", vmferry_get_error ());
  /* A compressed XML is judged by what it decompresses to. */
  sh.xml_zstd = true;
  ck_assert_msg (validate (&sh) == 0, "%s", vmferry_get_error ());
}
END_TEST

START_TEST (test_manifest_version)
{
  struct shape sh = normal;

  sh.version = 2;
  refused (&sh, "record 1 (manifest) at byte 88: manifest: version 2 is "
           "not supported");
}
END_TEST

START_TEST (test_xml)
{
  static const char nul[] = "<domain>\0</domain>";
  static const char latin1[] = "<domain><name>caf\xe9</name></domain>";
  struct shape sh = normal;
  char *big;

  sh.xml = nul;
  sh.xml_len = sizeof nul - 1;
  refused (&sh, "record 2 (domain-xml) at byte");
  error_has ("NUL byte");
  sh.xml_zstd = true;
  refused (&sh, "NUL byte");

  sh.xml = latin1;
  sh.xml_len = sizeof latin1 - 1;
  sh.xml_zstd = false;
  refused (&sh, "the domain XML is not valid UTF-8 (at byte 17)");

  /* 17 MiB: only compressed does it get past the reader's bound. */
  big = malloc (17 << 20);
  ck_assert_ptr_nonnull (big);
  memset (big, ' ', 17 << 20);
  memcpy (big, xml, sizeof xml - 1);
  sh.xml = big;
  sh.xml_len = 17 << 20;
  sh.xml_zstd = true;
  refused (&sh, "decompresses to 17825792 bytes, more than the limit");
  free (big);
}
END_TEST

START_TEST (test_files)
{
  struct shape sh = normal;

  sh.begin_size = FILE_SIZE + 4096;
  refused (&sh, "record 3 (file-begin) at byte");
  error_has ("file 0 (f0) is 104096 bytes, the manifest says 100000");
  sh.begin_size = 4096;
  refused (&sh, "file 0 (f0) is 4096 bytes, the manifest says 100000");

  sh = normal;
  sh.carried = 1;
  refused (&sh, "(end) at byte");
  error_has ("the stream counts 1 files, the manifest lists 2");
  sh = normal;
  sh.carried = 3;
  refused (&sh, "file 2 is not in the manifest (it lists 2 files)");
  sh.listed = 0;
  sh.carried = 1;
  refused (&sh, "file 0 is not in the manifest (it lists 0 files)");
}
END_TEST

/* Records fed by hand (not from the reader) are checked too. */
START_TEST (test_out_of_order)
{
  unsigned char hdr[VMFERRY_STREAM_HEADER_SIZE] = { 0 }, p8[8] = { 0 };
  char *m = manifest (1, 1);
  struct vmferry_validator *v = vmferry_validator_new ("t.vmf");
  struct vmferry_record rec = {
    .type = VMFERRY_REC_FILE_BEGIN, .payload_len = 8, .payload = p8,
  };

  ck_assert_int_eq (vmferry_validator_record (v, &rec), -1);
  error_has ("does not start with its header");
  ck_assert_int_eq (vmferry_validator_record (v, &rec), -1);
  error_has ("cannot continue");
  ck_assert_int_eq (vmferry_validator_finish (v), -1);
  vmferry_validator_free (v);

  v = vmferry_validator_new ("t.vmf");
  memcpy (hdr, VMFERRY_STREAM_MAGIC, 8);
  hdr[8] = 1;
  rec = (struct vmferry_record) {
    .type = VMFERRY_REC_STREAM_HEADER, .payload_len = sizeof hdr,
    .payload = hdr,
  };
  ck_assert_int_eq (vmferry_validator_record (v, &rec), 0);
  ck_assert_uint_eq (vmferry_validator_header (v)->major, 1);
  ck_assert_ptr_null (vmferry_validator_manifest (v));
  rec = (struct vmferry_record) {
    .type = VMFERRY_REC_MANIFEST, .payload_len = strlen (m), .payload = m,
    .seq = 1,
  };
  ck_assert_int_eq (vmferry_validator_record (v, &rec), 0);
  ck_assert_ptr_nonnull (vmferry_validator_manifest (v));
  rec = (struct vmferry_record) {
    .type = VMFERRY_REC_FILE_BEGIN, .payload_len = 8, .payload = p8, .seq = 2,
  };
  ck_assert_int_eq (vmferry_validator_record (v, &rec), -1);
  error_has ("a file begins before the domain XML");
  vmferry_validator_free (v);

  /* The stream ends before END. */
  v = vmferry_validator_new ("t.vmf");
  rec = (struct vmferry_record) {
    .type = VMFERRY_REC_STREAM_HEADER, .payload_len = sizeof hdr,
    .payload = hdr,
  };
  ck_assert_int_eq (vmferry_validator_record (v, &rec), 0);
  ck_assert_int_eq (vmferry_validator_finish (v), -1);
  error_has ("truncated");
  vmferry_validator_free (v);
  vmferry_validator_free (NULL);
  free (m);
}
END_TEST

VMFERRY_UNIT_MAIN ("validate", test_valid, test_manifest_version, test_xml,
                   test_files, test_out_of_order)
