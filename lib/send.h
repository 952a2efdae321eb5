/* vmferry: push a stream into vmferry-import on a remote host, resuming
 * an interrupted transfer (vmferry-send).
 *
 * The stream is read from an fd (vmferry-export's output, or a pipeline
 * in vmferry-migrate).  First its metadata records go to
 * "vmferry-import --resume-query IMPORT-ARGS" on the remote, which checks
 * the target and answers what it already holds of this very stream (see
 * resume.h).  Then the stream goes to "vmferry-import --resumable
 * IMPORT-ARGS" (over libssh started alongside the query, so that its
 * start-up on the remote overlaps the query; it reads nothing before
 * the query has ended): when the answer allows, as a RESUME stream that leaves
 * out the DATA and ZERO records below each file's durable offset (the
 * input is still read whole; every FILE_END keeps the digest of the whole
 * source file, which the importer checks against what it has on disk).
 * Every record is checked on the way (order; checksum, unless the
 * reader trusts its input), and renumbered where records were left out.
 */
#ifndef VMFERRY_SEND_H
#define VMFERRY_SEND_H

#include <stdbool.h>
#include <stdint.h>

#include "progress.h"
#include "ssh.h"
#include "stream.h"

struct vmferry_send_opts {
  struct vmferry_ssh_opts ssh;
  const char *const *import_args;   /* for the remote vmferry-import,
                                       NULL-terminated */
  const char *remote_import;        /* NULL: "vmferry-import" */
  int in_fd;                        /* the stream (not closed) */
  const char *in_name;
  /* Read in_fd up to this many bytes ahead of the send, in a thread
   * (0: no thread; VMFERRY_SEND_BUFFER, the tool's default: what the
   * budget leaves, vmferry_buffer_default).
   */
  size_t buffer;
  /* Or this reader (not freed), e.g. of a handoff (handoff.h). */
  struct vmferry_stream_reader *in;
  unsigned connections;             /* SSH sessions (0: 1; see stripe.h) */
  bool no_resume;                   /* send everything, replacing any state */
  /* Run the import with --json and keep its standard output for the
   * caller (stats.import_out): vmferry-migrate's account of the fix-ups.
   */
  bool import_json;
  struct vmferry_progress *progress;
  /* Connected by vmferry_send_connect with these options, e.g. while the
   * stream was being prepared; not freed.  NULL: vmferry_send connects.
   */
  struct vmferry_ssh *session;
};

/* The memory budget of vmferry-send and vmferry-migrate: with the
 * default --buffer a process stays within it, its ring (handoff.h)
 * getting what the rest leaves.  The rest is counted where it is
 * allocated: vmferry_export_memory (the slots, the compressors),
 * vmferry_stream_reader_memory, vmferry_send_memory (the transport).
 */
#define VMFERRY_MEMORY_BUDGET ((size_t) 128 << 20)
/* What a process holds besides those: the libraries' code and data
 * (libvirt, libssh, GnuTLS, libxml2), thread stacks, the scout's buffer
 * and small allocations.  vmferry-migrate measured 15 MiB (bench/README,
 * bench-memory); vmferry-send less.
 */
#define VMFERRY_MEMORY_BASE ((size_t) 16 << 20)
/* The default ring at most: a larger one gained nothing measurable on a
 * 1 Gbit/s link (bench/README, bench-migrate).
 */
#define VMFERRY_BUFFER_USEFUL ((size_t) 64 << 20)
/* --buffer's default in vmferry-send and vmferry-migrate: sized by
 * vmferry_buffer_default when the stages are known.
 */
#define VMFERRY_SEND_BUFFER SIZE_MAX
#define VMFERRY_BUFFER_MAX ((uint64_t) 4 << 30)

/* The ring that leaves a process holding HELD bytes besides it (and
 * VMFERRY_MEMORY_BASE) within VMFERRY_MEMORY_BUDGET: at most
 * VMFERRY_BUFFER_USEFUL, whole MiB, 0 when nothing is left.
 */
size_t vmferry_buffer_default (size_t held);

/* What vmferry_send holds with OPTS besides its ring: the reader of its
 * input and the connections' buffers.
 */
size_t vmferry_send_memory (const struct vmferry_send_opts *opts);

struct vmferry_send_stats {
  uint64_t sent;                /* stream bytes written to the import */
  uint64_t skipped;             /* file bytes left out: already there */
  /* File bytes the stream carried as data or zero ranges (what the
   * export read; holes are not in it), and of those the data bytes sent
   * for the import to write (not the zero ranges, not what was skipped).
   */
  uint64_t read, written;
  bool resumed;
  /* The destination already holds this very move, complete (the domain
   * defined from the same source state): nothing was sent.
   */
  bool already;
  int remote_status;            /* the import's exit status, -1 unknown */
  /* With opts.import_json, what the import printed on standard output
   * when it succeeded (import-result.h reads it); NULL otherwise.  The
   * caller frees it.
   */
  char *import_out;
  size_t import_out_len;
};

/* Returns 0, or -1 with the error set; STATS (may be NULL) is filled
 * either way.  A remote failure sets remote_status; the remote's own
 * messages went to ssh.stderr_fd as they came.
 */
int vmferry_send (const struct vmferry_send_opts *opts,
                  struct vmferry_send_stats *stats);

/* Connect and authenticate as vmferry_send does (the bandwidth shared
 * by the connections).  NULL with the error set.
 */
struct vmferry_ssh *vmferry_send_connect (const struct vmferry_send_opts *opts);

/* Parse --bandwidth: bytes per second with an optional K, M or G (powers
 * of 1024), or bits with "bit" after it ("100Mbit": 10^6 bits).
 */
int vmferry_parse_bandwidth (const char *arg, uint64_t *rtn);

#endif
