/* vmferry: fix-ups in the verified copy before it is placed (import
 * --new-identity, --no-fixup; guest-fixup.h).
 *
 * What the guest will see differently is read from the import itself:
 * the manifest names each disk's target on the source, the domain XML
 * as it arrives (after any rewrite on the way) the target it will have
 * here.  The MACs the guest knows are the manifest's domain.mac_map
 * (what rewrites on the way changed, vmferry-rewrite --new-macs) for the
 * interfaces whose MAC the XML still has; with --new-identity the
 * importer gives the interfaces new MACs, and those follow on.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup-libc.h"
#include "domain.h"
#include "error.h"
#include "guest-fixup.h"
#include "import-int.h"
#include "import-result.h"
#include "log.h"
#include "manifest.h"
#include "rewrite.h"
#include "text.h"
#include "xmlnode.h"

/* The MACs of the domain's interfaces, in order (NULL for one without). */
static char **
interface_macs (xmlDocPtr doc, size_t *nr_rtn)
{
  xmlNodePtr root = xmlDocGetRootElement (doc);
  char **macs = NULL;
  size_t nr = 0;

  for (xmlNodePtr devs = root ? root->children : NULL; devs;
       devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      char **m;
      if (!vmferry_xml_is_elem (n, "interface"))
        continue;
      m = realloc (macs, (nr + 1) * sizeof *macs);
      if (m == NULL) {
        for (size_t i = 0; i < nr; i++)
          free (macs[i]);
        free (macs);
        vmferry_set_error_errno (ENOMEM, "fix-up");
        return NULL;
      }
      macs = m;
      macs[nr++] = vmferry_xml_attr (vmferry_xml_child (n, "mac"),
                                     "address");
    }
  }
  *nr_rtn = nr;
  return macs ? macs : calloc (1, sizeof *macs);
}

static void
free_macs (char **macs, size_t nr)
{
  for (size_t i = 0; macs && i < nr; i++)
    free (macs[i]);
  free (macs);
}

/* The MACs the guest knows and those its interfaces have as the domain
 * XML arrived, as a manifest's mac_map (*M_RTN, the caller frees it):
 * the stream's entries whose new MAC an interface of the XML has (an
 * entry of another MAC is of an interface the XML no longer has as the
 * rewrite left it).  Before --new-identity changes them (follow_macs).
 */
static int
stream_macs (struct importer *im, struct vmferry_manifest **m_rtn)
{
  struct vmferry_manifest *m = NULL;
  char **now = NULL;
  size_t nr_now = 0;

  if (im->manifest) {
    if (vmferry_manifest_parse (im->manifest, im->manifest_len, NULL,
                                &m) < 0)
      return -1;
  }
  else if ((m = calloc (1, sizeof *m)) == NULL) {
    vmferry_set_error_errno (ENOMEM, "fix-up");
    return -1;
  }
  /* The XML as it arrived: before new_macs changes it. */
  if (m->nr_macs > 0 && (now = interface_macs (im->doc, &nr_now)) == NULL)
    goto fail;
  for (size_t i = m->nr_macs; i-- > 0;) {
    bool found = false;

    for (size_t k = 0; k < nr_now && !found; k++)
      found = now[k] && strcasecmp (now[k], m->macs[i].new_mac) == 0;
    if (!found) {
      vmferry_debug ("%s: fix-up: %s -> %s: no interface has %s now",
                     im->name, m->macs[i].old_mac, m->macs[i].new_mac,
                     m->macs[i].new_mac);
      vmferry_manifest_remove_mac (m, i);
    }
  }
  free_macs (now, nr_now);
  *m_rtn = m;
  return 0;
 fail:
  vmferry_manifest_free (m);
  return -1;
}

/* What --new-identity changed (OLD, NEW: NR each) follows on in M. */
static int
follow_macs (struct vmferry_manifest *m, char **old, char **new, size_t nr)
{
  /* The rewrite keeps the interfaces and their order. */
  for (size_t i = 0; i < nr; i++)
    if (old[i] && new[i] && vmferry_manifest_mac_ok (old[i]) &&
        vmferry_manifest_mac_ok (new[i]) && strcasecmp (old[i], new[i]) != 0 &&
        vmferry_manifest_add_mac (m, old[i], new[i]) < 0)
      return -1;
  return 0;
}

/* --new-identity: the domain gets the new UUID (planned already) and
 * MACs derived from it, as vmferry-rewrite --new-uuid --new-macs does.
 * The old and new MACs into *OLD_RTN, *NEW_RTN (*NR_RTN each).
 */
static int
new_macs (struct importer *im, char ***old_rtn, size_t *nr_old_rtn,
          char ***new_rtn, size_t *nr_new_rtn)
{
  struct vmferry_rewrite *rw = NULL;
  size_t nr_old = 0, nr_new = 0;
  char **old = NULL, **new = NULL;

  if (vmferry_domain_set_uuid (im->doc, im->uuid) < 0 ||
      (old = interface_macs (im->doc, &nr_old)) == NULL ||
      (rw = vmferry_rewrite_new ()) == NULL ||
      vmferry_rewrite_add (rw, "new-macs", NULL, "--new-identity") < 0 ||
      vmferry_rewrite_doc (rw, im->doc, NULL) < 0 ||
      (new = interface_macs (im->doc, &nr_new)) == NULL) {
    vmferry_rewrite_free (rw);
    free_macs (old, nr_old);
    return -1;
  }
  vmferry_rewrite_free (rw);
  *old_rtn = old;
  *nr_old_rtn = nr_old;
  *new_rtn = new;
  *nr_new_rtn = nr_new;
  return 0;
}

/* The disk files the fix-ups will write no longer hold what the stream
 * sent: a later run must not take them as received (as a converted
 * file, import-convert.c).  Recorded before the first write.
 */
static int
forget_received (struct importer *im)
{
  if (!im->keep_state)
    return 0;
  for (size_t i = 0; i < im->nr_files; i++) {
    struct vmferry_resume_file *rf = &im->st.files[i];

    if (im->files[i].role != VMFERRY_ROLE_DISK || im->files[i].dropped)
      continue;
    rf->changed = false;
    rf->offset = 0;
    rf->nr_claims = 0;
  }
  return vmferry_import_save_state (im, -1, 0);
}

static void
print_changes (const struct importer *im,
               const struct vmferry_fixup_change *c, size_t nr)
{
  for (size_t i = 0; i < nr; i++) {
    CLEANUP_FREE char *file = vmferry_text_escape (c[i].file,
                                                   strlen (c[i].file));
    CLEANUP_FREE char *what = vmferry_text_escape (c[i].what,
                                                   strlen (c[i].what));
    vmferry_notice ("%s: fix-up: %s: %s", im->name, file ? file : "?",
                    what ? what : "?");
  }
  if (nr == 0)
    vmferry_notice ("%s: fix-up: nothing in the guest names the old disks "
                    "or MACs", im->name);
}

/* For the caller's result (vmferry-import --json): why the fix-ups
 * were not done.
 */
static int
record_not_done (struct importer *im, const char *why)
{
  struct vmferry_import_result *res = im->opts->result;

  if (res == NULL)
    return 0;
  free (res->fixups_not_done);
  res->fixups_not_done = strdup (why);
  if (res->fixups_not_done == NULL) {
    vmferry_set_error_errno (ENOMEM, "fix-up");
    return -1;
  }
  return 0;
}

int
vmferry_import_fixup (struct importer *im, bool *not_done)
{
  const struct vmferry_import_opts *opts = im->opts;
  struct vmferry_domain_file *df = NULL;
  struct vmferry_fixup_disk *disks = NULL;
  struct vmferry_fixup_mac *macs = NULL;
  struct vmferry_fixup_change *changes = NULL;
  struct vmferry_fixup_opts fo = { .hostname = opts->new_identity };
  struct vmferry_manifest *known = NULL;
  char **paths = NULL, **old = NULL, **new = NULL;
  const char *chain = NULL;
  size_t n = 0, nr_old = 0, nr_new = 0, nr_changes = 0;
  int r = -1, k;

  *not_done = false;
  if (opts->result)
    opts->result->fixups_known = true;
  if (stream_macs (im, &known) < 0 ||
      (opts->new_identity &&
       (new_macs (im, &old, &nr_old, &new, &nr_new) < 0 ||
        follow_macs (known, old, new,
                     nr_old < nr_new ? nr_old : nr_new) < 0)))
    goto out;
  macs = calloc (known->nr_macs + 1, sizeof *macs);
  if (macs == NULL)
    goto nomem;
  for (size_t i = 0; i < known->nr_macs; i++) {
    macs[i].old_mac = known->macs[i].old_mac;
    macs[i].new_mac = known->macs[i].new_mac;
  }
  fo.macs = macs;
  fo.nr_macs = known->nr_macs;
  if (vmferry_domain_files (im->doc, false, &df, &n) < 0)
    goto out;
  disks = calloc (im->nr_files + 1, sizeof *disks);
  paths = calloc (im->nr_files + 1, sizeof *paths);
  if (disks == NULL || paths == NULL)
    goto nomem;
  fo.disks = disks;
  for (size_t i = 0; i < im->nr_files; i++) {
    const struct import_file *f = &im->files[i];
    struct vmferry_fixup_disk *d = &disks[fo.nr_disks];

    if (f->role != VMFERRY_ROLE_DISK || f->dropped)
      continue;
    if (f->device)
      paths[i] = strdup (f->device);
    else
      paths[i] = vmferry_target_path (&im->tgt, f->tmp);
    if (paths[i] == NULL)
      goto nomem;
    d->path = paths[i];
    d->format = f->device ? "raw" : f->format;
    d->old_target = f->target;
    d->new_target = vmferry_import_doc_target (df, n, f);
    if (f->backing >= 0)
      chain = f->target ? f->target : f->name;
    fo.nr_disks++;
  }
  if (!vmferry_fixup_needed (&fo)) {
    r = 0;
    goto out;
  }
  if (opts->no_fixup) {
    vmferry_notice ("%s: fix-ups not done (--no-fixup): the guest may name "
                    "its disks or MACs by their old names", im->name);
    *not_done = true;
    r = record_not_done (im, "--no-fixup");
    goto out;
  }
  /* A disk with a backing chain: its overlay's header names the backing
   * file by its final name, which is not there yet, and a write through
   * a description of the chain (as the check's) would land in a
   * throwaway overlay.
   */
  if (chain) {
    vmferry_set_error ("disk %s has a backing chain in the copy: its "
                       "guest cannot be changed before it is placed "
                       "(--flatten makes it one file)", chain);
    k = 1;
  }
  else if (forget_received (im) < 0)
    goto out;
  else
    k = vmferry_guest_fixup (&fo, &changes, &nr_changes);
  if (k < 0)
    goto out;
  if (k > 0) {
    if (opts->new_identity) {
      vmferry_prefix_error ("--new-identity");
      goto out;
    }
    vmferry_warn ("%s: fix-ups not done: %s", im->name, vmferry_get_error ());
    *not_done = true;
    r = record_not_done (im, vmferry_get_error ());
    goto out;
  }
  print_changes (im, changes, nr_changes);
  if (opts->result) {
    vmferry_fixup_changes_free (opts->result->fixups,
                                opts->result->nr_fixups);
    opts->result->fixups = changes;
    opts->result->nr_fixups = nr_changes;
    changes = NULL;
    nr_changes = 0;
  }
  r = 0;
  goto out;

 nomem:
  vmferry_set_error_errno (ENOMEM, "fix-up");
 out:
  vmferry_fixup_changes_free (changes, nr_changes);
  vmferry_domain_files_free (df, n);
  for (size_t i = 0; paths && i < im->nr_files; i++)
    free (paths[i]);
  free (paths);
  free (disks);
  free (macs);
  vmferry_manifest_free (known);
  free_macs (old, nr_old);
  free_macs (new, nr_new);
  if (r < 0)
    vmferry_prefix_error ("domain %s: fix-ups", im->name);
  return r;
}
