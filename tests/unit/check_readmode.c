/* Unit tests for lib/readmode.c: the file source's choice between
 * O_DIRECT and buffered reads, driven by simulated read times.
 */
#include "config.h"

#include "unit.h"

#include "readmode.h"

#define MIB ((uint64_t) 1024 * 1024)
#define CHUNK (4 * MIB)

/* Reads of CHUNK bytes until the trial ends, each way at its rate
 * (bytes/s): returns the number of reads, and counts each way's in
 * READS (may be NULL).
 */
static unsigned
run_trial (struct vmferry_readmode *rm, double direct, double buffered,
           unsigned reads[2])
{
  unsigned n = 0;

  while (rm->trial) {
    enum vmferry_read_mode m = rm->mode;
    double rate = m == VMFERRY_READ_DIRECT ? direct : buffered;
    enum vmferry_readmode_event e;

    if (reads)
      reads[m]++;
    e = vmferry_readmode_note (rm, CHUNK, CHUNK / rate);
    ck_assert_int_eq (e, rm->trial ? VMFERRY_READMODE_SAME
                                   : VMFERRY_READMODE_CHOSE);
    ck_assert_uint_lt (++n, 100);
  }
  return n;
}

START_TEST (test_turns)
{
  struct vmferry_readmode rm;
  enum vmferry_read_mode seen[8];
  unsigned i;

  /* 8 MiB each way in turns: D D B B D D B B, and then the choice. */
  vmferry_readmode_init (&rm, VMFERRY_READ_CHOICE_AUTO);
  for (i = 0; i < 8; i++) {
    ck_assert (rm.trial);
    seen[i] = rm.mode;
    ck_assert_uint_eq (vmferry_readmode_turn_left (&rm),
                       VMFERRY_READMODE_TURN - (i % 2) * CHUNK);
    vmferry_readmode_note (&rm, CHUNK, 0.004);
  }
  ck_assert (!rm.trial);
  ck_assert_uint_eq (vmferry_readmode_turn_left (&rm), 0);
  for (i = 0; i < 8; i++)
    ck_assert_int_eq (seen[i], (i / 2) % 2 ? VMFERRY_READ_BUFFERED
                                           : VMFERRY_READ_DIRECT);
  ck_assert_uint_eq (rm.bytes[0], VMFERRY_READMODE_TRIAL);
  ck_assert_uint_eq (rm.bytes[1], VMFERRY_READMODE_TRIAL);
  ck_assert_uint_eq (rm.trials, 1);
}
END_TEST

START_TEST (test_faster_kept)
{
  struct vmferry_readmode rm;
  unsigned reads[2] = { 0, 0 };

  /* The machine: O_DIRECT 0.7 GB/s, buffered 1.8 GB/s. */
  vmferry_readmode_init (&rm, VMFERRY_READ_CHOICE_AUTO);
  run_trial (&rm, 0.7e9, 1.8e9, reads);
  ck_assert_int_eq (rm.mode, VMFERRY_READ_BUFFERED);
  ck_assert_uint_eq (reads[0], reads[1]);
  ck_assert_double_eq_tol (rm.rate[VMFERRY_READ_DIRECT], 0.7e9, 1e6);
  ck_assert_double_eq_tol (rm.rate[VMFERRY_READ_BUFFERED], 1.8e9, 1e6);

  /* This one: O_DIRECT 1.95 GB/s, buffered 1.55 GB/s. */
  vmferry_readmode_init (&rm, VMFERRY_READ_CHOICE_AUTO);
  run_trial (&rm, 1.95e9, 1.55e9, NULL);
  ck_assert_int_eq (rm.mode, VMFERRY_READ_DIRECT);
}
END_TEST

START_TEST (test_tie_direct)
{
  struct vmferry_readmode rm;

  /* Buffered faster, but by less than the gain: O_DIRECT is kept. */
  vmferry_readmode_init (&rm, VMFERRY_READ_CHOICE_AUTO);
  run_trial (&rm, 1.0e9, 1.45e9, NULL);
  ck_assert_int_eq (rm.mode, VMFERRY_READ_DIRECT);
  vmferry_readmode_init (&rm, VMFERRY_READ_CHOICE_AUTO);
  run_trial (&rm, 1.0e9, 1.0e9, NULL);
  ck_assert_int_eq (rm.mode, VMFERRY_READ_DIRECT);
  /* Reads too quick for the clock: no division by zero, a tie. */
  vmferry_readmode_init (&rm, VMFERRY_READ_CHOICE_AUTO);
  while (rm.trial)
    vmferry_readmode_note (&rm, CHUNK, 0);
  ck_assert_int_eq (rm.mode, VMFERRY_READ_DIRECT);
  /* ... and by more: buffered. */
  vmferry_readmode_init (&rm, VMFERRY_READ_CHOICE_AUTO);
  run_trial (&rm, 1.0e9, 1.6e9, NULL);
  ck_assert_int_eq (rm.mode, VMFERRY_READ_BUFFERED);
}
END_TEST

START_TEST (test_kept)
{
  struct vmferry_readmode rm;
  uint64_t n;

  /* Chosen, the way is kept for the rest of the file, however slow its
   * reads become (the compressors or the link set that pace).
   */
  vmferry_readmode_init (&rm, VMFERRY_READ_CHOICE_AUTO);
  run_trial (&rm, 2.0e9, 1.0e9, NULL);
  ck_assert_int_eq (rm.mode, VMFERRY_READ_DIRECT);
  for (n = 0; n < 1024 * MIB; n += CHUNK)
    ck_assert_int_eq (vmferry_readmode_note (&rm, CHUNK, CHUNK / 0.05e9),
                      VMFERRY_READMODE_SAME);
  ck_assert (!rm.trial);
  ck_assert_int_eq (rm.mode, VMFERRY_READ_DIRECT);
  ck_assert_uint_eq (rm.trials, 1);
  ck_assert_uint_eq (vmferry_readmode_turn_left (&rm), 0);
}
END_TEST

START_TEST (test_fixed)
{
  struct vmferry_readmode rm;
  enum vmferry_read_choice c;

  vmferry_readmode_init (&rm, VMFERRY_READ_CHOICE_DIRECT);
  ck_assert (!rm.trial);
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq (vmferry_readmode_note (&rm, CHUNK, 1.0),
                      VMFERRY_READMODE_SAME);
  ck_assert_int_eq (rm.mode, VMFERRY_READ_DIRECT);
  vmferry_readmode_init (&rm, VMFERRY_READ_CHOICE_BUFFERED);
  for (int i = 0; i < 100; i++)
    vmferry_readmode_note (&rm, CHUNK, i < 50 ? 0.001 : 1.0);
  ck_assert_int_eq (rm.mode, VMFERRY_READ_BUFFERED);
  ck_assert (!rm.trial);

  ck_assert_int_eq (vmferry_read_choice_parse (NULL, &c), 0);
  ck_assert_int_eq (c, VMFERRY_READ_CHOICE_AUTO);
  ck_assert_int_eq (vmferry_read_choice_parse ("direct", &c), 0);
  ck_assert_int_eq (c, VMFERRY_READ_CHOICE_DIRECT);
  ck_assert_int_eq (vmferry_read_choice_parse ("buffered", &c), 0);
  ck_assert_int_eq (c, VMFERRY_READ_CHOICE_BUFFERED);
  ck_assert_int_eq (vmferry_read_choice_parse ("auto", &c), 0);
  ck_assert_int_eq (c, VMFERRY_READ_CHOICE_AUTO);
  ck_assert_int_eq (vmferry_read_choice_parse ("mapped", &c), -1);
  ck_assert_int_eq (vmferry_read_choice_parse ("Direct", &c), -1);
}
END_TEST

VMFERRY_UNIT_MAIN ("readmode", test_turns, test_faster_kept,
                   test_tie_direct, test_kept, test_fixed)
