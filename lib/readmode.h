/* vmferry: how the file source reads a file's data, chosen at run time.
 *
 * Two ways to read a chunk that is not in the page cache: O_DIRECT into
 * the caller's buffer (no page cache filled with data read once, no
 * copy), or buffered, mapped, with the kernel told to read ahead of the
 * reader and to drop what is behind it.  Which is faster depends on the
 * machine: O_DIRECT read 1.9 GB/s and buffered 1.5 GB/s here, but 0.6 to
 * 0.9 GB/s and 1.4 to 2.5 GB/s on another machine of the same kind
 * (issue 20).  So the source times both: it reads in turns of
 * VMFERRY_READMODE_TURN bytes each way until each way has read
 * VMFERRY_READMODE_TRIAL bytes, and keeps O_DIRECT unless the buffered
 * read was VMFERRY_READMODE_GAIN times as fast: a buffered read costs
 * 4 to 5 times the CPU (the copy, the page cache: 0.45 to 0.6 CPU-s per
 * GiB here, O_DIRECT 0.1), which the compressors of a two-core machine
 * need, and 16 MiB timed on a busy machine says little about a smaller
 * difference.  The way chosen is kept for the rest of the file: a
 * version that timed both ways again whenever the kept way's rate fell
 * by half (over 64 MiB, then longer) re-timed four to six times per
 * file on the bench set (bench-migrate's 1 Gbit/s link, 2026-12-08),
 * each time because the compressors had the CPUs or the link held the
 * export back, not because of the way of reading, and its buffered
 * turns took CPU the compressors lacked: 19.9 s against 15.4-16.9 s.
 *
 * This part is pure: it is told how long each read took and says which
 * way the next one goes.  The reads are source-file.c's.
 */
#ifndef VMFERRY_READMODE_H
#define VMFERRY_READMODE_H

#include <stdbool.h>
#include <stdint.h>

enum vmferry_read_mode {
  VMFERRY_READ_DIRECT = 0,
  VMFERRY_READ_BUFFERED = 1,
};

/* What VMFERRY_READ_MODE asks: time both ways, or one way only. */
enum vmferry_read_choice {
  VMFERRY_READ_CHOICE_AUTO,
  VMFERRY_READ_CHOICE_DIRECT,
  VMFERRY_READ_CHOICE_BUFFERED,
};

#define VMFERRY_READMODE_TURN ((uint64_t) 8 * 1024 * 1024)
#define VMFERRY_READMODE_TRIAL ((uint64_t) 16 * 1024 * 1024)
#define VMFERRY_READMODE_GAIN 1.5

struct vmferry_readmode {
  bool fixed;                   /* one way only: never timed against */
  bool trial;                   /* timing both ways */
  enum vmferry_read_mode mode;  /* the way the next read goes */
  uint64_t turn;                /* bytes of this turn so far */
  uint64_t bytes[2];            /* the trial's, per way */
  double secs[2];
  double rate[2];               /* the trial's rates, bytes/s */
  unsigned trials;              /* trials decided */
};

/* What a note changed, for -v. */
enum vmferry_readmode_event {
  VMFERRY_READMODE_SAME,
  VMFERRY_READMODE_CHOSE,       /* a trial ended: MODE is kept */
};

/* Start timing both ways (CHOICE auto), or one way only. */
void vmferry_readmode_init (struct vmferry_readmode *rm,
                            enum vmferry_read_choice choice);

/* Parse VMFERRY_READ_MODE's value: "auto", "direct", "buffered"; NULL
 * or "" is auto.  0, or -1 for anything else.
 */
int vmferry_read_choice_parse (const char *s,
                               enum vmferry_read_choice *choice_rtn);

/* Bytes the current trial turn may still read (0 outside a trial): a
 * buffered turn reads ahead no further than its end.
 */
uint64_t vmferry_readmode_turn_left (const struct vmferry_readmode *rm);

/* A read of BYTES in RM->mode, from the disk, took SECS: account it and
 * pick the way of the next read.
 */
enum vmferry_readmode_event vmferry_readmode_note (struct vmferry_readmode *rm,
                                                   uint64_t bytes,
                                                   double secs);

/* "O_DIRECT" or "buffered". */
const char *vmferry_read_mode_name (enum vmferry_read_mode mode);

#endif /* VMFERRY_READMODE_H */
