/* vmferry: the native stream format, version 1 (see stream.h and
 * man/vmferry-stream.5).
 *
 * The reader treats its input as hostile: every length is bounded before
 * it is used, memory is one payload buffer (at most VMFERRY_MAX_METADATA)
 * plus a small input buffer, and the same rule checker validates records
 * on both sides, so the writer cannot produce what the reader refuses.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY   /* XXH3_state_t on the stack */
#include <xxhash.h>
#define ZSTD_STATIC_LINKING_ONLY  /* ZSTD_estimateCCtxSize_usingCParams */
#include <zstd.h>
#include <zstd_errors.h>

#include "clock.h"
#include "error.h"
#include "quit.h"
#include "stream.h"

/* Input is read in pieces of this size; larger payloads go straight into
 * the payload buffer.
 */
#define READ_BUFFER_SIZE (256 * 1024)

/* ---- Little-endian fields ---- */

static void
put_le16 (unsigned char *p, uint16_t v)
{
  p[0] = v;
  p[1] = v >> 8;
}

static void
put_le32 (unsigned char *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = v >> (8 * i);
}

static void
put_le64 (unsigned char *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = v >> (8 * i);
}

static uint16_t
get_le16 (const unsigned char *p)
{
  return p[0] | (uint16_t) p[1] << 8;
}

static uint32_t
get_le32 (const unsigned char *p)
{
  uint32_t v = 0;

  for (int i = 3; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static uint64_t
get_le64 (const unsigned char *p)
{
  uint64_t v = 0;

  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* ---- Headers ---- */

const char *
vmferry_record_type_name (uint16_t type)
{
  switch (type) {
  case VMFERRY_REC_STREAM_HEADER: return "stream-header";
  case VMFERRY_REC_MANIFEST: return "manifest";
  case VMFERRY_REC_DOMAIN_XML: return "domain-xml";
  case VMFERRY_REC_FILE_BEGIN: return "file-begin";
  case VMFERRY_REC_DATA: return "data";
  case VMFERRY_REC_ZERO: return "zero";
  case VMFERRY_REC_FILE_END: return "file-end";
  case VMFERRY_REC_END: return "end";
  case VMFERRY_REC_FILE_MAP: return "file-map";
  default: return "unknown";
  }
}

static bool
type_is_known (uint16_t type)
{
  return type >= VMFERRY_REC_STREAM_HEADER && type <= VMFERRY_REC_FILE_MAP;
}

/* "data", or "type 77" for types this version does not know. */
static const char *
type_label (uint16_t type, char *buf, size_t len)
{
  if (type_is_known (type))
    return vmferry_record_type_name (type);
  snprintf (buf, len, "type %u", (unsigned) type);
  return buf;
}

/* Metadata records may be larger than data payloads. */
static uint32_t
max_payload (uint16_t type)
{
  if (type == VMFERRY_REC_MANIFEST || type == VMFERRY_REC_DOMAIN_XML)
    return VMFERRY_MAX_METADATA;
  return VMFERRY_MAX_PAYLOAD;
}

void
vmferry_record_encode_header (const struct vmferry_record *rec,
                              unsigned char out[VMFERRY_REC_HEADER_SIZE])
{
  memcpy (out, VMFERRY_REC_MAGIC, 4);
  put_le16 (out + 4, rec->type);
  put_le16 (out + 6, rec->flags);
  put_le32 (out + 8, rec->file);
  put_le32 (out + 12, rec->payload_len);
  put_le64 (out + 16, rec->offset);
  put_le64 (out + 24, rec->length);
  put_le64 (out + 32, rec->seq);
  put_le64 (out + 40, rec->checksum);
}

/* Errors are bare ("bad magic"): the caller knows which input and record
 * and prefixes that.
 */
int
vmferry_record_decode_header (const unsigned char in[VMFERRY_REC_HEADER_SIZE],
                              struct vmferry_record *rec)
{
  memset (rec, 0, sizeof *rec);
  if (memcmp (in, VMFERRY_REC_MAGIC, 4) != 0) {
    vmferry_set_error ("bad magic (not a vmferry stream, or corrupt)");
    return -1;
  }
  rec->type = get_le16 (in + 4);
  rec->flags = get_le16 (in + 6);
  rec->file = get_le32 (in + 8);
  rec->payload_len = get_le32 (in + 12);
  rec->offset = get_le64 (in + 16);
  rec->length = get_le64 (in + 24);
  rec->seq = get_le64 (in + 32);
  rec->checksum = get_le64 (in + 40);

  if (rec->flags & ~VMFERRY_REC_F_KNOWN) {
    vmferry_set_error ("unknown record flags 0x%04x",
                       (unsigned) (rec->flags & ~VMFERRY_REC_F_KNOWN));
    return -1;
  }
  if (rec->payload_len > max_payload (rec->type)) {
    vmferry_set_error ("payload of %" PRIu32 " bytes exceeds the limit of %"
                       PRIu32, rec->payload_len, max_payload (rec->type));
    return -1;
  }
  if (rec->length > VMFERRY_MAX_RECORD_LENGTH) {
    vmferry_set_error ("length %" PRIu64 " exceeds the limit of %" PRIu64,
                       rec->length, VMFERRY_MAX_RECORD_LENGTH);
    return -1;
  }
  /* Decompressed data must fit one chunk buffer on the reading side. */
  if (rec->type == VMFERRY_REC_DATA && rec->length > VMFERRY_CHUNK_SIZE) {
    vmferry_set_error ("data length %" PRIu64 " exceeds the limit of %d",
                       rec->length, VMFERRY_CHUNK_SIZE);
    return -1;
  }
  return 0;
}

uint64_t
vmferry_record_checksum (const unsigned char header[VMFERRY_REC_HEADER_SIZE],
                         const void *payload, size_t len)
{
  XXH3_state_t state;

  XXH3_64bits_reset (&state);
  XXH3_64bits_update (&state, header, 40);
  if (len > 0)
    XXH3_64bits_update (&state, payload, len);
  return XXH3_64bits_digest (&state);
}

int
vmferry_stream_parse_header (const void *payload, size_t len,
                             unsigned *major_rtn, unsigned *minor_rtn)
{
  const unsigned char *p = payload;
  unsigned major, minor;
  uint64_t mandatory;

  if (len < VMFERRY_STREAM_HEADER_SIZE) {
    vmferry_set_error ("stream header too short (%zu bytes, expected %d)",
                       len, VMFERRY_STREAM_HEADER_SIZE);
    return -1;
  }
  if (memcmp (p, VMFERRY_STREAM_MAGIC, 8) != 0) {
    vmferry_set_error ("bad stream magic (not a vmferry stream)");
    return -1;
  }
  major = get_le16 (p + 8);
  minor = get_le16 (p + 10);
  if (major != VMFERRY_STREAM_VERSION_MAJOR) {
    vmferry_set_error ("stream format version %u.%u is not supported "
                       "(this vmferry reads version %d.x)",
                       major, minor, VMFERRY_STREAM_VERSION_MAJOR);
    return -1;
  }
  mandatory = get_le64 (p + 16);
  if (mandatory & ~VMFERRY_FEATURES_MANDATORY_KNOWN) {
    vmferry_set_error ("stream uses unknown mandatory features 0x%" PRIx64
                       " (written by a newer vmferry?)",
                       mandatory & ~VMFERRY_FEATURES_MANDATORY_KNOWN);
    return -1;
  }
  /* Optional features and reserved fields are ignored by design; the
   * payload of a RESUME stream has its token after byte 40.
   */
  if ((mandatory & VMFERRY_FEATURE_RESUME) &&
      len < VMFERRY_STREAM_HEADER_SIZE + VMFERRY_RESUME_TOKEN_SIZE) {
    vmferry_set_error ("stream header: a resumed stream without its resume "
                       "token");
    return -1;
  }
  if (major_rtn)
    *major_rtn = major;
  if (minor_rtn)
    *minor_rtn = minor;
  return 0;
}

/* ---- The rules, shared by reader and writer ---- */

enum order_state {
  ST_START,       /* expect STREAM_HEADER */
  ST_MANIFEST,    /* expect MANIFEST */
  ST_XML,         /* expect DOMAIN_XML */
  ST_FILES,       /* expect FILE_BEGIN or END */
  ST_IN_FILE,     /* expect DATA, ZERO or FILE_END */
  ST_DONE,        /* after END: nothing */
};

struct order {
  enum order_state st;
  uint32_t nr_files;    /* FILE_BEGINs seen */
  uint64_t file_size;   /* of the current file */
  uint64_t pos;         /* end of the last DATA/ZERO in the current file */
  bool map;             /* the current file's FILE_MAP was seen */
};

static const char *
expected (const struct order *o)
{
  switch (o->st) {
  case ST_START: return "the stream header";
  case ST_MANIFEST: return "the manifest";
  case ST_XML: return "the domain XML";
  case ST_FILES: return "file-begin or end";
  case ST_IN_FILE: return o->map ? "file-end" : "data, zero or file-end";
  case ST_DONE: return "nothing";
  }
  return "?";
}

/* Is REC (with its PAYLOAD, checksum and seq already verified) legal in
 * state *O?  On success updates *O and returns 1, or 0 for an unknown
 * skippable record the reader should pass over.  On failure returns -1
 * with a bare message and leaves *O unchanged.
 */
static int
check_record (struct order *o, const struct vmferry_record *rec,
              const void *payload)
{
  struct order n = *o;
  char tbuf[32];

  if (!type_is_known (rec->type)) {
    if (!(rec->flags & VMFERRY_REC_F_SKIPPABLE)) {
      vmferry_set_error ("unknown record type %u, not skippable "
                         "(written by a newer vmferry?)", (unsigned) rec->type);
      return -1;
    }
    if (o->st == ST_START || o->st == ST_DONE) {
      vmferry_set_error ("unexpected record, expected %s", expected (o));
      return -1;
    }
    return 0;
  }

  if ((rec->flags & VMFERRY_REC_F_ZSTD) &&
      rec->type != VMFERRY_REC_DATA && rec->type != VMFERRY_REC_MANIFEST &&
      rec->type != VMFERRY_REC_DOMAIN_XML) {
    vmferry_set_error ("compression flag on a %s record",
                       type_label (rec->type, tbuf, sizeof tbuf));
    return -1;
  }
  if (rec->type != VMFERRY_REC_DATA && rec->type != VMFERRY_REC_ZERO &&
      (rec->offset != 0 || rec->length != 0)) {
    vmferry_set_error ("offset and length must be 0");
    return -1;
  }
  if (rec->type < VMFERRY_REC_FILE_BEGIN || rec->type == VMFERRY_REC_END) {
    if (rec->file != 0) {
      vmferry_set_error ("file index must be 0");
      return -1;
    }
  }

  switch (rec->type) {
  case VMFERRY_REC_STREAM_HEADER:
    if (o->st != ST_START)
      goto unexpected;
    if (vmferry_stream_parse_header (payload, rec->payload_len, NULL, NULL) < 0)
      return -1;
    n.st = ST_MANIFEST;
    break;

  case VMFERRY_REC_MANIFEST:
  case VMFERRY_REC_DOMAIN_XML:
    if (o->st != (rec->type == VMFERRY_REC_MANIFEST ? ST_MANIFEST : ST_XML))
      goto unexpected;
    if (rec->payload_len == 0) {
      vmferry_set_error ("empty payload");
      return -1;
    }
    n.st = rec->type == VMFERRY_REC_MANIFEST ? ST_XML : ST_FILES;
    break;

  case VMFERRY_REC_FILE_BEGIN:
    if (o->st != ST_FILES)
      goto unexpected;
    if (rec->file != o->nr_files) {
      vmferry_set_error ("file %" PRIu32 " begins, expected file %" PRIu32,
                         rec->file, o->nr_files);
      return -1;
    }
    if (o->nr_files >= VMFERRY_MAX_FILES) {
      vmferry_set_error ("more than %d files", VMFERRY_MAX_FILES);
      return -1;
    }
    if (rec->payload_len != 8) {
      vmferry_set_error ("payload is %" PRIu32 " bytes, expected 8",
                         rec->payload_len);
      return -1;
    }
    n.file_size = get_le64 (payload);
    /* The receiver must be able to ftruncate (off_t) to it. */
    if (n.file_size > INT64_MAX) {
      vmferry_set_error ("file size %" PRIu64 " is too large", n.file_size);
      return -1;
    }
    n.nr_files++;
    n.pos = 0;
    n.map = false;
    n.st = ST_IN_FILE;
    break;

  case VMFERRY_REC_DATA:
  case VMFERRY_REC_ZERO:
    if (o->st != ST_IN_FILE || o->map)
      goto unexpected;
    if (rec->file != o->nr_files - 1) {
      vmferry_set_error ("record for file %" PRIu32 " inside file %" PRIu32,
                         rec->file, o->nr_files - 1);
      return -1;
    }
    if (rec->length == 0) {
      vmferry_set_error ("zero length");
      return -1;
    }
    if (rec->offset % VMFERRY_BLOCK_SIZE != 0) {
      vmferry_set_error ("offset %" PRIu64 " is not aligned to %d bytes",
                         rec->offset, VMFERRY_BLOCK_SIZE);
      return -1;
    }
    if (rec->offset < o->pos) {
      vmferry_set_error ("offset %" PRIu64 " goes back before %" PRIu64
                         " (records must not overlap or go backwards)",
                         rec->offset, o->pos);
      return -1;
    }
    /* Written this way round so that it cannot overflow. */
    if (rec->length > o->file_size ||
        rec->offset > o->file_size - rec->length) {
      vmferry_set_error ("range %" PRIu64 "+%" PRIu64
                         " goes beyond the file size %" PRIu64,
                         rec->offset, rec->length, o->file_size);
      return -1;
    }
    if (rec->length % VMFERRY_BLOCK_SIZE != 0 &&
        rec->offset + rec->length != o->file_size) {
      vmferry_set_error ("length %" PRIu64 " is not a multiple of %d bytes "
                         "and does not end at the end of the file",
                         rec->length, VMFERRY_BLOCK_SIZE);
      return -1;
    }
    if (rec->type == VMFERRY_REC_ZERO && rec->payload_len != 0) {
      vmferry_set_error ("zero record with a payload");
      return -1;
    }
    if (rec->type == VMFERRY_REC_DATA) {
      if (rec->flags & VMFERRY_REC_F_ZSTD) {
        if (rec->payload_len == 0) {
          vmferry_set_error ("empty compressed payload");
          return -1;
        }
      }
      else if (rec->payload_len != rec->length) {
        vmferry_set_error ("payload is %" PRIu32 " bytes, length is %" PRIu64,
                           rec->payload_len, rec->length);
        return -1;
      }
    }
    n.pos = rec->offset + rec->length;
    break;

  case VMFERRY_REC_FILE_END:
    if (o->st != ST_IN_FILE)
      goto unexpected;
    if (rec->file != o->nr_files - 1) {
      vmferry_set_error ("end of file %" PRIu32 " inside file %" PRIu32,
                         rec->file, o->nr_files - 1);
      return -1;
    }
    if (rec->payload_len != 16) {
      vmferry_set_error ("payload is %" PRIu32 " bytes, expected 16",
                         rec->payload_len);
      return -1;
    }
    n.st = ST_FILES;
    break;

  case VMFERRY_REC_FILE_MAP:
    if (o->st != ST_IN_FILE || o->map)
      goto unexpected;
    if (rec->file != o->nr_files - 1) {
      vmferry_set_error ("map of file %" PRIu32 " inside file %" PRIu32,
                         rec->file, o->nr_files - 1);
      return -1;
    }
    if (rec->payload_len != VMFERRY_FILE_MAP_SIZE) {
      vmferry_set_error ("payload is %" PRIu32 " bytes, expected %d",
                         rec->payload_len, VMFERRY_FILE_MAP_SIZE);
      return -1;
    }
    if (get_le64 (payload) == 0 ||
        get_le64 (payload) % VMFERRY_BLOCK_SIZE != 0) {
      vmferry_set_error ("map chunk size %" PRIu64 " is not a multiple of %d "
                         "bytes", get_le64 (payload), VMFERRY_BLOCK_SIZE);
      return -1;
    }
    n.map = true;
    break;

  case VMFERRY_REC_END:
    if (o->st != ST_FILES)
      goto unexpected;
    if (rec->payload_len != 8) {
      vmferry_set_error ("payload is %" PRIu32 " bytes, expected 8",
                         rec->payload_len);
      return -1;
    }
    if (get_le64 (payload) != o->nr_files) {
      vmferry_set_error ("end record counts %" PRIu64 " files, the stream "
                         "has %" PRIu32, get_le64 (payload), o->nr_files);
      return -1;
    }
    n.st = ST_DONE;
    break;
  }

  *o = n;
  return 1;

 unexpected:
  vmferry_set_error ("unexpected record, expected %s", expected (o));
  return -1;
}

uint64_t
vmferry_stream_header_mandatory (const void *payload, size_t len)
{
  if (len < VMFERRY_STREAM_HEADER_SIZE)
    return 0;
  return get_le64 ((const unsigned char *) payload + 16);
}

/* ---- Writing ---- */

struct vmferry_stream_writer {
  int fd;
  vmferry_stream_write_fn fn;   /* instead of fd, when set */
  void *fn_opaque;
  char *name;
  uint64_t bytes;
  uint64_t seq;
  struct order order;
  double out_seconds;           /* spent in the output's calls */
  /* After a failed write the fd holds part of a record: nothing more may
   * be written.
   */
  bool broken;
};

/* A pipe moves 64 KiB per system call by default; records are up to
 * 4 MiB.  A larger pipe buffer cuts the context switches between the
 * tools of a pipeline.  Best effort: the limit (pipe-max-size) may refuse.
 */
static void
widen_pipe (int fd)
{
  struct stat st;

  if (fstat (fd, &st) == 0 && S_ISFIFO (st.st_mode))
    fcntl (fd, F_SETPIPE_SZ, 1024 * 1024);
}

struct vmferry_stream_writer *
vmferry_stream_writer_new (int fd, const char *name)
{
  struct vmferry_stream_writer *w = calloc (1, sizeof *w);

  if (w == NULL || (w->name = strdup (name)) == NULL) {
    vmferry_set_error_errno (errno, "%s: calloc", name);
    free (w);
    return NULL;
  }
  w->fd = fd;
  widen_pipe (fd);
  return w;
}

struct vmferry_stream_writer *
vmferry_stream_writer_new_fn (vmferry_stream_write_fn fn, void *opaque,
                              const char *name)
{
  struct vmferry_stream_writer *w = calloc (1, sizeof *w);

  if (w == NULL || (w->name = strdup (name)) == NULL) {
    vmferry_set_error_errno (errno, "%s: calloc", name);
    free (w);
    return NULL;
  }
  w->fd = -1;
  w->fn = fn;
  w->fn_opaque = opaque;
  return w;
}

void
vmferry_stream_writer_free (struct vmferry_stream_writer *w)
{
  if (w == NULL)
    return;
  free (w->name);
  free (w);
}

uint64_t
vmferry_stream_writer_bytes (const struct vmferry_stream_writer *w)
{
  return w->bytes;
}

double
vmferry_stream_writer_wait (const struct vmferry_stream_writer *w)
{
  return w->out_seconds;
}

/* Write all of IOV, through EINTR, partial writes and a non-blocking fd
 * (an SSH channel may be one).
 */
static int
writev_all (int fd, const char *name, struct iovec *iov, int iovcnt)
{
  while (iovcnt > 0) {
    ssize_t r = writev (fd, iov, iovcnt);

    if (r < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        if (poll (&pfd, 1, -1) < 0 && errno != EINTR) {
          vmferry_set_error_errno (errno, "%s: poll", name);
          return -1;
        }
        continue;
      }
      vmferry_set_error_errno (errno, "%s: write", name);
      return -1;
    }
    while (iovcnt > 0 && (size_t) r >= iov->iov_len) {
      r -= iov->iov_len;
      iov++;
      iovcnt--;
    }
    if (iovcnt > 0) {
      iov->iov_base = (char *) iov->iov_base + r;
      iov->iov_len -= r;
    }
  }
  return 0;
}

/* Write REC with PAYLOAD, numbered by W.  With KEEP_CHECKSUM the record
 * keeps REC's checksum instead of a computed one (a copy with the same
 * number: the same bytes).
 */
static int
write_record (struct vmferry_stream_writer *w, struct vmferry_record *rec,
              const void *payload, bool keep_checksum)
{
  uint64_t checksum = rec->checksum;
  unsigned char hdr[VMFERRY_REC_HEADER_SIZE];
  struct vmferry_record check;
  struct iovec iov[2];
  int iovcnt;
  char tbuf[32];
  double t;

  if (w->broken) {
    vmferry_set_error ("%s: cannot write after an earlier write error",
                       w->name);
    return -1;
  }
  rec->seq = w->seq;
  rec->checksum = 0;
  rec->stream_offset = w->bytes;
  rec->payload = payload;

  /* Decoding what we encoded applies the reader's header checks. */
  vmferry_record_encode_header (rec, hdr);
  if (vmferry_record_decode_header (hdr, &check) < 0 ||
      check_record (&w->order, rec, payload) < 0) {
    vmferry_prefix_error ("%s: record %" PRIu64 " (%s): refusing to write",
                          w->name, rec->seq,
                          type_label (rec->type, tbuf, sizeof tbuf));
    return -1;
  }
  rec->checksum = keep_checksum
    ? checksum : vmferry_record_checksum (hdr, payload, rec->payload_len);
  put_le64 (hdr + 40, rec->checksum);

  iov[0].iov_base = hdr;
  iov[0].iov_len = sizeof hdr;
  iov[1].iov_base = (void *) payload;
  iov[1].iov_len = rec->payload_len;
  iovcnt = rec->payload_len > 0 ? 2 : 1;
  t = vmferry_monotonic ();
  if (w->fn ? w->fn (w->fn_opaque, iov, iovcnt) < 0
            : writev_all (w->fd, w->name, iov, iovcnt) < 0) {
    w->broken = true;
    return -1;
  }
  w->out_seconds += vmferry_monotonic () - t;
  w->bytes += sizeof hdr + rec->payload_len;
  w->seq++;
  return 0;
}

int
vmferry_stream_write_record (struct vmferry_stream_writer *w,
                             struct vmferry_record *rec,
                             const void *payload)
{
  return write_record (w, rec, payload, false);
}

int
vmferry_stream_copy_record (struct vmferry_stream_writer *w,
                            const struct vmferry_record *rec,
                            const void *payload)
{
  struct vmferry_record copy = {
    .type = rec->type, .flags = rec->flags, .file = rec->file,
    .payload_len = rec->payload_len, .offset = rec->offset,
    .length = rec->length, .checksum = rec->checksum,
  };

  /* Same fields, same number, same payload: the same bytes, so the
   * checksum read (verified by the reader, or by the stream's next
   * reader when this one trusts its input) is the checksum to write.
   */
  return write_record (w, &copy, payload, rec->seq == w->seq);
}

/* A record with only type, file and payload set. */
static int
write_simple (struct vmferry_stream_writer *w, uint16_t type, uint32_t file,
              const void *payload, size_t len)
{
  struct vmferry_record rec = { .type = type, .file = file };

  if (len > UINT32_MAX) {
    vmferry_set_error ("%s: %s record of %zu bytes is too large", w->name,
                       vmferry_record_type_name (type), len);
    return -1;
  }
  rec.payload_len = len;
  return vmferry_stream_write_record (w, &rec, payload);
}

int
vmferry_stream_write_header (struct vmferry_stream_writer *w)
{
  unsigned char p[VMFERRY_STREAM_HEADER_SIZE] = { 0 };

  memcpy (p, VMFERRY_STREAM_MAGIC, 8);
  put_le16 (p + 8, VMFERRY_STREAM_VERSION_MAJOR);
  put_le16 (p + 10, VMFERRY_STREAM_VERSION_MINOR);
  return write_simple (w, VMFERRY_REC_STREAM_HEADER, 0, p, sizeof p);
}

int
vmferry_stream_write_header_ex (struct vmferry_stream_writer *w,
                                uint64_t mandatory, uint64_t optional,
                                const void *extra, size_t extra_len)
{
  unsigned char p[VMFERRY_STREAM_HEADER_SIZE + 64] = { 0 };

  if (extra_len > 64) {
    vmferry_set_error ("%s: stream header extension too long", w->name);
    return -1;
  }
  memcpy (p, VMFERRY_STREAM_MAGIC, 8);
  put_le16 (p + 8, VMFERRY_STREAM_VERSION_MAJOR);
  /* RESUME came with 1.1, GUEST with 1.2. */
  put_le16 (p + 10, mandatory & VMFERRY_FEATURE_GUEST ? 2
            : mandatory & VMFERRY_FEATURE_RESUME ? 1
            : VMFERRY_STREAM_VERSION_MINOR);
  put_le64 (p + 16, mandatory);
  put_le64 (p + 24, optional);
  if (extra_len)
    memcpy (p + VMFERRY_STREAM_HEADER_SIZE, extra, extra_len);
  return write_simple (w, VMFERRY_REC_STREAM_HEADER, 0, p,
                       VMFERRY_STREAM_HEADER_SIZE + extra_len);
}

int
vmferry_stream_write_manifest (struct vmferry_stream_writer *w,
                               const char *json)
{
  return write_simple (w, VMFERRY_REC_MANIFEST, 0, json, strlen (json));
}

int
vmferry_stream_write_xml (struct vmferry_stream_writer *w, const char *xml)
{
  return write_simple (w, VMFERRY_REC_DOMAIN_XML, 0, xml, strlen (xml));
}

int
vmferry_stream_write_file_begin (struct vmferry_stream_writer *w,
                                 uint32_t file, uint64_t size)
{
  unsigned char p[8];

  put_le64 (p, size);
  return write_simple (w, VMFERRY_REC_FILE_BEGIN, file, p, sizeof p);
}

int
vmferry_stream_write_file_end (struct vmferry_stream_writer *w,
                               uint32_t file, const unsigned char digest[16])
{
  return write_simple (w, VMFERRY_REC_FILE_END, file, digest, 16);
}

int
vmferry_stream_write_file_map (struct vmferry_stream_writer *w, uint32_t file,
                               uint64_t chunk, const unsigned char root[16])
{
  struct vmferry_record rec = {
    .type = VMFERRY_REC_FILE_MAP, .flags = VMFERRY_REC_F_SKIPPABLE,
    .file = file, .payload_len = VMFERRY_FILE_MAP_SIZE,
  };
  unsigned char p[VMFERRY_FILE_MAP_SIZE];

  put_le64 (p, chunk);
  memcpy (p + 8, root, 16);
  return vmferry_stream_write_record (w, &rec, p);
}

int
vmferry_stream_write_end (struct vmferry_stream_writer *w, uint32_t nr_files)
{
  unsigned char p[8];

  put_le64 (p, nr_files);
  return write_simple (w, VMFERRY_REC_END, 0, p, sizeof p);
}

int
vmferry_stream_write_data (struct vmferry_stream_writer *w, uint32_t file,
                           uint64_t offset, uint64_t length, uint16_t flags,
                           const void *payload, uint32_t payload_len)
{
  struct vmferry_record rec = {
    .type = VMFERRY_REC_DATA, .flags = flags, .file = file,
    .payload_len = payload_len, .offset = offset, .length = length,
  };

  return vmferry_stream_write_record (w, &rec, payload);
}

int
vmferry_stream_write_zero (struct vmferry_stream_writer *w, uint32_t file,
                           uint64_t offset, uint64_t length)
{
  struct vmferry_record rec = {
    .type = VMFERRY_REC_ZERO, .file = file, .offset = offset, .length = length,
  };

  return vmferry_stream_write_record (w, &rec, NULL);
}

/* ---- Reading ---- */

struct vmferry_stream_reader {
  int fd;                       /* or: */
  vmferry_stream_read_fn fn;
  void *opaque;
  char *name;
  unsigned char *in;            /* READ_BUFFER_SIZE bytes */
  size_t in_pos, in_end;        /* unconsumed bytes: in[in_pos..in_end) */
  unsigned char *payload;       /* reused for every record */
  size_t payload_cap;
  uint64_t offset;              /* bytes consumed */
  uint64_t seq;                 /* number of the next record */
  struct order order;
  bool failed;
  bool cut;                     /* the failure was end of input or EIO */
  bool pass_skipped;            /* return unknown skippable records */
  bool trusted;                 /* checksums not verified */
};

struct vmferry_stream_reader *
vmferry_stream_reader_new (int fd, const char *name)
{
  struct vmferry_stream_reader *r = calloc (1, sizeof *r);

  if (r == NULL || (r->name = strdup (name)) == NULL ||
      (r->in = malloc (READ_BUFFER_SIZE)) == NULL) {
    vmferry_set_error_errno (errno, "%s: malloc", name);
    vmferry_stream_reader_free (r);
    return NULL;
  }
  r->fd = fd;
  widen_pipe (fd);
  return r;
}

struct vmferry_stream_reader *
vmferry_stream_reader_new_fn (vmferry_stream_read_fn fn, void *opaque,
                              const char *name)
{
  struct vmferry_stream_reader *r = vmferry_stream_reader_new (-1, name);

  if (r) {
    r->fn = fn;
    r->opaque = opaque;
  }
  return r;
}

int
vmferry_stream_reader_unread (struct vmferry_stream_reader *r,
                              const void *buf, size_t len)
{
  if (r->offset != 0 || r->in_end != 0 || len > READ_BUFFER_SIZE) {
    vmferry_set_error ("%s: cannot give back %zu bytes", r->name, len);
    return -1;
  }
  memcpy (r->in, buf, len);
  r->in_pos = 0;
  r->in_end = len;
  return 0;
}

void
vmferry_stream_reader_free (struct vmferry_stream_reader *r)
{
  if (r == NULL)
    return;
  free (r->name);
  free (r->in);
  free (r->payload);
  free (r);
}

size_t
vmferry_stream_reader_memory (void)
{
  return READ_BUFFER_SIZE + VMFERRY_MAX_PAYLOAD;
}

uint64_t
vmferry_stream_reader_bytes (const struct vmferry_stream_reader *r)
{
  return r->offset;
}

void
vmferry_stream_reader_pass_skipped (struct vmferry_stream_reader *r, bool pass)
{
  r->pass_skipped = pass;
}

void
vmferry_stream_reader_trust (struct vmferry_stream_reader *r)
{
  r->trusted = true;
}

bool
vmferry_stream_reader_was_cut (const struct vmferry_stream_reader *r)
{
  return r->failed && r->cut;
}

/* One read(2) into BUF, through EINTR and a non-blocking fd; a signal
 * that asks to quit (quit.h) reads as the end of input, a cut.  Returns
 * bytes read, 0 at end of input, -1 on error.
 */
static ssize_t
read_some (struct vmferry_stream_reader *r, void *buf, size_t len)
{
  ssize_t n = r->fn ? r->fn (r->opaque, buf, len)
                    : vmferry_quit_read (r->fd, buf, len);

  if (n < 0)
    vmferry_prefix_error ("%s", r->name);
  return n;
}

/* Read up to LEN bytes into DST.  Returns how many; less than LEN only at
 * end of input.  -1 on error.
 */
static ssize_t
read_full (struct vmferry_stream_reader *r, void *dst, size_t len)
{
  unsigned char *d = dst;
  size_t got = 0;

  while (got < len) {
    size_t avail = r->in_end - r->in_pos;
    ssize_t n;

    if (avail > 0) {
      size_t k = avail < len - got ? avail : len - got;
      memcpy (d + got, r->in + r->in_pos, k);
      r->in_pos += k;
      got += k;
      continue;
    }
    /* Large reads bypass the buffer to save a copy. */
    if (len - got >= READ_BUFFER_SIZE) {
      n = read_some (r, d + got, len - got);
      if (n < 0)
        return -1;
      if (n == 0)
        break;
      got += n;
      continue;
    }
    n = read_some (r, r->in, READ_BUFFER_SIZE);
    if (n < 0)
      return -1;
    if (n == 0)
      break;
    r->in_pos = 0;
    r->in_end = n;
  }
  r->offset += got;
  return got;
}

/* Fail with "NAME: record N (TYPE) at byte X: " before the current
 * message.  TYPE is omitted when the header could not be decoded.
 */
static int
reader_fail (struct vmferry_stream_reader *r, const struct vmferry_record *rec,
             uint64_t at)
{
  char tbuf[32];

  if (rec)
    vmferry_prefix_error ("%s: record %" PRIu64 " (%s) at byte %" PRIu64,
                          r->name, r->seq,
                          type_label (rec->type, tbuf, sizeof tbuf), at);
  else
    vmferry_prefix_error ("%s: record %" PRIu64 " at byte %" PRIu64,
                          r->name, r->seq, at);
  r->failed = true;
  return -1;
}

static int
grow_payload (struct vmferry_stream_reader *r, size_t len)
{
  size_t cap;
  void *p;

  if (len <= r->payload_cap)
    return 0;
  /* Grow geometrically but never past the largest legal payload. */
  cap = r->payload_cap * 2;
  if (cap < len)
    cap = len;
  if (cap < 64 * 1024)
    cap = 64 * 1024;
  if (cap > VMFERRY_MAX_METADATA)
    cap = VMFERRY_MAX_METADATA;
  /* Nor, for data, past a DATA record's largest: doubling a 3 MiB
   * buffer would hold 6 MiB for ever (vmferry_stream_reader_memory).
   */
  if (cap > VMFERRY_MAX_PAYLOAD && len <= VMFERRY_MAX_PAYLOAD)
    cap = VMFERRY_MAX_PAYLOAD;
  p = realloc (r->payload, cap);
  if (p == NULL) {
    vmferry_set_error_errno (errno, "malloc (%zu bytes)", cap);
    return -1;
  }
  r->payload = p;
  r->payload_cap = cap;
  return 0;
}

int
vmferry_stream_read_record (struct vmferry_stream_reader *r,
                            struct vmferry_record *rec)
{
  static const unsigned char empty[1];

  if (r->failed) {
    vmferry_set_error ("%s: cannot continue after an earlier error", r->name);
    return -1;
  }

  for (;;) {
    unsigned char hdr[VMFERRY_REC_HEADER_SIZE];
    uint64_t at = r->offset;
    ssize_t n;
    int ok;

    n = read_full (r, hdr, sizeof hdr);
    if (n < 0) {
      r->cut = true;
      return reader_fail (r, NULL, at);
    }
    if (r->order.st == ST_DONE) {
      if (n == 0)
        return 0;
      vmferry_set_error ("trailing data after the END record");
      return reader_fail (r, NULL, at);
    }
    if (n == 0) {
      r->cut = at > 0;
      if (at == 0)
        vmferry_set_error ("truncated: empty input");
      else
        vmferry_set_error ("truncated: end of input before the END record");
      return reader_fail (r, NULL, at);
    }
    if ((size_t) n < sizeof hdr) {
      r->cut = true;
      vmferry_set_error ("truncated: end of input inside the record header "
                         "(%zd of %d bytes)", n, VMFERRY_REC_HEADER_SIZE);
      return reader_fail (r, NULL, at);
    }
    if (vmferry_record_decode_header (hdr, rec) < 0) {
      /* After bad magic nothing in the header means anything. */
      return reader_fail (r,
                          memcmp (hdr, VMFERRY_REC_MAGIC, 4) == 0 ? rec : NULL,
                          at);
    }
    rec->stream_offset = at;

    if (grow_payload (r, rec->payload_len) < 0)
      return reader_fail (r, rec, at);
    n = read_full (r, r->payload, rec->payload_len);
    if (n < 0) {
      r->cut = true;
      return reader_fail (r, rec, at);
    }
    if ((size_t) n < rec->payload_len) {
      r->cut = true;
      vmferry_set_error ("truncated: end of input inside the payload "
                         "(%zd of %" PRIu32 " bytes)", n, rec->payload_len);
      return reader_fail (r, rec, at);
    }
    rec->payload = rec->payload_len > 0 ? r->payload : empty;

    if (!r->trusted &&
        vmferry_record_checksum (hdr, rec->payload, rec->payload_len) !=
            rec->checksum) {
      vmferry_set_error ("checksum mismatch");
      return reader_fail (r, rec, at);
    }
    if (rec->seq != r->seq) {
      vmferry_set_error ("record carries number %" PRIu64 ", expected %" PRIu64
                         " (records lost, repeated or reordered)",
                         rec->seq, r->seq);
      return reader_fail (r, rec, at);
    }
    ok = check_record (&r->order, rec, rec->payload);
    if (ok < 0)
      return reader_fail (r, rec, at);
    r->seq++;
    if (ok == 1 || r->pass_skipped)
      return 1;
    /* An unknown skippable record: verified, now passed over. */
  }
}

/* ---- Payload decoding (thread-safe) ---- */

static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;
static int dctx_key_err;

static void
free_dctx (void *p)
{
  ZSTD_freeDCtx (p);
}

static void
make_dctx_key (void)
{
  dctx_key_err = pthread_key_create (&dctx_key, free_dctx);
}

/* The calling thread's decompression context, created on first use and
 * freed when the thread exits: workers decompress many records and a
 * context costs an allocation of about 100 KiB.
 */
static ZSTD_DCtx *
thread_dctx (void)
{
  ZSTD_DCtx *dctx;

  pthread_once (&dctx_once, make_dctx_key);
  if (dctx_key_err != 0) {
    vmferry_set_error_errno (dctx_key_err, "pthread_key_create");
    return NULL;
  }
  dctx = pthread_getspecific (dctx_key);
  if (dctx == NULL) {
    dctx = ZSTD_createDCtx ();
    if (dctx == NULL) {
      vmferry_set_error_errno (ENOMEM, "ZSTD_createDCtx");
      return NULL;
    }
    if ((errno = pthread_setspecific (dctx_key, dctx)) != 0) {
      vmferry_set_error_errno (errno, "pthread_setspecific");
      ZSTD_freeDCtx (dctx);
      return NULL;
    }
  }
  return dctx;
}

/* Decompress one frame of LEN bytes that must hold exactly WANT bytes
 * (which the caller has bounded) into OUT.  Errors are bare.
 */
static int
decompress_exact (const void *payload, size_t len, void *out, size_t want)
{
  unsigned long long content;
  ZSTD_DCtx *dctx;
  size_t n;

  content = ZSTD_getFrameContentSize (payload, len);
  if (content == ZSTD_CONTENTSIZE_ERROR) {
    vmferry_set_error ("compressed payload is not a zstd frame");
    return -1;
  }
  if (content == ZSTD_CONTENTSIZE_UNKNOWN) {
    vmferry_set_error ("zstd frame does not declare its content size");
    return -1;
  }
  if (content != want) {
    vmferry_set_error ("zstd frame holds %llu bytes, expected %zu",
                       content, want);
    return -1;
  }
  /* Exactly one frame, no trailing bytes or second frame. */
  n = ZSTD_findFrameCompressedSize (payload, len);
  if (ZSTD_isError (n) || n != len) {
    vmferry_set_error ("compressed payload is not exactly one zstd frame");
    return -1;
  }
  dctx = thread_dctx ();
  if (dctx == NULL)
    return -1;
  n = ZSTD_decompressDCtx (dctx, out, want, payload, len);
  if (ZSTD_isError (n)) {
    vmferry_set_error ("corrupt compressed data: %s", ZSTD_getErrorName (n));
    return -1;
  }
  if (n != want) {
    vmferry_set_error ("zstd frame decompressed to %zu bytes, expected %zu",
                       n, want);
    return -1;
  }
  return 0;
}

static int
record_fail (const struct vmferry_record *rec)
{
  char tbuf[32];

  vmferry_prefix_error ("record %" PRIu64 " (%s) at byte %" PRIu64,
                        rec->seq, type_label (rec->type, tbuf, sizeof tbuf),
                        rec->stream_offset);
  return -1;
}

int
vmferry_record_data (const struct vmferry_record *rec, const void *payload,
                     void *out)
{
  /* Re-checked so that a caller passing a record that did not come from
   * the reader cannot make us write past OUT.
   */
  if (rec->length > VMFERRY_MAX_RECORD_LENGTH) {
    vmferry_set_error ("length %" PRIu64 " exceeds the limit", rec->length);
    return record_fail (rec);
  }
  switch (rec->type) {
  case VMFERRY_REC_ZERO:
    memset (out, 0, rec->length);
    return 0;
  case VMFERRY_REC_DATA:
    if (rec->flags & VMFERRY_REC_F_ZSTD) {
      if (decompress_exact (payload, rec->payload_len, out, rec->length) < 0)
        return record_fail (rec);
      return 0;
    }
    if (rec->payload_len != rec->length) {
      vmferry_set_error ("payload is %" PRIu32 " bytes, length is %" PRIu64,
                         rec->payload_len, rec->length);
      return record_fail (rec);
    }
    if (out != payload)
      memcpy (out, payload, rec->length);
    return 0;
  default:
    vmferry_set_error ("not a data record");
    return record_fail (rec);
  }
}

char *
vmferry_record_metadata (const struct vmferry_record *rec, const void *payload,
                         size_t *len_rtn)
{
  size_t len = rec->payload_len;
  char *text;

  if (rec->type != VMFERRY_REC_MANIFEST &&
      rec->type != VMFERRY_REC_DOMAIN_XML) {
    vmferry_set_error ("not a metadata record");
    goto fail;
  }
  if (rec->flags & VMFERRY_REC_F_ZSTD) {
    unsigned long long content = ZSTD_getFrameContentSize (payload,
                                                           rec->payload_len);
    /* Bound the allocation by the declared size before trusting it;
     * decompress_exact explains unknown or invalid sizes.
     */
    if (content > VMFERRY_MAX_METADATA &&
        content != ZSTD_CONTENTSIZE_UNKNOWN &&
        content != ZSTD_CONTENTSIZE_ERROR) {
      vmferry_set_error ("decompresses to %llu bytes, more than the limit "
                         "of %d", content, VMFERRY_MAX_METADATA);
      goto fail;
    }
    len = content <= VMFERRY_MAX_METADATA ? content : 0;
  }

  text = malloc (len + 1);
  if (text == NULL) {
    vmferry_set_error_errno (errno, "malloc");
    goto fail;
  }
  if (rec->flags & VMFERRY_REC_F_ZSTD) {
    if (decompress_exact (payload, rec->payload_len, text, len) < 0) {
      free (text);
      goto fail;
    }
  }
  else if (len > 0)
    memcpy (text, payload, len);
  text[len] = '\0';
  if (memchr (text, '\0', len) != NULL) {
    vmferry_set_error ("text contains a NUL byte");
    free (text);
    goto fail;
  }
  if (len_rtn)
    *len_rtn = len;
  return text;

 fail:
  record_fail (rec);
  return NULL;
}

/* REC is a TYPE record with exactly LEN bytes of payload (or, with
 * AT_LEAST, LEN or more).
 */
static int
check_simple (const struct vmferry_record *rec, uint16_t type, size_t len,
              bool at_least)
{
  char tbuf[32];

  if (rec->type != type) {
    vmferry_set_error ("not a %s record", type_label (type, tbuf, sizeof tbuf));
    return record_fail (rec);
  }
  if (at_least ? rec->payload_len < len : rec->payload_len != len) {
    vmferry_set_error ("payload is %" PRIu32 " bytes, expected %s%zu",
                       rec->payload_len, at_least ? "at least " : "", len);
    return record_fail (rec);
  }
  return 0;
}

int
vmferry_record_stream_header (const struct vmferry_record *rec,
                              const void *payload,
                              struct vmferry_stream_header *h)
{
  const unsigned char *p = payload;

  if (check_simple (rec, VMFERRY_REC_STREAM_HEADER,
                    VMFERRY_STREAM_HEADER_SIZE, true) < 0)
    return -1;
  if (vmferry_stream_parse_header (payload, rec->payload_len, &h->major,
                                   &h->minor) < 0)
    return record_fail (rec);
  h->mandatory = get_le64 (p + 16);
  h->optional = get_le64 (p + 24);
  memset (h->token, 0, sizeof h->token);
  /* parse_header refuses RESUME without its token. */
  if (h->mandatory & VMFERRY_FEATURE_RESUME)
    memcpy (h->token, p + VMFERRY_STREAM_HEADER_SIZE, sizeof h->token);
  return 0;
}

int
vmferry_record_file_begin (const struct vmferry_record *rec,
                           const void *payload, uint64_t *size_rtn)
{
  uint64_t size;

  if (check_simple (rec, VMFERRY_REC_FILE_BEGIN, 8, false) < 0)
    return -1;
  size = get_le64 (payload);
  if (size > INT64_MAX) {
    vmferry_set_error ("file size %" PRIu64 " is too large", size);
    return record_fail (rec);
  }
  *size_rtn = size;
  return 0;
}

int
vmferry_record_file_end (const struct vmferry_record *rec,
                         const void *payload, unsigned char digest[16])
{
  if (check_simple (rec, VMFERRY_REC_FILE_END, 16, false) < 0)
    return -1;
  memcpy (digest, payload, 16);
  return 0;
}

int
vmferry_record_file_map (const struct vmferry_record *rec,
                         const void *payload, uint64_t *chunk_rtn,
                         unsigned char root[16])
{
  if (check_simple (rec, VMFERRY_REC_FILE_MAP, VMFERRY_FILE_MAP_SIZE,
                    false) < 0)
    return -1;
  *chunk_rtn = get_le64 (payload);
  memcpy (root, (const unsigned char *) payload + 8, 16);
  return 0;
}

int
vmferry_record_end (const struct vmferry_record *rec, const void *payload,
                    uint64_t *nr_files_rtn)
{
  if (check_simple (rec, VMFERRY_REC_END, 8, false) < 0)
    return -1;
  *nr_files_rtn = get_le64 (payload);
  return 0;
}

/* ---- Compression ---- */

struct vmferry_compressor {
  ZSTD_CCtx *cctx;
};

static int
set_level (ZSTD_CCtx *cctx, int level)
{
  size_t r;

  if (level < ZSTD_minCLevel () || level > ZSTD_maxCLevel ()) {
    vmferry_set_error ("zstd: compression level %d is out of range (%d..%d)",
                       level, ZSTD_minCLevel (), ZSTD_maxCLevel ());
    return -1;
  }
  r = ZSTD_CCtx_setParameter (cctx, ZSTD_c_compressionLevel, level);
  if (ZSTD_isError (r)) {
    vmferry_set_error ("zstd: level %d: %s", level, ZSTD_getErrorName (r));
    return -1;
  }
  return 0;
}

struct vmferry_compressor *
vmferry_compressor_new (int level)
{
  struct vmferry_compressor *c = calloc (1, sizeof *c);
  size_t r;

  if (c == NULL) {
    vmferry_set_error_errno (errno, "calloc");
    return NULL;
  }
  c->cctx = ZSTD_createCCtx ();
  if (c->cctx == NULL) {
    vmferry_set_error_errno (ENOMEM, "ZSTD_createCCtx");
    free (c);
    return NULL;
  }
  /* The record checksum covers the payload, so zstd's own is redundant;
   * the content size is required by the format.
   */
  r = ZSTD_CCtx_setParameter (c->cctx, ZSTD_c_contentSizeFlag, 1);
  if (!ZSTD_isError (r))
    r = ZSTD_CCtx_setParameter (c->cctx, ZSTD_c_checksumFlag, 0);
  if (ZSTD_isError (r)) {
    vmferry_set_error ("zstd: %s", ZSTD_getErrorName (r));
    vmferry_compressor_free (c);
    return NULL;
  }
  if (set_level (c->cctx, level) < 0) {
    vmferry_compressor_free (c);
    return NULL;
  }
  return c;
}

void
vmferry_compressor_free (struct vmferry_compressor *c)
{
  if (c == NULL)
    return;
  ZSTD_freeCCtx (c->cctx);
  free (c);
}

int
vmferry_compressor_set_level (struct vmferry_compressor *c, int level)
{
  return set_level (c->cctx, level);
}

size_t
vmferry_zstd_bound (size_t len)
{
  return ZSTD_compressBound (len);
}

size_t
vmferry_compressor_memory (int level)
{
  /* What ZSTD_compress2 allocates for a chunk at LEVEL: zstd sizes its
   * tables by the content size it is told (measured: exact).
   */
  ZSTD_compressionParameters cp = ZSTD_getCParams (level, VMFERRY_CHUNK_SIZE,
                                                   0);

  return ZSTD_estimateCCtxSize_usingCParams (cp);
}

int
vmferry_compress (struct vmferry_compressor *c, const void *in, size_t len,
                  void *out, size_t cap, size_t *len_rtn)
{
  size_t n;

  if (len == 0)
    return 0;
  n = ZSTD_compress2 (c->cctx, out, cap, in, len);
  if (ZSTD_isError (n)) {
    if (ZSTD_getErrorCode (n) == ZSTD_error_dstSize_tooSmall)
      return 0;
    vmferry_set_error ("zstd: compress: %s", ZSTD_getErrorName (n));
    return -1;
  }
  /* A frame that saves little still costs the receiver a decompression. */
  if (n > len - len / 32)
    return 0;
  *len_rtn = n;
  return 1;
}
