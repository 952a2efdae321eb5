/* vmferry: the tar archive (vmferry-export --format=tar), through
 * libarchive (man/vmferry-stream.5, ARCHIVE).
 *
 * A pax archive, optionally one zstd stream, that GNU tar and bsdtar
 * unpack with holes kept.  Its entries, in this order, under one
 * directory D named after the domain:
 *
 *   D/.vmferry/manifest.json   the stream's MANIFEST, as carried
 *   D/.vmferry/domain.xml      the stream's DOMAIN_XML, as carried
 *   then for each file of the manifest, in its order:
 *   D/NAME                     the file (its manifest name), a sparse
 *                              entry whose holes are the source's
 *   D/.vmferry/N.digest        its digest (lib/digest.h) as 32 hex
 *                              digits, two spaces, NAME, a newline
 *
 * A file's digest follows it because it is known only once the file is
 * read, and the manifest must come first (a reader acts on each entry
 * as it arrives).  Manifest names never start with '.', so nothing of
 * ours can take a file's place.  Every entry is a regular file, mode
 * 0600 (TPM state, disks and a secure XML are all secrets).
 *
 * Both directions are a converter of the native stream, so the export's
 * and the import's code stay one: the writer takes the stream's records
 * (a vmferry_stream_write_fn) and writes entries; the reader turns
 * entries into the records the importer and vmferry-info read, through
 * the same reader and validator as a native stream.
 */
#ifndef VMFERRY_TAR_H
#define VMFERRY_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "stream.h"

/* The directory holding the archive's own entries, below D. */
#define VMFERRY_TAR_META ".vmferry"

/* ---- Writing ---- */

struct vmferry_tar_writer;

/* A range of a file that holds data; the rest of it is holes. */
struct vmferry_tar_extent {
  uint64_t offset, length;
};

/* Write an archive to FD (not owned; NAME for messages), compressed with
 * zstd at LEVEL over THREADS threads (at least 1: libarchive 3.6 takes 0
 * as one) when ZSTD.  Free with vmferry_tar_writer_free.
 */
struct vmferry_tar_writer *vmferry_tar_writer_new (int fd, const char *name,
                                                   bool zstd, int level,
                                                   unsigned threads);
void vmferry_tar_writer_free (struct vmferry_tar_writer *t);

/* The data extents of FILE, whose FILE_BEGIN record comes next: they
 * make the entry's sparse map, which precedes its data.  Sorted, not
 * overlapping, within the file's size; every DATA and ZERO record of
 * the file must fall inside them (ZERO records are stored as zeros).
 * Copied.
 */
int vmferry_tar_writer_map (struct vmferry_tar_writer *t, uint32_t file,
                            const struct vmferry_tar_extent *ext, size_t n);

/* A vmferry_stream_write_fn: OPAQUE is the writer; each call is one
 * whole record of a stream as the stream writer checked it.  END closes
 * the archive.
 */
int vmferry_tar_write_record (void *opaque, const struct iovec *iov,
                              int iovcnt);

/* Bytes written to the fd so far. */
uint64_t vmferry_tar_writer_bytes (const struct vmferry_tar_writer *t);

/* ---- Reading ---- */

struct vmferry_tar_reader;

/* Open the input on FD (not owned; NAME for messages) for reading as a
 * stream, deciding by its first bytes, not by its name: a native stream,
 * else an archive as above (plain or zstd).  *TAR_RTN is set to the
 * archive's reader (NULL for a native stream); free it after the stream
 * reader.  The archive's entries are checked as they arrive: each must
 * be a regular file (no link of either kind, no device, no directory)
 * whose name passes the one check of names from input (names.h), and be
 * the very entry expected next (so only names the manifest lists, in
 * its order); a file's size must be the manifest's.  The digests are
 * checked where a stream's are: by whoever reads the records.
 */
struct vmferry_stream_reader *
vmferry_input_open (int fd, const char *name,
                    struct vmferry_tar_reader **tar_rtn);
void vmferry_tar_reader_free (struct vmferry_tar_reader *t);

/* After the stream reader failed: if the archive was the cause, make
 * the error its own message ("web01.tar: archive: entry ..."), without
 * the record number and byte offset of the records it was read as,
 * which name nothing in the archive.  T may be NULL.
 */
void vmferry_tar_reader_explain (const struct vmferry_tar_reader *t);

#endif
