/* vmferry: whether a buffer is all zero.
 *
 * Blocks of written zeros are detected before they are compressed or
 * hashed, so this runs once over every byte that is copied.
 */
#ifndef VMFERRY_ISZERO_H
#define VMFERRY_ISZERO_H

#include <stdbool.h>
#include <stddef.h>

/* True if BUF[0..LEN) holds only zero bytes (LEN 0 is all zero).  Runs
 * at memory bandwidth.
 */
bool vmferry_is_zero (const void *buf, size_t len);

#endif
