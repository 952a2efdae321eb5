/* vmferry: bytes as lowercase hexadecimal text and back.
 *
 * Digests, tokens and stream ids are written into state files, JSON and
 * file names as hex; one encoder and one strict decoder for all of them.
 */
#ifndef VMFERRY_HEX_H
#define VMFERRY_HEX_H

#include <stddef.h>

/* The N bytes at P as 2 * N lowercase hex digits and a NUL into OUT
 * (2 * N + 1 bytes).
 */
void vmferry_hex_encode (const void *p, size_t n, char *out);

/* Exactly 2 * N lowercase hex digits at S into the N bytes at OUT.
 * Returns 0, or -1 (OUT partly written) when one of them is not a
 * lowercase hex digit (S may end early: its NUL is not a digit).
 * What follows the 2 * N digits is not looked at.
 */
int vmferry_hex_decode (const char *s, void *out, size_t n);

/* The same for a whole string: S (NULL refused) is exactly 2 * N
 * lowercase hex digits.
 */
int vmferry_hex_decode_str (const char *s, void *out, size_t n);

#endif
