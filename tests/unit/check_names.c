/* Unit tests for formats/names.c: the one check for names that become
 * path components.
 */
#include "config.h"

#include "unit.h"

#include <string.h>

#include "names.h"

START_TEST (test_component)
{
  static const struct { const char *s; unsigned flags; bool ok; } cases[] = {
    { "web01.qcow2", 0, true },
    { "a", 0, true },
    { "with space", 0, true },
    { "\xc3\xa9t\xc3\xa9.img", 0, true },       /* UTF-8 is fine */
    { "", 0, false },
    { ".", 0, false },
    { "..", 0, false },
    { ".", VMFERRY_NAME_HIDDEN_OK, false },
    { "..", VMFERRY_NAME_HIDDEN_OK, false },
    { ".hidden", 0, false },
    { ".hidden", VMFERRY_NAME_HIDDEN_OK, true },
    { "...", VMFERRY_NAME_HIDDEN_OK, true },
    { "a/b", 0, false },
    { "../escaped", 0, false },
    { "/abs", 0, false },
    { "tab\there", 0, false },
    { "esc\x1b[2J", 0, false },
    { "del\x7f", 0, false },
    { "nl\n", 0, false },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ck_assert_msg (vmferry_name_ok (cases[i].s, cases[i].flags) == cases[i].ok,
                   "case %zu: '%s'", i, cases[i].s);
  ck_assert (!vmferry_name_ok (NULL, 0));
}
END_TEST

START_TEST (test_component_length)
{
  char s[VMFERRY_NAME_MAX + 2];

  memset (s, 'x', sizeof s);
  s[VMFERRY_NAME_MAX] = '\0';
  ck_assert (vmferry_name_ok (s, 0));
  s[VMFERRY_NAME_MAX] = 'x';
  s[VMFERRY_NAME_MAX + 1] = '\0';
  ck_assert (!vmferry_name_ok (s, 0));
  /* An embedded NUL ends the component a C string would see. */
  ck_assert (!vmferry_name_component ("a\0b", 3, 0));
}
END_TEST

START_TEST (test_relpath)
{
  ck_assert (vmferry_name_relpath_ok ("tpm2/tpm2-00.permall", 8, 0));
  ck_assert (vmferry_name_relpath_ok ("one", 1, 0));
  ck_assert (!vmferry_name_relpath_ok ("a/b", 1, 0));
  ck_assert (!vmferry_name_relpath_ok ("a//b", 8, 0));
  ck_assert (!vmferry_name_relpath_ok ("/a/b", 8, 0));
  ck_assert (!vmferry_name_relpath_ok ("a/b/", 8, 0));
  ck_assert (!vmferry_name_relpath_ok ("a/../b", 8, 0));
  ck_assert (!vmferry_name_relpath_ok ("a/./b", 8, 0));
  ck_assert (!vmferry_name_relpath_ok ("../../etc/passwd", 8, 0));
  ck_assert (!vmferry_name_relpath_ok ("a/.b", 8, 0));
  ck_assert (vmferry_name_relpath_ok ("a/.b", 8, VMFERRY_NAME_HIDDEN_OK));
  ck_assert (!vmferry_name_relpath_ok ("", 8, 0));
  ck_assert (!vmferry_name_relpath_ok (NULL, 8, 0));
  ck_assert (!vmferry_name_relpath_ok ("1/2/3/4/5/6/7/8/9", 8, 0));
  ck_assert (vmferry_name_relpath_ok ("1/2/3/4/5/6/7/8", 8, 0));
}
END_TEST

START_TEST (test_uuid)
{
  ck_assert (vmferry_name_uuid_ok ("6f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8"));
  ck_assert (!vmferry_name_uuid_ok ("6F1A2B3C-4D5E-6F70-8192-A3B4C5D6E7F8"));
  ck_assert (!vmferry_name_uuid_ok ("6f1a2b3c4d5e6f708192a3b4c5d6e7f8"));
  ck_assert (!vmferry_name_uuid_ok ("../../../../../../../../../../../tmp"));
  ck_assert (!vmferry_name_uuid_ok ("6f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f"));
  ck_assert (!vmferry_name_uuid_ok ("6f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8/"));
  ck_assert (!vmferry_name_uuid_ok ("6f1a2b3c-4d5e-6f70-8192/a3b4c5d6e7f8"));
  ck_assert (!vmferry_name_uuid_ok (NULL));
}
END_TEST

VMFERRY_UNIT_MAIN ("names",
                   test_component,
                   test_component_length,
                   test_relpath,
                   test_uuid)
