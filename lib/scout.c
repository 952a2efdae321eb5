/* vmferry: the export's scout (see scout.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "extent.h"
#include "iszero.h"
#include "scout.h"
#include "stream.h"

/* One read of the scout.  Small, so that a read in flight when the
 * reader starts again delays it little (~2 ms at this disk's speed).
 */
#define SCOUT_PIECE (1024 * 1024)

/* Zero runs remembered ahead of the reader.  Only runs of at least a
 * chunk are kept (a shorter one cannot hold a chunk the reader skips), so
 * the table covers at least 16 GiB of zeros; when it is full the scout
 * waits for the reader to pass some.
 */
#define SCOUT_RANGES 4096

/* Outside the reader's stalls the scout reads only while it pays: at
 * most this much data that was not zero, plus twice the zeros it found.
 */
#define SCOUT_BUDGET ((uint64_t) 64 * 1024 * 1024)

struct range {
  uint32_t file;
  uint64_t start, end;
};

/* Where the scout reads: a file, its O_DIRECT descriptor, the next
 * position, the end of the extent of data it is in, and the run of zeros
 * it is in (RUN_END == RUN_START: none; in the table once a chunk long).
 */
struct cursor {
  uint32_t file, fd_file;
  int fd;
  uint64_t pos, ext_end;
  uint64_t run_start, run_end;
  bool run_listed;
};

struct vmferry_scout {
  char **paths;
  uint64_t *sizes;
  uint64_t *scanned;            /* how far the later cursor read each file */
  uint32_t nr;
  unsigned char *buf;           /* SCOUT_PIECE, aligned for O_DIRECT */

  pthread_t thread;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
  bool stalled;                 /* the reader waits for its output */
  bool reading;                 /* the reader is reading: keep off the disk */
  bool idle;                    /* the scout may read but has nothing to */
  uint32_t rfile;               /* the reader has taken everything */
  uint64_t rpos;                /* before (rfile, rpos) */
  struct range ranges[SCOUT_RANGES];  /* sorted, disjoint */
  unsigned count;
  uint64_t zero, data;          /* bytes the scout found zero, and not */
  uint64_t skipped;
};

/* (F1, O1) comes before (F2, O2) in stream order. */
static bool
before (uint32_t f1, uint64_t o1, uint32_t f2, uint64_t o2)
{
  return f1 < f2 || (f1 == f2 && o1 < o2);
}

/* Index of the first range not before (FILE, START). */
static unsigned
find_range (const struct vmferry_scout *s, uint32_t file, uint64_t start)
{
  unsigned lo = 0, hi = s->count;

  while (lo < hi) {
    unsigned mid = (lo + hi) / 2;
    if (before (s->ranges[mid].file, s->ranges[mid].start, file, start))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Note that [POS, POS+LEN) of C's file holds only zeros (ZERO), or
 * not.  Called locked.
 */
static void
note_piece (struct vmferry_scout *s, struct cursor *c, bool zero, uint64_t len)
{
  unsigned i;

  if (!zero) {
    s->data += len;
    c->run_end = c->run_start;
    return;
  }
  s->zero += len;
  if (c->run_end != c->pos || c->run_end == c->run_start) {
    c->run_start = c->pos;
    c->run_listed = false;
    /* A run the other cursor listed may end right here: carry it on. */
    i = find_range (s, c->file, c->pos);
    if (i > 0 && s->ranges[i - 1].file == c->file &&
        s->ranges[i - 1].end == c->pos) {
      c->run_start = s->ranges[i - 1].start;
      c->run_listed = true;
    }
  }
  c->run_end = c->pos + len;
  if (c->run_listed) {
    i = find_range (s, c->file, c->run_start);
    if (i < s->count && s->ranges[i].file == c->file &&
        s->ranges[i].start == c->run_start)
      s->ranges[i].end = c->run_end;
  }
  else if (c->run_end - c->run_start >= VMFERRY_CHUNK_SIZE &&
           s->count < SCOUT_RANGES) {
    i = find_range (s, c->file, c->run_start);
    memmove (&s->ranges[i + 1], &s->ranges[i],
             (s->count - i) * sizeof s->ranges[0]);
    s->ranges[i] = (struct range) { c->file, c->run_start, c->run_end };
    s->count++;
    c->run_listed = true;
  }
}

/* Read the next piece at C with O_DIRECT and tell whether it is all
 * zero: 1 or 0 with C->pos and *LEN_RTN set to the piece.  -1 when the
 * file has no more data, or cannot be read this way (the reader then
 * does without the scout there).  Unlocked.
 */
static int
next_piece (struct vmferry_scout *s, struct cursor *c, size_t *len_rtn)
{
  uint64_t start = c->pos;
  size_t len, alen;
  ssize_t n;

  if (c->fd_file != c->file) {
    if (c->fd >= 0)
      close (c->fd);
    /* Not blocking: a path made a FIFO since the plan must not hang us
     * (its pread fails, and the scout leaves that file alone).
     */
    c->fd = s->paths[c->file] ? open (s->paths[c->file], O_RDONLY | O_DIRECT |
                                      O_CLOEXEC | O_NONBLOCK | O_NOCTTY) : -1;
    c->fd_file = c->file;
  }
  if (c->fd < 0)
    return -1;
  if (c->pos % VMFERRY_BLOCK_SIZE)
    c->pos += VMFERRY_BLOCK_SIZE - c->pos % VMFERRY_BLOCK_SIZE;
  if (c->pos >= c->ext_end &&
      vmferry_next_data (c->fd, s->paths[c->file], c->pos, s->sizes[c->file],
                         &start, &c->ext_end) != 1)
    return -1;
  if (start > c->pos)
    c->pos = start;
  len = c->ext_end - c->pos < SCOUT_PIECE ? c->ext_end - c->pos : SCOUT_PIECE;
  alen = (len + 4095) & ~(size_t) 4095;   /* the file's end may cut it short */
  do
    n = pread (c->fd, s->buf, alen, (off_t) c->pos);
  while (n < 0 && errno == EINTR);
  if (n < 0 || (size_t) n < len)
    return -1;
  *len_rtn = len;
  return vmferry_is_zero (s->buf, len);
}

static void
move_cursor (struct cursor *c, uint32_t file, uint64_t pos)
{
  c->file = file;
  c->pos = pos;
  c->ext_end = 0;
  c->run_end = c->run_start;
}

/* The cursor to read with next, or NULL.  Files after the reader's come
 * first: what the reader reaches soon is not worth racing it for.  Then
 * the rest of the reader's own file, ahead of it.  Called locked.
 */
static struct cursor *
pick_cursor (struct vmferry_scout *s, struct cursor *later, struct cursor *near)
{
  if (later->file <= s->rfile)
    move_cursor (later, s->rfile + 1, 0);
  if (later->file < s->nr)
    return later;
  if (near->file != s->rfile ||
      before (near->file, near->pos, s->rfile, s->rpos))
    move_cursor (near, s->rfile, s->rpos);
  /* Not again what the later cursor read before the reader got here. */
  if (near->file < s->nr && near->pos < s->scanned[near->file])
    near->pos = s->scanned[near->file];
  return near->file < s->nr && near->pos != UINT64_MAX ? near : NULL;
}

/* May the scout read now? */
static bool
may_read (const struct vmferry_scout *s)
{
  if (s->reading || s->count == SCOUT_RANGES)
    return false;
  return s->stalled || s->data <= SCOUT_BUDGET + 2 * s->zero;
}

static void *
scout_thread (void *arg)
{
  struct vmferry_scout *s = arg;
  struct cursor later = { .fd_file = UINT32_MAX, .fd = -1 };
  struct cursor near = { .fd_file = UINT32_MAX, .fd = -1 };
  size_t len = 0;
  int z;

  pthread_mutex_lock (&s->lock);
  for (;;) {
    /* Set by the wait below unless the scout stops. */
    struct cursor *c = NULL;

    while (!s->stop &&
           (!may_read (s) || !(c = pick_cursor (s, &later, &near)))) {
      /* Nothing left to read for now: tell vmferry_scout_drain. */
      s->idle = may_read (s);
      if (s->idle)
        pthread_cond_broadcast (&s->cond);
      pthread_cond_wait (&s->cond, &s->lock);
    }
    s->idle = false;
    if (s->stop)
      break;
    pthread_mutex_unlock (&s->lock);
    z = next_piece (s, c, &len);
    pthread_mutex_lock (&s->lock);
    if (z < 0) {
      /* Done with this file: the near cursor waits for the reader's next. */
      if (c == &later) {
        s->scanned[c->file] = UINT64_MAX;
        move_cursor (c, c->file + 1, 0);
      }
      else
        c->pos = UINT64_MAX;
      continue;
    }
    /* The reader may have passed this piece while it was read. */
    if (!before (c->file, c->pos, s->rfile, s->rpos))
      note_piece (s, c, z == 1, len);
    c->pos += len;
    if (c == &later)
      s->scanned[c->file] = c->pos;
  }
  pthread_mutex_unlock (&s->lock);
  if (later.fd >= 0)
    close (later.fd);
  if (near.fd >= 0)
    close (near.fd);
  return NULL;
}

struct vmferry_scout *
vmferry_scout_new (const char *const *paths, const uint64_t *sizes, uint32_t nr)
{
  struct vmferry_scout *s = calloc (1, sizeof *s);
  sigset_t all, old;
  int err;

  if (s == NULL)
    goto nomem;
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  s->nr = nr;
  s->paths = calloc (nr ? nr : 1, sizeof *s->paths);
  s->sizes = calloc (nr ? nr : 1, sizeof *s->sizes);
  s->scanned = calloc (nr ? nr : 1, sizeof *s->scanned);
  if (!s->paths || !s->sizes || !s->scanned ||
      posix_memalign ((void **) &s->buf, 4096, SCOUT_PIECE) != 0)
    goto nomem;
  for (uint32_t i = 0; i < nr; i++) {
    s->sizes[i] = sizes[i];
    if (paths[i] && !(s->paths[i] = strdup (paths[i])))
      goto nomem;
  }
  /* Signals are for the thread that reads the disks. */
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, &old);
  err = pthread_create (&s->thread, NULL, scout_thread, s);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (err) {
    vmferry_set_error_errno (err, "pthread_create");
    vmferry_scout_free (s);
    return NULL;
  }
  s->started = true;
  return s;

 nomem:
  vmferry_set_error_errno (ENOMEM, "scout");
  vmferry_scout_free (s);
  return NULL;
}

void
vmferry_scout_stall (void *scout, bool waiting)
{
  struct vmferry_scout *s = scout;

  pthread_mutex_lock (&s->lock);
  s->stalled = waiting;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
}

void
vmferry_scout_reading (struct vmferry_scout *s, bool reading)
{
  if (s == NULL)
    return;
  pthread_mutex_lock (&s->lock);
  s->reading = reading;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
}

bool
vmferry_scout_zero (struct vmferry_scout *s, uint32_t file, uint64_t off,
                    uint64_t len)
{
  unsigned passed = 0;
  bool hit;

  if (s == NULL)
    return false;
  pthread_mutex_lock (&s->lock);
  if (before (s->rfile, s->rpos, file, off + len)) {
    s->rfile = file;
    s->rpos = off + len;
  }
  /* Drop the runs the reader has passed: a prefix of the table. */
  while (passed < s->count &&
         before (s->ranges[passed].file, s->ranges[passed].end, file, off + 1))
    passed++;
  if (passed) {
    s->count -= passed;
    memmove (&s->ranges[0], &s->ranges[passed], s->count * sizeof s->ranges[0]);
  }
  hit = s->count > 0 && s->ranges[0].file == file &&
        s->ranges[0].start <= off && off + len <= s->ranges[0].end;
  if (hit)
    s->skipped += len;
  pthread_mutex_unlock (&s->lock);
  return hit;
}

void
vmferry_scout_drain (struct vmferry_scout *s)
{
  pthread_mutex_lock (&s->lock);
  while (!s->idle)
    pthread_cond_wait (&s->cond, &s->lock);
  pthread_mutex_unlock (&s->lock);
}

uint64_t
vmferry_scout_skipped (const struct vmferry_scout *s)
{
  return s ? s->skipped : 0;
}

void
vmferry_scout_free (struct vmferry_scout *s)
{
  if (s == NULL)
    return;
  if (s->started) {
    pthread_mutex_lock (&s->lock);
    s->stop = true;
    pthread_cond_broadcast (&s->cond);
    pthread_mutex_unlock (&s->lock);
    pthread_join (s->thread, NULL);
  }
  for (uint32_t i = 0; s->paths && i < s->nr; i++)
    free (s->paths[i]);
  free (s->paths);
  free (s->sizes);
  free (s->scanned);
  free (s->buf);
  pthread_mutex_destroy (&s->lock);
  pthread_cond_destroy (&s->cond);
  free (s);
}
