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

#include "export.h"             /* enum vmferry_compress */
#include "ssh.h"                /* struct vmferry_ssh_opts */

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

/* The same after "prog: MESSAGE" (the formatted message, which becomes
 * the thread's error): for a command line each option of which is right
 * but not together ("give at most one of --dir and --pool").
 */
void vmferry_tool_usage_fail (const char *fs, ...)
  __attribute__ ((noreturn, format (printf, 1, 2)));

/* ---- the option groups the tools share ----
 *
 * Written once here, not once a tool: a group is its entries for the
 * tool's option table (a macro, with the short options for getopt's
 * string), and one parser.  A tool puts the groups it takes in its
 * table, and gives each option its own switch does not know to
 * vmferry_tool_shared_option with where that tool keeps the values
 * (struct vmferry_tool_shared).  No global: the values are the tool's.
 * The values of getopt start above those of the tools' own options
 * (256 up).
 */
enum {
  VMFERRY_OPT_ACCEPT_NEW = 1024,
  VMFERRY_OPT_SSH_COMMAND,
  VMFERRY_OPT_CONNECTIONS,
  VMFERRY_OPT_BANDWIDTH,
  VMFERRY_OPT_BUFFER,
  VMFERRY_OPT_COMPRESS,
  VMFERRY_OPT_THREADS,
  VMFERRY_OPT_PROGRESS,
  /* The rewrite rules (VMFERRY_REWRITE_LONG_OPTIONS), in its order. */
  VMFERRY_OPT_RULE = 1100,
};

/* SSH: how the remote host is reached and the stream pushed into it
 * (vmferry-send, vmferry-migrate).
 */
#define VMFERRY_SSH_SHORT_OPTIONS "F:"
#define VMFERRY_SSH_LONG_OPTIONS                                        \
  { "accept-new-host-key", no_argument, NULL, VMFERRY_OPT_ACCEPT_NEW }, \
  { "ssh-config", required_argument, NULL, 'F' },                       \
  { "ssh-command", required_argument, NULL, VMFERRY_OPT_SSH_COMMAND },  \
  { "connections", required_argument, NULL, VMFERRY_OPT_CONNECTIONS },  \
  { "bandwidth", required_argument, NULL, VMFERRY_OPT_BANDWIDTH },      \
  { "buffer", required_argument, NULL, VMFERRY_OPT_BUFFER }

/* The rewrite rules as options of a tool that rewrites on the way
 * (vmferry-migrate, vmferry-sync): vmferry_tool_rule_option adds them.
 */
#define VMFERRY_REWRITE_LONG_OPTIONS                                    \
  { "map-path", required_argument, NULL, VMFERRY_OPT_RULE + 0 },        \
  { "pool", required_argument, NULL, VMFERRY_OPT_RULE + 1 },            \
  { "rename", required_argument, NULL, VMFERRY_OPT_RULE + 2 },          \
  { "new-uuid", optional_argument, NULL, VMFERRY_OPT_RULE + 3 },        \
  { "new-macs", no_argument, NULL, VMFERRY_OPT_RULE + 4 },              \
  { "map-network", required_argument, NULL, VMFERRY_OPT_RULE + 5 },     \
  { "map-bridge", required_argument, NULL, VMFERRY_OPT_RULE + 6 },      \
  { "machine", required_argument, NULL, VMFERRY_OPT_RULE + 7 },         \
  { "cpu", required_argument, NULL, VMFERRY_OPT_RULE + 8 },             \
  { "emulator", required_argument, NULL, VMFERRY_OPT_RULE + 9 },        \
  { "disk-bus", required_argument, NULL, VMFERRY_OPT_RULE + 10 },       \
  { "drop-device", required_argument, NULL, VMFERRY_OPT_RULE + 11 }

struct vmferry_rewrite;

/* OPT (with ARG) of VMFERRY_REWRITE_LONG_OPTIONS: added to REWRITE as
 * vmferry_rewrite_add does.  Returns the rule's name ("rename"), NULL
 * when OPT is none of them; *FAILED is set when the rule is refused
 * (error set: print it and end with a usage error).
 */
const char *vmferry_tool_rule_option (struct vmferry_rewrite *rewrite,
                                      int opt, const char *arg,
                                      bool *failed);

/* --compress=auto|none|zstd|zstd:LEVEL (vmferry-export, -migrate). */
#define VMFERRY_COMPRESS_LONG_OPTION                                    \
  { "compress", required_argument, NULL, VMFERRY_OPT_COMPRESS }

/* --threads=N, the copy's worker threads (export, import, migrate). */
#define VMFERRY_THREADS_LONG_OPTION                                     \
  { "threads", required_argument, NULL, VMFERRY_OPT_THREADS }

/* --progress=FD, machine-readable progress (every tool that copies). */
#define VMFERRY_PROGRESS_LONG_OPTION                                    \
  { "progress", required_argument, NULL, VMFERRY_OPT_PROGRESS }

/* Where a tool keeps the values of the groups it takes; NULL for a
 * group it does not take.
 */
struct vmferry_tool_shared {
  /* SSH: -F, --ssh-command, --accept-new-host-key, --bandwidth into
   * *ssh; --connections and --buffer into their own.
   */
  struct vmferry_ssh_opts *ssh;
  unsigned *connections;
  size_t *buffer;
  enum vmferry_compress *compress;      /* and *level, for zstd */
  int *level;
  unsigned *threads;
  int *progress_fd;                     /* -1 until given */
};

/* OPT (getopt_long's return) with its ARG: 1 when it is an option of
 * one of the groups in SHARED, parsed into it; 0 when it is none of
 * theirs; -1 when ARG is wrong (error set: print it and end with a
 * usage error).
 */
int vmferry_tool_shared_option (const struct vmferry_tool_shared *shared,
                                int opt, const char *arg);

/* The default branch of a tool's option switch: OPT is one of SHARED's
 * groups (parsed into it) or a common option (vmferry_tool_common_option);
 * anything else, or a wrong ARG, ends the program with a usage error.
 */
void vmferry_tool_other_option (const struct vmferry_tool_shared *shared,
                                int opt, const char *arg,
                                const char *synopsis);

/* After parsing: -F and --ssh-command together are a usage error (the
 * command carries its own configuration).  Exits if so.
 */
void vmferry_tool_check_ssh (const struct vmferry_ssh_opts *ssh);

/* The options of a disk's arrival (vmferry-import, vmferry-migrate):
 * --format's ARG (raw or qcow2) and --new-identity's host name ARG,
 * returned when valid, else a usage failure; --no-fixup and
 * --new-identity do not go together.
 */
const char *vmferry_tool_format_arg (const char *arg);
const char *vmferry_tool_identity_arg (const char *arg);
void vmferry_tool_check_fixup (bool no_fixup, const char *new_identity);

/* The tool's progress reporter: machine lines on PROGRESS_FD (>= 0),
 * else a bar on a terminal's stderr unless -q (vmferry_progress_auto).
 */
struct vmferry_progress *vmferry_tool_progress (int progress_fd);

/* Parse --compress: "auto", "none", "zstd" or "zstd:LEVEL" (1..19);
 * false (error set) if ARG is none of them.
 */
bool vmferry_parse_compress (const char *arg,
                             enum vmferry_compress *method_rtn,
                             int *level_rtn);

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
