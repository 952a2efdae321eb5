/* vmferry: the zstd level of --compress=auto follows the stage after the
 * compressors (zstd's --adapt idea, per window of the export's own
 * measurements), so that idle CPU becomes fewer bytes on a slow link and
 * a fast link costs no time.
 *
 * Additive increase, multiplicative decrease: one level up a window
 * while the export waits for its output (a slow link: the send's ring
 * is full), its compressors have room and a quarter of the machine's
 * CPU is idle (the compressors share it with the rest: on loopback,
 * with SSH and the receiver); straight back to the lowest level the
 * moment the compressors become what the output waits for (it no longer
 * waits while they are busy, or the machine has no idle CPU left), since
 * the ring before the link holds well under a second of it.  A step up
 * is on trial for one window: when it did not make the output at least
 * VMFERRY_ADAPT_MIN_GAIN smaller (random data gains nothing at any
 * level), or it starved the output, the level goes back and that
 * step is not tried again for a while (2 s, doubling up to 16 s; reset
 * by a step that pays).  Anything else (the disk is the bottleneck, or
 * all are half busy) keeps the level.  The caller measures; this is
 * pure.
 */
#ifndef VMFERRY_ADAPT_H
#define VMFERRY_ADAPT_H

#include <stdbool.h>
#include <stddef.h>

/* The highest level --compress=auto goes to: a compressor at level 6
 * holds 3.5 MiB for a 1 MiB chunk (7 and 8: 6.5 MiB, 9: 12.5 MiB), and
 * each worker has one within the 128 MiB budget (send.h); all of them
 * together at most VMFERRY_ADAPT_MEMORY, so more workers stop lower.
 */
#define VMFERRY_ADAPT_MAX_LEVEL 6
#define VMFERRY_ADAPT_MEMORY ((size_t) 8 << 20)

/* The length of one window, in seconds: long enough that a window holds
 * several chunks at any speed the export reaches, short enough that a
 * change of the link shows within a few seconds.
 */
#define VMFERRY_ADAPT_WINDOW 0.5

/* The least a step up must save, as a fraction of the bytes out per
 * byte in, to be kept.
 */
#define VMFERRY_ADAPT_MIN_GAIN 0.02

/* What the machine's CPUs did so far (any unit, the same for both): how
 * much of it idle, of how much in all.
 */
struct vmferry_adapt_cpu {
  double idle, total;
};

/* What the export measured so far, each a total since it began. */
struct vmferry_adapt_sample {
  double now;                   /* seconds, a monotonic clock */
  double out_wait;              /* seconds the output waited */
  double work;                  /* seconds the compressors compressed */
  double in, out;               /* bytes compressed, and what they became */
  /* Chunks compressed at both the level on trial and the one below
   * (vmferry_adapt_probe), the same data: what they became at each.
   */
  double probe_lo, probe_hi;
  bool probing;                 /* the caller probes: judge by probes only */
  unsigned workers;             /* compressors (0: no compression) */
  bool has_cpu;                 /* cpu is known */
  struct vmferry_adapt_cpu cpu;
};

/* One window's figures: fractions of its length (busy: of each
 * compressor's), bytes out per byte in (0: none in), and what the step
 * on trial saved of the chunks probed (when probed).
 */
struct vmferry_adapt_window {
  double out, busy, idle, ratio;
  bool probed;
  double gain;
};

struct vmferry_adapt {
  int level, min, max;
  int low, high;                /* the lowest and highest level used */
  unsigned changes;
  unsigned refused;             /* steps taken back */
  struct vmferry_adapt_sample start;   /* the window's */
  struct vmferry_adapt_window last;    /* the last window's figures */
  bool on_trial;                /* a step up is on trial: */
  int trial;                    /* from this level, */
  double trial_ratio;           /* with this ratio the window before */
  int ceiling;                  /* no step above this until ... */
  double ceiling_until;         /* ... this time */
  double hold;                  /* the next refusal's length, seconds */
};

/* Start at level MIN (1 or more), between MIN and MAX, with the measurements at
 * START.
 */
void vmferry_adapt_init (struct vmferry_adapt *a, int min, int max,
                         const struct vmferry_adapt_sample *start);

/* With the measurements at NOW: end the window if it is long enough,
 * and return the level for the following chunks.  Sets *CHANGED when it
 * changed.
 */
int vmferry_adapt_update (struct vmferry_adapt *a,
                          const struct vmferry_adapt_sample *now,
                          bool *changed);

/* While a step up is on trial, the level it came from (else 0): the
 * caller compresses some chunks at that level too, the same chunks at
 * both levels, and reports the sizes (probe_lo, probe_hi), so that what
 * the step saved is measured on the same data, not between windows
 * whose data differ (on a disk image by up to half, window to window).
 */
int vmferry_adapt_probe (const struct vmferry_adapt *a);

/* The machine's CPUs from TEXT, the first line of /proc/stat ("cpu  user
 * nice system idle iowait irq softirq steal ..."): idle counts idle and
 * iowait.  0, or -1 when TEXT is not such a line.
 */
int vmferry_adapt_parse_cpu (const char *text, struct vmferry_adapt_cpu *cpu);

/* The machine's CPUs now (/proc/stat).  0, or -1 when unknown. */
int vmferry_adapt_read_cpu (struct vmferry_adapt_cpu *cpu);

#endif
