/* vmferry: import a stream on this host (vmferry-import). */
#ifndef VMFERRY_IMPORT_H
#define VMFERRY_IMPORT_H

#include <stdbool.h>

#include "progress.h"

struct vmferry_import_opts {
  const char *uri;              /* NULL: libvirt's default */
  int in_fd;                    /* the stream (not closed) */
  const char *in_name;          /* "stdin" or the path, for messages */
  const char *dir;              /* target directory, or */
  const char *pool;             /* a directory-backed storage pool */
  bool define, start, force;
  const char *new_name;         /* define under this name, new UUID */
  unsigned threads;             /* 0: one per CPU */
  struct vmferry_progress *progress;
};

/* Read the whole stream, write every file under a temporary name, verify
 * each against its digest, then rename them into place and (with define)
 * define the domain pointing at them.  On any failure nothing is defined,
 * no file is left under a final name, temporary files are removed, and
 * files or domains that existed before are as they were.  Returns 0, or
 * -1 with the error set (naming what was left behind, if anything).
 */
int vmferry_import (const struct vmferry_import_opts *opts);

#endif
