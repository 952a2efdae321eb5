/* vmferry: progress reporting.
 *
 * Two forms, chosen by the tool:
 *  - a bar on a terminal: "label  42% [====>     ] 1.2/3.0 GiB 310 MiB/s ETA 0:06",
 *    redrawn in place at most 10 times a second;
 *  - --progress=FD: one JSON object per line for programs, at most once a
 *    second plus one at begin and end of each item:
 *      {"event":"progress","label":"vda","done":N,"total":N,
 *       "rate":BYTES_PER_S,"eta":SECONDS}
 *    with "event" one of "begin", "progress", "end" (end adds "elapsed").
 * vmferry_progress_add() may be called from any thread.
 */
#ifndef VMFERRY_PROGRESS_H
#define VMFERRY_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

enum vmferry_progress_mode {
  VMFERRY_PROGRESS_BAR,
  VMFERRY_PROGRESS_MACHINE,
};

struct vmferry_progress;

/* A reporter writing to FD in MODE.  The caller keeps FD open and owns it.
 * Returns NULL on allocation failure (error set).  Free with
 * vmferry_progress_free.
 */
struct vmferry_progress *vmferry_progress_new (enum vmferry_progress_mode mode,
                                               int fd);

/* What the tools do: with progress_fd >= 0, machine lines on it; else a bar
 * on stderr if stderr is a terminal and not quiet; else NULL, which every
 * function below accepts and ignores.
 */
struct vmferry_progress *vmferry_progress_auto (int progress_fd, bool quiet);

void vmferry_progress_free (struct vmferry_progress *p);

/* Tests replace the clock (seconds, monotonic). */
void vmferry_progress_set_clock (struct vmferry_progress *p,
                                 double (*clock) (void *opaque),
                                 void *opaque);

/* Start an item of TOTAL bytes (0 = unknown). */
void vmferry_progress_begin (struct vmferry_progress *p, const char *label,
                             uint64_t total);
void vmferry_progress_add (struct vmferry_progress *p, uint64_t bytes);
void vmferry_progress_end (struct vmferry_progress *p);

/* "1.5 GiB", "512 B": binary units, one decimal above KiB. */
void vmferry_human_size (uint64_t bytes, char *buf, size_t len);

/* "1:02:03" or "2:03"; "--:--" for negative (unknown). */
void vmferry_human_duration (double seconds, char *buf, size_t len);

#endif
