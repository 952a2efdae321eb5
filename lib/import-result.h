/* vmferry: what an import did that its caller may need to know, as one
 * JSON line (vmferry-import --json): how vmferry-migrate learns, from
 * the import it runs on the destination, what the fix-ups changed in
 * the guest there.
 */
#ifndef VMFERRY_IMPORT_RESULT_H
#define VMFERRY_IMPORT_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "guest-fixup.h"

/* The layout's version: the object's "version" member (a member is
 * added without a change of version).
 */
#define VMFERRY_IMPORT_JSON_VERSION 1
/* Most fix-ups a reader takes from an import's JSON. */
#define VMFERRY_IMPORT_MAX_FIXUPS 4096

/* Zero it before the import; vmferry_import_result_free frees what it
 * holds.
 */
struct vmferry_import_result {
  char *domain;                 /* as defined here; NULL: none imported */
  /* The fix-up step ran (an import that placed the domain): FIXUPS and
   * FIXUPS_NOT_DONE say what it did.  False: unknown (nothing was
   * imported, or it was already there).
   */
  bool fixups_known;
  struct vmferry_fixup_change *fixups;
  size_t nr_fixups;
  /* Fix-ups were needed but not made: why ("--no-fixup", or what was
   * missing); NULL when they were made or none was needed.
   */
  char *fixups_not_done;
};

void vmferry_import_result_free (struct vmferry_import_result *r);

/* R's "fixups" (an array of {"file", "change"}, or null when not known)
 * and "fixups_not_done" (a string or null) added to object O.  0, or -1
 * with the error set (out of memory).
 */
int vmferry_import_result_add_fixups (json_object *o,
                                      const struct vmferry_import_result *r);

/* Write the import's result as one JSON line to OUT: {"version",
 * "domain", "state" ("imported" or, with ALREADY, "already-there"),
 * "fixups", "fixups_not_done"}.  0, or -1 with the error set.
 */
int vmferry_import_result_json (const struct vmferry_import_result *r,
                                bool already, FILE *out);

/* Read what vmferry_import_result_json wrote: the last line of TEXT
 * (LEN bytes, the import's standard output) that is a JSON object.  It
 * comes from another host, so it is checked: version 1, "fixups" null
 * or an array of at most VMFERRY_IMPORT_MAX_FIXUPS objects whose "file"
 * and "change" are strings of at most 4096 bytes without control
 * characters, "fixups_not_done" null or such a string.  0 with R filled
 * (free it with vmferry_import_result_free), or -1 with the error set.
 */
int vmferry_import_result_parse (const char *text, size_t len,
                                 struct vmferry_import_result *r);

#endif
