/* Unit tests for lib/digest.c: the file digest depends on logical content
 * only, not on holes, zero runs or chunking.
 */
#include "config.h"

#include "unit.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "digest.h"
#include "error.h"
#include "stream.h"

#define BS VMFERRY_BLOCK_SIZE
/* 20 blocks and a short one; blocks 0, 3-9 and 15 are zero. */
#define SIZE (20 * BS + 4321)

static unsigned char *
content (void)
{
  unsigned char *buf = malloc (SIZE);

  ck_assert_ptr_nonnull (buf);
  for (size_t i = 0; i < SIZE; i++) {
    size_t blk = i / BS;
    buf[i] = blk == 0 || (blk >= 3 && blk <= 9) || blk == 15 ? 0
      : (i * 7 + blk) & 0xff;
  }
  /* A block that is zero except for its last byte. */
  buf[12 * BS - 1] = 0;
  for (size_t i = 11 * BS; i < 12 * BS - 1; i++)
    buf[i] = 0;
  buf[12 * BS - 1] = 1;
  return buf;
}

/* Digest of BUF[0..LEN) fed in pieces of STEP bytes (a multiple of BS),
 * leaving out all-zero pieces when HOLES, as a reader of a sparse file
 * would.
 */
static void
digest_mem (const unsigned char *buf, size_t len, size_t step, int holes,
            unsigned char out[16])
{
  struct vmferry_digest *d = vmferry_digest_new ();

  ck_assert_ptr_nonnull (d);
  for (size_t off = 0; off < len; off += step) {
    size_t n = len - off < step ? len - off : step;
    int zero = 1;

    for (size_t i = 0; i < n && zero; i++)
      zero = buf[off + i] == 0;
    if (holes && zero)
      continue;
    ck_assert_msg (vmferry_digest_update (d, off, buf + off, n) == 0, "%s",
                   vmferry_get_error ());
  }
  vmferry_digest_final (d, out);
  vmferry_digest_free (d);
}

/* The definition, computed independently. */
START_TEST (test_definition)
{
  unsigned char got[16], *buf = calloc (1, 2 * BS + 100), *cat;
  XXH128_canonical_t c;
  size_t n = 0;

  /* Empty: the hash of nothing. */
  digest_mem (buf, 0, BS, 0, got);
  XXH128_canonicalFromHash (&c, XXH3_128bits ("", 0));
  ck_assert_mem_eq (got, c.digest, 16);

  /* Block 1 and the short last block hold data; block 0 is zero. */
  memset (buf + BS + 5, 'a', 10);
  memset (buf + 2 * BS, 'b', 100);
  cat = malloc (2 * 16 + BS + 100);
  for (int i = 0; i < 8; i++) {
    cat[i] = (uint64_t) BS >> (8 * i);
    cat[8 + i] = (uint64_t) BS >> (8 * i);
    cat[16 + BS + i] = (uint64_t) (2 * BS) >> (8 * i);
    cat[24 + BS + i] = (uint64_t) 100 >> (8 * i);
  }
  memcpy (cat + 16, buf + BS, BS);
  memcpy (cat + 32 + BS, buf + 2 * BS, 100);
  n = 32 + BS + 100;
  XXH128_canonicalFromHash (&c, XXH3_128bits (cat, n));
  digest_mem (buf, 2 * BS + 100, 2 * BS + 100, 0, got);
  ck_assert_mem_eq (got, c.digest, 16);
  free (cat);
  free (buf);
}
END_TEST

START_TEST (test_chunking_and_holes)
{
  unsigned char *buf = content ();
  unsigned char a[16], b[16];

  digest_mem (buf, SIZE, SIZE, 0, a);
  static const size_t steps[] = { BS, 2 * BS, 3 * BS, 7 * BS, 16 * BS };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    for (int holes = 0; holes <= 1; holes++) {
      digest_mem (buf, SIZE, steps[i], holes, b);
      ck_assert_msg (memcmp (a, b, 16) == 0, "step %zu holes %d", steps[i],
                     holes);
    }
  }
  free (buf);
}
END_TEST

START_TEST (test_content_matters)
{
  unsigned char *buf = content ();
  unsigned char a[16], b[16];

  digest_mem (buf, SIZE, BS, 0, a);
  /* One bit anywhere, including the short last block. */
  static const size_t at[] = { 0, BS + 17, 12 * BS - 1, 20 * BS + 4320 };
  for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
    buf[at[i]] ^= 1;
    digest_mem (buf, SIZE, BS, 0, b);
    ck_assert_msg (memcmp (a, b, 16) != 0, "flip at %zu", at[i]);
    buf[at[i]] ^= 1;
  }
  /* The same bytes one block later are different content. */
  memmove (buf + BS, buf, SIZE - BS);
  memset (buf, 0, BS);
  digest_mem (buf, SIZE, BS, 0, b);
  ck_assert (memcmp (a, b, 16) != 0);
  free (buf);
}
END_TEST

START_TEST (test_update_rules)
{
  struct vmferry_digest *d = vmferry_digest_new ();
  unsigned char buf[2 * BS] = { 1 };

  ck_assert_int_eq (vmferry_digest_update (d, 100, buf, BS), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "digest: offset 100 is not block aligned");
  ck_assert_int_eq (vmferry_digest_update (d, 2 * BS, buf, 2 * BS), 0);
  ck_assert_int_eq (vmferry_digest_update (d, BS, buf, BS), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "digest: offset 65536 goes back before 262144");
  /* Gaps are holes; a short block ends the file. */
  ck_assert_int_eq (vmferry_digest_update (d, 8 * BS, buf, 10), 0);
  ck_assert_int_eq (vmferry_digest_update (d, 9 * BS, buf, BS), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "short last block"));
  ck_assert_int_eq (vmferry_digest_update (d, 9 * BS, buf, 0), 0);
  vmferry_digest_free (d);
  vmferry_digest_free (NULL);
}
END_TEST

/* update2 gives each digest what two update calls would, and checks
 * both before it adds to either.
 */
START_TEST (test_update2)
{
  unsigned char *buf = content ();
  unsigned char whole[16], tail[16], a_got[16], b_got[16];
  struct vmferry_digest *a = vmferry_digest_new (), *b = vmferry_digest_new ();
  struct vmferry_digest *t = vmferry_digest_new ();

  digest_mem (buf, SIZE, SIZE, 0, whole);
  ck_assert_int_eq (vmferry_digest_update (t, 8 * BS, buf + 8 * BS, SIZE - 8 * BS), 0);
  vmferry_digest_final (t, tail);

  /* A has the file's start; B, a segment's digest, begins at block 8. */
  ck_assert_int_eq (vmferry_digest_update (a, 0, buf, 8 * BS), 0);
  ck_assert_int_eq (vmferry_digest_update2 (a, b, 8 * BS, buf + 8 * BS, 5 * BS), 0);
  /* B cannot go back: refused before A takes anything either. */
  ck_assert_int_eq (vmferry_digest_update2 (b, a, 2 * BS, buf + 2 * BS, BS), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "digest: offset 131072 goes back before 851968");
  ck_assert_int_eq (vmferry_digest_update2 (a, b, 13 * BS, buf + 13 * BS,
                                            SIZE - 13 * BS), 0);
  vmferry_digest_final (a, a_got);
  vmferry_digest_final (b, b_got);
  ck_assert_mem_eq (a_got, whole, 16);
  ck_assert_mem_eq (b_got, tail, 16);
  /* Both saw the short last block. */
  ck_assert_int_eq (vmferry_digest_update2 (a, b, 21 * BS, buf, BS), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "short last block"));
  vmferry_digest_free (a);
  vmferry_digest_free (b);
  vmferry_digest_free (t);
  free (buf);
}
END_TEST

static int
temp_file (void)
{
  char path[] = "/var/tmp/check_digest.XXXXXX";
  int fd = mkstemp (path);

  ck_assert_int_ge (fd, 0);
  unlink (path);
  return fd;
}

/* The same content as a sparse file (holes where zero), as a dense file
 * with written zeros, and in memory: one digest.
 */
START_TEST (test_fd_holes_vs_zeros)
{
  unsigned char *buf = content ();
  unsigned char mem[16], sparse[16], dense[16];
  int fs = temp_file (), fd = temp_file ();

  digest_mem (buf, SIZE, BS, 0, mem);

  ck_assert_int_eq (ftruncate (fs, SIZE), 0);
  for (size_t off = 0; off < SIZE; off += BS) {
    size_t n = SIZE - off < BS ? SIZE - off : BS;
    int zero = 1;
    for (size_t i = 0; i < n && zero; i++)
      zero = buf[off + i] == 0;
    if (!zero)
      ck_assert_int_eq (pwrite (fs, buf + off, n, off), (ssize_t) n);
  }
  ck_assert_int_eq (vmferry_digest_fd (fs, "sparse", SIZE, sparse), 0);
  ck_assert_mem_eq (sparse, mem, 16);

  ck_assert_int_eq (write (fd, buf, SIZE), SIZE);
  ck_assert_int_eq (vmferry_digest_fd (fd, "dense", SIZE, dense), 0);
  ck_assert_mem_eq (dense, mem, 16);

  /* Larger than one 4 MiB read, with a hole in the middle. */
  {
    const uint64_t big = 9 * 1024 * 1024 + 77;
    unsigned char *b2 = calloc (1, big), d1[16], d2[16];
    for (uint64_t i = 0; i < big; i++)
      if (i < 5 * 1024 * 1024 || i > 6 * 1024 * 1024 + 12345)
        b2[i] = i % 251 + 1;
    ck_assert_int_eq (ftruncate (fs, 0), 0);
    ck_assert_int_eq (ftruncate (fs, big), 0);
    ck_assert_int_eq (pwrite (fs, b2, 5 * 1024 * 1024, 0), 5 * 1024 * 1024);
    ck_assert_int_eq (pwrite (fs, b2 + 6 * 1024 * 1024, big - 6 * 1024 * 1024,
                              6 * 1024 * 1024), big - 6 * 1024 * 1024);
    digest_mem (b2, big, BS, 0, d1);
    ck_assert_int_eq (vmferry_digest_fd (fs, "big", big, d2), 0);
    ck_assert_mem_eq (d1, d2, 16);
    free (b2);
  }
  close (fs);
  close (fd);
  free (buf);
}
END_TEST

START_TEST (test_fd_errors)
{
  int fd = temp_file ();
  unsigned char out[16];
  int p[2];

  ck_assert_int_eq (ftruncate (fd, 1000), 0);
  ck_assert_int_eq (vmferry_digest_fd (fd, "f", 1001, out), -1);
  ck_assert_str_eq (vmferry_get_error (), "f: file is 1000 bytes, expected 1001");
  ck_assert_int_eq (pipe (p), 0);
  ck_assert_int_eq (vmferry_digest_fd (p[0], "pipe", 10, out), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "pipe: not a regular file or block device");
  close (p[0]);
  close (p[1]);
  close (fd);
}
END_TEST

/* The digest of a range of a file is that of the data fed from the
 * range's start on: what the importer claims for written-but-unsynced
 * records, then reads back.
 */
START_TEST (test_fd_range)
{
  unsigned char *buf = content ();
  unsigned char want[16], got[16];
  int fs = temp_file ();
  static const struct { uint64_t start, end; } ranges[] = {
    { 0, SIZE }, { 0, BS }, { 2 * BS, 11 * BS }, { 3 * BS, 10 * BS },
    { 12 * BS, SIZE }, { 20 * BS, SIZE }, { 5 * BS, 5 * BS },
  };

  ck_assert_int_eq (ftruncate (fs, SIZE), 0);
  for (size_t off = 0; off < SIZE; off += BS) {
    size_t n = SIZE - off < BS ? SIZE - off : BS;
    int zero = 1;
    for (size_t i = 0; i < n && zero; i++)
      zero = buf[off + i] == 0;
    if (!zero)
      ck_assert_int_eq (pwrite (fs, buf + off, n, off), (ssize_t) n);
  }
  for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
    struct vmferry_digest *d = vmferry_digest_new ();
    uint64_t s = ranges[k].start, e = ranges[k].end;

    /* Fed as records of 3 blocks from the start. */
    for (uint64_t off = s; off < e; off += 3 * BS) {
      uint64_t n = e - off < 3 * BS ? e - off : 3 * BS;
      ck_assert_int_eq (vmferry_digest_update (d, off, buf + off, n), 0);
    }
    vmferry_digest_final (d, want);
    vmferry_digest_free (d);
    ck_assert_msg (vmferry_digest_fd_range (fs, "f", s, e, got) == 0, "%s",
                   vmferry_get_error ());
    ck_assert_msg (memcmp (want, got, 16) == 0, "range %zu differs", k);
  }
  /* The range digest is not the whole file's (block 0 is zero, 1 not). */
  ck_assert_int_eq (vmferry_digest_fd (fs, "f", SIZE, want), 0);
  ck_assert_int_eq (vmferry_digest_fd_range (fs, "f", BS, SIZE, got), 0);
  ck_assert (memcmp (want, got, 16) == 0);
  ck_assert_int_eq (vmferry_digest_fd_range (fs, "f", 2 * BS, SIZE, got), 0);
  ck_assert (memcmp (want, got, 16) != 0);
  /* A start off a block, a range past the end: refused. */
  ck_assert_int_eq (vmferry_digest_fd_range (fs, "f", 100, SIZE, got), -1);
  ck_assert_int_eq (vmferry_digest_fd_range (fs, "f", BS, SIZE + 1, got), -1);
  ck_assert_int_eq (vmferry_digest_fd_range (fs, "f", 2 * BS, BS, got), -1);
  close (fs);
  free (buf);
}
END_TEST

/* ---- The map digest ---- */

/* Chunks of 4 blocks: SIZE makes 6 chunks, the last one short (one
 * block and 4321 bytes); chunk 1 (blocks 4-7) is all zero.
 */
#define MC (4 * BS)

/* The map of BUF[0..LEN) fed in pieces of STEP bytes, zero pieces left
 * out when HOLES.
 */
static struct vmferry_map *
map_mem (const unsigned char *buf, size_t len, size_t step, int holes)
{
  struct vmferry_map *m = vmferry_map_new (len, MC);

  ck_assert_ptr_nonnull (m);
  for (size_t off = 0; off < len; off += step) {
    size_t n = len - off < step ? len - off : step;
    int zero = 1;

    for (size_t i = 0; i < n && zero; i++)
      zero = buf[off + i] == 0;
    if (holes && zero)
      continue;
    ck_assert_msg (vmferry_map_update (m, off, buf + off, n) == 0, "%s",
                   vmferry_get_error ());
  }
  return m;
}

/* Chunk c's digest is the file digest of that chunk's blocks alone, at
 * their offsets in the file; the short last chunk ends with the file.
 */
START_TEST (test_map_chunks)
{
  unsigned char *buf = content ();
  struct vmferry_map *m = map_mem (buf, SIZE, BS, 0);
  unsigned char want[16], got[16], empty[16];
  XXH128_canonical_t c;

  ck_assert_uint_eq (vmferry_map_nr_chunks (m), 6);
  ck_assert_uint_eq (vmferry_map_size (m), SIZE);
  ck_assert_uint_eq (vmferry_map_chunk (m), MC);
  XXH128_canonicalFromHash (&c, XXH3_128bits (NULL, 0));
  memcpy (empty, c.digest, 16);
  for (uint64_t k = 0; k < 6; k++) {
    struct vmferry_digest *d = vmferry_digest_new ();
    uint64_t s = k * MC, e = s + MC < SIZE ? s + MC : SIZE;

    ck_assert_int_eq (vmferry_digest_update (d, s, buf + s, e - s), 0);
    vmferry_digest_final (d, want);
    vmferry_digest_free (d);
    vmferry_map_get (m, k, got);
    ck_assert_msg (memcmp (want, got, 16) == 0, "chunk %" PRIu64, k);
    /* Chunk 1 is zero: the digest of no bytes. */
    ck_assert_int_eq (memcmp (got, empty, 16) == 0, k == 1);
  }
  vmferry_map_free (m);

  /* Any piece size, holes or written zeros: the same map. */
  m = map_mem (buf, SIZE, SIZE, 0);
  static const size_t steps[] = { BS, 3 * BS, 5 * BS, 16 * BS };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    struct vmferry_map *m2 = map_mem (buf, SIZE, steps[i], 1);
    for (uint64_t k = 0; k < 6; k++) {
      vmferry_map_get (m, k, want);
      vmferry_map_get (m2, k, got);
      ck_assert_msg (memcmp (want, got, 16) == 0, "step %zu chunk %" PRIu64,
                     steps[i], k);
    }
    vmferry_map_free (m2);
  }
  vmferry_map_free (m);
  free (buf);
}
END_TEST

/* A change touches the digest of its own chunk only, also at the last
 * byte of a chunk and in the short last chunk.
 */
START_TEST (test_map_boundaries)
{
  unsigned char *buf = content ();
  struct vmferry_map *m = map_mem (buf, SIZE, BS, 0);
  static const size_t at[] = { MC - 1, MC, 2 * MC - 1, 5 * MC, SIZE - 1 };

  for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
    struct vmferry_map *m2;

    buf[at[i]] ^= 0x40;
    m2 = map_mem (buf, SIZE, 3 * BS, 0);
    for (uint64_t k = 0; k < 6; k++) {
      unsigned char a[16], b[16];
      vmferry_map_get (m, k, a);
      vmferry_map_get (m2, k, b);
      ck_assert_msg ((memcmp (a, b, 16) != 0) == (k == at[i] / MC),
                     "flip at %zu, chunk %" PRIu64, at[i], k);
    }
    vmferry_map_free (m2);
    buf[at[i]] ^= 0x40;
  }
  vmferry_map_free (m);
  free (buf);
}
END_TEST

/* The root, computed independently; with one chunk covering the whole
 * file, chunk 0's digest is the file digest.
 */
START_TEST (test_map_root)
{
  unsigned char *buf = content ();
  struct vmferry_map *m = map_mem (buf, SIZE, 2 * BS, 0);
  unsigned char cat[6 * 24], root[16], whole[16], d0[16];
  size_t n = 0;
  XXH128_canonical_t c;

  for (uint64_t k = 0; k < 6; k++) {
    if (k == 1)
      continue;         /* zero chunks are left out */
    for (int i = 0; i < 8; i++)
      cat[n + i] = k >> (8 * i);
    vmferry_map_get (m, k, cat + n + 8);
    n += 24;
  }
  XXH128_canonicalFromHash (&c, XXH3_128bits (cat, n));
  ck_assert_int_eq (vmferry_map_root (m, root), 0);
  ck_assert_mem_eq (root, c.digest, 16);
  /* Not the file digest. */
  digest_mem (buf, SIZE, BS, 0, whole);
  ck_assert (memcmp (root, whole, 16) != 0);
  vmferry_map_free (m);

  /* An empty or all-zero file: the hash of nothing. */
  m = vmferry_map_new (0, MC);
  ck_assert_int_eq (vmferry_map_nr_chunks (m), 0);
  ck_assert_int_eq (vmferry_map_root (m, root), 0);
  XXH128_canonicalFromHash (&c, XXH3_128bits (NULL, 0));
  ck_assert_mem_eq (root, c.digest, 16);
  vmferry_map_free (m);
  m = vmferry_map_new (3 * MC, MC);
  ck_assert_int_eq (vmferry_map_update (m, MC, buf, BS), 0);  /* zeros */
  ck_assert_int_eq (vmferry_map_root (m, root), 0);
  ck_assert_mem_eq (root, c.digest, 16);
  vmferry_map_free (m);

  /* One chunk over the whole file: d_0 is the file digest. */
  m = vmferry_map_new (SIZE, 32 * BS);
  ck_assert_int_eq (vmferry_map_update (m, 0, buf, SIZE), 0);
  vmferry_map_get (m, 0, d0);
  ck_assert_mem_eq (d0, whole, 16);
  vmferry_map_free (m);
  free (buf);
}
END_TEST

/* A receiver that rewrote chunks re-adds just those: the map is then the
 * new content's, and its root differs from the old one's.
 */
START_TEST (test_map_clear_chunk)
{
  unsigned char *buf = content ();
  struct vmferry_map *m = map_mem (buf, SIZE, BS, 0), *fresh;
  unsigned char before[16], after[16], want[16];

  ck_assert_int_eq (vmferry_map_root (m, before), 0);
  memset (buf + 4 * BS + 10, 0x5a, 100);          /* chunk 1 */
  memset (buf + 20 * BS, 0xa5, 4321);             /* chunk 5, short */
  vmferry_map_clear_chunk (m, 1);
  ck_assert_int_eq (vmferry_map_update (m, MC, buf + MC, MC), 0);
  vmferry_map_clear_chunk (m, 5);
  ck_assert_int_eq (vmferry_map_update (m, 5 * MC, buf + 5 * MC,
                                        SIZE - 5 * MC), 0);
  ck_assert_int_eq (vmferry_map_root (m, after), 0);
  ck_assert (memcmp (before, after, 16) != 0);
  fresh = map_mem (buf, SIZE, 7 * BS, 1);
  ck_assert_int_eq (vmferry_map_root (fresh, want), 0);
  ck_assert_mem_eq (after, want, 16);
  /* set copies a digest in; the root follows. */
  vmferry_map_get (fresh, 0, want);
  vmferry_map_set (m, 2, want);
  ck_assert_int_eq (vmferry_map_root (m, after), 0);
  ck_assert_int_eq (vmferry_map_root (fresh, want), 0);
  ck_assert (memcmp (after, want, 16) != 0);
  vmferry_map_free (fresh);
  vmferry_map_free (m);
  free (buf);
}
END_TEST

START_TEST (test_map_rules)
{
  struct vmferry_map *m;
  unsigned char buf[2 * BS] = { 1 };

  ck_assert_ptr_null (vmferry_map_new (10, BS + 1));
  ck_assert_str_eq (vmferry_get_error (),
                    "map: chunk size 65537 is not a multiple of 65536");
  m = vmferry_map_new (3 * BS + 10, MC);
  ck_assert_int_eq (vmferry_map_nr_chunks (m), 1);
  ck_assert_int_eq (vmferry_map_update (m, 2 * BS, buf, 2 * BS), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "map: range 131072+131072 goes beyond the file size "
                    "196618");
  ck_assert_int_eq (vmferry_map_update (m, BS, buf, BS), 0);
  ck_assert_int_eq (vmferry_map_update (m, 0, buf, BS), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "map: offset 0 goes back before 131072");
  ck_assert_int_eq (vmferry_map_update (m, 3 * BS, buf, 10), 0);
  ck_assert_int_eq (vmferry_map_update (m, 3 * BS + 10, buf, 0), 0);
  vmferry_map_free (m);
  vmferry_map_free (NULL);
}
END_TEST

/* From a sparse file in one pass: the map and the file digest both. */
START_TEST (test_map_fd)
{
  unsigned char *buf = content ();
  struct vmferry_map *want = map_mem (buf, SIZE, BS, 0);
  struct vmferry_map *got = vmferry_map_new (SIZE, MC);
  unsigned char a[16], b[16], fd_digest[16];
  int fs = temp_file ();

  ck_assert_int_eq (ftruncate (fs, SIZE), 0);
  for (size_t off = 0; off < SIZE; off += BS) {
    size_t n = SIZE - off < BS ? SIZE - off : BS;
    int zero = 1;
    for (size_t i = 0; i < n && zero; i++)
      zero = buf[off + i] == 0;
    if (!zero)
      ck_assert_int_eq (pwrite (fs, buf + off, n, off), (ssize_t) n);
  }
  ck_assert_msg (vmferry_map_fd (fs, "f", got, fd_digest) == 0, "%s",
                 vmferry_get_error ());
  ck_assert_int_eq (vmferry_map_root (want, a), 0);
  ck_assert_int_eq (vmferry_map_root (got, b), 0);
  ck_assert_mem_eq (a, b, 16);
  digest_mem (buf, SIZE, BS, 0, a);
  ck_assert_mem_eq (fd_digest, a, 16);
  vmferry_map_free (got);
  got = vmferry_map_new (SIZE + 1, MC);
  ck_assert_int_eq (vmferry_map_fd (fs, "f", got, NULL), -1);
  vmferry_map_free (got);
  vmferry_map_free (want);
  close (fs);
  free (buf);
}
END_TEST

/* One pass into a digest and maps of two chunk sizes gives what separate
 * passes give, bit for bit: random data with zero blocks, files of odd
 * sizes, fed in pieces of several sizes with the zero pieces left out or
 * not, and the map sizes a refresh uses (1 MiB chunks, 64 KiB blocks).
 */
START_TEST (test_update_maps)
{
  static const size_t sizes[] = {
    0, 100, BS, BS + 1, 3 * BS - 7, VMFERRY_MAP_CHUNK_SIZE,
    VMFERRY_MAP_CHUNK_SIZE + 4321, 5 * VMFERRY_MAP_CHUNK_SIZE / 2 + 3 * BS,
    4 * VMFERRY_MAP_CHUNK_SIZE - 1,
  };
  static const uint64_t chunks[][2] = {
    { VMFERRY_MAP_CHUNK_SIZE, BS }, { MC, BS }, { 3 * BS, 2 * BS },
  };
  unsigned seed = 16;

  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
  for (size_t ci = 0; ci < sizeof chunks / sizeof chunks[0]; ci++) {
    size_t len = sizes[si];
    unsigned char *buf = malloc (len + 1);
    size_t step = BS * (1 + rand_r (&seed) % 24);
    int holes = rand_r (&seed) % 2;
    struct vmferry_digest *d1 = vmferry_digest_new ();
    struct vmferry_digest *d2 = vmferry_digest_new ();
    struct vmferry_map *one[2], *sep[2];
    unsigned char a[16], b[16];

    ck_assert_ptr_nonnull (buf);
    ck_assert_ptr_nonnull (d1);
    ck_assert_ptr_nonnull (d2);
    for (int k = 0; k < 2; k++) {
      one[k] = vmferry_map_new (len, chunks[ci][k]);
      sep[k] = vmferry_map_new (len, chunks[ci][k]);
      ck_assert_ptr_nonnull (one[k]);
      ck_assert_ptr_nonnull (sep[k]);
    }
    /* Random blocks, a third of them zero, some zero but one byte. */
    for (size_t off = 0; off < len; off += BS) {
      size_t n = len - off < BS ? len - off : BS;
      int kind = rand_r (&seed) % 6;

      for (size_t i = 0; i < n; i++)
        buf[off + i] = kind < 2 ? 0 : rand_r (&seed) & 0xff;
      if (kind == 1)
        buf[off + rand_r (&seed) % n] = 1;
    }
    for (size_t off = 0; off < len; off += step) {
      size_t n = len - off < step ? len - off : step;
      int zero = 1;

      for (size_t i = 0; i < n && zero; i++)
        zero = buf[off + i] == 0;
      if (holes && zero)
        continue;
      ck_assert_msg (vmferry_digest_update_maps (d1, one, 2, off, buf + off,
                                                 n) == 0, "%s",
                     vmferry_get_error ());
      ck_assert_int_eq (vmferry_digest_update (d2, off, buf + off, n), 0);
      ck_assert_int_eq (vmferry_map_update (sep[0], off, buf + off, n), 0);
      ck_assert_int_eq (vmferry_map_update (sep[1], off, buf + off, n), 0);
    }
    vmferry_digest_final (d1, a);
    vmferry_digest_final (d2, b);
    ck_assert_msg (memcmp (a, b, 16) == 0, "size %zu: file digest", len);
    for (int k = 0; k < 2; k++) {
      for (uint64_t c = 0; c < vmferry_map_nr_chunks (one[k]); c++) {
        vmferry_map_get (one[k], c, a);
        vmferry_map_get (sep[k], c, b);
        ck_assert_msg (memcmp (a, b, 16) == 0, "size %zu step %zu map %d "
                       "(chunk %" PRIu64 "): chunk %" PRIu64 " differs", len,
                       step, k, chunks[ci][k], c);
      }
      ck_assert_int_eq (vmferry_map_root (one[k], a), 0);
      ck_assert_int_eq (vmferry_map_root (sep[k], b), 0);
      ck_assert_msg (memcmp (a, b, 16) == 0, "size %zu map %d: root", len, k);
      vmferry_map_free (one[k]);
      vmferry_map_free (sep[k]);
    }
    vmferry_digest_free (d1);
    vmferry_digest_free (d2);
    free (buf);
  }
}
END_TEST

/* A range one of the maps refuses leaves every state untouched. */
START_TEST (test_update_maps_rules)
{
  unsigned char *buf = content ();
  struct vmferry_map *ms[2] = { vmferry_map_new (SIZE, MC),
                                vmferry_map_new (2 * BS, BS) };
  struct vmferry_map *ref = vmferry_map_new (SIZE, MC);
  struct vmferry_digest *d = vmferry_digest_new ();
  unsigned char a[16], b[16];

  /* The second map is 2 blocks long: 3 blocks pass its end. */
  ck_assert_int_eq (vmferry_digest_update_maps (d, ms, 2, 0, buf, 3 * BS),
                    -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "beyond"));
  ck_assert_int_eq (vmferry_digest_update_maps (d, ms, 1, 0, buf, SIZE), 0);
  ck_assert_int_eq (vmferry_map_update (ref, 0, buf, SIZE), 0);
  ck_assert_int_eq (vmferry_map_root (ms[0], a), 0);
  ck_assert_int_eq (vmferry_map_root (ref, b), 0);
  ck_assert_mem_eq (a, b, 16);
  digest_mem (buf, SIZE, SIZE, 0, b);
  vmferry_digest_final (d, a);
  ck_assert_mem_eq (a, b, 16);
  vmferry_map_free (ms[0]);
  vmferry_map_free (ms[1]);
  vmferry_map_free (ref);
  vmferry_digest_free (d);
  free (buf);
}
END_TEST

START_TEST (test_hex)
{
  unsigned char d[16];
  char hex[33];

  for (int i = 0; i < 16; i++)
    d[i] = i * 17 + (i == 15 ? 0 : 1);
  vmferry_digest_hex (d, hex);
  ck_assert_str_eq (hex, "0112233445566778899aabbccddeefff");
}
END_TEST

VMFERRY_UNIT_MAIN ("digest",
                   test_definition,
                   test_chunking_and_holes,
                   test_content_matters,
                   test_update_rules,
                   test_update2,
                   test_fd_holes_vs_zeros,
                   test_fd_errors,
                   test_fd_range,
                   test_map_chunks,
                   test_map_boundaries,
                   test_map_root,
                   test_map_clear_chunk,
                   test_map_rules,
                   test_map_fd,
                   test_update_maps,
                   test_update_maps_rules,
                   test_hex)
