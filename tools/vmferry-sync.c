/* vmferry-sync: a standby copy on another host, refreshed with what
 * changed (lib/sync.h).  The same binary is the receiver on that host
 * (--receiver=ACTION), as vmferry-import is vmferry-send's.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "human.h"
#include "log.h"
#include "progress.h"
#include "quit.h"
#include "rewrite.h"
#include "send.h"
#include "sync.h"
#include "sync-define.h"
#include "tool.h"

#include "vmferry-sync-synopsis.h"

enum { OPT_DEST_URI = 256, OPT_DEST_DIR, OPT_DEST_POOL, OPT_NO_CHECK,
       OPT_FULL, OPT_COMPARE, OPT_RECEIVER, OPT_TOKEN, OPT_KEEP, OPT_LIST,
       OPT_NO_BITMAP, OPT_FREEZE, OPT_TRIM, OPT_FORGET };

static const struct option long_options[] = {
  { "connect", required_argument, NULL, 'c' },
  { "dest-uri", required_argument, NULL, OPT_DEST_URI },
  { "dest-dir", required_argument, NULL, OPT_DEST_DIR },
  { "dest-pool", required_argument, NULL, OPT_DEST_POOL },
  { "no-check", no_argument, NULL, OPT_NO_CHECK },
  { "full", no_argument, NULL, OPT_FULL },
  { "compare", no_argument, NULL, OPT_COMPARE },
  { "receiver", required_argument, NULL, OPT_RECEIVER },
  { "token", required_argument, NULL, OPT_TOKEN },
  { "keep", required_argument, NULL, OPT_KEEP },
  { "list", no_argument, NULL, OPT_LIST },
  { "no-bitmap", no_argument, NULL, OPT_NO_BITMAP },
  { "freeze", required_argument, NULL, OPT_FREEZE },
  { "trim", no_argument, NULL, OPT_TRIM },
  { "forget", no_argument, NULL, OPT_FORGET },
  VMFERRY_SSH_LONG_OPTIONS,
  VMFERRY_COMPRESS_LONG_OPTION,
  VMFERRY_THREADS_LONG_OPTION,
  VMFERRY_PROGRESS_LONG_OPTION,
  { "map-file", required_argument, NULL, 'm' },
  VMFERRY_REWRITE_LONG_OPTIONS,
  VMFERRY_COMMON_LONG_OPTIONS,
  { NULL, 0, NULL, 0 }
};

/* A signal during the first copy: migrate's export does not look at the
 * flag, so its backup job is ended and its --trim overlays removed here
 * (sync.h), and the process dies of the signal.  A refresh stops at its
 * next chunk by itself and main says what is left.
 */
static void
on_quit (int sig, void *opaque)
{
  char msg[256];
  int n;

  (void) opaque;
  if (!vmferry_sync_quit ())
    return;
  n = snprintf (msg, sizeof msg, "%s: interrupted by signal %d during the "
                "first copy: run the same command again to go on\n",
                vmferry_program_name (), sig);
  if (n > 0 && write (STDERR_FILENO, msg, (size_t) n) < 0)
    vmferry_debug ("stderr: %m");
  vmferry_quit_die ();
}

static const int interrupts[] = { SIGINT, SIGTERM, SIGHUP };

/* On HOST: one receiver action for the standby NAME. */
static int
receiver (const char *action, const char *name, const char *token,
          bool compare, unsigned keep)
{
  int r;

  if (strcmp (action, "init") == 0) {
    if (token == NULL)
      vmferry_tool_usage_fail ("--receiver=init needs --token");
    r = vmferry_sync_receive_init (NULL, name, token, stdout);
  }
  else if (strcmp (action, "query") == 0)
    r = vmferry_sync_receive_query (NULL, name, compare, stdout);
  else if (strcmp (action, "list") == 0)
    r = vmferry_sync_receive_list (NULL, name, stdout);
  else if (strcmp (action, "apply") == 0)
    r = vmferry_sync_receive_apply (NULL, name, STDIN_FILENO, keep,
                                    stdout);
  else if (strcmp (action, "refresh") == 0)
    r = vmferry_sync_receive_refresh (NULL, name, compare, STDIN_FILENO,
                                      keep, stdout);
  else
    vmferry_tool_usage_fail ("--receiver: init, query, list, apply or "
                             "refresh, not '%s'", action);
  if (r < 0) {
    vmferry_tool_print_error ();
    return VMFERRY_EXIT_FAILED;
  }
  return VMFERRY_EXIT_OK;
}

int
main (int argc, char *argv[])
{
  struct vmferry_sync_opts opts = {
    .m = {
      .ssh = { .stdout_fd = STDOUT_FILENO, .stderr_fd = STDERR_FILENO },
      .compress = VMFERRY_COMPRESS_AUTO, .level = 1,
      .buffer = VMFERRY_SEND_BUFFER,
    },
  };
  struct vmferry_sync_stats stats;
  const char *action = NULL, *token = NULL;
  bool list = false, forget = false, failed;
  const char *rule;
  char *rules = NULL;
  double t0 = vmferry_monotonic ();
  int progress_fd = -1, c, r;
  const struct vmferry_tool_shared shared = {
    .ssh = &opts.m.ssh, .connections = &opts.m.connections,
    .buffer = &opts.m.buffer, .compress = &opts.m.compress,
    .level = &opts.m.level, .threads = &opts.m.threads,
    .progress_fd = &progress_fd,
  };

  vmferry_tool_init (argv[0]);
  opts.m.rewrite = vmferry_rewrite_new ();
  if (opts.m.rewrite == NULL) {
    vmferry_tool_print_error ();
    return VMFERRY_EXIT_FAILED;
  }
  while ((c = getopt_long (argc, argv,
                           "c:" VMFERRY_SSH_SHORT_OPTIONS "m:"
                           VMFERRY_COMMON_SHORT_OPTIONS,
                           long_options, NULL)) != -1) {
    switch (c) {
    case 'c': opts.m.uri = optarg; break;
    case OPT_DEST_URI: opts.m.dest_uri = optarg; break;
    case OPT_DEST_DIR: opts.m.dest_dir = optarg; break;
    case OPT_DEST_POOL: opts.m.dest_pool = optarg; break;
    case OPT_NO_CHECK: opts.m.no_check = true; break;
    case OPT_FREEZE:
      if (strcmp (optarg, "auto") == 0)
        opts.m.freeze = VMFERRY_FREEZE_AUTO;
      else if (strcmp (optarg, "yes") == 0)
        opts.m.freeze = VMFERRY_FREEZE_YES;
      else if (strcmp (optarg, "no") == 0)
        opts.m.freeze = VMFERRY_FREEZE_NO;
      else
        vmferry_tool_usage_fail ("--freeze: '%s' is not auto, yes or no",
                                 optarg);
      break;
    case OPT_FULL: opts.full = true; break;
    case OPT_COMPARE: opts.compare = true; break;
    case OPT_LIST: list = true; break;
    case OPT_NO_BITMAP: opts.no_bitmap = true; break;
    case OPT_TRIM: opts.trim = true; break;
    case OPT_FORGET: forget = true; break;
    case OPT_RECEIVER: action = optarg; break;
    case OPT_TOKEN: token = optarg; break;
    case OPT_KEEP: {
      char *end;
      unsigned long k;
      errno = 0;
      k = strtoul (optarg, &end, 10);
      if (errno || end == optarg || *end || *optarg == '-' || k > 1000)
        vmferry_tool_usage_fail ("--keep: a number from 0 to 1000, not '%s'",
                                 optarg);
      opts.keep = k;
      break;
    }
    case 'm':
      if (vmferry_rewrite_add_map_file (opts.m.rewrite, optarg) < 0 ||
          vmferry_sync_rules_add_file (&rules, optarg) < 0)
        goto bad_arg;
      break;
    default:
      r = vmferry_tool_shared_option (&shared, c, optarg);
      if (r == -1)
        goto bad_arg;
      if (r == 1)
        break;
      if ((rule = vmferry_tool_rule_option (opts.m.rewrite, c, optarg,
                                            &failed))) {
        /* Recorded with the standby, for the refreshes. */
        if (failed || vmferry_sync_rules_add (&rules, rule, optarg) < 0)
          goto bad_arg;
        break;
      }
      if (!vmferry_tool_common_option (c, synopsis))
        vmferry_tool_usage_error ();
    }
  }
  /* The standby's name, which the receiver's records carry (--rename's,
   * from the command line or a map file).
   */
  opts.standby = vmferry_rewrite_get_rename (opts.m.rewrite);
  opts.rules = rules;
  if (action) {
    if (argc - optind != 1)
      vmferry_tool_usage_fail ("--receiver: expected the standby's name");
    r = receiver (action, argv[optind], token, opts.compare, opts.keep);
    vmferry_rewrite_free (opts.m.rewrite);
    free (rules);
    return r;
  }
  if (argc - optind != 2)
    vmferry_tool_usage_fail ("expected DOMAIN and HOST");
  if (opts.m.dest_dir && opts.m.dest_pool)
    vmferry_tool_usage_fail ("give at most one of --dest-dir and --dest-pool");
  if (opts.full && opts.compare)
    vmferry_tool_usage_fail ("give at most one of --full and --compare");
  if (token)
    vmferry_tool_usage_fail ("--token goes with --receiver=init only");
  vmferry_tool_check_ssh (&opts.m.ssh);
  opts.m.domain = argv[optind];
  opts.m.ssh.destination = argv[optind + 1];
  signal (SIGPIPE, SIG_IGN);
  if (forget) {
    char *what = NULL;

    if (list || opts.full || opts.compare || opts.trim)
      vmferry_tool_usage_fail ("--forget: not with --list, --full, --compare "
                               "or --trim");
    r = vmferry_sync_forget (&opts, &what);
    if (r < 0)
      vmferry_tool_print_error ();
    else {
      vmferry_set_summary ("forgot standby %s on %s: removed %s; the "
                           "standby on %s is left as it is",
                           opts.standby ? opts.standby : opts.m.domain,
                           opts.m.ssh.destination, what,
                           opts.m.ssh.destination);
      vmferry_tool_print_summary ();
    }
    free (what);
    vmferry_rewrite_free (opts.m.rewrite);
    free (rules);
    return r < 0 ? VMFERRY_EXIT_FAILED : VMFERRY_EXIT_OK;
  }
  if (list) {
    if (opts.full || opts.compare)
      vmferry_tool_usage_fail ("--list changes nothing: not with --full or "
                               "--compare");
    r = vmferry_sync_list (&opts, stdout);
    if (r < 0)
      vmferry_tool_print_error ();
    vmferry_rewrite_free (opts.m.rewrite);
    free (rules);
    return r < 0 ? VMFERRY_EXIT_FAILED : VMFERRY_EXIT_OK;
  }
  /* A signal stops a refresh at its next chunk (the flag), which ends
   * its backup job and removes its overlays; one that an ignoring parent
   * set aside stays ignored (nohup, a background job).
   */
  for (size_t i = 0; i < sizeof interrupts / sizeof interrupts[0]; i++)
    if (vmferry_quit_on (interrupts[i], true) < 0) {
      vmferry_tool_print_error ();
      return VMFERRY_EXIT_FAILED;
    }
  opts.cancel = vmferry_quit_flag ();
  {
    static struct vmferry_quit_watch *watch;   /* until the end */

    watch = vmferry_quit_watch (on_quit, NULL);
    if (watch == NULL) {
      vmferry_tool_print_error ();
      return VMFERRY_EXIT_FAILED;
    }
  }
  opts.m.progress = vmferry_tool_progress (progress_fd);
  r = vmferry_sync (&opts, &stats);
  if (r < 0)
    vmferry_tool_print_error ();
  vmferry_progress_free (opts.m.progress);
  if (r < 0 && vmferry_quit_signal ()) {
    fprintf (stderr, "%s: interrupted: standby %s on %s is as it was (the "
             "backup job and temporary files of this run are gone)\n",
             vmferry_program_name (),
             opts.standby ? opts.standby : opts.m.domain,
             opts.m.ssh.destination);
    vmferry_quit_die ();
  }
  if (r < 0) {
    vmferry_rewrite_free (opts.m.rewrite);
    free (rules);
    return VMFERRY_EXIT_FAILED;
  }
  {
    char took[32], rd[32], sent[32];
    const char *standby = opts.standby ? opts.standby : opts.m.domain;

    vmferry_human_duration (vmferry_monotonic () - t0, took, sizeof took);
    vmferry_human_size (stats.read, rd, sizeof rd);
    vmferry_human_size (stats.sent, sent, sizeof sent);
    if (stats.first)
      vmferry_set_summary ("domain %s copied in full to %s as standby %s "
                           "(generation 1) in %s%s", opts.m.domain,
                           opts.m.ssh.destination, standby, took,
                           opts.trim ? ", trimmed" : "");
    else
      vmferry_set_summary ("standby %s on %s refreshed to generation %u in "
                           "%s: read %s (%" PRIu64 " bytes), %" PRIu64 " of %"
                           PRIu64 " chunks changed, sent %s (%" PRIu64
                           " bytes), method: %s%s%s%s%s; definition: %s",
                           standby,
                           opts.m.ssh.destination, stats.generation, took, rd,
                           stats.read, stats.changed, stats.chunks, sent,
                           stats.sent, stats.method,
                           !stats.running ? ""
                           : stats.frozen ? "; read running, file systems "
                             "frozen" : "; read running, crash-consistent",
                           stats.changed_by_hand
                           ? "; standby changed by hand: compared in full"
                           : stats.compared ? "; compared in full" : "",
                           !opts.trim ? "" : *stats.untrimmed
                           ? "; not trimmed: " : "; every filesystem trimmed",
                           opts.trim ? stats.untrimmed : "",
                           stats.definition < 0 ? "not checked (an older "
                           "receiver)" : stats.definition ? "updated"
                           : "unchanged");
    vmferry_tool_print_summary ();
  }
  vmferry_rewrite_free (opts.m.rewrite);
  free (rules);
  return VMFERRY_EXIT_OK;

 bad_arg:
  vmferry_tool_print_error ();
  vmferry_tool_usage_error ();
}
