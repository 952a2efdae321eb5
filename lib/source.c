/* vmferry: a source's calls, dispatched to its backend (see source.h). */
#include "config.h"

#include <stdlib.h>
#include <sys/mman.h>

#include "source-int.h"

const char *
vmferry_source_name (const struct vmferry_source *s)
{
  return s->name;
}

uint64_t
vmferry_source_size (const struct vmferry_source *s)
{
  return s->size;
}

int
vmferry_source_fd (const struct vmferry_source *s)
{
  return s->fd;
}

int
vmferry_source_next_data (struct vmferry_source *s, uint64_t pos,
                          uint64_t size, uint64_t *start_rtn,
                          uint64_t *end_rtn, bool *zero_rtn)
{
  if (zero_rtn)
    *zero_rtn = false;
  return s->ops->next_data (s, pos, size, start_rtn, end_rtn, zero_rtn);
}

int
vmferry_source_read (struct vmferry_source *s, uint64_t off, size_t len,
                     unsigned char *buf, struct vmferry_source_view *v)
{
  vmferry_source_view_release (v);
  return s->ops->read (s, off, len, buf, v);
}

void
vmferry_source_view_release (struct vmferry_source_view *v)
{
  if (v->map) {
    munmap (v->map, v->map_len);
    v->map = NULL;
  }
}

void
vmferry_source_free (struct vmferry_source *s)
{
  if (s == NULL)
    return;
  s->ops->close (s);
}
