/* vmferry: disks into volumes of a block storage pool (import --pool,
 * migrate --dest-pool, of libvirt type disk or logical).
 *
 * Such a pool's volumes are block devices (a partition of the pool's
 * disk, a logical volume of its volume group), never files: each disk
 * gets a volume of its guest size, created through libvirt
 * (virStorageVolCreateXML, so that the pool's own tools make it:
 * parted, lvcreate), and is then written onto the volume's device as
 * --disk TARGET=DEVICE writes one (import-device.c: raw as it arrives,
 * gaps zeroed, read back and verified; any other disk received into a
 * verified file and converted onto the device by qemu-img, then
 * compared).  The other files (NVRAM, the import's state) go to
 * libvirt's image directory, as the pool has no directory.
 *
 * The domain gets the disk as <disk type='block'> with the volume's
 * path, not as <source pool= volume=>: the path is what was written and
 * read back, and the domain starts whether or not libvirt has the pool
 * started (a partition or an activated logical volume exists without
 * it), as with --disk.
 *
 * The volume is the import's until the placement commits: the state
 * names it (POOL/NAME) before it is created and again once it is
 * (resume.h), so that a failure, a later run that finds the state, or
 * --abort deletes it; a volume the state does not name is never
 * deleted, and one that exists under that name is kept when a domain
 * uses it.  A kill in libvirt's create (libvirtd goes on with it) leaves
 * a state that names the volume as not yet made: a volume of that name
 * is then the import's too, as the name was free when it was recorded.
 */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "fault.h"
#include "human.h"
#include "import-int.h"
#include "log.h"
#include "virt.h"

/* The disk of disk pool P, as its source names it.  Caller frees. */
static char *
source_device (virStoragePoolPtr p, const char *pool)
{
  CLEANUP_FREE char *xml = virStoragePoolGetXMLDesc (p, 0);
  char *start, *end, *r;

  start = xml ? strstr (xml, "<device path='") : NULL;
  end = start ? strchr (start += strlen ("<device path='"), '\'') : NULL;
  if (end == NULL) {
    vmferry_set_error ("storage pool %s: no source device", pool);
    return NULL;
  }
  r = strndup (start, end - start);
  if (r == NULL)
    vmferry_set_error_errno (ENOMEM, "import");
  return r;
}

/* The name libvirt will give the next partition of disk pool P: the
 * disk's name, "p" if it ends in a digit, and the lowest partition
 * number no volume has (parted's choice on GPT and on msdos primaries).
 * A guess only: libvirt refuses another name and says which it wanted,
 * and create_volume takes that.  Caller frees.
 */
static char *
next_partition (virStoragePoolPtr p, const char *pool)
{
  CLEANUP_FREE char *dev = source_device (p, pool);
  char real[PATH_MAX];
  const char *sep;
  char *base, *r = NULL;

  if (dev == NULL)
    return NULL;
  if (realpath (dev, real) == NULL) {
    vmferry_set_error_errno (errno, "storage pool %s: %s", pool, dev);
    return NULL;
  }
  base = strrchr (real, '/') + 1;
  sep = isdigit ((unsigned char) base[strlen (base) - 1]) ? "p" : "";
  for (int n = 1; n < 256; n++) {
    CLEANUP_VIR_VOL virStorageVolPtr v = NULL;

    free (r);
    if (asprintf (&r, "%s%s%d", base, sep, n) < 0) {
      vmferry_set_error_errno (ENOMEM, "import");
      return NULL;
    }
    v = virStorageVolLookupByName (p, r);
    if (v == NULL)
      return r;
  }
  free (r);
  vmferry_set_error ("storage pool %s: no free partition number", pool);
  return NULL;
}

/* Partition NAME of disk pool P removed with parted, where libvirt
 * cannot: libvirt 9 takes what follows the disk's name as the partition
 * number, so for a disk whose name ends in a digit (loop0, nvme0n1,
 * mmcblk0) it runs "parted DISK rm p1" and fails.  Only a name of the
 * form DISK "p" NUMBER is taken.
 */
static int
parted_rm (virStoragePoolPtr p, const char *pool, const char *name)
{
  CLEANUP_FREE char *dev = source_device (p, pool);
  char real[PATH_MAX], *base;
  size_t n;
  pid_t pid;
  int status, err;

  if (dev == NULL)
    return -1;
  if (realpath (dev, real) == NULL) {
    vmferry_set_error_errno (errno, "storage pool %s: %s", pool, dev);
    return -1;
  }
  base = strrchr (real, '/') + 1;
  n = strlen (base);
  if (strncmp (name, base, n) != 0 || name[n] != 'p' || !name[n + 1] ||
      strspn (name + n + 1, "0123456789") != strlen (name + n + 1)) {
    vmferry_set_error ("storage pool %s: volume %s: not a partition of %s",
                       pool, name, real);
    return -1;
  }
  {
    char *argv[] = { (char *) "parted", (char *) "--script", real,
                     (char *) "rm", (char *) name + n + 1, NULL };

    err = posix_spawnp (&pid, "parted", NULL, NULL, argv, environ);
  }
  if (err) {
    vmferry_set_error_errno (err, "cannot run parted");
    return -1;
  }
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR) {
      vmferry_set_error_errno (errno, "parted");
      return -1;
    }
  if (!WIFEXITED (status) || WEXITSTATUS (status)) {
    vmferry_set_error ("parted %s rm %s failed", real, name + n + 1);
    return -1;
  }
  if (virStoragePoolRefresh (p, 0) < 0) {
    vmferry_virt_error ("storage pool %s", pool);
    return -1;
  }
  return 0;
}

/* What LVM takes in a name, and nothing XML would read as markup: the
 * name comes from the stream.  Else false with the error set.
 */
static bool
volume_name_ok (const struct importer *im, const char *name)
{
  if (name[0] != '-' && name[0] != '.' &&
      strspn (name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
              "0123456789._+-") == strlen (name))
    return true;
  vmferry_set_error ("storage pool %s: %s cannot be a volume's name "
                     "(letters, digits and . _ + - only; import under "
                     "another --name)", im->pool, name);
  return false;
}

int
vmferry_import_pool_check (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  CLEANUP_VIR_POOL virStoragePoolPtr p = NULL;
  virStoragePoolInfo info;
  uint64_t need = 0;

  if (im->pool_type == NULL)
    return 0;
  p = virStoragePoolLookupByName (im->conn, im->pool);
  if (p == NULL) {
    vmferry_virt_error ("storage pool %s", im->pool);
    return -1;
  }
  if (vmferry_virt_pool_usable (p, im->pool, im->pool_type) < 0)
    return -1;
  if (opts->format && strcmp (opts->format, "raw") != 0) {
    vmferry_set_error ("--format %s: the volumes of storage pool %s (%s) are "
                       "block devices, which hold raw disks only", opts->format,
                       im->pool, im->pool_type);
    return -1;
  }
  if (virStoragePoolRefresh (p, 0) < 0 ||
      virStoragePoolGetInfo (p, &info) < 0) {
    vmferry_virt_error ("storage pool %s", im->pool);
    return -1;
  }
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];

    if (f->role != VMFERRY_ROLE_DISK || f->device)
      continue;
    if (f->target == NULL) {
      vmferry_set_error ("%s: a disk without a target cannot go into storage "
                         "pool %s", f->name, im->pool);
      return -1;
    }
    f->in_pool = true;
    need += f->guest_size;
    if (strcmp (im->pool_type, "logical") == 0) {
      CLEANUP_VIR_VOL virStorageVolPtr v = NULL;

      if (!volume_name_ok (im, f->final)) {
        vmferry_prefix_error ("disk %s", f->target);
        return -1;
      }
      v = virStorageVolLookupByName (p, f->final);
      if (v) {
        vmferry_set_error ("disk %s: storage pool %s already has a volume %s: "
                           "never replaced (import under another --name)",
                           f->target, im->pool, f->final);
        return -1;
      }
    }
  }
  if (need > info.available) {
    char a[32], b[32];

    vmferry_human_size (need, a, sizeof a);
    vmferry_human_size (info.available, b, sizeof b);
    vmferry_set_error ("storage pool %s (%s): not enough free space: the disks "
                       "need %s, %s are free; nothing was written", im->pool,
                       im->pool_type, a, b);
    return -1;
  }
  return 0;
}

/* A volume NAME of SIZE bytes in P; with a disk pool, a name libvirt
 * refuses after it made the partition anyway (libvirt 9 checks the name
 * only then) is taken as the volume made.  NULL with the error set.
 */
static virStorageVolPtr
create_volume (struct importer *im, virStoragePoolPtr p, const char *name,
               uint64_t size)
{
  CLEANUP_FREE char *xml = NULL;
  virStorageVolPtr v;
  virErrorPtr e;
  const char *want;

  if (!volume_name_ok (im, name))
    return NULL;
  if (asprintf (&xml, "<volume><name>%s</name><capacity unit='bytes'>%"
                PRIu64 "</capacity></volume>", name, size) < 0) {
    vmferry_set_error_errno (ENOMEM, "import");
    return NULL;
  }
  v = virStorageVolCreateXML (p, xml, 0);
  if (v)
    return v;
  e = virGetLastError ();
  want = e && e->message ? strstr (e->message, "expected '") : NULL;
  if (want && strcmp (im->pool_type, "disk") == 0) {
    CLEANUP_FREE char *other = strndup (want + strlen ("expected '"),
                                        strcspn (want + strlen ("expected '"),
                                                 "'"));

    vmferry_verbose ("storage pool %s: libvirt named the partition %s, not %s",
                     im->pool, other ? other : "?", name);
    if (other && virStoragePoolRefresh (p, 0) == 0 &&
        (v = virStorageVolLookupByName (p, other)) != NULL)
      return v;
  }
  vmferry_virt_error ("storage pool %s: creating volume %s", im->pool, name);
  return NULL;
}

/* The volume of file I: named in the state, created, named as made,
 * then opened as the disk's device.
 */
static int
make_one (struct importer *im, virStoragePoolPtr p, size_t i)
{
  struct import_file *f = &im->files[i];
  struct vmferry_resume_file *rf = &im->st.files[i];
  CLEANUP_FREE char *name = NULL;
  CLEANUP_FREE char *path = NULL;
  CLEANUP_VIR_VOL virStorageVolPtr v = NULL;

  name = strcmp (im->pool_type, "disk") == 0 ? next_partition (p, im->pool)
                                              : strdup (f->final);
  if (name == NULL) {
    if (!vmferry_get_error ()[0])
      vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  free (rf->volume);
  rf->volume_made = false;
  if (asprintf (&rf->volume, "%s/%s", im->pool, name) < 0) {
    rf->volume = NULL;
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  if (vmferry_import_save_state (im, -1, 0) < 0 ||
      vmferry_fault ("import-volume-named") < 0)
    return -1;
  v = create_volume (im, p, name, f->guest_size);
  if (v == NULL) {
    /* Not made: nothing of that name is the import's. */
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    free (rf->volume);
    rf->volume = NULL;
    vmferry_import_save_state (im, -1, 0);
    vmferry_restore_saved_error (&saved);
    return -1;
  }
  if (strcmp (virStorageVolGetName (v), name) != 0) {
    free (rf->volume);
    if (asprintf (&rf->volume, "%s/%s", im->pool,
                  virStorageVolGetName (v)) < 0) {
      rf->volume = NULL;
      vmferry_set_error_errno (ENOMEM, "import");
      return -1;
    }
  }
  rf->volume_made = true;
  if (vmferry_import_save_state (im, -1, 0) < 0 ||
      vmferry_fault ("import-volume-made") < 0)
    return -1;
  path = virStorageVolGetPath (v);
  if (path == NULL) {
    vmferry_virt_error ("storage pool %s: volume %s", im->pool,
                        virStorageVolGetName (v));
    return -1;
  }
  vmferry_verbose ("disk %s: volume %s of storage pool %s created: %s",
                   f->target, virStorageVolGetName (v), im->pool, path);
  free (f->final_path);
  f->final_path = NULL;
  if (!(f->device = strdup (path)) || !(f->final_path = strdup (path))) {
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  if (vmferry_import_check_device (im, f) < 0)
    return -1;
  f->direct = vmferry_import_device_direct (im, f);
  return 0;
}

int
vmferry_import_pool_create (struct importer *im)
{
  CLEANUP_VIR_POOL virStoragePoolPtr p = NULL;

  if (im->pool_type == NULL)
    return 0;
  assert (im->keep_state);
  p = virStoragePoolLookupByName (im->conn, im->pool);
  if (p == NULL) {
    vmferry_virt_error ("storage pool %s", im->pool);
    return -1;
  }
  for (size_t i = 0; i < im->nr_files; i++)
    if (im->files[i].in_pool && make_one (im, p, i) < 0) {
      vmferry_prefix_error ("disk %s", im->files[i].target);
      return -1;
    }
  return 0;
}

/* Volume SPEC (POOL/NAME) deleted, unless a domain uses it.  Returns 1
 * if deleted, 0 if not there, -1 with the error set.
 */
static int
delete_one (struct importer *im, const char *spec)
{
  const char *slash = strchr (spec, '/');
  CLEANUP_FREE char *pool = slash ? strndup (spec, slash - spec) : NULL;
  CLEANUP_VIR_POOL virStoragePoolPtr p = NULL;
  CLEANUP_VIR_VOL virStorageVolPtr v = NULL;
  CLEANUP_FREE char *path = NULL;
  CLEANUP_FREE char *users = NULL;
  struct stat sb;

  if (pool == NULL) {
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  if (im->conn == NULL && !(im->conn = vmferry_virt_connect (im->opts->uri)))
    return -1;
  p = virStoragePoolLookupByName (im->conn, pool);
  if (p == NULL && virGetLastErrorCode () == VIR_ERR_NO_STORAGE_POOL) {
    /* Undefined since: its volumes are no longer libvirt's to delete. */
    vmferry_notice ("volume %s: storage pool %s is gone", spec, pool);
    return 0;
  }
  if (p == NULL || virStoragePoolRefresh (p, 0) < 0 ||
      virStoragePoolIsActive (p) != 1) {
    vmferry_virt_error ("storage pool %s (not active?)", pool);
    return -1;
  }
  v = virStorageVolLookupByName (p, slash + 1);
  if (v == NULL)
    return 0;
  path = virStorageVolGetPath (v);
  if (path && stat (path, &sb) == 0 &&
      !(users = vmferry_virt_file_users (im->conn, path, &sb, NULL)))
    return -1;
  if (users && users[0]) {
    vmferry_set_error ("volume %s (%s) is used by domain %s: not deleted",
                       spec, path, users);
    return -1;
  }
  if (virStorageVolDelete (v, 0) == 0)
    return 1;
  vmferry_virt_error ("volume %s: delete", spec);
  {
    const char *type = vmferry_virt_pool_block_type (p, pool);
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    if (type == NULL || strcmp (type, "disk") != 0 ||
        parted_rm (p, pool, slash + 1) < 0) {
      vmferry_restore_saved_error (&saved);
      return -1;
    }
  }
  return 1;
}

int
vmferry_import_pool_delete (struct importer *im,
                            struct vmferry_resume_state *st)
{
  int r = 0;

  /* A partition or LV that is held open cannot be removed. */
  for (size_t i = 0; st == &im->st && i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];

    if (!f->in_pool)
      continue;
    vmferry_import_close_file (f);
    if (f->dev_fd >= 0)
      close (f->dev_fd);
    f->dev_fd = -1;
  }
  for (size_t i = 0; i < st->nr_files; i++) {
    struct vmferry_resume_file *rf = &st->files[i];
    int k;

    if (rf->volume == NULL)
      continue;
    k = delete_one (im, rf->volume);
    if (k < 0) {
      vmferry_warn ("%s; delete it by hand if it is the import's (virsh "
                    "vol-delete)", vmferry_get_error ());
      r = -1;
      continue;
    }
    if (k > 0)
      vmferry_notice ("volume %s, created for %s by an import that did not "
                      "finish, deleted", rf->volume, rf->name);
    free (rf->volume);
    rf->volume = NULL;
    rf->volume_made = false;
  }
  return r;
}
