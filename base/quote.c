/* vmferry: shell quoting (see quote.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quote.h"

int
vmferry_shell_quote_append (char **buf, const char *arg)
{
  size_t old = *buf ? strlen (*buf) : 0, n = old + 4;
  char *p, *q;

  for (const char *s = arg; *s; s++)
    n += *s == '\'' ? 4 : 1;
  p = realloc (*buf, n);
  if (p == NULL) {
    vmferry_set_error_errno (ENOMEM, "command line");
    return -1;
  }
  *buf = p;
  q = p + old;
  if (old)
    *q++ = ' ';
  *q++ = '\'';
  for (const char *s = arg; *s; s++) {
    if (*s == '\'') {
      memcpy (q, "'\\''", 4);
      q += 4;
    }
    else
      *q++ = *s;
  }
  *q++ = '\'';
  *q = '\0';
  return 0;
}
