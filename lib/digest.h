/* vmferry: the file digest carried in FILE_END records.
 *
 * XXH3-128, as canonical (big-endian) bytes, of: for each block
 * (VMFERRY_BLOCK_SIZE bytes, the last one of a file possibly short) in
 * increasing offset that is not all zero, the block's offset (u64 LE),
 * its length (u64 LE) and its bytes.  Zero blocks contribute nothing, so
 * the digest depends only on the file's logical content: a hole, a ZERO
 * record and written zeros all give the same result, whatever the
 * chunking.  The file size is not included (FILE_BEGIN carries it).
 */
#ifndef VMFERRY_DIGEST_H
#define VMFERRY_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define VMFERRY_DIGEST_SIZE 16

struct vmferry_digest;

/* A new digest of an empty file.  Free with vmferry_digest_free. */
struct vmferry_digest *vmferry_digest_new (void);
void vmferry_digest_free (struct vmferry_digest *d);

/* Add BUF[0..LEN), the file's bytes at OFFSET.  OFFSET is block-aligned
 * and not below the end of the previous call (skipped ranges are holes);
 * LEN covers whole blocks, except that the last call may end with a short
 * block at the end of the file, after which no more calls are allowed.
 * All-zero blocks are skipped here, so callers pass data as it is.
 */
int vmferry_digest_update (struct vmferry_digest *d, uint64_t offset,
                           const void *buf, size_t len);

/* The same bytes added to two digests in one pass over them (both take
 * the same range, or neither takes anything).
 */
int vmferry_digest_update2 (struct vmferry_digest *a, struct vmferry_digest *b,
                            uint64_t offset, const void *buf, size_t len);

/* The digest of what was added so far (D may be updated further). */
void vmferry_digest_final (const struct vmferry_digest *d,
                           unsigned char out[VMFERRY_DIGEST_SIZE]);

/* The digest of the first SIZE bytes of the file (or block device) on
 * FD, read sequentially in large pieces, skipping holes without reading
 * them.  NAME is for errors.  A file shorter than SIZE is an error.
 */
int vmferry_digest_fd (int fd, const char *name, uint64_t size,
                       unsigned char out[VMFERRY_DIGEST_SIZE]);

/* The same for the bytes [START, END) of the file only: what a digest
 * fed with just the data at and after START, up to END, gives.  START is
 * block-aligned; END is block-aligned or the end of the file.
 */
int vmferry_digest_fd_range (int fd, const char *name, uint64_t start,
                             uint64_t end,
                             unsigned char out[VMFERRY_DIGEST_SIZE]);

/* 32 lower-case hex digits and a NUL. */
void vmferry_digest_hex (const unsigned char d[VMFERRY_DIGEST_SIZE],
                         char out[2 * VMFERRY_DIGEST_SIZE + 1]);

#endif
