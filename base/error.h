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

/* An error kept across a cleanup that may set another one:
 *
 *   struct vmferry_saved_error saved;
 *   vmferry_save_error (&saved);
 *   ... undo, which may fail ...
 *   vmferry_restore_saved_error (&saved);
 *
 * The message and its errno both come back.
 */
struct vmferry_saved_error {
  char msg[VMFERRY_ERROR_MAX];
  int errnum;
};

void vmferry_save_error (struct vmferry_saved_error *saved);
void vmferry_restore_saved_error (const struct vmferry_saved_error *saved);

/* Restore SAVED and append "; " and a formatted message to it, keeping
 * SAVED's errno: the first failure stays first, what happened while
 * undoing it follows ("X failed; and Y could not be undone").
 */
void vmferry_append_error (const struct vmferry_saved_error *saved,
                           const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));

#endif
