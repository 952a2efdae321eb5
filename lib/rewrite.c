/* vmferry: adapt a domain definition to its destination (see rewrite.h).
 *
 * The rules are kept per kind (rewrite-rules.c); applying them walks the
 * document once per kind in a fixed order (identity, emulator, machine,
 * CPU, pools, paths, networks, bridges, disk buses, dropped devices), so
 * the result depends only on the rule set, never on the order the
 * options were given in.  Each kind has its file: rewrite-identity.c,
 * rewrite-machine.c, rewrite-storage.c, rewrite-devices.c.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "log.h"
#include "rewrite-int.h"
#include "rewrite.h"
#include "xmlnode.h"
#include "xmlsource.h"

/* ---------------------------------------------------------------- apply */

int
vmferry_rewrite_doc (struct vmferry_rewrite *rw, xmlDocPtr doc,
                     virConnectPtr dest)
{
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  struct dests d = { 0 };
  int changes = 0, ret = -1;

  if (rw == NULL || root == NULL || !vmferry_xml_is_elem (root, "domain")) {
    vmferry_set_error_errno (EINVAL, "rewrite: no <domain> document");
    return -1;
  }
  if (vmferry_rewrite_needs_dest (rw) && dest == NULL) {
    vmferry_set_error ("--%s auto needs a destination to choose from (-c URI)",
                       rw->machine && strcmp (rw->machine, "auto") == 0
                       ? "machine" : "emulator");
    return -1;
  }
  vmferry_rewrite_notes_free (rw);

  if (vmferry_rewrite_identity (rw, doc, &changes) == -1 ||
      (rw->new_macs && vmferry_rewrite_macs (rw, root, doc, &changes) == -1) ||
      vmferry_rewrite_emulator (rw, root, dest, &changes) == -1 ||
      vmferry_rewrite_machine (rw, root, dest, &changes) == -1 ||
      vmferry_rewrite_cpu (rw, root, &changes) == -1)
    goto out;

  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      int r;
      if (vmferry_xml_is_elem (n, "disk")) {
        if ((r = vmferry_rewrite_pool_disk (rw, n, &d, &changes)) == -1)
          goto out;
        if (r == 0 && vmferry_rewrite_disk_paths (rw, n, &d, &changes) == -1)
          goto out;
        if (r == 1) {
          /* The backing chain of a volume keeps its file paths. */
          xmlNodePtr bs = vmferry_xml_child (n, "backingStore");
          if (bs && vmferry_rewrite_disk_paths (rw, bs, NULL, &changes) == -1)
            goto out;
        }
      }
      else if (vmferry_xml_is_elem (n, "tpm")) {
        xmlNodePtr be = vmferry_xml_child (n, "backend");
        if (vmferry_rewrite_node_path (rw, vmferry_xml_child (be, "source"),
                                       "path", "tpm", NULL, &changes) == -1)
          goto out;
      }
    }
  }
  if (vmferry_rewrite_os_paths (rw, root, &d, &changes) == -1 ||
      vmferry_rewrite_dests_check (&d) == -1 ||
      vmferry_rewrite_interfaces (rw, root, &changes) == -1 ||
      vmferry_rewrite_disk_buses (rw, root, &changes) == -1 ||
      vmferry_rewrite_drop_devices (rw, root, &changes) == -1)
    goto out;
  ret = changes;
 out:
  vmferry_rewrite_dests_free (&d);
  return ret;
}

/* The source of DOC, parsed from XML[0..LEN), so that the rewritten
 * definition keeps its text wherever nothing changed; NULL (said in
 * debug messages) when the text cannot be tied to the tree, and the
 * result is then written by libxml2.
 */
struct vmferry_xml_source *
vmferry_rewrite_source_of (xmlDocPtr doc, const char *xml, size_t len,
                           const char *name)
{
  struct vmferry_xml_source *src = vmferry_xml_source_new (doc, xml, len);

  if (src == NULL) {
    vmferry_debug ("%s: %s: written as libxml2 serialises it", name,
                   vmferry_get_error ());
    vmferry_clear_error ();
  }
  return src;
}

/* DOC as text: spliced into its source when there is one. */
char *
vmferry_rewrite_doc_text (const struct vmferry_xml_source *src, xmlDocPtr doc)
{
  return src ? vmferry_xml_source_splice (src, doc, NULL)
    : vmferry_domain_to_string (doc);
}

char *
vmferry_rewrite_xml (struct vmferry_rewrite *rw, const char *xml, size_t len,
                     const char *name, virConnectPtr dest, bool *changed_rtn)
{
  CLEANUP_XMLDOC xmlDocPtr doc = vmferry_domain_parse (xml, len, name);
  struct vmferry_xml_source *src;
  char *out;
  int r;

  if (doc == NULL)
    return NULL;
  src = vmferry_rewrite_source_of (doc, xml, len, name ? name : "domain XML");
  r = vmferry_rewrite_doc (rw, doc, dest);
  if (r < 0) {
    vmferry_xml_source_free (src);
    vmferry_prefix_error ("%s", name ? name : "domain XML");
    return NULL;
  }
  /* Nothing changed: the input, byte for byte. */
  out = r == 0 ? strndup (xml, len) : vmferry_rewrite_doc_text (src, doc);
  vmferry_xml_source_free (src);
  if (out == NULL && r == 0)
    vmferry_set_error_errno (errno, "%s", name ? name : "domain XML");
  if (out && changed_rtn)
    *changed_rtn = r > 0 &&
      !(strlen (out) == len && memcmp (out, xml, len) == 0);
  return out;
}

/* -------------------------------------------------------------- check input */

int
vmferry_rewrite_check_input (struct vmferry_rewrite *rw,
                             struct vmferry_check_input *in, virConnectPtr dest)
{
  int r;

  if (rw == NULL || in == NULL || in->doc == NULL) {
    vmferry_set_error_errno (EINVAL, "rewrite: check input");
    return -1;
  }
  r = vmferry_rewrite_doc (rw, in->doc, dest);
  if (r < 0)
    return -1;
  for (size_t i = 0; i < in->files.len; i++) {
    struct vmferry_check_file *f = &in->files.ptr[i];
    char *np = NULL;

    if (strncmp (f->path, "volume:", 7) == 0) {
      const char *slash = strchr (f->path + 7, '/');
      for (size_t k = 0; slash && k < rw->pools.len; k++) {
        const struct pair *p = &rw->pools.ptr[k];
        if (p->old[0] != '/' &&
            strlen (p->old) == (size_t) (slash - f->path - 7) &&
            strncmp (p->old, f->path + 7, slash - f->path - 7) == 0) {
          if (asprintf (&np, "volume:%s%s", p->new, slash) < 0)
            np = NULL;
          else
            goto set;
          goto nomem;
        }
      }
      continue;
    }
    for (size_t k = 0; k < rw->vols.len; k++)
      if (strcmp (rw->vols.ptr[k].path, f->path) == 0) {
        if (asprintf (&np, "volume:%s/%s", rw->vols.ptr[k].pool,
                      rw->vols.ptr[k].volume) < 0) {
          np = NULL;
          goto nomem;
        }
        goto set;
      }
    np = vmferry_rewrite_map_path (rw, f->path);
    if (np == NULL)
      return -1;
  set:
    free (f->path);
    f->path = np;
  }
  return r;
 nomem:
  vmferry_set_error_errno (ENOMEM, "rewrite: check input");
  return -1;
}
