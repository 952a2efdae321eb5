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
 * every file verified are the files renamed into place and the domain
 * defined.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/virterror.h>

#include "cleanup.h"
#include "digest.h"
#include "domain.h"
#include "error.h"
#include "extent.h"
#include "import.h"
#include "log.h"
#include "pipeline.h"
#include "resume.h"
#include "stripe.h"
#include "stream.h"
#include "virt.h"

#define SWTPM_STORAGE "/var/lib/libvirt/swtpm"

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
/* How long a resumable import waits for one still finishing. */
#define LOCK_WAIT_SECONDS 60

/* vmferry_import_interrupt: the signal, and the stream fd to cut. */
static volatile sig_atomic_t interrupted;
static volatile int interrupt_in_fd = -1, interrupt_null_fd = -1;
static struct vmferry_stripes_in *volatile interrupt_stripes;

extern char **environ;

struct import_file {
  int role;
  char *name;                   /* from the manifest, checked safe */
  char *source_path;            /* as on the source host */
  char *pool, *volume;          /* a disk that is a volume of a pool */
  char *format;
  char *final;                  /* where it ends up */
  char *tmp;                    /* where it is written first */
  char *backup;                 /* --force: the file it replaces, moved aside */
  int backing;                  /* index or -1 */
  uint64_t size, allocated;
  int fd;
  /* The same file opened with O_DIRECT, or -1: aligned data goes from
   * the decompression buffer to the disk without the copy into the page
   * cache (on this kind of machine that copy cost more CPU than zstd).
   */
  int dfd;
  bool direct_refused;          /* once: the file system said EINVAL */
  bool verified, placed;
  /* Resume: durable below resume_offset when the import started (or
   * VMFERRY_RESUME_COMPLETE); written_end tracks this run.  The collector
   * claims what it has seen in segments: the open one runs from seg_start
   * (where the last sync asked for ended), started at seg_at, and wdg is
   * the digest of its bytes.
   */
  uint64_t resume_offset, written_end, seg_start;
  double seg_at;
  struct vmferry_digest *wdg;
  /* A fresh file's digest, computed in stream order from the very bytes
   * written, so it needs no second read of the file.  NULL for a resumed
   * file, whose earlier part was written by another run: that one is read
   * back from disk at its end.
   */
  struct vmferry_digest *dg;
};

struct importer {
  const struct vmferry_import_opts *opts;
  char *dir;                    /* resolved target directory */
  char *tpm_dir, *tpm_tmp;      /* final and temporary TPM state dirs */
  char *pool;                   /* the pool the files go into, if any */
  char *name, *uuid;            /* of the domain as it will be defined */
  struct import_file *files;
  size_t nr_files;
  xmlDocPtr doc;
  virConnectPtr conn;
  struct vmferry_pipeline *p;

  /* Resume (resume.h). */
  char *manifest;               /* the manifest text, for the stream id */
  size_t manifest_len;
  uint64_t mandatory;           /* the stream's mandatory features */
  unsigned char token[VMFERRY_RESUME_TOKEN_LEN];   /* a RESUME stream's */
  bool keep_state;              /* resumable: the state file is ours */
  bool cut;                     /* the stream was cut, not corrupt */
  bool query_done;
  char *state_path;
  char *written_path;           /* the claims between syncs */
  int written_fd;
  int lock_fd;
  /* st_lock: st, written_fd and the syncer's request, between the reader
   * thread, the collector and the syncer.  save_lock: one state file
   * written at a time, in the order their texts were taken.
   */
  struct vmferry_resume_state st;
  pthread_mutex_t st_lock, save_lock;
  pthread_cond_t st_cond;       /* the syncer's request posted or done */
  pthread_t syncer;
  bool syncer_started, sync_stop, sync_failed;
  int sync_idx;                 /* the file to sync, -1: none */
  uint64_t sync_offset;         /* ... and what will then be durable */
  char sync_error[VMFERRY_ERROR_MAX];
};

struct job {
  bool end;                     /* FILE_END: verify; else DATA: write */
  struct vmferry_record rec;
  unsigned char *in;            /* payload copy */
  unsigned char *out;           /* decompressed */
  unsigned char digest[16];
};

static const char *
role_from_name (const char *s, int *role_rtn)
{
  static const struct { const char *name; int role; } roles[] = {
    { "disk", VMFERRY_ROLE_DISK }, { "nvram", VMFERRY_ROLE_NVRAM },
    { "tpm", VMFERRY_ROLE_TPM }, { "backing", VMFERRY_ROLE_BACKING },
  };
  for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
    if (strcmp (s, roles[i].name) == 0) {
      *role_rtn = roles[i].role;
      return roles[i].name;
    }
  return NULL;
}

/* A name from the stream becomes a path below a directory we choose: it
 * must be one plain component (or, for TPM state, a few of them) so it can
 * never escape that directory.
 */
static bool
safe_component (const char *s, size_t len)
{
  if (len == 0 || len > 255 || s[0] == '.')
    return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] == '/' || (unsigned char) s[i] < 0x20 || s[i] == 0x7f)
      return false;
  return true;
}

static bool
safe_name (const char *name, bool allow_dirs)
{
  const char *p = name;
  unsigned parts = 0;

  if (strlen (name) > 1024)
    return false;
  for (;;) {
    const char *slash = strchr (p, '/');
    size_t len = slash ? (size_t) (slash - p) : strlen (p);
    if (!safe_component (p, len) || ++parts > 8)
      return false;
    if (!slash)
      return true;
    if (!allow_dirs)
      return false;
    p = slash + 1;
  }
}

static const char *
json_str (json_object *o, const char *key)
{
  json_object *v;

  if (!json_object_object_get_ex (o, key, &v) || !json_object_is_type (v, json_type_string))
    return NULL;
  return json_object_get_string (v);
}

static bool
json_u64 (json_object *o, const char *key, uint64_t *rtn)
{
  json_object *v;

  if (!json_object_object_get_ex (o, key, &v) || !json_object_is_type (v, json_type_int))
    return false;
  errno = 0;
  *rtn = json_object_get_uint64 (v);
  return errno == 0 && json_object_get_int64 (v) >= 0;
}

static int
parse_manifest (struct importer *im, const char *json, size_t len)
{
  json_tokener *tok = json_tokener_new_ex (32);
  json_object *m = NULL, *files, *dom;
  const char *s;
  size_t n;
  int r = -1;

  if (tok == NULL) {
    vmferry_set_error_errno (ENOMEM, "manifest");
    return -1;
  }
  m = json_tokener_parse_ex (tok, json, (int) len);
  if (m == NULL || json_tokener_get_error (tok) != json_tokener_success ||
      !json_object_is_type (m, json_type_object)) {
    vmferry_set_error ("%s: manifest: not valid JSON", im->opts->in_name);
    goto out;
  }
  s = json_str (m, "format");
  if (s == NULL || strcmp (s, "vmferry-manifest") != 0 ||
      !json_object_object_get_ex (m, "domain", &dom) ||
      !json_object_object_get_ex (m, "files", &files) ||
      !json_object_is_type (files, json_type_array)) {
    vmferry_set_error ("%s: manifest: not a vmferry manifest", im->opts->in_name);
    goto out;
  }
  n = json_object_array_length (files);
  if (n > VMFERRY_MAX_FILES) {
    vmferry_set_error ("%s: manifest: %zu files (the limit is %d)",
                       im->opts->in_name, n, VMFERRY_MAX_FILES);
    goto out;
  }
  im->files = calloc (n ? n : 1, sizeof *im->files);
  if (im->files == NULL) {
    vmferry_set_error_errno (ENOMEM, "manifest");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_array_get_idx (files, i), *b;
    struct import_file *f = &im->files[i];
    const char *name = json_str (o, "name"), *role = json_str (o, "role");
    const char *src = json_str (o, "source_path"), *fmt = json_str (o, "format");
    uint64_t idx;

    f->fd = f->dfd = -1;
    f->backing = -1;
    im->nr_files = i + 1;
    if (!json_u64 (o, "index", &idx) || idx != i || !role ||
        !role_from_name (role, &f->role) || !name ||
        !safe_name (name, f->role == VMFERRY_ROLE_TPM) || !src || !fmt ||
        strlen (fmt) > 32 || !json_u64 (o, "size", &f->size) ||
        !json_u64 (o, "allocated", &f->allocated)) {
      vmferry_set_error ("%s: manifest: file %zu: missing or invalid fields "
                         "(index, role, name, source_path, format, size, allocated)",
                         im->opts->in_name, i);
      goto out;
    }
    if (json_object_object_get_ex (o, "backing", &b)) {
      uint64_t bi;
      if (!json_u64 (o, "backing", &bi) || bi >= i) {
        vmferry_set_error ("%s: manifest: file %zu (%s): bad backing index",
                           im->opts->in_name, i, name);
        goto out;
      }
      f->backing = (int) bi;
    }
    for (size_t k = 0; k < i; k++)
      if (strcmp (im->files[k].name, name) == 0) {
        vmferry_set_error ("%s: manifest: two files named %s",
                           im->opts->in_name, name);
        goto out;
      }
    f->name = strdup (name);
    f->source_path = strdup (src);
    f->format = strdup (fmt);
    if (!f->name || !f->source_path || !f->format) {
      vmferry_set_error_errno (ENOMEM, "manifest");
      goto out;
    }
    /* A disk that is a volume of a storage pool (vmferry-rewrite --pool,
     * or a volume disk at the source): it is placed as that volume.
     */
    if (json_object_object_get_ex (o, "pool", NULL) ||
        json_object_object_get_ex (o, "volume", NULL)) {
      const char *pool = json_str (o, "pool"), *vol = json_str (o, "volume");
      if (f->role != VMFERRY_ROLE_DISK || !pool || !vol || !safe_name (vol, false) ||
          !safe_name (pool, false)) {
        vmferry_set_error ("%s: manifest: file %zu (%s): invalid pool or volume",
                           im->opts->in_name, i, name);
        goto out;
      }
      free (f->name);
      f->name = strdup (vol);
      f->pool = strdup (pool);
      f->volume = strdup (vol);
      if (!f->name || !f->pool || !f->volume) {
        vmferry_set_error_errno (ENOMEM, "manifest");
        goto out;
      }
    }
  }
  r = 0;
 out:
  json_object_put (m);
  json_tokener_free (tok);
  return r;
}

/* Fix the name and UUID the domain will have, and every file's final
 * path; refuse (before anything is written) what exists unless --force.
 */
static int
plan_targets (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  uint64_t need = 0;
  struct statvfs sv;

  im->name = opts->new_name ? strdup (opts->new_name) : vmferry_domain_get_name (im->doc);
  if (im->name == NULL)
    return -1;
  if (opts->new_name) {
    /* A copy beside the original needs its own UUID; generate it here so
     * the TPM state can be placed under it before the define.
     */
    char buf[64] = "";
    FILE *fp = fopen ("/proc/sys/kernel/random/uuid", "r");
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
  else
    im->uuid = vmferry_domain_get_uuid (im->doc);
  if (im->uuid == NULL)
    return -1;

  if (opts->define) {
    CLEANUP_VIR_DOMAIN virDomainPtr by_name = virDomainLookupByName (im->conn, im->name);
    CLEANUP_VIR_DOMAIN virDomainPtr by_uuid = virDomainLookupByUUIDString (im->conn, im->uuid);

    if (by_uuid && strcmp (virDomainGetName (by_uuid), im->name) != 0) {
      vmferry_set_error ("domain %s already exists with this UUID (%s); "
                         "import it as a copy with --name NEW", virDomainGetName (by_uuid),
                         im->uuid);
      return -1;
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

  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    struct stat st;
    int r;

    if (f->role == VMFERRY_ROLE_TPM) {
      if (im->tpm_dir == NULL &&
          (opts->define ? asprintf (&im->tpm_dir, "%s/%s", SWTPM_STORAGE, im->uuid)
                        : asprintf (&im->tpm_dir, "%s/%s-tpm", im->dir, im->name)) < 0) {
        im->tpm_dir = NULL;
        goto nomem;
      }
      r = asprintf (&f->final, "%s/%s", im->tpm_dir, f->name);
    }
    else
      r = asprintf (&f->final, "%s/%s", im->dir, f->name);
    if (r < 0) {
      f->final = NULL;
      goto nomem;
    }
    need += f->allocated;
    if (f->role != VMFERRY_ROLE_TPM && lstat (f->final, &st) == 0) {
      if (!opts->force) {
        vmferry_set_error ("%s: already exists (use --force to replace it once "
                           "the new copy is verified)", f->final);
        return -1;
      }
      if (!S_ISREG (st.st_mode)) {
        vmferry_set_error ("%s: exists and is not a regular file: not replaced",
                           f->final);
        return -1;
      }
    }
  }
  if (im->tpm_dir && access (im->tpm_dir, F_OK) == 0 && !opts->force) {
    vmferry_set_error ("%s: TPM state already exists (use --force)", im->tpm_dir);
    return -1;
  }
  /* Refuse early rather than fill the disk: holes take no space. */
  if (statvfs (im->dir, &sv) == 0 &&
      (uint64_t) sv.f_bavail * sv.f_frsize < need) {
    vmferry_set_error ("%s: not enough free space: the files need %" PRIu64
                       " bytes, %" PRIu64 " are free", im->dir, need,
                       (uint64_t) sv.f_bavail * sv.f_frsize);
    return -1;
  }
  return 0;
 nomem:
  vmferry_set_error_errno (ENOMEM, "import");
  return -1;
}

static int
mkdir_p (const char *path, mode_t mode)
{
  CLEANUP_FREE char *copy = strdup (path);

  if (copy == NULL)
    return -1;
  for (char *p = copy + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir (copy, mode) < 0 && errno != EEXIST)
        return -1;
      *p = '/';
    }
  if (mkdir (copy, mode) < 0 && errno != EEXIST)
    return -1;
  return 0;
}

/* ---- resume ---- */

static const char *
base_of (const char *path)
{
  const char *slash = strrchr (path, '/');
  return slash ? slash + 1 : path;
}

/* Record file IDX's durable offset (or, with tmp_too, its temporary
 * file) and write the state; claims that end below the offset go.
 * Called from the reader thread, the collector and the syncer.  The text
 * is taken under st_lock, the file written and synced outside it, so the
 * collector claiming records does not wait for the disk.
 */
static int
save_state (struct importer *im, int idx, uint64_t offset)
{
  CLEANUP_FREE char *text = NULL;
  int r;

  if (!im->keep_state)
    return 0;
  pthread_mutex_lock (&im->save_lock);
  pthread_mutex_lock (&im->st_lock);
  if (idx >= 0) {
    struct vmferry_resume_file *rf = &im->st.files[idx];
    const struct import_file *f = &im->files[idx];
    if (rf->tmp == NULL && f->tmp && f->role != VMFERRY_ROLE_TPM)
      rf->tmp = strdup (base_of (f->tmp));
    if (rf->tmp) {
      size_t k = 0;
      rf->offset = offset;
      while (k < rf->nr_claims && rf->claims[k].end <= offset)
        k++;
      rf->nr_claims -= k;
      memmove (rf->claims, rf->claims + k, rf->nr_claims * sizeof rf->claims[0]);
    }
  }
  if (im->tpm_tmp && im->st.tpm_tmp == NULL)
    im->st.tpm_tmp = strdup (im->tpm_tmp);
  text = vmferry_resume_text (&im->st);
  pthread_mutex_unlock (&im->st_lock);
  r = text ? vmferry_resume_save_text (im->state_path, text) : -1;
  pthread_mutex_unlock (&im->save_lock);
  return r;
}

/* Rewrite the .written file from st; st_lock held. */
static int
write_claims_locked (struct importer *im)
{
  if (im->written_fd < 0) {
    im->written_fd = open (im->written_path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW |
                           O_CLOEXEC, 0600);
    if (im->written_fd < 0) {
      vmferry_set_error_errno (errno, "%s: cannot create", im->written_path);
      return -1;
    }
  }
  return vmferry_resume_write_claims (im->written_fd, im->written_path, &im->st);
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
      vmferry_set_error_errno (errno, "%s: fdatasync", im->files[idx].tmp);
      r = -1;
    }
    else
      r = save_state (im, idx, off);
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

  if (vmferry_resume_load_written (im->written_path, st) == 0) {
    unlink (im->written_path);
    return 0;
  }
  for (size_t i = 0; i < st->nr_files; i++) {
    struct vmferry_resume_file *rf = &st->files[i];
    CLEANUP_FREE char *p = NULL;
    CLEANUP_CLOSE int fd = -1;
    uint64_t at = rf->offset;

    if (rf->nr_claims == 0)
      continue;
    if (asprintf (&p, "%s/%s", im->dir, rf->tmp) < 0) {
      p = NULL;
      vmferry_set_error_errno (ENOMEM, "resume");
      return -1;
    }
    fd = open (p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
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
  if (kept && vmferry_resume_save (im->state_path, st) < 0)
    return -1;
  unlink (im->written_path);
  return 0;
}

/* Write the answer to a resume query. */
static int
answer_query (struct importer *im, const struct vmferry_resume_state *st,
              const char *reason)
{
  CLEANUP_FREE char *a = vmferry_resume_answer (st, reason);
  size_t len, off = 0;

  if (a == NULL)
    return -1;
  vmferry_verbose ("resume query: %s", a);
  len = strlen (a);
  a[len] = '\n';               /* the NUL goes: write exactly len + 1 */
  while (off < len + 1) {
    ssize_t n = write (im->opts->out_fd, a + off, len + 1 - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      a[len] = '\0';
      vmferry_set_error_errno (errno, "resume query: write");
      return -1;
    }
    off += n;
  }
  a[len] = '\0';
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
    CLEANUP_FREE char *p = NULL;
    struct stat sb;

    if (strcmp (rf->name, im->files[i].name) != 0 || rf->size != im->files[i].size) {
      vmferry_set_error ("file %zu is %s, the stream has %s", i, rf->name,
                         im->files[i].name);
      return -1;
    }
    if (rf->tmp == NULL)
      continue;
    if (asprintf (&p, "%s/%s", im->dir, rf->tmp) < 0) {
      p = NULL;
      vmferry_set_error_errno (ENOMEM, "resume");
      return -1;
    }
    if (lstat (p, &sb) < 0 || !S_ISREG (sb.st_mode) || (uint64_t) sb.st_size != rf->size) {
      vmferry_set_error ("its temporary file %s is missing or not what it says", p);
      return -1;
    }
  }
  return 0;
}

static void
remove_stale_temporaries (struct importer *im)
{
  DIR *d = opendir (im->dir);
  struct dirent *e;

  if (d == NULL)
    return;
  while ((e = readdir (d)) != NULL)
    for (size_t i = 0; i < im->nr_files; i++)
      if (im->files[i].role != VMFERRY_ROLE_TPM &&
          vmferry_resume_tmp_name_ok (im->files[i].name, e->d_name)) {
        vmferry_verbose ("removing %s/%s", im->dir, e->d_name);
        unlinkat (dirfd (d), e->d_name, 0);
      }
  closedir (d);
}

/* After the metadata records: find, check and take over the resume state
 * of this domain in the target directory, or answer a query about it.
 * A RESUME stream is refused unless the state matches it exactly; a fresh
 * stream replaces a state that belongs to something else.
 */
static int
setup_resume (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  bool resume_stream = im->mandatory & VMFERRY_FEATURE_RESUME;
  char id[VMFERRY_RESUME_ID_LEN + 1];
  struct vmferry_resume_state old;
  char reason[VMFERRY_ERROR_MAX];
  int r;

  if (!opts->resumable && !opts->resume_query && !resume_stream)
    return 0;
  r = vmferry_resume_stream_id (im->manifest, im->manifest_len, id);
  if (r <= 0) {
    if (r == 0)
      vmferry_set_error ("the stream carries no source identities (written by an "
                         "older vmferry-export)");
    goto not_resumable;
  }
  im->state_path = vmferry_resume_path (im->dir, im->name, "json");
  im->written_path = vmferry_resume_path (im->dir, im->name, "written");
  if (im->state_path == NULL || im->written_path == NULL)
    goto not_resumable;
  im->lock_fd = vmferry_resume_lock (im->dir, im->name, LOCK_WAIT_SECONDS);
  if (im->lock_fd < 0)
    return -1;

  r = vmferry_resume_load (im->state_path, &old);
  if (r < 0) {
    snprintf (reason, sizeof reason, "%s", vmferry_get_error ());
    if (resume_stream || opts->resume_query)
      goto refuse;
    /* A damaged state cannot be trusted to name its files: remove the
     * temporary files of this stream's names (we hold the lock of this
     * domain's transfers) and the state.
     */
    vmferry_notice ("%s; starting afresh", reason);
    remove_stale_temporaries (im);
    unlink (im->state_path);
    unlink (im->written_path);
  }
  else if (r == 0) {
    snprintf (reason, sizeof reason, "%s: no interrupted transfer of domain %s "
              "(finished or aborted?)", im->dir, im->name);
    if (resume_stream || opts->resume_query)
      goto refuse;
  }
  else {
    bool match = strcmp (old.stream_id, id) == 0 && strcmp (old.name, im->name) == 0;
    char msg[VMFERRY_ERROR_MAX] = "";

    if (match && check_state_files (im, &old) < 0) {
      snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
      match = false;
    }
    if (!match) {
      snprintf (reason, sizeof reason, "%s: the interrupted transfer there belongs to "
                "another stream (%s)", im->state_path,
                msg[0] ? msg : "another domain, or the source disks changed since");
      if (resume_stream || opts->resume_query) {
        vmferry_resume_state_free (&old);
        goto refuse;
      }
      vmferry_notice ("%s: removed, starting afresh", reason);
      vmferry_resume_discard (im->dir, &old);
      vmferry_resume_state_free (&old);
    }
    else if (opts->resume_query) {
      r = verify_written (im, &old);
      if (r == 0)
        r = answer_query (im, &old, NULL);
      vmferry_resume_state_free (&old);
      return r;
    }
    else if (!resume_stream) {
      /* The sender chose to start over. */
      vmferry_verbose ("%s: a fresh stream replaces the interrupted transfer",
                       im->state_path);
      vmferry_resume_discard (im->dir, &old);
      vmferry_resume_state_free (&old);
    }
    else if (memcmp (old.token, im->token, VMFERRY_RESUME_TOKEN_LEN) != 0) {
      snprintf (reason, sizeof reason, "%s: the resume state changed since the "
                "sender asked (another sender?)", im->state_path);
      vmferry_resume_state_free (&old);
      goto refuse;
    }
    else {
      /* Take it over: its files continue; a new token so that no other
       * stream built from the same answer is accepted.
       */
      uint64_t held = 0;
      im->st = old;
      /* The query checked the claims there were; this run makes its own. */
      unlink (im->written_path);
      if (im->st.tpm_tmp) {
        /* TPM state is small: always sent again, into a new directory. */
        struct vmferry_resume_state t = { .tpm_tmp = im->st.tpm_tmp };
        vmferry_resume_discard (im->dir, &t);
        free (im->st.tpm_tmp);
        im->st.tpm_tmp = NULL;
      }
      for (size_t i = 0; i < im->nr_files; i++) {
        struct import_file *f = &im->files[i];
        struct vmferry_resume_file *rf = &im->st.files[i];
        if (rf->tmp == NULL)
          continue;
        if (asprintf (&f->tmp, "%s/%s", im->dir, rf->tmp) < 0) {
          f->tmp = NULL;
          vmferry_set_error_errno (ENOMEM, "resume");
          return -1;
        }
        f->resume_offset = rf->offset;
        held += rf->offset == VMFERRY_RESUME_COMPLETE ? f->size : rf->offset;
      }
      im->keep_state = true;
      if (vmferry_resume_new_token (im->st.token) < 0 || save_state (im, -1, 0) < 0)
        return -1;
      vmferry_verbose ("resuming the transfer of %s: %" PRIu64 " bytes already held",
                       im->name, held);
      return 0;
    }
  }

  if (resume_stream || opts->resume_query) {
    snprintf (reason, sizeof reason, "no resume state");
    goto refuse;
  }
  /* A fresh resumable import. */
  memset (&im->st, 0, sizeof im->st);
  memcpy (im->st.stream_id, id, sizeof id);
  im->st.name = strdup (im->name);
  im->st.files = calloc (im->nr_files ? im->nr_files : 1, sizeof *im->st.files);
  if (im->st.name == NULL || im->st.files == NULL) {
    vmferry_set_error_errno (ENOMEM, "resume");
    return -1;
  }
  im->st.nr_files = im->nr_files;
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
  return 0;

 not_resumable:
  snprintf (reason, sizeof reason, "%s", vmferry_get_error ());
  if (opts->resume_query)
    return answer_query (im, NULL, reason);
  if (resume_stream) {
    vmferry_set_error ("%s: cannot resume: %s", opts->in_name, reason);
    return -1;
  }
  vmferry_verbose ("not resumable: %s", reason);
  return 0;

 refuse:
  if (opts->resume_query)
    return answer_query (im, NULL, reason);
  vmferry_set_error ("%s: a resumed stream, but %s; nothing was changed "
                     "(run the sender again: it will start afresh)",
                     opts->in_name, reason);
  return -1;
}

static int
begin_file (struct importer *im, uint32_t idx, uint64_t size)
{
  struct import_file *f = &im->files[idx];
  CLEANUP_FREE char *dir = NULL;
  char *slash;

  if (size != f->size) {
    vmferry_set_error ("%s: file %s: size %" PRIu64 " differs from the manifest's %"
                       PRIu64, im->opts->in_name, f->name, size, f->size);
    return -1;
  }
  if (f->tmp) {
    /* Resumed: continue in the temporary file the state names. */
    struct stat sb;
    f->fd = open (f->tmp, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (f->fd < 0 || fstat (f->fd, &sb) < 0 || !S_ISREG (sb.st_mode) ||
        (uint64_t) sb.st_size != size) {
      vmferry_set_error_errno (errno ? errno : EINVAL, "%s: cannot resume in %s",
                               f->name, f->tmp);
      return -1;
    }
    /* Below the offset the state vouches for the data; above it this
     * run writes everything again, so what a cut left there goes.
     */
    if (f->resume_offset != VMFERRY_RESUME_COMPLETE && f->resume_offset < size &&
        fallocate (f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   (off_t) f->resume_offset, (off_t) (size - f->resume_offset)) < 0 &&
        errno != EOPNOTSUPP) {
      vmferry_set_error_errno (errno, "%s: cannot clear beyond the resume point", f->tmp);
      return -1;
    }
    f->written_end = f->seg_start = f->resume_offset == VMFERRY_RESUME_COMPLETE
      ? size : f->resume_offset;
    f->seg_at = vmferry_monotonic ();
    vmferry_verbose ("%s: resuming %s at byte %" PRIu64, f->name, f->tmp, f->written_end);
    vmferry_progress_begin (im->opts->progress, f->name, size);
    vmferry_progress_add (im->opts->progress, f->written_end);
    return 0;
  }
  if (f->role == VMFERRY_ROLE_TPM) {
    if (im->tpm_tmp == NULL) {
      if (mkdir_p (im->opts->define ? SWTPM_STORAGE : im->dir, 0711) < 0 ||
          asprintf (&im->tpm_tmp, "%s.vmferry-XXXXXX", im->tpm_dir) < 0 ||
          mkdtemp (im->tpm_tmp) == NULL) {
        vmferry_set_error_errno (errno, "%s: cannot create TPM state", im->tpm_dir);
        return -1;
      }
    }
    if (asprintf (&f->tmp, "%s/%s", im->tpm_tmp, f->name) < 0) {
      f->tmp = NULL;
      goto nomem;
    }
    dir = strdup (f->tmp);
    if (dir == NULL)
      goto nomem;
    slash = strrchr (dir, '/');
    *slash = '\0';
    if (mkdir_p (dir, 0700) < 0) {
      vmferry_set_error_errno (errno, "%s: mkdir", dir);
      return -1;
    }
    f->fd = open (f->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  }
  else {
    if (asprintf (&f->tmp, "%s/.%s.vmferry-XXXXXX", im->dir, f->name) < 0) {
      f->tmp = NULL;
      goto nomem;
    }
    f->fd = mkostemp (f->tmp, O_CLOEXEC);
    if (f->fd >= 0)
      fchmod (f->fd, f->role == VMFERRY_ROLE_NVRAM ? 0600 : 0644);
  }
  if (f->fd < 0) {
    vmferry_set_error_errno (errno, "%s: cannot create %s", im->dir, f->tmp);
    free (f->tmp);
    f->tmp = NULL;
    return -1;
  }
  /* A fresh file is all holes: only data records are written. */
  if (ftruncate (f->fd, (off_t) size) < 0) {
    vmferry_set_error_errno (errno, "%s: cannot size to %" PRIu64 " bytes", f->tmp, size);
    return -1;
  }
  if (f->role == VMFERRY_ROLE_DISK && size >= DIRECT_MIN_SIZE) {
    f->dfd = open (f->tmp, O_WRONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC);
    if (f->dfd < 0)
      vmferry_debug ("%s: no O_DIRECT (%s): writing through the page cache",
                     f->tmp, strerror (errno));
  }
  vmferry_verbose ("%s: writing %s", f->name, f->tmp);
  vmferry_progress_begin (im->opts->progress, f->name, size);
  f->dg = vmferry_digest_new ();
  if (f->dg == NULL)
    return -1;
  f->seg_at = vmferry_monotonic ();
  /* Record the new file at once, so that a cut leaves nothing the state
   * does not name.
   */
  return save_state (im, idx, 0);
 nomem:
  vmferry_set_error_errno (ENOMEM, "import");
  return -1;
}

static void
close_file (struct import_file *f)
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
  unsigned char got[16];
  char want_hex[33], got_hex[33];

  if (!j->end) {
    uint64_t end = j->rec.offset + j->rec.length;
    const unsigned char *data = j->rec.flags & VMFERRY_REC_F_ZSTD ? j->out : j->in;
    bool claim = im->keep_state && f->role != VMFERRY_ROLE_TPM;

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
  if (memcmp (got, j->digest, 16) != 0) {
    vmferry_digest_hex (j->digest, want_hex);
    vmferry_digest_hex (got, got_hex);
    vmferry_set_error ("%s: file %s: digest mismatch after writing (stream says %s, "
                       "what was written has %s)", im->opts->in_name, f->name, want_hex, got_hex);
    return -1;
  }
  close_file (f);
  f->verified = true;
  vmferry_progress_end (im->opts->progress);
  if (f->role != VMFERRY_ROLE_TPM && save_state (im, j->rec.file, VMFERRY_RESUME_COMPLETE) < 0)
    return -1;
  vmferry_verbose ("%s: verified", f->name);
  return 0;
}

static const struct vmferry_pipeline_ops import_ops = {
  .init = job_init, .fini = job_fini, .work = job_work, .done = job_done,
};

static int
check_dir (const char *dir)
{
  struct stat st;

  if (stat (dir, &st) < 0 || !S_ISDIR (st.st_mode)) {
    vmferry_set_error_errno (errno ? errno : ENOTDIR, "%s: not a directory", dir);
    return -1;
  }
  return 0;
}

/* Without --dir or --pool every file goes into the directory of the
 * first disk as the stream names it (its source_path, which
 * vmferry-rewrite --map-path changes): the scripted pipeline
 * "export | rewrite --map-path OLD=NEW | ssh dst vmferry-import --define".
 * The path comes from the stream, so it must be absolute and plain.
 */
static char *pool_dir (virConnectPtr conn, const char *pool);

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

static int
dir_from_manifest (struct importer *im)
{
  const char *path = NULL;
  char *slash;

  if (im->pool) {
    if (im->conn == NULL && !(im->conn = vmferry_virt_connect (im->opts->uri)))
      return -1;
    im->dir = pool_dir (im->conn, im->pool);
    if (im->dir == NULL)
      return -1;
    vmferry_verbose ("the disks are volumes of pool %s: writing into %s", im->pool, im->dir);
    return check_dir (im->dir);
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
      strstr (path, "//")) {
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
  vmferry_verbose ("no --dir: writing into %s, the directory of the first disk", im->dir);
  return check_dir (im->dir);
}

/* Read the stream to its END; every file written and verified. */
static int
read_stream (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  struct vmferry_stream_reader *rd = opts->stripes
    ? vmferry_stream_reader_new_fn (vmferry_stripes_read, opts->stripes, opts->in_name)
    : vmferry_stream_reader_new (opts->in_fd, opts->in_name);
  unsigned threads, depth;
  struct vmferry_record rec;
  struct job *j;
  int r, ret = -1;
  bool seen_end = false;

  if (rd == NULL)
    return -1;
  while (!seen_end && (r = vmferry_stream_read_record (rd, &rec)) == 1) {
    switch (rec.type) {
    case VMFERRY_REC_MANIFEST: {
      size_t len;
      CLEANUP_FREE char *json = vmferry_record_metadata (&rec, rec.payload, &len);
      if (json == NULL) {
        vmferry_prefix_error ("%s", opts->in_name);
        goto out;
      }
      if (parse_manifest (im, json, len) < 0 || pool_from_manifest (im) < 0 ||
          (im->dir == NULL && dir_from_manifest (im) < 0))
        goto out;
      im->manifest = json;
      im->manifest_len = len;
      json = NULL;
      break;
    }
    case VMFERRY_REC_DOMAIN_XML: {
      size_t len;
      CLEANUP_FREE char *xml = vmferry_record_metadata (&rec, rec.payload, &len);
      if (xml == NULL) {
        vmferry_prefix_error ("%s", opts->in_name);
        goto out;
      }
      if (im->files == NULL) {
        vmferry_set_error ("%s: the domain XML came before the manifest", opts->in_name);
        goto out;
      }
      im->doc = vmferry_domain_parse (xml, len, "domain XML in the stream");
      if (im->doc == NULL || plan_targets (im) < 0 || setup_resume (im) < 0)
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
      if (im->p == NULL || (im->keep_state && syncer_start (im) < 0))
        goto out;
      break;
    }
    case VMFERRY_REC_FILE_BEGIN: {
      uint64_t size;
      if (rec.payload_len != 8 || rec.file >= im->nr_files || im->p == NULL) {
        vmferry_set_error ("%s: record %" PRIu64 ": file %" PRIu32 " is not in the manifest",
                           opts->in_name, rec.seq, rec.file);
        goto out;
      }
      memcpy (&size, rec.payload, 8);
      size = le64toh (size);
      if (begin_file (im, rec.file, size) < 0)
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
    case VMFERRY_REC_FILE_END:
      if (!(j = vmferry_pipeline_slot (im->p)))
        goto out;
      j->end = true;
      j->rec = rec;
      memcpy (j->digest, rec.payload, 16);
      vmferry_pipeline_submit (im->p, j, false);
      break;
    case VMFERRY_REC_END:
      seen_end = true;
      break;
    case VMFERRY_REC_STREAM_HEADER:
      im->mandatory = vmferry_stream_header_mandatory (rec.payload, rec.payload_len);
      if (im->mandatory & VMFERRY_FEATURE_RESUME)
        memcpy (im->token, (const unsigned char *) rec.payload + VMFERRY_STREAM_HEADER_SIZE,
                VMFERRY_RESUME_TOKEN_SIZE);
      break;
    default:
      break;                    /* skippable records */
    }
  }
  if (!seen_end) {
    if (r == 0)
      vmferry_set_error ("%s: truncated: the stream ended before its END record",
                         opts->in_name);
    goto out;
  }
  /* Nothing may follow END (the reader checks) and all must be verified. */
  if (vmferry_stream_read_record (rd, &rec) != 0)
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
  im->cut = vmferry_stream_reader_was_cut (rd) || interrupted;
  if (im->p && im->cut && im->keep_state) {
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
  return ret;
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

static int
fsync_dir (const char *dir)
{
  CLEANUP_CLOSE int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd < 0 || fsync (fd) < 0) {
    vmferry_set_error_errno (errno, "%s: fsync", dir);
    return -1;
  }
  return 0;
}

/* Undo place_files: new files back out, old ones back in. */
static void
unplace_files (struct importer *im)
{
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    if (f->placed) {
      unlink (f->final);
      f->placed = false;
    }
    if (f->backup && rename (f->backup, f->final) == 0) {
      free (f->backup);
      f->backup = NULL;
    }
  }
  if (im->tpm_tmp == NULL && im->tpm_dir) {
    /* The TPM dir was renamed into place: it is new; remove it. */
    for (size_t i = 0; i < im->nr_files; i++)
      if (im->files[i].role == VMFERRY_ROLE_TPM)
        unlink (im->files[i].final);
  }
}

static int
place_files (struct importer *im)
{
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];

    if (f->role == VMFERRY_ROLE_TPM)
      continue;
    if (f->backing >= 0) {
      const struct import_file *b = &im->files[f->backing];
      if (rebase (f->tmp, b->name, b->format) < 0)
        return -1;
    }
    if (access (f->final, F_OK) == 0) {
      /* --force (checked before): move the old file aside, not away. */
      if (asprintf (&f->backup, "%s/.%s.vmferry-old", im->dir, f->name) < 0) {
        f->backup = NULL;
        vmferry_set_error_errno (ENOMEM, "import");
        return -1;
      }
      if (rename (f->final, f->backup) < 0) {
        vmferry_set_error_errno (errno, "%s: cannot move aside", f->final);
        free (f->backup);
        f->backup = NULL;
        return -1;
      }
    }
    if (renameat2 (AT_FDCWD, f->tmp, AT_FDCWD, f->final, RENAME_NOREPLACE) < 0) {
      vmferry_set_error_errno (errno, "%s: cannot rename into place", f->final);
      return -1;
    }
    free (f->tmp);
    f->tmp = NULL;
    f->placed = true;
  }
  if (im->tpm_tmp) {
    if (access (im->tpm_dir, F_OK) == 0) {
      vmferry_set_error ("%s: TPM state exists; not replaced", im->tpm_dir);
      return -1;
    }
    if (rename (im->tpm_tmp, im->tpm_dir) < 0) {
      vmferry_set_error_errno (errno, "%s: cannot rename into place", im->tpm_dir);
      return -1;
    }
    free (im->tpm_tmp);
    im->tpm_tmp = NULL;
  }
  return fsync_dir (im->dir);
}

/* Point the XML at the files' new places. */
static char *
rewrite_xml (struct importer *im)
{
  struct vmferry_domain_file *df = NULL;
  size_t n = 0;
  char *xml = NULL;

  if (vmferry_domain_files (im->doc, true, &df, &n) < 0)
    return NULL;
  for (size_t i = 0; i < im->nr_files; i++) {
    const struct import_file *f = &im->files[i];
    if (f->role == VMFERRY_ROLE_TPM)
      continue;
    for (size_t k = 0; k < n; k++)
      if (df[k].path && strcmp (df[k].path, f->source_path) == 0 &&
          df[k].role != VMFERRY_ROLE_BACKING &&
          vmferry_domain_set_path (im->doc, &df[k], f->final, 0) < 0)
        goto out;
    if (vmferry_domain_set_backing_path (im->doc, f->source_path, f->final) < 0)
      goto out;
  }
  if (im->opts->new_name &&
      (vmferry_domain_set_name (im->doc, im->name) < 0 ||
       vmferry_domain_set_uuid (im->doc, im->uuid) < 0))
    goto out;
  xml = vmferry_domain_to_string (im->doc);
 out:
  vmferry_domain_files_free (df, n);
  return xml;
}

static int
define_domain (struct importer *im)
{
  CLEANUP_FREE char *xml = rewrite_xml (im);
  CLEANUP_FREE char *old_xml = NULL;
  CLEANUP_VIR_DOMAIN virDomainPtr old = NULL;
  virDomainPtr dom;

  if (xml == NULL)
    return -1;
  old = virDomainLookupByName (im->conn, im->name);
  if (old) {
    char uuid[VIR_UUID_STRING_BUFLEN];
    /* --force (checked before).  Same UUID: the define replaces it.
     * Another UUID: undefine it first, keeping its NVRAM and TPM state,
     * and put it back if the new definition is refused.
     */
    if (virDomainGetUUIDString (old, uuid) == 0 && strcmp (uuid, im->uuid) != 0) {
      old_xml = virDomainGetXMLDesc (old, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
      if (old_xml == NULL ||
          virDomainUndefineFlags (old, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM |
                                  VIR_DOMAIN_UNDEFINE_KEEP_TPM |
                                  VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                  VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                                  VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA) < 0) {
        vmferry_virt_error ("domain %s: cannot replace the existing definition", im->name);
        return -1;
      }
    }
  }
  dom = virDomainDefineXMLFlags (im->conn, xml, VIR_DOMAIN_DEFINE_VALIDATE);
  if (dom == NULL) {
    vmferry_virt_error ("domain %s: define failed", im->name);
    if (old_xml) {
      virDomainPtr back = virDomainDefineXML (im->conn, old_xml);
      if (back)
        virDomainFree (back);
    }
    return -1;
  }
  vmferry_verbose ("domain %s defined", im->name);
  if (im->opts->start && virDomainCreate (dom) < 0) {
    vmferry_virt_error ("domain %s was defined and verified but did not start", im->name);
    virDomainFree (dom);
    return 1;                   /* defined: not rolled back */
  }
  virDomainFree (dom);
  return 0;
}

static void
remove_temporaries (struct importer *im)
{
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    close_file (f);
    if (f->tmp)
      unlink (f->tmp);
  }
  if (im->tpm_tmp) {
    for (size_t i = 0; i < im->nr_files; i++)
      if (im->files[i].role == VMFERRY_ROLE_TPM && im->files[i].tmp) {
        /* remove the file's directories up to the temp root */
        CLEANUP_FREE char *d = strdup (im->files[i].tmp);
        char *slash;
        while (d && (slash = strrchr (d, '/')) && strlen (d) > strlen (im->tpm_tmp)) {
          *slash = '\0';
          rmdir (d);
        }
      }
    rmdir (im->tpm_tmp);
  }
}

/* The state file goes (the lock file too, while we hold it). */
static void
drop_state (struct importer *im)
{
  if (!im->keep_state)
    return;
  unlink (im->state_path);
  unlink (im->written_path);
  {
    CLEANUP_FREE char *lock = vmferry_resume_path (im->dir, im->name, "lock");
    if (lock)
      unlink (lock);
  }
  im->keep_state = false;
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
        fdatasync (f->fd) == 0 && save_state (im, i, f->written_end) < 0)
      return -1;
    close_file (f);
  }
  vmferry_restore_error (saved, 0);
  return 0;
}

static void
importer_free (struct importer *im)
{
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    free (f->name);
    free (f->source_path);
    free (f->format);
    free (f->final);
    free (f->tmp);
    free (f->backup);
    free (f->pool);
    free (f->volume);
    vmferry_digest_free (f->dg);
    vmferry_digest_free (f->wdg);
  }
  free (im->files);
  free (im->dir);
  free (im->tpm_dir);
  free (im->tpm_tmp);
  free (im->pool);
  free (im->name);
  free (im->uuid);
  free (im->manifest);
  free (im->state_path);
  free (im->written_path);
  vmferry_resume_state_free (&im->st);
  if (im->written_fd >= 0)
    close (im->written_fd);
  if (im->lock_fd >= 0)
    close (im->lock_fd);
  pthread_mutex_destroy (&im->st_lock);
  pthread_mutex_destroy (&im->save_lock);
  pthread_cond_destroy (&im->st_cond);
  if (im->doc)
    xmlFreeDoc (im->doc);
  if (im->conn)
    virConnectClose (im->conn);
}

/* The directory of a directory-backed pool. */
static char *
pool_dir (virConnectPtr conn, const char *pool)
{
  CLEANUP_VIR_POOL virStoragePoolPtr p = virStoragePoolLookupByName (conn, pool);
  CLEANUP_FREE char *xml = NULL;
  char *start, *end;

  if (p == NULL) {
    vmferry_virt_error ("storage pool %s", pool);
    return NULL;
  }
  if (virStoragePoolIsActive (p) != 1) {
    vmferry_set_error ("storage pool %s is not active (virsh pool-start %s)", pool, pool);
    return NULL;
  }
  xml = virStoragePoolGetXMLDesc (p, 0);
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

int
vmferry_import (const struct vmferry_import_opts *opts)
{
  struct importer im = { .opts = opts, .lock_fd = -1, .written_fd = -1, .sync_idx = -1 };
  int r = -1, d;

  pthread_mutex_init (&im.st_lock, NULL);
  pthread_mutex_init (&im.save_lock, NULL);
  pthread_cond_init (&im.st_cond, NULL);
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
    if (im.dir == NULL || check_dir (im.dir) < 0)
      goto out;
  }
  if (interrupt_null_fd < 0)
    interrupt_null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  interrupt_in_fd = opts->stripes ? -1 : opts->in_fd;
  interrupt_stripes = opts->stripes;
  if (read_stream (&im) < 0) {
    if (im.keep_state && im.cut)
      goto fail_keep_state;
    goto fail_before_placing;
  }
  if (opts->resume_query) {
    r = 0;
    goto out;
  }
  /* From here on the temporary files are renamed: no resuming. */
  drop_state (&im);
  if (place_files (&im) < 0) {
    unplace_files (&im);
    goto fail_before_placing;
  }
  if (opts->define) {
    d = define_domain (&im);
    if (d < 0) {
      unplace_files (&im);
      vmferry_prefix_error ("%s", opts->in_name);
      goto fail_after;
    }
    if (d > 0)                  /* defined but not started */
      goto out_keep;
  }
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
  r = 0;
 out_keep:
  /* The replaced files are no longer needed. */
  for (size_t i = 0; i < im.nr_files; i++)
    if (im.files[i].backup)
      unlink (im.files[i].backup);
  goto out;

 fail_keep_state:
  if (keep_progress (&im) == 0) {
    char msg[VMFERRY_ERROR_MAX];
    snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
    if (interrupted)
      snprintf (msg, sizeof msg, "interrupted by signal %d", (int) interrupted);
    vmferry_set_error ("%s; nothing was defined; the verified progress was kept in %s "
                       "(%s): run the same vmferry-send or vmferry-migrate again to "
                       "resume, or vmferry-import --abort=%s --dir %s to remove it",
                       msg, im.dir, base_of (im.state_path), im.name, im.dir);
    goto out;
  }
  /* fall through: the progress could not be kept */
 fail_before_placing:
 fail_after:
  remove_temporaries (&im);
  drop_state (&im);
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

void
vmferry_import_interrupt (int signo)
{
  int fd = interrupt_in_fd, null_fd = interrupt_null_fd;

  interrupted = signo;
  /* The reader sees the end of its input, as when the link is cut. */
  if (fd >= 0 && null_fd >= 0)
    dup2 (null_fd, fd);
  vmferry_stripes_in_interrupt (interrupt_stripes, null_fd);
}

/* Abort one state file in DIR (a name from a directory entry or the
 * user).  Returns 1 if removed, -1 with the error set.
 */
static int
abort_one (const char *dir, const char *name)
{
  CLEANUP_FREE char *path = vmferry_resume_path (dir, name, "json");
  CLEANUP_CLOSE int lock_fd = -1;
  struct vmferry_resume_state st;
  unsigned n;
  int r;

  if (path == NULL)
    return -1;
  /* An import cut a moment ago may still be saving its state. */
  lock_fd = vmferry_resume_lock (dir, name, 10);
  if (lock_fd < 0)
    return -1;
  r = vmferry_resume_load (path, &st);
  if (r == 0) {
    CLEANUP_FREE char *lock = vmferry_resume_path (dir, name, "lock");
    if (lock)
      unlink (lock);
    vmferry_set_error ("%s: no interrupted transfer of domain %s", dir, name);
    return -1;
  }
  if (r < 0) {
    /* Damaged: it cannot say which files are its own. */
    char msg[VMFERRY_ERROR_MAX];
    CLEANUP_FREE char *lock = vmferry_resume_path (dir, name, "lock");
    CLEANUP_FREE char *claims = vmferry_resume_path (dir, name, "written");
    snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
    unlink (path);
    if (claims)
      unlink (claims);
    if (lock)
      unlink (lock);
    vmferry_notice ("%s; removed it, but not its temporary files "
                    "(%s/.NAME.vmferry-XXXXXX)", msg, dir);
    return 1;
  }
  n = vmferry_resume_discard (dir, &st);
  vmferry_verbose ("aborted the transfer of %s into %s: %u files removed", name, dir, n);
  vmferry_resume_state_free (&st);
  return 1;
}

int
vmferry_import_abort (const struct vmferry_import_opts *opts, const char *name)
{
  CLEANUP_VIR_CONNECT virConnectPtr conn = NULL;
  CLEANUP_FREE char *dir = NULL;
  DIR *d;
  struct dirent *e;
  int count = 0, r = 0;

  if (opts->pool) {
    conn = vmferry_virt_connect (opts->uri);
    if (conn == NULL)
      return -1;
  }
  if (!opts->pool && !opts->dir) {
    vmferry_set_error ("--abort: give the --dir or --pool the transfer was going to");
    return -1;
  }
  dir = opts->pool ? pool_dir (conn, opts->pool) : strdup (opts->dir);
  if (dir == NULL)
    return -1;
  if (name)
    return abort_one (dir, name);
  d = opendir (dir);
  if (d == NULL) {
    vmferry_set_error_errno (errno, "%s: cannot read", dir);
    return -1;
  }
  while ((e = readdir (d)) != NULL) {
    const char *p = "." "vmferry-resume-";
    size_t len = strlen (e->d_name), plen = strlen (p);
    CLEANUP_FREE char *n = NULL;

    if (len <= plen + 5 || strncmp (e->d_name, p, plen) != 0 ||
        strcmp (e->d_name + len - 5, ".json") != 0)
      continue;
    n = strndup (e->d_name + plen, len - plen - 5);
    if (n == NULL || abort_one (dir, n) < 0)
      r = -1;
    else
      count++;
  }
  closedir (d);
  if (r < 0)
    return -1;
  if (count == 0) {
    vmferry_set_error ("%s: no interrupted transfer to abort", dir);
    return -1;
  }
  return count;
}
