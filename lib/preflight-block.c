/* vmferry: pre-flight checks of block storage on the destination: a
 * storage pool of type disk or logical that the disks go into
 * (--dest-pool: one volume per disk, of its guest size, made by the
 * import), and block devices named for disks (--dest-disk TARGET=DEVICE).
 *
 * Only libvirt answers here, so what it cannot tell is left to the
 * import, which checks each device itself before any byte of the disk
 * is written (import-convert.c: a block device, large enough, not
 * mounted or claimed: an exclusive open, not open by QEMU).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "cleanup.h"
#include "error.h"
#include "xmlnode.h"
#include "preflight-int.h"
#include "virt.h"

/* The disk of target TARGET in the domain XML: its file's capacity (0
 * when unknown).
 */
static uint64_t
disk_capacity (struct preflight *c, const char *target)
{
  xmlNodePtr devices = vmferry_xml_child (c->root, "devices");
  size_t k = 0;

  /* The input's files are the XML's disks in order (preflight-input.c),
   * the ones with a path; match by the source path.
   */
  for (xmlNodePtr d = devices ? devices->children : NULL; d; d = d->next) {
    CLEANUP_FREE char *t = NULL;
    CLEANUP_FREE char *path = NULL;
    xmlNodePtr src;

    if (!vmferry_xml_is_elem (d, "disk"))
      continue;
    t = vmferry_xml_attr (vmferry_xml_child (d, "target"), "dev");
    if (t == NULL || strcmp (t, target) != 0)
      continue;
    src = vmferry_xml_child (d, "source");
    path = vmferry_xml_attr (src, "file");
    if (path == NULL)
      path = vmferry_xml_attr (src, "dev");
    for (k = 0; path && k < c->in->files.len; k++)
      if (strcmp (c->in->files.ptr[k].path, path) == 0)
        return c->in->files.ptr[k].capacity;
    if (path == NULL) {
      CLEANUP_FREE char *pool = vmferry_xml_attr (src, "pool");
      CLEANUP_FREE char *vol = vmferry_xml_attr (src, "volume");
      CLEANUP_FREE char *key = NULL;

      if (pool && vol && asprintf (&key, "volume:%s/%s", pool, vol) < 0)
        key = NULL;
      for (k = 0; key && k < c->in->files.len; k++)
        if (strcmp (c->in->files.ptr[k].path, key) == 0)
          return c->in->files.ptr[k].capacity;
    }
    return 0;
  }
  return 0;
}

/* --dest-pool of type disk or logical: active, with room for a volume
 * of every disk's guest size.
 */
static void
check_pool (struct preflight *c, const char *pool)
{
  CLEANUP_VIR_POOL virStoragePoolPtr p =
      virStoragePoolLookupByName (c->dest, pool);
  CLEANUP_FREE char *object = NULL;
  virStoragePoolInfo info;
  const char *type;
  uint64_t need = 0;

  if (p == NULL) {
    vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "pool", pool, NULL,
                           "virsh pool-list --all on the destination",
                           "no storage pool %s on the destination: %s", pool,
                           vmferry_preflight_virt_msg ());
    return;
  }
  type = vmferry_virt_pool_block_type (p, pool);
  if (type == NULL || type[0] == '\0') {
    vmferry_clear_error ();
    return;                     /* a directory pool: preflight-storage.c */
  }
  if (asprintf (&object, "pool %s (%s)", pool, type) < 0) {
    c->oom = true;
    return;
  }
  if (vmferry_virt_pool_usable (p, pool, type) < 0) {
    vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "pool", object, NULL,
                           NULL, "%s", vmferry_get_error ());
    vmferry_clear_error ();
    return;
  }
  if (virStoragePoolRefresh (p, 0) < 0 ||
      virStoragePoolGetInfo (p, &info) < 0) {
    vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "pool", object, NULL, NULL,
                           "its free space is unknown: %s",
                           vmferry_preflight_virt_msg ());
    return;
  }
  for (size_t i = 0; i < c->in->files.len; i++) {
    const struct vmferry_check_file *f = &c->in->files.ptr[i];

    if (!f->carried || f->capacity == 0)
      continue;
    need += f->capacity;
    if (f->format && strcmp (f->format, "raw") != 0)
      vmferry_preflight_add (c, VMFERRY_SEV_INFO, "pool", object, NULL, NULL,
                             "%s is %s: its volume holds it raw (received, "
                             "verified, converted by qemu-img and compared)",
                             f->path, f->format);
  }
  if (need > info.available)
    vmferry_preflight_add_space (c, object, "a larger pool, or another "
                                 "--dest-pool", "the disks' volumes", need,
                                 info.available);
}

/* --dest-disk TARGET=DEVICE: what libvirt can tell of DEVICE (a domain
 * that uses it; its size when it is a volume of a pool); the rest the
 * import checks on the destination before the disk's first byte.
 */
static void
check_disk (struct preflight *c, const char *arg)
{
  const char *eq = strchr (arg, '=');
  CLEANUP_FREE char *target = eq ? strndup (arg, eq - arg) : NULL;
  CLEANUP_FREE char *users = NULL;
  CLEANUP_VIR_VOL virStorageVolPtr v = NULL;
  const char *dev = eq ? eq + 1 : NULL;
  uint64_t cap;

  if (target == NULL) {
    if (eq)
      c->oom = true;
    return;
  }
  cap = disk_capacity (c, target);
  if (cap == 0 && vmferry_xml_child (c->root, "devices"))
    vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "device", dev, NULL, NULL,
                           "disk %s: its size is unknown here: the import "
                           "checks %s before it writes", target, dev);
  users = vmferry_virt_file_users (c->dest, dev, NULL, NULL);
  if (users == NULL) {
    vmferry_clear_error ();
  }
  else if (users[0]) {
    vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "device", dev, NULL,
                           "name a device no domain uses", "disk %s: %s is "
                           "used by domain %s on the destination: never "
                           "written", target, dev, users);
    return;
  }
  v = virStorageVolLookupByPath (c->dest, dev);
  if (v) {
    virStorageVolInfo vi;

    if (virStorageVolGetInfo (v, &vi) == 0 && cap && vi.capacity < cap) {
      vmferry_preflight_add_space (c, dev, "a larger device", "disk", cap,
                                   vi.capacity);
      return;
    }
  }
  else
    vmferry_clear_error ();
  vmferry_preflight_add (c, VMFERRY_SEV_INFO, "device", dev, NULL, NULL,
                         "disk %s: the import checks %s before the disk's "
                         "first byte: a block device, at least as large, not "
                         "mounted or held (an exclusive open), not open by "
                         "QEMU", target, dev);
}

void
vmferry_preflight_block (struct preflight *c)
{
  if (c->in->dest_pool)
    check_pool (c, c->in->dest_pool);
  for (size_t i = 0; i < c->in->n_dest_disks; i++)
    check_disk (c, c->in->dest_disks[i]);
}
