/* vmferry: text from untrusted input (see text.h). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "text.h"

/* Decode the UTF-8 sequence at S[0..LEN) (LEN >= 1).  Returns its length
 * and the code point in *CP, or 0 when the bytes are not valid UTF-8
 * (RFC 3629: shortest form only, no surrogates, at most U+10FFFF).
 */
static size_t
utf8_decode (const unsigned char *s, size_t len, uint32_t *cp)
{
  uint32_t c = s[0], min;
  size_t n;

  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    c &= 0x1f;
    min = 0x80;
  }
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    c &= 0x0f;
    min = 0x800;
  }
  else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    c &= 0x07;
    min = 0x10000;
  }
  else
    return 0;                   /* a continuation byte, 0xc0, 0xc1, 0xf5.. */
  if (len < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    c = c << 6 | (s[i] & 0x3f);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
    return 0;
  *cp = c;
  return n;
}

static bool
is_control (uint32_t cp)
{
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Invisible characters that make a terminal show text in another order
 * or on another line than it is stored: the Trojan Source characters.
 */
static bool
is_reordering (uint32_t cp)
{
  return cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029;
}

bool
vmferry_utf8_valid (const char *s, size_t len, size_t *bad_rtn)
{
  const unsigned char *p = (const unsigned char *) s;
  size_t i = 0;

  while (i < len) {
    uint32_t cp;
    size_t n = p[i] < 0x80 ? 1 : utf8_decode (p + i, len - i, &cp);

    if (n == 0) {
      if (bad_rtn)
        *bad_rtn = i;
      return false;
    }
    i += n;
  }
  return true;
}

bool
vmferry_text_plain (const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *) s;
  size_t i = 0;

  while (i < len) {
    uint32_t cp;
    size_t n = utf8_decode (p + i, len - i, &cp);

    if (n == 0 || is_control (cp))
      return false;
    i += n;
  }
  return true;
}

char *
vmferry_text_escape (const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *) s;
  /* The worst case is one byte to four ("\xNN"); "\uNNNN" stands for two
   * or three bytes.
   */
  char *out = malloc (4 * len + 1), *q = out;
  size_t i = 0;

  if (out == NULL)
    return NULL;
  while (i < len) {
    uint32_t cp;
    size_t n = utf8_decode (p + i, len - i, &cp);

    if (n == 0 || (n == 1 && is_control (cp)))
      q += sprintf (q, "\\x%02x", p[i++]);
    else if (is_control (cp) || is_reordering (cp)) {
      q += sprintf (q, "\\u%04x", (unsigned) cp);
      i += n;
    }
    else if (cp == '\\') {
      *q++ = '\\';
      *q++ = '\\';
      i++;
    }
    else {
      for (size_t k = 0; k < n; k++)
        *q++ = p[i++];
    }
  }
  *q = '\0';
  return out;
}
