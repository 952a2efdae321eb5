/* Unit tests for formats/stream.c: the v1 layout, the writer, and every
 * rule of the reader, including hostile input (every byte flipped, every
 * truncation point).
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "error.h"
#include "stream.h"

#define BS VMFERRY_BLOCK_SIZE

/* ---- Helpers ---- */

/* A memfd holding BUF[0..LEN), positioned at its start. */
static int
mem_input (const void *buf, size_t len)
{
  int fd = memfd_create ("stream", 0);

  ck_assert_int_ge (fd, 0);
  if (len > 0)
    ck_assert_int_eq (write (fd, buf, len), (ssize_t) len);
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  return fd;
}

/* All of a memfd's contents; the caller frees. */
static unsigned char *
mem_contents (int fd, size_t *len_rtn)
{
  off_t len = lseek (fd, 0, SEEK_END);
  unsigned char *buf = malloc (len + 1);

  ck_assert_ptr_nonnull (buf);
  ck_assert_int_eq (pread (fd, buf, len, 0), len);
  *len_rtn = len;
  return buf;
}

/* Read a whole stream, decoding every DATA and metadata record as an
 * importer would.  Returns 0 if it was accepted (the reader reached a
 * clean end), else -1 with the error set.  *NREC_RTN counts records.
 */
static int
read_all (const void *buf, size_t len, size_t *nrec_rtn)
{
  struct vmferry_stream_reader *r;
  struct vmferry_record rec;
  static unsigned char *out;
  size_t nrec = 0;
  int fd = mem_input (buf, len);
  int ret;

  if (out == NULL)
    out = malloc (VMFERRY_MAX_RECORD_LENGTH);
  ck_assert_ptr_nonnull (out);
  r = vmferry_stream_reader_new (fd, "t.vmf");
  ck_assert_ptr_nonnull (r);
  vmferry_clear_error ();
  while ((ret = vmferry_stream_read_record (r, &rec)) == 1) {
    nrec++;
    if (rec.type == VMFERRY_REC_DATA || rec.type == VMFERRY_REC_ZERO) {
      if (vmferry_record_data (&rec, rec.payload, out) < 0) {
        vmferry_prefix_error ("t.vmf");
        ret = -1;
        break;
      }
    }
    else if (rec.type == VMFERRY_REC_MANIFEST ||
             rec.type == VMFERRY_REC_DOMAIN_XML) {
      char *text = vmferry_record_metadata (&rec, rec.payload, NULL);
      if (text == NULL) {
        vmferry_prefix_error ("t.vmf");
        ret = -1;
        break;
      }
      free (text);
    }
  }
  vmferry_stream_reader_free (r);
  close (fd);
  if (nrec_rtn)
    *nrec_rtn = nrec;
  return ret == 0 ? 0 : -1;
}

/* A stream built by hand, record by record, so tests can break rules the
 * writer would refuse to break.
 */
struct sb {
  unsigned char *buf;
  size_t len, cap;
  uint64_t seq;         /* number of the next record */
  size_t last;          /* where the last record starts */
};

static void
sb_bytes (struct sb *b, const void *p, size_t len)
{
  if (b->len + len > b->cap) {
    b->cap = (b->len + len) * 2;
    b->buf = realloc (b->buf, b->cap);
    ck_assert_ptr_nonnull (b->buf);
  }
  if (len > 0)
    memcpy (b->buf + b->len, p, len);
  b->len += len;
}

static void
sb_rec (struct sb *b, uint16_t type, uint16_t flags, uint32_t file,
        uint64_t offset, uint64_t length, const void *payload, uint32_t plen)
{
  struct vmferry_record rec = {
    .type = type, .flags = flags, .file = file, .payload_len = plen,
    .offset = offset, .length = length, .seq = b->seq++,
  };
  unsigned char hdr[VMFERRY_REC_HEADER_SIZE];

  vmferry_record_encode_header (&rec, hdr);
  rec.checksum = vmferry_record_checksum (hdr, payload, plen);
  vmferry_record_encode_header (&rec, hdr);
  b->last = b->len;
  sb_bytes (b, hdr, sizeof hdr);
  sb_bytes (b, payload, plen);
}

/* Recompute the checksum of the last record after a test changed it. */
static void
sb_reseal (struct sb *b)
{
  unsigned char *h = b->buf + b->last;
  uint32_t plen = h[12] | h[13] << 8 | h[14] << 16 | (uint32_t) h[15] << 24;
  uint64_t c = vmferry_record_checksum (h, h + VMFERRY_REC_HEADER_SIZE, plen);

  for (int i = 0; i < 8; i++)
    h[40 + i] = c >> (8 * i);
}

static void
sb_header_v (struct sb *b, unsigned major, unsigned minor, uint64_t mandatory,
             uint64_t optional, size_t len)
{
  unsigned char p[64] = { 0 };

  memcpy (p, VMFERRY_STREAM_MAGIC, 8);
  p[8] = major;
  p[9] = major >> 8;
  p[10] = minor;
  p[11] = minor >> 8;
  for (int i = 0; i < 8; i++) {
    p[16 + i] = mandatory >> (8 * i);
    p[24 + i] = optional >> (8 * i);
  }
  sb_rec (b, VMFERRY_REC_STREAM_HEADER, 0, 0, 0, 0, p, len);
}

static void
sb_header (struct sb *b)
{
  sb_header_v (b, 1, 0, 0, 0, VMFERRY_STREAM_HEADER_SIZE);
}

static const char manifest[] =
  "{\"format\":\"vmferry-manifest\",\"version\":1,\"files\":[]}";
static const char xml[] = "<domain type='kvm'><name>t</name></domain>";

static void
sb_meta (struct sb *b)
{
  sb_rec (b, VMFERRY_REC_MANIFEST, 0, 0, 0, 0, manifest, strlen (manifest));
  sb_rec (b, VMFERRY_REC_DOMAIN_XML, 0, 0, 0, 0, xml, strlen (xml));
}

static void
sb_u64 (struct sb *b, uint16_t type, uint32_t file, uint64_t v)
{
  unsigned char p[8];

  for (int i = 0; i < 8; i++)
    p[i] = v >> (8 * i);
  sb_rec (b, type, 0, file, 0, 0, p, 8);
}

static void
sb_begin (struct sb *b, uint32_t file, uint64_t size)
{
  sb_u64 (b, VMFERRY_REC_FILE_BEGIN, file, size);
}

static void
sb_data (struct sb *b, uint32_t file, uint64_t offset, uint64_t length)
{
  unsigned char *p = malloc (length);

  ck_assert_ptr_nonnull (p);
  memset (p, 0xa5, length);
  sb_rec (b, VMFERRY_REC_DATA, 0, file, offset, length, p, length);
  free (p);
}

static void
sb_zero (struct sb *b, uint32_t file, uint64_t offset, uint64_t length)
{
  sb_rec (b, VMFERRY_REC_ZERO, 0, file, offset, length, NULL, 0);
}

static void
sb_fend (struct sb *b, uint32_t file)
{
  unsigned char d[16] = { 1, 2, 3 };

  sb_rec (b, VMFERRY_REC_FILE_END, 0, file, 0, 0, d, sizeof d);
}

static void
sb_end (struct sb *b, uint64_t nr_files)
{
  sb_u64 (b, VMFERRY_REC_END, 0, nr_files);
}

/* One zstd frame of PATTERN-filled LEN bytes; the caller frees. */
static void *
zstd_frame (size_t len, size_t *frame_len_rtn)
{
  unsigned char *in = malloc (len);
  size_t cap = ZSTD_compressBound (len);
  void *out = malloc (cap);

  for (size_t i = 0; i < len; i++)
    in[i] = (i / 4096) & 0xff;
  *frame_len_rtn = ZSTD_compress (out, cap, in, len, 1);
  ck_assert (!ZSTD_isError (*frame_len_rtn));
  free (in);
  return out;
}

/* ---- Layout ---- */

START_TEST (test_header_layout)
{
  struct vmferry_record rec = {
    .type = VMFERRY_REC_DATA, .flags = VMFERRY_REC_F_ZSTD, .file = 0x01020304,
    .payload_len = 0x0a0b0c0d, .offset = 0x1112131415161718ULL,
    .length = 0x2122232425262728ULL, .seq = 0x3132333435363738ULL,
    .checksum = 0x4142434445464748ULL,
  };
  static const unsigned char want[VMFERRY_REC_HEADER_SIZE] = {
    'V', 'M', 'F', 'R', 5, 0, 1, 0, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a,
    0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
    0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21,
    0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31,
    0x48, 0x47, 0x46, 0x45, 0x44, 0x43, 0x42, 0x41,
  };
  unsigned char got[VMFERRY_REC_HEADER_SIZE];
  struct vmferry_record back;

  vmferry_record_encode_header (&rec, got);
  ck_assert_mem_eq (got, want, sizeof want);

  /* Decoding refuses the oversized fields of this header... */
  ck_assert_int_eq (vmferry_record_decode_header (got, &back), -1);
  /* ...and gives them back once they are within bounds. */
  rec.payload_len = 4096;
  rec.length = 1 << 20;
  vmferry_record_encode_header (&rec, got);
  ck_assert_int_eq (vmferry_record_decode_header (got, &back), 0);
  ck_assert_uint_eq (back.type, rec.type);
  ck_assert_uint_eq (back.flags, rec.flags);
  ck_assert_uint_eq (back.file, rec.file);
  ck_assert_uint_eq (back.payload_len, rec.payload_len);
  ck_assert_uint_eq (back.offset, rec.offset);
  ck_assert_uint_eq (back.length, rec.length);
  ck_assert_uint_eq (back.seq, rec.seq);
  ck_assert_uint_eq (back.checksum, rec.checksum);
}
END_TEST

/* The checksum is plain XXH3-64 of header bytes 0..39 then the payload,
 * so any reader with an xxHash library can check it.
 */
START_TEST (test_checksum_definition)
{
  unsigned char hdr[VMFERRY_REC_HEADER_SIZE], cat[40 + 5];
  struct vmferry_record rec = { .type = VMFERRY_REC_MANIFEST, .payload_len = 5 };

  vmferry_record_encode_header (&rec, hdr);
  memset (hdr + 40, 0xee, 8);   /* the checksum field is not covered */
  memcpy (cat, hdr, 40);
  memcpy (cat + 40, "hello", 5);
  ck_assert_uint_eq (vmferry_record_checksum (hdr, "hello", 5),
                     XXH3_64bits (cat, sizeof cat));
  ck_assert_uint_eq (vmferry_record_checksum (hdr, NULL, 0),
                     XXH3_64bits (hdr, 40));
}
END_TEST

START_TEST (test_type_names)
{
  ck_assert_str_eq (vmferry_record_type_name (VMFERRY_REC_STREAM_HEADER),
                    "stream-header");
  ck_assert_str_eq (vmferry_record_type_name (VMFERRY_REC_DATA), "data");
  ck_assert_str_eq (vmferry_record_type_name (VMFERRY_REC_END), "end");
  ck_assert_str_eq (vmferry_record_type_name (0), "unknown");
  ck_assert_str_eq (vmferry_record_type_name (999), "unknown");
}
END_TEST

START_TEST (test_parse_header)
{
  unsigned char p[48] = { 0 };
  unsigned major, minor;

  memcpy (p, VMFERRY_STREAM_MAGIC, 8);
  p[8] = 1;
  p[10] = 9;
  p[24] = 0xff;                 /* optional features: ignored */
  p[12] = 0x55;                 /* reserved: ignored */
  ck_assert_int_eq (vmferry_stream_parse_header (p, 40, &major, &minor), 0);
  ck_assert_uint_eq (major, 1);
  ck_assert_uint_eq (minor, 9);
  /* Longer headers (a later minor version) are fine. */
  ck_assert_int_eq (vmferry_stream_parse_header (p, 48, NULL, NULL), 0);

  ck_assert_int_eq (vmferry_stream_parse_header (p, 39, NULL, NULL), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "stream header too short (39 bytes, expected 40)");
  p[8] = 2;
  ck_assert_int_eq (vmferry_stream_parse_header (p, 40, NULL, NULL), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "stream format version 2.9 is not supported "
                    "(this vmferry reads version 1.x)");
  p[8] = 1;
  p[23] = 0x80;
  ck_assert_int_eq (vmferry_stream_parse_header (p, 40, NULL, NULL), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "stream uses unknown mandatory features "
                    "0x8000000000000000 (written by a newer vmferry?)");
  p[23] = 0;
  p[0] = 'X';
  ck_assert_int_eq (vmferry_stream_parse_header (p, 40, NULL, NULL), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "bad stream magic"));
}
END_TEST

/* ---- Round trip ---- */

#define F1_SIZE (10 * (uint64_t) 1024 * 1024 + 12345)

/* Deterministic content of file 1 at OFF. */
static unsigned char
f1_byte (uint64_t off)
{
  return (off * 2654435761u) >> 13;
}

struct writer_args {
  int fd;
  int ret;
  char err[VMFERRY_ERROR_MAX];
};

/* Writes a complete stream: two files, raw, compressed and zero
 * records, a compressed XML and an unknown skippable record.
 */
static void *
write_stream (void *arg)
{
  struct writer_args *a = arg;
  struct vmferry_stream_writer *w = vmferry_stream_writer_new (a->fd, "out");
  struct vmferry_compressor *c = vmferry_compressor_new (1);
  unsigned char *chunk = malloc (VMFERRY_CHUNK_SIZE);
  unsigned char *z = malloc (vmferry_zstd_bound (VMFERRY_CHUNK_SIZE));
  unsigned char digest[16] = { 0xd1 };
  struct vmferry_record rec;
  size_t zlen;
  void *xz;
  int r = -1;

  if (!w || !c || !chunk || !z)
    goto out;
  if (vmferry_stream_write_header (w) < 0 ||
      vmferry_stream_write_manifest (w, manifest) < 0)
    goto out;
  /* DOMAIN_XML compressed, written through the generic call. */
  xz = malloc (ZSTD_compressBound (strlen (xml)));
  zlen = ZSTD_compress (xz, ZSTD_compressBound (strlen (xml)), xml,
                        strlen (xml), 3);
  rec = (struct vmferry_record) {
    .type = VMFERRY_REC_DOMAIN_XML, .flags = VMFERRY_REC_F_ZSTD,
    .payload_len = zlen,
  };
  r = vmferry_stream_write_record (w, &rec, xz);
  free (xz);
  if (r < 0)
    goto out;
  r = -1;

  /* File 0: 100 bytes, one short raw record. */
  memset (chunk, 'x', 100);
  if (vmferry_stream_write_file_begin (w, 0, 100) < 0 ||
      vmferry_stream_write_data (w, 0, 0, 100, 0, chunk, 100) < 0 ||
      vmferry_stream_write_file_end (w, 0, digest) < 0)
    goto out;

  /* File 1: [0,4M) compressed, [4M,8M) zero, hole, [9M,end) raw (in two
   * records, with an unknown skippable record between them).
   */
  if (vmferry_stream_write_file_begin (w, 1, F1_SIZE) < 0)
    goto out;
  for (uint64_t i = 0; i < VMFERRY_CHUNK_SIZE; i++)
    chunk[i] = (i / 8192) & 1 ? 0 : 'a' + i % 7;
  if (vmferry_compress (c, chunk, VMFERRY_CHUNK_SIZE, z,
                        vmferry_zstd_bound (VMFERRY_CHUNK_SIZE), &zlen) != 1 ||
      vmferry_stream_write_data (w, 1, 0, VMFERRY_CHUNK_SIZE,
                                 VMFERRY_REC_F_ZSTD, z, zlen) < 0)
    goto out;
  if (vmferry_stream_write_zero (w, 1, VMFERRY_CHUNK_SIZE,
                                 VMFERRY_CHUNK_SIZE) < 0)
    goto out;
  for (uint64_t off = 9 << 20, k = 0; off < F1_SIZE; k++) {
    uint64_t len = k == 0 ? BS * 3 : F1_SIZE - off;
    for (uint64_t i = 0; i < len; i++)
      chunk[i] = f1_byte (off + i);
    if (vmferry_stream_write_data (w, 1, off, len, 0, chunk, len) < 0)
      goto out;
    if (k == 0) {
      rec = (struct vmferry_record) {
        .type = 0x4242, .flags = VMFERRY_REC_F_SKIPPABLE, .payload_len = 3,
        .file = 77, .offset = 12345,
      };
      if (vmferry_stream_write_record (w, &rec, "new") < 0)
        goto out;
    }
    off += len;
  }
  if (vmferry_stream_write_file_end (w, 1, digest) < 0 ||
      vmferry_stream_write_end (w, 2) < 0)
    goto out;
  r = 0;

 out:
  if (r < 0)
    snprintf (a->err, sizeof a->err, "%s", vmferry_get_error ());
  a->ret = r;
  vmferry_stream_writer_free (w);
  vmferry_compressor_free (c);
  free (chunk);
  free (z);
  close (a->fd);
  return NULL;
}

static void
check_round_trip (int in_fd)
{
  static const uint16_t want[] = {
    VMFERRY_REC_STREAM_HEADER, VMFERRY_REC_MANIFEST, VMFERRY_REC_DOMAIN_XML,
    VMFERRY_REC_FILE_BEGIN, VMFERRY_REC_DATA, VMFERRY_REC_FILE_END,
    VMFERRY_REC_FILE_BEGIN, VMFERRY_REC_DATA, VMFERRY_REC_ZERO,
    VMFERRY_REC_DATA, VMFERRY_REC_DATA, VMFERRY_REC_FILE_END, VMFERRY_REC_END,
  };
  struct vmferry_stream_reader *r = vmferry_stream_reader_new (in_fd, "in");
  unsigned char *out = malloc (VMFERRY_MAX_RECORD_LENGTH);
  struct vmferry_record rec;
  uint64_t last_seq = 0, last_off = 0;
  size_t n = 0;
  int ret;

  ck_assert_ptr_nonnull (r);
  while ((ret = vmferry_stream_read_record (r, &rec)) == 1) {
    ck_assert_uint_lt (n, sizeof want / sizeof want[0]);
    ck_assert_uint_eq (rec.type, want[n]);
    /* Numbers count the skipped record too. */
    if (n > 0)
      ck_assert_uint_ge (rec.seq, last_seq + 1);
    ck_assert (n == 0 || rec.stream_offset > last_off);
    last_seq = rec.seq;
    last_off = rec.stream_offset;

    if (rec.type == VMFERRY_REC_MANIFEST || rec.type == VMFERRY_REC_DOMAIN_XML) {
      size_t len;
      char *text = vmferry_record_metadata (&rec, rec.payload, &len);
      ck_assert_ptr_nonnull (text);
      ck_assert_str_eq (text, rec.type == VMFERRY_REC_MANIFEST ? manifest : xml);
      ck_assert_uint_eq (len, strlen (text));
      free (text);
    }
    if (rec.type == VMFERRY_REC_DATA || rec.type == VMFERRY_REC_ZERO) {
      ck_assert_int_eq (vmferry_record_data (&rec, rec.payload, out), 0);
      for (uint64_t i = 0; i < rec.length; i++) {
        uint64_t off = rec.offset + i;
        unsigned char expect;

        if (rec.file == 0)
          expect = 'x';
        else if (off < VMFERRY_CHUNK_SIZE)
          expect = (off / 8192) & 1 ? 0 : 'a' + off % 7;
        else if (off < 2 * VMFERRY_CHUNK_SIZE)
          expect = 0;
        else
          expect = f1_byte (off);
        if (out[i] != expect)
          ck_abort_msg ("file %u byte %lu: %u != %u", rec.file,
                        (unsigned long) off, out[i], expect);
      }
    }
    if (rec.type == VMFERRY_REC_END)
      ck_assert_uint_eq (rec.seq, 13);  /* 14 records, one skipped */
    n++;
  }
  ck_assert_msg (ret == 0, "%s", vmferry_get_error ());
  ck_assert_uint_eq (n, sizeof want / sizeof want[0]);
  /* A clean end stays a clean end. */
  ck_assert_int_eq (vmferry_stream_read_record (r, &rec), 0);
  vmferry_stream_reader_free (r);
  free (out);
}

/* Through a real pipe, so reads and writes are partial. */
START_TEST (test_round_trip_pipe)
{
  struct writer_args a;
  pthread_t t;
  int p[2];

  ck_assert_int_eq (pipe (p), 0);
  a.fd = p[1];
  ck_assert_int_eq (pthread_create (&t, NULL, write_stream, &a), 0);
  check_round_trip (p[0]);
  ck_assert_int_eq (pthread_join (t, NULL), 0);
  ck_assert_msg (a.ret == 0, "%s", a.err);
  close (p[0]);
}
END_TEST

START_TEST (test_round_trip_file)
{
  struct writer_args a;
  int fd = memfd_create ("s", 0);

  a.fd = dup (fd);
  write_stream (&a);
  ck_assert_msg (a.ret == 0, "%s", a.err);
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  check_round_trip (fd);
  close (fd);
}
END_TEST

START_TEST (test_writer_bytes)
{
  int fd = memfd_create ("s", 0);
  struct vmferry_stream_writer *w = vmferry_stream_writer_new (fd, "out");

  ck_assert_uint_eq (vmferry_stream_writer_bytes (w), 0);
  ck_assert_int_eq (vmferry_stream_write_header (w), 0);
  ck_assert_uint_eq (vmferry_stream_writer_bytes (w), 48 + 40);
  ck_assert_int_eq (lseek (fd, 0, SEEK_CUR), 48 + 40);
  vmferry_stream_writer_free (w);
  close (fd);
}
END_TEST

/* The writer refuses what the reader would refuse, and writes nothing. */
START_TEST (test_writer_refuses)
{
  int fd = memfd_create ("s", 0);
  struct vmferry_stream_writer *w = vmferry_stream_writer_new (fd, "out");
  unsigned char d[16] = { 0 };
  struct vmferry_record rec = { .type = 99 };

  ck_assert_int_eq (vmferry_stream_write_manifest (w, manifest), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "out: record 0 (manifest): refusing to write: "
                    "unexpected record, expected the stream header");
  ck_assert_int_eq (vmferry_stream_write_header (w), 0);
  ck_assert_int_eq (vmferry_stream_write_manifest (w, manifest), 0);
  ck_assert_int_eq (vmferry_stream_write_xml (w, xml), 0);
  ck_assert_int_eq (vmferry_stream_write_file_begin (w, 1, 100), -1);
  ck_assert_int_eq (vmferry_stream_write_file_begin (w, 0, 1 << 20), 0);
  ck_assert_int_eq (vmferry_stream_write_zero (w, 0, 4096, BS), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "not aligned"));
  ck_assert_int_eq (vmferry_stream_write_record (w, &rec, NULL), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "unknown record type 99"));
  ck_assert_int_eq (vmferry_stream_write_end (w, 1), -1);
  ck_assert_int_eq (vmferry_stream_write_file_end (w, 0, d), 0);
  ck_assert_int_eq (vmferry_stream_write_end (w, 2), -1);
  ck_assert_int_eq (vmferry_stream_write_end (w, 1), 0);
  ck_assert_int_eq (vmferry_stream_write_end (w, 1), -1);
  vmferry_stream_writer_free (w);

  {
    size_t len, n;
    unsigned char *buf = mem_contents (fd, &len);
    ck_assert_msg (read_all (buf, len, &n) == 0, "%s", vmferry_get_error ());
    ck_assert_uint_eq (n, 6);
    free (buf);
  }
  close (fd);
}
END_TEST

START_TEST (test_writer_broken_pipe)
{
  struct vmferry_stream_writer *w;
  int p[2];

  signal (SIGPIPE, SIG_IGN);
  ck_assert_int_eq (pipe (p), 0);
  close (p[0]);
  w = vmferry_stream_writer_new (p[1], "stdout");
  ck_assert_int_eq (vmferry_stream_write_header (w), -1);
  ck_assert_str_eq (vmferry_get_error (), "stdout: write: Broken pipe");
  ck_assert_int_eq (vmferry_get_errno (), EPIPE);
  ck_assert_int_eq (vmferry_stream_write_header (w), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "earlier write error"));
  vmferry_stream_writer_free (w);
  close (p[1]);
}
END_TEST

/* ---- The reader's rules, table-driven ---- */

/* A valid stream: one file of 3 blocks + 100 bytes. */
static void
build_valid (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 3 * BS + 100);
  sb_data (b, 0, 0, BS);
  sb_zero (b, 0, BS, BS);
  sb_data (b, 0, 3 * BS, 100);
  sb_fend (b, 0);
  sb_end (b, 1);
}

static void
build_wrong_magic (struct sb *b)
{
  build_valid (b);
  b->buf[0] = 'X';
}

static void
build_wrong_magic_later (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, BS);
  memcpy (b->buf + b->last, "VMFX", 4);
  sb_reseal (b);
}

static void
build_bad_checksum (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, BS);
  sb_data (b, 0, 0, BS);
  b->buf[b->last + 48 + 1000] ^= 1;
}

static void
build_seq_gap (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  b->seq++;
  sb_begin (b, 0, BS);
}

static void
build_seq_repeat (struct sb *b)
{
  sb_header (b);
  b->seq--;
  sb_meta (b);
}

static void
build_xml_before_manifest (struct sb *b)
{
  sb_header (b);
  sb_rec (b, VMFERRY_REC_DOMAIN_XML, 0, 0, 0, 0, xml, strlen (xml));
}

static void
build_manifest_first (struct sb *b)
{
  sb_meta (b);
}

static void
build_data_outside_file (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_data (b, 0, 0, BS);
}

static void
build_end_inside_file (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, BS);
  sb_end (b, 1);
}

static void
build_second_header (struct sb *b)
{
  sb_header (b);
  sb_header (b);
}

static void
build_misaligned (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 4 * BS);
  sb_data (b, 0, 4096, BS);
}

static void
build_beyond_size (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 2 * BS);
  sb_zero (b, 0, BS, 2 * BS);
}

static void
build_offset_overflow (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 2 * BS);
  sb_zero (b, 0, UINT64_MAX - UINT64_MAX % BS, BS);
}

static void
build_short_not_at_end (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 4 * BS);
  sb_data (b, 0, 0, 100);
}

static void
build_backwards (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 4 * BS);
  sb_zero (b, 0, BS, 2 * BS);
  sb_zero (b, 0, 2 * BS, BS);
}

static void
build_zero_length (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 4 * BS);
  sb_zero (b, 0, 0, 0);
}

static void
build_unknown_mandatory (struct sb *b)
{
  sb_header_v (b, 1, 0, 0x100, 0, VMFERRY_STREAM_HEADER_SIZE);
}

/* RESUME (bit 0) needs the token after byte 40. */
static void
build_resume_no_token (struct sb *b)
{
  sb_header_v (b, 1, 1, VMFERRY_FEATURE_RESUME, 0, VMFERRY_STREAM_HEADER_SIZE);
}

static void
build_major_2 (struct sb *b)
{
  sb_header_v (b, 2, 0, 0, 0, VMFERRY_STREAM_HEADER_SIZE);
}

static void
build_short_stream_header (struct sb *b)
{
  sb_header_v (b, 1, 0, 0, 0, 32);
}

/* Accepted: later minor version, optional features, longer header. */
static void
build_newer_minor (struct sb *b)
{
  sb_header_v (b, 1, 7, 0, 0xffff, 64);
  sb_meta (b);
  sb_end (b, 0);
}

static void
build_unknown_type (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_rec (b, 200, 0, 0, 0, 0, "x", 1);
}

/* Accepted: unknown skippable records anywhere after the header. */
static void
build_unknown_skippable (struct sb *b)
{
  sb_header (b);
  sb_rec (b, 200, VMFERRY_REC_F_SKIPPABLE | VMFERRY_REC_F_ZSTD, 5, 1, 2, "x", 1);
  sb_meta (b);
  sb_begin (b, 0, BS);
  sb_rec (b, 201, VMFERRY_REC_F_SKIPPABLE, 0, 0, 0, NULL, 0);
  sb_zero (b, 0, 0, BS);
  sb_fend (b, 0);
  sb_end (b, 1);
}

static void
build_skippable_first (struct sb *b)
{
  sb_rec (b, 200, VMFERRY_REC_F_SKIPPABLE, 0, 0, 0, "x", 1);
}

static void
build_skippable_after_end (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_end (b, 0);
  sb_rec (b, 200, VMFERRY_REC_F_SKIPPABLE, 0, 0, 0, "x", 1);
}

static void
build_trailing (struct sb *b)
{
  build_valid (b);
  sb_bytes (b, "\n", 1);
}

static void
build_oversize_payload (struct sb *b)
{
  struct vmferry_record rec = {
    .type = VMFERRY_REC_DATA, .payload_len = VMFERRY_MAX_PAYLOAD + 1,
    .length = VMFERRY_MAX_PAYLOAD + 1, .seq = 4,
  };
  unsigned char hdr[VMFERRY_REC_HEADER_SIZE];

  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 1 << 30);
  vmferry_record_encode_header (&rec, hdr);
  sb_bytes (b, hdr, sizeof hdr);
}

static void
build_oversize_metadata (struct sb *b)
{
  struct vmferry_record rec = {
    .type = VMFERRY_REC_MANIFEST, .payload_len = VMFERRY_MAX_METADATA + 1,
    .seq = 1,
  };
  unsigned char hdr[VMFERRY_REC_HEADER_SIZE];

  sb_header (b);
  vmferry_record_encode_header (&rec, hdr);
  sb_bytes (b, hdr, sizeof hdr);
}

static void
build_oversize_length (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 1ULL << 40);
  sb_zero (b, 0, 0, VMFERRY_MAX_RECORD_LENGTH + BS);
}

static void
build_end_count (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 0);
  sb_fend (b, 0);
  sb_end (b, 2);
}

static void
build_wrong_file_index (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 1, BS);
}

static void
build_data_other_file (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, BS);
  sb_fend (b, 0);
  sb_begin (b, 1, BS);
  sb_zero (b, 0, 0, BS);
}

static void
build_unknown_flags (struct sb *b)
{
  sb_header (b);
  sb_rec (b, VMFERRY_REC_MANIFEST, 0x0100, 0, 0, 0, manifest, strlen (manifest));
}

static void
build_raw_length_mismatch (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 2 * BS);
  sb_rec (b, VMFERRY_REC_DATA, 0, 0, 0, 2 * BS, "abc", 3);
}

static void
build_zero_with_payload (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 2 * BS);
  sb_rec (b, VMFERRY_REC_ZERO, 0, 0, 0, BS, "abc", 3);
}

static void
build_zstd_on_begin (struct sb *b)
{
  unsigned char p[8] = { 1 };

  sb_header (b);
  sb_meta (b);
  sb_rec (b, VMFERRY_REC_FILE_BEGIN, VMFERRY_REC_F_ZSTD, 0, 0, 0, p, 8);
}

static void
build_huge_file (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, (uint64_t) INT64_MAX + 1);
}

static void
build_fields_not_zero (struct sb *b)
{
  sb_header (b);
  sb_rec (b, VMFERRY_REC_MANIFEST, 0, 0, BS, 0, manifest, strlen (manifest));
}

static void
build_file_on_manifest (struct sb *b)
{
  sb_header (b);
  sb_rec (b, VMFERRY_REC_MANIFEST, 0, 3, 0, 0, manifest, strlen (manifest));
}

static void
build_empty_manifest (struct sb *b)
{
  sb_header (b);
  sb_rec (b, VMFERRY_REC_MANIFEST, 0, 0, 0, 0, NULL, 0);
}

static void
build_bad_file_end (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, BS);
  sb_rec (b, VMFERRY_REC_FILE_END, 0, 0, 0, 0, "short", 5);
}

/* FILE_MAP: after the file's data, once, before its FILE_END. */
static void
sb_fmap (struct sb *b, uint32_t file, uint64_t chunk)
{
  unsigned char p[VMFERRY_FILE_MAP_SIZE] = { 0 };

  for (int i = 0; i < 8; i++)
    p[i] = chunk >> (8 * i);
  sb_rec (b, VMFERRY_REC_FILE_MAP, VMFERRY_REC_F_SKIPPABLE, file, 0, 0, p,
          sizeof p);
}

static void
build_file_map (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 3 * BS);
  sb_data (b, 0, 0, BS);
  sb_zero (b, 0, BS, BS);
  sb_fmap (b, 0, 1024 * 1024);
  sb_fend (b, 0);
  sb_end (b, 1);
}

static void
build_data_after_map (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 3 * BS);
  sb_fmap (b, 0, 1024 * 1024);
  sb_data (b, 0, 0, BS);
}

static void
build_two_maps (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 3 * BS);
  sb_fmap (b, 0, 1024 * 1024);
  sb_fmap (b, 0, 1024 * 1024);
}

static void
build_map_bad_chunk (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 3 * BS);
  sb_fmap (b, 0, 1000);
}

static void
build_map_outside_file (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_fmap (b, 0, 1024 * 1024);
}

static void
build_nul_in_xml (struct sb *b)
{
  sb_header (b);
  sb_rec (b, VMFERRY_REC_MANIFEST, 0, 0, 0, 0, manifest, strlen (manifest));
  sb_rec (b, VMFERRY_REC_DOMAIN_XML, 0, 0, 0, 0, "<a>\0</a>", 8);
}

/* A frame holding BS bytes in a record that claims 2 blocks. */
static void
build_zstd_size_mismatch (struct sb *b)
{
  size_t flen;
  void *f = zstd_frame (BS, &flen);

  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, 2 * BS);
  sb_rec (b, VMFERRY_REC_DATA, VMFERRY_REC_F_ZSTD, 0, 0, 2 * BS, f, flen);
  free (f);
}

static void
build_zstd_no_content_size (struct sb *b)
{
  ZSTD_CCtx *c = ZSTD_createCCtx ();
  unsigned char in[BS] = { 1 }, out[1024];
  ZSTD_inBuffer ib = { in, sizeof in, 0 };
  ZSTD_outBuffer ob = { out, sizeof out, 0 };

  /* Streaming without a pledged size leaves the content size out. */
  ZSTD_CCtx_setParameter (c, ZSTD_c_contentSizeFlag, 0);
  ck_assert_uint_eq (ZSTD_compressStream2 (c, &ob, &ib, ZSTD_e_end), 0);
  ZSTD_freeCCtx (c);
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, BS);
  sb_rec (b, VMFERRY_REC_DATA, VMFERRY_REC_F_ZSTD, 0, 0, BS, out, ob.pos);
}

static void
build_zstd_garbage (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, BS);
  sb_rec (b, VMFERRY_REC_DATA, VMFERRY_REC_F_ZSTD, 0, 0, BS, "garbage!", 8);
}

static void
build_zstd_two_frames (struct sb *b)
{
  size_t flen;
  unsigned char *f = zstd_frame (BS, &flen);
  unsigned char *two = malloc (2 * flen);

  memcpy (two, f, flen);
  memcpy (two + flen, f, flen);
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, BS);
  sb_rec (b, VMFERRY_REC_DATA, VMFERRY_REC_F_ZSTD, 0, 0, BS, two, 2 * flen);
  free (f);
  free (two);
}

static void
build_zstd_truncated_frame (struct sb *b)
{
  size_t flen;
  unsigned char *f = zstd_frame (BS, &flen);

  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, BS);
  sb_rec (b, VMFERRY_REC_DATA, VMFERRY_REC_F_ZSTD, 0, 0, BS, f, flen - 3);
  free (f);
}

static void
build_empty (struct sb *b)
{
  (void) b;
}

static void
build_no_end (struct sb *b)
{
  sb_header (b);
  sb_meta (b);
  sb_begin (b, 0, BS);
  sb_fend (b, 0);
}

static const struct reader_case {
  const char *name;
  void (*build) (struct sb *);
  const char *expect;           /* in the message; NULL: accepted */
} reader_cases[] = {
  { "valid", build_valid, NULL },
  { "newer minor", build_newer_minor, NULL },
  { "unknown skippable", build_unknown_skippable, NULL },
  { "empty", build_empty, "t.vmf: record 0 at byte 0: truncated: empty input" },
  { "no end", build_no_end,
    "t.vmf: record 5 at byte 398: truncated: end of input before the END record" },
  { "wrong magic", build_wrong_magic,
    "t.vmf: record 0 at byte 0: bad magic (not a vmferry stream, or corrupt)" },
  { "wrong magic later", build_wrong_magic_later,
    "t.vmf: record 3 at byte 278: bad magic" },
  { "bad checksum", build_bad_checksum,
    "t.vmf: record 4 (data) at byte 334: checksum mismatch" },
  { "seq gap", build_seq_gap,
    "record 3 (file-begin) at byte 278: record carries number 4, expected 3" },
  { "seq repeat", build_seq_repeat, "carries number 0, expected 1" },
  { "xml before manifest", build_xml_before_manifest,
    "record 1 (domain-xml) at byte 88: unexpected record, expected the manifest" },
  { "manifest first", build_manifest_first,
    "record 0 (manifest) at byte 0: unexpected record, expected the stream header" },
  { "data outside file", build_data_outside_file,
    "unexpected record, expected file-begin or end" },
  { "end inside file", build_end_inside_file,
    "(end) at byte 334: unexpected record, expected data, zero or file-end" },
  { "second header", build_second_header, "expected the manifest" },
  { "misaligned", build_misaligned,
    "record 4 (data) at byte 334: offset 4096 is not aligned to 65536 bytes" },
  { "beyond size", build_beyond_size,
    "range 65536+131072 goes beyond the file size 131072" },
  { "offset overflow", build_offset_overflow, "goes beyond the file size" },
  { "short not at end", build_short_not_at_end,
    "length 100 is not a multiple of 65536 bytes" },
  { "backwards", build_backwards, "offset 131072 goes back before 196608" },
  { "zero length", build_zero_length, "zero length" },
  { "unknown mandatory", build_unknown_mandatory,
    "record 0 (stream-header) at byte 0: stream uses unknown mandatory features 0x100" },
  { "resume without token", build_resume_no_token,
    "record 0 (stream-header) at byte 0: stream header: a resumed stream without its resume token" },
  { "major 2", build_major_2,
    "stream format version 2.0 is not supported (this vmferry reads version 1.x)" },
  { "short stream header", build_short_stream_header, "stream header too short" },
  { "unknown type", build_unknown_type,
    "record 3 (type 200) at byte 278: unknown record type 200, not skippable" },
  { "skippable first", build_skippable_first, "expected the stream header" },
  { "skippable after end", build_skippable_after_end,
    "trailing data after the END record" },
  { "trailing", build_trailing,
    "record 9 at byte 66234: trailing data after the END record" },
  { "oversize payload", build_oversize_payload,
    "record 4 (data) at byte 334: payload of 5242881 bytes exceeds the limit of 5242880" },
  { "oversize metadata", build_oversize_metadata,
    "payload of 16777217 bytes exceeds the limit of 16777216" },
  { "oversize length", build_oversize_length, "exceeds the limit of 67108864" },
  { "end count", build_end_count, "end record counts 2 files, the stream has 1" },
  { "wrong file index", build_wrong_file_index, "file 1 begins, expected file 0" },
  { "data other file", build_data_other_file, "record for file 0 inside file 1" },
  { "unknown flags", build_unknown_flags, "unknown record flags 0x0100" },
  { "raw length mismatch", build_raw_length_mismatch,
    "payload is 3 bytes, length is 131072" },
  { "zero with payload", build_zero_with_payload, "zero record with a payload" },
  { "zstd on begin", build_zstd_on_begin, "compression flag on a file-begin record" },
  { "huge file", build_huge_file, "is too large" },
  { "fields not zero", build_fields_not_zero, "offset and length must be 0" },
  { "file on manifest", build_file_on_manifest, "file index must be 0" },
  { "empty manifest", build_empty_manifest, "empty payload" },
  { "bad file end", build_bad_file_end, "payload is 5 bytes, expected 16" },
  { "file map", build_file_map, NULL },
  { "data after map", build_data_after_map,
    "unexpected record, expected file-end" },
  { "two maps", build_two_maps, "unexpected record, expected file-end" },
  { "map bad chunk", build_map_bad_chunk,
    "map chunk size 1000 is not a multiple of 65536 bytes" },
  { "map outside file", build_map_outside_file,
    "unexpected record, expected file-begin or end" },
  { "nul in xml", build_nul_in_xml,
    "record 2 (domain-xml) at byte 188: text contains a NUL byte" },
  { "zstd size mismatch", build_zstd_size_mismatch,
    "record 4 (data) at byte 334: zstd frame holds 65536 bytes, expected 131072" },
  { "zstd no content size", build_zstd_no_content_size,
    "zstd frame does not declare its content size" },
  { "zstd garbage", build_zstd_garbage, "not a zstd frame" },
  { "zstd two frames", build_zstd_two_frames, "not exactly one zstd frame" },
  { "zstd truncated frame", build_zstd_truncated_frame, "zstd" },
};

START_TEST (test_reader_rules)
{
  for (size_t i = 0; i < sizeof reader_cases / sizeof reader_cases[0]; i++) {
    const struct reader_case *c = &reader_cases[i];
    struct sb b = { 0 };
    int r;

    c->build (&b);
    r = read_all (b.buf, b.len, NULL);
    if (c->expect == NULL)
      ck_assert_msg (r == 0, "%s: refused: %s", c->name, vmferry_get_error ());
    else {
      ck_assert_msg (r == -1, "%s: accepted", c->name);
      ck_assert_msg (strstr (vmferry_get_error (), c->expect) != NULL,
                     "%s: message \"%s\" lacks \"%s\"", c->name,
                     vmferry_get_error (), c->expect);
    }
    free (b.buf);
  }
}
END_TEST

/* After an error the reader does not carry on as if nothing happened. */
START_TEST (test_reader_sticky_error)
{
  struct sb b = { 0 };
  struct vmferry_stream_reader *r;
  struct vmferry_record rec;
  int fd;

  build_bad_checksum (&b);
  fd = mem_input (b.buf, b.len);
  r = vmferry_stream_reader_new (fd, "t.vmf");
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq (vmferry_stream_read_record (r, &rec), 1);
  ck_assert_int_eq (vmferry_stream_read_record (r, &rec), -1);
  ck_assert_int_eq (vmferry_stream_read_record (r, &rec), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "earlier error"));
  ck_assert_uint_eq (vmferry_stream_reader_bytes (r), b.len);
  vmferry_stream_reader_free (r);
  close (fd);
  free (b.buf);
}
END_TEST

/* A small stream with every kind of record, from the writer. */
static unsigned char *
small_stream (size_t *len_rtn)
{
  int fd = memfd_create ("s", 0);
  struct vmferry_stream_writer *w = vmferry_stream_writer_new (fd, "out");
  struct vmferry_compressor *c = vmferry_compressor_new (3);
  static unsigned char block[BS], z[2 * BS];
  unsigned char d[16] = { 9 };
  struct vmferry_record skip = {
    .type = 300, .flags = VMFERRY_REC_F_SKIPPABLE, .payload_len = 2,
  };
  unsigned char *buf;
  size_t zlen;

  for (size_t i = 0; i < BS; i++)
    block[i] = i % 3;
  ck_assert_int_eq (vmferry_compress (c, block, BS, z, sizeof z, &zlen), 1);
  ck_assert (vmferry_stream_write_header (w) == 0 &&
             vmferry_stream_write_manifest (w, "{}") == 0 &&
             vmferry_stream_write_xml (w, "<domain/>") == 0 &&
             vmferry_stream_write_file_begin (w, 0, 30) == 0 &&
             vmferry_stream_write_data (w, 0, 0, 30, 0, "0123456789abcdefghijklmnopqrst",
                                        30) == 0 &&
             vmferry_stream_write_file_end (w, 0, d) == 0 &&
             vmferry_stream_write_file_begin (w, 1, 2 * BS + 20) == 0 &&
             vmferry_stream_write_data (w, 1, 0, BS, VMFERRY_REC_F_ZSTD, z,
                                        zlen) == 0 &&
             vmferry_stream_write_record (w, &skip, "hi") == 0 &&
             vmferry_stream_write_zero (w, 1, BS, BS) == 0 &&
             vmferry_stream_write_data (w, 1, 2 * BS, 20, 0, block, 20) == 0 &&
             vmferry_stream_write_file_end (w, 1, d) == 0 &&
             vmferry_stream_write_end (w, 2) == 0);
  vmferry_stream_writer_free (w);
  vmferry_compressor_free (c);
  buf = mem_contents (fd, len_rtn);
  close (fd);
  return buf;
}

START_TEST (test_flip_every_byte)
{
  size_t len, n;
  unsigned char *s = small_stream (&len);

  ck_assert_msg (read_all (s, len, &n) == 0, "%s", vmferry_get_error ());
  ck_assert_uint_eq (n, 12);
  ck_assert_uint_lt (len, 2048);
  for (size_t i = 0; i < len; i++) {
    /* The whole byte, then each bit alone. */
    for (int bit = -1; bit < 8; bit++) {
      unsigned char mask = bit < 0 ? 0xff : 1 << bit;

      s[i] ^= mask;
      if (read_all (s, len, NULL) == 0)
        ck_abort_msg ("byte %zu ^ 0x%02x accepted", i, mask);
      ck_assert_msg (strncmp (vmferry_get_error (), "t.vmf: record ", 14) == 0,
                     "byte %zu: message \"%s\"", i, vmferry_get_error ());
      s[i] ^= mask;
    }
  }
  free (s);
}
END_TEST

/* copy_record: every record copied with its number is the same bytes
 * (the checksum passed on, not computed again); with records left out,
 * the later ones are renumbered with checksums of their own.  A trusting
 * reader takes a damaged record, and its copy still fails at the next
 * reader that verifies: the damage is found, only later.
 */
static unsigned char *
copy_stream (const unsigned char *in, size_t len, bool trust, bool drop_zero,
             size_t *len_rtn)
{
  int ifd = mem_input (in, len), ofd = memfd_create ("copy", 0);
  struct vmferry_stream_reader *r = vmferry_stream_reader_new (ifd, "in");
  struct vmferry_stream_writer *w = vmferry_stream_writer_new (ofd, "out");
  struct vmferry_record rec;
  unsigned char *out;
  int ret;

  vmferry_stream_reader_pass_skipped (r, true);
  if (trust)
    vmferry_stream_reader_trust (r);
  while ((ret = vmferry_stream_read_record (r, &rec)) == 1) {
    if (drop_zero && rec.type == VMFERRY_REC_ZERO)
      continue;
    ck_assert_msg (vmferry_stream_copy_record (w, &rec, rec.payload) == 0, "%s",
                   vmferry_get_error ());
  }
  ck_assert_msg (ret == 0, "%s", vmferry_get_error ());
  vmferry_stream_writer_free (w);
  vmferry_stream_reader_free (r);
  close (ifd);
  out = mem_contents (ofd, len_rtn);
  close (ofd);
  return out;
}

START_TEST (test_copy_record)
{
  size_t len, clen, n;
  unsigned char *s = small_stream (&len), *c;
  size_t at = 0;

  /* Kept whole: the very bytes. */
  c = copy_stream (s, len, false, false, &clen);
  ck_assert_uint_eq (clen, len);
  ck_assert (memcmp (c, s, len) == 0);
  free (c);

  /* The ZERO record left out: one record less, every checksum valid. */
  c = copy_stream (s, len, false, true, &clen);
  ck_assert_uint_eq (clen, len - VMFERRY_REC_HEADER_SIZE);
  ck_assert_msg (read_all (c, clen, &n) == 0, "%s", vmferry_get_error ());
  ck_assert_uint_eq (n, 11);
  free (c);

  /* A payload byte of the first DATA record damaged: refused when
   * verified, taken when trusted, and the copy refused again.
   */
  while (!(s[at + 4] == VMFERRY_REC_DATA && s[at + 5] == 0))
    at += VMFERRY_REC_HEADER_SIZE + (s[at + 12] | s[at + 13] << 8 | s[at + 14] << 16);
  s[at + VMFERRY_REC_HEADER_SIZE + 3] ^= 1;
  ck_assert_int_eq (read_all (s, len, NULL), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "checksum mismatch"));
  c = copy_stream (s, len, true, false, &clen);
  ck_assert (clen == len && memcmp (c, s, len) == 0);
  ck_assert_int_eq (read_all (c, clen, NULL), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "checksum mismatch"));
  free (c);
  free (s);
}
END_TEST

START_TEST (test_truncate_everywhere)
{
  size_t len;
  unsigned char *s = small_stream (&len);

  for (size_t n = 0; n < len; n++) {
    if (read_all (s, n, NULL) == 0)
      ck_abort_msg ("truncated at %zu of %zu accepted", n, len);
    ck_assert_msg (strstr (vmferry_get_error (), ": truncated") != NULL,
                   "at %zu: message \"%s\"", n, vmferry_get_error ());
  }
  free (s);
}
END_TEST

/* ---- Payload decoding ---- */

START_TEST (test_record_data_raw_and_zero)
{
  struct vmferry_record rec = {
    .type = VMFERRY_REC_DATA, .payload_len = 4, .length = 4,
  };
  unsigned char out[8];

  memset (out, 0xff, sizeof out);
  ck_assert_int_eq (vmferry_record_data (&rec, "abcd", out), 0);
  ck_assert_mem_eq (out, "abcd\xff", 5);
  rec.type = VMFERRY_REC_ZERO;
  rec.payload_len = 0;
  ck_assert_int_eq (vmferry_record_data (&rec, NULL, out), 0);
  ck_assert_mem_eq (out, "\0\0\0\0\xff", 5);
  rec.type = VMFERRY_REC_FILE_END;
  rec.seq = 9;
  rec.stream_offset = 1234;
  ck_assert_int_eq (vmferry_record_data (&rec, NULL, out), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "record 9 (file-end) at byte 1234: not a data record");
}
END_TEST

struct dthread {
  const void *frame;
  size_t flen;
  int ok;
};

static void *
decompress_many (void *arg)
{
  struct dthread *t = arg;
  struct vmferry_record rec = {
    .type = VMFERRY_REC_DATA, .flags = VMFERRY_REC_F_ZSTD,
    .payload_len = t->flen, .length = VMFERRY_CHUNK_SIZE,
  };
  unsigned char *out = malloc (VMFERRY_CHUNK_SIZE);

  t->ok = 1;
  for (int i = 0; i < 20; i++) {
    memset (out, 0xff, VMFERRY_CHUNK_SIZE);
    if (vmferry_record_data (&rec, t->frame, out) < 0)
      t->ok = 0;
    for (size_t j = 0; j < VMFERRY_CHUNK_SIZE; j += 4093)
      if (out[j] != ((j / 4096) & 0xff))
        t->ok = 0;
  }
  free (out);
  return NULL;
}

/* Workers decompress at the same time, each with its own context. */
START_TEST (test_record_data_threads)
{
  struct dthread t[4];
  pthread_t th[4];
  size_t flen;
  void *f = zstd_frame (VMFERRY_CHUNK_SIZE, &flen);

  for (int i = 0; i < 4; i++) {
    t[i] = (struct dthread) { .frame = f, .flen = flen };
    ck_assert_int_eq (pthread_create (&th[i], NULL, decompress_many, &t[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq (pthread_join (th[i], NULL), 0);
    ck_assert (t[i].ok);
  }
  free (f);
}
END_TEST

START_TEST (test_metadata_zstd)
{
  struct vmferry_record rec = {
    .type = VMFERRY_REC_MANIFEST, .flags = VMFERRY_REC_F_ZSTD,
  };
  char z[256];
  size_t len;
  char *text;

  rec.payload_len = ZSTD_compress (z, sizeof z, manifest, strlen (manifest), 1);
  text = vmferry_record_metadata (&rec, z, &len);
  ck_assert_ptr_nonnull (text);
  ck_assert_str_eq (text, manifest);
  ck_assert_uint_eq (len, strlen (manifest));
  free (text);
  rec.type = VMFERRY_REC_DATA;
  ck_assert_ptr_null (vmferry_record_metadata (&rec, z, &len));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "not a metadata record"));
}
END_TEST

START_TEST (test_compressor)
{
  struct vmferry_compressor *c = vmferry_compressor_new (1);
  size_t len = 1 << 20, zlen = 0, cap = vmferry_zstd_bound (len);
  unsigned char *in = malloc (len), *z = malloc (cap), *back = malloc (len);
  struct vmferry_record rec = {
    .type = VMFERRY_REC_DATA, .flags = VMFERRY_REC_F_ZSTD, .length = len,
  };
  uint64_t x = 88172645463325252ULL;

  ck_assert_uint_ge (cap, len);
  memset (in, 'q', len);
  ck_assert_int_eq (vmferry_compress (c, in, len, z, cap, &zlen), 1);
  ck_assert_uint_lt (zlen, len / 100);
  rec.payload_len = zlen;
  ck_assert_int_eq (vmferry_record_data (&rec, z, back), 0);
  ck_assert_mem_eq (back, in, len);

  /* Random bytes do not compress: send them raw. */
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    in[i] = x;
  }
  ck_assert_int_eq (vmferry_compress (c, in, len, z, cap, &zlen), 0);
  /* Nor does a frame that does not fit in CAP. */
  memset (in, 'q', len);
  ck_assert_int_eq (vmferry_compress (c, in, len, z, 8, &zlen), 0);
  ck_assert_int_eq (vmferry_compress (c, in, 0, z, cap, &zlen), 0);

  ck_assert_int_eq (vmferry_compressor_set_level (c, 19), 0);
  ck_assert_int_eq (vmferry_compress (c, in, len, z, cap, &zlen), 1);
  ck_assert_int_eq (vmferry_compressor_set_level (c, 1000), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "out of range"));
  ck_assert_ptr_null (vmferry_compressor_new (1000));
  vmferry_compressor_free (c);
  vmferry_compressor_free (NULL);
  free (in);
  free (z);
  free (back);
}
END_TEST

/* ---- Typed payloads ---- */

START_TEST (test_typed_payloads)
{
  unsigned char p8[8] = { 0x10, 0x27 }, d[16], got[16];
  unsigned char h[VMFERRY_STREAM_HEADER_SIZE + VMFERRY_RESUME_TOKEN_SIZE];
  struct vmferry_record rec = {
    .type = VMFERRY_REC_FILE_BEGIN, .payload_len = 8, .seq = 3,
    .stream_offset = 100,
  };
  struct vmferry_stream_header sh;
  uint64_t v;

  memset (h, 0, sizeof h);
  ck_assert_int_eq (vmferry_record_file_begin (&rec, p8, &v), 0);
  ck_assert_uint_eq (v, 10000);
  /* A record of another type or size, as a caller might pass by hand. */
  rec.type = VMFERRY_REC_END;
  ck_assert_int_eq (vmferry_record_file_begin (&rec, p8, &v), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "record 3 (end) at byte 100: not a file-begin record");
  ck_assert_int_eq (vmferry_record_end (&rec, p8, &v), 0);
  ck_assert_uint_eq (v, 10000);
  rec.payload_len = 7;
  ck_assert_int_eq (vmferry_record_end (&rec, p8, &v), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "payload is 7 bytes, expected 8"));
  rec.type = VMFERRY_REC_FILE_BEGIN;
  rec.payload_len = 8;
  p8[7] = 0x80;
  ck_assert_int_eq (vmferry_record_file_begin (&rec, p8, &v), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "is too large"));

  for (int i = 0; i < 16; i++)
    d[i] = i * 17;
  rec.type = VMFERRY_REC_FILE_END;
  rec.payload_len = 16;
  ck_assert_int_eq (vmferry_record_file_end (&rec, d, got), 0);
  ck_assert_mem_eq (got, d, 16);
  rec.payload_len = 15;
  ck_assert_int_eq (vmferry_record_file_end (&rec, d, got), -1);

  memcpy (h, VMFERRY_STREAM_MAGIC, 8);
  h[8] = 1;
  h[10] = 1;
  h[16] = VMFERRY_FEATURE_RESUME;
  h[24] = 0x42;
  memset (h + VMFERRY_STREAM_HEADER_SIZE, 0xab, VMFERRY_RESUME_TOKEN_SIZE);
  rec.type = VMFERRY_REC_STREAM_HEADER;
  rec.payload_len = sizeof h;
  ck_assert_int_eq (vmferry_record_stream_header (&rec, h, &sh), 0);
  ck_assert_uint_eq (sh.major, 1);
  ck_assert_uint_eq (sh.minor, 1);
  ck_assert_uint_eq (sh.mandatory, VMFERRY_FEATURE_RESUME);
  ck_assert_uint_eq (sh.optional, 0x42);
  ck_assert_uint_eq (sh.token[0], 0xab);
  ck_assert_uint_eq (sh.token[VMFERRY_RESUME_TOKEN_SIZE - 1], 0xab);
  /* RESUME without its token, another major, too short. */
  rec.payload_len = VMFERRY_STREAM_HEADER_SIZE;
  ck_assert_int_eq (vmferry_record_stream_header (&rec, h, &sh), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "without its resume token"));
  h[16] = 0;
  ck_assert_int_eq (vmferry_record_stream_header (&rec, h, &sh), 0);
  ck_assert_uint_eq (sh.token[0], 0);
  h[8] = 2;
  ck_assert_int_eq (vmferry_record_stream_header (&rec, h, &sh), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "version 2.1 is not supported"));
  rec.payload_len = 39;
  ck_assert_int_eq (vmferry_record_stream_header (&rec, h, &sh), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "expected at least 40"));
}
END_TEST

VMFERRY_UNIT_MAIN ("stream",
                   test_header_layout,
                   test_checksum_definition,
                   test_type_names,
                   test_parse_header,
                   test_round_trip_pipe,
                   test_round_trip_file,
                   test_writer_bytes,
                   test_writer_refuses,
                   test_writer_broken_pipe,
                   test_reader_rules,
                   test_reader_sticky_error,
                   test_flip_every_byte,
                   test_truncate_everywhere,
                   test_copy_record,
                   test_record_data_raw_and_zero,
                   test_record_data_threads,
                   test_metadata_zstd,
                   test_compressor,
                   test_typed_payloads)
