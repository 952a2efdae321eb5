/* vmferry: the adaptive zstd level of --compress=auto (adapt.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "adapt.h"

/* Thresholds, as fractions of a window: the output waiting for a
 * quarter of the time is the stages after it setting the pace; the
 * compressors busy less than 80% of it have room for a higher level
 * (levels 1 to 6 cost up to about 3 times level 1's CPU per byte, so
 * one level up at a time), if a quarter of the machine's CPU is idle to
 * run it.  Down: output waiting under 5% of the time while compressors
 * are busy over 90% of it, or a machine with no idle CPU left while the
 * output does not wait.
 */
#define OUT_SLOW 0.25
#define WORK_ROOM 0.80
#define IDLE_ROOM 0.25
#define OUT_FAST 0.05
#define WORK_FULL 0.90
#define IDLE_NONE 0.05

void
vmferry_adapt_init (struct vmferry_adapt *a, int min, int max, double now,
                    const struct vmferry_adapt_cpu *cpu)
{
  *a = (struct vmferry_adapt) {
    .level = min, .min = min, .max = max < min ? min : max,
    .low = min, .high = min, .t0 = now,
    .idle0 = cpu ? cpu->idle : 0, .cpu0 = cpu ? cpu->total : 0,
  };
}

int
vmferry_adapt_update (struct vmferry_adapt *a, double now, double out_wait,
                      double work, unsigned workers,
                      const struct vmferry_adapt_cpu *cpu, bool *changed)
{
  double dt = now - a->t0;
  double out, busy, idle = 1;
  int level = a->level;

  *changed = false;
  if (dt < VMFERRY_ADAPT_WINDOW || workers == 0)
    return a->level;
  out = (out_wait - a->out0) / dt;
  busy = (work - a->work0) / (dt * workers);
  if (cpu && a->cpu0 > 0 && cpu->total > a->cpu0)
    idle = (cpu->idle - a->idle0) / (cpu->total - a->cpu0);
  a->t0 = now;
  a->out0 = out_wait;
  a->work0 = work;
  if (cpu) {
    a->idle0 = cpu->idle;
    a->cpu0 = cpu->total;
  }

  if (out >= OUT_SLOW && busy < WORK_ROOM && idle >= IDLE_ROOM &&
      level < a->max)
    level++;
  else if (out < OUT_FAST && (busy >= WORK_FULL || idle < IDLE_NONE) &&
           level > a->min)
    level--;
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
