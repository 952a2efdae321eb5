/* Unit tests for lib/send.c's memory budget: the default --buffer is
 * what VMFERRY_MEMORY_BUDGET leaves, never more, in whole MiB; and the
 * shares it counts are honest: a compressor and a stream reader, once
 * used, hold no more than vmferry_compressor_memory and
 * vmferry_stream_reader_memory say (measured with mallinfo2).
 */
#include "config.h"

#include "unit.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "export.h"
#include "send.h"
#include "stream.h"
#include "stripe.h"

#define MIB ((size_t) 1 << 20)
/* What a share leaves out: malloc's headers, mapped blocks rounded up
 * to pages, the small structs (VMFERRY_MEMORY_BASE covers them).
 */
#define SLACK ((size_t) 16 << 10)

/* Bytes malloc has handed out and not got back, mapped ones included. */
static size_t
allocated (void)
{
  struct mallinfo2 mi = mallinfo2 ();

  return mi.uordblks + mi.hblkhd;
}

/* Whether mallinfo2 sees allocations (an AddressSanitizer build's
 * allocator does not report to it): if not, the share tests say so and
 * pass.
 */
static bool
allocations_seen (void)
{
  static char *volatile p;      /* volatile: the allocation stays */
  size_t before = allocated ();
  bool seen;

  p = malloc (MIB);
  ck_assert_ptr_nonnull (p);
  seen = allocated () >= before + MIB;
  free (p);
  if (!seen)
    fprintf (stderr, "mallinfo2 does not see this allocator: shares not "
             "measured\n");
  return seen;
}

START_TEST (test_buffer_default)
{
  const size_t room = VMFERRY_MEMORY_BUDGET - VMFERRY_MEMORY_BASE;

  ck_assert_uint_eq (vmferry_buffer_default (0), VMFERRY_BUFFER_USEFUL);
  /* What is left, rounded down to whole MiB. */
  ck_assert_uint_eq (vmferry_buffer_default (room - 50 * MIB - MIB / 2),
                     50 * MIB);
  ck_assert_uint_eq (vmferry_buffer_default (room - 50 * MIB), 50 * MIB);
  ck_assert_uint_eq (vmferry_buffer_default (room - MIB + 1), 0);
  ck_assert_uint_eq (vmferry_buffer_default (room), 0);
  ck_assert_uint_eq (vmferry_buffer_default (room + 100 * MIB), 0);
  /* The default is a sentinel no --buffer can give. */
  ck_assert (VMFERRY_SEND_BUFFER > VMFERRY_BUFFER_MAX);
}
END_TEST

/* For every shape vmferry-migrate can take, the ring and what it
 * counts besides stay within the budget (unless there is no ring).
 */
START_TEST (test_budget_kept)
{
  static const unsigned conns[] = { 1, 2, 4, 8, 21, VMFERRY_STRIPE_MAX };
  static const struct { enum vmferry_compress c; int level; } comp[] = {
    { VMFERRY_COMPRESS_AUTO, 1 }, { VMFERRY_COMPRESS_NONE, 1 },
    { VMFERRY_COMPRESS_ZSTD, 3 }, { VMFERRY_COMPRESS_ZSTD, 19 },
  };

  for (size_t k = 0; k < sizeof comp / sizeof comp[0]; k++)
    for (size_t n = 0; n < sizeof conns / sizeof conns[0]; n++) {
      size_t last = SIZE_MAX;
      for (unsigned t = 1; t <= 64; t++) {
        struct vmferry_export_opts eo = {
          .compress = comp[k].c, .level = comp[k].level, .threads = t,
        };
        struct vmferry_send_opts so = { .connections = conns[n] };
        size_t held = vmferry_export_memory (&eo) + vmferry_send_memory (&so);
        size_t ring = vmferry_buffer_default (held);

        ck_assert_uint_le (ring, VMFERRY_BUFFER_USEFUL);
        ck_assert_uint_eq (ring % MIB, 0);
        if (ring > 0)
          ck_assert_uint_le (VMFERRY_MEMORY_BASE + held + ring,
                             VMFERRY_MEMORY_BUDGET);
        /* More threads hold more: never a larger ring. */
        ck_assert_uint_le (ring, last);
        last = ring;
      }
    }
  /* The shapes the man pages name: one, two and four CPUs with
   * --compress=auto (its compressors budgeted at the highest level
   * they may adapt to) over one connection leave 63, 42 and 10 MiB;
   * more connections leave less.
   */
  {
    struct vmferry_export_opts eo = { .compress = VMFERRY_COMPRESS_AUTO,
                                      .level = 1, .threads = 1 };
    struct vmferry_send_opts so = { .connections = 1 };
    struct vmferry_send_opts so4 = { .connections = 4 };

    ck_assert_uint_eq (vmferry_buffer_default (vmferry_export_memory (&eo) +
                                               vmferry_send_memory (&so)),
                       63 * MIB);
    eo.threads = 2;
    ck_assert_uint_eq (vmferry_buffer_default (vmferry_export_memory (&eo) +
                                               vmferry_send_memory (&so)),
                       42 * MIB);
    eo.threads = 4;
    ck_assert_uint_eq (vmferry_buffer_default (vmferry_export_memory (&eo) +
                                               vmferry_send_memory (&so)),
                       10 * MIB);
    ck_assert_uint_lt (vmferry_send_memory (&so), vmferry_send_memory (&so4));
  }
}
END_TEST

START_TEST (test_compressor_share)
{
  static const int levels[] = { 1, 3, 9 };
  unsigned char *in = malloc (VMFERRY_CHUNK_SIZE);
  size_t cap = vmferry_zstd_bound (VMFERRY_CHUNK_SIZE), len;
  unsigned char *out = malloc (cap);
  uint32_t x = 12345;

  ck_assert_ptr_nonnull (in);
  ck_assert_ptr_nonnull (out);
  if (!allocations_seen ())
    goto out;
  /* Half noise, half text-like: the tables are all used. */
  for (size_t i = 0; i < VMFERRY_CHUNK_SIZE; i++) {
    x = x * 1103515245 + 12345;
    in[i] = i < VMFERRY_CHUNK_SIZE / 2 ? (unsigned char) (x >> 16)
                                       : (unsigned char) ('a' + (x >> 16) % 13);
  }
  for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++) {
    size_t before = allocated (), held, share;
    struct vmferry_compressor *c = vmferry_compressor_new (levels[k]);

    ck_assert_ptr_nonnull (c);
    ck_assert_int_ge (vmferry_compress (c, in, VMFERRY_CHUNK_SIZE, out, cap,
                                        &len), 0);
    held = allocated () - before;
    share = vmferry_compressor_memory (levels[k]);
    fprintf (stderr, "level %d: compressor holds %zu bytes, counted %zu\n",
             levels[k], held, share);
    /* Counted in full, and not a blanket figure. */
    ck_assert_uint_le (held, share + SLACK);
    ck_assert_uint_ge (held, share - share / 10);
    vmferry_compressor_free (c);
  }
 out:
  free (in);
  free (out);
}
END_TEST

/* A stream whose DATA payloads grow (1, 3, then 3.5 MiB, raw): a
 * payload buffer that doubled would hold 6 MiB.
 */
static int
grow_stream (void)
{
  static const uint64_t lens[] = { 1 << 20, 3 << 20, 7 << 19 };
  static const char manifest[] =
    "{\"format\":\"vmferry-manifest\",\"version\":1,\"files\":[]}";
  int fd = memfd_create ("grow", 0);
  struct vmferry_stream_writer *w;
  unsigned char *chunk = calloc (1, VMFERRY_CHUNK_SIZE);
  unsigned char digest[16] = { 0 };
  uint64_t off = 0;

  ck_assert_int_ge (fd, 0);
  ck_assert_ptr_nonnull (chunk);
  w = vmferry_stream_writer_new (fd, "grow");
  ck_assert_ptr_nonnull (w);
  ck_assert_int_eq (vmferry_stream_write_header (w), 0);
  ck_assert_int_eq (vmferry_stream_write_manifest (w, manifest), 0);
  ck_assert_int_eq (vmferry_stream_write_xml (w, "<domain/>"), 0);
  ck_assert_int_eq (vmferry_stream_write_file_begin (w, 0, 8 << 20), 0);
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    memset (chunk, 'a' + (int) i, lens[i]);
    ck_assert_int_eq (vmferry_stream_write_data (w, 0, off, lens[i], 0, chunk,
                                                 lens[i]), 0);
    off += lens[i];
  }
  ck_assert_int_eq (vmferry_stream_write_file_end (w, 0, digest), 0);
  ck_assert_int_eq (vmferry_stream_write_end (w, 1), 0);
  vmferry_stream_writer_free (w);
  free (chunk);
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  return fd;
}

START_TEST (test_reader_share)
{
  int fd = grow_stream ();
  size_t before, peak = 0;
  struct vmferry_stream_reader *r;
  struct vmferry_record rec;
  int got, data = 0;

  if (!allocations_seen ()) {
    close (fd);
    return;
  }
  before = allocated ();
  r = vmferry_stream_reader_new (fd, "grow");
  ck_assert_ptr_nonnull (r);
  vmferry_stream_reader_trust (r);
  while ((got = vmferry_stream_read_record (r, &rec)) == 1) {
    size_t now = allocated () - before;
    if (now > peak)
      peak = now;
    data += rec.type == VMFERRY_REC_DATA;
  }
  ck_assert_msg (got == 0, "%s", vmferry_get_error ());
  ck_assert_int_eq (data, 3);
  fprintf (stderr, "reader held %zu bytes at the most, counted %zu\n", peak,
           vmferry_stream_reader_memory ());
  ck_assert_uint_le (peak, vmferry_stream_reader_memory () + SLACK);
  vmferry_stream_reader_free (r);
  close (fd);
}
END_TEST

VMFERRY_UNIT_MAIN ("send", test_buffer_default, test_budget_kept,
                   test_compressor_share, test_reader_share)
