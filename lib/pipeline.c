/* vmferry: an ordered worker pipeline (see pipeline.h). */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "pipeline.h"

/* A slot goes FREE -> FILLING (the producer's) -> READY (a worker's to
 * take) -> WORKING -> DONE (the collector's) -> FREE, or from FILLING
 * straight to DONE for a job without work.  Each move is made by the
 * one thread whose state it leaves.
 */
enum slot_state {
  SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_WORKING, SLOT_DONE
};

struct vmferry_pipeline {
  const struct vmferry_pipeline_ops *ops;
  void *opaque;
  unsigned nr_workers, depth;
  size_t job_size;
  unsigned char *jobs;          /* depth * job_size */
  enum slot_state *state;

  pthread_mutex_t lock;
  pthread_cond_t cond;          /* any state change; few waiters, so one */
  uint64_t head;                /* next slot the producer fills */
  uint64_t next_work;           /* next slot a worker looks at */
  uint64_t tail;                /* next slot the collector finishes */
  bool closing, failed, aborted;
  struct vmferry_saved_error error;     /* the first failure's */

  pthread_t *workers;
  unsigned started_workers;
  pthread_t collector;
  bool collector_started;

  void (*stall) (void *opaque, bool waiting);
  void *stall_opaque;
};

static void *
job_at (struct vmferry_pipeline *p, uint64_t i)
{
  return p->jobs + (i % p->depth) * p->job_size;
}

/* Move slot I from state FROM to TO; the lock held.  The collector
 * finishes in order what the producer filled in order, and the ring
 * holds at most DEPTH jobs between them.
 */
static void
move_locked (struct vmferry_pipeline *p, uint64_t i, enum slot_state from,
             enum slot_state to)
{
  assert (p->tail <= p->head && p->head - p->tail <= p->depth);
  assert (p->state[i % p->depth] == from);
  p->state[i % p->depth] = to;
}

/* Record the failure of a job run in this thread; first one wins. */
static void
fail_locked (struct vmferry_pipeline *p)
{
  if (!p->failed) {
    p->failed = true;
    vmferry_save_error (&p->error);
  }
  pthread_cond_broadcast (&p->cond);
}

struct worker_arg {
  struct vmferry_pipeline *p;
  unsigned id;
};

static void *
worker_thread (void *argp)
{
  struct worker_arg *arg = argp;
  struct vmferry_pipeline *p = arg->p;
  unsigned id = arg->id;

  free (arg);
  pthread_mutex_lock (&p->lock);
  for (;;) {
    uint64_t i;
    void *job;
    int r;

    /* Skip slots that need no work; take the oldest ready one. */
    while (!p->failed && p->next_work < p->head &&
           p->state[p->next_work % p->depth] != SLOT_READY)
      p->next_work++;
    if (p->failed || (p->closing && p->next_work >= p->head))
      break;
    if (p->next_work >= p->head) {
      pthread_cond_wait (&p->cond, &p->lock);
      continue;
    }
    i = p->next_work++;
    move_locked (p, i, SLOT_READY, SLOT_WORKING);
    job = job_at (p, i);
    pthread_mutex_unlock (&p->lock);
    r = p->ops->work (p->opaque, job, id);
    pthread_mutex_lock (&p->lock);
    if (r < 0) {
      fail_locked (p);
      break;
    }
    move_locked (p, i, SLOT_WORKING, SLOT_DONE);
    pthread_cond_broadcast (&p->cond);
  }
  pthread_mutex_unlock (&p->lock);
  return NULL;
}

static void *
collector_thread (void *argp)
{
  struct vmferry_pipeline *p = argp;

  pthread_mutex_lock (&p->lock);
  for (;;) {
    void *job;
    int r;

    if (p->failed)
      break;
    if (p->tail < p->head && p->state[p->tail % p->depth] == SLOT_DONE) {
      job = job_at (p, p->tail);
      pthread_mutex_unlock (&p->lock);
      r = p->ops->done (p->opaque, job);
      pthread_mutex_lock (&p->lock);
      if (r < 0) {
        fail_locked (p);
        break;
      }
      move_locked (p, p->tail, SLOT_DONE, SLOT_FREE);
      p->tail++;
      pthread_cond_broadcast (&p->cond);
      continue;
    }
    if (p->closing && p->tail >= p->head)
      break;
    pthread_cond_wait (&p->cond, &p->lock);
  }
  pthread_mutex_unlock (&p->lock);
  return NULL;
}

unsigned
vmferry_default_threads (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);

  return n > 0 ? (unsigned) n : 1;
}

void
vmferry_pipeline_shape (unsigned threads, unsigned *workers_rtn,
                        unsigned *depth_rtn)
{
  unsigned t = threads ? threads : vmferry_default_threads ();
  unsigned depth = t < (VMFERRY_PIPELINE_MAX_DEPTH - 2) / 2 ? t * 2 + 2
                   : VMFERRY_PIPELINE_MAX_DEPTH;

  *depth_rtn = depth;
  *workers_rtn = t < depth ? t : depth;
}

struct vmferry_pipeline *
vmferry_pipeline_new (const struct vmferry_pipeline_ops *ops, void *opaque,
                      unsigned workers, unsigned depth, size_t job_size)
{
  struct vmferry_pipeline *p = calloc (1, sizeof *p);
  sigset_t all, old;
  int err;

  if (p == NULL)
    goto nomem;
  if (workers < 1)
    workers = 1;
  if (depth < 2)
    depth = 2;
  p->ops = ops;
  p->opaque = opaque;
  p->nr_workers = workers;
  p->depth = depth;
  p->job_size = job_size;
  pthread_mutex_init (&p->lock, NULL);
  pthread_cond_init (&p->cond, NULL);
  p->jobs = calloc (depth, job_size);
  p->state = calloc (depth, sizeof *p->state);
  p->workers = calloc (workers, sizeof *p->workers);
  if (!p->jobs || !p->state || !p->workers)
    goto nomem;
  for (unsigned i = 0; i < depth; i++) {
    if (ops->init && ops->init (opaque, job_at (p, i)) < 0) {
      /* Slots after i were not initialised: fini only the ones before. */
      p->depth = i;
      vmferry_pipeline_free (p);
      return NULL;
    }
  }
  /* The threads take no signals, so that none interrupts a job's system
   * calls: the caller's threads take them (quit.h).
   */
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, &old);
  for (unsigned i = 0; i < workers; i++) {
    struct worker_arg *arg = malloc (sizeof *arg);
    if (arg == NULL)
      goto nomem_threads;
    arg->p = p;
    arg->id = i;
    err = pthread_create (&p->workers[i], NULL, worker_thread, arg);
    if (err) {
      free (arg);
      vmferry_set_error_errno (err, "pthread_create");
      goto threads;
    }
    p->started_workers++;
  }
  err = pthread_create (&p->collector, NULL, collector_thread, p);
  if (err) {
    vmferry_set_error_errno (err, "pthread_create");
    goto threads;
  }
  p->collector_started = true;
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  return p;

 nomem_threads:
  vmferry_set_error_errno (ENOMEM, "pipeline");
 threads:
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    vmferry_pipeline_abort (p);
    vmferry_pipeline_finish (p);
    vmferry_pipeline_free (p);
    vmferry_restore_saved_error (&saved);
  }
  return NULL;
 nomem:
  vmferry_set_error_errno (ENOMEM, "pipeline");
  if (p) {
    p->depth = 0;
    vmferry_pipeline_free (p);
  }
  return NULL;
}

void
vmferry_pipeline_on_stall (struct vmferry_pipeline *p,
                           void (*stall) (void *opaque, bool waiting),
                           void *opaque)
{
  p->stall = stall;
  p->stall_opaque = opaque;
}

void *
vmferry_pipeline_slot (struct vmferry_pipeline *p)
{
  void *job = NULL;
  bool stalled = false;

  pthread_mutex_lock (&p->lock);
  while (!p->failed && p->state[p->head % p->depth] != SLOT_FREE) {
    if (p->stall && !stalled) {
      /* The hook runs without the lock: it may take its own. */
      stalled = true;
      pthread_mutex_unlock (&p->lock);
      p->stall (p->stall_opaque, true);
      pthread_mutex_lock (&p->lock);
      continue;
    }
    pthread_cond_wait (&p->cond, &p->lock);
  }
  if (!p->failed) {
    /* Free: the job DEPTH before it was finished. */
    assert (p->head - p->tail < p->depth);
    move_locked (p, p->head, SLOT_FREE, SLOT_FILLING);
    job = job_at (p, p->head);
  }
  else if (!p->aborted)
    vmferry_restore_saved_error (&p->error);
  pthread_mutex_unlock (&p->lock);
  if (stalled)
    p->stall (p->stall_opaque, false);
  return job;
}

void
vmferry_pipeline_submit (struct vmferry_pipeline *p, void *job, bool work)
{
  pthread_mutex_lock (&p->lock);
  /* The producer fills one slot at a time, always the one at head. */
  assert (job == job_at (p, p->head));
  move_locked (p, p->head, SLOT_FILLING, work ? SLOT_READY : SLOT_DONE);
  p->head++;
  pthread_cond_broadcast (&p->cond);
  pthread_mutex_unlock (&p->lock);
}

void
vmferry_pipeline_abort (struct vmferry_pipeline *p)
{
  pthread_mutex_lock (&p->lock);
  if (!p->failed) {
    p->failed = true;
    p->aborted = true;
  }
  pthread_cond_broadcast (&p->cond);
  pthread_mutex_unlock (&p->lock);
}

int
vmferry_pipeline_finish (struct vmferry_pipeline *p)
{
  bool failed;

  pthread_mutex_lock (&p->lock);
  p->closing = true;
  pthread_cond_broadcast (&p->cond);
  pthread_mutex_unlock (&p->lock);

  for (unsigned i = 0; i < p->started_workers; i++)
    pthread_join (p->workers[i], NULL);
  p->started_workers = 0;
  if (p->collector_started)
    pthread_join (p->collector, NULL);
  p->collector_started = false;

  failed = p->failed;
  if (failed && !p->aborted)
    vmferry_restore_saved_error (&p->error);
  return failed ? -1 : 0;
}

void
vmferry_pipeline_free (struct vmferry_pipeline *p)
{
  if (p == NULL)
    return;
  if (p->ops->fini && p->jobs)
    for (unsigned i = 0; i < p->depth; i++)
      p->ops->fini (p->opaque, job_at (p, i));
  pthread_mutex_destroy (&p->lock);
  pthread_cond_destroy (&p->cond);
  free (p->jobs);
  free (p->state);
  free (p->workers);
  free (p);
}
