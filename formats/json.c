/* vmferry: reading members of JSON objects (see json.h). */
#include "config.h"

#include <errno.h>

#include "error.h"
#include "json.h"

const char *
vmferry_json_str (json_object *o, const char *key)
{
  json_object *v;

  if (!json_object_object_get_ex (o, key, &v) ||
      !json_object_is_type (v, json_type_string))
    return NULL;
  return json_object_get_string (v);
}

int
vmferry_json_print_line (FILE *out, json_object *o)
{
  if (fprintf (out, "%s\n",
               json_object_to_json_string_ext
                 (o, JSON_C_TO_STRING_PLAIN |
                  JSON_C_TO_STRING_NOSLASHESCAPE)) < 0 ||
      fflush (out) == EOF) {
    vmferry_set_error_errno (errno, "cannot write the JSON result");
    return -1;
  }
  return 0;
}
