/* Unit tests for lib/stripe.c, the receiving side: argument parsing, the
 * rendezvous (joining threads hand pipes over a real Unix socket) and the
 * in-order reassembly of chunks dealt round-robin, with its refusals.
 */
#include "config.h"

#include "unit.h"

#include <endian.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "quit.h"
#include "stripe.h"

#define TOKEN "0123456789abcdef0123456789abcdef"

START_TEST (test_parse)
{
  char token[VMFERRY_STRIPE_TOKEN_LEN + 1];
  unsigned n, i;

  ck_assert_int_eq (vmferry_stripe_parse_stripes ("4:" TOKEN, &n, token), 0);
  ck_assert_uint_eq (n, 4);
  ck_assert_str_eq (token, TOKEN);
  ck_assert_int_eq (vmferry_stripe_parse_join (TOKEN ":3", token, &i), 0);
  ck_assert_uint_eq (i, 3);
  ck_assert_str_eq (token, TOKEN);

  ck_assert_int_eq (vmferry_stripe_parse_stripes ("1:" TOKEN, &n, token), -1);
  ck_assert_int_eq (vmferry_stripe_parse_stripes ("65:" TOKEN, &n, token), -1);
  ck_assert_int_eq (vmferry_stripe_parse_stripes ("4:" TOKEN "0", &n, token), -1);
  ck_assert_int_eq (vmferry_stripe_parse_stripes ("4:../../etc/passwd", &n, token), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "N:TOKEN"));
  ck_assert_int_eq (vmferry_stripe_parse_stripes ("x:" TOKEN, &n, token), -1);
  ck_assert_int_eq (vmferry_stripe_parse_join (TOKEN ":0", token, &i), -1);
  ck_assert_int_eq (vmferry_stripe_parse_join (TOKEN ":", token, &i), -1);
  ck_assert_int_eq (vmferry_stripe_parse_join (TOKEN ":2x", token, &i), -1);
  ck_assert_int_eq (vmferry_stripe_parse_join ("0123456789ABCDEF0123456789abcdef:1",
                                               token, &i), -1);
}
END_TEST

struct joiner {
  unsigned index;
  int fd;
  int status;
};

static void *
join_thread (void *arg)
{
  struct joiner *j = arg;

  j->status = vmferry_stripe_join (TOKEN, j->index, j->fd);
  return NULL;
}

static void
write_chunk (int fd, uint64_t seq, const void *data, uint32_t len)
{
  unsigned char hdr[16];
  uint32_t l = htole32 (len);
  uint64_t s = htole64 (seq);

  memcpy (hdr, "VMFC", 4);
  memcpy (hdr + 4, &l, 4);
  memcpy (hdr + 8, &s, 8);
  ck_assert_int_eq (write (fd, hdr, sizeof hdr), sizeof hdr);
  if (len)
    ck_assert_int_eq (write (fd, data, len), len);
}

static char tmpdir[] = "/tmp/check_stripe.XXXXXX";

static void
use_private_tmpdir (void)
{
  static bool done;

  if (!done) {
    ck_assert_ptr_nonnull (mkdtemp (tmpdir));
    setenv ("TMPDIR", tmpdir, 1);
    done = true;
  }
}

/* N connections (pipes), the chunks of "0123..." written round-robin;
 * reads back BAD_SEQ_AT's chunk with a wrong sequence number if >= 0.
 * Returns what vmferry_stripes_read returned last and the bytes in OUT.
 */
static ssize_t
run (unsigned n, unsigned nr_chunks, int bad_seq_at, bool end, char *out, size_t *len)
{
  int p[8][2];
  struct joiner j[8];
  pthread_t th[8];
  struct vmferry_stripes_in *in;
  char data[64];
  ssize_t r;

  use_private_tmpdir ();
  for (unsigned i = 0; i < n; i++)
    ck_assert_int_eq (pipe (p[i]), 0);
  in = vmferry_stripes_in_new (TOKEN, n, p[0][0]);
  ck_assert_msg (in != NULL, "%s", vmferry_get_error ());
  for (unsigned i = 1; i < n; i++) {
    j[i] = (struct joiner) { .index = i, .fd = p[i][0], .status = -1 };
    ck_assert_int_eq (pthread_create (&th[i], NULL, join_thread, &j[i]), 0);
  }
  for (unsigned c = 0; c < nr_chunks; c++) {
    snprintf (data, sizeof data, "chunk %02u;", c);
    write_chunk (p[c % n][1], (int) c == bad_seq_at ? c + 7 : c, data, strlen (data));
  }
  if (end)
    write_chunk (p[nr_chunks % n][1], nr_chunks, NULL, 0);
  for (unsigned i = 0; i < n; i++)
    close (p[i][1]);
  *len = 0;
  while ((r = vmferry_stripes_read (in, out + *len, 5)) > 0)
    *len += r;
  out[*len] = '\0';
  vmferry_stripes_in_free (in, 3);
  for (unsigned i = 1; i < n; i++) {
    pthread_join (th[i], NULL);
    /* Those that joined get the import's status (3); one whose input
     * was empty did not need to join and says 0.
     */
    ck_assert_msg (j[i].status == 3 || j[i].status == 0, "joiner %u: %d", i,
                   j[i].status);
  }
  close (p[0][0]);
  return r;
}

START_TEST (test_reassemble)
{
  char out[4096];
  size_t len;

  ck_assert_int_eq (run (3, 7, -1, true, out, &len), 0);
  ck_assert_str_eq (out, "chunk 00;chunk 01;chunk 02;chunk 03;chunk 04;chunk 05;"
                    "chunk 06;");
  /* Fewer chunks than connections: the end comes on connection 2 and the
   * empty ones are never waited for.
   */
  ck_assert_int_eq (run (5, 1, -1, true, out, &len), 0);
  ck_assert_str_eq (out, "chunk 00;");
}
END_TEST

START_TEST (test_refuse)
{
  char out[4096];
  size_t len;

  /* A chunk out of sequence is an error naming the connection. */
  ck_assert_int_eq (run (2, 4, 2, true, out, &len), -1);
  ck_assert_str_eq (out, "chunk 00;chunk 01;");
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "connection 1 of 2"));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "bad chunk header"));
  /* Without the end chunk, the end of a connection is the end (a cut,
   * which the stream reader reports as truncated).
   */
  ck_assert_int_eq (run (2, 3, -1, false, out, &len), 0);
  ck_assert_str_eq (out, "chunk 00;chunk 01;chunk 02;");
}
END_TEST

START_TEST (test_private_dir)
{
  char dir[512];

  use_private_tmpdir ();
  snprintf (dir, sizeof dir, "%s/vmferry-join-%u", tmpdir, (unsigned) getuid ());
  mkdir (dir, 0700);
  ck_assert_int_eq (chmod (dir, 0755), 0);
  ck_assert_ptr_null (vmferry_stripes_in_new (TOKEN, 2, 0));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "not a private directory"));
  ck_assert_int_eq (chmod (dir, 0700), 0);
}
END_TEST

static void *
send_quit (void *arg)
{
  (void) arg;
  raise (SIGUSR1);
  return NULL;
}

/* A signal that asks to quit ends a read that waits for data on a
 * connection (JOIN false) or for a connection to join (JOIN true, which
 * would otherwise fail after a minute): the stream ends there, as if
 * cut.
 */
static void
read_until_quit (bool join)
{
  struct vmferry_stripes_in *in;
  char out[64];
  pthread_t t;
  int p[2];

  use_private_tmpdir ();
  ck_assert_int_eq (vmferry_quit_on (SIGUSR1, false), 0);
  ck_assert_int_eq (pipe (p), 0);
  in = vmferry_stripes_in_new (TOKEN, 2, p[0]);
  ck_assert_msg (in != NULL, "%s", vmferry_get_error ());
  if (join) {
    write_chunk (p[1], 0, "chunk 00;", 9);
    ck_assert_int_eq (vmferry_stripes_read (in, out, sizeof out), 9);
  }
  ck_assert_int_eq (pthread_create (&t, NULL, send_quit, NULL), 0);
  ck_assert_int_eq (vmferry_stripes_read (in, out, sizeof out), 0);
  ck_assert_int_eq (pthread_join (t, NULL), 0);
  ck_assert_int_eq (vmferry_quit_signal (), SIGUSR1);
  vmferry_stripes_in_free (in, 1);
  close (p[0]);
  close (p[1]);
}

START_TEST (test_quit_read)
{
  read_until_quit (false);
}
END_TEST

START_TEST (test_quit_join)
{
  read_until_quit (true);
}
END_TEST

VMFERRY_UNIT_MAIN ("stripe", test_parse, test_reassemble, test_refuse,
                   test_private_dir, test_quit_read, test_quit_join)
