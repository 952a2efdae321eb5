/* vmferry: an import's result as JSON, written by vmferry-import --json
 * and read back by vmferry-migrate (import-result.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "error.h"
#include "json.h"
#include "import-result.h"
#include "text.h"

/* Longest string a reader takes from the JSON. */
#define MAX_STRING 4096

void
vmferry_import_result_free (struct vmferry_import_result *r)
{
  if (r == NULL)
    return;
  free (r->domain);
  vmferry_fixup_changes_free (r->fixups, r->nr_fixups);
  free (r->fixups_not_done);
  memset (r, 0, sizeof *r);
}

int
vmferry_import_result_add_fixups (json_object *o,
                                  const struct vmferry_import_result *r)
{
  json_object *a = NULL, *why = NULL;

  if (r->fixups_known &&
      (a = vmferry_fixup_changes_to_json (r->fixups, r->nr_fixups)) == NULL)
    goto nomem;
  if (json_object_object_add (o, "fixups", a) < 0) {
    json_object_put (a);
    goto nomem;
  }
  if (r->fixups_not_done &&
      (why = json_object_new_string (r->fixups_not_done)) == NULL)
    goto nomem;
  if (json_object_object_add (o, "fixups_not_done", why) < 0) {
    json_object_put (why);
    goto nomem;
  }
  return 0;
 nomem:
  vmferry_set_error_errno (ENOMEM, "JSON result");
  return -1;
}

int
vmferry_import_result_json (const struct vmferry_import_result *r,
                            bool already, FILE *out)
{
  json_object *o = json_object_new_object ();
  int ret = -1;

  if (o == NULL ||
      json_object_object_add (o, "version",
                              json_object_new_int
                                (VMFERRY_IMPORT_JSON_VERSION)) < 0 ||
      json_object_object_add (o, "domain", r->domain
                              ? json_object_new_string (r->domain)
                              : NULL) < 0 ||
      json_object_object_add (o, "state",
                              json_object_new_string (already
                                                      ? "already-there"
                                                      : "imported")) < 0) {
    vmferry_set_error_errno (ENOMEM, "JSON result");
    goto out;
  }
  if (vmferry_import_result_add_fixups (o, r) < 0)
    goto out;
  if (vmferry_json_print_line (out, o) < 0)
    goto out;
  ret = 0;
 out:
  json_object_put (o);
  return ret;
}

/* Member KEY of O as a string fit to print, into *DST; null or absent
 * is NULL.  WHERE names it in messages.
 */
static int
get_text (json_object *o, const char *key, const char *where, char **dst)
{
  json_object *v = NULL;
  const char *s;
  size_t len;

  *dst = NULL;
  if (!json_object_object_get_ex (o, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_string)) {
    vmferry_set_error ("import result: %s: not a string", where);
    return -1;
  }
  s = json_object_get_string (v);
  len = (size_t) json_object_get_string_len (v);
  if (len > MAX_STRING || strlen (s) != len || !vmferry_text_plain (s, len)) {
    vmferry_set_error ("import result: %s: longer than %d bytes, or holds a "
                       "control character", where, MAX_STRING);
    return -1;
  }
  *dst = strdup (s);
  if (*dst == NULL) {
    vmferry_set_error_errno (ENOMEM, "import result");
    return -1;
  }
  return 0;
}

static int
parse_object (json_object *o, struct vmferry_import_result *r)
{
  json_object *v = NULL, *a = NULL;
  size_t n;
  char where[64];

  if (!json_object_object_get_ex (o, "version", &v) ||
      !json_object_is_type (v, json_type_int) ||
      json_object_get_int64 (v) != VMFERRY_IMPORT_JSON_VERSION) {
    vmferry_set_error ("import result: not version %d",
                       VMFERRY_IMPORT_JSON_VERSION);
    return -1;
  }
  if (get_text (o, "fixups_not_done", "fixups_not_done",
                &r->fixups_not_done) < 0)
    return -1;
  if (!json_object_object_get_ex (o, "fixups", &a) || a == NULL)
    return 0;
  if (!json_object_is_type (a, json_type_array)) {
    vmferry_set_error ("import result: fixups: not an array");
    return -1;
  }
  n = json_object_array_length (a);
  if (n > VMFERRY_IMPORT_MAX_FIXUPS) {
    vmferry_set_error ("import result: fixups: %zu, at most %d", n,
                       VMFERRY_IMPORT_MAX_FIXUPS);
    return -1;
  }
  r->fixups_known = true;
  r->fixups = calloc (n ? n : 1, sizeof *r->fixups);
  if (r->fixups == NULL) {
    vmferry_set_error_errno (ENOMEM, "import result");
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (a, i);
    struct vmferry_fixup_change *c = &r->fixups[i];

    r->nr_fixups = i + 1;
    snprintf (where, sizeof where, "fixups[%zu]", i);
    if (!json_object_is_type (e, json_type_object)) {
      vmferry_set_error ("import result: %s: not an object", where);
      return -1;
    }
    snprintf (where, sizeof where, "fixups[%zu].file", i);
    if (get_text (e, "file", where, &c->file) < 0)
      return -1;
    snprintf (where, sizeof where, "fixups[%zu].change", i);
    if (get_text (e, "change", where, &c->what) < 0)
      return -1;
    if (c->file == NULL || c->what == NULL) {
      vmferry_set_error ("import result: fixups[%zu]: needs file and change",
                         i);
      return -1;
    }
  }
  return 0;
}

int
vmferry_import_result_parse (const char *text, size_t len,
                             struct vmferry_import_result *r)
{
  size_t end = len, start;
  json_tokener *tok;
  json_object *o;
  int ret;

  memset (r, 0, sizeof *r);
  /* The last line that is not empty. */
  while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == ' '))
    end--;
  for (start = end; start > 0 && text[start - 1] != '\n'; start--)
    ;
  if (start == end || text[start] != '{') {
    vmferry_set_error ("import result: no JSON object on the last line");
    return -1;
  }
  tok = json_tokener_new_ex (8);
  if (tok == NULL) {
    vmferry_set_error_errno (ENOMEM, "import result");
    return -1;
  }
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT |
                          JSON_TOKENER_VALIDATE_UTF8);
  o = json_tokener_parse_ex (tok, text + start, (int) (end - start));
  if (o == NULL || json_tokener_get_error (tok) != json_tokener_success ||
      json_tokener_get_parse_end (tok) != end - start ||
      !json_object_is_type (o, json_type_object)) {
    vmferry_set_error ("import result: the last line is not one JSON object");
    ret = -1;
  }
  else
    ret = parse_object (o, r);
  json_object_put (o);
  json_tokener_free (tok);
  if (ret < 0)
    vmferry_import_result_free (r);
  return ret;
}
