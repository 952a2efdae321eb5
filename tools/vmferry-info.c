/* vmferry-info: what a stream holds; --verify checks all of it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "guest.h"
#include "info.h"
#include "log.h"
#include "tool.h"

#include "vmferry-info-synopsis.h"

enum { OPT_JSON = 256, OPT_VERIFY, OPT_XML, OPT_INSPECT, OPT_VERIFY_GUEST };

static const struct option long_options[] = {
  { "connect", required_argument, NULL, 'c' },
  { "domain", required_argument, NULL, 'd' },
  { "inspect", no_argument, NULL, OPT_INSPECT },
  { "json", no_argument, NULL, OPT_JSON },
  { "verify", no_argument, NULL, OPT_VERIFY },
  { "verify-guest", no_argument, NULL, OPT_VERIFY_GUEST },
  { "xml", no_argument, NULL, OPT_XML },
  VMFERRY_COMMON_LONG_OPTIONS,
  { NULL, 0, NULL, 0 }
};

int
main (int argc, char *argv[])
{
  bool json = false, verify = false, xml = false;
  bool inspect = false, verify_guest = false;
  const char *name = "stdin", *uri = NULL, *domain = NULL;
  int fd = STDIN_FILENO, c, r;

  vmferry_tool_init (argv[0]);
  vmferry_tool_json_errors (argc, argv, VMFERRY_INFO_JSON_FORMAT);
  while ((c = getopt_long (argc, argv, "c:d:" VMFERRY_COMMON_SHORT_OPTIONS,
                           long_options, NULL)) != -1) {
    switch (c) {
    case 'c': uri = optarg; break;
    case 'd': domain = optarg; break;
    case OPT_INSPECT: inspect = true; break;
    case OPT_VERIFY_GUEST: verify_guest = true; break;
    case OPT_JSON: json = true; break;
    case OPT_VERIFY: verify = true; break;
    case OPT_XML: xml = true; break;
    default:
      if (!vmferry_tool_common_option (c, synopsis))
        vmferry_tool_usage_error ();
    }
  }
  if (domain) {
    if (argc - optind > 0 || verify || xml || !(inspect || verify_guest))
      vmferry_tool_usage_fail ("--domain takes --inspect or --verify-guest "
                               "(or both), and no FILE, --verify or --xml");
    r = vmferry_guest_domain_report (uri, domain, inspect, verify_guest,
                                     json ? VMFERRY_INFO_JSON_FORMAT : NULL,
                                     stdout);
    if (r >= 0 && fflush (stdout) == EOF) {
      vmferry_set_error_errno (errno, "stdout");
      r = -1;
    }
    if (r > 0) {
      vmferry_set_error ("domain %s: %d filesystem%s damaged", domain, r,
                         r == 1 ? " is" : "s are");
      r = -1;
    }
    return r == 0 ? VMFERRY_EXIT_OK : vmferry_tool_fail (VMFERRY_EXIT_FAILED);
  }
  if (inspect || verify_guest || uri)
    vmferry_tool_usage_fail ("--inspect, --verify-guest and --connect need "
                             "--domain");
  if (argc - optind > 1 || (json && xml))
    vmferry_tool_usage_fail ("expected at most one FILE, and not both --json "
                             "and --xml");
  if (argc - optind == 1 && strcmp (argv[optind], "-") != 0) {
    name = argv[optind];
    fd = open (name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      vmferry_set_error_errno (errno, "%s", name);
      return vmferry_tool_fail (VMFERRY_EXIT_FAILED);
    }
  }
  r = xml ? vmferry_info_xml (fd, name, verify, isatty (STDOUT_FILENO), stdout)
          : vmferry_info (fd, name, json, verify, stdout);
  if (r == 0 && fflush (stdout) == EOF) {
    vmferry_set_error_errno (errno, "stdout");
    r = -1;
  }
  if (fd != STDIN_FILENO)
    close (fd);
  return r == 0 ? VMFERRY_EXIT_OK : vmferry_tool_fail (VMFERRY_EXIT_FAILED);
}
