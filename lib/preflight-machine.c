/* vmferry: pre-flight checks of what would run the domain: its type,
 * emulator and machine type, and its CPU.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <libvirt/virterror.h>
#include <libxml/tree.h>

#include "cleanup.h"
#include "preflight-int.h"
#include "preflight.h"
#include "refs.h"
#include "xmlnode.h"

/* ------------------------------------------- domain type, emulator, machine */

static char *
domcaps_path (xmlDocPtr caps)
{
  xmlNodePtr root = caps ? xmlDocGetRootElement (caps) : NULL;

  return root ? vmferry_xml_text (vmferry_xml_child (root, "path")) : NULL;
}

xmlDocPtr
vmferry_preflight_domcaps (struct preflight *c, const char *emulator,
                           const char *machine)
{
  CLEANUP_FREE char *xml =
    virConnectGetDomainCapabilities (c->dest, emulator, c->arch, machine,
                                     c->virt, 0);

  return xml ? vmferry_xml_parse_libvirt (xml) : NULL;
}

void
vmferry_preflight_type_and_emulator (struct preflight *c)
{
  xmlDocPtr def = vmferry_preflight_domcaps (c, NULL, NULL);
  char object[512];

  if (def == NULL) {
    snprintf (object, sizeof object, "domain type %s, arch %s",
              c->virt ? c->virt : "(default)", c->arch ? c->arch : "(default)");
    vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "domain-type", object, NULL,
                           c->virt && strcmp (c->virt, "kvm") == 0
                           ? "the destination may lack /dev/kvm; a type='qemu' "
                             "domain runs without it"
                           : NULL,
                           "the destination cannot run such guests: %s",
                           vmferry_preflight_virt_msg ());
    return;
  }
  c->default_emulator = domcaps_path (def);
  xmlFreeDoc (def);

  /* Asking libvirt about an emulator runs it: only one the destination
   * lists as its own, or one the user allowed by name.  Any other is the
   * reference check's "unknown emulator", reported here once.
   */
  if (c->emulator && c->have_emulators &&
      !vmferry_refs_allowed (c->emulator, false,
                             (const char *const *) c->emulators,
                             c->nemulators) &&
      !vmferry_refs_allowed (c->emulator, true,
                             (const char *const *) c->in->allow.ptr,
                             c->in->allow.len)) {
    const char *fix[] = { "--emulator", c->default_emulator, NULL };
    char hint[4200], list[1024];
    size_t used = 0;

    list[0] = '\0';
    for (size_t i = 0; i < c->nemulators && used < sizeof list; i++)
      used += snprintf (list + used, sizeof list - used, "%s%s",
                        used ? ", " : "", c->emulators[i]);
    snprintf (object, sizeof object, "emulator %s", c->emulator);
    snprintf (hint, sizeof hint, "or, to run it anyway: --allow-path %s",
              c->emulator);
    vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "emulator", object,
                           c->default_emulator ? fix : NULL, hint,
                           "not one of the destination's emulators (%s), and "
                           "libvirt would run it as root",
                           list[0] ? list : "none");
  }
  else if (c->emulator) {
    xmlDocPtr caps = vmferry_preflight_domcaps (c, c->emulator, NULL);
    if (caps == NULL) {
      const char *fix[] = { "--emulator", c->default_emulator, NULL };
      snprintf (object, sizeof object, "emulator %s", c->emulator);
      vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "emulator", object,
                             c->default_emulator ? fix : NULL, NULL,
                             "not usable on the destination: %s",
                             vmferry_preflight_virt_msg ());
    }
    else {
      xmlFreeDoc (caps);
      c->use_emulator = strdup (c->emulator);
    }
  }
  if (c->use_emulator == NULL && c->default_emulator)
    c->use_emulator = strdup (c->default_emulator);
}

void
vmferry_preflight_machine (struct preflight *c)
{
  CLEANUP_FREE char *caps = NULL;
  CLEANUP_XMLDOC xmlDocPtr d = NULL;
  CLEANUP_FREE char *family_pick = NULL;
  const char *fam = NULL;
  char object[300], offered[1024] = "";
  size_t used = 0;

  if (c->machine == NULL) {
    c->machine_ok = true;
    return;
  }
  caps = virConnectGetCapabilities (c->dest);
  if (caps == NULL || (d = vmferry_xml_parse_libvirt (caps)) == NULL) {
    vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "machine", c->machine, NULL,
                           NULL,
                           "cannot read the destination's capabilities: %s",
                           vmferry_preflight_virt_msg ());
    return;
  }
  if (strstr (c->machine, "q35"))
    fam = "q35";
  else if (strstr (c->machine, "i440fx") || strcmp (c->machine, "pc") == 0)
    fam = "pc";
  else if (strncmp (c->machine, "virt", 4) == 0)
    fam = "virt";
  else if (strncmp (c->machine, "pseries", 7) == 0)
    fam = "pseries";

  for (xmlNodePtr g = xmlDocGetRootElement (d)->children; g; g = g->next) {
    xmlNodePtr a = vmferry_xml_child (g, "arch");
    if (!vmferry_xml_is_elem (g, "guest") || a == NULL ||
        (c->arch && !vmferry_xml_attr_eq (a, "name", c->arch)))
      continue;
    for (xmlNodePtr m = a->children; m; m = m->next) {
      CLEANUP_FREE char *t = NULL;
      CLEANUP_FREE char *canon = NULL;
      if (!vmferry_xml_is_elem (m, "machine") ||
          (t = vmferry_xml_text (m)) == NULL)
        continue;
      if (strcmp (t, c->machine) == 0) {
        c->machine_ok = true;
        return;
      }
      canon = vmferry_xml_attr (m, "canonical");
      if (fam && strcmp (t, fam) == 0 && family_pick == NULL)
        family_pick = strdup (canon ? canon : t);
      if (used < sizeof offered - 64)
        used += snprintf (offered + used, sizeof offered - used, "%s%s",
                          used ? ", " : "", t);
    }
    break;
  }
  snprintf (object, sizeof object, "machine type %s", c->machine);
  {
    const char *fix[] = { "--machine", family_pick, NULL };
    vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "machine", object,
                           family_pick ? fix : NULL,
                           family_pick ? NULL
                             : "no machine type of the same family is offered; "
                               "choosing another family changes the guest's "
                               "hardware",
                           "not offered by the destination's emulator for %s "
                           "(it offers: %s)",
                           c->arch ? c->arch : "this arch",
                           offered[0] ? offered : "none");
  }
}

/* ---------------------------------------------------------------- CPU */

static int
compare_cpu (struct preflight *c, const char *xml)
{
  return virConnectCompareHypervisorCPU
    (c->dest, c->use_emulator, c->arch, c->machine_ok ? c->machine : NULL,
     c->virt, xml, VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE);
}

void
vmferry_preflight_cpu (struct preflight *c)
{
  xmlNodePtr cpu = vmferry_xml_child (c->root, "cpu");
  xmlNodePtr caps_cpu = c->domcaps
    ? vmferry_xml_child (xmlDocGetRootElement (c->domcaps), "cpu") : NULL;
  CLEANUP_FREE char *mode = vmferry_xml_attr (cpu, "mode");
  CLEANUP_FREE char *model =
    vmferry_xml_text (vmferry_xml_child (cpu, "model"));
  xmlBufferPtr buf;
  char why[1024], object[300];
  int r;

  if (cpu == NULL)
    return;
  if (mode == NULL)
    mode = strdup (model ? "custom" : "");
  if (mode &&
      (strcmp (mode, "host-passthrough") == 0 ||
       strcmp (mode, "host-model") == 0 ||
       strcmp (mode, "maximum") == 0)) {
    bool supported = true;
    for (xmlNodePtr m = caps_cpu ? caps_cpu->children : NULL; m; m = m->next)
      if (vmferry_xml_is_elem (m, "mode") &&
          vmferry_xml_attr_eq (m, "name", mode))
        supported = vmferry_xml_attr_eq (m, "supported", "yes");
    snprintf (object, sizeof object, "cpu mode %s", mode);
    if (!supported) {
      const char *fix[] = { "--cpu", "host-model", NULL };
      vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "cpu", object,
                             strcmp (mode, "host-model") != 0 ? fix : NULL,
                             NULL,
                             "the destination does not support this CPU mode");
    }
    else if (strcmp (mode, "host-passthrough") == 0 ||
             strcmp (mode, "maximum") == 0)
      vmferry_preflight_add (c, VMFERRY_SEV_INFO, "cpu", object, NULL, NULL,
                             "the guest will see the destination's CPU, which "
                             "may differ from the source's");
    return;
  }
  if (model == NULL || *model == '\0')
    return;

  buf = xmlBufferCreate ();
  if (buf == NULL || xmlNodeDump (buf, cpu->doc, cpu, 0, 0) < 0) {
    xmlBufferFree (buf);
    c->oom = true;
    return;
  }
  r = compare_cpu (c, (const char *) xmlBufferContent (buf));
  xmlBufferFree (buf);
  if (r == VIR_CPU_COMPARE_IDENTICAL || r == VIR_CPU_COMPARE_SUPERSET)
    return;
  snprintf (why, sizeof why, "%s",
            r < 0 ? vmferry_preflight_virt_msg () : "incompatible");
  snprintf (object, sizeof object, "cpu model %s", model);
  if (r < 0 && vmferry_preflight_virt_code () != VIR_ERR_CPU_INCOMPATIBLE) {
    vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "cpu", object, NULL, NULL,
                           "cannot compare with the destination's CPU: %s",
                           why);
    return;
  }

  /* Candidates, best first: the same model without the features it
   * required (a host that lacks a feature), then host-model.
   */
  {
    CLEANUP_FREE char *bare = NULL;
    const char *pick = NULL;
    if (asprintf (&bare,
                  "<cpu mode='custom' match='exact'><model "
                  "fallback='forbid'>%s</model></cpu>", model) > 0 &&
        strchr (model, '<') == NULL &&
        strchr (model, '&') == NULL) {
      r = compare_cpu (c, bare);
      if (r == VIR_CPU_COMPARE_IDENTICAL || r == VIR_CPU_COMPARE_SUPERSET)
        pick = model;
    }
    if (pick == NULL) {
      r = compare_cpu (c, "<cpu mode='host-model'/>");
      if (r == VIR_CPU_COMPARE_IDENTICAL || r == VIR_CPU_COMPARE_SUPERSET)
        pick = "host-model";
    }
    {
      const char *fix[] = { "--cpu", pick, NULL };
      /* check='none': libvirt leaves it to QEMU, which warns about missing
       * features and starts the guest anyway; so does this check.
       */
      bool advisory = vmferry_xml_attr_eq (cpu, "check", "none");
      const char *hint = pick || advisory ? NULL
        : "choose a CPU model the destination can run "
          "(virsh domcapabilities lists the usable ones)";

      if (advisory)
        vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "cpu", object, NULL,
                               hint, "the destination's CPU lacks what the "
                               "model asks for (%s); with check='none' QEMU "
                               "starts it anyway", why);
      else
        vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "cpu", object,
                               pick ? fix : NULL, hint,
                               "the destination's CPU cannot run it: %s", why);
    }
  }
}
