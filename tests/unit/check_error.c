/* Unit tests for lib/error.c: thread-local messages with errno. */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "error.h"

START_TEST (test_set_and_get)
{
  vmferry_clear_error ();
  ck_assert_str_eq (vmferry_get_error (), "");
  vmferry_set_error ("%s: bad record %d", "stream", 7);
  ck_assert_str_eq (vmferry_get_error (), "stream: bad record 7");
  ck_assert_int_eq (vmferry_get_errno (), 0);
}
END_TEST

START_TEST (test_errno_appended)
{
  errno = EBADF;
  vmferry_set_error_errno (ENOENT, "%s: cannot open", "/x/y");
  ck_assert_str_eq (vmferry_get_error (), "/x/y: cannot open: No such file or directory");
  ck_assert_int_eq (vmferry_get_errno (), ENOENT);
  /* Setting an error must not clobber the caller's errno. */
  ck_assert_int_eq (errno, EBADF);
}
END_TEST

START_TEST (test_prefix)
{
  vmferry_set_error_errno (ENOSPC, "write");
  vmferry_prefix_error ("disk %s", "vda");
  ck_assert_str_eq (vmferry_get_error (), "disk vda: write: No space left on device");
  ck_assert_int_eq (vmferry_get_errno (), ENOSPC);
}
END_TEST

START_TEST (test_truncation)
{
  char big[VMFERRY_ERROR_MAX * 2];

  memset (big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  vmferry_set_error_errno (EIO, "%s", big);
  ck_assert_uint_eq (strlen (vmferry_get_error ()), VMFERRY_ERROR_MAX - 1);
}
END_TEST

static void *
other_thread (void *arg)
{
  (void) arg;
  vmferry_set_error ("from the other thread");
  return NULL;
}

START_TEST (test_thread_local)
{
  pthread_t t;

  vmferry_set_error ("main thread");
  ck_assert_int_eq (pthread_create (&t, NULL, other_thread, NULL), 0);
  ck_assert_int_eq (pthread_join (t, NULL), 0);
  ck_assert_str_eq (vmferry_get_error (), "main thread");
}
END_TEST

START_TEST (test_save_restore)
{
  struct vmferry_saved_error saved;

  vmferry_set_error_errno (ENOSPC, "a.img: write");
  vmferry_save_error (&saved);
  vmferry_set_error_errno (EACCES, "cleanup failed");
  vmferry_restore_saved_error (&saved);
  ck_assert_str_eq (vmferry_get_error (), "a.img: write: No space left on device");
  ck_assert_int_eq (vmferry_get_errno (), ENOSPC);
}
END_TEST

START_TEST (test_append)
{
  struct vmferry_saved_error saved;

  vmferry_set_error_errno (ENOSPC, "a.img: write");
  vmferry_save_error (&saved);
  vmferry_set_error ("undo failed");
  vmferry_append_error (&saved, "and %s is left", "b.img");
  ck_assert_str_eq (vmferry_get_error (),
                    "a.img: write: No space left on device; and b.img is left");
  ck_assert_int_eq (vmferry_get_errno (), ENOSPC);
}
END_TEST

VMFERRY_UNIT_MAIN ("error",
                   test_save_restore,
                   test_append,
                   test_set_and_get,
                   test_errno_appended,
                   test_prefix,
                   test_truncation,
                   test_thread_local)
