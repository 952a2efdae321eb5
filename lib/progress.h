/* vmferry: progress reporting.
 *
 * Two forms, chosen by the tool:
 *  - a bar on a terminal:
 *      "web01           42% [===>     ] 1.2 GiB/3.0 GiB 310.0 MiB/s ETA 0:06",
 *    redrawn in place at most 10 times a second.  With a run total
 *    (vmferry_progress_set_total) one line covers every item of the run,
 *    figures for the whole run, ended by a newline once it is all done;
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

#include "human.h"            /* the bar's sizes and durations */

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

/* The same for a tool that writes a stream to STREAM_FD (export): no bar
 * where the stream goes on through a pipe, a FIFO or a socket.  In a
 * pipeline the stage that writes the final sink (a file, the disks, the
 * remote host) draws the one bar; it learns the total from the stream's
 * manifest, so the stages agree without being told.  Machine lines
 * (PROGRESS_FD) are written wherever they were asked for.
 */
struct vmferry_progress *vmferry_progress_auto_stream (int progress_fd,
                                                       bool quiet,
                                                       int stream_fd);

/* Whether a stream written to FD ends there (a file or a device) rather
 * than going on to another process (a pipe, FIFO or socket).  An FD that
 * cannot be examined counts as going on: better no bar than two.
 */
bool vmferry_progress_fd_is_sink (int fd);

/* A bar left open (the run failed) gets its newline, so what is printed
 * next starts a line of its own.
 */
void vmferry_progress_free (struct vmferry_progress *p);

/* Make P the bar that owns its terminal line (vmferry_progress_auto does
 * it for the bar on stderr): until P is freed, vmferry_log messages are
 * written to P's FD on a line of their own, ending an open bar line
 * first; the bar is drawn again below at its next update.
 */
void vmferry_progress_own_line (struct vmferry_progress *p);

/* End the open line of the bar that owns its terminal, if any: for a
 * message printed directly to stderr (the tools' error line).
 */
void vmferry_progress_break_line (void);

/* Tests replace the clock (seconds, monotonic). */
void vmferry_progress_set_clock (struct vmferry_progress *p,
                                 double (*clock) (void *opaque),
                                 void *opaque);

/* The run is NR_ITEMS items of TOTAL bytes in all, named NAME (a domain;
 * may be NULL).  Call before the first item.  The bar then shows the run:
 * NAME (else the item's label), bytes done of TOTAL, the rate and ETA
 * since the first item began, and ends its line when NR_ITEMS items have
 * ended (a file's name would not fit in 80 columns as well).  Machine
 * lines are per item as before and add "run_done" and "run_total".
 */
void vmferry_progress_set_total (struct vmferry_progress *p, const char *name,
                                 uint64_t total, size_t nr_items);

/* Start an item of TOTAL bytes (0 = unknown). */
void vmferry_progress_begin (struct vmferry_progress *p, const char *label,
                             uint64_t total);
void vmferry_progress_add (struct vmferry_progress *p, uint64_t bytes);
/* End the item where it stopped. */
void vmferry_progress_end (struct vmferry_progress *p);

/* End the item complete: what was not counted (holes a stream leaves
 * out) counts as done.
 */
void vmferry_progress_done (struct vmferry_progress *p);

/* One bar line into BUF (LEN bytes, always NUL-terminated): "\r", LABEL
 * in 14 columns, the percentage of DONE in TOTAL (capped at 100) and a bar,
 * "DONE/TOTAL", RATE per second, and "ETA " SECONDS or, FINAL, "in "
 * SECONDS and a newline.  TOTAL 0 (unknown) shows DONE and the rate only.
 * Returns the length written.
 */
size_t vmferry_progress_format_bar (char *buf, size_t len, const char *label,
                                    uint64_t done, uint64_t total, double rate,
                                    double seconds, bool final);

#endif
