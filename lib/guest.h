/* vmferry: looking inside a guest's disks with the libguestfs appliance.
 *
 * One appliance is launched per operation over all of a domain's disks,
 * every disk added read-only: libguestfs puts a temporary overlay over
 * each, so whatever runs inside (a journal replay, a checker's repairs)
 * lands in the overlay and the images stay bit for bit as they were.
 * The appliance is slow to start (seconds with KVM, about 20 s under
 * TCG), so callers ask for it only when a user asked for what it gives.
 *
 * The guest's devices are named as the domain names them: the appliance
 * sees disk i as /dev/sdX, and a name here is the target of disk i
 * ("vda") plus the partition number ("vda1").  Logical volumes keep the
 * appliance's name ("/dev/vg0/root").
 */
#ifndef VMFERRY_GUEST_H
#define VMFERRY_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>

struct vmferry_guest;

/* One disk as the domain has it: the image, its format ("raw",
 * "qcow2"; NULL lets libguestfs probe, which callers must not do for
 * untrusted images) and its target ("vda").
 */
struct vmferry_guest_disk {
  const char *path;
  const char *format;
  const char *target;
};

/* Launch the appliance over DISKS (in the domain's order), each
 * read-only.  Backing files are followed as QEMU would (the caller has
 * checked the chains).  Returns 0 with *G_RTN set, or -1 with the error
 * set ("guest appliance: cannot launch: ...": LIBGUESTFS_BACKEND and
 * LIBGUESTFS_BACKEND_SETTINGS choose how it runs).
 */
int vmferry_guest_open (const struct vmferry_guest_disk *disks, size_t nr,
                        struct vmferry_guest **g_rtn);

/* Launch the appliance over the disks of domain NAME on CONN (files,
 * block devices and pool volumes, CD-ROMs and other read-only disks
 * left out), as vmferry_guest_open.  Refuses a domain that is not shut
 * off: its filesystems would change under the appliance.
 */
int vmferry_guest_open_domain (virConnectPtr conn, const char *name,
                               struct vmferry_guest **g_rtn);

/* --trim: launch the appliance over DISKS (overlays of the caller's,
 * written in place, the guest's discards passed down to them), mount
 * each filesystem in turn and fstrim it, and shut the appliance down
 * (QEMU flushed and gone: the overlays are complete).  Returns how many
 * filesystems were trimmed, with *UNTRIMMED_RTN the others as
 * "vda2 (swap: swap space), ..." (the caller frees it) or NULL when
 * every one was; -1 with the error set when the appliance failed.
 */
int vmferry_guest_trim (const struct vmferry_guest_disk *disks, size_t nr,
                        char **untrimmed_rtn);

/* vmferry_guest_trim in steps, for a caller that does more in the same
 * launch (export --trim --inspect: the appliance is launched once per
 * operation).  Open: launch over the overlays DISKS as above.  Fstrim:
 * trim every filesystem, as vmferry_guest_trim returns (the filesystems
 * unmounted after).  Shutdown: end the appliance and say whether it
 * ended cleanly (0, or -1 with the error set): the overlays are
 * complete only then; G is still closed by vmferry_guest_close.
 */
int vmferry_guest_open_overlays (const struct vmferry_guest_disk *disks,
                                 size_t nr, struct vmferry_guest **g_rtn);
int vmferry_guest_fstrim (struct vmferry_guest *g, char **untrimmed_rtn);
int vmferry_guest_shutdown (struct vmferry_guest *g);

/* Shut the appliance down and free G (NULL is fine).  Its overlays go
 * with it.
 */
void vmferry_guest_close (struct vmferry_guest *g);

/* Set the error from libguestfs handle H's last one, for WHAT failed
 * (its first line: the rest is libguestfs' advice on debugging).
 */
struct guestfs_h;
void vmferry_guest_set_error (struct guestfs_h *h, const char *what);

/* A filesystem the appliance found.  Strings are owned by the info. */
struct vmferry_guest_fs {
  char *device;                 /* "vda1" (see above) */
  char *type;                   /* "ext4", "xfs", "swap", "unknown" */
  char *uuid, *label;           /* "" when none */
  char *mountpoint;             /* where the guest mounts it, or "" */
};

/* One operating system (a root filesystem) inspection found. */
struct vmferry_guest_os {
  char *root;                   /* device of its root filesystem */
  char *type;                   /* "linux", "windows", ... */
  char *distro;                 /* "debian", "rhel", ...; "unknown" */
  char *product;                /* "Debian GNU/Linux 12 (bookworm)" */
  char *hostname;               /* "unknown" when not found */
  int major, minor;             /* version; 0 when unknown */
};

struct vmferry_guest_info {
  size_t nr_os;
  struct vmferry_guest_os *os;
  size_t nr_fs;
  struct vmferry_guest_fs *fs;
};

/* Inspect the guest: every operating system and every filesystem (with
 * the mount points its operating system gives them).  A guest with no
 * operating system found is not an error (nr_os is 0).  Returns 0 with
 * *INFO_RTN set (free with vmferry_guest_info_free), or -1.
 */
int vmferry_guest_inspect (struct vmferry_guest *g,
                           struct vmferry_guest_info **info_rtn);

void vmferry_guest_info_free (struct vmferry_guest_info *info);

/* INFO as a JSON object: {"os": [{"root", "type", "distro", "product",
 * "hostname", "major", "minor"}...], "filesystems": [{"device", "type",
 * "uuid", "label", "mountpoint"}...]}, the last three left out when
 * empty: the manifest's "guest".  NULL when out of memory.
 */
json_object *vmferry_guest_info_to_json (const struct vmferry_guest_info *info);

/* The inspection TEXT (the JSON of vmferry_guest_info_to_json, as a
 * manifest's "guest" holds it, checked) back into *INFO_RTN (free with
 * vmferry_guest_info_free).  Returns 0, or -1 with the error set.
 */
int vmferry_guest_info_from_json (const char *text,
                                  struct vmferry_guest_info **info_rtn);

/* INFO as text lines to OUT, each starting with INDENT, every guest
 * string escaped for a terminal (vmferry_text_escape).
 */
void vmferry_guest_info_print (const struct vmferry_guest_info *info,
                               const char *indent, FILE *out);

enum vmferry_guest_state {
  VMFERRY_GUEST_CLEAN,          /* the checker found nothing */
  VMFERRY_GUEST_DAMAGED,        /* the checker found errors */
  VMFERRY_GUEST_UNCHECKED,      /* no checker for this type (why says) */
};

struct vmferry_guest_check {
  char *device;                 /* as in vmferry_guest_fs */
  char *type;
  enum vmferry_guest_state state;
  char *why;                    /* what the checker said, or why not */
};

/* Check every filesystem with its own checker, forced (also one marked
 * clean), changing nothing: ext2, ext3 and ext4 by e2fsck in preen mode with a
 * forced check (repairs would land in the overlay: any repair is a
 * finding), xfs by xfs_repair -n, vfat by fsck.vfat.  Swap and
 * filesystems without a checker are UNCHECKED.  Returns the number of
 * damaged filesystems with *CHECKS_RTN and *NR_RTN set (free with
 * vmferry_guest_checks_free), or -1 when the appliance failed.
 */
int vmferry_guest_check_filesystems (struct vmferry_guest *g,
                                     struct vmferry_guest_check **checks_rtn,
                                     size_t *nr_rtn);

void vmferry_guest_checks_free (struct vmferry_guest_check *checks,
                                size_t nr);

/* CHECKS as a JSON array (vmferry-info's "checks") of {"device",
 * "type", "state", "why"}; NULL when out of memory.
 */
json_object *vmferry_guest_checks_to_json
  (const struct vmferry_guest_check *checks, size_t nr);

/* One line per check to OUT: "vda1 (ext4): clean: why". */
void vmferry_guest_checks_print (const struct vmferry_guest_check *checks,
                                 size_t nr, FILE *out);

/* "clean", "damaged", "unchecked". */
const char *vmferry_guest_state_name (enum vmferry_guest_state state);

/* vmferry-info --domain: launch the appliance over domain NAME (shut
 * off) on URI's host, and print to OUT its inspection (INSPECT) and the
 * check of every filesystem (CHECK), as text, or as one JSON object
 * when FORMAT (its "format" member) is given.  Returns the number of
 * damaged filesystems, or -1 with the error set.
 */
int vmferry_guest_domain_report (const char *uri, const char *name,
                                 bool inspect, bool check,
                                 const char *format, FILE *out);

#endif
