/* vmferry: live migration (vmferry-migrate --live).
 *
 * The running domain is handed to libvirt's copy-storage migration
 * (virDomainMigrate3 with VIR_MIGRATE_LIVE | VIR_MIGRATE_NON_SHARED_DISK
 * | VIR_MIGRATE_PERSIST_DEST), and vmferry adds what libvirt lacks:
 *
 *  - the definition is adapted to the destination by the caller's rewrite
 *    (applied to both the running domain's migratable XML, sent as
 *    VIR_MIGRATE_PARAM_DEST_XML, and its persistent XML, sent as
 *    VIR_MIGRATE_PARAM_PERSIST_XML), then the caller's pre-flight check
 *    runs on it before anything is created;
 *  - every copied disk is pre-created on the destination through its
 *    libvirt storage API, thin: a qcow2 volume of the same virtual size
 *    without preallocation, or a sparse raw file.  (libvirt 9.0's own
 *    pre-creation allocates the whole qcow2.)  The running domain on the
 *    destination gets detect_zeroes (and discard='unmap') on those disks,
 *    so blocks of zeros the source holds allocated arrive as holes; the
 *    persistent definition is the rewritten one, without that change;
 *  - the NVRAM file, which libvirt 9.0 does not carry with non-shared
 *    storage, is uploaded to its (rewritten) path on the destination
 *    before the migration starts.  TPM state travels in QEMU's migration
 *    stream (libvirt does that for swtpm);
 *  - progress from the job statistics, disk copy then memory;
 *  - an abort (*CANCEL set, e.g. by a SIGINT handler) cancels the job;
 *  - on any failure or abort the source keeps running, and what was made
 *    on the destination (volumes, NVRAM file, a definition libvirt left)
 *    is removed; the error message says so, or says what was left;
 *  - the source is undefined only when asked, and only once the domain
 *    runs and is persistent on the destination.
 *
 * Everything on the destination is done through DEST_URI, so any libvirt
 * URI works (qemu+ssh://, qemu+tcp://, qemu+tls://).
 */
#ifndef VMFERRY_LIVE_H
#define VMFERRY_LIVE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <libvirt/libvirt.h>
#include <libxml/tree.h>

#include "progress.h"

struct vmferry_live_opts {
  const char *uri;              /* source libvirt URI; NULL: default */
  const char *domain;           /* name or UUID, running (or paused) */
  const char *dest_uri;         /* destination libvirt URI (required) */
  const char *connect_uri;      /* the one to open, if not dest_uri
                                 * (ssh.h's with its helper) */
  /* Where QEMU sends the migration data (VIR_MIGRATE_PARAM_URI, e.g.
   * "tcp://10.0.0.2"); NULL lets the destination libvirtd choose (its
   * host name and a port of its migration range).
   */
  const char *migrate_uri;
  /* Adapt DOC (parsed domain XML) to DEST in place: called once on the
   * running domain's migratable XML and once on its persistent XML.
   * Returns the number of changes or -1 with the error set.  NULL: the
   * definition goes unchanged.  Changes that alter the guest's ABI
   * (machine type, disk bus, UUID) make libvirt refuse the migration.
   */
  int (*rewrite) (void *opaque, xmlDocPtr doc, virConnectPtr dest);
  /* The pre-flight check: called with the rewritten persistent XML before
   * anything is made on the destination.  Returns 0 to go on, -1 (error
   * set) to stop.  NULL: no check.
   */
  int (*preflight) (void *opaque, xmlDocPtr doc, virConnectPtr dest);
  void *opaque;                 /* for rewrite and preflight */
  uint64_t bandwidth;           /* MiB/s, 0: unlimited */
  bool auto_converge;           /* VIR_MIGRATE_AUTO_CONVERGE */
  /* VIR_MIGRATE_POSTCOPY, switched to post-copy once the first pass over
   * memory is done.  After the switch the job can no longer be aborted
   * and a failure leaves the domain split between the hosts.
   */
  bool postcopy;
  bool undefine_source;         /* after success only */
  bool keep_zeroes;             /* no detect_zeroes on the destination */
  struct vmferry_progress *progress;   /* may be NULL */
  /* Polled about 10 times a second: non-zero aborts the job (set from a
   * signal handler).  May be NULL.
   */
  const volatile sig_atomic_t *cancel;
};

enum vmferry_live_outcome {
  /* Nothing happened or everything was rolled back: the domain runs on
   * the source as before and the destination holds nothing of it.
   */
  VMFERRY_LIVE_NOTHING = 0,
  /* The domain runs and is persistent on the destination (and, if asked,
   * the source definition was removed).
   */
  VMFERRY_LIVE_MIGRATED = 1,
  /* Migrated, but --undefine-source failed: the source still has the
   * (shut off) definition.
   */
  VMFERRY_LIVE_MIGRATED_SOURCE_DEFINED = 2,
  /* Failed, and the clean-up of the destination was incomplete, or the
   * source does not run: the message says what is where.
   */
  VMFERRY_LIVE_LEFTOVERS = 3,
  /* Failed after the switch to post-copy: neither host has the whole
   * domain.  The message says how to recover (libvirt's post-copy
   * recovery).  Nothing was removed.
   */
  VMFERRY_LIVE_SPLIT = 4,
  /* Nothing was done: the domain already runs on the destination and
   * not on the source (an earlier run completed the move and may have
   * been killed before it said so).
   */
  VMFERRY_LIVE_ALREADY = 5,
};

/* The files an interrupted live migration of OPTS->domain to
 * OPTS->dest_uri made on the destination, as its journal lists them:
 * the next run removes them before anything else (a dry run's check
 * must not count them as in the way).  *PATHS_RTN (caller frees each
 * and the array; NULL when none) and *N_RTN.  Returns 0, or -1 with the
 * error set.
 */
int vmferry_live_leftovers (const struct vmferry_live_opts *opts,
                            char ***paths_rtn, size_t *n_rtn);

/* Migrate OPTS->domain live to OPTS->dest_uri.  Returns 0 (*OUTCOME_RTN
 * is VMFERRY_LIVE_MIGRATED) or -1 with the error set and *OUTCOME_RTN
 * saying where the domain and its files are.  OUTCOME_RTN may be NULL.
 */
int vmferry_migrate_live (const struct vmferry_live_opts *opts,
                          enum vmferry_live_outcome *outcome_rtn);

/* Before a pre-flight check of a live migration: what an interrupted
 * earlier run of it left (its journal, see live.c) is cleared from the
 * destination.  Returns 0 to go on; 1 when the domain already runs on the
 * destination and not on the source (an earlier run completed the move;
 * --undefine-source is then done, and *OUTCOME_RTN says how that went);
 * -1 with the error set when nothing can safely be done.
 */
int vmferry_live_recover (const struct vmferry_live_opts *opts,
                          enum vmferry_live_outcome *outcome_rtn);

/* The pure parts, exposed for the unit tests. */

/* The XML of a volume NAME of CAPACITY bytes in FORMAT ("raw", "qcow2"),
 * allocation 0: what virStorageVolCreateXML needs for a thin volume.  The
 * caller frees it; NULL with the error set.
 */
char *vmferry_live_volume_xml (const char *name, const char *format,
                               uint64_t capacity);

/* Prepare a rewritten definition for the destination, in place, for the
 * disks whose targets are in TARGETS (NULL-terminated): drop their
 * <backingStore> (the copy is flattened into one image) and, with
 * DETECT_ZEROES, set detect_zeroes on their <driver> (with discard='unmap'
 * when no discard mode is set, so zeros become holes) unless the disk
 * sets detect_zeroes itself.  Returns 0, or -1 with the error set.
 */
int vmferry_live_prepare_xml (xmlDocPtr doc, const char *const *targets,
                              bool detect_zeroes);

/* Phase and figures derived from one sample of virDomainGetJobStats. */
struct vmferry_live_sample {
  uint64_t disk_processed, disk_total, disk_remaining;
  uint64_t mem_processed, mem_total, mem_remaining;
  bool has_disk_remaining, has_mem_remaining;
  uint64_t mem_iteration;
};

/* Fill S from job statistics PARAMS (NPARAMS typed parameters). */
void vmferry_live_sample_parse (virTypedParameterPtr params, int nparams,
                                struct vmferry_live_sample *s);

/* The bars of a live migration, one per phase: "disks" (libvirt's NBD
 * mirrors) then "memory".  Zero-initialised by the caller.
 */
struct vmferry_live_bar {
  int phase;                    /* 0 none, 1 disks, 2 memory */
  uint64_t shown;               /* bytes reported in this phase */
  struct vmferry_live_sample last;
};

/* Report sample S.  What is done is the total less what libvirt says
 * remains: "processed" counts bytes sent, and QEMU sends a zero page as a
 * marker, so a guest of mostly zero memory would end near 0%.  The disks
 * end at 100% when memory starts: libvirt starts it only once every mirror
 * is in sync.
 */
void vmferry_live_bar_report (struct vmferry_progress *p,
                              struct vmferry_live_bar *b,
                              const struct vmferry_live_sample *s);

/* The job ended.  COMPLETED: libvirt finished it, so every phase is shown
 * at 100% (one too quick to be sampled included); else the bar ends where
 * the job stopped and the caller's error says why.
 */
void vmferry_live_bar_end (struct vmferry_progress *p,
                           struct vmferry_live_bar *b, bool completed);

#endif
