/* vmferry: text from untrusted input: UTF-8, control characters, and how
 * to show it.
 *
 * Strings in a stream's manifest and its domain XML end up in messages,
 * listings and paths.  A terminal interprets control characters (ESC
 * starts a sequence that can move the cursor, rewrite the screen or set
 * the window title), so text from a stream is either refused when it
 * holds them or escaped before it is printed.
 */
#ifndef VMFERRY_TEXT_H
#define VMFERRY_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* S[0..LEN) is valid UTF-8: no stray continuation byte, no truncated or
 * overlong sequence, no surrogate, nothing above U+10FFFF.  On failure
 * *BAD_RTN (may be NULL) is the offset of the first bad byte.
 */
bool vmferry_utf8_valid (const char *s, size_t len, size_t *bad_rtn);

/* S[0..LEN) is valid UTF-8 without control characters: no C0 (U+0000 to
 * U+001F, so no NUL, tab or newline either), no DEL (U+007F) and no C1
 * (U+0080 to U+009F).  Text that passes can be shown as it is.
 */
bool vmferry_text_plain (const char *s, size_t len);

/* A copy of S[0..LEN) that is safe to print on a terminal: control
 * characters and bytes that are not UTF-8 become \xNN, C1 controls and
 * the invisible characters that reorder or break a line (bidirectional
 * overrides and isolates, U+2028, U+2029) become \uNNNN, and a backslash
 * becomes two, so the output tells them apart.  Everything else is kept.
 * The caller frees the result; NULL only when out of memory.
 */
char *vmferry_text_escape (const char *s, size_t len);

#endif
