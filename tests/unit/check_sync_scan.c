/* Unit tests for lib/sync-scan.c: a full scan's windows come in order,
 * each with the disk's bytes (holes as zeros, unread), a reader's error
 * reaches the caller after the windows before it, and a scan stopped in
 * the middle ends.
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "source.h"
#include "stream.h"
#include "sync-scan.h"

#define BS VMFERRY_BLOCK_SIZE
#define WIN (4 * BS)

/* A sparse file of LEN bytes in a temporary directory: data in the
 * blocks whose number is not a multiple of 3, the rest holes.  Its
 * content goes to *BUF_RTN (the caller frees it), its path to PATH.
 */
static uint64_t
make_file (char path[64], size_t len, unsigned char **buf_rtn)
{
  unsigned char *buf = calloc (1, len + 1);
  int fd;
  uint64_t data = 0;
  unsigned seed = (unsigned) len;

  ck_assert_ptr_nonnull (buf);
  snprintf (path, 64, "/var/tmp/check_sync_scan.XXXXXX");
  fd = mkstemp (path);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, len), 0);
  for (size_t off = 0; off < len; off += BS) {
    size_t n = len - off < BS ? len - off : BS;

    if ((off / BS) % 3 == 0)
      continue;
    for (size_t i = 0; i < n; i++)
      buf[off + i] = rand_r (&seed) & 0xff;
    ck_assert_int_eq (pwrite (fd, buf + off, n, off), (ssize_t) n);
    data += n;
  }
  ck_assert_int_eq (close (fd), 0);
  *buf_rtn = buf;
  return data;
}

START_TEST (test_source_windows)
{
  static const size_t sizes[] = { 0, 100, BS, WIN, WIN + 1, 7 * WIN + 3 * BS,
                                  7 * WIN + 3 * BS + 4321 };

  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    char path[64];
    unsigned char *buf;
    size_t len = sizes[si];
    uint64_t data = make_file (path, len, &buf), got = 0, at = 0;
    uint64_t off, end, rd;
    const unsigned char *w;
    struct vmferry_source *src = vmferry_source_open_file (path, true);
    struct vmferry_sync_scan *s;
    int r;

    /* Nothing left behind when an assertion fails: the source has it. */
    unlink (path);
    ck_assert_msg (src != NULL, "%s", vmferry_get_error ());
    s = vmferry_sync_scan_start (len, WIN, vmferry_sync_scan_fill_source,
                                 src);
    ck_assert_msg (s != NULL, "%s", vmferry_get_error ());
    while ((r = vmferry_sync_scan_next (s, &off, &end, &w, &rd)) == 1) {
      ck_assert_uint_eq (off, at);
      ck_assert_uint_eq (end, len - off < WIN ? len : off + WIN);
      ck_assert_msg (memcmp (w, buf + off, end - off) == 0,
                     "size %zu: window at %" PRIu64 " differs", len, off);
      got += rd;
      at = end;
    }
    ck_assert_int_eq (r, 0);
    ck_assert_uint_eq (at, len);
    /* Holes are not read (a file system without SEEK_DATA reads them). */
    ck_assert_uint_ge (got, data);
    ck_assert_uint_le (got, len);
    /* After the end, still the end. */
    ck_assert_int_eq (vmferry_sync_scan_next (s, &off, &end, &w, &rd), 0);
    vmferry_sync_scan_stop (s);
    vmferry_source_free (src);
    free (buf);
  }
}
END_TEST

/* A fill that writes the window's number in each byte and fails at
 * window FAIL_AT.
 */
struct counting {
  uint64_t fail_at;
  uint64_t calls;
};

static int
counting_fill (void *opaque, uint64_t off, uint64_t end, unsigned char *win,
               uint64_t *read)
{
  struct counting *c = opaque;

  c->calls++;
  if (off / WIN == c->fail_at) {
    vmferry_set_error_errno (EIO, "disk at %" PRIu64 ": read failed", off);
    return -1;
  }
  memset (win, (int) (off / WIN) & 0xff, end - off);
  *read += end - off;
  return 0;
}

/* The reader's error, set in its thread, comes to the caller with its
 * errno, after every window before it, and nothing after it is read.
 */
START_TEST (test_error)
{
  struct counting c = { .fail_at = 5 };
  struct vmferry_sync_scan *s = vmferry_sync_scan_start (20 * WIN, WIN,
                                                         counting_fill, &c);
  uint64_t off, end, rd, n = 0;
  const unsigned char *w;
  int r;

  ck_assert_ptr_nonnull (s);
  vmferry_clear_error ();
  while ((r = vmferry_sync_scan_next (s, &off, &end, &w, &rd)) == 1) {
    ck_assert_uint_eq (off, n * WIN);
    ck_assert_uint_eq (w[0], n);
    ck_assert_uint_eq (w[WIN - 1], n);
    ck_assert_uint_eq (rd, WIN);
    n++;
  }
  ck_assert_int_eq (r, -1);
  ck_assert_uint_eq (n, 5);
  ck_assert_str_eq (vmferry_get_error (), "disk at 1310720: read failed: "
                    "Input/output error");
  ck_assert_int_eq (vmferry_get_errno (), EIO);
  vmferry_sync_scan_stop (s);
  ck_assert_uint_eq (c.calls, 6);
}
END_TEST

/* Stopped after a few windows, the scan ends without reading the rest:
 * the reader is at most the windows of the ring ahead.
 */
START_TEST (test_stop)
{
  struct counting c = { .fail_at = UINT64_MAX };
  struct vmferry_sync_scan *s = vmferry_sync_scan_start (1000 * WIN, WIN,
                                                         counting_fill, &c);
  uint64_t off, end, rd;
  const unsigned char *w;

  ck_assert_ptr_nonnull (s);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq (vmferry_sync_scan_next (s, &off, &end, &w, &rd), 1);
  vmferry_sync_scan_stop (s);
  ck_assert_uint_le (c.calls, 3 + VMFERRY_SYNC_SCAN_WINDOWS);
  /* Stopped before the first window too. */
  s = vmferry_sync_scan_start (1000 * WIN, WIN, counting_fill, &c);
  ck_assert_ptr_nonnull (s);
  vmferry_sync_scan_stop (s);
  vmferry_sync_scan_stop (NULL);
}
END_TEST

VMFERRY_UNIT_MAIN ("sync_scan",
                   test_source_windows,
                   test_error,
                   test_stop)
