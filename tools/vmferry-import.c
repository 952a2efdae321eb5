/* vmferry-import: write a stream's files on this host, verify, define. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "import.h"
#include "import-result.h"
#include "log.h"
#include "progress.h"
#include "quit.h"
#include "refs.h"
#include "stripe.h"
#include "tool.h"

#include "vmferry-import-synopsis.h"

enum { OPT_DEFINE = 256, OPT_START, OPT_RESUMABLE, OPT_RESUME_QUERY,
       OPT_ABORT, OPT_STRIPES, OPT_JOIN, OPT_ALLOW_PATH, OPT_VERIFY_GUEST,
       OPT_FORMAT, OPT_FLATTEN, OPT_DISK, OPT_FROM_DIR, OPT_XML,
       OPT_NO_FIXUP, OPT_NEW_IDENTITY, OPT_JSON };

/* At most this many --allow-path values. */
#define MAX_ALLOW 256
/* At most this many --disk values. */
#define MAX_DISKS 256

static const struct option long_options[] = {
  { "connect", required_argument, NULL, 'c' },
  { "dir", required_argument, NULL, 'd' },
  { "pool", required_argument, NULL, 'p' },
  { "define", no_argument, NULL, OPT_DEFINE },
  { "start", no_argument, NULL, OPT_START },
  { "verify-guest", no_argument, NULL, OPT_VERIFY_GUEST },
  { "name", required_argument, NULL, 'n' },
  { "force", no_argument, NULL, 'f' },
  VMFERRY_THREADS_LONG_OPTION,
  VMFERRY_PROGRESS_LONG_OPTION,
  { "resumable", no_argument, NULL, OPT_RESUMABLE },
  { "resume-query", no_argument, NULL, OPT_RESUME_QUERY },
  { "abort", optional_argument, NULL, OPT_ABORT },
  { "stripes", required_argument, NULL, OPT_STRIPES },
  { "join", required_argument, NULL, OPT_JOIN },
  { "allow-path", required_argument, NULL, OPT_ALLOW_PATH },
  { "format", required_argument, NULL, OPT_FORMAT },
  { "flatten", no_argument, NULL, OPT_FLATTEN },
  { "disk", required_argument, NULL, OPT_DISK },
  { "from-dir", required_argument, NULL, OPT_FROM_DIR },
  { "xml", required_argument, NULL, OPT_XML },
  { "no-fixup", no_argument, NULL, OPT_NO_FIXUP },
  { "new-identity", required_argument, NULL, OPT_NEW_IDENTITY },
  { "json", no_argument, NULL, OPT_JSON },
  VMFERRY_COMMON_LONG_OPTIONS,
  { NULL, 0, NULL, 0 }
};

int
main (int argc, char *argv[])
{
  struct vmferry_import_opts opts = { .in_fd = STDIN_FILENO, .in_name = "stdin",
                                      .out_fd = STDOUT_FILENO,
                                      .read_ahead = VMFERRY_IMPORT_READ_AHEAD };
  const char *abort_name = NULL, *join = NULL;
  const char *allow[MAX_ALLOW];
  const char *disks[MAX_DISKS];
  char token[VMFERRY_STRIPE_TOKEN_LEN + 1];
  unsigned stripes = 0, index;
  struct vmferry_import_result result = { 0 };
  bool do_abort = false, json = false;
  int progress_fd = -1, c, r, fd = -1;
  const struct vmferry_tool_shared shared = {
    .threads = &opts.threads, .progress_fd = &progress_fd,
  };

  vmferry_tool_init (argv[0]);
  while ((c = getopt_long (argc, argv, "c:d:p:n:f" VMFERRY_COMMON_SHORT_OPTIONS,
                           long_options, NULL)) != -1) {
    switch (c) {
    case 'c': opts.uri = optarg; break;
    case 'd': opts.dir = optarg; break;
    case 'p': opts.pool = optarg; break;
    case OPT_DEFINE: opts.define = true; break;
    case OPT_START: opts.define = opts.start = true; break;
    case OPT_VERIFY_GUEST: opts.verify_guest = true; break;
    case 'n': opts.new_name = optarg; break;
    case 'f': opts.force = true; break;
    case OPT_RESUMABLE: opts.resumable = true; break;
    case OPT_RESUME_QUERY: opts.resume_query = true; break;
    case OPT_ABORT: do_abort = true; abort_name = optarg; break;
    case OPT_STRIPES:
      if (vmferry_stripe_parse_stripes (optarg, &stripes, token) < 0)
        goto bad_arg;
      break;
    case OPT_ALLOW_PATH:
      if (vmferry_refs_allow_valid (optarg) < 0)
        goto bad_arg;
      if (opts.n_allow >= MAX_ALLOW) {
        vmferry_set_error ("--allow-path: at most %d", MAX_ALLOW);
        goto bad_arg;
      }
      allow[opts.n_allow++] = optarg;
      opts.allow = allow;
      break;
    case OPT_FORMAT: opts.format = vmferry_tool_format_arg (optarg); break;
    case OPT_FLATTEN: opts.flatten = true; break;
    case OPT_NO_FIXUP: opts.no_fixup = true; break;
    case OPT_JSON: json = true; break;
    case OPT_NEW_IDENTITY:
      opts.new_identity = vmferry_tool_identity_arg (optarg);
      break;
    case OPT_DISK:
      /* TARGET=DEVICE: a target as libvirt names them, an absolute path */
      if (strchr (optarg, '=') == NULL || optarg[0] == '=' ||
          strchr (optarg, '=')[1] != '/')
        vmferry_tool_usage_fail ("--disk: TARGET=DEVICE (vda=/dev/vg/web01)");
      if (opts.n_disks >= MAX_DISKS)
        vmferry_tool_usage_fail ("--disk: at most %d", MAX_DISKS);
      disks[opts.n_disks++] = optarg;
      opts.disks = disks;
      break;
    case OPT_FROM_DIR: opts.from_dir = optarg; break;
    case OPT_XML: opts.from_xml = optarg; break;
    case OPT_JOIN:
      if (vmferry_stripe_parse_join (optarg, token, &index) < 0)
        goto bad_arg;
      join = optarg;
      break;
    default:
      vmferry_tool_other_option (&shared, c, optarg, synopsis);
    }
  }
  if (argc - optind > 1)
    vmferry_tool_usage_fail ("expected at most one FILE");
  if (opts.dir && opts.pool)
    vmferry_tool_usage_fail ("give at most one of --dir and --pool");
  if (opts.from_xml && !opts.from_dir)
    vmferry_tool_usage_fail ("--xml goes with --from-dir");
  if (opts.from_dir) {
    /* A directory is read whole in one run: nothing to resume. */
    if (argc - optind > 0 || join || stripes || do_abort ||
        opts.resumable || opts.resume_query)
      vmferry_tool_usage_fail ("--from-dir takes no FILE, --join, --stripes, "
                               "--abort, --resumable or --resume-query");
    opts.in_name = opts.from_dir;
  }
  vmferry_tool_check_fixup (opts.no_fixup, opts.new_identity);
  if (json && (join || do_abort || opts.resume_query))
    vmferry_tool_usage_fail ("--json does not go with --join, --abort or "
                             "--resume-query");
  if (json)
    opts.result = &result;
  if (join) {
    if (argc - optind > 0)
      vmferry_tool_usage_fail ("--join takes nothing else");
    r = vmferry_stripe_join (token, index, STDIN_FILENO);
    if (r != 0 && vmferry_get_error ()[0])
      vmferry_tool_print_error ();
    return r;
  }
  if (stripes && (argc - optind > 0 || opts.resume_query || do_abort))
    vmferry_tool_usage_fail ("--stripes reads standard input and does not go "
                             "with FILE, --resume-query or --abort");
  if (do_abort) {
    if (argc - optind > 0 || opts.resume_query)
      vmferry_tool_usage_fail ("--abort takes no FILE and no --resume-query");
    r = vmferry_import_abort (&opts, abort_name);
    if (r < 0)
      vmferry_tool_print_error ();
    else {
      /* On stderr, like every tool's summary. */
      vmferry_set_summary ("aborted %d interrupted transfer%s", r,
                           r == 1 ? "" : "s");
      vmferry_tool_print_summary ();
    }
    return r < 0 ? VMFERRY_EXIT_FAILED : VMFERRY_EXIT_OK;
  }
  /* A cut keeps resume state: SIGPIPE must not kill us before we say so,
   * and these signals end the import like a cut link (quit.h).
   */
  signal (SIGPIPE, SIG_IGN);
  if (vmferry_quit_on (SIGINT, false) < 0 ||
      vmferry_quit_on (SIGTERM, false) < 0 ||
      vmferry_quit_on (SIGHUP, false) < 0) {
    vmferry_tool_print_error ();
    return VMFERRY_EXIT_FAILED;
  }
  if (argc - optind == 1 && strcmp (argv[optind], "-") != 0) {
    fd = open (argv[optind], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fprintf (stderr, "%s: %s: %s\n", vmferry_program_name (), argv[optind],
               strerror (errno));
      return VMFERRY_EXIT_FAILED;
    }
    opts.in_fd = fd;
    opts.in_name = argv[optind];
  }
  if (stripes &&
      (opts.stripes = vmferry_stripes_in_new (token, stripes,
                                              STDIN_FILENO)) == NULL) {
    vmferry_tool_print_error ();
    return VMFERRY_EXIT_FAILED;
  }
  opts.progress = vmferry_tool_progress (progress_fd);
  r = vmferry_import (&opts);
  if (r < 0)
    vmferry_tool_print_error ();
  vmferry_stripes_in_free (opts.stripes, r >= 0 ? VMFERRY_EXIT_OK
                                                : VMFERRY_EXIT_FAILED);
  vmferry_progress_free (opts.progress);
  if (fd >= 0)
    close (fd);
  if (r < 0) {
    int sig = vmferry_quit_signal ();
    /* The signal that ended the import: its exit status says so. */
    return sig ? VMFERRY_EXIT_SIGNAL + sig : VMFERRY_EXIT_FAILED;
  }
  /* VMFERRY_IMPORT_ALREADY: said so, and is success. */
  if (r == 0 && !opts.resume_query)
    vmferry_tool_print_summary ();
  if (json && vmferry_import_result_json (&result,
                                          r == VMFERRY_IMPORT_ALREADY,
                                          stdout) < 0) {
    vmferry_tool_print_error ();
    vmferry_import_result_free (&result);
    return VMFERRY_EXIT_FAILED;
  }
  vmferry_import_result_free (&result);
  return VMFERRY_EXIT_OK;

 bad_arg:
  vmferry_tool_print_error ();
  vmferry_tool_usage_error ();
}
