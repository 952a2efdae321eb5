/* vmferry: fix-ups inside the destination copy of a guest, when a
 * rewrite changes what the guest sees (issue 18).
 *
 * A disk moved to another bus gets another name in the guest (virtio's
 * vda is scsi's sda): /etc/fstab entries and the boot loader's root= that
 * name the old device would not be found at boot.  An interface with a
 * new MAC no longer matches network configurations written for the old
 * one.  These edits are made in the copy only, after it is verified and
 * before the domain is defined, in one appliance launch (read-write on
 * the copy's files: the source is never opened).  UUID= and LABEL=
 * entries name no device and are left as they are.
 *
 * --new-identity adds what virt-sysprep's hostname, machine-id and
 * ssh-hostkeys operations do, in the same launch: the given hostname in
 * /etc/hostname, an empty /etc/machine-id (systemd makes a new one at the
 * first boot), no /etc/ssh/ssh_host_* keys (made again at boot).
 *
 * Every change is one struct vmferry_fixup_change: what was changed in
 * which file, so that a user sees exactly what was done.
 */
#ifndef VMFERRY_GUEST_FIXUP_H
#define VMFERRY_GUEST_FIXUP_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/* A disk of the copy: its file (or block device) and format, and its
 * target before and after the rewrite ("vda", "sda"; equal when the
 * rewrite left it).
 */
struct vmferry_fixup_disk {
  const char *path;
  const char *format;
  const char *old_target, *new_target;
};

/* An interface whose MAC the rewrite changed ("52:54:00:..."). */
struct vmferry_fixup_mac {
  const char *old_mac, *new_mac;
};

struct vmferry_fixup_opts {
  const struct vmferry_fixup_disk *disks;
  size_t nr_disks;
  const struct vmferry_fixup_mac *macs;
  size_t nr_macs;
  const char *hostname;         /* --new-identity, or NULL */
};

/* One change made in the guest: FILE (a path in the guest) and WHAT
 * ("/dev/vda1 -> /dev/sda1", "removed").  Owned by the change.
 */
struct vmferry_fixup_change {
  char *file;
  char *what;
};

/* Does O ask for anything (a target that changes, a MAC, a hostname)? */
bool vmferry_fixup_needed (const struct vmferry_fixup_opts *o);

/* Launch the appliance over O's disks, read-write, find the guest's
 * operating system (one, Linux), mount its filesystems and make the
 * changes O asks for.  Returns 0 with *CHANGES_RTN and *NR_RTN set (free
 * with vmferry_fixup_changes_free; none is fine); 1 with the error set
 * when nothing could be done and nothing was written (no appliance, no
 * Linux system found); or -1 with the error set when the copy may be
 * partly changed (the caller discards it).
 */
int vmferry_guest_fixup (const struct vmferry_fixup_opts *o,
                         struct vmferry_fixup_change **changes_rtn,
                         size_t *nr_rtn);

void vmferry_fixup_changes_free (struct vmferry_fixup_change *changes,
                                 size_t nr);

/* CHANGES as a JSON array of {"file", "change"}; NULL when out of
 * memory.
 */
json_object *vmferry_fixup_changes_to_json
  (const struct vmferry_fixup_change *changes, size_t nr);

/* The edits themselves, on a file's text (pure, for the unit tests).
 * Each returns the new text (the caller frees it; the input's bytes
 * wherever nothing matched) and adds one change per replacement to
 * *CHANGES / *NR under the name FILE, or NULL with the error set.
 *
 * fstab: the first field of each entry that is /dev/OLD[N] for a disk
 * whose target changes.  root: every "root=/dev/OLD[N]" (a grub.cfg, a
 * GRUB_CMDLINE_LINUX line, a BLS entry's options).  macs: an old MAC
 * (any case) on a line that names a MAC (netplan's macaddress:,
 * NetworkManager's mac-address=, ifcfg's HWADDR=, udev's
 * ATTR{address}), written in the case the old one had.
 */
char *vmferry_fixup_fstab_text (const char *text,
                                const struct vmferry_fixup_opts *o,
                                const char *file,
                                struct vmferry_fixup_change **changes,
                                size_t *nr);
char *vmferry_fixup_root_text (const char *text,
                               const struct vmferry_fixup_opts *o,
                               const char *file,
                               struct vmferry_fixup_change **changes,
                               size_t *nr);
char *vmferry_fixup_mac_text (const char *text,
                              const struct vmferry_fixup_opts *o,
                              const char *file,
                              struct vmferry_fixup_change **changes,
                              size_t *nr);

/* Is NAME a host name (RFC 1123 labels of letters, digits and '-', at
 * most 63 each, 253 in all)?
 */
bool vmferry_fixup_hostname_ok (const char *name);

#endif
