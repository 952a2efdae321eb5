/* vmferry: import a stream on this host (vmferry-import). */
#ifndef VMFERRY_IMPORT_H
#define VMFERRY_IMPORT_H

#include <stdbool.h>

#include "progress.h"

struct vmferry_stripes_in;
struct vmferry_import_result;

struct vmferry_import_opts {
  const char *uri;              /* NULL: libvirt's default */
  int in_fd;                    /* the stream (not closed), or */
  struct vmferry_stripes_in *stripes;   /* several connections (stripe.h) */
  const char *in_name;          /* "stdin" or the path, for messages */
  /* Or a directory made by hand (import-dir.h), its domain XML FROM_XML
   * in it (NULL: found there).
   */
  const char *from_dir, *from_xml;
  const char *dir;              /* target directory, or */
  const char *pool;             /* a directory-backed storage pool */
  bool define, start, force;
  /* Check the guest's filesystems in the verified copy (guest.h) before
   * anything is placed or defined; a damaged one fails the import.
   */
  bool verify_guest;
  const char *new_name;         /* define under this name, new UUID */
  /* Fix-ups in the copy (guest-fixup.h): NO_FIXUP skips those a disk
   * bus change asks for; NEW_IDENTITY (a hostname) gives the copy a new
   * UUID, MACs, hostname, machine-id and SSH host keys.
   */
  bool no_fixup;
  const char *new_identity;
  /* Filled, when not NULL, with what the fix-ups did (import-result.h):
   * the changes, or why they were not done.
   */
  struct vmferry_import_result *result;
  /* Formats on arrival (import-convert.c): every disk as FORMAT ("raw"
   * or "qcow2"; NULL: as sent), and with FLATTEN a disk with a backing
   * chain as one file.  Converted after the received copy is verified,
   * and compared with it, before anything is placed.
   */
  const char *format;
  bool flatten;
  /* Disks that land on existing block devices: N_DISKS "TARGET=DEVICE"
   * values (--disk).  Only these devices are ever written.
   */
  const char *const *disks;
  size_t n_disks;
  /* Host resources the domain may refer to although the stream did not
   * carry them (--allow-path, lib/refs.h): N_ALLOW values.
   */
  const char *const *allow;
  size_t n_allow;
  unsigned threads;             /* 0: one per CPU */
  struct vmferry_progress *progress;
  /* Keep resume state (resume.h) when the stream is cut, and accept a
   * stream that resumes it.  vmferry-send always asks for this.
   */
  bool resumable;
  /* Read only the stream's metadata records and write the resume answer
   * (one JSON line, see resume.h) to out_fd; nothing is written.  Checks
   * the target as an import would (existing domain, files).
   */
  bool resume_query;
  int out_fd;
  /* Read a stream from a pipe or socket this many bytes ahead, in a
   * thread (0: as needed): the sender's link goes on while the import
   * makes its state durable, creates a file or waits for its writers.
   * vmferry-import's is VMFERRY_IMPORT_READ_AHEAD.
   */
  size_t read_ahead;
};

/* The read-ahead of vmferry-import: about a quarter of a second of a
 * 1 Gbit/s link, what the first durable resume state and file took there
 * (bench/README); within the 128 MiB budget with the import's
 * pipeline.
 */
#define VMFERRY_IMPORT_READ_AHEAD ((size_t) 32 << 20)

/* Read the whole stream, write every file under a temporary name, verify
 * each against its digest, then rename them into place and (with define)
 * define the domain pointing at them.  On any failure nothing is defined,
 * no file is left under a final name, and files or domains that existed
 * before are as they were; temporary files are removed, or kept for a
 * resumable import (the message says so and how to go on).  A kill at
 * any moment leaves what the next run, or --abort, finishes or removes.
 * A signal that asks to quit (quit.h) before the stream's end ends it as
 * a cut link does (the error names the signal).  Returns 0,
 * VMFERRY_IMPORT_ALREADY, or -1 with the error set (naming what was left
 * behind, if anything).
 */
int vmferry_import (const struct vmferry_import_opts *opts);

/* vmferry_import's return value when the domain is already on this host,
 * defined by an import of the same stream (the same source state): it
 * did nothing (stamp.h).
 */
#define VMFERRY_IMPORT_ALREADY 2

/* Remove the abandoned transfer of domain NAME (NULL: of every domain)
 * from the target directory of OPTS (dir or pool): its temporary files,
 * TPM state and resume state.  Refuses one whose import is running.
 * Returns the number of transfers removed (0 is an error: nothing to
 * abort), or -1 with the error set.
 */
int vmferry_import_abort (const struct vmferry_import_opts *opts,
                          const char *name);

/* The name FILE takes when its domain OLD is imported as NEW (--name,
 * and vmferry-migrate --rename), so a copy never shares a file with the
 * original: OLD at its start is replaced ("web01.qcow2" ->
 * "web01-dr.qcow2"), else NEW- is put in front ("data.img" ->
 * "web01-dr-data.img").  The caller frees it; NULL with the error set,
 * also when the result cannot be a file name.
 */
char *vmferry_import_follow_name (const char *file, const char *old,
                                  const char *new);

#endif
