/* vmferry: is an image file in use by a QEMU (QEMU's image locks)?
 *
 * A QEMU that has an image open holds, on the file, a shared open file
 * description lock (OFD) on byte VMFERRY_QEMU_LOCK_PERM_BASE + P for each
 * permission P it uses, and on byte VMFERRY_QEMU_LOCK_SHARED_BASE + P for
 * each permission it does not let others take (QEMU's
 * block/file-posix.c: raw_apply_lock_bytes, RAW_LOCK_PERM_BASE,
 * RAW_LOCK_SHARED_BASE).  Testing those bytes with F_OFD_GETLK finds
 * every such QEMU, libvirt's or not, on this host (and, where the file
 * system passes locks on, on others).  qemu-img and qemu-io lock alike.
 *
 * The exporter refuses a file another process writes (the copy could
 * be inconsistent); an importer must not replace a file that anyone
 * uses.
 */
#ifndef VMFERRY_IMAGELOCK_H
#define VMFERRY_IMAGELOCK_H

#include <sys/types.h>

#define VMFERRY_QEMU_LOCK_PERM_BASE 100
#define VMFERRY_QEMU_LOCK_SHARED_BASE 200
/* Bits tested above each base: QEMU has four permissions today (five
 * before 6.1); the rest are room to grow.
 */
#define VMFERRY_QEMU_LOCK_BITS 32

/* QEMU's permission bits (include/block/block-common.h, BLK_PERM_*). */
#define VMFERRY_QEMU_PERM_CONSISTENT_READ 0x01
#define VMFERRY_QEMU_PERM_WRITE 0x02
#define VMFERRY_QEMU_PERM_WRITE_UNCHANGED 0x04
#define VMFERRY_QEMU_PERM_RESIZE 0x08

struct vmferry_image_lock {
  unsigned used;                /* permissions others hold (bytes 100+P) */
  unsigned unshared;            /* permissions others forbid (200+P) */
  /* A process that holds locks on the file (else one that has it
   * open), found in /proc; 0 when none could be seen.
   */
  pid_t pid;
  char comm[32];                /* its name, "" if unknown */
};

/* Test the file open as FD (read-only is enough; no lock is taken) for
 * QEMU's image locks held through other open file descriptions.
 * Returns 1 when some are held, with *LOCK_RTN saying which and by
 * whom; 0 when none are, -1 with the error set (PATH names the file).
 */
int vmferry_image_lock_holder (int fd, const char *path,
                               struct vmferry_image_lock *lock_rtn);

/* Take an exclusive lock over all of QEMU's lock bytes of the image open
 * on FD (read-write): an OFD lock, so it belongs to this open file
 * description and goes when its last fd is closed, also when the process
 * dies.  While it is held no QEMU can open the image.  Returns 0, or -1
 * with the error set: EAGAIN ("PATH: in use by qemu-system-x86 (pid
 * 1234)") when a process holds one of those locks now.
 */
int vmferry_image_lock (int fd, const char *path);

/* "qemu-system-x86 (pid 1234)", or "another process": for messages. */
const char *vmferry_image_lock_who (const struct vmferry_image_lock *lock,
                                    char *buf, size_t len);

#endif
