/* Unit tests for lib/import-result.c: vmferry-import --json's object,
 * written and read back, and what a reader refuses (the import runs on
 * another host: vmferry-migrate reads its output).
 */
#include "config.h"

#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "import-result.h"

/* The JSON line R makes (the caller frees it). */
static char *
written (const struct vmferry_import_result *r, bool already)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&buf, &len);

  ck_assert_ptr_nonnull (fp);
  ck_assert_int_eq (vmferry_import_result_json (r, already, fp), 0);
  fclose (fp);
  ck_assert_int_eq (buf[len - 1], '\n');
  ck_assert_ptr_null (memchr (buf, '\n', len - 1));
  return buf;
}

START_TEST (test_round_trip)
{
  struct vmferry_fixup_change changes[] = {
    { (char *) "/etc/fstab", (char *) "/dev/vda1 -> /dev/sda1" },
    { (char *) "/etc/ssh/ssh_host_rsa_key", (char *) "removed" },
  };
  struct vmferry_import_result r = {
    .domain = (char *) "web01", .fixups_known = true, .fixups = changes,
    .nr_fixups = 2,
  }, back;
  char *line = written (&r, false), *text;

  ck_assert_ptr_nonnull (strstr (line, "\"state\":\"imported\""));
  /* After the other lines of the import's output. */
  ck_assert_int_ge (asprintf (&text, "a notice\n%s\n", line), 0);
  ck_assert_msg (vmferry_import_result_parse (text, strlen (text), &back) == 0,
                 "%s", vmferry_get_error ());
  ck_assert (back.fixups_known);
  ck_assert_uint_eq (back.nr_fixups, 2);
  ck_assert_str_eq (back.fixups[0].file, "/etc/fstab");
  ck_assert_str_eq (back.fixups[0].what, "/dev/vda1 -> /dev/sda1");
  ck_assert_str_eq (back.fixups[1].what, "removed");
  ck_assert_ptr_null (back.fixups_not_done);
  vmferry_import_result_free (&back);
  free (text);
  free (line);

  /* Not done: an empty list and why; already there: not known. */
  r.nr_fixups = 0;
  r.fixups_not_done = (char *) "--no-fixup";
  line = written (&r, false);
  ck_assert_int_eq (vmferry_import_result_parse (line, strlen (line), &back),
                    0);
  ck_assert (back.fixups_known);
  ck_assert_uint_eq (back.nr_fixups, 0);
  ck_assert_str_eq (back.fixups_not_done, "--no-fixup");
  vmferry_import_result_free (&back);
  free (line);
  r = (struct vmferry_import_result) { .domain = (char *) "web01" };
  line = written (&r, true);
  ck_assert_ptr_nonnull (strstr (line, "\"state\":\"already-there\""));
  ck_assert_ptr_nonnull (strstr (line, "\"fixups\":null"));
  ck_assert_int_eq (vmferry_import_result_parse (line, strlen (line), &back),
                    0);
  ck_assert (!back.fixups_known);
  vmferry_import_result_free (&back);
  free (line);
}
END_TEST

START_TEST (test_refuse)
{
  static const struct { const char *text, *error; } cases[] = {
    { "", "no JSON object on the last line" },
    { "{\"version\":1}\nnot json\n", "no JSON object on the last line" },
    { "{\"version\":1} x", "not one JSON object" },
    { "{\"version\":1", "not one JSON object" },
    { "{\"version\":2,\"fixups\":[]}", "not version 1" },
    { "{\"fixups\":[]}", "not version 1" },
    { "{\"version\":1,\"fixups\":{}}", "fixups: not an array" },
    { "{\"version\":1,\"fixups\":[1]}", "fixups[0]: not an object" },
    { "{\"version\":1,\"fixups\":[{\"file\":\"/x\"}]}",
      "fixups[0]: needs file and change" },
    { "{\"version\":1,\"fixups\":[{\"file\":1,\"change\":\"c\"}]}",
      "fixups[0].file: not a string" },
    { "{\"version\":1,\"fixups\":[{\"file\":\"/x\",\"change\":"
      "\"\\u001b[2J\"}]}", "fixups[0].change: longer than 4096 bytes, or "
      "holds a control character" },
    { "{\"version\":1,\"fixups_not_done\":\"a\\u0000b\"}",
      "fixups_not_done: longer than" },
    { "{\"version\":1,\"fixups\":[[[[[[[[[[]]]]]]]]]]}", "not one JSON" },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct vmferry_import_result r;

    ck_assert_msg (vmferry_import_result_parse (cases[i].text,
                                                strlen (cases[i].text),
                                                &r) == -1,
                   "case %zu accepted", i);
    ck_assert_msg (strstr (vmferry_get_error (), cases[i].error) != NULL,
                   "case %zu: '%s', expected '%s'", i, vmferry_get_error (),
                   cases[i].error);
    ck_assert_ptr_null (r.fixups);
  }
}
END_TEST

/* At most VMFERRY_IMPORT_MAX_FIXUPS changes; a long string is refused. */
START_TEST (test_limits)
{
  size_t cap = 64 * (VMFERRY_IMPORT_MAX_FIXUPS + 2) + 8192;
  char *text = malloc (cap);
  struct vmferry_import_result r;
  size_t n;

  for (int k = 0; k < 2; k++) {
    int count = VMFERRY_IMPORT_MAX_FIXUPS + k;
    n = snprintf (text, cap, "{\"version\":1,\"fixups\":[");
    for (int i = 0; i < count; i++)
      n += snprintf (text + n, cap - n, "%s{\"file\":\"/f\",\"change\":\"c\"}",
                     i ? "," : "");
    snprintf (text + n, cap - n, "]}");
    if (k == 0) {
      ck_assert_int_eq (vmferry_import_result_parse (text, strlen (text), &r),
                        0);
      ck_assert_uint_eq (r.nr_fixups, VMFERRY_IMPORT_MAX_FIXUPS);
      vmferry_import_result_free (&r);
    }
    else
      ck_assert_int_eq (vmferry_import_result_parse (text, strlen (text), &r),
                        -1);
  }
  n = snprintf (text, cap, "{\"version\":1,\"fixups_not_done\":\"");
  memset (text + n, 'x', 4097);
  strcpy (text + n + 4097, "\"}");
  ck_assert_int_eq (vmferry_import_result_parse (text, strlen (text), &r), -1);
  free (text);
}
END_TEST

VMFERRY_UNIT_MAIN ("import-result", test_round_trip, test_refuse,
                   test_limits)
