/* vmferry: bytes as hex text (see hex.h). */
#include "config.h"

#include <string.h>

#include "hex.h"

void
vmferry_hex_encode (const void *p, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";
  const unsigned char *b = p;

  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
}

/* The value of lowercase hex digit C, or -1. */
static int
digit (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int
vmferry_hex_decode (const char *s, void *out, size_t n)
{
  unsigned char *b = out;

  for (size_t i = 0; i < n; i++) {
    int hi = digit (s[2 * i]), lo;

    /* Not past a NUL: S may be shorter than 2 * N. */
    if (hi < 0 || (lo = digit (s[2 * i + 1])) < 0)
      return -1;
    b[i] = hi << 4 | lo;
  }
  return 0;
}

int
vmferry_hex_decode_str (const char *s, void *out, size_t n)
{
  if (s == NULL || strlen (s) != 2 * n)
    return -1;
  return vmferry_hex_decode (s, out, n);
}
