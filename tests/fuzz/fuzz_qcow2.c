/* libFuzzer harness: qcow2 headers (formats/qcow2.c) of images that
 * arrive in a stream.  Built with -DVMFERRY_FUZZ=ON (clang) and run by
 * ctest (fuzz/fuzz_qcow2); seeds in tests/fuzz/seeds/fuzz_qcow2.
 *
 * The input is the image (the probe reads at most its first cluster),
 * in a memfd.  A header that probes as qcow2 is checked as the importer
 * checks it (vmferry_qcow2_check_carriable) and its backing file name
 * resolved against a target path as the importer would.
 *
 * Invariants (an abort is a finding): the names the probe returns are
 * NUL-terminated within their fields, and the fields it promises are in
 * range.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qcow2.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
invariant (bool ok, const char *what)
{
  if (!ok) {
    fprintf (stderr, "fuzz_qcow2: %s\n", what);
    abort ();
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static int fd = -1;
  struct vmferry_qcow2_info info;

  if (fd < 0 && (fd = memfd_create ("fuzz_qcow2", MFD_CLOEXEC)) < 0)
    abort ();
  if (ftruncate (fd, 0) < 0 ||
      pwrite (fd, data, size, 0) != (ssize_t) size)
    abort ();

  if (vmferry_qcow2_probe (fd, "fuzz.qcow2", &info) != 1)
    return 0;
  invariant (info.version == 2 || info.version == 3, "version");
  invariant (info.cluster_bits >= 9 && info.cluster_bits <= 21, "cluster_bits");
  invariant (memchr (info.backing_file, '\0', sizeof info.backing_file) != NULL,
             "backing_file is not terminated");
  invariant (memchr (info.backing_format, '\0',
                     sizeof info.backing_format) != NULL,
             "backing_format is not terminated");
  invariant (memchr (info.data_file, '\0', sizeof info.data_file) != NULL,
             "data_file is not terminated");
  invariant (info.has_backing || info.backing_file[0] == '\0',
             "a backing file name without has_backing");

  vmferry_qcow2_check_carriable (&info, "fuzz.qcow2");
  if (info.has_backing)
    free (vmferry_qcow2_backing_path ("/var/lib/libvirt/images/fuzz.qcow2",
                                      info.backing_file));
  return 0;
}
