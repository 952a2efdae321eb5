/* vmferry-send: push a stream into vmferry-import on a remote host. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "progress.h"
#include "send.h"
#include "tool.h"

#include "vmferry-send-synopsis.h"

enum { OPT_NO_RESUME = 256, OPT_REMOTE_IMPORT };

static const struct option long_options[] = {
  { "input", required_argument, NULL, 'i' },
  VMFERRY_SSH_LONG_OPTIONS,
  { "no-resume", no_argument, NULL, OPT_NO_RESUME },
  { "remote-import", required_argument, NULL, OPT_REMOTE_IMPORT },
  VMFERRY_PROGRESS_LONG_OPTION,
  VMFERRY_COMMON_LONG_OPTIONS,
  { NULL, 0, NULL, 0 }
};

int
main (int argc, char *argv[])
{
  struct vmferry_send_opts opts = {
    .ssh = { .stdout_fd = STDOUT_FILENO, .stderr_fd = STDERR_FILENO },
    .in_fd = STDIN_FILENO, .in_name = "stdin", .connections = 1,
    .buffer = VMFERRY_SEND_BUFFER,
  };
  struct vmferry_send_stats stats;
  const char *input = "-";
  int progress_fd = -1, c, r, fd = -1;
  const struct vmferry_tool_shared shared = {
    .ssh = &opts.ssh, .connections = &opts.connections,
    .buffer = &opts.buffer, .progress_fd = &progress_fd,
  };

  vmferry_tool_init (argv[0]);
  while ((c = getopt_long (argc, argv,
                           "i:" VMFERRY_SSH_SHORT_OPTIONS
                           VMFERRY_COMMON_SHORT_OPTIONS,
                           long_options, NULL)) != -1) {
    switch (c) {
    case 'i': input = optarg; break;
    case OPT_NO_RESUME: opts.no_resume = true; break;
    case OPT_REMOTE_IMPORT: opts.remote_import = optarg; break;
    default:
      r = vmferry_tool_shared_option (&shared, c, optarg);
      if (r == -1)
        goto bad_arg;
      if (r == 0 && !vmferry_tool_common_option (c, synopsis)) {
        /* An unknown option is most often one of vmferry-import's given
         * in the wrong place (getopt named it already).
         */
        if (c == '?' && (optopt == 0 || strchr ("cdfnp", optopt)))
          fprintf (stderr, "%s: options for the remote vmferry-import go "
                   "after the destination and '--': %s HOST -- --dir DIR "
                   "--define\n", vmferry_program_name (),
                   vmferry_program_name ());
        vmferry_tool_usage_error ();
      }
    }
  }
  if (optind >= argc)
    vmferry_tool_usage_fail ("expected a destination HOST");
  vmferry_tool_check_ssh (&opts.ssh);
  opts.ssh.destination = argv[optind];
  /* Everything after the destination (getopt consumed the "--") is for
   * the remote vmferry-import.
   */
  opts.import_args = (const char *const *) &argv[optind + 1];
  if (strcmp (input, "-") != 0) {
    fd = open (input, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fprintf (stderr, "%s: %s: %s\n", vmferry_program_name (), input,
               strerror (errno));
      return VMFERRY_EXIT_FAILED;
    }
    opts.in_fd = fd;
    opts.in_name = input;
  }
  /* A remote that goes away must be an error we report, not a signal. */
  signal (SIGPIPE, SIG_IGN);
  opts.progress = vmferry_tool_progress (progress_fd);
  r = vmferry_send (&opts, &stats);
  if (r < 0)
    vmferry_tool_print_error ();
  vmferry_progress_free (opts.progress);
  if (fd >= 0)
    close (fd);
  if (r == 0) {
    vmferry_tool_print_summary ();
    return VMFERRY_EXIT_OK;
  }
  /* The remote import's own status when it failed with one: the same
   * table (tool.h).
   */
  return stats.remote_status > 0 ? stats.remote_status : VMFERRY_EXIT_FAILED;

 bad_arg:
  vmferry_tool_print_error ();
  vmferry_tool_usage_error ();
}
