/* vmferry: what the export reads a disk, NVRAM or TPM file from.
 *
 * A source has a size, a map of where its data is, and reads of ranges.
 * The file source (source-file.c) is what the export always read: an
 * open regular file or block device, its map from SEEK_DATA/SEEK_HOLE
 * (extent.h), chunks mapped from the page cache or read with O_DIRECT.
 * The NBD source (source-nbd.c) reads an NBD export through libnbd (a
 * running domain's pull backup, a qemu-nbd of an image): its map from
 * block status (base:allocation), its reads in pieces of at most
 * VMFERRY_SOURCE_NBD_PIECE bytes, several in flight, since QEMU's NBD
 * server serves larger requests several times slower (docs/design-dr.md).
 * A source is used by one thread at a time.
 */
#ifndef VMFERRY_SOURCE_H
#define VMFERRY_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmferry_source;

/* Where the bytes of a read are: DATA is the caller's buffer, or a
 * mapping of the source (MAP, MAP_LEN) that stays valid until the view
 * is released or read into again.  Zero-initialise before the first
 * read.
 */
struct vmferry_source_view {
  const unsigned char *data;
  void *map;
  size_t map_len;
};

/* Open PATH, a file a domain names, to read it: a regular file or a
 * block device only (a FIFO, a socket, a character device, a directory
 * are refused before they are opened, and the open neither blocks nor
 * takes a terminal).  With NOFOLLOW the path itself must be the file,
 * not a link to it.  Returns the fd (its reads block), or -1 with the
 * error set (its errno ENOENT when nothing is there).  The caller
 * closes it.
 */
int vmferry_source_open_fd (const char *path, bool nofollow);

/* A file source over PATH, opened as vmferry_source_open_fd does, read
 * sequentially (the kernel is told), with O_DIRECT where the file
 * system takes it.  NULL with the error set.  Free it with
 * vmferry_source_free.
 */
struct vmferry_source *vmferry_source_open_file (const char *path,
                                                 bool nofollow);

/* An NBD source over the export that URI names (libnbd's URI syntax:
 * nbd://HOST/EXPORT, nbd+unix:///EXPORT?socket=PATH), read-only.
 * NULL with the error set.  Free it with vmferry_source_free.
 */
struct vmferry_source *vmferry_source_open_nbd (const char *uri);

/* An NBD source reading the guest-visible content of the image NODE
 * describes (QEMU's JSON node description: every driver named, every
 * backing file named or null, so nothing is probed and no header is
 * followed), read-only, through a qemu-nbd of its own: libnbd starts
 * it by socket activation, its socket in a 0700 directory libnbd
 * makes, and it ends when the source is freed or this process dies
 * (its only client gone).  NAME names the source in errors.  NULL
 * with the error set.  Free it with vmferry_source_free.
 */
struct vmferry_source *vmferry_source_open_image (const char *name,
                                                  const char *node);

/* The largest read the NBD source asks its server for. */
#define VMFERRY_SOURCE_NBD_PIECE (512 * 1024)

/* The name errors give the source (the path, the URI). */
const char *vmferry_source_name (const struct vmferry_source *s);

/* Size in bytes, as measured when the source was opened. */
uint64_t vmferry_source_size (const struct vmferry_source *s);

/* The file source's fd (the file the plan inspects: identity, qcow2
 * header, locks), or -1 for a source that is no file.
 */
int vmferry_source_fd (const struct vmferry_source *s);

/* The next extent at or after POS within the first SIZE bytes that is
 * not a hole.  Returns 1 with [*START_RTN, *END_RTN): the start rounded
 * down and the end rounded up to VMFERRY_BLOCK_SIZE, the end capped at
 * SIZE (a block-aligned POS is never above the start); 0 when only
 * holes remain; -1 with the error set.  With ZERO_RTN, a run of blocks
 * the source knows read as zeros (NBD's ZERO flag) is an extent of its
 * own, *ZERO_RTN true, that need not be read; without, such runs are
 * data.  A file never reports known zeros.  Where the source cannot
 * tell holes, everything from POS to SIZE is data.
 */
int vmferry_source_next_data (struct vmferry_source *s, uint64_t pos,
                              uint64_t size, uint64_t *start_rtn,
                              uint64_t *end_rtn, bool *zero_rtn);

/* Read LEN bytes at OFF: on return V->data points to them, in BUF or in
 * a mapping V holds (releasing what V held before).  BUF holds LEN
 * rounded up to VMFERRY_DIRECT_ALIGN and is aligned so
 * (vmferry_alloc_direct).  A range past the end of the source is an
 * error, never zeros.  0, or -1 with the error set.
 */
int vmferry_source_read (struct vmferry_source *s, uint64_t off, size_t len,
                         unsigned char *buf, struct vmferry_source_view *v);

/* Drop V's mapping, if any.  Safe on a zeroed or released view. */
void vmferry_source_view_release (struct vmferry_source_view *v);

/* Close and free.  NULL is fine. */
void vmferry_source_free (struct vmferry_source *s);

#endif /* VMFERRY_SOURCE_H */
