/* vmferry: full reads and writes (see full-rw.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <unistd.h>

#include "error.h"
#include "full-rw.h"

int
vmferry_pread_full (int fd, const char *name, void *buf, size_t len,
                    uint64_t offset)
{
  unsigned char *p = buf;

  while (len > 0) {
    ssize_t r = pread (fd, p, len, (off_t) offset);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      vmferry_set_error_errno (errno, "%s: read at offset %" PRIu64, name,
                               offset);
      return -1;
    }
    if (r == 0) {
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
vmferry_pwrite_full (int fd, const char *name, const void *buf, size_t len,
                     uint64_t offset)
{
  const unsigned char *p = buf;

  while (len > 0) {
    ssize_t r = pwrite (fd, p, len, (off_t) offset);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      vmferry_set_error_errno (errno, "%s: write at offset %" PRIu64, name,
                               offset);
      return -1;
    }
    p += r;
    len -= r;
    offset += r;
  }
  return 0;
}

int
vmferry_write_full (int fd, const char *name, const void *buf, size_t len)
{
  const unsigned char *p = buf;

  while (len > 0) {
    ssize_t r = write (fd, p, len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      vmferry_set_error_errno (errno, "%s: write", name);
      return -1;
    }
    p += r;
    len -= r;
  }
  return 0;
}
