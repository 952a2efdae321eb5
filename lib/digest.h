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

/* The map digest (vmferry-stream(5), MAP DIGEST): the file cut in chunks
 * of CHUNK bytes (a multiple of VMFERRY_BLOCK_SIZE); chunk c's digest is
 * the file digest above of the blocks of that chunk only (at their
 * absolute offsets), so an all-zero chunk has the digest of no bytes.
 * The root is XXH3-128 (canonical bytes) over, for each chunk in
 * increasing c whose digest is not that of no bytes, c (u64 LE) and its
 * 16-byte digest.  A refresh compares chunk digests to find what changed;
 * the root says in 16 bytes whether two maps agree.
 */
#define VMFERRY_MAP_CHUNK_SIZE (1024 * 1024)

struct vmferry_map;

/* A map of a file of SIZE bytes, every chunk zero so far.  Free with
 * vmferry_map_free.
 */
struct vmferry_map *vmferry_map_new (uint64_t size, uint64_t chunk);
void vmferry_map_free (struct vmferry_map *m);

/* Add BUF[0..LEN), the file's bytes at OFFSET, with the rules of
 * vmferry_digest_update; the chunks the bytes fall into are recomputed
 * from what is added (a chunk must get all its data in increasing
 * offset, from an empty or a finished map's chunk on: see
 * vmferry_map_clear_chunk).  OFFSET + LEN must not pass the map's size.
 */
int vmferry_map_update (struct vmferry_map *m, uint64_t offset,
                        const void *buf, size_t len);

/* Digests A and B and the map M (each may be NULL) from one pass over
 * the bytes: each block is tested for zeros once.  All are checked
 * before any takes the bytes.
 */
int vmferry_digest_update_map (struct vmferry_digest *a,
                               struct vmferry_digest *b, struct vmferry_map *m,
                               uint64_t offset, const void *buf, size_t len);

/* The digest D (may be NULL) and the NM maps MS (of any chunk sizes,
 * e.g. a file's chunk map and its block map) from one pass over the
 * bytes: each block is tested for zeros once and hashed into all of them
 * while it is in the CPU's cache.  The results are those of separate
 * calls of vmferry_digest_update and vmferry_map_update.  All are checked
 * before any takes the bytes.
 */
int vmferry_digest_update_maps (struct vmferry_digest *d,
                                struct vmferry_map *const *ms, unsigned nm,
                                uint64_t offset, const void *buf, size_t len);

uint64_t vmferry_map_size (const struct vmferry_map *m);
uint64_t vmferry_map_chunk (const struct vmferry_map *m);
uint64_t vmferry_map_nr_chunks (const struct vmferry_map *m);

/* Chunk C's digest (finishing a chunk still being added to). */
void vmferry_map_get (struct vmferry_map *m, uint64_t c,
                      unsigned char out[VMFERRY_DIGEST_SIZE]);
/* Set chunk C's digest, e.g. from a stored map. */
void vmferry_map_set (struct vmferry_map *m, uint64_t c,
                      const unsigned char d[VMFERRY_DIGEST_SIZE]);
/* Make chunk C zero again so that its bytes can be added anew: a
 * receiver that rewrote some chunks re-reads just those.  Adding is then
 * allowed from the chunk's start on.
 */
void vmferry_map_clear_chunk (struct vmferry_map *m, uint64_t c);

/* The root of the map as it is now (-1 only without memory). */
int vmferry_map_root (struct vmferry_map *m,
                       unsigned char out[VMFERRY_DIGEST_SIZE]);

/* The map of the bytes [0, vmferry_map_size (M)) of FD (holes skipped
 * unread), as vmferry_digest_fd reads them; the map must be fresh.
 * With FILE_DIGEST (may be NULL), also the file digest, from the same
 * pass.
 */
int vmferry_map_fd (int fd, const char *name, struct vmferry_map *m,
                    unsigned char *file_digest);

/* 32 lower-case hex digits and a NUL. */
void vmferry_digest_hex (const unsigned char d[VMFERRY_DIGEST_SIZE],
                         char out[2 * VMFERRY_DIGEST_SIZE + 1]);

#endif
