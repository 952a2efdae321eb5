/* vmferry: thread-local error reporting.
 *
 * The library never prints and never exits.  A failing function records a
 * message (and the errno behind it, if any) for the calling thread and
 * returns -1 or NULL; the caller reads it with vmferry_get_error().
 * Messages read "object: what failed: reason", e.g.
 * "/srv/vm/a.qcow2: cannot open: No such file or directory".
 */
#ifndef VMFERRY_ERROR_H
#define VMFERRY_ERROR_H

#define VMFERRY_ERROR_MAX 4096

/* Replace the thread's error with a formatted message. */
void vmferry_set_error (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));

/* Same, then append ": strerror(errnum)" and remember errnum. */
void vmferry_set_error_errno (int errnum, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Put "context: " in front of the current message, keeping its errno.
 * Used by callers that know which object a lower layer was working on.
 */
void vmferry_prefix_error (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));

/* The thread's last message; "" when none.  Valid until the next error. */
const char *vmferry_get_error (void);

/* The errno recorded with the last message, 0 when none. */
int vmferry_get_errno (void);

void vmferry_clear_error (void);

/* Set the message verbatim with its errno: hands an error recorded in one
 * thread over to another.
 */
void vmferry_restore_error (const char *msg, int errnum);

#endif
