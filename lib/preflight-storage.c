/* vmferry: pre-flight check of where the domain's files would go: the
 * directories and pools, their room, and files already there.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/tree.h>

#include "cleanup.h"
#include "error.h"
#include "preflight-int.h"
#include "preflight.h"
#include "resume.h"
#include "vector.h"
#include "xmlnode.h"

/* ---------------------------------------------------------------- storage */

static const char *
basename_of (const char *p)
{
  const char *s = strrchr (p, '/');

  return s ? s + 1 : p;
}

static char *
dirname_of (const char *p)
{
  const char *s = strrchr (p, '/');

  if (s == NULL)
    return strdup (".");
  if (s == p)
    return strdup ("/");
  return strndup (p, s - p);
}

struct pool_info {
  char *name, *target, *type;
  bool active;
};

static void
pools_free (struct pool_info *p, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free (p[i].name);
    free (p[i].target);
    free (p[i].type);
  }
  free (p);
}

static int
list_pools (struct preflight *c, struct pool_info **rtn, size_t *n_rtn)
{
  virStoragePoolPtr *pools = NULL;
  int n = virConnectListAllStoragePools (c->dest, &pools, 0);
  struct pool_info *v;

  *rtn = NULL;
  *n_rtn = 0;
  if (n < 0)
    return -1;
  v = calloc (n ? n : 1, sizeof *v);
  for (int i = 0; i < n; i++) {
    CLEANUP_FREE char *xml = virStoragePoolGetXMLDesc (pools[i], 0);
    CLEANUP_XMLDOC xmlDocPtr d =
      xml ? vmferry_xml_parse_libvirt (xml) : NULL;
    if (v && d) {
      xmlNodePtr r = xmlDocGetRootElement (d);
      xmlNodePtr target = vmferry_xml_child (r, "target");
      v[i].name = strdup (virStoragePoolGetName (pools[i]));
      v[i].type = vmferry_xml_attr (r, "type");
      v[i].target = vmferry_xml_text (vmferry_xml_child (target, "path"));
      v[i].active = virStoragePoolIsActive (pools[i]) == 1;
    }
    virStoragePoolFree (pools[i]);
  }
  free (pools);
  if (v == NULL)
    return -1;
  *rtn = v;
  *n_rtn = n;
  return 0;
}

/* The directory to suggest for files: pool "default" if active and
 * directory-backed, else the first such pool by name.
 */
static const char *
pick_pool (struct pool_info *p, size_t n, bool want_dir)
{
  const char *pick = NULL;

  for (size_t i = 0; i < n; i++) {
    if (!p[i].active || !p[i].name || !p[i].target)
      continue;
    if (!(p[i].type &&
          (strcmp (p[i].type, "dir") == 0 || strcmp (p[i].type, "fs") == 0 ||
           strcmp (p[i].type, "netfs") == 0)))
      continue;
    if (strcmp (p[i].name, "default") == 0)
      return want_dir ? p[i].target : p[i].name;
    if (pick == NULL)
      pick = want_dir ? p[i].target : p[i].name;
  }
  return pick;
}

/* A file the domain uses, gathered from the XML. */
struct want {
  char *key;                    /* path, or "volume:POOL/NAME" */
  char *what;                   /* "disk vda", "loader", ... */
  bool carried;                 /* from the input's file list */
  bool must_exist;              /* not carried: must be there already */
  uint64_t allocated;
  bool is_loader, is_template;
};

DEFINE_VECTOR_TYPE (want_vector, struct want);

static void
wants_free (struct want_vector *w)
{
  for (size_t i = 0; i < w->len; i++) {
    free (w->ptr[i].key);
    free (w->ptr[i].what);
  }
  want_vector_reset (w);
}

static int
want_add (struct preflight *c, struct want_vector *w, const char *key,
          const char *what, bool carried_default)
{
  struct want *v;
  const struct vmferry_check_input *in = c->in;

  if (key == NULL || *key == '\0')
    return 0;
  for (size_t i = 0; i < w->len; i++)
    if (strcmp (w->ptr[i].key, key) == 0)
      return 0;
  if (want_vector_reserve (w, 1) == -1)
    return -1;
  v = &w->ptr[w->len];
  memset (v, 0, sizeof *v);
  v->key = strdup (key);
  v->what = strdup (what);
  if (!v->key || !v->what) {
    free (v->key);
    free (v->what);
    return -1;
  }
  v->carried = false;
  v->must_exist = true;
  for (size_t i = 0; i < in->files.len; i++)
    if (strcmp (in->files.ptr[i].path, key) == 0) {
      v->carried = in->files.ptr[i].carried;
      v->must_exist = !v->carried;
      v->allocated = in->files.ptr[i].allocated;
      break;
    }
  (void) carried_default;
  w->len++;
  return 0;
}

/* The files of the domain into W (empty); on failure W is empty again. */
static int
gather_files (struct preflight *c, struct want_vector *w)
{
  xmlNodePtr os = vmferry_xml_child (c->root, "os"), nv;

  for (xmlNodePtr devs = c->root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr d = devs->children; d; d = d->next) {
      xmlNodePtr src = vmferry_xml_child (d, "source");
      CLEANUP_FREE char *type = NULL;
      CLEANUP_FREE char *dev = NULL;
      CLEANUP_FREE char *key = NULL;
      char what[300];

      if (!vmferry_xml_is_elem (d, "disk") || src == NULL)
        continue;
      type = vmferry_xml_attr (d, "type");
      dev = vmferry_xml_attr (vmferry_xml_child (d, "target"), "dev");
      snprintf (what, sizeof what, "disk %s", dev ? dev : "(no target)");
      if (type == NULL || strcmp (type, "file") == 0)
        key = vmferry_xml_attr (src, "file");
      else if (strcmp (type, "block") == 0)
        key = vmferry_xml_attr (src, "dev");
      else if (strcmp (type, "volume") == 0) {
        CLEANUP_FREE char *pool = vmferry_xml_attr (src, "pool");
        CLEANUP_FREE char *vol = vmferry_xml_attr (src, "volume");
        if (pool && vol && asprintf (&key, "volume:%s/%s", pool, vol) < 0)
          key = NULL;
      }
      if (key && want_add (c, w, key, what, true) == -1)
        goto nomem;
    }
  }
  if (os) {
    CLEANUP_FREE char *loader =
      vmferry_xml_text (vmferry_xml_child (os, "loader"));
    CLEANUP_FREE char *kernel =
      vmferry_xml_text (vmferry_xml_child (os, "kernel"));
    CLEANUP_FREE char *initrd =
      vmferry_xml_text (vmferry_xml_child (os, "initrd"));
    CLEANUP_FREE char *tmpl = NULL;
    CLEANUP_FREE char *nvpath = NULL;
    if (loader && *loader == '/') {
      if (want_add (c, w, loader, "loader", false) == -1)
        goto nomem;
      w->ptr[w->len - 1].is_loader =
        strcmp (w->ptr[w->len - 1].key, loader) == 0;
    }
    if ((kernel && *kernel == '/' &&
         want_add (c, w, kernel, "kernel", false) == -1) ||
        (initrd && *initrd == '/' &&
         want_add (c, w, initrd, "initrd", false) == -1))
      goto nomem;
    if ((nv = vmferry_xml_child (os, "nvram")) != NULL) {
      tmpl = vmferry_xml_attr (nv, "template");
      if (tmpl && *tmpl == '/') {
        if (want_add (c, w, tmpl, "nvram template", false) == -1)
          goto nomem;
        w->ptr[w->len - 1].is_template =
          strcmp (w->ptr[w->len - 1].key, tmpl) == 0;
      }
      if (vmferry_xml_attr_eq (nv, "type", "file"))
        nvpath = vmferry_xml_attr (vmferry_xml_child (nv, "source"), "file");
      else if (!xmlHasNsProp (nv, BAD_CAST "type", NULL))
        nvpath = vmferry_xml_text (nv);
      if (nvpath && *nvpath == '/') {
        if (want_add (c, w, nvpath, "nvram", true) == -1)
          goto nomem;
        /* libvirt makes it from the template when missing. */
        w->ptr[w->len - 1].must_exist = false;
      }
    }
  }
  return 0;
 nomem:
  wants_free (w);
  return -1;
}

/* Look at directory DIR on the destination through a pool: an existing
 * one over it, or a transient one made for the look and destroyed after.
 * Calls FN for each file of WANTS in DIR.
 */
struct dir_look {
  bool exists;                  /* the directory is there */
  bool writable;
  bool have_space;
  uint64_t available;
  char error[512];
  const char *pool;             /* the existing pool over it, or NULL */
};

static virStoragePoolPtr
open_dir_pool (struct preflight *c, const char *dir, struct pool_info *pools,
               size_t npools, struct dir_look *look, bool *transient)
{
  virStoragePoolPtr p = NULL;
  CLEANUP_FREE char *xml = NULL;
  char name[64];

  *transient = false;
  for (size_t i = 0; i < npools; i++)
    if (pools[i].target && pools[i].name &&
        strcmp (pools[i].target, dir) == 0 &&
        pools[i].active) {
      p = virStoragePoolLookupByName (c->dest, pools[i].name);
      if (p) {
        look->pool = pools[i].name;
        virStoragePoolRefresh (p, 0);
        return p;
      }
    }
  /* The directory name goes into XML: refuse what would need escaping. */
  if (strpbrk (dir, "<>&'\"")) {
    snprintf (look->error, sizeof look->error, "the path has characters "
              "vmferry does not put in pool XML");
    return NULL;
  }
  snprintf (name, sizeof name, "vmferry-check-%ld-%u", (long) getpid (),
            c->probe++);
  if (asprintf (&xml, "<pool type='dir'><name>%s</name><target><path>%s</path>"
                "</target></pool>", name, dir) < 0) {
    c->oom = true;
    return NULL;
  }
  p = virStoragePoolCreateXML (c->dest, xml, 0);
  if (p == NULL) {
    snprintf (look->error, sizeof look->error, "%s",
              vmferry_preflight_virt_msg ());
    return NULL;
  }
  *transient = true;
  return p;
}

static void
look_at_dir (struct preflight *c, virStoragePoolPtr p, struct dir_look *look)
{
  virStoragePoolInfo info;
  char name[64], xml[256];
  virStorageVolPtr v;

  look->exists = true;
  if (virStoragePoolGetInfo (p, &info) == 0) {
    look->have_space = true;
    look->available = info.available;
  }
  snprintf (name, sizeof name, ".vmferry-check-%ld-%u", (long) getpid (),
            c->probe++);
  snprintf (xml, sizeof xml, "<volume><name>%s</name><capacity>0</capacity>"
            "<target><format type='raw'/></target></volume>", name);
  v = virStorageVolCreateXML (p, xml, 0);
  if (v == NULL) {
    snprintf (look->error, sizeof look->error, "%s",
              vmferry_preflight_virt_msg ());
    return;
  }
  look->writable = true;
  virStorageVolDelete (v, 0);
  virStorageVolFree (v);
}

/* Whether pool P (a directory) holds the state of an interrupted import
 * of this domain (lib/resume.h): a file there may be that import's, and
 * the next import finishes or undoes it before it decides anything.
 */
static bool
pending_import (struct preflight *c, virStoragePoolPtr p)
{
  CLEANUP_FREE char *name =
    vmferry_xml_text (vmferry_xml_child (c->root, "name"));
  CLEANUP_FREE char *state = name ? vmferry_resume_name (name, "json") : NULL;
  virStorageVolPtr v = state ? virStorageVolLookupByName (p, state) : NULL;

  vmferry_clear_error ();
  if (v == NULL)
    return false;
  virStorageVolFree (v);
  return true;
}

static bool
is_leftover (const struct preflight *c, const char *path)
{
  for (size_t i = 0; i < c->in->nr_leftovers; i++)
    if (strcmp (c->in->leftovers[i], path) == 0)
      return true;
  return false;
}

/* A carried file PATH that is already at its place on the destination. */
static void
file_exists (struct preflight *c, const char *object, const char *path,
             bool pending)
{
  char hint[4400];

  if (pending) {
    vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "path", object, NULL, NULL,
                           "already exists on the destination, where an "
                           "interrupted import of this domain left its state: "
                           "the import finishes or undoes that first");
    return;
  }
  if (is_leftover (c, path)) {
    vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "path", object, NULL, NULL,
                           "already exists on the destination, made there by "
                           "an interrupted live migration of this domain: the "
                           "migration removes it first");
    return;
  }
  switch (c->in->check_for) {
  case VMFERRY_CHECK_FOR_MIGRATE:
    /* vmferry-migrate never replaces a file. */
    snprintf (hint, sizeof hint, "remove it on the destination if nothing "
              "needs it, or put the files elsewhere: --dest-dir DIR%s",
              c->in->dest_dir ? "" : " or --map-path OLD=NEW");
    break;
  case VMFERRY_CHECK_FOR_LIVE:
    if (strncmp (path, "volume:", 7) == 0) {
      /* "volume:POOL/NAME" */
      const char *pool = path + 7;
      int plen = (int) strcspn (pool, "/");
      snprintf (hint, sizeof hint, "remove it on the destination if nothing "
                "needs it (virsh vol-delete --pool %.*s %s), or --pool the "
                "disks elsewhere", plen, pool,
                pool[plen] ? pool + plen + 1 : "");
    }
    else
      snprintf (hint, sizeof hint, "remove it on the destination if nothing "
                "needs it (virsh vol-delete %s), or --map-path the disks "
                "elsewhere", path);
    break;
  default:
    snprintf (hint, sizeof hint, "vmferry-import --force replaces it once the "
              "new copy is verified; or --map-path the files elsewhere");
  }
  vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "path", object, NULL, hint,
                         "already exists on the destination");
}

/* DIR is where vmferry-migrate --dest-dir puts the files: that option
 * moves them, --map-path does not.
 */
static bool
is_dest_dir (const struct preflight *c, const char *dir)
{
  return c->in->check_for == VMFERRY_CHECK_FOR_MIGRATE && c->in->dest_dir &&
    strcmp (c->in->dest_dir, dir) == 0;
}

static void
check_dir (struct preflight *c, const char *dir, struct want *w, size_t n,
           struct pool_info *pools, size_t npools)
{
  struct dir_look look = { 0 };
  bool transient;
  virStoragePoolPtr p =
    open_dir_pool (c, dir, pools, npools, &look, &transient);
  const char *target = pick_pool (pools, npools, true);
  /* Where --map-path could move the files: the pool directory picked,
   * unless it is this one, or --dest-dir, not --map-path, places them.
   */
  const char *move_to =
    target && strcmp (target, dir) != 0 && !is_dest_dir (c, dir)
    ? target : NULL;
  uint64_t need = 0;
  bool carried = false;
  char object[4200];

  if (p)
    look_at_dir (c, p, &look);
  snprintf (object, sizeof object, "directory %s", dir);
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *d = dirname_of (w[i].key);
    if (d == NULL || strcmp (d, dir) != 0 ||
        strncmp (w[i].key, "volume:", 7) == 0)
      continue;
    if (w[i].carried) {
      carried = true;
      need += w[i].allocated;
    }
  }

  if (!look.exists) {
    char hint[8500];
    if (is_dest_dir (c, dir) && target && strcmp (target, dir) != 0)
      snprintf (hint, sizeof hint, "give --dest-dir a directory it has (%s), "
                "or create it on the destination: mkdir -p %s", target, dir);
    else if (is_dest_dir (c, dir))
      snprintf (hint, sizeof hint, "give --dest-dir a directory it has, "
                "or create it on the destination: mkdir -p %s", dir);
    else
      snprintf (hint, sizeof hint,
                "or create it on the destination: mkdir -p %s", dir);
    if (carried)
      vmferry_preflight_add_pick (c, "path", object, "--map-path", dir,
                                  move_to, hint, hint,
                                  "does not exist on the destination, or "
                                  "cannot be used there (%s)",
                                  look.error);
  }
  else if (carried && !look.writable) {
    const char *hint = is_dest_dir (c, dir)
      ? "give --dest-dir a directory it can write" : NULL;

    vmferry_preflight_add_pick (c, "path", object, "--map-path", dir, move_to,
                                hint, hint,
                                "exists on the destination but a file "
                                "cannot be created in it (%s)",
                                look.error);
  }
  else if (carried && look.have_space && need > look.available) {
    const char *hint = is_dest_dir (c, dir)
      ? "free space there, or give --dest-dir a larger directory"
      : "free space there, or --map-path the files to a larger directory";

    vmferry_preflight_add_space (c, object, hint, "the files", need,
                                 look.available);
  }

  /* Each file: carried ones must not be there yet, others must be. */
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *d = dirname_of (w[i].key);
    virStorageVolPtr v;
    char fobject[4300];
    if (d == NULL || strcmp (d, dir) != 0 ||
        strncmp (w[i].key, "volume:", 7) == 0)
      continue;
    if (vmferry_preflight_seen_before (c->refused.ptr, c->refused.len,
                                       w[i].key))
      continue;
    snprintf (fobject, sizeof fobject, "%s %s", w[i].what, w[i].key);
    v = p ? virStorageVolLookupByName (p, basename_of (w[i].key)) : NULL;
    if (v) {
      virStorageVolFree (v);
      if (w[i].carried)
        file_exists (c, fobject, w[i].key, pending_import (c, p));
      continue;
    }
    if (!w[i].must_exist || w[i].is_loader)
      continue;
    vmferry_preflight_add (c, VMFERRY_SEV_ERROR,
                           w[i].is_template ? "firmware" : "path", fobject,
                           NULL,
                           w[i].is_template
                           ? "install the firmware package there, or "
                             "--map-path the template to one it has"
                           : "copy it to the destination, or carry it "
                             "(vmferry-export --include-readonly)",
                           "does not exist on the destination, and does not "
                           "travel with the domain");
  }
  if (p) {
    if (transient)
      virStoragePoolDestroy (p);
    virStoragePoolFree (p);
  }
}

static void
check_loader (struct preflight *c, const struct want *w,
              struct pool_info *pools,
              size_t npools)
{
  xmlNodePtr caps = c->domcaps ? xmlDocGetRootElement (c->domcaps) : NULL;
  xmlNodePtr os = vmferry_xml_child (vmferry_xml_child (caps, "os"),
                                     "loader");
  const char *alt = NULL;
  CLEANUP_FREE char *val = NULL;
  char object[4300];
  char list[2048];
  size_t used = 0;

  (void) pools;
  (void) npools;
  for (xmlNodePtr v = os ? os->children : NULL; v; v = v->next) {
    CLEANUP_FREE char *t = NULL;
    if (!vmferry_xml_is_elem (v, "value") || (t = vmferry_xml_text (v)) == NULL)
      continue;
    if (strcmp (t, w->key) == 0)
      return;
    if (strcmp (basename_of (t), basename_of (w->key)) == 0 && val == NULL)
      val = strdup (t);
  }
  if (os == NULL)
    return;                     /* the destination lists no firmware */
  alt = val;
  snprintf (object, sizeof object, "loader %s", w->key);
  list[0] = '\0';
  for (xmlNodePtr v = os->children; v; v = v->next) {
    CLEANUP_FREE char *t = NULL;
    if (vmferry_xml_is_elem (v, "value") &&
        (t = vmferry_xml_text (v)) != NULL)
      used += snprintf (list + used,
                        used < sizeof list ? sizeof list - used : 0,
                        "%s%s", used ? ", " : "", t);
  }
  vmferry_preflight_add_pick (c, "firmware", object, "--map-path", w->key,
                              alt, NULL,
                              "install the firmware on the destination",
                              "not among the firmware the destination "
                              "offers (%s)",
                              list[0] ? list : "none");
}

void
vmferry_preflight_storage (struct preflight *c)
{
  struct want_vector wants = VECTOR_INIT;
  struct want *w;
  size_t n, npools = 0;
  struct pool_info *pools = NULL;
  struct vmferry_check_string_vector dirs = VECTOR_INIT;

  if (gather_files (c, &wants) == -1) {
    c->oom = true;
    return;
  }
  w = wants.ptr;
  n = wants.len;
  if (list_pools (c, &pools, &npools) == -1) {
    vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "pool", "storage", NULL,
                           NULL,
                           "cannot list the destination's storage pools: %s",
                           vmferry_preflight_virt_msg ());
    wants_free (&wants);
    return;
  }

  /* Pool volumes: the pool must be there, active, with room. */
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *pool = NULL;
    const char *slash;
    virStoragePoolPtr p;
    virStoragePoolInfo info;
    char object[600];
    uint64_t need = 0;
    bool first = true;

    if (strncmp (w[i].key, "volume:", 7) != 0)
      continue;
    slash = strchr (w[i].key + 7, '/');
    pool = strndup (w[i].key + 7, slash - (w[i].key + 7));
    if (pool == NULL) {
      c->oom = true;
      continue;
    }
    for (size_t k = 0; k < i; k++)
      if (strncmp (w[k].key, w[i].key, slash - w[i].key + 1) == 0)
        first = false;
    snprintf (object, sizeof object, "pool %s", pool);
    p = virStoragePoolLookupByName (c->dest, pool);
    if (p == NULL) {
      if (first)
        vmferry_preflight_add_pick (c, "pool", object, "--pool", pool,
                                    pick_pool (pools, npools, false), NULL,
                                    "define the pool on the destination",
                                    "no such storage pool on the "
                                    "destination");
      continue;
    }
    if (virStoragePoolIsActive (p) != 1) {
      char hint[600];
      snprintf (hint, sizeof hint, "start it there: virsh pool-start %s", pool);
      if (first)
        vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "pool", object, NULL, hint,
                               "the pool is not active on the destination");
      virStoragePoolFree (p);
      continue;
    }
    virStoragePoolRefresh (p, 0);
    {
      virStorageVolPtr v = virStorageVolLookupByName (p, slash + 1);
      char vobject[700];
      snprintf (vobject, sizeof vobject, "%s volume %s/%s", w[i].what, pool,
                slash + 1);
      if (v) {
        virStorageVolFree (v);
        if (w[i].carried)
          file_exists (c, vobject, w[i].key, pending_import (c, p));
      }
      else if (w[i].must_exist)
        vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "path", vobject, NULL,
                               NULL,
                               "does not exist on the destination, and does "
                               "not travel with the domain");
    }
    if (first) {
      for (size_t k = i; k < n; k++)
        if (strncmp (w[k].key, w[i].key, slash - w[i].key + 1) == 0 &&
            w[k].carried)
          need += w[k].allocated;
      if (virStoragePoolGetInfo (p, &info) == 0 && need > info.available)
        vmferry_preflight_add_space (c, object,
                                     c->in->check_for
                                     == VMFERRY_CHECK_FOR_MIGRATE ?
                                     "free space in the pool, or give "
                                     "--dest-pool another one" :
                                     "free space in the pool, or --pool the "
                                     "disks to another one",
                                     "the volumes", need, info.available);
    }
    virStoragePoolFree (p);
  }

  /* Loader: among the destination's firmware, or at least present. */
  for (size_t i = 0; i < n; i++)
    if (w[i].is_loader)
      check_loader (c, &w[i], pools, npools);

  /* Files, by directory. */
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *d = NULL;
    if (strncmp (w[i].key, "volume:", 7) == 0 || w[i].key[0] != '/' ||
        vmferry_preflight_seen_before (c->refused.ptr, c->refused.len,
                                       w[i].key))
      continue;
    d = dirname_of (w[i].key);
    if (d == NULL || vmferry_preflight_seen_before (dirs.ptr, dirs.len, d))
      continue;
    if (vmferry_check_string_vector_append (&dirs, d) == -1) {
      c->oom = true;
      break;
    }
    d = NULL;
    check_dir (c, dirs.ptr[dirs.len - 1], w, n, pools, npools);
  }
  for (size_t i = 0; i < dirs.len; i++)
    free (dirs.ptr[i]);
  vmferry_check_string_vector_reset (&dirs);
  pools_free (pools, npools);
  wants_free (&wants);
}
