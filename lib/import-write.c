/* vmferry: an import writes its files (see import-int.h): temporary
 * files, the pipeline's jobs that decompress and write the records,
 * and each file verified at its FILE_END.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "full-rw.h"
#include "fault.h"
#include "import-int.h"
#include "log.h"
#include "pipeline.h"
#include "progress.h"
#include "qcow2.h"
#include "qemu-img.h"
#include "stream.h"

/* O_DIRECT writes: buffer, offset and length aligned to this (the
 * largest logical block size in use), for disks of at least this size.
 */
#define DIRECT_MIN_SIZE ((uint64_t) 64 * 1024 * 1024)


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
                                f->role == VMFERRY_ROLE_NVRAM ? 0600 : 0644,
                                false);
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

int
vmferry_import_begin_file (struct importer *im, uint32_t idx, uint64_t size)
{
  struct import_file *f = &im->files[idx];
  const struct vmferry_target *t =
      f->role == VMFERRY_ROLE_TPM ? &im->tpm_root : &im->tgt;

  if (size != f->size) {
    vmferry_set_error ("%s: file %s: size %" PRIu64
                       " differs from the manifest's %" PRIu64,
                       im->opts->in_name, f->name, size, f->size);
    return -1;
  }
  if (f->direct)
    return vmferry_import_device_begin (im, idx);
  if (f->tmp) {
    /* Resumed: continue in the temporary file the state names. */
    struct stat sb;
    f->fd = vmferry_target_open_file (t, f->tmp, O_RDWR);
    if (f->fd < 0 || fstat (f->fd, &sb) < 0 || (uint64_t) sb.st_size != size) {
      if (f->fd >= 0)
        vmferry_set_error ("%s/%s: not the size the state says", t->path,
                           f->tmp);
      vmferry_prefix_error ("%s: cannot resume", f->name);
      return -1;
    }
    /* Below the offset the state vouches for the data; above it this
     * run writes everything again, so what a cut left there goes.
     */
    if (f->resume_offset != VMFERRY_RESUME_COMPLETE &&
        f->resume_offset < size &&
        fallocate (f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   (off_t) f->resume_offset,
                   (off_t) (size - f->resume_offset)) < 0 &&
        errno != EOPNOTSUPP) {
      vmferry_set_error_errno (errno,
                               "%s/%s: cannot clear beyond the resume point",
                               t->path, f->tmp);
      return -1;
    }
    f->written_end = f->seg_start = f->resume_offset == VMFERRY_RESUME_COMPLETE
      ? size : f->resume_offset;
    f->seg_at = vmferry_monotonic ();
    if (!(f->map = vmferry_map_new (size, VMFERRY_MAP_CHUNK_SIZE)))
      return -1;
    vmferry_verbose ("%s: resuming %s/%s at byte %" PRIu64, f->name, t->path,
                     f->tmp, f->written_end);
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
  f->map = vmferry_map_new (size, VMFERRY_MAP_CHUNK_SIZE);
  if (f->dg == NULL || f->map == NULL)
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
  const char *name = f->direct ? f->device : f->tmp;
  int dfd = f->dfd;

  if (dfd >= 0 && !__atomic_load_n (&f->direct_refused, __ATOMIC_RELAXED) &&
      off % VMFERRY_DIRECT_ALIGN == 0 && len % VMFERRY_DIRECT_ALIGN == 0 &&
      (uintptr_t) data % VMFERRY_DIRECT_ALIGN == 0) {
    if (vmferry_pwrite_full (dfd, name, data, len, off) == 0)
      return 0;
    if (vmferry_get_errno () != EINVAL)
      return -1;
    /* The workers share the file: tell them all, and keep the fd until
     * the file is closed.
     */
    __atomic_store_n (&f->direct_refused, true, __ATOMIC_RELAXED);
    vmferry_debug ("%s: O_DIRECT refused, writing through the page cache",
                   name);
  }
  return vmferry_pwrite_full (f->fd, name, data, len, off);
}

/* qemu-img rebase -u: point an overlay at its backing file's new name.
 * The name is relative (both live in one directory), as QEMU resolves it
 * against the overlay's own directory.
 */
static int
rebase (const char *overlay, const char *backing, const char *format)
{
  char *argv[] = { (char *) "qemu-img", (char *) "rebase", (char *) "-u",
                   (char *) "-f", (char *) "qcow2", (char *) "-b",
                   (char *) backing, (char *) "-F", (char *) format,
                   (char *) overlay, NULL };

  if (vmferry_qemu_img (argv) < 0) {
    vmferry_prefix_error ("%s: setting its backing file to %s", overlay,
                          backing);
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
check_arrival (struct importer *im, struct import_file *f,
               const char *backing_name)
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
  j->in = vmferry_alloc_direct (VMFERRY_MAX_PAYLOAD);
  j->out = vmferry_alloc_direct (VMFERRY_CHUNK_SIZE);
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

/* The stream's FILE_MAP root against the map of what was written: a
 * second, independent check of the content, and the map a refresh will
 * start from.  Another chunk size cannot be compared (nor was it
 * written by this version): said, not refused.
 */
static int
check_map (struct importer *im, struct import_file *f, const struct job *j)
{
  unsigned char root[16];
  char want_hex[33], got_hex[33];

  if (j->map_chunk != vmferry_map_chunk (f->map)) {
    vmferry_debug ("%s: map chunk of %" PRIu64 " bytes: not compared",
                   f->name, j->map_chunk);
    return 0;
  }
  if (vmferry_map_root (f->map, root) < 0)
    return -1;
  if (memcmp (root, j->map_root, 16) != 0) {
    vmferry_digest_hex (j->map_root, want_hex);
    vmferry_digest_hex (root, got_hex);
    vmferry_set_error ("%s: file %s: map root mismatch after writing (stream "
                       "says %s, what was written has %s)",
                       im->opts->in_name, f->name, want_hex, got_hex);
    return -1;
  }
  return 0;
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
    const unsigned char *data =
        j->rec.flags & VMFERRY_REC_F_ZSTD ? j->out : j->in;
    /* A device write is not resumable: a later run writes it again. */
    bool claim = im->resumable && f->role != VMFERRY_ROLE_TPM && !f->direct;

    if (vmferry_import_digest_record (im, f, claim, j->rec.offset, data,
                                      j->rec.length) < 0)
      return -1;
    vmferry_progress_add (im->opts->progress, j->rec.length);
    /* In stream order, so everything below END is written. */
    if (end > f->written_end)
      f->written_end = end;
    if (!claim)
      return 0;
    return vmferry_import_claim_record (im, j->rec.file, j->rec.offset,
                                        j->rec.length);
  }
  /* The syncer must be done with this file before it is closed. */
  if (vmferry_import_syncer_wait (im, false) < 0)
    return -1;
  if (fdatasync (f->fd) < 0) {
    vmferry_set_error_errno (errno, "%s: fdatasync",
                            f->direct ? f->device : f->tmp);
    return -1;
  }
  /* A device has no f->dg: it is read back (below) from the device. */
  if (f->direct && vmferry_import_device_reread (f) < 0)
    return -1;
  if (f->dg) {
    vmferry_digest_final (f->dg, got);
    vmferry_digest_free (f->dg);
    f->dg = NULL;
  }
  else if (vmferry_map_fd (f->fd, f->direct ? f->device : f->tmp, f->map,
                           got) < 0)
    return -1;
  if (j->have_map && check_map (im, f, j) < 0)
    return -1;
  rf = f->role != VMFERRY_ROLE_TPM && im->keep_state && !f->direct
           ? &im->st.files[j->rec.file]
           : NULL;
  if (rf && rf->changed) {
    /* Complete and changed here by an earlier run (rebased): read back as
     * it was left, and the stream's digest must be the one it had.
     */
    if (memcmp (got, rf->local_digest, 16) != 0 ||
        memcmp (j->digest, rf->stream_digest, 16) != 0) {
      vmferry_set_error ("%s: file %s: not as an earlier run left it",
                         im->opts->in_name, f->name);
      return -1;
    }
  }
  else if (memcmp (got, j->digest, 16) != 0) {
    vmferry_digest_hex (j->digest, want_hex);
    vmferry_digest_hex (got, got_hex);
    vmferry_set_error ("%s: file %s: digest mismatch after writing (stream "
                       "says %s, what was written has %s)%s%s%s",
                       im->opts->in_name, f->name, want_hex, got_hex,
                       f->direct ? "; " : "", f->direct ? f->device : "",
                       f->direct ? " does not read back as sent" : "");
    return -1;
  }
  else if (check_arrival (im, f, NULL) < 0 ||
           (f->backing >= 0 && rebase_file (im, f, j->digest) < 0))
    return -1;
  vmferry_import_close_file (f);
  f->verified = true;
  vmferry_progress_done (im->opts->progress);
  if (rf &&
      vmferry_import_save_state (im, j->rec.file, VMFERRY_RESUME_COMPLETE) < 0)
    return -1;
  if (vmferry_fault ("import-file-verified") < 0)
    return -1;
  vmferry_verbose ("%s: verified", f->name);
  return 0;
}

const struct vmferry_pipeline_ops vmferry_import_ops = {
  .init = job_init, .fini = job_fini, .work = job_work, .done = job_done,
};
