/* vmferry: verbosity and logging.
 *
 * The tools set the program name and the verbosity (-q, -v, -v -v); the
 * library logs through vmferry_log(), which by default writes
 * "prog: message" lines to stderr.  A different sink can be installed (the
 * unit tests capture messages this way).  Errors are not logged: they are
 * returned (error.h) and printed once by the tool.
 */
#ifndef VMFERRY_LOG_H
#define VMFERRY_LOG_H

#include "clock.h"            /* the clock that messages time with */

enum {
  VMFERRY_LOG_QUIET = -1,   /* -q: errors only (printed by the tool) */
  VMFERRY_LOG_NORMAL = 0,   /* warnings and notices */
  VMFERRY_LOG_VERBOSE = 1,  /* -v: what is being done */
  VMFERRY_LOG_DEBUG = 2,    /* -v -v: details for bug reports */
};

typedef void (*vmferry_log_fn) (void *opaque, int level, const char *msg);

void vmferry_set_program_name (const char *argv0);
const char *vmferry_program_name (void);

void vmferry_set_verbosity (int level);
int vmferry_get_verbosity (void);

/* Install a sink; NULL restores the default (stderr). */
void vmferry_set_log_fn (vmferry_log_fn fn, void *opaque);

/* Log at LEVEL if the verbosity is at least LEVEL. */
void vmferry_log (int level, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));

/* What an operation did, in one line ("domain web01 exported to web01.vmf
 * (2.1 GiB in 0:12)"): the library records it when the operation
 * succeeds, and the tool prints it at its end unless -q
 * (vmferry_tool_print_summary).  An operation that runs others records
 * its own line after theirs, so the outermost one is printed.  Per thread.
 */
void vmferry_set_summary (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));
/* The last summary of this thread; "" when none. */
const char *vmferry_get_summary (void);
void vmferry_clear_summary (void);

#define vmferry_warn(...) \
  vmferry_log (VMFERRY_LOG_NORMAL, "warning: " __VA_ARGS__)
#define vmferry_notice(...) vmferry_log (VMFERRY_LOG_NORMAL, __VA_ARGS__)
#define vmferry_verbose(...) vmferry_log (VMFERRY_LOG_VERBOSE, __VA_ARGS__)
#define vmferry_debug(...) vmferry_log (VMFERRY_LOG_DEBUG, __VA_ARGS__)

#endif
