/* vmferry: a standby copy on another host, refreshed with what changed
 * (vmferry-sync; docs/design-dr.md, issue 16).
 *
 * The first run is vmferry-migrate's copy (the source kept, the standby
 * defined shut off); then both sides record the map digest of every disk
 * (digest.h): the sender under its state directory, keyed by the source
 * domain's UUID and the destination, the receiver beside the standby's
 * disks, with the dev/ino/size/mtime/ctime of each file of each disk's
 * chain.  A refresh reads the source, compares each 1 MiB chunk's digest
 * with the sender's map and sends the chunks that differ as a REFRESH
 * stream (vmferry-stream(5)).
 * On the host each standby disk is a qcow2 top (the name its XML uses)
 * over the first copy, with restore points between (docs/design-dr.md,
 * section 4); the receiver writes the chunks into a new overlay over the
 * top through a qemu-nbd child, reads them back through its chain, checks
 * the new map's root against the stream's, and only then switches every
 * disk in one journaled step (rename over the top): until then the
 * previous standby is untouched and startable.  Restore points beyond
 * --keep are merged into the base, each step journaled.  A standby any
 * file of whose chains changed since the receiver recorded them is not
 * trusted: the receiver returns the map of what the top's view holds and
 * only the chunks that differ from it are sent.  Both records are
 * written only after the receiver committed.  The refresh stream also
 * carries the source's domain XML and the first copy's rewrite rules;
 * once the data is committed, the standby is defined again when they
 * make another definition than its own (sync-define.h).
 */
#ifndef VMFERRY_SYNC_H
#define VMFERRY_SYNC_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "migrate.h"

struct vmferry_sync_opts {
  /* The connection, send and rewrite options, as vmferry-migrate's (the
   * first copy is its copy, the source kept and the standby not started).
   */
  struct vmferry_migrate_opts m;
  const char *standby;          /* the standby's name: --rename's, else
                                   the domain's */
  bool full;                    /* forget the records: a full copy */
  bool compare;                 /* trust no record: compare the maps */
  unsigned keep;                /* restore points kept on the host */
  bool no_bitmap;               /* never add a dirty bitmap to a source
                                   qcow2: scan it (sync-bitmap.h) */
  const char *state_dir;        /* NULL: vmferry_sync_state_dir () */
  const char *remote_sync;      /* NULL: "vmferry-sync" */
  /* The rewrite rules given, as sync-define.h records them (NULL: none
   * given; a refresh then uses those of the first copy).
   */
  const char *rules;
  /* --trim (sync-trim.h): the first copy is migrate's --trim; a refresh
   * reads each disk through an overlay the appliance trimmed.
   */
  bool trim;
  /* Set by a signal (quit.h), NULL: never.  A refresh stops before its
   * next chunk, ends its backup job, removes its overlays, and the
   * standby stays as it was; vmferry_sync_quit serves the first copy.
   */
  const volatile sig_atomic_t *cancel;
};

struct vmferry_sync_stats {
  bool first;                   /* the first copy (all was sent) */
  bool compared;                /* the standby's own map was used */
  bool changed_by_hand;         /* ... because its files had changed */
  unsigned generation;          /* now on the standby */
  uint64_t read;                /* bytes of the source read */
  uint64_t chunks, changed;     /* chunks in all, chunks sent */
  uint64_t sent;                /* bytes of the stream on the wire */
  char method[512];             /* how changes were found: "bitmap",
                                   "checkpoint", "scan", "scan (why)",
                                   per disk when they differ */
  int definition;               /* a refresh: 1 the standby was defined
                                   again, 0 its definition was the same,
                                   -1 not said (a receiver without it) */
  /* A running source (sync-running.h): read through a backup job, its
   * file systems FROZEN or not.
   */
  bool running, frozen;
  /* --trim: the filesystems not trimmed ("" when every one was). */
  char untrimmed[256];
};

/* The sender's state directory: $VMFERRY_SYNC_STATE_DIR, else
 * /var/lib/vmferry/sync.
 */
const char *vmferry_sync_state_dir (void);

/* Copy or refresh.  Returns 0, or -1 with the error set; STATS (filled
 * either way, as far as it got) says what was done.
 */
int vmferry_sync (const struct vmferry_sync_opts *opts,
                  struct vmferry_sync_stats *stats);

/* For the thread that acts on a signal (quit.h), outside any handler:
 * while the first copy runs (migrate's export does not look at the
 * flag), end its backup job and remove its --trim overlays, and return
 * true: the caller is to die of the signal.  Else false: a refresh sees
 * the flag itself and ends what it began.
 */
bool vmferry_sync_quit (void);

/* --forget: remove what the sender keeps for the standby of OPTS's
 * domain on OPTS's host: the source disks' dirty bitmaps of that
 * destination (sync-bitmap.h), the domain's checkpoints of it
 * (sync-running.h) and the sender's records, under the lock a sync of
 * the pair holds (refused while one runs).  The host is not contacted.
 * *WHAT_RTN says what was removed (the caller frees it).  0, or -1
 * with the error set (saying what was left).
 */
int vmferry_sync_forget (const struct vmferry_sync_opts *opts,
                         char **what_rtn);

/* Print the standby's restore points on the host, one a line: "TARGET
 * GENERATION FILE".  Returns 0, or -1 with the error set.
 */
int vmferry_sync_list (const struct vmferry_sync_opts *opts, FILE *out);

/* ---- the receiver (vmferry-sync --receiver=ACTION on the host) ----
 *
 * Each works on the shut-off domain NAME of the local libvirtd (URI,
 * NULL: libvirt's), under a lock beside its disks, and first finishes a
 * commit a killed run journaled or removes what it left.  Each writes
 * one JSON object to OUT.  Returns 0, or -1 with the error set.
 */

/* After the first copy: read the standby's disks, record their maps
 * (generation 1, TOKEN: 32 hex digits the sender chose).
 */
int vmferry_sync_receive_init (const char *uri, const char *name,
                               const char *token, FILE *out);

/* The receiver's record: its generation and token, and per disk its root;
 * with COMPARE, or for a disk whose file changed since it was recorded,
 * also the map of what the file holds ("map": hex, 16 bytes a chunk).
 */
int vmferry_sync_receive_query (const char *uri, const char *name,
                                bool compare, FILE *out);

/* The restore points of each disk: generation and file. */
int vmferry_sync_receive_list (const char *uri, const char *name, FILE *out);

/* Apply the REFRESH stream on IN_FD (see above), commit it, define the
 * standby again if its XML changed ("definition": "updated", "unchanged"
 * or "failed" with "definition_error" in OUT's object), then merge the
 * restore points beyond the KEEP newest into the base.
 */
int vmferry_sync_receive_apply (const char *uri, const char *name,
                                int in_fd, unsigned keep, FILE *out);

/* A query and an apply in one process (one connection to libvirt, one
 * lock): the query's answer (COMPARE as there) on OUT, then the refresh
 * stream read from IN_FD and applied; the apply's answer is printed
 * before the merge of the restore points beyond KEEP, which follows it.
 * An input that ends at once (the sender did not refresh, after the
 * query's answer) leaves the standby untouched and is no error.
 */
int vmferry_sync_receive_refresh (const char *uri, const char *name,
                                  bool compare, int in_fd, unsigned keep,
                                  FILE *out);

#endif
