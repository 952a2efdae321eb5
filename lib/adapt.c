/* vmferry: the adaptive zstd level of --compress=auto (adapt.h). */
#include "config.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "adapt.h"

/* Thresholds, as fractions of a window: the output waiting for a
 * quarter of the time is the stages after it setting the pace; the
 * compressors busy less than 80% of it have room for a higher level
 * (levels 1 to 6 cost up to about 3 times level 1's CPU per byte, so
 * one level up at a time), if a quarter of the machine's CPU is idle to
 * run it.  Starved: output waiting under 5% of the time while the
 * compressors are busy over 90% of it, or a machine with under 5% of
 * its CPU idle (what a level above the lowest costs is then taken from
 * the rest).
 */
#define OUT_SLOW 0.25
#define WORK_ROOM 0.80
#define IDLE_ROOM 0.25
#define OUT_FAST 0.05
#define WORK_FULL 0.90
#define IDLE_NONE 0.05

/* How long a refused step is not tried again, seconds: the first time,
 * and at the most (each refusal in a row doubles it).
 */
#define HOLD_MIN 2.0
#define HOLD_MAX 16.0

void
vmferry_adapt_init (struct vmferry_adapt *a, int min, int max,
                    const struct vmferry_adapt_sample *start)
{
  assert (min >= 1);             /* vmferry_adapt_probe's 0 is none */
  *a = (struct vmferry_adapt) {
    .level = min, .min = min, .max = max < min ? min : max,
    .low = min, .high = min, .start = *start,
    .ceiling = max < min ? min : max, .hold = HOLD_MIN,
  };
}

/* The figures of the window from A's start to S. */
static struct vmferry_adapt_window
window_figures (const struct vmferry_adapt *a,
                const struct vmferry_adapt_sample *s)
{
  const struct vmferry_adapt_sample *t = &a->start;
  double dt = s->now - t->now, in = s->in - t->in;
  struct vmferry_adapt_window w = {
    .out = (s->out_wait - t->out_wait) / dt,
    .busy = (s->work - t->work) / (dt * s->workers),
    .idle = 1,
    .ratio = in > 0 ? (s->out - t->out) / in : 0,
  };

  if (s->probe_lo > t->probe_lo) {
    w.probed = true;
    w.gain = 1 - (s->probe_hi - t->probe_hi) / (s->probe_lo - t->probe_lo);
  }
  if (s->has_cpu && t->has_cpu && s->cpu.total > t->cpu.total)
    w.idle = (s->cpu.idle - t->cpu.idle) / (s->cpu.total - t->cpu.total);
  return w;
}

/* The step above level FROM did not pay (or starved the output): not
 * tried again for a while, longer each time in a row.
 */
static void
refuse (struct vmferry_adapt *a, int from, double now)
{
  a->refused++;
  a->ceiling = from;
  a->ceiling_until = now + a->hold;
  a->hold = a->hold * 2 < HOLD_MAX ? a->hold * 2 : HOLD_MAX;
}

int
vmferry_adapt_update (struct vmferry_adapt *a,
                      const struct vmferry_adapt_sample *s, bool *changed)
{
  struct vmferry_adapt_window w;
  bool starved, room;
  int level = a->level;

  *changed = false;
  if (s->now - a->start.now < VMFERRY_ADAPT_WINDOW || s->workers == 0)
    return a->level;
  w = window_figures (a, s);
  a->start = *s;
  a->last = w;

  starved = (w.out < OUT_FAST && w.busy >= WORK_FULL) || w.idle < IDLE_NONE;
  room = w.out >= OUT_SLOW && w.busy < WORK_ROOM && w.idle >= IDLE_ROOM;
  /* A step on trial is judged on its first window with data (the
   * chunks probed at both levels when the caller probes: a window's
   * ratio may be of chunks compressed before the step; else the
   * windows' ratios), or at once when it starved the output.
   */
  if (a->on_trial && starved) {
    refuse (a, a->trial, s->now);
    a->on_trial = false;
    level = a->min;
  }
  else if (a->on_trial && (s->probing ? w.probed : w.ratio > 0)) {
    double gain = w.probed ? w.gain : 1 - w.ratio / a->trial_ratio;

    if (gain < VMFERRY_ADAPT_MIN_GAIN) {
      refuse (a, a->trial, s->now);
      level = a->trial;
    }
    else
      a->hold = HOLD_MIN;
    a->on_trial = false;
  }
  else if (!a->on_trial && starved && level > a->min) {
    refuse (a, level - 1, s->now);
    level = a->min;
  }
  if (!a->on_trial && !starved && room && w.ratio > 0 && level < a->max &&
      (level < a->ceiling || s->now >= a->ceiling_until)) {
    a->on_trial = true;
    a->trial = level;
    a->trial_ratio = w.ratio;
    level++;
  }
  assert (level >= a->min && level <= a->max);
  if (level != a->level) {
    a->level = level;
    a->changes++;
    if (level < a->low)
      a->low = level;
    if (level > a->high)
      a->high = level;
    *changed = true;
  }
  return a->level;
}

int
vmferry_adapt_probe (const struct vmferry_adapt *a)
{
  return a->on_trial ? a->trial : 0;
}

int
vmferry_adapt_parse_cpu (const char *text, struct vmferry_adapt_cpu *cpu)
{
  unsigned long long v[8] = { 0 };
  double total = 0;
  int n;

  /* "cpu" and a blank: the sum of all CPUs, not "cpu0". */
  if (strncmp (text, "cpu", 3) != 0 || (text[3] != ' ' && text[3] != '\t'))
    return -1;
  n = sscanf (text + 3, "%llu %llu %llu %llu %llu %llu %llu %llu",
              &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
  if (n < 4)
    return -1;
  for (int i = 0; i < n; i++)
    total += v[i];
  cpu->idle = (double) v[3] + (n > 4 ? (double) v[4] : 0);
  cpu->total = total;
  return 0;
}

int
vmferry_adapt_read_cpu (struct vmferry_adapt_cpu *cpu)
{
  char buf[256];
  FILE *f = fopen ("/proc/stat", "re");
  int r = -1;

  if (f == NULL)
    return -1;
  if (fgets (buf, sizeof buf, f))
    r = vmferry_adapt_parse_cpu (buf, cpu);
  fclose (f);
  return r;
}
