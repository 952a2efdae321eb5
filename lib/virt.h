/* vmferry: libvirt access.
 *
 * libvirt reports errors through its own per-thread error object and, by
 * default, also prints them to stderr.  Everything here silences the
 * printing and turns libvirt's errors into vmferry errors instead.
 */
#ifndef VMFERRY_VIRT_H
#define VMFERRY_VIRT_H

#include <sys/stat.h>

#include <libvirt/libvirt.h>

/* Open a read-write connection to URI (NULL: libvirt's default URI).
 * Returns NULL with the error "URI: cannot connect: <libvirt's reason>".
 * The caller closes it (CLEANUP_VIR_CONNECT).
 */
virConnectPtr vmferry_virt_connect (const char *uri);

/* Record libvirt's last error as the thread's vmferry error, after the
 * formatted context: "<context>: <libvirt message>".
 */
void vmferry_virt_error (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));

/* Look up a domain by name, then by UUID.  The caller frees it. */
virDomainPtr vmferry_virt_lookup_domain (virConnectPtr conn, const char *name);

/* The domain's state (VIR_DOMAIN_RUNNING...), or -1 with the error set. */
int vmferry_virt_domain_state (virDomainPtr dom);

/* The path of volume VOLUME of pool POOL on CONN; NULL (libvirt's error
 * not copied) if there is none.  The caller frees.
 */
char *vmferry_virt_volume_path (virConnectPtr conn, const char *pool,
                                const char *volume);

/* "running", "shut off", ... as virsh prints them. */
const char *vmferry_virt_state_name (int state);

/* The names of the domains on CONN, other than the one of EXCLUDE_UUID
 * (may be NULL), whose definition (persistent, and live when running)
 * refers to PATH, or with ST to the same file (device and inode), in any
 * disk or filesystem source, backing store, NVRAM, loader, kernel or
 * initrd, as a volume of a storage pool, or in the backing chain (the
 * qcow2 headers) of a qcow2 disk: ", "-separated, "" when none.  The
 * caller frees.  NULL with the error set.
 */
char *vmferry_virt_file_users (virConnectPtr conn, const char *path,
                               const struct stat *st, const char *exclude_uuid);

/* The type of storage pool P (POOL in messages) when its volumes are
 * block devices: "disk" or "logical"; "" for any other type; NULL with
 * the error set.
 */
const char *vmferry_virt_pool_block_type (virStoragePoolPtr p,
                                          const char *pool);

/* Block pool P of TYPE is active: 0, else -1 with the error saying what
 * it lacks (for a logical pool, which of LVM's parts this host has not:
 * device-mapper, lvm2, the volume group).
 */
int vmferry_virt_pool_usable (virStoragePoolPtr p, const char *pool,
                              const char *type);

#endif
