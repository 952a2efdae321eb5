/* Unit tests for base/full-rw.c: reads and writes that move every byte
 * or fail naming the file.
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "full-rw.h"

static int
scratch_file (void)
{
  char tmpl[] = "/tmp/check_full_rw.XXXXXX";
  int fd = mkstemp (tmpl);

  ck_assert_int_ge (fd, 0);
  unlink (tmpl);
  return fd;
}

START_TEST (test_pwrite_pread)
{
  int fd = scratch_file ();
  char buf[64];

  ck_assert_int_eq (vmferry_pwrite_full (fd, "f", "hello", 5, 100), 0);
  ck_assert_int_eq (vmferry_pread_full (fd, "f", buf, 5, 100), 0);
  ck_assert_int_eq (memcmp (buf, "hello", 5), 0);
  /* The hole before it reads as zeros: it is inside the file. */
  ck_assert_int_eq (vmferry_pread_full (fd, "f", buf, 4, 96), 0);
  ck_assert_int_eq (memcmp (buf, "\0\0\0\0", 4), 0);
  close (fd);
}
END_TEST

/* A read past the end is an error, never zeros. */
START_TEST (test_pread_shrank)
{
  int fd = scratch_file ();
  char buf[16];

  ck_assert_int_eq (vmferry_pwrite_full (fd, "f", "abcdef", 6, 0), 0);
  ck_assert_int_eq (vmferry_pread_full (fd, "f", buf, 10, 2), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "f: file shrank while being read (at offset 6)");
  close (fd);
}
END_TEST

START_TEST (test_errors_name_the_file)
{
  char buf[4] = "abc";

  ck_assert_int_eq (vmferry_pread_full (-1, "in", buf, 1, 8), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "in: read at offset 8: Bad file descriptor");
  ck_assert_int_eq (vmferry_get_errno (), EBADF);
  ck_assert_int_eq (vmferry_pwrite_full (-1, "out", buf, 1, 9), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "out: write at offset 9: Bad file descriptor");
  ck_assert_int_eq (vmferry_write_full (-1, "pipe", buf, 1), -1);
  ck_assert_str_eq (vmferry_get_error (), "pipe: write: Bad file descriptor");
}
END_TEST

struct drain {
  int fd;
  size_t got;
};

static void *
drain_pipe (void *arg)
{
  struct drain *d = arg;
  char buf[1000];                       /* small reads: short writes */
  ssize_t r;

  while ((r = read (d->fd, buf, sizeof buf)) > 0)
    d->got += r;
  return NULL;
}

/* More than a pipe holds, to a slow reader: every byte arrives. */
START_TEST (test_write_full_pipe)
{
  size_t len = 1 << 20;
  char *data = calloc (1, len);
  struct drain d = { 0 };
  pthread_t t;
  int p[2];

  ck_assert_ptr_nonnull (data);
  ck_assert_int_eq (pipe (p), 0);
  d.fd = p[0];
  ck_assert_int_eq (pthread_create (&t, NULL, drain_pipe, &d), 0);
  ck_assert_int_eq (vmferry_write_full (p[1], "pipe", data, len), 0);
  close (p[1]);
  pthread_join (t, NULL);
  close (p[0]);
  ck_assert_uint_eq (d.got, len);
  free (data);
}
END_TEST

START_TEST (test_write_full_closed_pipe)
{
  int p[2];

  signal (SIGPIPE, SIG_IGN);
  ck_assert_int_eq (pipe (p), 0);
  close (p[0]);
  ck_assert_int_eq (vmferry_write_full (p[1], "stdout", "x", 1), -1);
  ck_assert_str_eq (vmferry_get_error (), "stdout: write: Broken pipe");
  ck_assert_int_eq (vmferry_get_errno (), EPIPE);
  close (p[1]);
}
END_TEST

VMFERRY_UNIT_MAIN ("full-rw",
                   test_pwrite_pread,
                   test_pread_shrank,
                   test_errors_name_the_file,
                   test_write_full_pipe,
                   test_write_full_closed_pipe)
