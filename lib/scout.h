/* vmferry: the export's scout, which finds written zeros ahead of the reader.
 *
 * When the stages after the export's reader are the bottleneck (a slow
 * link, busy compressors), the reader waits for free slots and the disk
 * sits idle.  Meanwhile the scout reads ahead of the reader with O_DIRECT,
 * in the data extents of the files still to come, and notes the runs that
 * hold only zeros.  When the reader gets there it skips reading them: a
 * disk of written zeros costs its read time while the link is busy with
 * the data before it, not after.  The scout reads the files after the
 * reader's first, never while the reader reads, and outside the reader's
 * stalls only while it finds enough zeros to pay for its reads; it keeps
 * only the positions of zero runs (a fixed table), so memory stays flat.  Its
 * verdicts are only ever "all zero", which the stream expresses as a ZERO
 * record and the file digest skips.
 */
#ifndef VMFERRY_SCOUT_H
#define VMFERRY_SCOUT_H

#include <stdbool.h>
#include <stdint.h>

struct vmferry_scout;

/* A scout over NR files, read in this order (PATHS[i] of SIZES[i]
 * bytes; a NULL path is skipped).  Starts its thread; returns NULL with
 * the error set.
 */
struct vmferry_scout *vmferry_scout_new (const char *const *paths,
                                         const uint64_t *sizes, uint32_t nr);

/* The reader is waiting for its output (true) or reading again (false).
 * Matches the pipeline's stall hook.
 */
void vmferry_scout_stall (void *scout, bool waiting);

/* The reader starts (true) or ends (false) a read: the scout keeps off
 * the disk meanwhile.  NULL is fine.
 */
void vmferry_scout_reading (struct vmferry_scout *s, bool reading);

/* The reader is about to read [OFF, OFF+LEN) of file FILE, and reads in
 * increasing (file, offset) order.  True if the scout saw that whole
 * range hold only zeros: the reader need not read it.  NULL is fine
 * (false).
 */
bool vmferry_scout_zero (struct vmferry_scout *s, uint32_t file, uint64_t off,
                         uint64_t len);

/* Wait until the scout has read everything it may read ahead of the
 * reader's position (for tests; with the reader stalled, or within the
 * budget, and without filling the table).
 */
void vmferry_scout_drain (struct vmferry_scout *s);

/* Bytes the scout found zero and the reader skipped, for -v. */
uint64_t vmferry_scout_skipped (const struct vmferry_scout *s);

/* Stop the thread, free everything.  NULL is fine. */
void vmferry_scout_free (struct vmferry_scout *s);

#endif /* VMFERRY_SCOUT_H */
