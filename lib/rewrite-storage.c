/* vmferry: the files of a rewritten domain: paths mapped by --map-path,
 * files that become volumes of a pool (--map-pool), and the check that no
 * two of them land on one destination.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "cleanup.h"
#include "error.h"
#include "rewrite-int.h"
#include "rewrite.h"
#include "xmlnode.h"

/* ---------------------------------------------------------------- paths */

/* Longest matching OLD wins; NULL when none matches. */
static const struct pair *
find_path_rule (const struct vmferry_rewrite *rw, const char *path)
{
  const struct pair *best = NULL;

  for (size_t i = 0; i < rw->paths.len; i++) {
    const struct pair *p = &rw->paths.ptr[i];
    if (vmferry_rewrite_path_under (path, p->old) &&
        (best == NULL || strlen (p->old) > strlen (best->old)))
      best = p;
  }
  return best;
}

char *
vmferry_rewrite_map_path (const struct vmferry_rewrite *rw, const char *path)
{
  const struct pair *p = path ? find_path_rule (rw, path) : NULL;
  char *ret;

  if (path == NULL) {
    vmferry_set_error_errno (EINVAL, "rewrite: map path");
    return NULL;
  }
  if (p == NULL)
    ret = strdup (path);
  else if (strcmp (p->old, "/") == 0)
    ret = strcmp (p->new, "/") == 0 ? strdup (path)
      : (asprintf (&ret, "%s%s", p->new, path) < 0 ? NULL : ret);
  else {
    const char *rest = path + strlen (p->old);
    if (strcmp (p->new, "/") == 0 && *rest == '/')
      ret = strdup (rest);
    else if (strcmp (p->new, "/") == 0 && *rest == '\0')
      ret = strdup ("/");
    else if (asprintf (&ret, "%s%s", p->new, rest) < 0)
      ret = NULL;
  }
  if (ret == NULL)
    vmferry_set_error_errno (ENOMEM, "rewrite: map path");
  return ret;
}

void
vmferry_rewrite_dests_free (struct dests *d)
{
  for (size_t i = 0; i < d->len; i++) {
    free (d->ptr[i].before);
    free (d->ptr[i].after);
    free (d->ptr[i].label);
  }
  dests_reset (d);
}

static int
dests_add (struct dests *d, const char *before, const char *after,
           const char *label)
{
  struct dest_entry e = {
    .before = strdup (before), .after = strdup (after),
    .label = strdup (label),
  };

  if (!e.before || !e.after || !e.label || dests_append (d, e) == -1) {
    free (e.before);
    free (e.after);
    free (e.label);
    vmferry_set_error_errno (ENOMEM, "rewrite");
    return -1;
  }
  return 0;
}

/* "path:/x" → "/x", "volume:p/v" → "volume p/v", "vol::p/v" → "p/v". */
static const char *
dest_text (const char *key, char *buf, size_t len)
{
  if (strncmp (key, "path:", 5) == 0)
    return key + 5;
  if (strncmp (key, "vol::", 5) == 0)
    snprintf (buf, len, "volume %s", key + 5);
  else
    snprintf (buf, len, "volume %s", key + 7);
  return buf;
}

struct dest_ref {
  const char *after, *before;
  size_t i;
};

static int
dest_ref_cmp (const void *a, const void *b)
{
  const struct dest_ref *x = a, *y = b;
  int c = strcmp (x->after, y->after);

  if (c)
    return c;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* Sorted by destination, so that a domain with very many disks is not
 * a comparison of every pair.  The pair named is the one a comparison
 * of every pair in order would find first: of the destinations with two
 * sources, the one whose first entry comes first, with the first entry
 * after it that differs.
 */
int
vmferry_rewrite_dests_check (const struct dests *d)
{
  char b1[512], b2[512], b3[512];
  CLEANUP_FREE struct dest_ref *refs = NULL;
  size_t bad_i = SIZE_MAX, bad_k = 0;

  if (d->len < 2)
    return 0;
  refs = malloc (d->len * sizeof *refs);
  if (refs == NULL) {
    vmferry_set_error_errno (errno, "rewrite");
    return -1;
  }
  for (size_t i = 0; i < d->len; i++)
    refs[i] = (struct dest_ref) { d->ptr[i].after, d->ptr[i].before, i };
  qsort (refs, d->len, sizeof *refs, dest_ref_cmp);
  for (size_t g = 0, e; g < d->len; g = e) {
    for (e = g + 1; e < d->len && strcmp (refs[e].after, refs[g].after) == 0;
         e++)
      ;
    for (size_t k = g + 1; k < e; k++)
      if (strcmp (refs[k].before, refs[g].before) != 0) {
        if (refs[g].i < bad_i) {
          bad_i = refs[g].i;
          bad_k = refs[k].i;
        }
        break;
      }
  }
  if (bad_i == SIZE_MAX)
    return 0;
  vmferry_set_error ("rewrite refused: %s (%s) and %s (%s) would both "
                     "become %s", d->ptr[bad_i].label,
                     dest_text (d->ptr[bad_i].before, b1, sizeof b1),
                     d->ptr[bad_k].label,
                     dest_text (d->ptr[bad_k].before, b2, sizeof b2),
                     dest_text (d->ptr[bad_k].after, b3, sizeof b3));
  return -1;
}

/* Map the path in attribute NAME of N (or its text, NAME NULL). */
int
vmferry_rewrite_node_path (struct vmferry_rewrite *rw, xmlNodePtr n,
                           const char *name, const char *label,
                           struct dests *d, int *changes)
{
  char *old = name ? vmferry_xml_attr (n, name) : vmferry_xml_text (n);
  CLEANUP_FREE char *new = NULL;
  CLEANUP_FREE char *b = NULL;
  CLEANUP_FREE char *a = NULL;
  int r = 0;

  if (old == NULL || old[0] != '/') {
    free (old);
    return 0;
  }
  new = vmferry_rewrite_map_path (rw, old);
  if (new == NULL ||
      asprintf (&b, "path:%s", old) < 0 || asprintf (&a, "path:%s", new) < 0) {
    free (old);
    vmferry_set_error_errno (ENOMEM, "rewrite");
    return -1;
  }
  if (d && dests_add (d, b, a, label) == -1)
    r = -1;
  else if (strcmp (old, new) != 0 && name)
    r = vmferry_xml_set_attr (n, name, new, changes);
  else if (strcmp (old, new) != 0)
    r = vmferry_xml_set_text (n, new, changes);
  free (old);
  return r;
}

static const char *
disk_label (xmlNodePtr disk, char *buf, size_t len)
{
  char *dev = vmferry_xml_attr (vmferry_xml_child (disk, "target"), "dev");

  snprintf (buf, len, "disk %s", dev ? dev : "(no target)");
  free (dev);
  return buf;
}

/* A disk's own source and its backing chain. */
int
vmferry_rewrite_disk_paths (struct vmferry_rewrite *rw, xmlNodePtr disk,
                            struct dests *d, int *changes)
{
  char label[128];
  xmlNodePtr n = disk;

  disk_label (disk, label, sizeof label);
  while (n) {
    xmlNodePtr src = vmferry_xml_child (n, "source");
    char *type = vmferry_xml_attr (n, "type");
    const char *a = type && strcmp (type, "block") == 0 ? "dev"
      : (type == NULL || strcmp (type, "file") == 0) ? "file" : NULL;
    int r = 0;

    if (src && a)
      r = vmferry_rewrite_node_path (rw, src, a, label,
                                     n == disk ? d : NULL, changes);
    free (type);
    if (r == -1)
      return -1;
    n = vmferry_xml_child (n, "backingStore");
  }
  return 0;
}

int
vmferry_rewrite_os_paths (struct vmferry_rewrite *rw, xmlNodePtr root,
                          struct dests *d, int *changes)
{
  xmlNodePtr os = vmferry_xml_child (root, "os");
  xmlNodePtr nvram;

  if (os == NULL)
    return 0;
  if (vmferry_rewrite_node_path (rw, vmferry_xml_child (os, "loader"), NULL,
                                 "loader", NULL, changes) == -1 ||
      vmferry_rewrite_node_path (rw, vmferry_xml_child (os, "kernel"), NULL,
                                 "kernel", NULL, changes) == -1 ||
      vmferry_rewrite_node_path (rw, vmferry_xml_child (os, "initrd"), NULL,
                                 "initrd", NULL, changes) == -1 ||
      vmferry_rewrite_node_path (rw, vmferry_xml_child (os, "dtb"), NULL, "dtb",
                                 NULL, changes) == -1)
    return -1;
  nvram = vmferry_xml_child (os, "nvram");
  if (nvram == NULL)
    return 0;
  if (vmferry_rewrite_node_path (rw, nvram, "template", "nvram template", NULL,
                                 changes) == -1)
    return -1;
  if (vmferry_xml_attr_eq (nvram, "type", "file"))
    return vmferry_rewrite_node_path (rw, vmferry_xml_child (nvram, "source"),
                                      "file", "nvram", d, changes);
  if (vmferry_xml_attr_eq (nvram, "type", "block"))
    return vmferry_rewrite_node_path (rw, vmferry_xml_child (nvram, "source"),
                                      "dev", "nvram", d, changes);
  if (!xmlHasNsProp (nvram, BAD_CAST "type", NULL))
    return vmferry_rewrite_node_path (rw, nvram, NULL, "nvram", d, changes);
  return 0;
}

/* ---------------------------------------------------------------- pools */

static int
note_volume (struct vmferry_rewrite *rw, const char *path, const char *pool,
             const char *volume)
{
  struct volmap v = {
    .path = strdup (path), .pool = strdup (pool), .volume = strdup (volume),
  };

  if (!v.path || !v.pool || !v.volume || volmaps_append (&rw->vols, v) == -1) {
    free (v.path);
    free (v.pool);
    free (v.volume);
    vmferry_set_error_errno (ENOMEM, "rewrite");
    return -1;
  }
  return 0;
}

/* type='volume' in pool SRC → pool DST; type='file' under directory SRC
 * → a volume of DST named as the file.  Returns 1 when the disk is (now)
 * a volume handled here, so path rules leave it alone.
 */
int
vmferry_rewrite_pool_disk (struct vmferry_rewrite *rw, xmlNodePtr disk,
                           struct dests *d, int *changes)
{
  xmlNodePtr src = vmferry_xml_child (disk, "source");
  char label[128];
  char *type = vmferry_xml_attr (disk, "type");
  bool is_volume = type && strcmp (type, "volume") == 0;
  bool is_file = type == NULL || strcmp (type, "file") == 0;

  free (type);
  if (src == NULL || rw->pools.len == 0 || (!is_volume && !is_file))
    return 0;
  disk_label (disk, label, sizeof label);

  if (is_volume) {
    char *pool = vmferry_xml_attr (src, "pool");
    char *vol = vmferry_xml_attr (src, "volume");
    CLEANUP_FREE char *b = NULL;
    CLEANUP_FREE char *a = NULL;
    int r = 0;
    for (size_t i = 0; pool && vol && i < rw->pools.len; i++) {
      const struct pair *p = &rw->pools.ptr[i];
      if (p->old[0] == '/' || strcmp (p->old, pool) != 0)
        continue;
      if (asprintf (&b, "vol::%s/%s", pool, vol) < 0 ||
          asprintf (&a, "volume:%s/%s", p->new, vol) < 0 ||
          dests_add (d, b, a, label) == -1 ||
          vmferry_xml_set_attr (src, "pool", p->new, changes) == -1)
        r = -1;
      else
        r = 1;
      break;
    }
    free (pool);
    free (vol);
    return r;
  }

  {
    char *path = vmferry_xml_attr (src, "file");
    const struct pair *best = NULL;
    CLEANUP_FREE char *b = NULL;
    CLEANUP_FREE char *a = NULL;
    const char *base;
    int r = 0;

    if (path == NULL)
      return 0;
    for (size_t i = 0; i < rw->pools.len; i++) {
      const struct pair *p = &rw->pools.ptr[i];
      if (p->old[0] == '/' && vmferry_rewrite_path_under (path, p->old) &&
          strcmp (path, p->old) != 0 &&
          (best == NULL || strlen (p->old) > strlen (best->old)))
        best = p;
    }
    if (best == NULL) {
      free (path);
      return 0;
    }
    /* A volume is one name in the pool's directory. */
    base = strrchr (path, '/') + 1;
    if (strchr (path + strlen (best->old) + 1, '/')) {
      vmferry_set_error ("%s: %s is in a subdirectory of %s: a pool volume is "
                         "a file directly in the pool", label, path, best->old);
      free (path);
      return -1;
    }
    if (asprintf (&b, "path:%s", path) < 0 ||
        asprintf (&a, "volume:%s/%s", best->new, base) < 0 ||
        dests_add (d, b, a, label) == -1 ||
        note_volume (rw, path, best->new, base) == -1 ||
        vmferry_xml_set_attr (disk, "type", "volume", changes) == -1 ||
        vmferry_xml_set_attr (src, "pool", best->new, changes) == -1 ||
        vmferry_xml_set_attr (src, "volume", base, changes) == -1)
      r = -1;
    else {
      vmferry_xml_unset_attr (src, "file", changes);
      r = 1;
    }
    free (path);
    return r;
  }
}
