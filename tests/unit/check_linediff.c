/* Unit tests for lib/linediff.c: what `diff -u` prints (the expected
 * texts are GNU diff's output for the same inputs, --label A --label B).
 */
#include "config.h"

#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "linediff.h"

static const struct {
  const char *a, *b;
  unsigned context;
  size_t changed;
  const char *diff;
} cases[] = {
  { "a\nb\n", "a\nb\n", 3, 0, "" },
  { "", "", 3, 0, "" },
  { "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", "1\n2\n3\n4\nX\n6\n7\n8\n9\n10\n", 3, 2,
    "--- A\n+++ B\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+X\n 6\n 7\n 8\n" },
  { "", "a\nb\n", 3, 2, "--- A\n+++ B\n@@ -0,0 +1,2 @@\n+a\n+b\n" },
  { "a\nb\n", "", 3, 2, "--- A\n+++ B\n@@ -1,2 +0,0 @@\n-a\n-b\n" },
  { "a\nb", "a\nc", 3, 2,
    "--- A\n+++ B\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n"
    "+c\n\\ No newline at end of file\n" },
  { "a\nb", "a\nb\n", 3, 2,
    "--- A\n+++ B\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n" },
  /* Two hunks: the changes are more than 2 * context lines apart. */
  { "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n",
    "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n", 2, 2,
    "--- A\n+++ B\n@@ -1,2 +1,3 @@\n+0\n 1\n 2\n@@ -14,3 +15,2 @@\n 14\n 15\n-16\n" },
  /* One hunk: they are not. */
  { "1\n2\n3\n4\n5\n6\n", "0\n1\n2\n3\n4\n5\n", 3, 2,
    "--- A\n+++ B\n@@ -1,6 +1,6 @@\n+0\n 1\n 2\n 3\n 4\n 5\n-6\n" },
  { "a\nb\nc\n", "a\nc\nb\n", 1, 2,
    "--- A\n+++ B\n@@ -1,3 +1,3 @@\n a\n-b\n c\n+b\n" },
  { "a\nb\nc\n", "x\nb\ny\n", 0, 4,
    "--- A\n+++ B\n@@ -1 +1 @@\n-a\n+x\n@@ -3 +3 @@\n-c\n+y\n" },
};

START_TEST (test_diff)
{
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t changed = 99;
    CLEANUP_FREE char *d = vmferry_diff_unified (cases[i].a, strlen (cases[i].a), "A",
                                                 cases[i].b, strlen (cases[i].b), "B",
                                                 cases[i].context, &changed);
    ck_assert_ptr_nonnull (d);
    ck_assert_msg (strcmp (d, cases[i].diff) == 0, "%zu: got\n%s\nwant\n%s",
                   i, d, cases[i].diff);
    ck_assert_uint_eq (changed, cases[i].changed);
  }
}
END_TEST

/* A middle too large for the table: still a correct diff (all of the
 * middle out, all of it in), and the lines around it kept.
 */
START_TEST (test_large)
{
  size_t n = 3000, alen = 0, blen = 0, changed = 0;
  CLEANUP_FREE char *a = malloc (n * 16);
  CLEANUP_FREE char *b = malloc (n * 16);
  CLEANUP_FREE char *d = NULL;

  ck_assert_ptr_nonnull (a);
  ck_assert_ptr_nonnull (b);
  for (size_t i = 0; i < n; i++) {
    alen += sprintf (a + alen, "%zu\n", i);
    blen += sprintf (b + blen, "%zu\n", i == 1 || i == n - 2 ? n + i : i);
  }
  d = vmferry_diff_unified (a, alen, "A", b, blen, "B", 1, &changed);
  ck_assert_ptr_nonnull (d);
  ck_assert_uint_eq (changed, 2 * (n - 2));
  ck_assert (strncmp (d, "--- A\n+++ B\n@@ -1,3000 +1,3000 @@\n 0\n-1\n", 40) == 0);
  ck_assert (strstr (d, "\n+3001\n") != NULL);
  ck_assert (strcmp (d + strlen (d) - 7, "\n 2999\n") == 0);
}
END_TEST

VMFERRY_UNIT_MAIN ("linediff", test_diff, test_large)
