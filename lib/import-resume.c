/* vmferry: an import's resume state (see import-int.h and resume.h):
 * the state file, the syncer, the claims of what was written, and a
 * resumed stream or a resume query met against them.
 */
#include "config.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "digest.h"
#include "domain.h"
#include "error.h"
#include "extent.h"
#include "import-int.h"
#include "log.h"
#include "resume.h"
#include "virt.h"

/* How often a resumable import makes its progress durable: fdatasync the
 * file being written and record the offset in the resume state.  That is
 * done by a thread of its own (the syncer), so that the collector never
 * waits for the disk and the workers never run far ahead of it; every
 * record the collector has seen is claimed in the .written file
 * (resume.h).  So an import killed where it cannot sync loses only what
 * was in flight, if the data is still there when it resumes; a cut link
 * or a signal that can be caught loses nothing it received whole; and a
 * crash of the machine loses at most a little more than this.
 */
#define SYNC_BYTES ((uint64_t) 16 * 1024 * 1024)
#define SYNC_SECONDS 1.0

/* How long an import waits for another one of the same domain to end. */
#define LOCK_WAIT_SECONDS 60

/* Record file IDX's durable offset and write the state; claims that end
 * below the offset go.  With IDX -1 only what else changed (a new TPM
 * directory, the token).  Called from the reader thread, the collector
 * and the syncer.  The text is taken under st_lock, the file written and
 * synced outside it, so the collector claiming records does not wait for
 * the disk.
 */
int
vmferry_import_save_state (struct importer *im, int idx, uint64_t offset)
{
  CLEANUP_FREE char *text = NULL;
  int r;

  if (!im->keep_state)
    return 0;
  struct vmferry_resume_file *rf = NULL;

  pthread_mutex_lock (&im->save_lock);
  pthread_mutex_lock (&im->st_lock);
  if (idx >= 0) {
    const struct import_file *f = &im->files[idx];
    rf = &im->st.files[idx];
    if (f->tmp && f->role != VMFERRY_ROLE_TPM &&
        (rf->tmp == NULL || strcmp (rf->tmp, f->tmp) != 0)) {
      free (rf->tmp);
      rf->tmp = strdup (f->tmp);
    }
    if (rf->tmp == NULL)
      rf = NULL;
  }
  /* The state file gets the new offset; the claims (the .written file,
   * which the collector may rewrite meanwhile) keep the old one and the
   * ranges above it until the state file has it: a kill in between
   * leaves claims that still lead up to the state's offset.
   */
  if (rf) {
    uint64_t old = rf->offset;
    rf->offset = offset;
    text = vmferry_resume_text (&im->st);
    rf->offset = old;
  }
  else
    text = vmferry_resume_text (&im->st);
  pthread_mutex_unlock (&im->st_lock);
  r = text ? vmferry_resume_save_text (&im->tgt, im->state_file, text) : -1;
  if (r == 0 && rf) {
    size_t k = 0;

    pthread_mutex_lock (&im->st_lock);
    rf->offset = offset;
    while (k < rf->nr_claims && rf->claims[k].end <= offset)
      k++;
    rf->nr_claims -= k;
    memmove (rf->claims, rf->claims + k, rf->nr_claims * sizeof rf->claims[0]);
    assert (vmferry_resume_claims_ordered (rf));
    pthread_mutex_unlock (&im->st_lock);
  }
  pthread_mutex_unlock (&im->save_lock);
  return r;
}

/* Rewrite the .written file from st; st_lock held. */
static int
write_claims_locked (struct importer *im)
{
  if (im->written_fd < 0) {
    im->written_fd = vmferry_resume_create_written (&im->tgt, im->written_file);
    if (im->written_fd < 0)
      return -1;
  }
  return vmferry_resume_write_claims (im->written_fd, im->written_file,
                                      &im->st);
}

/* The syncer: fdatasync the file the collector asks for, record what is
 * then durable, and claim the rest anew.  One request at a time.
 */
static void *
syncer_thread (void *arg)
{
  struct importer *im = arg;

  pthread_mutex_lock (&im->st_lock);
  for (;;) {
    int idx, fd, r;
    uint64_t off;

    while (im->sync_idx < 0 && !im->sync_stop)
      pthread_cond_wait (&im->st_cond, &im->st_lock);
    if (im->sync_idx < 0)
      break;
    idx = im->sync_idx;
    off = im->sync_offset;
    fd = im->files[idx].fd;
    pthread_mutex_unlock (&im->st_lock);
    if (fdatasync (fd) < 0) {
      vmferry_set_error_errno (errno, "%s/%s: fdatasync", im->dir,
                               im->files[idx].tmp);
      r = -1;
    }
    else
      r = vmferry_import_save_state (im, idx, off);
    pthread_mutex_lock (&im->st_lock);
    if (r == 0)
      r = write_claims_locked (im);
    if (r < 0 && !im->sync_failed) {
      im->sync_failed = true;
      vmferry_save_error (&im->sync_error);
    }
    im->sync_idx = -1;
    pthread_cond_broadcast (&im->st_cond);
  }
  pthread_mutex_unlock (&im->st_lock);
  return NULL;
}

int
vmferry_import_syncer_start (struct importer *im)
{
  int err;

  im->sync_idx = -1;
  err = pthread_create (&im->syncer, NULL, syncer_thread, im);
  if (err) {
    vmferry_set_error_errno (err, "pthread_create");
    return -1;
  }
  im->syncer_started = true;
  return 0;
}

/* Wait until the syncer has done what was asked (STOP: and end it).
 * Returns -1 with its error set if it failed.
 */
int
vmferry_import_syncer_wait (struct importer *im, bool stop)
{
  int r = 0;

  if (!im->syncer_started)
    return 0;
  pthread_mutex_lock (&im->st_lock);
  if (stop) {
    im->sync_stop = true;
    pthread_cond_broadcast (&im->st_cond);
  }
  while (im->sync_idx >= 0)
    pthread_cond_wait (&im->st_cond, &im->st_lock);
  if (im->sync_failed) {
    vmferry_restore_saved_error (&im->sync_error);
    r = -1;
  }
  pthread_mutex_unlock (&im->st_lock);
  if (stop) {
    pthread_join (im->syncer, NULL);
    im->syncer_started = false;
  }
  return r;
}

/* In the collector, for every data record of file F: add it to the
 * file's digest (a fresh file's) and, with CLAIM, to the open segment's
 * (see vmferry_import_claim_record), in one pass over the bytes where both take
 * all of them.  A resumed file's first record may begin below its durable
 * offset: the segment takes only what is above.
 */
int
vmferry_import_digest_record (struct importer *im, struct import_file *f,
                              bool claim, uint64_t offset,
                              const unsigned char *data, uint64_t len)
{
  int r = 0;

  if (claim && f->wdg == NULL && (f->wdg = vmferry_digest_new ()) == NULL)
    return -1;
  /* The map goes with the fresh file's digest (a resumed file's is read
   * back at its end).
   */
  if (claim && f->dg && offset >= f->seg_start)
    r = vmferry_digest_update_map (f->dg, f->wdg, f->map, offset, data, len);
  else {
    uint64_t skip = offset < f->seg_start ? f->seg_start - offset : 0;

    if (f->dg)
      r = vmferry_digest_update_map (f->dg, NULL, f->map, offset, data, len);
    if (r == 0 && claim && skip < len)
      r = vmferry_digest_update (f->wdg, offset + skip, data + skip,
                                 len - skip);
  }
  if (r < 0)
    vmferry_prefix_error ("%s: file %s", im->opts->in_name, f->name);
  return r;
}

/* In the collector, for every data record of file IDX, after
 * vmferry_import_digest_record: claim the open segment in the .written file, so
 * that an import killed before it could sync leaves ranges the next one can
 * read back, check and keep (verify_written).  When enough was written
 * (SYNC_BYTES or SYNC_SECONDS) and the syncer is free, close the segment
 * and ask the syncer to make it durable; its claim stays until that is
 * done.
 */
int
vmferry_import_claim_record (struct importer *im, uint32_t idx, uint64_t offset,
                             uint64_t len)
{
  struct import_file *f = &im->files[idx];
  struct vmferry_resume_file *rf;
  struct vmferry_resume_claim open;
  double now = vmferry_monotonic ();
  size_t k;
  int r;

  /* Below the durable offset (a resumed file): nothing new to claim. */
  if (offset + len <= f->seg_start)
    return 0;
  open.end = f->written_end;
  vmferry_digest_final (f->wdg, open.digest);

  pthread_mutex_lock (&im->st_lock);
  if (im->sync_failed) {
    vmferry_restore_saved_error (&im->sync_error);
    pthread_mutex_unlock (&im->st_lock);
    return -1;
  }
  rf = &im->st.files[idx];
  /* The claims of segments before the open one (their sync is pending),
   * then the open one.
   */
  for (k = 0; k < rf->nr_claims && rf->claims[k].end <= f->seg_start; k++)
    ;
  if (rf->tmp == NULL || k >= VMFERRY_RESUME_MAX_CLAIMS ||
      (k == 0 ? rf->offset : rf->claims[k - 1].end) != f->seg_start) {
    pthread_mutex_unlock (&im->st_lock);
    vmferry_set_error ("%s: file %s: claims out of step (internal error)",
                       im->opts->in_name, f->name);
    return -1;
  }
  rf->claims[k] = open;
  rf->nr_claims = k + 1;
  assert (vmferry_resume_claims_ordered (rf));
  if (im->sync_idx < 0 && !im->sync_stop &&
      (f->written_end - f->seg_start >= SYNC_BYTES ||
       now - f->seg_at >= SYNC_SECONDS)) {
    im->sync_idx = idx;
    im->sync_offset = f->written_end;
    pthread_cond_broadcast (&im->st_cond);
    f->seg_start = f->written_end;
    f->seg_at = now;
    vmferry_digest_free (f->wdg);
    f->wdg = NULL;
  }
  r = write_claims_locked (im);
  pthread_mutex_unlock (&im->st_lock);
  return r;
}

/* A resume query: read back the ranges the .written file claims (written
 * by an import that was killed before it could sync them), in order, and
 * keep those that have the digest the stream gave them: sync them and
 * count them as held.  From the first that does not match on, nothing is
 * held.
 */
static int
verify_written (struct importer *im, struct vmferry_resume_state *st)
{
  unsigned kept = 0;

  if (vmferry_resume_load_written (&im->tgt, im->written_file, st) == 0)
    return vmferry_target_unlink (&im->tgt, im->written_file);
  for (size_t i = 0; i < st->nr_files; i++) {
    struct vmferry_resume_file *rf = &st->files[i];
    CLEANUP_FREE char *p = NULL;
    CLEANUP_CLOSE int fd = -1;
    uint64_t at = rf->offset;

    if (rf->nr_claims == 0)
      continue;
    p = vmferry_target_path (&im->tgt, rf->tmp);
    if (p == NULL)
      return -1;
    fd = vmferry_target_open_file (&im->tgt, rf->tmp, O_RDONLY);
    for (size_t k = 0; fd >= 0 && k < rf->nr_claims; k++) {
      unsigned char got[VMFERRY_DIGEST_SIZE];
      if (vmferry_digest_fd_range (fd, p, at, rf->claims[k].end, got) < 0 ||
          memcmp (got, rf->claims[k].digest, sizeof got) != 0)
        break;
      at = rf->claims[k].end;
    }
    if (at > rf->offset && fdatasync (fd) == 0) {
      vmferry_verbose ("%s: bytes %" PRIu64 " to %" PRIu64
                       ", written but not synced "
                       "when the import was cut, read back as sent: kept",
                       rf->name, rf->offset, at);
      rf->offset = at;
      kept++;
    }
    if (at < rf->claims[rf->nr_claims - 1].end)
      vmferry_verbose ("%s: bytes %" PRIu64 " to %" PRIu64
                       ", written but not synced when the import was cut, did "
                       "not read back as sent: sent again",
                       rf->name, at, rf->claims[rf->nr_claims - 1].end);
    rf->nr_claims = 0;
  }
  if (kept && vmferry_resume_save (&im->tgt, im->state_file, st) < 0)
    return -1;
  return vmferry_target_unlink (&im->tgt, im->written_file);
}

/* Write the answer to a resume query: ST's offsets, or (ST NULL) no
 * resume and REASON, or (DONE) that the move is already complete.
 */
int
vmferry_import_answer_query (struct importer *im,
                             const struct vmferry_resume_state *st,
                             const char *reason, bool done)
{
  CLEANUP_FREE char *a = done ? vmferry_resume_answer_done (reason)
                              : vmferry_resume_answer (st, reason);
  size_t len;

  if (a == NULL)
    return -1;
  vmferry_verbose ("resume query: %s", a);
  len = strlen (a);
  a[len] = '\n';               /* the NUL goes: write exactly len + 1 */
  if (vmferry_write_full (im->opts->out_fd, "resume query", a, len + 1) < 0)
    return -1;
  im->query_done = true;
  return 0;
}

/* Whether the temporary files of a loaded state are there, as it says. */
static int
check_state_files (struct importer *im, const struct vmferry_resume_state *st)
{
  if (st->nr_files != im->nr_files) {
    vmferry_set_error ("it has %zu files, the stream %zu", st->nr_files,
                       im->nr_files);
    return -1;
  }
  for (size_t i = 0; i < st->nr_files; i++) {
    const struct vmferry_resume_file *rf = &st->files[i];
    struct stat sb;

    if (strcmp (rf->name, im->files[i].name) != 0 ||
        rf->size != im->files[i].size) {
      vmferry_set_error ("file %zu is %s, the stream has %s", i, rf->name,
                         im->files[i].name);
      return -1;
    }
    if (rf->tmp == NULL)
      continue;
    if (vmferry_target_stat (&im->tgt, rf->tmp, &sb) != 1 ||
        !S_ISREG (sb.st_mode) || sb.st_nlink != 1 ||
        (uint64_t) sb.st_size != rf->size) {
      vmferry_set_error ("its temporary file %s/%s is missing or not what it "
                         "says", im->dir, rf->tmp);
      return -1;
    }
  }
  return 0;
}

/* A damaged state cannot say which files are its own: remove the
 * temporary files of this stream's names (the lock of this domain's
 * transfers is held, so no other import is writing them).
 */
static void
remove_stale_temporaries (struct importer *im)
{
  DIR *d = vmferry_target_opendir (&im->tgt);
  struct dirent *e;

  if (d == NULL)
    return;
  while ((e = readdir (d)) != NULL)
    for (size_t i = 0; i < im->nr_files; i++)
      if (im->files[i].role != VMFERRY_ROLE_TPM &&
          vmferry_resume_tmp_name_ok (im->files[i].name, e->d_name)) {
        vmferry_verbose ("removing %s/%s", im->dir, e->d_name);
        vmferry_target_unlink (&im->tgt, e->d_name);
      }
  closedir (d);
  /* The temporary TPM directories of this domain's TPM state too. */
  if (im->tpm_dir && im->tpm_root.fd >= 0 &&
      (d = vmferry_target_opendir (&im->tpm_root)) != NULL) {
    size_t n = strlen (im->tpm_dir);
    while ((e = readdir (d)) != NULL)
      if (e->d_name[0] == '.' && strncmp (e->d_name + 1, im->tpm_dir, n) == 0 &&
          strncmp (e->d_name + 1 + n, ".vmferry-", 9) == 0 &&
          strlen (e->d_name + 1 + n + 9) == 6) {
        vmferry_verbose ("removing %s/%s", im->tpm_root.path, e->d_name);
        vmferry_target_remove_tree (&im->tpm_root, e->d_name);
      }
    closedir (d);
  }
}

/* Take the lock of this domain's transfers into the target directory
 * and read what an earlier run left there (into *OLD; the return value
 * of vmferry_resume_load; -2 when the lock is held by an import that is
 * running, or a placement cannot be recovered).  A run killed while
 * placing is finished or undone first (place.c), so what is left is a
 * transfer or nothing.
 */
int
vmferry_import_load_state (struct importer *im,
                           struct vmferry_resume_state *old)
{
  int r;

  im->state_file = vmferry_resume_name (im->name, "json");
  im->written_file = vmferry_resume_name (im->name, "written");
  if (im->state_file == NULL || im->written_file == NULL)
    return -1;
  im->lock_fd = vmferry_resume_lock (&im->tgt, im->name, LOCK_WAIT_SECONDS);
  if (im->lock_fd < 0)
    /* Not a damaged state: another import's, running.  Starting afresh
     * would remove its state and temporary files under it.
     */
    return -2;
  vmferry_resume_remove_stale (&im->tgt, im->name);
  r = vmferry_resume_load (&im->tgt, im->state_file, old);
  if (r == 1 && old->phase == VMFERRY_RESUME_PLACE) {
    int k;
    if (old->define && im->conn == NULL &&
        !(im->conn = vmferry_virt_connect (im->opts->uri)))
      goto recover_failed;
    k = vmferry_place_recover (im, old);
    /* It may have opened the journal's TPM root: this run's own again. */
    vmferry_target_close (&im->tpm_root);
    if (k < 0 || vmferry_import_open_tpm_root (im) < 0)
      goto recover_failed;
    if (k > 0) {
      vmferry_resume_state_free (old);
      return 0;
    }
  }
  /* Volumes the earlier run made in a block pool are never resumed into:
   * whatever this run does, it makes its own.
   */
  if (r == 1 && !im->opts->resume_query &&
      vmferry_import_pool_delete (im, old) < 0) {
    vmferry_prefix_error ("%s/%s: the interrupted transfer of %s is kept",
                          im->dir, im->state_file, im->name);
    vmferry_resume_state_free (old);
    return -2;
  }
  return r;
 recover_failed:
  vmferry_prefix_error ("%s/%s: an import of domain %s was killed while it "
                        "put its files in place, and that cannot be finished "
                        "or undone now", im->dir, im->state_file, im->name);
  vmferry_resume_state_free (old);
  return -2;
}

/* A fresh state for this stream: names every temporary file before it
 * is made.
 */
static int
fresh_state (struct importer *im)
{
  memset (&im->st, 0, sizeof im->st);
  memcpy (im->st.stream_id, im->stream_id, sizeof im->stream_id);
  im->st.name = strdup (im->name);
  im->st.files = calloc (im->nr_files ? im->nr_files : 1, sizeof *im->st.files);
  if (im->st.name == NULL || im->st.files == NULL) {
    vmferry_set_error_errno (ENOMEM, "resume");
    return -1;
  }
  im->st.nr_files = im->nr_files;
  im->st.tpm_in_swtpm = im->opts->define;
  for (size_t i = 0; i < im->nr_files; i++) {
    im->st.files[i].size = im->files[i].size;
    if (!(im->st.files[i].name = strdup (im->files[i].name))) {
      vmferry_set_error_errno (ENOMEM, "resume");
      return -1;
    }
  }
  if (vmferry_resume_new_token (im->st.token) < 0)
    return -1;
  im->keep_state = true;
  return vmferry_import_save_state (im, -1, 0);
}

/* Decide, with what an earlier run left (OLD, R from
 * vmferry_import_load_state), how this stream goes on: a resume query is
 * answered; a RESUME stream takes over the state it was built for or is
 * refused; a fresh stream replaces whatever is there with a state of its own.
 */
int
vmferry_import_setup_resume (struct importer *im,
                             struct vmferry_resume_state *old, int r)
{
  const struct vmferry_import_opts *opts = im->opts;
  bool resume_stream = im->mandatory & VMFERRY_FEATURE_RESUME;
  bool asks = resume_stream || opts->resume_query;
  char reason[VMFERRY_ERROR_MAX];

  /* What a kill left on a device: its earlier content is gone and the
   * disk there is incomplete; whatever this run does, it is written
   * again (device writes do not resume).
   */
  for (size_t i = 0; r == 1 && i < old->nr_files; i++)
    if (old->files[i].device)
      vmferry_notice ("%s/%s: an earlier import of domain %s was stopped "
                      "while it wrote file %s onto %s: the device holds an "
                      "incomplete disk; it is written again in full",
                      im->dir, im->state_file, im->name, old->files[i].name,
                      old->files[i].device);

  if (!im->resumable_id && asks) {
    snprintf (reason, sizeof reason, "the stream carries no source identities "
              "(written by an older vmferry-export)");
    vmferry_resume_state_free (old);
    goto refuse;
  }
  if (r < 0) {
    snprintf (reason, sizeof reason, "%s", vmferry_get_error ());
    if (asks)
      goto refuse;
    vmferry_notice ("%s; starting afresh", reason);
    remove_stale_temporaries (im);
    vmferry_target_unlink (&im->tgt, im->state_file);
    vmferry_target_unlink (&im->tgt, im->written_file);
  }
  else if (r == 0) {
    snprintf (reason, sizeof reason, "%s: no interrupted transfer of domain %s "
              "(finished or aborted?)", im->dir, im->name);
    if (asks)
      goto refuse;
  }
  else {
    bool match = strcmp (old->stream_id, im->stream_id) == 0 &&
      strcmp (old->name, im->name) == 0;
    struct vmferry_saved_error why = { .msg = "" };

    if (match && check_state_files (im, old) < 0) {
      vmferry_save_error (&why);
      match = false;
    }
    if (!match) {
      snprintf (reason, sizeof reason,
                "%s/%s: the interrupted transfer there belongs "
                "to another stream (%s)",
                im->dir, im->state_file,
                why.msg[0]
                    ? why.msg
                    : "another domain, or the source disks changed since");
      if (asks) {
        vmferry_resume_state_free (old);
        goto refuse;
      }
      vmferry_notice ("%s: removed, starting afresh", reason);
      vmferry_resume_discard (&im->tgt, old->tpm_tmp ? &im->tpm_root : NULL,
                              old);
      vmferry_resume_state_free (old);
    }
    else if (opts->resume_query) {
      int k = verify_written (im, old);
      if (k == 0)
        k = vmferry_import_answer_query (im, old, NULL, false);
      vmferry_resume_state_free (old);
      return k;
    }
    else if (!resume_stream) {
      /* The sender chose to start over (or this import is not resumable). */
      vmferry_verbose ("%s/%s: a fresh stream replaces the interrupted "
                       "transfer", im->dir, im->state_file);
      vmferry_resume_discard (&im->tgt, old->tpm_tmp ? &im->tpm_root : NULL,
                              old);
      vmferry_resume_state_free (old);
    }
    else if (memcmp (old->token, im->token, VMFERRY_RESUME_TOKEN_LEN) != 0) {
      snprintf (reason, sizeof reason,
                "%s/%s: the resume state changed since the "
                "sender asked (another sender?)",
                im->dir, im->state_file);
      vmferry_resume_state_free (old);
      goto refuse;
    }
    else {
      /* Take it over: its files continue; a new token so that no other
       * stream built from the same answer is accepted.
       */
      uint64_t held = 0;
      im->st = *old;
      memset (old, 0, sizeof *old);
      /* The query checked the claims there were; this run makes its own. */
      vmferry_target_unlink (&im->tgt, im->written_file);
      if (im->st.tpm_tmp) {
        /* TPM state is small: always sent again, into a new directory. */
        vmferry_target_remove_tree (&im->tpm_root, im->st.tpm_tmp);
        free (im->st.tpm_tmp);
        im->st.tpm_tmp = NULL;
      }
      for (size_t i = 0; i < im->nr_files; i++) {
        struct import_file *f = &im->files[i];
        struct vmferry_resume_file *rf = &im->st.files[i];
        if (rf->tmp == NULL)
          continue;
        if (!(f->tmp = strdup (rf->tmp))) {
          vmferry_set_error_errno (ENOMEM, "resume");
          return -1;
        }
        f->resume_offset = rf->offset;
        held += rf->offset == VMFERRY_RESUME_COMPLETE ? f->size : rf->offset;
      }
      im->keep_state = true;
      im->resumable = true;
      if (vmferry_resume_new_token (im->st.token) < 0 ||
          vmferry_import_save_state (im, -1, 0) < 0)
        return -1;
      vmferry_verbose ("resuming the transfer of %s: %" PRIu64
                       " bytes already held",
                       im->name, held);
      return 0;
    }
  }

  if (asks) {
    snprintf (reason, sizeof reason, "no resume state");
    goto refuse;
  }
  im->resumable = opts->resumable && im->resumable_id;
  if (opts->resumable && !im->resumable_id)
    vmferry_verbose ("not resumable: the stream carries no source identities");
  return fresh_state (im);

 refuse:
  if (opts->resume_query)
    return vmferry_import_answer_query (im, NULL, reason, false);
  vmferry_set_error ("%s: a resumed stream, but %s; nothing was changed "
                     "(run the sender again: it will start afresh)",
                     opts->in_name, reason);
  return -1;
}
