/* vmferry: import --verify-guest, the guest's filesystems checked in the
 * verified copy before anything is placed or defined (see guest.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cleanup-libc.h"
#include "domain.h"
#include "error.h"
#include "guest.h"
#include "import-int.h"
#include "log.h"
#include "qemu-img.h"
#include "vector.h"

DEFINE_VECTOR_TYPE (disk_vector, struct vmferry_guest_disk);

/* The qcow2 header keeps at most this many bytes of a backing name. */
#define QCOW2_BACKING_MAX 1023

/* File I of IM and the files below it, as QEMU's JSON description of a
 * chain of nodes: {"driver": FORMAT, "file": {"driver": "file",
 * "filename": TEMPORARY PATH}, "backing": ...}.  NULL with the error
 * set.
 */
static json_object *
chain_json (const struct importer *im, int i)
{
  const struct import_file *f = &im->files[i];
  CLEANUP_FREE char *path = vmferry_target_path (&im->tgt, f->tmp);
  json_object *node = NULL, *file = NULL, *b = NULL;

  if (path == NULL)
    return NULL;
  if (f->backing >= 0 && (b = chain_json (im, f->backing)) == NULL)
    return NULL;
  node = json_object_new_object ();
  file = json_object_new_object ();
  if (node && file &&
      json_object_object_add (file, "driver",
                              json_object_new_string ("file")) == 0 &&
      json_object_object_add (file, "filename",
                              json_object_new_string (path)) == 0 &&
      json_object_object_add (node, "driver",
                              json_object_new_string (f->format)) == 0 &&
      json_object_object_add (node, "file", file) == 0) {
    file = NULL;                /* the node's now */
    if (b == NULL || json_object_object_add (node, "backing", b) == 0)
      return node;
  }
  json_object_put (b);
  json_object_put (file);
  json_object_put (node);
  vmferry_set_error_errno (ENOMEM, "guest check");
  return NULL;
}

/* The appliance must see disk I with its whole backing chain, but the
 * files are still under their temporary names and an overlay's header
 * names its backing file by its final name, which does not exist yet.
 * (A link under the final name does not do: libguestfs resolves links.)
 * So the appliance gets, in the private directory DIR, a new empty
 * qcow2 overlay whose backing file is the chain spelled out in QEMU's
 * JSON syntax with the temporary names: every file opened read-only,
 * none changed.  Its path into *PATH_RTN.
 */
static int
chain_overlay (const struct importer *im, int i, const char *dir,
               char **path_rtn)
{
  const struct import_file *f = &im->files[i];
  json_object *chain = chain_json (im, i);
  CLEANUP_FREE char *backing = NULL;
  char *path = NULL;

  if (chain == NULL)
    return -1;
  if (asprintf (&backing, "json:%s",
                json_object_to_json_string_ext (chain,
                                                JSON_C_TO_STRING_PLAIN |
                                                JSON_C_TO_STRING_NOSLASHESCAPE))
      == -1 || asprintf (&path, "%s/%zu.qcow2", dir, (size_t) i) == -1) {
    json_object_put (chain);
    vmferry_set_error_errno (ENOMEM, "guest check");
    return -1;
  }
  json_object_put (chain);
  if (strlen (backing) > QCOW2_BACKING_MAX) {
    vmferry_set_error ("%s: its backing chain is too long to describe to "
                       "the appliance (%zu bytes, at most %d)", f->final,
                       strlen (backing), QCOW2_BACKING_MAX);
    free (path);
    return -1;
  }
  {
    char *argv[] = { (char *) "qemu-img", (char *) "create", (char *) "-q",
                     (char *) "-f", (char *) "qcow2", (char *) "-F",
                     f->format, (char *) "-b", backing, path, NULL };

    if (vmferry_qemu_img (argv) < 0) {
      vmferry_prefix_error ("%s: an overlay for the check", f->final);
      free (path);
      return -1;
    }
  }
  *path_rtn = path;
  return 0;
}

int
vmferry_import_verify_guest (struct importer *im)
{
  const char *tmpdir = getenv ("TMPDIR");
  CLEANUP_FREE char *dir = NULL;
  CLEANUP_VECTOR struct disk_vector disks = VECTOR_INIT;
  struct vmferry_guest *g = NULL;
  struct vmferry_guest_check *checks = NULL;
  char **paths = NULL;
  size_t nr = 0;
  int damaged = -1;

  if (asprintf (&dir, "%s/vmferry-guest-XXXXXX",
                tmpdir && tmpdir[0] ? tmpdir : "/tmp") == -1) {
    dir = NULL;
    vmferry_set_error_errno (ENOMEM, "guest check");
    return -1;
  }
  if (mkdtemp (dir) == NULL) {
    vmferry_set_error_errno (errno, "%s", dir);
    return -1;
  }
  paths = calloc (im->nr_files + 1, sizeof *paths);
  if (paths == NULL) {
    vmferry_set_error_errno (errno, "guest check");
    goto out;
  }
  for (size_t i = 0; i < im->nr_files; i++) {
    const struct import_file *f = &im->files[i];
    struct vmferry_guest_disk d = { .format = f->format,
                                    .target = f->target };

    if (f->role != VMFERRY_ROLE_DISK)
      continue;
    if (f->backing >= 0) {
      if (chain_overlay (im, i, dir, &paths[i]) < 0)
        goto out;
      d.format = "qcow2";
    }
    else if ((paths[i] = vmferry_target_path (&im->tgt, f->tmp)) == NULL)
      goto out;
    d.path = paths[i];
    if (disk_vector_append (&disks, d) == -1) {
      vmferry_set_error_errno (errno, "guest check");
      goto out;
    }
  }
  if (vmferry_guest_open (disks.ptr, disks.len, &g) == 0)
    damaged = vmferry_guest_check_filesystems (g, &checks, &nr);

 out:
  vmferry_guest_close (g);
  for (size_t i = 0; paths && i < im->nr_files; i++) {
    const struct import_file *f = &im->files[i];

    if (paths[i] && f->backing >= 0 && unlink (paths[i]) == -1)
      vmferry_debug ("%s: cannot remove: %s", paths[i], strerror (errno));
    free (paths[i]);
  }
  free (paths);
  if (rmdir (dir) == -1)
    vmferry_debug ("%s: cannot remove: %s", dir, strerror (errno));
  if (damaged < 0) {
    vmferry_prefix_error ("domain %s: guest check", im->name);
    return -1;
  }
  for (size_t i = 0; i < nr; i++)
    vmferry_notice ("%s: %s (%s): %s: %s", im->name, checks[i].device,
                    checks[i].type,
                    vmferry_guest_state_name (checks[i].state),
                    checks[i].why);
  vmferry_guest_checks_free (checks, nr);
  if (damaged > 0) {
    vmferry_set_error ("domain %s: %d filesystem%s damaged in the copy "
                       "(the copy is verified against the source: the "
                       "source's are too)", im->name, damaged,
                       damaged == 1 ? " is" : "s are");
    return -1;
  }
  return 0;
}
