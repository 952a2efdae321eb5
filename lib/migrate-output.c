/* vmferry: the result of one migration as JSON (vmferry-migrate --json).
 *
 * One object, its layout versioned (VMFERRY_MIGRATE_JSON_VERSION); the
 * pre-flight findings inside it are vmferry-check's own object
 * (vmferry_findings_json), not a second rendering of them, and the
 * fix-ups are the destination's import's (import-result.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "error.h"
#include "json.h"
#include "import-result.h"
#include "migrate.h"

/* What happened, in one word (the man page's JSON OUTPUT lists them). */
static const char *
state_name (const struct vmferry_migrate_opts *opts,
            const struct vmferry_migrate_result *res, int r,
            enum vmferry_migrate_outcome outcome)
{
  if (r == 0 && outcome == VMFERRY_MIGRATE_ALREADY)
    return "already-there";
  if (r == 0)
    return opts->dry_run ? "would-move" : "moved";
  return res->blocked ? "blocked" : "failed";
}

/* "2026-12-07T14:31:24Z", or NULL (json null) if the time is not one. */
static json_object *
utc_time (double t)
{
  time_t s = (time_t) t;
  struct tm tm;
  char buf[32];

  if (t <= 0 || gmtime_r (&s, &tm) == NULL ||
      strftime (buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    return NULL;
  return json_object_new_string (buf);
}

static json_object *
string_or_null (const char *s)
{
  return s ? json_object_new_string (s) : NULL;
}

int
vmferry_migrate_result_json (const struct vmferry_migrate_opts *opts,
                             const struct vmferry_migrate_result *res,
                             int r, enum vmferry_migrate_outcome outcome,
                             const char *error, int exit_code,
                             double start, double end, double seconds,
                             FILE *out)
{
  json_object *o = json_object_new_object ();
  json_object *dest = json_object_new_object ();
  json_object *files = json_object_new_array ();
  json_object *bytes = NULL, *plan = NULL, *times = json_object_new_object ();
  json_object *preflight = NULL;
  int ret = -1;

  if (!o || !dest || !files || !times) {
    json_object_put (dest);
    json_object_put (files);
    json_object_put (times);
    goto nomem;
  }
  json_object_object_add (o, "version",
                          json_object_new_int (VMFERRY_MIGRATE_JSON_VERSION));
  json_object_object_add (o, "state",
                          json_object_new_string (state_name (opts, res, r,
                                                              outcome)));
  json_object_object_add (o, "exit_code", json_object_new_int (exit_code));
  json_object_object_add (o, "error", string_or_null (r < 0 ? error : NULL));
  json_object_object_add (o, "domain", string_or_null (opts->domain));
  json_object_object_add (o, "mode",
                          json_object_new_string (opts->live ? "live"
                                                  : "offline"));
  json_object_object_add (o, "dry_run",
                          json_object_new_boolean (opts->dry_run));

  json_object_object_add (dest, "host",
                          string_or_null (opts->ssh.destination));
  json_object_object_add (dest, "uri", string_or_null (res->dest_uri));
  json_object_object_add (dest, "domain", string_or_null (res->dest_name));
  json_object_object_add (dest, "where", string_or_null (res->dest_where));
  for (size_t i = 0; i < res->dest_files.len; i++)
    json_object_array_add (files,
                           json_object_new_string (res->dest_files.ptr[i]));
  json_object_object_add (dest, "files", files);
  json_object_object_add (o, "destination", dest);

  if (res->checked) {
    preflight = vmferry_findings_json (&res->findings, res->dest_uri,
                                       opts->domain);
    if (preflight == NULL)
      goto out;
  }
  json_object_object_add (o, "preflight", preflight);

  /* Offline, the send counted them; --live has no such counts. */
  if (res->has_bytes || (!opts->live && !opts->dry_run)) {
    if (!(bytes = json_object_new_object ()))
      goto nomem;
    json_object_object_add (bytes, "read",
                            json_object_new_uint64 (res->bytes_read));
    json_object_object_add (bytes, "sent",
                            json_object_new_uint64 (res->bytes_sent));
    json_object_object_add (bytes, "written",
                            json_object_new_uint64 (res->bytes_written));
    json_object_object_add (bytes, "skipped",
                            json_object_new_uint64 (res->bytes_skipped));
  }
  json_object_object_add (o, "bytes", bytes);
  json_object_object_add (o, "resumed", json_object_new_boolean (res->resumed));
  /* The import's own account, as it printed it there. */
  if (vmferry_import_result_add_fixups (o, &res->import) < 0)
    goto out;

  if (res->has_plan) {
    if (!(plan = json_object_new_object ()))
      goto nomem;
    json_object_object_add (plan, "files",
                            json_object_new_uint64 (res->plan_files));
    json_object_object_add (plan, "size",
                            json_object_new_uint64 (res->plan_size));
    json_object_object_add (plan, "allocated",
                            json_object_new_uint64 (res->plan_allocated));
    json_object_object_add (plan, "rewrite_changes",
                            json_object_new_int (res->plan_changes));
    json_object_object_add (plan, "start",
                            json_object_new_boolean (opts->start));
    json_object_object_add (plan, "undefine_source",
                            json_object_new_boolean (opts->undefine_source));
    json_object_object_add (plan, "remove_source_storage",
                            json_object_new_boolean
                              (opts->remove_source_storage));
  }
  json_object_object_add (o, "plan", plan);

  json_object_object_add (times, "start", utc_time (start));
  json_object_object_add (times, "end", utc_time (end));
  json_object_object_add (times, "seconds", json_object_new_double (seconds));
  json_object_object_add (o, "time", times);

  if (vmferry_json_print_line (out, o) < 0)
    goto out;
  ret = 0;
  goto out;
 nomem:
  vmferry_set_error_errno (ENOMEM, "JSON result");
 out:
  json_object_put (o);
  return ret;
}
