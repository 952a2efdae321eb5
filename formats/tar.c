/* vmferry: the tar archive, written and read through libarchive (see
 * tar.h).
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "cleanup-libc.h"
#include "error.h"
#include "hex.h"
#include "iszero.h"
#include "manifest.h"
#include "names.h"
#include "quit.h"
#include "stream.h"
#include "tar.h"

#define ENTRY_MODE 0600
/* Holes and zero runs are handed to libarchive from this, a piece at a
 * time (it skips what the sparse map says is a hole).
 */
#define ZEROS_SIZE (1024 * 1024)
static const unsigned char zeros[ZEROS_SIZE];

/* The top directory: the domain's name when it is a safe component. */
static const char *
top_dir (const struct vmferry_manifest *m)
{
  return m->domain_name && vmferry_name_ok (m->domain_name, 0)
    ? m->domain_name : "domain";
}

/* ---- Writing ---- */

struct vmferry_tar_writer {
  struct archive *a;
  char *name;
  struct vmferry_manifest *m;
  char *manifest_text;          /* kept until the XML is written */
  size_t manifest_len;
  struct vmferry_tar_extent *map;       /* of the next FILE_BEGIN */
  size_t map_len;
  uint32_t map_file;
  bool map_set;
  size_t map_at;                /* the extent the file's data is in */
  uint64_t pos, size;           /* in the current file */
  uint32_t file;
  unsigned char *payload;       /* a record's payload, gathered */
  unsigned char *data;          /* a DATA payload decompressed */
  bool failed;
};

static int
tar_fail (struct vmferry_tar_writer *t, const char *what)
{
  vmferry_set_error ("%s: %s: %s", t->name, what,
                     archive_error_string (t->a) ? archive_error_string (t->a)
                                                 : "libarchive failed");
  t->failed = true;
  return -1;
}

struct vmferry_tar_writer *
vmferry_tar_writer_new (int fd, const char *name, bool zstd, int level,
                        unsigned threads)
{
  struct vmferry_tar_writer *t = calloc (1, sizeof *t);
  char opt[32];

  if (t == NULL || (t->name = strdup (name)) == NULL ||
      (t->a = archive_write_new ()) == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", name);
    vmferry_tar_writer_free (t);
    return NULL;
  }
  /* pax is libarchive's only writer of sparse entries. */
  if (archive_write_set_format_pax_restricted (t->a) != ARCHIVE_OK)
    goto fail;
  if (zstd) {
    if (archive_write_add_filter_zstd (t->a) != ARCHIVE_OK)
      goto fail;
    snprintf (opt, sizeof opt, "%d", level);
    if (archive_write_set_filter_option (t->a, "zstd", "compression-level",
                                         opt) != ARCHIVE_OK)
      goto fail;
    snprintf (opt, sizeof opt, "%u", threads ? threads : 1);
    if (archive_write_set_filter_option (t->a, "zstd", "threads",
                                         opt) != ARCHIVE_OK)
      goto fail;
  }
  /* No padding of the last block to 10 KiB beyond what tar needs. */
  if (archive_write_set_bytes_per_block (t->a, 64 * 1024) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block (t->a, 1) != ARCHIVE_OK ||
      archive_write_open_fd (t->a, fd) != ARCHIVE_OK)
    goto fail;
  return t;
 fail:
  tar_fail (t, "cannot start the archive");
  vmferry_tar_writer_free (t);
  return NULL;
}

void
vmferry_tar_writer_free (struct vmferry_tar_writer *t)
{
  if (t == NULL)
    return;
  if (t->a)
    archive_write_free (t->a);
  vmferry_manifest_free (t->m);
  free (t->manifest_text);
  free (t->map);
  free (t->payload);
  free (t->data);
  free (t->name);
  free (t);
}

uint64_t
vmferry_tar_writer_bytes (const struct vmferry_tar_writer *t)
{
  int64_t n = archive_filter_bytes (t->a, -1);
  return n > 0 ? (uint64_t) n : 0;
}

int
vmferry_tar_writer_map (struct vmferry_tar_writer *t, uint32_t file,
                        const struct vmferry_tar_extent *ext, size_t n)
{
  void *p = realloc (t->map, (n ? n : 1) * sizeof *ext);

  if (p == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", t->name);
    return -1;
  }
  t->map = p;
  if (n)                        /* EXT may be NULL for none */
    memcpy (t->map, ext, n * sizeof *ext);
  t->map_len = n;
  t->map_file = file;
  t->map_set = true;
  return 0;
}

/* A whole entry from memory. */
static int
write_small (struct vmferry_tar_writer *t, const char *path, const void *buf,
             size_t len)
{
  struct archive_entry *e = archive_entry_new ();
  int r = -1;

  if (e == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", t->name);
    return -1;
  }
  archive_entry_set_pathname (e, path);
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, ENTRY_MODE);
  archive_entry_set_size (e, len);
  archive_entry_set_mtime (e, time (NULL), 0);
  if (archive_write_header (t->a, e) != ARCHIVE_OK ||
      (len && archive_write_data (t->a, buf, len) != (ssize_t) len) ||
      archive_write_finish_entry (t->a) != ARCHIVE_OK)
    tar_fail (t, path);
  else
    r = 0;
  archive_entry_free (e);
  return r;
}

static char *
meta_path (const struct vmferry_tar_writer *t, const char *leaf)
{
  char *p;

  if (asprintf (&p, "%s/" VMFERRY_TAR_META "/%s", top_dir (t->m), leaf) < 0) {
    vmferry_set_error_errno (ENOMEM, "%s", t->name);
    return NULL;
  }
  return p;
}

static int
begin_file (struct vmferry_tar_writer *t, uint32_t file, uint64_t size)
{
  struct archive_entry *e;
  char *path;
  int r = -1;

  if (t->m == NULL || file >= t->m->nr_files || !t->map_set ||
      t->map_file != file) {
    vmferry_set_error ("%s: file %" PRIu32 " begins without its map",
                       t->name, file);
    return -1;
  }
  if (asprintf (&path, "%s/%s", top_dir (t->m), t->m->files[file].name) < 0) {
    vmferry_set_error_errno (ENOMEM, "%s", t->name);
    return -1;
  }
  e = archive_entry_new ();
  if (e == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", t->name);
    free (path);
    return -1;
  }
  archive_entry_set_pathname (e, path);
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, ENTRY_MODE);
  archive_entry_set_size (e, size);
  archive_entry_set_mtime (e, time (NULL), 0);
  for (size_t i = 0; i < t->map_len; i++)
    archive_entry_sparse_add_entry (e, t->map[i].offset, t->map[i].length);
  /* A file without data: one empty extent at its end, or libarchive
   * would take it as not sparse and store its zeros.
   */
  if (t->map_len == 0 && size > 0)
    archive_entry_sparse_add_entry (e, size, 0);
  if (archive_write_header (t->a, e) != ARCHIVE_OK)
    tar_fail (t, path);
  else
    r = 0;
  archive_entry_free (e);
  free (path);
  t->file = file;
  t->pos = 0;
  t->size = size;
  t->map_set = false;
  t->map_at = 0;
  return r;
}

/* Hand libarchive LEN bytes of the file at t->pos. */
static int
feed (struct vmferry_tar_writer *t, const void *buf, size_t len)
{
  ssize_t n = archive_write_data (t->a, buf, len);

  if (n < 0)
    return tar_fail (t, t->m->files[t->file].name);
  if ((size_t) n != len) {
    vmferry_set_error ("%s: %s: data at offset %" PRIu64 " outside the "
                       "file's map (it changed during the export?)",
                       t->name, t->m->files[t->file].name, t->pos);
    t->failed = true;
    return -1;
  }
  t->pos += len;
  return 0;
}

/* Zeros up to END: holes libarchive skips, or zero runs it stores. */
static int
feed_zeros (struct vmferry_tar_writer *t, uint64_t end)
{
  while (t->pos < end) {
    size_t n = end - t->pos < ZEROS_SIZE ? end - t->pos : ZEROS_SIZE;
    ssize_t w = archive_write_data (t->a, zeros, n);

    if (w < 0)
      return tar_fail (t, t->m->files[t->file].name);
    /* Past the map's last extent libarchive takes nothing more: the
     * rest of the file is a hole.
     */
    if (w == 0)
      break;
    t->pos += (size_t) w;
  }
  t->pos = end;
  return 0;
}

static int
end_file (struct vmferry_tar_writer *t, const unsigned char digest[16])
{
  const char *fname = t->m->files[t->file].name;
  char leaf[32], *path = NULL, *line = NULL;
  char d[33];
  int r, len;

  if (feed_zeros (t, t->size) < 0)
    return -1;
  if (archive_write_finish_entry (t->a) != ARCHIVE_OK)
    return tar_fail (t, fname);
  vmferry_hex_encode (digest, 16, d);
  snprintf (leaf, sizeof leaf, "%" PRIu32 ".digest", t->file);
  path = meta_path (t, leaf);
  len = asprintf (&line, "%s  %s\n", d, fname);
  if (path == NULL || len < 0) {
    free (path);
    vmferry_set_error_errno (ENOMEM, "%s", t->name);
    return -1;
  }
  r = write_small (t, path, line, len);
  free (path);
  free (line);
  return r;
}

/* The record's payload in one piece (the stream writer hands header and
 * payload as two vectors; anything else is gathered).
 */
static const void *
gather (struct vmferry_tar_writer *t, const struct iovec *iov, int iovcnt,
        size_t skip, size_t len)
{
  size_t got = 0;

  if (iovcnt == 2 && iov[0].iov_len == skip)
    return iov[1].iov_base;
  if (t->payload == NULL &&
      (t->payload = malloc (VMFERRY_MAX_PAYLOAD)) == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", t->name);
    return NULL;
  }
  if (len > VMFERRY_MAX_PAYLOAD) {
    vmferry_set_error ("%s: record too large", t->name);
    return NULL;
  }
  for (int i = 0; i < iovcnt && got < skip + len; i++) {
    const unsigned char *b = iov[i].iov_base;
    for (size_t k = 0; k < iov[i].iov_len; k++, got++)
      if (got >= skip && got < skip + len)
        t->payload[got - skip] = b[k];
  }
  return t->payload;
}

int
vmferry_tar_write_record (void *opaque, const struct iovec *iov, int iovcnt)
{
  struct vmferry_tar_writer *t = opaque;
  unsigned char hdr[VMFERRY_REC_HEADER_SIZE];
  struct vmferry_record rec;
  const void *payload;
  size_t got = 0;

  if (t->failed) {
    vmferry_set_error ("%s: cannot write after an earlier error", t->name);
    return -1;
  }
  for (int i = 0; i < iovcnt && got < sizeof hdr; i++) {
    size_t k = iov[i].iov_len < sizeof hdr - got ? iov[i].iov_len
                                                 : sizeof hdr - got;
    memcpy (hdr + got, iov[i].iov_base, k);
    got += k;
  }
  if (got < sizeof hdr || vmferry_record_decode_header (hdr, &rec) < 0)
    goto bad;
  payload = gather (t, iov, iovcnt, sizeof hdr, rec.payload_len);
  if (payload == NULL)
    goto bad;
  rec.payload = payload;

  switch (rec.type) {
  case VMFERRY_REC_MANIFEST: {
    char *path;
    int r;

    t->manifest_text = vmferry_record_metadata (&rec, payload,
                                                &t->manifest_len);
    if (t->manifest_text == NULL ||
        vmferry_manifest_parse (t->manifest_text, t->manifest_len, t->name,
                                &t->m) < 0 ||
        (path = meta_path (t, "manifest.json")) == NULL)
      goto bad;
    r = write_small (t, path, t->manifest_text, t->manifest_len);
    free (path);
    return r;
  }
  case VMFERRY_REC_DOMAIN_XML: {
    size_t len;
    char *xml = vmferry_record_metadata (&rec, payload, &len), *path;
    int r = -1;

    if (xml && t->m && (path = meta_path (t, "domain.xml")) != NULL) {
      r = write_small (t, path, xml, len);
      free (path);
    }
    free (xml);
    if (r < 0)
      t->failed = true;
    return r;
  }
  case VMFERRY_REC_FILE_BEGIN: {
    uint64_t size;
    if (vmferry_record_file_begin (&rec, payload, &size) < 0 ||
        begin_file (t, rec.file, size) < 0)
      goto bad;
    return 0;
  }
  case VMFERRY_REC_DATA:
    /* libarchive drops what falls in a hole of the map without a word:
     * data must be inside one extent of it.
     */
    while (t->map_at < t->map_len &&
           t->map[t->map_at].offset + t->map[t->map_at].length <= rec.offset)
      t->map_at++;
    if (t->map_at == t->map_len || t->map[t->map_at].offset > rec.offset ||
        rec.length > t->map[t->map_at].offset + t->map[t->map_at].length -
                     rec.offset) {
      vmferry_set_error ("%s: %s: data at offset %" PRIu64 " outside the "
                         "file's map (it changed during the export?)",
                         t->name, t->m->files[t->file].name, rec.offset);
      goto bad;
    }
    if (feed_zeros (t, rec.offset) < 0)
      goto bad;
    if (rec.flags & VMFERRY_REC_F_ZSTD) {
      if (t->data == NULL &&
          (t->data = malloc (VMFERRY_CHUNK_SIZE)) == NULL) {
        vmferry_set_error_errno (ENOMEM, "%s", t->name);
        goto bad;
      }
      if (vmferry_record_data (&rec, payload, t->data) < 0)
        goto bad;
      payload = t->data;
    }
    if (feed (t, payload, rec.length) < 0)
      goto bad;
    return 0;
  case VMFERRY_REC_ZERO:
    /* Inside the map: stored as zeros (a hole only where the source
     * had one).
     */
    return feed_zeros (t, rec.offset + rec.length);
  case VMFERRY_REC_FILE_END: {
    unsigned char digest[16];
    if (vmferry_record_file_end (&rec, payload, digest) < 0 ||
        end_file (t, digest) < 0)
      goto bad;
    return 0;
  }
  case VMFERRY_REC_END:
    if (archive_write_close (t->a) != ARCHIVE_OK)
      return tar_fail (t, "cannot finish the archive");
    return 0;
  default:
    /* The header, and records an archive has no place for. */
    return 0;
  }
 bad:
  t->failed = true;
  return -1;
}

/* ---- Reading ---- */

enum tar_state {
  TS_HEADER, TS_MANIFEST, TS_XML, TS_FILE, TS_DATA, TS_DIGEST, TS_END,
  TS_DONE,
};

struct vmferry_tar_reader {
  struct archive *a;
  int fd;
  char *name;
  unsigned char peek[4];
  size_t peek_len;
  unsigned char *in;            /* libarchive's input buffer */
  struct vmferry_stream_writer *w;      /* makes the records */
  unsigned char *out;           /* records made, not yet read */
  size_t out_pos, out_len;
  enum tar_state st;
  struct vmferry_manifest *m;
  char *top;                    /* the archive's top directory */
  uint32_t file;
  uint64_t size, next;          /* the file's size; data read up to */
  unsigned char *chunk;         /* VMFERRY_CHUNK_SIZE, zero but [lo, hi) */
  uint64_t chunk_at, lo, hi;    /* window start; bytes put there */
  bool chunk_used;
  const unsigned char *blk;     /* libarchive's block, not yet taken */
  size_t blk_len;
  uint64_t blk_off;
  bool failed;
  struct vmferry_saved_error error;     /* why, when failed */
  struct archive_entry *first;  /* the manifest's, read at the open */
};

#define TAR_READ_SIZE (1024 * 1024)
/* The most one step makes: a chunk's records, one per block at worst. */
#define OUT_SIZE                                                        \
  (VMFERRY_CHUNK_SIZE +                                                 \
   (VMFERRY_CHUNK_SIZE / VMFERRY_BLOCK_SIZE + 4) * VMFERRY_REC_HEADER_SIZE + \
   2 * VMFERRY_MAX_PAYLOAD)

static ssize_t
tar_in (struct archive *a, void *opaque, const void **buf)
{
  struct vmferry_tar_reader *t = opaque;
  ssize_t n;

  (void) a;
  if (t->peek_len) {
    *buf = t->peek;
    n = (ssize_t) t->peek_len;
    t->peek_len = 0;
    return n;
  }
  n = vmferry_quit_read (t->fd, t->in, TAR_READ_SIZE);
  if (n < 0) {
    archive_set_error (a, errno, "read");
    return -1;
  }
  *buf = t->in;
  return n;
}

static int
collect (void *opaque, const struct iovec *iov, int iovcnt)
{
  struct vmferry_tar_reader *t = opaque;

  for (int i = 0; i < iovcnt; i++) {
    assert (iov[i].iov_len <= OUT_SIZE - t->out_len);
    memcpy (t->out + t->out_len, iov[i].iov_base, iov[i].iov_len);
    t->out_len += iov[i].iov_len;
  }
  return 0;
}

static int
rd_fail (struct vmferry_tar_reader *t, const char *what)
{
  const char *e = archive_error_string (t->a);

  vmferry_set_error ("%s: %s", what, e ? e : "cannot read the archive");
  return -1;
}

/* The next entry, which must be the regular file EXPECTED (a path below
 * the top directory; NULL: the manifest, which names the top directory).
 * Every entry's name goes through the one check of names from input
 * before anything else is said of it.
 */
/* The rules every entry of every archive passes, before anything else
 * is said of it: its name through the one check of names from input,
 * and a regular file.  PLAIN (a tar made by hand, tar.h): a directory
 * is taken too (*DIR_RTN), and the name is returned in *PATH_RTN
 * without a leading "./" or a directory's trailing '/' ("" for the top
 * directory itself; BUF holds it when changed).
 */
static int
check_entry (struct archive_entry *e, bool plain, char *buf, size_t bufsz,
             const char **path_rtn, bool *dir_rtn)
{
  const char *path = archive_entry_pathname (e);
  bool dir = plain && archive_entry_filetype (e) == AE_IFDIR &&
             !archive_entry_hardlink (e) && !archive_entry_symlink (e);

  if (path == NULL) {
    vmferry_set_error ("archive: an entry without a name");
    return -1;
  }
  if (plain) {
    size_t len;

    while (path[0] == '.' && path[1] == '/')
      path += 2;
    len = strlen (path);
    if (dir && len > 0 && path[len - 1] == '/' && len < bufsz) {
      memcpy (buf, path, len - 1);
      buf[len - 1] = '\0';
      path = buf;
    }
    if (dir && (path[0] == '\0' || strcmp (path, ".") == 0)) {
      *path_rtn = "";
      *dir_rtn = true;
      return 0;
    }
  }
  if (!vmferry_name_relpath_ok (path, VMFERRY_NAME_MAX_PARTS + 2,
                                VMFERRY_NAME_HIDDEN_OK)) {
    vmferry_set_error ("archive: entry \"%.64s\": not a relative path "
                       "within the archive's directory", path);
    return -1;
  }
  if (!dir && (archive_entry_hardlink (e) || archive_entry_symlink (e) ||
               archive_entry_filetype (e) != AE_IFREG)) {
    vmferry_set_error ("archive: entry %s: not a regular file (a link, "
                       "a device, a FIFO%s has no place here)", path,
                       plain ? "" : " or a directory");
    return -1;
  }
  *path_rtn = path;
  if (dir_rtn)
    *dir_rtn = dir;
  return 0;
}

static int
next_entry (struct vmferry_tar_reader *t, const char *expected,
            struct archive_entry **e_rtn)
{
  struct archive_entry *e;
  const char *path, *slash;
  int r;

  if (expected == NULL && t->first) {
    /* Read when the input was opened, and checked then. */
    *e_rtn = t->first;
    t->first = NULL;
    return 0;
  }
  r = archive_read_next_header (t->a, &e);
  if (r == ARCHIVE_EOF) {
    vmferry_set_error ("archive: ends before %s",
                       expected ? expected : "its manifest");
    return -1;
  }
  if (r != ARCHIVE_OK)
    return rd_fail (t, "archive");
  if (check_entry (e, false, NULL, 0, &path, NULL) < 0)
    return -1;
  slash = strchr (path, '/');
  if (expected == NULL) {
    if (slash == NULL ||
        strcmp (slash + 1, VMFERRY_TAR_META "/manifest.json") != 0) {
      vmferry_set_error ("archive: entry %s: the first entry must be "
                         "DIR/" VMFERRY_TAR_META "/manifest.json (a tar "
                         "made by hand: unpack it with tar -xSf and use "
                         "vmferry-import --from-dir)", path);
      return -1;
    }
    t->top = strndup (path, slash - path);
    if (t->top == NULL) {
      vmferry_set_error_errno (ENOMEM, "archive");
      return -1;
    }
  }
  else if (slash == NULL || (size_t) (slash - path) != strlen (t->top) ||
           strncmp (path, t->top, slash - path) != 0 ||
           strcmp (slash + 1, expected) != 0) {
    vmferry_set_error ("archive: entry %s: expected %s/%s (an archive holds "
                       "only what its manifest lists, in its order)", path,
                       t->top, expected);
    return -1;
  }
  *e_rtn = e;
  return 0;
}

/* A whole small entry, at most VMFERRY_MAX_METADATA bytes, NUL ended. */
static char *
read_small (struct vmferry_tar_reader *t, struct archive_entry *e,
            size_t *len_rtn)
{
  int64_t size = archive_entry_size (e);
  char *buf;
  ssize_t n;

  if (size < 0 || size > VMFERRY_MAX_METADATA) {
    vmferry_set_error ("archive: entry %s: larger than %d bytes",
                       archive_entry_pathname (e), VMFERRY_MAX_METADATA);
    return NULL;
  }
  buf = malloc (size + 1);
  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "archive");
    return NULL;
  }
  n = archive_read_data (t->a, buf, size);
  if (n != size) {
    if (n < 0)
      rd_fail (t, archive_entry_pathname (e));
    else
      vmferry_set_error ("archive: entry %s: truncated",
                         archive_entry_pathname (e));
    free (buf);
    return NULL;
  }
  buf[size] = '\0';
  *len_rtn = size;
  return buf;
}

/* Emit the chunk's bytes: whole blocks from the one holding lo to the
 * one holding hi - 1 (the file's last may be short), a DATA record for
 * each run of data blocks and a ZERO record for each run of zero blocks
 * (zeros the archive stores, by a writer that kept only the source's
 * holes, arrive as holes all the same).
 */
static int
flush_chunk (struct vmferry_tar_reader *t)
{
  uint64_t bs = VMFERRY_BLOCK_SIZE, start, end, run;
  const unsigned char *buf;

  if (!t->chunk_used)
    return 0;
  start = t->lo / bs * bs;
  end = (t->hi + bs - 1) / bs * bs;
  if (end > t->size)
    end = t->size;
  t->chunk_used = false;
  buf = t->chunk + (start - t->chunk_at);
  for (uint64_t at = 0; at < end - start; at += run) {
    uint64_t len = end - start;
    bool zero = vmferry_is_zero (buf + at, bs < len - at ? bs : len - at);
    int r;

    for (run = 0; at + run < len; ) {
      uint64_t blen = bs < len - at - run ? bs : len - at - run;
      if (vmferry_is_zero (buf + at + run, blen) != zero)
        break;
      run += blen;
    }
    r = zero ? vmferry_stream_write_zero (t->w, t->file, start + at, run)
             : vmferry_stream_write_data (t->w, t->file, start + at, run, 0,
                                          buf + at, (uint32_t) run);
    if (r < 0)
      return -1;
  }
  memset (t->chunk + (start - t->chunk_at), 0, end - start);
  return 0;
}

/* Take the entry's data into the chunk, emitting at most one record
 * (a chunk whose window the data has left).  Sets *EOF_RTN at the
 * entry's end.
 */
static int
data_step (struct vmferry_tar_reader *t, bool *eof_rtn)
{
  for (;;) {
    uint64_t at;
    size_t n;

    if (t->blk_len == 0) {
      const void *buf;
      size_t len;
      int64_t off;
      int r = archive_read_data_block (t->a, &buf, &len, &off);

      if (r == ARCHIVE_EOF) {
        *eof_rtn = true;
        return flush_chunk (t);
      }
      if (r != ARCHIVE_OK)
        return rd_fail (t, t->m->files[t->file].name);
      if (off < 0 || (uint64_t) off < t->next || len > t->size ||
          (uint64_t) off > t->size - len) {
        vmferry_set_error ("archive: %s: data at offset %" PRId64 " out of "
                           "order or past the file's size",
                           t->m->files[t->file].name, off);
        return -1;
      }
      t->next = off + len;
      t->blk = buf;
      t->blk_len = len;
      t->blk_off = off;
      continue;
    }
    at = t->blk_off / VMFERRY_CHUNK_SIZE * VMFERRY_CHUNK_SIZE;
    if (t->chunk_used && at != t->chunk_at)
      return flush_chunk (t);   /* the rest goes in the next call */
    if (!t->chunk_used) {
      t->chunk_at = at;
      t->lo = t->blk_off;
      t->chunk_used = true;
    }
    n = t->chunk_at + VMFERRY_CHUNK_SIZE - t->blk_off;
    if (n > t->blk_len)
      n = t->blk_len;
    memcpy (t->chunk + (t->blk_off - t->chunk_at), t->blk, n);
    t->hi = t->blk_off + n;
    t->blk += n;
    t->blk_off += n;
    t->blk_len -= n;
  }
}

/* Make the next record(s) into t->out. */
static int
step (struct vmferry_tar_reader *t)
{
  struct archive_entry *e;
  CLEANUP_FREE char *text = NULL;
  size_t len;

  switch (t->st) {
  case TS_HEADER:
  case TS_MANIFEST: {
    /* The header's features follow from the manifest: a running
     * domain's archive holds guest content, which needs GUEST.
     */
    uint64_t mandatory = 0;

    if (next_entry (t, NULL, &e) < 0 ||
        (text = read_small (t, e, &len)) == NULL ||
        vmferry_manifest_parse (text, len, "archive", &t->m) < 0)
      return -1;
    for (size_t i = 0; i < t->m->nr_files; i++)
      if (t->m->files[i].guest)
        mandatory |= VMFERRY_FEATURE_GUEST;
    t->st = TS_XML;
    return vmferry_stream_write_header_ex (t->w, mandatory, 0, NULL, 0) < 0
           ? -1 : vmferry_stream_write_manifest (t->w, text);
  }
  case TS_XML:
    if (next_entry (t, VMFERRY_TAR_META "/domain.xml", &e) < 0 ||
        (text = read_small (t, e, &len)) == NULL)
      return -1;
    t->st = t->m->nr_files ? TS_FILE : TS_END;
    return vmferry_stream_write_xml (t->w, text);
  case TS_FILE:
    if (next_entry (t, t->m->files[t->file].name, &e) < 0)
      return -1;
    t->size = t->m->files[t->file].size;
    if (archive_entry_size (e) < 0 ||
        (uint64_t) archive_entry_size (e) != t->size) {
      vmferry_set_error ("archive: entry %s: %" PRId64 " bytes, the manifest "
                         "says %" PRIu64, archive_entry_pathname (e),
                         archive_entry_size (e), t->size);
      return -1;
    }
    t->next = 0;
    t->st = TS_DATA;
    return vmferry_stream_write_file_begin (t->w, t->file, t->size);
  case TS_DATA: {
    bool eof = false;
    if (data_step (t, &eof) < 0)
      return -1;
    if (eof)
      t->st = TS_DIGEST;
    return 0;
  }
  case TS_DIGEST: {
    char leaf[32], want[40];
    unsigned char digest[16];
    const char *fname = t->m->files[t->file].name;

    snprintf (leaf, sizeof leaf, VMFERRY_TAR_META "/%" PRIu32 ".digest",
              t->file);
    if (next_entry (t, leaf, &e) < 0 ||
        (text = read_small (t, e, &len)) == NULL)
      return -1;
    if (vmferry_hex_decode (text, digest, 16) < 0)
      goto bad_digest;
    snprintf (want, sizeof want, "%.32s  ", text);
    if (len != 32 + 2 + strlen (fname) + 1 ||
        strncmp (text, want, 34) != 0 || strncmp (text + 34, fname,
                                                   strlen (fname)) != 0 ||
        text[len - 1] != '\n')
      goto bad_digest;
    if (vmferry_stream_write_file_end (t->w, t->file, digest) < 0)
      return -1;
    t->file++;
    t->st = t->file < t->m->nr_files ? TS_FILE : TS_END;
    return 0;
  bad_digest:
    vmferry_set_error ("archive: entry %s: not \"DIGEST  %s\"",
                       archive_entry_pathname (e), fname);
    return -1;
  }
  case TS_END: {
    int r = archive_read_next_header (t->a, &e);
    if (r == ARCHIVE_OK) {
      vmferry_set_error ("archive: entry %s after the last file's digest",
                         archive_entry_pathname (e));
      return -1;
    }
    if (r != ARCHIVE_EOF)
      return rd_fail (t, "archive");
    t->st = TS_DONE;
    return vmferry_stream_write_end (t->w, t->m->nr_files);
  }
  case TS_DONE:
    return 0;
  }
  return -1;
}

static ssize_t
tar_read (void *opaque, void *buf, size_t len)
{
  struct vmferry_tar_reader *t = opaque;
  size_t n;

  if (t->failed) {
    vmferry_set_error ("cannot read after an earlier error");
    return -1;
  }
  while (t->out_pos == t->out_len) {
    if (t->st == TS_DONE)
      return 0;
    t->out_pos = t->out_len = 0;
    if (step (t) < 0) {
      vmferry_prefix_error ("%s", t->name);
      vmferry_save_error (&t->error);
      t->failed = true;
      return -1;
    }
  }
  n = t->out_len - t->out_pos < len ? t->out_len - t->out_pos : len;
  memcpy (buf, t->out + t->out_pos, n);
  t->out_pos += n;
  return n;
}

void
vmferry_tar_reader_explain (const struct vmferry_tar_reader *t)
{
  if (t && t->failed)
    vmferry_restore_saved_error (&t->error);
}

void
vmferry_tar_reader_free (struct vmferry_tar_reader *t)
{
  if (t == NULL)
    return;
  if (t->a)
    archive_read_free (t->a);
  vmferry_stream_writer_free (t->w);
  vmferry_manifest_free (t->m);
  free (t->top);
  free (t->in);
  free (t->out);
  free (t->chunk);
  free (t->name);
  free (t);
}

static struct vmferry_tar_reader *
tar_reader_new (int fd, const char *name, const void *peek, size_t len)
{
  struct vmferry_tar_reader *t = calloc (1, sizeof *t);

  if (t == NULL || (t->name = strdup (name)) == NULL ||
      (t->in = malloc (TAR_READ_SIZE)) == NULL ||
      (t->out = malloc (OUT_SIZE)) == NULL ||
      (t->chunk = calloc (1, VMFERRY_CHUNK_SIZE)) == NULL ||
      (t->w = vmferry_stream_writer_new_fn (collect, t, name)) == NULL ||
      (t->a = archive_read_new ()) == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", name);
    vmferry_tar_reader_free (t);
    return NULL;
  }
  t->fd = fd;
  memcpy (t->peek, peek, len);
  t->peek_len = len;
  /* tar in its pax, ustar and GNU forms, plain or zstd: nothing that
   * runs a program.
   */
  if (archive_read_support_format_tar (t->a) != ARCHIVE_OK ||
      archive_read_support_filter_zstd (t->a) != ARCHIVE_OK ||
      archive_read_support_filter_none (t->a) != ARCHIVE_OK ||
      archive_read_open (t->a, t, NULL, tar_in, NULL) != ARCHIVE_OK) {
    const char *e = archive_error_string (t->a);
    vmferry_set_error ("%s: neither a vmferry stream nor a tar archive (%s)",
                       name, e ? e : "unknown format");
    vmferry_tar_reader_free (t);
    return NULL;
  }
  return t;
}

/* ---- A tar made by hand (tar.h) ---- */

/* A directory's name without its '/', for check_entry: the longest
 * name it passes, and more.
 */
#define ENTRY_NAME_BUF (VMFERRY_NAME_MAX * (VMFERRY_NAME_MAX_PARTS + 2) + 16)

struct vmferry_tar_plain {
  int fd;
  off_t start;
  char *name;
  struct archive *a;
  unsigned char *in;
  struct vmferry_tar_plain_entry *e;
  size_t n;
  size_t k;                     /* entries of the index this pass has
                                 * passed (SIZE_MAX: start again) */
  uint64_t size, next;          /* the current entry's; data read up to */
  size_t heads;                 /* bytes of the entries' heads */
};

static ssize_t
plain_in (struct archive *a, void *opaque, const void **buf)
{
  struct vmferry_tar_plain *p = opaque;
  ssize_t n = vmferry_quit_read (p->fd, p->in, TAR_READ_SIZE);

  if (n < 0) {
    archive_set_error (a, errno, "read");
    return -1;
  }
  *buf = p->in;
  return n;
}

/* Skipping an uncompressed entry's data is a seek, not a read. */
static int64_t
plain_skip (struct archive *a, void *opaque, int64_t request)
{
  struct vmferry_tar_plain *p = opaque;

  (void) a;
  if (request <= 0 || lseek (p->fd, request, SEEK_CUR) < 0)
    return 0;                   /* libarchive reads over it instead */
  return request;
}

static int
plain_fail (struct vmferry_tar_plain *p, const char *what)
{
  const char *e = archive_error_string (p->a);

  vmferry_set_error ("%s: %s", what, e ? e : "cannot read the archive");
  return -1;
}

/* Open the archive from its start, for a pass over it. */
static int
plain_start (struct vmferry_tar_plain *p)
{
  if (p->a)
    archive_read_free (p->a);
  p->k = 0;
  p->a = archive_read_new ();
  if (p->a == NULL) {
    vmferry_set_error_errno (ENOMEM, "archive");
    return -1;
  }
  if (lseek (p->fd, p->start, SEEK_SET) < 0) {
    vmferry_set_error_errno (errno, "archive: cannot read it again");
    return -1;
  }
  if (archive_read_support_format_tar (p->a) != ARCHIVE_OK ||
      archive_read_support_filter_zstd (p->a) != ARCHIVE_OK ||
      archive_read_support_filter_none (p->a) != ARCHIVE_OK ||
      archive_read_set_skip_callback (p->a, plain_skip) != ARCHIVE_OK ||
      archive_read_open (p->a, p, NULL, plain_in, NULL) != ARCHIVE_OK)
    return plain_fail (p, "archive");
  return 0;
}

/* The next header of this pass, checked: 1, 0 at the end, -1. */
static int
plain_next (struct vmferry_tar_plain *p, struct archive_entry **e_rtn,
            const char **path_rtn, bool *dir_rtn, char *buf, size_t bufsz)
{
  int r = archive_read_next_header (p->a, e_rtn);

  if (r == ARCHIVE_EOF)
    return 0;
  if (r != ARCHIVE_OK)
    return plain_fail (p, "archive");
  if (check_entry (*e_rtn, true, buf, bufsz, path_rtn, dir_rtn) < 0)
    return -1;
  p->next = 0;
  return 1;
}

static bool
ends_with (const char *s, const char *tail)
{
  size_t n = strlen (s), k = strlen (tail);
  return n >= k && strcmp (s + n - k, tail) == 0;
}

/* A vmferry archive's own entries: DIR/.vmferry/manifest.json and
 * DIR/.vmferry/N.digest, or the same at the top.
 */
static bool
is_meta (const char *path)
{
  const char *m = strstr (path, VMFERRY_TAR_META "/");

  return m && (m == path || m[-1] == '/') &&
         (strcmp (m + strlen (VMFERRY_TAR_META "/"), "manifest.json") == 0 ||
          ends_with (m, ".digest"));
}

/* The first bytes of the entry the archive is at (tar.h), counted in
 * p->heads, which VMFERRY_TAR_HEADS_MAX bounds (an archive of many
 * qcow2 headers or XMLs would otherwise take memory without end).
 */
static int
plain_head (struct vmferry_tar_plain *p, struct vmferry_tar_plain_entry *ent)
{
  unsigned char magic[24];
  size_t want = sizeof magic, got = 0;
  bool xml = ends_with (ent->name, ".xml");

  /* The magic first, to know how much to keep: of a qcow2 image, its
   * first cluster (cluster_bits at offset 20), where the header and the
   * backing file's name are.
   */
  while (!xml && got < want && got < ent->size) {
    ssize_t n = archive_read_data (p->a, magic + got, want - got);
    if (n < 0)
      return plain_fail (p, ent->name);
    if (n == 0)
      break;
    got += n;
  }
  if (xml)
    want = VMFERRY_MAX_METADATA + 1;
  else if (got == sizeof magic && memcmp (magic, "QFI\xfb", 4) == 0) {
    uint32_t bits = (uint32_t) magic[20] << 24 | magic[21] << 16 |
                    magic[22] << 8 | magic[23];
    want = bits >= 9 && bits <= 21 ? (size_t) 1 << bits
                                   : VMFERRY_TAR_HEAD_MAX;
  }
  else
    want = 4;
  if (want > ent->size)
    want = ent->size;
  if (want > VMFERRY_TAR_HEADS_MAX - p->heads) {
    vmferry_set_error ("archive: entry %s: more than %d MiB of XML and "
                       "image headers", ent->name,
                       VMFERRY_TAR_HEADS_MAX / (1024 * 1024));
    return -1;
  }
  p->heads += want;
  ent->head = malloc (want ? want : 1);
  if (ent->head == NULL) {
    vmferry_set_error_errno (ENOMEM, "archive");
    return -1;
  }
  memcpy (ent->head, magic, got < want ? got : want);
  ent->head_len = got < want ? got : want;
  while (ent->head_len < want) {
    ssize_t n = archive_read_data (p->a, ent->head + ent->head_len,
                                   want - ent->head_len);
    if (n < 0)
      return plain_fail (p, ent->name);
    if (n == 0)
      break;
    ent->head_len += n;
  }
  return 0;
}

/* Pass one: the index. */
static struct vmferry_tar_plain *
plain_open (int fd, const char *name, off_t start)
{
  struct vmferry_tar_plain *p = calloc (1, sizeof *p);
  struct archive_entry *e;
  const char *path;
  char buf[ENTRY_NAME_BUF];
  bool dir;
  int r;

  if (p == NULL || (p->name = strdup (name)) == NULL ||
      (p->in = malloc (TAR_READ_SIZE)) == NULL) {
    vmferry_set_error_errno (ENOMEM, "archive");
    goto fail;
  }
  p->fd = fd;
  p->start = start;
  if (plain_start (p) < 0)
    goto fail;
  while ((r = plain_next (p, &e, &path, &dir, buf, sizeof buf)) == 1) {
    struct vmferry_tar_plain_entry *ent;
    void *q;

    if (path[0] == '\0')
      continue;                 /* "./" itself */
    if (is_meta (path)) {
      vmferry_set_error ("archive: entry %s: a vmferry archive's, and "
                         "the first entry must be DIR/" VMFERRY_TAR_META
                         "/manifest.json (a damaged or reordered vmferry "
                         "archive is not read as one made by hand)",
                         path);
      goto fail;
    }
    if (vmferry_tar_plain_find (p, path) >= 0) {
      vmferry_set_error ("archive: entry %s is there twice (tar -x "
                         "would keep the last, this would not know which)",
                         path);
      goto fail;
    }
    if (p->n >= VMFERRY_TAR_MAX_ENTRIES) {
      vmferry_set_error ("archive: more than %d entries",
                         VMFERRY_TAR_MAX_ENTRIES);
      goto fail;
    }
    q = realloc (p->e, (p->n + 1) * sizeof *p->e);
    if (q == NULL) {
      vmferry_set_error_errno (ENOMEM, "archive");
      goto fail;
    }
    p->e = q;
    ent = &p->e[p->n++];
    memset (ent, 0, sizeof *ent);
    ent->dir = dir;
    if ((ent->name = strdup (path)) == NULL) {
      vmferry_set_error_errno (ENOMEM, "archive");
      goto fail;
    }
    if (dir)
      continue;
    if (archive_entry_size (e) < 0) {
      vmferry_set_error ("archive: entry %s: no size", path);
      goto fail;
    }
    ent->size = archive_entry_size (e);
    ent->allocated = ent->size;
    if (archive_entry_sparse_reset (e) > 0) {
      la_int64_t off, len;

      ent->allocated = 0;
      while (archive_entry_sparse_next (e, &off, &len) == ARCHIVE_OK)
        ent->allocated += len;
    }
    if (plain_head (p, ent) < 0)
      goto fail;
  }
  if (r < 0)
    goto fail;
  p->k = SIZE_MAX;
  return p;
 fail:
  vmferry_prefix_error ("%s", name);
  vmferry_tar_plain_free (p);
  return NULL;
}

void
vmferry_tar_plain_free (struct vmferry_tar_plain *p)
{
  if (p == NULL)
    return;
  if (p->a)
    archive_read_free (p->a);
  for (size_t i = 0; i < p->n; i++) {
    free (p->e[i].name);
    free (p->e[i].head);
  }
  free (p->e);
  free (p->in);
  free (p->name);
  free (p);
}

size_t
vmferry_tar_plain_count (const struct vmferry_tar_plain *p)
{
  return p->n;
}

const struct vmferry_tar_plain_entry *
vmferry_tar_plain_entry (const struct vmferry_tar_plain *p, size_t i)
{
  return i < p->n ? &p->e[i] : NULL;
}

ssize_t
vmferry_tar_plain_find (const struct vmferry_tar_plain *p, const char *name)
{
  for (size_t i = 0; i < p->n; i++)
    if (strcmp (p->e[i].name, name) == 0)
      return (ssize_t) i;
  return -1;
}

int
vmferry_tar_plain_fd (const struct vmferry_tar_plain *p)
{
  return p->fd;
}

int
vmferry_tar_plain_seek (struct vmferry_tar_plain *p, size_t i)
{
  char buf[ENTRY_NAME_BUF];

  assert (i < p->n && !p->e[i].dir);
  if (p->k > i && plain_start (p) < 0)
    return -1;
  for (;;) {
    struct archive_entry *e;
    const char *path;
    bool dir;
    int r = plain_next (p, &e, &path, &dir, buf, sizeof buf);

    if (r < 0)
      return -1;
    if (r == 1 && path[0] == '\0')
      continue;
    if (r == 0 || p->k >= p->n || strcmp (path, p->e[p->k].name) != 0 ||
        dir != p->e[p->k].dir ||
        (!dir && (uint64_t) archive_entry_size (e) != p->e[p->k].size)) {
      vmferry_set_error ("archive: changed since it was first read");
      p->k = SIZE_MAX;
      return -1;
    }
    if (p->k++ == i) {
      p->size = p->e[i].size;
      return 0;
    }
  }
}

int
vmferry_tar_plain_read (struct vmferry_tar_plain *p, const void **buf_rtn,
                        size_t *len_rtn, uint64_t *off_rtn)
{
  la_int64_t off;
  int r = archive_read_data_block (p->a, buf_rtn, len_rtn, &off);

  if (r == ARCHIVE_EOF)
    return 0;
  if (r != ARCHIVE_OK)
    return plain_fail (p, "archive");
  if (off < 0 || (uint64_t) off < p->next || *len_rtn > p->size ||
      (uint64_t) off > p->size - *len_rtn) {
    vmferry_set_error ("archive: data at offset %" PRId64 " out of "
                       "order or past the entry's size", (int64_t) off);
    return -1;
  }
  p->next = off + *len_rtn;
  *off_rtn = off;
  return 1;
}

/* Read the archive's first entry: a vmferry archive's manifest, kept
 * for the first step, or 1 when it is anything else (a tar made by
 * hand).
 */
static int
first_entry (struct vmferry_tar_reader *t)
{
  struct archive_entry *e;
  const char *path, *slash;
  char buf[ENTRY_NAME_BUF];
  bool dir;
  int r = archive_read_next_header (t->a, &e);

  if (r == ARCHIVE_EOF) {
    vmferry_set_error ("archive: ends before its manifest");
    return -1;
  }
  if (r != ARCHIVE_OK)
    return rd_fail (t, "archive");
  /* As a tar made by hand's first entry is checked: "./" may lead. */
  if (check_entry (e, true, buf, sizeof buf, &path, &dir) < 0)
    return -1;
  slash = strchr (path, '/');
  if (dir || slash == NULL || path != archive_entry_pathname (e) ||
      strcmp (slash + 1, VMFERRY_TAR_META "/manifest.json") != 0)
    return 1;
  t->top = strndup (path, slash - path);
  if (t->top == NULL) {
    vmferry_set_error_errno (ENOMEM, "archive");
    return -1;
  }
  t->first = e;
  return 0;
}

int
vmferry_input_peek (int fd, const char *name, unsigned char peek[4],
                    size_t *got_rtn)
{
  size_t got = 0;

  while (got < 4) {
    ssize_t n = vmferry_quit_read (fd, peek + got, 4 - got);
    if (n < 0) {
      vmferry_set_error_errno (errno, "%s", name);
      return -1;
    }
    if (n == 0)
      break;
    got += n;
  }
  *got_rtn = got;
  return 0;
}

struct vmferry_stream_reader *
vmferry_input_open_plain (int fd, const char *name,
                          struct vmferry_tar_reader **tar_rtn,
                          struct vmferry_tar_plain **plain_rtn)
{
  unsigned char peek[4];
  size_t got;

  *tar_rtn = NULL;
  if (plain_rtn)
    *plain_rtn = NULL;
  if (vmferry_input_peek (fd, name, peek, &got) < 0)
    return NULL;
  return vmferry_input_open_peeked (fd, name, peek, got, tar_rtn, plain_rtn);
}

struct vmferry_stream_reader *
vmferry_input_open_peeked (int fd, const char *name,
                           const unsigned char *peek, size_t got,
                           struct vmferry_tar_reader **tar_rtn,
                           struct vmferry_tar_plain **plain_rtn)
{
  struct vmferry_stream_reader *rd;
  /* Where a tar made by hand is read again from (-1: a pipe): before
   * the bytes the caller took.
   */
  off_t pos = lseek (fd, 0, SEEK_CUR);
  off_t start = pos < 0 ? -1 : pos - (off_t) got;
  int r;

  assert (got <= 4);
  *tar_rtn = NULL;
  if (plain_rtn)
    *plain_rtn = NULL;
  if (got < 4 || memcmp (peek, VMFERRY_REC_MAGIC, 4) == 0) {
    /* A stream, or too short to be anything: the reader says which. */
    rd = vmferry_stream_reader_new (fd, name);
    if (rd && vmferry_stream_reader_unread (rd, peek, got) < 0) {
      vmferry_stream_reader_free (rd);
      return NULL;
    }
    return rd;
  }
  *tar_rtn = tar_reader_new (fd, name, peek, got);
  if (*tar_rtn == NULL)
    return NULL;
  r = first_entry (*tar_rtn);
  if (r != 0) {
    vmferry_tar_reader_free (*tar_rtn);
    *tar_rtn = NULL;
    if (r > 0 && plain_rtn == NULL)
      vmferry_set_error ("archive: the first entry must be DIR/"
                         VMFERRY_TAR_META "/manifest.json (a tar made by "
                         "hand: unpack it with tar -xSf and use "
                         "vmferry-import --from-dir)");
    else if (r > 0 && start < 0)
      vmferry_set_error ("a tar made by hand (its first entry is not DIR/"
                         VMFERRY_TAR_META "/manifest.json) is read twice, "
                         "and this input cannot be read again: save it to a "
                         "file first, or unpack it with tar -xSf and use "
                         "vmferry-import --from-dir");
    else if (r > 0) {
      *plain_rtn = plain_open (fd, name, start);
      return NULL;
    }
    vmferry_prefix_error ("%s", name);
    return NULL;
  }
  rd = vmferry_stream_reader_new_fn (tar_read, *tar_rtn, name);
  if (rd == NULL) {
    vmferry_tar_reader_free (*tar_rtn);
    *tar_rtn = NULL;
    return NULL;
  }
  /* The records come from this process: their checksums prove nothing
   * the files' digests do not.
   */
  vmferry_stream_reader_trust (rd);
  return rd;
}

struct vmferry_stream_reader *
vmferry_input_open (int fd, const char *name,
                    struct vmferry_tar_reader **tar_rtn)
{
  return vmferry_input_open_plain (fd, name, tar_rtn, NULL);
}
