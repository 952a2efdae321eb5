/* vmferry-import: write a stream's files on this host, verify, define. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "import.h"
#include "log.h"
#include "progress.h"
#include "tool.h"

#include "vmferry-import-synopsis.h"

enum { OPT_DEFINE = 256, OPT_START, OPT_THREADS, OPT_PROGRESS };

static const struct option long_options[] = {
  { "connect", required_argument, NULL, 'c' },
  { "dir", required_argument, NULL, 'd' },
  { "pool", required_argument, NULL, 'p' },
  { "define", no_argument, NULL, OPT_DEFINE },
  { "start", no_argument, NULL, OPT_START },
  { "name", required_argument, NULL, 'n' },
  { "force", no_argument, NULL, 'f' },
  { "threads", required_argument, NULL, OPT_THREADS },
  { "progress", required_argument, NULL, OPT_PROGRESS },
  VMFERRY_COMMON_LONG_OPTIONS,
  { NULL, 0, NULL, 0 }
};

int
main (int argc, char *argv[])
{
  struct vmferry_import_opts opts = { .in_fd = STDIN_FILENO, .in_name = "stdin" };
  int progress_fd = -1, c, r, fd = -1;
  uint64_t n;

  vmferry_tool_init (argv[0]);
  while ((c = getopt_long (argc, argv, "c:d:p:n:f" VMFERRY_COMMON_SHORT_OPTIONS,
                           long_options, NULL)) != -1) {
    switch (c) {
    case 'c': opts.uri = optarg; break;
    case 'd': opts.dir = optarg; break;
    case 'p': opts.pool = optarg; break;
    case OPT_DEFINE: opts.define = true; break;
    case OPT_START: opts.define = opts.start = true; break;
    case 'n': opts.new_name = optarg; break;
    case 'f': opts.force = true; break;
    case OPT_THREADS:
      if (!vmferry_parse_uint ("--threads", optarg, 1, 256, &n))
        goto bad_arg;
      opts.threads = (unsigned) n;
      break;
    case OPT_PROGRESS:
      if (!vmferry_parse_fd ("--progress", optarg, &progress_fd))
        goto bad_arg;
      break;
    default:
      if (!vmferry_tool_common_option (c, synopsis))
        vmferry_tool_usage_error ();
    }
  }
  if (argc - optind > 1) {
    fprintf (stderr, "%s: expected at most one FILE\n", vmferry_program_name ());
    vmferry_tool_usage_error ();
  }
  if (!opts.dir == !opts.pool) {
    fprintf (stderr, "%s: give exactly one of --dir and --pool\n", vmferry_program_name ());
    vmferry_tool_usage_error ();
  }
  if (opts.new_name && !opts.define) {
    fprintf (stderr, "%s: --name needs --define\n", vmferry_program_name ());
    vmferry_tool_usage_error ();
  }
  if (argc - optind == 1 && strcmp (argv[optind], "-") != 0) {
    fd = open (argv[optind], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fprintf (stderr, "%s: %s: %s\n", vmferry_program_name (), argv[optind],
               strerror (errno));
      return EXIT_FAILURE;
    }
    opts.in_fd = fd;
    opts.in_name = argv[optind];
  }
  opts.progress = vmferry_progress_auto (progress_fd, vmferry_get_verbosity () < 0);
  r = vmferry_import (&opts);
  if (r < 0)
    vmferry_tool_print_error ();
  vmferry_progress_free (opts.progress);
  if (fd >= 0)
    close (fd);
  return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;

 bad_arg:
  vmferry_tool_print_error ();
  vmferry_tool_usage_error ();
}
