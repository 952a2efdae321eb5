/* vmferry: import a stream on this host (see import.h).
 *
 * The calling thread reads and checks records; workers decompress and
 * write data records in parallel (pwrite at the record's offset into a
 * sparse temporary file, with O_DIRECT where aligned); the collector,
 * which sees jobs in stream order, verifies each file when its FILE_END
 * arrives (from the digest of what it saw written, or, for a resumed
 * file, by reading it back from disk) after fdatasync.  A resumable
 * import has one more thread, the syncer, that makes progress durable
 * while the others go on (see SYNC_BYTES in import-resume.c).  Only when
 * END has arrived and every file verified does place.c put the files in
 * place and define the domain, as one journaled step.  Where the files go
 * is decided in import-target.c, how they are written in import-write.c.
 *
 * Every file below the target directory is reached through its
 * struct vmferry_target (target.h): by names checked once, relative to
 * the directory's fd, never through a link.  A state file names every
 * temporary file before it is made, so nothing a kill leaves is unknown
 * to the next run.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "cleanup.h"
#include "digest.h"
#include "domain.h"
#include "error.h"
#include "hex.h"
#include "fault.h"
#include "handoff.h"
#include "import-dir.h"
#include "import-int.h"
#include "import-result.h"
#include "log.h"
#include "names.h"
#include "pipeline.h"
#include "progress.h"
#include "quit.h"
#include "stream.h"
#include "stripe.h"
#include "tar.h"
#include "validate.h"
#include "virt.h"

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

    f->fd = f->dfd = f->dev_fd = -1;
    im->nr_files = i + 1;
    f->role = (int) mf->role;
    f->backing = mf->backing;
    f->size = mf->size;
    f->guest_size = mf->has_virtual_size ? mf->virtual_size : mf->size;
    f->allocated = mf->allocated;
    f->name = strdup (mf->volume ? mf->volume : mf->name);
    f->source_path = strdup (mf->source_path);
    f->format = strdup (mf->format);
    if (!f->name || !f->source_path || !f->format)
      goto nomem;
    if (mf->target && !(f->target = strdup (mf->target)))
      goto nomem;
    if (mf->volume &&
        (!(f->pool = strdup (mf->pool)) || !(f->volume = strdup (mf->volume))))
      goto nomem;
  }
  return 0;
 nomem:
  vmferry_set_error_errno (ENOMEM, "manifest");
  return -1;
}

static bool
is_pipe (int fd)
{
  struct stat sb;

  return fstat (fd, &sb) == 0 &&
         (S_ISFIFO (sb.st_mode) || S_ISSOCK (sb.st_mode));
}

/* The reader of the input.  A stream from a pipe or a socket (the link
 * of vmferry-send) is read ahead into a ring of opts->read_ahead bytes
 * by a thread: the link goes on while this thread makes the resume
 * state durable, creates a file or waits for the writers.  Anything else
 * (a file, an archive, a resume query's few records) is read as it is
 * needed.  NULL with the error set.
 */
static struct vmferry_stream_reader *
open_input (const struct vmferry_import_opts *opts,
            struct vmferry_read_ahead *ra,
            struct vmferry_tar_reader **tar_rtn,
            struct vmferry_dir_reader **dir_rtn)
{
  struct vmferry_stream_reader *rd;
  unsigned char peek[4];
  size_t got;

  if (opts->read_ahead == 0 || opts->resume_query || !is_pipe (opts->in_fd))
    return vmferry_archive_open (opts->in_fd, opts->in_name, tar_rtn,
                                 dir_rtn);
  if (vmferry_input_peek (opts->in_fd, opts->in_name, peek, &got) < 0)
    return NULL;
  if (got < 4 || memcmp (peek, VMFERRY_REC_MAGIC, 4) != 0)
    return vmferry_archive_open_peeked (opts->in_fd, opts->in_name, peek,
                                        got, tar_rtn, dir_rtn);
  *tar_rtn = NULL;
  *dir_rtn = NULL;
  if (vmferry_read_ahead_start (ra, opts->in_fd, opts->in_name,
                                opts->read_ahead) < 0)
    return NULL;
  rd = vmferry_stream_reader_new_fn (vmferry_handoff_read, ra->h,
                                     opts->in_name);
  if (rd && vmferry_stream_reader_unread (rd, peek, got) < 0) {
    vmferry_stream_reader_free (rd);
    return NULL;
  }
  return rd;
}

/* Read the stream to its END; every file written and verified. */
static int
read_stream (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  /* A file or pipe holds a stream or an archive (tar.h), told apart by
   * its first bytes, or a tar made by hand (import-dir.h); stripes carry
   * streams only.
   */
  struct vmferry_tar_reader *tar = NULL;
  struct vmferry_dir_reader *dir = NULL;
  struct vmferry_read_ahead ra = { .h = NULL };
  struct vmferry_stream_reader *rd =
      opts->stripes
          ? vmferry_stream_reader_new_fn (vmferry_stripes_read, opts->stripes,
                                          opts->in_name)
      : opts->from_dir ? vmferry_dir_open (opts->from_dir, opts->from_xml, &dir)
          : open_input (opts, &ra, &tar, &dir);
  /* The same checks as vmferry-info --verify (formats/validate.h): one
   * validator decides what a stream may say.
   */
  struct vmferry_validator *v = vmferry_validator_new (opts->in_name);
  unsigned threads, depth;
  struct vmferry_record rec;
  struct job *j;
  int r = -1, ret = -1;
  bool seen_end = false;
  /* The current file's FILE_MAP, handed to its FILE_END job. */
  bool have_map = false;
  uint64_t map_chunk = 0;
  unsigned char map_root[16] = { 0 };

  if (rd == NULL || v == NULL) {
    if (v == NULL)
      vmferry_set_error_errno (ENOMEM, "%s", opts->in_name);
    vmferry_stream_reader_free (rd);
    vmferry_read_ahead_stop (&ra, false);
    vmferry_tar_reader_free (tar);
    vmferry_dir_reader_free (dir);
    vmferry_validator_free (v);
    return -1;
  }
  im->unverified = dir != NULL;
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
          vmferry_import_pool_from_manifest (im) < 0 ||
          (im->dir == NULL && vmferry_import_dir_from_manifest (im) < 0))
        goto out;
      progress_total (opts->progress, vmferry_validator_manifest (v));
      k = vmferry_resume_stream_id (vmferry_validator_manifest (v),
                                    im->stream_id);
      if (k < 0)
        goto out;
      im->resumable_id = k > 0;
      if (k == 0) {
        /* An older writer's stream: it cannot be resumed, but its state
         * still needs an identity.
         */
        XXH128_canonical_t c;
        XXH128_canonicalFromHash (&c, XXH3_128bits (json, len));
        vmferry_hex_encode (c.digest, 16, im->stream_id);
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
        vmferry_set_error ("%s: the domain XML came before the manifest",
                           opts->in_name);
        goto out;
      }
      im->doc = vmferry_domain_parse (xml, len, "domain XML in the stream");
      if (im->doc == NULL || vmferry_import_plan_names (im) < 0 ||
          vmferry_import_open_tpm_root (im) < 0)
        goto out;
      k = vmferry_import_load_state (im, &old);
      if (k < -1)
        goto out;
      if (vmferry_import_check_devices (im) < 0 ||
          vmferry_import_check_targets (im) < 0 ||
          (!im->already && vmferry_import_pool_check (im) < 0)) {
        if (k == 1)
          vmferry_resume_state_free (&old);
        goto out;
      }
      if (im->already) {
        if (k == 1)
          vmferry_resume_state_free (&old);
        if (opts->resume_query) {
          char what[512];
          snprintf (what, sizeof what,
                    "domain %s is already defined on this host "
                    "from the same source state",
                    im->name);
          if (vmferry_import_answer_query (im, NULL, what, true) < 0)
            goto out;
        }
        ret = 0;
        goto out_nofinish;
      }
      if (vmferry_import_setup_resume (im, &old, k) < 0 ||
          (!opts->resume_query && vmferry_import_pool_create (im) < 0))
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
      im->p = vmferry_pipeline_new (&vmferry_import_ops, im, threads, depth,
                                    sizeof (struct job));
      if (im->p == NULL ||
          (im->resumable && vmferry_import_syncer_start (im) < 0))
        goto out;
      break;
    }
    case VMFERRY_REC_FILE_BEGIN: {
      uint64_t size;
      if (im->p == NULL || rec.file >= im->nr_files) {
        vmferry_set_error ("%s: record %" PRIu64 ": file %" PRIu32
                           " before the domain XML",
                           opts->in_name, rec.seq, rec.file);
        goto out;
      }
      if (vmferry_record_file_begin (&rec, rec.payload, &size) < 0 ||
          vmferry_import_begin_file (im, rec.file, size) < 0)
        goto out;
      break;
    }
    case VMFERRY_REC_DATA:
      /* On a device, what lies before this record is zeroed first (no
       * worker writes there).
       */
      if (im->files[rec.file].direct) {
        if (vmferry_import_device_gap (im, &im->files[rec.file],
                                       rec.offset) < 0)
          goto out;
        vmferry_import_device_data (&im->files[rec.file],
                                    rec.offset + rec.length);
      }
      if (!(j = vmferry_pipeline_slot (im->p)))
        goto out;
      j->end = false;
      j->rec = rec;
      memcpy (j->in, rec.payload, rec.payload_len);
      vmferry_pipeline_submit (im->p, j, true);
      break;
    case VMFERRY_REC_ZERO:
      /* The file is fresh and sparse: zeros need no write.  A device is
       * zeroed up to the next data record or the end.
       */
      vmferry_progress_add (opts->progress, rec.length);
      break;
    case VMFERRY_REC_FILE_END: {
      unsigned char digest[16];
      if (vmferry_record_file_end (&rec, rec.payload, digest) < 0 ||
          (im->files[rec.file].direct &&
           vmferry_import_device_gap (im, &im->files[rec.file],
                                      im->files[rec.file].size) < 0) ||
          !(j = vmferry_pipeline_slot (im->p)))
        goto out;
      j->end = true;
      j->rec = rec;
      memcpy (j->digest, digest, 16);
      j->have_map = have_map;
      j->map_chunk = map_chunk;
      memcpy (j->map_root, map_root, 16);
      have_map = false;
      vmferry_pipeline_submit (im->p, j, false);
      break;
    }
    case VMFERRY_REC_FILE_MAP:
      if (vmferry_record_file_map (&rec, rec.payload, &map_chunk,
                                   map_root) < 0)
        goto out;
      have_map = true;
      break;
    case VMFERRY_REC_END:
      seen_end = true;
      break;
    case VMFERRY_REC_STREAM_HEADER: {
      const struct vmferry_stream_header *h = vmferry_validator_header (v);
      im->mandatory = h->mandatory;
      /* Uncovered ranges would read as holes: a refresh is applied onto
       * its base by vmferry-sync's receiver only.
       */
      if (im->mandatory & VMFERRY_FEATURE_REFRESH) {
        vmferry_set_error ("%s: a refresh stream (vmferry-sync) holds only "
                           "what changed on a standby copy: vmferry-import "
                           "cannot apply it", opts->in_name);
        goto out;
      }
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
      vmferry_set_error ("%s: interrupted by signal %d (%s) before the end of "
                         "the stream", opts->in_name, sig, strsignal (sig));
    else if (r == 0)
      vmferry_set_error ("%s: truncated: the stream ended before its END "
                         "record", opts->in_name);
    else {
      vmferry_tar_reader_explain (tar);
      vmferry_dir_reader_explain (dir);
    }
    goto out;
  }
  /* Nothing may follow END (the reader checks) and all must be verified. */
  if (vmferry_validator_finish (v) < 0 ||
      vmferry_stream_read_record (rd, &rec) != 0)
    goto out;
  if (vmferry_pipeline_finish (im->p) < 0 ||
      vmferry_import_syncer_wait (im, true) < 0) {
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
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    /* A cut: every record that came whole was checked, so write them
     * all before the progress is kept.  A failure now (a write, a
     * digest) is a real one.
     */
    if (vmferry_pipeline_finish (im->p) == 0)
      vmferry_restore_saved_error (&saved);
    else
      im->cut = false;
  }
  else if (im->p) {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    vmferry_pipeline_abort (im->p);
    /* A worker's error (e.g. ENOSPC) explains more than "aborted". */
    if (vmferry_pipeline_finish (im->p) == 0 || saved.msg[0])
      vmferry_restore_saved_error (&saved);
  }
 out_nofinish:
  /* Whatever it was asked is done before the state is kept or dropped. */
  if (vmferry_import_syncer_wait (im, true) < 0 && ret == 0)
    ret = -1;
  vmferry_pipeline_free (im->p);
  im->p = NULL;
  vmferry_stream_reader_free (rd);
  vmferry_read_ahead_stop (&ra, ret < 0);
  vmferry_tar_reader_free (tar);
  vmferry_dir_reader_free (dir);
  vmferry_validator_free (v);
  return ret;
}

/* A cut: make what was written durable, record it, close the files.
 * Returns -1 (error set) if that failed and the import must clean up.
 */
static int
keep_progress (struct importer *im)
{
  struct vmferry_saved_error saved;

  vmferry_save_error (&saved);
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    if (f->fd < 0)
      continue;
    if (f->role != VMFERRY_ROLE_TPM && !f->verified && im->st.files[i].tmp &&
        f->written_end > im->st.files[i].offset && fdatasync (f->fd) == 0 &&
        vmferry_import_save_state (im, i, f->written_end) < 0)
      return -1;
    vmferry_import_close_file (f);
  }
  vmferry_restore_saved_error (&saved);
  return 0;
}


/* Everything this run made goes: its temporary files, and its state. */
static void
drop_everything (struct importer *im)
{
  vmferry_place_remove_temporaries (im);
  if (im->keep_state) {
    /* A volume that cannot be deleted stays named in the state, for the
     * next run or --abort.
     */
    if (vmferry_import_pool_delete (im, &im->st) < 0) {
      vmferry_import_save_state (im, -1, 0);
      return;
    }
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
    free (f->target);
    free (f->final);
    free (f->final_path);
    free (f->tmp);
    free (f->pool);
    free (f->volume);
    free (f->device);
    if (f->dev_fd >= 0)
      close (f->dev_fd);
    vmferry_digest_free (f->dg);
    vmferry_digest_free (f->wdg);
    vmferry_map_free (f->map);
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
set_summary (const struct importer *im, double t0, bool fixup_not_done)
{
  const struct vmferry_import_opts *opts = im->opts;
  char size[32], took[32];
  uint64_t bytes = 0;

  for (size_t i = 0; i < im->nr_files; i++)
    bytes += im->files[i].allocated;
  vmferry_human_size (bytes, size, sizeof size);
  vmferry_human_duration (vmferry_monotonic () - t0, took, sizeof took);
  vmferry_set_summary ("domain %s imported into %s%s%s (%zu file%s, %s in "
                       "%s)%s%s", im->name, im->pool ? "pool " : "",
                       im->pool ? im->pool : im->dir,
                       opts->start ? ", defined and started"
                       : opts->define ? " and defined" : "",
                       im->nr_files, im->nr_files == 1 ? "" : "s", size, took,
                       /* import-dir.h: digests of what was read */
                       im->unverified ? "; no manifest: copied as found, not "
                       "verified against a sender" : "",
                       fixup_not_done ? "; the guest's fix-ups were not done"
                       : "");
}

/* The domain's name in the caller's result, if it asked for one (out
 * of memory, it stays NULL: the import itself is done).
 */
static void
result_name (const struct importer *im)
{
  struct vmferry_import_result *res = im->opts->result;

  if (res) {
    free (res->domain);
    res->domain = strdup (im->name);
  }
}

int
vmferry_import (const struct vmferry_import_opts *opts)
{
  struct importer im;
  double t0 = vmferry_monotonic ();
  bool fixup_not_done = false;
  int r = -1, k;

  importer_init (&im, opts);
  if (opts->define || opts->pool) {
    im.conn = vmferry_virt_connect (opts->uri);
    if (im.conn == NULL)
      goto out;
  }
  /* Neither --dir nor --pool: the directory comes from the stream (see
   * vmferry_import_dir_from_manifest), once its manifest has been read.
   */
  if (opts->pool && !(im.pool = strdup (opts->pool))) {
    vmferry_set_error_errno (ENOMEM, "import");
    goto out;
  }
  if (opts->pool || opts->dir) {
    im.dir = opts->pool ? vmferry_import_pool_dir (im.conn, opts->pool,
                                                   &im.pool_type)
                        : strdup (opts->dir);
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
    result_name (&im);
    goto out;
  }
  if (vmferry_fault ("import-end") < 0)
    goto fail;
  if (opts->verify_guest && vmferry_import_verify_guest (&im) < 0)
    goto fail;
  if (vmferry_import_convert (&im) < 0 ||
      vmferry_import_fixup (&im, &fixup_not_done) < 0)
    goto fail;
  k = vmferry_place (&im);
  if (k < 0 && im.st.phase == VMFERRY_RESUME_PLACE)
    goto out;                   /* stuck: the journal is kept, and said */
  if (k < 0) {
    struct vmferry_saved_error saved;

    if (!im.resumable)
      goto fail;
    /* Every file is verified and kept: placing them later needs no data. */
    vmferry_save_error (&saved);
    vmferry_append_error (&saved, "nothing was defined or replaced; the "
                          "verified copy is kept in %s (%s): run the same "
                          "vmferry-send or vmferry-migrate again to place it "
                          "without sending the data again, or vmferry-import "
                          "--abort=%s --dir %s to remove it",
                          im.dir, im.state_file, im.name, im.dir);
    goto out;
  }
  if (k > 0)                    /* defined but not started */
    goto out;
  if (im.pool) {
    /* The files are in place and verified: a refresh that fails only
     * delays the pool's listing, so it is a warning.
     */
    CLEANUP_VIR_POOL virStoragePoolPtr p =
        virStoragePoolLookupByName (im.conn, im.pool);
    if (p == NULL || virStoragePoolRefresh (p, 0) < 0) {
      vmferry_virt_error ("storage pool %s: refresh", im.pool);
      vmferry_warn ("%s", vmferry_get_error ());
    }
  }
  set_summary (&im, t0, fixup_not_done);
  result_name (&im);
  r = 0;
  goto out;

 fail_keep_state:
  if (keep_progress (&im) == 0) {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    vmferry_append_error (&saved, "nothing was defined; the verified progress "
                          "was kept in %s (%s): run the same vmferry-send or "
                          "vmferry-migrate again to resume, or vmferry-import "
                          "--abort=%s --dir %s to remove it",
                          im.dir, im.state_file, im.name, im.dir);
    vmferry_import_device_say_lost (&im);
    goto out;
  }
  /* fall through: the progress could not be kept */
 fail:
  drop_everything (&im);
  {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    vmferry_append_error (&saved, "nothing was defined and no file was left "
                          "in %s", im.dir ? im.dir : "the target directory");
    vmferry_import_device_say_lost (&im);
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
    vmferry_set_error ("%s: no interrupted transfer of domain %s", im->dir,
                       name);
    r = -1;
    goto out;
  }
  if (r < 0) {
    /* Damaged: it cannot say which files are its own. */
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    vmferry_target_unlink (&im->tgt, im->state_file);
    vmferry_target_unlink (&im->tgt, im->written_file);
    vmferry_notice ("%s; removed it, but not its temporary files "
                    "(%s/.NAME.vmferry-XXXXXX)", saved.msg, im->dir);
    r = 1;
    goto out;
  }
  vmferry_target_close (&im->tpm_root);
  if (st.tpm_tmp &&
      vmferry_target_open (&im->tpm_root,
                           st.tpm_in_swtpm ? VMFERRY_SWTPM_STORAGE : im->dir,
                           false, 0) < 0)
    goto fail_state;
  if (st.phase == VMFERRY_RESUME_PLACE) {
    int k;
    if (st.define && im->conn == NULL &&
        !(im->conn = vmferry_virt_connect (im->opts->uri)))
      goto fail_state;
    k = vmferry_place_recover (im, &st);
    if (k < 0)
      goto fail_state;
    if (k > 0) {
      vmferry_notice ("the import of %s into %s had completed: it was "
                      "finished, nothing was removed", name, im->dir);
      vmferry_resume_state_free (&st);
      r = 1;
      goto out;
    }
  }
  if (vmferry_import_pool_delete (im, &st) < 0) {
    vmferry_set_error ("%s/%s: the transfer of %s is kept: a volume it made "
                       "could not be deleted", im->dir, im->state_file, name);
    goto fail_state;
  }
  {
    unsigned n =
        vmferry_resume_discard (&im->tgt, st.tpm_tmp ? &im->tpm_root : NULL,
                                &st);
    vmferry_verbose ("aborted the transfer of %s into %s: %u files removed",
                     name, im->dir, n);
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
    vmferry_set_error ("--abort: give the --dir or --pool the transfer was "
                       "going to");
    goto out;
  }
  if (opts->pool && !(im.conn = vmferry_virt_connect (opts->uri)))
    goto out;
  im.dir = opts->pool ? vmferry_import_pool_dir (im.conn, opts->pool,
                                                 &im.pool_type)
                      : strdup (opts->dir);
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
