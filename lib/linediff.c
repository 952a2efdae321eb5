/* vmferry: a line diff of two texts (see linediff.h). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "linediff.h"

struct line {
  const char *p;
  size_t len;                   /* without the newline */
  bool nl;                      /* ends with a newline */
};

/* One line of the edit script: kept (in both), removed (A), added (B). */
struct op {
  char kind;                    /* ' ', '-', '+' */
  size_t ai, bi;                /* line numbers (0-based) in A and B */
};

static struct line *
split_lines (const char *s, size_t len, size_t *n_rtn)
{
  size_t n = 0, k = 0;
  struct line *v;

  for (size_t i = 0; i < len; i++)
    if (s[i] == '\n')
      n++;
  if (len > 0 && s[len - 1] != '\n')
    n++;
  v = calloc (n ? n : 1, sizeof *v);
  if (v == NULL)
    return NULL;
  for (size_t i = 0; i < len; ) {
    const char *e = memchr (s + i, '\n', len - i);
    size_t l = e ? (size_t) (e - (s + i)) : len - i;
    v[k].p = s + i;
    v[k].len = l;
    v[k].nl = e != NULL;
    k++;
    i += l + (e != NULL);
  }
  *n_rtn = n;
  return v;
}

static bool
same_line (const struct line *x, const struct line *y)
{
  return x->len == y->len && x->nl == y->nl && memcmp (x->p, y->p, x->len) == 0;
}

/* The edit script turning A into B, into *OPS_RTN. */
static int
edit_script (const struct line *a, size_t na, const struct line *b, size_t nb,
             struct op **ops_rtn, size_t *nops_rtn)
{
  size_t head = 0, tail = 0, n, m, k = 0;
  struct op *ops = calloc (na + nb + 1, sizeof *ops);
  uint32_t *dp = NULL;

  if (ops == NULL)
    return -1;
  while (head < na && head < nb && same_line (&a[head], &b[head]))
    head++;
  while (tail < na - head && tail < nb - head &&
         same_line (&a[na - 1 - tail], &b[nb - 1 - tail]))
    tail++;
  n = na - head - tail;
  m = nb - head - tail;

  for (size_t i = 0; i < head; i++)
    ops[k++] = (struct op) { ' ', i, i };

  /* dp[i][j]: the LCS of the middles' suffixes from i and from j. */
  if (n > 0 && m > 0 && (n + 1) * (m + 1) <= VMFERRY_DIFF_MAX_CELLS) {
    dp = calloc ((n + 1) * (m + 1), sizeof *dp);
    if (dp == NULL) {
      free (ops);
      return -1;
    }
#define DP(i, j) dp[(i) * (m + 1) + (j)]
    for (size_t i = n; i-- > 0; )
      for (size_t j = m; j-- > 0; )
        DP (i, j) = same_line (&a[head + i], &b[head + j])
          ? DP (i + 1, j + 1) + 1
          : DP (i + 1, j) >= DP (i, j + 1) ? DP (i + 1, j) : DP (i, j + 1);
  }
  {
    size_t i = 0, j = 0;
    while (i < n || j < m) {
      if (dp && i < n && j < m && same_line (&a[head + i], &b[head + j])) {
        ops[k++] = (struct op) { ' ', head + i, head + j };
        i++, j++;
      }
      else if (i < n &&
               (j == m || dp == NULL || DP (i + 1, j) >= DP (i, j + 1))) {
        ops[k++] = (struct op) { '-', head + i, head + j };
        i++;
      }
      else {
        ops[k++] = (struct op) { '+', head + i, head + j };
        j++;
      }
    }
  }
#undef DP
  free (dp);
  for (size_t i = 0; i < tail; i++)
    ops[k++] = (struct op) { ' ', na - tail + i, nb - tail + i };
  *ops_rtn = ops;
  *nops_rtn = k;
  return 0;
}

/* "START,COUNT" as diff -u writes a hunk's range (1-based; an empty
 * range names the line before it).
 */
static int
print_range (FILE *fp, size_t start, size_t count)
{
  if (count == 1)
    return fprintf (fp, "%zu", start + 1);
  return fprintf (fp, "%zu,%zu", count ? start + 1 : start, count);
}

char *
vmferry_diff_unified (const char *a, size_t alen, const char *a_name,
                      const char *b, size_t blen, const char *b_name,
                      unsigned context, size_t *changed_rtn)
{
  size_t na = 0, nb = 0, nops = 0, changed = 0, size = 0;
  struct line *la = split_lines (a, alen, &na);
  struct line *lb = split_lines (b, blen, &nb);
  struct op *ops = NULL;
  char *out = NULL;
  FILE *fp = NULL;

  if (la == NULL || lb == NULL ||
      edit_script (la, na, lb, nb, &ops, &nops) == -1)
    goto nomem;
  fp = open_memstream (&out, &size);
  if (fp == NULL)
    goto nomem;
  for (size_t i = 0; i < nops; i++)
    changed += ops[i].kind != ' ';
  if (changed)
    fprintf (fp, "--- %s\n+++ %s\n", a_name, b_name);

  for (size_t i = 0; i < nops; ) {
    size_t first, last, end, acount = 0, bcount = 0;

    while (i < nops && ops[i].kind == ' ')
      i++;
    if (i == nops)
      break;
    /* A hunk: this change and every one within 2*CONTEXT kept lines. */
    first = i;
    last = i;
    for (size_t k = i + 1; k < nops; k++)
      if (ops[k].kind != ' ') {
        if (k - last - 1 > 2 * (size_t) context)
          break;
        last = k;
      }
    first = first > context ? first - context : 0;
    end = last + 1 + context < nops ? last + 1 + context : nops;
    for (size_t k = first; k < end; k++) {
      acount += ops[k].kind != '+';
      bcount += ops[k].kind != '-';
    }
    fputs ("@@ -", fp);
    print_range (fp, ops[first].ai, acount);
    fputs (" +", fp);
    print_range (fp, ops[first].bi, bcount);
    fputs (" @@\n", fp);
    for (size_t k = first; k < end; k++) {
      const struct line *l = ops[k].kind == '+' ? &lb[ops[k].bi]
                                                : &la[ops[k].ai];
      fputc (ops[k].kind, fp);
      fwrite (l->p, 1, l->len, fp);
      fputs (l->nl ? "\n" : "\n\\ No newline at end of file\n", fp);
    }
    i = end;
  }
  if (fclose (fp) != 0) {
    fp = NULL;
    goto nomem;
  }
  fp = NULL;
  free (la);
  free (lb);
  free (ops);
  if (changed_rtn)
    *changed_rtn = changed;
  return out;

 nomem:
  if (fp)
    fclose (fp);
  free (out);
  free (la);
  free (lb);
  free (ops);
  vmferry_set_error_errno (ENOMEM, "diff");
  return NULL;
}
