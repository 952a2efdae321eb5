/* vmferry: reading members of JSON objects (json-c) the same way
 * everywhere: a member of the wrong type is as good as absent; and a
 * result object written as one line.
 */
#ifndef VMFERRY_JSON_H
#define VMFERRY_JSON_H

#include <stdio.h>

#include <json-c/json.h>

/* The string member KEY of O, or NULL if O has none (absent, or not a
 * string).  The string belongs to O.
 */
const char *vmferry_json_str (json_object *o, const char *key);

/* O on one line of OUT (a caller reads the last line of stdout), '/'
 * unescaped, flushed.  -1 with the error set when it cannot be written.
 */
int vmferry_json_print_line (FILE *out, json_object *o);

#endif
