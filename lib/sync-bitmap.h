/* vmferry-sync: what changed on a shut-off qcow2 disk, from a persistent
 * dirty bitmap (docs/design-dr.md, section 3, step 3; issue 16).
 *
 * Before the sender reads generation GEN of a source qcow2 for a
 * destination, it adds and enables the bitmap vmferry.<DEST8>.<GEN+1>
 * (qemu-img bitmap --add --enable; DEST8: the first 8 hex digits of the
 * destination id): whatever QEMU (or anything opening the image as
 * qcow2) writes from then on is recorded in it.  The refresh that makes
 * generation GEN+1 reads that bitmap's dirty ranges through a read-only
 * qemu-nbd (-B, block status of qemu:dirty-bitmap:NAME), reads only
 * those blocks, and removes the bitmap once the receiver committed.  A
 * bitmap that is missing, in use (a QEMU that held the image crashed:
 * its content is not to be trusted), disabled or of a granularity it
 * cannot be is removed and the refresh scans instead, and says why.
 *
 * The source qcow2's metadata is changed by this (the bitmaps); qemu-img's
 * write lock makes the add fail while a QEMU holds the image.
 *
 * The qcow2 source is read as the guest reads it (its virtual disk,
 * backing chain and all) through qemu-nbd -r, for the scan too: the
 * standby holds guest content, not the qcow2 file's bytes.
 */
#ifndef VMFERRY_SYNC_BITMAP_H
#define VMFERRY_SYNC_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmferry_map;

/* The granularity of the bitmaps added: a block of the stream. */
#define VMFERRY_SYNC_BITMAP_GRANULARITY 65536

/* "vmferry." + 8 hex + "." + up to 19 digits + NUL. */
#define VMFERRY_SYNC_BITMAP_NAME_MAX 40

/* Bitmap GEN's name for the destination DEST_ID (hex, at least 8 digits)
 * into BUF (VMFERRY_SYNC_BITMAP_NAME_MAX bytes).  0, or -1 with the
 * error set (a DEST_ID that is not hex, GEN not positive).
 */
int vmferry_sync_bitmap_name (const char *dest_id, int64_t gen, char *buf);

/* The generation NAME stands for if it is one of DEST_ID's bitmaps
 * ("vmferry.<DEST8>.<GEN>", GEN a positive decimal without leading
 * zeros); 0 if it is not ours.
 */
int64_t vmferry_sync_bitmap_gen (const char *dest_id, const char *name);

/* A persistent bitmap of a qcow2 image, as qemu-img info reports it. */
struct vmferry_sync_bitmap {
  char *name;
  uint64_t granularity;
  bool in_use;                  /* flag "in-use": not saved cleanly */
  bool enabled;                 /* flag "auto": recording */
};

void vmferry_sync_bitmaps_free (struct vmferry_sync_bitmap *b, size_t n);

/* The bitmaps that the output of `qemu-img info --output=json` of a
 * qcow2 image (JSON, NAME for errors) lists.  An image of another
 * format, or unparsable output, is an error.  0, or -1 with the error
 * set.
 */
int vmferry_sync_bitmaps_parse (const char *json, const char *name,
                                struct vmferry_sync_bitmap **list_rtn,
                                size_t *n_rtn);

/* Whether bitmap GEN of DEST_ID in LIST (N) can say what changed: 1 if
 * so; 0 if not, with WHY (WHY_LEN bytes) saying why, e.g. "bitmap
 * vmferry.0a1b2c3d.3 in use: QEMU did not close the image cleanly".
 */
int vmferry_sync_bitmap_usable (const struct vmferry_sync_bitmap *list,
                                size_t n, const char *dest_id, int64_t gen,
                                char *why, size_t why_len);

/* ---- on the image (qemu-img) ---- */

/* The bitmaps of the qcow2 image PATH (qemu-img info -U: the image is
 * not locked for it).  0, or -1 with the error set.
 */
int vmferry_sync_bitmaps_of (const char *path,
                             struct vmferry_sync_bitmap **list_rtn,
                             size_t *n_rtn);

/* Add and enable bitmap NAME on PATH (granularity 64 KiB); remove it.
 * 0, or -1 with the error set to qemu-img's own words (a lock held by a
 * QEMU, ...).
 */
int vmferry_sync_bitmap_add (const char *path, const char *name);
int vmferry_sync_bitmap_remove (const char *path, const char *name);

/* Before reading generation GEN - 1 of PATH for DEST_ID for a refresh
 * that makes generation GEN (GEN 2 the first refresh; for the first copy
 * GEN is 1 and no bitmap is used): remove every bitmap of DEST_ID except
 * bitmap GEN when it is usable and USE is true, then add bitmap GEN + 1
 * unless NO_ADD.  Returns 1 when bitmap GEN is to say what changed, 0
 * when the disk is to be scanned (WHY, WHY_LEN bytes, says why; "" when
 * USE was false and nothing else went wrong), -1 with the error set when
 * a bitmap of ours could not be removed.  A failed add is not an error:
 * the next refresh scans, and WHY says so.
 */
int vmferry_sync_bitmap_prepare (const char *path, const char *dest_id,
                                 int64_t gen, bool use, bool no_add,
                                 char *why, size_t why_len);

/* Remove bitmap GEN of DEST_ID, or with GEN 0 every bitmap of DEST_ID,
 * from PATH.  0, or -1 with the error set.
 */
int vmferry_sync_bitmap_forget (const char *path, const char *dest_id,
                                int64_t gen);

/* Remove every bitmap of ours (vmferry.*), of whatever destination, from
 * PATH: a standby's copy of a source carries the source's.  0, or -1
 * with the error set.
 */
int vmferry_sync_bitmap_strip (const char *path);

/* ---- reading (qemu-nbd -r, libnbd) ---- */

struct vmferry_sync_qcow2;

/* Serve the qcow2 image PATH read-only, with the dirty bitmap BITMAP
 * (NULL: none) exported beside it.  NULL with the error set.
 */
struct vmferry_sync_qcow2 *vmferry_sync_qcow2_open (const char *path,
                                                    const char *bitmap);

/* The virtual size. */
uint64_t vmferry_sync_qcow2_size (const struct vmferry_sync_qcow2 *q);

/* N bytes at OFF into BUF.  0, or -1 with the error set. */
int vmferry_sync_qcow2_read (struct vmferry_sync_qcow2 *q, void *buf,
                             size_t n, uint64_t off);

/* Set DIRTY[c] (a byte per CHUNK bytes of the disk) for every chunk that
 * holds a block the bitmap marks dirty.  The number of chunks marked, or
 * -1 with the error set.
 */
int64_t vmferry_sync_qcow2_dirty (struct vmferry_sync_qcow2 *q,
                                  uint64_t chunk, unsigned char *dirty);

/* The maps (chunks of CHUNK, blocks of FINE bytes) of the whole disk
 * at PATH as the guest reads it, new into *MAP_RTN and *FINE_RTN; the
 * bytes read are added to *READ.  0, or -1 with the error set.
 */
int vmferry_sync_qcow2_maps (const char *path, uint64_t chunk, uint64_t fine,
                             struct vmferry_map **map_rtn,
                             struct vmferry_map **fine_rtn, uint64_t *read);

/* Disconnect (qemu-nbd exits) and free.  NULL is fine.  0, or -1 with
 * the error set.
 */
int vmferry_sync_qcow2_close (struct vmferry_sync_qcow2 *q);

#endif
