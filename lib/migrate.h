/* vmferry: the whole offline move in one call (vmferry-migrate).
 *
 * Pre-flight check of the (rewritten) domain against the destination's
 * libvirtd, then export -> rewrite -> send -> import (which verifies every
 * file and defines the domain, optionally starts it), each stage a thread
 * joined by pipes, memory flat.  The source is undefined only when asked
 * and only after the remote import succeeded (files verified, domain
 * defined); after any failure the source is as it was.  A cut transfer
 * resumes when the same migration runs again (send.h).
 */
#ifndef VMFERRY_MIGRATE_H
#define VMFERRY_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>

#include "export.h"
#include "import-result.h"
#include "preflight.h"
#include "progress.h"
#include "rewrite.h"
#include "ssh.h"

struct vmferry_migrate_opts {
  const char *uri;              /* source libvirt URI; NULL: libvirt's */
  const char *domain;
  struct vmferry_ssh_opts ssh;  /* destination */
  const char *dest_uri;         /* destination libvirtd for the check;
                                 * NULL: qemu+ssh://[USER@]HOST[:PORT]/system */
  const char *dest_dir;         /* where the files go on the destination; */
  const char *dest_pool;        /* or this pool; neither: the directory of
                                 * the first disk in the rewritten XML */
  struct vmferry_rewrite *rewrite;   /* may be NULL or empty */
  bool start, undefine_source, dry_run;
  /* With undefine_source, offline: once the copy is verified there and
   * the source undefined, remove the source's disks, NVRAM and TPM
   * state, each file only if no other defined domain refers to it and no
   * QEMU has it open (what is kept is said).
   */
  bool remove_source_storage;
  /* Offline: passed to the remote import (import.h): every disk as
   * FORMAT (NULL: as sent), FLATTEN chains, and N_DEST_DISKS
   * "TARGET=DEVICE" values (--disk there: disks onto block devices).
   */
  const char *format;
  bool flatten;
  /* Offline: the export trims the guest's filesystems on overlays
   * (export.h) and sends only what they use.
   */
  bool trim;
  const char *const *dest_disks;
  size_t n_dest_disks;
  /* Offline: the remote import's --no-fixup and --new-identity=HOSTNAME
   * (fix-ups in the copy there, guest-fixup.h).
   */
  bool no_fixup;
  const char *new_identity;
  /* Offline: a running or paused source is copied too, its disks read
   * through a backup job at one point in time (export.h; vmferry-sync's
   * first copy), its file systems frozen as FREEZE says.
   */
  bool allow_running;
  enum vmferry_freeze freeze;
  bool no_check;                /* skip the pre-flight check */
  bool no_resume;
  unsigned connections;         /* SSH sessions for the data (0: 1) */
  enum vmferry_compress compress;
  int level;
  unsigned threads;
  /* Bytes of the stream the export may run ahead of the send (0: none);
   * the tool's default is VMFERRY_SEND_BUFFER: what the memory budget
   * leaves once the stages are counted (send.h).
   */
  size_t buffer;
  struct vmferry_progress *progress;
  FILE *report;                 /* --dry-run's plan and the findings */

  /* --live: hand the running domain to libvirt's copy-storage migration
   * (lib/live.h), after the same pre-flight check and rewrite.
   */
  bool live, auto_converge, postcopy;
  const char *migrate_uri;      /* QEMU's data channel; NULL: libvirt's
                                   choice */
  const volatile sig_atomic_t *cancel;   /* set by SIGINT/SIGTERM */

  /* Offline: called (may be NULL) right before the remote import starts,
   * with the domain's name there and where it keeps what arrives ("DIR"
   * or "pool POOL"): from then on an interrupt leaves partial files and
   * resume state there.  Called again with both NULL once the import
   * succeeded (the copy is verified and defined).  For the message of a
   * tool's signal handler.
   */
  void (*at_send) (void *opaque, const char *name, const char *where);
  void *at_send_opaque;

  /* Filled (may be NULL) with what the run found and did, as far as it
   * got, also when it fails: for vmferry-migrate --json.
   */
  struct vmferry_migrate_result *result;
};

/* What one run found and did (vmferry_migrate_result_json).  Zero it
 * before the run; vmferry_migrate_result_free frees what it holds.
 */
struct vmferry_migrate_result {
  bool checked;                 /* the pre-flight check ran: findings */
  bool blocked;                 /* its findings refused the move */
  struct vmferry_findings findings;
  char *dest_uri;               /* the destination's libvirt URI */
  char *dest_name;              /* the domain's name there */
  char *dest_where;             /* "DIR" or "pool POOL"; NULL: --live */
  /* The files the domain carries, as their paths will be there (with
   * --dest-pool: their names in the pool).
   */
  struct vmferry_check_string_vector dest_files;
  bool has_bytes;               /* offline: the counts below are known */
  uint64_t bytes_read, bytes_sent, bytes_written, bytes_skipped;
  bool resumed;
  /* Offline: what the import there did in the guest (its --json
   * result's fixups and fixups_not_done; fixups_known false: not known).
   */
  struct vmferry_import_result import;
  /* --dry-run: the plan (print_plan's figures). */
  bool has_plan;
  uint64_t plan_files, plan_size, plan_allocated;
  int plan_changes;
};

void vmferry_migrate_result_free (struct vmferry_migrate_result *res);

/* The layout's version: the object's "version" member.  A member is
 * added without a change of version; one renamed, removed or given
 * another meaning changes it.
 */
#define VMFERRY_MIGRATE_JSON_VERSION 1

enum vmferry_migrate_outcome {
  VMFERRY_MIGRATE_NOTHING = 0,  /* failed: the source is as it was */
  VMFERRY_MIGRATE_DONE = 1,
  /* Copied, verified and defined on the destination, but the source
   * could not be undefined (--undefine-source).
   */
  VMFERRY_MIGRATE_SOURCE_DEFINED = 2,
  /* --live only: the roll-back after a failure left something behind
   * (the message lists it).
   */
  VMFERRY_MIGRATE_LEFTOVERS = 3,
  /* --live only: failed after the switch to post-copy; the domain is
   * split between the hosts (the message says how to recover).
   */
  VMFERRY_MIGRATE_SPLIT = 4,
  /* Nothing was copied: the destination already holds this very move,
   * defined from the same, unchanged source state (an earlier run did it,
   * and may have been killed before it said so).  As DONE otherwise
   * (--undefine-source acts).
   */
  VMFERRY_MIGRATE_ALREADY = 5,
};

/* Returns 0 or -1 with the error set; *OUTCOME_RTN (may be NULL) says
 * where the domain is.
 */
int vmferry_migrate (const struct vmferry_migrate_opts *opts,
                     enum vmferry_migrate_outcome *outcome_rtn);

/* The one result object of vmferry-migrate --json (its man page lists
 * the members), written to OUT as one line.  R and OUTCOME are what
 * vmferry_migrate returned, ERROR its message (NULL if none), EXIT_CODE
 * the tool's status, START and END wall-clock times (seconds since the
 * epoch) and SECONDS the run's duration.  Returns 0, or -1 with the
 * error set.
 */
int vmferry_migrate_result_json (const struct vmferry_migrate_opts *opts,
                                 const struct vmferry_migrate_result *res,
                                 int r, enum vmferry_migrate_outcome outcome,
                                 const char *error, int exit_code,
                                 double start, double end, double seconds,
                                 FILE *out);

/* vmferry-migrate --abort: remove what an interrupted migration of
 * OPTS->domain with these options left on the destination.  Offline: the
 * remote "vmferry-import --abort=NAME" of the directory or pool the
 * migration sends to (partial files, TPM state, resume state), over the
 * same SSH path as the send.  --live: what the live journal lists (see
 * vmferry_live_recover).  The source is not touched.  Returns 0 with
 * *WHAT_RTN (caller frees) saying what was cleared, or -1 with the error
 * set (also when there was nothing to abort).
 */
int vmferry_migrate_abort (const struct vmferry_migrate_opts *opts,
                           char **what_rtn);

#endif
