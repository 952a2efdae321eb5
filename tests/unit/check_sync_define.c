/* Unit tests for lib/sync-define.c: the rewrite rules as vmferry-sync
 * records them (the define itself needs libvirt: integration/sync-redefine).
 */
#include "config.h"

#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sync-define.h"

START_TEST (test_rules_add)
{
  char *rules = NULL;

  ck_assert_int_eq (vmferry_sync_rules_add (&rules, "rename", "web-dr"), 0);
  ck_assert_ptr_null (rules);
  ck_assert_int_eq (vmferry_sync_rules_add (&rules, "map-network", "a=b"), 0);
  ck_assert_int_eq (vmferry_sync_rules_add (&rules, "new-macs", NULL), 0);
  ck_assert_int_eq (vmferry_sync_rules_add (&rules, "new-uuid", NULL), 0);
  ck_assert_str_eq (rules, "map-network a=b\nnew-macs\nnew-uuid\n");
  /* A line break would make a value two rules. */
  ck_assert_int_eq (vmferry_sync_rules_add (&rules, "cpu",
                                            "host\ndrop-device disk"), -1);
  ck_assert_int_eq (vmferry_sync_rules_add (&rules, "cpu", "host\r"), -1);
  ck_assert_str_eq (rules, "map-network a=b\nnew-macs\nnew-uuid\n");
  free (rules);
}
END_TEST

START_TEST (test_rules_add_file)
{
  char path[] = "/tmp/check_sync_define.XXXXXX";
  char *rules = NULL;
  int fd = mkstemp (path);
  FILE *f;

  ck_assert_int_ge (fd, 0);
  f = fdopen (fd, "w");
  ck_assert_ptr_nonnull (f);
  fputs ("# the site's rules\n"
         "\n"
         "  map-network  lan=dr-lan \r\n"
         "--new-macs\n"
         "rename web-dr\n"
         "renamed-thing x\n"
         "\tdrop-device sound", f);
  ck_assert_int_eq (fclose (f), 0);
  ck_assert_int_eq (vmferry_sync_rules_add (&rules, "cpu", "host-model"), 0);
  ck_assert_int_eq (vmferry_sync_rules_add_file (&rules, path), 0);
  /* Comments, blanks and --rename go; the rest as lines, in order. */
  ck_assert_str_eq (rules, "cpu host-model\n"
                           "map-network  lan=dr-lan\n"
                           "new-macs\n"
                           "renamed-thing x\n"
                           "drop-device sound\n");
  unlink (path);
  ck_assert_int_eq (vmferry_sync_rules_add_file (&rules, path), -1);
  free (rules);
}
END_TEST

VMFERRY_UNIT_MAIN ("sync_define",
                   test_rules_add,
                   test_rules_add_file)
