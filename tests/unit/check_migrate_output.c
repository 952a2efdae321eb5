/* Unit tests for lib/migrate-output.c: vmferry-migrate --json's object.
 * Each row is how a run ended; the object must say the state the man
 * page gives for it, carry the members it documents (null where it says
 * so), and hold the findings exactly as vmferry-check --json prints them.
 * The runs themselves: tests/integration/migrate-json.sh.
 */
#include "config.h"

#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "migrate.h"
#include "preflight.h"

static const char *const members[] = {
  "version", "state", "exit_code", "error", "domain", "mode", "dry_run",
  "destination", "preflight", "bytes", "resumed", "fixups",
  "fixups_not_done", "plan", "time", NULL
};

/* The object RES makes for a run that ended so, parsed back; also
 * checks that it is one line with every member and nothing else.
 */
static json_object *
result_object (const struct vmferry_migrate_opts *opts,
               const struct vmferry_migrate_result *res, int r,
               enum vmferry_migrate_outcome outcome, const char *error,
               int exit_code)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&buf, &len);
  json_object *o;

  ck_assert_ptr_nonnull (fp);
  ck_assert_int_eq (vmferry_migrate_result_json (opts, res, r, outcome, error,
                                                 exit_code, 1796653884.5,
                                                 1796653890.25, 5.75, fp), 0);
  fclose (fp);
  ck_assert_uint_gt (len, 2);
  ck_assert_int_eq (buf[len - 1], '\n');
  ck_assert_ptr_null (memchr (buf, '\n', len - 1));
  o = json_tokener_parse (buf);
  ck_assert_ptr_nonnull (o);
  for (size_t i = 0; members[i]; i++)
    ck_assert_msg (json_object_object_get_ex (o, members[i], NULL),
                   "member %s missing", members[i]);
  json_object_object_foreach (o, key, val) {
    bool known = false;
    (void) val;
    for (size_t i = 0; members[i]; i++)
      known |= strcmp (key, members[i]) == 0;
    ck_assert_msg (known, "member %s is not documented", key);
  }
  free (buf);
  return o;
}

static const char *
str (json_object *o, const char *key)
{
  json_object *v;

  if (!json_object_object_get_ex (o, key, &v) || v == NULL)
    return NULL;
  return json_object_get_string (v);
}

static bool
is_null (json_object *o, const char *key)
{
  json_object *v = NULL;

  json_object_object_get_ex (o, key, &v);
  return v == NULL;
}

struct row {
  bool dry_run, live, blocked, has_bytes, has_plan;
  int r;
  enum vmferry_migrate_outcome outcome;
  int exit_code;
  const char *state;
};

static const struct row rows[] = {
  { .has_bytes = true, .outcome = VMFERRY_MIGRATE_DONE, .state = "moved" },
  { .has_bytes = true, .outcome = VMFERRY_MIGRATE_ALREADY,
    .state = "already-there" },
  { .dry_run = true, .outcome = VMFERRY_MIGRATE_ALREADY,
    .state = "already-there" },
  { .dry_run = true, .has_plan = true, .state = "would-move" },
  { .dry_run = true, .has_plan = true, .blocked = true, .r = -1,
    .exit_code = 1, .state = "blocked" },
  { .blocked = true, .r = -1, .exit_code = 1, .state = "blocked" },
  { .r = -1, .exit_code = 1, .state = "failed" },
  { .has_bytes = true, .r = -1, .outcome = VMFERRY_MIGRATE_SOURCE_DEFINED,
    .exit_code = 3, .state = "failed" },
  { .live = true, .outcome = VMFERRY_MIGRATE_DONE, .state = "moved" },
  { .live = true, .outcome = VMFERRY_MIGRATE_ALREADY,
    .state = "already-there" },
  { .live = true, .r = -1, .outcome = VMFERRY_MIGRATE_SPLIT, .exit_code = 5,
    .state = "failed" },
};

START_TEST (test_states)
{
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const struct row *w = &rows[i];
    struct vmferry_migrate_opts opts = {
      .domain = "web01", .ssh = { .destination = "dst" },
      .dry_run = w->dry_run, .live = w->live,
    };
    struct vmferry_migrate_result res = {
      .blocked = w->blocked, .has_bytes = w->has_bytes,
      .bytes_read = 10, .bytes_sent = 20, .bytes_written = 8,
      .has_plan = w->has_plan, .plan_files = 2, .plan_size = 1 << 20,
    };
    json_object *o = result_object (&opts, &res, w->r, w->outcome,
                                    w->r < 0 ? "it broke" : NULL,
                                    w->exit_code);
    json_object *v;

    ck_assert_msg (strcmp (str (o, "state"), w->state) == 0,
                   "row %zu: state %s, expected %s", i, str (o, "state"),
                   w->state);
    json_object_object_get_ex (o, "version", &v);
    ck_assert_int_eq (json_object_get_int (v), 1);
    json_object_object_get_ex (o, "exit_code", &v);
    ck_assert_int_eq (json_object_get_int (v), w->exit_code);
    ck_assert_str_eq (str (o, "mode"), w->live ? "live" : "offline");
    /* The error only when the run failed. */
    if (w->r < 0)
      ck_assert_str_eq (str (o, "error"), "it broke");
    else
      ck_assert (is_null (o, "error"));
    /* No counts for --live nor for a dry run; offline runs always. */
    ck_assert_msg (is_null (o, "bytes") == (w->live || w->dry_run),
                   "row %zu: bytes", i);
    ck_assert (is_null (o, "plan") == !w->has_plan);
    /* No check ran in these rows: preflight is null; no import told
     * its fix-ups: null too.
     */
    ck_assert (is_null (o, "preflight"));
    ck_assert (is_null (o, "fixups"));
    ck_assert (is_null (o, "fixups_not_done"));
    json_object_put (o);
  }
}
END_TEST

START_TEST (test_members)
{
  struct vmferry_migrate_opts opts = {
    .domain = "web01", .ssh = { .destination = "dst" }, .dry_run = true,
    .start = true,
  };
  struct vmferry_migrate_result res = {
    .dest_uri = (char *) "qemu+ssh://dst/system",
    .dest_name = (char *) "web02", .dest_where = (char *) "/srv/vm",
    .has_plan = true, .plan_files = 2, .plan_size = 3ULL << 32,
    .plan_allocated = 12345, .plan_changes = 4,
  };
  char *files[] = { (char *) "/srv/vm/web02.qcow2",
                    (char *) "/srv/vm/web02_VARS.fd" };
  json_object *o, *d, *v, *p, *t;

  res.dest_files.ptr = files;
  res.dest_files.len = 2;
  o = result_object (&opts, &res, 0, VMFERRY_MIGRATE_NOTHING, NULL, 0);
  ck_assert (json_object_object_get_ex (o, "destination", &d));
  ck_assert_str_eq (str (d, "host"), "dst");
  ck_assert_str_eq (str (d, "uri"), "qemu+ssh://dst/system");
  ck_assert_str_eq (str (d, "domain"), "web02");
  ck_assert_str_eq (str (d, "where"), "/srv/vm");
  ck_assert (json_object_object_get_ex (d, "files", &v));
  ck_assert_int_eq (json_object_array_length (v), 2);
  ck_assert_str_eq (json_object_get_string (json_object_array_get_idx (v, 1)),
                    "/srv/vm/web02_VARS.fd");
  ck_assert_str_eq (str (o, "domain"), "web01");
  ck_assert (json_object_object_get_ex (o, "plan", &p));
  json_object_object_get_ex (p, "size", &v);
  ck_assert_uint_eq (json_object_get_uint64 (v), 3ULL << 32);
  json_object_object_get_ex (p, "rewrite_changes", &v);
  ck_assert_int_eq (json_object_get_int (v), 4);
  json_object_object_get_ex (p, "start", &v);
  ck_assert (json_object_get_boolean (v));
  ck_assert (json_object_object_get_ex (o, "time", &t));
  ck_assert_str_eq (str (t, "start"), "2026-12-07T14:31:24Z");
  ck_assert_str_eq (str (t, "end"), "2026-12-07T14:31:30Z");
  json_object_object_get_ex (t, "seconds", &v);
  ck_assert (json_object_get_double (v) == 5.75);
  json_object_put (o);
}
END_TEST

/* The findings inside are vmferry-check's own object, member for member. */
START_TEST (test_findings_as_check)
{
  struct vmferry_migrate_opts opts = {
    .domain = "web01", .ssh = { .destination = "dst" },
  };
  struct vmferry_migrate_result res = {
    .checked = true, .blocked = true,
    .dest_uri = (char *) "qemu+ssh://dst/system",
  };
  struct vmferry_finding f = {
    .severity = VMFERRY_SEV_ERROR, .check = strdup ("network"),
    .object = strdup ("network lan-a"), .message = strdup ("no such network"),
    .fix = calloc (3, sizeof (char *)),
  };
  char *buf = NULL;
  size_t len = 0;
  FILE *fp;
  json_object *o, *pf, *check;

  ck_assert_ptr_nonnull (f.fix);
  f.fix[0] = strdup ("--map-network");
  f.fix[1] = strdup ("lan-a=default");
  ck_assert_int_eq (vmferry_finding_vector_append (&res.findings.list, f), 0);
  o = result_object (&opts, &res, -1, VMFERRY_MIGRATE_NOTHING, "blocked", 1);
  ck_assert_str_eq (str (o, "state"), "blocked");
  ck_assert (json_object_object_get_ex (o, "preflight", &pf));
  ck_assert_ptr_nonnull (pf);

  fp = open_memstream (&buf, &len);
  ck_assert_int_eq (vmferry_findings_print (&res.findings, fp, true,
                                            res.dest_uri, opts.domain), 0);
  fclose (fp);
  check = json_tokener_parse (buf);
  ck_assert_ptr_nonnull (check);
  ck_assert_msg (json_object_equal (pf, check),
                 "preflight %s\nvmferry-check %s",
                 json_object_to_json_string (pf),
                 json_object_to_json_string (check));
  json_object_put (check);
  json_object_put (o);
  free (buf);
  vmferry_findings_free (&res.findings);
}
END_TEST

/* The import's fix-ups: each change as {"file", "change"}; none is an
 * empty array; "not done" says why.
 */
START_TEST (test_fixups)
{
  struct vmferry_migrate_opts opts = {
    .domain = "web01", .ssh = { .destination = "dst" },
  };
  struct vmferry_fixup_change changes[] = {
    { (char *) "/etc/fstab", (char *) "/dev/vda1 -> /dev/sda1" },
    { (char *) "/etc/netplan/50-x.yaml",
      (char *) "52:54:00:12:34:56 -> 52:54:00:ab:cd:ef" },
  };
  struct vmferry_migrate_result res = {
    .has_bytes = true,
    .import = { .fixups_known = true, .fixups = changes, .nr_fixups = 2 },
  };
  json_object *o, *a, *e;

  o = result_object (&opts, &res, 0, VMFERRY_MIGRATE_DONE, NULL, 0);
  ck_assert (json_object_object_get_ex (o, "fixups", &a));
  ck_assert_int_eq (json_object_array_length (a), 2);
  e = json_object_array_get_idx (a, 1);
  ck_assert_str_eq (str (e, "file"), "/etc/netplan/50-x.yaml");
  ck_assert_str_eq (str (e, "change"),
                    "52:54:00:12:34:56 -> 52:54:00:ab:cd:ef");
  ck_assert (is_null (o, "fixups_not_done"));
  json_object_put (o);

  res.import.nr_fixups = 0;
  res.import.fixups_not_done = (char *) "--no-fixup";
  o = result_object (&opts, &res, 0, VMFERRY_MIGRATE_DONE, NULL, 0);
  ck_assert (json_object_object_get_ex (o, "fixups", &a));
  ck_assert_ptr_nonnull (a);
  ck_assert_int_eq (json_object_array_length (a), 0);
  ck_assert_str_eq (str (o, "fixups_not_done"), "--no-fixup");
  json_object_put (o);
}
END_TEST

VMFERRY_UNIT_MAIN ("migrate-output", test_states, test_members,
                   test_findings_as_check, test_fixups)
