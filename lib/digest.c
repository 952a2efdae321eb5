/* vmferry: the file digest (see digest.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "cleanup-libc.h"
#include "digest.h"
#include "hex.h"
#include "error.h"
#include "extent.h"
#include "full-rw.h"
#include "iszero.h"
#include "stream.h"           /* VMFERRY_BLOCK_SIZE */

/* digest_fd reads this much at a time: large enough to keep the disk
 * streaming, small enough to stay in the last-level cache.
 */
#define DIGEST_READ_SIZE (4 * 1024 * 1024)

struct vmferry_digest {
  XXH3_state_t *state;
  uint64_t next;        /* offset the next call may start at, at least */
  bool ended;           /* a short last block was added */
};

struct vmferry_digest *
vmferry_digest_new (void)
{
  struct vmferry_digest *d = calloc (1, sizeof *d);

  if (d == NULL || (d->state = XXH3_createState ()) == NULL) {
    vmferry_set_error_errno (ENOMEM, "digest: malloc");
    free (d);
    return NULL;
  }
  XXH3_128bits_reset (d->state);
  return d;
}

void
vmferry_digest_free (struct vmferry_digest *d)
{
  if (d == NULL)
    return;
  XXH3_freeState (d->state);
  free (d);
}

static void
put_le64 (unsigned char *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = v >> (8 * i);
}

/* Whether D may take LEN bytes at OFFSET (see digest.h). */
static int
check_range (const struct vmferry_digest *d, uint64_t offset, size_t len)
{
  if (d->ended) {
    vmferry_set_error ("digest: data at %" PRIu64 " after the short last "
                       "block of the file", offset);
    return -1;
  }
  if (offset % VMFERRY_BLOCK_SIZE != 0) {
    vmferry_set_error ("digest: offset %" PRIu64 " is not block aligned",
                       offset);
    return -1;
  }
  if (offset < d->next) {
    vmferry_set_error ("digest: offset %" PRIu64 " goes back before %" PRIu64,
                       offset, d->next);
    return -1;
  }
  if (len > UINT64_MAX - offset) {
    vmferry_set_error ("digest: range at %" PRIu64 " overflows", offset);
    return -1;
  }
  return 0;
}

struct vmferry_map {
  uint64_t size, chunk, n;
  unsigned char *d;       /* n digests of VMFERRY_DIGEST_SIZE bytes */
  XXH3_state_t *state;    /* of chunk cur, while one is being added to */
  uint64_t cur;           /* that chunk, or UINT64_MAX */
  uint64_t next;          /* offset the next call may start at, at least */
  bool ended;             /* a short last block was added */
};

/* The digest of no bytes: that of an all-zero chunk. */
static void
empty_digest (unsigned char out[VMFERRY_DIGEST_SIZE])
{
  XXH128_canonical_t c;

  XXH128_canonicalFromHash (&c, XXH3_128bits (NULL, 0));
  memcpy (out, c.digest, VMFERRY_DIGEST_SIZE);
}

/* Store the digest of the chunk being added to, if any. */
static void
map_finish (struct vmferry_map *m)
{
  XXH128_canonical_t c;

  if (m->cur == UINT64_MAX)
    return;
  XXH128_canonicalFromHash (&c, XXH3_128bits_digest (m->state));
  memcpy (m->d + m->cur * VMFERRY_DIGEST_SIZE, c.digest, VMFERRY_DIGEST_SIZE);
  m->cur = UINT64_MAX;
}

static int
map_check_range (const struct vmferry_map *m, uint64_t offset, size_t len)
{
  if (m->ended) {
    vmferry_set_error ("map: data at %" PRIu64 " after the short last "
                       "block of the file", offset);
    return -1;
  }
  if (offset % VMFERRY_BLOCK_SIZE != 0) {
    vmferry_set_error ("map: offset %" PRIu64 " is not block aligned", offset);
    return -1;
  }
  if (offset < m->next) {
    vmferry_set_error ("map: offset %" PRIu64 " goes back before %" PRIu64,
                       offset, m->next);
    return -1;
  }
  if (offset > m->size || len > m->size - offset) {
    vmferry_set_error ("map: range %" PRIu64 "+%zu goes beyond the file size %"
                       PRIu64, offset, len, m->size);
    return -1;
  }
  return 0;
}

/* Add the bytes to the N digests DS and the NM maps MS block by block:
 * each block is tested for zeros once and hashed into all of them while
 * it is in the CPU's cache (a second pass over a chunk would read it
 * from memory again).  All are checked before any takes the bytes.
 */
static int
update_n (struct vmferry_digest *const *ds, unsigned n,
          struct vmferry_map *const *ms, unsigned nm, uint64_t offset,
          const void *buf, size_t len)
{
  const unsigned char *p = buf;

  if (len == 0)
    return 0;
  for (unsigned i = 0; i < n; i++)
    if (check_range (ds[i], offset, len) < 0)
      return -1;
  for (unsigned j = 0; j < nm; j++)
    if (map_check_range (ms[j], offset, len) < 0)
      return -1;

  while (len > 0) {
    size_t bn = len < VMFERRY_BLOCK_SIZE ? len : VMFERRY_BLOCK_SIZE;

    /* A chunk entered is recomputed from what is added: blocks not
     * added are holes.
     */
    for (unsigned j = 0; j < nm; j++) {
      struct vmferry_map *m = ms[j];
      uint64_t c = offset / m->chunk;

      if (c != m->cur) {
        map_finish (m);
        XXH3_128bits_reset (m->state);
        m->cur = c;
      }
    }
    if (!vmferry_is_zero (p, bn)) {
      unsigned char hdr[16];

      put_le64 (hdr, offset);
      put_le64 (hdr + 8, bn);
      for (unsigned i = 0; i < n; i++) {
        XXH3_128bits_update (ds[i]->state, hdr, sizeof hdr);
        XXH3_128bits_update (ds[i]->state, p, bn);
      }
      for (unsigned j = 0; j < nm; j++) {
        XXH3_128bits_update (ms[j]->state, hdr, sizeof hdr);
        XXH3_128bits_update (ms[j]->state, p, bn);
      }
    }
    if (bn < VMFERRY_BLOCK_SIZE) {
      for (unsigned i = 0; i < n; i++)
        ds[i]->ended = true;
      for (unsigned j = 0; j < nm; j++)
        ms[j]->ended = true;
    }
    p += bn;
    len -= bn;
    offset += bn;
  }
  for (unsigned i = 0; i < n; i++)
    ds[i]->next = offset;
  for (unsigned j = 0; j < nm; j++)
    ms[j]->next = offset;
  return 0;
}

int
vmferry_digest_update (struct vmferry_digest *d, uint64_t offset,
                       const void *buf, size_t len)
{
  return update_n (&d, 1, NULL, 0, offset, buf, len);
}

int
vmferry_digest_update2 (struct vmferry_digest *a, struct vmferry_digest *b,
                        uint64_t offset, const void *buf, size_t len)
{
  struct vmferry_digest *ds[2] = { a, b };

  return update_n (ds, 2, NULL, 0, offset, buf, len);
}

struct vmferry_map *
vmferry_map_new (uint64_t size, uint64_t chunk)
{
  struct vmferry_map *m;
  unsigned char e[VMFERRY_DIGEST_SIZE];

  if (chunk == 0 || chunk % VMFERRY_BLOCK_SIZE != 0) {
    vmferry_set_error ("map: chunk size %" PRIu64 " is not a multiple of %d",
                       chunk, VMFERRY_BLOCK_SIZE);
    return NULL;
  }
  m = calloc (1, sizeof *m);
  if (m == NULL) {
    vmferry_set_error_errno (ENOMEM, "map: malloc");
    return NULL;
  }
  m->size = size;
  m->chunk = chunk;
  m->n = size / chunk + (size % chunk != 0);
  m->cur = UINT64_MAX;
  if ((m->n > 0 && (m->d = calloc (m->n, VMFERRY_DIGEST_SIZE)) == NULL) ||
      (m->state = XXH3_createState ()) == NULL) {
    vmferry_set_error_errno (ENOMEM, "map of %" PRIu64 " chunks: malloc",
                             m->n);
    vmferry_map_free (m);
    return NULL;
  }
  empty_digest (e);
  for (uint64_t c = 0; c < m->n; c++)
    memcpy (m->d + c * VMFERRY_DIGEST_SIZE, e, VMFERRY_DIGEST_SIZE);
  return m;
}

void
vmferry_map_free (struct vmferry_map *m)
{
  if (m == NULL)
    return;
  XXH3_freeState (m->state);
  free (m->d);
  free (m);
}

int
vmferry_map_update (struct vmferry_map *m, uint64_t offset, const void *buf,
                    size_t len)
{
  return update_n (NULL, 0, &m, 1, offset, buf, len);
}

int
vmferry_digest_update_map (struct vmferry_digest *a, struct vmferry_digest *b,
                           struct vmferry_map *m, uint64_t offset,
                           const void *buf, size_t len)
{
  struct vmferry_digest *ds[2];
  unsigned n = 0;

  if (a != NULL)
    ds[n++] = a;
  if (b != NULL)
    ds[n++] = b;
  return update_n (ds, n, &m, m != NULL, offset, buf, len);
}

int
vmferry_digest_update_maps (struct vmferry_digest *d,
                            struct vmferry_map *const *ms, unsigned nm,
                            uint64_t offset, const void *buf, size_t len)
{
  return update_n (&d, d != NULL, ms, nm, offset, buf, len);
}

uint64_t
vmferry_map_size (const struct vmferry_map *m)
{
  return m->size;
}

uint64_t
vmferry_map_chunk (const struct vmferry_map *m)
{
  return m->chunk;
}

uint64_t
vmferry_map_nr_chunks (const struct vmferry_map *m)
{
  return m->n;
}

void
vmferry_map_get (struct vmferry_map *m, uint64_t c,
                 unsigned char out[VMFERRY_DIGEST_SIZE])
{
  if (c == m->cur)
    map_finish (m);
  memcpy (out, m->d + c * VMFERRY_DIGEST_SIZE, VMFERRY_DIGEST_SIZE);
}

void
vmferry_map_set (struct vmferry_map *m, uint64_t c,
                 const unsigned char d[VMFERRY_DIGEST_SIZE])
{
  if (c == m->cur)
    map_finish (m);
  memcpy (m->d + c * VMFERRY_DIGEST_SIZE, d, VMFERRY_DIGEST_SIZE);
}

void
vmferry_map_clear_chunk (struct vmferry_map *m, uint64_t c)
{
  map_finish (m);
  empty_digest (m->d + c * VMFERRY_DIGEST_SIZE);
  m->next = c * m->chunk;
  m->ended = false;
}

int
vmferry_map_root (struct vmferry_map *m, unsigned char out[VMFERRY_DIGEST_SIZE])
{
  XXH3_state_t *st = XXH3_createState ();
  unsigned char e[VMFERRY_DIGEST_SIZE], cb[8];
  XXH128_canonical_t c;

  if (st == NULL) {
    vmferry_set_error_errno (ENOMEM, "map: malloc");
    return -1;
  }
  map_finish (m);
  empty_digest (e);
  XXH3_128bits_reset (st);
  for (uint64_t i = 0; i < m->n; i++) {
    const unsigned char *d = m->d + i * VMFERRY_DIGEST_SIZE;
    if (memcmp (d, e, VMFERRY_DIGEST_SIZE) == 0)
      continue;
    put_le64 (cb, i);
    XXH3_128bits_update (st, cb, sizeof cb);
    XXH3_128bits_update (st, d, VMFERRY_DIGEST_SIZE);
  }
  XXH128_canonicalFromHash (&c, XXH3_128bits_digest (st));
  XXH3_freeState (st);
  memcpy (out, c.digest, VMFERRY_DIGEST_SIZE);
  return 0;
}

void
vmferry_digest_final (const struct vmferry_digest *d,
                      unsigned char out[VMFERRY_DIGEST_SIZE])
{
  XXH128_canonical_t c;

  XXH128_canonicalFromHash (&c, XXH3_128bits_digest (d->state));
  memcpy (out, c.digest, VMFERRY_DIGEST_SIZE);
}

int
vmferry_digest_fd (int fd, const char *name, uint64_t size,
                   unsigned char out[VMFERRY_DIGEST_SIZE])
{
  return vmferry_digest_fd_range (fd, name, 0, size, out);
}

/* The digest D and/or the map M of bytes [START, END) of FD. */
static int
digest_fd (int fd, const char *name, uint64_t start, uint64_t end,
           struct vmferry_digest *d, struct vmferry_map *m)
{
  CLEANUP_FREE void *buf = NULL;
  uint64_t pos = start, dstart, dend, actual;
  int r;

  if (start % VMFERRY_BLOCK_SIZE != 0 || start > end) {
    vmferry_set_error ("%s: digest of bytes %" PRIu64 " to %" PRIu64 ": not a "
                       "block-aligned range", name, start, end);
    return -1;
  }
  /* Past the end of a file SEEK_DATA finds nothing, which would make a
   * short file look complete.
   */
  if (vmferry_file_size (fd, name, &actual) < 0)
    return -1;
  if (actual < end) {
    vmferry_set_error ("%s: file is %" PRIu64 " bytes, expected %" PRIu64,
                       name, actual, end);
    return -1;
  }
  buf = malloc (DIGEST_READ_SIZE);
  if (buf == NULL) {
    vmferry_set_error_errno (errno, "%s: malloc", name);
    return -1;
  }
  /* Only a hint: failure (e.g. on a pipe-like device) does not matter. */
  posix_fadvise (fd, (off_t) start, (off_t) (end - start),
                 POSIX_FADV_SEQUENTIAL);

  while ((r = vmferry_next_data (fd, name, pos, end, &dstart, &dend)) == 1) {
    for (pos = dstart; pos < dend; ) {
      size_t n = dend - pos < DIGEST_READ_SIZE ? dend - pos : DIGEST_READ_SIZE;

      if (vmferry_pread_full (fd, name, buf, n, pos) < 0 ||
          update_n (&d, d != NULL, &m, m != NULL, pos, buf, n) < 0)
        return -1;
      pos += n;
    }
  }
  return r;
}

int
vmferry_digest_fd_range (int fd, const char *name, uint64_t start, uint64_t end,
                         unsigned char out[VMFERRY_DIGEST_SIZE])
{
  struct vmferry_digest *d = vmferry_digest_new ();
  int r;

  if (d == NULL)
    return -1;
  r = digest_fd (fd, name, start, end, d, NULL);
  if (r == 0)
    vmferry_digest_final (d, out);
  vmferry_digest_free (d);
  return r;
}

int
vmferry_map_fd (int fd, const char *name, struct vmferry_map *m,
                unsigned char *file_digest)
{
  struct vmferry_digest *d = NULL;
  int r;

  if (file_digest != NULL && (d = vmferry_digest_new ()) == NULL)
    return -1;
  r = digest_fd (fd, name, 0, m->size, d, m);
  if (r == 0 && d != NULL)
    vmferry_digest_final (d, file_digest);
  vmferry_digest_free (d);
  return r;
}

void
vmferry_digest_hex (const unsigned char d[VMFERRY_DIGEST_SIZE],
                    char out[2 * VMFERRY_DIGEST_SIZE + 1])
{
  vmferry_hex_encode (d, VMFERRY_DIGEST_SIZE, out);
}
