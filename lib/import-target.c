/* vmferry: where an import's files go (see import-int.h): the target
 * directory or pool, the files' final names, and what is in their way.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "import-int.h"
#include "log.h"
#include "names.h"
#include "virt.h"

/* Where libvirt keeps images when nothing else is said. */
#define DEFAULT_IMAGES_DIR "/var/lib/libvirt/images"

/* With --name NEW the copy must not share a file with the original: each
 * file follows the new name.  A name that starts with the old domain
 * name gets the new one in its place ("web01.qcow2" -> "web01-dr.qcow2",
 * "web01_VARS.fd" -> "web01-dr_VARS.fd"); any other gets it in front
 * ("data.img" -> "web01-dr-data.img").
 */
char *
vmferry_import_follow_name (const char *file, const char *old, const char *new)
{
  size_t n = strlen (old);
  char *r;

  if (strncmp (file, old, n) == 0 && file[n] != '\0')
    r = asprintf (&r, "%s%s", new, file + n) < 0 ? NULL : r;
  else
    r = asprintf (&r, "%s-%s", new, file) < 0 ? NULL : r;
  if (r == NULL)
    vmferry_set_error_errno (ENOMEM, "import");
  else if (!vmferry_name_ok (r, 0)) {
    vmferry_set_error ("%s: the name it would take with --name %s, %s, cannot "
                       "be a file name", file, new, r);
    free (r);
    r = NULL;
  }
  return r;
}

/* Fix the name and UUID the domain will have, and every file's final
 * name, from the stream and the options.  Nothing is checked against the
 * host here: see vmferry_import_check_targets, and place.c, which decides at
 * the moment it acts.
 */
int
vmferry_import_plan_names (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  char uuid[37];

  im->src_name = vmferry_domain_get_name (im->doc);
  if (im->src_name == NULL)
    return -1;
  im->name = strdup (opts->new_name ? opts->new_name : im->src_name);
  if (im->name == NULL)
    goto nomem;
  /* The name makes state file names and, without --define, the TPM
   * directory's: one plain component.
   */
  if (!vmferry_name_ok (im->name, VMFERRY_NAME_HIDDEN_OK)) {
    vmferry_set_error ("%s: domain name '%s' cannot be used: it must be usable "
                       "as a file name (no '/', no control characters)",
                       opts->in_name, im->name);
    return -1;
  }
  if (opts->new_name || opts->new_identity) {
    /* A copy beside the original needs its own UUID; generate it here so
     * the TPM state can be placed under it before the define.
     */
    char buf[64] = "";
    FILE *fp = fopen ("/proc/sys/kernel/random/uuid", "re");
    if (fp == NULL || !fgets (buf, sizeof buf, fp)) {
      vmferry_set_error_errno (errno, "cannot generate a UUID");
      if (fp)
        fclose (fp);
      return -1;
    }
    fclose (fp);
    buf[strcspn (buf, "\n")] = '\0';
    im->uuid = strdup (buf);
  }
  else {
    CLEANUP_FREE char *u = vmferry_domain_get_uuid (im->doc);
    if (u == NULL)
      return -1;
    if (vmferry_uuid_canonical (u, uuid) < 0) {
      vmferry_set_error ("%s: the domain's UUID '%s' is not a UUID",
                         opts->in_name, u);
      return -1;
    }
    im->uuid = strdup (uuid);
  }
  if (im->uuid == NULL)
    goto nomem;
  if (!vmferry_name_uuid_ok (im->uuid)) {
    vmferry_set_error ("%s: the domain's UUID '%s' is not a UUID",
                       opts->in_name, im->uuid);
    return -1;
  }

  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];

    if (f->role == VMFERRY_ROLE_TPM) {
      im->has_tpm = true;
      f->final = strdup (f->name);
    }
    else if (opts->new_name && f->volume == NULL)
      f->final = vmferry_import_follow_name (f->name, im->src_name, im->name);
    else if (opts->new_name) {
      /* A volume keeps its pool, and follows the name too. */
      f->final = vmferry_import_follow_name (f->name, im->src_name, im->name);
      if (f->final) {
        free (f->volume);
        f->volume = strdup (f->final);
      }
    }
    else
      f->final = strdup (f->name);
    if (f->final == NULL)
      goto nomem_or_set;
    for (size_t k = 0; k < i; k++)
      if (im->files[k].role != VMFERRY_ROLE_TPM &&
          f->role != VMFERRY_ROLE_TPM &&
          strcmp (im->files[k].final, f->final) == 0) {
        vmferry_set_error ("%s: two files would be named %s", opts->in_name,
                           f->final);
        return -1;
      }
    if (f->role != VMFERRY_ROLE_TPM &&
        !(f->final_path = vmferry_target_path (&im->tgt, f->final)))
      return -1;
  }
  if (im->has_tpm &&
      (opts->define ? !(im->tpm_dir = strdup (im->uuid))
                    : asprintf (&im->tpm_dir, "%s-tpm", im->name) < 0)) {
    im->tpm_dir = NULL;
    goto nomem;
  }
  if (im->tpm_dir && !vmferry_name_ok (im->tpm_dir, VMFERRY_NAME_HIDDEN_OK)) {
    vmferry_set_error ("%s: TPM directory name %s is not a plain name",
                       opts->in_name, im->tpm_dir);
    return -1;
  }
  return 0;
 nomem_or_set:
  if (vmferry_get_error ()[0])
    return -1;
 nomem:
  vmferry_set_error_errno (ENOMEM, "import");
  return -1;
}

/* Open the TPM state's root: libvirt's swtpm directory with --define,
 * else the target directory.
 */
int
vmferry_import_open_tpm_root (struct importer *im)
{
  if (!im->has_tpm)
    return 0;
  if (im->opts->define)
    return vmferry_target_open (&im->tpm_root, VMFERRY_SWTPM_STORAGE, true,
                                0711);
  return vmferry_target_open (&im->tpm_root, im->dir, false, 0);
}

/* Refuse early what the placement would refuse at the end, so that an
 * import that cannot succeed says so before the data crosses: an
 * existing domain or file without --force; with --force, a running
 * domain, or a file another domain uses.  These are advice only: the
 * world can change during the transfer, and place.c checks again at the
 * moment it acts.
 */
int
vmferry_import_check_targets (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  uint64_t need = 0;
  struct statvfs sv;
  struct stat st;
  int r;

  if (opts->define) {
    CLEANUP_VIR_DOMAIN virDomainPtr by_name =
        virDomainLookupByName (im->conn, im->name);
    CLEANUP_VIR_DOMAIN virDomainPtr by_uuid =
        virDomainLookupByUUIDString (im->conn, im->uuid);

    if (by_uuid && strcmp (virDomainGetName (by_uuid), im->name) != 0) {
      vmferry_set_error ("domain %s already exists with this UUID (%s); "
                         "import it as a copy with --name NEW",
                         virDomainGetName (by_uuid), im->uuid);
      return -1;
    }
    if (by_name) {
      r = vmferry_place_already (im);
      if (r < 0)
        return -1;
      if (r > 0) {
        im->already = true;
        return 0;
      }
    }
    if (by_name && !opts->force) {
      vmferry_set_error ("domain %s already exists on this host (use --force "
                         "to replace it once the new copy is verified, or "
                         "--name NEW)", im->name);
      return -1;
    }
    if (by_name && virDomainIsActive (by_name) != 0) {
      vmferry_set_error ("domain %s exists and is running: it cannot be "
                         "replaced", im->name);
      return -1;
    }
  }
  if (opts->force && im->conn == NULL &&
      !(im->conn = vmferry_virt_connect (opts->uri))) {
    vmferry_prefix_error ("--force: cannot check which domains use the files "
                          "it would replace");
    return -1;
  }
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];

    bool in_pool = im->pool_type && f->role == VMFERRY_ROLE_DISK;

    if (!in_pool)
      need += f->allocated;
    /* A disk on its device (--disk) or in a volume of a block pool has
     * no file of its own here.
     */
    if (f->role == VMFERRY_ROLE_TPM || f->device || in_pool)
      continue;
    r = vmferry_target_stat (&im->tgt, f->final, &st);
    if (r < 0)
      return -1;
    if (r == 0)
      continue;
    if (!opts->force) {
      vmferry_set_error ("%s: already exists (use --force to replace it once "
                         "the new copy is verified)", f->final_path);
      return -1;
    }
    if (!S_ISREG (st.st_mode) || st.st_nlink != 1) {
      vmferry_set_error ("%s: exists and is not a plain file (a regular file "
                         "with one link): not replaced", f->final_path);
      return -1;
    }
    if (im->conn && vmferry_place_file_users (im, f) < 0)
      return -1;
  }
  if (im->tpm_dir) {
    r = vmferry_target_stat (&im->tpm_root, im->tpm_dir, &st);
    if (r < 0)
      return -1;
    if (r > 0 && !opts->force) {
      vmferry_set_error ("%s/%s: TPM state already exists (use --force to "
                         "replace it once the new copy is verified)",
                         im->tpm_root.path, im->tpm_dir);
      return -1;
    }
  }
  /* Refuse early rather than fill the disk: holes take no space. */
  if (fstatvfs (im->tgt.fd, &sv) == 0 &&
      (uint64_t) sv.f_bavail * sv.f_frsize < need) {
    char a[32], b[32];
    vmferry_human_size (need, a, sizeof a);
    vmferry_human_size ((uint64_t) sv.f_bavail * sv.f_frsize, b, sizeof b);
    vmferry_set_error ("%s: not enough free space: the files need %s, %s are "
                       "free", im->dir, a, b);
    return -1;
  }
  return 0;
}

/* The target path of a directory-backed pool (dir, fs, netfs), or NULL
 * with the error set.
 */
static char *
pool_path (virStoragePoolPtr p, const char *pool)
{
  CLEANUP_FREE char *xml = virStoragePoolGetXMLDesc (p, 0);
  char *start, *end;

  if (xml == NULL) {
    vmferry_virt_error ("storage pool %s", pool);
    return NULL;
  }
  if (strstr (xml, "<pool type='logical'") != NULL ||
      strstr (xml, "<pool type='disk'") != NULL) {
    /* Its target is a directory of device nodes (/dev/VG): never a place
     * to create files in (import-pool.c makes volumes there).
     */
    vmferry_set_error ("storage pool %s: its volumes are block devices, not "
                       "files", pool);
    return NULL;
  }
  if (strstr (xml, "<pool type='dir'") == NULL &&
      strstr (xml, "<pool type='fs'") == NULL &&
      strstr (xml, "<pool type='netfs'") == NULL) {
    vmferry_set_error ("storage pool %s: only directory-backed pools (dir, fs, "
                       "netfs) are supported", pool);
    return NULL;
  }
  start = strstr (xml, "<target>");
  start = start ? strstr (start, "<path>") : NULL;
  end = start ? strstr (start, "</path>") : NULL;
  if (end == NULL) {
    vmferry_set_error ("storage pool %s: no target path", pool);
    return NULL;
  }
  start += strlen ("<path>");
  return strndup (start, end - start);
}

/* The directory of a directory-backed pool; of a block pool (disk,
 * logical: *TYPE_RTN says which, else NULL), libvirt's image directory,
 * where the files that are not disks and the import's state go
 * (import-pool.c).
 */
char *
vmferry_import_pool_dir (virConnectPtr conn, const char *pool,
                         const char **type_rtn)
{
  CLEANUP_VIR_POOL virStoragePoolPtr p =
      virStoragePoolLookupByName (conn, pool);
  const char *type;

  *type_rtn = NULL;
  if (p == NULL) {
    vmferry_virt_error ("storage pool %s", pool);
    return NULL;
  }
  type = vmferry_virt_pool_block_type (p, pool);
  if (type == NULL)
    return NULL;
  if (type[0]) {
    char *dir;

    if (vmferry_virt_pool_usable (p, pool, type) < 0)
      return NULL;
    dir = strdup (DEFAULT_IMAGES_DIR);
    if (dir == NULL)
      vmferry_set_error_errno (ENOMEM, "import");
    *type_rtn = type;
    return dir;
  }
  {
    /* Its type first: an inactive pool of a kind that cannot be used
     * says so.
     */
    char *path = pool_path (p, pool);

    if (path == NULL)
      return NULL;
    if (virStoragePoolIsActive (p) != 1) {
      free (path);
      vmferry_set_error ("storage pool %s is not active (virsh pool-start %s)",
                         pool, pool);
      return NULL;
    }
    return path;
  }
}

/* Volume disks in the stream name their pool: all the same one, and the
 * one --pool gives, if any; --dir cannot place a volume.
 */
int
vmferry_import_pool_from_manifest (struct importer *im)
{
  const char *pool = NULL;

  for (size_t i = 0; i < im->nr_files; i++) {
    const struct import_file *f = &im->files[i];
    if (f->pool == NULL)
      continue;
    if (pool && strcmp (pool, f->pool) != 0) {
      vmferry_set_error ("%s: the disks are volumes of two pools (%s, %s): "
                         "import them with --dir, after vmferry-rewrite --pool "
                         "moved them into one",
                         im->opts->in_name, pool, f->pool);
      return -1;
    }
    pool = f->pool;
  }
  if (pool == NULL)
    return 0;
  if (im->opts->dir) {
    vmferry_set_error ("%s: the disks are volumes of pool %s: import without "
                       "--dir (or with --pool %s)",
                       im->opts->in_name, pool, pool);
    return -1;
  }
  if (im->opts->pool && strcmp (im->opts->pool, pool) != 0) {
    vmferry_set_error ("%s: the disks are volumes of pool %s, not of %s",
                       im->opts->in_name, pool, im->opts->pool);
    return -1;
  }
  if (im->pool == NULL && !(im->pool = strdup (pool))) {
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  return 0;
}

/* Without --dir or --pool the stream names the directory (the directory
 * of its first disk, as vmferry-rewrite --map-path left it: the scripted
 * pipeline "export | rewrite --map-path OLD=NEW | ssh dst vmferry-import
 * --define").  A stream must not choose just any directory of the host,
 * so it is taken only if it is where this host keeps images: the target
 * of one of its active directory pools, or libvirt's default image
 * directory.  Returns 1 if DIR is one, 0 if not, -1 on error.
 */
static int
known_storage (struct importer *im, const char *dir)
{
  virStoragePoolPtr *pools = NULL;
  struct stat want, st;
  int n, found = 0;

  if (stat (dir, &want) < 0)
    return 0;
  if (stat (DEFAULT_IMAGES_DIR, &st) == 0 && st.st_dev == want.st_dev &&
      st.st_ino == want.st_ino)
    return 1;
  if (im->conn == NULL && !(im->conn = vmferry_virt_connect (im->opts->uri)))
    return -1;
  n = virConnectListAllStoragePools (im->conn, &pools,
                                     VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE);
  if (n < 0) {
    vmferry_virt_error ("cannot list the storage pools");
    return -1;
  }
  for (int i = 0; i < n; i++) {
    struct vmferry_saved_error saved;
    CLEANUP_FREE char *path = NULL;

    vmferry_save_error (&saved);
    path = found ? NULL
                 : pool_path (pools[i], virStoragePoolGetName (pools[i]));
    vmferry_restore_saved_error (&saved);
    if (path && stat (path, &st) == 0 && st.st_dev == want.st_dev &&
        st.st_ino == want.st_ino)
      found = 1;
    virStoragePoolFree (pools[i]);
  }
  free (pools);
  return found;
}

int
vmferry_import_dir_from_manifest (struct importer *im)
{
  const char *path = NULL;
  char *slash;
  int r;

  if (im->pool) {
    if (im->conn == NULL && !(im->conn = vmferry_virt_connect (im->opts->uri)))
      return -1;
    im->dir = vmferry_import_pool_dir (im->conn, im->pool, &im->pool_type);
    if (im->dir == NULL)
      return -1;
    vmferry_verbose ("the disks are volumes of pool %s: writing %s %s",
                     im->pool, im->pool_type ? "the other files into"
                                             : "into", im->dir);
    return vmferry_target_open (&im->tgt, im->dir, false, 0);
  }
  for (size_t i = 0; i < im->nr_files && !path; i++)
    if (im->files[i].role == VMFERRY_ROLE_DISK)
      path = im->files[i].source_path;
  if (path == NULL) {
    vmferry_set_error ("%s: the stream has no disk to take a directory from: "
                       "give --dir or --pool", im->opts->in_name);
    return -1;
  }
  if (path[0] != '/' || strstr (path, "/../") || strstr (path, "/./") ||
      strstr (path, "//") || strlen (path) > PATH_MAX) {
    vmferry_set_error ("%s: disk path %s is not a plain absolute path: give "
                       "--dir or --pool", im->opts->in_name, path);
    return -1;
  }
  im->dir = strdup (path);
  if (im->dir == NULL) {
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  slash = strrchr (im->dir, '/');
  if (slash == im->dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  r = known_storage (im, im->dir);
  if (r < 0)
    return -1;
  if (r == 0) {
    vmferry_set_error ("%s: the stream puts its disks in %s, which is neither "
                       "a storage pool of this host nor %s: give --dir %s (or "
                       "--pool) if that is where they belong",
                       im->opts->in_name, im->dir, DEFAULT_IMAGES_DIR, im->dir);
    return -1;
  }
  vmferry_verbose ("no --dir: writing into %s, the directory of the first disk",
                   im->dir);
  return vmferry_target_open (&im->tgt, im->dir, false, 0);
}

/* The target the domain XML (its files DF, N of them) gives the disk
 * that is file F now: a rewrite may have moved it (--disk-bus), so the
 * disk is found by its source path, and F's own target (the one the
 * stream named) is the answer only when no disk has that path.
 */
const char *
vmferry_import_doc_target (const struct vmferry_domain_file *df, size_t n,
                           const struct import_file *f)
{
  for (size_t k = 0; k < n; k++)
    if (df[k].role == VMFERRY_ROLE_DISK && df[k].path && f->source_path &&
        strcmp (df[k].path, f->source_path) == 0)
      return df[k].target;
  return f->target;
}
