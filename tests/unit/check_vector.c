/* Unit tests for base/vector.h: growable arrays. */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "vector.h"

DEFINE_VECTOR_TYPE (int_vector, int);
DEFINE_VECTOR_TYPE (byte_vector, char);

START_TEST (test_append_keeps_order)
{
  struct int_vector v = VECTOR_INIT;

  for (int i = 0; i < 10000; i++)
    ck_assert_int_eq (int_vector_append (&v, i), 0);
  ck_assert_uint_eq (v.len, 10000);
  ck_assert_uint_ge (v.cap, v.len);
  for (int i = 0; i < 10000; i++)
    ck_assert_int_eq (v.ptr[i], i);
  int_vector_reset (&v);
  ck_assert_ptr_null (v.ptr);
  ck_assert_uint_eq (v.len, 0);
  ck_assert_uint_eq (v.cap, 0);
}
END_TEST

/* Appends are amortised O(1): the array is reallocated about log2(N)
 * times, not N times.
 */
START_TEST (test_growth_is_geometric)
{
  struct int_vector v = VECTOR_INIT;
  size_t grew = 0, cap = 0;

  for (int i = 0; i < 100000; i++) {
    ck_assert_int_eq (int_vector_append (&v, i), 0);
    if (v.cap != cap) {
      grew++;
      cap = v.cap;
    }
  }
  ck_assert_uint_le (grew, 20);
  int_vector_reset (&v);
}
END_TEST

START_TEST (test_append_many_and_remove)
{
  struct byte_vector b = VECTOR_INIT;

  ck_assert_int_eq (byte_vector_append_many (&b, "", 0), 0);
  ck_assert_uint_eq (b.len, 0);
  ck_assert_int_eq (byte_vector_append_many (&b, "hello, ", 7), 0);
  ck_assert_int_eq (byte_vector_append_many (&b, "world", 5), 0);
  ck_assert_int_eq (byte_vector_append (&b, '\0'), 0);
  ck_assert_str_eq (b.ptr, "hello, world");
  byte_vector_remove (&b, 0);
  ck_assert_str_eq (b.ptr, "ello, world");
  byte_vector_remove (&b, b.len - 2);
  ck_assert_str_eq (b.ptr, "ello, worl");
  ck_assert_uint_eq (b.len, 11);
  byte_vector_reset (&b);
}
END_TEST

/* A size that cannot be allocated fails with ENOMEM and leaves the
 * vector as it was, rather than wrapping round to a small allocation.
 */
START_TEST (test_overflow_refused)
{
  struct int_vector v = VECTOR_INIT;

  ck_assert_int_eq (int_vector_append (&v, 7), 0);
  errno = 0;
  ck_assert_int_eq (int_vector_reserve (&v, SIZE_MAX / sizeof (int)), -1);
  ck_assert_int_eq (errno, ENOMEM);
  errno = 0;
  ck_assert_int_eq (int_vector_reserve (&v, SIZE_MAX), -1);
  ck_assert_int_eq (errno, ENOMEM);
  ck_assert_uint_eq (v.len, 1);
  ck_assert_int_eq (v.ptr[0], 7);
  int_vector_reset (&v);
}
END_TEST

static char *escaped;

static void
keep_pointer (struct int_vector *v)
{
  CLEANUP_VECTOR struct int_vector inner = VECTOR_INIT;

  ck_assert_int_eq (int_vector_append (&inner, 1), 0);
  escaped = (char *) inner.ptr;
  *v = inner;
  inner = (struct int_vector) VECTOR_INIT;  /* handed out, not freed */
}

START_TEST (test_cleanup)
{
  struct int_vector v = VECTOR_INIT;

  {
    CLEANUP_VECTOR struct int_vector scoped = VECTOR_INIT;
    ck_assert_int_eq (int_vector_append (&scoped, 42), 0);
  }
  keep_pointer (&v);
  ck_assert_ptr_eq ((char *) v.ptr, escaped);
  ck_assert_int_eq (v.ptr[0], 1);
  int_vector_reset (&v);
}
END_TEST

VMFERRY_UNIT_MAIN ("vector",
                   test_append_keeps_order,
                   test_growth_is_geometric,
                   test_append_many_and_remove,
                   test_overflow_refused,
                   test_cleanup)
