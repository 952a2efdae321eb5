/* vmferry: pre-flight check of what else on the host the domain would
 * open, run or hand over (refs.h), as the import would judge it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "preflight-int.h"
#include "preflight.h"
#include "refs.h"

/* ---------------------------------------------------------- host references */

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
void
vmferry_preflight_refs (struct preflight *c)
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
  carried = calloc (in->files.len + 1, sizeof *carried);
  if (carried == NULL) {
    c->oom = true;
    goto out;
  }
  for (size_t i = 0; i < in->files.len; i++)
    if (in->files.ptr[i].carried) {
      carried[ncarried].path = in->files.ptr[i].path;
      carried[ncarried++].format = in->files.ptr[i].format;
    }
  p.carried = carried;
  p.n_carried = ncarried;
  p.allow = (const char *const *) in->allow.ptr;
  p.n_allow = in->allow.len;
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
    vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "reference", object, NULL,
                           hint, "%s", why);
    if (r->is_path && f[i].reason != VMFERRY_REF_FORMAT_MISMATCH) {
      char *v = strdup (r->value);
      if (v == NULL ||
          vmferry_check_string_vector_append (&c->refused, v) == -1) {
        free (v);
        c->oom = true;
        break;
      }
    }
  }
 out:
  vmferry_ref_findings_free (f, nf);
  vmferry_refs_free (refs, n);
  free (carried);
}
