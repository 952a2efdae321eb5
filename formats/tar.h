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
#include <sys/types.h>
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

/* ---- Reading a tar made by hand ----
 *
 * A tar whose first entry is not DIR/.vmferry/manifest.json: `tar -cSf
 * vm.tar vm.xml disk.qcow2`, plain or zstd.  It has no manifest, so it
 * cannot become records by itself: what its entries are (the disks, the
 * XML) is decided above this tier, by the plan of a directory made by
 * hand (lib/import-dir.h), over the index made here.
 *
 * The manifest the records begin with names every file's size, format
 * and backing file before any data, and a tar says them only as each
 * entry arrives, in any order: so the archive is read twice, once for
 * its index (headers, the XML, each entry's first bytes) and once for
 * the data, which needs a file that can be read again from the start.
 * A pipe cannot: it is refused, saying to save the archive to a file
 * (or unpack it and use --from-dir).  Spooling it to the destination
 * instead would write every disk twice and need twice its space.
 *
 * Every entry passes the checks of a vmferry archive's (the one check of
 * names from input; no link of either kind, no device, no FIFO), except
 * that directories are taken (and skipped) and a leading "./" is
 * dropped.  An entry named twice, more than VMFERRY_TAR_MAX_ENTRIES
 * entries or VMFERRY_TAR_HEADS_MAX bytes of heads, and the manifest or a
 * digest of a vmferry archive anywhere (a vmferry archive whose manifest
 * is not first is damaged, and must not be read as one that has none)
 * are refused.
 */

#define VMFERRY_TAR_MAX_ENTRIES 4096
/* The first bytes kept of an entry: all of a qcow2 image's first
 * cluster, the largest the header and backing file name can span.
 */
#define VMFERRY_TAR_HEAD_MAX (2 * 1024 * 1024)
/* At most this many bytes of heads in all (an archive of many images or
 * XMLs is refused).
 */
#define VMFERRY_TAR_HEADS_MAX (64 * 1024 * 1024)

struct vmferry_tar_plain;

struct vmferry_tar_plain_entry {
  char *name;                   /* relative, no "./", no trailing '/' */
  bool dir;
  uint64_t size;
  uint64_t allocated;           /* the bytes its sparse map holds */
  /* Its first bytes (zeros where the map has holes): all of a *.xml up
   * to VMFERRY_MAX_METADATA + 1, the first cluster (at most
   * VMFERRY_TAR_HEAD_MAX) of a file that starts with the qcow2 magic,
   * else 4.
   */
  unsigned char *head;
  size_t head_len;
};

/* As vmferry_input_open; and when the input is a tar made by hand, it
 * returns NULL with no error, *PLAIN_RTN set to the archive's index.
 * The error says so when FD cannot be read again from where it starts.
 * Free the index with vmferry_tar_plain_free.
 */
struct vmferry_stream_reader *
vmferry_input_open_plain (int fd, const char *name,
                          struct vmferry_tar_reader **tar_rtn,
                          struct vmferry_tar_plain **plain_rtn);
/* The first bytes of FD, which tell a stream from an archive: up to 4
 * into PEEK, *GOT_RTN of them (fewer at the input's end).  0, or -1
 * with the error set.
 */
int vmferry_input_peek (int fd, const char *name, unsigned char peek[4],
                        size_t *got_rtn);
/* As vmferry_input_open_plain, once the caller has taken FD's first GOT
 * bytes (vmferry_input_peek) and found no stream there, say.
 */
struct vmferry_stream_reader *
vmferry_input_open_peeked (int fd, const char *name,
                           const unsigned char *peek, size_t got,
                           struct vmferry_tar_reader **tar_rtn,
                           struct vmferry_tar_plain **plain_rtn);
void vmferry_tar_plain_free (struct vmferry_tar_plain *p);

size_t vmferry_tar_plain_count (const struct vmferry_tar_plain *p);
const struct vmferry_tar_plain_entry *
vmferry_tar_plain_entry (const struct vmferry_tar_plain *p, size_t i);
/* The index of the entry named NAME, or -1. */
ssize_t vmferry_tar_plain_find (const struct vmferry_tar_plain *p,
                                const char *name);
/* The archive's fd (for its identity: fstat). */
int vmferry_tar_plain_fd (const struct vmferry_tar_plain *p);

/* Read entry I's data from the next call of vmferry_tar_plain_read on:
 * on from the current entry, or the archive read again from its start
 * when I is behind it.  An entry that is not what the index says (the
 * file changed) is an error.
 */
int vmferry_tar_plain_seek (struct vmferry_tar_plain *p, size_t i);
/* The next block of the entry's data: 1 with *BUF_RTN (libarchive's,
 * valid until the next call), *LEN_RTN and *OFF_RTN, in order and
 * within the entry's size, holes skipped; 0 at its end; -1.
 */
int vmferry_tar_plain_read (struct vmferry_tar_plain *p, const void **buf_rtn,
                            size_t *len_rtn, uint64_t *off_rtn);

/* After the stream reader failed: if the archive was the cause, make
 * the error its own message ("web01.tar: archive: entry ..."), without
 * the record number and byte offset of the records it was read as,
 * which name nothing in the archive.  T may be NULL.
 */
void vmferry_tar_reader_explain (const struct vmferry_tar_reader *t);

#endif
