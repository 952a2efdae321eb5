/* vmferry: pre-flight checks of the domain itself: its name, UUID and
 * memory, and its devices.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "cleanup.h"
#include "preflight-int.h"
#include "preflight.h"
#include "xmlnode.h"

/* The next domcaps <enum name=NAME> under PARENT after E (NULL: the
 * first), or NULL.
 */
static xmlNodePtr
next_enum (xmlNodePtr parent, xmlNodePtr e, const char *name)
{
  for (e = e ? e->next : parent ? parent->children : NULL; e; e = e->next)
    if (vmferry_xml_is_elem (e, "enum") &&
        vmferry_xml_attr_eq (e, "name", name))
      return e;
  return NULL;
}

/* Does the domcaps <enum name=NAME> under PARENT hold VALUE?  -1 when
 * the enum is not there (nothing known).
 */
static int
enum_has (xmlNodePtr parent, const char *name, const char *value)
{
  xmlNodePtr e = next_enum (parent, NULL, name);

  if (e == NULL)
    return -1;
  for (xmlNodePtr v = e->children; v; v = v->next) {
    CLEANUP_FREE char *t = NULL;
    if (!vmferry_xml_is_elem (v, "value"))
      continue;
    t = vmferry_xml_text (v);
    if (t && strcmp (t, value) == 0)
      return 1;
  }
  return 0;
}

/* The values of an enum, comma-separated, for messages. */
static void
enum_list (xmlNodePtr parent, const char *name, char *buf, size_t len)
{
  size_t used = 0;

  buf[0] = '\0';
  for (xmlNodePtr e = next_enum (parent, NULL, name); e;
       e = next_enum (parent, e, name)) {
    for (xmlNodePtr v = e->children; v; v = v->next) {
      CLEANUP_FREE char *t = NULL;
      if (!vmferry_xml_is_elem (v, "value") ||
          (t = vmferry_xml_text (v)) == NULL)
        continue;
      used += snprintf (buf + used, used < len ? len - used : 0, "%s%s",
                        used ? ", " : "", t);
    }
  }
}

/* ------------------------------------------------------- name, UUID, memory */

void
vmferry_preflight_identity (struct preflight *c)
{
  CLEANUP_FREE char *name =
    vmferry_xml_text (vmferry_xml_child (c->root, "name"));
  CLEANUP_FREE char *uuid =
    vmferry_xml_text (vmferry_xml_child (c->root, "uuid"));
  virDomainPtr by_name = name ? virDomainLookupByName (c->dest, name) : NULL;
  virDomainPtr by_uuid =
    uuid ? virDomainLookupByUUIDString (c->dest, uuid) : NULL;
  char object[600];

  if (by_name) {
    CLEANUP_FREE char *newname = NULL;
    if (asprintf (&newname, "%s-copy", name) < 0)
      newname = NULL;
    const char *fix[] =
      { "--rename", newname, "--new-uuid", "--new-macs", NULL };
    snprintf (object, sizeof object, "domain %s", name);
    /* Only vmferry-import replaces a domain (--force). */
    vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "name", object,
                           newname ? fix : NULL,
                           c->in->check_for != VMFERRY_CHECK_FOR_IMPORT ?
                           "or, if that one is not needed, undefine it there "
                           "first" :
                           "or replace it: vmferry-import --force (only once "
                           "the new copy is verified)",
                           "a domain of this name is already defined on the "
                           "destination");
  }
  if (by_uuid &&
      (by_name == NULL || strcmp (virDomainGetName (by_uuid), name) != 0)) {
    const char *fix[] = { "--new-uuid", NULL };
    const char *other = virDomainGetName (by_uuid);
    size_t len = name ? strlen (name) : 0;
    snprintf (object, sizeof object, "uuid %s", uuid);
    /* The definition an import killed before it could rename it: that
     * import's state goes first, with it.
     */
    if (name && strncmp (other, name, len) == 0 &&
        strncmp (other + len, ".vmferry-new-", 13) == 0)
      vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "uuid", object, NULL, NULL,
                             "domain %s on the destination has this UUID: an "
                             "import of this domain was killed as it defined "
                             "it; the next import removes it first", other);
    else
      vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "uuid", object, fix, NULL,
                             "domain %s on the destination already has this "
                             "UUID", other);
  }
  if (by_name)
    virDomainFree (by_name);
  if (by_uuid)
    virDomainFree (by_uuid);

  {
    xmlNodePtr mem = vmferry_xml_child (c->root, "memory");
    CLEANUP_FREE char *t = vmferry_xml_text (mem);
    CLEANUP_FREE char *unit = vmferry_xml_attr (mem, "unit");
    virNodeInfo info;
    unsigned long long kib;
    char *end;

    if (t == NULL || virNodeGetInfo (c->dest, &info) < 0)
      return;
    errno = 0;
    kib = strtoull (t, &end, 10);
    if (errno || end == t)
      return;
    if (unit == NULL || strcmp (unit, "KiB") == 0 || strcmp (unit, "k") == 0)
      ;
    else if (strcmp (unit, "MiB") == 0 || strcmp (unit, "M") == 0)
      kib *= 1024;
    else if (strcmp (unit, "GiB") == 0 || strcmp (unit, "G") == 0)
      kib *= 1024 * 1024;
    else if (strcmp (unit, "b") == 0 || strcmp (unit, "bytes") == 0)
      kib /= 1024;
    else
      return;
    if (kib > info.memory)
      vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "memory", "memory", NULL,
                             NULL,
                             "the domain has %llu KiB, the destination %lu KiB "
                             "in all", kib,
                             info.memory);
  }
}

/* ---------------------------------------------------------------- devices */

void
vmferry_preflight_devices (struct preflight *c)
{
  xmlNodePtr caps = c->domcaps ? xmlDocGetRootElement (c->domcaps) : NULL;
  xmlNodePtr cdev = vmferry_xml_child (caps, "devices");
  xmlNodePtr os = vmferry_xml_child (c->root, "os");
  bool hostdev_seen = false;
  char list[1024], object[600];

  /* firmware='efi' auto-selection needs EFI firmware there. */
  if (os && caps) {
    CLEANUP_FREE char *fw = vmferry_xml_attr (os, "firmware");
    if (fw && enum_has (vmferry_xml_child (caps, "os"), "firmware", fw) == 0) {
      snprintf (object, sizeof object, "firmware %s", fw);
      vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "firmware", object, NULL,
                             "install the firmware (e.g. ovmf) on the "
                             "destination",
                             "the destination has no firmware of this kind");
    }
  }

  for (xmlNodePtr devs = c->root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr d = devs->children; d; d = d->next) {
      if (vmferry_xml_is_elem (d, "disk") && cdev) {
        CLEANUP_FREE char *bus =
          vmferry_xml_attr (vmferry_xml_child (d, "target"), "bus");
        CLEANUP_FREE char *dev =
          vmferry_xml_attr (vmferry_xml_child (d, "target"), "dev");
        if (bus &&
            enum_has (vmferry_xml_child (cdev, "disk"), "bus", bus) == 0) {
          const char *nb =
            enum_has (vmferry_xml_child (cdev, "disk"), "bus", "virtio") == 1
            ? "virtio" : NULL;
          enum_list (vmferry_xml_child (cdev, "disk"), "bus", list,
                     sizeof list);
          snprintf (object, sizeof object, "disk %s bus %s", dev ? dev : "?",
                    bus);
          vmferry_preflight_add_pick (c, "device", object, "--disk-bus", bus,
                                      nb, NULL, NULL,
                                      "the destination does not support "
                                      "this disk bus (it has: %s)", list);
        }
      }
      else if (vmferry_xml_is_elem (d, "graphics") && cdev) {
        CLEANUP_FREE char *type = vmferry_xml_attr (d, "type");
        if (type &&
            enum_has (vmferry_xml_child (cdev, "graphics"), "type",
                      type) == 0) {
          const char *fix[] = { "--drop-device", "graphics", NULL };
          snprintf (object, sizeof object, "graphics %s", type);
          enum_list (vmferry_xml_child (cdev, "graphics"), "type", list,
                     sizeof list);
          vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "device", object, fix,
                                 NULL,
                                 "the destination does not support this "
                                 "graphics type (it has: %s)", list);
        }
      }
      else if (vmferry_xml_is_elem (d, "video") && cdev) {
        CLEANUP_FREE char *type =
          vmferry_xml_attr (vmferry_xml_child (d, "model"), "type");
        if (type &&
            enum_has (vmferry_xml_child (cdev, "video"), "modelType",
                      type) == 0) {
          snprintf (object, sizeof object, "video %s", type);
          enum_list (vmferry_xml_child (cdev, "video"), "modelType", list,
                     sizeof list);
          vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "device", object, NULL,
                                 "change the video model",
                                 "the destination does not support this video "
                                 "model (it has: %s)", list);
        }
      }
      else if (vmferry_xml_is_elem (d, "tpm") && cdev) {
        CLEANUP_FREE char *bt =
          vmferry_xml_attr (vmferry_xml_child (d, "backend"), "type");
        xmlNodePtr t = vmferry_xml_child (cdev, "tpm");
        if (bt && t && (!vmferry_xml_attr_eq (t, "supported", "yes") ||
                        enum_has (t, "backendModel", bt) == 0)) {
          const char *fix[] = { "--drop-device", "tpm", NULL };
          snprintf (object, sizeof object, "tpm backend %s", bt);
          vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "device", object, fix,
                                 "or install swtpm on the destination",
                                 "the destination does not support this TPM "
                                 "backend");
        }
      }
      else if (vmferry_xml_is_elem (d, "hostdev")) {
        const char *fix[] = { "--drop-device", "hostdev", NULL };
        xmlNodePtr addr =
          vmferry_xml_child (vmferry_xml_child (d, "source"), "address");
        CLEANUP_FREE char *type = vmferry_xml_attr (d, "type");
        if (type && strcmp (type, "pci") == 0 && addr) {
          CLEANUP_FREE char *dom = vmferry_xml_attr (addr, "domain");
          CLEANUP_FREE char *bus = vmferry_xml_attr (addr, "bus");
          CLEANUP_FREE char *slot = vmferry_xml_attr (addr, "slot");
          CLEANUP_FREE char *fn = vmferry_xml_attr (addr, "function");
          unsigned long v[4] = { 0 };
          const char *s[4] = { dom, bus, slot, fn };
          char nodedev[64];
          virNodeDevicePtr nd;
          for (int k = 0; k < 4; k++)
            v[k] = s[k] ? strtoul (s[k], NULL, 0) : 0;
          snprintf (nodedev, sizeof nodedev, "pci_%04lx_%02lx_%02lx_%lx",
                    v[0], v[1], v[2], v[3]);
          snprintf (object, sizeof object, "hostdev pci %04lx:%02lx:%02lx.%lx",
                    v[0], v[1], v[2], v[3]);
          nd = virNodeDeviceLookupByName (c->dest, nodedev);
          if (nd == NULL)
            vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "device", object, fix,
                                   NULL,
                                   "no such PCI device on the destination");
          else {
            virNodeDeviceFree (nd);
            vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "device", object,
                                   fix, NULL,
                                   "a PCI device at this address exists on the "
                                   "destination, but passthrough ties the "
                                   "domain to one host's hardware: make sure "
                                   "it is the same kind of device and free");
          }
        }
        else if (!hostdev_seen) {
          snprintf (object, sizeof object, "hostdev %s", type ? type : "");
          vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "device", object, fix,
                                 NULL,
                                 "host device passthrough ties the domain to "
                                 "one host's hardware; vmferry cannot check "
                                 "this kind on the destination");
        }
        hostdev_seen = true;
      }
    }
  }
}
