/* Unit tests for lib/adapt.c: the adaptive zstd level of
 * --compress=auto, driven by simulated windows.
 */
#include "config.h"

#include "unit.h"

#include "adapt.h"

/* One window of DT seconds in which the output waited OUT and each of
 * WORKERS compressors worked BUSY of it (fractions): the new level.
 */
struct sim {
  struct vmferry_adapt a;
  double now, out, work;
};

static int
window (struct sim *s, double out, double busy, unsigned workers,
        bool *changed)
{
  s->now += VMFERRY_ADAPT_WINDOW;
  s->out += out * VMFERRY_ADAPT_WINDOW;
  s->work += busy * VMFERRY_ADAPT_WINDOW * workers;
  return vmferry_adapt_update (&s->a, s->now, s->out, s->work, workers,
                               NULL, changed);
}

START_TEST (test_slow_link_raises)
{
  struct sim s = { .now = 100 };
  bool changed;
  int level = 0;

  vmferry_adapt_init (&s.a, 1, VMFERRY_ADAPT_MAX_LEVEL, s.now, NULL);
  /* The output waits 70% of the time, compressors 30% busy: up one
   * level a window, up to the highest and no further.
   */
  for (int i = 0; i < 20; i++) {
    int before = s.a.level;
    level = window (&s, 0.7, 0.3, 2, &changed);
    ck_assert_int_eq (changed, before < VMFERRY_ADAPT_MAX_LEVEL);
    ck_assert_int_le (level - before, 1);
  }
  ck_assert_int_eq (level, VMFERRY_ADAPT_MAX_LEVEL);
  ck_assert_int_eq (s.a.low, 1);
  ck_assert_int_eq (s.a.high, VMFERRY_ADAPT_MAX_LEVEL);
  ck_assert_uint_eq (s.a.changes, VMFERRY_ADAPT_MAX_LEVEL - 1);
}
END_TEST

START_TEST (test_fast_link_lowers)
{
  struct sim s = { .now = 0 };
  bool changed;

  vmferry_adapt_init (&s.a, 1, 6, s.now, NULL);
  for (int i = 0; i < 3; i++)
    window (&s, 0.9, 0.2, 4, &changed);
  ck_assert_int_eq (s.a.level, 4);
  /* Then the link frees up: the output never waits, the compressors
   * are the bottleneck: down one level a window, to the lowest.
   */
  for (int i = 0; i < 10; i++)
    window (&s, 0.0, 0.98, 4, &changed);
  ck_assert_int_eq (s.a.level, 1);
  ck_assert_int_eq (s.a.low, 1);
  ck_assert_int_eq (s.a.high, 4);
}
END_TEST

START_TEST (test_steady_keeps)
{
  struct sim s = { .now = 0 };
  bool changed;

  vmferry_adapt_init (&s.a, 1, 6, s.now, NULL);
  window (&s, 0.5, 0.1, 2, &changed);
  ck_assert_int_eq (s.a.level, 2);
  /* The disk is the bottleneck (neither waits), or both are busy, or
   * the output waits while the compressors have no room: the level
   * stays.
   */
  ck_assert_int_eq (window (&s, 0.01, 0.3, 2, &changed), 2);
  ck_assert (!changed);
  ck_assert_int_eq (window (&s, 0.5, 0.95, 2, &changed), 2);
  ck_assert_int_eq (window (&s, 0.15, 0.5, 2, &changed), 2);
  ck_assert (!changed);
}
END_TEST

START_TEST (test_window_length)
{
  struct vmferry_adapt a;
  bool changed;

  vmferry_adapt_init (&a, 1, 6, 10.0, NULL);
  /* Less than a window: no decision, whatever the figures say; the
   * measurements carry on into the window that completes.
   */
  ck_assert_int_eq (vmferry_adapt_update (&a, 10.1, 0.09, 0.0, 2, NULL, &changed),
                    1);
  ck_assert (!changed);
  ck_assert_int_eq (vmferry_adapt_update (&a, 10.0 + VMFERRY_ADAPT_WINDOW,
                                          0.4, 0.1, 2, NULL, &changed), 2);
  ck_assert (changed);
  /* No workers (no compression): nothing to adapt. */
  ck_assert_int_eq (vmferry_adapt_update (&a, 20.0, 10.0, 0.0, 0, NULL, &changed),
                    2);
  ck_assert (!changed);
}
END_TEST

START_TEST (test_fixed_range)
{
  struct sim s = { .now = 0 };
  bool changed;

  /* MAX below MIN (a fixed level): never moves. */
  vmferry_adapt_init (&s.a, 3, 1, s.now, NULL);
  ck_assert_int_eq (window (&s, 0.9, 0.1, 2, &changed), 3);
  ck_assert_int_eq (window (&s, 0.0, 1.0, 2, &changed), 3);
  ck_assert (!changed);
}
END_TEST

START_TEST (test_idle_cpu)
{
  struct vmferry_adapt a;
  struct vmferry_adapt_cpu cpu = { .idle = 1000, .total = 4000 };
  double now = 0, out = 0;
  bool changed;

  vmferry_adapt_init (&a, 1, 6, now, &cpu);
  /* The output waits, the compressors idle, but the machine has only
   * 10% idle (on loopback: SSH and the receiver use it): no level up.
   */
  now += 1;
  out += 0.8;
  cpu.idle += 10;
  cpu.total += 100;
  ck_assert_int_eq (vmferry_adapt_update (&a, now, out, 0.2, 2, &cpu,
                                          &changed), 1);
  ck_assert (!changed);
  /* Half of it idle: up. */
  now += 1;
  out += 0.8;
  cpu.idle += 50;
  cpu.total += 100;
  ck_assert_int_eq (vmferry_adapt_update (&a, now, out, 0.4, 2, &cpu,
                                          &changed), 2);
  /* None idle and the output no longer waits: down, although the
   * compressors themselves are not full.
   */
  now += 1;
  cpu.idle += 1;
  cpu.total += 100;
  ck_assert_int_eq (vmferry_adapt_update (&a, now, out, 0.6, 2, &cpu,
                                          &changed), 1);
  ck_assert (changed);
}
END_TEST

START_TEST (test_parse_cpu)
{
  struct vmferry_adapt_cpu cpu;

  ck_assert_int_eq (vmferry_adapt_parse_cpu ("cpu  100 5 50 800 40 3 2 0 0 "
                                             "0\n", &cpu), 0);
  ck_assert (cpu.idle == 840);
  ck_assert (cpu.total == 1000);
  /* Old kernels: four fields. */
  ck_assert_int_eq (vmferry_adapt_parse_cpu ("cpu 1 2 3 4", &cpu), 0);
  ck_assert (cpu.idle == 4);
  ck_assert (cpu.total == 10);
  ck_assert_int_eq (vmferry_adapt_parse_cpu ("cpu0 1 2 3 4", &cpu), -1);
  ck_assert_int_eq (vmferry_adapt_parse_cpu ("intr 1 2", &cpu), -1);
  ck_assert_int_eq (vmferry_adapt_parse_cpu ("", &cpu), -1);
  ck_assert_int_eq (vmferry_adapt_read_cpu (&cpu), 0);
  ck_assert (cpu.total >= cpu.idle);
}
END_TEST

VMFERRY_UNIT_MAIN ("adapt",
                   test_idle_cpu,
                   test_parse_cpu,
                   test_slow_link_raises,
                   test_fast_link_lowers,
                   test_steady_keeps,
                   test_window_length,
                   test_fixed_range)
