/* vmferry: where a tool writes a stream (see output.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "output.h"

int
vmferry_output_open (const char *path, struct vmferry_output *out)
{
  CLEANUP_FREE char *dircopy = NULL;
  struct stat st;

  memset (out, 0, sizeof *out);
  out->fd = -1;
  if (strcmp (path, "-") == 0) {
    if (isatty (STDOUT_FILENO)) {
      vmferry_set_error ("refusing to write a binary stream to a terminal "
                         "(redirect it, pipe it, or use -o FILE)");
      return -1;
    }
    out->fd = STDOUT_FILENO;
    out->name = "stdout";
    return 0;
  }
  if (lstat (path, &st) == 0) {
    vmferry_set_error ("%s: already exists; not overwritten (remove it or "
                       "choose another name)", path);
    return -1;
  }
  if (errno != ENOENT) {
    vmferry_set_error_errno (errno, "%s", path);
    return -1;
  }
  dircopy = strdup (path);
  out->path = strdup (path);
  if (!dircopy || !out->path ||
      asprintf (&out->tmp, "%s/.%s.vmferry-XXXXXX", dirname (dircopy),
                strrchr (path, '/') ? strrchr (path, '/') + 1 : path) < 0) {
    out->tmp = NULL;
    vmferry_set_error_errno (ENOMEM, "%s", path);
    vmferry_output_discard (out);
    return -1;
  }
  out->fd = mkostemp (out->tmp, O_CLOEXEC);
  if (out->fd < 0) {
    vmferry_set_error_errno (errno, "%s: cannot create a file there", path);
    free (out->tmp);
    out->tmp = NULL;
    vmferry_output_discard (out);
    return -1;
  }
  fchmod (out->fd, 0644);
  out->name = out->path;
  return 0;
}

int
vmferry_output_commit (struct vmferry_output *out)
{
  if (out->tmp == NULL)
    return 0;
  if (fsync (out->fd) < 0) {
    vmferry_set_error_errno (errno, "%s: fsync", out->path);
    return -1;
  }
  if (renameat2 (AT_FDCWD, out->tmp, AT_FDCWD, out->path, RENAME_NOREPLACE) < 0) {
    vmferry_set_error_errno (errno, "%s: cannot rename %s into place",
                             out->path, out->tmp);
    return -1;
  }
  free (out->tmp);
  out->tmp = NULL;
  return 0;
}

void
vmferry_output_discard (struct vmferry_output *out)
{
  if (out->fd >= 0 && out->fd != STDOUT_FILENO)
    close (out->fd);
  out->fd = -1;
  if (out->tmp) {
    unlink (out->tmp);
    free (out->tmp);
    out->tmp = NULL;
  }
  free (out->path);
  out->path = NULL;
}
