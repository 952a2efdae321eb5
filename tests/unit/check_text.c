/* Unit tests for formats/text.c: UTF-8, control characters, escaping
 * text from a stream before it reaches a terminal.
 */
#include "config.h"

#include "unit.h"

#include <string.h>

#include "text.h"

START_TEST (test_utf8_valid)
{
  static const struct {
    const char *s;
    size_t len;
    bool ok;
    size_t bad;
  } cases[] = {
    { "", 0, true, 0 },
    { "plain", 5, true, 0 },
    { "\xc3\xa9t\xc3\xa9", 5, true, 0 },                 /* été */
    { "\xe2\x82\xac", 3, true, 0 },                      /* € */
    { "\xf0\x9f\x98\x80", 4, true, 0 },                  /* U+1F600 */
    { "\xf4\x8f\xbf\xbf", 4, true, 0 },                  /* U+10FFFF */
    { "a\0b", 3, true, 0 },                              /* NUL is UTF-8 */
    { "a\xff", 2, false, 1 },
    { "\x80", 1, false, 0 },                             /* continuation */
    { "ab\xc3", 3, false, 2 },                           /* truncated */
    { "\xc0\xaf", 2, false, 0 },                         /* overlong '/' */
    { "\xe0\x80\xaf", 3, false, 0 },                     /* overlong */
    { "\xed\xa0\x80", 3, false, 0 },                     /* surrogate */
    { "\xf4\x90\x80\x80", 4, false, 0 },                 /* above U+10FFFF */
    { "\xc3(", 2, false, 0 },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t bad = 99;
    ck_assert_msg (vmferry_utf8_valid (cases[i].s, cases[i].len, &bad)
                   == cases[i].ok, "case %zu", i);
    if (!cases[i].ok)
      ck_assert_msg (bad == cases[i].bad, "case %zu: bad at %zu", i, bad);
  }
  ck_assert (vmferry_utf8_valid ("x", 1, NULL));
}
END_TEST

START_TEST (test_plain)
{
  static const struct { const char *s; bool ok; } cases[] = {
    { "web01.qcow2", true },
    { "with space", true },
    { "\xc3\xa9t\xc3\xa9", true },
    { "\xe2\x80\xae" "rtl", true },          /* shown escaped, not refused */
    { "tab\there", false },
    { "nl\n", false },
    { "esc\x1b[2J", false },
    { "del\x7f", false },
    { "csi\xc2\x9b" "31m", false },                      /* C1 CSI */
    { "\xc2\x80", false },
    { "\xc2\xa0", true },                                /* no-break space */
    { "bad\xff", false },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ck_assert_msg (vmferry_text_plain (cases[i].s, strlen (cases[i].s))
                   == cases[i].ok, "case %zu", i);
  ck_assert (!vmferry_text_plain ("a\0b", 3));
}
END_TEST

START_TEST (test_escape)
{
  static const struct {
    const char *s;
    size_t len;
    const char *out;
  } cases[] = {
    { "web01", 5, "web01" },
    { "\xc3\xa9t\xc3\xa9", 5, "\xc3\xa9t\xc3\xa9" },
    { "a\x1b[2Jb", 6, "a\\x1b[2Jb" },
    { "\x1b]0;title\x07", 10, "\\x1b]0;title\\x07" },
    { "nl\n", 3, "nl\\x0a" },
    { "a\0b", 3, "a\\x00b" },
    { "del\x7f", 4, "del\\x7f" },
    { "\xc2\x9b" "31m", 5, "\\u009b31m" },
    { "\xe2\x80\xae" "gpj.exe", 10, "\\u202egpj.exe" },
    { "\xe2\x81\xa6x", 4, "\\u2066x" },
    { "line\xe2\x80\xa8", 7, "line\\u2028" },
    { "bad\xff", 4, "bad\\xff" },
    { "\xc3", 1, "\\xc3" },
    { "back\\slash", 10, "back\\\\slash" },
    { "\xff\xff\xff", 3, "\\xff\\xff\\xff" },            /* the worst case */
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *e = vmferry_text_escape (cases[i].s, cases[i].len);
    ck_assert_ptr_nonnull (e);
    ck_assert_msg (strcmp (e, cases[i].out) == 0, "case %zu: '%s'", i, e);
    /* Whatever went in, nothing that drives a terminal comes out. */
    for (const char *p = e; *p; p++)
      ck_assert ((unsigned char) *p >= 0x20 && *p != 0x7f);
    free (e);
  }
}
END_TEST

VMFERRY_UNIT_MAIN ("text", test_utf8_valid, test_plain, test_escape)
