/* vmferry-export: write a domain as one vmferry stream. */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "export.h"
#include "log.h"
#include "output.h"
#include "progress.h"
#include "tool.h"
#include "export-trim.h"

#include "vmferry-export-synopsis.h"

enum { OPT_INCLUDE_READONLY = 256, OPT_FORMAT, OPT_OFFLINE, OPT_FREEZE,
       OPT_INSPECT, OPT_NO_INSPECT, OPT_FLATTEN, OPT_TRIM };

static const struct option long_options[] = {
  { "connect", required_argument, NULL, 'c' },
  { "output", required_argument, NULL, 'o' },
  { "include-readonly", no_argument, NULL, OPT_INCLUDE_READONLY },
  { "format", required_argument, NULL, OPT_FORMAT },
  { "offline", no_argument, NULL, OPT_OFFLINE },
  { "inspect", no_argument, NULL, OPT_INSPECT },
  { "no-inspect", no_argument, NULL, OPT_NO_INSPECT },
  { "flatten", no_argument, NULL, OPT_FLATTEN },
  { "trim", no_argument, NULL, OPT_TRIM },
  { "freeze", required_argument, NULL, OPT_FREEZE },
  VMFERRY_COMPRESS_LONG_OPTION,
  VMFERRY_THREADS_LONG_OPTION,
  VMFERRY_PROGRESS_LONG_OPTION,
  VMFERRY_COMMON_LONG_OPTIONS,
  { NULL, 0, NULL, 0 }
};

static void
on_signal (void)
{
  vmferry_backup_quit ();
  vmferry_trim_quit ();
}

int
main (int argc, char *argv[])
{
  struct vmferry_export_opts opts = {
    .compress = VMFERRY_COMPRESS_AUTO, .level = 1,
  };
  struct vmferry_output out;
  const char *output = "-", *format = NULL;
  int progress_fd = -1, c, r;
  const struct vmferry_tool_shared shared = {
    .compress = &opts.compress, .level = &opts.level,
    .threads = &opts.threads, .progress_fd = &progress_fd,
  };

  vmferry_tool_init (argv[0]);
  while ((c = getopt_long (argc, argv, "c:o:" VMFERRY_COMMON_SHORT_OPTIONS,
                           long_options, NULL)) != -1) {
    switch (c) {
    case 'c': opts.uri = optarg; break;
    case 'o': output = optarg; break;
    case OPT_INCLUDE_READONLY: opts.include_readonly = true; break;
    case OPT_FORMAT: format = optarg; break;
    case OPT_OFFLINE: opts.offline = true; break;
    case OPT_INSPECT: opts.inspect = true; break;
    case OPT_NO_INSPECT: opts.inspect = false; break;
    case OPT_FLATTEN: opts.flatten = true; break;
    case OPT_TRIM: opts.trim = true; break;
    case OPT_FREEZE:
      if (strcmp (optarg, "auto") == 0)
        opts.freeze = VMFERRY_FREEZE_AUTO;
      else if (strcmp (optarg, "yes") == 0)
        opts.freeze = VMFERRY_FREEZE_YES;
      else if (strcmp (optarg, "no") == 0)
        opts.freeze = VMFERRY_FREEZE_NO;
      else
        vmferry_tool_usage_fail ("--freeze: '%s' is not auto, yes or no",
                                 optarg);
      break;
    default:
      vmferry_tool_other_option (&shared, c, optarg, synopsis);
    }
  }
  if (argc - optind != 1)
    vmferry_tool_usage_fail ("expected one DOMAIN");
  opts.domain = argv[optind];
  if (vmferry_export_choose_format (&opts, format, output) < 0) {
    vmferry_tool_print_error ();
    vmferry_tool_usage_error ();
  }

  /* A signal ends a running export's backup job and removes --trim's
   * overlays before the process dies (else they stay until the next
   * run).
   */
  vmferry_output_on_signal (on_signal);
  if (vmferry_output_open (output, &out) < 0 ||
      vmferry_output_remove_on_signal (&out) < 0) {
    vmferry_tool_print_error ();
    vmferry_output_discard (&out);
    return VMFERRY_EXIT_FAILED;
  }
  opts.out_fd = out.fd;
  opts.out_name = out.name;
  opts.progress = vmferry_progress_auto_stream (progress_fd,
                                                vmferry_get_verbosity () < 0,
                                                out.fd);
  r = vmferry_export (&opts);
  if (r == 0)
    r = vmferry_output_commit (&out);
  if (r < 0) {
    vmferry_tool_print_error ();
    if (out.tmp)
      fprintf (stderr, "%s: nothing was written to %s\n",
               vmferry_program_name (), out.path);
  }
  vmferry_output_discard (&out);
  /* After the bar's last line. */
  vmferry_progress_free (opts.progress);
  if (r == 0)
    vmferry_tool_print_summary ();
  return r == 0 ? VMFERRY_EXIT_OK : VMFERRY_EXIT_FAILED;
}
