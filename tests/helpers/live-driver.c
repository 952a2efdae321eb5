/* live-driver: drives vmferry_migrate_live() for the live-*.sh tests until
 * vmferry-migrate --live exists.  Test-only, never installed.
 *
 * live-driver [-c SRC_URI] [--migrate-uri URI] [--bandwidth MIBS]
 *             [--progress FD] [--map-path OLD=NEW] [--postcopy]
 *             [--auto-converge] [--undefine-source] [-v] DOMAIN DEST_URI
 * Exit status: 0 migrated, 1 failed (the outcome is printed on stderr as
 * "outcome=N").
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "error.h"
#include "live.h"
#include "log.h"
#include "tool.h"

static volatile sig_atomic_t cancel;

static void
on_signal (int sig)
{
  (void) sig;
  cancel = 1;
}

/* The one rewrite the tests need: --map-path OLD=NEW on every file. */
static int
map_path (void *opaque, xmlDocPtr doc, virConnectPtr dest)
{
  const char *rule = opaque;
  const char *eq = strchr (rule, '=');
  size_t oldlen = eq - rule;
  struct vmferry_domain_file *f = NULL;
  size_t n = 0;
  int changes = 0;

  (void) dest;
  if (vmferry_domain_files (doc, false, &f, &n) < 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    char *np;
    if (f[i].path == NULL || strncmp (f[i].path, rule, oldlen) != 0 ||
        f[i].path[oldlen] != '/')
      continue;
    if (asprintf (&np, "%s%s", eq + 1, f[i].path + oldlen) < 0)
      return -1;
    if (vmferry_domain_set_path (doc, &f[i], np, 0) < 0) {
      free (np);
      return -1;
    }
    free (np);
    changes++;
  }
  vmferry_domain_files_free (f, n);
  return changes;
}

int
main (int argc, char *argv[])
{
  enum { O_MIGURI = 256, O_BW, O_PROGRESS, O_MAP, O_POSTCOPY, O_AC, O_UNDEF };
  static const struct option longopts[] = {
    { "connect", required_argument, NULL, 'c' },
    { "migrate-uri", required_argument, NULL, O_MIGURI },
    { "bandwidth", required_argument, NULL, O_BW },
    { "progress", required_argument, NULL, O_PROGRESS },
    { "map-path", required_argument, NULL, O_MAP },
    { "postcopy", no_argument, NULL, O_POSTCOPY },
    { "auto-converge", no_argument, NULL, O_AC },
    { "undefine-source", no_argument, NULL, O_UNDEF },
    { NULL, 0, NULL, 0 }
  };
  struct vmferry_live_opts o = { .cancel = &cancel };
  enum vmferry_live_outcome outcome;
  struct sigaction sa = { .sa_handler = on_signal };
  int c, progress_fd = -1, r;
  uint64_t n;

  vmferry_tool_init (argv[0]);
  while ((c = getopt_long (argc, argv, "c:v", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': o.uri = optarg; break;
    case 'v': vmferry_set_verbosity (vmferry_get_verbosity () + 1); break;
    case O_MIGURI: o.migrate_uri = optarg; break;
    case O_BW:
      if (!vmferry_parse_uint ("--bandwidth", optarg, 1, UINT32_MAX, &n))
        goto bad;
      o.bandwidth = n;
      break;
    case O_PROGRESS:
      if (!vmferry_parse_fd ("--progress", optarg, &progress_fd))
        goto bad;
      break;
    case O_MAP:
      if (strchr (optarg, '=') == NULL)
        goto bad;
      o.rewrite = map_path;
      o.opaque = optarg;
      break;
    case O_POSTCOPY: o.postcopy = true; break;
    case O_AC: o.auto_converge = true; break;
    case O_UNDEF: o.undefine_source = true; break;
    default: exit (2);
    }
  }
  if (argc - optind != 2)
    exit (2);
  o.domain = argv[optind];
  o.dest_uri = argv[optind + 1];
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  o.progress = vmferry_progress_auto (progress_fd, false);
  r = vmferry_migrate_live (&o, &outcome);
  if (r < 0)
    vmferry_tool_print_error ();
  fprintf (stderr, "outcome=%d\n", (int) outcome);
  vmferry_progress_free (o.progress);
  return r == 0 ? 0 : 1;
 bad:
  vmferry_tool_print_error ();
  exit (2);
}
