/* Unit tests for lib/pipeline.c: parallel work, ordered completion,
 * failure propagation, flat memory (a fixed ring of slots).
 */
#include "config.h"

#include "unit.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "pipeline.h"

struct job {
  uint64_t n;
  uint64_t square;
  char *buf;
};

struct state {
  uint64_t next_done;
  uint64_t fail_work_at, fail_done_at;   /* UINT64_MAX: never */
  int inits, finis;
  bool out_of_order;
};

static int
job_init (void *opaque, void *jobp)
{
  struct state *s = opaque;
  struct job *j = jobp;

  s->inits++;
  j->buf = malloc (4096);
  return j->buf ? 0 : -1;
}

static void
job_fini (void *opaque, void *jobp)
{
  struct state *s = opaque;
  struct job *j = jobp;

  s->finis++;
  free (j->buf);
}

static int
job_work (void *opaque, void *jobp, unsigned worker)
{
  struct state *s = opaque;
  struct job *j = jobp;
  struct timespec ts = { 0, (j->n * 7919 % 5) * 20000 };

  (void) worker;
  nanosleep (&ts, NULL);        /* finish out of order */
  if (j->n == s->fail_work_at) {
    vmferry_set_error ("job %llu: work failed", (unsigned long long) j->n);
    return -1;
  }
  j->square = j->n * j->n;
  return 0;
}

static int
job_done (void *opaque, void *jobp)
{
  struct state *s = opaque;
  struct job *j = jobp;

  if (j->n != s->next_done || j->square != j->n * j->n)
    s->out_of_order = true;
  if (j->n == s->fail_done_at) {
    vmferry_set_error ("job %llu: done failed", (unsigned long long) j->n);
    return -1;
  }
  s->next_done++;
  return 0;
}

static const struct vmferry_pipeline_ops ops = {
  .init = job_init, .fini = job_fini, .work = job_work, .done = job_done,
};

static int
run (struct state *s, uint64_t n, unsigned workers)
{
  struct vmferry_pipeline *p = vmferry_pipeline_new (&ops, s, workers, 5, sizeof (struct job));
  int r;

  ck_assert_ptr_nonnull (p);
  for (uint64_t i = 0; i < n; i++) {
    struct job *j = vmferry_pipeline_slot (p);
    if (j == NULL)
      break;
    j->n = i;
    j->square = (i % 3 == 0) ? i * i : 0;
    /* Every third job needs no work: it goes straight to the collector. */
    vmferry_pipeline_submit (p, j, i % 3 != 0);
  }
  r = vmferry_pipeline_finish (p);
  vmferry_pipeline_free (p);
  return r;
}

START_TEST (test_ordered)
{
  for (unsigned workers = 1; workers <= 4; workers++) {
    struct state s = { .fail_work_at = UINT64_MAX, .fail_done_at = UINT64_MAX };
    ck_assert_int_eq (run (&s, 2000, workers), 0);
    ck_assert (!s.out_of_order);
    ck_assert_uint_eq (s.next_done, 2000);
    ck_assert_int_eq (s.inits, 5);
    ck_assert_int_eq (s.finis, 5);
  }
}
END_TEST

START_TEST (test_work_failure)
{
  struct state s = { .fail_work_at = 500, .fail_done_at = UINT64_MAX };

  ck_assert_int_eq (run (&s, 2000, 3), -1);
  ck_assert_str_eq (vmferry_get_error (), "job 500: work failed");
  ck_assert_uint_le (s.next_done, 500);
  ck_assert (!s.out_of_order);
}
END_TEST

START_TEST (test_done_failure)
{
  struct state s = { .fail_work_at = UINT64_MAX, .fail_done_at = 77 };

  ck_assert_int_eq (run (&s, 2000, 2), -1);
  ck_assert_str_eq (vmferry_get_error (), "job 77: done failed");
  ck_assert_uint_eq (s.next_done, 77);
}
END_TEST

START_TEST (test_abort_keeps_producer_error)
{
  struct state s = { .fail_work_at = UINT64_MAX, .fail_done_at = UINT64_MAX };
  struct vmferry_pipeline *p = vmferry_pipeline_new (&ops, &s, 2, 4, sizeof (struct job));
  struct job *j = vmferry_pipeline_slot (p);

  j->n = 0;
  vmferry_pipeline_submit (p, j, true);
  vmferry_set_error ("disk.img: read: Input/output error");
  vmferry_pipeline_abort (p);
  ck_assert_ptr_null (vmferry_pipeline_slot (p));
  ck_assert_int_eq (vmferry_pipeline_finish (p), -1);
  ck_assert_str_eq (vmferry_get_error (), "disk.img: read: Input/output error");
  vmferry_pipeline_free (p);
}
END_TEST

/* Two slots per worker and two more, at most the cap; never more
 * workers than slots, whatever --threads asks.
 */
START_TEST (test_shape)
{
  static const unsigned want[][3] = {
    /* threads, workers, depth */
    { 1, 1, 4 }, { 2, 2, 6 }, { 4, 4, 10 }, { 5, 5, 12 }, { 12, 12, 12 },
    { 16, 12, 12 }, { 64, 12, 12 },
  };
  unsigned workers, depth;

  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    vmferry_pipeline_shape (want[i][0], &workers, &depth);
    ck_assert_msg (workers == want[i][1] && depth == want[i][2],
                   "--threads %u: %u workers, %u slots", want[i][0], workers, depth);
  }
  /* 0: one worker per CPU, within the same bounds. */
  vmferry_pipeline_shape (0, &workers, &depth);
  ck_assert_uint_ge (workers, 1);
  ck_assert_uint_le (workers, depth);
  ck_assert_uint_le (depth, VMFERRY_PIPELINE_MAX_DEPTH);
}
END_TEST

VMFERRY_UNIT_MAIN ("pipeline", test_ordered, test_work_failure,
                   test_done_failure, test_abort_keeps_producer_error, test_shape)
