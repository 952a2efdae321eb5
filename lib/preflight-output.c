/* vmferry: the findings of a pre-flight check, as text or JSON. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "error.h"
#include "preflight.h"

/* ---------------------------------------------------------------- output */

/* A word as the shell would need it. */
static void
print_word (FILE *out, const char *w)
{
  bool plain = *w != '\0';

  for (const char *p = w; *p; p++)
    if (!(isalnum ((unsigned char) *p) || strchr ("-_./=:,+@%", *p)))
      plain = false;
  if (plain) {
    fputs (w, out);
    return;
  }
  fputc ('\'', out);
  for (const char *p = w; *p; p++) {
    if (*p == '\'')
      fputs ("'\\''", out);
    else
      fputc (*p, out);
  }
  fputc ('\'', out);
}

json_object *
vmferry_findings_json (const struct vmferry_findings *f, const char *dest_uri,
                       const char *domain)
{
  size_t counts[3] = { 0 };
  json_object *o = json_object_new_object (), *arr = json_object_new_array ();
  json_object *all = json_object_new_array ();

  if (!o || !arr || !all) {
    json_object_put (o);
    json_object_put (arr);
    json_object_put (all);
    vmferry_set_error_errno (ENOMEM, "check output");
    return NULL;
  }
  for (size_t i = 0; i < f->list.len; i++) {
    int sev = f->list.ptr[i].severity;
    counts[sev >= 0 && sev <= 2 ? sev : 0]++;
  }
  json_object_object_add (o, "format",
                          json_object_new_string (VMFERRY_CHECK_JSON_FORMAT));
  json_object_object_add (o, "destination",
                          json_object_new_string (dest_uri ? dest_uri : ""));
  json_object_object_add (o, "domain",
                          json_object_new_string (domain ? domain : ""));
  json_object_object_add (o, "ok",
                          json_object_new_boolean
                            (!vmferry_findings_blocking (f)));
  json_object_object_add (o, "errors", json_object_new_int ((int) counts[2]));
  json_object_object_add (o, "warnings",
                          json_object_new_int ((int) counts[1]));
  for (size_t i = 0; i < f->list.len; i++) {
    const struct vmferry_finding *x = &f->list.ptr[i];
    json_object *e = json_object_new_object ();
    json_object_object_add (e, "severity",
                            json_object_new_string
                              (vmferry_severity_name (x->severity)));
    json_object_object_add (e, "check", json_object_new_string (x->check));
    json_object_object_add (e, "object", json_object_new_string (x->object));
    json_object_object_add (e, "message",
                            json_object_new_string (x->message));
    if (x->fix) {
      json_object *fa = json_object_new_array ();
      for (size_t k = 0; x->fix[k]; k++) {
        json_object_array_add (fa, json_object_new_string (x->fix[k]));
        json_object_array_add (all, json_object_new_string (x->fix[k]));
      }
      json_object_object_add (e, "fix", fa);
    }
    else
      json_object_object_add (e, "fix", NULL);
    json_object_object_add (e, "hint",
                            x->hint ? json_object_new_string (x->hint)
                            : NULL);
    if (x->check && strcmp (x->check, "space") == 0) {
      json_object_object_add (e, "need_bytes",
                              json_object_new_uint64 (x->need));
      json_object_object_add (e, "free_bytes",
                              json_object_new_uint64 (x->available));
    }
    json_object_array_add (arr, e);
  }
  json_object_object_add (o, "findings", arr);
  json_object_object_add (o, "fix", all);
  return o;
}

int
vmferry_findings_print (const struct vmferry_findings *f, FILE *out, bool json,
                        const char *dest_uri, const char *domain)
{
  size_t counts[3] = { 0 };

  for (size_t i = 0; i < f->list.len; i++) {
    int sev = f->list.ptr[i].severity;
    counts[sev >= 0 && sev <= 2 ? sev : 0]++;
  }

  if (json) {
    json_object *o = vmferry_findings_json (f, dest_uri, domain);
    if (o == NULL)
      return -1;
    fprintf (out, "%s\n",
             json_object_to_json_string_ext
               (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put (o);
  }
  else {
    bool any_fix = false;
    for (size_t i = 0; i < f->list.len; i++) {
      const struct vmferry_finding *x = &f->list.ptr[i];
      fprintf (out, "%s: %s: %s: %s\n", vmferry_severity_name (x->severity),
               x->check, x->object, x->message);
      if (x->fix) {
        /* vmferry-migrate takes the rewrite options itself. */
        fputs (f->check_for == VMFERRY_CHECK_FOR_IMPORT ?
               "  fix: vmferry-rewrite" : "  fix: add", out);
        for (size_t k = 0; x->fix[k]; k++) {
          fputc (' ', out);
          print_word (out, x->fix[k]);
        }
        fputc ('\n', out);
        any_fix = true;
      }
      if (x->hint)
        fprintf (out, "  %s%s\n", x->fix ? "" : "fix: ", x->hint);
    }
    if (!vmferry_findings_blocking (f))
      fprintf (out, "ok: %s can be defined and started on %s (%zu warning%s)\n",
               domain ? domain : "the domain",
               dest_uri ? dest_uri : "the destination",
               counts[1], counts[1] == 1 ? "" : "s");
    else {
      fprintf (out,
               "blocked: %zu error%s, %zu warning%s: %s cannot run on %s as it "
               "is\n",
               counts[2], counts[2] == 1 ? "" : "s", counts[1],
               counts[1] == 1 ? "" : "s",
               domain ? domain : "the domain",
               dest_uri ? dest_uri : "the destination");
      if (any_fix) {
        fputs (f->check_for == VMFERRY_CHECK_FOR_IMPORT ?
               "rewrite with: vmferry-rewrite" : "add to the command:", out);
        for (size_t i = 0; i < f->list.len; i++)
          for (size_t k = 0; f->list.ptr[i].fix && f->list.ptr[i].fix[k]; k++) {
            fputc (' ', out);
            print_word (out, f->list.ptr[i].fix[k]);
          }
        fputc ('\n', out);
      }
    }
  }
  if (fflush (out) == EOF || ferror (out)) {
    vmferry_set_error_errno (errno, "cannot write the findings");
    return -1;
  }
  return 0;
}
