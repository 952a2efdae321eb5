/* vmferry: extents and zero detection (see extent.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>         /* BLKGETSIZE64 */

#include "error.h"
#include "extent.h"
#include "stream.h"           /* VMFERRY_BLOCK_SIZE */

int
vmferry_file_size (int fd, const char *name, uint64_t *size_rtn)
{
  struct stat st;

  if (fstat (fd, &st) < 0) {
    vmferry_set_error_errno (errno, "%s: fstat", name);
    return -1;
  }
  if (S_ISREG (st.st_mode)) {
    *size_rtn = st.st_size;
    return 0;
  }
  if (S_ISBLK (st.st_mode)) {
    uint64_t size;

    if (ioctl (fd, BLKGETSIZE64, &size) < 0) {
      vmferry_set_error_errno (errno, "%s: ioctl BLKGETSIZE64", name);
      return -1;
    }
    *size_rtn = size;
    return 0;
  }
  vmferry_set_error ("%s: not a regular file or block device", name);
  return -1;
}

static uint64_t
round_down (uint64_t v)
{
  return v - v % VMFERRY_BLOCK_SIZE;
}

/* Round V (at most INT64_MAX, so this cannot overflow) up to a block,
 * capped at SIZE.
 */
static uint64_t
round_up_capped (uint64_t v, uint64_t size)
{
  uint64_t r = v + (VMFERRY_BLOCK_SIZE - v % VMFERRY_BLOCK_SIZE)
                   % VMFERRY_BLOCK_SIZE;

  return r < size ? r : size;
}

static bool
seek_unsupported (int err)
{
  return err == EINVAL || err == EOPNOTSUPP || err == ENOTSUP;
}

int
vmferry_next_data (int fd, const char *name, uint64_t pos, uint64_t size,
                   uint64_t *start_rtn, uint64_t *end_rtn)
{
  off_t data, hole;

  /* Nothing can lie beyond what off_t addresses. */
  if (size > INT64_MAX)
    size = INT64_MAX;
  if (pos >= size)
    return 0;

  data = lseek (fd, pos, SEEK_DATA);
  if (data < 0) {
    if (errno == ENXIO)         /* only a hole from POS to the end */
      return 0;
    if (seek_unsupported (errno))
      goto all_data;
    vmferry_set_error_errno (errno, "%s: lseek SEEK_DATA at %" PRIu64,
                             name, pos);
    return -1;
  }
  if ((uint64_t) data >= size)
    return 0;

  hole = lseek (fd, data, SEEK_HOLE);
  if (hole < 0) {
    /* ENXIO: the file shrank under us; take the data to SIZE and let the
     * reader find out.
     */
    if (errno == ENXIO || seek_unsupported (errno))
      hole = size;
    else {
      vmferry_set_error_errno (errno, "%s: lseek SEEK_HOLE at %" PRIu64,
                               name, (uint64_t) data);
      return -1;
    }
  }
  *start_rtn = round_down (data);
  *end_rtn = round_up_capped ((uint64_t) hole, size);
  return 1;

 all_data:
  *start_rtn = round_down (pos);
  *end_rtn = size;
  return 1;
}

int
vmferry_allocated_bytes (int fd, uint64_t *rtn)
{
  struct stat st;

  if (fstat (fd, &st) < 0) {
    vmferry_set_error_errno (errno, "fstat");
    return -1;
  }
  *rtn = S_ISBLK (st.st_mode) ? 0 : (uint64_t) st.st_blocks * 512;
  return 0;
}
