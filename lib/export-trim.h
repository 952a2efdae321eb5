/* vmferry: --trim: the temporary qcow2 overlays the guest's free space
 * is trimmed on, so that the export reads what the guest's filesystems
 * use and not what they freed, without a byte of the source changed.
 *
 * Each overlay's backing file is the disk as the export reads it, named
 * as QEMU's JSON node description (every driver and every backing file
 * named, nothing probed), opened by QEMU read-only as every backing file
 * is.  The overlays live in a directory of their own,
 * BASE/vmferry-trim-XXXXXX (0700), with an "owner" file naming the
 * process (PID and start time): removed at the end of every run, by a
 * fatal signal (vmferry_trim_quit), and, after a SIGKILL, by the next
 * run, which removes every such directory of this user whose process is
 * gone.
 */
#ifndef VMFERRY_EXPORT_TRIM_H
#define VMFERRY_EXPORT_TRIM_H

#include <stddef.h>
#include <stdint.h>

#define VMFERRY_TRIM_DIR_PREFIX "vmferry-trim-"

struct vmferry_trim;

/* Remove the overlay directories below BASE of runs that are gone.
 * Returns how many it removed, or -1 with the error set.
 */
int vmferry_trim_clean_stale (const char *base);

/* Clean stale directories, then make this run's below BASE.  NULL with
 * the error set.  End it with vmferry_trim_end.
 */
struct vmferry_trim *vmferry_trim_new (const char *base);

/* A new overlay of SIZE bytes over BACKING_NODE (a JSON node text, as
 * above) whose top has format FORMAT.  Returns its path (the caller
 * frees it; vmferry_trim_end removes the file), or NULL with the error
 * set.
 */
char *vmferry_trim_overlay (struct vmferry_trim *t, const char *backing_node,
                            const char *format, uint64_t size);

/* Remove T's directory and overlays, and free T (NULL is fine).  0, or
 * -1 with the error set (saying what is left).
 */
int vmferry_trim_end (struct vmferry_trim *t);

/* For a fatal signal's hook (output.h): remove the directory of the
 * run under way, if any.  Only async-safe enough for the quit watch
 * thread (quit.h), not for a signal handler.
 */
void vmferry_trim_quit (void);

#endif
