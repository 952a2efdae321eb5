/* vmferry: cleanup attributes for what the C library hands out.
 *
 * A variable declared with one of these is released when it goes out of
 * scope.  Every helper is safe on NULL / -1, so a function can return
 * early from anywhere.  To hand ownership out, set the variable to NULL
 * (or -1) after copying it.  The ones for libvirt and libxml2 objects
 * are in lib/cleanup.h, out of the base's reach.
 */
#ifndef VMFERRY_CLEANUP_LIBC_H
#define VMFERRY_CLEANUP_LIBC_H

#include <stdio.h>

void vmferry_cleanup_free (void *ptr);
void vmferry_cleanup_close (int *fdp);
void vmferry_cleanup_fclose (FILE **fpp);
void vmferry_cleanup_unlink_free (char **pathp);
void vmferry_cleanup_strv_free (char ***strvp);

#define CLEANUP_FREE __attribute__ ((cleanup (vmferry_cleanup_free)))
#define CLEANUP_CLOSE __attribute__ ((cleanup (vmferry_cleanup_close)))
#define CLEANUP_FCLOSE __attribute__ ((cleanup (vmferry_cleanup_fclose)))
/* Unlinks the path (if not NULL) and frees it: for temporary files that
 * must vanish on every error path.  Set to NULL to keep the file.
 */
#define CLEANUP_UNLINK_FREE \
  __attribute__ ((cleanup (vmferry_cleanup_unlink_free)))
#define CLEANUP_STRV_FREE __attribute__ ((cleanup (vmferry_cleanup_strv_free)))

/* Free a NULL-terminated array of strings and the array; NULL is fine. */
void vmferry_strv_free (char **strv);

#endif
