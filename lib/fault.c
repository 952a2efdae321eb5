/* vmferry: named fault-injection points (see fault.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fault.h"

#define MAX_SPEC 1024
#define MAX_ENTRIES 64

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* The configuration, read once per process: from the environment, or
 * from the file VMFERRY_FAULT_FILE names (lines VMFERRY_FAULT=...,
 * VMFERRY_FAULT_NOTIFY=..., VMFERRY_FAULT_TRACE=...), for a process that
 * a test cannot give an environment (an import started by sshd).
 */
static char spec[MAX_SPEC], notify[MAX_SPEC], trace[MAX_SPEC];
static bool active;
static unsigned hits[MAX_ENTRIES];

static void
set (char *dst, const char *value)
{
  if (value)
    snprintf (dst, MAX_SPEC, "%s", value);
}

static void
load (void)
{
  const char *file = getenv ("VMFERRY_FAULT_FILE");

  set (spec, getenv ("VMFERRY_FAULT"));
  set (notify, getenv ("VMFERRY_FAULT_NOTIFY"));
  set (trace, getenv ("VMFERRY_FAULT_TRACE"));
  if (file && file[0]) {
    FILE *fp = fopen (file, "re");
    char line[MAX_SPEC + 32];

    while (fp && fgets (line, sizeof line, fp)) {
      line[strcspn (line, "\n")] = '\0';
      if (strncmp (line, "VMFERRY_FAULT=", 14) == 0)
        set (spec, line + 14);
      else if (strncmp (line, "VMFERRY_FAULT_NOTIFY=", 21) == 0)
        set (notify, line + 21);
      else if (strncmp (line, "VMFERRY_FAULT_TRACE=", 20) == 0)
        set (trace, line + 20);
    }
    if (fp)
      fclose (fp);
  }
  active = spec[0] || trace[0];
}

/* Append "POINT\n" (with PID: "POINT PID\n") to FILE. */
static void
append (const char *file, const char *point, bool pid)
{
  int fd = open (file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  char line[256];
  int n;

  if (fd < 0)
    return;
  n = pid ? snprintf (line, sizeof line, "%s %ld\n", point, (long) getpid ())
          : snprintf (line, sizeof line, "%s\n", point);
  if (n > 0 && write (fd, line, n) < 0) {
    /* nothing to do: a trace is best effort */
  }
  close (fd);
}

int
vmferry_fault (const char *point)
{
  size_t plen = strlen (point);
  unsigned idx = 0;
  int r = 0;

  pthread_once (&once, load);
  if (!active)
    return 0;
  pthread_mutex_lock (&lock);
  if (trace[0])
    append (trace, point, false);
  for (const char *p = spec; *p; idx++) {
    const char *end = strchrnul (p, ','), *colon, *at;
    char action[8] = "kill";
    unsigned long want = 1;

    colon = memchr (p, ':', end - p);
    at = memchr (p, '@', end - p);
    if ((size_t) ((colon ? colon : at ? at : end) - p) == plen &&
        strncmp (p, point, plen) == 0 && idx < MAX_ENTRIES) {
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
          if (notify[0])
            append (notify, point, true);
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
