/* Unit tests for lib/scout.c: a real scout thread reads real files with
 * O_DIRECT (in the build directory: tmpfs refuses O_DIRECT) and finds
 * their runs of written zeros ahead of a reader played by the test.
 */
#include "config.h"

#include "unit.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scout.h"
#include "stream.h"

#define MiB (1024 * 1024)
#define CHUNK VMFERRY_CHUNK_SIZE

/* Write a file whose MiB number i holds LAYOUT[i]: 'd' data, 'z' written
 * zeros, 'h' a hole.  Returns its path (static buffer per slot).
 */
static const char *
make_file (int slot, const char *layout)
{
  static char paths[4][64];
  unsigned char *buf = malloc (MiB);
  size_t n = strlen (layout);
  int fd;

  snprintf (paths[slot], sizeof paths[slot], "scout-test-%d-%d.img", (int) getpid (), slot);
  fd = open (paths[slot], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, (off_t) n * MiB), 0);
  for (size_t i = 0; i < n; i++) {
    if (layout[i] == 'h')
      continue;
    memset (buf, layout[i] == 'd' ? 0x5a : 0, MiB);
    if (layout[i] == 'd')
      buf[i % MiB] = (unsigned char) i;
    ck_assert_int_eq (pwrite (fd, buf, MiB, (off_t) i * MiB), MiB);
  }
  ck_assert_int_eq (fsync (fd), 0);
  close (fd);
  free (buf);
  return paths[slot];
}

START_TEST (test_later_files)
{
  /* File 1: 12 MiB of zeros, 4 of data, 8 of zeros, a hole, 2 zeros. */
  const char *paths[2] = {
    make_file (0, "dddddddddddddddd"),
    make_file (1, "zzzzzzzzzzzzddddzzzzzzzzhhhhzz"),
  };
  uint64_t sizes[2] = { 16 * MiB, 30 * MiB };
  struct vmferry_scout *s = vmferry_scout_new (paths, sizes, 2);

  ck_assert_ptr_nonnull (s);
  /* The reader starts file 0, then waits for its output. */
  ck_assert (!vmferry_scout_zero (s, 0, 0, CHUNK));
  vmferry_scout_stall (s, true);
  vmferry_scout_drain (s);
  vmferry_scout_stall (s, false);

  /* Data is never zero, even after the scout read it. */
  ck_assert (!vmferry_scout_zero (s, 0, CHUNK, CHUNK));
  ck_assert (!vmferry_scout_zero (s, 0, 3 * CHUNK, CHUNK));
  /* File 1's runs of zeros, chunk by chunk, and its data. */
  ck_assert (vmferry_scout_zero (s, 1, 0, CHUNK));
  ck_assert (vmferry_scout_zero (s, 1, CHUNK, CHUNK));
  ck_assert (vmferry_scout_zero (s, 1, 2 * CHUNK, CHUNK));
  ck_assert (!vmferry_scout_zero (s, 1, 3 * CHUNK, CHUNK));
  ck_assert (vmferry_scout_zero (s, 1, 4 * CHUNK, CHUNK));
  ck_assert (vmferry_scout_zero (s, 1, 5 * CHUNK, CHUNK));
  /* A range straddling the zeros and the data is not all zero. */
  ck_assert (!vmferry_scout_zero (s, 1, 6 * CHUNK - MiB, CHUNK));
  /* The 2 MiB after the hole are too short a run to be kept. */
  ck_assert (!vmferry_scout_zero (s, 1, 28 * MiB, 2 * MiB));
  ck_assert_uint_eq (vmferry_scout_skipped (s), 5 * (uint64_t) CHUNK);
  vmferry_scout_free (s);
  unlink (paths[0]);
  unlink (paths[1]);
}
END_TEST

START_TEST (test_own_file_and_passing)
{
  /* One file: the scout reads ahead of the reader in it. */
  const char *paths[1] = { make_file (2, "ddddddddzzzzzzzzzzzzzzzzdddd") };
  uint64_t sizes[1] = { 28 * MiB };
  struct vmferry_scout *s = vmferry_scout_new (paths, sizes, 1);

  ck_assert_ptr_nonnull (s);
  ck_assert (!vmferry_scout_zero (s, 0, 0, CHUNK));
  vmferry_scout_stall (s, true);
  vmferry_scout_drain (s);
  vmferry_scout_stall (s, false);
  /* The reader skips one chunk of the run, then jumps past the rest:
   * what it passed is dropped, what is ahead stays.
   */
  ck_assert (vmferry_scout_zero (s, 0, 8 * MiB, CHUNK));
  ck_assert (!vmferry_scout_zero (s, 0, 24 * MiB, CHUNK));
  ck_assert (!vmferry_scout_zero (s, 0, 16 * MiB, CHUNK));
  ck_assert_uint_eq (vmferry_scout_skipped (s), CHUNK);
  vmferry_scout_free (s);
  unlink (paths[0]);
}
END_TEST

START_TEST (test_unreadable)
{
  /* A file that cannot be opened is left to the reader. */
  const char *paths[2] = { "/nonexistent/vmferry-scout", make_file (3, "zzzzzzzz") };
  uint64_t sizes[2] = { 8 * MiB, 8 * MiB };
  struct vmferry_scout *s = vmferry_scout_new (paths, sizes, 2);

  ck_assert_ptr_nonnull (s);
  vmferry_scout_stall (s, true);
  vmferry_scout_drain (s);
  vmferry_scout_stall (s, false);
  ck_assert (!vmferry_scout_zero (s, 0, 0, CHUNK));
  ck_assert (vmferry_scout_zero (s, 1, 0, CHUNK));
  ck_assert (vmferry_scout_zero (s, 1, CHUNK, CHUNK));
  vmferry_scout_free (s);
  unlink (paths[1]);
  /* NULL is a scout that never finds anything. */
  ck_assert (!vmferry_scout_zero (NULL, 0, 0, CHUNK));
  vmferry_scout_free (NULL);
}
END_TEST

VMFERRY_UNIT_MAIN ("scout", test_later_files, test_own_file_and_passing, test_unreadable)
