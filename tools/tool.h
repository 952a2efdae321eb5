/* vmferry: what every tool shares: common options and argument parsing.
 *
 * Each tool keeps its own option table and struct of options (STYLE.md);
 * these helpers only remove repetition.  Every tool has --help, --version,
 * -v/--verbose and -q/--quiet.
 */
#ifndef VMFERRY_TOOL_H
#define VMFERRY_TOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The exit status of every tool: one table, the same in the EXIT STATUS
 * section of every man page (tests/docs/exit-status.scd; check-docs.sh
 * checks each page against it).  Scripts tell "it failed" (1) from "it
 * could not run" (2); the higher ones are states of vmferry-migrate that
 * need a person.  The libraries' own return values (VMFERRY_IMPORT_ALREADY,
 * VMFERRY_MIGRATE_ALREADY, ...) are never exit statuses: "already there"
 * is success.
 */
enum vmferry_exit {
  VMFERRY_EXIT_OK = 0,          /* done, or it was already done */
  VMFERRY_EXIT_FAILED = 1,      /* failed or refused; check: it blocks */
  VMFERRY_EXIT_USAGE = 2,       /* the command line is wrong */
  VMFERRY_EXIT_CANNOT_RUN = 2,  /* vmferry-check: could not check */
  VMFERRY_EXIT_BOTH_DEFINED = 3,  /* migrate: copied, the source defined */
  VMFERRY_EXIT_LEFTOVERS = 4,   /* migrate --live: clean-up incomplete */
  VMFERRY_EXIT_SPLIT = 5,       /* migrate --live --postcopy: split */
  VMFERRY_EXIT_SIGNAL = 128,    /* + the signal's number: interrupted */
};

#define VMFERRY_COMMON_SHORT_OPTIONS "hVvq"
#define VMFERRY_COMMON_LONG_OPTIONS                 \
  { "help", no_argument, NULL, 'h' },               \
  { "version", no_argument, NULL, 'V' },            \
  { "verbose", no_argument, NULL, 'v' },            \
  { "quiet", no_argument, NULL, 'q' }

/* Set the program name from argv[0]. */
void vmferry_tool_init (const char *argv0);

/* Handle one of the common options.  Returns true if OPT was one (and
 * exits for --help and --version), false otherwise.
 */
bool vmferry_tool_common_option (int opt, const char *synopsis);

/* Print "Try 'prog --help'" to stderr and exit VMFERRY_EXIT_USAGE (with
 * --json, the error object too, naming the thread's error if one is set).
 */
void vmferry_tool_usage_error (void) __attribute__ ((noreturn));

/* An option of another tool, and what this tool takes instead. */
struct vmferry_option_hint {
  const char *option;           /* "--dir": matches "--dir" and "--dir=..." */
  const char *hint;             /* one sentence, no final period */
};

/* After getopt_long reported an unknown option (it returned '?'), with
 * ARG the word it stopped at (argv[optind - 1]): when that is one of
 * HINTS' options (a table ending in { NULL, NULL }), print its hint to
 * stderr, so that an option given in another tool's form is answered
 * with this tool's.  Returns true when a hint was printed.
 */
bool vmferry_tool_option_hint (const char *arg,
                               const struct vmferry_option_hint *hints);

/* Print "prog: <thread's vmferry error>" to stderr. */
void vmferry_tool_print_error (void);

/* --json: when ARGV holds "--json" among its options, errors are also
 * written to stdout as one JSON object (vmferry_tool_fail), whose
 * "format" member is FORMAT (e.g. "vmferry-check/1", the convention of
 * every --json output: the tool's name, a slash, the version of that
 * layout).  Call before parsing, so usage errors are JSON too.  Returns
 * whether --json was given.
 */
bool vmferry_tool_json_errors (int argc, char *const argv[],
                               const char *format);

/* Print the thread's error (vmferry_tool_print_error; with --json also
 * {"format": ..., "error": MESSAGE, "exit_status": STATUS} on stdout) and
 * return STATUS, for "return vmferry_tool_fail (VMFERRY_EXIT_FAILED);".
 */
int vmferry_tool_fail (int status);

/* Print the thread's summary (log.h: what the operation did) as
 * "prog: summary" on stderr, unless -q or there is none.  On success only.
 */
void vmferry_tool_print_summary (void);

/* Parse a non-negative integer; false (error set) if ARG is not one or is
 * outside [min, max].
 */
bool vmferry_parse_uint (const char *what, const char *arg, uint64_t min,
                         uint64_t max, uint64_t *rtn);

/* Parse a size in bytes, with an optional binary suffix (K, M, G, T, as
 * also KiB or KB); false (error set) if ARG is not one or is outside
 * [min, max].
 */
bool vmferry_parse_size (const char *what, const char *arg, uint64_t min,
                         uint64_t max, uint64_t *rtn);

/* Parse a file descriptor number for --progress=FD; it must be open. */
bool vmferry_parse_fd (const char *what, const char *arg, int *fd_rtn);

#endif
