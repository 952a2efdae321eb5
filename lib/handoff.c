/* vmferry: a pipe between two threads, without the kernel (see handoff.h). */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "error.h"
#include "handoff.h"
#include "quit.h"

struct vmferry_handoff {
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* any change; one waiter on each side */
  char *name;
  /* Without a buffer: the write in progress, what is left of it. */
  const struct iovec *iov;
  int iovcnt;
  size_t iov_off;               /* taken of iov[0] */
  /* With one: a ring of size bytes, used of them from head on.  Only
   * the writer fills the free part and only the reader empties the used
   * part, so each copies outside the lock.
   */
  char *buf;
  size_t size, head, used;
  bool write_closed, read_closed;
  /* With one: readable once the reader has closed, so that a fill
   * waiting for input wakes up (an eventfd, never read).
   */
  int wake_fd;
};

struct vmferry_handoff *
vmferry_handoff_new (const char *name, size_t buffer)
{
  struct vmferry_handoff *h = calloc (1, sizeof *h);

  if (h == NULL || (h->name = strdup (name)) == NULL) {
    free (h);
    vmferry_set_error_errno (ENOMEM, "%s", name);
    return NULL;
  }
  h->wake_fd = -1;
  if (buffer > 0 && (h->buf = malloc (buffer)) == NULL) {
    vmferry_set_error_errno (ENOMEM,
                             "%s: a buffer of %zu bytes (give a smaller "
                             "--buffer)", name, buffer);
    free (h->name);
    free (h);
    return NULL;
  }
  if (buffer > 0 &&
      (h->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    vmferry_set_error_errno (errno, "%s: eventfd", name);
    free (h->buf);
    free (h->name);
    free (h);
    return NULL;
  }
  h->size = buffer;
  pthread_mutex_init (&h->lock, NULL);
  pthread_cond_init (&h->cond, NULL);
  return h;
}

void
vmferry_handoff_free (struct vmferry_handoff *h)
{
  if (h == NULL)
    return;
  pthread_mutex_destroy (&h->lock);
  pthread_cond_destroy (&h->cond);
  if (h->wake_fd >= 0)
    close (h->wake_fd);
  free (h->buf);
  free (h->name);
  free (h);
}

/* Wait for room in the ring: *AT is its first free byte, and the
 * result how many free bytes follow it without wrapping (at most MAX);
 * 0 once the reader has closed.  The writer fills them outside the lock
 * and then calls ring_commit.
 */
static size_t
ring_room (struct vmferry_handoff *h, size_t max, char **at)
{
  size_t tail, k;

  pthread_mutex_lock (&h->lock);
  while (h->used == h->size && !h->read_closed)
    pthread_cond_wait (&h->cond, &h->lock);
  assert (h->head < h->size && h->used <= h->size);
  tail = (h->head + h->used) % h->size;
  k = h->read_closed ? 0 : h->size - h->used;
  pthread_mutex_unlock (&h->lock);
  if (k > h->size - tail)
    k = h->size - tail;
  *at = h->buf + tail;
  return k < max ? k : max;
}

static void
ring_commit (struct vmferry_handoff *h, size_t k)
{
  pthread_mutex_lock (&h->lock);
  /* The reader only empties: the room ring_room saw is still there. */
  assert (k <= h->size - h->used);
  if (h->used == 0)
    pthread_cond_broadcast (&h->cond);  /* the reader may wait */
  h->used += k;
  pthread_mutex_unlock (&h->lock);
}

/* Copy LEN bytes of SRC into the ring.  False once the reader has
 * closed.
 */
static bool
ring_put (struct vmferry_handoff *h, const char *src, size_t len)
{
  while (len > 0) {
    char *at;
    size_t k = ring_room (h, len, &at);

    if (k == 0)
      return false;
    memcpy (at, src, k);
    ring_commit (h, k);
    src += k;
    len -= k;
  }
  return true;
}

int
vmferry_handoff_fill (struct vmferry_handoff *h, int fd, const char *fd_name)
{
  for (;;) {
    /* A signal that asks to quit (quit.h) ends the input as a cut
     * link would: the reader sees its end.
     */
    struct pollfd pfd[3] = {
      { .fd = fd, .events = POLLIN },
      { .fd = h->wake_fd, .events = POLLIN },
      { .fd = vmferry_quit_fd (), .events = POLLIN },
    };
    char *at;
    /* At most 1 MiB at a time, so that the reader starts early on a
     * file as on a pipe.
     */
    size_t k = ring_room (h, 1 << 20, &at);
    ssize_t n;

    if (k == 0)
      return 0;
    /* The input may stay open after the stream's end (or never send
     * it): wait for it or for the reader to close, whichever comes
     * first.  read(2) does not block once poll said the input is ready.
     */
    if (poll (pfd, 3, -1) < 0) {
      if (errno == EINTR)
        continue;
      vmferry_set_error_errno (errno, "%s: poll", fd_name);
      return -1;
    }
    if (pfd[1].revents || pfd[2].revents)
      return 0;
    do
      n = read (fd, at, k);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      vmferry_set_error_errno (errno, "%s: read", fd_name);
      return -1;
    }
    if (n == 0)
      return 0;
    ring_commit (h, (size_t) n);
  }
}

static ssize_t
ring_get (struct vmferry_handoff *h, char *dst, size_t len)
{
  size_t got = 0;

  pthread_mutex_lock (&h->lock);
  while (h->used == 0 && !h->write_closed)
    pthread_cond_wait (&h->cond, &h->lock);
  /* At most two pieces: up to the ring's end, then from its start. */
  for (int i = 0; i < 2 && got < len && h->used > 0; i++) {
    size_t head = h->head, k = h->used;

    pthread_mutex_unlock (&h->lock);
    if (k > h->size - head)
      k = h->size - head;
    if (k > len - got)
      k = len - got;
    memcpy (dst + got, h->buf + head, k);
    got += k;
    pthread_mutex_lock (&h->lock);
    /* The writer only fills: what was used here still is. */
    assert (h->head == head && k <= h->used);
    if (h->used == h->size)
      pthread_cond_broadcast (&h->cond);        /* the writer may wait */
    h->head = (head + k) % h->size;
    h->used -= k;
  }
  pthread_mutex_unlock (&h->lock);
  return got;
}

int
vmferry_handoff_writev (void *hp, const struct iovec *iov, int iovcnt)
{
  struct vmferry_handoff *h = hp;
  int r = 0;

  if (h->buf) {
    for (int i = 0; i < iovcnt && r == 0; i++)
      if (!ring_put (h, iov[i].iov_base, iov[i].iov_len))
        r = -1;
    goto done;
  }
  /* Empty entries would only make the reader wake up for nothing. */
  while (iovcnt > 0 && iov->iov_len == 0) {
    iov++;
    iovcnt--;
  }
  pthread_mutex_lock (&h->lock);
  /* One writer: the write before this one was taken whole or failed. */
  assert (h->iovcnt == 0);
  h->iov = iov;
  h->iovcnt = iovcnt;
  h->iov_off = 0;
  pthread_cond_broadcast (&h->cond);
  while (h->iovcnt > 0 && !h->read_closed)
    pthread_cond_wait (&h->cond, &h->lock);
  if (h->iovcnt > 0) {
    h->iovcnt = 0;
    r = -1;
  }
  pthread_mutex_unlock (&h->lock);
 done:
  if (r < 0)
    vmferry_set_error_errno (EPIPE, "%s: write", h->name);
  return r;
}

ssize_t
vmferry_handoff_read (void *hp, void *buf, size_t len)
{
  struct vmferry_handoff *h = hp;
  size_t got = 0;

  if (h->buf)
    return ring_get (h, buf, len);
  pthread_mutex_lock (&h->lock);
  while (h->iovcnt == 0 && !h->write_closed)
    pthread_cond_wait (&h->cond, &h->lock);
  while (got < len && h->iovcnt > 0) {
    size_t k = h->iov->iov_len - h->iov_off;

    /* The entry at hand always has bytes left (empty ones skipped). */
    assert (h->iov_off < h->iov->iov_len);
    if (k > len - got)
      k = len - got;
    memcpy ((char *) buf + got, (const char *) h->iov->iov_base + h->iov_off,
            k);
    got += k;
    h->iov_off += k;
    if (h->iov_off == h->iov->iov_len) {
      h->iov++;
      h->iovcnt--;
      h->iov_off = 0;
      while (h->iovcnt > 0 && h->iov->iov_len == 0) {
        h->iov++;
        h->iovcnt--;
      }
    }
  }
  if (h->iovcnt == 0)
    pthread_cond_broadcast (&h->cond);  /* the writer's buffers are free */
  pthread_mutex_unlock (&h->lock);
  return got;
}

/* Close one end (*END is h->write_closed or h->read_closed), waking the
 * other.
 */
static void
close_end (struct vmferry_handoff *h, bool *end)
{
  pthread_mutex_lock (&h->lock);
  *end = true;
  pthread_cond_broadcast (&h->cond);
  pthread_mutex_unlock (&h->lock);
}

void
vmferry_handoff_close_write (struct vmferry_handoff *h)
{
  close_end (h, &h->write_closed);
}

void
vmferry_handoff_close_read (struct vmferry_handoff *h)
{
  static const uint64_t one = 1;

  close_end (h, &h->read_closed);
  /* A fill waiting in poll(2) for input wakes up and ends.  The write
   * fails only when the counter is full, which a few closes never make.
   */
  if (h->wake_fd >= 0) {
    ssize_t n = write (h->wake_fd, &one, sizeof one);
    (void) n;
  }
}

static void *
read_ahead_thread (void *arg)
{
  struct vmferry_read_ahead *ra = arg;

  ra->rc = vmferry_handoff_fill (ra->h, ra->fd, ra->name);
  if (ra->rc < 0) {
    snprintf (ra->err, sizeof ra->err, "%s", vmferry_get_error ());
    ra->errnum = vmferry_get_errno ();
  }
  vmferry_handoff_close_write (ra->h);
  return NULL;
}

int
vmferry_read_ahead_start (struct vmferry_read_ahead *ra, int fd,
                          const char *name, size_t buffer)
{
  int err;

  ra->fd = fd;
  ra->name = name;
  ra->started = false;
  if ((ra->h = vmferry_handoff_new (name, buffer)) == NULL)
    return -1;
  err = pthread_create (&ra->thread, NULL, read_ahead_thread, ra);
  if (err) {
    vmferry_set_error_errno (err, "%s: cannot start a thread", name);
    return -1;
  }
  ra->started = true;
  return 0;
}

void
vmferry_read_ahead_stop (struct vmferry_read_ahead *ra, bool failed)
{
  if (ra->h == NULL)
    return;
  vmferry_handoff_close_read (ra->h);
  if (ra->started) {
    pthread_join (ra->thread, NULL);
    if (failed && ra->rc < 0)
      vmferry_restore_error (ra->err, ra->errnum);
  }
  vmferry_handoff_free (ra->h);
  ra->h = NULL;
  ra->started = false;
}
