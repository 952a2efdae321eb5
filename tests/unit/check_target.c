/* Unit tests for lib/target.c: what a failed call below the target
 * directory reports (the message, its errno, and errno for the caller).
 */
#include "config.h"

#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "target.h"

/* The test's directory, open as a target. */
static struct vmferry_target T;

static void
open_target (void)
{
  const char *tmp = getenv ("TMPDIR");
  char *dir;

  ck_assert_int_ge (asprintf (&dir, "%s/check_target.XXXXXX",
                              tmp ? tmp : "/tmp"), 0);
  ck_assert_ptr_nonnull (mkdtemp (dir));
  ck_assert_int_eq (vmferry_target_open (&T, dir, false, 0), 0);
  free (dir);
}

static void
close_target (void)
{
  char *cmd;

  ck_assert_int_ge (asprintf (&cmd, "rm -rf '%s'", T.path), 0);
  ck_assert_int_eq (system (cmd), 0);
  free (cmd);
  vmferry_target_close (&T);
}

/* The thread's error is the formatted message, with ERRNUM recorded. */
__attribute__ ((format (printf, 2, 3)))
static void
expect_error (int errnum, const char *fs, ...)
{
  char want[VMFERRY_ERROR_MAX];
  va_list args;

  va_start (args, fs);
  vsnprintf (want, sizeof want, fs, args);
  va_end (args);
  ck_assert_str_eq (vmferry_get_error (), want);
  ck_assert_int_eq (vmferry_get_errno (), errnum);
}

static void
make_file (const char *name)
{
  int fd = vmferry_target_create (&T, name, O_WRONLY, 0600, false);

  ck_assert_int_ge (fd, 0);
  close (fd);
}

START_TEST (test_open_missing)
{
  open_target ();
  errno = 0;
  ck_assert_int_eq (vmferry_target_open_file (&T, "nope", O_RDONLY), -1);
  ck_assert_int_eq (errno, ENOENT);
  expect_error (ENOENT, "%s/nope: cannot open: %s", T.path, strerror (ENOENT));
  close_target ();
}
END_TEST

START_TEST (test_open_hard_link)
{
  char *a, *b;

  open_target ();
  make_file ("a");
  ck_assert_int_ge (asprintf (&a, "%s/a", T.path), 0);
  ck_assert_int_ge (asprintf (&b, "%s/b", T.path), 0);
  ck_assert_int_eq (link (a, b), 0);
  errno = 0;
  ck_assert_int_eq (vmferry_target_open_file (&T, "a", O_RDONLY), -1);
  ck_assert_int_eq (errno, EMLINK);
  expect_error (EMLINK, "%s/a: has 2 links (a hard link to a file "
                "elsewhere?): not used: %s", T.path, strerror (EMLINK));
  free (a);
  free (b);
  close_target ();
}
END_TEST

START_TEST (test_create_existing)
{
  open_target ();
  make_file ("a");
  errno = 0;
  ck_assert_int_eq (vmferry_target_create (&T, "a", O_WRONLY, 0600, false),
                    -1);
  ck_assert_int_eq (errno, EEXIST);
  expect_error (EEXIST, "%s/a: cannot create: %s", T.path, strerror (EEXIST));
  close_target ();
}
END_TEST

START_TEST (test_stat)
{
  struct stat sb;

  open_target ();
  ck_assert_int_eq (vmferry_target_stat (&T, "a", &sb), 0);
  make_file ("a");
  ck_assert_int_eq (vmferry_target_stat (&T, "a", &sb), 1);
  ck_assert (S_ISREG (sb.st_mode));
  close_target ();
}
END_TEST

START_TEST (test_unlink)
{
  open_target ();
  ck_assert_int_eq (vmferry_target_unlink (&T, "a"), 0);
  ck_assert_int_eq (vmferry_target_mkdir (&T, "d", 0700, true), 0);
  errno = 0;
  ck_assert_int_eq (vmferry_target_unlink (&T, "d"), -1);
  ck_assert_int_eq (errno, EISDIR);
  expect_error (EISDIR, "%s/d: cannot remove: %s", T.path, strerror (EISDIR));
  close_target ();
}
END_TEST

START_TEST (test_mkdir)
{
  open_target ();
  ck_assert_int_eq (vmferry_target_mkdir (&T, "d", 0700, true), 0);
  ck_assert_int_eq (vmferry_target_mkdir (&T, "d", 0700, false), 0);
  errno = 0;
  ck_assert_int_eq (vmferry_target_mkdir (&T, "d", 0700, true), -1);
  ck_assert_int_eq (errno, EEXIST);
  expect_error (EEXIST, "%s/d: cannot make the directory: %s", T.path,
                strerror (EEXIST));
  close_target ();
}
END_TEST

START_TEST (test_rename)
{
  open_target ();
  make_file ("a");
  make_file ("b");
  errno = 0;
  ck_assert_int_eq (vmferry_target_rename (&T, "a", &T, "b",
                                           RENAME_NOREPLACE), -1);
  ck_assert_int_eq (errno, EEXIST);
  expect_error (EEXIST, "%s/b: cannot rename into it %s/a: %s", T.path,
                T.path, strerror (EEXIST));
  errno = 0;
  ck_assert_int_eq (vmferry_target_rename (&T, "x", &T, "b",
                                           RENAME_EXCHANGE), -1);
  ck_assert_int_eq (errno, ENOENT);
  expect_error (ENOENT, "%s/b: cannot exchange it with %s/x: %s", T.path,
                T.path, strerror (ENOENT));
  close_target ();
}
END_TEST

START_TEST (test_not_plain_name)
{
  open_target ();
  errno = 0;
  ck_assert_int_eq (vmferry_target_open_file (&T, "../a", O_RDONLY), -1);
  expect_error (EINVAL, "%s/../a: not a plain name below the target "
                "directory: %s", T.path, strerror (EINVAL));
  close_target ();
}
END_TEST

/* A relative directory is kept as the absolute path of the directory
 * opened: paths built from it go into domain definitions.
 */
START_TEST (test_relative)
{
  struct vmferry_target rel;
  char cwd[4096], *want;

  open_target ();
  ck_assert_ptr_nonnull (getcwd (cwd, sizeof cwd));
  ck_assert_int_eq (chdir (T.path), 0);
  ck_assert_int_eq (mkdir ("sub", 0700), 0);
  ck_assert_int_eq (vmferry_target_open (&rel, "sub", false, 0), 0);
  ck_assert_int_ge (asprintf (&want, "%s/sub", T.path), 0);
  ck_assert_str_eq (rel.path, want);
  free (want);
  vmferry_target_close (&rel);
  ck_assert_int_eq (chdir (cwd), 0);
  close_target ();
}
END_TEST

/* An unnamed file: nothing in the directory until it is linked, then
 * its bytes and mode under the name; never over an existing name, never
 * outside the target.
 */
START_TEST (test_unnamed)
{
  struct stat sb;
  char buf[8];
  int fd, fd2, r;
  DIR *d;
  struct dirent *e;

  open_target ();
  fd = vmferry_target_create_unnamed (&T, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
    printf ("skip: %s has no O_TMPFILE\n", T.path);
    close_target ();
    return;
  }
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (write (fd, "data", 4), 4);
  d = vmferry_target_opendir (&T);
  ck_assert_ptr_nonnull (d);
  while ((e = readdir (d)) != NULL)
    ck_assert_msg (strcmp (e->d_name, ".") == 0 ||
                   strcmp (e->d_name, "..") == 0, "named: %s", e->d_name);
  closedir (d);
  ck_assert_int_eq (vmferry_target_link (&T, fd, "a"), 0);
  ck_assert_int_eq (vmferry_target_stat (&T, "a", &sb), 1);
  ck_assert_int_eq (sb.st_mode & 07777, 0600);
  fd2 = vmferry_target_open_file (&T, "a", O_RDONLY);
  ck_assert_int_ge (fd2, 0);
  ck_assert_int_eq (read (fd2, buf, sizeof buf), 4);
  ck_assert (memcmp (buf, "data", 4) == 0);
  close (fd2);
  close (fd);

  /* An existing name is kept as it is. */
  make_file ("b");
  fd = vmferry_target_create_unnamed (&T, 0600);
  ck_assert_int_eq (write (fd, "new", 3), 3);
  errno = 0;
  ck_assert_int_eq (vmferry_target_link (&T, fd, "b"), -1);
  ck_assert_int_eq (errno, EEXIST);
  expect_error (EEXIST, "%s/b: cannot link: %s", T.path, strerror (EEXIST));
  ck_assert_int_eq (vmferry_target_stat (&T, "b", &sb), 1);
  ck_assert_int_eq (sb.st_size, 0);
  r = vmferry_target_link (&T, fd, "../b");
  ck_assert_int_eq (r, -1);
  ck_assert_int_eq (vmferry_get_errno (), EINVAL);
  close (fd);
  close_target ();
}
END_TEST

VMFERRY_UNIT_MAIN ("target", test_relative, test_open_missing, test_open_hard_link,
                   test_create_existing, test_stat, test_unlink, test_mkdir,
                   test_rename, test_not_plain_name, test_unnamed)
