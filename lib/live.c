/* vmferry: live migration through libvirt (see live.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/virterror.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "fault.h"
#include "full-rw.h"
#include "live.h"
#include "log.h"
#include "names.h"
#include "progress.h"
#include "stream.h"
#include "vector.h"
#include "virt.h"

/* An NVRAM file is a few hundred KiB; refuse anything absurd. */
#define NVRAM_MAX (64 * 1024 * 1024)

/* How often the job is looked at (cancel flag, statistics, post-copy). */
#define POLL_NS (100 * 1000 * 1000)
#define STATS_EVERY 5           /* polls: statistics twice a second */

/* One file the destination gets from us: a disk we pre-create, or the
 * NVRAM file we upload.
 */
struct live_file {
  int role;                     /* VMFERRY_ROLE_DISK or _NVRAM */
  char *target;                 /* disk: "vda" */
  char *src_path;
  char *dst_path;
  char *format;                 /* disk: "raw", "qcow2" */
  uint64_t capacity;            /* disk: virtual size */
  virStorageVolPtr vol;         /* on the destination, once created */
};

DEFINE_VECTOR_TYPE (pool_vector, virStoragePoolPtr);

struct live {
  const struct vmferry_live_opts *opts;
  virConnectPtr src, dst;
  virDomainPtr dom;
  char *name, *uuid, *dest_name;
  char *dest_xml, *persist_xml;
  struct live_file *files;
  size_t nr_files;
  /* Transient pools we started on either host, destroyed at the end. */
  struct pool_vector pools;
  unsigned pool_serial;
};

/* ------------------------------------------------------------ pure parts */

char *
vmferry_live_volume_xml (const char *name, const char *format,
                         uint64_t capacity)
{
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  xmlNodePtr root, n, target;
  char cap[32];

  if (name == NULL || *name == '\0' || strchr (name, '/') ||
      format == NULL || *format == '\0') {
    vmferry_set_error ("volume %s: bad name or format", name ? name : "(null)");
    return NULL;
  }
  snprintf (cap, sizeof cap, "%" PRIu64, capacity);
  doc = xmlNewDoc (BAD_CAST "1.0");
  if (doc == NULL)
    goto nomem;
  root = xmlNewDocNode (doc, NULL, BAD_CAST "volume", NULL);
  if (root == NULL)
    goto nomem;
  xmlDocSetRootElement (doc, root);
  if (xmlNewTextChild (root, NULL, BAD_CAST "name", BAD_CAST name) == NULL)
    goto nomem;
  n = xmlNewTextChild (root, NULL, BAD_CAST "capacity", BAD_CAST cap);
  if (n == NULL || xmlNewProp (n, BAD_CAST "unit", BAD_CAST "bytes") == NULL)
    goto nomem;
  n = xmlNewTextChild (root, NULL, BAD_CAST "allocation", BAD_CAST "0");
  if (n == NULL || xmlNewProp (n, BAD_CAST "unit", BAD_CAST "bytes") == NULL)
    goto nomem;
  target = xmlNewChild (root, NULL, BAD_CAST "target", NULL);
  if (target == NULL)
    goto nomem;
  n = xmlNewChild (target, NULL, BAD_CAST "format", NULL);
  if (n == NULL || xmlNewProp (n, BAD_CAST "type", BAD_CAST format) == NULL)
    goto nomem;
  return vmferry_domain_to_string (doc);

 nomem:
  vmferry_set_error_errno (ENOMEM, "volume %s: cannot build its XML", name);
  return NULL;
}

/* A transient dir pool over DIR. */
static char *
pool_xml (const char *name, const char *dir)
{
  CLEANUP_XMLDOC xmlDocPtr doc = xmlNewDoc (BAD_CAST "1.0");
  xmlNodePtr root, target;

  if (doc == NULL)
    goto nomem;
  root = xmlNewDocNode (doc, NULL, BAD_CAST "pool", NULL);
  if (root == NULL ||
      xmlNewProp (root, BAD_CAST "type", BAD_CAST "dir") == NULL)
    goto nomem;
  xmlDocSetRootElement (doc, root);
  if (xmlNewTextChild (root, NULL, BAD_CAST "name", BAD_CAST name) == NULL)
    goto nomem;
  target = xmlNewChild (root, NULL, BAD_CAST "target", NULL);
  if (target == NULL ||
      xmlNewTextChild (target, NULL, BAD_CAST "path", BAD_CAST dir) == NULL)
    goto nomem;
  return vmferry_domain_to_string (doc);

 nomem:
  vmferry_set_error_errno (ENOMEM, "pool over %s: cannot build its XML", dir);
  return NULL;
}

static bool
in_list (const char *s, const char *const *list)
{
  for (; list && *list; list++)
    if (strcmp (s, *list) == 0)
      return true;
  return false;
}

int
vmferry_live_prepare_xml (xmlDocPtr doc, const char *const *targets,
                          bool detect_zeroes)
{
  xmlNodePtr root = xmlDocGetRootElement (doc), devices, disk, c, next;

  if (root == NULL) {
    vmferry_set_error ("domain XML: empty document");
    return -1;
  }
  for (devices = root->children; devices; devices = devices->next) {
    if (devices->type != XML_ELEMENT_NODE ||
        !xmlStrEqual (devices->name, BAD_CAST "devices"))
      continue;
    for (disk = devices->children; disk; disk = disk->next) {
      xmlNodePtr driver = NULL;
      bool ours = false;

      if (disk->type != XML_ELEMENT_NODE ||
          !xmlStrEqual (disk->name, BAD_CAST "disk"))
        continue;
      for (c = disk->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE &&
            xmlStrEqual (c->name, BAD_CAST "target")) {
          xmlChar *dev = xmlGetProp (c, BAD_CAST "dev");
          ours = dev && in_list ((const char *) dev, targets);
          xmlFree (dev);
        }
        if (c->type == XML_ELEMENT_NODE &&
            xmlStrEqual (c->name, BAD_CAST "driver"))
          driver = c;
      }
      if (!ours)
        continue;
      for (c = disk->children; c; c = next) {
        next = c->next;
        if (c->type == XML_ELEMENT_NODE &&
            xmlStrEqual (c->name, BAD_CAST "backingStore")) {
          xmlUnlinkNode (c);
          xmlFreeNode (c);
        }
      }
      if (detect_zeroes && driver &&
          !xmlHasProp (driver, BAD_CAST "detect_zeroes")) {
        xmlChar *discard = xmlGetProp (driver, BAD_CAST "discard");
        const char *mode = "unmap";
        bool ok = true;

        /* QEMU refuses detect-zeroes=unmap unless discards are passed
         * down; a disk that chose its discard mode keeps it and gets
         * plain zero detection (zeroed, not deallocated, clusters).
         */
        if (discard == NULL)
          ok = xmlSetProp (driver, BAD_CAST "discard",
                           BAD_CAST "unmap") != NULL;
        else if (!xmlStrEqual (discard, BAD_CAST "unmap"))
          mode = "on";
        xmlFree (discard);
        if (!ok || xmlSetProp (driver, BAD_CAST "detect_zeroes",
                               BAD_CAST mode) == NULL) {
          vmferry_set_error_errno (ENOMEM,
                                   "domain XML: cannot set detect_zeroes");
          return -1;
        }
      }
    }
  }
  return 0;
}

void
vmferry_live_sample_parse (virTypedParameterPtr params, int nparams,
                           struct vmferry_live_sample *s)
{
  unsigned long long v;

  memset (s, 0, sizeof *s);
#define GET(name, field)                                                \
  if (virTypedParamsGetULLong (params, nparams, name, &v) == 1)         \
    s->field = v
  GET (VIR_DOMAIN_JOB_DISK_PROCESSED, disk_processed);
  GET (VIR_DOMAIN_JOB_DISK_TOTAL, disk_total);
  GET (VIR_DOMAIN_JOB_MEMORY_PROCESSED, mem_processed);
  GET (VIR_DOMAIN_JOB_MEMORY_TOTAL, mem_total);
  GET (VIR_DOMAIN_JOB_MEMORY_ITERATION, mem_iteration);
#undef GET
  if (virTypedParamsGetULLong (params, nparams, VIR_DOMAIN_JOB_DISK_REMAINING,
                               &v) == 1) {
    s->disk_remaining = v;
    s->has_disk_remaining = true;
  }
  if (virTypedParamsGetULLong (params, nparams,
                               VIR_DOMAIN_JOB_MEMORY_REMAINING, &v) == 1) {
    s->mem_remaining = v;
    s->has_mem_remaining = true;
  }
}

/* Done in a phase: the total less what remains, else what was sent. */
static uint64_t
phase_done (uint64_t total, uint64_t processed, bool has_remaining,
            uint64_t remaining)
{
  if (has_remaining && remaining <= total)
    return total - remaining;
  return processed;
}

static void
bar_phase (struct vmferry_progress *p, struct vmferry_live_bar *b, int phase,
           uint64_t total, uint64_t done)
{
  if (b->phase != phase) {
    b->phase = phase;
    b->shown = 0;
    vmferry_progress_begin (p, phase == 1 ? "disks" : "memory", total);
  }
  if (done > b->shown) {
    vmferry_progress_add (p, done - b->shown);
    b->shown = done;
  }
}

/* The disk phase is over: show all of it. */
static void
bar_disks_done (struct vmferry_progress *p, struct vmferry_live_bar *b)
{
  bar_phase (p, b, 1, b->last.disk_total, b->last.disk_total);
  vmferry_progress_end (p);
}

void
vmferry_live_bar_report (struct vmferry_progress *p, struct vmferry_live_bar *b,
                         const struct vmferry_live_sample *s)
{
  /* libvirt copies the disks first (NBD mirrors) and starts migrating
   * memory only when every mirror is in sync.
   */
  if (s->mem_processed > 0 || (s->mem_total > 0 && s->disk_total == 0)) {
    /* The disks were done before the first sample came: they are shown
     * done all the same.
     */
    if (b->phase == 1 || (b->phase == 0 && s->disk_total > 0)) {
      if (b->phase == 0)
        b->last = *s;
      bar_disks_done (p, b);
    }
    b->last = *s;
    bar_phase (p, b, 2, s->mem_total,
               phase_done (s->mem_total, s->mem_processed,
                           s->has_mem_remaining, s->mem_remaining));
  }
  else if (s->disk_total > 0 && b->phase != 2) {
    b->last = *s;
    bar_phase (p, b, 1, s->disk_total,
               phase_done (s->disk_total, s->disk_processed,
                           s->has_disk_remaining, s->disk_remaining));
  }
}

void
vmferry_live_bar_end (struct vmferry_progress *p, struct vmferry_live_bar *b,
                      bool completed)
{
  if (!completed) {
    if (b->phase)
      vmferry_progress_end (p);
    b->phase = 0;
    return;
  }
  if (b->phase == 1 || (b->phase == 0 && b->last.disk_total > 0))
    bar_disks_done (p, b);
  if (b->last.mem_total > 0)
    bar_phase (p, b, 2, b->last.mem_total, b->last.mem_total);
  if (b->phase)
    vmferry_progress_end (p);
  b->phase = 0;
}

/* ------------------------------------------------------------ helpers */

static void
free_live (struct live *l)
{
  for (size_t i = 0; i < l->nr_files; i++) {
    free (l->files[i].target);
    free (l->files[i].src_path);
    free (l->files[i].dst_path);
    free (l->files[i].format);
    if (l->files[i].vol)
      virStorageVolFree (l->files[i].vol);
  }
  free (l->files);
  for (size_t i = 0; i < l->pools.len; i++) {
    if (virStoragePoolIsActive (l->pools.ptr[i]) == 1)
      virStoragePoolDestroy (l->pools.ptr[i]);
    virStoragePoolFree (l->pools.ptr[i]);
  }
  pool_vector_reset (&l->pools);
  free (l->name);
  free (l->uuid);
  free (l->dest_name);
  free (l->dest_xml);
  free (l->persist_xml);
  if (l->dom)
    virDomainFree (l->dom);
  if (l->dst)
    virConnectClose (l->dst);
  if (l->src)
    virConnectClose (l->src);
}

/* Split PATH into a directory and a last component (both freed by the
 * caller).  PATH must be absolute with a non-empty last component.
 */
static int
split_path (const char *path, char **dir_rtn, char **base_rtn)
{
  const char *slash = strrchr (path, '/');

  if (path[0] != '/' || slash == NULL || slash[1] == '\0') {
    vmferry_set_error ("%s: not an absolute path to a file", path);
    return -1;
  }
  *dir_rtn = slash == path ? strdup ("/") : strndup (path, slash - path);
  *base_rtn = strdup (slash + 1);
  if (*dir_rtn == NULL || *base_rtn == NULL) {
    free (*dir_rtn);
    free (*base_rtn);
    vmferry_set_error_errno (ENOMEM, "%s", path);
    return -1;
  }
  return 0;
}

/* An active pool whose target is DIR on CONN: one that exists, else a
 * transient dir pool we start (and destroy at the end).  The caller frees
 * the returned reference.  NULL with the error set.
 */
static virStoragePoolPtr
pool_for_dir (struct live *l, virConnectPtr conn, const char *host,
              const char *dir)
{
  virStoragePoolPtr pool = virStoragePoolLookupByTargetPath (conn, dir);
  CLEANUP_FREE char *xml = NULL;
  char name[64];

  if (pool && virStoragePoolIsActive (pool) == 1) {
    if (virStoragePoolRefresh (pool, 0) < 0) {
      vmferry_virt_error ("%s: %s: cannot refresh its storage pool", host, dir);
      virStoragePoolFree (pool);
      return NULL;
    }
    return pool;
  }
  if (pool)
    virStoragePoolFree (pool);
  /* Room first: a pool started must be recorded, to be destroyed. */
  if (pool_vector_reserve (&l->pools, 1) == -1) {
    vmferry_set_error_errno (errno, "%s: %s: storage pools", host, dir);
    return NULL;
  }
  snprintf (name, sizeof name, "vmferry-live-%ld-%u", (long) getpid (),
            l->pool_serial++);
  xml = pool_xml (name, dir);
  if (xml == NULL)
    return NULL;
  pool = virStoragePoolCreateXML (conn, xml, 0);
  if (pool == NULL) {
    vmferry_virt_error ("%s: %s: cannot open the directory as a storage pool",
                        host, dir);
    return NULL;
  }
  vmferry_debug ("%s: transient storage pool %s over %s", host, name, dir);
  l->pools.ptr[l->pools.len++] = pool;       /* reserved above */
  if (virStoragePoolRef (pool) < 0) {
    vmferry_virt_error ("%s: pool %s", host, name);
    return NULL;
  }
  return pool;
}

/* Refuse to touch a path that already exists on the destination. */
static int
check_absent (virStoragePoolPtr pool, const char *base, const char *path,
              const char *host)
{
  virStorageVolPtr vol = virStorageVolLookupByName (pool, base);

  if (vol) {
    virStorageVolFree (vol);
    vmferry_set_error ("%s: %s already exists on the destination; "
                       "not overwriting it", host, path);
    return -1;
  }
  return 0;
}

static int
create_disk (struct live *l, struct live_file *f)
{
  const char *host = l->opts->dest_uri;
  CLEANUP_FREE char *dir = NULL, *base = NULL, *xml = NULL;
  CLEANUP_VIR_POOL virStoragePoolPtr pool = NULL;

  if (split_path (f->dst_path, &dir, &base) < 0)
    return -1;
  pool = pool_for_dir (l, l->dst, host, dir);
  if (pool == NULL || check_absent (pool, base, f->dst_path, host) < 0)
    return -1;
  xml = vmferry_live_volume_xml (base, f->format, f->capacity);
  if (xml == NULL)
    return -1;
  f->vol = virStorageVolCreateXML (pool, xml, 0);
  if (f->vol == NULL) {
    vmferry_virt_error ("%s: %s: cannot create the %s volume", host,
                        f->dst_path, f->format);
    return -1;
  }
  vmferry_verbose ("%s: created %s (%s, %" PRIu64 " bytes, thin)", host,
                   f->dst_path, f->format, f->capacity);
  return 0;
}

DEFINE_VECTOR_TYPE (byte_vector, char);

static int
sink_buf (virStreamPtr st, const char *data, size_t n, void *opaque)
{
  struct byte_vector *b = opaque;

  (void) st;
  if (b->len + n > NVRAM_MAX) {
    errno = EFBIG;
    return -1;
  }
  if (byte_vector_append_many (b, data, n) == -1)
    return -1;
  return (int) n;
}

struct source {
  const char *data;
  size_t len, off;
};

static int
source_buf (virStreamPtr st, char *data, size_t n, void *opaque)
{
  struct source *s = opaque;
  size_t k = s->len - s->off < n ? s->len - s->off : n;

  (void) st;
  memcpy (data, s->data + s->off, k);
  s->off += k;
  return (int) k;
}

/* Copy the NVRAM file from the source host to the destination, both
 * through their libvirt storage APIs (so any URI works).
 */
static int
upload_nvram (struct live *l, struct live_file *f)
{
  const char *host = l->opts->dest_uri;
  const char *src_host = l->opts->uri ? l->opts->uri : "source";
  CLEANUP_FREE char *sdir = NULL, *sbase = NULL, *ddir = NULL, *dbase = NULL;
  CLEANUP_FREE char *xml = NULL;
  CLEANUP_VIR_POOL virStoragePoolPtr spool = NULL, dpool = NULL;
  CLEANUP_VIR_VOL virStorageVolPtr svol = NULL;
  struct byte_vector b = VECTOR_INIT;
  struct source s;
  virStreamPtr st = NULL;
  int ret = -1;

  if (split_path (f->src_path, &sdir, &sbase) < 0 ||
      split_path (f->dst_path, &ddir, &dbase) < 0)
    return -1;
  spool = pool_for_dir (l, l->src, src_host, sdir);
  if (spool == NULL)
    return -1;
  svol = virStorageVolLookupByName (spool, sbase);
  if (svol == NULL) {
    /* libvirt creates the file from its template at first start only;
     * a domain that runs has one, so this is an error.
     */
    vmferry_virt_error ("%s: NVRAM file %s", src_host, f->src_path);
    return -1;
  }
  st = virStreamNew (l->src, 0);
  if (st == NULL || virStorageVolDownload (svol, st, 0, 0, 0) < 0 ||
      virStreamRecvAll (st, sink_buf, &b) < 0 || virStreamFinish (st) < 0) {
    vmferry_virt_error ("%s: %s: cannot read the NVRAM file", src_host,
                        f->src_path);
    if (st)
      virStreamAbort (st);
    goto out;
  }
  virStreamFree (st);
  st = NULL;

  dpool = pool_for_dir (l, l->dst, host, ddir);
  if (dpool == NULL || check_absent (dpool, dbase, f->dst_path, host) < 0)
    goto out;
  xml = vmferry_live_volume_xml (dbase, "raw", b.len);
  if (xml == NULL)
    goto out;
  f->vol = virStorageVolCreateXML (dpool, xml, 0);
  if (f->vol == NULL) {
    vmferry_virt_error ("%s: %s: cannot create the NVRAM file", host,
                        f->dst_path);
    goto out;
  }
  s = (struct source) { .data = b.ptr, .len = b.len };
  st = virStreamNew (l->dst, 0);
  if (st == NULL || virStorageVolUpload (f->vol, st, 0, b.len, 0) < 0 ||
      virStreamSendAll (st, source_buf, &s) < 0 || virStreamFinish (st) < 0) {
    vmferry_virt_error ("%s: %s: cannot write the NVRAM file", host,
                        f->dst_path);
    if (st)
      virStreamAbort (st);
    goto out;
  }
  vmferry_verbose ("%s: copied NVRAM %s (%zu bytes) to %s", host, f->src_path,
                   b.len, f->dst_path);
  ret = 0;
 out:
  if (st)
    virStreamFree (st);
  byte_vector_reset (&b);
  return ret;
}

/* The files to make on the destination: copied disks (pairing source and
 * rewritten paths by target) and the NVRAM file.
 */
static int
plan_files (struct live *l, xmlDocPtr src_doc, xmlDocPtr dst_doc)
{
  struct vmferry_domain_file *sf = NULL, *df = NULL;
  size_t ns = 0, nd = 0;
  int ret = -1;

  if (vmferry_domain_files (src_doc, false, &sf, &ns) < 0 ||
      vmferry_domain_files (dst_doc, false, &df, &nd) < 0)
    goto out;
  l->files = calloc (ns ? ns : 1, sizeof *l->files);
  if (l->files == NULL) {
    vmferry_set_error_errno (errno, "calloc");
    goto out;
  }
  for (size_t i = 0; i < ns; i++) {
    const struct vmferry_domain_file *d = NULL;
    struct live_file *f;

    if (sf[i].role != VMFERRY_ROLE_DISK && sf[i].role != VMFERRY_ROLE_NVRAM)
      continue;               /* TPM state rides in the migration stream */
    for (size_t j = 0; j < nd && d == NULL; j++) {
      if (df[j].role != sf[i].role)
        continue;
      if (sf[i].role == VMFERRY_ROLE_NVRAM ||
          (sf[i].target && df[j].target &&
           strcmp (sf[i].target, df[j].target) == 0))
        d = &df[j];
    }
    if (d == NULL || d->path == NULL) {
      vmferry_set_error ("domain %s: %s %s: the rewritten definition has no "
                         "such %s", l->name,
                         sf[i].role == VMFERRY_ROLE_DISK ? "disk" : "NVRAM",
                         sf[i].target ? sf[i].target : sf[i].path,
                         sf[i].role == VMFERRY_ROLE_DISK ? "disk" : "file");
      goto out;
    }
    if (sf[i].role == VMFERRY_ROLE_DISK && (sf[i].target == NULL || d->block)) {
      vmferry_set_error ("domain %s: disk %s: live migration pre-creates "
                         "files only, not block devices (%s)", l->name,
                         sf[i].target ? sf[i].target : sf[i].path, d->path);
      goto out;
    }
    f = &l->files[l->nr_files++];
    f->role = sf[i].role;
    f->src_path = strdup (sf[i].path);
    f->dst_path = strdup (d->path);
    if (sf[i].target)
      f->target = strdup (sf[i].target);
    f->format = strdup (sf[i].format ? sf[i].format : "raw");
    if (f->src_path == NULL || f->dst_path == NULL || f->format == NULL ||
        (sf[i].target && f->target == NULL)) {
      vmferry_set_error_errno (ENOMEM, "strdup");
      goto out;
    }
    if (f->role == VMFERRY_ROLE_DISK) {
      virDomainBlockInfo info;

      if (strcmp (f->format, "raw") != 0 && strcmp (f->format, "qcow2") != 0) {
        vmferry_set_error ("domain %s: disk %s: format %s: live migration "
                           "pre-creates raw and qcow2 disks only", l->name,
                           f->target, f->format);
        goto out;
      }
      if (virDomainGetBlockInfo (l->dom, f->target, &info, 0) < 0) {
        vmferry_virt_error ("domain %s: disk %s: cannot get its size",
                            l->name, f->target);
        goto out;
      }
      f->capacity = info.capacity;
    }
  }
  ret = 0;
 out:
  vmferry_domain_files_free (sf, ns);
  vmferry_domain_files_free (df, nd);
  return ret;
}

/* Read the domain's running and persistent XML, rewrite both, prepare the
 * running one for the destination, and note the files to make.
 */
static int
build_xml (struct live *l)
{
  const struct vmferry_live_opts *o = l->opts;
  unsigned flags = VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_MIGRATABLE;
  CLEANUP_FREE char *live_xml = NULL, *inactive_xml = NULL;
  CLEANUP_XMLDOC xmlDocPtr src_doc = NULL, dst_doc = NULL, per_doc = NULL;
  CLEANUP_FREE const char **targets = NULL;
  size_t nt = 0;

  live_xml = virDomainGetXMLDesc (l->dom, flags);
  inactive_xml = virDomainGetXMLDesc (l->dom, flags | VIR_DOMAIN_XML_INACTIVE);
  if (live_xml == NULL || inactive_xml == NULL) {
    vmferry_virt_error ("domain %s: cannot read its XML", l->name);
    return -1;
  }
  src_doc = vmferry_domain_parse (live_xml, strlen (live_xml), l->name);
  dst_doc = vmferry_domain_parse (live_xml, strlen (live_xml), l->name);
  per_doc = vmferry_domain_parse (inactive_xml, strlen (inactive_xml), l->name);
  if (src_doc == NULL || dst_doc == NULL || per_doc == NULL)
    return -1;
  if (o->rewrite) {
    if (o->rewrite (o->opaque, dst_doc, l->dst) < 0 ||
        o->rewrite (o->opaque, per_doc, l->dst) < 0) {
      vmferry_prefix_error ("domain %s: rewrite", l->name);
      return -1;
    }
  }
  if (o->preflight && o->preflight (o->opaque, per_doc, l->dst) < 0)
    return -1;
  if (plan_files (l, src_doc, dst_doc) < 0)
    return -1;

  targets = calloc (l->nr_files + 1, sizeof *targets);
  if (targets == NULL) {
    vmferry_set_error_errno (errno, "calloc");
    return -1;
  }
  for (size_t i = 0; i < l->nr_files; i++)
    if (l->files[i].role == VMFERRY_ROLE_DISK)
      targets[nt++] = l->files[i].target;
  if (vmferry_live_prepare_xml (dst_doc, targets, !o->keep_zeroes) < 0 ||
      vmferry_live_prepare_xml (per_doc, targets, false) < 0)
    return -1;
  l->dest_name = vmferry_domain_get_name (dst_doc);
  l->dest_xml = vmferry_domain_to_string (dst_doc);
  l->persist_xml = vmferry_domain_to_string (per_doc);
  if (l->dest_name == NULL || l->dest_xml == NULL || l->persist_xml == NULL)
    return -1;
  vmferry_debug ("destination XML:\n%s", l->dest_xml);
  return 0;
}

/* The domain must not exist on the destination yet, so that whatever
 * definition is found there after a failure is ours to remove.
 */
static int
check_dest_free (struct live *l)
{
  virDomainPtr d = virDomainLookupByUUIDString (l->dst, l->uuid);

  if (d == NULL)
    d = virDomainLookupByName (l->dst, l->dest_name);
  if (d) {
    vmferry_set_error ("%s: a domain %s (or with UUID %s) is already defined "
                       "there; nothing was changed", l->opts->dest_uri,
                       virDomainGetName (d), l->uuid);
    virDomainFree (d);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------ the job */

struct job {
  virDomainPtr dom;
  virConnectPtr dst;
  virTypedParameterPtr params;
  int nparams;
  unsigned flags;
  virDomainPtr result;
  char *error;
  int done;                     /* __atomic */
};

static void *
job_thread (void *arg)
{
  struct job *j = arg;

  j->result = virDomainMigrate3 (j->dom, j->dst, j->params, j->nparams,
                                 j->flags);
  if (j->result == NULL) {
    virErrorPtr err = virGetLastError ();
    j->error = strdup (err && err->message ? err->message
                       : "unknown libvirt error");
  }
  __atomic_store_n (&j->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

struct monitor {
  struct vmferry_live_bar bar;
  bool aborted, postcopy_started, told_postcopy;
};

static void
poll_job (struct live *l, struct monitor *m, unsigned tick)
{
  const struct vmferry_live_opts *o = l->opts;
  virTypedParameterPtr params = NULL;
  struct vmferry_live_sample s;
  int nparams = 0, type;

  if (o->cancel && *o->cancel && !m->aborted) {
    m->aborted = true;
    if (m->postcopy_started) {
      vmferry_warn ("domain %s: the migration is in post-copy and cannot be "
                    "aborted; waiting for it to finish", l->name);
    }
    else {
      vmferry_notice ("domain %s: aborting the migration", l->name);
      if (virDomainAbortJob (l->dom) < 0) {
        virErrorPtr err = virGetLastError ();
        vmferry_warn ("domain %s: cannot abort the migration: %s", l->name,
                      err && err->message ? err->message : "unknown error");
      }
    }
  }
  if (tick % STATS_EVERY != 0)
    return;
  if (virDomainGetJobStats (l->dom, &type, &params, &nparams, 0) < 0)
    return;                     /* the job may just have ended */
  if (type == VIR_DOMAIN_JOB_UNBOUNDED || type == VIR_DOMAIN_JOB_BOUNDED) {
    vmferry_live_sample_parse (params, nparams, &s);
    vmferry_live_bar_report (o->progress, &m->bar, &s);
    if (o->postcopy && !m->postcopy_started && !m->aborted &&
        s.mem_iteration >= 2) {
      /* The first pass over memory is done: what is left is what the
       * guest keeps dirtying, which post-copy fetches on demand.
       */
      if (virDomainMigrateStartPostCopy (l->dom, 0) == 0) {
        m->postcopy_started = true;
        vmferry_verbose ("domain %s: switched to post-copy", l->name);
      }
      else if (!m->told_postcopy) {
        virErrorPtr err = virGetLastError ();
        vmferry_warn ("domain %s: cannot switch to post-copy: %s", l->name,
                      err && err->message ? err->message : "unknown error");
        m->told_postcopy = true;
      }
    }
  }
  virTypedParamsFree (params, nparams);
}

/* ------------------------------------------------------------ roll back */

/* Append ", WHAT" (or WHAT first) to a list in LIST/LEN. */
static void
list_add (char *list, size_t len, const char *what)
{
  size_t used = strlen (list);

  snprintf (list + used, len - used, "%s%s", used ? ", " : "", what);
}

/* After a failure before or during the migration: remove from the
 * destination what we or libvirt made there, and describe the outcome
 * in the error message (the caller's error becomes its first part).
 */
static enum vmferry_live_outcome
roll_back (struct live *l, bool started)
{
  const char *dest = l->opts->dest_uri;
  char removed[4096] = "", left[4096] = "";
  struct vmferry_saved_error why;
  char srcstate[256];
  enum vmferry_live_outcome outcome = VMFERRY_LIVE_NOTHING;
  virDomainPtr d;
  int state;

  vmferry_save_error (&why);

  if (started) {
    d = virDomainLookupByUUIDString (l->dst, l->uuid);
    if (d) {
      bool ok = true;
      if (virDomainIsActive (d) == 1 && virDomainDestroy (d) < 0)
        ok = false;
      if (ok && virDomainIsPersistent (d) == 1 &&
          virDomainUndefineFlags (d, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM |
                                  VIR_DOMAIN_UNDEFINE_TPM) < 0)
        ok = false;
      if (ok)
        list_add (removed, sizeof removed, "the domain's definition");
      else {
        virErrorPtr err = virGetLastError ();
        char msg[1024];
        snprintf (msg, sizeof msg, "domain %s (%s)", virDomainGetName (d),
                  err && err->message ? err->message : "cannot remove it");
        list_add (left, sizeof left, msg);
      }
      virDomainFree (d);
    }
  }
  for (size_t i = l->nr_files; i-- > 0;) {
    struct live_file *f = &l->files[i];

    if (f->vol == NULL)
      continue;
    /* The fault tests make a removal fail here (it can, e.g. when the
     * destination's libvirtd went away).
     */
    if (vmferry_fault ("live-rollback-delete") == 0 &&
        virStorageVolDelete (f->vol, 0) == 0)
      list_add (removed, sizeof removed, f->dst_path);
    else
      list_add (left, sizeof left, f->dst_path);
    virStorageVolFree (f->vol);
    f->vol = NULL;
  }

  state = vmferry_virt_domain_state (l->dom);
  if (state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_PAUSED)
    snprintf (srcstate, sizeof srcstate, "the domain %s on the source",
              state == VIR_DOMAIN_RUNNING ? "still runs" : "is still paused");
  else {
    snprintf (srcstate, sizeof srcstate, "the domain is %s on the source",
              state < 0 ? "in an unknown state"
              : vmferry_virt_state_name (state));
    outcome = VMFERRY_LIVE_LEFTOVERS;
  }
  if (*left)
    outcome = VMFERRY_LIVE_LEFTOVERS;
  /* Each part only when it is so: "nothing had been made" beside
   * "could not remove" would contradict itself.  The journal stays
   * where something is left, and the next run removes it first.
   */
  if (*removed && *left)
    vmferry_append_error (&why, "%s; removed from %s: %s; could not remove "
                          "from it: %s (run the same command again to remove "
                          "them first, or remove them by hand)", srcstate,
                          dest, removed, left);
  else if (*left)
    vmferry_append_error (&why, "%s; could not remove from %s: %s (run the "
                          "same command again to remove them first, or "
                          "remove them by hand)", srcstate, dest, left);
  else if (*removed)
    vmferry_append_error (&why, "%s; removed from %s: %s", srcstate, dest,
                          removed);
  else
    vmferry_append_error (&why, "%s; nothing had been made on %s", srcstate,
                          dest);
  return outcome;
}

/* ------------------------------------------------------------ journal
 *
 * A live migration makes things on the destination (thin volumes, the
 * NVRAM file) before libvirt moves the domain, and a kill of this process
 * at any moment must be finished or undone by the next run.  So what it
 * made is recorded first, on the source host, in a small journal
 * (VMFERRY_STATE_DIR, default /var/lib/vmferry: live-UUID.json, written
 * whole and synced before each step).  The next run for this domain reads
 * it: if the domain runs on the destination and not here, libvirt had
 * completed the move (the run reports it as done); if it runs here and
 * not there, what the journal lists is removed from the destination
 * before anything else; otherwise it says where the domain is and
 * touches nothing.
 */

#define STATE_DIR "/var/lib/vmferry"

struct journal {
  char *dest_uri;
  bool started;                 /* libvirt's job was started */
  size_t nr_paths;
  char **paths;                 /* made on the destination */
};

static void
journal_free (struct journal *j)
{
  for (size_t i = 0; i < j->nr_paths; i++)
    free (j->paths[i]);
  free (j->paths);
  free (j->dest_uri);
  memset (j, 0, sizeof *j);
}

/* The journal of domain UUID; NULL with the error set.  Caller frees. */
static char *
journal_path (const char *uuid)
{
  const char *dir = getenv ("VMFERRY_STATE_DIR");
  char *p;

  if (!vmferry_name_uuid_ok (uuid)) {
    vmferry_set_error ("%s: not a UUID", uuid);
    return NULL;
  }
  if (asprintf (&p, "%s/live-%s.json", dir && *dir ? dir : STATE_DIR,
                uuid) < 0) {
    vmferry_set_error_errno (ENOMEM, "journal");
    return NULL;
  }
  return p;
}

static int
journal_save (struct live *l, bool started)
{
  CLEANUP_FREE char *path = journal_path (l->uuid), *tmp = NULL, *dir = NULL;
  json_object *o = json_object_new_object (), *a = json_object_new_array ();
  const char *text;
  int fd = -1, r = -1;

  if (path == NULL || o == NULL || a == NULL)
    goto out;
  json_object_object_add (o, "format", json_object_new_string ("vmferry-live"));
  json_object_object_add (o, "dest_uri",
                          json_object_new_string (l->opts->dest_uri));
  json_object_object_add (o, "domain", json_object_new_string (l->name));
  json_object_object_add (o, "started", json_object_new_boolean (started));
  for (size_t i = 0; i < l->nr_files; i++)
    if (l->files[i].vol)
      json_object_array_add (a, json_object_new_string (l->files[i].dst_path));
  json_object_object_add (o, "made", a);
  a = NULL;
  text = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN |
                                         JSON_C_TO_STRING_NOSLASHESCAPE);
  dir = strdup (path);
  if (dir == NULL || asprintf (&tmp, "%s.new", path) < 0) {
    tmp = NULL;
    vmferry_set_error_errno (ENOMEM, "journal");
    goto out;
  }
  *strrchr (dir, '/') = '\0';
  if (mkdir (dir, 0700) < 0 && errno != EEXIST) {
    vmferry_set_error_errno (errno, "%s: cannot keep the live migration's "
                             "journal there (VMFERRY_STATE_DIR)", dir);
    goto out;
  }
  unlink (tmp);
  fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || vmferry_write_full (fd, tmp, text, strlen (text)) < 0 ||
      fsync (fd) < 0 || rename (tmp, path) < 0) {
    vmferry_set_error_errno (errno,
                             "%s: cannot write the live migration's journal",
                             path);
    unlink (tmp);
    goto out;
  }
  r = 0;
 out:
  if (fd >= 0)
    close (fd);
  json_object_put (a);
  json_object_put (o);
  return r;
}

/* Returns 1 with *J filled, 0 if there is none, -1 with the error set. */
static int
journal_load (const char *uuid, struct journal *j)
{
  CLEANUP_FREE char *path = journal_path (uuid);
  json_object *o, *v, *a;
  int r = -1;

  memset (j, 0, sizeof *j);
  if (path == NULL)
    return -1;
  if (access (path, F_OK) < 0 && errno == ENOENT)
    return 0;
  o = json_object_from_file (path);
  if (o == NULL || !json_object_object_get_ex (o, "dest_uri", &v) ||
      !json_object_is_type (v, json_type_string) ||
      !(j->dest_uri = strdup (json_object_get_string (v))) ||
      !json_object_object_get_ex (o, "made", &a) ||
      !json_object_is_type (a, json_type_array) ||
      json_object_array_length (a) > VMFERRY_MAX_FILES) {
    vmferry_set_error ("%s: a damaged journal of a live migration (remove it "
                       "once the destination holds nothing of it)", path);
    goto out;
  }
  j->started = json_object_object_get_ex (o, "started", &v) &&
               json_object_get_boolean (v);
  j->paths = calloc (json_object_array_length (a) + 1, sizeof *j->paths);
  if (j->paths == NULL)
    goto out;
  for (size_t i = 0; i < json_object_array_length (a); i++) {
    const char *p = json_object_get_string (json_object_array_get_idx (a, i));
    if (p == NULL || p[0] != '/' || !(j->paths[j->nr_paths++] = strdup (p))) {
      vmferry_set_error ("%s: a damaged journal of a live migration", path);
      goto out;
    }
  }
  r = 1;
 out:
  if (r < 0)
    journal_free (j);
  json_object_put (o);
  return r;
}

static void
journal_drop (const char *uuid)
{
  CLEANUP_FREE char *path = journal_path (uuid);

  if (path)
    unlink (path);
}

/* Before anything else: what an earlier run of this domain's migration
 * left, as its journal says and the hosts show.  Returns 0 to go on, 1
 * when the domain already runs on the destination (the move is done),
 * -1 with the error set when nothing can safely be done.
 */
static int
recover (struct live *l)
{
  struct journal j;
  CLEANUP_VIR_DOMAIN virDomainPtr d = virDomainLookupByUUIDString (l->dst,
                                                                   l->uuid);
  bool here = virDomainIsActive (l->dom) == 1;
  bool there = d && virDomainIsActive (d) == 1;
  char removed[4096] = "";
  int r = journal_load (l->uuid, &j);

  if (r < 0)
    return -1;
  if (!here && there) {
    /* libvirt completed the move (an earlier run may have been killed
     * before it could say so).
     */
    if (r > 0)
      journal_drop (l->uuid);
    journal_free (&j);
    return 1;
  }
  if (r == 0)
    return 0;
  if (strcmp (j.dest_uri, l->opts->dest_uri) != 0) {
    vmferry_set_error ("domain %s: a live migration of it to %s was "
                       "interrupted; run that one again to clear what it left "
                       "there first", l->name, j.dest_uri);
    journal_free (&j);
    return -1;
  }
  if (here == there) {
    vmferry_set_error ("domain %s: a live migration of it to %s was "
                       "interrupted and the domain %s: nothing was touched; "
                       "see virsh domjobinfo on both hosts", l->name,
                       j.dest_uri,
                       here ? "runs on both hosts" : "runs on neither host");
    journal_free (&j);
    return -1;
  }
  /* It runs here only: what the journal lists on the destination goes. */
  if (d && j.started && virDomainIsPersistent (d) == 1 &&
      virDomainUndefineFlags (d, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM |
                              VIR_DOMAIN_UNDEFINE_TPM) == 0)
    list_add (removed, sizeof removed, "the domain's definition");
  for (size_t i = 0; i < j.nr_paths; i++) {
    CLEANUP_FREE char *dir = NULL, *base = NULL;
    CLEANUP_VIR_POOL virStoragePoolPtr pool = NULL;
    CLEANUP_VIR_VOL virStorageVolPtr vol = NULL;

    if (split_path (j.paths[i], &dir, &base) < 0 ||
        !(pool = pool_for_dir (l, l->dst, l->opts->dest_uri, dir))) {
      journal_free (&j);
      return -1;
    }
    vol = virStorageVolLookupByName (pool, base);
    if (vol && virStorageVolDelete (vol, 0) < 0) {
      vmferry_virt_error ("%s: %s, left by an interrupted live migration, "
                          "cannot be removed", l->opts->dest_uri, j.paths[i]);
      journal_free (&j);
      return -1;
    }
    if (vol)
      list_add (removed, sizeof removed, j.paths[i]);
  }
  journal_drop (l->uuid);
  journal_free (&j);
  vmferry_notice ("domain %s: an earlier live migration to %s was interrupted; "
                  "removed what it had made there%s%s", l->name,
                  l->opts->dest_uri, *removed ? ": " : " (nothing was left)",
                  removed);
  return 0;
}

int
vmferry_live_leftovers (const struct vmferry_live_opts *opts,
                        char ***paths_rtn, size_t *n_rtn)
{
  CLEANUP_VIR_CONNECT virConnectPtr src = NULL;
  CLEANUP_VIR_DOMAIN virDomainPtr dom = NULL;
  char uuid[VIR_UUID_STRING_BUFLEN];
  struct journal j;
  int r;

  *paths_rtn = NULL;
  *n_rtn = 0;
  if (!(src = vmferry_virt_connect (opts->uri)) ||
      !(dom = vmferry_virt_lookup_domain (src, opts->domain)))
    return -1;
  if (virDomainGetUUIDString (dom, uuid) < 0) {
    vmferry_virt_error ("domain %s", opts->domain);
    return -1;
  }
  r = journal_load (uuid, &j);
  if (r <= 0)
    return r;
  /* Another destination's: this run refuses to go on (recover). */
  if (strcmp (j.dest_uri, opts->dest_uri) == 0) {
    *paths_rtn = j.paths;
    *n_rtn = j.nr_paths;
    j.paths = NULL;
    j.nr_paths = 0;
  }
  journal_free (&j);
  return 0;
}

/* ------------------------------------------------------------ entry */

static int
add_params (struct live *l, virTypedParameterPtr *params, int *n, int *max)
{
  const struct vmferry_live_opts *o = l->opts;
  int r = 0;

  r |= virTypedParamsAddString (params, n, max, VIR_MIGRATE_PARAM_DEST_XML,
                                l->dest_xml);
  r |= virTypedParamsAddString (params, n, max, VIR_MIGRATE_PARAM_PERSIST_XML,
                                l->persist_xml);
  if (strcmp (l->dest_name, l->name) != 0)
    r |= virTypedParamsAddString (params, n, max, VIR_MIGRATE_PARAM_DEST_NAME,
                                  l->dest_name);
  if (o->migrate_uri)
    r |= virTypedParamsAddString (params, n, max, VIR_MIGRATE_PARAM_URI,
                                  o->migrate_uri);
  if (o->bandwidth)
    r |= virTypedParamsAddULLong (params, n, max, VIR_MIGRATE_PARAM_BANDWIDTH,
                                  o->bandwidth);
  for (size_t i = 0; i < l->nr_files; i++)
    if (l->files[i].role == VMFERRY_ROLE_DISK)
      r |= virTypedParamsAddString (params, n, max,
                                    VIR_MIGRATE_PARAM_MIGRATE_DISKS,
                                    l->files[i].target);
  if (r < 0) {
    vmferry_virt_error ("domain %s: migration parameters", l->name);
    return -1;
  }
  return 0;
}

static bool
cancelled (const struct vmferry_live_opts *o)
{
  return o->cancel && *o->cancel;
}

/* Connect to both hosts and find the domain. */
static int
live_open (struct live *l, const struct vmferry_live_opts *opts)
{
  char uuid[VIR_UUID_STRING_BUFLEN];

  l->opts = opts;
  if (opts->domain == NULL || opts->dest_uri == NULL) {
    vmferry_set_error ("live migration: a domain and a destination URI are "
                       "needed");
    return -1;
  }
  l->src = vmferry_virt_connect (opts->uri);
  if (l->src == NULL)
    return -1;
  l->dom = vmferry_virt_lookup_domain (l->src, opts->domain);
  if (l->dom == NULL)
    return -1;
  l->name = strdup (virDomainGetName (l->dom));
  if (l->name == NULL || virDomainGetUUIDString (l->dom, uuid) < 0 ||
      (l->uuid = strdup (uuid)) == NULL) {
    vmferry_virt_error ("domain %s", opts->domain);
    return -1;
  }
  l->dst = vmferry_virt_connect (opts->connect_uri ? opts->connect_uri
                                 : opts->dest_uri);
  return l->dst ? 0 : -1;
}

/* The domain already runs on the destination (recover said so): that,
 * and --undefine-source.
 */
static enum vmferry_live_outcome
already (struct live *l)
{
  vmferry_notice ("domain %s already runs on %s: an earlier live migration "
                  "completed it; nothing was done", l->name, l->opts->dest_uri);
  if (l->opts->undefine_source && virDomainIsPersistent (l->dom) == 1 &&
      virDomainUndefineFlags (l->dom, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM |
                              VIR_DOMAIN_UNDEFINE_KEEP_TPM) < 0) {
    vmferry_virt_error ("domain %s: runs on %s, but undefining it on the "
                        "source failed", l->name, l->opts->dest_uri);
    return VMFERRY_LIVE_MIGRATED_SOURCE_DEFINED;
  }
  return VMFERRY_LIVE_ALREADY;
}

int
vmferry_live_recover (const struct vmferry_live_opts *opts,
                      enum vmferry_live_outcome *outcome_rtn)
{
  struct live l = { .opts = opts };
  int r = -1;

  *outcome_rtn = VMFERRY_LIVE_NOTHING;
  if (live_open (&l, opts) == 0 && (r = recover (&l)) == 1) {
    *outcome_rtn = already (&l);
    if (*outcome_rtn != VMFERRY_LIVE_ALREADY)
      r = -1;
  }
  free_live (&l);
  return r;
}

int
vmferry_migrate_live (const struct vmferry_live_opts *opts,
                      enum vmferry_live_outcome *outcome_rtn)
{
  struct live l = { .opts = opts };
  struct job job = { 0 };
  struct monitor mon = { 0 };
  virTypedParameterPtr params = NULL;
  int nparams = 0, maxparams = 0, state, ret = -1;
  enum vmferry_live_outcome outcome = VMFERRY_LIVE_NOTHING;
  pthread_t thread;
  bool started = false;
  unsigned tick = 0;
  CLEANUP_VIR_DOMAIN virDomainPtr ddom = NULL;

  if (live_open (&l, opts) < 0)
    goto out;
  /* What an interrupted run left first (see the journal); a move that is
   * done already is said so, whatever state the source is in now.
   */
  switch (recover (&l)) {
  case -1:
    goto out;
  case 1:
    outcome = already (&l);
    ret = outcome == VMFERRY_LIVE_ALREADY ? 0 : -1;
    goto out;
  }
  state = vmferry_virt_domain_state (l.dom);
  if (state < 0)
    goto out;
  if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED) {
    vmferry_set_error ("domain %s: is %s; live migration needs a running "
                       "domain (vmferry-migrate without --live moves a shut "
                       "off one)", l.name, vmferry_virt_state_name (state));
    goto out;
  }

  /* Nothing is made on the destination until here. */
  if (build_xml (&l) < 0 || check_dest_free (&l) < 0 ||
      journal_save (&l, false) < 0 || vmferry_fault ("live-journaled") < 0)
    goto out;
  for (size_t i = 0; i < l.nr_files; i++) {
    struct live_file *f = &l.files[i];
    if (cancelled (opts)) {
      vmferry_set_error ("domain %s: live migration aborted", l.name);
      goto fail;
    }
    if ((f->role == VMFERRY_ROLE_DISK ? create_disk (&l, f)
                                      : upload_nvram (&l, f)) < 0 ||
        journal_save (&l, false) < 0 || vmferry_fault ("live-created") < 0)
      goto fail;
  }
  if (add_params (&l, &params, &nparams, &maxparams) < 0)
    goto fail;
  job.dom = l.dom;
  job.dst = l.dst;
  job.params = params;
  job.nparams = nparams;
  job.flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PERSIST_DEST |
    VIR_MIGRATE_NON_SHARED_DISK | VIR_MIGRATE_ABORT_ON_ERROR |
    (opts->auto_converge ? VIR_MIGRATE_AUTO_CONVERGE : 0) |
    (opts->postcopy ? VIR_MIGRATE_POSTCOPY : 0);
  if (cancelled (opts)) {
    vmferry_set_error ("domain %s: live migration aborted", l.name);
    goto fail;
  }
  vmferry_verbose ("domain %s: migrating live to %s", l.name, opts->dest_uri);
  if (journal_save (&l, true) < 0)
    goto fail;
  errno = pthread_create (&thread, NULL, job_thread, &job);
  if (errno) {
    vmferry_set_error_errno (errno,
                             "domain %s: cannot start the migration thread",
                             l.name);
    goto fail;
  }
  started = true;
  while (!__atomic_load_n (&job.done, __ATOMIC_ACQUIRE)) {
    struct timespec ts = { 0, POLL_NS };
    nanosleep (&ts, NULL);
    poll_job (&l, &mon, ++tick);
    vmferry_fault ("live-poll");
  }
  pthread_join (thread, NULL);
  ddom = job.result;

  if (ddom == NULL) {
    if (mon.aborted && !mon.postcopy_started)
      vmferry_set_error ("domain %s: live migration to %s aborted (%s)", l.name,
                         opts->dest_uri, job.error ? job.error : "");
    else
      vmferry_set_error ("domain %s: live migration to %s failed: %s", l.name,
                         opts->dest_uri,
                         job.error ? job.error : "unknown error");
    if (mon.postcopy_started) {
      struct vmferry_saved_error saved;

      vmferry_save_error (&saved);
      vmferry_append_error (&saved, "it failed after the switch to "
                            "post-copy, so the domain's state is split "
                            "between the hosts and nothing was removed: "
                            "recover it with 'virsh migrate --postcopy "
                            "--postcopy-resume' or by hand");
      outcome = VMFERRY_LIVE_SPLIT;
      goto out;
    }
    goto fail;
  }
  /* The last sample may be from the disks: the job's final statistics
   * give the memory phase, however quick it was.
   */
  if (opts->progress) {
    virTypedParameterPtr stats = NULL;
    int nstats = 0, type;

    if (virDomainGetJobStats (l.dom, &type, &stats, &nstats,
                              VIR_DOMAIN_JOB_STATS_COMPLETED) == 0) {
      struct vmferry_live_sample s;

      vmferry_live_sample_parse (stats, nstats, &s);
      vmferry_live_bar_report (opts->progress, &mon.bar, &s);
      virTypedParamsFree (stats, nstats);
    }
  }
  vmferry_live_bar_end (opts->progress, &mon.bar, true);

  vmferry_fault ("live-migrated");
  /* The job is done: from here on the destination is the domain. */
  for (size_t i = 0; i < l.nr_files; i++) {
    if (l.files[i].vol)
      virStorageVolFree (l.files[i].vol);
    l.files[i].vol = NULL;
  }
  outcome = VMFERRY_LIVE_MIGRATED;
  state = vmferry_virt_domain_state (ddom);
  if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED) {
    vmferry_set_error ("domain %s: migrated to %s but is %s there; the source "
                       "definition is kept", l.dest_name, opts->dest_uri,
                       state < 0 ? "in an unknown state"
                       : vmferry_virt_state_name (state));
    outcome = VMFERRY_LIVE_MIGRATED_SOURCE_DEFINED;
    goto out;
  }
  if (virDomainIsPersistent (ddom) != 1) {
    vmferry_set_error ("domain %s: runs on %s but is not persistent there; the "
                       "source definition is kept", l.dest_name,
                       opts->dest_uri);
    outcome = VMFERRY_LIVE_MIGRATED_SOURCE_DEFINED;
    goto out;
  }
  if (opts->undefine_source) {
    if (virDomainUndefineFlags (l.dom, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM |
                                VIR_DOMAIN_UNDEFINE_KEEP_TPM) < 0) {
      vmferry_virt_error ("domain %s: runs on %s, but undefining it on the "
                          "source failed", l.name, opts->dest_uri);
      outcome = VMFERRY_LIVE_MIGRATED_SOURCE_DEFINED;
      goto out;
    }
    vmferry_verbose ("domain %s: undefined on the source (its files are kept)",
                     l.name);
  }
  ret = 0;
  goto out;

 fail:
  vmferry_live_bar_end (opts->progress, &mon.bar, false);
  outcome = roll_back (&l, started);
 out:
  /* The journal stays only where something may be left to undo. */
  if (l.uuid &&
      (outcome == VMFERRY_LIVE_NOTHING || outcome == VMFERRY_LIVE_MIGRATED ||
       outcome == VMFERRY_LIVE_MIGRATED_SOURCE_DEFINED))
    journal_drop (l.uuid);
  free (job.error);
  virTypedParamsFree (params, nparams);
  free_live (&l);
  if (outcome_rtn)
    *outcome_rtn = outcome;
  return ret;
}
