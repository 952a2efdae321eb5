/* Shared scaffolding for the check unit suites. */
#ifndef VMFERRY_UNIT_H
#define VMFERRY_UNIT_H

#include <check.h>
#include <stdlib.h>

/* Run every test of SUITE; exit status 0 only if all passed. */
static inline int
vmferry_run_suite (Suite *suite)
{
  SRunner *sr = srunner_create (suite);
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* One TCase named "core" holding the listed tests, with a timeout. */
#define VMFERRY_UNIT_MAIN(name, ...)                                    \
  int main (void)                                                       \
  {                                                                     \
    Suite *s = suite_create (name);                                     \
    TCase *tc = tcase_create ("core");                                  \
    const TTest *tests[] = { __VA_ARGS__ };                             \
    tcase_set_timeout (tc, 60);                                         \
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)         \
      _tcase_add_test (tc, tests[i], 0, 0, 0, 1);                       \
    suite_add_tcase (s, tc);                                            \
    return vmferry_run_suite (s);                                       \
  }

#endif
