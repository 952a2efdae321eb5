/* vmferry: named fault-injection points (see fault.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fault.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned hits[64];       /* per entry of VMFERRY_FAULT */

static void
append (const char *file, const char *point)
{
  int fd = open (file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  char line[256];
  int n;

  if (fd < 0)
    return;
  n = snprintf (line, sizeof line, "%s\n", point);
  if (n > 0 && write (fd, line, n) < 0) {
    /* nothing to do: a trace is best effort */
  }
  close (fd);
}

int
vmferry_fault (const char *point)
{
  const char *spec = getenv ("VMFERRY_FAULT"), *trace = getenv ("VMFERRY_FAULT_TRACE");
  size_t plen = strlen (point);
  unsigned idx = 0;
  int r = 0;

  if (spec == NULL && trace == NULL)
    return 0;
  pthread_mutex_lock (&lock);
  if (trace)
    append (trace, point);
  for (const char *p = spec; p && *p; idx++) {
    const char *end = strchrnul (p, ','), *colon, *at;
    char action[8] = "kill";
    unsigned long want = 1;

    colon = memchr (p, ':', end - p);
    at = memchr (p, '@', end - p);
    if ((size_t) ((colon ? colon : at ? at : end) - p) == plen &&
        strncmp (p, point, plen) == 0 && idx < sizeof hits / sizeof hits[0]) {
      if (colon) {
        size_t n = (at ? at : end) - colon - 1;
        if (n < sizeof action) {
          memcpy (action, colon + 1, n);
          action[n] = '\0';
        }
      }
      if (at)
        want = strtoul (at + 1, NULL, 10);
      if (++hits[idx] == want) {
        if (strcmp (action, "stop") == 0) {
          const char *notify = getenv ("VMFERRY_FAULT_NOTIFY");
          if (notify)
            append (notify, point);
          raise (SIGSTOP);
        }
        else if (strcmp (action, "fail") == 0) {
          vmferry_set_error_errno (EIO, "injected fault at %s", point);
          r = -1;
        }
        else
          raise (SIGKILL);
      }
    }
    p = *end ? end + 1 : end;
  }
  pthread_mutex_unlock (&lock);
  return r;
}
