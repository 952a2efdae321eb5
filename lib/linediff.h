/* vmferry: a line diff of two texts, as `diff -u` prints it.
 *
 * For showing what a rewrite changes in a domain definition (a few
 * hundred lines): the longest common subsequence of the lines between
 * their common head and tail, by dynamic programming.  When that middle
 * is too large for it (more than VMFERRY_DIFF_MAX_CELLS line pairs) the
 * whole middle is shown as removed and added: still a correct diff, just
 * not a minimal one.
 */
#ifndef VMFERRY_LINEDIFF_H
#define VMFERRY_LINEDIFF_H

#include <stddef.h>

#define VMFERRY_DIFF_MAX_CELLS (4 * 1024 * 1024)

/* The unified diff of A[0..ALEN) (named A_NAME in the "---" header) and
 * B[0..BLEN) (B_NAME, "+++"), with CONTEXT lines of context around each
 * change; a last line without a newline is marked as diff(1) marks it.
 * The empty string when the texts are equal.  *CHANGED_RTN (may be
 * NULL) is the number of lines removed plus lines added.  The caller
 * frees the result; NULL with the error set when out of memory.
 */
char *vmferry_diff_unified (const char *a, size_t alen, const char *a_name,
                            const char *b, size_t blen, const char *b_name,
                            unsigned context, size_t *changed_rtn);

#endif
