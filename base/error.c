/* vmferry: thread-local error reporting (see error.h). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static __thread char last_error[VMFERRY_ERROR_MAX];
static __thread int last_errno;

static void
set_verror (int errnum, const char *fs, va_list args)
{
  int n = vsnprintf (last_error, sizeof last_error, fs, args);

  if (n < 0)
    n = 0;
  if ((size_t) n >= sizeof last_error)
    n = sizeof last_error - 1;
  if (errnum != 0) {
    char buf[256];
    const char *reason = strerror_r (errnum, buf, sizeof buf);
    snprintf (last_error + n, sizeof last_error - n, ": %s", reason);
  }
  last_errno = errnum;
}

void
vmferry_set_error (const char *fs, ...)
{
  va_list args;
  int saved = errno;

  va_start (args, fs);
  set_verror (0, fs, args);
  va_end (args);
  errno = saved;
}

void
vmferry_set_error_errno (int errnum, const char *fs, ...)
{
  va_list args;
  int saved = errno;

  va_start (args, fs);
  set_verror (errnum, fs, args);
  va_end (args);
  errno = saved;
}

void
vmferry_prefix_error (const char *fs, ...)
{
  char old[VMFERRY_ERROR_MAX];
  va_list args;
  int saved = errno;
  int n;

  memcpy (old, last_error, sizeof old);
  va_start (args, fs);
  n = vsnprintf (last_error, sizeof last_error, fs, args);
  va_end (args);
  /* Append ": old", cut to the buffer (truncation is the intent). */
  if (n >= 0 && (size_t) n < sizeof last_error) {
    size_t used = n, oldlen = strlen (old);
    const char *sep = ": ";
    for (size_t i = 0; sep[i] && used < sizeof last_error - 1; i++)
      last_error[used++] = sep[i];
    if (oldlen > sizeof last_error - 1 - used)
      oldlen = sizeof last_error - 1 - used;
    memcpy (last_error + used, old, oldlen);
    last_error[used + oldlen] = '\0';
  }
  errno = saved;
}

const char *
vmferry_get_error (void)
{
  return last_error;
}

int
vmferry_get_errno (void)
{
  return last_errno;
}

void
vmferry_clear_error (void)
{
  last_error[0] = '\0';
  last_errno = 0;
}

void
vmferry_restore_error (const char *msg, int errnum)
{
  snprintf (last_error, sizeof last_error, "%s", msg);
  last_errno = errnum;
}

void
vmferry_save_error (struct vmferry_saved_error *saved)
{
  memcpy (saved->msg, last_error, sizeof saved->msg);
  saved->errnum = last_errno;
}

void
vmferry_restore_saved_error (const struct vmferry_saved_error *saved)
{
  memcpy (last_error, saved->msg, sizeof last_error);
  last_errno = saved->errnum;
}

void
vmferry_append_error (const struct vmferry_saved_error *saved,
                      const char *fs, ...)
{
  char more[VMFERRY_ERROR_MAX];
  va_list args;
  int saved_errno = errno;

  va_start (args, fs);
  vsnprintf (more, sizeof more, fs, args);
  va_end (args);
  /* Truncation is the intent: the first failure is what matters. */
  snprintf (last_error, sizeof last_error, "%.*s; %s",
            (int) (sizeof last_error - 3), saved->msg, more);
  last_errno = saved->errnum;
  errno = saved_errno;
}
