/* vmferry: vmferry-sync of a running domain (see sync-running.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "cleanup.h"
#include "digest.h"
#include "error.h"
#include "log.h"
#include "sync-running.h"
#include "virt.h"

/* As the export's: on disk, not a tmpfs, since the scratch files grow
 * with what the guest writes while the refresh reads.
 */
#define BACKUP_BASE_DIR "/var/tmp"
#define CHUNK VMFERRY_MAP_CHUNK_SIZE
/* QEMU's dirty bitmap bit in block status (qemu:dirty-bitmap:...). */
#define DIRTY 1

struct vmferry_sync_running {
  struct vmferry_backup *backup;
  size_t n;
  char **uris;
  struct vmferry_source **src;
  /* Per disk: its changes come from the checkpoint's bitmap, and which
   * 1 MiB chunks it marks (one bit a chunk).
   */
  bool *incremental;
  unsigned char **dirty;
  uint64_t *size;
};

static void
running_free (struct vmferry_sync_running *r)
{
  for (size_t i = 0; i < r->n; i++) {
    if (r->src)
      vmferry_source_free (r->src[i]);
    if (r->uris)
      free (r->uris[i]);
    if (r->dirty)
      free (r->dirty[i]);
  }
  free (r->src);
  free (r->uris);
  free (r->dirty);
  free (r->incremental);
  free (r->size);
  free (r);
}

/* "vmferry.cp.DEST8.GEN", or NULL with the error set. */
static char *
checkpoint_name (const char *dest8, int64_t gen)
{
  char *n;

  if (asprintf (&n, VMFERRY_SYNC_CHECKPOINT_PREFIX "%.8s.%" PRId64, dest8,
                gen) < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return NULL;
  }
  return n;
}

int
vmferry_sync_running_forget (virDomainPtr dom, const char *dest8,
                             int64_t keep)
{
  virDomainCheckpointPtr *cps = NULL;
  CLEANUP_FREE char *prefix = NULL;
  int n, r = 0;

  if (asprintf (&prefix, VMFERRY_SYNC_CHECKPOINT_PREFIX "%.8s.", dest8) < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  n = virDomainListAllCheckpoints (dom, &cps, 0);
  if (n < 0) {
    vmferry_virt_error ("domain %s: cannot list its checkpoints",
                        virDomainGetName (dom));
    return -1;
  }
  for (int k = 0; k < n; k++) {
    const char *name = virDomainCheckpointGetName (cps[k]);
    char *end;
    int64_t gen;

    if (name && strncmp (name, prefix, strlen (prefix)) == 0) {
      errno = 0;
      gen = strtoll (name + strlen (prefix), &end, 10);
      /* Every bitmap keeps recording: one not of the standby's
       * generation costs the guest's writes and tells nothing.
       */
      /* A bitmap QEMU lost (killed) cannot be merged: the checkpoint
       * goes as metadata only.
       */
      if ((errno || *end || gen != keep) &&
          virDomainCheckpointDelete (cps[k], 0) < 0 &&
          virDomainCheckpointDelete
            (cps[k], VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY) < 0) {
        if (r == 0)
          vmferry_virt_error ("domain %s: cannot delete checkpoint %s",
                              virDomainGetName (dom), name);
        r = -1;
      }
      else if (gen != keep)
        vmferry_verbose ("domain %s: checkpoint %s deleted",
                         virDomainGetName (dom), name);
    }
    virDomainCheckpointFree (cps[k]);
  }
  free (cps);
  return r;
}

/* The <domaincheckpoint> NAME with a bitmap for the disks BITMAP says. */
static char *
checkpoint_xml (const char *name, const char *const *targets,
                const bool *bitmap, size_t n)
{
  char *x = NULL, *y;

  if (asprintf (&x, "<domaincheckpoint><name>%s</name><disks>", name) < 0)
    goto nomem;
  for (size_t i = 0; i < n; i++) {
    if (asprintf (&y, "%s<disk name='%s' checkpoint='%s'/>", x, targets[i],
                  bitmap[i] ? "bitmap" : "no") < 0)
      goto nomem;
    free (x);
    x = y;
  }
  if (asprintf (&y, "%s</disks></domaincheckpoint>", x) < 0)
    goto nomem;
  free (x);
  return y;
 nomem:
  free (x);
  vmferry_set_error_errno (ENOMEM, "malloc");
  return NULL;
}

static int
dirty_extent (void *opaque, const char *context, uint64_t offset,
              uint32_t *entries, size_t nr_entries, int *error)
{
  struct vmferry_sync_running *r = ((void **) opaque)[0];
  size_t i = (size_t) (uintptr_t) ((void **) opaque)[1];
  uint64_t *pos = ((void **) opaque)[2];

  (void) context;
  (void) error;
  for (size_t e = 0; e + 1 < nr_entries; e += 2) {
    uint64_t len = entries[e], end = offset + len;

    if ((entries[e + 1] & DIRTY) && len > 0)
      for (uint64_t c = offset / CHUNK; c <= (end - 1) / CHUNK; c++)
        r->dirty[i][c / 8] |= 1 << (c % 8);
    offset = end;
  }
  *pos = offset;
  return 0;
}

/* Disk I's chunks that the job's bitmap marks, from its export's
 * qemu:dirty-bitmap:backup-TARGET context.
 */
static int
read_dirty (struct vmferry_sync_running *r, size_t i, const char *target)
{
  struct nbd_handle *h = nbd_create ();
  CLEANUP_FREE char *ctx = NULL;
  uint64_t pos = 0;
  void *opaque[3] = { r, (void *) (uintptr_t) i, &pos };
  int64_t size;
  int ret = -1;

  if (h == NULL || asprintf (&ctx, "qemu:dirty-bitmap:backup-%s",
                             target) < 0) {
    vmferry_set_error_errno (ENOMEM, "libnbd");
    goto out;
  }
  if (nbd_add_meta_context (h, ctx) == -1 ||
      nbd_connect_uri (h, r->uris[i]) == -1 ||
      (size = nbd_get_size (h)) == -1)
    goto nbd_err;
  if (nbd_can_meta_context (h, ctx) != 1) {
    vmferry_set_error ("%s: the export has no %s", r->uris[i], ctx);
    goto out;
  }
  r->size[i] = size;
  r->dirty[i] = calloc ((size + CHUNK - 1) / CHUNK / 8 + 1, 1);
  if (r->dirty[i] == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    goto out;
  }
  while (pos < (uint64_t) size) {
    uint64_t was = pos;
    uint64_t len = size - pos < (1u << 30) ? size - pos : (1u << 30);

    if (nbd_block_status (h, len, pos,
                          (nbd_extent_callback) { .callback = dirty_extent,
                                                  .user_data = opaque },
                          0) == -1)
      goto nbd_err;
    if (pos <= was) {
      vmferry_set_error ("%s: block status made no progress at %" PRIu64,
                         r->uris[i], was);
      goto out;
    }
  }
  ret = 0;
  goto out;
 nbd_err:
  vmferry_set_error ("%s: %s", r->uris[i], nbd_get_error ());
 out:
  if (h) {
    nbd_shutdown (h, 0);
    nbd_close (h);
  }
  return ret;
}

struct vmferry_sync_running *
vmferry_sync_running_begin (virDomainPtr dom, const char *const *targets,
                            const bool *bitmap, const bool *known, size_t n,
                            enum vmferry_freeze freeze, const char *dest8,
                            int64_t gen)
{
  struct vmferry_sync_running *r = calloc (1, sizeof *r);
  CLEANUP_FREE char *from = NULL, *next = NULL, *cxml = NULL;
  CLEANUP_FREE bool *full = calloc (n ? n : 1, sizeof *full);
  struct vmferry_backup_checkpoint cp = { .full = full };
  bool any_bitmap = false, any_incr = false;
  virDomainCheckpointPtr c;

  if (r == NULL || full == NULL ||
      !(r->uris = calloc (n, sizeof *r->uris)) ||
      !(r->src = calloc (n, sizeof *r->src)) ||
      !(r->incremental = calloc (n, sizeof *r->incremental)) ||
      !(r->dirty = calloc (n, sizeof *r->dirty)) ||
      !(r->size = calloc (n, sizeof *r->size))) {
    if (r)
      running_free (r);
    vmferry_set_error_errno (ENOMEM, "malloc");
    return NULL;
  }
  r->n = n;
  for (size_t i = 0; i < n; i++)
    any_bitmap = any_bitmap || bitmap[i];
  if (any_bitmap) {
    /* A job a killed run left holds its checkpoint: ended first
     * (backup.c says so), then the checkpoints of no use removed: a
     * killed run's GEN+1, older ones.
     */
    if (vmferry_backup_clean_stale (dom) < 0 ||
        vmferry_sync_running_forget (dom, dest8, gen) < 0 ||
        !(from = checkpoint_name (dest8, gen)) ||
        !(next = checkpoint_name (dest8, gen + 1)) ||
        !(cxml = checkpoint_xml (next, targets, bitmap, n)))
      goto err;
    c = virDomainCheckpointLookupByName (dom, from, 0);
    if (c) {
      virDomainCheckpointFree (c);
      for (size_t i = 0; i < n; i++) {
        r->incremental[i] = bitmap[i] && known[i];
        full[i] = !r->incremental[i];
        any_incr = any_incr || r->incremental[i];
      }
    }
    else
      vmferry_verbose ("domain %s: no checkpoint %s: its disks are read in "
                       "full", virDomainGetName (dom), from);
    cp.incremental = any_incr ? from : NULL;
    cp.xml = cxml;
  }
  r->backup = vmferry_backup_begin_checkpoint (dom, BACKUP_BASE_DIR, targets,
                                               n, freeze, NULL, &cp);
  if (r->backup == NULL && cp.incremental) {
    /* A bitmap QEMU lost (killed) or refuses: libvirt calls the
     * checkpoint inconsistent.  Read in full; the job makes the next.
     */
    vmferry_notice ("domain %s: checkpoint %s is of no use (%s): its disks "
                    "are read in full", virDomainGetName (dom), from,
                    vmferry_get_error ());
    if (vmferry_sync_running_forget (dom, dest8, -1) < 0)
      goto err;
    cp.incremental = NULL;
    for (size_t i = 0; i < n; i++)
      r->incremental[i] = false;
    r->backup = vmferry_backup_begin_checkpoint (dom, BACKUP_BASE_DIR,
                                                 targets, n, freeze, NULL,
                                                 &cp);
  }
  if (r->backup == NULL)
    goto err;
  if (!vmferry_backup_frozen (r->backup))
    vmferry_notice ("domain %s: crash-consistent copy (file systems not "
                    "frozen: %s)", virDomainGetName (dom),
                    vmferry_backup_why_not_frozen (r->backup));
  for (size_t i = 0; i < n; i++)
    if (!(r->uris[i] = vmferry_backup_uri (r->backup, targets[i])) ||
        (r->incremental[i] && read_dirty (r, i, targets[i]) < 0)) {
      vmferry_sync_running_end (r);
      return NULL;
    }
  return r;
 err:
  running_free (r);
  return NULL;
}

struct vmferry_source *
vmferry_sync_running_source (struct vmferry_sync_running *r, size_t i)
{
  if (i >= r->n) {
    vmferry_set_error ("backup: no disk %zu", i);
    return NULL;
  }
  if (r->src[i] == NULL)
    r->src[i] = vmferry_source_open_nbd (r->uris[i]);
  return r->src[i];
}

const char *
vmferry_sync_running_method (const struct vmferry_sync_running *r, size_t i)
{
  return r->incremental[i] ? "checkpoint" : "scan";
}

bool
vmferry_sync_running_changed (const struct vmferry_sync_running *r, size_t i,
                              uint64_t off, uint64_t len)
{
  if (!r->incremental[i])
    return true;
  for (uint64_t c = off / CHUNK; len && c <= (off + len - 1) / CHUNK; c++)
    if (c * CHUNK >= r->size[i] || (r->dirty[i][c / 8] & (1 << (c % 8))))
      return true;
  return false;
}

bool
vmferry_sync_running_frozen (const struct vmferry_sync_running *r)
{
  return vmferry_backup_frozen (r->backup);
}

int
vmferry_sync_running_end (struct vmferry_sync_running *r)
{
  struct vmferry_backup *b;

  if (r == NULL)
    return 0;
  b = r->backup;
  /* The exports first: the job's end waits for their clients. */
  for (size_t i = 0; i < r->n; i++) {
    vmferry_source_free (r->src[i]);
    r->src[i] = NULL;
  }
  running_free (r);
  return vmferry_backup_end (b);
}
