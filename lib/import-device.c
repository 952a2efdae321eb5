/* vmferry: a raw disk written straight onto its block device (import
 * --disk TARGET=DEVICE of a raw disk with no backing file and no
 * conversion).
 *
 * No file of the disk's size is made anywhere: the workers write the
 * data records at their offsets on the device, and the reader thread,
 * which sees the records in offset order (the validator refuses any that
 * go back), zeroes every range between them before it hands the next
 * one on, so no worker ever writes where a zeroing runs.  The device
 * held something before and nothing says it reads as zeros, so every
 * range the stream does not carry as data is zeroed, once:
 *
 *   - fallocate (PUNCH_HOLE) first: on a block device the kernel turns
 *     it into a write-zeroes that may unmap, and refuses it (EOPNOTSUPP)
 *     unless the device guarantees that the range then reads as zeros
 *     (a thin LV, a loop device over a sparse file, an NVMe namespace
 *     with deallocate-reads-zeros);
 *   - else BLKZEROOUT, which the kernel does with the device's own
 *     write-zeroes or, without one, by writing zero pages;
 *   - else (a range not aligned to the logical block) pwrite of zeros.
 *
 * BLKDISCARD is never used: a discard does not promise zeros (the
 * kernel dropped discard_zeroes_data), which is why nbdcopy and nbdkit's
 * file plugin zero a block device with the same two calls in this order.
 *
 * At the file's end the device is flushed, its page cache dropped, and
 * the first SIZE bytes are read back from the device and checked against
 * the stream's digest (import-write.c) before anything is defined.  A
 * device write is not resumable: the state names the device (so a later
 * run can say what a kill left there) and a later run writes it again.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "digest.h"
#include "error.h"
#include "fault.h"
#include "full-rw.h"
#include "import-int.h"
#include "log.h"
#include "progress.h"

#define ZEROS_SIZE ((size_t) 1024 * 1024)

/* Whether disk F of IM is written straight onto its device: raw as it
 * arrives and as it stays.  Anything else (a chain, a qcow2 disk, a
 * --format other than raw) is received into a file and converted onto
 * the device by qemu-img (import-convert.c).
 */
bool
vmferry_import_device_direct (const struct importer *im,
                              const struct import_file *f)
{
  const char *format = im->opts->format;

  return f->device && f->backing < 0 && f->format &&
    strcmp (f->format, "raw") == 0 &&
    (format == NULL || strcmp (format, "raw") == 0);
}

int
vmferry_import_device_begin (struct importer *im, uint32_t idx)
{
  struct import_file *f = &im->files[idx];
  char proc[64];

  /* The device as checked and held open with O_EXCL (dev_fd), never
   * looked up again by its name.
   */
  f->fd = fcntl (f->dev_fd, F_DUPFD_CLOEXEC, 0);
  if (f->fd < 0) {
    vmferry_set_error_errno (errno, "disk %s: %s", f->target, f->device);
    return -1;
  }
  if (ioctl (f->fd, BLKSSZGET, &f->dev_sector) < 0 || f->dev_sector <= 0)
    f->dev_sector = 512;
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", f->dev_fd);
  f->dfd = open (proc, O_WRONLY | O_DIRECT | O_CLOEXEC);
  if (f->dfd < 0)
    vmferry_debug ("%s: no O_DIRECT (%m): writing through the page cache",
                   f->device);
  f->zeroed_to = 0;
  f->zero_how = 0;
  f->dev_touched = true;
  /* Named in the state before the first byte is written: a kill from
   * now on leaves a device whose earlier content is gone, and the next
   * run says so.
   */
  if (im->keep_state) {
    struct vmferry_resume_file *rf = &im->st.files[idx];
    char *dup = strdup (f->device);

    if (dup == NULL) {
      vmferry_set_error_errno (ENOMEM, "import");
      return -1;
    }
    pthread_mutex_lock (&im->st_lock);
    free (rf->device);
    rf->device = dup;
    pthread_mutex_unlock (&im->st_lock);
    if (vmferry_import_save_state (im, -1, 0) < 0)
      return -1;
  }
  if (vmferry_fault ("import-device-named") < 0)
    return -1;
  vmferry_verbose ("%s: writing onto %s (its earlier content is overwritten)",
                   f->name, f->device);
  vmferry_progress_begin (im->opts->progress, f->name, f->size);
  f->map = vmferry_map_new (f->size, VMFERRY_MAP_CHUNK_SIZE);
  if (f->map == NULL)
    return -1;
  f->seg_at = vmferry_monotonic ();
  return 0;
}

/* LEN bytes of zeros written at OFF. */
static int
write_zeros (struct import_file *f, uint64_t off, uint64_t len)
{
  static const unsigned char zeros[ZEROS_SIZE];

  while (len > 0) {
    size_t n = len < ZEROS_SIZE ? (size_t) len : ZEROS_SIZE;

    if (vmferry_pwrite_full (f->fd, f->device, zeros, n, off) < 0)
      return -1;
    off += n;
    len -= n;
  }
  return 0;
}

/* How a range is zeroed: from the cheapest that guarantees zeros down;
 * one that the device refuses is not tried again.
 */
enum { ZERO_PUNCH = 0, ZERO_OUT = 1, ZERO_WRITE = 2 };

static int
zero_range (struct import_file *f, uint64_t off, uint64_t len)
{
  uint64_t sector = (uint64_t) f->dev_sector;
  uint64_t head = off, end = off + len;
  uint64_t a_off = (off + sector - 1) / sector * sector;
  uint64_t a_end = end / sector * sector;

  /* The aligned middle by the device, the unaligned edges by hand. */
  if (a_off >= a_end)
    return write_zeros (f, off, len);
  if (a_off > head && write_zeros (f, head, a_off - head) < 0)
    return -1;
  if (a_end < end && write_zeros (f, a_end, end - a_end) < 0)
    return -1;
  off = a_off;
  len = a_end - a_off;
  if (f->zero_how == ZERO_PUNCH) {
    if (fallocate (f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   (off_t) off, (off_t) len) == 0)
      return 0;
    if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EINVAL) {
      vmferry_set_error_errno (errno, "disk %s: %s: zeroing %" PRIu64 "+%"
                               PRIu64, f->target, f->device, off, len);
      return -1;
    }
    vmferry_verbose ("%s: no write-zeroes that unmaps (%m): BLKZEROOUT",
                     f->device);
    f->zero_how = ZERO_OUT;
  }
  if (f->zero_how == ZERO_OUT) {
    uint64_t range[2] = { off, len };

    if (ioctl (f->fd, BLKZEROOUT, range) == 0)
      return 0;
    if (errno != EOPNOTSUPP && errno != ENOTTY) {
      vmferry_set_error_errno (errno, "disk %s: %s: BLKZEROOUT %" PRIu64 "+%"
                               PRIu64, f->target, f->device, off, len);
      return -1;
    }
    vmferry_verbose ("%s: no BLKZEROOUT (%m): writing zeros", f->device);
    f->zero_how = ZERO_WRITE;
  }
  return write_zeros (f, off, len);
}

int
vmferry_import_device_gap (struct importer *im, struct import_file *f,
                           uint64_t to)
{
  (void) im;
  if (to > f->size)
    to = f->size;
  if (to <= f->zeroed_to)
    return 0;
  if (zero_range (f, f->zeroed_to, to - f->zeroed_to) < 0)
    return -1;
  f->zeroed_to = to;
  return vmferry_fault ("import-device-gap");
}

void
vmferry_import_device_data (struct import_file *f, uint64_t end)
{
  if (end > f->zeroed_to)
    f->zeroed_to = end;
}

int
vmferry_import_device_reread (struct import_file *f)
{
  /* Clean after the flush: dropped, so that what is read back comes from
   * the device, not from the pages just written.
   */
  int err = posix_fadvise (f->fd, 0, (off_t) f->size, POSIX_FADV_DONTNEED);

  if (err) {
    vmferry_set_error_errno (err, "disk %s: %s: dropping its cache", f->target,
                             f->device);
    return -1;
  }
  return 0;
}

void
vmferry_import_device_say_lost (const struct importer *im)
{
  for (size_t i = 0; i < im->nr_files; i++) {
    const struct import_file *f = &im->files[i];
    struct vmferry_saved_error saved;

    if (!f->dev_touched)
      continue;
    vmferry_save_error (&saved);
    vmferry_append_error (&saved, "disk %s: %s was %s: what it held before "
                          "is overwritten; an import run again writes the "
                          "disk there in full", f->target, f->device,
                          f->verified ? "written" : "written in part");
  }
}
