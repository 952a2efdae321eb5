/* vmferry: a signal asks the process to quit (a flag and a pipe to self,
 * as nbdkit's server/quit.c).
 *
 * The handler vmferry_quit_on installs does two async-signal-safe things
 * and nothing else: it records the first signal in a flag and writes a
 * byte to a pipe.  Both live in static storage, so no handler ever
 * reaches memory that is freed.  What a signal must cause (an import
 * keeping its resume state, a temporary file removed, a line saying what
 * the destination keeps, the tool dying of the signal) is done outside
 * the handler, by code that sees the flag or the pipe:
 *
 *  - a loop checks vmferry_quit_signal (), or hands vmferry_quit_flag ()
 *    to an API that takes a cancel flag;
 *  - code that blocks waits on the pipe too (vmferry_quit_poll,
 *    vmferry_quit_read): the pipe is never drained, so once a signal came
 *    every wait, now or later, returns at once, and a signal that arrives
 *    just before the wait begins is not missed;
 *  - a tool whose library blocks where it cannot wait on the pipe has a
 *    thread do it (vmferry_quit_watch).
 */
#ifndef VMFERRY_QUIT_H
#define VMFERRY_QUIT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Make SIG ask to quit (SA_RESTART: a system call that is not waiting
 * on the pipe goes on).  With ONLY_IF_DEFAULT, a signal whose action is
 * not the default (ignored by nohup or a background job, or another
 * handler's) is left as it is.  0, or -1 with the error set.
 */
int vmferry_quit_on (int sig, bool only_if_default);

/* What the handler does: async-signal-safe.  The first SIG is kept. */
void vmferry_quit_set (int sig);

/* The signal that asked to quit, 0 while none has. */
int vmferry_quit_signal (void);

/* The flag itself, for an API that polls a cancel flag. */
const volatile sig_atomic_t *vmferry_quit_flag (void);

/* The pipe's read end: readable once a signal asked to quit; -1 until
 * vmferry_quit_on made it.  Never read it: it stays readable.
 */
int vmferry_quit_fd (void);

/* Wait until FD is ready for EVENTS (poll(2) events), TIMEOUT_MS
 * passed (-1: no limit) or a signal asked to quit.  Returns 1 when FD is
 * ready, 0 on timeout, VMFERRY_QUIT when asked to quit (before FD), -1
 * with the error set.
 */
#define VMFERRY_QUIT 2
int vmferry_quit_poll (int fd, short events, int timeout_ms);

/* read(2) of FD through EINTR and a non-blocking FD, that also ends
 * when a signal asked to quit: that reads as the end of input (0), as
 * when the link is cut.  -1 with the error ("read: ...") set.
 */
ssize_t vmferry_quit_read (int fd, void *buf, size_t len);

/* Die of the signal that asked to quit (its default action, so the
 * status is 128+N), or of SIGTERM if none did.  Not from a handler.
 */
void vmferry_quit_die (void) __attribute__ ((noreturn));

/* A thread that calls FN (SIG, OPAQUE) once a signal asked to quit.  FN
 * runs outside any handler (it may take locks, write, die).  Returns
 * NULL with the error set.  vmferry_quit_unwatch stops the thread (after
 * FN, if it has begun) and frees it; NULL is fine.
 */
struct vmferry_quit_watch;
struct vmferry_quit_watch *vmferry_quit_watch (void (*fn) (int sig,
                                                           void *opaque),
                                               void *opaque);
void vmferry_quit_unwatch (struct vmferry_quit_watch *w);

#endif
