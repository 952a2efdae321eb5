/* vmferry: a libvirt pull-mode backup of a running domain.
 *
 * The export of a running domain reads its disks as the guest sees them
 * at one point in time: libvirt's backup job (virDomainBackupBegin, mode
 * 'pull') serves every disk as an NBD export on a unix socket, and QEMU
 * copies a block the guest overwrites to a scratch file before the write
 * (docs/design-dr.md, section 1).  The socket and the scratch files live
 * in a directory only we create (mkdtemp, 0700, named
 * VMFERRY_BACKUP_DIR_PREFIX...), which is also how a job a killed run
 * left behind is told from someone else's.  A job is ended by
 * virDomainAbortJob (a pull backup has no other end), and only counts
 * as ended once libvirt no longer lists it (it removes the scratch files
 * after the abort returns).
 */
#ifndef VMFERRY_BACKUP_H
#define VMFERRY_BACKUP_H

#include <stdbool.h>
#include <stddef.h>

#include <libvirt/libvirt.h>

/* The directories of our jobs: this, then six characters (mkdtemp). */
#define VMFERRY_BACKUP_DIR_PREFIX "vmferry-backup-"
/* The socket's name inside the directory. */
#define VMFERRY_BACKUP_SOCKET "nbd.sock"

enum vmferry_freeze {
  VMFERRY_FREEZE_AUTO,          /* when the guest agent answers */
  VMFERRY_FREEZE_YES,           /* fail without the agent */
  VMFERRY_FREEZE_NO,
};

/* One disk of the domain's live XML in the backup's XML. */
struct vmferry_backup_disk {
  const char *name;             /* its target dev, "vda" */
  /* Its scratch file: the disk is backed up.  NULL: backup='no'. */
  const char *scratch;
  /* In an incremental backup, read the whole disk (backupmode='full':
   * a raw disk carries no checkpoint).
   */
  bool full;
};

/* The <domainbackup mode='pull'> document for a job serving DISKS on
 * unix socket SOCKET; INCREMENTAL names the checkpoint to start from
 * (NULL: a full backup).  Every disk of the domain must be listed:
 * libvirt 9.0 fails on a disk backed up without a scratch file.  The
 * caller frees the result; NULL with the error set.
 */
char *vmferry_backup_xml (const char *socket, const char *incremental,
                          const struct vmferry_backup_disk *disks, size_t n);

/* The socket of a backup job's XML (virDomainBackupGetXMLDesc), or NULL
 * (not a pull job on a unix socket, or XML that does not parse).  The
 * caller frees it.
 */
char *vmferry_backup_xml_socket (const char *xml);

/* Is SOCKET the socket of a job of ours: an absolute path ending in
 * /vmferry-backup-XXXXXX/nbd.sock (six letters or digits)?
 */
bool vmferry_backup_socket_is_ours (const char *socket);

struct vmferry_backup;

/* Start a full pull backup of DOM (running or paused) serving the disks
 * whose targets are TARGETS (N of them, each in its live XML; the
 * domain's other disks are left out) in a new directory below BASE_DIR.
 * With FREEZE (not NO), the guest's file systems are frozen through its
 * agent around the start.  A job of ours that a killed run left on DOM
 * is ended first (*CLEANED_RTN true, may be NULL); someone else's job is
 * refused.  NULL with the error set; nothing is left then.
 * Only one backup of a process is active at a time (see
 * vmferry_backup_quit).  End it with vmferry_backup_end.
 */
struct vmferry_backup *vmferry_backup_begin (virDomainPtr dom,
                                             const char *base_dir,
                                             const char *const *targets,
                                             size_t n,
                                             enum vmferry_freeze freeze,
                                             bool *cleaned_rtn);

/* What a job of vmferry_backup_begin_checkpoint adds to a full backup
 * (vmferry-sync of a running domain, sync-running.h).
 */
struct vmferry_backup_checkpoint {
  /* The checkpoint the job starts from (libvirt's name), whose bitmaps
   * the exports' qemu:dirty-bitmap:backup-TARGET contexts show; NULL: a
   * full backup.
   */
  const char *incremental;
  /* Per target (TARGETS' order), may be NULL: read that disk whole in an
   * incremental backup (backupmode='full': a raw disk has no bitmap).
   */
  const bool *full;
  /* A <domaincheckpoint> document created with the job; NULL: none. */
  const char *xml;
};

/* vmferry_backup_begin, with CP (NULL: as vmferry_backup_begin). */
struct vmferry_backup *
vmferry_backup_begin_checkpoint (virDomainPtr dom, const char *base_dir,
                                 const char *const *targets, size_t n,
                                 enum vmferry_freeze freeze,
                                 bool *cleaned_rtn,
                                 const struct vmferry_backup_checkpoint *cp);

/* The libnbd URI of disk TARGET's export; the caller frees it. */
char *vmferry_backup_uri (const struct vmferry_backup *b, const char *target);

/* Whether the file systems were frozen for the start ("frozen" copy) or
 * not ("crash-consistent"), and if not, why (the agent's error).
 */
bool vmferry_backup_frozen (const struct vmferry_backup *b);
const char *vmferry_backup_why_not_frozen (const struct vmferry_backup *b);

/* Is the domain's backup job still this one (not ended, not replaced)?
 * 0, or -1 with the error set.
 */
int vmferry_backup_check (const struct vmferry_backup *b);

/* End the job (abort it, wait until libvirt no longer lists it), remove
 * the directory and free B.  0, or -1 with the error set (B is freed
 * anyway).  NULL is fine.
 */
int vmferry_backup_end (struct vmferry_backup *b);

/* End the process's active backup, if any, from a thread that is about
 * to end the process (a signal's watch): the job is aborted and waited
 * for, and the directory removed.  The backup's owner must not use it
 * any more: its vmferry_backup_end waits forever.
 */
void vmferry_backup_quit (void);

/* End a job of ours on DOM that a killed run left (its socket says so:
 * vmferry_backup_socket_is_ours) and remove its directory.  Returns 1
 * when one was ended, 0 when DOM has no backup job, -1 with the error
 * set (also when the job is someone else's).
 */
int vmferry_backup_clean_stale (virDomainPtr dom);

#endif
