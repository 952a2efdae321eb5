/* vmferry: cleanup helpers for the C library's objects (see
 * cleanup-libc.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "cleanup-libc.h"

void
vmferry_cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}

void
vmferry_cleanup_close (int *fdp)
{
  int saved = errno;

  if (*fdp >= 0)
    close (*fdp);
  errno = saved;
}

void
vmferry_cleanup_fclose (FILE **fpp)
{
  int saved = errno;

  if (*fpp)
    fclose (*fpp);
  errno = saved;
}

void
vmferry_cleanup_unlink_free (char **pathp)
{
  int saved = errno;

  if (*pathp) {
    unlink (*pathp);
    free (*pathp);
  }
  errno = saved;
}

void
vmferry_strv_free (char **strv)
{
  if (strv) {
    for (size_t i = 0; strv[i]; i++)
      free (strv[i]);
    free (strv);
  }
}

void
vmferry_cleanup_strv_free (char ***strvp)
{
  vmferry_strv_free (*strvp);
}
