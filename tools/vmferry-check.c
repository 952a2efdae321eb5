/* vmferry-check: can this domain run on that destination? */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "preflight.h"
#include "refs.h"
#include "tool.h"
#include "vector.h"
#include "virt.h"

#include "vmferry-check-synopsis.h"

enum { OPT_JSON = 256, OPT_ALLOW_PATH, OPT_DEST_POOL, OPT_DEST_DISK };

static const struct option long_options[] = {
  { "connect", required_argument, NULL, 'c' },
  { "source", required_argument, NULL, 's' },
  { "json", no_argument, NULL, OPT_JSON },
  { "allow-path", required_argument, NULL, OPT_ALLOW_PATH },
  { "dest-pool", required_argument, NULL, OPT_DEST_POOL },
  { "dest-disk", required_argument, NULL, OPT_DEST_DISK },
  VMFERRY_COMMON_LONG_OPTIONS,
  { NULL, 0, NULL, 0 }
};

/* vmferry-rewrite's options (vmferry-migrate takes them too). */
#define REWRITE_HINT "vmferry-check judges the definition as it is given: " \
  "rewrite it first (vmferry-export DOMAIN | vmferry-rewrite OPTIONS | " \
  "vmferry-check -c URI -), or let vmferry-migrate --dry-run OPTIONS check it"
static const struct vmferry_option_hint rewrite_options[] = {
  { "--map-file", REWRITE_HINT }, { "--map-path", REWRITE_HINT },
  { "--pool", REWRITE_HINT }, { "--rename", REWRITE_HINT },
  { "--new-uuid", REWRITE_HINT }, { "--new-macs", REWRITE_HINT },
  { "--map-network", REWRITE_HINT }, { "--map-bridge", REWRITE_HINT },
  { "--machine", REWRITE_HINT }, { "--cpu", REWRITE_HINT },
  { "--emulator", REWRITE_HINT }, { "--disk-bus", REWRITE_HINT },
  { "--drop-device", REWRITE_HINT },
  { NULL, NULL }
};

DEFINE_VECTOR_TYPE (string_vector, const char *);

int
main (int argc, char *argv[])
{
  const char *dest_uri = NULL, *source_uri = NULL;
  struct vmferry_check_input in = { 0 };
  struct vmferry_findings findings = { 0 };
  CLEANUP_VIR_CONNECT virConnectPtr dest = NULL;
  CLEANUP_VECTOR struct string_vector allow = VECTOR_INIT;
  CLEANUP_VECTOR struct string_vector disks = VECTOR_INIT;
  const char *dest_pool = NULL;
  bool json = false;
  int c, status = VMFERRY_EXIT_CANNOT_RUN;

  vmferry_tool_init (argv[0]);
  vmferry_tool_json_errors (argc, argv, VMFERRY_CHECK_JSON_FORMAT);
  while ((c = getopt_long (argc, argv, "c:s:" VMFERRY_COMMON_SHORT_OPTIONS,
                           long_options, NULL)) != -1) {
    switch (c) {
    case 'c': dest_uri = optarg; break;
    case 's': source_uri = optarg; break;
    case OPT_JSON: json = true; break;
    case OPT_ALLOW_PATH:
      if (vmferry_refs_allow_valid (optarg) == -1) {
        vmferry_tool_print_error ();
        vmferry_tool_usage_error ();
      }
      if (string_vector_append (&allow, optarg) == -1) {
        vmferry_set_error_errno (errno, "--allow-path");
        return vmferry_tool_fail (VMFERRY_EXIT_CANNOT_RUN);
      }
      break;
    case OPT_DEST_POOL: dest_pool = optarg; break;
    case OPT_DEST_DISK: {
      const char *eq = strchr (optarg, '=');

      if (eq == NULL || eq == optarg || eq[1] != '/')
        vmferry_tool_usage_fail ("--dest-disk %s: give TARGET=DEVICE, the "
                                 "device an absolute path", optarg);
      if (string_vector_append (&disks, optarg) == -1) {
        vmferry_set_error_errno (errno, "--dest-disk");
        return vmferry_tool_fail (VMFERRY_EXIT_CANNOT_RUN);
      }
      break;
    }
    default:
      if (!vmferry_tool_common_option (c, synopsis)) {
        if (c == '?')
          vmferry_tool_option_hint (argv[optind - 1], rewrite_options);
        vmferry_tool_usage_error ();
      }
    }
  }
  if (dest_uri == NULL || argc - optind != 1)
    vmferry_tool_usage_fail ("give the destination with -c URI and one "
                             "DOMAIN, STREAM or XML");

  if (vmferry_check_input_load (argv[optind], source_uri, &in) == -1)
    goto out;
  for (size_t i = 0; i < allow.len; i++)
    if (vmferry_check_input_allow (&in, allow.ptr[i]) == -1)
      goto out;
  in.dest_pool = dest_pool;
  in.dest_disks = disks.ptr;
  in.n_dest_disks = disks.len;
  dest = vmferry_virt_connect (dest_uri);
  if (dest == NULL)
    goto out;
  vmferry_verbose ("checking %s against %s", in.name, dest_uri);
  if (vmferry_check (dest, &in, &findings) == -1)
    goto out;
  if (vmferry_findings_print (&findings, stdout, json, dest_uri, in.name) == -1)
    goto out;
  status = vmferry_findings_blocking (&findings) ? VMFERRY_EXIT_FAILED
                                                 : VMFERRY_EXIT_OK;
 out:
  if (status == VMFERRY_EXIT_CANNOT_RUN)
    vmferry_tool_fail (status);
  vmferry_findings_free (&findings);
  vmferry_check_input_free (&in);
  return status;
}
