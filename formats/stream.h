/* vmferry: the native stream format, version 1 (man/vmferry-stream.5).
 *
 * A stream is a sequence of records.  Every record is a fixed 48-byte
 * header followed by payload_len bytes of payload.  All integers are
 * little-endian.
 *
 *   off size field
 *     0    4 magic        "VMFR"
 *     4    2 type         enum vmferry_record_type
 *     6    2 flags        VMFERRY_REC_F_*
 *     8    4 file         file index (records about a file), else 0
 *    12    4 payload_len  bytes of payload following the header
 *    16    8 offset       DATA/ZERO: byte offset in the file, else 0
 *    24    8 length       DATA/ZERO: logical (uncompressed) bytes, else 0
 *    32    8 seq          record number, 0 for the stream header, +1 each
 *    40    8 checksum     XXH3-64 of bytes 0..39 followed by the payload
 *
 * Order: STREAM_HEADER, MANIFEST, DOMAIN_XML, then for each file in
 * manifest order FILE_BEGIN, DATA/ZERO records in increasing offset,
 * FILE_END; finally END.  A stream without END is truncated.
 *
 * DATA and ZERO records start at an offset that is a multiple of
 * VMFERRY_BLOCK_SIZE and cover whole blocks, except the last block of a
 * file, which may be short.  A DATA record's payload is the raw bytes
 * (length == payload_len) or, with VMFERRY_REC_F_ZSTD, one zstd frame
 * that decompresses to exactly `length` bytes.  A ZERO record has no
 * payload: the range reads as zeros.  Ranges not covered by any record are
 * holes and also read as zeros.
 *
 * The file digest in FILE_END is XXH3-128 (canonical big-endian bytes) of,
 * for each block of the file in increasing offset that is not all zero:
 * the block's offset (u64 LE), its length (u64 LE), then its bytes.  So it
 * depends only on the file's logical content, not on where its holes are
 * or how it was chunked.  See lib/digest.h.
 */
#ifndef VMFERRY_STREAM_H
#define VMFERRY_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define VMFERRY_REC_MAGIC "VMFR"
#define VMFERRY_REC_HEADER_SIZE 48
#define VMFERRY_STREAM_MAGIC "VMFERRY\n"     /* in the STREAM_HEADER payload */
#define VMFERRY_STREAM_VERSION_MAJOR 1
#define VMFERRY_STREAM_VERSION_MINOR 0

/* Unit of zero detection, alignment and digest. */
#define VMFERRY_BLOCK_SIZE (64 * 1024)
/* Largest logical length of one DATA record (readers refuse more). */
#define VMFERRY_CHUNK_SIZE (4 * 1024 * 1024)
/* Readers refuse anything larger: bounds memory on hostile input. */
#define VMFERRY_MAX_PAYLOAD (VMFERRY_CHUNK_SIZE + 1024 * 1024)
#define VMFERRY_MAX_RECORD_LENGTH ((uint64_t) 16 * VMFERRY_CHUNK_SIZE)
#define VMFERRY_MAX_METADATA (16 * 1024 * 1024)   /* manifest, XML */
#define VMFERRY_MAX_FILES 4096

enum vmferry_record_type {
  VMFERRY_REC_STREAM_HEADER = 1,
  VMFERRY_REC_MANIFEST = 2,      /* payload: JSON, see man page */
  VMFERRY_REC_DOMAIN_XML = 3,    /* payload: UTF-8 XML (may be F_ZSTD) */
  VMFERRY_REC_FILE_BEGIN = 4,    /* payload: u64 file size in bytes */
  VMFERRY_REC_DATA = 5,
  VMFERRY_REC_ZERO = 6,
  VMFERRY_REC_FILE_END = 7,      /* payload: 16-byte digest */
  VMFERRY_REC_END = 8,           /* payload: u64 number of files */
  /* Version 1.2, written F_SKIPPABLE: after a file's last DATA/ZERO
   * record, before its FILE_END.  Payload: u64 chunk size and the 16-byte
   * root of the file's map digest (lib/digest.h).
   */
  VMFERRY_REC_FILE_MAP = 9,
};
#define VMFERRY_FILE_MAP_SIZE 24

/* Payload is one zstd frame. */
#define VMFERRY_REC_F_ZSTD 0x0001
/* A reader that does not know this record's type may skip it; without
 * this flag an unknown type is an error.  Lets later minor versions add
 * records old readers can ignore.
 */
#define VMFERRY_REC_F_SKIPPABLE 0x8000
#define VMFERRY_REC_F_KNOWN (VMFERRY_REC_F_ZSTD | VMFERRY_REC_F_SKIPPABLE)

/* STREAM_HEADER payload (40 bytes):
 *   0  8 magic "VMFERRY\n"
 *   8  2 version major (readers refuse another major)
 *  10  2 version minor (readers accept any)
 *  12  4 reserved, 0
 *  16  8 mandatory feature bits (readers refuse any they do not know)
 *  24  8 optional feature bits (readers ignore unknown ones)
 *  32  8 reserved, 0  (room for a stream id; resume uses the manifest)
 * Readers ignore the reserved fields and any payload bytes beyond 40, so
 * a later minor version can use them.
 */
#define VMFERRY_STREAM_HEADER_SIZE 40

/* Mandatory feature RESUME (version 1.1): the stream continues an
 * interrupted import.  It omits DATA and ZERO records the receiver already
 * holds durably, so only a receiver holding the matching resume state may
 * accept it.  The header payload then carries, at bytes 40..55, the
 * 16-byte token of that state (see vmferry-stream(5)).
 */
#define VMFERRY_FEATURE_RESUME ((uint64_t) 1)
#define VMFERRY_RESUME_TOKEN_SIZE 16
/* Mandatory feature REFRESH (version 1.2): the stream refreshes a
 * standby copy (vmferry-sync).  Its files are partial: ranges no record
 * covers keep the standby's content (the manifest's files[].base names
 * it), so only a receiver holding that base may accept it.  vmferry-import
 * refuses it; vmferry-sync's receiver applies it.
 */
#define VMFERRY_FEATURE_REFRESH ((uint64_t) 2)
/* Mandatory feature GUEST (version 1.2): a file of the manifest holds
 * guest content ("content": "guest"): the virtual disk as the guest
 * reads it, taken from a running domain, not the image file's bytes.
 * A reader that does not know what that means must not place it.
 */
#define VMFERRY_FEATURE_GUEST ((uint64_t) 4)
#define VMFERRY_FEATURES_MANDATORY_KNOWN \
  (VMFERRY_FEATURE_RESUME | VMFERRY_FEATURE_REFRESH | VMFERRY_FEATURE_GUEST)

struct vmferry_record {
  uint16_t type;
  uint16_t flags;
  uint32_t file;
  uint32_t payload_len;
  uint64_t offset;
  uint64_t length;
  uint64_t seq;
  uint64_t checksum;
  /* Position of the header's first byte in the stream (for messages). */
  uint64_t stream_offset;
  /* The payload as read (compressed if F_ZSTD); owned by the reader and
   * valid until the next call.
   */
  const void *payload;
};

/* Encode/decode one header; decode checks magic, flags and bounds but not
 * the checksum (which needs the payload).
 */
void vmferry_record_encode_header (const struct vmferry_record *rec,
                                   unsigned char out[VMFERRY_REC_HEADER_SIZE]);
int
vmferry_record_decode_header (const unsigned char in[VMFERRY_REC_HEADER_SIZE],
                              struct vmferry_record *rec);
/* XXH3-64 over header bytes 0..39 and the payload. */
uint64_t
vmferry_record_checksum (const unsigned char header[VMFERRY_REC_HEADER_SIZE],
                         const void *payload, size_t len);
const char *vmferry_record_type_name (uint16_t type);

/* ---- Writing ---- */

struct vmferry_stream_writer;

/* Write to FD (not owned).  NAME names the output in error messages. */
struct vmferry_stream_writer *vmferry_stream_writer_new (int fd,
                                                         const char *name);
/* Frees; does not close the fd and does not write END. */
void vmferry_stream_writer_free (struct vmferry_stream_writer *w);

/* Write through FN instead of an fd (e.g. into an SSH channel).  FN
 * writes all of IOV or returns -1 with the error set; records are handed
 * to it whole, one call each.
 */
typedef int (*vmferry_stream_write_fn) (void *opaque, const struct iovec *iov,
                                        int iovcnt);
struct vmferry_stream_writer *
vmferry_stream_writer_new_fn (vmferry_stream_write_fn fn, void *opaque,
                              const char *name);

/* Write one record: fills in seq and checksum, writes header and payload.
 * Returns 0, or -1 with the error set (e.g. "stdout: write: Broken pipe").
 */
int vmferry_stream_write_record (struct vmferry_stream_writer *w,
                                 struct vmferry_record *rec,
                                 const void *payload);
/* Write a record as it was read (REC from vmferry_stream_read_record,
 * PAYLOAD its payload as read, compressed or not): the same type, flags,
 * file, offset, length and payload, numbered by this writer.  When the
 * writer's number equals REC's (a filter that keeps every record), the
 * bytes written are exactly the bytes read, checksum included: it is not
 * computed again.  Nothing is decompressed.
 */
int vmferry_stream_copy_record (struct vmferry_stream_writer *w,
                                const struct vmferry_record *rec,
                                const void *payload);
/* Convenience wrappers for the metadata records. */
int vmferry_stream_write_header (struct vmferry_stream_writer *w);
/* A STREAM_HEADER with feature bits and EXTRA_LEN bytes after the 40
 * defined ones (the RESUME token).
 */
int vmferry_stream_write_header_ex (struct vmferry_stream_writer *w,
                                    uint64_t mandatory, uint64_t optional,
                                    const void *extra, size_t extra_len);
int vmferry_stream_write_manifest (struct vmferry_stream_writer *w,
                                   const char *json);
int vmferry_stream_write_xml (struct vmferry_stream_writer *w, const char *xml);
int vmferry_stream_write_file_begin (struct vmferry_stream_writer *w,
                                     uint32_t file, uint64_t size);
int vmferry_stream_write_file_end (struct vmferry_stream_writer *w,
                                   uint32_t file,
                                   const unsigned char digest[16]);
/* FILE_MAP (F_SKIPPABLE): the root of the file's map digest. */
int vmferry_stream_write_file_map (struct vmferry_stream_writer *w,
                                   uint32_t file, uint64_t chunk,
                                   const unsigned char root[16]);
int vmferry_stream_write_end (struct vmferry_stream_writer *w,
                              uint32_t nr_files);
/* DATA and ZERO records.  PAYLOAD is LENGTH raw bytes (payload_len ==
 * length), or with VMFERRY_REC_F_ZSTD in FLAGS one zstd frame of
 * PAYLOAD_LEN bytes that decompresses to LENGTH (see vmferry_compress).
 */
int vmferry_stream_write_data (struct vmferry_stream_writer *w, uint32_t file,
                               uint64_t offset, uint64_t length,
                               uint16_t flags, const void *payload,
                               uint32_t payload_len);
int vmferry_stream_write_zero (struct vmferry_stream_writer *w, uint32_t file,
                               uint64_t offset, uint64_t length);
/* Bytes written so far. */
uint64_t vmferry_stream_writer_bytes (const struct vmferry_stream_writer *w);
/* Seconds spent so far in the output's calls: how long the writer has
 * waited for what comes after it (a pipe's reader, a ring's sender).
 */
double vmferry_stream_writer_wait (const struct vmferry_stream_writer *w);

/* The writer checks every record against the rules the reader enforces
 * (order, alignment, bounds) before writing it, so a caller's mistake is
 * an error here rather than a stream every reader refuses.  Records are
 * written with one writev each (no user-space buffering), so there is
 * nothing to flush: when a call returns 0 the record is in the fd.
 */

/* ---- Compression (writer side, one per worker thread) ---- */

struct vmferry_compressor;

/* A zstd context at LEVEL (zstd's levels; 0 is zstd's default).  Not
 * thread-safe: give each worker its own.  Free with
 * vmferry_compressor_free.
 */
struct vmferry_compressor *vmferry_compressor_new (int level);
void vmferry_compressor_free (struct vmferry_compressor *c);
/* Change the level for the following calls (adaptive compression). */
int vmferry_compressor_set_level (struct vmferry_compressor *c, int level);

/* Worst-case size of one frame for LEN input bytes. */
size_t vmferry_zstd_bound (size_t len);

/* The memory a compressor at LEVEL holds once it has compressed a chunk
 * (a budget's share; see send.h).
 */
size_t vmferry_compressor_memory (int level);

/* Compress IN[0..LEN) into one zstd frame with its content size set, as
 * a DATA record's payload.  Returns 1 and *LEN_RTN when that saves at
 * least 1/32 of LEN; 0 when the raw bytes should be sent instead
 * (including when the frame does not fit in CAP, so CAP == LEN is a
 * valid choice); -1 on error.
 */
int vmferry_compress (struct vmferry_compressor *c, const void *in, size_t len,
                      void *out, size_t cap, size_t *len_rtn);

/* ---- Reading ---- */

struct vmferry_stream_reader;

/* Read from FD (not owned).  NAME names the input in errors.  A signal
 * that asks to quit (quit.h) ends the input as a cut does.
 */
struct vmferry_stream_reader *vmferry_stream_reader_new (int fd,
                                                         const char *name);
void vmferry_stream_reader_free (struct vmferry_stream_reader *r);
/* Give back LEN bytes already read from the input (a look at its first
 * bytes), to be read before the rest; only before anything else was
 * read, and at most 256 KiB.  0, or -1 with the error set.
 */
int vmferry_stream_reader_unread (struct vmferry_stream_reader *r,
                                  const void *buf, size_t len);
/* The most a reader of a stream of data records holds: its input
 * buffer and a payload buffer that grows to the largest record (a
 * budget's share; see send.h).
 */
size_t vmferry_stream_reader_memory (void);

/* Read through FN instead: like read(2) but never EINTR; returns bytes
 * read (at most LEN), 0 at end of input, or -1 with the error set.
 */
typedef ssize_t (*vmferry_stream_read_fn) (void *opaque, void *buf, size_t len);
struct vmferry_stream_reader *
vmferry_stream_reader_new_fn (vmferry_stream_read_fn fn, void *opaque,
                              const char *name);

/* Read the next record into *rec.  Returns 1 for a record, 0 at a clean
 * end of input, -1 on error.  Checks: magic, known flags, payload bound,
 * checksum, seq (must be previous + 1), and that the record is legal at
 * this point of the stream (the order above; offsets increasing within a
 * file, aligned, within the file size; files in order).  Errors name the
 * input, the record number, its type and its byte offset, e.g.
 * "web01.vmf: record 17 (data) at byte 4194352: checksum mismatch".
 * Reaching the end of input before an END record is an error
 * ("truncated"), as is data after END.  Records of an unknown type with
 * VMFERRY_REC_F_SKIPPABLE are checked (checksum, seq) and skipped, not
 * returned.  After an error every further call fails.
 */
int vmferry_stream_read_record (struct vmferry_stream_reader *r,
                                struct vmferry_record *rec);

/* Decode the payload of a DATA record into OUT (rec->length bytes, which
 * the reader guarantees is at most VMFERRY_CHUNK_SIZE), decompressing
 * if needed.  Thread-safe (no reader state), so workers can call it.
 * A ZERO record fills OUT with zeros.  Errors name the record and its
 * byte offset but not the input: the caller prefixes that.
 */
int vmferry_record_data (const struct vmferry_record *rec, const void *payload,
                         void *out);

/* The text of a MANIFEST or DOMAIN_XML record (decompressed if F_ZSTD,
 * at most VMFERRY_MAX_METADATA bytes), NUL-terminated; a NUL byte inside
 * is an error.  *LEN_RTN (may be NULL) is its length.  Thread-safe.  The
 * caller frees the result.
 */
char *vmferry_record_metadata (const struct vmferry_record *rec,
                               const void *payload, size_t *len_rtn);

/* Typed payloads of the other records.  Each checks REC's type and
 * payload size (a record from the reader passes; one made by hand may
 * not) and fails with the record named, like vmferry_record_data.
 * Thread-safe.
 */
struct vmferry_stream_header {
  unsigned major, minor;
  uint64_t mandatory, optional;         /* feature bits */
  /* With VMFERRY_FEATURE_RESUME: the token of the receiver's state. */
  unsigned char token[VMFERRY_RESUME_TOKEN_SIZE];
};
/* STREAM_HEADER, checked as vmferry_stream_parse_header does. */
int vmferry_record_stream_header (const struct vmferry_record *rec,
                                  const void *payload,
                                  struct vmferry_stream_header *h);
/* FILE_BEGIN: the file's size in bytes (at most 2^63 - 1). */
int vmferry_record_file_begin (const struct vmferry_record *rec,
                               const void *payload, uint64_t *size_rtn);
/* FILE_END: the file's digest (see lib/digest.h). */
int vmferry_record_file_end (const struct vmferry_record *rec,
                             const void *payload, unsigned char digest[16]);
/* FILE_MAP: the chunk size and the root of the file's map digest. */
int vmferry_record_file_map (const struct vmferry_record *rec,
                             const void *payload, uint64_t *chunk_rtn,
                             unsigned char root[16]);
/* END: the number of files in the stream. */
int vmferry_record_end (const struct vmferry_record *rec, const void *payload,
                        uint64_t *nr_files_rtn);

/* With PASS, records of an unknown type with VMFERRY_REC_F_SKIPPABLE
 * are returned (checked like any other) instead of skipped, so that a
 * filter can copy them on.  Default: skipped.
 */
void vmferry_stream_reader_pass_skipped (struct vmferry_stream_reader *r,
                                         bool pass);

/* Do not verify record checksums: the input comes from this process's
 * own writer (e.g. a pipeline of threads), and whatever reads the stream
 * at its destination verifies them.  Everything else is still checked.
 */
void vmferry_stream_reader_trust (struct vmferry_stream_reader *r);

/* Bytes consumed from the input so far (for progress). */
uint64_t vmferry_stream_reader_bytes (const struct vmferry_stream_reader *r);

/* After a failed read: true if the input ended early or could not be
 * read (a cut transfer), false if what arrived was wrong (corruption,
 * a stream breaking the rules).  An importer keeps resume state only
 * for the first kind.
 */
bool vmferry_stream_reader_was_cut (const struct vmferry_stream_reader *r);

/* Parse a STREAM_HEADER payload; refuses another major version and
 * unknown mandatory features with a clear message.
 */
int vmferry_stream_parse_header (const void *payload, size_t len,
                                 unsigned *major_rtn, unsigned *minor_rtn);

/* The mandatory feature bits of a STREAM_HEADER payload already accepted
 * by vmferry_stream_parse_header (0 if it is too short).
 */
uint64_t vmferry_stream_header_mandatory (const void *payload, size_t len);

#endif
