/* vmferry: export a domain as a stream (vmferry-export): a shut-off
 * one from its files, a running one through a backup job (backup.h).
 */
#ifndef VMFERRY_EXPORT_H
#define VMFERRY_EXPORT_H

#include <stdbool.h>

#include "backup.h"
#include "progress.h"
#include "stream.h"

enum vmferry_compress {
  VMFERRY_COMPRESS_AUTO,        /* zstd, raw where it does not help */
  VMFERRY_COMPRESS_NONE,
  VMFERRY_COMPRESS_ZSTD,
};

enum vmferry_export_format {
  VMFERRY_EXPORT_STREAM,        /* the native stream (vmferry-stream(5)) */
  VMFERRY_EXPORT_TAR,           /* a pax archive (formats/tar.h) */
};

struct vmferry_export_opts {
  const char *uri;              /* NULL: libvirt's default */
  const char *domain;           /* name or UUID */
  int out_fd;                   /* the stream goes here (not closed) */
  const char *out_name;         /* for messages: "stdout", a path */
  /* Or through this (stream.h: vmferry_stream_writer_new_fn). */
  vmferry_stream_write_fn out_fn;
  void *out_opaque;
  bool include_readonly;
  /* Inspect the guest (guest.h) and record it in the manifest. */
  bool inspect;
  /* A shut-off domain's disk with a backing chain goes as one raw disk
   * of its guest-visible content (read through a local qemu-nbd).
   */
  bool flatten;
  /* Trim the guest's filesystems on temporary overlays (export-trim.h) and
   * send each writable disk as the trimmed guest content, raw: what
   * the filesystems freed is not sent.  Needs a shut-off domain.
   */
  bool trim;
  /* Refuse a running domain, as vmferry-export always did. */
  bool offline;
  /* A running domain: freeze its file systems for the backup's start. */
  enum vmferry_freeze freeze;
  enum vmferry_compress compress;
  int level;                    /* zstd level, for ZSTD */
  unsigned threads;             /* 0: one per CPU */
  enum vmferry_export_format format;
  /* TAR: one zstd stream over the archive (--compress none: plain tar);
   * its level is the export's (tar_level is set by vmferry_export).
   */
  bool tar_zstd;
  int tar_level;
  struct vmferry_progress *progress;   /* may be NULL */
  /* Plan only: set *manifest_rtn to the manifest JSON (caller frees) and
   * write no stream.  NULL: write the stream.
   */
  char **manifest_rtn;
};

/* Choose the output's format for OPTS from FORMAT (--format: "stream",
 * "tar", or NULL for none given) and PATH (-o: "-" or a file): a name
 * ending in .tar, .tar.zst or .tzst is an archive; the option wins.  An
 * archive is compressed unless --compress=none or a name ending in
 * .tar asks for none.  0, or -1 with the error set (an unknown format).
 */
int vmferry_export_choose_format (struct vmferry_export_opts *opts,
                                  const char *format, const char *path);

/* Write the whole stream.  A running or paused domain's writable disks
 * are read through a pull backup (one point in time, guest content);
 * with OPTS->offline, or in another state, a domain that is not shut
 * off is refused.
 * Returns 0, or -1 with the error set; the source is never modified.
 */
int vmferry_export (const struct vmferry_export_opts *opts);

/* What a worker thread of the export holds besides its buffers: its
 * stack as used and its malloc arena's working set.
 */
#define VMFERRY_EXPORT_THREAD_MEMORY ((size_t) 1 << 20)

/* The most vmferry_export holds with OPTS in buffers, compressors and
 * worker threads, whatever the disks' size (a budget's share; see
 * send.h).
 */
size_t vmferry_export_memory (const struct vmferry_export_opts *opts);

#endif
