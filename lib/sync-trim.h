/* vmferry-sync --trim: a shut-off domain's disks read for a refresh
 * through what the guest's filesystems use (issue 18; export-trim.h).
 *
 * Each disk gets a temporary qcow2 overlay (export-trim.h: a private
 * directory, removed at the end, by a fatal signal, or by the next run
 * after a SIGKILL); the appliance fstrims every filesystem on the
 * overlays in one launch; the refresh then reads each disk through its
 * overlay (a local read-only qemu-nbd, source.h).  The source is never
 * written: QEMU opens it read-only, as the overlay's backing file.
 * What the trim freed reads as zeros, so the chunks it freed differ from
 * the sender's map once and are sent as zero records.
 */
#ifndef VMFERRY_SYNC_TRIM_H
#define VMFERRY_SYNC_TRIM_H

#include <stddef.h>

#include "source.h"

struct vmferry_sync_trim;

/* Make an overlay over each of the N disks PATHS (FORMATS: "raw" or
 * "qcow2"; a qcow2's backing chain is its header's, as qemu-nbd -r
 * reads it) and trim them (TARGETS name the disks).  *UNTRIMMED_RTN:
 * the filesystems not trimmed, "vda2 (swap: ...)", or NULL when every
 * one was (the caller frees it).  NULL with the error set; nothing is
 * left then.  End it with vmferry_sync_trim_end.
 */
struct vmferry_sync_trim *
vmferry_sync_trim_begin (const char *const *paths,
                         const char *const *formats,
                         const char *const *targets, size_t n,
                         char **untrimmed_rtn);

/* Disk I as the trim left it, opened on first use; the source belongs
 * to T.  NULL with the error set.
 */
struct vmferry_source *vmferry_sync_trim_source (struct vmferry_sync_trim *t,
                                                 size_t i);

/* Close the sources, remove the overlays and free T (NULL is fine).
 * 0, or -1 with the error set (saying what is left).
 */
int vmferry_sync_trim_end (struct vmferry_sync_trim *t);

#endif
