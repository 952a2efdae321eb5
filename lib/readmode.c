/* vmferry: the file source's choice of how to read (see readmode.h). */
#include "config.h"

#include <string.h>

#include "readmode.h"

static void
start_trial (struct vmferry_readmode *rm)
{
  rm->trial = true;
  rm->mode = VMFERRY_READ_DIRECT;
  rm->turn = 0;
  memset (rm->bytes, 0, sizeof rm->bytes);
  memset (rm->secs, 0, sizeof rm->secs);
}

void
vmferry_readmode_init (struct vmferry_readmode *rm,
                       enum vmferry_read_choice choice)
{
  memset (rm, 0, sizeof *rm);
  switch (choice) {
  case VMFERRY_READ_CHOICE_DIRECT:
    rm->fixed = true;
    rm->mode = VMFERRY_READ_DIRECT;
    break;
  case VMFERRY_READ_CHOICE_BUFFERED:
    rm->fixed = true;
    rm->mode = VMFERRY_READ_BUFFERED;
    break;
  case VMFERRY_READ_CHOICE_AUTO:
    start_trial (rm);
    break;
  }
}

int
vmferry_read_choice_parse (const char *s, enum vmferry_read_choice *choice_rtn)
{
  if (s == NULL || !strcmp (s, "") || !strcmp (s, "auto"))
    *choice_rtn = VMFERRY_READ_CHOICE_AUTO;
  else if (!strcmp (s, "direct"))
    *choice_rtn = VMFERRY_READ_CHOICE_DIRECT;
  else if (!strcmp (s, "buffered"))
    *choice_rtn = VMFERRY_READ_CHOICE_BUFFERED;
  else
    return -1;
  return 0;
}

uint64_t
vmferry_readmode_turn_left (const struct vmferry_readmode *rm)
{
  if (!rm->trial)
    return 0;
  return rm->turn < VMFERRY_READMODE_TURN ? VMFERRY_READMODE_TURN - rm->turn
                                          : 0;
}

/* Bytes per second; a read too quick for the clock counts as 1 ns. */
static double
rate_of (uint64_t bytes, double secs)
{
  return (double) bytes / (secs > 1e-9 ? secs : 1e-9);
}

enum vmferry_readmode_event
vmferry_readmode_note (struct vmferry_readmode *rm, uint64_t bytes,
                       double secs)
{
  const enum vmferry_read_mode d = VMFERRY_READ_DIRECT;
  const enum vmferry_read_mode b = VMFERRY_READ_BUFFERED;
  enum vmferry_read_mode m = rm->mode, other = m == d ? b : d;

  if (rm->fixed)
    return VMFERRY_READMODE_SAME;
  if (secs < 0)
    secs = 0;
  if (rm->trial) {
    rm->bytes[m] += bytes;
    rm->secs[m] += secs;
    rm->turn += bytes;
    if (rm->bytes[d] >= VMFERRY_READMODE_TRIAL &&
        rm->bytes[b] >= VMFERRY_READMODE_TRIAL) {
      rm->rate[d] = rate_of (rm->bytes[d], rm->secs[d]);
      rm->rate[b] = rate_of (rm->bytes[b], rm->secs[b]);
      rm->mode = rm->rate[b] > rm->rate[d] * VMFERRY_READMODE_GAIN ? b : d;
      rm->trial = false;
      rm->trials++;
      return VMFERRY_READMODE_CHOSE;
    }
    if ((rm->turn >= VMFERRY_READMODE_TURN ||
         rm->bytes[m] >= VMFERRY_READMODE_TRIAL) &&
        rm->bytes[other] < VMFERRY_READMODE_TRIAL) {
      rm->mode = other;
      rm->turn = 0;
    }
    return VMFERRY_READMODE_SAME;
  }
  /* Chosen: kept (see readmode.h). */
  return VMFERRY_READMODE_SAME;
}

const char *
vmferry_read_mode_name (enum vmferry_read_mode mode)
{
  return mode == VMFERRY_READ_DIRECT ? "O_DIRECT" : "buffered";
}
