/* vmferry: what runs a rewritten domain: its emulator, machine type and
 * CPU, chosen from the destination's capabilities for "auto".
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "cleanup.h"
#include "error.h"
#include "rewrite-int.h"
#include "rewrite.h"
#include "vector.h"
#include "virt.h"
#include "xmlnode.h"

/* ---------------------------------------------------------------- dest caps */

static char *
xml_get_arch (xmlNodePtr root)
{
  xmlNodePtr type = vmferry_xml_child (vmferry_xml_child (root, "os"), "type");

  return vmferry_xml_attr (type, "arch");
}

/* The destination's emulator for the domain's arch and virt type. */
static char *
dest_emulator (virConnectPtr dest, xmlNodePtr root, const char *what)
{
  char *arch = xml_get_arch (root), *virt = vmferry_xml_attr (root, "type");
  CLEANUP_FREE char *caps =
    virConnectGetDomainCapabilities (dest, NULL, arch, NULL, virt, 0);
  CLEANUP_XMLDOC xmlDocPtr d = NULL;
  char *path = NULL, *ret = NULL;

  if (caps == NULL) {
    vmferry_virt_error ("%s: the destination offers no emulator for arch %s, "
                        "type %s", what, arch ? arch : "(default)",
                        virt ? virt : "(default)");
    goto out;
  }
  d = vmferry_xml_parse_libvirt (caps);
  if (d)
    path = vmferry_xml_text (vmferry_xml_child (xmlDocGetRootElement (d),
                                                "path"));
  if (path == NULL || path[0] != '/') {
    vmferry_set_error ("%s: the destination's domain capabilities name no "
                       "emulator", what);
    goto out;
  }
  ret = strdup (path);
 out:
  free (arch);
  free (virt);
  free (path);
  return ret;
}

/* The family a machine type belongs to, as the alias QEMU gives it. */
static const char *
machine_family (const char *m)
{
  if (strstr (m, "q35"))
    return "q35";
  if (strstr (m, "i440fx") || strcmp (m, "pc") == 0)
    return "pc";
  if (strncmp (m, "virt", 4) == 0)
    return "virt";
  if (strncmp (m, "pseries", 7) == 0)
    return "pseries";
  if (strncmp (m, "s390-ccw-virtio", 15) == 0)
    return "s390-ccw-virtio";
  return NULL;
}

/* A machine type the destination offers, and the one it stands for. */
struct machine {
  char *name, *canon;
};

DEFINE_VECTOR_TYPE (machine_vector, struct machine);

static void
machines_free (struct machine_vector *v)
{
  for (size_t i = 0; i < v->len; i++) {
    free (v->ptr[i].name);
    free (v->ptr[i].canon);
  }
  machine_vector_reset (v);
}

/* The machine types the destination offers for ARCH (and virt type),
 * appended to *MACHINES (which the caller frees with machines_free, also
 * after an error).
 */
static int
dest_machines (virConnectPtr dest, const char *arch, const char *virt,
               struct machine_vector *machines)
{
  CLEANUP_FREE char *caps = virConnectGetCapabilities (dest);
  CLEANUP_XMLDOC xmlDocPtr d = NULL;

  if (caps == NULL) {
    vmferry_virt_error ("destination: cannot read its capabilities");
    return -1;
  }
  d = vmferry_xml_parse_libvirt (caps);
  if (d == NULL) {
    vmferry_set_error ("destination: cannot parse its capabilities");
    return -1;
  }
  for (xmlNodePtr g = xmlDocGetRootElement (d)->children; g; g = g->next) {
    xmlNodePtr a = vmferry_xml_child (g, "arch");
    if (!vmferry_xml_is_elem (g, "guest") || a == NULL ||
        (arch && !vmferry_xml_attr_eq (a, "name", arch)))
      continue;
    /* Machines of the arch, and those of the virt type's <domain>. */
    for (xmlNodePtr parent = a; parent; ) {
      for (xmlNodePtr m = parent->children; m; m = m->next) {
        struct machine mt;
        if (!vmferry_xml_is_elem (m, "machine"))
          continue;
        mt.name = vmferry_xml_text (m);
        mt.canon = vmferry_xml_attr (m, "canonical");
        if (mt.name && mt.canon == NULL)
          mt.canon = strdup (mt.name);
        if (mt.name == NULL || mt.canon == NULL ||
            machine_vector_append (machines, mt) == -1) {
          free (mt.name);
          free (mt.canon);
          vmferry_set_error_errno (ENOMEM, "destination capabilities");
          return -1;
        }
      }
      if (parent != a)
        break;
      parent = NULL;
      for (xmlNodePtr dm = a->children; dm; dm = dm->next)
        if (vmferry_xml_is_elem (dm, "domain") && virt &&
            vmferry_xml_attr_eq (dm, "type", virt)) {
          parent = dm;
          break;
        }
    }
    break;
  }
  return 0;
}

/* --machine auto: keep the machine when the destination offers it, else
 * the destination's current machine of the same family.
 */
static char *
auto_machine (virConnectPtr dest, xmlNodePtr root, const char *current)
{
  char *arch = xml_get_arch (root), *virt = vmferry_xml_attr (root, "type");
  struct machine_vector machines = VECTOR_INIT;
  const char *fam = current ? machine_family (current) : NULL;
  char *ret = NULL;

  if (dest_machines (dest, arch, virt, &machines) == -1)
    goto out;
  for (size_t i = 0; current && i < machines.len; i++)
    if (strcmp (machines.ptr[i].name, current) == 0) {
      ret = strdup (current);
      goto out;
    }
  if (fam == NULL) {
    vmferry_set_error ("--machine auto: the destination does not offer "
                       "machine type '%s' and vmferry knows no family for "
                       "it; give --machine TYPE", current ? current : "(none)");
    goto out;
  }
  for (size_t i = 0; i < machines.len; i++)
    if (strcmp (machines.ptr[i].name, fam) == 0) {
      ret = strdup (machines.ptr[i].canon);
      goto out;
    }
  vmferry_set_error ("--machine auto: the destination offers no '%s' machine "
                     "for arch %s", fam, arch ? arch : "(default)");
 out:
  machines_free (&machines);
  free (arch);
  free (virt);
  return ret;
}

/* --------------------------------------------------- machine, CPU, emulator */

int
vmferry_rewrite_emulator (struct vmferry_rewrite *rw, xmlNodePtr root,
                          virConnectPtr dest, int *changes)
{
  CLEANUP_FREE char *value = NULL;
  xmlNodePtr devs = vmferry_xml_child (root, "devices"), em;

  if (rw->emulator == NULL)
    return 0;
  if (strcmp (rw->emulator, "auto") == 0) {
    if (dest == NULL) {
      vmferry_set_error ("--emulator auto needs a destination (-c URI)");
      return -1;
    }
    if ((value = dest_emulator (dest, root, "--emulator auto")) == NULL)
      return -1;
  }
  else if ((value = strdup (rw->emulator)) == NULL) {
    vmferry_set_error_errno (ENOMEM, "rewrite");
    return -1;
  }
  if (devs == NULL) {
    vmferry_set_error ("--emulator: the domain has no <devices>");
    return -1;
  }
  em = vmferry_xml_child (devs, "emulator");
  if (em == NULL) {
    em = xmlNewDocNode (root->doc, NULL, BAD_CAST "emulator", NULL);
    if (em == NULL || vmferry_xml_prepend_child (devs, em) == -1) {
      xmlFreeNode (em);
      vmferry_set_error_errno (ENOMEM, "rewrite");
      return -1;
    }
  }
  return vmferry_xml_set_text (em, value, changes);
}

int
vmferry_rewrite_machine (struct vmferry_rewrite *rw, xmlNodePtr root,
                         virConnectPtr dest, int *changes)
{
  xmlNodePtr type = vmferry_xml_child (vmferry_xml_child (root, "os"), "type");
  char *cur;
  CLEANUP_FREE char *value = NULL;

  if (rw->machine == NULL)
    return 0;
  if (type == NULL) {
    vmferry_set_error ("--machine: the domain has no <os><type>");
    return -1;
  }
  {
    char *ostype = vmferry_xml_text (type);
    bool hvm = ostype && strcmp (ostype, "hvm") == 0;
    if (!hvm)
      vmferry_set_error ("--machine: only hvm guests have a machine type "
                         "(this one is '%s')", ostype ? ostype : "");
    free (ostype);
    if (!hvm)
      return -1;
  }
  cur = vmferry_xml_attr (type, "machine");
  if (strcmp (rw->machine, "auto") == 0) {
    if (dest == NULL) {
      free (cur);
      vmferry_set_error ("--machine auto needs a destination (-c URI)");
      return -1;
    }
    value = auto_machine (dest, root, cur);
  }
  else
    value = strdup (rw->machine);
  free (cur);
  if (value == NULL)
    return -1;
  return vmferry_xml_set_attr (type, "machine", value, changes);
}

int
vmferry_rewrite_cpu (struct vmferry_rewrite *rw, xmlNodePtr root, int *changes)
{
  xmlNodePtr cpu = vmferry_xml_child (root, "cpu"), n, next;
  bool mode = rw->cpu && vmferry_rewrite_is_cpu_mode (rw->cpu);

  if (rw->cpu == NULL)
    return 0;
  if (cpu == NULL) {
    xmlNodePtr after = vmferry_xml_child (root, "vcpu");
    cpu = xmlNewDocNode (root->doc, NULL, BAD_CAST "cpu", NULL);
    if (cpu == NULL ||
        (after ? vmferry_xml_insert_after (after, cpu)
         : vmferry_xml_append_child (root, cpu)) == -1) {
      xmlFreeNode (cpu);
      vmferry_set_error_errno (ENOMEM, "rewrite");
      return -1;
    }
    (*changes)++;
  }
  /* The model and what it requires are what the rule replaces; topology,
   * NUMA, cache and disabled features stay.
   */
  for (n = cpu->children; n; n = next) {
    next = n->next;
    if (vmferry_xml_is_elem (n, "vendor") ||
        (mode && vmferry_xml_is_elem (n, "model"))) {
      vmferry_xml_remove (n);
      (*changes)++;
    }
    else if (vmferry_xml_is_elem (n, "feature")) {
      char *pol = vmferry_xml_attr (n, "policy");
      bool adds = pol == NULL || strcmp (pol, "require") == 0 ||
        strcmp (pol, "force") == 0;
      free (pol);
      if (adds) {
        vmferry_xml_remove (n);
        (*changes)++;
      }
    }
  }
  if (mode) {
    vmferry_xml_unset_attr (cpu, "match", changes);
    return vmferry_xml_set_attr (cpu, "mode", rw->cpu, changes);
  }
  if (vmferry_xml_set_attr (cpu, "mode", "custom", changes) == -1)
    return -1;
  if (!xmlHasNsProp (cpu, BAD_CAST "match", NULL) &&
      vmferry_xml_set_attr (cpu, "match", "exact", changes) == -1)
    return -1;
  n = vmferry_xml_child (cpu, "model");
  if (n == NULL) {
    n = xmlNewDocNode (root->doc, NULL, BAD_CAST "model", NULL);
    if (n == NULL || xmlAddChild (cpu, n) == NULL) {
      xmlFreeNode (n);
      vmferry_set_error_errno (ENOMEM, "rewrite");
      return -1;
    }
    if (vmferry_xml_set_attr (n, "fallback", "forbid", changes) == -1)
      return -1;
  }
  return vmferry_xml_set_text (n, rw->cpu, changes);
}
