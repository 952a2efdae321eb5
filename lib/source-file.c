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

#include "clock.h"
#include "error.h"
#include "extent.h"
#include "log.h"
#include "readmode.h"
#include "source-int.h"
#include "stream.h"           /* VMFERRY_CHUNK_SIZE */

/* A buffered read asks the kernel for this much ahead of the reader,
 * so that the disk reads while the reader digests and hands on.
 */
#define READ_AHEAD ((uint64_t) 16 * 1024 * 1024)

/* Ranges read ahead that were not in the page cache before: only
 * these are dropped behind the reader, never a cache the source did
 * not fill (another reader's, a running domain's).
 */
#define OWNED_MAX 64

struct owned {
  uint64_t start, end;
};

struct file_source {
  struct vmferry_source s;            /* first: the sources' common part */
  int dfd;                            /* the same file with O_DIRECT, or -1 */
  bool use_map;                       /* a regular file: mmap works */
  struct vmferry_readmode rm;         /* O_DIRECT or buffered, timed */
  uint64_t ra_pos;                    /* read ahead up to here */
  uint64_t last_off;                  /* the last read's offset */
  bool timed;                         /* a read from the disk was made */
  struct owned owned[OWNED_MAX];      /* a ring, in file order */
  unsigned own_first, own_count;
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

static long
page_size (void)
{
  static long page;

  if (page == 0)
    page = sysconf (_SC_PAGESIZE);
  return page;
}

/* Is all of the mapping M of MAPLEN bytes (at most a chunk and a page)
 * in the page cache?
 */
static bool
map_cached (void *m, size_t maplen)
{
  unsigned char vec[VMFERRY_CHUNK_SIZE / 4096 + 2];
  size_t pages = (maplen + page_size () - 1) / page_size ();
  bool cached = pages <= sizeof vec && mincore (m, maplen, vec) == 0;

  for (size_t i = 0; cached && i < pages; i++)
    cached = vec[i] & 1;
  return cached;
}

/* Is all of [OFF, OFF+LEN) in the page cache?  LEN is at most a chunk.
 * When the source cannot tell, yes: what is not known to be the
 * source's own is never dropped.
 */
static bool
range_cached (int fd, uint64_t off, size_t len)
{
  uint64_t delta = off % (uint64_t) page_size ();
  size_t maplen = len + delta;
  bool cached;
  void *m;

  m = mmap (NULL, maplen, PROT_READ, MAP_SHARED, fd, (off_t) (off - delta));
  if (m == MAP_FAILED)
    return true;
  cached = map_cached (m, maplen);
  munmap (m, maplen);
  return cached;
}

static void
drop_owned (struct file_source *fs)
{
  struct owned *o = &fs->owned[fs->own_first];

  posix_fadvise (fs->s.fd, (off_t) o->start, (off_t) (o->end - o->start),
                 POSIX_FADV_DONTNEED);
  fs->own_first = (fs->own_first + 1) % OWNED_MAX;
  fs->own_count--;
}

/* Drop what the source read ahead and the reader has read, up to OFF
 * (all of it with OFF UINT64_MAX): it was read(2) into the caller's
 * buffer, never mapped, so nothing holds it.
 */
static void
drop_behind (struct file_source *fs, uint64_t off)
{
  while (fs->own_count > 0 && fs->owned[fs->own_first].end <= off)
    drop_owned (fs);
}

/* Did the source read [OFF, ...) ahead itself? */
static bool
is_owned (const struct file_source *fs, uint64_t off)
{
  for (unsigned i = 0; i < fs->own_count; i++) {
    const struct owned *o = &fs->owned[(fs->own_first + i) % OWNED_MAX];

    if (o->start <= off && off < o->end)
      return true;
  }
  return false;
}

/* Ask the kernel to read the data extents of [FROM, LIMIT) that it
 * has not read yet, in pieces of a chunk, noting those that were not
 * cached before as the source's own.
 */
static void
read_ahead (struct file_source *fs, uint64_t from, uint64_t limit)
{
  struct vmferry_source *s = &fs->s;
  uint64_t start, end;

  if (fs->ra_pos < from)
    fs->ra_pos = from;
  if (limit > s->size)
    limit = s->size;
  while (fs->ra_pos < limit) {
    /* A failure here only means no read ahead. */
    if (vmferry_next_data (s->fd, s->name, fs->ra_pos, limit, &start,
                           &end) != 1) {
      fs->ra_pos = limit;
      return;
    }
    if (start < fs->ra_pos)
      start = fs->ra_pos;
    if (end - start > VMFERRY_CHUNK_SIZE)
      end = start + VMFERRY_CHUNK_SIZE;
    if (!range_cached (s->fd, start, end - start)) {
      posix_fadvise (s->fd, (off_t) start, (off_t) (end - start),
                     POSIX_FADV_WILLNEED);
      if (fs->own_count == OWNED_MAX)
        drop_owned (fs);
      fs->owned[(fs->own_first + fs->own_count) % OWNED_MAX] =
        (struct owned) { start, end };
      fs->own_count++;
    }
    fs->ra_pos = end;
  }
}

/* A read of LEN bytes from the disk took from T0 until now: time it,
 * and say on -v what the timing chose.
 */
static void
note_read (struct file_source *fs, size_t len, double t0)
{
  struct vmferry_readmode *rm = &fs->rm;

  /* The file's first read may wait for its metadata too, and would
   * count against the trial's first turn only.
   */
  if (!fs->timed) {
    fs->timed = true;
    return;
  }
  switch (vmferry_readmode_note (rm, len, vmferry_monotonic () - t0)) {
  case VMFERRY_READMODE_SAME:
    break;
  case VMFERRY_READMODE_CHOSE:
    vmferry_verbose ("%s: reading %s (O_DIRECT %.0f MB/s, buffered "
                     "%.0f MB/s, %" PRIu64 " MiB each way)", fs->s.name,
                     vmferry_read_mode_name (rm->mode),
                     rm->rate[VMFERRY_READ_DIRECT] / 1e6,
                     rm->rate[VMFERRY_READ_BUFFERED] / 1e6,
                     VMFERRY_READMODE_TRIAL >> 20);
    break;
  }
}

/* Make V's data the LEN bytes at OFF.  A chunk that was in the page
 * cache before the source came is mapped, and the digest, the zero
 * test and the compressor read the cache itself (measured here: 1.5
 * GB/s with pread into pipeline buffers, 5 GB/s mapped).  Any other
 * chunk is read the way the timing chose (readmode.h): with O_DIRECT
 * into BUF (no page cache filled with data read once: filling it cost
 * ~10 CPU-s per 5 GB on this kind of machine), or read(2) into BUF,
 * the kernel reading READ_AHEAD ahead, and dropped from the cache at
 * once (mapping it instead was slower here: 120-400 MB/s where read(2)
 * did 400-1000, and 2.7 CPU-s per 2 GiB).  Without O_DIRECT (tmpfs)
 * a regular file is mapped, a block device read(2).
 */
static int
file_read (struct vmferry_source *s, uint64_t off, size_t len,
           unsigned char *buf, struct vmferry_source_view *v)
{
  struct file_source *fs = (struct file_source *) s;
  enum vmferry_read_mode mode = fs->rm.mode;
  double t0 = vmferry_monotonic ();
  uint64_t delta;
  size_t maplen;
  void *m;

  /* A second pass (a tar's map, then its data) reads ahead anew. */
  if (off < fs->last_off) {
    drop_behind (fs, UINT64_MAX);
    fs->ra_pos = 0;
  }
  fs->last_off = off;
  if (mode == VMFERRY_READ_BUFFERED && fs->dfd >= 0) {
    /* In a trial, not into the other way's turn. */
    uint64_t ahead = READ_AHEAD, left = vmferry_readmode_turn_left (&fs->rm);

    if (fs->rm.trial)
      ahead = left > len ? left - len : 0;
    read_ahead (fs, off, off + len + ahead);
  }
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
    delta = off % (uint64_t) page_size ();
    maplen = len + delta;
    m = mmap (NULL, maplen, PROT_READ, MAP_SHARED, s->fd,
              (off_t) (off - delta));
    if (m != MAP_FAILED) {
      if (fs->dfd < 0 || (map_cached (m, maplen) && !is_owned (fs, off))) {
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
  if (mode == VMFERRY_READ_DIRECT && fs->dfd >= 0 && off % 4096 == 0 &&
      !is_owned (fs, off)) {
    /* Whole blocks; the file's end may cut the last one short. */
    size_t alen = (len + 4095) & ~(size_t) 4095;
    ssize_t n;

    do
      n = pread (fs->dfd, buf, alen, (off_t) off);
    while (n < 0 && errno == EINTR);
    if (n >= 0 && (size_t) n >= len) {
      note_read (fs, len, t0);
      return 0;
    }
    /* Refused by the file system: read the ordinary way from now on
     * (a short read is the file's end, which the ordinary read reports).
     */
    if (n < 0 && errno == EINVAL) {
      close (fs->dfd);
      fs->dfd = -1;
      vmferry_readmode_init (&fs->rm, VMFERRY_READ_CHOICE_BUFFERED);
    }
  }
  if (vmferry_pread_full (s->fd, s->name, buf, len, off) < 0)
    return -1;
  /* In O_DIRECT's turn, what the buffered turn read ahead is no rate. */
  if (mode == VMFERRY_READ_BUFFERED)
    note_read (fs, len, t0);
  drop_behind (fs, off + len);
  return 0;
}

static void
file_close (struct vmferry_source *s)
{
  struct file_source *fs = (struct file_source *) s;

  if (s->fd >= 0)
    drop_behind (fs, UINT64_MAX);
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
  const char *env = getenv ("VMFERRY_READ_MODE");
  enum vmferry_read_choice choice;
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
  if (vmferry_read_choice_parse (env, &choice) < 0) {
    vmferry_set_error ("VMFERRY_READ_MODE=%s: not auto, direct or buffered",
                       env);
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
  {
    char self[64];
    struct stat dst;

    /* O_DIRECT on the open file itself, not on its path. */
    snprintf (self, sizeof self, "/proc/self/fd/%d", fs->s.fd);
    fs->dfd = open (self, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fs->dfd >= 0 && (fstat (fs->dfd, &dst) < 0 ||
                         dst.st_ino != st.st_ino || dst.st_dev != st.st_dev ||
                         dst.st_rdev != st.st_rdev)) {
      close (fs->dfd);
      fs->dfd = -1;
    }
  }
  vmferry_readmode_init (&fs->rm, fs->dfd < 0 ? VMFERRY_READ_CHOICE_BUFFERED
                                              : choice);
  if (choice != VMFERRY_READ_CHOICE_AUTO)
    vmferry_debug ("%s: reading %s (VMFERRY_READ_MODE)", path,
                   vmferry_read_mode_name (fs->rm.mode));
  return &fs->s;

 err:
  file_close (&fs->s);
  return NULL;
}
