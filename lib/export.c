/* vmferry: export a domain as a stream (see export.h).
 *
 * One pass over each source file: a file of a shut-off domain, or, for
 * a running one, a disk as its backup job serves it (backup.h).  The
 * calling thread maps data extents (holes are never read), computes the
 * file digest, and splits each chunk into runs of data and of zero
 * blocks; workers compress data chunks in parallel; the collector writes
 * the records in order.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libxml/uri.h>

#include "adapt.h"
#include "backup.h"
#include "cleanup.h"
#include "clock.h"
#include "digest.h"
#include "domain.h"
#include "error.h"
#include "export.h"
#include "extent.h"
#include "full-rw.h"
#include "guest.h"
#include "human.h"
#include "imagelock.h"
#include "iszero.h"
#include "log.h"
#include "manifest.h"
#include "pipeline.h"
#include "progress.h"
#include "qcow2.h"
#include "scout.h"
#include "source.h"
#include "stream.h"
#include "tar.h"
#include "export-trim.h"
#include "vector.h"
#include "virt.h"
#include "xmlnode.h"

/* libvirt's default swtpm_storage (qemu.conf); state is per domain UUID. */
#define SWTPM_STORAGE "/var/lib/libvirt/swtpm"

/* Where a running export's backup job has its socket and scratch files
 * (a directory of its own below, backup.h): on disk, not a tmpfs, since
 * the scratch files grow with what the guest writes during the export.
 */
#define BACKUP_BASE_DIR "/var/tmp"

/* Where --trim's overlays are (export-trim.h): on disk too, for the same
 * reason.
 */
#define TRIM_BASE_DIR "/var/tmp"

struct export_file {
  int role;                     /* VMFERRY_ROLE_* */
  char *path;                   /* on this host */
  char *name;                   /* in the stream: unique basename, or a
                                 * path relative to the TPM state dir */
  char *target;                 /* "vda", NULL */
  char *format;                 /* "raw", "qcow2" */
  int backing;                  /* index of the backing file, or -1 */
  char *backing_format;
  char *pool, *volume;          /* a volume disk: its pool and volume */
  bool readonly;
  /* A disk of a running domain, read as the guest sees it from URI
   * (the backup job's export); stored raw.
   */
  bool guest;
  char *uri;
  /* Or, a shut-off domain's disk (--flatten, --trim), from the image
   * this JSON node describes, through a local qemu-nbd (source.h).
   */
  char *node;
  bool block;                   /* a block device: rdev is the device */
  dev_t dev, rdev;
  ino_t ino;
  struct timespec mtime;
  uint64_t size, virtual_size, allocated;
};

DEFINE_VECTOR_TYPE (export_file_vector, struct export_file);

struct plan {
  struct export_file_vector files;
  /* Files a flattened disk's chain reads, not carried themselves: what
   * is checked for a writer all the same.
   */
  struct export_file_vector under;
};

static void
files_free (struct export_file_vector *files)
{
  for (size_t i = 0; i < files->len; i++) {
    struct export_file *f = &files->ptr[i];
    free (f->path);
    free (f->name);
    free (f->target);
    free (f->format);
    free (f->backing_format);
    free (f->pool);
    free (f->volume);
    free (f->uri);
    free (f->node);
  }
  export_file_vector_reset (files);
}

static void
plan_free (struct plan *plan)
{
  files_free (&plan->files);
  files_free (&plan->under);
}

static bool
name_taken (const struct plan *plan, const char *name)
{
  for (size_t i = 0; i < plan->files.len; i++)
    if (strcmp (plan->files.ptr[i].name, name) == 0)
      return true;
  return false;
}

/* NAME, or NAME made unique in PLAN ("2-disk.qcow2"); the caller frees
 * it.  NULL on ENOMEM.
 */
static char *
unique_name (const struct plan *plan, const char *name)
{
  char *unique = strdup (name);

  for (unsigned n = 2; unique && name_taken (plan, unique); n++) {
    free (unique);
    if (asprintf (&unique, "%u-%s", n, name) < 0)
      unique = NULL;
  }
  return unique;
}

/* Append a file to the plan; fills size and allocation from the open fd.
 * NAME is the wanted stream name; it is made unique ("2-disk.qcow2").
 * Returns the new index or -1.
 */
static int
plan_add (struct plan *plan, int fd, const char *path, int role,
          const char *name, const char *format)
{
  struct export_file *f;
  struct stat st;
  CLEANUP_FREE char *unique = NULL;

  if (plan->files.len >= VMFERRY_MAX_FILES) {
    vmferry_set_error ("%s: too many files (the limit is %d)", path,
                       VMFERRY_MAX_FILES);
    return -1;
  }
  if (fstat (fd, &st) < 0) {
    vmferry_set_error_errno (errno, "%s: stat", path);
    return -1;
  }
  unique = unique_name (plan, name);
  if (unique == NULL ||
      export_file_vector_append (&plan->files,
                                 (struct export_file) { 0 }) == -1) {
    vmferry_set_error_errno (ENOMEM, "%s", path);
    return -1;
  }
  f = &plan->files.ptr[plan->files.len - 1];
  f->role = role;
  f->backing = -1;
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->block = S_ISBLK (st.st_mode);
  f->rdev = f->block ? st.st_rdev : 0;
  f->mtime = st.st_mtim;
  f->path = strdup (path);
  f->name = unique;
  unique = NULL;
  f->format = strdup (format ? format : "raw");
  if (!f->path || !f->format) {
    vmferry_set_error_errno (ENOMEM, "%s", path);
    return -1;
  }
  if (vmferry_file_size (fd, path, &f->size) < 0 ||
      vmferry_allocated_bytes (fd, &f->allocated) < 0)
    return -1;
  if (S_ISBLK (st.st_mode))
    f->allocated = f->size;
  f->virtual_size = f->size;
  return (int) plan->files.len - 1;
}

static int
plan_find (const struct plan *plan, int fd)
{
  struct stat st;

  if (fstat (fd, &st) == 0)
    for (size_t i = 0; i < plan->files.len; i++) {
      const struct export_file *f = &plan->files.ptr[i];
      if (f->dev == st.st_dev && f->ino == st.st_ino)
        return (int) i;
    }
  return -1;
}

static const char *
base_name (const char *path)
{
  const char *slash = strrchr (path, '/');
  return slash && slash[1] ? slash + 1 : path;
}

/* Add a disk image and, for qcow2, its backing chain first (backing files
 * precede the overlays that use them, so an importer can place them
 * before it sees who needs them).  DEPTH bounds hostile loops.
 * Returns the image's index or -1.
 */
static int
plan_add_image (struct plan *plan, const char *path, const char *format,
                int role, unsigned depth)
{
  CLEANUP_CLOSE int fd = -1;
  struct vmferry_qcow2_info info;
  int idx, backing = -1, r;
  bool qcow2 = format && strcmp (format, "qcow2") == 0;

  if (depth > 64) {
    vmferry_set_error ("%s: backing chain longer than 64 files", path);
    return -1;
  }
  fd = vmferry_source_open_fd (path, false);
  if (fd < 0)
    return -1;
  idx = plan_find (plan, fd);
  if (idx >= 0)
    return idx;                 /* a base shared by two overlays */

  memset (&info, 0, sizeof info);
  if (qcow2) {
    r = vmferry_qcow2_probe (fd, path, &info);
    if (r < 0)
      return -1;
    if (r == 0) {
      vmferry_set_error ("%s: declared as qcow2 but is not a qcow2 image",
                         path);
      return -1;
    }
    if (vmferry_qcow2_check_carriable (&info, path) < 0)
      return -1;
    if (info.has_backing) {
      CLEANUP_FREE char *bpath = vmferry_qcow2_backing_path (path,
                                                             info.backing_file);

      if (bpath == NULL)
        return -1;
      if (info.backing_format[0] == '\0') {
        /* QEMU would probe; we do not guess silently. */
        vmferry_set_error ("%s: backing file %s has no recorded format "
                           "(set one with qemu-img rebase -u -F FORMAT)",
                           path, info.backing_file);
        return -1;
      }
      backing = plan_add_image (plan, bpath, info.backing_format,
                                VMFERRY_ROLE_BACKING, depth + 1);
      if (backing < 0) {
        vmferry_prefix_error ("%s: backing file", path);
        return -1;
      }
    }
  }
  idx = plan_add (plan, fd, path, role, base_name (path), format);
  if (idx >= 0) {
    struct export_file *f = &plan->files.ptr[idx];
    f->backing = backing;
    if (qcow2) {
      f->virtual_size = info.virtual_size;
      if (backing >= 0 && !(f->backing_format = strdup (info.backing_format))) {
        vmferry_set_error_errno (ENOMEM, "%s", path);
        idx = -1;
      }
    }
  }
  return idx;
}

/* The swtpm state directory of domain UUID: every regular file below it,
 * named by its path relative to the directory.
 */
static int
plan_add_tpm_dir (struct plan *plan, const char *dir, const char *rel,
                  unsigned depth)
{
  DIR *d;
  struct dirent *e;
  int r = 0;

  if (depth > 8) {
    vmferry_set_error ("%s: TPM state nested too deep", dir);
    return -1;
  }
  d = opendir (dir);
  if (d == NULL) {
    if (errno == ENOENT && depth == 0)
      return 0;                 /* never started: no state yet */
    vmferry_set_error_errno (errno, "%s: cannot read TPM state", dir);
    return -1;
  }
  while (r == 0 && (errno = 0, e = readdir (d)) != NULL) {
    CLEANUP_FREE char *path = NULL, *name = NULL;
    struct stat st;

    /* Dot files are swtpm's lock, not state (and an importer refuses
     * names that start with a dot).
     */
    if (e->d_name[0] == '.')
      continue;
    if (asprintf (&path, "%s/%s", dir, e->d_name) < 0 ||
        asprintf (&name, "%s%s%s", rel, *rel ? "/" : "", e->d_name) < 0) {
      vmferry_set_error_errno (ENOMEM, "%s", dir);
      r = -1;
      break;
    }
    if (lstat (path, &st) < 0) {
      vmferry_set_error_errno (errno, "%s: stat", path);
      r = -1;
    }
    else if (S_ISDIR (st.st_mode))
      r = plan_add_tpm_dir (plan, path, name, depth + 1);
    else if (S_ISREG (st.st_mode)) {
      CLEANUP_CLOSE int fd = vmferry_source_open_fd (path, true);
      if (fd < 0) {
        vmferry_prefix_error ("TPM state");
        r = -1;
      }
      else if (plan_add (plan, fd, path, VMFERRY_ROLE_TPM, name, "raw") < 0)
        r = -1;
      /* plan_add made the name unique; TPM names must stay exact. */
      else if (strcmp (plan->files.ptr[plan->files.len - 1].name, name) != 0) {
        vmferry_set_error ("%s: TPM state file name clashes with a disk", path);
        r = -1;
      }
    }
    /* Sockets, logs' symlinks and the like are not state: skipped. */
  }
  if (r == 0 && errno != 0) {
    vmferry_set_error_errno (errno, "%s: readdir", dir);
    r = -1;
  }
  closedir (d);
  return r;
}

/* A writable disk of running domain DOM at PATH: read through the
 * backup job as the guest sees it, not from its files (so no backing
 * chain), and stored raw.  Its size is the capacity QEMU gives it.
 */
static int
plan_add_guest (struct plan *plan, virDomainPtr dom, const char *path,
                const char *target)
{
  virDomainBlockInfo info;
  struct export_file *f;
  struct stat st;
  char *unique;

  if (target == NULL) {
    vmferry_set_error ("%s: a disk without a target cannot be read from a "
                       "running domain", path);
    return -1;
  }
  if (plan->files.len >= VMFERRY_MAX_FILES) {
    vmferry_set_error ("%s: too many files (the limit is %d)", path,
                       VMFERRY_MAX_FILES);
    return -1;
  }
  if (virDomainGetBlockInfo (dom, target, &info, 0) < 0) {
    vmferry_virt_error ("disk %s: cannot get its size", target);
    return -1;
  }
  unique = unique_name (plan, base_name (path));
  if (unique == NULL ||
      export_file_vector_append (&plan->files,
                                 (struct export_file) { 0 }) == -1) {
    free (unique);
    vmferry_set_error_errno (ENOMEM, "%s", path);
    return -1;
  }
  f = &plan->files.ptr[plan->files.len - 1];
  f->role = VMFERRY_ROLE_DISK;
  f->backing = -1;
  f->guest = true;
  f->name = unique;
  f->path = strdup (path);
  f->target = strdup (target);
  f->format = strdup ("raw");
  if (!f->path || !f->target || !f->format) {
    vmferry_set_error_errno (ENOMEM, "%s", path);
    return -1;
  }
  f->size = f->virtual_size = info.capacity;
  f->allocated = info.allocation;
  /* What the file is, so that another domain's use of it is found. */
  if (stat (path, &st) == 0) {
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->block = S_ISBLK (st.st_mode);
    f->rdev = f->block ? st.st_rdev : 0;
    f->mtime = st.st_mtim;
    if (S_ISREG (st.st_mode))
      f->allocated = (uint64_t) st.st_blocks * 512;
  }
  return (int) plan->files.len - 1;
}

/* Build the list of files to carry from the domain XML.  RUNNING: DOM
 * runs, and its writable disks are guest content (plan_add_guest).
 */
static int
make_plan (virConnectPtr conn, virDomainPtr dom, xmlDocPtr doc,
           const char *uuid, bool include_readonly, bool running,
           struct plan *plan)
{
  struct vmferry_domain_file *dfiles = NULL;
  size_t n = 0;
  int r = 0;

  if (vmferry_domain_files (doc, include_readonly, &dfiles, &n) < 0)
    return -1;
  for (size_t i = 0; r == 0 && i < n; i++) {
    struct vmferry_domain_file *df = &dfiles[i];
    int idx;

    /* The chain is taken from the qcow2 headers (plan_add_image), which
     * is what QEMU follows; the XML's <backingStore> is only a note.
     */
    if (df->role == VMFERRY_ROLE_BACKING)
      continue;
    if (df->role == VMFERRY_ROLE_TPM && df->path) {
      vmferry_set_error ("TPM state in %s: only libvirt's per-UUID state "
                         "directory is supported", df->path);
      r = -1;
      continue;
    }
    if (df->role == VMFERRY_ROLE_TPM) {
      CLEANUP_FREE char *dir = NULL;
      if (asprintf (&dir, "%s/%s", SWTPM_STORAGE, uuid) < 0) {
        vmferry_set_error_errno (ENOMEM, "TPM");
        r = -1;
      }
      else
        r = plan_add_tpm_dir (plan, dir, "", 0);
      continue;
    }
    if (df->role == VMFERRY_ROLE_NVRAM) {
      CLEANUP_CLOSE int fd = vmferry_source_open_fd (df->path, false);
      if (fd < 0 && vmferry_get_errno () == ENOENT) {
        /* libvirt creates it from the template at first start. */
        vmferry_verbose ("NVRAM %s does not exist yet: not carried", df->path);
        continue;
      }
      if (fd < 0) {
        vmferry_prefix_error ("NVRAM");
        r = -1;
      }
      else if (plan_add (plan, fd, df->path, VMFERRY_ROLE_NVRAM,
                         base_name (df->path), "raw") < 0)
        r = -1;
      continue;
    }
    if (df->pool) {
      /* A volume disk: libvirt knows where the volume's file is. */
      CLEANUP_VIR_POOL virStoragePoolPtr pool =
        virStoragePoolLookupByName (conn, df->pool);
      CLEANUP_VIR_VOL virStorageVolPtr vol =
        pool ? virStorageVolLookupByName (pool, df->volume) : NULL;
      char *path = vol ? virStorageVolGetPath (vol) : NULL;
      if (path == NULL) {
        vmferry_virt_error ("disk %s: volume %s of pool %s",
                            df->target ? df->target : "?", df->volume,
                            df->pool);
        r = -1;
        continue;
      }
      free (df->path);
      df->path = path;
    }
    if (running && !df->readonly) {
      if (plan_add_guest (plan, dom, df->path, df->target) < 0) {
        vmferry_prefix_error ("disk %s", df->target ? df->target : df->path);
        r = -1;
      }
      continue;
    }
    idx = plan_add_image (plan, df->path, df->format, VMFERRY_ROLE_DISK, 0);
    if (idx < 0) {
      vmferry_prefix_error ("disk %s", df->target ? df->target : df->path);
      r = -1;
    }
    else {
      struct export_file *f = &plan->files.ptr[idx];
      f->role = VMFERRY_ROLE_DISK;
      f->readonly = df->readonly;
      if ((df->target && !f->target && !(f->target = strdup (df->target))) ||
          (df->pool && (!(f->pool = strdup (df->pool)) ||
                        !(f->volume = strdup (df->volume))))) {
        vmferry_set_error_errno (ENOMEM, "disk");
        r = -1;
      }
    }
  }
  vmferry_domain_files_free (dfiles, n);
  return r;
}

/* ---- a shut-off domain's disks as guest content (--flatten, --trim) ---- */

/* The JSON node of PLAN's file I and the files below it:
 * {"driver": FORMAT, "file": {"driver": "file" or "host_device",
 * "filename": PATH}, "backing": NODE or null}: every driver and every
 * backing file named, as plan_add_image found them, so QEMU probes
 * nothing and follows no header.  NULL with the error set.
 */
static json_object *
chain_node (const struct plan *plan, int i)
{
  const struct export_file *f = &plan->files.ptr[i];
  json_object *node = json_object_new_object ();
  json_object *file = json_object_new_object ();
  json_object *b = NULL;

  if (node == NULL || file == NULL)
    goto nomem;
  if (f->backing >= 0 && (b = chain_node (plan, f->backing)) == NULL)
    goto fail;
  json_object_object_add (file, "driver",
                          json_object_new_string (f->block ? "host_device"
                                                           : "file"));
  json_object_object_add (file, "filename", json_object_new_string (f->path));
  json_object_object_add (node, "driver", json_object_new_string (f->format));
  json_object_object_add (node, "file", file);
  if (strcmp (f->format, "qcow2") == 0 || b)
    json_object_object_add (node, "backing", b);
  return node;
 nomem:
  vmferry_set_error_errno (ENOMEM, "%s", f->path);
 fail:
  json_object_put (file);
  json_object_put (node);
  return NULL;
}

/* NODE as text (the caller frees it); takes NODE.  NULL with the error
 * set.
 */
static char *
node_text (json_object *node, const char *what)
{
  char *s;

  if (node == NULL)
    return NULL;
  s = strdup (json_object_to_json_string_ext (node, JSON_C_TO_STRING_PLAIN |
                                              JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (node);
  if (s == NULL)
    vmferry_set_error_errno (ENOMEM, "%s", what);
  return s;
}

/* The node of an overlay at PATH over BACKING (a node's text). */
static char *
overlay_node (const char *path, const char *backing)
{
  json_object *node = json_object_new_object ();
  json_object *file = json_object_new_object ();
  json_object *b = json_tokener_parse (backing);

  if (node == NULL || file == NULL || b == NULL) {
    json_object_put (node);
    json_object_put (file);
    json_object_put (b);
    vmferry_set_error_errno (ENOMEM, "%s", path);
    return NULL;
  }
  json_object_object_add (file, "driver", json_object_new_string ("file"));
  json_object_object_add (file, "filename", json_object_new_string (path));
  json_object_object_add (node, "driver", json_object_new_string ("qcow2"));
  json_object_object_add (node, "file", file);
  json_object_object_add (node, "backing", b);
  return node_text (node, path);
}

/* Turn PLAN's disks into guest content read from a node: with TRIM,
 * every writable disk, through an overlay T makes (T NULL: a plan
 * only, no overlay made); with FLATTEN, every disk with a backing
 * chain.  Each such disk is raw in the stream, its chain no longer
 * carried (kept in plan->under for the checks).  The overlays made are
 * appended to *DISKS_RTN for the appliance.  0, or -1 with the error
 * set.
 */
static int
plan_guest_content (struct plan *plan, bool flatten, bool trim,
                    struct vmferry_trim *t, struct vmferry_guest_disk *disks,
                    size_t *nr_disks_rtn)
{
  struct export_file_vector kept = VECTOR_INIT;
  bool *used = calloc (plan->files.len + 1, sizeof *used);
  int *moved = calloc (plan->files.len + 1, sizeof *moved);
  int r = -1;

  *nr_disks_rtn = 0;
  if (used == NULL || moved == NULL) {
    vmferry_set_error_errno (ENOMEM, "export");
    goto out;
  }
  for (size_t i = 0; i < plan->files.len; i++) {
    struct export_file *f = &plan->files.ptr[i];
    CLEANUP_FREE char *node = NULL;

    if (f->role != VMFERRY_ROLE_DISK || f->guest ||
        !((trim && !f->readonly) || (flatten && f->backing >= 0)))
      continue;
    node = node_text (chain_node (plan, (int) i), f->path);
    if (node == NULL)
      goto out;
    if (trim && t) {
      CLEANUP_FREE char *overlay = vmferry_trim_overlay (t, node, f->format,
                                                         f->virtual_size);
      if (overlay == NULL)
        goto out;
      f->node = overlay_node (overlay, node);
      disks[*nr_disks_rtn].path = strdup (overlay);
      disks[*nr_disks_rtn].format = "qcow2";
      disks[*nr_disks_rtn].target = f->target;
      if (f->node == NULL || disks[*nr_disks_rtn].path == NULL) {
        free ((char *) disks[*nr_disks_rtn].path);
        vmferry_set_error_errno (ENOMEM, "%s", f->path);
        goto out;
      }
      ++*nr_disks_rtn;
    }
    else {
      f->node = node;
      node = NULL;
    }
    free (f->format);
    free (f->backing_format);
    f->backing_format = NULL;
    f->format = strdup ("raw");
    if (f->format == NULL) {
      vmferry_set_error_errno (ENOMEM, "%s", f->path);
      goto out;
    }
    f->guest = true;
    f->size = f->virtual_size;
    f->backing = -1;
  }
  /* Which files a carried one still needs (a chain under a disk left
   * as it is), then the rest moved to plan->under.
   */
  for (size_t i = plan->files.len; i-- > 0; ) {
    const struct export_file *f = &plan->files.ptr[i];
    if ((f->role != VMFERRY_ROLE_BACKING || used[i]) && f->backing >= 0)
      used[f->backing] = true;
  }
  /* Room first, so that every file lands in one vector or the other. */
  if (export_file_vector_reserve (&kept, plan->files.len) == -1 ||
      export_file_vector_reserve (&plan->under, plan->files.len) == -1) {
    vmferry_set_error_errno (ENOMEM, "export");
    export_file_vector_reset (&kept);
    goto out;
  }
  for (size_t i = 0; i < plan->files.len; i++) {
    struct export_file *f = &plan->files.ptr[i];
    bool keep = f->role != VMFERRY_ROLE_BACKING || used[i];

    moved[i] = keep ? (int) kept.len : -1;
    export_file_vector_append (keep ? &kept : &plan->under, *f);
  }
  for (size_t i = 0; i < kept.len; i++)
    if (kept.ptr[i].backing >= 0)
      kept.ptr[i].backing = moved[kept.ptr[i].backing];
  export_file_vector_reset (&plan->files);
  plan->files = kept;
  r = 0;
 out:
  free (used);
  free (moved);
  return r;
}

/* --inspect: what the guest G (the appliance over domain NAME's disks)
 * is, as the manifest's "guest" (JSON text).  NULL, with a warning
 * saying why, when the inspection fails: it only describes the copy, it
 * is no part of it.
 */
static char *
inspection_text (struct vmferry_guest *g, const char *name)
{
  struct vmferry_guest_info *info = NULL;
  json_object *o = NULL;
  char *text = NULL;

  if (vmferry_guest_inspect (g, &info) == 0) {
    o = vmferry_guest_info_to_json (info);
    if (o)
      text = strdup (json_object_to_json_string_ext
                     (o, JSON_C_TO_STRING_PLAIN |
                      JSON_C_TO_STRING_NOSLASHESCAPE));
    if (text == NULL)
      vmferry_set_error_errno (ENOMEM, "domain %s: inspection", name);
  }
  if (text == NULL)
    vmferry_warn ("domain %s: not inspected: %s", name, vmferry_get_error ());
  else
    vmferry_verbose ("domain %s: inspected: %s", name, text);
  json_object_put (o);
  vmferry_guest_info_free (info);
  return text;
}

/* Trim the overlays DISKS (NR of them) in the appliance; *NOTE_RTN says
 * what was not trimmed (NULL: all was).  With INSPECT, the guest is
 * inspected in the same launch, after the trim, into *INSPECTION_RTN
 * (as inspect does: NULL with a warning when it cannot be made): the
 * overlays hold what the disks hold, and the appliance is launched
 * once per export (issue 18).  0, or -1 with the error set.
 */
static int
trim_overlays (const char *domain, const struct vmferry_guest_disk *disks,
               size_t nr, bool inspect, char **note_rtn,
               char **inspection_rtn)
{
  struct vmferry_guest *g = NULL;
  double t0 = vmferry_monotonic ();
  char took[32];
  int n;

  *note_rtn = NULL;
  if (nr == 0)
    return 0;
  if (vmferry_guest_open_overlays (disks, nr, &g) < 0 ||
      (n = vmferry_guest_fstrim (g, note_rtn)) < 0)
    goto fail;
  if (inspect)
    *inspection_rtn = inspection_text (g, domain);
  /* The overlays are complete only once QEMU has flushed and ended. */
  if (vmferry_guest_shutdown (g) < 0)
    goto fail;
  vmferry_guest_close (g);
  vmferry_human_duration (vmferry_monotonic () - t0, took, sizeof took);
  vmferry_verbose ("domain %s: %d filesystem%s trimmed%s in %s%s%s", domain,
                   n, n == 1 ? "" : "s", inspect ? " and inspected" : "",
                   took, *note_rtn ? "; not trimmed: " : "",
                   *note_rtn ? *note_rtn : "");
  return 0;
 fail:
  vmferry_prefix_error ("domain %s: --trim", domain);
  vmferry_guest_close (g);
  free (*note_rtn);
  *note_rtn = NULL;
  return -1;
}

/* ---- files another user writes ---- */

/* "disk vda (/path)", "backing file /path", ...: F in messages. */
static const char *
file_label (const struct export_file *f, char *buf, size_t len)
{
  if (f->role == VMFERRY_ROLE_DISK && f->target)
    snprintf (buf, len, "disk %s (%s)", f->target, f->path);
  else if (f->role == VMFERRY_ROLE_BACKING)
    snprintf (buf, len, "backing file %s", f->path);
  else if (f->role == VMFERRY_ROLE_NVRAM)
    snprintf (buf, len, "NVRAM %s", f->path);
  else if (f->role == VMFERRY_ROLE_TPM)
    snprintf (buf, len, "TPM state %s", f->path);
  else
    snprintf (buf, len, "%s", f->path);
  return buf;
}

/* The plan's file that PATH names (by name, or by what it is: the same
 * inode, the same block device through any node), or NULL.
 */
static const struct export_file *
plan_lookup_path (const struct plan *plan, const char *path)
{
  struct stat st;
  bool have_st = stat (path, &st) == 0;
  size_t nf = plan->files.len;

  for (size_t i = 0; i < nf + plan->under.len; i++) {
    const struct export_file *f = i < nf ? &plan->files.ptr[i]
                                         : &plan->under.ptr[i - nf];

    if (strcmp (f->path, path) == 0)
      return f;
    if (!have_st)
      continue;
    if (f->block ? S_ISBLK (st.st_mode) && st.st_rdev == f->rdev
        : st.st_dev == f->dev && st.st_ino == f->ino)
      return f;
  }
  return NULL;
}

/* XML attribute NAME of N, or NULL; the caller frees it with xmlFree. */
static char *
xml_attr (xmlNodePtr n, const char *name)
{
  return n ? (char *) xmlGetProp (n, BAD_CAST name) : NULL;
}

/* Does running domain DOM write one of the plan's files: a disk of its
 * (not read-only: a shareable one is written too) or its NVRAM?  Its
 * live XML is read, so what it runs on now is what counts.  Sets the
 * error and returns 1 if so; 0 if not (or it stopped meanwhile).
 */
static int
domain_writes_plan (virConnectPtr conn, virDomainPtr dom,
                    const struct plan *plan)
{
  const char *other = virDomainGetName (dom);
  CLEANUP_FREE char *xml = virDomainGetXMLDesc (dom, 0);
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  xmlNodePtr root, devices, n;
  char label[PATH_MAX + 64];

  if (xml == NULL)
    return 0;
  doc = vmferry_domain_parse (xml, strlen (xml), other);
  if (doc == NULL)
    return 0;
  root = xmlDocGetRootElement (doc);
  devices = vmferry_xml_child (root, "devices");
  for (n = devices ? devices->children : NULL; n; n = n->next) {
    xmlNodePtr src = vmferry_xml_child (n, "source");
    char *type, *device, *path = NULL, *pool, *volume, *target;
    const struct export_file *f = NULL;

    if (!vmferry_xml_is_elem (n, "disk") || src == NULL ||
        vmferry_xml_child (n, "readonly"))
      continue;
    device = xml_attr (n, "device");
    type = xml_attr (n, "type");
    if (!(device && strcmp (device, "cdrom") == 0)) {
      if (type && strcmp (type, "volume") == 0) {
        CLEANUP_VIR_POOL virStoragePoolPtr p = NULL;
        CLEANUP_VIR_VOL virStorageVolPtr v = NULL;

        pool = xml_attr (src, "pool");
        volume = xml_attr (src, "volume");
        if (pool && volume && (p = virStoragePoolLookupByName (conn, pool)) &&
            (v = virStorageVolLookupByName (p, volume))) {
          char *vpath = virStorageVolGetPath (v);
          if (vpath)
            f = plan_lookup_path (plan, vpath);
          free (vpath);
        }
        xmlFree (pool);
        xmlFree (volume);
      }
      else if ((path = xml_attr (src, "file")) ||
               (path = xml_attr (src, "dev")))
        f = plan_lookup_path (plan, path);
    }
    xmlFree (path);
    xmlFree (type);
    xmlFree (device);
    if (f) {
      target = xml_attr (vmferry_xml_child (n, "target"), "dev");
      vmferry_set_error ("%s is in use by running domain %s (its disk %s): a "
                         "copy made now could be inconsistent; shut %s down "
                         "first", file_label (f, label, sizeof label), other,
                         target ? target : "?", other);
      xmlFree (target);
      return 1;
    }
  }
  {
    /* <nvram>PATH</nvram>, or <nvram type='file'><source file='PATH'/>. */
    xmlNodePtr nv = vmferry_xml_child (vmferry_xml_child (root, "os"), "nvram");
    char *text = xml_attr (vmferry_xml_child (nv, "source"), "file");
    const struct export_file *f;

    if (text == NULL && nv)
      text = (char *) xmlNodeGetContent (nv);
    f = text && *text ? plan_lookup_path (plan, text) : NULL;
    xmlFree (text);
    if (f) {
      vmferry_set_error ("%s is in use by running domain %s (its NVRAM): a "
                         "copy made now could be inconsistent; shut %s down "
                         "first", file_label (f, label, sizeof label), other,
                         other);
      return 1;
    }
  }
  return 0;
}

/* Refuse to copy a file that something writes while we read it: a
 * running domain of this host (libvirt says which, by path and by what
 * the path is), or any QEMU at all, libvirt's or not, that holds
 * QEMU's write lock on it (imagelock.h).  Reading only is fine: a
 * running domain may share a read-only base image with this one.
 * UUID is this domain's (skipped, should it run).  RUNNING: this
 * domain runs, its own QEMU holds its NVRAM, and its guest content is
 * not read from files.  0, or -1 with the error set.
 */
static int
check_not_in_use (virConnectPtr conn, const char *uuid, const struct plan *plan,
                  bool running)
{
  virDomainPtr *doms = NULL;
  int n, r = 0;
  char label[PATH_MAX + 64], who[64];

  n = virConnectListAllDomains (conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) {
    vmferry_virt_error ("cannot list the running domains");
    return -1;
  }
  for (int i = 0; i < n; i++) {
    char other[VIR_UUID_STRING_BUFLEN];

    if (r == 0 && (virDomainGetUUIDString (doms[i], other) < 0 ||
                   strcmp (other, uuid) != 0) &&
        domain_writes_plan (conn, doms[i], plan) > 0)
      r = -1;
    virDomainFree (doms[i]);
  }
  free (doms);
  for (size_t i = 0; r == 0 && i < plan->files.len + plan->under.len; i++) {
    const struct export_file *f =
      i < plan->files.len ? &plan->files.ptr[i]
                          : &plan->under.ptr[i - plan->files.len];
    CLEANUP_CLOSE int fd = -1;
    struct vmferry_image_lock lk;

    /* A disk read through a node is still its files: checked. */
    if ((f->guest && f->node == NULL) ||
        (running && f->role == VMFERRY_ROLE_NVRAM))
      continue;
    fd = vmferry_source_open_fd (f->path, f->role == VMFERRY_ROLE_TPM);
    if (fd < 0)
      return -1;
    if (vmferry_image_lock_holder (fd, f->path, &lk) < 0)
      return -1;
    if (lk.used & (VMFERRY_QEMU_PERM_WRITE | VMFERRY_QEMU_PERM_WRITE_UNCHANGED |
                   VMFERRY_QEMU_PERM_RESIZE)) {
      vmferry_set_error ("%s is open for writing by %s (it holds QEMU's write "
                         "lock): a copy made now could be inconsistent; stop "
                         "it first", file_label (f, label, sizeof label),
                         vmferry_image_lock_who (&lk, who, sizeof who));
      r = -1;
    }
  }
  return r;
}

/* Is H this host's name: the same, or the short form of the other
 * ("web1" and "web1.example.com")?
 */
static bool
names_this_host (const char *h)
{
  char me[256] = "";
  size_t mlen, hlen;

  gethostname (me, sizeof me - 1);
  mlen = strcspn (me, ".");
  hlen = strcspn (h, ".");
  return strcasecmp (h, me) == 0 ||
    ((h[hlen] == '\0' || me[mlen] == '\0') && hlen == mlen &&
     strncasecmp (h, me, mlen) == 0);
}

/* Is URI another host?  vmferry-export reads the domain's disks from
 * this machine's file system, so it runs where they are.  A URI with
 * no host, or naming this host (localhost, a loopback address, our
 * name), is local.  Sets *HOST_RTN (caller frees) when remote.
 */
static bool
uri_is_remote (const char *uri, char **host_rtn)
{
  xmlURIPtr u = uri ? xmlParseURI (uri) : NULL;
  const char *h;
  bool remote = false;

  *host_rtn = NULL;
  if (u == NULL)
    return false;
  h = u->server;
  if (h && *h && strcmp (h, "localhost") != 0 &&
      strcmp (h, "localhost.localdomain") != 0 && strncmp (h, "127.", 4) != 0 &&
      strcmp (h, "::1") != 0 && strcmp (h, "[::1]") != 0 &&
      !names_this_host (h)) {
    remote = true;
    *host_rtn = strdup (h);
  }
  xmlFreeURI (u);
  return remote;
}

static int
refuse_remote (const char *uri, const char *domain)
{
  CLEANUP_FREE char *host = NULL;

  if (!uri_is_remote (uri, &host))
    return 0;
  vmferry_set_error ("%s is another host (%s): vmferry-export reads the "
                     "domain's disks from this machine's file system, so it "
                     "must run on the host that has them: run it there (ssh %s "
                     "vmferry-export %s > FILE), or run vmferry-migrate there "
                     "(nothing was written)", uri, host ? host : "?",
                     host ? host : "HOST", domain);
  return -1;
}

/* --inspect without --trim: the appliance over the domain's disks,
 * read-only, for inspection_text alone.  NULL, with a warning saying
 * why, when the domain runs or the appliance fails.
 */
static char *
inspect (virConnectPtr conn, const char *name, bool running)
{
  struct vmferry_guest *g = NULL;
  char *text = NULL;

  if (running) {
    vmferry_warn ("domain %s: not inspected: it is running (its "
                  "filesystems change under the appliance)", name);
    return NULL;
  }
  if (vmferry_guest_open_domain (conn, name, &g) == 0)
    text = inspection_text (g, name);
  else
    vmferry_warn ("domain %s: not inspected: %s", name, vmferry_get_error ());
  vmferry_guest_close (g);
  return text;
}

/* The manifest of PLAN (manifest.h), with GUEST (the inspection's JSON
 * text, or NULL); the caller frees it.
 */
static char *
make_manifest (const struct plan *plan, const char *uri, const char *name,
               const char *uuid, const char *guest)
{
  struct vmferry_manifest m = { .version = VMFERRY_MANIFEST_VERSION,
                                .guest = (char *) guest };
  char host[256] = "", created[64], tool[] = PACKAGE_NAME " " PACKAGE_VERSION;
  /* What resume compares: a changed source file gets another id. */
  char (*idents)[96] = NULL;
  time_t now = time (NULL);
  struct timespec ts;
  struct tm tm;
  char *ret = NULL;

  _Static_assert ((int) VMFERRY_MANIFEST_DISK == VMFERRY_ROLE_DISK &&
                  (int) VMFERRY_MANIFEST_NVRAM == VMFERRY_ROLE_NVRAM &&
                  (int) VMFERRY_MANIFEST_TPM == VMFERRY_ROLE_TPM &&
                  (int) VMFERRY_MANIFEST_BACKING == VMFERRY_ROLE_BACKING,
                  "manifest roles are domain roles");
  gethostname (host, sizeof host - 1);
  strftime (created, sizeof created, "%Y-%m-%dT%H:%M:%SZ",
            gmtime_r (&now, &tm));
  m.tool = tool;
  m.created = created;
  m.source_host = host[0] ? host : NULL;
  m.source_uri = (char *) uri;
  m.domain_name = (char *) name;
  m.domain_uuid = (char *) uuid;
  m.nr_files = plan->files.len;
  m.files = calloc (plan->files.len ? plan->files.len : 1, sizeof *m.files);
  idents = calloc (plan->files.len ? plan->files.len : 1, sizeof *idents);
  if (m.files == NULL || idents == NULL) {
    vmferry_set_error_errno (ENOMEM, "manifest");
    goto out;
  }
  clock_gettime (CLOCK_REALTIME, &ts);
  for (size_t i = 0; i < plan->files.len; i++) {
    const struct export_file *f = &plan->files.ptr[i];
    struct vmferry_manifest_file *mf = &m.files[i];

    /* Guest content is this export's alone: no other stream resumes
     * into it.
     */
    if (f->guest)
      snprintf (idents[i], sizeof idents[i],
                "guest:%jd.%09ld pid:%ld size:%" PRIu64,
                (intmax_t) ts.tv_sec, ts.tv_nsec, (long) getpid (), f->size);
    else
      snprintf (idents[i], sizeof idents[i],
                "ino:%ju mtime:%jd.%09ld size:%" PRIu64, (uintmax_t) f->ino,
                (intmax_t) f->mtime.tv_sec, f->mtime.tv_nsec, f->size);
    mf->index = (uint32_t) i;
    mf->role = (enum vmferry_manifest_role) f->role;
    mf->name = f->name;
    mf->source_path = f->path;
    mf->target = f->target;
    mf->format = f->format;
    mf->guest = f->guest;
    mf->size = f->size;
    mf->has_virtual_size = true;
    mf->virtual_size = f->virtual_size;
    mf->allocated = f->allocated;
    mf->backing = f->backing;
    mf->backing_format = f->backing >= 0 ? f->backing_format : NULL;
    mf->readonly = f->readonly;
    mf->pool = f->pool;
    mf->volume = f->volume;
    mf->source_identity = idents[i];
  }
  /* Refuses what an importer would (a name it cannot place, a control
   * character in a path) before any data is read.
   */
  ret = vmferry_manifest_to_json (&m);
 out:
  free (m.files);
  free (idents);
  return ret;
}

/* ---- the data path ---- */

enum job_kind { JOB_NONE, JOB_FILE_BEGIN, JOB_DATA, JOB_FILE_END };

struct job {
  enum job_kind kind;
  uint32_t file;
  uint64_t zero_offset, zero_length;  /* a ZERO record to write first */
  uint64_t offset, length;      /* DATA; FILE_BEGIN: length = size */
  unsigned char *raw;           /* VMFERRY_CHUNK_SIZE */
  const unsigned char *data;    /* the chunk: raw, or in view's map */
  struct vmferry_source_view view;
  unsigned char *out;           /* compressed, out_cap */
  size_t out_cap, out_len;
  bool zstd;
  unsigned char digest[16];
  /* FILE_BEGIN of an archive: the file's data extents (owned). */
  struct vmferry_tar_extent *map;
  size_t map_len;
  unsigned char root[16];       /* FILE_END: of the file's map digest */
};

struct exporter {
  const struct vmferry_export_opts *opts;
  const struct plan *plan;
  struct vmferry_stream_writer *w;
  struct vmferry_compressor **compressors;   /* one per worker */
  unsigned nr_workers;
  struct vmferry_scout *scout;  /* or NULL */
  struct vmferry_tar_writer *tar;       /* --format=tar, or NULL */
  /* --compress=auto: the collector sets the level (adapt.h), each
   * worker brings its compressor to it before a chunk.
   */
  bool adaptive;
  struct vmferry_adapt adapt;   /* the collector's */
  int level;                    /* __atomic: the collector's choice */
  int *worker_level;            /* each compressor's level */
  uint64_t work_ns;             /* __atomic: time spent compressing */
  uint64_t bytes_in, bytes_out; /* the collector's: DATA records */
  /* A step up on trial (adapt.h): every PROBE_EVERY-th chunk is also
   * compressed at the level it came from, PROBE; the sizes at both.
   */
  int probe;                    /* __atomic: that level, or 0 */
  uint64_t probe_seq;           /* __atomic: chunks compressed */
  uint64_t probe_lo, probe_hi;  /* __atomic */
};

/* One chunk in this many probed: a step on trial is judged on 1/8 of a
 * half second's chunks (at 120 MB/s out and 3:1, about 20 MiB), for
 * about a tenth more CPU while on trial, which only begins with CPU idle.
 */
#define PROBE_EVERY 8

static int
job_init (void *opaque, void *jobp)
{
  struct exporter *ex = opaque;
  struct job *j = jobp;

  j->raw = vmferry_alloc_direct (VMFERRY_CHUNK_SIZE);
  if (ex->opts->compress != VMFERRY_COMPRESS_NONE) {
    j->out_cap = vmferry_zstd_bound (VMFERRY_CHUNK_SIZE);
    j->out = malloc (j->out_cap);
  }
  if (j->raw == NULL ||
      (ex->opts->compress != VMFERRY_COMPRESS_NONE && j->out == NULL)) {
    vmferry_set_error_errno (ENOMEM, "export buffers");
    return -1;
  }
  return 0;
}

static void
job_fini (void *opaque, void *jobp)
{
  struct job *j = jobp;

  (void) opaque;
  vmferry_source_view_release (&j->view);
  free (j->map);
  free (j->raw);
  free (j->out);
}

/* The zstd level OPTS' compressors start at (auto: 1), and the highest
 * they may reach (auto: adapt.h).
 */
static int
export_level (const struct vmferry_export_opts *opts)
{
  return opts->compress == VMFERRY_COMPRESS_ZSTD ? opts->level : 1;
}

static int
export_max_level (const struct vmferry_export_opts *opts)
{
  unsigned threads, depth;
  int level = VMFERRY_ADAPT_MAX_LEVEL;

  if (opts->compress != VMFERRY_COMPRESS_AUTO ||
      opts->format == VMFERRY_EXPORT_TAR)
    return export_level (opts);
  /* The compressors' share of the budget is fixed: more of them go less
   * high (2 threads: level 6, 4: level 3).
   */
  vmferry_pipeline_shape (opts->threads, &threads, &depth);
  while (level > 1 &&
         threads * vmferry_compressor_memory (level) > VMFERRY_ADAPT_MEMORY)
    level--;
  return level;
}

size_t
vmferry_export_memory (const struct vmferry_export_opts *opts)
{
  bool zstd = opts->compress != VMFERRY_COMPRESS_NONE;
  unsigned threads, depth;
  size_t slot = VMFERRY_CHUNK_SIZE;

  /* As write_stream allocates: the slots (job_init), the scratch chunk
   * and a compressor per worker; and per worker what its thread costs
   * besides (its stack as used, its malloc arena): --threads=16 peaked
   * 4.6 MiB above --threads=2 with the same ring share (migrate-memory).
   */
  vmferry_pipeline_shape (opts->threads, &threads, &depth);
  if (zstd)
    slot += vmferry_zstd_bound (VMFERRY_CHUNK_SIZE);
  return depth * slot + VMFERRY_CHUNK_SIZE +
         threads * VMFERRY_EXPORT_THREAD_MEMORY +
         (zstd ? threads * vmferry_compressor_memory (export_max_level (opts))
               : 0);
}

/* Bring WORKER's compressor to LEVEL (a failure leaves it where it
 * was: any level makes a valid record).
 */
static void
worker_set_level (struct exporter *ex, unsigned worker, int level)
{
  if (level != ex->worker_level[worker] &&
      vmferry_compressor_set_level (ex->compressors[worker], level) == 0)
    ex->worker_level[worker] = level;
}

/* While a step up is on trial, one chunk in PROBE_EVERY is compressed
 * at the level below first (into the same buffer, which the real
 * compression then overwrites): the size it had there, or 0 when not
 * probed.  -1 on error.
 */
static int
probe_lower (struct exporter *ex, struct job *j, unsigned worker,
             int level, size_t *lo_rtn)
{
  int probe = __atomic_load_n (&ex->probe, __ATOMIC_RELAXED);
  uint64_t seq = __atomic_fetch_add (&ex->probe_seq, 1, __ATOMIC_RELAXED);
  int r;

  *lo_rtn = 0;
  if (probe == 0 || probe >= level || seq % PROBE_EVERY != 0)
    return 0;
  worker_set_level (ex, worker, probe);
  if (ex->worker_level[worker] != probe)
    return 0;
  r = vmferry_compress (ex->compressors[worker], j->data, j->length,
                        j->out, j->out_cap, lo_rtn);
  if (r == 0)
    *lo_rtn = j->length;
  return r < 0 ? -1 : 0;
}

static int
job_work (void *opaque, void *jobp, unsigned worker)
{
  struct exporter *ex = opaque;
  struct job *j = jobp;
  size_t lo = 0;
  double t = 0;
  int r = 0;

  if (ex->adaptive) {
    int level = __atomic_load_n (&ex->level, __ATOMIC_RELAXED);

    t = vmferry_monotonic ();
    r = probe_lower (ex, j, worker, level, &lo);
    worker_set_level (ex, worker, level);
    if (ex->worker_level[worker] != level)
      lo = 0;
  }
  if (r == 0)
    r = vmferry_compress (ex->compressors[worker], j->data, j->length,
                          j->out, j->out_cap, &j->out_len);
  if (ex->adaptive) {
    __atomic_add_fetch (&ex->work_ns,
                        (uint64_t) ((vmferry_monotonic () - t) * 1e9),
                        __ATOMIC_RELAXED);
    if (r >= 0 && lo) {
      __atomic_add_fetch (&ex->probe_lo, lo, __ATOMIC_RELAXED);
      __atomic_add_fetch (&ex->probe_hi, r == 1 ? j->out_len : j->length,
                          __ATOMIC_RELAXED);
    }
  }
  if (r < 0) {
    vmferry_prefix_error ("%s: offset %" PRIu64,
                          ex->plan->files.ptr[j->file].path, j->offset);
    return -1;
  }
  j->zstd = r == 1;
  return 0;
}

/* What the export measured so far, for adapt.h, at NOW. */
static struct vmferry_adapt_sample
adapt_sample (const struct exporter *ex, double now)
{
  struct vmferry_adapt_sample s = {
    .now = now,
    .out_wait = vmferry_stream_writer_wait (ex->w),
    .work = __atomic_load_n (&ex->work_ns, __ATOMIC_RELAXED) / 1e9,
    .in = (double) ex->bytes_in,
    .out = (double) ex->bytes_out,
    .probe_lo = __atomic_load_n (&ex->probe_lo, __ATOMIC_RELAXED),
    .probe_hi = __atomic_load_n (&ex->probe_hi, __ATOMIC_RELAXED),
    .probing = true,
    .workers = ex->nr_workers,
  };

  s.has_cpu = vmferry_adapt_read_cpu (&s.cpu) == 0;
  return s;
}

/* In the collector, after a chunk is written: the level for the next
 * chunks, from how long the output waited, the compressors worked, the
 * CPUs idled and what the last level saved.
 */
static void
adapt_level (struct exporter *ex)
{
  struct vmferry_adapt_sample s;
  const struct vmferry_adapt_window *w = &ex->adapt.last;
  double now = vmferry_monotonic ();
  bool changed;
  int level;

  if (now - ex->adapt.start.now < VMFERRY_ADAPT_WINDOW)
    return;
  s = adapt_sample (ex, now);
  level = vmferry_adapt_update (&ex->adapt, &s, &changed);
  if (vmferry_get_verbosity () >= VMFERRY_LOG_DEBUG) {
    char saved[48] = "";

    if (w->probed)
      snprintf (saved, sizeof saved, ", the step up saved %.1f%%",
                w->gain * 100);
    vmferry_debug ("zstd window: output waited %.0f%%, compressors busy "
                   "%.0f%%, CPU idle %.0f%%, %.3f bytes out per byte "
                   "in%s: level %d", w->out * 100, w->busy * 100,
                   w->idle * 100, w->ratio, saved, level);
  }
  __atomic_store_n (&ex->probe, vmferry_adapt_probe (&ex->adapt),
                    __ATOMIC_RELAXED);
  if (changed)
    __atomic_store_n (&ex->level, level, __ATOMIC_RELAXED);
}

static int
job_done (void *opaque, void *jobp)
{
  struct exporter *ex = opaque;
  struct job *j = jobp;
  const struct export_file *f = &ex->plan->files.ptr[j->file];

  if (j->zero_length) {
    if (vmferry_stream_write_zero (ex->w, j->file, j->zero_offset,
                                   j->zero_length) < 0)
      return -1;
    vmferry_progress_add (ex->opts->progress, j->zero_length);
  }
  switch (j->kind) {
  case JOB_NONE:
    return 0;
  case JOB_FILE_BEGIN:
    vmferry_verbose ("%s: %s (%s, %" PRIu64 " bytes)", f->name, f->path,
                     f->format, f->size);
    vmferry_progress_begin (ex->opts->progress, f->name, f->size);
    if (ex->tar) {
      int r = vmferry_tar_writer_map (ex->tar, j->file, j->map, j->map_len);
      free (j->map);
      j->map = NULL;
      if (r < 0)
        return -1;
    }
    return vmferry_stream_write_file_begin (ex->w, j->file, j->length);
  case JOB_FILE_END:
    vmferry_progress_done (ex->opts->progress);
    return vmferry_stream_write_file_map (ex->w, j->file,
                                          VMFERRY_MAP_CHUNK_SIZE, j->root) < 0
           ? -1 : vmferry_stream_write_file_end (ex->w, j->file, j->digest);
  case JOB_DATA:
    vmferry_progress_add (ex->opts->progress, j->length);
    ex->bytes_in += j->length;
    ex->bytes_out += j->zstd ? j->out_len : j->length;
    if (vmferry_stream_write_data (ex->w, j->file, j->offset, j->length,
                                   j->zstd ? VMFERRY_REC_F_ZSTD : 0,
                                   j->zstd ? j->out : j->data,
                                   j->zstd ? j->out_len : j->length) < 0)
      return -1;
    if (ex->adaptive)
      adapt_level (ex);
    return 0;
  }
  return 0;
}

/* A run of zero blocks not yet written.  It is carried by the next job
 * the reader submits (the collector writes it before that job's own
 * record), so the reader never needs a second slot while holding one.
 */
struct zero_run {
  uint64_t offset, length;
};

static void
attach_zero (struct job *j, struct zero_run *z)
{
  j->zero_offset = z->offset;
  j->zero_length = z->length;
  z->length = 0;
}

/* Give back a slot that carries nothing of its own (maybe a zero run). */
static void
submit_empty (struct vmferry_pipeline *p, struct job *j, uint32_t file,
              struct zero_run *z)
{
  j->kind = JOB_NONE;
  j->file = file;
  attach_zero (j, z);
  vmferry_pipeline_submit (p, j, false);
}

/* Extend the pending run by [OFFSET, OFFSET+LENGTH); when it would grow
 * past what one ZERO record may hold, write it out first.  Only called
 * while the reader holds no slot.
 */
static int
add_zero (struct vmferry_pipeline *p, uint32_t file, struct zero_run *z,
          uint64_t offset, uint64_t length)
{
  if (z->length && z->length + length > VMFERRY_MAX_RECORD_LENGTH) {
    struct job *j = vmferry_pipeline_slot (p);
    if (j == NULL)
      return -1;
    submit_empty (p, j, file, z);
  }
  if (z->length == 0)
    z->offset = offset;
  z->length += length;
  return 0;
}

static void
submit_data (struct exporter *ex, struct vmferry_pipeline *p, struct job *j,
             uint32_t file, uint64_t offset, uint64_t length,
             struct zero_run *z)
{
  j->kind = JOB_DATA;
  j->file = file;
  j->offset = offset;
  j->length = length;
  j->zstd = false;
  attach_zero (j, z);
  vmferry_pipeline_submit (p, j, ex->opts->compress != VMFERRY_COMPRESS_NONE);
}

/* Length of block I of a chunk of LEN bytes (the last may be short). */
static size_t
block_len (size_t len, size_t i)
{
  size_t bs = VMFERRY_BLOCK_SIZE;
  return (i + 1) * bs <= len ? bs : len - i * bs;
}

/* Emit one chunk already read into J->raw: all data (the usual case, no
 * copy), all zero, or a mix, whose data runs are copied into further slots.
 */
static int
emit_chunk (struct exporter *ex, struct vmferry_pipeline *p, struct job *j,
            uint32_t file, uint64_t offset, size_t len, struct zero_run *z,
            unsigned char *scratch)
{
  const size_t bs = VMFERRY_BLOCK_SIZE;
  size_t nblocks = (len + bs - 1) / bs, i = 0, run;
  bool first_zero = vmferry_is_zero (j->data, block_len (len, 0));

  for (run = 1; run < nblocks; run++)
    if (vmferry_is_zero (j->data + run * bs,
                         block_len (len, run)) != first_zero)
      break;
  if (run == nblocks && !first_zero) {
    submit_data (ex, p, j, file, offset, len, z);
    return 0;
  }
  if (run == nblocks) {
    /* The slot goes back empty; the run stays pending, to be merged
     * with the zeros that follow.
     */
    struct zero_run none = { 0, 0 };
    submit_empty (p, j, file, &none);
    return add_zero (p, file, z, offset, len);
  }

  /* Mixed: keep a copy, give the slot back, emit the runs. */
  memcpy (scratch, j->data, len);
  submit_empty (p, j, file, z);
  while (i < nblocks) {
    bool zero = vmferry_is_zero (scratch + i * bs, block_len (len, i));
    size_t e = i + 1, rlen;
    struct job *d;

    while (e < nblocks &&
           vmferry_is_zero (scratch + e * bs, block_len (len, e)) == zero)
      e++;
    rlen = (e == nblocks ? len : e * bs) - i * bs;
    if (zero) {
      if (add_zero (p, file, z, offset + i * bs, rlen) < 0)
        return -1;
    }
    else {
      if (!(d = vmferry_pipeline_slot (p)))
        return -1;
      memcpy (d->raw, scratch + i * bs, rlen);
      d->data = d->raw;
      submit_data (ex, p, d, file, offset + i * bs, rlen, z);
    }
    i = e;
  }
  return 0;
}

DEFINE_VECTOR_TYPE (extent_vector, struct vmferry_tar_extent);

/* The whole data map of SRC, for an archive's sparse entry, which
 * precedes the data.  The export then reads these extents, not a second
 * walk that could differ.  Its all-zero blocks are holes too, so that
 * tar -xS and bsdtar leave a zero run of the source unallocated as they
 * do its holes: finding them reads the data extents once before the
 * data itself (from the page cache, when the disk fits there).
 */
static int
walk_map (struct vmferry_source *src, uint64_t size, struct extent_vector *map)
{
  CLEANUP_FREE unsigned char *buf = vmferry_alloc_direct (VMFERRY_CHUNK_SIZE);
  struct vmferry_source_view view = { 0 };
  uint64_t pos = 0, start, end;
  int more;

  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "data map");
    return -1;
  }
  while ((more = vmferry_source_next_data (src, pos, size, &start, &end,
                                          NULL)) == 1) {
    for (uint64_t off = start; off < end; ) {
      size_t len = end - off < VMFERRY_CHUNK_SIZE ? end - off
                                                   : VMFERRY_CHUNK_SIZE;

      if (vmferry_source_read (src, off, len, buf, &view) < 0) {
        more = -1;
        break;
      }
      for (size_t i = 0; i < len; i += VMFERRY_BLOCK_SIZE) {
        size_t bl = block_len (len - i, 0);
        struct vmferry_tar_extent *last =
          map->len ? &map->ptr[map->len - 1] : NULL;

        if (vmferry_is_zero (view.data + i, bl))
          continue;
        if (last && last->offset + last->length == off + i)
          last->length += bl;
        else if (extent_vector_append (map, (struct vmferry_tar_extent) {
                                         off + i, bl }) == -1) {
          vmferry_set_error_errno (ENOMEM, "data map");
          more = -1;
          break;
        }
      }
      if (more < 0)
        break;
      off += len;
    }
    if (more < 0)
      break;
    pos = end;
  }
  vmferry_source_view_release (&view);
  return more;
}

/* The next data extent at or after POS: from MAP when there is one. */
static int
next_extent (struct vmferry_source *src, const struct extent_vector *map,
             size_t *mi, uint64_t pos, uint64_t size, uint64_t *start,
             uint64_t *end)
{
  if (map == NULL)
    return vmferry_source_next_data (src, pos, size, start, end, NULL);
  if (*mi >= map->len)
    return 0;
  *start = map->ptr[*mi].offset;
  *end = map->ptr[*mi].offset + map->ptr[*mi].length;
  (*mi)++;
  return 1;
}

static int
export_file_data (struct exporter *ex, struct vmferry_pipeline *p,
                  uint32_t idx, unsigned char *scratch)
{
  struct extent_vector map = VECTOR_INIT;
  size_t mi = 0;
  const struct export_file *f = &ex->plan->files.ptr[idx];
  struct vmferry_source *src;
  struct vmferry_digest *dg = NULL;
  struct vmferry_map *chunks = NULL;
  struct zero_run z = { 0, 0 };
  uint64_t pos = 0, start, end;
  struct stat st;
  struct job *j;
  int r = -1, more, got;

  src = f->node ? vmferry_source_open_image (f->path, f->node)
    : f->guest ? vmferry_source_open_nbd (f->uri)
    : vmferry_source_open_file (f->path, f->role == VMFERRY_ROLE_TPM);
  if (src == NULL) {
    if (f->guest)
      vmferry_prefix_error ("disk %s", f->target ? f->target : f->path);
    return -1;
  }
  if (f->node && (stat (f->path, &st) < 0 || st.st_dev != f->dev ||
                  st.st_ino != f->ino)) {
    vmferry_set_error ("%s was replaced since the export began", f->path);
    goto out;
  }
  if (f->guest) {
    if (vmferry_source_size (src) != f->size) {
      vmferry_set_error ("disk %s: %s serves %" PRIu64 " bytes, the "
                         "plan said %" PRIu64 " (resized since?)",
                         f->target ? f->target : f->path,
                         f->node ? "qemu-nbd" : "the backup",
                         vmferry_source_size (src), f->size);
      goto out;
    }
  }
  /* The very file the plan measured, not one put at its path since. */
  else if (fstat (vmferry_source_fd (src), &st) < 0 || st.st_dev != f->dev ||
           st.st_ino != f->ino) {
    vmferry_set_error ("%s was replaced since the export began", f->path);
    goto out;
  }
  dg = vmferry_digest_new ();
  chunks = vmferry_map_new (f->size, VMFERRY_MAP_CHUNK_SIZE);
  if (dg == NULL || chunks == NULL || !(j = vmferry_pipeline_slot (p)))
    goto out;
  j->kind = JOB_FILE_BEGIN;
  j->file = idx;
  j->length = f->size;
  j->zero_length = 0;
  if (ex->tar) {
    if (walk_map (src, f->size, &map) < 0 ||
        (j->map = malloc ((map.len ? map.len : 1) * sizeof *j->map)) ==
            NULL) {
      if (j->map == NULL)
        vmferry_set_error_errno (ENOMEM, "%s", f->path);
      submit_empty (p, j, idx, &z);
      goto out;
    }
    if (map.len)                /* an empty vector's ptr is NULL */
      memcpy (j->map, map.ptr, map.len * sizeof *j->map);
    j->map_len = map.len;
  }
  vmferry_pipeline_submit (p, j, false);

  while ((more = next_extent (src, ex->tar ? &map : NULL, &mi, pos, f->size,
                              &start, &end)) == 1) {
    for (uint64_t off = start; off < end; ) {
      size_t len = end - off < VMFERRY_CHUNK_SIZE ? end - off
                                                   : VMFERRY_CHUNK_SIZE;
      if (vmferry_scout_zero (ex->scout, idx, off, len)) {
        /* Zeros the scout found ahead: not read again. */
        if (add_zero (p, idx, &z, off, len) < 0)
          goto out;
        off += len;
        continue;
      }
      if (!(j = vmferry_pipeline_slot (p)))
        goto out;
      vmferry_scout_reading (ex->scout, true);
      got = vmferry_source_read (src, off, len, j->raw, &j->view);
      j->data = j->view.data;
      vmferry_scout_reading (ex->scout, false);
      if (got < 0 ||
          vmferry_digest_update_map (dg, NULL, chunks, off, j->data, len) < 0) {
        submit_empty (p, j, idx, &z);
        goto out;
      }
      if (emit_chunk (ex, p, j, idx, off, len, &z, scratch) < 0)
        goto out;
      off += len;
    }
    pos = end;
  }
  if (more < 0 || !(j = vmferry_pipeline_slot (p)))
    goto out;
  j->kind = JOB_FILE_END;
  j->file = idx;
  attach_zero (j, &z);
  vmferry_digest_final (dg, j->digest);
  if (vmferry_map_root (chunks, j->root) < 0) {
    submit_empty (p, j, idx, &z);
    goto out;
  }
  vmferry_pipeline_submit (p, j, false);
  r = 0;
 out:
  extent_vector_reset (&map);
  vmferry_map_free (chunks);
  vmferry_digest_free (dg);
  vmferry_source_free (src);
  return r;
}

static const struct vmferry_pipeline_ops export_ops = {
  .init = job_init, .fini = job_fini, .work = job_work, .done = job_done,
};

/* The scout reads ahead for zeros while the reader waits on the output. */
static int
start_scout (struct exporter *ex, struct vmferry_pipeline *p)
{
  const struct plan *plan = ex->plan;
  CLEANUP_FREE const char **paths = calloc (plan->files.len + 1, sizeof *paths);
  CLEANUP_FREE uint64_t *sizes = calloc (plan->files.len + 1, sizeof *sizes);

  if (paths == NULL || sizes == NULL) {
    vmferry_set_error_errno (ENOMEM, "export");
    return -1;
  }
  /* Guest content is not the file's bytes: the scout leaves it alone. */
  for (size_t i = 0; i < plan->files.len; i++) {
    paths[i] = plan->files.ptr[i].guest ? NULL : plan->files.ptr[i].path;
    sizes[i] = plan->files.ptr[i].size;
  }
  ex->scout = vmferry_scout_new (paths, sizes, plan->files.len);
  if (ex->scout == NULL)
    return -1;
  vmferry_pipeline_on_stall (p, vmferry_scout_stall, ex->scout);
  return 0;
}

/* Does the plan carry guest content (the stream needs GUEST)? */
static bool
plan_has_guest (const struct plan *plan)
{
  for (size_t i = 0; i < plan->files.len; i++)
    if (plan->files.ptr[i].guest)
      return true;
  return false;
}

/* The stream of PLAN; BACKUP is the job serving a running domain's
 * disks, NULL for a shut-off domain.
 */
static int
write_stream (const struct vmferry_export_opts *opts, virConnectPtr conn,
              virDomainPtr dom, const char *uuid, const struct plan *plan,
              const char *manifest, const char *xml,
              const struct vmferry_backup *backup)
{
  struct exporter ex = { .opts = opts, .plan = plan };
  struct vmferry_pipeline *p = NULL;
  CLEANUP_FREE unsigned char *scratch = NULL;
  unsigned threads, depth;
  int level = export_level (opts);
  double t0 = vmferry_monotonic ();
  char size[32], took[32];
  int r = -1;

  vmferry_pipeline_shape (opts->threads, &threads, &depth);
  if (opts->format == VMFERRY_EXPORT_TAR) {
    ex.tar = vmferry_tar_writer_new (opts->out_fd, opts->out_name,
                                     opts->tar_zstd, opts->tar_level,
                                     threads);
    if (ex.tar == NULL)
      goto out;
    ex.w = vmferry_stream_writer_new_fn (vmferry_tar_write_record, ex.tar,
                                         opts->out_name);
  }
  else if (opts->out_fn)
    ex.w = vmferry_stream_writer_new_fn (opts->out_fn, opts->out_opaque,
                                         opts->out_name);
  else
    ex.w = vmferry_stream_writer_new (opts->out_fd, opts->out_name);
  scratch = malloc (VMFERRY_CHUNK_SIZE);
  ex.compressors = calloc (threads, sizeof *ex.compressors);
  if (ex.w == NULL || scratch == NULL || ex.compressors == NULL) {
    if (ex.w)
      vmferry_set_error_errno (ENOMEM, "export");
    goto out;
  }
  ex.nr_workers = threads;
  if (opts->compress != VMFERRY_COMPRESS_NONE)
    for (unsigned i = 0; i < threads; i++)
      if (!(ex.compressors[i] = vmferry_compressor_new (level)))
        goto out;
  if (opts->compress != VMFERRY_COMPRESS_NONE &&
      export_max_level (opts) > level) {
    if (!(ex.worker_level = calloc (threads, sizeof *ex.worker_level))) {
      vmferry_set_error_errno (ENOMEM, "export");
      goto out;
    }
    for (unsigned i = 0; i < threads; i++)
      ex.worker_level[i] = level;
    ex.adaptive = true;
    ex.level = level;
    struct vmferry_adapt_sample start = adapt_sample (&ex, t0);

    vmferry_adapt_init (&ex.adapt, level, export_max_level (opts), &start);
  }

  if ((plan_has_guest (plan)
       ? vmferry_stream_write_header_ex (ex.w, VMFERRY_FEATURE_GUEST, 0,
                                         NULL, 0)
       : vmferry_stream_write_header (ex.w)) < 0 ||
      vmferry_stream_write_manifest (ex.w, manifest) < 0 ||
      vmferry_stream_write_xml (ex.w, xml) < 0)
    goto out;

  /* Memory stays flat: depth x 8 MiB, and a zstd context per worker. */
  p = vmferry_pipeline_new (&export_ops, &ex, threads, depth,
                            sizeof (struct job));
  if (p == NULL || start_scout (&ex, p) < 0)
    goto out;
  for (uint32_t i = 0; i < plan->files.len; i++)
    if (export_file_data (&ex, p, i, scratch) < 0) {
      vmferry_pipeline_abort (p);
      break;
    }
  if (vmferry_pipeline_finish (p) < 0)
    goto out;
  if (vmferry_scout_skipped (ex.scout))
    vmferry_verbose ("%" PRIu64 " bytes of written zeros found ahead by the "
                     "scout, not read again", vmferry_scout_skipped (ex.scout));
  /* A domain started while we read its disks leaves an inconsistent
   * copy, as does a backup job that is not ours at the end (aborted
   * and another begun: what we read may be of two points in time): say
   * so and leave the stream without its END record, so no importer
   * accepts it.
   */
  if (backup && vmferry_backup_check (backup) < 0) {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    vmferry_append_error (&saved, "the stream is incomplete and will not "
                          "import");
    goto out;
  }
  if (!backup && vmferry_virt_domain_state (dom) != VIR_DOMAIN_SHUTOFF) {
    vmferry_set_error ("domain %s was started during the export: the stream "
                       "is incomplete and will not import", opts->domain);
    goto out;
  }
  /* Likewise a file another domain or QEMU began to write. */
  if (check_not_in_use (conn, uuid, plan, backup != NULL) < 0) {
    struct vmferry_saved_error saved;

    vmferry_prefix_error ("domain %s: during the export", opts->domain);
    vmferry_save_error (&saved);
    vmferry_append_error (&saved, "the stream is incomplete and will not "
                          "import");
    goto out;
  }
  if (vmferry_stream_write_end (ex.w, plan->files.len) < 0)
    goto out;
  vmferry_human_size (ex.tar ? vmferry_tar_writer_bytes (ex.tar)
                             : vmferry_stream_writer_bytes (ex.w),
                      size, sizeof size);
  vmferry_human_duration (vmferry_monotonic () - t0, took, sizeof took);
  if (backup)
    vmferry_set_summary ("domain %s exported running (%s) to %s (%zu "
                         "file%s, %s in %s)", opts->domain,
                         vmferry_backup_frozen (backup)
                         ? "file systems frozen" : "crash-consistent",
                         opts->out_name, plan->files.len,
                         plan->files.len == 1 ? "" : "s", size, took);
  else
    vmferry_set_summary ("domain %s exported to %s (%zu file%s, %s "
                         "in %s)", opts->domain, opts->out_name,
                         plan->files.len, plan->files.len == 1 ? "" : "s",
                         size, took);
  vmferry_verbose ("wrote %" PRIu64 " bytes to %s",
                   vmferry_stream_writer_bytes (ex.w), opts->out_name);
  if (ex.adaptive)
    vmferry_verbose ("zstd level (auto): %d to %d, %u change%s (%u step%s "
                     "up taken back), %d at the end; the output waited "
                     "%.1f s", ex.adapt.low, ex.adapt.high, ex.adapt.changes,
                     ex.adapt.changes == 1 ? "" : "s", ex.adapt.refused,
                     ex.adapt.refused == 1 ? "" : "s", ex.adapt.level,
                     vmferry_stream_writer_wait (ex.w));
  r = 0;
 out:
  vmferry_pipeline_free (p);
  vmferry_scout_free (ex.scout);
  if (ex.compressors)
    for (unsigned i = 0; i < threads; i++)
      vmferry_compressor_free (ex.compressors[i]);
  free (ex.compressors);
  free (ex.worker_level);
  vmferry_stream_writer_free (ex.w);
  vmferry_tar_writer_free (ex.tar);
  return r;
}

/* The domain XML DOC of a running export as the stream carries it:
 * each disk the plan reads as guest content is a raw file now, so its
 * driver says raw and the chain noted under it (<backingStore>) goes.
 * The caller frees the result.
 */
static char *
guest_xml (xmlDocPtr doc, const struct plan *plan)
{
  xmlNodePtr devices = vmferry_xml_child (xmlDocGetRootElement (doc),
                                          "devices");
  int changes = 0;

  for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next) {
    CLEANUP_FREE char *target = NULL;
    xmlNodePtr driver, bs;
    bool guest = false;

    if (!vmferry_xml_is_elem (n, "disk"))
      continue;
    target = vmferry_xml_attr (vmferry_xml_child (n, "target"), "dev");
    for (size_t i = 0; target && i < plan->files.len; i++)
      if (plan->files.ptr[i].guest &&
          strcmp (plan->files.ptr[i].target, target) == 0)
        guest = true;
    if (!guest)
      continue;
    driver = vmferry_xml_child (n, "driver");
    if (driver == NULL) {
      driver = xmlNewNode (NULL, BAD_CAST "driver");
      if (driver == NULL ||
          vmferry_xml_set_attr (driver, "name", "qemu", &changes) < 0 ||
          vmferry_xml_prepend_child (n, driver) < 0) {
        xmlFreeNode (driver);
        vmferry_set_error_errno (ENOMEM, "domain XML");
        return NULL;
      }
    }
    if (vmferry_xml_set_attr (driver, "type", "raw", &changes) < 0)
      return NULL;
    while ((bs = vmferry_xml_child (n, "backingStore")) != NULL)
      vmferry_xml_remove (bs);
  }
  return vmferry_domain_to_string (doc);
}

/* Start the backup job that serves PLAN's guest content; each guest
 * file gets its URI.  NULL with the error set.
 */
static struct vmferry_backup *
start_backup (const struct vmferry_export_opts *opts, virDomainPtr dom,
              struct plan *plan)
{
  CLEANUP_FREE const char **targets = calloc (plan->files.len + 1,
                                              sizeof *targets);
  struct vmferry_backup *b;
  size_t n = 0;

  if (targets == NULL) {
    vmferry_set_error_errno (ENOMEM, "export");
    return NULL;
  }
  for (size_t i = 0; i < plan->files.len; i++)
    if (plan->files.ptr[i].guest)
      targets[n++] = plan->files.ptr[i].target;
  b = vmferry_backup_begin (dom, BACKUP_BASE_DIR, targets, n, opts->freeze,
                            NULL);
  if (b == NULL)
    return NULL;
  if (!vmferry_backup_frozen (b))
    vmferry_notice ("domain %s: crash-consistent copy (file systems not "
                    "frozen: %s)", opts->domain,
                    vmferry_backup_why_not_frozen (b));
  for (size_t i = 0; i < plan->files.len; i++) {
    struct export_file *f = &plan->files.ptr[i];
    if (f->guest && !(f->uri = vmferry_backup_uri (b, f->target))) {
      vmferry_backup_end (b);
      return NULL;
    }
  }
  return b;
}

/* After the export ended with R (its error in SAVED when R < 0), a
 * helper it used (backup job, trim overlays) was ended with END_RC (the
 * error set when < 0).  The stream is complete or not either way: what
 * the end left behind is said, as a warning after a success, else added
 * to the export's own error, which stays the one reported.
 */
static void
after_end (int r, struct vmferry_saved_error *saved, int end_rc)
{
  if (end_rc < 0) {
    char msg[VMFERRY_ERROR_MAX];

    snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
    if (r == 0)
      vmferry_warn ("%s", msg);
    else
      vmferry_append_error (saved, "%s", msg);
  }
  else if (r < 0)
    vmferry_restore_saved_error (saved);
}

int
vmferry_export (const struct vmferry_export_opts *opts)
{
  CLEANUP_VIR_CONNECT virConnectPtr conn = NULL;
  CLEANUP_VIR_DOMAIN virDomainPtr dom = NULL;
  CLEANUP_FREE char *xml = NULL, *manifest = NULL, *name = NULL, *uuid = NULL;
  CLEANUP_FREE char *carried = NULL, *inspection = NULL;
  CLEANUP_FREE char *untrimmed = NULL;
  CLEANUP_FREE struct vmferry_guest_disk *overlays = NULL;
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  struct plan plan = { .files = VECTOR_INIT, .under = VECTOR_INIT };
  struct vmferry_backup *backup = NULL;
  struct vmferry_trim *trim = NULL;
  size_t nr_overlays = 0;
  int state, r = -1;
  bool running, local = false;

  if (refuse_remote (opts->uri, opts->domain) < 0)
    return -1;
  conn = vmferry_virt_connect (opts->uri);
  if (conn == NULL)
    return -1;
  if (opts->uri == NULL) {
    /* libvirt's default may be another host too. */
    CLEANUP_FREE char *uri = virConnectGetURI (conn);
    if (refuse_remote (uri, opts->domain) < 0)
      return -1;
  }
  dom = vmferry_virt_lookup_domain (conn, opts->domain);
  if (dom == NULL)
    return -1;
  state = vmferry_virt_domain_state (dom);
  if (state < 0)
    return -1;
  running = state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_PAUSED;
  if (running && opts->trim) {
    vmferry_set_error ("domain %s is running: --trim needs it shut off (its "
                       "filesystems would change under the appliance; nothing "
                       "was written)", opts->domain);
    return -1;
  }
  if (state != VIR_DOMAIN_SHUTOFF && (opts->offline || !running)) {
    vmferry_set_error ("domain %s is %s%s: shut it down first (nothing was "
                       "written)", opts->domain,
                       vmferry_virt_state_name (state),
                       running ? " and the export is offline" : "");
    return -1;
  }
  xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE |
                             VIR_DOMAIN_XML_SECURE |
                             VIR_DOMAIN_XML_MIGRATABLE);
  if (xml == NULL) {
    vmferry_virt_error ("domain %s: cannot get its XML", opts->domain);
    return -1;
  }
  doc = vmferry_domain_parse (xml, strlen (xml), opts->domain);
  if (doc == NULL)
    return -1;
  name = vmferry_domain_get_name (doc);
  uuid = vmferry_domain_get_uuid (doc);
  if (name == NULL || uuid == NULL)
    return -1;
  if (make_plan (conn, dom, doc, uuid, opts->include_readonly, running,
                 &plan) < 0) {
    vmferry_prefix_error ("domain %s", name);
    goto out;
  }
  if (check_not_in_use (conn, uuid, &plan, running) < 0) {
    struct vmferry_saved_error saved;

    vmferry_prefix_error ("domain %s", name);
    vmferry_save_error (&saved);
    vmferry_append_error (&saved, "nothing was written");
    goto out;
  }
  /* A running domain's disks are guest content already (the backup). */
  if (!running && (opts->flatten || opts->trim)) {
    overlays = calloc (plan.files.len + 1, sizeof *overlays);
    if (overlays == NULL) {
      vmferry_set_error_errno (ENOMEM, "export");
      goto out;
    }
    if (opts->trim && !opts->manifest_rtn &&
        !(trim = vmferry_trim_new (TRIM_BASE_DIR)))
      goto out;
    if (plan_guest_content (&plan, opts->flatten, opts->trim, trim, overlays,
                            &nr_overlays) < 0 ||
        trim_overlays (name, overlays, nr_overlays,
                       opts->inspect && !opts->manifest_rtn, &untrimmed,
                       &inspection) < 0) {
      vmferry_prefix_error ("domain %s", name);
      goto out;
    }
    local = plan_has_guest (&plan);
  }
  /* --trim's launch inspected the guest already, if it had a disk. */
  if (opts->inspect && !opts->manifest_rtn &&
      !(trim && nr_overlays > 0))
    inspection = inspect (conn, name, running);
  manifest = make_manifest (&plan, opts->uri, name, uuid, inspection);
  if (manifest == NULL)
    goto out;
  vmferry_verbose ("domain %s (%s): %zu files%s", name, uuid, plan.files.len,
                   running ? ", running: disks read through a backup job" : "");
  if (opts->manifest_rtn) {
    *opts->manifest_rtn = manifest;
    manifest = NULL;
    r = 0;
    goto out;
  }
  if (running || local) {
    carried = guest_xml (doc, &plan);
    if (carried == NULL ||
        (running && !(backup = start_backup (opts, dom, &plan))))
      goto out;
  }
  {
    uint64_t total = 0;
    for (size_t i = 0; i < plan.files.len; i++)
      total += plan.files.ptr[i].size;
    vmferry_progress_set_total (opts->progress, name, total, plan.files.len);
  }
  if (opts->format == VMFERRY_EXPORT_TAR) {
    /* The archive is compressed as one zstd stream by libarchive: its
     * records go raw, and the workers only pass them on.
     */
    struct vmferry_export_opts tar = *opts;

    if (opts->out_fn) {
      vmferry_set_error ("%s: an archive is written to a file or a pipe "
                         "only", opts->out_name);
      goto out;
    }
    tar.tar_level = export_level (opts);
    tar.compress = VMFERRY_COMPRESS_NONE;
    r = write_stream (&tar, conn, dom, uuid, &plan, manifest,
                      carried ? carried : xml, backup);
  }
  else
    r = write_stream (opts, conn, dom, uuid, &plan, manifest,
                      carried ? carried : xml, backup);
 out:
  if (r == 0 && opts->trim && !opts->manifest_rtn) {
    char *s = NULL;

    if (asprintf (&s, "%s; %s", vmferry_get_summary (),
                  untrimmed ? untrimmed : "every filesystem trimmed") >= 0) {
      if (untrimmed)
        vmferry_notice ("domain %s: sent as they are (not trimmed): %s",
                        name, untrimmed);
      vmferry_set_summary ("%s%s", s, untrimmed ? " sent untrimmed" : "");
      free (s);
    }
  }
  for (size_t i = 0; i < nr_overlays; i++)
    free ((char *) overlays[i].path);
  if (trim) {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    after_end (r, &saved, vmferry_trim_end (trim));
  }
  if (backup) {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    after_end (r, &saved, vmferry_backup_end (backup));
  }
  plan_free (&plan);
  return r;
}

static bool
ends_with (const char *s, const char *suffix)
{
  size_t ls = strlen (s), lx = strlen (suffix);
  return ls > lx && strcmp (s + ls - lx, suffix) == 0;
}

int
vmferry_export_choose_format (struct vmferry_export_opts *opts,
                              const char *format, const char *path)
{
  bool plain_name = ends_with (path, ".tar");
  bool tar_name = plain_name || ends_with (path, ".tar.zst") ||
                  ends_with (path, ".tzst");

  if (format == NULL)
    opts->format = tar_name ? VMFERRY_EXPORT_TAR : VMFERRY_EXPORT_STREAM;
  else if (strcmp (format, "stream") == 0)
    opts->format = VMFERRY_EXPORT_STREAM;
  else if (strcmp (format, "tar") == 0)
    opts->format = VMFERRY_EXPORT_TAR;
  else {
    vmferry_set_error ("--format: '%s': expected stream or tar", format);
    return -1;
  }
  switch (opts->compress) {
  case VMFERRY_COMPRESS_NONE: opts->tar_zstd = false; break;
  case VMFERRY_COMPRESS_ZSTD: opts->tar_zstd = true; break;
  case VMFERRY_COMPRESS_AUTO: opts->tar_zstd = !plain_name; break;
  }
  return 0;
}
