/* vmferry: rewriting a bare domain XML file, and the diff a rewrite
 * would make.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "linediff.h"
#include "rewrite-int.h"
#include "rewrite.h"
#include "text.h"

/* ---------------------------------------------------------------- bare XML */

int
vmferry_rewrite_read_fd (int fd, const char *name, size_t max,
                         char **buf_rtn, size_t *len_rtn)
{
  CLEANUP_FREE char *buf = malloc (max + 1);
  size_t len = 0;

  if (buf == NULL) {
    vmferry_set_error_errno (errno, "%s", name);
    return -1;
  }
  for (;;) {
    ssize_t r = read (fd, buf + len, max + 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      vmferry_set_error_errno (errno, "%s: read", name);
      return -1;
    }
    if (r == 0)
      break;
    len += r;
    if (len > max)
      return 1;
  }
  buf[len] = '\0';
  *buf_rtn = buf;
  *len_rtn = len;
  buf = NULL;
  return 0;
}

/* Bare XML from IN_FD into *BUF_RTN (at most VMFERRY_DOMAIN_MAX_SIZE). */
static int
read_xml (int in_fd, const char *in_name, char **buf_rtn, size_t *len_rtn)
{
  int r = vmferry_rewrite_read_fd (in_fd, in_name, VMFERRY_DOMAIN_MAX_SIZE,
                                   buf_rtn, len_rtn);

  if (r == 1)
    vmferry_set_error ("%s: more than %d MiB: not domain XML", in_name,
                       VMFERRY_DOMAIN_MAX_SIZE / (1024 * 1024));
  return r == 0 ? 0 : -1;
}

static int
write_all (int fd, const char *name, const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t r = write (fd, buf, len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      vmferry_set_error_errno (errno, "%s: write", name);
      return -1;
    }
    buf += r;
    len -= r;
  }
  return 0;
}

int
vmferry_rewrite_xml_fd (struct vmferry_rewrite *rw, int in_fd,
                        const char *in_name, int out_fd, const char *out_name,
                        virConnectPtr dest)
{
  CLEANUP_FREE char *buf = NULL;
  CLEANUP_FREE char *out = NULL;
  size_t len;

  if (read_xml (in_fd, in_name, &buf, &len) == -1)
    return -1;
  out = vmferry_rewrite_xml (rw, buf, len, in_name, dest, NULL);
  if (out == NULL)
    return -1;
  return write_all (out_fd, out_name, out, strlen (out));
}

/* ---------------------------------------------------------------- diff */

/* TEXT with each line as vmferry_text_escape shows it.  Caller frees. */
static char *
escape_lines (const char *text)
{
  char *out = NULL;
  size_t size = 0;
  FILE *fp = open_memstream (&out, &size);

  if (fp == NULL)
    return NULL;
  while (*text) {
    const char *nl = strchrnul (text, '\n');
    char *e = vmferry_text_escape (text, nl - text);
    if (e == NULL || fprintf (fp, "%s%s", e, *nl ? "\n" : "") < 0) {
      free (e);
      fclose (fp);
      free (out);
      return NULL;
    }
    free (e);
    text = *nl ? nl + 1 : nl;
  }
  if (fclose (fp) != 0) {
    free (out);
    return NULL;
  }
  return out;
}

int
vmferry_rewrite_diff (struct vmferry_rewrite *rw, int in_fd,
                      const char *in_name, bool stream, bool escape,
                      virConnectPtr dest, char **diff_rtn)
{
  CLEANUP_FREE char *before = NULL;
  CLEANUP_FREE char *after = NULL;
  CLEANUP_FREE char *label = NULL;
  size_t len;

  *diff_rtn = NULL;
  if (stream) {
    if (vmferry_rewrite_stream_preview (rw, in_fd, in_name, dest, &before,
                                        &after) == -1)
      return -1;
    len = strlen (before);
  }
  else {
    if (read_xml (in_fd, in_name, &before, &len) == -1)
      return -1;
    after = vmferry_rewrite_xml (rw, before, len, in_name, dest, NULL);
    if (after == NULL)
      return -1;
  }
  if (asprintf (&label, "%s (rewritten)", in_name) < 0) {
    label = NULL;
    vmferry_set_error_errno (ENOMEM, "%s", in_name);
    return -1;
  }
  *diff_rtn = vmferry_diff_unified (before, len, in_name, after,
                                    strlen (after), label, 3, NULL);
  if (*diff_rtn && escape) {
    char *e = escape_lines (*diff_rtn);
    free (*diff_rtn);
    *diff_rtn = e;
    if (e == NULL)
      vmferry_set_error_errno (ENOMEM, "%s: diff", in_name);
  }
  return *diff_rtn ? 0 : -1;
}
