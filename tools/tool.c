/* vmferry: what every tool shares (see tool.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "error.h"
#include "guest-fixup.h"          /* vmferry_fixup_hostname_ok */
#include "log.h"
#include "progress.h"
#include "rewrite.h"
#include "send.h"               /* vmferry_parse_bandwidth */
#include "stripe.h"             /* VMFERRY_STRIPE_MAX */
#include "tool.h"

void
vmferry_tool_init (const char *argv0)
{
  vmferry_set_program_name (argv0);
}

bool
vmferry_tool_common_option (int opt, const char *synopsis)
{
  switch (opt) {
  case 'h':
    fputs (synopsis, stdout);
    exit (VMFERRY_EXIT_OK);
  case 'V':
    printf ("%s %s\n", vmferry_program_name (), PACKAGE_VERSION);
    exit (VMFERRY_EXIT_OK);
  case 'v':
    if (vmferry_get_verbosity () < VMFERRY_LOG_DEBUG)
      vmferry_set_verbosity (vmferry_get_verbosity () + 1);
    return true;
  case 'q':
    vmferry_set_verbosity (VMFERRY_LOG_QUIET);
    return true;
  default:
    return false;
  }
}

/* --json: the format member of error objects; NULL: errors are text. */
static const char *json_format;

bool
vmferry_tool_json_errors (int argc, char *const argv[], const char *format)
{
  for (int i = 1; i < argc && strcmp (argv[i], "--") != 0; i++)
    if (strcmp (argv[i], "--json") == 0) {
      json_format = format;
      return true;
    }
  return false;
}

static void
print_json_error (const char *msg, int status)
{
  json_object *o = json_object_new_object ();

  if (o == NULL)
    return;
  json_object_object_add (o, "format", json_object_new_string (json_format));
  json_object_object_add (o, "error", json_object_new_string (msg));
  json_object_object_add (o, "exit_status", json_object_new_int (status));
  printf ("%s\n", json_object_to_json_string_ext
          (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
           JSON_C_TO_STRING_NOSLASHESCAPE));
  fflush (stdout);
  json_object_put (o);
}

void
vmferry_tool_usage_error (void)
{
  fprintf (stderr, "Try '%s --help' for more information.\n",
           vmferry_program_name ());
  if (json_format) {
    const char *msg = vmferry_get_error ();
    char text[256];

    if (!*msg) {
      snprintf (text, sizeof text, "usage error: see '%s --help'",
                vmferry_program_name ());
      msg = text;
    }
    print_json_error (msg, VMFERRY_EXIT_USAGE);
  }
  exit (VMFERRY_EXIT_USAGE);
}

void
vmferry_tool_usage_fail (const char *fs, ...)
{
  char msg[VMFERRY_ERROR_MAX];
  va_list args;

  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  vmferry_set_error ("%s", msg);
  vmferry_tool_print_error ();
  vmferry_tool_usage_error ();
}

int
vmferry_tool_fail (int status)
{
  const char *msg = vmferry_get_error ();

  vmferry_tool_print_error ();
  if (json_format)
    print_json_error (*msg ? msg : "unknown error", status);
  return status;
}

void
vmferry_tool_print_summary (void)
{
  const char *s = vmferry_get_summary ();

  if (*s && vmferry_get_verbosity () >= VMFERRY_LOG_NORMAL)
    fprintf (stderr, "%s: %s\n", vmferry_program_name (), s);
}

bool
vmferry_tool_option_hint (const char *arg,
                          const struct vmferry_option_hint *hints)
{
  size_t len;

  if (arg == NULL || strncmp (arg, "--", 2) != 0)
    return false;
  len = strcspn (arg, "=");
  for (const struct vmferry_option_hint *h = hints; h->option; h++)
    if (strlen (h->option) == len && strncmp (arg, h->option, len) == 0) {
      fprintf (stderr, "%s: %s\n", vmferry_program_name (), h->hint);
      return true;
    }
  return false;
}

void
vmferry_tool_print_error (void)
{
  const char *msg = vmferry_get_error ();

  vmferry_progress_break_line ();
  fprintf (stderr, "%s: %s\n", vmferry_program_name (),
           *msg ? msg : "unknown error");
}

bool
vmferry_parse_uint (const char *what, const char *arg, uint64_t min,
                    uint64_t max, uint64_t *rtn)
{
  char *end;
  uintmax_t v;

  errno = 0;
  if (arg[0] < '0' || arg[0] > '9')
    goto bad;
  v = strtoumax (arg, &end, 10);
  if (errno || *end || end == arg)
    goto bad;
  if (v < min || v > max) {
    vmferry_set_error ("%s: %s is out of range (%" PRIu64 " to %" PRIu64 ")",
                       what, arg, min, max);
    return false;
  }
  *rtn = v;
  return true;
 bad:
  vmferry_set_error ("%s: '%s' is not a number", what, arg);
  return false;
}

bool
vmferry_parse_size (const char *what, const char *arg, uint64_t min,
                    uint64_t max, uint64_t *rtn)
{
  static const char units[] = "KMGT";
  const char *u;
  char *end;
  uintmax_t v;
  unsigned shift = 0;

  errno = 0;
  if (arg[0] < '0' || arg[0] > '9')
    goto bad;
  v = strtoumax (arg, &end, 10);
  if (errno || end == arg)
    goto bad;
  if (*end && (u = strchr (units, toupper ((unsigned char) *end))) != NULL) {
    shift = 10 * (unsigned) (u - units + 1);
    end++;
    if (strcmp (end, "iB") == 0 || strcmp (end, "B") == 0)
      end += *end == 'i' ? 2 : 1;
  }
  if (*end)
    goto bad;
  if (v > (UINTMAX_MAX >> shift) || (v << shift) < min || (v << shift) > max) {
    vmferry_set_error ("%s: %s is out of range (%" PRIu64 " to %" PRIu64 " "
                       "bytes)", what, arg, min, max);
    return false;
  }
  *rtn = v << shift;
  return true;
 bad:
  vmferry_set_error ("%s: '%s' is not a size (a number of bytes, or with K, M "
                     "or G)", what, arg);
  return false;
}

bool
vmferry_parse_fd (const char *what, const char *arg, int *fd_rtn)
{
  uint64_t v;

  if (!vmferry_parse_uint (what, arg, 0, INT32_MAX, &v))
    return false;
  if (fcntl ((int) v, F_GETFD) < 0) {
    vmferry_set_error_errno (errno, "%s: file descriptor %s", what, arg);
    return false;
  }
  *fd_rtn = (int) v;
  return true;
}

bool
vmferry_parse_compress (const char *arg, enum vmferry_compress *method_rtn,
                        int *level_rtn)
{
  char *end;
  long level;

  *level_rtn = 1;
  if (strcmp (arg, "auto") == 0)
    *method_rtn = VMFERRY_COMPRESS_AUTO;
  else if (strcmp (arg, "none") == 0)
    *method_rtn = VMFERRY_COMPRESS_NONE;
  else if (strcmp (arg, "zstd") == 0)
    *method_rtn = VMFERRY_COMPRESS_ZSTD;
  else if (strncmp (arg, "zstd:", 5) == 0) {
    errno = 0;
    level = strtol (arg + 5, &end, 10);
    if (errno || *end || end == arg + 5 || level < 1 || level > 19) {
      vmferry_set_error ("--compress: '%s': the zstd level must be 1 to 19",
                         arg);
      return false;
    }
    *method_rtn = VMFERRY_COMPRESS_ZSTD;
    *level_rtn = (int) level;
  }
  else {
    vmferry_set_error ("--compress: '%s': use auto, none, zstd or "
                       "zstd:LEVEL", arg);
    return false;
  }
  return true;
}

/* The SSH group's options. */
static int
ssh_option (const struct vmferry_tool_shared *shared, int opt,
            const char *arg)
{
  uint64_t n;

  switch (opt) {
  case VMFERRY_OPT_ACCEPT_NEW:
    shared->ssh->accept_new_host_key = true;
    return 1;
  case 'F':
    shared->ssh->config = arg;
    return 1;
  case VMFERRY_OPT_SSH_COMMAND:
    shared->ssh->ssh_command = arg;
    return 1;
  case VMFERRY_OPT_CONNECTIONS:
    if (!vmferry_parse_uint ("--connections", arg, 1, VMFERRY_STRIPE_MAX,
                             &n))
      return -1;
    *shared->connections = (unsigned) n;
    return 1;
  case VMFERRY_OPT_BANDWIDTH:
    return vmferry_parse_bandwidth (arg, &shared->ssh->bandwidth) < 0 ? -1 : 1;
  case VMFERRY_OPT_BUFFER:
    if (!vmferry_parse_size ("--buffer", arg, 0, VMFERRY_BUFFER_MAX, &n))
      return -1;
    *shared->buffer = (size_t) n;
    return 1;
  default:
    return 0;
  }
}

int
vmferry_tool_shared_option (const struct vmferry_tool_shared *shared,
                            int opt, const char *arg)
{
  uint64_t n;

  switch (opt) {
  case VMFERRY_OPT_COMPRESS:
    if (shared->compress == NULL)
      return 0;
    return vmferry_parse_compress (arg, shared->compress, shared->level)
      ? 1 : -1;
  case VMFERRY_OPT_THREADS:
    if (shared->threads == NULL)
      return 0;
    if (!vmferry_parse_uint ("--threads", arg, 1, 256, &n))
      return -1;
    *shared->threads = (unsigned) n;
    return 1;
  case VMFERRY_OPT_PROGRESS:
    if (shared->progress_fd == NULL)
      return 0;
    return vmferry_parse_fd ("--progress", arg, shared->progress_fd) ? 1 : -1;
  default:
    return shared->ssh ? ssh_option (shared, opt, arg) : 0;
  }
}

void
vmferry_tool_other_option (const struct vmferry_tool_shared *shared,
                           int opt, const char *arg, const char *synopsis)
{
  int r = vmferry_tool_shared_option (shared, opt, arg);

  if (r == -1) {
    vmferry_tool_print_error ();
    vmferry_tool_usage_error ();
  }
  if (r == 0 && !vmferry_tool_common_option (opt, synopsis))
    vmferry_tool_usage_error ();
}

void
vmferry_tool_check_ssh (const struct vmferry_ssh_opts *ssh)
{
  if (ssh->config && ssh->ssh_command)
    vmferry_tool_usage_fail ("give -F inside --ssh-command (\"ssh -F FILE\"), "
                             "not beside it");
}

struct vmferry_progress *
vmferry_tool_progress (int progress_fd)
{
  return vmferry_progress_auto (progress_fd, vmferry_get_verbosity () < 0);
}

const char *
vmferry_tool_rule_option (struct vmferry_rewrite *rewrite, int opt,
                          const char *arg, bool *failed)
{
  static const char *const rules[] = {
    "map-path", "pool", "rename", "new-uuid", "new-macs", "map-network",
    "map-bridge", "machine", "cpu", "emulator", "disk-bus", "drop-device",
  };
  const size_t nr = sizeof rules / sizeof rules[0];

  *failed = false;
  if (opt < VMFERRY_OPT_RULE || (size_t) (opt - VMFERRY_OPT_RULE) >= nr)
    return NULL;
  /* As a map file's line names its place, the message names this. */
  if (vmferry_rewrite_add (rewrite, rules[opt - VMFERRY_OPT_RULE], arg,
                           "command line") < 0)
    *failed = true;
  return rules[opt - VMFERRY_OPT_RULE];
}

const char *
vmferry_tool_format_arg (const char *arg)
{
  if (strcmp (arg, "raw") != 0 && strcmp (arg, "qcow2") != 0)
    vmferry_tool_usage_fail ("--format: raw or qcow2");
  return arg;
}

const char *
vmferry_tool_identity_arg (const char *arg)
{
  if (!vmferry_fixup_hostname_ok (arg))
    vmferry_tool_usage_fail ("--new-identity: '%s' is not a host name "
                             "(letters, digits, '-' and '.')", arg);
  return arg;
}

void
vmferry_tool_check_fixup (bool no_fixup, const char *new_identity)
{
  if (no_fixup && new_identity)
    vmferry_tool_usage_fail ("--new-identity is made of fix-ups: not with "
                             "--no-fixup");
}
