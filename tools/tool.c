/* vmferry: what every tool shares (see tool.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "error.h"
#include "log.h"
#include "progress.h"
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
    vmferry_set_error ("%s: %s is out of range (%" PRIu64 " to %" PRIu64 " bytes)",
                       what, arg, min, max);
    return false;
  }
  *rtn = v << shift;
  return true;
 bad:
  vmferry_set_error ("%s: '%s' is not a size (a number of bytes, or with K, M or G)",
                     what, arg);
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
