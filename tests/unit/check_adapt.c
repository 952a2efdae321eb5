/* Unit tests for lib/adapt.c: the adaptive zstd level of
 * --compress=auto, driven by simulated windows: a sequence of windows
 * in, the levels out.
 */
#include "config.h"

#include "unit.h"

#include "adapt.h"

/* The export's totals, advanced a window at a time.  RATIO[L] is the
 * bytes out per byte in of the data at level L; each window compresses
 * IN bytes at the level of its start, of data DATA times as big
 * compressed (the data changes from window to window), and while a
 * step is on trial, with PROBE, an eighth of them at the level below as
 * well (vmferry_adapt_probe).
 */
struct sim {
  struct vmferry_adapt a;
  struct vmferry_adapt_sample s;
  double ratio[VMFERRY_ADAPT_MAX_LEVEL + 1];
  double data;
  bool probe;
  bool no_probe_once;           /* this window's chunks were not probed */
};

#define IN ((double) (64 << 20))

static void
sim_init (struct sim *m, int min, int max, double ratio_1, double gain)
{
  *m = (struct sim) {
    .s = { .now = 100, .workers = 2, .has_cpu = true,
           .cpu = { .idle = 1000, .total = 4000 } },
    .data = 1, .probe = true,
  };
  /* Each level saves GAIN of the one below. */
  m->ratio[1] = ratio_1;
  for (int l = 2; l <= VMFERRY_ADAPT_MAX_LEVEL; l++)
    m->ratio[l] = m->ratio[l - 1] * (1 - gain);
  vmferry_adapt_init (&m->a, min, max, &m->s);
}

/* One window in which the output waited OUT of the time, each
 * compressor worked BUSY of it and the machine idled IDLE of it: the
 * new level.
 */
static int
window (struct sim *m, double out, double busy, double idle, bool *changed)
{
  struct vmferry_adapt_sample *s = &m->s;
  int l = m->a.level, lo = vmferry_adapt_probe (&m->a);

  ck_assert (l >= 1 && l <= VMFERRY_ADAPT_MAX_LEVEL);
  ck_assert (lo == 0 || lo == l - 1);
  s->now += VMFERRY_ADAPT_WINDOW;
  s->out_wait += out * VMFERRY_ADAPT_WINDOW;
  s->work += busy * VMFERRY_ADAPT_WINDOW * s->workers;
  s->in += IN;
  s->out += IN * m->ratio[l] * m->data;
  s->probing = m->probe;
  if (lo && m->probe && !m->no_probe_once) {
    s->probe_lo += IN / 8 * m->ratio[lo] * m->data;
    s->probe_hi += IN / 8 * m->ratio[l] * m->data;
  }
  m->no_probe_once = false;
  s->cpu.idle += idle * 100;
  s->cpu.total += 100;
  return vmferry_adapt_update (&m->a, s, changed);
}

/* The link is the bottleneck and the CPU idle. */
static int
slow_link (struct sim *m, bool *changed)
{
  return window (m, 0.7, 0.3, 0.5, changed);
}

START_TEST (test_slow_link_raises)
{
  struct sim m;
  bool changed;
  int level = 0;

  /* Each level saves 5%: up one level a window (each step kept when
   * judged), up to the highest and no further.
   */
  sim_init (&m, 1, VMFERRY_ADAPT_MAX_LEVEL, 0.4, 0.05);
  for (int i = 0; i < 20; i++) {
    int before = m.a.level;
    level = slow_link (&m, &changed);
    ck_assert_int_eq (changed, before < VMFERRY_ADAPT_MAX_LEVEL);
    ck_assert_int_eq (level, before + changed);
  }
  ck_assert_int_eq (level, VMFERRY_ADAPT_MAX_LEVEL);
  ck_assert_int_eq (m.a.low, 1);
  ck_assert_int_eq (m.a.high, VMFERRY_ADAPT_MAX_LEVEL);
  ck_assert_uint_eq (m.a.changes, VMFERRY_ADAPT_MAX_LEVEL - 1);
}
END_TEST

START_TEST (test_starved_drops_to_min)
{
  struct sim m;
  bool changed;

  sim_init (&m, 1, 6, 0.4, 0.05);
  for (int i = 0; i < 3; i++)
    slow_link (&m, &changed);
  ck_assert_int_eq (m.a.level, 4);
  /* The level-4 step is judged (kept); then the link frees up: the
   * output no longer waits, the compressors are what it waits for:
   * straight to the lowest level in one window, not one at a time.
   */
  slow_link (&m, &changed);
  ck_assert_int_eq (m.a.level, 5);
  window (&m, 0.0, 0.98, 0.5, &changed);
  ck_assert_int_eq (m.a.level, 1);
  ck_assert (changed);
  ck_assert_int_eq (m.a.low, 1);
  ck_assert_int_eq (m.a.high, 5);
  /* And it stays there while they stay busy. */
  for (int i = 0; i < 10; i++)
    ck_assert_int_eq (window (&m, 0.0, 0.98, 0.5, &changed), 1);
  /* Likewise from a level kept long ago (no step on trial): up to 3,
   * judged and kept in a window where the output waits only a little,
   * then starved: to 1, not 2.
   */
  for (int i = 0; i < 2; i++)
    slow_link (&m, &changed);
  ck_assert_int_eq (window (&m, 0.15, 0.5, 0.5, &changed), 3);
  ck_assert (!m.a.on_trial);
  ck_assert_int_eq (window (&m, 0.0, 0.98, 0.5, &changed), 1);
  ck_assert (changed);
  /* Level 3 starved it: 2 again at once, 3 only after 2 s. */
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert_int_eq (slow_link (&m, &changed), 3);
}
END_TEST

START_TEST (test_no_idle_drops_to_min)
{
  struct sim m;
  bool changed;

  sim_init (&m, 1, 6, 0.4, 0.05);
  for (int i = 0; i < 4; i++)
    slow_link (&m, &changed);
  ck_assert_int_eq (m.a.level, 5);
  /* The output still waits and the compressors have room, but the
   * machine's idle CPU vanished (on loopback: SSH and the receiver took
   * it): to the lowest level, whatever the output does.
   */
  ck_assert_int_eq (window (&m, 0.6, 0.5, 0.02, &changed), 1);
  ck_assert (changed);
}
END_TEST

START_TEST (test_little_gain_refused)
{
  struct sim m;
  bool changed;

  /* Level 2 saves 1% of level 1 (under VMFERRY_ADAPT_MIN_GAIN): the
   * step is tried, judged the next window and taken back.
   */
  sim_init (&m, 1, 6, 0.4, 0.01);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert_int_eq (slow_link (&m, &changed), 1);
  ck_assert (changed);
  /* Not tried again for 2 s (4 windows), then again, refused for 4 s,
   * then 8 s, 16 s and 16 s: a step is tried ever less often.
   */
  {
    static const int wait[] = { 4, 8, 16, 32, 32 };

    for (size_t t = 0; t < sizeof wait / sizeof wait[0]; t++) {
      for (int i = 0; i < wait[t] - 1; i++) {
        ck_assert_int_eq (slow_link (&m, &changed), 1);
        ck_assert (!changed);
      }
      ck_assert_int_eq (slow_link (&m, &changed), 2);
      ck_assert_int_eq (slow_link (&m, &changed), 1);
    }
  }
  /* Random data (nothing gained at any level) likewise. */
  sim_init (&m, 1, 6, 1.0, 0);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert_int_eq (slow_link (&m, &changed), 1);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq (slow_link (&m, &changed), 1);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  /* A step that gains is kept; it ends the refusals' doubling. */
  m.ratio[2] = 0.9;
  ck_assert_int_eq (slow_link (&m, &changed), 3);
  ck_assert_double_eq (m.a.hold, 2.0);
}
END_TEST

START_TEST (test_probe_beats_noise)
{
  struct sim m;
  bool changed;

  /* Level 2 saves 1%, but the data in its window compresses 30% better
   * than the window before's: judged by the chunks probed at both
   * levels, the step is taken back all the same.
   */
  sim_init (&m, 1, 6, 0.4, 0.01);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert_int_eq (vmferry_adapt_probe (&m.a), 1);
  m.data = 0.7;
  ck_assert_int_eq (slow_link (&m, &changed), 1);
  ck_assert (m.a.last.probed);
  ck_assert_double_eq_tol (m.a.last.gain, 0.01, 1e-9);
  ck_assert_int_eq (vmferry_adapt_probe (&m.a), 0);
  /* Each level saves 5%, but the data gets 30% worse: kept.  A window
   * whose chunks were compressed before the step (none probed) does not
   * judge it, however its ratio looks.
   */
  sim_init (&m, 1, 6, 0.4, 0.05);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  m.data = 0.5;
  m.no_probe_once = true;
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert (m.a.on_trial);
  m.data = 1.3;
  ck_assert_int_eq (slow_link (&m, &changed), 3);
  ck_assert_int_eq (vmferry_adapt_probe (&m.a), 2);
  /* Without probes (none reported), the windows' ratios judge: the
   * first is taken for a gain, the second for a loss.
   */
  sim_init (&m, 1, 6, 0.4, 0.01);
  m.probe = false;
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  m.data = 0.7;
  ck_assert_int_eq (slow_link (&m, &changed), 3);
  ck_assert (!m.a.last.probed);
  sim_init (&m, 1, 6, 0.4, 0.05);
  m.probe = false;
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  m.data = 1.3;
  ck_assert_int_eq (slow_link (&m, &changed), 1);
}
END_TEST

START_TEST (test_gain_stops_climb)
{
  struct sim m;
  bool changed;

  /* Levels 2 and 3 save 5% each, 4 only 1%: up to 3, a try at 4 taken
   * back; 3 kept as long as the link is the bottleneck.
   */
  sim_init (&m, 1, 6, 0.4, 0.05);
  m.ratio[4] = m.ratio[3] * 0.99;
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert_int_eq (slow_link (&m, &changed), 3);
  ck_assert_int_eq (slow_link (&m, &changed), 4);
  ck_assert_int_eq (slow_link (&m, &changed), 3);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq (slow_link (&m, &changed), 3);
  ck_assert_int_eq (m.a.high, 4);
  ck_assert_uint_eq (m.a.refused, 1);
}
END_TEST

START_TEST (test_starved_step_held)
{
  struct sim m;
  bool changed;

  /* The step to 3 starves the output: back to 1 at once, then up to 2
   * again but not to 3 until the hold (2 s) is over.
   */
  sim_init (&m, 1, 6, 0.4, 0.05);
  slow_link (&m, &changed);
  ck_assert_int_eq (slow_link (&m, &changed), 3);
  ck_assert_int_eq (window (&m, 0.0, 0.95, 0.3, &changed), 1);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  ck_assert (!changed);
  ck_assert_int_eq (slow_link (&m, &changed), 3);
}
END_TEST

START_TEST (test_steady_keeps)
{
  struct sim m;
  bool changed;

  sim_init (&m, 1, 6, 0.4, 0.05);
  ck_assert_int_eq (slow_link (&m, &changed), 2);
  /* The disk is the bottleneck (neither waits), or both are busy, or
   * the output waits while the compressors have no room, or the machine
   * has too little idle CPU to climb but some: the level stays (the
   * step to 2, judged in the first, is kept).
   */
  ck_assert_int_eq (window (&m, 0.01, 0.3, 0.5, &changed), 2);
  ck_assert (!changed);
  ck_assert_int_eq (window (&m, 0.5, 0.95, 0.5, &changed), 2);
  ck_assert_int_eq (window (&m, 0.15, 0.5, 0.5, &changed), 2);
  ck_assert_int_eq (window (&m, 0.6, 0.5, 0.10, &changed), 2);
  ck_assert (!changed);
}
END_TEST

START_TEST (test_window_length)
{
  struct vmferry_adapt a;
  struct vmferry_adapt_sample s = { .now = 10.0, .workers = 2 };
  bool changed;

  vmferry_adapt_init (&a, 1, 6, &s);
  /* Less than a window: no decision, whatever the figures say; the
   * measurements carry on into the window that completes.
   */
  s.now = 10.1;
  s.out_wait = 0.09;
  s.in = IN;
  s.out = IN / 2;
  ck_assert_int_eq (vmferry_adapt_update (&a, &s, &changed), 1);
  ck_assert (!changed);
  s.now = 10.0 + VMFERRY_ADAPT_WINDOW;
  s.out_wait = 0.4;
  s.work = 0.1;
  ck_assert_int_eq (vmferry_adapt_update (&a, &s, &changed), 2);
  ck_assert (changed);
  ck_assert_double_eq_tol (a.last.out, 0.8, 1e-9);
  ck_assert_double_eq_tol (a.last.busy, 0.1, 1e-9);
  ck_assert_double_eq_tol (a.last.ratio, 0.5, 1e-9);
  /* A window without data (the output waits for a record of zeros):
   * no gain to compare with, no step up.
   */
  vmferry_adapt_init (&a, 1, 6, &s);
  s.now += 1;
  s.out_wait += 0.9;
  ck_assert_int_eq (vmferry_adapt_update (&a, &s, &changed), 1);
  ck_assert (!changed);
  s.now += 1;
  s.out_wait += 0.9;
  s.in += IN;
  s.out += IN / 2;
  ck_assert_int_eq (vmferry_adapt_update (&a, &s, &changed), 2);
  /* No workers (no compression): nothing to adapt. */
  s.now = 20.0;
  s.out_wait = 10.0;
  s.workers = 0;
  ck_assert_int_eq (vmferry_adapt_update (&a, &s, &changed), 2);
  ck_assert (!changed);
  /* A window without data (zeros, holes) neither judges nor climbs. */
  s.workers = 2;
  s.now = 21.0;
  s.out_wait = 10.9;
  ck_assert_int_eq (vmferry_adapt_update (&a, &s, &changed), 2);
  ck_assert (a.on_trial);
  s.now = 22.0;
  s.out_wait = 11.8;
  s.in += IN;
  s.out += IN / 4;
  ck_assert_int_eq (vmferry_adapt_update (&a, &s, &changed), 3);
  s.now = 23.0;
  s.out_wait = 12.7;
  s.in += IN;
  s.out += IN / 5;
  ck_assert_int_eq (vmferry_adapt_update (&a, &s, &changed), 4);
  s.now = 24.0;
  s.out_wait = 13.6;
  ck_assert_int_eq (vmferry_adapt_update (&a, &s, &changed), 4);
  ck_assert (a.on_trial);
  s.now = 25.0;
  s.out_wait = 14.5;
  s.in += IN;
  s.out += IN / 6;
  ck_assert_int_eq (vmferry_adapt_update (&a, &s, &changed), 5);
  ck_assert (a.on_trial);
  ck_assert_double_eq_tol (a.trial_ratio, 1.0 / 6, 1e-9);
}
END_TEST

START_TEST (test_fixed_range)
{
  struct sim m;
  bool changed;

  /* MAX below MIN (a fixed level): never moves. */
  sim_init (&m, 3, 1, 0.4, 0.05);
  ck_assert_int_eq (slow_link (&m, &changed), 3);
  ck_assert_int_eq (window (&m, 0.0, 1.0, 0.5, &changed), 3);
  ck_assert_int_eq (window (&m, 0.9, 0.1, 0.0, &changed), 3);
  ck_assert (!changed);
}
END_TEST

START_TEST (test_idle_cpu)
{
  struct sim m;
  bool changed;

  sim_init (&m, 1, 6, 0.4, 0.05);
  /* The output waits, the compressors idle, but the machine has only
   * 10% idle (on loopback: SSH and the receiver use it): no level up.
   */
  ck_assert_int_eq (window (&m, 0.8, 0.2, 0.10, &changed), 1);
  ck_assert (!changed);
  /* Half of it idle: up. */
  ck_assert_int_eq (window (&m, 0.8, 0.2, 0.5, &changed), 2);
  /* CPU not known (no /proc): the idle rule is left out. */
  m.s.has_cpu = false;
  ck_assert_int_eq (window (&m, 0.8, 0.2, 0.0, &changed), 3);
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
                   test_starved_drops_to_min,
                   test_no_idle_drops_to_min,
                   test_little_gain_refused,
                   test_probe_beats_noise,
                   test_gain_stops_climb,
                   test_starved_step_held,
                   test_steady_keeps,
                   test_window_length,
                   test_fixed_range)
