/* Unit tests for lib/extent.c: zero detection and data extents of sparse
 * files.
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "error.h"
#include "extent.h"
#include "stream.h"

#define BS VMFERRY_BLOCK_SIZE

START_TEST (test_is_zero_small)
{
  unsigned char buf[256 + 16] = { 0 };

  ck_assert (vmferry_is_zero (buf, 0));
  /* Every length, every start alignment, every position of one
   * non-zero byte (the first, the last, either side of byte 16).
   */
  for (size_t align = 0; align < 16; align++) {
    unsigned char *p = buf + align;

    for (size_t len = 1; len <= 256; len++) {
      memset (buf, 0, sizeof buf);
      ck_assert_msg (vmferry_is_zero (p, len), "len %zu", len);
      for (size_t i = 0; i < len; i++) {
        p[i] = 0x80;
        ck_assert_msg (!vmferry_is_zero (p, len), "align %zu len %zu at %zu",
                       align, len, i);
        p[i] = 0;
      }
      /* Bytes outside the range do not count. */
      if (align > 0)
        p[-1] = 1;
      p[len] = 1;
      ck_assert (vmferry_is_zero (p, len));
    }
  }
}
END_TEST

START_TEST (test_is_zero_large)
{
  size_t len = 8 * 1024 * 1024 + 3;
  unsigned char *buf = calloc (1, len + 1);

  ck_assert (vmferry_is_zero (buf, len));
  ck_assert (vmferry_is_zero (buf + 1, len));
  buf[len - 1] = 1;
  ck_assert (!vmferry_is_zero (buf, len));
  ck_assert (vmferry_is_zero (buf, len - 1));
  buf[len - 1] = 0;
  buf[BS] = 1;
  ck_assert (!vmferry_is_zero (buf, len));
  ck_assert (vmferry_is_zero (buf, BS));
  ck_assert (vmferry_is_zero (buf + BS + 1, len - BS - 1));
  free (buf);
}
END_TEST

/* A temporary file in /var/tmp (a disk filesystem, not tmpfs, where
 * available); unlinked at once.
 */
static int
temp_file (void)
{
  char path[] = "/var/tmp/check_extent.XXXXXX";
  int fd = mkstemp (path);

  ck_assert_int_ge (fd, 0);
  unlink (path);
  return fd;
}

static void
put (int fd, uint64_t offset, size_t len)
{
  unsigned char buf[8192];

  ck_assert_uint_le (len, sizeof buf);
  memset (buf, 0x5a, len);
  ck_assert_int_eq (pwrite (fd, buf, len, offset), (ssize_t) len);
}

/* Filesystems whose SEEK_DATA answers are exact at page granularity. */
static int
exact_fs (int fd)
{
  struct statfs sf;

  ck_assert_int_eq (fstatfs (fd, &sf), 0);
  return sf.f_type == EXT4_SUPER_MAGIC || sf.f_type == XFS_SUPER_MAGIC ||
    sf.f_type == TMPFS_MAGIC || sf.f_type == BTRFS_SUPER_MAGIC;
}

START_TEST (test_next_data_sparse)
{
  const uint64_t size = 10 * 1024 * 1024 + 1234;
  /* Written ranges, and the extents expected from them. */
  static const struct { uint64_t off, len; } w[] = {
    { 100000, 1 },                      /* inside block 1 */
    { 5 * 1024 * 1024 + 70000, 4096 },  /* crosses a page boundary */
    { 10 * 1024 * 1024 + 1233, 1 },     /* last byte of the file */
  };
  static const struct { uint64_t start, end; } want[] = {
    { BS, 2 * BS },
    { 5 * 1024 * 1024 + BS, 5 * 1024 * 1024 + 2 * BS },
    { 10 * 1024 * 1024, 10 * 1024 * 1024 + 1234 },
  };
  int fd = temp_file ();
  uint64_t pos = 0, start, end, got, alloc;
  size_t n = 0;
  int r;

  ck_assert_int_eq (ftruncate (fd, size), 0);
  for (size_t i = 0; i < 3; i++)
    put (fd, w[i].off, w[i].len);
  ck_assert_int_eq (fsync (fd), 0);
  ck_assert_int_eq (vmferry_file_size (fd, "t", &got), 0);
  ck_assert_uint_eq (got, size);

  while ((r = vmferry_next_data (fd, "t", pos, size, &start, &end)) == 1) {
    ck_assert_uint_eq (start % BS, 0);
    ck_assert (end % BS == 0 || end == size);
    ck_assert_uint_ge (start, pos);
    ck_assert_uint_gt (end, start);
    if (exact_fs (fd)) {
      ck_assert_uint_lt (n, 3);
      ck_assert_uint_eq (start, want[n].start);
      ck_assert_uint_eq (end, want[n].end);
    }
    n++;
    pos = end;
  }
  ck_assert_int_eq (r, 0);
  if (exact_fs (fd))
    ck_assert_uint_eq (n, 3);

  /* Starting inside an extent, and past the last one. */
  ck_assert_int_eq (vmferry_next_data (fd, "t", BS, size, &start, &end), 1);
  ck_assert_uint_eq (start, BS);
  ck_assert_int_eq (vmferry_next_data (fd, "t", size, size, &start, &end), 0);
  ck_assert_int_eq (vmferry_next_data (fd, "t", UINT64_MAX, UINT64_MAX,
                                       &start, &end), 0);
  /* A caller's smaller size caps the last extent. */
  ck_assert_int_eq (vmferry_next_data (fd, "t", 0, BS + 40000, &start, &end), 1);
  ck_assert_uint_eq (start, BS);
  ck_assert_uint_eq (end, BS + 40000);

  ck_assert_int_eq (vmferry_allocated_bytes (fd, &alloc), 0);
  ck_assert_uint_lt (alloc, 1024 * 1024);
  close (fd);
}
END_TEST

START_TEST (test_next_data_holes_only)
{
  int fd = temp_file ();
  uint64_t start, end, alloc;

  ck_assert_int_eq (ftruncate (fd, 1 << 30), 0);
  ck_assert_int_eq (vmferry_next_data (fd, "t", 0, 1 << 30, &start, &end), 0);
  ck_assert_int_eq (vmferry_allocated_bytes (fd, &alloc), 0);
  ck_assert_uint_eq (alloc, 0);
  /* An empty file has no data either. */
  ck_assert_int_eq (ftruncate (fd, 0), 0);
  ck_assert_int_eq (vmferry_next_data (fd, "t", 0, 0, &start, &end), 0);
  close (fd);
}
END_TEST

START_TEST (test_next_data_dense)
{
  int fd = temp_file ();
  uint64_t start, end;
  static unsigned char buf[3 * BS];

  memset (buf, 1, sizeof buf);
  ck_assert_int_eq (write (fd, buf, sizeof buf), sizeof buf);
  ck_assert_int_eq (vmferry_next_data (fd, "t", 0, sizeof buf, &start, &end), 1);
  ck_assert_uint_eq (start, 0);
  ck_assert_uint_eq (end, sizeof buf);
  close (fd);
}
END_TEST

START_TEST (test_errors)
{
  int p[2];
  uint64_t size, start, end;

  ck_assert_int_eq (pipe (p), 0);
  ck_assert_int_eq (vmferry_file_size (p[0], "pipe", &size), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "pipe: not a regular file or block device");
  ck_assert_int_eq (vmferry_next_data (p[0], "pipe", 0, 100, &start, &end), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "pipe: lseek SEEK_DATA at 0: Illegal seek");
  close (p[0]);
  close (p[1]);
  ck_assert_int_eq (vmferry_file_size (-1, "bad", &size), -1);
  ck_assert_int_eq (vmferry_get_errno (), EBADF);
  ck_assert_int_eq (vmferry_allocated_bytes (-1, &size), -1);
}
END_TEST

VMFERRY_UNIT_MAIN ("extent",
                   test_is_zero_small,
                   test_is_zero_large,
                   test_next_data_sparse,
                   test_next_data_holes_only,
                   test_next_data_dense,
                   test_errors)
