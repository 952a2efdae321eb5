/* vmferry-rewrite: adapt a domain definition, in a stream or bare XML. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "output.h"
#include "rewrite.h"
#include "tool.h"
#include "virt.h"

#include "vmferry-rewrite-synopsis.h"

enum { OPT_DIFF = 256 };

static const struct option long_options[] = {
  { "xml", required_argument, NULL, 'x' },
  { "output", required_argument, NULL, 'o' },
  { "connect", required_argument, NULL, 'c' },
  { "map-file", required_argument, NULL, 'm' },
  VMFERRY_REWRITE_LONG_OPTIONS,
  { "diff", no_argument, NULL, OPT_DIFF },
  VMFERRY_COMMON_LONG_OPTIONS,
  { NULL, 0, NULL, 0 }
};

int
main (int argc, char *argv[])
{
  struct vmferry_rewrite *rw;
  const char *xml = NULL, *output = NULL, *uri = NULL;
  const char *in_name = "stdin", *src;
  struct vmferry_output out = { .fd = -1 };
  CLEANUP_VIR_CONNECT virConnectPtr dest = NULL;
  CLEANUP_CLOSE int in_fd = -1;
  CLEANUP_FREE char *diff = NULL;
  bool show_diff = false, failed;
  int c, r = -1;

  vmferry_tool_init (argv[0]);
  rw = vmferry_rewrite_new ();
  if (rw == NULL) {
    vmferry_tool_print_error ();
    return VMFERRY_EXIT_FAILED;
  }
  while ((c = getopt_long (argc, argv, "x:o:c:m:" VMFERRY_COMMON_SHORT_OPTIONS,
                           long_options, NULL)) != -1) {
    switch (c) {
    case 'x': xml = optarg; break;
    case 'o': output = optarg; break;
    case 'c': uri = optarg; break;
    case OPT_DIFF: show_diff = true; break;
    case 'm':
      if (vmferry_rewrite_add_map_file (rw, optarg) == -1)
        goto bad_arg;
      break;
    default:
      if (vmferry_tool_rule_option (rw, c, optarg, &failed)) {
        if (failed)
          goto bad_arg;
        break;
      }
      if (!vmferry_tool_common_option (c, synopsis))
        vmferry_tool_usage_error ();
    }
  }
  if (argc - optind > 1 || (xml && argc - optind > 0))
    vmferry_tool_usage_fail ("expected at most one FILE, and none with --xml");
  if (show_diff && output)
    vmferry_tool_usage_fail ("--diff prints to standard output and writes no "
                             "rewritten output: -o does not go with it");
  if (output == NULL)
    output = "-";
  if (vmferry_rewrite_needs_dest (rw) && uri == NULL)
    vmferry_tool_usage_fail ("'auto' chooses from the destination's "
                             "capabilities: give its URI with -c");
  if (vmferry_rewrite_is_empty (rw))
    vmferry_verbose ("no rules given: the output is the input");

  src = xml ? xml : argc - optind == 1 ? argv[optind] : "-";
  if (strcmp (src, "-") == 0)
    in_fd = dup (STDIN_FILENO);
  else {
    in_name = src;
    in_fd = open (src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  }
  if (in_fd < 0) {
    vmferry_set_error_errno (errno, "%s: cannot open", in_name);
    goto out;
  }

  if (vmferry_rewrite_needs_dest (rw)) {
    dest = vmferry_virt_connect (uri);
    if (dest == NULL)
      goto out;
  }

  if (show_diff) {
    r = vmferry_rewrite_diff (rw, in_fd, in_name, xml == NULL,
                              isatty (STDOUT_FILENO), dest, &diff);
    if (r == 0 && (fputs (diff, stdout) == EOF || fflush (stdout) == EOF)) {
      vmferry_set_error_errno (errno, "stdout");
      r = -1;
    }
    goto out;
  }
  /* Bare XML may go to a terminal; a stream may not. */
  if (xml && strcmp (output, "-") == 0) {
    out.fd = STDOUT_FILENO;
    out.name = "stdout";
  }
  else if (vmferry_output_open (output, &out) == -1 ||
           vmferry_output_remove_on_signal (&out) == -1)
    goto out;

  if (xml)
    r = vmferry_rewrite_xml_fd (rw, in_fd, in_name, out.fd, out.name, dest);
  else
    r = vmferry_rewrite_stream (rw, in_fd, in_name, out.fd, out.name, dest);
  if (r == 0 && out.path) {
    r = vmferry_output_commit (&out);
    /* In a pipeline the next stage says what arrived. */
    if (r == 0)
      vmferry_set_summary ("%s rewritten to %s", in_name, out.path);
  }

 out:
  if (r < 0)
    vmferry_tool_print_error ();
  else
    vmferry_tool_print_summary ();
  if (out.path)
    vmferry_output_discard (&out);
  vmferry_rewrite_free (rw);
  return r == 0 ? VMFERRY_EXIT_OK : VMFERRY_EXIT_FAILED;

 bad_arg:
  vmferry_tool_print_error ();
  vmferry_rewrite_free (rw);
  vmferry_tool_usage_error ();
}
