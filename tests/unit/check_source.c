/* Unit tests for lib/source*.c: the file source against the extent walk
 * and pread(2) of the same file.
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup-libc.h"
#include "error.h"
#include "extent.h"
#include "full-rw.h"
#include "source.h"
#include "stream.h"

#define BS VMFERRY_BLOCK_SIZE
#define MiB (1024 * 1024)

/* A scratch directory in /var/tmp (a disk file system, where SEEK_DATA
 * is exact), removed by cleanup ().
 */
static char dir[64];

static void
make_dir (void)
{
  strcpy (dir, "/var/tmp/check_source.XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (dir));
}

static void
cleanup (void)
{
  char cmd[128];

  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq (system (cmd), 0);
}

static char *
in_dir (const char *name)
{
  char *p;

  ck_assert_int_ge (asprintf (&p, "%s/%s", dir, name), 0);
  return p;
}

/* Bytes that differ at every offset, never zero. */
static void
pattern (unsigned char *buf, size_t len, uint64_t off)
{
  for (size_t i = 0; i < len; i++) {
    uint64_t x = (off + i) * 0x9e3779b97f4a7c15ULL;
    buf[i] = (unsigned char) ((x >> 56) | 1);
  }
}

static void
put (int fd, uint64_t off, size_t len)
{
  unsigned char *buf = malloc (len);

  pattern (buf, len, off);
  ck_assert_int_eq (pwrite (fd, buf, len, off), (ssize_t) len);
  free (buf);
}

/* The sparse file the cases read: SIZE (not block-aligned) with data in
 * a block, across a page boundary, 5 MiB dense (several chunks, many NBD
 * pieces), and the last byte.
 */
static const uint64_t sparse_size = 24 * MiB + 1234;

static char *
make_sparse (void)
{
  char *path = in_dir ("sparse.img");
  int fd = open (path, O_RDWR | O_CREAT | O_EXCL, 0600);

  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, sparse_size), 0);
  put (fd, 100000, 1);
  put (fd, 5 * MiB + 70000, 4096);
  put (fd, 8 * MiB + 12345, 5 * MiB);
  put (fd, sparse_size - 1, 1);
  ck_assert_int_eq (fsync (fd), 0);
  ck_assert_int_eq (close (fd), 0);
  return path;
}

/* Walk S's map (no zeros asked for) and FD's SEEK_DATA map side by side:
 * the same extents.  Read every extent through S in chunks and compare
 * with pread of FD.  Returns the number of extents.
 */
static size_t
compare_with_file (struct vmferry_source *s, int fd, uint64_t size)
{
  unsigned char *buf = vmferry_alloc_direct (VMFERRY_CHUNK_SIZE);
  unsigned char *want = malloc (VMFERRY_CHUNK_SIZE);
  struct vmferry_source_view v = { 0 };
  uint64_t pos = 0, start, end, fstart, fend;
  size_t n = 0;
  int r, fr;

  ck_assert_ptr_nonnull (buf);
  ck_assert_uint_eq (vmferry_source_size (s), size);
  for (;;) {
    r = vmferry_source_next_data (s, pos, size, &start, &end, NULL);
    fr = vmferry_next_data (fd, "file", pos, size, &fstart, &fend);
    ck_assert_msg (r == fr, "at %" PRIu64 ": source %d, file %d: %s", pos,
                   r, fr, vmferry_get_error ());
    if (r != 1)
      break;
    ck_assert_msg (start == fstart && end == fend,
                   "extent %zu: source [%" PRIu64 ", %" PRIu64 "), file [%"
                   PRIu64 ", %" PRIu64 ")", n, start, end, fstart, fend);
    for (uint64_t off = start; off < end; ) {
      size_t len = end - off < VMFERRY_CHUNK_SIZE ? end - off
                                                   : VMFERRY_CHUNK_SIZE;

      ck_assert_msg (vmferry_source_read (s, off, len, buf, &v) == 0, "%s",
                     vmferry_get_error ());
      ck_assert_int_eq (vmferry_pread_full (fd, "file", want, len, off), 0);
      ck_assert_msg (memcmp (v.data, want, len) == 0,
                     "bytes differ in [%" PRIu64 ", +%zu)", off, len);
      off += len;
    }
    pos = end;
    n++;
  }
  ck_assert_int_eq (r, 0);
  vmferry_source_view_release (&v);
  free (buf);
  free (want);
  return n;
}

START_TEST (test_file_source)
{
  CLEANUP_FREE char *path = NULL;
  struct vmferry_source *s;
  struct vmferry_source_view v = { 0 };
  unsigned char *buf = vmferry_alloc_direct (VMFERRY_CHUNK_SIZE);
  uint64_t start, end;
  bool zero = true;
  int fd;

  make_dir ();
  path = make_sparse ();
  fd = open (path, O_RDONLY);
  ck_assert_int_ge (fd, 0);
  s = vmferry_source_open_file (path, true);
  ck_assert_msg (s != NULL, "%s", vmferry_get_error ());
  ck_assert_str_eq (vmferry_source_name (s), path);
  ck_assert_int_ge (vmferry_source_fd (s), 0);
  /* 4 extents where SEEK_DATA is exact; at least one anywhere. */
  ck_assert_uint_ge (compare_with_file (s, fd, sparse_size), 1);

  /* A file tells no zeros: asking changes nothing. */
  ck_assert_int_eq (vmferry_source_next_data (s, 0, sparse_size, &start,
                                              &end, &zero), 1);
  ck_assert (!zero);

  /* Once in the page cache, a read is a mapping of it, not a copy. */
  ck_assert_int_eq (vmferry_source_read (s, 8 * MiB, BS, buf, &v), 0);
  ck_assert_int_eq (vmferry_source_read (s, 8 * MiB, BS, buf, &v), 0);
  ck_assert_ptr_nonnull (v.map);
  ck_assert_ptr_ne (v.data, buf);
  vmferry_source_view_release (&v);
  ck_assert_ptr_null (v.map);

  /* Past the end is an error, not zeros. */
  ck_assert_int_eq (vmferry_source_read (s, sparse_size - 10, 100, buf, &v),
                    -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "shrank"));
  vmferry_source_free (s);
  close (fd);
  free (buf);
  cleanup ();
}
END_TEST

START_TEST (test_file_refused)
{
  CLEANUP_FREE char *fifo = NULL, *link_path = NULL, *img = NULL;
  int fd;

  make_dir ();
  fifo = in_dir ("fifo");
  ck_assert_int_eq (mkfifo (fifo, 0600), 0);
  ck_assert_ptr_null (vmferry_source_open_file (fifo, false));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "a FIFO"));
  ck_assert_ptr_null (vmferry_source_open_file (dir, false));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "a directory"));

  /* NOFOLLOW: a link to an image is not the image. */
  img = in_dir ("img");
  link_path = in_dir ("link");
  fd = open (img, O_WRONLY | O_CREAT | O_EXCL, 0600);
  ck_assert_int_ge (fd, 0);
  close (fd);
  ck_assert_int_eq (symlink (img, link_path), 0);
  ck_assert_ptr_null (vmferry_source_open_file (link_path, true));
  fd = vmferry_source_open_fd (link_path, false);
  ck_assert_int_ge (fd, 0);
  close (fd);
  cleanup ();
}
END_TEST

VMFERRY_UNIT_MAIN ("source", test_file_source, test_file_refused)
