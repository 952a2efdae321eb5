/* vmferry: reading members of JSON objects (json-c) the same way
 * everywhere: a member of the wrong type is as good as absent.
 */
#ifndef VMFERRY_JSON_H
#define VMFERRY_JSON_H

#include <json-c/json.h>

/* The string member KEY of O, or NULL if O has none (absent, or not a
 * string).  The string belongs to O.
 */
const char *vmferry_json_str (json_object *o, const char *key);

#endif
