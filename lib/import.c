/* vmferry: import a stream on this host (see import.h).
 *
 * The calling thread reads and checks records; workers decompress and
 * write data records in parallel (pwrite at the record's offset into a
 * sparse temporary file, with O_DIRECT where aligned); the collector,
 * which sees jobs in stream order, verifies each file when its FILE_END
 * arrives (from the digest of what it saw written, or, for a resumed
 * file, by reading it back from disk) after fdatasync.  A resumable
 * import has one more thread, the syncer, that makes progress durable
 * while the others go on (see SYNC_BYTES).  Only when END has arrived and
 * every file verified does place.c put the files in place and define the
 * domain, as one journaled step.
 *
 * Every file below the target directory is reached through its
 * struct vmferry_target (target.h): by names checked once, relative to
 * the directory's fd, never through a link.  A state file names every
 * temporary file before it is made, so nothing a kill leaves is unknown
 * to the next run.
 */
#include "config.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <spawn.h>
#include <unistd.h>

#include <json-c/json.h>
#include <xxhash.h>
#include <libvirt/virterror.h>

#include "cleanup.h"
#include "digest.h"
#include "domain.h"
#include "error.h"
#include "extent.h"
#include "fault.h"
#include "import-int.h"
#include "log.h"
#include "names.h"
#include "pipeline.h"
#include "progress.h"
#include "qcow2.h"
#include "quit.h"
#include "stripe.h"
#include "stream.h"
#include "validate.h"
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
/* O_DIRECT writes: buffer, offset and length aligned to this (the
 * largest logical block size in use), for disks of at least this size.
 */
#define DIRECT_ALIGN 4096
#define DIRECT_MIN_SIZE ((uint64_t) 64 * 1024 * 1024)
/* How long an import waits for another one of the same domain to end. */
#define LOCK_WAIT_SECONDS 60
/* Where libvirt keeps images when nothing else is said. */
#define DEFAULT_IMAGES_DIR "/var/lib/libvirt/images"

extern char **environ;

struct job {
  bool end;                     /* FILE_END: verify; else DATA: write */
  struct vmferry_record rec;
  unsigned char *in;            /* payload copy */
  unsigned char *out;           /* decompressed */
  unsigned char digest[16];
};

/* The bar covers the whole stream: its size is in the manifest. */
static void
progress_total (struct vmferry_progress *p, const struct vmferry_manifest *m)
{
  uint64_t total = 0;

  for (size_t i = 0; i < m->nr_files; i++)
    total += m->files[i].size;
  vmferry_progress_set_total (p, m->domain_name, total, m->nr_files);
}

/* The files of the stream, from its manifest as the validator parsed it
 * (formats/manifest.h: every name already a safe component, or for TPM
 * state a safe relative path).  A disk that is a volume of a pool is
 * placed as that volume.
 */
static int
files_from_manifest (struct importer *im, const struct vmferry_manifest *m)
{
  im->files = calloc (m->nr_files ? m->nr_files : 1, sizeof *im->files);
  if (im->files == NULL)
    goto nomem;
  for (size_t i = 0; i < m->nr_files; i++) {
    const struct vmferry_manifest_file *mf = &m->files[i];
    struct import_file *f = &im->files[i];

    f->fd = f->dfd = -1;
    im->nr_files = i + 1;
    f->role = (int) mf->role;
    f->backing = mf->backing;
    f->size = mf->size;
    f->allocated = mf->allocated;
    f->name = strdup (mf->volume ? mf->volume : mf->name);
    f->source_path = strdup (mf->source_path);
    f->format = strdup (mf->format);
    if (!f->name || !f->source_path || !f->format)
      goto nomem;
    if (mf->volume && (!(f->pool = strdup (mf->pool)) || !(f->volume = strdup (mf->volume))))
      goto nomem;
  }
  return 0;
 nomem:
  vmferry_set_error_errno (ENOMEM, "manifest");
  return -1;
}

/* With --name NEW the copy must not share a file with the original: each
 * file follows the new name.  A name that starts with the old domain
 * name gets the new one in its place ("web01.qcow2" -> "web01-dr.qcow2",
 * "web01_VARS.fd" -> "web01-dr_VARS.fd"); any other gets it in front
 * ("data.img" -> "web01-dr-data.img").
 */
char *
vmferry_import_follow_name (const char *file, const char *old, const char *new)
{
  size_t n = strlen (old);
  char *r;

  if (strncmp (file, old, n) == 0 && file[n] != '\0')
    r = asprintf (&r, "%s%s", new, file + n) < 0 ? NULL : r;
  else
    r = asprintf (&r, "%s-%s", new, file) < 0 ? NULL : r;
  if (r == NULL)
    vmferry_set_error_errno (ENOMEM, "import");
  else if (!vmferry_name_ok (r, 0)) {
    vmferry_set_error ("%s: the name it would take with --name %s, %s, cannot "
                       "be a file name", file, new, r);
    free (r);
    r = NULL;
  }
  return r;
}

/* Fix the name and UUID the domain will have, and every file's final
 * name, from the stream and the options.  Nothing is checked against the
 * host here: see check_targets, and place.c, which decides at the moment
 * it acts.
 */
static int
plan_names (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  char uuid[37];

  im->src_name = vmferry_domain_get_name (im->doc);
  if (im->src_name == NULL)
    return -1;
  im->name = strdup (opts->new_name ? opts->new_name : im->src_name);
  if (im->name == NULL)
    goto nomem;
  /* The name makes state file names and, without --define, the TPM
   * directory's: one plain component.
   */
  if (!vmferry_name_ok (im->name, VMFERRY_NAME_HIDDEN_OK)) {
    vmferry_set_error ("%s: domain name '%s' cannot be used: it must be usable "
                       "as a file name (no '/', no control characters)",
                       opts->in_name, im->name);
    return -1;
  }
  if (opts->new_name) {
    /* A copy beside the original needs its own UUID; generate it here so
     * the TPM state can be placed under it before the define.
     */
    char buf[64] = "";
    FILE *fp = fopen ("/proc/sys/kernel/random/uuid", "re");
    if (fp == NULL || !fgets (buf, sizeof buf, fp)) {
      vmferry_set_error_errno (errno, "cannot generate a UUID");
      if (fp)
        fclose (fp);
      return -1;
    }
    fclose (fp);
    buf[strcspn (buf, "\n")] = '\0';
    im->uuid = strdup (buf);
  }
  else {
    CLEANUP_FREE char *u = vmferry_domain_get_uuid (im->doc);
    if (u == NULL)
      return -1;
    if (vmferry_uuid_canonical (u, uuid) < 0) {
      vmferry_set_error ("%s: the domain's UUID '%s' is not a UUID", opts->in_name, u);
      return -1;
    }
    im->uuid = strdup (uuid);
  }
  if (im->uuid == NULL)
    goto nomem;
  if (!vmferry_name_uuid_ok (im->uuid)) {
    vmferry_set_error ("%s: the domain's UUID '%s' is not a UUID", opts->in_name, im->uuid);
    return -1;
  }

  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];

    if (f->role == VMFERRY_ROLE_TPM) {
      im->has_tpm = true;
      f->final = strdup (f->name);
    }
    else if (opts->new_name && f->volume == NULL)
      f->final = vmferry_import_follow_name (f->name, im->src_name, im->name);
    else if (opts->new_name) {
      /* A volume keeps its pool, and follows the name too. */
      f->final = vmferry_import_follow_name (f->name, im->src_name, im->name);
      if (f->final) {
        free (f->volume);
        f->volume = strdup (f->final);
      }
    }
    else
      f->final = strdup (f->name);
    if (f->final == NULL)
      goto nomem_or_set;
    for (size_t k = 0; k < i; k++)
      if (im->files[k].role != VMFERRY_ROLE_TPM && f->role != VMFERRY_ROLE_TPM &&
          strcmp (im->files[k].final, f->final) == 0) {
        vmferry_set_error ("%s: two files would be named %s", opts->in_name, f->final);
        return -1;
      }
    if (f->role != VMFERRY_ROLE_TPM &&
        !(f->final_path = vmferry_target_path (&im->tgt, f->final)))
      return -1;
  }
  if (im->has_tpm &&
      (opts->define ? !(im->tpm_dir = strdup (im->uuid))
                    : asprintf (&im->tpm_dir, "%s-tpm", im->name) < 0)) {
    im->tpm_dir = NULL;
    goto nomem;
  }
  if (im->tpm_dir && !vmferry_name_ok (im->tpm_dir, VMFERRY_NAME_HIDDEN_OK)) {
    vmferry_set_error ("%s: TPM directory name %s is not a plain name",
                       opts->in_name, im->tpm_dir);
    return -1;
  }
  return 0;
 nomem_or_set:
  if (vmferry_get_error ()[0])
    return -1;
 nomem:
  vmferry_set_error_errno (ENOMEM, "import");
  return -1;
}

/* Open the TPM state's root: libvirt's swtpm directory with --define,
 * else the target directory.
 */
static int
open_tpm_root (struct importer *im)
{
  if (!im->has_tpm)
    return 0;
  if (im->opts->define)
    return vmferry_target_open (&im->tpm_root, VMFERRY_SWTPM_STORAGE, true, 0711);
  return vmferry_target_open (&im->tpm_root, im->dir, false, 0);
}

/* Refuse early what the placement would refuse at the end, so that an
 * import that cannot succeed says so before the data crosses: an
 * existing domain or file without --force; with --force, a running
 * domain, or a file another domain uses.  These are advice only: the
 * world can change during the transfer, and place.c checks again at the
 * moment it acts.
 */
static int
check_targets (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  uint64_t need = 0;
  struct statvfs sv;
  struct stat st;
  int r;

  if (opts->define) {
    CLEANUP_VIR_DOMAIN virDomainPtr by_name = virDomainLookupByName (im->conn, im->name);
    CLEANUP_VIR_DOMAIN virDomainPtr by_uuid = virDomainLookupByUUIDString (im->conn, im->uuid);

    if (by_uuid && strcmp (virDomainGetName (by_uuid), im->name) != 0) {
      vmferry_set_error ("domain %s already exists with this UUID (%s); "
                         "import it as a copy with --name NEW", virDomainGetName (by_uuid),
                         im->uuid);
      return -1;
    }
    if (by_name) {
      r = vmferry_place_already (im);
      if (r < 0)
        return -1;
      if (r > 0) {
        im->already = true;
        return 0;
      }
    }
    if (by_name && !opts->force) {
      vmferry_set_error ("domain %s already exists on this host (use --force to "
                         "replace it once the new copy is verified, or --name NEW)",
                         im->name);
      return -1;
    }
    if (by_name && virDomainIsActive (by_name) != 0) {
      vmferry_set_error ("domain %s exists and is running: it cannot be replaced",
                         im->name);
      return -1;
    }
  }
  if (opts->force && im->conn == NULL && !(im->conn = vmferry_virt_connect (opts->uri))) {
    vmferry_prefix_error ("--force: cannot check which domains use the files it "
                          "would replace");
    return -1;
  }
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];

    need += f->allocated;
    if (f->role == VMFERRY_ROLE_TPM)
      continue;
    r = vmferry_target_stat (&im->tgt, f->final, &st);
    if (r < 0)
      return -1;
    if (r == 0)
      continue;
    if (!opts->force) {
      vmferry_set_error ("%s: already exists (use --force to replace it once "
                         "the new copy is verified)", f->final_path);
      return -1;
    }
    if (!S_ISREG (st.st_mode) || st.st_nlink != 1) {
      vmferry_set_error ("%s: exists and is not a plain file (a regular file with "
                         "one link): not replaced", f->final_path);
      return -1;
    }
    if (im->conn) {
      CLEANUP_FREE char *users =
        vmferry_virt_file_users (im->conn, f->final_path, &st, opts->define ? im->uuid : NULL);
      if (users == NULL)
        return -1;
      if (users[0]) {
        vmferry_set_error ("%s: used by domain %s: never replaced (import under "
                           "another --name, or into another --dir)", f->final_path, users);
        return -1;
      }
    }
  }
  if (im->tpm_dir) {
    r = vmferry_target_stat (&im->tpm_root, im->tpm_dir, &st);
    if (r < 0)
      return -1;
    if (r > 0 && !opts->force) {
      vmferry_set_error ("%s/%s: TPM state already exists (use --force to replace "
                         "it once the new copy is verified)", im->tpm_root.path, im->tpm_dir);
      return -1;
    }
  }
  /* Refuse early rather than fill the disk: holes take no space. */
  if (fstatvfs (im->tgt.fd, &sv) == 0 && (uint64_t) sv.f_bavail * sv.f_frsize < need) {
    char a[32], b[32];
    vmferry_human_size (need, a, sizeof a);
    vmferry_human_size ((uint64_t) sv.f_bavail * sv.f_frsize, b, sizeof b);
    vmferry_set_error ("%s: not enough free space: the files need %s, %s are free",
                       im->dir, a, b);
    return -1;
  }
  return 0;
}
/* ---- resume state ---- */

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
  return vmferry_resume_write_claims (im->written_fd, im->written_file, &im->st);
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
      vmferry_set_error_errno (errno, "%s/%s: fdatasync", im->dir, im->files[idx].tmp);
      r = -1;
    }
    else
      r = vmferry_import_save_state (im, idx, off);
    pthread_mutex_lock (&im->st_lock);
    if (r == 0)
      r = write_claims_locked (im);
    if (r < 0 && !im->sync_failed) {
      im->sync_failed = true;
      snprintf (im->sync_error, sizeof im->sync_error, "%s", vmferry_get_error ());
    }
    im->sync_idx = -1;
    pthread_cond_broadcast (&im->st_cond);
  }
  pthread_mutex_unlock (&im->st_lock);
  return NULL;
}

static int
syncer_start (struct importer *im)
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
static int
syncer_wait (struct importer *im, bool stop)
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
    vmferry_set_error ("%s", im->sync_error);
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
 * (see claim_record), in one pass over the bytes where both take all of
 * them.  A resumed file's first record may begin below its durable
 * offset: the segment takes only what is above.
 */
static int
digest_record (struct importer *im, struct import_file *f, bool claim,
               uint64_t offset, const unsigned char *data, uint64_t len)
{
  int r = 0;

  if (claim && f->wdg == NULL && (f->wdg = vmferry_digest_new ()) == NULL)
    return -1;
  if (claim && f->dg && offset >= f->seg_start)
    r = vmferry_digest_update2 (f->dg, f->wdg, offset, data, len);
  else {
    uint64_t skip = offset < f->seg_start ? f->seg_start - offset : 0;

    if (f->dg)
      r = vmferry_digest_update (f->dg, offset, data, len);
    if (r == 0 && claim && skip < len)
      r = vmferry_digest_update (f->wdg, offset + skip, data + skip, len - skip);
  }
  if (r < 0)
    vmferry_prefix_error ("%s: file %s", im->opts->in_name, f->name);
  return r;
}

/* In the collector, for every data record of file IDX, after
 * digest_record: claim the open segment in the .written file, so that
 * an import killed before it could sync leaves ranges the next one can
 * read back, check and keep (verify_written).  When enough was written
 * (SYNC_BYTES or SYNC_SECONDS) and the syncer is free, close the segment
 * and ask the syncer to make it durable; its claim stays until that is
 * done.
 */
static int
claim_record (struct importer *im, uint32_t idx, uint64_t offset, uint64_t len)
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
    vmferry_set_error ("%s", im->sync_error);
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
      (f->written_end - f->seg_start >= SYNC_BYTES || now - f->seg_at >= SYNC_SECONDS)) {
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
      vmferry_verbose ("%s: bytes %" PRIu64 " to %" PRIu64 ", written but not synced "
                       "when the import was cut, read back as sent: kept", rf->name,
                       rf->offset, at);
      rf->offset = at;
      kept++;
    }
    if (at < rf->claims[rf->nr_claims - 1].end)
      vmferry_verbose ("%s: bytes %" PRIu64 " to %" PRIu64 ", written but not synced "
                       "when the import was cut, did not read back as sent: sent again",
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
static int
answer_query (struct importer *im, const struct vmferry_resume_state *st,
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
    vmferry_set_error ("it has %zu files, the stream %zu", st->nr_files, im->nr_files);
    return -1;
  }
  for (size_t i = 0; i < st->nr_files; i++) {
    const struct vmferry_resume_file *rf = &st->files[i];
    struct stat sb;

    if (strcmp (rf->name, im->files[i].name) != 0 || rf->size != im->files[i].size) {
      vmferry_set_error ("file %zu is %s, the stream has %s", i, rf->name,
                         im->files[i].name);
      return -1;
    }
    if (rf->tmp == NULL)
      continue;
    if (vmferry_target_stat (&im->tgt, rf->tmp, &sb) != 1 || !S_ISREG (sb.st_mode) ||
        sb.st_nlink != 1 || (uint64_t) sb.st_size != rf->size) {
      vmferry_set_error ("its temporary file %s/%s is missing or not what it says",
                         im->dir, rf->tmp);
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
static int
load_state (struct importer *im, struct vmferry_resume_state *old)
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
    if (k < 0 || open_tpm_root (im) < 0)
      goto recover_failed;
    if (k > 0) {
      vmferry_resume_state_free (old);
      return 0;
    }
  }
  return r;
 recover_failed:
  vmferry_prefix_error ("%s/%s: an import of domain %s was killed while it put its "
                        "files in place, and that cannot be finished or undone now",
                        im->dir, im->state_file, im->name);
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

/* Decide, with what an earlier run left (OLD, R from load_state), how
 * this stream goes on: a resume query is answered; a RESUME stream takes
 * over the state it was built for or is refused; a fresh stream replaces
 * whatever is there with a state of its own.
 */
static int
setup_resume (struct importer *im, struct vmferry_resume_state *old, int r)
{
  const struct vmferry_import_opts *opts = im->opts;
  bool resume_stream = im->mandatory & VMFERRY_FEATURE_RESUME;
  bool asks = resume_stream || opts->resume_query;
  char reason[VMFERRY_ERROR_MAX];

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
    char msg[VMFERRY_ERROR_MAX] = "";

    if (match && check_state_files (im, old) < 0) {
      snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
      match = false;
    }
    if (!match) {
      snprintf (reason, sizeof reason, "%s/%s: the interrupted transfer there belongs "
                "to another stream (%s)", im->dir, im->state_file,
                msg[0] ? msg : "another domain, or the source disks changed since");
      if (asks) {
        vmferry_resume_state_free (old);
        goto refuse;
      }
      vmferry_notice ("%s: removed, starting afresh", reason);
      vmferry_resume_discard (&im->tgt, old->tpm_tmp ? &im->tpm_root : NULL, old);
      vmferry_resume_state_free (old);
    }
    else if (opts->resume_query) {
      int k = verify_written (im, old);
      if (k == 0)
        k = answer_query (im, old, NULL, false);
      vmferry_resume_state_free (old);
      return k;
    }
    else if (!resume_stream) {
      /* The sender chose to start over (or this import is not resumable). */
      vmferry_verbose ("%s/%s: a fresh stream replaces the interrupted transfer",
                       im->dir, im->state_file);
      vmferry_resume_discard (&im->tgt, old->tpm_tmp ? &im->tpm_root : NULL, old);
      vmferry_resume_state_free (old);
    }
    else if (memcmp (old->token, im->token, VMFERRY_RESUME_TOKEN_LEN) != 0) {
      snprintf (reason, sizeof reason, "%s/%s: the resume state changed since the "
                "sender asked (another sender?)", im->dir, im->state_file);
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
      vmferry_verbose ("resuming the transfer of %s: %" PRIu64 " bytes already held",
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
    return answer_query (im, NULL, reason, false);
  vmferry_set_error ("%s: a resumed stream, but %s; nothing was changed "
                     "(run the sender again: it will start afresh)",
                     opts->in_name, reason);
  return -1;
}
/* ---- writing the files ---- */

/* A fresh temporary file for file IDX: its name is recorded in the state
 * before it is made, so a kill at any moment leaves nothing the next run
 * does not know about.  Returns the fd, -1 with the error set.
 */
static int
create_temporary (struct importer *im, uint32_t idx)
{
  struct import_file *f = &im->files[idx];
  CLEANUP_FREE char *prefix = NULL;

  if (asprintf (&prefix, ".%s.vmferry-", f->name) < 0) {
    prefix = NULL;
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  for (int tries = 0; tries < 3; tries++) {
    int fd;

    free (f->tmp);
    f->tmp = vmferry_target_random_name (prefix);
    if (f->tmp == NULL || vmferry_import_save_state (im, idx, 0) < 0 ||
        vmferry_fault ("import-temp-named") < 0)
      return -1;
    fd = vmferry_target_create (&im->tgt, f->tmp, O_RDWR,
                                f->role == VMFERRY_ROLE_NVRAM ? 0600 : 0644, false);
    if (fd >= 0 || errno != EEXIST)
      return fd;
  }
  return -1;
}

/* The same for a TPM file, in the temporary TPM directory (named in the
 * state before it is made, too).
 */
static int
create_tpm_file (struct importer *im, uint32_t idx)
{
  struct import_file *f = &im->files[idx];

  if (im->st.tpm_tmp == NULL) {
    CLEANUP_FREE char *prefix = NULL;
    char *name;

    if (asprintf (&prefix, ".%s.vmferry-", im->tpm_dir) < 0) {
      prefix = NULL;
      vmferry_set_error_errno (ENOMEM, "import");
      return -1;
    }
    name = vmferry_target_random_name (prefix);
    if (name == NULL)
      return -1;
    pthread_mutex_lock (&im->st_lock);
    im->st.tpm_tmp = name;
    pthread_mutex_unlock (&im->st_lock);
    if (vmferry_import_save_state (im, -1, 0) < 0 ||
        vmferry_target_mkdir (&im->tpm_root, name, 0700, true) < 0)
      return -1;
  }
  free (f->tmp);
  if (asprintf (&f->tmp, "%s/%s", im->st.tpm_tmp, f->name) < 0) {
    f->tmp = NULL;
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  return vmferry_target_create (&im->tpm_root, f->tmp, O_RDWR, 0600, true);
}

static int
begin_file (struct importer *im, uint32_t idx, uint64_t size)
{
  struct import_file *f = &im->files[idx];
  const struct vmferry_target *t = f->role == VMFERRY_ROLE_TPM ? &im->tpm_root : &im->tgt;

  if (size != f->size) {
    vmferry_set_error ("%s: file %s: size %" PRIu64 " differs from the manifest's %"
                       PRIu64, im->opts->in_name, f->name, size, f->size);
    return -1;
  }
  if (f->tmp) {
    /* Resumed: continue in the temporary file the state names. */
    struct stat sb;
    f->fd = vmferry_target_open_file (t, f->tmp, O_RDWR);
    if (f->fd < 0 || fstat (f->fd, &sb) < 0 || (uint64_t) sb.st_size != size) {
      if (f->fd >= 0)
        vmferry_set_error ("%s/%s: not the size the state says", t->path, f->tmp);
      vmferry_prefix_error ("%s: cannot resume", f->name);
      return -1;
    }
    /* Below the offset the state vouches for the data; above it this
     * run writes everything again, so what a cut left there goes.
     */
    if (f->resume_offset != VMFERRY_RESUME_COMPLETE && f->resume_offset < size &&
        fallocate (f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   (off_t) f->resume_offset, (off_t) (size - f->resume_offset)) < 0 &&
        errno != EOPNOTSUPP) {
      vmferry_set_error_errno (errno, "%s/%s: cannot clear beyond the resume point",
                               t->path, f->tmp);
      return -1;
    }
    f->written_end = f->seg_start = f->resume_offset == VMFERRY_RESUME_COMPLETE
      ? size : f->resume_offset;
    f->seg_at = vmferry_monotonic ();
    vmferry_verbose ("%s: resuming %s/%s at byte %" PRIu64, f->name, t->path, f->tmp,
                     f->written_end);
    vmferry_progress_begin (im->opts->progress, f->name, size);
    vmferry_progress_add (im->opts->progress, f->written_end);
    return 0;
  }
  f->fd = f->role == VMFERRY_ROLE_TPM ? create_tpm_file (im, idx)
                                      : create_temporary (im, idx);
  if (f->fd < 0)
    return -1;
  /* A fresh file is all holes: only data records are written. */
  if (ftruncate (f->fd, (off_t) size) < 0) {
    vmferry_set_error_errno (errno, "%s/%s: cannot size to %" PRIu64 " bytes",
                             t->path, f->tmp, size);
    return -1;
  }
  if (f->role == VMFERRY_ROLE_DISK && size >= DIRECT_MIN_SIZE) {
    f->dfd = vmferry_target_open_file (t, f->tmp, O_WRONLY | O_DIRECT);
    if (f->dfd < 0)
      vmferry_debug ("%s: no O_DIRECT (%s): writing through the page cache",
                     f->tmp, vmferry_get_error ());
  }
  vmferry_verbose ("%s: writing %s/%s", f->name, t->path, f->tmp);
  vmferry_progress_begin (im->opts->progress, f->name, size);
  f->dg = vmferry_digest_new ();
  if (f->dg == NULL)
    return -1;
  f->seg_at = vmferry_monotonic ();
  return 0;
}

void
vmferry_import_close_file (struct import_file *f)
{
  if (f->dfd >= 0)
    close (f->dfd);
  if (f->fd >= 0)
    close (f->fd);
  f->fd = f->dfd = -1;
}

/* Write LEN bytes of DATA at OFF: with O_DIRECT when all is aligned, else
 * (and where the file system refuses O_DIRECT) through the page cache.
 */
static int
write_data (struct import_file *f, const void *data, size_t len, uint64_t off)
{
  int dfd = f->dfd;

  if (dfd >= 0 && !__atomic_load_n (&f->direct_refused, __ATOMIC_RELAXED) &&
      off % DIRECT_ALIGN == 0 && len % DIRECT_ALIGN == 0 &&
      (uintptr_t) data % DIRECT_ALIGN == 0) {
    if (vmferry_pwrite_full (dfd, f->tmp, data, len, off) == 0)
      return 0;
    if (vmferry_get_errno () != EINVAL)
      return -1;
    /* The workers share the file: tell them all, and keep the fd until
     * the file is closed.
     */
    __atomic_store_n (&f->direct_refused, true, __ATOMIC_RELAXED);
    vmferry_debug ("%s: O_DIRECT refused, writing through the page cache", f->tmp);
  }
  return vmferry_pwrite_full (f->fd, f->tmp, data, len, off);
}

/* qemu-img rebase -u: point an overlay at its backing file's new name.
 * The name is relative (both live in one directory), as QEMU resolves it
 * against the overlay's own directory.
 */
static int
rebase (const char *overlay, const char *backing, const char *format)
{
  char *argv[] = { (char *) "qemu-img", (char *) "rebase", (char *) "-u",
                   (char *) "-f", (char *) "qcow2", (char *) "-b", (char *) backing,
                   (char *) "-F", (char *) format, (char *) overlay, NULL };
  pid_t pid;
  int status, err;

  err = posix_spawnp (&pid, "qemu-img", NULL, NULL, argv, environ);
  if (err) {
    vmferry_set_error_errno (err, "%s: cannot run qemu-img to set its backing file", overlay);
    return -1;
  }
  if (waitpid (pid, &status, 0) < 0 || !WIFEXITED (status) || WEXITSTATUS (status)) {
    vmferry_set_error ("%s: qemu-img rebase -u -b %s failed", overlay, backing);
    return -1;
  }
  return 0;
}

/* An image just verified, before anything (qemu-img, libvirt, QEMU)
 * opens it as an image: its header must say what the stream says of it
 * (formats/qcow2.h), so that it names no host file as its backing file
 * or data file.  BACKING_NAME: the name its header must now give its
 * backing file (after rebase_file), NULL before.
 */
static int
check_arrival (struct importer *im, struct import_file *f, const char *backing_name)
{
  const struct import_file *b = f->backing >= 0 ? &im->files[f->backing] : NULL;
  struct vmferry_qcow2_expect exp = {
    .format = f->format, .has_backing = b != NULL,
    .backing_format = b ? b->format : NULL, .backing_name = backing_name,
  };
  struct vmferry_qcow2_info info;
  CLEANUP_FREE char *name = NULL;

  if (f->role != VMFERRY_ROLE_DISK && f->role != VMFERRY_ROLE_BACKING)
    return 0;
  if (asprintf (&name, "%s: file %s", im->opts->in_name, f->name) < 0) {
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  return vmferry_qcow2_validate_arrival (f->fd, name, &exp, &info) < 0 ? -1 : 0;
}

/* File F, verified with the stream's digest STREAM_DIGEST, is an overlay:
 * its header must name its backing file as it will be named here.  The
 * change is recorded with the digest of the file as changed, so that a
 * resumed run can still check it.
 */
static int
rebase_file (struct importer *im, struct import_file *f,
             const unsigned char *stream_digest)
{
  const struct import_file *b = &im->files[f->backing];
  CLEANUP_FREE char *path = vmferry_target_path (&im->tgt, f->tmp);
  unsigned char local[16];

  if (path == NULL || rebase (path, b->final, b->format) < 0 ||
      check_arrival (im, f, b->final) < 0 ||
      vmferry_digest_fd (f->fd, path, f->size, local) < 0)
    return -1;
  if (im->keep_state) {
    struct vmferry_resume_file *rf = &im->st.files[f - im->files];
    pthread_mutex_lock (&im->st_lock);
    rf->changed = true;
    memcpy (rf->stream_digest, stream_digest, 16);
    memcpy (rf->local_digest, local, 16);
    pthread_mutex_unlock (&im->st_lock);
  }
  return 0;
}

static int
job_init (void *opaque, void *jobp)
{
  struct job *j = jobp;

  (void) opaque;
  /* Aligned for O_DIRECT. */
  if (posix_memalign ((void **) &j->in, DIRECT_ALIGN, VMFERRY_MAX_PAYLOAD) != 0)
    j->in = NULL;
  if (posix_memalign ((void **) &j->out, DIRECT_ALIGN, VMFERRY_CHUNK_SIZE) != 0)
    j->out = NULL;
  if (j->in == NULL || j->out == NULL) {
    vmferry_set_error_errno (ENOMEM, "import buffers");
    return -1;
  }
  return 0;
}

static void
job_fini (void *opaque, void *jobp)
{
  struct job *j = jobp;

  (void) opaque;
  free (j->in);
  free (j->out);
}

static int
job_work (void *opaque, void *jobp, unsigned worker)
{
  struct importer *im = opaque;
  struct job *j = jobp;
  struct import_file *f = &im->files[j->rec.file];
  const void *data = j->in;

  (void) worker;
  if (j->rec.flags & VMFERRY_REC_F_ZSTD) {
    if (vmferry_record_data (&j->rec, j->in, j->out) < 0) {
      vmferry_prefix_error ("%s", im->opts->in_name);
      return -1;
    }
    data = j->out;
  }
  return write_data (f, data, j->rec.length, j->rec.offset);
}

/* In stream order: every data record of the file is on disk by now. */
static int
job_done (void *opaque, void *jobp)
{
  struct importer *im = opaque;
  struct job *j = jobp;
  struct import_file *f = &im->files[j->rec.file];
  struct vmferry_resume_file *rf;
  unsigned char got[16];
  char want_hex[33], got_hex[33];

  if (!j->end) {
    uint64_t end = j->rec.offset + j->rec.length;
    const unsigned char *data = j->rec.flags & VMFERRY_REC_F_ZSTD ? j->out : j->in;
    bool claim = im->resumable && f->role != VMFERRY_ROLE_TPM;

    if (digest_record (im, f, claim, j->rec.offset, data, j->rec.length) < 0)
      return -1;
    vmferry_progress_add (im->opts->progress, j->rec.length);
    /* In stream order, so everything below END is written. */
    if (end > f->written_end)
      f->written_end = end;
    if (!claim)
      return 0;
    return claim_record (im, j->rec.file, j->rec.offset, j->rec.length);
  }
  /* The syncer must be done with this file before it is closed. */
  if (syncer_wait (im, false) < 0)
    return -1;
  if (fdatasync (f->fd) < 0) {
    vmferry_set_error_errno (errno, "%s: fdatasync", f->tmp);
    return -1;
  }
  if (f->dg) {
    vmferry_digest_final (f->dg, got);
    vmferry_digest_free (f->dg);
    f->dg = NULL;
  }
  else if (vmferry_digest_fd (f->fd, f->tmp, f->size, got) < 0)
    return -1;
  rf = f->role != VMFERRY_ROLE_TPM && im->keep_state ? &im->st.files[j->rec.file] : NULL;
  if (rf && rf->changed) {
    /* Complete and changed here by an earlier run (rebased): read back as
     * it was left, and the stream's digest must be the one it had.
     */
    if (memcmp (got, rf->local_digest, 16) != 0 || memcmp (j->digest, rf->stream_digest, 16) != 0) {
      vmferry_set_error ("%s: file %s: not as an earlier run left it", im->opts->in_name,
                         f->name);
      return -1;
    }
  }
  else if (memcmp (got, j->digest, 16) != 0) {
    vmferry_digest_hex (j->digest, want_hex);
    vmferry_digest_hex (got, got_hex);
    vmferry_set_error ("%s: file %s: digest mismatch after writing (stream says %s, "
                       "what was written has %s)", im->opts->in_name, f->name, want_hex, got_hex);
    return -1;
  }
  else if (check_arrival (im, f, NULL) < 0 ||
           (f->backing >= 0 && rebase_file (im, f, j->digest) < 0))
    return -1;
  vmferry_import_close_file (f);
  f->verified = true;
  vmferry_progress_done (im->opts->progress);
  if (rf && vmferry_import_save_state (im, j->rec.file, VMFERRY_RESUME_COMPLETE) < 0)
    return -1;
  if (vmferry_fault ("import-file-verified") < 0)
    return -1;
  vmferry_verbose ("%s: verified", f->name);
  return 0;
}

static const struct vmferry_pipeline_ops import_ops = {
  .init = job_init, .fini = job_fini, .work = job_work, .done = job_done,
};

/* ---- where the files go ---- */

/* The target path of a directory-backed pool (dir, fs, netfs), or NULL
 * with the error set.
 */
static char *
pool_path (virStoragePoolPtr p, const char *pool)
{
  CLEANUP_FREE char *xml = virStoragePoolGetXMLDesc (p, 0);
  char *start, *end;

  if (xml == NULL) {
    vmferry_virt_error ("storage pool %s", pool);
    return NULL;
  }
  if (strstr (xml, "<pool type='dir'") == NULL && strstr (xml, "<pool type='fs'") == NULL &&
      strstr (xml, "<pool type='netfs'") == NULL) {
    vmferry_set_error ("storage pool %s: only directory-backed pools (dir, fs, netfs) "
                       "are supported", pool);
    return NULL;
  }
  start = strstr (xml, "<target>");
  start = start ? strstr (start, "<path>") : NULL;
  end = start ? strstr (start, "</path>") : NULL;
  if (end == NULL) {
    vmferry_set_error ("storage pool %s: no target path", pool);
    return NULL;
  }
  start += strlen ("<path>");
  return strndup (start, end - start);
}

/* The directory of a directory-backed pool. */
static char *
pool_dir (virConnectPtr conn, const char *pool)
{
  CLEANUP_VIR_POOL virStoragePoolPtr p = virStoragePoolLookupByName (conn, pool);

  if (p == NULL) {
    vmferry_virt_error ("storage pool %s", pool);
    return NULL;
  }
  if (virStoragePoolIsActive (p) != 1) {
    vmferry_set_error ("storage pool %s is not active (virsh pool-start %s)", pool, pool);
    return NULL;
  }
  return pool_path (p, pool);
}

/* Volume disks in the stream name their pool: all the same one, and the
 * one --pool gives, if any; --dir cannot place a volume.
 */
static int
pool_from_manifest (struct importer *im)
{
  const char *pool = NULL;

  for (size_t i = 0; i < im->nr_files; i++) {
    const struct import_file *f = &im->files[i];
    if (f->pool == NULL)
      continue;
    if (pool && strcmp (pool, f->pool) != 0) {
      vmferry_set_error ("%s: the disks are volumes of two pools (%s, %s): "
                         "import them with --dir, after vmferry-rewrite --pool "
                         "moved them into one", im->opts->in_name, pool, f->pool);
      return -1;
    }
    pool = f->pool;
  }
  if (pool == NULL)
    return 0;
  if (im->opts->dir) {
    vmferry_set_error ("%s: the disks are volumes of pool %s: import without "
                       "--dir (or with --pool %s)", im->opts->in_name, pool, pool);
    return -1;
  }
  if (im->opts->pool && strcmp (im->opts->pool, pool) != 0) {
    vmferry_set_error ("%s: the disks are volumes of pool %s, not of %s",
                       im->opts->in_name, pool, im->opts->pool);
    return -1;
  }
  if (im->pool == NULL && !(im->pool = strdup (pool))) {
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  return 0;
}

/* Without --dir or --pool the stream names the directory (the directory
 * of its first disk, as vmferry-rewrite --map-path left it: the scripted
 * pipeline "export | rewrite --map-path OLD=NEW | ssh dst vmferry-import
 * --define").  A stream must not choose just any directory of the host,
 * so it is taken only if it is where this host keeps images: the target
 * of one of its active directory pools, or libvirt's default image
 * directory.  Returns 1 if DIR is one, 0 if not, -1 on error.
 */
static int
known_storage (struct importer *im, const char *dir)
{
  virStoragePoolPtr *pools = NULL;
  struct stat want, st;
  int n, found = 0;

  if (stat (dir, &want) < 0)
    return 0;
  if (stat (DEFAULT_IMAGES_DIR, &st) == 0 && st.st_dev == want.st_dev &&
      st.st_ino == want.st_ino)
    return 1;
  if (im->conn == NULL && !(im->conn = vmferry_virt_connect (im->opts->uri)))
    return -1;
  n = virConnectListAllStoragePools (im->conn, &pools, VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE);
  if (n < 0) {
    vmferry_virt_error ("cannot list the storage pools");
    return -1;
  }
  for (int i = 0; i < n; i++) {
    char saved[VMFERRY_ERROR_MAX];
    CLEANUP_FREE char *path = NULL;

    snprintf (saved, sizeof saved, "%s", vmferry_get_error ());
    path = found ? NULL : pool_path (pools[i], virStoragePoolGetName (pools[i]));
    vmferry_restore_error (saved, 0);
    if (path && stat (path, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino)
      found = 1;
    virStoragePoolFree (pools[i]);
  }
  free (pools);
  return found;
}

static int
dir_from_manifest (struct importer *im)
{
  const char *path = NULL;
  char *slash;
  int r;

  if (im->pool) {
    if (im->conn == NULL && !(im->conn = vmferry_virt_connect (im->opts->uri)))
      return -1;
    im->dir = pool_dir (im->conn, im->pool);
    if (im->dir == NULL)
      return -1;
    vmferry_verbose ("the disks are volumes of pool %s: writing into %s", im->pool, im->dir);
    return vmferry_target_open (&im->tgt, im->dir, false, 0);
  }
  for (size_t i = 0; i < im->nr_files && !path; i++)
    if (im->files[i].role == VMFERRY_ROLE_DISK)
      path = im->files[i].source_path;
  if (path == NULL) {
    vmferry_set_error ("%s: the stream has no disk to take a directory from: "
                       "give --dir or --pool", im->opts->in_name);
    return -1;
  }
  if (path[0] != '/' || strstr (path, "/../") || strstr (path, "/./") ||
      strstr (path, "//") || strlen (path) > PATH_MAX) {
    vmferry_set_error ("%s: disk path %s is not a plain absolute path: give "
                       "--dir or --pool", im->opts->in_name, path);
    return -1;
  }
  im->dir = strdup (path);
  if (im->dir == NULL) {
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  slash = strrchr (im->dir, '/');
  if (slash == im->dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  r = known_storage (im, im->dir);
  if (r < 0)
    return -1;
  if (r == 0) {
    vmferry_set_error ("%s: the stream puts its disks in %s, which is neither a "
                       "storage pool of this host nor %s: give --dir %s (or --pool) "
                       "if that is where they belong", im->opts->in_name, im->dir,
                       DEFAULT_IMAGES_DIR, im->dir);
    return -1;
  }
  vmferry_verbose ("no --dir: writing into %s, the directory of the first disk", im->dir);
  return vmferry_target_open (&im->tgt, im->dir, false, 0);
}

/* Read the stream to its END; every file written and verified. */
static int
read_stream (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  struct vmferry_stream_reader *rd = opts->stripes
    ? vmferry_stream_reader_new_fn (vmferry_stripes_read, opts->stripes, opts->in_name)
    : vmferry_stream_reader_new (opts->in_fd, opts->in_name);
  /* The same checks as vmferry-info --verify (formats/validate.h): one
   * validator decides what a stream may say.
   */
  struct vmferry_validator *v = vmferry_validator_new (opts->in_name);
  unsigned threads, depth;
  struct vmferry_record rec;
  struct job *j;
  int r = -1, ret = -1;
  bool seen_end = false;

  if (rd == NULL || v == NULL) {
    if (v == NULL)
      vmferry_set_error_errno (ENOMEM, "%s", opts->in_name);
    vmferry_stream_reader_free (rd);
    vmferry_validator_free (v);
    return -1;
  }
  while (!seen_end && (r = vmferry_stream_read_record (rd, &rec)) == 1) {
    if (vmferry_validator_record (v, &rec) < 0)
      goto out;
    switch (rec.type) {
    case VMFERRY_REC_MANIFEST: {
      size_t len;
      int k;
      const char *text = vmferry_validator_manifest_text (v, &len);
      CLEANUP_FREE char *json = text ? strndup (text, len) : NULL;
      if (json == NULL) {
        vmferry_set_error_errno (ENOMEM, "%s: manifest", opts->in_name);
        goto out;
      }
      if (files_from_manifest (im, vmferry_validator_manifest (v)) < 0 ||
          pool_from_manifest (im) < 0 || (im->dir == NULL && dir_from_manifest (im) < 0))
        goto out;
      progress_total (opts->progress, vmferry_validator_manifest (v));
      k = vmferry_resume_stream_id (json, len, im->stream_id);
      if (k < 0)
        goto out;
      im->resumable_id = k > 0;
      if (k == 0) {
        /* An older writer's stream: it cannot be resumed, but its state
         * still needs an identity.
         */
        XXH128_canonical_t c;
        XXH128_canonicalFromHash (&c, XXH3_128bits (json, len));
        for (int b = 0; b < 16; b++)
          snprintf (im->stream_id + 2 * b, 3, "%02x", c.digest[b]);
      }
      im->manifest = json;
      im->manifest_len = len;
      json = NULL;
      break;
    }
    case VMFERRY_REC_DOMAIN_XML: {
      size_t len;
      const char *xml = vmferry_validator_xml (v, &len);
      struct vmferry_resume_state old;
      int k;
      if (im->files == NULL) {
        vmferry_set_error ("%s: the domain XML came before the manifest", opts->in_name);
        goto out;
      }
      im->doc = vmferry_domain_parse (xml, len, "domain XML in the stream");
      if (im->doc == NULL || plan_names (im) < 0 || open_tpm_root (im) < 0)
        goto out;
      k = load_state (im, &old);
      if (k < -1)
        goto out;
      if (check_targets (im) < 0) {
        if (k == 1)
          vmferry_resume_state_free (&old);
        goto out;
      }
      if (im->already) {
        if (k == 1)
          vmferry_resume_state_free (&old);
        if (opts->resume_query) {
          char what[512];
          snprintf (what, sizeof what, "domain %s is already defined on this host "
                    "from the same source state", im->name);
          if (answer_query (im, NULL, what, true) < 0)
            goto out;
        }
        ret = 0;
        goto out_nofinish;
      }
      if (setup_resume (im, &old, k) < 0)
        goto out;
      if (!opts->resume_query && vmferry_fault ("import-checked") < 0)
        goto out;
      if (opts->resume_query) {
        if (!im->query_done) {
          vmferry_set_error ("%s: resume query: no answer", opts->in_name);
          goto out;
        }
        ret = 0;
        goto out_nofinish;
      }
      vmferry_pipeline_shape (opts->threads, &threads, &depth);
      im->p = vmferry_pipeline_new (&import_ops, im, threads, depth, sizeof (struct job));
      if (im->p == NULL || (im->resumable && syncer_start (im) < 0))
        goto out;
      break;
    }
    case VMFERRY_REC_FILE_BEGIN: {
      uint64_t size;
      if (im->p == NULL || rec.file >= im->nr_files) {
        vmferry_set_error ("%s: record %" PRIu64 ": file %" PRIu32 " before the "
                           "domain XML", opts->in_name, rec.seq, rec.file);
        goto out;
      }
      if (vmferry_record_file_begin (&rec, rec.payload, &size) < 0 ||
          begin_file (im, rec.file, size) < 0)
        goto out;
      break;
    }
    case VMFERRY_REC_DATA:
      if (!(j = vmferry_pipeline_slot (im->p)))
        goto out;
      j->end = false;
      j->rec = rec;
      memcpy (j->in, rec.payload, rec.payload_len);
      vmferry_pipeline_submit (im->p, j, true);
      break;
    case VMFERRY_REC_ZERO:
      /* The file is fresh and sparse: zeros need no write. */
      vmferry_progress_add (opts->progress, rec.length);
      break;
    case VMFERRY_REC_FILE_END: {
      unsigned char digest[16];
      if (vmferry_record_file_end (&rec, rec.payload, digest) < 0 ||
          !(j = vmferry_pipeline_slot (im->p)))
        goto out;
      j->end = true;
      j->rec = rec;
      memcpy (j->digest, digest, 16);
      vmferry_pipeline_submit (im->p, j, false);
      break;
    }
    case VMFERRY_REC_END:
      seen_end = true;
      break;
    case VMFERRY_REC_STREAM_HEADER: {
      const struct vmferry_stream_header *h = vmferry_validator_header (v);
      im->mandatory = h->mandatory;
      if (im->mandatory & VMFERRY_FEATURE_RESUME)
        memcpy (im->token, h->token, VMFERRY_RESUME_TOKEN_SIZE);
      break;
    }
    default:
      break;                    /* skippable records */
    }
  }
  if (!seen_end) {
    int sig = vmferry_quit_signal ();
    /* A signal that asked to quit ended the input (quit.h). */
    if (sig)
      vmferry_set_error ("%s: interrupted by signal %d (%s) before the end of the "
                         "stream", opts->in_name, sig, strsignal (sig));
    else if (r == 0)
      vmferry_set_error ("%s: truncated: the stream ended before its END record",
                         opts->in_name);
    goto out;
  }
  /* Nothing may follow END (the reader checks) and all must be verified. */
  if (vmferry_validator_finish (v) < 0 || vmferry_stream_read_record (rd, &rec) != 0)
    goto out;
  if (vmferry_pipeline_finish (im->p) < 0 || syncer_wait (im, true) < 0) {
    /* The pipeline is finished: out does not finish it again. */
    vmferry_pipeline_free (im->p);
    im->p = NULL;
    goto out;
  }
  for (size_t i = 0; i < im->nr_files; i++)
    if (!im->files[i].verified) {
      vmferry_set_error ("%s: file %s was never completed", opts->in_name,
                         im->files[i].name);
      goto out_nofinish;
    }
  ret = 0;
  goto out_nofinish;
 out:
  im->cut = vmferry_stream_reader_was_cut (rd) || vmferry_quit_signal ();
  if (im->p && im->cut && im->resumable) {
    char saved[VMFERRY_ERROR_MAX];
    snprintf (saved, sizeof saved, "%s", vmferry_get_error ());
    /* A cut: every record that came whole was checked, so write them
     * all before the progress is kept.  A failure now (a write, a
     * digest) is a real one.
     */
    if (vmferry_pipeline_finish (im->p) == 0)
      vmferry_restore_error (saved, 0);
    else
      im->cut = false;
  }
  else if (im->p) {
    char saved[VMFERRY_ERROR_MAX];
    snprintf (saved, sizeof saved, "%s", vmferry_get_error ());
    vmferry_pipeline_abort (im->p);
    /* A worker's error (e.g. ENOSPC) explains more than "aborted". */
    if (vmferry_pipeline_finish (im->p) == 0 || saved[0])
      vmferry_restore_error (saved, 0);
  }
 out_nofinish:
  /* Whatever it was asked is done before the state is kept or dropped. */
  if (syncer_wait (im, true) < 0 && ret == 0)
    ret = -1;
  vmferry_pipeline_free (im->p);
  im->p = NULL;
  vmferry_stream_reader_free (rd);
  vmferry_validator_free (v);
  return ret;
}

/* A cut: make what was written durable, record it, close the files.
 * Returns -1 (error set) if that failed and the import must clean up.
 */
static int
keep_progress (struct importer *im)
{
  char saved[VMFERRY_ERROR_MAX];

  snprintf (saved, sizeof saved, "%s", vmferry_get_error ());
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    if (f->fd < 0)
      continue;
    if (f->role != VMFERRY_ROLE_TPM && !f->verified && im->st.files[i].tmp &&
        f->written_end > im->st.files[i].offset &&
        fdatasync (f->fd) == 0 && vmferry_import_save_state (im, i, f->written_end) < 0)
      return -1;
    vmferry_import_close_file (f);
  }
  vmferry_restore_error (saved, 0);
  return 0;
}


/* Everything this run made goes: its temporary files, and its state. */
static void
drop_everything (struct importer *im)
{
  vmferry_place_remove_temporaries (im);
  if (im->keep_state) {
    vmferry_target_unlink (&im->tgt, im->state_file);
    vmferry_target_unlink (&im->tgt, im->written_file);
    im->keep_state = false;
  }
}

static void
importer_free (struct importer *im)
{
  /* The lock file goes with the last of this domain's transfers. */
  if (im->lock_fd >= 0 && !im->keep_state)
    vmferry_resume_unlock_remove (&im->tgt, im->name, im->lock_fd);
  else if (im->lock_fd >= 0)
    close (im->lock_fd);
  im->lock_fd = -1;
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    vmferry_import_close_file (f);
    free (f->name);
    free (f->source_path);
    free (f->format);
    free (f->final);
    free (f->final_path);
    free (f->tmp);
    free (f->pool);
    free (f->volume);
    vmferry_digest_free (f->dg);
    vmferry_digest_free (f->wdg);
  }
  free (im->files);
  free (im->tpm_dir);
  free (im->nvram_new);
  free (im->pool);
  free (im->name);
  free (im->src_name);
  free (im->uuid);
  free (im->manifest);
  free (im->state_file);
  free (im->written_file);
  vmferry_resume_state_free (&im->st);
  if (im->written_fd >= 0)
    close (im->written_fd);
  vmferry_target_close (&im->tpm_root);
  vmferry_target_close (&im->tgt);
  free (im->dir);
  pthread_mutex_destroy (&im->st_lock);
  pthread_mutex_destroy (&im->save_lock);
  pthread_cond_destroy (&im->st_cond);
  if (im->doc)
    xmlFreeDoc (im->doc);
  if (im->conn)
    virConnectClose (im->conn);
}

static void
importer_init (struct importer *im, const struct vmferry_import_opts *opts)
{
  memset (im, 0, sizeof *im);
  im->opts = opts;
  im->lock_fd = im->written_fd = -1;
  im->sync_idx = -1;
  im->tgt.fd = im->tpm_root.fd = -1;
  pthread_mutex_init (&im->st_lock, NULL);
  pthread_mutex_init (&im->save_lock, NULL);
  pthread_cond_init (&im->st_cond, NULL);
}

/* What was done, in one line (log.h). */
static void
set_summary (const struct importer *im, double t0)
{
  const struct vmferry_import_opts *opts = im->opts;
  char size[32], took[32];
  uint64_t bytes = 0;

  for (size_t i = 0; i < im->nr_files; i++)
    bytes += im->files[i].allocated;
  vmferry_human_size (bytes, size, sizeof size);
  vmferry_human_duration (vmferry_monotonic () - t0, took, sizeof took);
  vmferry_set_summary ("domain %s imported into %s%s%s (%zu file%s, %s in %s)",
                       im->name, im->pool ? "pool " : "",
                       im->pool ? im->pool : im->dir,
                       opts->start ? ", defined and started"
                       : opts->define ? " and defined" : "",
                       im->nr_files, im->nr_files == 1 ? "" : "s", size, took);
}

int
vmferry_import (const struct vmferry_import_opts *opts)
{
  struct importer im;
  double t0 = vmferry_monotonic ();
  int r = -1, k;

  importer_init (&im, opts);
  if (opts->define || opts->pool) {
    im.conn = vmferry_virt_connect (opts->uri);
    if (im.conn == NULL)
      goto out;
  }
  /* Neither --dir nor --pool: the directory comes from the stream (see
   * dir_from_manifest), once its manifest has been read.
   */
  if (opts->pool && !(im.pool = strdup (opts->pool))) {
    vmferry_set_error_errno (ENOMEM, "import");
    goto out;
  }
  if (opts->pool || opts->dir) {
    im.dir = opts->pool ? pool_dir (im.conn, opts->pool) : strdup (opts->dir);
    if (im.dir == NULL || vmferry_target_open (&im.tgt, im.dir, false, 0) < 0)
      goto out;
  }
  if (read_stream (&im) < 0) {
    if (im.keep_state && im.cut && im.resumable)
      goto fail_keep_state;
    goto fail;
  }
  if (opts->resume_query) {
    r = 0;
    goto out;
  }
  if (im.already) {
    vmferry_notice ("domain %s is already on this host, defined from the same "
                    "source state: nothing to do", im.name);
    r = VMFERRY_IMPORT_ALREADY;
    goto out;
  }
  if (vmferry_fault ("import-end") < 0)
    goto fail;
  k = vmferry_place (&im);
  if (k < 0 && im.st.phase == VMFERRY_RESUME_PLACE)
    goto out;                   /* stuck: the journal is kept, the message says so */
  if (k < 0) {
    char msg[VMFERRY_ERROR_MAX];
    if (!im.resumable)
      goto fail;
    /* Every file is verified and kept: placing them later needs no data. */
    snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
    vmferry_set_error ("%s; nothing was defined or replaced; the verified copy is "
                       "kept in %s (%s): run the same vmferry-send or vmferry-migrate "
                       "again to place it without sending the data again, or "
                       "vmferry-import --abort=%s --dir %s to remove it",
                       msg, im.dir, im.state_file, im.name, im.dir);
    goto out;
  }
  if (k > 0)                    /* defined but not started */
    goto out;
  if (im.pool) {
    /* The files are in place and verified: a refresh that fails only
     * delays the pool's listing, so it is a warning.
     */
    CLEANUP_VIR_POOL virStoragePoolPtr p = virStoragePoolLookupByName (im.conn, im.pool);
    if (p == NULL || virStoragePoolRefresh (p, 0) < 0) {
      vmferry_virt_error ("storage pool %s: refresh", im.pool);
      vmferry_warn ("%s", vmferry_get_error ());
    }
  }
  set_summary (&im, t0);
  r = 0;
  goto out;

 fail_keep_state:
  if (keep_progress (&im) == 0) {
    char msg[VMFERRY_ERROR_MAX];
    snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
    vmferry_set_error ("%s; nothing was defined; the verified progress was kept in %s "
                       "(%s): run the same vmferry-send or vmferry-migrate again to "
                       "resume, or vmferry-import --abort=%s --dir %s to remove it",
                       msg, im.dir, im.state_file, im.name, im.dir);
    goto out;
  }
  /* fall through: the progress could not be kept */
 fail:
  drop_everything (&im);
  {
    char msg[VMFERRY_ERROR_MAX];
    snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
    vmferry_set_error ("%s; nothing was defined and no file was left in %s",
                       msg, im.dir ? im.dir : "the target directory");
  }
 out:
  importer_free (&im);
  return r;
}

/* Abort the transfer of domain NAME into the target of IM (a name from a
 * directory entry or the user): a placement a kill interrupted is first
 * finished or undone, then its temporary files and state go.  Returns 1
 * if something was removed, -1 with the error set.
 */
static int
abort_one (struct importer *im, const char *name)
{
  struct vmferry_resume_state st;
  int r;

  free (im->name);
  im->name = strdup (name);
  if (im->name == NULL) {
    vmferry_set_error_errno (ENOMEM, "abort");
    return -1;
  }
  free (im->state_file);
  free (im->written_file);
  im->state_file = vmferry_resume_name (name, "json");
  im->written_file = vmferry_resume_name (name, "written");
  if (im->state_file == NULL || im->written_file == NULL)
    return -1;
  /* An import cut a moment ago may still be saving its state. */
  im->lock_fd = vmferry_resume_lock (&im->tgt, name, 10);
  if (im->lock_fd < 0)
    return -1;
  vmferry_resume_remove_stale (&im->tgt, name);
  r = vmferry_resume_load (&im->tgt, im->state_file, &st);
  if (r == 0) {
    vmferry_set_error ("%s: no interrupted transfer of domain %s", im->dir, name);
    r = -1;
    goto out;
  }
  if (r < 0) {
    /* Damaged: it cannot say which files are its own. */
    char msg[VMFERRY_ERROR_MAX];
    snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
    vmferry_target_unlink (&im->tgt, im->state_file);
    vmferry_target_unlink (&im->tgt, im->written_file);
    vmferry_notice ("%s; removed it, but not its temporary files "
                    "(%s/.NAME.vmferry-XXXXXX)", msg, im->dir);
    r = 1;
    goto out;
  }
  vmferry_target_close (&im->tpm_root);
  if (st.tpm_tmp &&
      vmferry_target_open (&im->tpm_root, st.tpm_in_swtpm ? VMFERRY_SWTPM_STORAGE : im->dir,
                           false, 0) < 0)
    goto fail_state;
  if (st.phase == VMFERRY_RESUME_PLACE) {
    int k;
    if (st.define && im->conn == NULL && !(im->conn = vmferry_virt_connect (im->opts->uri)))
      goto fail_state;
    k = vmferry_place_recover (im, &st);
    if (k < 0)
      goto fail_state;
    if (k > 0) {
      vmferry_notice ("the import of %s into %s had completed: it was finished, "
                      "nothing was removed", name, im->dir);
      vmferry_resume_state_free (&st);
      r = 1;
      goto out;
    }
  }
  {
    unsigned n = vmferry_resume_discard (&im->tgt, st.tpm_tmp ? &im->tpm_root : NULL, &st);
    vmferry_verbose ("aborted the transfer of %s into %s: %u files removed", name,
                     im->dir, n);
  }
  vmferry_resume_state_free (&st);
  r = 1;
 out:
  vmferry_resume_unlock_remove (&im->tgt, name, im->lock_fd);
  im->lock_fd = -1;
  return r;
 fail_state:
  vmferry_resume_state_free (&st);
  r = -1;
  close (im->lock_fd);
  im->lock_fd = -1;
  return r;
}

int
vmferry_import_abort (const struct vmferry_import_opts *opts, const char *name)
{
  struct importer im;
  DIR *d = NULL;
  struct dirent *e;
  int count = 0, r = -1;

  importer_init (&im, opts);
  if (!opts->pool && !opts->dir) {
    vmferry_set_error ("--abort: give the --dir or --pool the transfer was going to");
    goto out;
  }
  if (opts->pool && !(im.conn = vmferry_virt_connect (opts->uri)))
    goto out;
  im.dir = opts->pool ? pool_dir (im.conn, opts->pool) : strdup (opts->dir);
  if (im.dir == NULL || vmferry_target_open (&im.tgt, im.dir, false, 0) < 0)
    goto out;
  if (name) {
    if (!vmferry_name_ok (name, VMFERRY_NAME_HIDDEN_OK)) {
      vmferry_set_error ("--abort=%s: not a domain name", name);
      goto out;
    }
    r = abort_one (&im, name);
    goto out;
  }
  d = vmferry_target_opendir (&im.tgt);
  if (d == NULL)
    goto out;
  r = 0;
  while ((e = readdir (d)) != NULL) {
    const char *p = ".vmferry-resume-";
    size_t len = strlen (e->d_name), plen = strlen (p);
    CLEANUP_FREE char *n = NULL;

    if (len <= plen + 5 || strncmp (e->d_name, p, plen) != 0 ||
        strcmp (e->d_name + len - 5, ".json") != 0)
      continue;
    n = strndup (e->d_name + plen, len - plen - 5);
    if (n == NULL || abort_one (&im, n) < 0)
      r = -1;
    else
      count++;
  }
  if (r == 0 && count == 0) {
    vmferry_set_error ("%s: no interrupted transfer to abort", im.dir);
    r = -1;
  }
  if (r == 0)
    r = count;
 out:
  if (d)
    closedir (d);
  importer_free (&im);
  return r;
}
