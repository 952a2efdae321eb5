/* libFuzzer harness: resume state (lib/resume.c), which an importer
 * reads back from the target directory, where anyone who can write
 * there may have forged it, and the resume answer a sender gets from
 * the remote importer.  Built with -DVMFERRY_FUZZ=ON (clang) and run by
 * ctest (fuzz/fuzz_resume); seeds in tests/fuzz/seeds/fuzz_resume.
 *
 * Input: a state file, optionally followed by a NUL byte and a .written
 * file (without one the state file serves as both).  The state file is
 * loaded with vmferry_resume_load, the .written file then with
 * vmferry_resume_load_written; the first part is also parsed as a
 * resume answer, as the remote import's --json result (import-result.h,
 * which vmferry-migrate reads from the destination), and as a manifest
 * (formats' parser) whose stream identity is taken
 * (vmferry_resume_stream_id).
 *
 * The files are written to a private temporary directory, not a memfd:
 * the state is opened with O_NOFOLLOW, which refuses /proc/self/fd/N.
 * Their last line "check HEX" is recomputed when it has that form, or
 * nearly every mutation would stop at "check mismatch".
 *
 * Invariants (an abort is a finding): a state that loads is saved as a
 * text that loads again to the same state, and its answer parses back
 * to the same offsets.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "error.h"
#include "import-result.h"
#include "manifest.h"
#include "resume.h"
#include "target.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static char dir[PATH_MAX];
static char state_path[PATH_MAX], written_path[PATH_MAX], again_path[PATH_MAX];
/* The directory, as the importer reaches it (target.h), and the names. */
static struct vmferry_target target = { .fd = -1 };
#define STATE_FILE ".vmferry-resume-fuzz.json"
#define WRITTEN_FILE ".vmferry-resume-fuzz.written"
#define AGAIN_FILE ".vmferry-resume-again.json"

static void
remove_dir (void)
{
  unlink (state_path);
  unlink (written_path);
  unlink (again_path);
  rmdir (dir);
}

static void
setup (void)
{
  const char *tmp = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

  snprintf (dir, sizeof dir, "%s/fuzz_resume.XXXXXX", tmp);
  if (mkdtemp (dir) == NULL) {
    perror ("fuzz_resume: mkdtemp");
    abort ();
  }
  snprintf (state_path, sizeof state_path,
            "%s/.vmferry-resume-fuzz.json", dir);
  snprintf (written_path, sizeof written_path,
            "%s/.vmferry-resume-fuzz.written", dir);
  snprintf (again_path, sizeof again_path,
            "%s/.vmferry-resume-again.json", dir);
  atexit (remove_dir);
  if (vmferry_target_open (&target, dir, false, 0) < 0) {
    fprintf (stderr, "fuzz_resume: %s\n", vmferry_get_error ());
    abort ();
  }
}

/* Write BUF[0..LEN) to PATH, with its check line recomputed if its last
 * line looks like one.
 */
static void
write_file (const char *path, const uint8_t *buf, size_t len)
{
  char *text = malloc (len + 1);
  char *nl;
  int fd;

  if (text == NULL)
    abort ();
  memcpy (text, buf, len);
  text[len] = '\0';
  /* "...\ncheck " + 16 hex digits + "\n" at the very end. */
  if (len >= 24 && text[len - 1] == '\n') {
    text[len - 1] = '\0';
    nl = strrchr (text, '\n');
    text[len - 1] = '\n';
    if (nl != NULL && nl + 24 == text + len &&
        strncmp (nl + 1, "check ", 6) == 0) {
      char hex[17];
      snprintf (hex, sizeof hex, "%016" PRIx64,
                (uint64_t) XXH3_64bits (text, nl + 1 - text));
      memcpy (nl + 7, hex, 16);
    }
  }
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write (fd, text, len) != (ssize_t) len || close (fd) < 0) {
    perror (path);
    abort ();
  }
  free (text);
}

static void
invariant (bool ok, const char *what)
{
  if (!ok) {
    fprintf (stderr, "fuzz_resume: %s (%s)\n", what, vmferry_get_error ());
    abort ();
  }
}

static bool
same_state (const struct vmferry_resume_state *a,
            const struct vmferry_resume_state *b)
{
  if (strcmp (a->name, b->name) != 0 ||
      strcmp (a->stream_id, b->stream_id) != 0 ||
      memcmp (a->token, b->token, sizeof a->token) != 0 ||
      (a->tpm_tmp == NULL) != (b->tpm_tmp == NULL) ||
      (a->tpm_tmp && strcmp (a->tpm_tmp, b->tpm_tmp) != 0) ||
      a->nr_files != b->nr_files || a->phase != b->phase ||
      a->tpm_in_swtpm != b->tpm_in_swtpm || a->define != b->define ||
      a->tpm_replace != b->tpm_replace || a->tpm_dev != b->tpm_dev ||
      a->tpm_ino != b->tpm_ino ||
      (a->tpm_final == NULL) != (b->tpm_final == NULL) ||
      (a->tpm_final && strcmp (a->tpm_final, b->tpm_final) != 0) ||
      (a->uuid == NULL) != (b->uuid == NULL) ||
      (a->uuid && strcmp (a->uuid, b->uuid) != 0) ||
      (a->define_tmp == NULL) != (b->define_tmp == NULL) ||
      (a->define_tmp && strcmp (a->define_tmp, b->define_tmp) != 0) ||
      (a->aside == NULL) != (b->aside == NULL) ||
      (a->aside && strcmp (a->aside, b->aside) != 0))
    return false;
  for (size_t i = 0; i < a->nr_files; i++) {
    const struct vmferry_resume_file *f = &a->files[i], *g = &b->files[i];
    if (strcmp (f->name, g->name) != 0 ||
        (f->tmp == NULL) != (g->tmp == NULL) ||
        (f->tmp && strcmp (f->tmp, g->tmp) != 0) || f->size != g->size ||
        f->offset != g->offset || (f->final == NULL) != (g->final == NULL) ||
        (f->final && strcmp (f->final, g->final) != 0) ||
        f->dev != g->dev || f->ino != g->ino || f->replace != g->replace ||
        f->changed != g->changed ||
        (f->changed && (memcmp (f->stream_digest, g->stream_digest, 16) != 0 ||
                        memcmp (f->local_digest, g->local_digest, 16) != 0)))
      return false;
  }
  return true;
}

/* ST loaded: save it as the importer would and read it back; answer a
 * query from it as the importer would and parse that as the sender.
 */
static void
round_trip (const struct vmferry_resume_state *st)
{
  struct vmferry_resume_state again;
  struct vmferry_resume_point pt;
  char *text, *answer;

  text = vmferry_resume_text (st);
  invariant (text != NULL, "vmferry_resume_text failed");
  write_file (again_path, (const uint8_t *) text, strlen (text));
  free (text);
  invariant (vmferry_resume_load (&target, AGAIN_FILE, &again) == 1,
             "a saved state does not load again");
  invariant (same_state (st, &again), "a saved state loads as another one");
  vmferry_resume_state_free (&again);

  answer = vmferry_resume_answer (st, NULL);
  invariant (answer != NULL, "vmferry_resume_answer failed");
  invariant (vmferry_resume_parse_answer (answer, strlen (answer), &pt) == 0 &&
             pt.resume && pt.nr_files == st->nr_files,
             "an answer does not parse back");
  for (size_t i = 0; i < pt.nr_files; i++)
    invariant (pt.offsets[i] == st->files[i].offset,
               "an answer parses back to other offsets");
  vmferry_resume_point_free (&pt);
  free (answer);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const uint8_t *nul = memchr (data, '\0', size);
  size_t first = nul ? (size_t) (nul - data) : size;
  struct vmferry_resume_state st;
  struct vmferry_resume_point pt;
  char id[VMFERRY_RESUME_ID_LEN + 1];
  struct vmferry_import_result ir;
  struct vmferry_manifest *m;

  if (dir[0] == '\0')
    setup ();
  write_file (state_path, data, first);
  if (nul)
    write_file (written_path, nul + 1, size - first - 1);
  else
    write_file (written_path, data, first);

  if (vmferry_resume_load (&target, STATE_FILE, &st) == 1) {
    vmferry_resume_load_written (&target, WRITTEN_FILE, &st);
    round_trip (&st);
    vmferry_resume_state_free (&st);
  }

  if (vmferry_resume_parse_answer ((const char *) data, first, &pt) == 0)
    vmferry_resume_point_free (&pt);
  if (vmferry_import_result_parse ((const char *) data, first, &ir) == 0)
    vmferry_import_result_free (&ir);
  if (vmferry_manifest_parse ((const char *) data, first, NULL, &m) == 0) {
    vmferry_resume_stream_id (m, id);
    vmferry_manifest_free (m);
  }
  return 0;
}
