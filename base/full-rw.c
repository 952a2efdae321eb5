/* vmferry: full reads and writes (see full-rw.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"
#include "full-rw.h"

/* What a call moves: read at an offset, write at one, write in order. */
enum full_op { PREAD, PWRITE, WRITE };

/* Move LEN bytes between BUF and FD, retrying EINTR and short counts. */
static int
full_rw (enum full_op op, int fd, const char *name, unsigned char *p,
         size_t len, uint64_t offset)
{
  while (len > 0) {
    ssize_t r;

    if (op == PREAD)
      r = pread (fd, p, len, (off_t) offset);
    else if (op == PWRITE)
      r = pwrite (fd, p, len, (off_t) offset);
    else
      r = write (fd, p, len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && op == WRITE) {
      vmferry_set_error_errno (errno, "%s: write", name);
      return -1;
    }
    if (r < 0) {
      vmferry_set_error_errno (errno, op == PREAD
                               ? "%s: read at offset %" PRIu64
                               : "%s: write at offset %" PRIu64,
                               name, offset);
      return -1;
    }
    /* Never zeros in place of what is not there. */
    if (r == 0 && op == PREAD) {
      vmferry_set_error ("%s: file shrank while being read"
                         " (at offset %" PRIu64 ")", name, offset);
      return -1;
    }
    p += r;
    len -= r;
    offset += r;
  }
  return 0;
}

int
vmferry_pread_full (int fd, const char *name, void *buf, size_t len,
                    uint64_t offset)
{
  return full_rw (PREAD, fd, name, buf, len, offset);
}

int
vmferry_pwrite_full (int fd, const char *name, const void *buf, size_t len,
                     uint64_t offset)
{
  /* Written from, never to: the cast only shares the loop. */
  return full_rw (PWRITE, fd, name, (unsigned char *) buf, len, offset);
}

int
vmferry_write_full (int fd, const char *name, const void *buf, size_t len)
{
  return full_rw (WRITE, fd, name, (unsigned char *) buf, len, 0);
}

void *
vmferry_alloc_direct (size_t len)
{
  void *p;
  int err = posix_memalign (&p, VMFERRY_DIRECT_ALIGN, len);

  if (err != 0) {
    errno = err;
    return NULL;
  }
  return p;
}
