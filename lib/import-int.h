/* vmferry: what the parts of the importer share.  import.c reads the
 * stream; import-target.c decides where the files go, import-write.c
 * writes and verifies them as temporary files, import-resume.c keeps the
 * resume state; place.c puts them in place and defines the domain.
 * Private to those files.
 */
#ifndef VMFERRY_IMPORT_INT_H
#define VMFERRY_IMPORT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <libvirt/libvirt.h>
#include <libxml/tree.h>

#include "domain.h"
#include "error.h"
#include "import.h"
#include "pipeline.h"
#include "resume.h"
#include "stream.h"
#include "target.h"

/* libvirt's TPM state directory: one per domain UUID below it. */
#define VMFERRY_SWTPM_STORAGE "/var/lib/libvirt/swtpm"

struct vmferry_pipeline;
struct vmferry_digest;

struct import_file {
  int role;
  /* As the manifest names it, checked (formats/names.h): one component,
   * or for TPM state a relative path below the TPM directory.
   */
  char *name;
  char *source_path;            /* as on the source host */
  char *pool, *volume;          /* a disk that is a volume of a pool */
  char *target;                 /* a disk's target ("vda"), or NULL */
  char *format;
  /* Where it ends up: a component in the target directory (for TPM
   * state: the relative path below the TPM directory), and the whole
   * path the domain XML gets.
   */
  char *final;
  char *final_path;
  /* Where it is written first: a component in the target directory (for
   * TPM state: below the temporary TPM directory), NULL until begun.
   */
  char *tmp;
  int backing;                  /* index or -1 */
  /* --disk TARGET=DEVICE: the block device the disk lands on (then also
   * final_path), held open with O_EXCL on dev_fd (-1) while the import
   * runs.  Placed by import-convert.c, never renamed: its tmp is NULL
   * by then.
   */
  char *device;
  int dev_fd;
  /* Into a new volume of the block pool (import-pool.c), which then
   * becomes its device.
   */
  bool in_pool;
  /* Written straight onto the device (import-device.c), not received
   * into a file first: everything below zeroed_to is written or zeroed;
   * dev_sector is the device's logical block, zero_how how a range is
   * zeroed now.
   */
  bool direct, dev_touched;
  uint64_t zeroed_to;
  int dev_sector;
  int zero_how;
  /* Below a flattened disk and needed by no other: not placed. */
  bool dropped;
  uint64_t size, allocated;
  /* The bytes the guest sees (a qcow2 disk's virtual size, as the
   * manifest says; else size): what a device must hold.  qemu-img
   * refuses, before it writes, a header that says more.
   */
  uint64_t guest_size;
  int fd;
  /* The same file opened with O_DIRECT, or -1: aligned data goes from
   * the decompression buffer to the disk without the copy into the page
   * cache (on this kind of machine that copy cost more CPU than zstd).
   */
  int dfd;
  bool direct_refused;          /* once: the file system said EINVAL */
  bool verified;
  /* Resume: durable below resume_offset when the import started (or
   * VMFERRY_RESUME_COMPLETE); written_end tracks this run.  The collector
   * claims what it has seen in segments: the open one runs from seg_start
   * (where the last sync asked for ended), started at seg_at, and wdg is
   * the digest of its bytes.
   */
  uint64_t resume_offset, written_end, seg_start;
  double seg_at;
  struct vmferry_digest *wdg;
  /* A fresh file's digest, computed in stream order from the very bytes
   * written, so it needs no second read of the file.  NULL for a resumed
   * file, whose earlier part was written by another run: that one is read
   * back from disk at its end.
   */
  struct vmferry_digest *dg;
  /* The file's map digest (digest.h): from the same pass as dg, or read
   * back with it; checked against the stream's FILE_MAP when there is
   * one, and kept for whoever records it.
   */
  struct vmferry_map *map;
};

struct importer {
  const struct vmferry_import_opts *opts;
  /* Read from a directory or a tar made by hand: no manifest, no
   * digests made at the source (import-dir.h).
   */
  bool unverified;
  char *dir;                    /* resolved target directory */
  struct vmferry_target tgt;    /* ... open */
  /* Where TPM state goes: libvirt's swtpm directory with --define (the
   * state is found by the domain's UUID), else the target directory.
   * tpm_dir: the final directory's name below that root.
   */
  struct vmferry_target tpm_root;
  char *tpm_dir;
  char *pool;                   /* the pool the files go into, if any */
  /* ... of type "disk" or "logical": the disks go into volumes of it,
   * the other files into dir (import-pool.c); NULL for a directory pool.
   */
  const char *pool_type;
  char *name, *uuid;            /* of the domain as it will be defined */
  char *src_name;               /* the domain's name in the stream */
  struct import_file *files;
  size_t nr_files;
  bool has_tpm;
  /* The path given a UEFI variable store the stream did not carry. */
  char *nvram_new;
  xmlDocPtr doc;
  virConnectPtr conn;
  struct vmferry_pipeline *p;

  /* Resume (resume.h).  Every import keeps a state file while it runs,
   * naming its temporary files before they are made, so that whatever a
   * kill leaves is found and removed (or resumed) by the next run; only
   * a resumable one keeps it when the stream is cut.
   */
  char *manifest;               /* the manifest text, for the stream id */
  size_t manifest_len;
  char stream_id[VMFERRY_RESUME_ID_LEN + 1];
  uint64_t mandatory;           /* the stream's mandatory features */
  unsigned char token[VMFERRY_RESUME_TOKEN_LEN];   /* a RESUME stream's */
  bool keep_state;              /* the state file is ours */
  bool resumable;               /* a cut keeps the state and the files */
  bool resumable_id;            /* the stream id names the source state */
  bool cut;                     /* the stream was cut, not corrupt */
  bool query_done;
  bool already;                 /* here already, from this stream */
  char *state_file;             /* names in tgt */
  char *written_file;
  int written_fd;
  int lock_fd;
  /* st_lock: st, written_fd and the syncer's request, between the reader
   * thread, the collector and the syncer.  save_lock: one state file
   * written at a time, in the order their texts were taken.
   */
  struct vmferry_resume_state st;
  pthread_mutex_t st_lock, save_lock;
  pthread_cond_t st_cond;       /* the syncer's request posted or done */
  pthread_t syncer;
  bool syncer_started, sync_stop, sync_failed;
  int sync_idx;                 /* the file to sync, -1: none */
  uint64_t sync_offset;         /* ... and what will then be durable */
  struct vmferry_saved_error sync_error;
};

/* A slot of the pipeline: one record of the stream. */
struct job {
  bool end;                     /* FILE_END: verify; else DATA: write */
  struct vmferry_record rec;
  unsigned char *in;            /* payload copy */
  unsigned char *out;           /* decompressed */
  unsigned char digest[16];
  /* FILE_END: the stream's FILE_MAP before it, if any. */
  bool have_map;
  uint64_t map_chunk;
  unsigned char map_root[16];
};

/* Each function's contract is stated where it is defined. */

/* import-target.c */
int vmferry_import_plan_names (struct importer *im);
int vmferry_import_open_tpm_root (struct importer *im);
int vmferry_import_check_targets (struct importer *im);
char *vmferry_import_pool_dir (virConnectPtr conn, const char *pool,
                               const char **type_rtn);
const char *vmferry_import_doc_target (const struct vmferry_domain_file *df,
                                       size_t n, const struct import_file *f);
int vmferry_import_pool_from_manifest (struct importer *im);
int vmferry_import_dir_from_manifest (struct importer *im);

/* import-resume.c */
int vmferry_import_save_state (struct importer *im, int idx, uint64_t offset);
int vmferry_import_syncer_start (struct importer *im);
int vmferry_import_syncer_wait (struct importer *im, bool stop);
int vmferry_import_digest_record (struct importer *im, struct import_file *f,
                                  bool claim, uint64_t offset,
                                  const unsigned char *data, uint64_t len);
int vmferry_import_claim_record (struct importer *im, uint32_t idx,
                                 uint64_t offset, uint64_t len);
int vmferry_import_answer_query (struct importer *im,
                                 const struct vmferry_resume_state *st,
                                 const char *reason, bool done);
int vmferry_import_load_state (struct importer *im,
                               struct vmferry_resume_state *old);
int vmferry_import_setup_resume (struct importer *im,
                                 struct vmferry_resume_state *old, int r);

/* import-pool.c: a block pool's volumes.  check: before the transfer, the disks
 * that go into volumes marked, the pool active with room for all of
 * them.  create: each one's volume created, named in the state before
 * and after, and opened as its device.  delete: the volumes state ST
 * names deleted (a notice each), kept when a domain uses one; -1 when
 * one could not be (a warning each).
 */
int vmferry_import_pool_check (struct importer *im);
int vmferry_import_pool_create (struct importer *im);
int vmferry_import_pool_delete (struct importer *im,
                                struct vmferry_resume_state *st);

/* import-convert.c: check_device, the device of disk F (--disk or a
 * volume's) checked and held open with O_EXCL.
 */
int vmferry_import_check_device (struct importer *im, struct import_file *f);
int vmferry_import_check_devices (struct importer *im);
int vmferry_import_convert (struct importer *im);

/* import-device.c: a raw disk written onto its device.  direct: whether
 * disk F is (set on f->direct once the device is checked).  begin: the
 * device taken as the file's fd, named in the state.  gap: everything
 * below TO that no data record covered is zeroed (reader thread, in
 * offset order).  data: a data record ends at END.  reread: the device's
 * cache dropped after the flush, so that the digest reads the device.
 */
bool vmferry_import_device_direct (const struct importer *im,
                                   const struct import_file *f);
int vmferry_import_device_begin (struct importer *im, uint32_t idx);
int vmferry_import_device_gap (struct importer *im, struct import_file *f,
                               uint64_t to);
void vmferry_import_device_data (struct import_file *f, uint64_t end);
int vmferry_import_device_reread (struct import_file *f);
/* After a failure: the error says which devices were written to. */
void vmferry_import_device_say_lost (const struct importer *im);

/* import-write.c */
int vmferry_import_begin_file (struct importer *im, uint32_t idx,
                               uint64_t size);
void vmferry_import_close_file (struct import_file *f);
extern const struct vmferry_pipeline_ops vmferry_import_ops;

/* place.c */

/* Every file verified: put them in place and define the domain, as one
 * journaled step (see place.c).  Returns 0; 1 when the domain was defined
 * but did not start (--start); -1 with the error set when nothing was
 * placed (what is there is as it was, the temporary files are kept).
 */
int vmferry_place (struct importer *im);

/* A state in phase PLACE was found (a run was killed while placing):
 * finish the placement if it was committed, else undo it, so that the
 * state is back in phase TRANSFER with every file complete.  Returns 1
 * when it was finished (the domain and files are in place: the state is
 * gone), 0 when undone, -1 with the error set if neither could be done
 * safely (nothing more was changed).
 */
int vmferry_place_recover (struct importer *im,
                           struct vmferry_resume_state *st);

/* The domain NAME is defined with the mark of stream ID (stamp.h):
 * 1 yes, 0 no, -1 error.
 */
int vmferry_place_already (struct importer *im);

/* The file at F's final name, which --force replaces, is not one that
 * any other domain of this host refers to (the domain this import
 * replaces excepted).  Returns 0, or -1 with the error set naming the
 * domain.  Asked before the transfer and again at the moment of the
 * replace.
 */
int vmferry_place_file_users (struct importer *im,
                              const struct import_file *f);

/* Remove the temporary files and TPM directory of this run (after a
 * failure before placement).
 */
void vmferry_place_remove_temporaries (struct importer *im);

/* import --verify-guest (import-guest.c): launch the libguestfs
 * appliance over the verified temporary files and check every filesystem
 * of the guest; a notice per filesystem.  Returns 0 when none is
 * damaged, -1 with the error set (naming how many are) otherwise.
 */
int vmferry_import_verify_guest (struct importer *im);

/* The fix-ups in the verified (and converted) copy before it is placed
 * (import-fixup.c, guest-fixup.h): when a disk's target or, with
 * --new-identity, the MACs change, and with --new-identity the guest's
 * identity.  A notice per change.  Returns 0 (*NOT_DONE set when fix-ups
 * were needed but not made: --no-fixup, no appliance, no Linux guest;
 * a warning says why), or -1 with the error set (the copy is then
 * discarded).
 */
int vmferry_import_fixup (struct importer *im, bool *not_done);

#endif
