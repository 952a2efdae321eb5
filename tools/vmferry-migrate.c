/* vmferry-migrate: move a shut-off domain to another host in one command. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cleanup-libc.h"
#include "clock.h"
#include "error.h"
#include "export-trim.h"
#include "human.h"
#include "log.h"
#include "migrate.h"
#include "progress.h"
#include "quit.h"
#include "rewrite.h"
#include "send.h"
#include "tool.h"

#include "vmferry-migrate-synopsis.h"

enum { OPT_DEST_URI = 256, OPT_DEST_DIR, OPT_DEST_POOL, OPT_START,
       OPT_UNDEFINE_SOURCE, OPT_DRY_RUN, OPT_NO_CHECK, OPT_NO_RESUME,
       OPT_LIVE, OPT_AUTO_CONVERGE, OPT_POSTCOPY, OPT_MIGRATE_URI,
       OPT_ABORT, OPT_REMOVE_SOURCE_STORAGE, OPT_JSON, OPT_FORMAT,
       OPT_FLATTEN, OPT_DEST_DISK, OPT_NO_FIXUP, OPT_NEW_IDENTITY,
       OPT_TRIM };

static const struct option long_options[] = {
  { "connect", required_argument, NULL, 'c' },
  { "dest-uri", required_argument, NULL, OPT_DEST_URI },
  { "dest-dir", required_argument, NULL, OPT_DEST_DIR },
  { "dest-pool", required_argument, NULL, OPT_DEST_POOL },
  { "start", no_argument, NULL, OPT_START },
  { "undefine-source", no_argument, NULL, OPT_UNDEFINE_SOURCE },
  { "dry-run", no_argument, NULL, OPT_DRY_RUN },
  { "no-check", no_argument, NULL, OPT_NO_CHECK },
  { "no-resume", no_argument, NULL, OPT_NO_RESUME },
  VMFERRY_SSH_LONG_OPTIONS,
  VMFERRY_COMPRESS_LONG_OPTION,
  VMFERRY_THREADS_LONG_OPTION,
  VMFERRY_PROGRESS_LONG_OPTION,
  { "live", no_argument, NULL, OPT_LIVE },
  { "auto-converge", no_argument, NULL, OPT_AUTO_CONVERGE },
  { "postcopy", no_argument, NULL, OPT_POSTCOPY },
  { "migrate-uri", required_argument, NULL, OPT_MIGRATE_URI },
  { "abort", no_argument, NULL, OPT_ABORT },
  { "remove-source-storage", no_argument, NULL, OPT_REMOVE_SOURCE_STORAGE },
  { "json", no_argument, NULL, OPT_JSON },
  { "format", required_argument, NULL, OPT_FORMAT },
  { "flatten", no_argument, NULL, OPT_FLATTEN },
  { "no-fixup", no_argument, NULL, OPT_NO_FIXUP },
  { "new-identity", required_argument, NULL, OPT_NEW_IDENTITY },
  { "trim", no_argument, NULL, OPT_TRIM },
  { "dest-disk", required_argument, NULL, OPT_DEST_DISK },
  { "map-file", required_argument, NULL, 'm' },
  VMFERRY_REWRITE_LONG_OPTIONS,
  VMFERRY_COMMON_LONG_OPTIONS,
  { NULL, 0, NULL, 0 }
};

/* At most this many --dest-disk values. */
#define MAX_DEST_DISKS 256
static const char *dest_disks[MAX_DEST_DISKS];
static size_t n_dest_disks;

/* vmferry-import's options, as a user of vmferry-send types them. */
static const struct vmferry_option_hint import_options[] = {
  { "--dir", "vmferry-import's --dir is --dest-dir DIR here" },
  { "--disk", "vmferry-import's --disk is --dest-disk TARGET=DEVICE here" },
  { "--name", "to give the copy another name, use --rename NAME" },
  { "--define", "vmferry-migrate defines the domain on HOST anyway "
    "(--start starts it too)" },
  { "--force", "vmferry-migrate replaces nothing on HOST: remove what is in "
    "the way there, or choose --rename NAME or --dest-dir DIR" },
  { NULL, NULL }
};

/* Offline: an interrupt says what the destination keeps and how to go
 * on, then ends the tool by the signal (status 128+N).  The line is
 * made before the signal can come (at_send) and written by a thread
 * that watches for it (quit.h), under the lock that keeps it whole.
 */
static pthread_mutex_t interrupt_lock = PTHREAD_MUTEX_INITIALIZER;
static char interrupt_msg[2048];

static void
set_interrupt_msg (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

static void
set_interrupt_msg (const char *fmt, ...)
{
  va_list ap;
  int n;

  pthread_mutex_lock (&interrupt_lock);
  va_start (ap, fmt);
  n = vsnprintf (interrupt_msg, sizeof interrupt_msg, fmt, ap);
  va_end (ap);
  if (n < 0 || (size_t) n >= sizeof interrupt_msg)
    snprintf (interrupt_msg, sizeof interrupt_msg, "%s: interrupted\n",
              vmferry_program_name ());
  pthread_mutex_unlock (&interrupt_lock);
}

static void
on_interrupt (int sig, void *opaque)
{
  (void) sig;
  (void) opaque;
  /* The lock is never given back: the line is the last word. */
  pthread_mutex_lock (&interrupt_lock);
  /* The export's --trim overlays go (the next run would remove them);
   * this too holds its lock to the end, so only here, once.
   */
  vmferry_trim_quit ();
  /* Nothing more can be said if stderr is gone. */
  if (write (STDERR_FILENO, interrupt_msg, strlen (interrupt_msg)) < 0)
    vmferry_debug ("stderr: %m");
  vmferry_quit_die ();
}

static const int interrupts[] = { SIGINT, SIGTERM, SIGHUP };
static const char *domain_arg, *host_arg;

static void
at_send (void *opaque, const char *name, const char *where)
{
  (void) opaque;
  if (name)
    set_interrupt_msg ("%s: interrupted: %s keeps what arrived of domain %s in "
                       "%s (partial files and resume state); run the same "
                       "command again to resume, or the same command with "
                       "--abort (%s --abort ... %s %s) to remove them\n",
                       vmferry_program_name (), host_arg, name, where,
                       vmferry_program_name (), domain_arg, host_arg);
  else
    set_interrupt_msg ("%s: interrupted: domain %s is copied, verified and "
                       "defined on %s; run the same command again to finish "
                       "(nothing is sent again)\n", vmferry_program_name (),
                       domain_arg, host_arg);
}

/* The status of a run that returned R with OUTCOME: the one table of
 * tool.h.
 */
static int
exit_status (int r, enum vmferry_migrate_outcome outcome)
{
  if (r == 0)
    return VMFERRY_EXIT_OK;
  switch (outcome) {
  case VMFERRY_MIGRATE_SOURCE_DEFINED: return VMFERRY_EXIT_BOTH_DEFINED;
  case VMFERRY_MIGRATE_LEFTOVERS: return VMFERRY_EXIT_LEFTOVERS;
  case VMFERRY_MIGRATE_SPLIT: return VMFERRY_EXIT_SPLIT;
  default:
    return vmferry_quit_signal ()
      ? VMFERRY_EXIT_SIGNAL + vmferry_quit_signal () : VMFERRY_EXIT_FAILED;
  }
}

/* Seconds since the epoch, for the JSON result's times. */
static double
wall_clock (void)
{
  struct timeval tv;

  if (gettimeofday (&tv, NULL) < 0)
    return 0;
  return tv.tv_sec + tv.tv_usec / 1e6;
}

int
main (int argc, char *argv[])
{
  struct vmferry_migrate_opts opts = {
    .ssh = { .stdout_fd = STDOUT_FILENO, .stderr_fd = STDERR_FILENO },
    .compress = VMFERRY_COMPRESS_AUTO, .level = 1,
    .buffer = VMFERRY_SEND_BUFFER,
  };
  enum vmferry_migrate_outcome outcome = VMFERRY_MIGRATE_NOTHING;
  struct vmferry_migrate_result result = { 0 };
  double t0 = vmferry_monotonic (), wall0 = wall_clock ();
  int progress_fd = -1, c, r, status;
  bool do_abort = false, json = false, failed;
  const struct vmferry_tool_shared shared = {
    .ssh = &opts.ssh, .connections = &opts.connections,
    .buffer = &opts.buffer, .compress = &opts.compress,
    .level = &opts.level, .threads = &opts.threads,
    .progress_fd = &progress_fd,
  };

  vmferry_tool_init (argv[0]);
  opts.rewrite = vmferry_rewrite_new ();
  if (opts.rewrite == NULL) {
    vmferry_tool_print_error ();
    return VMFERRY_EXIT_FAILED;
  }
  while ((c = getopt_long (argc, argv,
                           "c:" VMFERRY_SSH_SHORT_OPTIONS "m:"
                           VMFERRY_COMMON_SHORT_OPTIONS,
                           long_options, NULL)) != -1) {
    switch (c) {
    case 'c': opts.uri = optarg; break;
    case OPT_DEST_URI: opts.dest_uri = optarg; break;
    case OPT_DEST_DIR: opts.dest_dir = optarg; break;
    case OPT_DEST_POOL: opts.dest_pool = optarg; break;
    case OPT_START: opts.start = true; break;
    case OPT_UNDEFINE_SOURCE: opts.undefine_source = true; break;
    case OPT_DRY_RUN: opts.dry_run = true; break;
    case OPT_NO_CHECK: opts.no_check = true; break;
    case OPT_NO_RESUME: opts.no_resume = true; break;
    case OPT_LIVE: opts.live = true; break;
    case OPT_AUTO_CONVERGE: opts.auto_converge = true; break;
    case OPT_POSTCOPY: opts.postcopy = true; break;
    case OPT_MIGRATE_URI: opts.migrate_uri = optarg; break;
    case OPT_ABORT: do_abort = true; break;
    case OPT_REMOVE_SOURCE_STORAGE: opts.remove_source_storage = true; break;
    case OPT_JSON: json = true; break;
    case OPT_FORMAT: opts.format = vmferry_tool_format_arg (optarg); break;
    case OPT_FLATTEN: opts.flatten = true; break;
    case OPT_NO_FIXUP: opts.no_fixup = true; break;
    case OPT_NEW_IDENTITY:
      opts.new_identity = vmferry_tool_identity_arg (optarg);
      break;
    case OPT_TRIM: opts.trim = true; break;
    case OPT_DEST_DISK:
      if (strchr (optarg, '=') == NULL || optarg[0] == '=' ||
          strchr (optarg, '=')[1] != '/')
        vmferry_tool_usage_fail ("--dest-disk: TARGET=DEVICE "
                                 "(vda=/dev/vg/web01)");
      if (n_dest_disks >= MAX_DEST_DISKS)
        vmferry_tool_usage_fail ("--dest-disk: at most %d", MAX_DEST_DISKS);
      dest_disks[n_dest_disks++] = optarg;
      opts.dest_disks = dest_disks;
      opts.n_dest_disks = n_dest_disks;
      break;
    case 'm':
      if (vmferry_rewrite_add_map_file (opts.rewrite, optarg) < 0)
        goto bad_arg;
      break;
    default:
      r = vmferry_tool_shared_option (&shared, c, optarg);
      if (r == -1)
        goto bad_arg;
      if (r == 1)
        break;
      if (vmferry_tool_rule_option (opts.rewrite, c, optarg, &failed)) {
        if (failed)
          goto bad_arg;
        break;
      }
      if (!vmferry_tool_common_option (c, synopsis)) {
        if (c == '?')
          vmferry_tool_option_hint (argv[optind - 1], import_options);
        vmferry_tool_usage_error ();
      }
    }
  }
  if (argc - optind != 2)
    vmferry_tool_usage_fail ("expected DOMAIN and HOST");
  if (opts.dest_dir && opts.dest_pool)
    vmferry_tool_usage_fail ("give at most one of --dest-dir and --dest-pool");
  if (opts.live && opts.trim)
    vmferry_tool_usage_fail ("--trim does not go with --live (the appliance "
                             "needs the domain shut off)");
  if (opts.live && (opts.format || opts.flatten || opts.n_dest_disks))
    vmferry_tool_usage_fail ("--format, --flatten and --dest-disk do not go "
                             "with --live");
  if (opts.live && (opts.no_fixup || opts.new_identity))
    vmferry_tool_usage_fail ("--no-fixup and --new-identity do not go with "
                             "--live (the guest runs)");
  vmferry_tool_check_fixup (opts.no_fixup, opts.new_identity);
  if (!opts.live && (opts.auto_converge || opts.postcopy || opts.migrate_uri))
    vmferry_tool_usage_fail ("--auto-converge, --postcopy and --migrate-uri "
                             "need --live");
  vmferry_tool_check_ssh (&opts.ssh);
  if (opts.remove_source_storage && (!opts.undefine_source || opts.live))
    vmferry_tool_usage_fail ("--remove-source-storage needs "
                             "--undefine-source, and does not go with --live");
  opts.domain = domain_arg = argv[optind];
  opts.ssh.destination = host_arg = argv[optind + 1];
  if (do_abort && json)
    vmferry_tool_usage_fail ("--json does not go with --abort");
  /* stdout carries the one object: everything else goes to stderr, the
   * remote import's output too.
   */
  if (json) {
    opts.report = stderr;
    opts.ssh.stdout_fd = STDERR_FILENO;
    opts.result = &result;
  }
  signal (SIGPIPE, SIG_IGN);
  if (do_abort) {
    CLEANUP_FREE char *what = NULL;
    if (opts.dry_run || opts.undefine_source || opts.start)
      vmferry_tool_usage_fail ("--abort does not go with --dry-run, --start "
                               "or --undefine-source");
    r = vmferry_migrate_abort (&opts, &what);
    if (r < 0)
      vmferry_tool_print_error ();
    else {
      vmferry_set_summary ("removed %s", what);
      vmferry_tool_print_summary ();
    }
    vmferry_rewrite_free (opts.rewrite);
    return r < 0 ? VMFERRY_EXIT_FAILED : VMFERRY_EXIT_OK;
  }
  if (opts.live) {
    /* Ctrl-C and SIGTERM abort the migration job cleanly. */
    if (vmferry_quit_on (SIGINT, false) < 0 ||
        vmferry_quit_on (SIGTERM, false) < 0) {
      vmferry_tool_print_error ();
      return VMFERRY_EXIT_FAILED;
    }
    opts.cancel = vmferry_quit_flag ();
  }
  else if (!opts.dry_run) {
    static struct vmferry_quit_watch *watch;   /* until the end */

    set_interrupt_msg ("%s: interrupted before anything was sent: nothing was "
                       "changed on %s\n", vmferry_program_name (), host_arg);
    /* An ignored signal stays ignored (nohup, a background job). */
    for (size_t i = 0; i < sizeof interrupts / sizeof interrupts[0]; i++)
      if (vmferry_quit_on (interrupts[i], true) < 0) {
        vmferry_tool_print_error ();
        return VMFERRY_EXIT_FAILED;
      }
    watch = vmferry_quit_watch (on_interrupt, NULL);
    if (watch == NULL) {
      vmferry_tool_print_error ();
      return VMFERRY_EXIT_FAILED;
    }
    opts.at_send = at_send;
  }
  if (!opts.dry_run)
    opts.progress = vmferry_tool_progress (progress_fd);
  r = vmferry_migrate (&opts, &outcome);
  if (r < 0)
    vmferry_tool_print_error ();
  vmferry_progress_free (opts.progress);
  status = exit_status (r, outcome);
  if (json &&
      vmferry_migrate_result_json (&opts, &result, r, outcome,
                                   r < 0 ? vmferry_get_error () : NULL,
                                   status, wall0, wall_clock (),
                                   vmferry_monotonic () - t0, stdout) < 0) {
    vmferry_tool_print_error ();
    if (status == VMFERRY_EXIT_OK)
      status = VMFERRY_EXIT_FAILED;
  }
  vmferry_migrate_result_free (&result);
  if (r == 0) {
    if (outcome == VMFERRY_MIGRATE_DONE && !opts.dry_run) {
      char took[32];
      vmferry_human_duration (vmferry_monotonic () - t0, took, sizeof took);
      vmferry_set_summary ("domain %s %s %s%s in %s%s", opts.domain,
                           opts.live ? "migrated live to"
                           : "copied, verified and defined on",
                           opts.ssh.destination,
                           opts.start ? " and started" : "", took,
                           opts.undefine_source
                           ? "; the source was undefined" : "");
      vmferry_tool_print_summary ();
    }
  }
  vmferry_rewrite_free (opts.rewrite);
  return status;

 bad_arg:
  vmferry_tool_print_error ();
  vmferry_tool_usage_error ();
}
