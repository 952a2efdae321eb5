/* vmferry: the zstd level of --compress=auto follows the stage after the
 * compressors (zstd's --adapt idea, per window of the export's own
 * measurements).
 *
 * When the export waits for its output (a slow link, the send's ring
 * full) while the compressors idle, spare CPU is turned into fewer bytes
 * on the wire: one level up.  When the output never waits and the
 * compressors are busy all the time, compression is what the rest waits
 * for: one level down.  The machine's idle CPU counts too, as the
 * compressors share it with the rest (on loopback, with SSH and the
 * receiver): a level goes up only while a quarter of the machine is
 * idle, and comes down when nothing is.  Anything else (the disk is the
 * bottleneck, or all are half busy) keeps the level.  The caller
 * measures.
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

struct vmferry_adapt {
  int level, min, max;
  int low, high;                /* the lowest and highest level used */
  unsigned changes;
  double t0, out0, work0;       /* the window's start */
  double idle0, cpu0;
};

/* What the machine's CPUs did so far (any unit, the same for both): how
 * much of it idle, of how much in all.
 */
struct vmferry_adapt_cpu {
  double idle, total;
};

/* Start at level MIN, between MIN and MAX, at time NOW with the CPUs at
 * CPU (may be NULL: not known).
 */
void vmferry_adapt_init (struct vmferry_adapt *a, int min, int max,
                         double now, const struct vmferry_adapt_cpu *cpu);

/* At NOW, with OUT_WAIT the seconds the output has waited so far, WORK
 * the seconds WORKERS compressors have spent compressing so far, and
 * CPU the machine's CPUs (NULL: not known): end the window if it is long
 * enough, and return the level for the following chunks.  Sets *CHANGED
 * when it changed.
 */
int vmferry_adapt_update (struct vmferry_adapt *a, double now,
                          double out_wait, double work, unsigned workers,
                          const struct vmferry_adapt_cpu *cpu,
                          bool *changed);

/* The machine's CPUs from TEXT, the first line of /proc/stat ("cpu  user
 * nice system idle iowait irq softirq steal ..."): idle counts idle and
 * iowait.  0, or -1 when TEXT is not such a line.
 */
int vmferry_adapt_parse_cpu (const char *text, struct vmferry_adapt_cpu *cpu);

/* The machine's CPUs now (/proc/stat).  0, or -1 when unknown. */
int vmferry_adapt_read_cpu (struct vmferry_adapt_cpu *cpu);

#endif
