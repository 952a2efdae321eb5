/* vmferry: human-readable sizes and durations (see human.h). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "human.h"

void
vmferry_human_size (uint64_t bytes, char *buf, size_t len)
{
  static const char *const units[] = {
    "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"
  };
  double v = bytes;
  size_t u = 0;

  if (bytes < 1024) {
    snprintf (buf, len, "%" PRIu64 " B", bytes);
    return;
  }
  v /= 1024;
  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024;
    u++;
  }
  snprintf (buf, len, "%.1f %s", v, units[u]);
}

void
vmferry_human_duration (double seconds, char *buf, size_t len)
{
  uint64_t s;

  if (seconds < 0) {
    snprintf (buf, len, "--:--");
    return;
  }
  s = (uint64_t) (seconds + 0.5);
  if (s >= 3600)
    snprintf (buf, len, "%" PRIu64 ":%02u:%02u", s / 3600,
              (unsigned) (s / 60 % 60), (unsigned) (s % 60));
  else
    snprintf (buf, len, "%u:%02u", (unsigned) (s / 60), (unsigned) (s % 60));
}
