/* vmferry: resuming an interrupted transfer.
 *
 * The importer keeps, beside its temporary files in the target directory,
 * a state file DIR/.vmferry-resume-NAME.json (NAME: the domain as it will
 * be defined) naming the stream it belongs to, a token, and for each file
 * its temporary file and how much of it is durable: everything below
 * "offset" was written and fdatasync'd, or the whole file was verified
 * ("complete").  The file ends with a line "check HEX", an XXH3-64 of the
 * JSON text before it, so a damaged file is refused.
 *
 * Between those fdatasyncs the importer keeps a second file,
 * DIR/.vmferry-resume-NAME.written, in the same format but rewritten in
 * place without fdatasync after every record: for each file it may add
 * "claims", consecutive ranges written beyond the durable offset, each
 * with its end and the digest (digest.h) of the range as it came from
 * the stream.  Claims are never trusted as such: after an import killed
 * where it could not sync (SIGKILL), the next resume query reads them
 * back from the temporary file, in order, and only those that have their
 * digest are made durable and count as held.  Claims of another token,
 * or that do not meet the state's durable offset at a range boundary
 * (they may start below it: the state is saved first), are ignored.
 *
 * A sender asks first ("vmferry-import --resume-query": the importer
 * reads the stream's metadata records and prints the answer as JSON),
 * then sends a stream with the RESUME feature bit and the token, leaving
 * out the records below each file's offset.  The importer refuses such a
 * stream unless it holds the state with that token; whatever is resumed
 * is verified end to end (every file read back against the digest in
 * FILE_END) exactly like a fresh copy, so a forged offset or file cannot
 * produce a wrong result, only a refused one.
 *
 * The stream identity is a hash of the manifest's domain name and, for
 * each file, its name, size and "source_identity" (inode, mtime, size at
 * the source), so a stream of another domain or of changed source disks
 * does not match.
 */
#ifndef VMFERRY_RESUME_H
#define VMFERRY_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "target.h"

struct vmferry_manifest;

#define VMFERRY_RESUME_ID_LEN 32        /* hex digits */
#define VMFERRY_RESUME_TOKEN_LEN 16     /* bytes */
/* offset of a file that is complete and verified */
#define VMFERRY_RESUME_COMPLETE UINT64_MAX
/* claimed ranges per file in the .written file */
#define VMFERRY_RESUME_MAX_CLAIMS 4

/* A claimed range: its end, and the digest (digest.h) of its bytes. */
struct vmferry_resume_claim {
  uint64_t end;
  unsigned char digest[16];
};

struct vmferry_resume_file {
  char *name;                   /* as in the manifest */
  char *tmp;                    /* base name of its temporary file in DIR */
  /* A disk written straight onto this block device (import --disk): only
   * said by a later run (what a kill left there), never acted on.
   */
  char *device;
  /* A volume this import created for the disk in a block storage pool
   * (import-pool.c), as POOL/NAME: recorded before it is created
   * (volume_made false: a kill may leave it made or not), again once it
   * is.  Whoever discards the state deletes it; a placement that
   * committed leaves it to the domain.
   */
  char *volume;
  bool volume_made;
  uint64_t size;
  uint64_t offset;              /* durable below; or VMFERRY_RESUME_COMPLETE */
  /* Claims (the .written file only): claims[i] covers the bytes from
   * the end of claims[i - 1] (of claims[0]: from offset) to its end.
   */
  size_t nr_claims;
  struct vmferry_resume_claim claims[VMFERRY_RESUME_MAX_CLAIMS];
  /* Placement (phase VMFERRY_RESUME_PLACE): the name the file takes in
   * DIR, the identity of the new file (so that a later run can tell
   * where it is), and whether it replaces a file there (--force: the two
   * are exchanged, so the old one then carries the temporary name).
   */
  char *final;
  uint64_t dev, ino;
  bool replace;
  /* A complete file the importer changed after verifying it (an overlay
   * pointed at its backing file's new name): the digest the stream gave
   * it and the digest of the file as changed, which a resumed run reads
   * back instead.
   */
  bool changed;
  unsigned char stream_digest[16], local_digest[16];
};

/* What an import is doing, as far as a later run must know. */
enum vmferry_resume_phase {
  /* Receiving: the temporary files are being written. */
  VMFERRY_RESUME_TRANSFER = 0,
  /* Every file verified; the files are being renamed into place and the
   * domain defined.  A run that finds this phase finishes the placement
   * if it was committed (the domain defined with this state's token, or
   * without define every file in place), or undoes it (see import.c).
   */
  VMFERRY_RESUME_PLACE = 1,
};

struct vmferry_resume_state {
  char *name;                   /* the domain as it will be defined */
  char stream_id[VMFERRY_RESUME_ID_LEN + 1];
  unsigned char token[VMFERRY_RESUME_TOKEN_LEN];
  /* Temporary TPM state directory: one component below the TPM root,
   * which is libvirt's swtpm directory (TPM_IN_SWTPM) or DIR.
   */
  char *tpm_tmp;
  bool tpm_in_swtpm;
  size_t nr_files;              /* as many as the manifest has */
  struct vmferry_resume_file *files;

  /* Placement. */
  enum vmferry_resume_phase phase;
  char *tpm_final;              /* the TPM directory's name below its root */
  uint64_t tpm_dev, tpm_ino;
  bool tpm_replace;
  bool define;                  /* the domain is defined at the end */
  char *uuid;                   /* ... with this UUID */
  /* Defined first under this temporary name, then renamed to NAME (a
   * define that cannot replace a domain defined meanwhile).
   */
  char *define_tmp;
  /* --force over a domain: it is renamed to this name before its files
   * are replaced (libvirt refuses to rename a running domain).  Of
   * another UUID, it is undefined once the new one is defined; of the
   * same UUID, the new definition replaces it under this name and is
   * renamed to NAME.
   */
  char *aside;
};

void vmferry_resume_state_free (struct vmferry_resume_state *st);

/* The identity of the stream of manifest M (formats' parser read it):
 * its domain name and each file's name, size and source identity.
 * Returns 1 with ID_RTN filled, 0 if the manifest lacks what makes a
 * stream resumable (a file without "source_identity": an older
 * writer's), -1 with the error set if out of memory.
 */
int vmferry_resume_stream_id (const struct vmferry_manifest *m,
                              char id_rtn[VMFERRY_RESUME_ID_LEN + 1]);

/* The base name of NAME's state file in DIR: ".vmferry-resume-NAME.SUFFIX"
 * (SUFFIX "json", "written" or "lock"); NULL with the error set if NAME
 * cannot be part of a file name (formats/names.h).  Caller frees.
 */
char *vmferry_resume_name (const char *name, const char *suffix);

/* Take the lock of NAME's transfers in T, waiting up to WAIT_SECONDS for
 * an import still finishing.  The lock file may be removed by its holder
 * (vmferry_resume_unlock_remove): a lock taken on a file that is no
 * longer the one under that name is dropped and taken again, so two
 * imports never both hold it.  Returns the lock's fd (close it to
 * release), or -1 with the error set.
 */
int vmferry_resume_lock (const struct vmferry_target *t, const char *name,
                         unsigned wait_seconds);

/* Remove what a save of NAME's state killed midway left in T (its
 * temporary ".new-XXXXXX" files).  With the lock held.
 */
void vmferry_resume_remove_stale (const struct vmferry_target *t,
                                  const char *name);

/* Remove the lock file of NAME while holding its lock on LOCK_FD, then
 * release it (LOCK_FD is closed).
 */
void vmferry_resume_unlock_remove (const struct vmferry_target *t,
                                   const char *name, int lock_fd);

/* Read the state file FILE in T (a regular file with one link, never
 * through a link).  Returns 1 with *ST filled, 0 if there is no state, -1
 * (error set) if it is damaged or invalid: bad check line, bad JSON, a
 * name that is not a plain component, a temporary file name that is not
 * one the importer makes, offsets not block-aligned or past the size.
 * The caller frees *ST.
 */
int vmferry_resume_load (const struct vmferry_target *t, const char *file,
                         struct vmferry_resume_state *st);

/* The same from text already read (the fuzz harness; NAME for messages). */
int vmferry_resume_parse (const char *text, size_t len, const char *name,
                          struct vmferry_resume_state *st);

/* Write ST to FILE in T atomically (a new temporary file, fdatasync,
 * rename over FILE), without its claims.
 */
int vmferry_resume_save (const struct vmferry_target *t, const char *file,
                         const struct vmferry_resume_state *st);

/* The same in two steps, so that a caller can take the text under its
 * lock and do the I/O without it: the text (caller frees; NULL with the
 * error set), then the save of a text.
 */
char *vmferry_resume_text (const struct vmferry_resume_state *st);
int vmferry_resume_save_text (const struct vmferry_target *t, const char *file,
                              const char *text);

/* Create the .written file FILE in T afresh (what was there goes first:
 * a name, never a file elsewhere).  Returns the fd, or -1 with the error
 * set.
 */
int vmferry_resume_create_written (const struct vmferry_target *t,
                                   const char *file);

/* F's claims are as struct vmferry_resume_file says: at most
 * VMFERRY_RESUME_MAX_CLAIMS, each ending past the one before (the first
 * past F's offset), none past F's size.
 */
bool vmferry_resume_claims_ordered (const struct vmferry_resume_file *f);

/* Write ST with its claims over the .written file open on FD
 * (PATH for messages), in place and without fdatasync, so that it is
 * cheap enough for every record.  A write cut short or lost in a crash
 * fails the check line, and the file is ignored.
 */
int vmferry_resume_write_claims (int fd, const char *path,
                                 const struct vmferry_resume_state *st);

/* Take the claims of the .written file FILE in T that fit ST: the same
 * stream, token and temporary files, and for each file the claims that
 * follow ST's durable offset (claims that end at or below it are
 * dropped; if none ends exactly there, the file has none).  Returns how
 * many files got claims (0 also when the file is missing or damaged:
 * claims are only worth trying).
 */
unsigned vmferry_resume_load_written (const struct vmferry_target *t,
                                      const char *file,
                                      struct vmferry_resume_state *st);

/* Whether TMP is a name the importer gives the temporary file of NAME:
 * ".NAME.vmferry-XXXXXX", or its converted copy (".converted" after it).
 */
bool vmferry_resume_tmp_name_ok (const char *name, const char *tmp);

/* The name of the converted copy of the temporary file TMP (import
 * --format, --flatten: import-convert.c), TMP and ".converted", or (TMP
 * such a name) the temporary file it was converted from: whichever of
 * the two a state names, the other is found from it.  Caller frees;
 * NULL with the error set.
 */
char *vmferry_resume_converted_name (const char *tmp);

/* A fresh random token. */
int vmferry_resume_new_token (unsigned char token[VMFERRY_RESUME_TOKEN_LEN]);

/* ---- The answer to a resume query (importer -> sender) ---- */

struct vmferry_resume_point {
  bool resume;                  /* false: send everything */
  /* The importer already holds this very move, complete (the domain is
   * defined from the same source state): send nothing.
   */
  bool done;
  char *reason;                 /* why not, for messages; may be NULL */
  unsigned char token[VMFERRY_RESUME_TOKEN_LEN];
  size_t nr_files;
  uint64_t *offsets;            /* per file: skip below; COMPLETE: all */
  uint64_t held;                /* bytes of file data held (for messages) */
};

/* The answer as one line of JSON: ST's offsets, or (ST NULL) no resume
 * and REASON.  Caller frees.
 */
char *vmferry_resume_answer (const struct vmferry_resume_state *st,
                             const char *reason);
/* The answer "already done", with WHAT for messages.  Caller frees. */
char *vmferry_resume_answer_done (const char *what);
int vmferry_resume_parse_answer (const char *json, size_t len,
                                 struct vmferry_resume_point *pt);
void vmferry_resume_point_free (struct vmferry_resume_point *pt);

/* Remove the temporary files ST names in T, its temporary TPM directory
 * (below TPM_ROOT), and the state and .written files.  Best effort;
 * returns how many files it removed.  The placement of ST, if any, must
 * have been undone first.
 */
unsigned vmferry_resume_discard (const struct vmferry_target *t,
                                 const struct vmferry_target *tpm_root,
                                 const struct vmferry_resume_state *st);

#endif
