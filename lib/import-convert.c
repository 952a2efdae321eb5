/* vmferry: formats on arrival (import --format, --flatten) and disks
 * that land on a block device (import --disk TARGET=DEVICE).
 *
 * The stream's digests are of the bytes sent, so every file is first
 * received and verified as it was sent, under its temporary name, as any
 * import does.  Only then is a disk converted: qemu-img reads the
 * verified chain through QEMU's JSON description of its nodes (every
 * driver named, so nothing is probed, and every backing file named, so
 * no header's backing name is followed) and writes the new file or the
 * device; qemu-img compare then checks that the guest sees the same
 * bytes in the result as in the received chain.  Only a result that
 * compares identical replaces the received files, still before anything
 * is placed or defined.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cleanup-libc.h"
#include "domain.h"
#include "error.h"
#include "fault.h"
#include "imagelock.h"
#include "import-int.h"
#include "log.h"
#include "qemu-img.h"
#include "resume.h"
#include "xmlnode.h"

/* The node of file I of IM and the files below it, under their
 * temporary names: {"driver": FORMAT, "file": {"driver": "file",
 * "filename": PATH}, "backing": NODE or null}.  NULL with the error set.
 */
static json_object *
chain_node (const struct importer *im, int i)
{
  const struct import_file *f = &im->files[i];
  CLEANUP_FREE char *path = vmferry_target_path (&im->tgt, f->tmp);
  json_object *node = json_object_new_object ();
  json_object *file = json_object_new_object ();
  json_object *b = NULL;

  if (path == NULL || node == NULL || file == NULL)
    goto fail;
  if (f->backing >= 0 && (b = chain_node (im, f->backing)) == NULL)
    goto fail;
  json_object_object_add (file, "driver", json_object_new_string ("file"));
  json_object_object_add (file, "filename", json_object_new_string (path));
  json_object_object_add (node, "driver", json_object_new_string (f->format));
  json_object_object_add (node, "file", file);
  /* A qcow2 base names no backing file (check_arrival saw to it), and
   * null says so to QEMU as well.
   */
  if (strcmp (f->format, "qcow2") == 0 || b)
    json_object_object_add (node, "backing", b);
  return node;
 fail:
  json_object_put (file);
  json_object_put (node);
  if (path)
    vmferry_set_error_errno (ENOMEM, "conversion");
  return NULL;
}

/* NODE as a "json:" file name for qemu-img.  Takes NODE.  NULL with the
 * error set.
 */
static char *
json_name (json_object *node)
{
  char *s = NULL;

  if (node == NULL)
    return NULL;
  if (asprintf (&s, "json:%s",
                json_object_to_json_string_ext (node,
                                                JSON_C_TO_STRING_PLAIN |
                                                JSON_C_TO_STRING_NOSLASHESCAPE))
      < 0) {
    s = NULL;
    vmferry_set_error_errno (ENOMEM, "conversion");
  }
  json_object_put (node);
  return s;
}

/* A FORMAT node over the file or device PATH (DRIVER "file" or
 * "host_device"); with SIZE, only its first SIZE bytes (a device larger
 * than the disk).
 */
static json_object *
leaf_node (const char *format, const char *driver, const char *path,
           uint64_t size)
{
  json_object *node = json_object_new_object ();
  json_object *file = json_object_new_object ();

  if (node == NULL || file == NULL) {
    json_object_put (node);
    json_object_put (file);
    vmferry_set_error_errno (ENOMEM, "conversion");
    return NULL;
  }
  json_object_object_add (file, "driver", json_object_new_string (driver));
  json_object_object_add (file, "filename", json_object_new_string (path));
  json_object_object_add (node, "driver", json_object_new_string (format));
  json_object_object_add (node, "file", file);
  if (size)
    json_object_object_add (node, "size", json_object_new_int64 ((int64_t)
                                                                 size));
  if (strcmp (format, "qcow2") == 0)
    json_object_object_add (node, "backing", NULL);
  return node;
}

/* The device of disk F (--disk, or a block pool's new volume), checked:
 * a block device that no file system, device-mapper or md device holds
 * (the kernel refuses an exclusive open of one that is mounted or
 * claimed) and no QEMU has open, at least as large as the disk.  The
 * exclusive open is kept on f->dev_fd until the import ends, so it
 * cannot be mounted meanwhile.  Nothing is written.
 */
int
vmferry_import_check_device (struct importer *im, struct import_file *f)
{
  struct vmferry_image_lock lock;
  struct stat before, sb;
  uint64_t bytes = 0;
  char who[96];
  int fd;

  /* Looked at before it is opened: opening a FIFO or a character device
   * can block or act (a tape rewinds).
   */
  if (stat (f->device, &before) < 0) {
    vmferry_set_error_errno (errno, "disk %s: %s", f->target, f->device);
    return -1;
  }
  if (!S_ISBLK (before.st_mode)) {
    vmferry_set_error ("disk %s: %s is not a block device (--disk names an "
                       "existing block device)", f->target, f->device);
    return -1;
  }
  fd = open (f->device, O_RDWR | O_EXCL | O_CLOEXEC);
  if (fd < 0 && errno == EBUSY) {
    vmferry_set_error ("disk %s: %s is mounted or in use (a file system, "
                       "swap, a device-mapper or md device holds it): not "
                       "written", f->target, f->device);
    return -1;
  }
  if (fd < 0) {
    vmferry_set_error_errno (errno, "disk %s: %s", f->target, f->device);
    return -1;
  }
  f->dev_fd = fd;
  if (fstat (fd, &sb) < 0) {
    vmferry_set_error_errno (errno, "disk %s: %s", f->target, f->device);
    return -1;
  }
  if (!S_ISBLK (sb.st_mode) || sb.st_rdev != before.st_rdev) {
    vmferry_set_error ("disk %s: %s changed while it was opened", f->target,
                       f->device);
    return -1;
  }
  if (vmferry_image_lock_holder (fd, f->device, &lock) > 0) {
    vmferry_set_error ("disk %s: %s is in use by %s: not written", f->target,
                       f->device, vmferry_image_lock_who (&lock, who,
                                                          sizeof who));
    return -1;
  }
  if (ioctl (fd, BLKGETSIZE64, &bytes) < 0) {
    vmferry_set_error_errno (errno, "disk %s: %s: size", f->target, f->device);
    return -1;
  }
  if (bytes < f->guest_size) {
    vmferry_set_error ("disk %s: %s is too small: %" PRIu64 " bytes, the disk "
                       "is %" PRIu64 "; nothing was written to it", f->target,
                       f->device, bytes, f->guest_size);
    return -1;
  }
  if (im->conn && vmferry_place_file_users (im, f) < 0)
    return -1;
  return 0;
}

int
vmferry_import_check_devices (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;

  for (size_t k = 0; k < opts->n_disks; k++) {
    const char *arg = opts->disks[k];
    const char *eq = strchr (arg, '=');
    struct import_file *f = NULL;

    for (size_t i = 0; eq && i < im->nr_files && f == NULL; i++)
      if (im->files[i].role == VMFERRY_ROLE_DISK && im->files[i].target &&
          strlen (im->files[i].target) == (size_t) (eq - arg) &&
          strncmp (im->files[i].target, arg, eq - arg) == 0)
        f = &im->files[i];
    if (f == NULL) {
      vmferry_set_error ("--disk %s: the stream has no disk of this target",
                         arg);
      return -1;
    }
    if (f->device) {
      vmferry_set_error ("--disk %s: disk %s is named twice", arg, f->target);
      return -1;
    }
    for (size_t i = 0; i < im->nr_files; i++)
      if (im->files[i].device && strcmp (im->files[i].device, eq + 1) == 0) {
        vmferry_set_error ("--disk %s: %s is named for disk %s too", arg,
                           eq + 1, im->files[i].target);
        return -1;
      }
    free (f->final_path);
    if (!(f->device = strdup (eq + 1)) ||
        !(f->final_path = strdup (eq + 1))) {
      vmferry_set_error_errno (ENOMEM, "import");
      return -1;
    }
    if (vmferry_import_check_device (im, f) < 0)
      return -1;
    f->direct = vmferry_import_device_direct (im, f);
  }
  return 0;
}

/* The <disk> that is file F in IM's domain XML (found by its source
 * path: its target may not be the one the stream named): its driver
 * says FORMAT, and with FLATTENED the chain noted under it goes.
 */
static int
set_disk_xml (struct importer *im, const struct import_file *f,
              const char *format, bool flattened)
{
  xmlNodePtr devices = vmferry_xml_child (xmlDocGetRootElement (im->doc),
                                          "devices");
  struct vmferry_domain_file *df = NULL;
  size_t nr_df = 0;
  CLEANUP_FREE char *target = NULL;
  int changes = 0;

  /* A rewrite may have given the disk another target (--disk-bus). */
  if (vmferry_domain_files (im->doc, false, &df, &nr_df) < 0)
    return -1;
  {
    const char *t = vmferry_import_doc_target (df, nr_df, f);

    target = t ? strdup (t) : NULL;
  }
  vmferry_domain_files_free (df, nr_df);
  if (target == NULL) {
    vmferry_set_error_errno (ENOMEM, "domain XML");
    return -1;
  }

  for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next) {
    CLEANUP_FREE char *t = NULL;
    xmlNodePtr driver, bs;

    if (!vmferry_xml_is_elem (n, "disk"))
      continue;
    t = vmferry_xml_attr (vmferry_xml_child (n, "target"), "dev");
    if (t == NULL || strcmp (t, target) != 0)
      continue;
    driver = vmferry_xml_child (n, "driver");
    if (driver == NULL) {
      driver = xmlNewNode (NULL, BAD_CAST "driver");
      if (driver == NULL ||
          vmferry_xml_set_attr (driver, "name", "qemu", &changes) < 0 ||
          vmferry_xml_prepend_child (n, driver) < 0) {
        xmlFreeNode (driver);
        vmferry_set_error_errno (ENOMEM, "domain XML");
        return -1;
      }
    }
    if (vmferry_xml_set_attr (driver, "type", format, &changes) < 0)
      return -1;
    while (flattened && (bs = vmferry_xml_child (n, "backingStore")) != NULL)
      vmferry_xml_remove (bs);
    return 0;
  }
  vmferry_set_error ("domain XML: no disk %s", target);
  return -1;
}

/* Whether file I is the backing file of a file that is kept. */
static bool
still_backing (const struct importer *im, size_t i)
{
  for (size_t k = 0; k < im->nr_files; k++)
    if (!im->files[k].dropped && im->files[k].backing == (int) i)
      return true;
  return false;
}

/* Disk F onto its device: the guest's view of the verified chain,
 * written raw (qemu-img writes zero runs as the kernel's write-zeroes,
 * which unmaps only where the device guarantees zeros, and skips
 * nothing: what the device held before is gone), then compared.
 */
static int
to_device (struct importer *im, struct import_file *f)
{
  CLEANUP_FREE char *src = json_name (chain_node (im, f - im->files));
  CLEANUP_FREE char *dst = NULL;

  if (src == NULL ||
      !(dst = json_name (leaf_node ("raw", "host_device", f->device,
                                    f->guest_size))))
    return -1;
  {
    char *argv[] = { (char *) "qemu-img", (char *) "convert", (char *) "-q",
                     (char *) "-n", (char *) "-t", (char *) "none",
                     (char *) "--target-image-opts", src, dst, NULL };
    CLEANUP_FREE char *opts = NULL;

    /* --target-image-opts takes key=value; the JSON form is accepted
     * there as a "json:" file name too.
     */
    if (asprintf (&opts, "file.driver=host_device,file.filename=%s,"
                  "driver=raw,size=%" PRIu64, f->device,
                  f->guest_size) < 0) {
      vmferry_set_error_errno (ENOMEM, "conversion");
      return -1;
    }
    if (strchr (f->device, ',') != NULL) {
      vmferry_set_error ("disk %s: %s: a device name with a comma is not "
                         "supported", f->target, f->device);
      return -1;
    }
    argv[8] = opts;
    if (vmferry_qemu_img (argv) < 0) {
      vmferry_prefix_error ("disk %s: writing %s", f->target, f->device);
      return -1;
    }
  }
  {
    char *argv[] = { (char *) "qemu-img", (char *) "compare", (char *) "-q",
                     src, dst, NULL };

    if (vmferry_qemu_img (argv) < 0) {
      vmferry_set_error ("disk %s: %s does not read back as the verified "
                         "copy: not defined", f->target, f->device);
      return -1;
    }
  }
  return 0;
}

/* Disk F converted to FORMAT (flattened if it has a backing file) into a
 * new temporary file, compared with the verified chain; its name into
 * *TMP_RTN.
 */
static int
to_file (struct importer *im, struct import_file *f, const char *format,
         char **tmp_rtn)
{
  CLEANUP_FREE char *src = json_name (chain_node (im, f - im->files));
  CLEANUP_FREE char *path = NULL;
  CLEANUP_FREE char *dst = NULL;
  char *tmp = NULL;
  int fd;

  if (src == NULL)
    return -1;
  /* Named after the received file, which the state names: a kill leaves
   * what the next run or --abort finds and removes.  Made here with
   * O_EXCL, so never a link someone put there.
   */
  if ((tmp = vmferry_resume_converted_name (f->tmp)) == NULL)
    return -1;
  if ((fd = vmferry_target_create (&im->tgt, tmp, O_RDWR, 0644, false)) < 0) {
    free (tmp);
    return -1;
  }
  close (fd);
  if (!(path = vmferry_target_path (&im->tgt, tmp)) ||
      !(dst = json_name (leaf_node (format, "file", path, 0))))
    goto fail;
  {
    char *argv[] = { (char *) "qemu-img", (char *) "convert", (char *) "-q",
                     (char *) "-O", (char *) format, src, path, NULL };

    if (vmferry_qemu_img (argv) < 0) {
      vmferry_prefix_error ("disk %s: conversion to %s", f->target, format);
      goto fail;
    }
  }
  {
    char *argv[] = { (char *) "qemu-img", (char *) "compare", (char *) "-q",
                     src, dst, NULL };

    if (vmferry_qemu_img (argv) < 0) {
      vmferry_set_error ("disk %s: the %s copy does not read as the verified "
                         "copy: not defined", f->target, format);
      goto fail;
    }
  }
  *tmp_rtn = tmp;
  return 0;
 fail:
  if (tmp)
    vmferry_target_unlink (&im->tgt, tmp);
  free (tmp);
  return -1;
}

int
vmferry_import_convert (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  bool dropped_some = false;

  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    const char *format = opts->format ? opts->format : f->format;
    bool flatten = f->backing >= 0 &&
                   (opts->flatten || strcmp (format, "qcow2") != 0);
    CLEANUP_FREE char *tmp = NULL;

    if (f->role != VMFERRY_ROLE_DISK)
      continue;
    if (f->device) {
      /* A raw disk is on its device already, read back and verified. */
      if (!f->direct && to_device (im, f) < 0)
        return -1;
      format = "raw";
      flatten = true;
    }
    else if (strcmp (format, f->format) != 0 || flatten) {
      if (to_file (im, f, format, &tmp) < 0)
        return -1;
    }
    else
      continue;
    if (vmferry_fault ("import-converted") < 0 || f->target == NULL ||
        set_disk_xml (im, f, format, f->backing >= 0) < 0) {
      if (tmp)
        vmferry_target_unlink (&im->tgt, tmp);
      return -1;
    }
    if (f->direct)
      vmferry_notice ("disk %s: written to %s and read back as sent",
                      f->target, f->device);
    else
      vmferry_notice ("disk %s: %s%s%s, compared with the verified copy",
                      f->target, f->device ? "written to " : "converted to ",
                      f->device ? f->device : format,
                      flatten && f->backing >= 0 ? " (flattened)" : "");
    /* The result stands for the received file from now on: the state
     * names it first (so a kill leaves nothing unnamed), then the
     * received one goes.  A later run finds a file that is not as sent
     * and starts again.
     */
    {
      char *old = f->tmp;
      struct vmferry_resume_file *rf = im->keep_state ? &im->st.files[i]
                                                      : NULL;

      f->tmp = tmp;
      tmp = old;
      if (rf) {
        /* For a later run, the file is not received yet (a converted file
         * is not as sent): it starts afresh, resent or discarded.  A disk
         * on its device keeps the received name, which is then gone.
         */
        if (f->tmp) {
          free (rf->tmp);
          if (!(rf->tmp = strdup (f->tmp))) {
            vmferry_set_error_errno (ENOMEM, "import");
            return -1;
          }
        }
        rf->changed = false;
        rf->offset = 0;
        rf->nr_claims = 0;
        /* Complete on its device: no longer what a kill left there. */
        free (rf->device);
        rf->device = NULL;
        if (vmferry_import_save_state (im, -1, 0) < 0 ||
            vmferry_fault ("import-convert-recorded") < 0)
          return -1;
      }
      if (tmp)
        vmferry_target_unlink (&im->tgt, tmp);
    }
    if (format != f->format) {
      char *dup = strdup (format);
      if (dup == NULL) {
        vmferry_set_error_errno (ENOMEM, "import");
        return -1;
      }
      free (f->format);
      f->format = dup;
    }
    if (f->backing >= 0)
      dropped_some = true;
    f->backing = -1;
  }
  /* The files below a flattened disk that no kept file still needs. */
  while (dropped_some) {
    dropped_some = false;
    for (size_t i = 0; i < im->nr_files; i++) {
      struct import_file *f = &im->files[i];

      if (f->role != VMFERRY_ROLE_BACKING || f->dropped ||
          still_backing (im, i))
        continue;
      f->dropped = true;
      dropped_some = true;
      /* Removed while the state still names it: a kill in between
       * leaves a state that names a missing file, which the next run
       * discards.
       */
      if (f->tmp)
        vmferry_target_unlink (&im->tgt, f->tmp);
      if (im->keep_state) {
        im->st.files[i].offset = 0;
        im->st.files[i].nr_claims = 0;
        im->st.files[i].changed = false;
        if (vmferry_import_save_state (im, -1, 0) < 0)
          return -1;
      }
      free (f->tmp);
      f->tmp = NULL;
    }
  }
  return 0;
}
