/* vmferry: verbosity and logging (see log.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <string.h>

#include "log.h"

static const char *program_name = PACKAGE_NAME;
static int verbosity = VMFERRY_LOG_NORMAL;
static vmferry_log_fn log_fn;
static void *log_opaque;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void
vmferry_set_program_name (const char *argv0)
{
  const char *slash = argv0 ? strrchr (argv0, '/') : NULL;

  if (argv0)
    program_name = slash ? slash + 1 : argv0;
}

const char *
vmferry_program_name (void)
{
  return program_name;
}

void
vmferry_set_verbosity (int level)
{
  verbosity = level;
}

int
vmferry_get_verbosity (void)
{
  return verbosity;
}

void
vmferry_set_log_fn (vmferry_log_fn fn, void *opaque)
{
  pthread_mutex_lock (&log_lock);
  log_fn = fn;
  log_opaque = opaque;
  pthread_mutex_unlock (&log_lock);
}

void
vmferry_log (int level, const char *fs, ...)
{
  char msg[4096];
  va_list args;
  int saved = errno;

  if (level > verbosity)
    return;
  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);

  /* One lock so lines from worker threads never interleave. */
  pthread_mutex_lock (&log_lock);
  if (log_fn)
    log_fn (log_opaque, level, msg);
  else
    fprintf (stderr, "%s: %s\n", program_name, msg);
  pthread_mutex_unlock (&log_lock);
  errno = saved;
}

static __thread char summary[1024];

void
vmferry_set_summary (const char *fs, ...)
{
  va_list args;
  int saved = errno;

  va_start (args, fs);
  vsnprintf (summary, sizeof summary, fs, args);
  va_end (args);
  errno = saved;
}

const char *
vmferry_get_summary (void)
{
  return summary;
}

void
vmferry_clear_summary (void)
{
  summary[0] = '\0';
}
