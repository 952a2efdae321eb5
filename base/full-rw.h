/* vmferry: reads and writes that move every byte or fail.
 *
 * read(2) and write(2) may move fewer bytes than asked (a pipe, a
 * signal); these loop until all are moved, retry EINTR, and set the
 * error (error.h) naming the file otherwise.
 */
#ifndef VMFERRY_FULL_RW_H
#define VMFERRY_FULL_RW_H

#include <stddef.h>
#include <stdint.h>

/* pread exactly LEN bytes at OFFSET: EINTR retried, and a short read is
 * an error ("NAME: file shrank while being read"), never zeros.
 */
int vmferry_pread_full (int fd, const char *name, void *buf, size_t len,
                        uint64_t offset);

/* write exactly LEN bytes (a pipe, a socket), or fail naming NAME. */
int vmferry_write_full (int fd, const char *name, const void *buf,
                        size_t len);

/* pwrite exactly LEN bytes at OFFSET, or fail naming NAME. */
int vmferry_pwrite_full (int fd, const char *name, const void *buf,
                         size_t len, uint64_t offset);

/* O_DIRECT wants buffers, offsets and lengths aligned to the device's
 * logical block size; 4096 covers every device in use.
 */
#define VMFERRY_DIRECT_ALIGN 4096

/* LEN bytes aligned for O_DIRECT, to free with free(3); NULL (errno
 * set) when out of memory.
 */
void *vmferry_alloc_direct (size_t len);

#endif
