/* vmferry: the devices of a rewritten domain: networks and bridges, disk
 * buses, and devices dropped.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

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

static const char *
bus_prefix (const char *bus)
{
  static const struct { const char *bus, *prefix; } t[] = {
    { "virtio", "vd" }, { "scsi", "sd" }, { "sata", "sd" }, { "usb", "sd" },
    { "sd", "sd" }, { "ide", "hd" }, { "xen", "xvd" }, { "fdc", "fd" },
    { "uml", "ubd" },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp (t[i].bus, bus) == 0)
      return t[i].prefix;
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

static bool
dev_used (xmlNodePtr root, const char *dev, xmlNodePtr except)
{
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next)
      if (vmferry_xml_is_elem (n, "disk") && n != except &&
          vmferry_xml_attr_eq (vmferry_xml_child (n, "target"), "dev", dev))
        return true;
  }
  return false;
}

int
vmferry_rewrite_disk_buses (struct vmferry_rewrite *rw, xmlNodePtr root,
                            int *changes)
{
  bool want_scsi = false;

  if (rw->buses.len == 0)
    return 0;
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
        return -1;
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
        for (unsigned i = 0; i < 18278; i++) {
          disk_suffix (i, suf, sizeof suf);
          snprintf (newdev, sizeof newdev, "%s%s", np, suf);
          if (!dev_used (root, newdev, n))
            break;
        }
        if (vmferry_xml_set_attr (tgt, "dev", newdev, changes) == -1) {
          free (dev);
          return -1;
        }
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
          vmferry_xml_attr_eq (n, "type", "scsi"))
        return 0;
    ctl = xmlNewDocNode (root->doc, NULL, BAD_CAST "controller", NULL);
    if (ctl == NULL ||
        xmlSetProp (ctl, BAD_CAST "type", BAD_CAST "scsi") == NULL ||
        xmlSetProp (ctl, BAD_CAST "index", BAD_CAST "0") == NULL ||
        xmlSetProp (ctl, BAD_CAST "model", BAD_CAST "virtio-scsi") == NULL ||
        vmferry_xml_append_child (devs, ctl) == -1) {
      xmlFreeNode (ctl);
      vmferry_set_error_errno (ENOMEM, "rewrite");
      return -1;
    }
    (*changes)++;
  }
  return 0;
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
