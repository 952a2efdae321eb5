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

/* Print "Try 'prog --help'" to stderr and exit 1. */
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
