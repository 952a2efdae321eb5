/* vmferry: the monotonic clock (see clock.h). */
#include "config.h"

#include <time.h>

#include "clock.h"

double
vmferry_monotonic (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
