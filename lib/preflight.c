/* vmferry: pre-flight check of a domain against a destination (see
 * preflight.h).
 *
 * Each check asks the destination's libvirtd and adds findings; none
 * stops the others, so one run lists everything to fix.  Fixes are
 * concrete where the destination tells us the value (its emulator, its
 * machine type, an active network, a pool directory), so that applying
 * them with vmferry-rewrite needs no further choice.  The checks have
 * their files: preflight-machine.c, -network.c, -storage.c, -domain.c,
 * -refs.c; the input comes from preflight-input.c and the findings are
 * printed by preflight-output.c.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>
#include <libxml/tree.h>

#include "cleanup.h"
#include "error.h"
#include "preflight-int.h"
#include "preflight.h"
#include "progress.h"
#include "refs.h"
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
  for (size_t i = 0; i < f->list.len; i++) {
    free (f->list.ptr[i].check);
    free (f->list.ptr[i].object);
    free (f->list.ptr[i].message);
    vmferry_strv_free (f->list.ptr[i].fix);
    free (f->list.ptr[i].hint);
  }
  vmferry_finding_vector_reset (&f->list);
}

bool
vmferry_findings_blocking (const struct vmferry_findings *f)
{
  for (size_t i = 0; i < f->list.len; i++)
    if (f->list.ptr[i].severity == VMFERRY_SEV_ERROR)
      return true;
  return false;
}

static void
add_v (struct preflight *c, int sev, const char *check, const char *object,
       const char *const *fix, const char *hint, const char *fs,
       va_list args)
{
  struct vmferry_finding *f;
  size_t nfix = 0;

  if (c->oom)
    return;
  if (vmferry_finding_vector_reserve (&c->out->list, 1) == -1) {
    c->oom = true;
    return;
  }
  f = &c->out->list.ptr[c->out->list.len];
  memset (f, 0, sizeof *f);
  f->severity = sev;
  f->check = strdup (check);
  f->object = strdup (object);
  if (vasprintf (&f->message, fs, args) < 0)
    f->message = NULL;
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
  c->out->list.len++;
  if (!f->check || !f->object || !f->message || (hint && !f->hint) ||
      (fix && !f->fix))
    c->oom = true;
}

/* Add a finding.  FIX: NULL-terminated words (copied), or NULL. */
void
vmferry_preflight_add (struct preflight *c, int sev, const char *check,
                       const char *object, const char *const *fix,
                       const char *hint, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  add_v (c, sev, check, object, fix, hint, fs, args);
  va_end (args);
}

/* An error that vmferry-rewrite's OPTION OLD=PICK fixes when PICK is not
 * NULL: then with that fix and HINT, else (also when memory for the pair
 * runs out) with no fix and NO_PICK for the hint.
 */
void
vmferry_preflight_add_pick (struct preflight *c, const char *check,
                            const char *object, const char *option,
                            const char *old, const char *pick,
                            const char *hint, const char *no_pick,
                            const char *fs, ...)
{
  CLEANUP_FREE char *pair = NULL;
  const char *fix[] = { option, NULL, NULL };
  va_list args;

  if (pick && asprintf (&pair, "%s=%s", old, pick) < 0)
    pair = NULL;
  fix[1] = pair;
  va_start (args, fs);
  add_v (c, VMFERRY_SEV_ERROR, check, object, pair ? fix : NULL,
         pair ? hint : no_pick, fs, args);
  va_end (args);
}

/* A "space" error: WHAT ("the files", "the volumes") need NEED bytes
 * where AVAILABLE are free.  Rounded in the message, exact in the JSON.
 */
void
vmferry_preflight_add_space (struct preflight *c, const char *object,
                             const char *hint, const char *what,
                             uint64_t need, uint64_t available)
{
  char a[32], b[32];

  vmferry_human_size (need, a, sizeof a);
  vmferry_human_size (available, b, sizeof b);
  vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "space", object, NULL, hint,
                         "%s need %s, %s %s free", what, a, b,
                         available >= 1024 ? "are" : "is");
  if (!c->oom) {
    c->out->list.ptr[c->out->list.len - 1].need = need;
    c->out->list.ptr[c->out->list.len - 1].available = available;
  }
}

/* libvirt's last error message, one line. */
const char *
vmferry_preflight_virt_msg (void)
{
  virErrorPtr e = virGetLastError ();

  return e && e->message ? e->message : "unknown libvirt error";
}

int
vmferry_preflight_virt_code (void)
{
  virErrorPtr e = virGetLastError ();

  return e ? e->code : 0;
}

/* ---------------------------------------------------------------- run */

int
vmferry_check (virConnectPtr dest, const struct vmferry_check_input *in,
               struct vmferry_findings *findings_rtn)
{
  struct preflight c = { .dest = dest, .in = in, .out = findings_rtn };
  xmlNodePtr type, devices;
  int ret = -1;

  findings_rtn->list = (struct vmferry_finding_vector) VECTOR_INIT;
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
  devices = vmferry_xml_child (c.root, "devices");
  c.emulator = vmferry_xml_text (vmferry_xml_child (devices, "emulator"));
  if (c.emulator && *c.emulator == '\0') {
    free (c.emulator);
    c.emulator = NULL;
  }

  if (vmferry_refs_host_emulators (dest, &c.emulators, &c.nemulators) == 0)
    c.have_emulators = true;
  else
    vmferry_clear_error ();
  vmferry_preflight_type_and_emulator (&c);
  vmferry_preflight_machine (&c);
  if (c.use_emulator)
    c.domcaps =
      vmferry_preflight_domcaps (&c, c.use_emulator,
                                 c.machine_ok ? c.machine : NULL);
  vmferry_preflight_cpu (&c);
  vmferry_preflight_interfaces (&c);
  vmferry_preflight_refs (&c);
  vmferry_preflight_storage (&c);
  vmferry_preflight_block (&c);
  vmferry_preflight_identity (&c);
  vmferry_preflight_devices (&c);
  vmferry_preflight_guest (&c);

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
  for (size_t i = 0; i < c.refused.len; i++)
    free (c.refused.ptr[i]);
  vmferry_check_string_vector_reset (&c.refused);
  vmferry_strv_free (c.emulators);
  if (c.domcaps)
    xmlFreeDoc (c.domcaps);
  return ret;
}
