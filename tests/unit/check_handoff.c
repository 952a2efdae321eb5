/* Unit tests for lib/handoff.c: bytes arrive whole and in order whatever
 * the sizes on each side, the end of input is seen, and a reader that
 * stops makes the writer fail with EPIPE instead of hanging; each without
 * a buffer and with rings of an odd size (so that writes and reads wrap
 * around its end) and of a large one.  A buffered writer runs ahead of
 * its reader by the ring's size, no more.
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "handoff.h"
#include "quit.h"
#include "stream.h"

#define TOTAL (3 * 1024 * 1024 + 12345)

/* The loop tests run once with each. */
static const size_t buffers[] = { 0, 1000, 1 << 20 };
#define NR_BUFFERS (int) (sizeof buffers / sizeof buffers[0])

static unsigned char
pattern (size_t i)
{
  return (unsigned char) (i * 131 + (i >> 11));
}

struct writer {
  struct vmferry_handoff *h;
  size_t written;               /* bytes handed over */
  int ret, errnum;
  char err[VMFERRY_ERROR_MAX];
  size_t limit;                 /* stop writing after this many */
};

/* Writes TOTAL bytes (or up to limit) of the pattern in writevs of
 * varying shape: several entries, some of them empty.
 */
static void *
write_pattern (void *arg)
{
  struct writer *wr = arg;
  static unsigned char buf[TOTAL];
  size_t off = 0, step = 1;

  for (size_t i = 0; i < TOTAL; i++)
    buf[i] = pattern (i);
  wr->ret = 0;
  while (off < TOTAL && off < wr->limit) {
    struct iovec iov[3];
    size_t a = step % 7000, b = step % 3 == 0 ? 0 : step % 50000;

    if (a > TOTAL - off) a = TOTAL - off;
    if (b > TOTAL - off - a) b = TOTAL - off - a;
    iov[0] = (struct iovec) { buf + off, a };
    iov[1] = (struct iovec) { buf + off + a, 0 };
    iov[2] = (struct iovec) { buf + off + a, b };
    if (vmferry_handoff_writev (wr->h, iov, 3) < 0) {
      wr->ret = -1;
      wr->errnum = vmferry_get_errno ();
      snprintf (wr->err, sizeof wr->err, "%s", vmferry_get_error ());
      break;
    }
    off += a + b;
    wr->written = off;
    step = step * 7 + 3;
  }
  vmferry_handoff_close_write (wr->h);
  return NULL;
}

START_TEST (test_bytes_in_order)
{
  struct writer wr = { .limit = SIZE_MAX };
  static unsigned char got[TOTAL + 1];
  size_t n = 0, want = 1;
  pthread_t t;
  ssize_t k;

  wr.h = vmferry_handoff_new ("export", buffers[_i]);
  ck_assert_ptr_nonnull (wr.h);
  ck_assert_int_eq (pthread_create (&t, NULL, write_pattern, &wr), 0);
  /* Reads of every size, from one byte to more than a write holds. */
  while ((k = vmferry_handoff_read (wr.h, got + n, want < TOTAL + 1 - n ? want
                                    : TOTAL + 1 - n)) > 0) {
    n += k;
    want = want * 3 % 100003 + 1;
  }
  ck_assert_int_eq (k, 0);
  ck_assert_uint_eq (n, TOTAL);
  for (size_t i = 0; i < TOTAL; i++)
    if (got[i] != pattern (i))
      ck_abort_msg ("byte %zu: %u, not %u", i, got[i], pattern (i));
  /* The end stays the end. */
  ck_assert_int_eq (vmferry_handoff_read (wr.h, got, 10), 0);
  ck_assert_int_eq (pthread_join (t, NULL), 0);
  ck_assert_int_eq (wr.ret, 0);
  vmferry_handoff_free (wr.h);
}
END_TEST

/* A reader that stops: the writer waiting in writev fails with EPIPE,
 * naming its end, and so does every later write.
 */
START_TEST (test_reader_stops)
{
  struct writer wr = { .limit = SIZE_MAX };
  unsigned char buf[1000];
  struct iovec iov = { buf, sizeof buf };
  pthread_t t;

  wr.h = vmferry_handoff_new ("export", buffers[_i]);
  ck_assert_ptr_nonnull (wr.h);
  ck_assert_int_eq (pthread_create (&t, NULL, write_pattern, &wr), 0);
  ck_assert_int_eq (vmferry_handoff_read (wr.h, buf, sizeof buf) > 0, 1);
  vmferry_handoff_close_read (wr.h);
  ck_assert_int_eq (pthread_join (t, NULL), 0);
  ck_assert_int_eq (wr.ret, -1);
  ck_assert_int_eq (wr.errnum, EPIPE);
  ck_assert_str_eq (wr.err, "export: write: Broken pipe");
  ck_assert_uint_lt (wr.written, TOTAL);
  ck_assert_int_eq (vmferry_handoff_writev (wr.h, &iov, 1), -1);
  ck_assert_int_eq (vmferry_get_errno (), EPIPE);
  vmferry_handoff_free (wr.h);
}
END_TEST

/* A writer that ends early: the reader sees the end of its input after
 * what was written, nothing more.
 */
START_TEST (test_writer_ends)
{
  struct writer wr = { .limit = 100000 };
  static unsigned char got[TOTAL];
  size_t n = 0;
  pthread_t t;
  ssize_t k;

  wr.h = vmferry_handoff_new ("export", buffers[_i]);
  ck_assert_int_eq (pthread_create (&t, NULL, write_pattern, &wr), 0);
  while ((k = vmferry_handoff_read (wr.h, got + n, sizeof got - n)) > 0)
    n += k;
  ck_assert_int_eq (pthread_join (t, NULL), 0);
  ck_assert_int_eq (wr.ret, 0);
  ck_assert_uint_eq (n, wr.written);
  ck_assert_uint_ge (n, 100000);
  vmferry_handoff_free (wr.h);
}
END_TEST

/* A stream through a handoff, as vmferry-migrate hands it on: read back
 * record by record, the same records.
 */
struct stream_writer {
  struct vmferry_handoff *h;
  int ret;
};

static void *
write_stream (void *arg)
{
  struct stream_writer *sw = arg;
  struct vmferry_stream_writer *w = vmferry_stream_writer_new_fn (vmferry_handoff_writev,
                                                                  sw->h, "export");
  static unsigned char data[VMFERRY_CHUNK_SIZE];
  unsigned char digest[16] = { 1 };

  memset (data, 'v', sizeof data);
  sw->ret = (vmferry_stream_write_header (w) < 0 ||
             vmferry_stream_write_manifest (w, "{}") < 0 ||
             vmferry_stream_write_xml (w, "<domain/>") < 0 ||
             vmferry_stream_write_file_begin (w, 0, 2 * sizeof data) < 0 ||
             vmferry_stream_write_data (w, 0, 0, sizeof data, 0, data, sizeof data) < 0 ||
             vmferry_stream_write_data (w, 0, sizeof data, sizeof data, 0, data,
                                        sizeof data) < 0 ||
             vmferry_stream_write_file_end (w, 0, digest) < 0 ||
             vmferry_stream_write_end (w, 1) < 0) ? -1 : 0;
  vmferry_stream_writer_free (w);
  vmferry_handoff_close_write (sw->h);
  return NULL;
}

START_TEST (test_stream_through)
{
  struct stream_writer sw;
  struct vmferry_stream_reader *r;
  struct vmferry_record rec;
  uint64_t data = 0;
  size_t n = 0;
  pthread_t t;
  int ret;

  sw.h = vmferry_handoff_new ("export", buffers[_i]);
  r = vmferry_stream_reader_new_fn (vmferry_handoff_read, sw.h, "export");
  ck_assert_int_eq (pthread_create (&t, NULL, write_stream, &sw), 0);
  while ((ret = vmferry_stream_read_record (r, &rec)) == 1) {
    n++;
    if (rec.type == VMFERRY_REC_DATA) {
      data += rec.length;
      ck_assert_int_eq (((const unsigned char *) rec.payload)[rec.payload_len - 1], 'v');
    }
  }
  ck_assert_msg (ret == 0, "%s", vmferry_get_error ());
  ck_assert_uint_eq (n, 8);
  ck_assert_uint_eq (data, 2 * VMFERRY_CHUNK_SIZE);
  ck_assert_int_eq (pthread_join (t, NULL), 0);
  ck_assert_int_eq (sw.ret, 0);
  vmferry_stream_reader_free (r);
  vmferry_handoff_free (sw.h);
}
END_TEST

/* With a ring, writes return before anything is read, up to its size;
 * the next write waits for the reader.  What is in the ring when the
 * writer closes is still read; when the reader closes, later writes fail.
 */
static void *
write_ahead (void *arg)
{
  struct writer *wr = arg;
  unsigned char buf[300];
  struct iovec iov[2] = { { buf, 100 }, { buf + 100, 200 } };

  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = pattern (i);
  wr->ret = 0;
  for (int i = 0; i < 4 && wr->ret == 0; i++) {
    wr->ret = vmferry_handoff_writev (wr->h, iov, 2);
    if (wr->ret == 0)
      __atomic_store_n (&wr->written, wr->written + sizeof buf, __ATOMIC_SEQ_CST);
  }
  vmferry_handoff_close_write (wr->h);
  return NULL;
}

START_TEST (test_ring_runs_ahead)
{
  struct writer wr = { .limit = SIZE_MAX };
  unsigned char got[1200];
  size_t n = 0;
  pthread_t t;
  ssize_t k;

  wr.h = vmferry_handoff_new ("export", 1000);
  ck_assert_ptr_nonnull (wr.h);
  ck_assert_int_eq (pthread_create (&t, NULL, write_ahead, &wr), 0);
  /* Three writes of 300 fit; the fourth waits for room. */
  while (__atomic_load_n (&wr.written, __ATOMIC_SEQ_CST) < 900)
    sched_yield ();
  ck_assert_uint_eq (wr.written, 900);
  while ((k = vmferry_handoff_read (wr.h, got + n, sizeof got - n)) > 0)
    n += k;
  ck_assert_int_eq (pthread_join (t, NULL), 0);
  ck_assert_int_eq (wr.ret, 0);
  ck_assert_uint_eq (n, 1200);
  for (size_t i = 0; i < n; i++)
    ck_assert_uint_eq (got[i], pattern (i % 300));
  vmferry_handoff_free (wr.h);

  /* A reader that closes with bytes in the ring: the next write fails. */
  wr = (struct writer) { .limit = SIZE_MAX };
  wr.h = vmferry_handoff_new ("export", 1000);
  ck_assert_int_eq (vmferry_handoff_writev (wr.h, &(struct iovec) { got, 10 }, 1), 0);
  vmferry_handoff_close_read (wr.h);
  ck_assert_int_eq (vmferry_handoff_writev (wr.h, &(struct iovec) { got, 10 }, 1), -1);
  ck_assert_int_eq (vmferry_get_errno (), EPIPE);
  vmferry_handoff_free (wr.h);
}
END_TEST

/* vmferry_handoff_fill: a pipe's bytes through the ring, whole and in
 * order; a read that fails is an error naming the input; a fill waiting
 * for input that does not come ends when the reader closes, without
 * being cancelled (vmferry-send stops its read-ahead thread so).
 */
struct filler {
  struct vmferry_handoff *h;
  int fd, ret;
  char err[VMFERRY_ERROR_MAX];
};

static void *
fill_thread (void *arg)
{
  struct filler *f = arg;

  f->ret = vmferry_handoff_fill (f->h, f->fd, "pipe");
  if (f->ret < 0)
    snprintf (f->err, sizeof f->err, "%s", vmferry_get_error ());
  vmferry_handoff_close_write (f->h);
  return NULL;
}

static void *
write_fd (void *arg)
{
  int *fds = arg;
  static unsigned char buf[TOTAL];
  size_t off = 0;

  for (size_t i = 0; i < TOTAL; i++)
    buf[i] = pattern (i);
  while (off < TOTAL) {
    ssize_t n = write (fds[1], buf + off, TOTAL - off);

    if (n <= 0)
      break;
    off += n;
  }
  close (fds[1]);
  return NULL;
}

START_TEST (test_fill_from_fd)
{
  static unsigned char got[TOTAL + 1];
  struct filler f = { 0 };
  int fds[2];
  pthread_t tw, tf;
  size_t n = 0;
  ssize_t k;

  ck_assert_int_eq (pipe (fds), 0);
  f.h = vmferry_handoff_new ("export", buffers[_i]);
  f.fd = fds[0];
  ck_assert_int_eq (pthread_create (&tw, NULL, write_fd, fds), 0);
  ck_assert_int_eq (pthread_create (&tf, NULL, fill_thread, &f), 0);
  while ((k = vmferry_handoff_read (f.h, got + n, 65537)) > 0)
    n += k;
  ck_assert_int_eq (pthread_join (tf, NULL), 0);
  ck_assert_int_eq (pthread_join (tw, NULL), 0);
  ck_assert_int_eq (f.ret, 0);
  ck_assert_uint_eq (n, TOTAL);
  for (size_t i = 0; i < TOTAL; i++)
    if (got[i] != pattern (i))
      ck_abort_msg ("byte %zu: %u, not %u", i, got[i], pattern (i));
  close (fds[0]);
  vmferry_handoff_free (f.h);

  /* Nothing comes, the input stays open: the reader closes, and the
   * fill waiting for input ends with 0.  (Without the wake-up the join
   * waits for ever and the test times out.)
   */
  ck_assert_int_eq (pipe (fds), 0);
  f = (struct filler) { .h = vmferry_handoff_new ("export", buffers[_i]), .fd = fds[0] };
  ck_assert_int_eq (pthread_create (&tf, NULL, fill_thread, &f), 0);
  vmferry_handoff_close_read (f.h);
  ck_assert_int_eq (pthread_join (tf, NULL), 0);
  ck_assert_int_eq (f.ret, 0);

  /* Some input, then silence: the reader takes it, closes, and the fill
   * ends; the write end is still open throughout.
   */
  vmferry_handoff_free (f.h);
  f = (struct filler) { .h = vmferry_handoff_new ("export", buffers[_i]), .fd = fds[0] };
  ck_assert_int_eq (write (fds[1], "stream", 6), 6);
  ck_assert_int_eq (pthread_create (&tf, NULL, fill_thread, &f), 0);
  for (n = 0; n < 6; n += k)
    ck_assert_int_gt (k = vmferry_handoff_read (f.h, got + n, 6 - n), 0);
  ck_assert_int_eq (memcmp (got, "stream", 6), 0);
  vmferry_handoff_close_read (f.h);
  ck_assert_int_eq (pthread_join (tf, NULL), 0);
  ck_assert_int_eq (f.ret, 0);
  close (fds[0]);
  close (fds[1]);
  vmferry_handoff_free (f.h);

  /* A directory cannot be read. */
  f = (struct filler) { .h = vmferry_handoff_new ("export", buffers[_i]) };
  f.fd = open ("/", O_RDONLY | O_DIRECTORY);
  ck_assert_int_ge (f.fd, 0);
  fill_thread (&f);
  ck_assert_int_eq (f.ret, -1);
  ck_assert_str_eq (f.err, "pipe: read: Is a directory");
  ck_assert_int_eq (vmferry_handoff_read (f.h, got, 10), 0);
  close (f.fd);
  vmferry_handoff_free (f.h);
}
END_TEST

/* A signal that asks to quit (quit.h) ends a fill waiting for input
 * that does not come, as a cut input: the reader sees the end of what
 * came before it (vmferry-import's read-ahead, which then keeps its
 * resume state).  Without the quit pipe in the fill's poll the join
 * waits for ever and the test times out.
 */
START_TEST (test_fill_ends_on_quit)
{
  struct filler f = { 0 };
  char got[16];
  int fds[2];
  pthread_t tf;
  size_t n;
  ssize_t k;

  ck_assert_int_eq (vmferry_quit_on (SIGUSR1, false), 0);
  ck_assert_int_eq (pipe (fds), 0);
  f.h = vmferry_handoff_new ("stdin", 1 << 20);
  f.fd = fds[0];
  ck_assert_int_eq (write (fds[1], "stream", 6), 6);
  ck_assert_int_eq (pthread_create (&tf, NULL, fill_thread, &f), 0);
  for (n = 0; n < 6; n += k)
    ck_assert_int_gt (k = vmferry_handoff_read (f.h, got + n, 6 - n), 0);
  ck_assert_int_eq (memcmp (got, "stream", 6), 0);
  ck_assert_int_eq (raise (SIGUSR1), 0);
  ck_assert_int_eq (pthread_join (tf, NULL), 0);
  ck_assert_int_eq (f.ret, 0);
  ck_assert_int_eq (vmferry_handoff_read (f.h, got, sizeof got), 0);
  close (fds[0]);
  close (fds[1]);
  vmferry_handoff_free (f.h);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("handoff");
  TCase *tc = tcase_create ("core");

  tcase_set_timeout (tc, 60);
  tcase_add_loop_test (tc, test_bytes_in_order, 0, NR_BUFFERS);
  tcase_add_loop_test (tc, test_reader_stops, 0, NR_BUFFERS);
  tcase_add_loop_test (tc, test_writer_ends, 0, NR_BUFFERS);
  tcase_add_loop_test (tc, test_stream_through, 0, NR_BUFFERS);
  tcase_add_test (tc, test_ring_runs_ahead);
  tcase_add_loop_test (tc, test_fill_from_fd, 1, NR_BUFFERS);   /* with a ring */
  tcase_add_test (tc, test_fill_ends_on_quit);
  suite_add_tcase (s, tc);
  return vmferry_run_suite (s);
}
