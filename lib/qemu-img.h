/* vmferry: running qemu-img, the one way the tools call it to create,
 * convert, compare or rebase an image.
 */
#ifndef VMFERRY_QEMU_IMG_H
#define VMFERRY_QEMU_IMG_H

/* Run qemu-img with ARGV (argv[0] "qemu-img") and wait: 0 when it
 * exited 0, else -1 with the error "qemu-img ARGV[1] failed" (its own
 * message went to standard error).
 */
int vmferry_qemu_img (char *const argv[]);

#endif
