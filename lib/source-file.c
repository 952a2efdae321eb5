/* vmferry: the file source: a regular file or block device read by fd
 * (see source.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "extent.h"
#include "source-int.h"
#include "stream.h"           /* VMFERRY_CHUNK_SIZE */

struct file_source {
  struct vmferry_source s;            /* first: the sources' common part */
  int dfd;                            /* the same file with O_DIRECT, or -1 */
  bool use_map;                       /* a regular file: mmap works */
};

/* What a file that is not a disk is, for the refusal. */
static const char *
file_kind (mode_t mode)
{
  if (S_ISFIFO (mode))
    return "a FIFO (named pipe)";
  if (S_ISSOCK (mode))
    return "a socket";
  if (S_ISCHR (mode))
    return "a character device";
  if (S_ISDIR (mode))
    return "a directory";
  if (S_ISLNK (mode))
    return "a symbolic link";
  return "of an unknown type";
}

/* Only a regular file or a block device holds a disk: anything else is
 * refused before it is opened (opening a FIFO waits for a writer, for
 * ever; opening some character devices acts, e.g. a watchdog's), and
 * the open neither blocks nor takes a terminal, in case the path
 * changed since.
 */
int
vmferry_source_open_fd (const char *path, bool nofollow)
{
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  struct stat st, fst;
  int fd;

  if ((nofollow ? lstat (path, &st) : stat (path, &st)) < 0) {
    vmferry_set_error_errno (errno, "%s: cannot open", path);
    return -1;
  }
  if (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode)) {
    vmferry_set_error ("%s is %s, not a regular file or a block device: "
                       "it cannot be exported", path, file_kind (st.st_mode));
    return -1;
  }
  fd = open (path, flags | (nofollow ? O_NOFOLLOW : 0));
  if (fd < 0) {
    vmferry_set_error_errno (errno, "%s: cannot open", path);
    return -1;
  }
  if (fstat (fd, &fst) < 0 || fst.st_dev != st.st_dev ||
      fst.st_ino != st.st_ino) {
    vmferry_set_error ("%s was replaced while it was being opened", path);
    close (fd);
    return -1;
  }
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

static int
file_next_data (struct vmferry_source *s, uint64_t pos, uint64_t size,
                uint64_t *start_rtn, uint64_t *end_rtn, bool *zero_rtn)
{
  (void) zero_rtn;              /* SEEK_DATA tells no zeros */
  return vmferry_next_data (s->fd, s->name, pos, size, start_rtn, end_rtn);
}

/* Make V's data the LEN bytes at OFF, without the copy into a buffer
 * that read(2) makes.  Where the chunk is in the page cache, it is
 * mapped, and the digest, the zero test and the compressor read the
 * cache itself (measured here: 1.5 GB/s with pread into pipeline
 * buffers, 5 GB/s mapped).  Where it is not, it is read with O_DIRECT
 * into BUF: the disk writes there directly, and no page cache is
 * filled with data read once (filling it cost ~10 CPU-s per 5 GB on
 * this kind of machine).  Without O_DIRECT, or unaligned, it is
 * read(2).
 */
static int
file_read (struct vmferry_source *s, uint64_t off, size_t len,
           unsigned char *buf, struct vmferry_source_view *v)
{
  struct file_source *fs = (struct file_source *) s;
  static long page;
  unsigned char vec[VMFERRY_CHUNK_SIZE / 4096 + 2];
  uint64_t delta;
  size_t maplen, pages, i;
  void *m;

  if (page == 0)
    page = sysconf (_SC_PAGESIZE);
  if (fs->use_map) {
    struct stat st;

    /* Touching a mapping past the end of the file kills with SIGBUS:
     * a file that shrank since the plan is an error, as for read(2).
     */
    if (fstat (s->fd, &st) == 0 && (uint64_t) st.st_size < off + len) {
      vmferry_set_error ("%s: the file shrank to %" PRIu64 " bytes while it "
                         "was exported", s->name, (uint64_t) st.st_size);
      return -1;
    }
    delta = off % (uint64_t) page;
    maplen = len + delta;
    pages = (maplen + page - 1) / page;
    m = mmap (NULL, maplen, PROT_READ, MAP_SHARED, s->fd,
              (off_t) (off - delta));
    if (m != MAP_FAILED) {
      bool cached = pages <= sizeof vec && mincore (m, maplen, vec) == 0;
      for (i = 0; cached && i < pages; i++)
        cached = vec[i] & 1;
      if (cached || fs->dfd < 0) {
        madvise (m, maplen, MADV_POPULATE_READ);
        v->map = m;
        v->map_len = maplen;
        v->data = (const unsigned char *) m + delta;
        return 0;
      }
      munmap (m, maplen);
    }
  }
  v->data = buf;
  if (fs->dfd >= 0 && off % 4096 == 0) {
    /* Whole blocks; the file's end may cut the last one short. */
    size_t alen = (len + 4095) & ~(size_t) 4095;
    ssize_t n;

    do
      n = pread (fs->dfd, buf, alen, (off_t) off);
    while (n < 0 && errno == EINTR);
    if (n >= 0 && (size_t) n >= len)
      return 0;
    /* Refused by the file system: read the ordinary way from now on
     * (a short read is the file's end, which the ordinary read reports).
     */
    if (n < 0 && errno == EINVAL) {
      close (fs->dfd);
      fs->dfd = -1;
    }
  }
  return vmferry_pread_full (s->fd, s->name, buf, len, off);
}

static void
file_close (struct vmferry_source *s)
{
  struct file_source *fs = (struct file_source *) s;

  if (fs->dfd >= 0)
    close (fs->dfd);
  if (s->fd >= 0)
    close (s->fd);
  free (s->name);
  free (fs);
}

static const struct vmferry_source_ops file_ops = {
  .next_data = file_next_data,
  .read = file_read,
  .close = file_close,
};

struct vmferry_source *
vmferry_source_open_file (const char *path, bool nofollow)
{
  struct file_source *fs = calloc (1, sizeof *fs);
  struct stat st;

  if (fs == NULL) {
    vmferry_set_error_errno (errno, "%s", path);
    return NULL;
  }
  fs->s.ops = &file_ops;
  fs->s.fd = -1;
  fs->dfd = -1;
  if (!(fs->s.name = strdup (path))) {
    vmferry_set_error_errno (errno, "%s", path);
    goto err;
  }
  fs->s.fd = vmferry_source_open_fd (path, nofollow);
  if (fs->s.fd < 0)
    goto err;
  if (fstat (fs->s.fd, &st) < 0) {
    vmferry_set_error_errno (errno, "%s: fstat", path);
    goto err;
  }
  if (vmferry_file_size (fs->s.fd, path, &fs->s.size) < 0)
    goto err;
  posix_fadvise (fs->s.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  fs->use_map = S_ISREG (st.st_mode);
  if (fs->use_map) {
    char self[64];
    struct stat dst;

    /* O_DIRECT on the open file itself, not on its path. */
    snprintf (self, sizeof self, "/proc/self/fd/%d", fs->s.fd);
    fs->dfd = open (self, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fs->dfd >= 0 && (fstat (fs->dfd, &dst) < 0 ||
                         dst.st_ino != st.st_ino || dst.st_dev != st.st_dev)) {
      close (fs->dfd);
      fs->dfd = -1;
    }
  }
  return &fs->s;

 err:
  file_close (&fs->s);
  return NULL;
}
