/* vmferry: pre-flight check of a domain against a destination (see
 * preflight.h).
 *
 * Each check asks the destination's libvirtd and adds findings; none
 * stops the others, so one run lists everything to fix.  Fixes are
 * concrete where the destination tells us the value (its emulator, its
 * machine type, an active network, a pool directory), so that applying
 * them with vmferry-rewrite needs no further choice.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/virterror.h>
#include <libxml/tree.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "log.h"
#include "preflight.h"
#include "progress.h"
#include "resume.h"
#include "refs.h"
#include "stream.h"
#include "virt.h"
#include "xmlnode.h"

/* ---------------------------------------------------------------- findings */

const char *
vmferry_severity_name (int severity)
{
  switch (severity) {
  case VMFERRY_SEV_ERROR: return "error";
  case VMFERRY_SEV_WARNING: return "warning";
  default: return "info";
  }
}

void
vmferry_findings_free (struct vmferry_findings *f)
{
  if (f == NULL)
    return;
  for (size_t i = 0; i < f->n; i++) {
    free (f->v[i].check);
    free (f->v[i].object);
    free (f->v[i].message);
    vmferry_strv_free (f->v[i].fix);
    free (f->v[i].hint);
  }
  free (f->v);
  f->v = NULL;
  f->n = 0;
}

bool
vmferry_findings_blocking (const struct vmferry_findings *f)
{
  for (size_t i = 0; i < f->n; i++)
    if (f->v[i].severity == VMFERRY_SEV_ERROR)
      return true;
  return false;
}

struct ctx {
  virConnectPtr dest;
  const struct vmferry_check_input *in;
  xmlNodePtr root;
  struct vmferry_findings *out;
  bool oom;
  char *arch, *virt, *machine, *emulator;  /* as the XML has them */
  char *use_emulator;           /* what to ask the destination about */
  bool machine_ok;
  xmlDocPtr domcaps;            /* for use_emulator, arch, machine */
  char *default_emulator;       /* the destination's, from domcaps */
  unsigned probe;               /* counter for transient pool names */
  /* References the import would refuse (check_refs): their directories
   * are not looked at (a transient pool over /dev or /etc is no way to
   * learn what the answer already is).
   */
  char **refused;
  size_t nrefused;
  /* The destination's emulators (its capabilities), when it told. */
  char **emulators;
  size_t nemulators;
  bool have_emulators;
};

/* Add a finding.  FIX: NULL-terminated words (copied), or NULL. */
static void
add (struct ctx *c, int sev, const char *check, const char *object,
     const char *const *fix, const char *hint, const char *fs, ...)
  __attribute__ ((format (printf, 7, 8)));

static void
add (struct ctx *c, int sev, const char *check, const char *object,
     const char *const *fix, const char *hint, const char *fs, ...)
{
  struct vmferry_finding *v, *f;
  va_list args;
  size_t nfix = 0;

  if (c->oom)
    return;
  v = reallocarray (c->out->v, c->out->n + 1, sizeof *v);
  if (v == NULL) {
    c->oom = true;
    return;
  }
  c->out->v = v;
  f = &v[c->out->n];
  memset (f, 0, sizeof *f);
  f->severity = sev;
  f->check = strdup (check);
  f->object = strdup (object);
  va_start (args, fs);
  if (vasprintf (&f->message, fs, args) < 0)
    f->message = NULL;
  va_end (args);
  if (hint)
    f->hint = strdup (hint);
  if (fix) {
    while (fix[nfix])
      nfix++;
    f->fix = calloc (nfix + 1, sizeof *f->fix);
    for (size_t i = 0; f->fix && i < nfix; i++)
      if ((f->fix[i] = strdup (fix[i])) == NULL)
        c->oom = true;
  }
  c->out->n++;
  if (!f->check || !f->object || !f->message || (hint && !f->hint) ||
      (fix && !f->fix))
    c->oom = true;
}


/* A "space" error: WHAT ("the files", "the volumes") need NEED bytes
 * where AVAILABLE are free.  Rounded in the message, exact in the JSON.
 */
static void
add_space (struct ctx *c, const char *object, const char *hint,
           const char *what, uint64_t need, uint64_t available)
{
  char a[32], b[32];

  vmferry_human_size (need, a, sizeof a);
  vmferry_human_size (available, b, sizeof b);
  add (c, VMFERRY_SEV_ERROR, "space", object, NULL, hint,
       "%s need %s, %s %s free", what, a, b,
       available >= 1024 ? "are" : "is");
  if (!c->oom) {
    c->out->v[c->out->n - 1].need = need;
    c->out->v[c->out->n - 1].available = available;
  }
}

/* libvirt's last error message, one line. */
static const char *
virt_msg (void)
{
  virErrorPtr e = virGetLastError ();

  return e && e->message ? e->message : "unknown libvirt error";
}

static int
virt_code (void)
{
  virErrorPtr e = virGetLastError ();

  return e ? e->code : 0;
}

/* ---------------------------------------------------------------- XML helpers */

static xmlDocPtr
parse_trusted (const char *xml)
{
  /* Our own destination's answers; still no network, no entities. */
  return xmlReadMemory (xml, strlen (xml), NULL, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

/* Does the domcaps <enum name=NAME> under PARENT hold VALUE?  -1 when
 * the enum is not there (nothing known).
 */
static int
enum_has (xmlNodePtr parent, const char *name, const char *value)
{
  for (xmlNodePtr e = parent ? parent->children : NULL; e; e = e->next) {
    if (!vmferry_xml_is_elem (e, "enum") || !vmferry_xml_attr_eq (e, "name", name))
      continue;
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
  return -1;
}

/* The values of an enum, comma-separated, for messages. */
static void
enum_list (xmlNodePtr parent, const char *name, char *buf, size_t len)
{
  size_t used = 0;

  buf[0] = '\0';
  for (xmlNodePtr e = parent ? parent->children : NULL; e; e = e->next) {
    if (!vmferry_xml_is_elem (e, "enum") || !vmferry_xml_attr_eq (e, "name", name))
      continue;
    for (xmlNodePtr v = e->children; v; v = v->next) {
      CLEANUP_FREE char *t = NULL;
      if (!vmferry_xml_is_elem (v, "value") || (t = vmferry_xml_text (v)) == NULL)
        continue;
      used += snprintf (buf + used, used < len ? len - used : 0, "%s%s",
                        used ? ", " : "", t);
    }
  }
}

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

/* ---------------------------------------------------------------- domain type, emulator, machine */

static char *
domcaps_path (xmlDocPtr caps)
{
  return caps ? vmferry_xml_text (vmferry_xml_child (xmlDocGetRootElement (caps), "path")) : NULL;
}

static xmlDocPtr
get_domcaps (struct ctx *c, const char *emulator, const char *machine)
{
  CLEANUP_FREE char *xml = virConnectGetDomainCapabilities (c->dest, emulator, c->arch,
                                                            machine, c->virt, 0);

  return xml ? parse_trusted (xml) : NULL;
}

static void
check_type_and_emulator (struct ctx *c)
{
  xmlDocPtr def = get_domcaps (c, NULL, NULL);
  char object[512];

  if (def == NULL) {
    snprintf (object, sizeof object, "domain type %s, arch %s",
              c->virt ? c->virt : "(default)", c->arch ? c->arch : "(default)");
    add (c, VMFERRY_SEV_ERROR, "domain-type", object, NULL,
         c->virt && strcmp (c->virt, "kvm") == 0
         ? "the destination may lack /dev/kvm; a type='qemu' domain runs without it"
         : NULL,
         "the destination cannot run such guests: %s", virt_msg ());
    return;
  }
  c->default_emulator = domcaps_path (def);
  xmlFreeDoc (def);

  /* Asking libvirt about an emulator runs it: only one the destination
   * lists as its own, or one the user allowed by name.  Any other is the
   * reference check's "unknown emulator", reported here once.
   */
  if (c->emulator && c->have_emulators &&
      !vmferry_refs_allowed (c->emulator, false, (const char *const *) c->emulators,
                             c->nemulators) &&
      !vmferry_refs_allowed (c->emulator, true, (const char *const *) c->in->allow,
                             c->in->nr_allow)) {
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
    add (c, VMFERRY_SEV_ERROR, "emulator", object,
         c->default_emulator ? fix : NULL, hint,
         "not one of the destination's emulators (%s), and libvirt would "
         "run it as root", list[0] ? list : "none");
  }
  else if (c->emulator) {
    xmlDocPtr caps = get_domcaps (c, c->emulator, NULL);
    if (caps == NULL) {
      const char *fix[] = { "--emulator", c->default_emulator, NULL };
      snprintf (object, sizeof object, "emulator %s", c->emulator);
      add (c, VMFERRY_SEV_ERROR, "emulator", object,
           c->default_emulator ? fix : NULL, NULL,
           "not usable on the destination: %s", virt_msg ());
    }
    else {
      xmlFreeDoc (caps);
      c->use_emulator = strdup (c->emulator);
    }
  }
  if (c->use_emulator == NULL && c->default_emulator)
    c->use_emulator = strdup (c->default_emulator);
}

static void
check_machine (struct ctx *c)
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
  if (caps == NULL || (d = parse_trusted (caps)) == NULL) {
    add (c, VMFERRY_SEV_WARNING, "machine", c->machine, NULL, NULL,
         "cannot read the destination's capabilities: %s", virt_msg ());
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
    if (!vmferry_xml_is_elem (g, "guest") || a == NULL || (c->arch && !vmferry_xml_attr_eq (a, "name", c->arch)))
      continue;
    for (xmlNodePtr m = a->children; m; m = m->next) {
      CLEANUP_FREE char *t = NULL;
      CLEANUP_FREE char *canon = NULL;
      if (!vmferry_xml_is_elem (m, "machine") || (t = vmferry_xml_text (m)) == NULL)
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
    add (c, VMFERRY_SEV_ERROR, "machine", object, family_pick ? fix : NULL,
         family_pick ? NULL : "no machine type of the same family is offered; "
         "choosing another family changes the guest's hardware",
         "not offered by the destination's emulator for %s (it offers: %s)",
         c->arch ? c->arch : "this arch", offered[0] ? offered : "none");
  }
}

/* ---------------------------------------------------------------- CPU */

static int
compare_cpu (struct ctx *c, const char *xml)
{
  return virConnectCompareHypervisorCPU (c->dest, c->use_emulator, c->arch,
                                         c->machine_ok ? c->machine : NULL,
                                         c->virt, xml,
                                         VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE);
}

static void
check_cpu (struct ctx *c)
{
  xmlNodePtr cpu = vmferry_xml_child (c->root, "cpu");
  xmlNodePtr caps_cpu = c->domcaps ? vmferry_xml_child (xmlDocGetRootElement (c->domcaps), "cpu") : NULL;
  CLEANUP_FREE char *mode = vmferry_xml_attr (cpu, "mode");
  CLEANUP_FREE char *model = vmferry_xml_text (vmferry_xml_child (cpu, "model"));
  xmlBufferPtr buf;
  char why[1024], object[300];
  int r;

  if (cpu == NULL)
    return;
  if (mode == NULL)
    mode = strdup (model ? "custom" : "");
  if (mode && (strcmp (mode, "host-passthrough") == 0 || strcmp (mode, "host-model") == 0 ||
               strcmp (mode, "maximum") == 0)) {
    bool supported = true;
    for (xmlNodePtr m = caps_cpu ? caps_cpu->children : NULL; m; m = m->next)
      if (vmferry_xml_is_elem (m, "mode") && vmferry_xml_attr_eq (m, "name", mode))
        supported = vmferry_xml_attr_eq (m, "supported", "yes");
    snprintf (object, sizeof object, "cpu mode %s", mode);
    if (!supported) {
      const char *fix[] = { "--cpu", "host-model", NULL };
      add (c, VMFERRY_SEV_ERROR, "cpu", object,
           strcmp (mode, "host-model") != 0 ? fix : NULL, NULL,
           "the destination does not support this CPU mode");
    }
    else if (strcmp (mode, "host-passthrough") == 0 || strcmp (mode, "maximum") == 0)
      add (c, VMFERRY_SEV_INFO, "cpu", object, NULL, NULL,
           "the guest will see the destination's CPU, which may differ from "
           "the source's");
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
  snprintf (why, sizeof why, "%s", r < 0 ? virt_msg () : "incompatible");
  snprintf (object, sizeof object, "cpu model %s", model);
  if (r < 0 && virt_code () != VIR_ERR_CPU_INCOMPATIBLE) {
    add (c, VMFERRY_SEV_WARNING, "cpu", object, NULL, NULL,
         "cannot compare with the destination's CPU: %s", why);
    return;
  }

  /* Candidates, best first: the same model without the features it
   * required (a host that lacks a feature), then host-model.
   */
  {
    CLEANUP_FREE char *bare = NULL;
    const char *pick = NULL;
    if (asprintf (&bare, "<cpu mode='custom' match='exact'><model fallback='forbid'>%s"
                  "</model></cpu>", model) > 0 && strchr (model, '<') == NULL &&
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
      add (c, advisory ? VMFERRY_SEV_WARNING : VMFERRY_SEV_ERROR, "cpu", object,
           pick && !advisory ? fix : NULL,
           pick || advisory ? NULL : "choose a CPU model the destination can run "
           "(virsh domcapabilities lists the usable ones)",
           advisory ? "the destination's CPU lacks what the model asks for (%s); "
           "with check='none' QEMU starts it anyway"
           : "the destination's CPU cannot run it: %s", why);
    }
  }
}

/* ---------------------------------------------------------------- networks, bridges */

/* An active network to suggest: "default" if active, else the first
 * active one by name.  Also a list for the message.
 */
static char *
pick_network (struct ctx *c, char *list, size_t len)
{
  virNetworkPtr *nets = NULL;
  int n = virConnectListAllNetworks (c->dest, &nets, VIR_CONNECT_LIST_NETWORKS_ACTIVE);
  char *pick = NULL;
  size_t used = 0;

  list[0] = '\0';
  for (int i = 0; i < n; i++) {
    const char *name = virNetworkGetName (nets[i]);
    used += snprintf (list + used, used < len ? len - used : 0, "%s%s",
                      used ? ", " : "", name);
    if (strcmp (name, "default") == 0 || pick == NULL ||
        (strcmp (pick, "default") != 0 && strcmp (name, pick) < 0)) {
      free (pick);
      pick = strdup (name);
    }
  }
  for (int i = 0; i < n; i++)
    virNetworkFree (nets[i]);
  free (nets);
  return pick;
}

/* Is BR the bridge of an active network of the destination (one in
 * forward mode bridge: a bridge the site chose for guests)?
 */
static bool
network_bridge (struct ctx *c, const char *br)
{
  virNetworkPtr *nets = NULL;
  int n = virConnectListAllNetworks (c->dest, &nets, VIR_CONNECT_LIST_NETWORKS_ACTIVE);
  bool ret = false;

  for (int i = 0; i < n; i++) {
    CLEANUP_FREE char *b = ret ? NULL : virNetworkGetBridgeName (nets[i]);
    if (b && strcmp (b, br) == 0)
      ret = true;
    virNetworkFree (nets[i]);
  }
  free (nets);
  vmferry_clear_error ();
  return ret;
}

/* A host bridge to suggest: one an active network uses, else the first
 * by name that libvirt's networks did not make (virbr*).
 */
static char *
pick_bridge (struct ctx *c, char *list, size_t len)
{
  virInterfacePtr *ifs = NULL;
  int n = virConnectListAllInterfaces (c->dest, &ifs, 0);
  char *pick = NULL;
  bool pick_net = false;
  size_t used = 0;

  list[0] = '\0';
  for (int i = 0; i < n; i++) {
    CLEANUP_FREE char *xml = virInterfaceGetXMLDesc (ifs[i], 0);
    const char *name = virInterfaceGetName (ifs[i]);
    if (xml == NULL || strstr (xml, "type='bridge'") == NULL)
      continue;
    used += snprintf (list + used, used < len ? len - used : 0, "%s%s",
                      used ? ", " : "", name);
    if (strncmp (name, "virbr", 5) != 0) {
      bool net = network_bridge (c, name);
      if (pick == NULL || (net && !pick_net) ||
          (net == pick_net && strcmp (name, pick) < 0)) {
        free (pick);
        pick = strdup (name);
        pick_net = net;
      }
    }
  }
  for (int i = 0; i < n; i++)
    virInterfaceFree (ifs[i]);
  free (ifs);
  return pick;
}

static bool
seen_before (char **seen, size_t n, const char *s)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (seen[i], s) == 0)
      return true;
  return false;
}

static void
check_interfaces (struct ctx *c)
{
  char *seen[256];
  size_t nseen = 0;

  for (xmlNodePtr devs = c->root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      xmlNodePtr src = vmferry_xml_child (n, "source");
      bool net = vmferry_xml_attr_eq (n, "type", "network"), br = vmferry_xml_attr_eq (n, "type", "bridge");
      CLEANUP_FREE char *name = NULL;
      char object[300], list[1024], key[300];

      if (!vmferry_xml_is_elem (n, "interface") || !(net || br) ||
          (name = vmferry_xml_attr (src, net ? "network" : "bridge")) == NULL)
        continue;
      snprintf (key, sizeof key, "%c%s", net ? 'n' : 'b', name);
      if (seen_before (seen, nseen, key) || nseen == 256)
        continue;
      seen[nseen++] = strdup (key);
      if (seen[nseen - 1] == NULL) {
        nseen--;
        c->oom = true;
      }
      snprintf (object, sizeof object, "%s %s", net ? "network" : "bridge", name);

      if (net) {
        virNetworkPtr nw = virNetworkLookupByName (c->dest, name);
        CLEANUP_FREE char *pick = NULL;
        CLEANUP_FREE char *pair = NULL;
        int active = nw ? virNetworkIsActive (nw) : -1;
        if (nw)
          virNetworkFree (nw);
        if (active == 1)
          continue;
        pick = pick_network (c, list, sizeof list);
        if (pick && asprintf (&pair, "%s=%s", name, pick) < 0)
          pair = NULL;
        {
          const char *fix[] = { "--map-network", pair, NULL };
          if (nw == NULL)
            add (c, VMFERRY_SEV_ERROR, "network", object, pair ? fix : NULL,
                 pair ? NULL : "define the network on the destination",
                 "no such network on the destination (its active networks: %s)",
                 list[0] ? list : "none");
          else {
            char hint[300];
            snprintf (hint, sizeof hint, "or start it there: virsh net-start %s", name);
            add (c, VMFERRY_SEV_ERROR, "network", object, pair ? fix : NULL, hint,
                 "the network exists on the destination but is not active");
          }
        }
      }
      else {
        virInterfacePtr ifp = virInterfaceLookupByName (c->dest, name);
        CLEANUP_FREE char *pick = NULL;
        CLEANUP_FREE char *pair = NULL;
        if (ifp) {
          CLEANUP_FREE char *xml = virInterfaceGetXMLDesc (ifp, 0);
          virInterfaceFree (ifp);
          if (xml && strstr (xml, "type='bridge'") == NULL)
            add (c, VMFERRY_SEV_ERROR, "bridge", object, NULL, NULL,
                 "the destination has an interface of this name, but it is not a bridge");
          continue;
        }
        if (virt_code () == VIR_ERR_NO_SUPPORT) {
          add (c, VMFERRY_SEV_WARNING, "bridge", object, NULL, NULL,
               "cannot list the destination's interfaces: %s", virt_msg ());
          continue;
        }
        pick = pick_bridge (c, list, sizeof list);
        if (pick && asprintf (&pair, "%s=%s", name, pick) < 0)
          pair = NULL;
        {
          const char *fix[] = { "--map-bridge", pair, NULL };
          add (c, VMFERRY_SEV_ERROR, "bridge", object, pair ? fix : NULL,
               pair ? NULL : "create the bridge on the destination, or use a network",
               "no such bridge on the destination (its bridges: %s)",
               list[0] ? list : "none");
        }
      }
    }
  }
  for (size_t i = 0; i < nseen; i++)
    free (seen[i]);
}

/* ---------------------------------------------------------------- storage */

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
list_pools (struct ctx *c, struct pool_info **rtn, size_t *n_rtn)
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
    CLEANUP_XMLDOC xmlDocPtr d = xml ? parse_trusted (xml) : NULL;
    if (v && d) {
      xmlNodePtr r = xmlDocGetRootElement (d);
      v[i].name = strdup (virStoragePoolGetName (pools[i]));
      v[i].type = vmferry_xml_attr (r, "type");
      v[i].target = vmferry_xml_text (vmferry_xml_child (vmferry_xml_child (r, "target"), "path"));
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
    if (!(p[i].type && (strcmp (p[i].type, "dir") == 0 || strcmp (p[i].type, "fs") == 0 ||
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

static void
wants_free (struct want *w, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free (w[i].key);
    free (w[i].what);
  }
  free (w);
}

static int
want_add (struct ctx *c, struct want **w, size_t *n, const char *key,
          const char *what, bool carried_default)
{
  struct want *v;
  const struct vmferry_check_input *in = c->in;

  if (key == NULL || *key == '\0')
    return 0;
  for (size_t i = 0; i < *n; i++)
    if (strcmp ((*w)[i].key, key) == 0)
      return 0;
  v = reallocarray (*w, *n + 1, sizeof *v);
  if (v == NULL)
    return -1;
  *w = v;
  v = &v[*n];
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
  for (size_t i = 0; i < in->nr_files; i++)
    if (strcmp (in->files[i].path, key) == 0) {
      v->carried = in->files[i].carried;
      v->must_exist = !v->carried;
      v->allocated = in->files[i].allocated;
      break;
    }
  (void) carried_default;
  (*n)++;
  return 0;
}

static int
gather_files (struct ctx *c, struct want **w_rtn, size_t *n_rtn)
{
  struct want *w = NULL;
  size_t n = 0;
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
      if (key && want_add (c, &w, &n, key, what, true) == -1)
        goto nomem;
    }
  }
  if (os) {
    CLEANUP_FREE char *loader = vmferry_xml_text (vmferry_xml_child (os, "loader"));
    CLEANUP_FREE char *kernel = vmferry_xml_text (vmferry_xml_child (os, "kernel"));
    CLEANUP_FREE char *initrd = vmferry_xml_text (vmferry_xml_child (os, "initrd"));
    CLEANUP_FREE char *tmpl = NULL;
    CLEANUP_FREE char *nvpath = NULL;
    if (loader && *loader == '/') {
      if (want_add (c, &w, &n, loader, "loader", false) == -1)
        goto nomem;
      w[n - 1].is_loader = strcmp (w[n - 1].key, loader) == 0;
    }
    if ((kernel && *kernel == '/' && want_add (c, &w, &n, kernel, "kernel", false) == -1) ||
        (initrd && *initrd == '/' && want_add (c, &w, &n, initrd, "initrd", false) == -1))
      goto nomem;
    if ((nv = vmferry_xml_child (os, "nvram")) != NULL) {
      tmpl = vmferry_xml_attr (nv, "template");
      if (tmpl && *tmpl == '/') {
        if (want_add (c, &w, &n, tmpl, "nvram template", false) == -1)
          goto nomem;
        w[n - 1].is_template = strcmp (w[n - 1].key, tmpl) == 0;
      }
      if (vmferry_xml_attr_eq (nv, "type", "file"))
        nvpath = vmferry_xml_attr (vmferry_xml_child (nv, "source"), "file");
      else if (!xmlHasNsProp (nv, BAD_CAST "type", NULL))
        nvpath = vmferry_xml_text (nv);
      if (nvpath && *nvpath == '/') {
        if (want_add (c, &w, &n, nvpath, "nvram", true) == -1)
          goto nomem;
        /* libvirt makes it from the template when missing. */
        w[n - 1].must_exist = false;
      }
    }
  }
  *w_rtn = w;
  *n_rtn = n;
  return 0;
 nomem:
  wants_free (w, n);
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
open_dir_pool (struct ctx *c, const char *dir, struct pool_info *pools,
               size_t npools, struct dir_look *look, bool *transient)
{
  virStoragePoolPtr p = NULL;
  CLEANUP_FREE char *xml = NULL;
  char name[64];

  *transient = false;
  for (size_t i = 0; i < npools; i++)
    if (pools[i].target && pools[i].name && strcmp (pools[i].target, dir) == 0 &&
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
  snprintf (name, sizeof name, "vmferry-check-%ld-%u", (long) getpid (), c->probe++);
  if (asprintf (&xml, "<pool type='dir'><name>%s</name><target><path>%s</path>"
                "</target></pool>", name, dir) < 0) {
    c->oom = true;
    return NULL;
  }
  p = virStoragePoolCreateXML (c->dest, xml, 0);
  if (p == NULL) {
    snprintf (look->error, sizeof look->error, "%s", virt_msg ());
    return NULL;
  }
  *transient = true;
  return p;
}

static void
look_at_dir (struct ctx *c, virStoragePoolPtr p, struct dir_look *look)
{
  virStoragePoolInfo info;
  char name[64], xml[256];
  virStorageVolPtr v;

  look->exists = true;
  if (virStoragePoolGetInfo (p, &info) == 0) {
    look->have_space = true;
    look->available = info.available;
  }
  snprintf (name, sizeof name, ".vmferry-check-%ld-%u", (long) getpid (), c->probe++);
  snprintf (xml, sizeof xml, "<volume><name>%s</name><capacity>0</capacity>"
            "<target><format type='raw'/></target></volume>", name);
  v = virStorageVolCreateXML (p, xml, 0);
  if (v == NULL) {
    snprintf (look->error, sizeof look->error, "%s", virt_msg ());
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
pending_import (struct ctx *c, virStoragePoolPtr p)
{
  CLEANUP_FREE char *name = vmferry_xml_text (vmferry_xml_child (c->root, "name"));
  CLEANUP_FREE char *state = name ? vmferry_resume_name (name, "json") : NULL;
  virStorageVolPtr v = state ? virStorageVolLookupByName (p, state) : NULL;

  vmferry_clear_error ();
  if (v == NULL)
    return false;
  virStorageVolFree (v);
  return true;
}

static bool
is_leftover (const struct ctx *c, const char *path)
{
  for (size_t i = 0; i < c->in->nr_leftovers; i++)
    if (strcmp (c->in->leftovers[i], path) == 0)
      return true;
  return false;
}

/* A carried file PATH that is already at its place on the destination. */
static void
file_exists (struct ctx *c, const char *object, const char *path, bool pending)
{
  char hint[4400];

  if (pending) {
    add (c, VMFERRY_SEV_WARNING, "path", object, NULL, NULL,
         "already exists on the destination, where an interrupted import of this "
         "domain left its state: the import finishes or undoes that first");
    return;
  }
  if (is_leftover (c, path)) {
    add (c, VMFERRY_SEV_WARNING, "path", object, NULL, NULL,
         "already exists on the destination, made there by an interrupted live "
         "migration of this domain: the migration removes it first");
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
  add (c, VMFERRY_SEV_ERROR, "path", object, NULL, hint,
       "already exists on the destination");
}

/* DIR is where vmferry-migrate --dest-dir puts the files: that option
 * moves them, --map-path does not.
 */
static bool
is_dest_dir (const struct ctx *c, const char *dir)
{
  return c->in->check_for == VMFERRY_CHECK_FOR_MIGRATE && c->in->dest_dir &&
    strcmp (c->in->dest_dir, dir) == 0;
}

static void
check_dir (struct ctx *c, const char *dir, struct want *w, size_t n,
           struct pool_info *pools, size_t npools)
{
  struct dir_look look = { 0 };
  bool transient;
  virStoragePoolPtr p = open_dir_pool (c, dir, pools, npools, &look, &transient);
  const char *target = pick_pool (pools, npools, true);
  uint64_t need = 0;
  bool carried = false;
  char object[4200];

  if (p)
    look_at_dir (c, p, &look);
  snprintf (object, sizeof object, "directory %s", dir);
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *d = dirname_of (w[i].key);
    if (d == NULL || strcmp (d, dir) != 0 || strncmp (w[i].key, "volume:", 7) == 0)
      continue;
    if (w[i].carried) {
      carried = true;
      need += w[i].allocated;
    }
  }

  if (!look.exists) {
    CLEANUP_FREE char *pair = NULL;
    if (carried && target && strcmp (target, dir) != 0 &&
        !is_dest_dir (c, dir) && asprintf (&pair, "%s=%s", dir, target) < 0)
      pair = NULL;
    {
      const char *fix[] = { "--map-path", pair, NULL };
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
        add (c, VMFERRY_SEV_ERROR, "path", object, pair ? fix : NULL, hint,
             "does not exist on the destination, or cannot be used there (%s)",
             look.error);
    }
  }
  else if (carried && !look.writable) {
    CLEANUP_FREE char *pair = NULL;
    if (target && strcmp (target, dir) != 0 && !is_dest_dir (c, dir) &&
        asprintf (&pair, "%s=%s", dir, target) < 0)
      pair = NULL;
    {
      const char *fix[] = { "--map-path", pair, NULL };
      add (c, VMFERRY_SEV_ERROR, "path", object, pair ? fix : NULL,
           is_dest_dir (c, dir) ?
           "give --dest-dir a directory it can write" : NULL,
           "exists on the destination but a file cannot be created in it (%s)",
           look.error);
    }
  }
  else if (carried && look.have_space && need > look.available) {
    add_space (c, object,
               is_dest_dir (c, dir) ? "free space there, or give --dest-dir a "
               "larger directory" : "free space there, or --map-path the files "
               "to a larger directory", "the files", need, look.available);
  }

  /* Each file: carried ones must not be there yet, others must be. */
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *d = dirname_of (w[i].key);
    virStorageVolPtr v;
    char fobject[4300];
    if (d == NULL || strcmp (d, dir) != 0 || strncmp (w[i].key, "volume:", 7) == 0)
      continue;
    if (seen_before (c->refused, c->nrefused, w[i].key))
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
    add (c, VMFERRY_SEV_ERROR, w[i].is_template ? "firmware" : "path", fobject,
         NULL, w[i].is_template ? "install the firmware package there, or "
         "--map-path the template to one it has" :
         "copy it to the destination, or carry it (vmferry-export "
         "--include-readonly)",
         "does not exist on the destination, and does not travel with the domain");
  }
  if (p) {
    if (transient)
      virStoragePoolDestroy (p);
    virStoragePoolFree (p);
  }
}

static void
check_loader (struct ctx *c, const struct want *w, struct pool_info *pools,
              size_t npools)
{
  xmlNodePtr os = c->domcaps ? vmferry_xml_child (vmferry_xml_child (xmlDocGetRootElement (c->domcaps), "os"), "loader") : NULL;
  const char *alt = NULL;
  CLEANUP_FREE char *val = NULL;
  char object[4300];

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
  {
    CLEANUP_FREE char *pair = NULL;
    if (alt && asprintf (&pair, "%s=%s", w->key, alt) < 0)
      pair = NULL;
    {
      const char *fix[] = { "--map-path", pair, NULL };
      char list[2048];
      size_t used = 0;
      list[0] = '\0';
      for (xmlNodePtr v = os->children; v; v = v->next) {
        CLEANUP_FREE char *t = NULL;
        if (vmferry_xml_is_elem (v, "value") && (t = vmferry_xml_text (v)) != NULL)
          used += snprintf (list + used, used < sizeof list ? sizeof list - used : 0,
                            "%s%s", used ? ", " : "", t);
      }
      add (c, VMFERRY_SEV_ERROR, "firmware", object, pair ? fix : NULL,
           pair ? NULL : "install the firmware on the destination",
           "not among the firmware the destination offers (%s)",
           list[0] ? list : "none");
    }
  }
}

static void
check_storage (struct ctx *c)
{
  struct want *w = NULL;
  size_t n = 0, npools = 0;
  struct pool_info *pools = NULL;
  char **dirs = NULL;
  size_t ndirs = 0;

  if (gather_files (c, &w, &n) == -1) {
    c->oom = true;
    return;
  }
  if (list_pools (c, &pools, &npools) == -1) {
    add (c, VMFERRY_SEV_WARNING, "pool", "storage", NULL, NULL,
         "cannot list the destination's storage pools: %s", virt_msg ());
    wants_free (w, n);
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
      if (first) {
        const char *pick = pick_pool (pools, npools, false);
        CLEANUP_FREE char *pair = NULL;
        if (pick && asprintf (&pair, "%s=%s", pool, pick) < 0)
          pair = NULL;
        const char *fix[] = { "--pool", pair, NULL };
        add (c, VMFERRY_SEV_ERROR, "pool", object, pair ? fix : NULL,
             pair ? NULL : "define the pool on the destination",
             "no such storage pool on the destination");
      }
      continue;
    }
    if (virStoragePoolIsActive (p) != 1) {
      char hint[600];
      snprintf (hint, sizeof hint, "start it there: virsh pool-start %s", pool);
      if (first)
        add (c, VMFERRY_SEV_ERROR, "pool", object, NULL, hint,
             "the pool is not active on the destination");
      virStoragePoolFree (p);
      continue;
    }
    virStoragePoolRefresh (p, 0);
    {
      virStorageVolPtr v = virStorageVolLookupByName (p, slash + 1);
      char vobject[700];
      snprintf (vobject, sizeof vobject, "%s volume %s/%s", w[i].what, pool, slash + 1);
      if (v) {
        virStorageVolFree (v);
        if (w[i].carried)
          file_exists (c, vobject, w[i].key, pending_import (c, p));
      }
      else if (w[i].must_exist)
        add (c, VMFERRY_SEV_ERROR, "path", vobject, NULL, NULL,
             "does not exist on the destination, and does not travel with the domain");
    }
    if (first) {
      for (size_t k = i; k < n; k++)
        if (strncmp (w[k].key, w[i].key, slash - w[i].key + 1) == 0 && w[k].carried)
          need += w[k].allocated;
      if (virStoragePoolGetInfo (p, &info) == 0 && need > info.available)
        add_space (c, object,
                   c->in->check_for == VMFERRY_CHECK_FOR_MIGRATE ?
                   "free space in the pool, or give --dest-pool another one" :
                   "free space in the pool, or --pool the disks to another one",
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
    char **v;
    if (strncmp (w[i].key, "volume:", 7) == 0 || w[i].key[0] != '/' ||
        seen_before (c->refused, c->nrefused, w[i].key))
      continue;
    d = dirname_of (w[i].key);
    if (d == NULL || seen_before (dirs, ndirs, d))
      continue;
    v = reallocarray (dirs, ndirs + 1, sizeof *v);
    if (v == NULL) {
      c->oom = true;
      break;
    }
    dirs = v;
    dirs[ndirs++] = d;
    d = NULL;
    check_dir (c, dirs[ndirs - 1], w, n, pools, npools);
  }
  for (size_t i = 0; i < ndirs; i++)
    free (dirs[i]);
  free (dirs);
  pools_free (pools, npools);
  wants_free (w, n);
}

/* ---------------------------------------------------------------- name, UUID, memory */

static void
check_identity (struct ctx *c)
{
  CLEANUP_FREE char *name = vmferry_xml_text (vmferry_xml_child (c->root, "name"));
  CLEANUP_FREE char *uuid = vmferry_xml_text (vmferry_xml_child (c->root, "uuid"));
  virDomainPtr by_name = name ? virDomainLookupByName (c->dest, name) : NULL;
  virDomainPtr by_uuid = uuid ? virDomainLookupByUUIDString (c->dest, uuid) : NULL;
  char object[600];

  if (by_name) {
    CLEANUP_FREE char *newname = NULL;
    if (asprintf (&newname, "%s-copy", name) < 0)
      newname = NULL;
    const char *fix[] = { "--rename", newname, "--new-uuid", "--new-macs", NULL };
    snprintf (object, sizeof object, "domain %s", name);
    /* Only vmferry-import replaces a domain (--force). */
    add (c, VMFERRY_SEV_ERROR, "name", object, newname ? fix : NULL,
         c->in->check_for != VMFERRY_CHECK_FOR_IMPORT ?
         "or, if that one is not needed, undefine it there first" :
         "or replace it: vmferry-import --force (only once the new copy is verified)",
         "a domain of this name is already defined on the destination");
  }
  if (by_uuid && (by_name == NULL || strcmp (virDomainGetName (by_uuid), name) != 0)) {
    const char *fix[] = { "--new-uuid", NULL };
    const char *other = virDomainGetName (by_uuid);
    size_t len = name ? strlen (name) : 0;
    snprintf (object, sizeof object, "uuid %s", uuid);
    /* The definition an import killed before it could rename it: that
     * import's state goes first, with it.
     */
    if (name && strncmp (other, name, len) == 0 &&
        strncmp (other + len, ".vmferry-new-", 13) == 0)
      add (c, VMFERRY_SEV_WARNING, "uuid", object, NULL, NULL,
           "domain %s on the destination has this UUID: an import of this domain "
           "was killed as it defined it; the next import removes it first", other);
    else
      add (c, VMFERRY_SEV_ERROR, "uuid", object, fix, NULL,
           "domain %s on the destination already has this UUID", other);
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
      add (c, VMFERRY_SEV_WARNING, "memory", "memory", NULL, NULL,
           "the domain has %llu KiB, the destination %lu KiB in all", kib,
           info.memory);
  }
}

/* ---------------------------------------------------------------- devices */

static void
check_devices (struct ctx *c)
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
      add (c, VMFERRY_SEV_ERROR, "firmware", object, NULL,
           "install the firmware (e.g. ovmf) on the destination",
           "the destination has no firmware of this kind");
    }
  }

  for (xmlNodePtr devs = c->root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr d = devs->children; d; d = d->next) {
      if (vmferry_xml_is_elem (d, "disk") && cdev) {
        CLEANUP_FREE char *bus = vmferry_xml_attr (vmferry_xml_child (d, "target"), "bus");
        CLEANUP_FREE char *dev = vmferry_xml_attr (vmferry_xml_child (d, "target"), "dev");
        if (bus && enum_has (vmferry_xml_child (cdev, "disk"), "bus", bus) == 0) {
          CLEANUP_FREE char *pair = NULL;
          const char *nb = enum_has (vmferry_xml_child (cdev, "disk"), "bus", "virtio") == 1 ? "virtio" : NULL;
          if (nb && asprintf (&pair, "%s=%s", bus, nb) < 0)
            pair = NULL;
          const char *fix[] = { "--disk-bus", pair, NULL };
          enum_list (vmferry_xml_child (cdev, "disk"), "bus", list, sizeof list);
          snprintf (object, sizeof object, "disk %s bus %s", dev ? dev : "?", bus);
          add (c, VMFERRY_SEV_ERROR, "device", object, pair ? fix : NULL, NULL,
               "the destination does not support this disk bus (it has: %s)", list);
        }
      }
      else if (vmferry_xml_is_elem (d, "graphics") && cdev) {
        CLEANUP_FREE char *type = vmferry_xml_attr (d, "type");
        if (type && enum_has (vmferry_xml_child (cdev, "graphics"), "type", type) == 0) {
          const char *fix[] = { "--drop-device", "graphics", NULL };
          snprintf (object, sizeof object, "graphics %s", type);
          enum_list (vmferry_xml_child (cdev, "graphics"), "type", list, sizeof list);
          add (c, VMFERRY_SEV_ERROR, "device", object, fix, NULL,
               "the destination does not support this graphics type (it has: %s)", list);
        }
      }
      else if (vmferry_xml_is_elem (d, "video") && cdev) {
        CLEANUP_FREE char *type = vmferry_xml_attr (vmferry_xml_child (d, "model"), "type");
        if (type && enum_has (vmferry_xml_child (cdev, "video"), "modelType", type) == 0) {
          snprintf (object, sizeof object, "video %s", type);
          enum_list (vmferry_xml_child (cdev, "video"), "modelType", list, sizeof list);
          add (c, VMFERRY_SEV_ERROR, "device", object, NULL,
               "change the video model", "the destination does not support this "
               "video model (it has: %s)", list);
        }
      }
      else if (vmferry_xml_is_elem (d, "tpm") && cdev) {
        CLEANUP_FREE char *bt = vmferry_xml_attr (vmferry_xml_child (d, "backend"), "type");
        xmlNodePtr t = vmferry_xml_child (cdev, "tpm");
        if (bt && t && (!vmferry_xml_attr_eq (t, "supported", "yes") ||
                        enum_has (t, "backendModel", bt) == 0)) {
          const char *fix[] = { "--drop-device", "tpm", NULL };
          snprintf (object, sizeof object, "tpm backend %s", bt);
          add (c, VMFERRY_SEV_ERROR, "device", object, fix,
               "or install swtpm on the destination",
               "the destination does not support this TPM backend");
        }
      }
      else if (vmferry_xml_is_elem (d, "hostdev")) {
        const char *fix[] = { "--drop-device", "hostdev", NULL };
        xmlNodePtr addr = vmferry_xml_child (vmferry_xml_child (d, "source"), "address");
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
            add (c, VMFERRY_SEV_ERROR, "device", object, fix, NULL,
                 "no such PCI device on the destination");
          else {
            virNodeDeviceFree (nd);
            add (c, VMFERRY_SEV_WARNING, "device", object, fix, NULL,
                 "a PCI device at this address exists on the destination, but "
                 "passthrough ties the domain to one host's hardware: make sure "
                 "it is the same kind of device and free");
          }
        }
        else if (!hostdev_seen) {
          snprintf (object, sizeof object, "hostdev %s", type ? type : "");
          add (c, VMFERRY_SEV_WARNING, "device", object, fix, NULL,
               "host device passthrough ties the domain to one host's hardware; "
               "vmferry cannot check this kind on the destination");
        }
        hostdev_seen = true;
      }
    }
  }
}

/* ---------------------------------------------------------------- host references */

/* What a kind's reference can be fixed with besides --allow-path. */
static const char *
ref_remedy (const struct vmferry_ref *r)
{
  switch (r->kind) {
  case VMFERRY_REF_DISK:
    return "carry it (vmferry-export --include-readonly), or point it at a "
      "file the destination has (vmferry-rewrite --map-path OLD=NEW)";
  case VMFERRY_REF_LOADER:
  case VMFERRY_REF_NVRAM:
  case VMFERRY_REF_NVRAM_TEMPLATE:
  case VMFERRY_REF_BOOT_FILE:
    return "point it at a file the destination has (vmferry-rewrite "
      "--map-path OLD=NEW), or remove it from the definition";
  case VMFERRY_REF_HOST_DEVICE:
  case VMFERRY_REF_SHMEM:
    return "remove the device (vmferry-rewrite --drop-device KIND)";
  default:
    return "remove it from the definition";
  }
}

/* Every host resource the domain refers to must travel with it or be
 * allowed by name (lib/refs.h): what an import with the same
 * --allow-path values would refuse to define.
 */
static void
check_refs (struct ctx *c)
{
  const struct vmferry_check_input *in = c->in;
  struct vmferry_ref *refs = NULL;
  struct vmferry_ref_finding *f = NULL;
  struct vmferry_refs_carried *carried = NULL;
  size_t n = 0, nf = 0, ncarried = 0;
  struct vmferry_refs_policy p = { 0 };

  if (vmferry_domain_refs (in->doc, &refs, &n) == -1) {
    c->oom = true;
    return;
  }
  carried = calloc (in->nr_files + 1, sizeof *carried);
  if (carried == NULL) {
    c->oom = true;
    goto out;
  }
  for (size_t i = 0; i < in->nr_files; i++)
    if (in->files[i].carried) {
      carried[ncarried].path = in->files[i].path;
      carried[ncarried++].format = in->files[i].format;
    }
  p.carried = carried;
  p.n_carried = ncarried;
  p.allow = (const char *const *) in->allow;
  p.n_allow = in->nr_allow;
  p.emulators = (const char *const *) c->emulators;
  p.n_emulators = c->nemulators;
  p.have_emulators = c->have_emulators;
  if (vmferry_refs_check (refs, n, &p, &f, &nf) == -1) {
    c->oom = true;
    goto out;
  }
  for (size_t i = 0; i < nf; i++) {
    const struct vmferry_ref *r = &refs[f[i].ref];
    CLEANUP_FREE char *object = NULL;
    CLEANUP_FREE char *hint = NULL;
    const char *why = f[i].message + f[i].subject_len + 2;
    size_t wlen = strlen (r->where);
    CLEANUP_FREE char *shown = NULL;

    /* The emulator check said it already, with the same rule. */
    if (f[i].reason == VMFERRY_REF_UNKNOWN_EMULATOR && c->have_emulators)
      continue;

    /* The message starts with the object: say it once. */
    object = strndup (f[i].message, f[i].subject_len);
    /* The value as the message shows it (no control bytes), for hints. */
    shown = strndup (f[i].message + wlen + 1, f[i].subject_len - wlen - 1);
    if (object == NULL || shown == NULL) {
      c->oom = true;
      break;
    }
    switch (f[i].reason) {
    case VMFERRY_REF_NOT_NORMAL:
      hint = strdup ("write it as an absolute path without '.', '..' or "
                     "'//' (vmferry-rewrite --map-path OLD=NEW)");
      break;
    case VMFERRY_REF_FORMAT_MISMATCH:
      hint = strdup ("the stream contradicts itself: export it again");
      break;
    case VMFERRY_REF_UNKNOWN_EMULATOR:
      if (asprintf (&hint, "%s%s%sor run this one anyway: --allow-path %s",
                    c->default_emulator ? "use the destination's: "
                    "vmferry-rewrite --emulator " : "",
                    c->default_emulator ? c->default_emulator : "",
                    c->default_emulator ? "; " : "", shown) < 0)
        hint = NULL;
      break;
    default:
      if (asprintf (&hint, "%s; or, if the destination's own is meant: "
                    "--allow-path %s", ref_remedy (r), shown) < 0)
        hint = NULL;
      break;
    }
    if (hint == NULL) {
      c->oom = true;
      break;
    }
    add (c, VMFERRY_SEV_ERROR, "reference", object, NULL, hint, "%s", why);
    if (r->is_path && f[i].reason != VMFERRY_REF_FORMAT_MISMATCH) {
      char **v = reallocarray (c->refused, c->nrefused + 1, sizeof *v);
      if (v == NULL || (v[c->nrefused] = strdup (r->value)) == NULL) {
        if (v)
          c->refused = v;
        c->oom = true;
        break;
      }
      c->refused = v;
      c->nrefused++;
    }
  }
 out:
  vmferry_ref_findings_free (f, nf);
  vmferry_refs_free (refs, n);
  free (carried);
}

/* ---------------------------------------------------------------- run */

int
vmferry_check (virConnectPtr dest, const struct vmferry_check_input *in,
               struct vmferry_findings *findings_rtn)
{
  struct ctx c = { .dest = dest, .in = in, .out = findings_rtn };
  xmlNodePtr type;
  int ret = -1;

  findings_rtn->v = NULL;
  findings_rtn->n = 0;
  findings_rtn->check_for = in ? in->check_for : VMFERRY_CHECK_FOR_IMPORT;
  if (dest == NULL || in == NULL || in->doc == NULL ||
      (c.root = xmlDocGetRootElement (in->doc)) == NULL) {
    vmferry_set_error_errno (EINVAL, "check: nothing to check");
    return -1;
  }
  /* A destination that does not answer is not a finding: nothing ran. */
  if (virConnectIsAlive (dest) != 1) {
    vmferry_virt_error ("destination: the connection is not alive");
    return -1;
  }
  type = vmferry_xml_child (vmferry_xml_child (c.root, "os"), "type");
  c.arch = vmferry_xml_attr (type, "arch");
  c.machine = vmferry_xml_attr (type, "machine");
  c.virt = vmferry_xml_attr (c.root, "type");
  c.emulator = vmferry_xml_text (vmferry_xml_child (vmferry_xml_child (c.root, "devices"), "emulator"));
  if (c.emulator && *c.emulator == '\0') {
    free (c.emulator);
    c.emulator = NULL;
  }

  if (vmferry_refs_host_emulators (dest, &c.emulators, &c.nemulators) == 0)
    c.have_emulators = true;
  else
    vmferry_clear_error ();
  check_type_and_emulator (&c);
  check_machine (&c);
  if (c.use_emulator)
    c.domcaps = get_domcaps (&c, c.use_emulator, c.machine_ok ? c.machine : NULL);
  check_cpu (&c);
  check_interfaces (&c);
  check_refs (&c);
  check_storage (&c);
  check_identity (&c);
  check_devices (&c);

  if (c.oom) {
    vmferry_set_error_errno (ENOMEM, "check");
    vmferry_findings_free (findings_rtn);
    goto out;
  }
  ret = 0;
 out:
  free (c.arch);
  free (c.machine);
  free (c.virt);
  free (c.emulator);
  free (c.use_emulator);
  free (c.default_emulator);
  for (size_t i = 0; i < c.nrefused; i++)
    free (c.refused[i]);
  free (c.refused);
  vmferry_strv_free (c.emulators);
  if (c.domcaps)
    xmlFreeDoc (c.domcaps);
  return ret;
}

/* ---------------------------------------------------------------- input */

void
vmferry_check_input_free (struct vmferry_check_input *in)
{
  if (in == NULL)
    return;
  if (in->doc)
    xmlFreeDoc (in->doc);
  free (in->name);
  for (size_t i = 0; i < in->nr_files; i++) {
    free (in->files[i].path);
    free (in->files[i].format);
  }
  free (in->files);
  for (size_t i = 0; i < in->nr_allow; i++)
    free (in->allow[i]);
  free (in->allow);
  memset (in, 0, sizeof *in);
}

int
vmferry_check_input_allow (struct vmferry_check_input *in, const char *value)
{
  char **v;

  if (vmferry_refs_allow_valid (value) == -1)
    return -1;
  v = reallocarray (in->allow, in->nr_allow + 1, sizeof *v);
  if (v == NULL || (v[in->nr_allow] = strdup (value)) == NULL) {
    if (v)
      in->allow = v;
    vmferry_set_error_errno (ENOMEM, "--allow-path");
    return -1;
  }
  in->allow = v;
  in->nr_allow++;
  return 0;
}

static int
add_file (struct vmferry_check_input *in, const char *path, uint64_t allocated,
          bool carried, const char *format)
{
  struct vmferry_check_file *v = reallocarray (in->files, in->nr_files + 1, sizeof *v);

  if (v == NULL)
    return -1;
  in->files = v;
  v = &v[in->nr_files];
  memset (v, 0, sizeof *v);
  v->path = strdup (path);
  if (v->path == NULL)
    return -1;
  if (format && (v->format = strdup (format)) == NULL) {
    free (v->path);
    return -1;
  }
  v->allocated = allocated;
  v->carried = carried;
  in->nr_files++;
  return 0;
}

static ssize_t
read_full (int fd, void *buf, size_t len)
{
  size_t got = 0;

  while (got < len) {
    ssize_t r = read (fd, (char *) buf + got, len - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    got += r;
  }
  return got;
}

/* Files from a manifest: by source_path, or pool/volume. */
static int
files_from_manifest (struct vmferry_check_input *in, const char *json, size_t len)
{
  json_tokener *tok = json_tokener_new_ex (32);
  json_object *m = NULL, *files;
  int ret = -1;

  if (tok == NULL)
    return -1;
  m = json_tokener_parse_ex (tok, json, (int) len);
  if (m == NULL || json_tokener_get_error (tok) != json_tokener_success ||
      !json_object_object_get_ex (m, "files", &files) ||
      !json_object_is_type (files, json_type_array)) {
    vmferry_set_error ("%s: manifest: not a vmferry manifest", in->name);
    goto out;
  }
  for (size_t i = 0; i < json_object_array_length (files) && i < VMFERRY_MAX_FILES; i++) {
    json_object *f = json_object_array_get_idx (files, i), *v;
    const char *src = NULL, *pool = NULL, *vol = NULL, *role = NULL;
    const char *format = NULL;
    uint64_t alloc = 0;
    CLEANUP_FREE char *key = NULL;
    if (json_object_object_get_ex (f, "role", &v))
      role = json_object_get_string (v);
    if (json_object_object_get_ex (f, "source_path", &v))
      src = json_object_get_string (v);
    if (json_object_object_get_ex (f, "pool", &v))
      pool = json_object_get_string (v);
    if (json_object_object_get_ex (f, "volume", &v))
      vol = json_object_get_string (v);
    if (json_object_object_get_ex (f, "allocated", &v))
      alloc = json_object_get_uint64 (v);
    if (json_object_object_get_ex (f, "format", &v))
      format = json_object_get_string (v);
    if (role && strcmp (role, "tpm") == 0)
      continue;
    if (pool && vol) {
      if (asprintf (&key, "volume:%s/%s", pool, vol) < 0)
        goto nomem;
    }
    else if (src && (key = strdup (src)) == NULL)
      goto nomem;
    if (key && add_file (in, key, alloc, true, format) == -1)
      goto nomem;
  }
  ret = 0;
  goto out;
 nomem:
  vmferry_set_error_errno (ENOMEM, "%s", in->name);
 out:
  json_object_put (m);
  json_tokener_free (tok);
  return ret;
}

/* The first records of a stream: header, manifest, domain XML.  PREFIX
 * holds bytes already read from FD.
 */
static int
load_stream (struct vmferry_check_input *in, int fd, const unsigned char *prefix,
             size_t plen)
{
  CLEANUP_FREE char *manifest = NULL;
  size_t mlen = 0;
  unsigned char *payload = NULL;
  int ret = -1;

  for (uint64_t seq = 0; seq < 64; seq++) {
    unsigned char hdr[VMFERRY_REC_HEADER_SIZE];
    struct vmferry_record rec;
    size_t have = 0;
    ssize_t r;

    if (plen) {
      have = plen < sizeof hdr ? plen : sizeof hdr;
      memcpy (hdr, prefix, have);
      prefix += have;
      plen -= have;
    }
    r = read_full (fd, hdr + have, sizeof hdr - have);
    if (r < 0 || have + r < sizeof hdr) {
      vmferry_set_error ("%s: truncated before the domain XML", in->name);
      goto out;
    }
    if (vmferry_record_decode_header (hdr, &rec) < 0) {
      vmferry_prefix_error ("%s: record %" PRIu64, in->name, seq);
      goto out;
    }
    free (payload);
    payload = malloc (rec.payload_len ? rec.payload_len : 1);
    if (payload == NULL) {
      vmferry_set_error_errno (errno, "%s", in->name);
      goto out;
    }
    r = read_full (fd, payload, rec.payload_len);
    if (r < 0 || (size_t) r < rec.payload_len) {
      vmferry_set_error ("%s: truncated before the domain XML", in->name);
      goto out;
    }
    if (vmferry_record_checksum (hdr, payload, rec.payload_len) != rec.checksum ||
        rec.seq != seq) {
      vmferry_set_error ("%s: record %" PRIu64 ": checksum mismatch or bad number",
                         in->name, seq);
      goto out;
    }
    rec.payload = payload;
    if (seq == 0) {
      if (rec.type != VMFERRY_REC_STREAM_HEADER ||
          vmferry_stream_parse_header (payload, rec.payload_len, NULL, NULL) < 0) {
        if (rec.type != VMFERRY_REC_STREAM_HEADER)
          vmferry_set_error ("%s: does not start with a stream header", in->name);
        else
          vmferry_prefix_error ("%s", in->name);
        goto out;
      }
      continue;
    }
    if (rec.type == VMFERRY_REC_MANIFEST) {
      manifest = vmferry_record_metadata (&rec, payload, &mlen);
      if (manifest == NULL) {
        vmferry_prefix_error ("%s", in->name);
        goto out;
      }
    }
    else if (rec.type == VMFERRY_REC_DOMAIN_XML) {
      size_t len;
      CLEANUP_FREE char *xml = vmferry_record_metadata (&rec, payload, &len);
      if (xml == NULL) {
        vmferry_prefix_error ("%s", in->name);
        goto out;
      }
      if (manifest == NULL) {
        vmferry_set_error ("%s: the domain XML came before the manifest", in->name);
        goto out;
      }
      in->doc = vmferry_domain_parse (xml, len, "domain XML in the stream");
      if (in->doc == NULL || files_from_manifest (in, manifest, mlen) == -1)
        goto out;
      ret = 0;
      goto out;
    }
    else if (!(rec.flags & VMFERRY_REC_F_SKIPPABLE)) {
      vmferry_set_error ("%s: record %" PRIu64 " (%s) before the domain XML",
                         in->name, seq, vmferry_record_type_name (rec.type));
      goto out;
    }
  }
  vmferry_set_error ("%s: no domain XML in the first 64 records", in->name);
 out:
  free (payload);
  return ret;
}

/* Would export carry this disk?  (Not read-only, shareable, CD-ROM or
 * floppy.)
 */
static bool
carried_disk (xmlNodePtr d)
{
  CLEANUP_FREE char *dev = vmferry_xml_attr (d, "device");

  return !(dev && (strcmp (dev, "cdrom") == 0 || strcmp (dev, "floppy") == 0)) &&
    vmferry_xml_child (d, "readonly") == NULL && vmferry_xml_child (d, "shareable") == NULL;
}

/* Files of a bare XML or a domain: sizes from FN (NULL: stat here). */
static int
files_from_xml (struct vmferry_check_input *in, virDomainPtr dom)
{
  xmlNodePtr root = xmlDocGetRootElement (in->doc);
  xmlNodePtr os = vmferry_xml_child (root, "os"), nv = vmferry_xml_child (os, "nvram");

  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr d = devs->children; d; d = d->next) {
      CLEANUP_FREE char *type = NULL;
      CLEANUP_FREE char *path = NULL;
      uint64_t alloc = 0;
      if (!vmferry_xml_is_elem (d, "disk"))
        continue;
      type = vmferry_xml_attr (d, "type");
      if (type == NULL || strcmp (type, "file") == 0)
        path = vmferry_xml_attr (vmferry_xml_child (d, "source"), "file");
      else if (strcmp (type, "block") == 0)
        path = vmferry_xml_attr (vmferry_xml_child (d, "source"), "dev");
      if (path == NULL || *path != '/')
        continue;
      if (dom) {
        virDomainBlockInfo bi;
        if (virDomainGetBlockInfo (dom, path, &bi, 0) == 0)
          alloc = bi.allocation;
      }
      else {
        struct stat st;
        if (stat (path, &st) == 0)
          alloc = (uint64_t) st.st_blocks * 512;
      }
      if (add_file (in, path, alloc, carried_disk (d), NULL) == -1)
        return -1;
    }
  }
  if (nv) {
    CLEANUP_FREE char *path = vmferry_xml_attr_eq (nv, "type", "file")
      ? vmferry_xml_attr (vmferry_xml_child (nv, "source"), "file")
      : xmlHasNsProp (nv, BAD_CAST "type", NULL) ? NULL : vmferry_xml_text (nv);
    if (path && *path == '/' && add_file (in, path, 540672, true, NULL) == -1)
      return -1;
  }
  return 0;
}

int
vmferry_check_input_load (const char *what, const char *source_uri,
                          struct vmferry_check_input *in)
{
  struct stat st;

  memset (in, 0, sizeof *in);
  if (what == NULL) {
    vmferry_set_error_errno (EINVAL, "check: nothing to check");
    return -1;
  }
  if (strcmp (what, "-") == 0 || (strchr (what, '/') && stat (what, &st) == 0) ||
      (stat (what, &st) == 0 && S_ISREG (st.st_mode))) {
    CLEANUP_CLOSE int fd = strcmp (what, "-") == 0 ? dup (STDIN_FILENO)
      : open (what, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    unsigned char first[4];
    ssize_t n;

    in->name = strdup (strcmp (what, "-") == 0 ? "stdin" : what);
    if (in->name == NULL) {
      vmferry_set_error_errno (ENOMEM, "check");
      return -1;
    }
    if (fd < 0) {
      vmferry_set_error_errno (errno, "%s: cannot open", in->name);
      goto fail;
    }
    n = read_full (fd, first, sizeof first);
    if (n < 0) {
      vmferry_set_error_errno (errno, "%s: read", in->name);
      goto fail;
    }
    if (n == 4 && memcmp (first, VMFERRY_REC_MAGIC, 4) == 0) {
      if (load_stream (in, fd, first, 4) == -1)
        goto fail;
      return 0;
    }
    /* Otherwise domain XML, read whole (bounded) and parsed safely. */
    {
      CLEANUP_FREE char *buf = malloc (VMFERRY_DOMAIN_MAX_SIZE + 1);
      size_t len = n;
      ssize_t r;
      if (buf == NULL) {
        vmferry_set_error_errno (errno, "%s", in->name);
        goto fail;
      }
      memcpy (buf, first, n);
      r = read_full (fd, buf + len, VMFERRY_DOMAIN_MAX_SIZE + 1 - len);
      if (r < 0) {
        vmferry_set_error_errno (errno, "%s: read", in->name);
        goto fail;
      }
      len += r;
      if (len > VMFERRY_DOMAIN_MAX_SIZE) {
        vmferry_set_error ("%s: neither a vmferry stream nor domain XML of at "
                           "most %d MiB", in->name, VMFERRY_DOMAIN_MAX_SIZE >> 20);
        goto fail;
      }
      in->doc = vmferry_domain_parse (buf, len, in->name);
      if (in->doc == NULL || files_from_xml (in, NULL) == -1)
        goto fail;
      return 0;
    }
  }

  /* A domain on the source host, read as export reads it. */
  {
    CLEANUP_VIR_CONNECT virConnectPtr src = vmferry_virt_connect (source_uri);
    CLEANUP_VIR_DOMAIN virDomainPtr dom = NULL;
    CLEANUP_FREE char *xml = NULL;

    in->name = strdup (what);
    if (src == NULL || in->name == NULL)
      goto fail;
    dom = vmferry_virt_lookup_domain (src, what);
    if (dom == NULL)
      goto fail;
    xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE |
                               VIR_DOMAIN_XML_MIGRATABLE);
    if (xml == NULL) {
      vmferry_virt_error ("domain %s: cannot read its XML", what);
      goto fail;
    }
    in->doc = vmferry_domain_parse (xml, strlen (xml), what);
    if (in->doc == NULL || files_from_xml (in, dom) == -1)
      goto fail;
    return 0;
  }
 fail:
  vmferry_check_input_free (in);
  return -1;
}

/* ---------------------------------------------------------------- output */

/* A word as the shell would need it. */
static void
print_word (FILE *out, const char *w)
{
  bool plain = *w != '\0';

  for (const char *p = w; *p; p++)
    if (!(isalnum ((unsigned char) *p) || strchr ("-_./=:,+@%", *p)))
      plain = false;
  if (plain) {
    fputs (w, out);
    return;
  }
  fputc ('\'', out);
  for (const char *p = w; *p; p++) {
    if (*p == '\'')
      fputs ("'\\''", out);
    else
      fputc (*p, out);
  }
  fputc ('\'', out);
}

int
vmferry_findings_print (const struct vmferry_findings *f, FILE *out, bool json,
                        const char *dest_uri, const char *domain)
{
  size_t counts[3] = { 0 };

  for (size_t i = 0; i < f->n; i++)
    counts[f->v[i].severity >= 0 && f->v[i].severity <= 2 ? f->v[i].severity : 0]++;

  if (json) {
    json_object *o = json_object_new_object (), *arr = json_object_new_array ();
    json_object *all = json_object_new_array ();
    if (!o || !arr || !all) {
      json_object_put (o);
      json_object_put (arr);
      json_object_put (all);
      vmferry_set_error_errno (ENOMEM, "check output");
      return -1;
    }
    json_object_object_add (o, "format",
                            json_object_new_string (VMFERRY_CHECK_JSON_FORMAT));
    json_object_object_add (o, "destination", json_object_new_string (dest_uri ? dest_uri : ""));
    json_object_object_add (o, "domain", json_object_new_string (domain ? domain : ""));
    json_object_object_add (o, "ok", json_object_new_boolean (!vmferry_findings_blocking (f)));
    json_object_object_add (o, "errors", json_object_new_int ((int) counts[2]));
    json_object_object_add (o, "warnings", json_object_new_int ((int) counts[1]));
    for (size_t i = 0; i < f->n; i++) {
      const struct vmferry_finding *x = &f->v[i];
      json_object *e = json_object_new_object ();
      json_object_object_add (e, "severity", json_object_new_string (vmferry_severity_name (x->severity)));
      json_object_object_add (e, "check", json_object_new_string (x->check));
      json_object_object_add (e, "object", json_object_new_string (x->object));
      json_object_object_add (e, "message", json_object_new_string (x->message));
      if (x->fix) {
        json_object *fa = json_object_new_array ();
        for (size_t k = 0; x->fix[k]; k++) {
          json_object_array_add (fa, json_object_new_string (x->fix[k]));
          json_object_array_add (all, json_object_new_string (x->fix[k]));
        }
        json_object_object_add (e, "fix", fa);
      }
      else
        json_object_object_add (e, "fix", NULL);
      json_object_object_add (e, "hint", x->hint ? json_object_new_string (x->hint) : NULL);
      if (x->check && strcmp (x->check, "space") == 0) {
        json_object_object_add (e, "need_bytes",
                                json_object_new_uint64 (x->need));
        json_object_object_add (e, "free_bytes",
                                json_object_new_uint64 (x->available));
      }
      json_object_array_add (arr, e);
    }
    json_object_object_add (o, "findings", arr);
    json_object_object_add (o, "fix", all);
    fprintf (out, "%s\n", json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY |
                                                        JSON_C_TO_STRING_SPACED |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put (o);
  }
  else {
    bool any_fix = false;
    for (size_t i = 0; i < f->n; i++) {
      const struct vmferry_finding *x = &f->v[i];
      fprintf (out, "%s: %s: %s: %s\n", vmferry_severity_name (x->severity),
               x->check, x->object, x->message);
      if (x->fix) {
        /* vmferry-migrate takes the rewrite options itself. */
        fputs (f->check_for == VMFERRY_CHECK_FOR_IMPORT ?
               "  fix: vmferry-rewrite" : "  fix: add", out);
        for (size_t k = 0; x->fix[k]; k++) {
          fputc (' ', out);
          print_word (out, x->fix[k]);
        }
        fputc ('\n', out);
        any_fix = true;
      }
      if (x->hint)
        fprintf (out, "  %s%s\n", x->fix ? "" : "fix: ", x->hint);
    }
    if (!vmferry_findings_blocking (f))
      fprintf (out, "ok: %s can be defined and started on %s (%zu warning%s)\n",
               domain ? domain : "the domain", dest_uri ? dest_uri : "the destination",
               counts[1], counts[1] == 1 ? "" : "s");
    else {
      fprintf (out, "blocked: %zu error%s, %zu warning%s: %s cannot run on %s as it is\n",
               counts[2], counts[2] == 1 ? "" : "s", counts[1], counts[1] == 1 ? "" : "s",
               domain ? domain : "the domain", dest_uri ? dest_uri : "the destination");
      if (any_fix) {
        fputs (f->check_for == VMFERRY_CHECK_FOR_IMPORT ?
               "rewrite with: vmferry-rewrite" : "add to the command:", out);
        for (size_t i = 0; i < f->n; i++)
          for (size_t k = 0; f->v[i].fix && f->v[i].fix[k]; k++) {
            fputc (' ', out);
            print_word (out, f->v[i].fix[k]);
          }
        fputc ('\n', out);
      }
    }
  }
  if (fflush (out) == EOF || ferror (out)) {
    vmferry_set_error_errno (errno, "cannot write the findings");
    return -1;
  }
  return 0;
}
