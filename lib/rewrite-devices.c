/* vmferry: the devices of a rewritten domain: networks and bridges, disk
 * buses, and devices dropped.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "cleanup.h"
#include "error.h"
#include "rewrite-int.h"
#include "rewrite.h"
#include "xmlnode.h"

/* ---------------------------------------------------------------- networks */

int
vmferry_rewrite_interfaces (struct vmferry_rewrite *rw, xmlNodePtr root,
                            int *changes)
{
  if (rw->networks.len == 0 && rw->bridges.len == 0)
    return 0;
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      xmlNodePtr src = vmferry_xml_child (n, "source");
      const struct pairs *p;
      const char *a;
      char *v;
      if (!vmferry_xml_is_elem (n, "interface") || src == NULL)
        continue;
      if (vmferry_xml_attr_eq (n, "type", "network"))
        p = &rw->networks, a = "network";
      else if (vmferry_xml_attr_eq (n, "type", "bridge"))
        p = &rw->bridges, a = "bridge";
      else
        continue;
      v = vmferry_xml_attr (src, a);
      for (size_t i = 0; v && i < p->len; i++)
        if (strcmp (p->ptr[i].old, v) == 0) {
          if (vmferry_xml_set_attr (src, a, p->ptr[i].new, changes) == -1) {
            free (v);
            return -1;
          }
          break;
        }
      free (v);
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- disk bus */

static const struct { const char *bus, *prefix; } bus_prefixes[] = {
  { "virtio", "vd" }, { "scsi", "sd" }, { "sata", "sd" }, { "usb", "sd" },
  { "sd", "sd" }, { "ide", "hd" }, { "xen", "xvd" }, { "fdc", "fd" },
  { "uml", "ubd" },
};
#define NR_BUS_PREFIXES (sizeof bus_prefixes / sizeof bus_prefixes[0])

static const char *
bus_prefix (const char *bus)
{
  for (size_t i = 0; i < NR_BUS_PREFIXES; i++)
    if (strcmp (bus_prefixes[i].bus, bus) == 0)
      return bus_prefixes[i].prefix;
  return NULL;
}

/* "a".."z", "aa".."zz", ... as libvirt names disks. */
static void
disk_suffix (unsigned i, char *out, size_t len)
{
  char tmp[16];
  size_t n = 0;

  i++;
  while (i > 0 && n < sizeof tmp - 1) {
    i--;
    tmp[n++] = 'a' + i % 26;
    i /= 26;
  }
  for (size_t k = 0; k < n && k < len - 1; k++)
    out[k] = tmp[n - 1 - k];
  out[n < len - 1 ? n : len - 1] = '\0';
}

/* How many disks use each name PREFIX + disk_suffix (i): the names a
 * renamed disk may take, counted once so that renaming every disk of a
 * domain with very many is not a scan of all disks per name tried.
 */
#define DISK_SUFFIXES 18278     /* "a" to "zzz" */

struct dev_names {
  const char *prefix;
  unsigned *used;               /* [DISK_SUFFIXES] */
  unsigned first_free;          /* every index below is used */
};

/* The index of DEV's suffix if DEV is PREFIX + disk_suffix (i), or -1. */
static long
dev_index (const char *dev, const char *prefix)
{
  size_t n = strlen (prefix), k = strlen (dev) - n;
  long v = 0;

  if (strncmp (dev, prefix, n) != 0 || k < 1 || k > 3)
    return -1;
  for (const char *c = dev + n; *c; c++) {
    if (*c < 'a' || *c > 'z')
      return -1;
    v = v * 26 + (*c - 'a' + 1);
  }
  return v - 1;
}

static void
dev_count (struct dev_names *names, size_t nr, const char *dev, int delta)
{
  for (size_t k = 0; dev && k < nr; k++) {
    long i = dev_index (dev, names[k].prefix);
    if (i < 0)
      continue;
    names[k].used[i] += delta;
    if (names[k].used[i] == 0 && (unsigned long) i < names[k].first_free)
      names[k].first_free = i;
  }
}

/* The first free index of PREFIX (the last one when all are used). */
static unsigned
dev_free (struct dev_names *names, size_t nr, const char *prefix)
{
  for (size_t k = 0; k < nr; k++) {
    struct dev_names *d = &names[k];
    if (strcmp (d->prefix, prefix) != 0)
      continue;
    while (d->first_free < DISK_SUFFIXES - 1 && d->used[d->first_free])
      d->first_free++;
    return d->first_free;
  }
  assert (!"a prefix of bus_prefixes is counted");
  return 0;
}

int
vmferry_rewrite_disk_buses (struct vmferry_rewrite *rw, xmlNodePtr root,
                            int *changes)
{
  struct dev_names names[NR_BUS_PREFIXES] = { 0 };
  size_t nr = 0;
  bool want_scsi = false;
  int r = -1;

  if (rw->buses.len == 0)
    return 0;
  /* One count per prefix a bus gives its disks. */
  for (size_t i = 0; i < NR_BUS_PREFIXES; i++) {
    size_t k = 0;
    while (k < nr && strcmp (names[k].prefix, bus_prefixes[i].prefix) != 0)
      k++;
    if (k < nr)
      continue;
    names[nr].prefix = bus_prefixes[i].prefix;
    names[nr].used = calloc (DISK_SUFFIXES, sizeof *names[nr].used);
    if (names[nr++].used == NULL) {
      vmferry_set_error_errno (errno, "rewrite");
      goto out;
    }
  }
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next)
      if (vmferry_xml_is_elem (n, "disk")) {
        CLEANUP_FREE char *dev =
          vmferry_xml_attr (vmferry_xml_child (n, "target"), "dev");
        dev_count (names, nr, dev, 1);
      }
  }
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      xmlNodePtr tgt = vmferry_xml_child (n, "target"), addr;
      char *bus, *dev;
      const struct pair *rule = NULL;
      const char *op, *np;

      if (!vmferry_xml_is_elem (n, "disk") || tgt == NULL)
        continue;
      bus = vmferry_xml_attr (tgt, "bus");
      for (size_t i = 0; bus && i < rw->buses.len; i++)
        if (strcmp (rw->buses.ptr[i].old, bus) == 0)
          rule = &rw->buses.ptr[i];
      free (bus);
      if (rule == NULL || strcmp (rule->old, rule->new) == 0)
        continue;
      if (vmferry_xml_set_attr (tgt, "bus", rule->new, changes) == -1)
        goto out;
      if (strcmp (rule->new, "scsi") == 0)
        want_scsi = true;
      /* The old bus's address means nothing on the new one. */
      if ((addr = vmferry_xml_child (n, "address")) != NULL) {
        vmferry_xml_remove (addr);
        (*changes)++;
      }
      op = bus_prefix (rule->old);
      np = bus_prefix (rule->new);
      dev = vmferry_xml_attr (tgt, "dev");
      if (dev && op && np && strcmp (op, np) != 0) {
        char newdev[32], suf[16];
        /* Any name but the disk's own. */
        dev_count (names, nr, dev, -1);
        disk_suffix (dev_free (names, nr, np), suf, sizeof suf);
        snprintf (newdev, sizeof newdev, "%s%s", np, suf);
        if (vmferry_xml_set_attr (tgt, "dev", newdev, changes) == -1) {
          free (dev);
          goto out;
        }
        dev_count (names, nr, newdev, 1);
      }
      free (dev);
    }
  }

  /* A SCSI disk needs a SCSI controller; virtio-scsi is the one a modern
   * guest drives (libvirt's default would be an emulated LSI card).
   */
  if (want_scsi) {
    xmlNodePtr devs = vmferry_xml_child (root, "devices"), ctl;
    for (xmlNodePtr n = devs->children; n; n = n->next)
      if (vmferry_xml_is_elem (n, "controller") &&
          vmferry_xml_attr_eq (n, "type", "scsi")) {
        r = 0;
        goto out;
      }
    ctl = xmlNewDocNode (root->doc, NULL, BAD_CAST "controller", NULL);
    if (ctl == NULL ||
        xmlSetProp (ctl, BAD_CAST "type", BAD_CAST "scsi") == NULL ||
        xmlSetProp (ctl, BAD_CAST "index", BAD_CAST "0") == NULL ||
        xmlSetProp (ctl, BAD_CAST "model", BAD_CAST "virtio-scsi") == NULL ||
        vmferry_xml_append_child (devs, ctl) == -1) {
      xmlFreeNode (ctl);
      vmferry_set_error_errno (ENOMEM, "rewrite");
      goto out;
    }
    (*changes)++;
  }
  r = 0;
 out:
  for (size_t k = 0; k < nr; k++)
    free (names[k].used);
  return r;
}

/* ---------------------------------------------------------------- drop */

int
vmferry_rewrite_drop_devices (struct vmferry_rewrite *rw, xmlNodePtr root,
                              int *changes)
{
  for (size_t k = 0; k < rw->drop.len; k++)
    for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
      xmlNodePtr n, next;
      if (!vmferry_xml_is_elem (devs, "devices"))
        continue;
      for (n = devs->children; n; n = next) {
        next = n->next;
        if (vmferry_xml_is_elem (n, rw->drop.ptr[k])) {
          vmferry_xml_remove (n);
          (*changes)++;
        }
      }
    }
  return 0;
}
