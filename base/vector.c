/* vmferry: growable arrays (see vector.h). */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "vector.h"

int
vmferry_vector_reserve (struct vmferry_vector *v, size_t n, size_t elem_size)
{
  size_t cap;
  void *p;

  if (n <= v->cap - v->len)
    return 0;
  if (n > SIZE_MAX / elem_size - v->len) {
    errno = ENOMEM;
    return -1;
  }
  /* Doubling keeps appends amortised O(1); a big N gets what it asks. */
  cap = v->cap <= SIZE_MAX / elem_size / 2 ? v->cap * 2 : v->len + n;
  if (cap < v->len + n)
    cap = v->len + n;
  if (cap < 8)
    cap = 8;
  if (cap > SIZE_MAX / elem_size)
    cap = v->len + n;
  p = realloc (v->ptr, cap * elem_size);
  if (p == NULL) {
    errno = ENOMEM;
    return -1;
  }
  v->ptr = p;
  v->cap = cap;
  return 0;
}

void
vmferry_cleanup_vector (void *v)
{
  struct vmferry_vector *vec = v;

  free (vec->ptr);
  vec->ptr = NULL;
  vec->len = vec->cap = 0;
}
