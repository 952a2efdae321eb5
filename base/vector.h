/* vmferry: growable arrays.
 *
 *   DEFINE_VECTOR_TYPE (name_vector, const char *);
 *
 *   struct name_vector names = VECTOR_INIT;
 *   if (name_vector_append (&names, "web01") == -1)
 *     ... errno is ENOMEM; NAMES is as it was ...
 *   for (size_t i = 0; i < names.len; i++)
 *     ... names.ptr[i] ...
 *   name_vector_reset (&names);
 *
 * One type per element type, with the functions below; .ptr and .len
 * are read directly, and .ptr may be handed out (then set the vector
 * to VECTOR_INIT).  The capacity at least doubles, so appending is
 * amortised constant time.  Like malloc, a failure sets errno and
 * returns -1 without setting the error (error.h): the caller knows what
 * it was growing.  The elements are not freed by _reset.
 */
#ifndef VMFERRY_VECTOR_H
#define VMFERRY_VECTOR_H

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* What every vector type is laid out as. */
struct vmferry_vector {
  void *ptr;
  size_t len;
  size_t cap;
};

/* Room for N more elements of ELEM_SIZE bytes after V's LEN: 0, or -1
 * with errno set (ENOMEM, also when the size would overflow).
 */
int vmferry_vector_reserve (struct vmferry_vector *v, size_t n,
                            size_t elem_size);

#define VECTOR_INIT { .ptr = NULL, .len = 0, .cap = 0 }

/* A vector of any type declared with this has its array freed at the
 * end of the scope (as name_reset does).
 */
void vmferry_cleanup_vector (void *v);
#define CLEANUP_VECTOR __attribute__ ((cleanup (vmferry_cleanup_vector)))

#define DEFINE_VECTOR_TYPE(name, type)                                  \
  struct name {                                                         \
    type *ptr;                                                          \
    size_t len;                 /* elements in use */                   \
    size_t cap;                 /* elements allocated */                \
  };                                                                    \
                                                                        \
  /* Room for N more elements (not initialised, LEN unchanged). */      \
  static inline int __attribute__ ((__unused__))                        \
  name##_reserve (struct name *v, size_t n)                             \
  {                                                                     \
    return vmferry_vector_reserve ((struct vmferry_vector *) (void *) v, \
                                   n, sizeof (type));                   \
  }                                                                     \
                                                                        \
  static inline int __attribute__ ((__unused__))                        \
  name##_append (struct name *v, type elem)                             \
  {                                                                     \
    if (v->len == v->cap && name##_reserve (v, 1) == -1)                \
      return -1;                                                        \
    v->ptr[v->len++] = elem;                                            \
    return 0;                                                           \
  }                                                                     \
                                                                        \
  /* Append N elements copied from ELEMS. */                            \
  static inline int __attribute__ ((__unused__))                        \
  name##_append_many (struct name *v, type const *elems, size_t n)      \
  {                                                                     \
    if (n > v->cap - v->len && name##_reserve (v, n) == -1)             \
      return -1;                                                        \
    if (n > 0)                                                          \
      memcpy (&v->ptr[v->len], elems, n * sizeof (type));               \
    v->len += n;                                                        \
    return 0;                                                           \
  }                                                                     \
                                                                        \
  /* Remove the element at I, moving those after it down. */         \
  static inline void __attribute__ ((__unused__))                       \
  name##_remove (struct name *v, size_t i)                              \
  {                                                                     \
    assert (i < v->len);                                                \
    memmove (&v->ptr[i], &v->ptr[i + 1],                                \
             (v->len - i - 1) * sizeof (type));                         \
    v->len--;                                                           \
  }                                                                     \
                                                                        \
  /* Free the array (not what its elements point to); V is empty. */    \
  static inline void __attribute__ ((__unused__))                       \
  name##_reset (struct name *v)                                         \
  {                                                                     \
    free (v->ptr);                                                      \
    v->ptr = NULL;                                                      \
    v->len = v->cap = 0;                                                \
  }

#endif
