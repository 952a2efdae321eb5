/* libFuzzer harness: the stream's manifest (formats/manifest.c), the
 * JSON every reader of a stream parses first and that names the files an
 * importer makes.  Built with -DVMFERRY_FUZZ=ON (clang) and run by ctest
 * (fuzz/fuzz_manifest); seeds in tests/fuzz/seeds/fuzz_manifest.
 *
 * Invariants (an abort is a finding): a manifest that parses is written
 * out by the one emitter as a text that parses again, to the same files;
 * every name it accepted is a safe path component (formats/names.h).
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "manifest.h"
#include "names.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
invariant (bool ok, const char *what)
{
  if (!ok) {
    fprintf (stderr, "fuzz_manifest: %s (%s)\n", what, vmferry_get_error ());
    abort ();
  }
}

static bool
same_str (const char *a, const char *b)
{
  return (a == NULL && b == NULL) || (a && b && strcmp (a, b) == 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct vmferry_manifest *m = NULL, *again = NULL;
  char *text;

  if (vmferry_manifest_parse ((const char *) data, size, "fuzz", &m) < 0)
    return 0;
  for (size_t i = 0; i < m->nr_files; i++) {
    const struct vmferry_manifest_file *f = &m->files[i];
    invariant (f->role == VMFERRY_MANIFEST_TPM
               ? vmferry_name_relpath_ok (f->name, VMFERRY_NAME_MAX_PARTS, 0)
               : vmferry_name_ok (f->name, 0), "an unsafe file name was accepted");
    invariant (f->volume == NULL || vmferry_name_ok (f->volume, 0),
               "an unsafe volume name was accepted");
    invariant (f->backing < (int) i, "a backing index not below its file");
  }
  text = vmferry_manifest_to_json (m);
  invariant (text != NULL, "an accepted manifest cannot be written out");
  invariant (vmferry_manifest_parse (text, strlen (text), "again", &again) == 0,
             "a manifest written out does not parse again");
  invariant (again->nr_files == m->nr_files &&
             same_str (again->domain_name, m->domain_name) &&
             same_str (again->domain_uuid, m->domain_uuid),
             "a manifest written out parses as another one");
  for (size_t i = 0; i < m->nr_files; i++) {
    const struct vmferry_manifest_file *f = &m->files[i], *g = &again->files[i];
    invariant (f->role == g->role && same_str (f->name, g->name) &&
               same_str (f->source_path, g->source_path) &&
               same_str (f->format, g->format) && f->size == g->size &&
               f->allocated == g->allocated && f->backing == g->backing &&
               same_str (f->pool, g->pool) && same_str (f->volume, g->volume) &&
               same_str (f->source_identity, g->source_identity),
               "a file written out parses as another one");
  }
  free (text);
  vmferry_manifest_free (again);
  vmferry_manifest_free (m);
  return 0;
}
