/* libFuzzer harness: domain XML (lib/domain.c) as it arrives in a
 * stream.  Built with -DVMFERRY_FUZZ=ON (clang) and run by ctest
 * (fuzz/fuzz_domain); seeds in tests/fuzz/seeds/fuzz_domain.
 *
 * The input is parsed with vmferry_domain_parse; a document that parses
 * has its files listed (with and without the read-only ones), its name
 * and UUID read, and every listed file pointed at a path in a target
 * directory, as the importer does.
 *
 * Invariants (an abort is a finding): what vmferry_domain_to_string
 * writes parses again and lists the same number of files, before and
 * after the paths are changed (rewrite and import write XML that import
 * and define read back).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
invariant (bool ok, const char *what)
{
  if (!ok) {
    fprintf (stderr, "fuzz_domain: %s (%s)\n", what, vmferry_get_error ());
    abort ();
  }
}

/* Files in DOC, or -1 if it cannot list them. */
static long
count_files (xmlDocPtr doc, bool include_readonly)
{
  struct vmferry_domain_file *files;
  size_t n;

  if (vmferry_domain_files (doc, include_readonly, &files, &n) < 0)
    return -1;
  vmferry_domain_files_free (files, n);
  return (long) n;
}

/* DOC written out parses again, with as many files. */
static void
reparse (xmlDocPtr doc, long nr_files)
{
  char *text = vmferry_domain_to_string (doc);
  xmlDocPtr again;

  invariant (text != NULL, "vmferry_domain_to_string failed");
  again = vmferry_domain_parse (text, strlen (text), "written out");
  invariant (again != NULL, "XML written out does not parse again");
  invariant (count_files (again, true) == nr_files,
             "XML written out lists other files");
  xmlFreeDoc (again);
  free (text);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct vmferry_domain_file *files;
  xmlDocPtr doc;
  size_t n;
  char uuid[37];
  char *s;
  long nr;

  doc = vmferry_domain_parse ((const char *) data, size, "fuzz.xml");
  if (doc == NULL)
    return 0;

  free (vmferry_domain_get_name (doc));
  s = vmferry_domain_get_uuid (doc);
  if (s != NULL)
    vmferry_uuid_canonical (s, uuid);
  free (s);
  count_files (doc, false);
  nr = count_files (doc, true);
  reparse (doc, nr);

  if (vmferry_domain_files (doc, true, &files, &n) == 0) {
    for (size_t i = 0; i < n; i++) {
      char path[64];

      snprintf (path, sizeof path, "/var/lib/libvirt/images/fuzz-%zu", i);
      vmferry_domain_set_path (doc, &files[i], path,
                               files[i].block ? VMFERRY_DOMAIN_PATH_BLOCK : 0);
    }
    vmferry_domain_files_free (files, n);
    reparse (doc, nr);
  }
  xmlFreeDoc (doc);
  return 0;
}
