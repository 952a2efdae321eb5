/* Unit tests for lib/cleanup.c: resources released on scope exit. */
#include "config.h"

#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"

static int
open_and_leave (const char *path)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY);
  return fd;                    /* closed on return */
}

START_TEST (test_close)
{
  int fd = open_and_leave ("/dev/null");

  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (fcntl (fd, F_GETFD), -1);
  {
    CLEANUP_CLOSE int none = -1;    /* -1 must be accepted */
    (void) none;
  }
}
END_TEST

START_TEST (test_unlink_free)
{
  char tmpl[] = "/tmp/check_cleanup.XXXXXX";
  int fd = mkstemp (tmpl);

  ck_assert_int_ge (fd, 0);
  close (fd);
  {
    CLEANUP_UNLINK_FREE char *path = strdup (tmpl);
    ck_assert_ptr_nonnull (path);
  }
  ck_assert_int_eq (access (tmpl, F_OK), -1);
  {
    CLEANUP_UNLINK_FREE char *none = NULL;
    (void) none;
  }
}
END_TEST

START_TEST (test_keep_by_nulling)
{
  char tmpl[] = "/tmp/check_cleanup.XXXXXX";
  int fd = mkstemp (tmpl);
  char *kept;

  ck_assert_int_ge (fd, 0);
  close (fd);
  {
    CLEANUP_UNLINK_FREE char *path = strdup (tmpl);
    kept = path;
    path = NULL;                /* ownership handed out: file stays */
  }
  ck_assert_int_eq (access (tmpl, F_OK), 0);
  unlink (kept);
  free (kept);
}
END_TEST

START_TEST (test_strv_and_fclose)
{
  CLEANUP_STRV_FREE char **v = calloc (3, sizeof *v);
  CLEANUP_FCLOSE FILE *fp = fopen ("/dev/null", "r");
  CLEANUP_FCLOSE FILE *none = NULL;
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  CLEANUP_VIR_CONNECT virConnectPtr conn = NULL;
  CLEANUP_VIR_DOMAIN virDomainPtr dom = NULL;

  ck_assert_ptr_nonnull (v);
  ck_assert_ptr_nonnull (fp);
  v[0] = strdup ("a");
  v[1] = strdup ("b");
  (void) none; (void) doc; (void) conn; (void) dom;
  /* valgrind/ASan runs see any leak here. */
}
END_TEST

VMFERRY_UNIT_MAIN ("cleanup",
                   test_close,
                   test_unlink_free,
                   test_keep_by_nulling,
                   test_strv_and_fclose)
