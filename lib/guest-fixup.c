/* vmferry: fix-ups inside the destination copy (see guest-fixup.h).
 *
 * The edits are token replacements in a file's text, every other byte
 * kept: a device name in fstab's first field or after root=, a MAC on a
 * line that names one.  (augeas would parse fstab as well, but not
 * grub.cfg, netplan's YAML or udev rules; one careful way for all files
 * keeps what is changed visible in one place, and the unit tests cover
 * it without an appliance.)  A file is replaced by a new one written
 * beside it with its owner, mode and extended attributes (SELinux
 * label), then renamed over it, so a file is never half written.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestfs.h>

#include "cleanup-libc.h"
#include "error.h"
#include "guest.h"
#include "guest-fixup.h"
#include "log.h"

/* A guest file larger than this is not a configuration file. */
#define FIXUP_FILE_MAX (1024 * 1024)

bool
vmferry_fixup_needed (const struct vmferry_fixup_opts *o)
{
  if (o->nr_macs > 0 || o->hostname)
    return true;
  for (size_t i = 0; i < o->nr_disks; i++)
    if (o->disks[i].old_target && o->disks[i].new_target &&
        strcmp (o->disks[i].old_target, o->disks[i].new_target) != 0)
      return true;
  return false;
}

bool
vmferry_fixup_hostname_ok (const char *name)
{
  size_t label = 0, len = strlen (name);

  if (len == 0 || len > 253 || name[0] == '.' || name[len - 1] == '.')
    return false;
  for (const char *c = name; *c; c++) {
    if (*c == '.') {
      if (label == 0 || c[-1] == '-')
        return false;
      label = 0;
      continue;
    }
    if (!(isascii ((unsigned char) *c) && isalnum ((unsigned char) *c)) &&
        *c != '-')
      return false;
    if (label == 0 && *c == '-')
      return false;
    if (++label > 63)
      return false;
  }
  return name[len - 1] != '-';
}

void
vmferry_fixup_changes_free (struct vmferry_fixup_change *changes, size_t nr)
{
  for (size_t i = 0; changes && i < nr; i++) {
    free (changes[i].file);
    free (changes[i].what);
  }
  free (changes);
}

json_object *
vmferry_fixup_changes_to_json (const struct vmferry_fixup_change *changes,
                               size_t nr)
{
  json_object *a = json_object_new_array ();

  for (size_t i = 0; a && i < nr; i++) {
    json_object *o = json_object_new_object ();

    if (o == NULL ||
        json_object_object_add (o, "file",
                                json_object_new_string (changes[i].file)) ||
        json_object_object_add (o, "change",
                                json_object_new_string (changes[i].what)) ||
        json_object_array_add (a, o)) {
      json_object_put (o);
      json_object_put (a);
      return NULL;
    }
  }
  return a;
}

static int
add_change (struct vmferry_fixup_change **changes, size_t *nr,
            const char *file, const char *fs, ...)
  __attribute__ ((format (printf, 4, 5)));

static int
add_change (struct vmferry_fixup_change **changes, size_t *nr,
            const char *file, const char *fs, ...)
{
  struct vmferry_fixup_change *c;
  char *what;
  va_list ap;
  int n;

  va_start (ap, fs);
  n = vasprintf (&what, fs, ap);
  va_end (ap);
  c = n < 0 ? NULL : realloc (*changes, (*nr + 1) * sizeof **changes);
  if (c == NULL) {
    if (n >= 0)
      free (what);
    vmferry_set_error_errno (ENOMEM, "fix-up");
    return -1;
  }
  *changes = c;
  c[*nr].what = what;
  if ((c[*nr].file = strdup (file)) == NULL) {
    free (what);
    vmferry_set_error_errno (ENOMEM, "fix-up");
    return -1;
  }
  (*nr)++;
  return 0;
}

/* The disk whose old target P names after "/dev/" (P points at the
 * target), followed by a character that cannot continue a disk name
 * (vda is not vdaa), or NULL.  Only disks whose target changes.
 */
static const struct vmferry_fixup_disk *
dev_at (const char *p, const struct vmferry_fixup_opts *o)
{
  for (size_t i = 0; i < o->nr_disks; i++) {
    const struct vmferry_fixup_disk *d = &o->disks[i];
    size_t n;

    if (!d->old_target || !d->new_target ||
        strcmp (d->old_target, d->new_target) == 0)
      continue;
    n = strlen (d->old_target);
    if (n > 0 && strncmp (p, d->old_target, n) == 0 &&
        !(p[n] >= 'a' && p[n] <= 'z'))
      return d;
  }
  return NULL;
}

/* Text being rebuilt: the input's bytes, with replacements. */
struct edit {
  FILE *m;
  char *buf;
  size_t len;
};

static int
edit_open (struct edit *e)
{
  e->buf = NULL;
  e->m = open_memstream (&e->buf, &e->len);
  if (e->m == NULL) {
    vmferry_set_error_errno (errno, "fix-up");
    return -1;
  }
  return 0;
}

static char *
edit_close (struct edit *e, bool ok)
{
  if (fclose (e->m) != 0 && ok) {
    vmferry_set_error_errno (errno, "fix-up");
    ok = false;
  }
  if (!ok) {
    free (e->buf);
    return NULL;
  }
  return e->buf;
}

/* At P (pointing at "/dev/"): when it names a disk whose target changes,
 * write the new name to E, note the change and return the length of the
 * old name (with its partition number); else 0.  -1 on error.
 */
static long
replace_dev (struct edit *e, const char *p,
             const struct vmferry_fixup_opts *o, const char *file,
             struct vmferry_fixup_change **changes, size_t *nr)
{
  const struct vmferry_fixup_disk *d;
  size_t n, digits;

  if (strncmp (p, "/dev/", 5) != 0 || (d = dev_at (p + 5, o)) == NULL)
    return 0;
  n = 5 + strlen (d->old_target);
  digits = strspn (p + n, "0123456789");
  fprintf (e->m, "/dev/%s%.*s", d->new_target, (int) digits, p + n);
  if (add_change (changes, nr, file, "/dev/%s%.*s -> /dev/%s%.*s",
                  d->old_target, (int) digits, p + n, d->new_target,
                  (int) digits, p + n) < 0)
    return -1;
  return n + digits;
}

char *
vmferry_fixup_fstab_text (const char *text,
                          const struct vmferry_fixup_opts *o,
                          const char *file,
                          struct vmferry_fixup_change **changes, size_t *nr)
{
  struct edit e;
  const char *p = text;

  if (edit_open (&e) < 0)
    return NULL;
  while (*p) {
    size_t ws = strspn (p, " \t"), eol = strcspn (p, "\n");
    long k = 0;

    /* The first field of an entry: not a comment, not a blank line. */
    if (ws < eol && p[ws] != '#') {
      fwrite (p, 1, ws, e.m);
      k = replace_dev (&e, p + ws, o, file, changes, nr);
      if (k < 0)
        return edit_close (&e, false);
      p += ws + k;
      eol -= ws + k;
    }
    fwrite (p, 1, eol, e.m);
    p += eol;
    if (*p == '\n')
      fputc (*p++, e.m);
  }
  return edit_close (&e, true);
}

char *
vmferry_fixup_root_text (const char *text,
                         const struct vmferry_fixup_opts *o,
                         const char *file,
                         struct vmferry_fixup_change **changes, size_t *nr)
{
  struct edit e;
  const char *p = text, *q;

  if (edit_open (&e) < 0)
    return NULL;
  while ((q = strstr (p, "root=/dev/")) != NULL) {
    long k;

    /* "root=" as a word of its own (not "myroot="). */
    if (q > text && (isalnum ((unsigned char) q[-1]) || q[-1] == '_' ||
                     q[-1] == '.' || q[-1] == '-')) {
      fwrite (p, 1, q + 5 - p, e.m);
      p = q + 5;
      continue;
    }
    fwrite (p, 1, q + 5 - p, e.m);
    k = replace_dev (&e, q + 5, o, file, changes, nr);
    if (k < 0)
      return edit_close (&e, false);
    p = q + 5 + k;
  }
  fputs (p, e.m);
  return edit_close (&e, true);
}

static bool
mac_char (char c)
{
  return isxdigit ((unsigned char) c) || c == ':';
}

/* Does the line from P to P+LEN name a MAC (a key of a format that
 * matches interfaces by their MAC)?
 */
static bool
mac_line (const char *p, size_t len)
{
  static const char *const keys[] = {
    "macaddress", "mac-address", "HWADDR", "ATTR{address}", "MACADDR",
  };

  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    size_t n = strlen (keys[i]);
    for (size_t k = 0; k + n <= len; k++)
      if (strncmp (p + k, keys[i], n) == 0)
        return true;
  }
  return false;
}

char *
vmferry_fixup_mac_text (const char *text,
                        const struct vmferry_fixup_opts *o,
                        const char *file,
                        struct vmferry_fixup_change **changes, size_t *nr)
{
  struct edit e;
  const char *p = text;

  if (edit_open (&e) < 0)
    return NULL;
  while (*p) {
    size_t eol = strcspn (p, "\n");
    bool named = mac_line (p, eol);

    for (size_t k = 0; k < eol; k++) {
      const struct vmferry_fixup_mac *m = NULL;

      if (named && k + 17 <= eol && (k == 0 || !mac_char (p[k - 1])) &&
          (k + 17 == eol || !mac_char (p[k + 17])))
        for (size_t i = 0; i < o->nr_macs && !m; i++)
          if (strncasecmp (p + k, o->macs[i].old_mac, 17) == 0)
            m = &o->macs[i];
      if (m == NULL) {
        fputc (p[k], e.m);
        continue;
      }
      {
        bool upper = false;
        char new[18];

        for (size_t j = 0; j < 17; j++)
          upper |= isupper ((unsigned char) p[k + j]);
        for (size_t j = 0; j < 17; j++)
          new[j] = upper ? toupper ((unsigned char) m->new_mac[j])
                         : tolower ((unsigned char) m->new_mac[j]);
        new[17] = '\0';
        fputs (new, e.m);
        if (add_change (changes, nr, file, "%.17s -> %s", p + k, new) < 0)
          return edit_close (&e, false);
        k += 16;
      }
    }
    p += eol;
    if (*p == '\n')
      fputc (*p++, e.m);
  }
  return edit_close (&e, true);
}

/* ---------------------------------------------------------- appliance */

struct fixup {
  guestfs_h *h;
  const struct vmferry_fixup_opts *o;
  struct vmferry_fixup_change *changes;
  size_t nr;
};

static void
appliance_error (struct fixup *x, const char *what)
{
  vmferry_guest_set_error (x->h, what);
}
static void
free_strings (char **s)
{
  for (size_t i = 0; s && s[i]; i++)
    free (s[i]);
  free (s);
}

typedef char *(*edit_fn) (const char *text,
                          const struct vmferry_fixup_opts *o,
                          const char *file,
                          struct vmferry_fixup_change **changes, size_t *nr);

/* Apply EDIT to the guest file PATH, if it is a regular file (a link is
 * not followed) of text: written beside it, its attributes copied, then
 * renamed over it.
 */
static int
edit_file (struct fixup *x, const char *path, edit_fn edit)
{
  CLEANUP_FREE char *text = NULL, *out = NULL, *tmp = NULL;
  size_t before = x->nr, size;
  int64_t fsize;

  if (guestfs_is_file (x->h, path) != 1)
    return 0;
  fsize = guestfs_filesize (x->h, path);
  if (fsize < 0 || fsize > FIXUP_FILE_MAX) {
    vmferry_verbose ("guest %s: not a configuration file (%lld bytes): "
                     "left as it is", path, (long long) fsize);
    return 0;
  }
  text = guestfs_read_file (x->h, path, &size);
  if (text == NULL) {
    appliance_error (x, path);
    return -1;
  }
  if (memchr (text, '\0', size) != NULL)
    return 0;                   /* not text */
  out = edit (text, x->o, path, &x->changes, &x->nr);
  if (out == NULL)
    return -1;
  if (x->nr == before)
    return 0;
  if (asprintf (&tmp, "%s.vmferry-fixup", path) < 0) {
    tmp = NULL;
    vmferry_set_error_errno (ENOMEM, "fix-up");
    return -1;
  }
  if (guestfs_write (x->h, tmp, out, strlen (out)) == -1 ||
      guestfs_copy_attributes (x->h, path, tmp,
                               GUESTFS_COPY_ATTRIBUTES_ALL, 1, -1) == -1 ||
      guestfs_mv (x->h, tmp, path) == -1) {
    appliance_error (x, path);
    return -1;
  }
  return 0;
}

static int
edit_glob (struct fixup *x, const char *pattern, edit_fn edit)
{
  char **paths = guestfs_glob_expand (x->h, pattern);
  int r = 0;

  if (paths == NULL) {
    appliance_error (x, pattern);
    return -1;
  }
  for (size_t i = 0; paths[i] && r == 0; i++)
    r = edit_file (x, paths[i], edit);
  free_strings (paths);
  return r;
}

/* --new-identity: the hostname, the machine-id, the SSH host keys. */
static int
new_identity (struct fixup *x)
{
  CLEANUP_FREE char *old = NULL, *line = NULL;
  char **keys;
  size_t size;

  if (guestfs_is_file (x->h, "/etc/hostname") == 1 &&
      (old = guestfs_read_file (x->h, "/etc/hostname", &size)) == NULL) {
    appliance_error (x, "/etc/hostname");
    return -1;
  }
  if (old)
    old[strcspn (old, "\n")] = '\0';
  if (old == NULL || strcmp (old, x->o->hostname) != 0) {
    if (asprintf (&line, "%s\n", x->o->hostname) < 0) {
      line = NULL;
      vmferry_set_error_errno (ENOMEM, "fix-up");
      return -1;
    }
    if (guestfs_write (x->h, "/etc/hostname", line, strlen (line)) == -1) {
      appliance_error (x, "/etc/hostname");
      return -1;
    }
    if (add_change (&x->changes, &x->nr, "/etc/hostname", "%s -> %s",
                    old ? old : "(none)", x->o->hostname) < 0)
      return -1;
  }
  /* As virt-sysprep's machine-id: an empty file, which systemd fills at
   * the first boot; dbus's own copy removed.
   */
  if (guestfs_is_file (x->h, "/etc/machine-id") == 1 &&
      guestfs_filesize (x->h, "/etc/machine-id") > 0) {
    if (guestfs_truncate (x->h, "/etc/machine-id") == -1) {
      appliance_error (x, "/etc/machine-id");
      return -1;
    }
    if (add_change (&x->changes, &x->nr, "/etc/machine-id",
                    "emptied (a new one at the first boot)") < 0)
      return -1;
  }
  if (guestfs_is_file (x->h, "/var/lib/dbus/machine-id") == 1) {
    if (guestfs_rm (x->h, "/var/lib/dbus/machine-id") == -1) {
      appliance_error (x, "/var/lib/dbus/machine-id");
      return -1;
    }
    if (add_change (&x->changes, &x->nr, "/var/lib/dbus/machine-id",
                    "removed") < 0)
      return -1;
  }
  /* As virt-sysprep's ssh-hostkeys: sshd's units make new ones at boot. */
  keys = guestfs_glob_expand (x->h, "/etc/ssh/ssh_host_*");
  if (keys == NULL) {
    appliance_error (x, "/etc/ssh/ssh_host_*");
    return -1;
  }
  for (size_t i = 0; keys[i]; i++) {
    if (guestfs_is_file (x->h, keys[i]) != 1)
      continue;
    if (guestfs_rm (x->h, keys[i]) == -1) {
      appliance_error (x, keys[i]);
      free_strings (keys);
      return -1;
    }
    if (add_change (&x->changes, &x->nr, keys[i], "removed") < 0) {
      free_strings (keys);
      return -1;
    }
  }
  free_strings (keys);
  return 0;
}

static int
compare_mountpoints (const void *a, const void *b)
{
  const char *const *x = a, *const *y = b;

  return (int) strlen (x[0]) - (int) strlen (y[0]);
}

/* The guest's one Linux root, its filesystems mounted where it mounts
 * them (shortest mount point first).
 */
static int
mount_guest (struct fixup *x)
{
  char **roots = guestfs_inspect_os (x->h), **mps = NULL, *type = NULL;
  size_t n = 0;
  int r = -1;

  if (roots == NULL) {
    appliance_error (x, "inspection");
    return -1;
  }
  if (roots[0] == NULL || roots[1] != NULL) {
    vmferry_set_error ("guest appliance: %s operating system found: "
                       "cannot tell which one to fix up",
                       roots[0] ? "more than one" : "no");
    goto out;
  }
  type = guestfs_inspect_get_type (x->h, roots[0]);
  if (type == NULL) {
    appliance_error (x, "inspection");
    goto out;
  }
  if (strcmp (type, "linux") != 0) {
    vmferry_set_error ("guest appliance: the guest is %s: fix-ups are made "
                       "in Linux guests only", type);
    goto out;
  }
  mps = guestfs_inspect_get_mountpoints (x->h, roots[0]);
  if (mps == NULL) {
    appliance_error (x, "inspection");
    goto out;
  }
  while (mps[2 * n])
    n++;
  qsort (mps, n, 2 * sizeof *mps, compare_mountpoints);
  for (size_t i = 0; i < n; i++)
    if (guestfs_mount (x->h, mps[2 * i + 1], mps[2 * i]) == -1) {
      if (strcmp (mps[2 * i], "/") == 0) {
        appliance_error (x, "mount /");
        goto out;
      }
      vmferry_verbose ("guest appliance: %s not mounted on %s: %s",
                       mps[2 * i + 1], mps[2 * i], guestfs_last_error (x->h));
    }
  r = 0;

 out:
  free (type);
  free_strings (mps);
  free_strings (roots);
  return r;
}

int
vmferry_guest_fixup (const struct vmferry_fixup_opts *o,
                     struct vmferry_fixup_change **changes_rtn,
                     size_t *nr_rtn)
{
  static const char *const root_files[] = {
    "/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", "/etc/default/grub",
    "/boot/loader/entries/*.conf", "/boot/efi/EFI/*/grub.cfg",
  };
  static const char *const net_files[] = {
    "/etc/netplan/*.yaml", "/etc/NetworkManager/system-connections/*",
    "/etc/sysconfig/network-scripts/ifcfg-*",
    "/etc/udev/rules.d/70-persistent-net.rules",
  };
  struct fixup x = { .o = o };
  int r = -1;

  x.h = guestfs_create_flags (GUESTFS_CREATE_NO_CLOSE_ON_EXIT);
  if (x.h == NULL) {
    vmferry_set_error_errno (errno, "guest appliance: cannot create");
    return 1;
  }
  guestfs_set_error_handler (x.h, NULL, NULL);
  for (size_t i = 0; i < o->nr_disks; i++)
    /* Read-write, the format named: the copy is changed, never probed. */
    if (guestfs_add_drive_opts (x.h, o->disks[i].path,
                                GUESTFS_ADD_DRIVE_OPTS_FORMAT,
                                o->disks[i].format, -1) == -1) {
      appliance_error (&x, o->disks[i].path);
      goto out;
    }
  vmferry_verbose ("guest appliance: launching over %zu disk%s for the "
                   "fix-ups", o->nr_disks, o->nr_disks == 1 ? "" : "s");
  if (guestfs_launch (x.h) == -1) {
    appliance_error (&x, "cannot launch");
    r = 1;
    goto out;
  }
  if (mount_guest (&x) < 0) {
    r = 1;                      /* nothing written yet */
    goto out;
  }
  if (edit_file (&x, "/etc/fstab", vmferry_fixup_fstab_text) < 0)
    goto out;
  for (size_t i = 0; i < sizeof root_files / sizeof root_files[0]; i++)
    if (edit_glob (&x, root_files[i], vmferry_fixup_root_text) < 0)
      goto out;
  for (size_t i = 0; o->nr_macs && i < sizeof net_files / sizeof net_files[0];
       i++)
    if (edit_glob (&x, net_files[i], vmferry_fixup_mac_text) < 0)
      goto out;
  if (o->hostname && new_identity (&x) < 0)
    goto out;
  /* Everything written reaches the disks before the copy is placed. */
  if (guestfs_umount_all (x.h) == -1 || guestfs_shutdown (x.h) == -1) {
    appliance_error (&x, "writing the changes");
    goto out;
  }
  r = 0;

 out:
  guestfs_close (x.h);
  if (r != 0) {
    vmferry_fixup_changes_free (x.changes, x.nr);
    return r;
  }
  *changes_rtn = x.changes;
  *nr_rtn = x.nr;
  return 0;
}
