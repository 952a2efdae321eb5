/* vmferry: the pre-flight check's findings from the guest's inspection
 * (a stream's manifest "guest", vmferry-export --inspect): a disk that
 * gets another name in the guest, a Windows guest moving off virtio.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup-libc.h"
#include "error.h"
#include "guest.h"
#include "manifest.h"
#include "preflight-int.h"
#include "xmlnode.h"

/* The <disk> after PREV, or with PREV NULL the first of ROOT's devices. */
static xmlNodePtr
next_disk (xmlNodePtr root, xmlNodePtr prev)
{
  xmlNodePtr n;

  if (prev)
    n = prev->next;
  else {
    xmlNodePtr devs = vmferry_xml_child (root, "devices");
    n = devs ? devs->children : NULL;
  }
  while (n && !vmferry_xml_is_elem (n, "disk"))
    n = n->next;
  return n;
}

int
vmferry_preflight_keep_guest (struct vmferry_check_input *in,
                              const struct vmferry_manifest *m)
{
  if (m->guest && (in->guest = strdup (m->guest)) == NULL)
    goto nomem;
  for (xmlNodePtr d = next_disk (xmlDocGetRootElement (in->doc), NULL); d;
       d = next_disk (NULL, d)) {
    xmlNodePtr src = vmferry_xml_child (d, "source");
    CLEANUP_FREE char *file = vmferry_xml_attr (src, "file");
    CLEANUP_FREE char *dev = vmferry_xml_attr (src, "dev");
    const char *path = file ? file : dev;
    char *t = NULL;

    /* The manifest names the target the disk had on the source; a
     * rewrite on the way changes only the XML's.
     */
    for (size_t i = 0; path && i < m->nr_files; i++)
      if (m->files[i].target && m->files[i].source_path &&
          strcmp (m->files[i].source_path, path) == 0 &&
          (t = strdup (m->files[i].target)) == NULL)
        goto nomem;
    if (t == NULL)
      t = vmferry_xml_attr (vmferry_xml_child (d, "target"), "dev");
    if (t == NULL && (t = strdup ("")) == NULL)
      goto nomem;
    if (vmferry_check_string_vector_append (&in->disk_targets, t) == -1) {
      free (t);
      goto nomem;
    }
  }
  return 0;

 nomem:
  vmferry_set_error_errno (ENOMEM, "check");
  return -1;
}

/* Is DEVICE (an inspection's "vda1") on the disk with target TARGET? */
static bool
on_disk (const char *device, const char *target)
{
  size_t n = strlen (target);

  return n > 0 && strncmp (device, target, n) == 0 &&
    strspn (device + n, "0123456789") == strlen (device + n);
}

void
vmferry_preflight_guest (struct preflight *c)
{
  const struct vmferry_check_input *in = c->in;
  struct vmferry_guest_info *info = NULL;
  const char *type;
  size_t i = 0;

  if (in->guest == NULL)
    return;
  if (vmferry_guest_info_from_json (in->guest, &info) < 0) {
    vmferry_clear_error ();     /* the stream's import refuses it anyway */
    return;
  }
  if (info->nr_os != 1)
    goto out;
  type = info->os[0].type;
  for (xmlNodePtr d = next_disk (c->root, NULL);
       d && i < in->disk_targets.len; d = next_disk (NULL, d), i++) {
    xmlNodePtr tgt = vmferry_xml_child (d, "target");
    CLEANUP_FREE char *now = vmferry_xml_attr (tgt, "dev");
    CLEANUP_FREE char *bus = vmferry_xml_attr (tgt, "bus");
    const char *old = in->disk_targets.ptr[i];
    char object[64];

    if (now == NULL || strcmp (now, old) == 0)
      continue;
    snprintf (object, sizeof object, "disk %s", now);
    if (strcmp (type, "windows") == 0 && strncmp (old, "vd", 2) == 0 &&
        (bus == NULL || strcmp (bus, "virtio") != 0))
      vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "guest", object, NULL,
                             "keep the disk on virtio, or install and "
                             "enable the new bus's driver in the guest "
                             "before the move",
                             "the Windows guest (%s) moves off virtio: disk "
                             "%s becomes %s on bus %s, and Windows starts "
                             "from a bus only when its driver is enabled "
                             "(else INACCESSIBLE_BOOT_DEVICE)",
                             info->os[0].product, old, now,
                             bus ? bus : "(default)");
    else if (strcmp (type, "linux") == 0)
      for (size_t k = 0; k < info->nr_fs; k++) {
        const struct vmferry_guest_fs *fs = &info->fs[k];

        if (!fs->mountpoint[0] || !on_disk (fs->device, old))
          continue;
        vmferry_preflight_add (c, VMFERRY_SEV_INFO, "guest", object, NULL,
                               "vmferry-import --no-fixup leaves the "
                               "guest as it is: then an fstab entry or "
                               "root= naming the old device is not found",
                               "disk %s becomes %s in the guest, which "
                               "mounts %s on %s: the copy's /etc/fstab and "
                               "the boot loader's root= will be rewritten "
                               "where they name /dev/%s (UUID= and LABEL= "
                               "entries need nothing)", old, now,
                               fs->device, fs->mountpoint, old);
      }
  }

 out:
  vmferry_guest_info_free (info);
}
