/* vmferry-sync: a full scan of a disk, its reads ahead of its digests.
 *
 * A refresh by scan reads every chunk of a disk and digests it; read and
 * digested one after the other, the disk idles while the CPU hashes and
 * the CPU while the disk reads.  Here a thread of its own reads the disk
 * in windows, up to VMFERRY_SYNC_SCAN_WINDOWS of them ahead (nbdcopy's
 * reads in flight, with one reader), and the caller digests each window
 * as it comes, in order.  Memory stays flat: the windows are all the
 * buffers there are.
 *
 * The reader thread blocks every signal (the caller's thread sees them
 * and checks its quit flag at a chunk).  Stopping the scan, also in the
 * middle, waits for the one read in progress, never for the rest.
 */
#ifndef VMFERRY_SYNC_SCAN_H
#define VMFERRY_SYNC_SCAN_H

#include <stddef.h>
#include <stdint.h>

struct vmferry_source;
struct vmferry_sync_scan;

/* Windows read ahead of the caller, counting the one it holds: a read
 * in flight while the caller digests one window and another waits.
 */
#define VMFERRY_SYNC_SCAN_WINDOWS 3

/* Fill WIN with the bytes [OFF, END) of the disk OPAQUE names and add
 * to *READ the bytes actually read (holes are not).  WIN is aligned for
 * O_DIRECT (vmferry_alloc_direct) and holds END - OFF rounded up to
 * VMFERRY_DIRECT_ALIGN.  Runs in the reader thread: it sets errors in
 * that thread's slot, which the scan hands to the caller.  0, or -1
 * with the error set.
 */
typedef int (*vmferry_sync_scan_fill) (void *opaque, uint64_t off,
                                       uint64_t end, unsigned char *win,
                                       uint64_t *read);

/* The fill of a vmferry_source (OPAQUE): its data extents read, its
 * holes (SEEK_DATA, NBD block status) zeros, unread.
 */
int vmferry_sync_scan_fill_source (void *opaque, uint64_t off, uint64_t end,
                                   unsigned char *win, uint64_t *read);

/* Start reading the SIZE bytes of a disk in windows of WINDOW bytes (a
 * multiple of VMFERRY_BLOCK_SIZE), in increasing offset, with FILL and
 * OPAQUE, which only the reader thread uses until the scan is stopped.
 * NULL with the error set.  Stop it with vmferry_sync_scan_stop.
 */
struct vmferry_sync_scan *vmferry_sync_scan_start (uint64_t size,
                                                   size_t window,
                                                   vmferry_sync_scan_fill fill,
                                                   void *opaque);

/* The next window, in order: [*OFF_RTN, *END_RTN) is in *DATA_RTN,
 * valid until the next call or the stop; *READ_RTN is what its fill
 * read.  The window returned before is given back to the reader.
 * Returns 1 with a window, 0 at the end of the disk, -1 with the
 * error the reader met, once the windows before it are taken.
 */
int vmferry_sync_scan_next (struct vmferry_sync_scan *s, uint64_t *off_rtn,
                            uint64_t *end_rtn,
                            const unsigned char **data_rtn,
                            uint64_t *read_rtn);

/* Stop the reader (waiting for the read in progress only), join it and
 * free the scan.  The source is then the caller's again.  NULL is fine.
 */
void vmferry_sync_scan_stop (struct vmferry_sync_scan *s);

#endif
