/* vmferry-sync: a full scan of a disk, its reads ahead of its digests
 * (see sync-scan.h).
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "full-rw.h"
#include "source.h"
#include "stream.h"             /* VMFERRY_BLOCK_SIZE */
#include "sync-scan.h"

#define NWIN VMFERRY_SYNC_SCAN_WINDOWS

struct vmferry_sync_scan {
  uint64_t size, nwin;          /* bytes, windows of the disk */
  size_t window;
  vmferry_sync_scan_fill fill;
  void *opaque;
  unsigned char *buf[NWIN];     /* window k is in buf[k % NWIN] */
  uint64_t read[NWIN];          /* what its fill read */
  pthread_t thread;
  bool started;

  pthread_mutex_t lock;
  pthread_cond_t cond;          /* any change below */
  /* Windows [taken, filled) are read and wait for the caller; the
   * caller holds window taken - 1 (when taken > 0) until its next call;
   * the reader fills window filled once filled - taken < NWIN - 1,
   * i.e. never one whose buffer the caller holds.
   */
  uint64_t taken, filled;
  bool failed;                  /* window filled failed: ERR says why */
  bool stop;                    /* the caller is done: stop reading */
  struct vmferry_saved_error err;
};

int
vmferry_sync_scan_fill_source (void *opaque, uint64_t off, uint64_t end,
                               unsigned char *win, uint64_t *read)
{
  struct vmferry_source *src = opaque;
  uint64_t pos = off, ds, de;
  int more;

  while ((more = vmferry_source_next_data (src, pos, end, &ds, &de,
                                           NULL)) == 1) {
    struct vmferry_source_view v = { 0 };
    unsigned char *p = win + (ds - off);

    memset (win + (pos - off), 0, ds - pos);
    if (vmferry_source_read (src, ds, de - ds, p, &v) < 0)
      return -1;
    /* A file's chunk in the page cache comes as a mapping. */
    if (v.data != p)
      memcpy (p, v.data, de - ds);
    vmferry_source_view_release (&v);
    *read += de - ds;
    pos = de;
  }
  if (more == 0)
    memset (win + (pos - off), 0, end - pos);
  return more;
}

static void *
reader (void *arg)
{
  struct vmferry_sync_scan *s = arg;

  pthread_mutex_lock (&s->lock);
  while (!s->stop && !s->failed && s->filled < s->nwin) {
    uint64_t k = s->filled, off, end;
    size_t slot = k % NWIN;
    int r;

    if (s->filled - s->taken >= NWIN - 1) {
      pthread_cond_wait (&s->cond, &s->lock);
      continue;
    }
    pthread_mutex_unlock (&s->lock);

    off = k * s->window;
    end = s->size - off < s->window ? s->size : off + s->window;
    s->read[slot] = 0;
    r = s->fill (s->opaque, off, end, s->buf[slot], &s->read[slot]);

    pthread_mutex_lock (&s->lock);
    if (r < 0) {
      vmferry_save_error (&s->err);
      s->failed = true;
    }
    else
      s->filled++;
    pthread_cond_broadcast (&s->cond);
  }
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

struct vmferry_sync_scan *
vmferry_sync_scan_start (uint64_t size, size_t window,
                         vmferry_sync_scan_fill fill, void *opaque)
{
  struct vmferry_sync_scan *s;
  sigset_t all, old;
  int e;

  assert (window > 0 && window % VMFERRY_BLOCK_SIZE == 0);
  s = calloc (1, sizeof *s);
  if (s == NULL) {
    vmferry_set_error_errno (ENOMEM, "scan: malloc");
    return NULL;
  }
  s->size = size;
  s->window = window;
  s->nwin = size / window + (size % window != 0);
  s->fill = fill;
  s->opaque = opaque;
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  for (size_t i = 0; i < NWIN; i++)
    if (!(s->buf[i] = vmferry_alloc_direct (window + VMFERRY_DIRECT_ALIGN))) {
      vmferry_set_error_errno (errno, "scan: malloc of %zu bytes", window);
      vmferry_sync_scan_stop (s);
      return NULL;
    }
  /* Signals are for the caller's thread, which checks its quit flag. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  e = pthread_create (&s->thread, NULL, reader, s);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (e != 0) {
    vmferry_set_error_errno (e, "scan: pthread_create");
    vmferry_sync_scan_stop (s);
    return NULL;
  }
  s->started = true;
  return s;
}

int
vmferry_sync_scan_next (struct vmferry_sync_scan *s, uint64_t *off_rtn,
                        uint64_t *end_rtn, const unsigned char **data_rtn,
                        uint64_t *read_rtn)
{
  uint64_t k;
  int r;

  pthread_mutex_lock (&s->lock);
  assert (s->taken <= s->filled && s->filled - s->taken <= NWIN - 1);
  while (s->taken == s->filled && !s->failed && s->taken < s->nwin)
    pthread_cond_wait (&s->cond, &s->lock);
  if (s->taken < s->filled) {
    k = s->taken++;
    /* The window held till now is free for the reader. */
    pthread_cond_broadcast (&s->cond);
    *off_rtn = k * s->window;
    *end_rtn = s->size - *off_rtn < s->window ? s->size
                                              : *off_rtn + s->window;
    *data_rtn = s->buf[k % NWIN];
    *read_rtn = s->read[k % NWIN];
    r = 1;
  }
  else if (s->failed) {
    vmferry_restore_saved_error (&s->err);
    r = -1;
  }
  else
    r = 0;
  pthread_mutex_unlock (&s->lock);
  return r;
}

void
vmferry_sync_scan_stop (struct vmferry_sync_scan *s)
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
  for (size_t i = 0; i < NWIN; i++)
    free (s->buf[i]);
  pthread_cond_destroy (&s->cond);
  pthread_mutex_destroy (&s->lock);
  free (s);
}
