/* vmferry: what the sources share (source.c dispatches to the backend
 * of source-file.c or source-nbd.c through its ops table).  Private to
 * those files.
 */
#ifndef VMFERRY_SOURCE_INT_H
#define VMFERRY_SOURCE_INT_H

#include "source.h"

/* A backend: the calls of source.h, each on a source it made. */
struct vmferry_source_ops {
  int (*next_data) (struct vmferry_source *s, uint64_t pos, uint64_t size,
                    uint64_t *start_rtn, uint64_t *end_rtn, bool *zero_rtn);
  int (*read) (struct vmferry_source *s, uint64_t off, size_t len,
               unsigned char *buf, struct vmferry_source_view *v);
  void (*close) (struct vmferry_source *s);   /* frees what it owns */
};

/* The part of every source that source.c reads; a backend's own struct
 * starts with it.
 */
struct vmferry_source {
  const struct vmferry_source_ops *ops;
  char *name;
  uint64_t size;
  int fd;                             /* the file's, or -1 */
};

#endif /* VMFERRY_SOURCE_INT_H */
