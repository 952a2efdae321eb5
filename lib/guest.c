/* vmferry: looking inside a guest's disks (see guest.h). */

#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestfs.h>

#include "cleanup-libc.h"
#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "fault.h"
#include "guest.h"
#include "log.h"
#include "text.h"
#include "vector.h"
#include "virt.h"

struct vmferry_guest {
  guestfs_h *h;
  size_t nr_disks;
  char **targets;               /* target of disk i ("vda") */
};

/* Set the error from the appliance H's last one: "guest appliance:
 * WHAT: its message".  Only the message's first line: libguestfs goes
 * on with generic advice on debugging (its FAQ, libguestfs-test-tool),
 * replaced by the one setting that shows why.
 */
void
vmferry_guest_set_error (struct guestfs_h *h, const char *what)
{
  const char *msg = guestfs_last_error (h);
  size_t len = msg ? strcspn (msg, "\n") : 0;

  if (msg && msg[len])
    vmferry_set_error ("guest appliance: %s: %.*s (LIBGUESTFS_DEBUG=1 "
                       "shows why)", what, (int) len, msg);
  else
    vmferry_set_error ("guest appliance: %s: %s", what,
                       msg ? msg : "failed");
}

static void
guest_error (struct vmferry_guest *g, const char *what)
{
  vmferry_guest_set_error (g->h, what);
}

/* The appliance's errors come back through vmferry_guest_set_error;
 * libguestfs must not print them (the library never prints).
 */
static void
guest_quiet (guestfs_h *h)
{
  guestfs_set_error_handler (h, NULL, NULL);
}

void
vmferry_guest_close (struct vmferry_guest *g)
{
  if (g == NULL)
    return;
  if (g->h) {
    /* Shut the appliance down before freeing it, so its end is seen
     * (guestfs_close alone kills it).
     */
    if (guestfs_shutdown (g->h) == -1)
      vmferry_debug ("guest appliance: shutdown: %s",
                     guestfs_last_error (g->h));
    guestfs_close (g->h);
  }
  for (size_t i = 0; i < g->nr_disks; i++)
    free (g->targets[i]);
  free (g->targets);
  free (g);
}

/* Launch over DISKS: read-only, or (WRITABLE) written in place with the
 * guest's discards passed down to the image (--trim's overlays).
 */
static int
guest_launch (const struct vmferry_guest_disk *disks, size_t nr,
              bool writable, struct vmferry_guest **g_rtn)
{
  struct vmferry_guest *g;

  if (nr == 0) {
    vmferry_set_error ("guest appliance: the domain has no disk");
    return -1;
  }
  g = calloc (1, sizeof *g);
  if (g == NULL ||
      (g->targets = calloc (nr, sizeof *g->targets)) == NULL) {
    vmferry_set_error_errno (errno, "guest appliance");
    free (g);
    return -1;
  }
  g->h = guestfs_create_flags (GUESTFS_CREATE_NO_CLOSE_ON_EXIT);
  if (g->h == NULL) {
    vmferry_set_error_errno (errno, "guest appliance: cannot create");
    vmferry_guest_close (g);
    return -1;
  }
  guest_quiet (g->h);
  for (size_t i = 0; i < nr; i++) {
    g->targets[i] = strdup (disks[i].target ? disks[i].target : "");
    if (g->targets[i] == NULL) {
      vmferry_set_error_errno (errno, "guest appliance");
      vmferry_guest_close (g);
      return -1;
    }
    g->nr_disks++;
    /* Read-only: libguestfs adds a temporary overlay, the image is
     * opened for reading only.  Writable: the image is an overlay of
     * ours, and "besteffort" passes discards on where QEMU can.
     */
    if (guestfs_add_drive_opts (g->h, disks[i].path,
                                GUESTFS_ADD_DRIVE_OPTS_READONLY, !writable,
                                GUESTFS_ADD_DRIVE_OPTS_DISCARD,
                                writable ? "besteffort" : "disable",
                                disks[i].format ?
                                GUESTFS_ADD_DRIVE_OPTS_FORMAT : -1,
                                disks[i].format, -1) == -1) {
      guest_error (g, disks[i].path);
      vmferry_guest_close (g);
      return -1;
    }
  }
  vmferry_verbose ("guest appliance: launching over %zu disk%s", nr,
                   nr == 1 ? "" : "s");
  if (guestfs_launch (g->h) == -1) {
    guest_error (g, "cannot launch");
    vmferry_guest_close (g);
    return -1;
  }
  *g_rtn = g;
  return 0;
}

int
vmferry_guest_open (const struct vmferry_guest_disk *disks, size_t nr,
                    struct vmferry_guest **g_rtn)
{
  return guest_launch (disks, nr, false, g_rtn);
}

DEFINE_VECTOR_TYPE (guest_disks, struct vmferry_guest_disk);

int
vmferry_guest_open_domain (virConnectPtr conn, const char *name,
                           struct vmferry_guest **g_rtn)
{
  CLEANUP_VIR_DOMAIN virDomainPtr dom = NULL;
  CLEANUP_FREE char *xml = NULL;
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  struct vmferry_domain_file *files = NULL;
  CLEANUP_VECTOR struct guest_disks disks = VECTOR_INIT;
  char **paths = NULL;
  size_t nr = 0;
  int state, r = -1;

  dom = vmferry_virt_lookup_domain (conn, name);
  if (dom == NULL)
    return -1;
  state = vmferry_virt_domain_state (dom);
  if (state < 0)
    return -1;
  if (state != VIR_DOMAIN_SHUTOFF) {
    vmferry_set_error ("domain %s is %s: its filesystems would change "
                       "under the check; shut it down, or check a copy",
                       name, vmferry_virt_state_name (state));
    return -1;
  }
  xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
  if (xml == NULL) {
    vmferry_virt_error ("domain %s", name);
    return -1;
  }
  doc = vmferry_domain_parse (xml, strlen (xml), name);
  if (doc == NULL || vmferry_domain_files (doc, false, &files, &nr) < 0)
    return -1;
  paths = calloc (nr ? nr : 1, sizeof *paths);
  if (paths == NULL) {
    vmferry_set_error_errno (errno, "domain %s", name);
    goto out;
  }
  for (size_t i = 0; i < nr; i++) {
    const struct vmferry_domain_file *f = &files[i];
    struct vmferry_guest_disk d;

    if (f->role != VMFERRY_ROLE_DISK)
      continue;
    if (f->path)
      paths[i] = strdup (f->path);
    else if (f->pool && f->volume &&
             (paths[i] = vmferry_virt_volume_path (conn, f->pool,
                                                   f->volume)) == NULL) {
      vmferry_virt_error ("domain %s: disk %s: volume %s of pool %s",
                          name, f->target ? f->target : "?", f->volume,
                          f->pool);
      goto out;
    }
    if (paths[i] == NULL) {
      vmferry_set_error_errno (ENOMEM, "domain %s", name);
      goto out;
    }
    d.path = paths[i];
    /* libvirt's default format is raw: never let the appliance probe. */
    d.format = f->format ? f->format : "raw";
    d.target = f->target;
    if (guest_disks_append (&disks, d) == -1) {
      vmferry_set_error_errno (errno, "domain %s", name);
      goto out;
    }
  }
  r = vmferry_guest_open (disks.ptr, disks.len, g_rtn);
  if (r < 0)
    vmferry_prefix_error ("domain %s", name);

 out:
  for (size_t i = 0; paths && i < nr; i++)
    free (paths[i]);
  free (paths);
  vmferry_domain_files_free (files, nr);
  return r;
}

/* DEV ("/dev/sda1") as the domain names it ("vda1"), or a copy of DEV
 * when it is no disk or partition of one (a logical volume).
 */
static char *
guest_device_name (struct vmferry_guest *g, const char *dev)
{
  CLEANUP_FREE char *disk = NULL;
  int index, partnum = 0;
  char *name;

  index = guestfs_device_index (g->h, dev);
  if (index == -1) {
    disk = guestfs_part_to_dev (g->h, dev);
    if (disk) {
      index = guestfs_device_index (g->h, disk);
      partnum = guestfs_part_to_partnum (g->h, dev);
    }
  }
  if (index < 0 || (size_t) index >= g->nr_disks ||
      g->targets[index][0] == '\0' || partnum < 0)
    return strdup (dev);
  if (partnum == 0)
    return strdup (g->targets[index]);
  if (asprintf (&name, "%s%d", g->targets[index], partnum) == -1)
    return NULL;
  return name;
}

static void
guest_fs_free (struct vmferry_guest_fs *fs)
{
  free (fs->device);
  free (fs->type);
  free (fs->uuid);
  free (fs->label);
  free (fs->mountpoint);
}

static void
guest_os_free (struct vmferry_guest_os *os)
{
  free (os->root);
  free (os->type);
  free (os->distro);
  free (os->product);
  free (os->hostname);
}

void
vmferry_guest_info_free (struct vmferry_guest_info *info)
{
  if (info == NULL)
    return;
  for (size_t i = 0; i < info->nr_os; i++)
    guest_os_free (&info->os[i]);
  for (size_t i = 0; i < info->nr_fs; i++)
    guest_fs_free (&info->fs[i]);
  free (info->os);
  free (info->fs);
  free (info);
}

/* An inspection string: the answer, or a copy of DFLT when the
 * appliance has none.
 */
static char *
guest_string (char *answer, const char *dflt)
{
  return answer ? answer : strdup (dflt);
}

/* Where the operating systems of ROOTS mount the filesystem DEV, or "". */
static char *
guest_mountpoint (struct vmferry_guest *g, char **roots, const char *dev)
{
  for (size_t r = 0; roots[r]; r++) {
    CLEANUP_STRV_FREE char **mps =
      guestfs_inspect_get_mountpoints (g->h, roots[r]);

    for (size_t i = 0; mps && mps[i] && mps[i + 1]; i += 2)
      if (strcmp (mps[i + 1], dev) == 0)
        return strdup (mps[i]);
  }
  return strdup ("");
}

int
vmferry_guest_inspect (struct vmferry_guest *g,
                       struct vmferry_guest_info **info_rtn)
{
  CLEANUP_STRV_FREE char **roots = NULL;
  CLEANUP_STRV_FREE char **fss = NULL;
  struct vmferry_guest_info *info;
  size_t n;

  roots = guestfs_inspect_os (g->h);
  if (roots == NULL) {
    guest_error (g, "inspection");
    return -1;
  }
  fss = guestfs_list_filesystems (g->h);
  if (fss == NULL) {
    guest_error (g, "listing filesystems");
    return -1;
  }
  info = calloc (1, sizeof *info);
  if (info == NULL)
    goto oom;
  for (n = 0; roots[n]; n++)
    ;
  info->os = calloc (n ? n : 1, sizeof *info->os);
  if (info->os == NULL)
    goto oom;
  for (size_t i = 0; i < n; i++) {
    struct vmferry_guest_os *os = &info->os[info->nr_os++];
    const char *root = roots[i];

    os->root = guest_device_name (g, root);
    os->type = guest_string (guestfs_inspect_get_type (g->h, root),
                             "unknown");
    os->distro = guest_string (guestfs_inspect_get_distro (g->h, root),
                               "unknown");
    os->product =
      guest_string (guestfs_inspect_get_product_name (g->h, root),
                    "unknown");
    os->hostname =
      guest_string (guestfs_inspect_get_hostname (g->h, root), "unknown");
    os->major = guestfs_inspect_get_major_version (g->h, root);
    os->minor = guestfs_inspect_get_minor_version (g->h, root);
    if (os->major < 0)
      os->major = 0;
    if (os->minor < 0)
      os->minor = 0;
    if (!os->root || !os->type || !os->distro || !os->product ||
        !os->hostname)
      goto oom;
  }

  for (n = 0; fss[n]; n++)
    ;
  info->fs = calloc (n / 2 + 1, sizeof *info->fs);
  if (info->fs == NULL)
    goto oom;
  for (size_t i = 0; fss[i] && fss[i + 1]; i += 2) {
    struct vmferry_guest_fs *fs = &info->fs[info->nr_fs++];
    const char *dev = fss[i];
    bool real = strcmp (fss[i + 1], "unknown") != 0 &&
      strcmp (fss[i + 1], "swap") != 0;

    fs->device = guest_device_name (g, dev);
    fs->type = strdup (fss[i + 1]);
    fs->uuid = guest_string (real ? guestfs_vfs_uuid (g->h, dev) : NULL,
                             "");
    fs->label = guest_string (real ? guestfs_vfs_label (g->h, dev) : NULL,
                              "");
    fs->mountpoint = guest_mountpoint (g, roots, dev);
    if (!fs->device || !fs->type || !fs->uuid || !fs->label ||
        !fs->mountpoint)
      goto oom;
  }
  *info_rtn = info;
  return 0;

 oom:
  vmferry_set_error_errno (ENOMEM, "guest inspection");
  vmferry_guest_info_free (info);
  return -1;
}

const char *
vmferry_guest_state_name (enum vmferry_guest_state state)
{
  switch (state) {
  case VMFERRY_GUEST_CLEAN: return "clean";
  case VMFERRY_GUEST_DAMAGED: return "damaged";
  case VMFERRY_GUEST_UNCHECKED: return "unchecked";
  }
  return "unknown";
}

void
vmferry_guest_checks_free (struct vmferry_guest_check *checks, size_t nr)
{
  for (size_t i = 0; i < nr; i++) {
    free (checks[i].device);
    free (checks[i].type);
    free (checks[i].why);
  }
  free (checks);
}

/* Replay the journal (or log) of DEV into the overlay by mounting it and
 * unmounting it: a copy taken from a running guest is "not cleanly
 * unmounted", which is no damage, and a checker would count the replay
 * as a repair.  A filesystem the kernel will not mount is left to the
 * checker to judge.
 */
static void
guest_replay (struct vmferry_guest *g, const char *dev)
{
  if (guestfs_mount_options (g->h, "", dev, "/") == -1) {
    vmferry_debug ("%s: not mounted before the check: %s", dev,
                   guestfs_last_error (g->h));
    return;
  }
  if (guestfs_umount_all (g->h) == -1)
    vmferry_debug ("%s: umount: %s", dev, guestfs_last_error (g->h));
}

/* The appliance has optional feature NAME ("xfs"). */
static bool
guest_feature (struct vmferry_guest *g, const char *name)
{
  const char *groups[] = { name, NULL };

  return guestfs_feature_available (g->h, (char *const *) groups) == 1;
}

/* Check one filesystem DEV of TYPE into C.  Returns 0, or -1 when the
 * appliance failed (not when the filesystem is damaged).
 */
static int
guest_check_one (struct vmferry_guest *g, const char *dev,
                 const char *type, struct vmferry_guest_check *c)
{
  int status;

  c->state = VMFERRY_GUEST_UNCHECKED;
  if (strcmp (type, "ext2") == 0 || strcmp (type, "ext3") == 0 ||
      strcmp (type, "ext4") == 0) {
    guest_replay (g, dev);
    /* fsck -a skips a filesystem marked clean; a mount count above the
     * maximum forces the whole check (the count is set in the overlay).
     */
    if (guestfs_tune2fs (g->h, dev, GUESTFS_TUNE2FS_MAXMOUNTCOUNT, 1,
                         GUESTFS_TUNE2FS_MOUNTCOUNT, 2, -1) == -1) {
      c->state = VMFERRY_GUEST_DAMAGED;
      return asprintf (&c->why, "its superblock cannot be read: %s",
                       guestfs_last_error (g->h)) == -1 ? -1 : 0;
    }
    status = guestfs_fsck (g->h, type, dev);
    if (status == -1) {
      guest_error (g, dev);
      return -1;
    }
    c->state = status == 0 ? VMFERRY_GUEST_CLEAN : VMFERRY_GUEST_DAMAGED;
    if (status == 0)
      c->why = strdup ("e2fsck found no error (forced check)");
    else if (asprintf (&c->why, "e2fsck found errors (exit status %d)",
                       status) == -1)
      c->why = NULL;
  }
  else if (strcmp (type, "xfs") == 0 && !guest_feature (g, "xfs"))
    c->why = strdup ("this libguestfs appliance has no xfs support "
                     "(Debian: libguestfs-xfs)");
  else if (strcmp (type, "xfs") == 0) {
    guest_replay (g, dev);
    status = guestfs_xfs_repair (g->h, dev, GUESTFS_XFS_REPAIR_NOMODIFY, 1,
                                 -1);
    if (status == -1) {
      c->state = VMFERRY_GUEST_DAMAGED;
      return asprintf (&c->why, "xfs_repair -n failed: %s",
                       guestfs_last_error (g->h)) == -1 ? -1 : 0;
    }
    c->state = status == 0 ? VMFERRY_GUEST_CLEAN : VMFERRY_GUEST_DAMAGED;
    c->why = strdup (status == 0 ? "xfs_repair -n found no error" :
                     "xfs_repair -n found errors");
  }
  else if (strcmp (type, "vfat") == 0) {
    status = guestfs_fsck (g->h, type, dev);
    if (status == -1) {
      guest_error (g, dev);
      return -1;
    }
    c->state = status == 0 ? VMFERRY_GUEST_CLEAN : VMFERRY_GUEST_DAMAGED;
    if (asprintf (&c->why, "fsck.vfat exit status %d", status) == -1)
      c->why = NULL;
  }
  else if (strcmp (type, "swap") == 0)
    c->why = strdup ("swap space: nothing to check");
  else if (asprintf (&c->why, "no checker for %s filesystems here",
                     type) == -1)
    c->why = NULL;
  if (c->why == NULL) {
    vmferry_set_error_errno (ENOMEM, "guest check");
    return -1;
  }
  return 0;
}

int
vmferry_guest_check_filesystems (struct vmferry_guest *g,
                                 struct vmferry_guest_check **checks_rtn,
                                 size_t *nr_rtn)
{
  CLEANUP_STRV_FREE char **fss = guestfs_list_filesystems (g->h);
  struct vmferry_guest_check *checks;
  size_t n, nr = 0;
  int damaged = 0;

  if (fss == NULL) {
    guest_error (g, "listing filesystems");
    return -1;
  }
  for (n = 0; fss[n]; n++)
    ;
  checks = calloc (n / 2 + 1, sizeof *checks);
  if (checks == NULL) {
    vmferry_set_error_errno (errno, "guest check");
    return -1;
  }
  for (size_t i = 0; fss[i] && fss[i + 1]; i += 2) {
    struct vmferry_guest_check *c = &checks[nr++];

    c->device = guest_device_name (g, fss[i]);
    c->type = strdup (fss[i + 1]);
    if (c->device == NULL || c->type == NULL) {
      vmferry_set_error_errno (ENOMEM, "guest check");
      vmferry_guest_checks_free (checks, nr);
      return -1;
    }
    if (guest_check_one (g, fss[i], fss[i + 1], c) == -1) {
      vmferry_prefix_error ("%s", c->device);
      vmferry_guest_checks_free (checks, nr);
      return -1;
    }
    vmferry_verbose ("%s (%s): %s: %s", c->device, c->type,
                     vmferry_guest_state_name (c->state), c->why);
    damaged += c->state == VMFERRY_GUEST_DAMAGED;
  }
  *checks_rtn = checks;
  *nr_rtn = nr;
  return damaged;
}

/* Add V to O as KEY; a V that is NULL (out of memory) or an add that
 * fails clears *OK.
 */
static void
json_add (json_object *o, const char *key, json_object *v, bool *ok)
{
  if (v == NULL || json_object_object_add (o, key, v) != 0) {
    json_object_put (v);
    *ok = false;
  }
}

json_object *
vmferry_guest_info_to_json (const struct vmferry_guest_info *info)
{
  json_object *o = json_object_new_object ();
  json_object *oses = json_object_new_array ();
  json_object *fss = json_object_new_array ();
  bool ok = o && oses && fss;

  for (size_t i = 0; ok && i < info->nr_os; i++) {
    const struct vmferry_guest_os *os = &info->os[i];
    json_object *e = json_object_new_object ();

    if (e == NULL || json_object_array_add (oses, e) != 0) {
      json_object_put (e);
      ok = false;
      break;
    }
    json_add (e, "root", json_object_new_string (os->root), &ok);
    json_add (e, "type", json_object_new_string (os->type), &ok);
    json_add (e, "distro", json_object_new_string (os->distro), &ok);
    json_add (e, "product", json_object_new_string (os->product), &ok);
    json_add (e, "hostname", json_object_new_string (os->hostname), &ok);
    json_add (e, "major", json_object_new_int (os->major), &ok);
    json_add (e, "minor", json_object_new_int (os->minor), &ok);
  }
  for (size_t i = 0; ok && i < info->nr_fs; i++) {
    const struct vmferry_guest_fs *fs = &info->fs[i];
    json_object *e = json_object_new_object ();

    if (e == NULL || json_object_array_add (fss, e) != 0) {
      json_object_put (e);
      ok = false;
      break;
    }
    json_add (e, "device", json_object_new_string (fs->device), &ok);
    json_add (e, "type", json_object_new_string (fs->type), &ok);
    /* Left out when empty, as the manifest wants its strings. */
    if (fs->uuid[0])
      json_add (e, "uuid", json_object_new_string (fs->uuid), &ok);
    if (fs->label[0])
      json_add (e, "label", json_object_new_string (fs->label), &ok);
    if (fs->mountpoint[0])
      json_add (e, "mountpoint", json_object_new_string (fs->mountpoint),
                &ok);
  }
  if (ok) {
    json_add (o, "os", oses, &ok);
    oses = NULL;
  }
  if (ok) {
    json_add (o, "filesystems", fss, &ok);
    fss = NULL;
  }
  json_object_put (oses);
  json_object_put (fss);
  if (!ok) {
    json_object_put (o);
    return NULL;
  }
  return o;
}

/* Member KEY of O as a new string: "" when absent, NULL out of memory. */
static char *
json_dup (json_object *o, const char *key)
{
  json_object *v;

  if (!json_object_object_get_ex (o, key, &v) ||
      !json_object_is_type (v, json_type_string))
    return strdup ("");
  return strdup (json_object_get_string (v));
}

int
vmferry_guest_info_from_json (const char *text,
                              struct vmferry_guest_info **info_rtn)
{
  json_object *o = json_tokener_parse (text), *os = NULL, *fss = NULL, *v;
  struct vmferry_guest_info *info = calloc (1, sizeof *info);
  size_t n;
  bool ok = o && info;

  if (ok) {
    json_object_object_get_ex (o, "os", &os);
    json_object_object_get_ex (o, "filesystems", &fss);
    n = os ? json_object_array_length (os) : 0;
    ok = (info->os = calloc (n + 1, sizeof *info->os)) != NULL;
    for (size_t i = 0; ok && i < n; i++) {
      json_object *e = json_object_array_get_idx (os, i);
      struct vmferry_guest_os *g = &info->os[info->nr_os++];

      g->root = json_dup (e, "root");
      g->type = json_dup (e, "type");
      g->distro = json_dup (e, "distro");
      g->product = json_dup (e, "product");
      g->hostname = json_dup (e, "hostname");
      g->major = json_object_object_get_ex (e, "major", &v) ?
        json_object_get_int (v) : 0;
      g->minor = json_object_object_get_ex (e, "minor", &v) ?
        json_object_get_int (v) : 0;
      ok = g->root && g->type && g->distro && g->product && g->hostname;
    }
  }
  if (ok) {
    n = fss ? json_object_array_length (fss) : 0;
    ok = (info->fs = calloc (n + 1, sizeof *info->fs)) != NULL;
    for (size_t i = 0; ok && i < n; i++) {
      json_object *e = json_object_array_get_idx (fss, i);
      struct vmferry_guest_fs *f = &info->fs[info->nr_fs++];

      f->device = json_dup (e, "device");
      f->type = json_dup (e, "type");
      f->uuid = json_dup (e, "uuid");
      f->label = json_dup (e, "label");
      f->mountpoint = json_dup (e, "mountpoint");
      ok = f->device && f->type && f->uuid && f->label && f->mountpoint;
    }
  }
  json_object_put (o);
  if (!ok) {
    vmferry_guest_info_free (info);
    vmferry_set_error_errno (o ? ENOMEM : EINVAL, "guest inspection");
    return -1;
  }
  *info_rtn = info;
  return 0;
}

/* S escaped for a terminal (the guest wrote it), or "?" out of memory. */
static void
print_escaped (FILE *out, const char *s)
{
  CLEANUP_FREE char *e = vmferry_text_escape (s, strlen (s));

  fputs (e ? e : "?", out);
}

void
vmferry_guest_info_print (const struct vmferry_guest_info *info,
                          const char *indent, FILE *out)
{
  if (info->nr_os == 0)
    fprintf (out, "%soperating system: none found\n", indent);
  for (size_t i = 0; i < info->nr_os; i++) {
    const struct vmferry_guest_os *os = &info->os[i];

    fprintf (out, "%soperating system: ", indent);
    print_escaped (out, os->product);
    fputs (" (", out);
    print_escaped (out, os->type);
    fputc (' ', out);
    print_escaped (out, os->distro);
    fprintf (out, " %d.%d), hostname ", os->major, os->minor);
    print_escaped (out, os->hostname);
    fputs (", root ", out);
    print_escaped (out, os->root);
    fputc ('\n', out);
  }
  for (size_t i = 0; i < info->nr_fs; i++) {
    const struct vmferry_guest_fs *fs = &info->fs[i];

    fprintf (out, "%sfilesystem ", indent);
    print_escaped (out, fs->device);
    fputs (": ", out);
    print_escaped (out, fs->type);
    if (fs->mountpoint[0]) {
      fputs (" on ", out);
      print_escaped (out, fs->mountpoint);
    }
    if (fs->uuid[0]) {
      fputs (", UUID ", out);
      print_escaped (out, fs->uuid);
    }
    if (fs->label[0]) {
      fputs (", label ", out);
      print_escaped (out, fs->label);
    }
    fputc ('\n', out);
  }
}

json_object *
vmferry_guest_checks_to_json (const struct vmferry_guest_check *checks,
                              size_t nr)
{
  json_object *a = json_object_new_array ();
  bool ok = a != NULL;

  for (size_t i = 0; ok && i < nr; i++) {
    json_object *e = json_object_new_object ();

    if (e == NULL || json_object_array_add (a, e) != 0) {
      json_object_put (e);
      ok = false;
      break;
    }
    json_add (e, "device", json_object_new_string (checks[i].device), &ok);
    json_add (e, "type", json_object_new_string (checks[i].type), &ok);
    json_add (e, "state", json_object_new_string
              (vmferry_guest_state_name (checks[i].state)), &ok);
    json_add (e, "why", json_object_new_string (checks[i].why), &ok);
  }
  if (!ok) {
    json_object_put (a);
    return NULL;
  }
  return a;
}

void
vmferry_guest_checks_print (const struct vmferry_guest_check *checks,
                            size_t nr, FILE *out)
{
  if (nr == 0)
    fputs ("no filesystem found\n", out);
  for (size_t i = 0; i < nr; i++) {
    print_escaped (out, checks[i].device);
    fputs (" (", out);
    print_escaped (out, checks[i].type);
    fprintf (out, "): %s: ", vmferry_guest_state_name (checks[i].state));
    print_escaped (out, checks[i].why);
    fputc ('\n', out);
  }
}

int
vmferry_guest_domain_report (const char *uri, const char *name,
                             bool inspect, bool check, const char *format,
                             FILE *out)
{
  CLEANUP_VIR_CONNECT virConnectPtr conn = vmferry_virt_connect (uri);
  struct vmferry_guest *g = NULL;
  struct vmferry_guest_info *info = NULL;
  struct vmferry_guest_check *checks = NULL;
  json_object *o = NULL;
  size_t nr = 0;
  int damaged = 0, r = -1;

  if (conn == NULL || vmferry_guest_open_domain (conn, name, &g) < 0)
    goto out;
  if (inspect && vmferry_guest_inspect (g, &info) < 0)
    goto out;
  if (check && (damaged = vmferry_guest_check_filesystems (g, &checks,
                                                           &nr)) < 0)
    goto out;
  if (format) {
    bool ok = (o = json_object_new_object ()) != NULL;

    json_add (o, "format", json_object_new_string (format), &ok);
    json_add (o, "domain", json_object_new_string (name), &ok);
    if (info)
      json_add (o, "guest", vmferry_guest_info_to_json (info), &ok);
    if (check) {
      json_add (o, "checks", vmferry_guest_checks_to_json (checks, nr),
                &ok);
      json_add (o, "damaged", json_object_new_int (damaged), &ok);
    }
    if (!ok) {
      vmferry_set_error_errno (ENOMEM, "domain %s", name);
      goto out;
    }
    fprintf (out, "%s\n",
             json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY |
                                             JSON_C_TO_STRING_NOSLASHESCAPE));
  }
  else {
    if (info)
      vmferry_guest_info_print (info, "", out);
    if (check)
      vmferry_guest_checks_print (checks, nr, out);
  }
  r = damaged;

 out:
  json_object_put (o);
  vmferry_guest_checks_free (checks, nr);
  vmferry_guest_info_free (info);
  vmferry_guest_close (g);
  return r;
}

/* ---- --trim ---- */

/* Append "DEV (TYPE: WHY)" to the list *LIST ("" at first). */
static int
untrimmed_add (char **list, const char *dev, const char *type,
               const char *why)
{
  char *n;

  if (asprintf (&n, "%s%s%s (%s%s%s)", *list, **list ? ", " : "", dev, type,
                why ? ": " : "", why ? why : "") == -1)
    return -1;
  free (*list);
  *list = n;
  return 0;
}

int
vmferry_guest_open_overlays (const struct vmferry_guest_disk *disks,
                             size_t nr, struct vmferry_guest **g_rtn)
{
  return guest_launch (disks, nr, true, g_rtn);
}

int
vmferry_guest_fstrim (struct vmferry_guest *g, char **untrimmed_rtn)
{
  CLEANUP_STRV_FREE char **fs = NULL;
  char *untrimmed = strdup ("");
  int trimmed = 0;

  *untrimmed_rtn = NULL;
  if (untrimmed == NULL) {
    vmferry_set_error_errno (ENOMEM, "guest trim");
    return -1;
  }
  fs = guestfs_list_filesystems (g->h);
  if (fs == NULL) {
    guest_error (g, "cannot list the filesystems");
    goto fail;
  }
  for (size_t i = 0; fs[i] && fs[i + 1]; i += 2) {
    CLEANUP_FREE char *name = guest_device_name (g, fs[i]);
    const char *type = fs[i + 1], *why = NULL;
    char msg[256];

    if (name == NULL)
      goto nomem;
    /* Mounted read-write: a journal replay lands in the overlay, as
     * does the trim, which is the point.
     */
    if (strcmp (type, "swap") == 0 || strcmp (type, "unknown") == 0)
      why = strcmp (type, "swap") == 0 ? "swap space" : "not a filesystem";
    else if (guestfs_mount_options (g->h, "", fs[i], "/") == -1)
      why = "cannot be mounted";
    else if (guestfs_fstrim (g->h, "/", -1) == -1) {
      snprintf (msg, sizeof msg, "fstrim failed: %s",
                guestfs_last_error (g->h));
      why = msg;
    }
    if (why == NULL) {
      trimmed++;
      vmferry_verbose ("guest trim: %s (%s) trimmed", name, type);
      /* The tests' worst moment: the overlay written, QEMU running. */
      if (vmferry_fault ("guest-trimmed") < 0)
        goto fail;
    }
    else {
      vmferry_verbose ("guest trim: %s (%s) not trimmed: %s", name, type,
                       why);
      if (untrimmed_add (&untrimmed, name, type, why) < 0)
        goto nomem;
    }
    if (guestfs_umount_all (g->h) == -1) {
      guest_error (g, "umount");
      goto fail;
    }
  }
  if (*untrimmed)
    *untrimmed_rtn = untrimmed;
  else
    free (untrimmed);
  return trimmed;
 nomem:
  vmferry_set_error_errno (ENOMEM, "guest trim");
 fail:
  free (untrimmed);
  return -1;
}

int
vmferry_guest_shutdown (struct vmferry_guest *g)
{
  if (guestfs_shutdown (g->h) == -1) {
    guest_error (g, "shutdown");
    return -1;
  }
  return 0;
}

int
vmferry_guest_trim (const struct vmferry_guest_disk *disks, size_t nr,
                    char **untrimmed_rtn)
{
  struct vmferry_guest *g = NULL;
  int r;

  *untrimmed_rtn = NULL;
  if (vmferry_guest_open_overlays (disks, nr, &g) < 0)
    return -1;
  r = vmferry_guest_fstrim (g, untrimmed_rtn);
  /* The overlays are complete only once QEMU has flushed and ended. */
  if (r >= 0 && vmferry_guest_shutdown (g) < 0) {
    free (*untrimmed_rtn);
    *untrimmed_rtn = NULL;
    r = -1;
  }
  vmferry_guest_close (g);
  return r;
}
