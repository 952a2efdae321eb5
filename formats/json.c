/* vmferry: reading members of JSON objects (see json.h). */
#include "config.h"

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
