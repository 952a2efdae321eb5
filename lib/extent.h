/* vmferry: where a file's data is.
 *
 * Holes are never read or sent (SEEK_DATA/SEEK_HOLE), and blocks of
 * written zeros are detected before they are compressed or hashed.
 * Extents are widened to whole VMFERRY_BLOCK_SIZE blocks, the unit of
 * the stream and of the file digest.
 */
#ifndef VMFERRY_EXTENT_H
#define VMFERRY_EXTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What walks extents reads them whole and tests them for zeros: the
 * base's full reads and writes and zero test come with this header.
 */
#include "full-rw.h"
#include "iszero.h"

/* Size in bytes of a regular file or block device.  NAME is for errors;
 * anything else (a pipe, a directory) is an error.
 */
int vmferry_file_size (int fd, const char *name, uint64_t *size_rtn);

/* The next extent of data at or after POS in a file of SIZE bytes.
 * Returns 1 with [*START_RTN, *END_RTN): the start rounded down and the
 * end rounded up to VMFERRY_BLOCK_SIZE, the end capped at SIZE (so with a
 * block-aligned POS the start is never below POS).  Returns 0 when only
 * holes remain, -1 on error.  Where the filesystem or device cannot tell
 * holes (EINVAL, EOPNOTSUPP), everything from POS to SIZE is data.  To
 * walk a file: pos = 0; while (next_data (..., pos, ...) == 1) { ...;
 * pos = end; }.
 */
int vmferry_next_data (int fd, const char *name, uint64_t pos, uint64_t size,
                       uint64_t *start_rtn, uint64_t *end_rtn);

/* Bytes the file occupies on disk (st_blocks * 512), for reports; 0 for
 * block devices.  The caller prefixes errors with the file's name.
 */
int vmferry_allocated_bytes (int fd, uint64_t *rtn);

#endif
