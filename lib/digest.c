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

/* Add the bytes to the N digests DS block by block: each block is
 * tested for zeros once and hashed into all of them while it is in the
 * CPU's cache.
 */
static int
update_n (struct vmferry_digest **ds, unsigned n, uint64_t offset,
          const void *buf, size_t len)
{
  const unsigned char *p = buf;

  if (len == 0)
    return 0;
  for (unsigned i = 0; i < n; i++)
    if (check_range (ds[i], offset, len) < 0)
      return -1;

  while (len > 0) {
    size_t bn = len < VMFERRY_BLOCK_SIZE ? len : VMFERRY_BLOCK_SIZE;

    if (!vmferry_is_zero (p, bn)) {
      unsigned char hdr[16];

      put_le64 (hdr, offset);
      put_le64 (hdr + 8, bn);
      for (unsigned i = 0; i < n; i++) {
        XXH3_128bits_update (ds[i]->state, hdr, sizeof hdr);
        XXH3_128bits_update (ds[i]->state, p, bn);
      }
    }
    if (bn < VMFERRY_BLOCK_SIZE)
      for (unsigned i = 0; i < n; i++)
        ds[i]->ended = true;
    p += bn;
    len -= bn;
    offset += bn;
  }
  for (unsigned i = 0; i < n; i++)
    ds[i]->next = offset;
  return 0;
}

int
vmferry_digest_update (struct vmferry_digest *d, uint64_t offset,
                       const void *buf, size_t len)
{
  return update_n (&d, 1, offset, buf, len);
}

int
vmferry_digest_update2 (struct vmferry_digest *a, struct vmferry_digest *b,
                        uint64_t offset, const void *buf, size_t len)
{
  struct vmferry_digest *ds[2] = { a, b };

  return update_n (ds, 2, offset, buf, len);
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

int
vmferry_digest_fd_range (int fd, const char *name, uint64_t start, uint64_t end,
                         unsigned char out[VMFERRY_DIGEST_SIZE])
{
  struct vmferry_digest *d;
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
  d = vmferry_digest_new ();
  if (d == NULL)
    return -1;
  buf = malloc (DIGEST_READ_SIZE);
  if (buf == NULL) {
    vmferry_set_error_errno (errno, "%s: malloc", name);
    vmferry_digest_free (d);
    return -1;
  }
  /* Only a hint: failure (e.g. on a pipe-like device) does not matter. */
  posix_fadvise (fd, (off_t) start, (off_t) (end - start),
                 POSIX_FADV_SEQUENTIAL);

  while ((r = vmferry_next_data (fd, name, pos, end, &dstart, &dend)) == 1) {
    for (pos = dstart; pos < dend; ) {
      size_t n = dend - pos < DIGEST_READ_SIZE ? dend - pos : DIGEST_READ_SIZE;

      if (vmferry_pread_full (fd, name, buf, n, pos) < 0 ||
          vmferry_digest_update (d, pos, buf, n) < 0) {
        vmferry_digest_free (d);
        return -1;
      }
      pos += n;
    }
  }
  if (r == 0)
    vmferry_digest_final (d, out);
  vmferry_digest_free (d);
  return r;
}

void
vmferry_digest_hex (const unsigned char d[VMFERRY_DIGEST_SIZE],
                    char out[2 * VMFERRY_DIGEST_SIZE + 1])
{
  static const char hex[] = "0123456789abcdef";

  for (int i = 0; i < VMFERRY_DIGEST_SIZE; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[2 * VMFERRY_DIGEST_SIZE] = '\0';
}
