/* vmferry: the source side of vmferry-sync for a running or paused
 * domain (issue 16; docs/design-dr.md, section 3, step 2).
 *
 * A refresh of a running domain reads its disks as the guest saw them at
 * one point in time: a pull backup job (backup.h) serves each disk as an
 * NBD export.  Each job also makes the libvirt checkpoint
 * vmferry.cp.DEST8.GEN+1 (DEST8: the first 8 hex digits of the sender's
 * destination id; GEN+1: the standby's generation once this refresh
 * commits) with a bitmap for each qcow2 disk (a raw disk cannot carry
 * one).  The next refresh's job is then incremental from it: a qcow2
 * disk's changed chunks are those the export's
 * qemu:dirty-bitmap:backup-TARGET context marks ("checkpoint"), and only
 * they are read; a raw disk (backupmode='full'), or any disk without
 * that checkpoint or the sender's block map of that generation, is read
 * in full and scanned against the sender's digest map as a shut-off
 * domain's files are ("scan").  A checkpoint libvirt finds inconsistent
 * (QEMU was killed) is deleted and the disks scanned.  Once the receiver
 * committed, every checkpoint of ours but the standby's generation's is
 * deleted (each bitmap keeps recording, at a cost to the guest's
 * writes); one a killed run left is deleted by the next run, which
 * redoes GEN -> GEN+1.  The job is ended on every exit
 * of the refresh; one a killed run left is ended by the next run's
 * begin.  The standby on the host is written only by the receiver, after
 * the data arrived whole, so a run killed at any point leaves it as it
 * was.
 */
#ifndef VMFERRY_SYNC_RUNNING_H
#define VMFERRY_SYNC_RUNNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "backup.h"
#include "source.h"

/* Our checkpoints' names: this, DEST8, ".", the generation.  Not a
 * name of sync-bitmap.h's (vmferry.DEST8.GEN, the bitmaps of a shut-off
 * qcow2, which QEMU loads when the domain starts): a checkpoint's bitmap
 * has the checkpoint's name, and one of those would collide with it.
 */
#define VMFERRY_SYNC_CHECKPOINT_PREFIX "vmferry.cp."

struct vmferry_sync_running;

/* Start the backup job of running or paused domain DOM serving the disks
 * TARGETS (N of them), its file systems frozen around the start as
 * FREEZE says (a notice says when the copy is crash-consistent), for a
 * standby at generation GEN of destination DEST8.  BITMAP[I]: disk I
 * can carry a checkpoint (qcow2); KNOWN[I]: the sender holds the block
 * map of disk I at generation GEN, so its unchanged chunks need not be
 * read.  NULL with the error set; nothing is left then but checkpoints
 * of no use deleted.
 */
struct vmferry_sync_running *
vmferry_sync_running_begin (virDomainPtr dom, const char *const *targets,
                            const bool *bitmap, const bool *known, size_t n,
                            enum vmferry_freeze freeze, const char *dest8,
                            int64_t gen);

/* Might disk I have changed in [OFF, OFF + LEN) since generation GEN?
 * Always true for a disk that is scanned.
 */
bool vmferry_sync_running_changed (const struct vmferry_sync_running *r,
                                   size_t i, uint64_t off, uint64_t len);

/* Delete DOM's checkpoints of destination DEST8 but generation KEEP's
 * (-1: all).  0, or -1 with the error set (the others are tried).
 */
int vmferry_sync_running_forget (virDomainPtr dom, const char *dest8,
                                 int64_t keep);

/* Disk I's export (the order of TARGETS), opened on first use; the
 * source belongs to R.  NULL with the error set.
 */
struct vmferry_source *
vmferry_sync_running_source (struct vmferry_sync_running *r, size_t i);

/* How disk I's changes are found: "checkpoint" or "scan". */
const char *vmferry_sync_running_method (const struct vmferry_sync_running *r,
                                         size_t i);

/* Were the file systems frozen for the job's start? */
bool vmferry_sync_running_frozen (const struct vmferry_sync_running *r);

/* Close the exports, end the job (backup.h) and free R.  0, or -1 with
 * the error set (R is freed anyway).  NULL is fine.
 */
int vmferry_sync_running_end (struct vmferry_sync_running *r);

#endif
