/* Unit tests for export-trim.c: which overlay directories a run removes
 * as stale (the process that made them gone), and which it leaves.
 */
#include "config.h"

#include <fcntl.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "export-trim.h"
#include "unit.h"

static char base[] = "/tmp/check-export-trim-XXXXXX";

/* BASE/NAME with an owner file saying OWNER (NULL: none) and FILE
 * (NULL: none) beside it.
 */
static void
make_dir (const char *name, const char *owner, const char *file)
{
  char path[512];
  FILE *fp;

  snprintf (path, sizeof path, "%s/%s", base, name);
  ck_assert_int_eq (mkdir (path, 0700), 0);
  if (owner) {
    snprintf (path, sizeof path, "%s/%s/owner", base, name);
    ck_assert ((fp = fopen (path, "w")) != NULL);
    fputs (owner, fp);
    fclose (fp);
  }
  if (file) {
    snprintf (path, sizeof path, "%s/%s/%s", base, name, file);
    ck_assert ((fp = fopen (path, "w")) != NULL);
    fclose (fp);
  }
}

static bool
exists (const char *name)
{
  char path[512];
  struct stat st;

  snprintf (path, sizeof path, "%s/%s", base, name);
  return lstat (path, &st) == 0;
}

/* This process's start time, as export-trim.c writes it. */
static unsigned long long
my_start (void)
{
  char buf[1024], *p;
  FILE *fp = fopen ("/proc/self/stat", "r");

  ck_assert (fp != NULL);
  ck_assert (fgets (buf, sizeof buf, fp) != NULL);
  fclose (fp);
  p = strrchr (buf, ')') + 1;
  for (int i = 0; i < 19; i++)
    p = strchr (p + 1, ' ');
  return strtoull (p + 1, NULL, 10);
}

START_TEST (test_stale)
{
  char mine[64], reused[64];

  ck_assert (mkdtemp (base) != NULL);
  snprintf (mine, sizeof mine, "%ld %llu\n", (long) getpid (), my_start ());
  /* Our PID, another start time: the PID was reused. */
  snprintf (reused, sizeof reused, "%ld %llu\n", (long) getpid (),
            my_start () + 1);
  make_dir (VMFERRY_TRIM_DIR_PREFIX "alive", mine, "0.qcow2");
  make_dir (VMFERRY_TRIM_DIR_PREFIX "reused", reused, "0.qcow2");
  make_dir (VMFERRY_TRIM_DIR_PREFIX "gone", "2147483646 5\n", "1.qcow2");
  make_dir (VMFERRY_TRIM_DIR_PREFIX "noowner", NULL, "0.qcow2");
  make_dir (VMFERRY_TRIM_DIR_PREFIX "garbage", "not a pid\n", NULL);
  make_dir ("other-gone", "2147483646 5\n", NULL);

  ck_assert_int_eq (vmferry_trim_clean_stale (base), 2);
  ck_assert (exists (VMFERRY_TRIM_DIR_PREFIX "alive"));
  ck_assert (!exists (VMFERRY_TRIM_DIR_PREFIX "reused"));
  ck_assert (!exists (VMFERRY_TRIM_DIR_PREFIX "gone"));
  ck_assert (exists (VMFERRY_TRIM_DIR_PREFIX "noowner"));
  ck_assert (exists (VMFERRY_TRIM_DIR_PREFIX "garbage"));
  ck_assert (exists ("other-gone"));

  /* A file that is no overlay: not ours to remove, and said. */
  make_dir (VMFERRY_TRIM_DIR_PREFIX "foreign", "2147483646 5\n", "passwd");
  ck_assert_int_eq (vmferry_trim_clean_stale (base), -1);
  ck_assert (strstr (vmferry_get_error (), "not an overlay") != NULL);
  ck_assert (exists (VMFERRY_TRIM_DIR_PREFIX "foreign/passwd"));
  {
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", base);
    ck_assert_int_eq (system (cmd), 0);
  }
}
END_TEST

START_TEST (test_new_end)
{
  char tmpl[] = "/tmp/check-export-trim-XXXXXX", pattern[128];
  struct vmferry_trim *t;
  struct stat st;
  glob_t gl;

  ck_assert (mkdtemp (tmpl) != NULL);
  t = vmferry_trim_new (tmpl);
  ck_assert_msg (t != NULL, "%s", vmferry_get_error ());
  /* One directory, 0700, with its owner file: stale to no one. */
  ck_assert_int_eq (vmferry_trim_clean_stale (tmpl), 0);
  snprintf (pattern, sizeof pattern, "%s/" VMFERRY_TRIM_DIR_PREFIX "*", tmpl);
  ck_assert_int_eq (glob (pattern, 0, NULL, &gl), 0);
  ck_assert_int_eq (gl.gl_pathc, 1);
  ck_assert_int_eq (stat (gl.gl_pathv[0], &st), 0);
  ck_assert_int_eq (st.st_mode & 0777, 0700);
  ck_assert_int_eq (vmferry_trim_end (t), 0);
  ck_assert_int_ne (stat (gl.gl_pathv[0], &st), 0);
  globfree (&gl);
  ck_assert_int_eq (rmdir (tmpl), 0);
}
END_TEST

VMFERRY_UNIT_MAIN ("export_trim", test_stale, test_new_end)
