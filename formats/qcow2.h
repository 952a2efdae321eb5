/* vmferry: qcow2 headers, read with suspicion.
 *
 * Only the header and its extensions are read (docs/interop/qcow2.txt in
 * QEMU): enough to know a file is qcow2, how big the disk is, whether it
 * has a backing file or an external data file, and whether it is
 * encrypted.  On the importing side the image came out of a stream, so
 * every offset and length is checked against the first cluster and the
 * file before it is used.  Backing and data files are never opened here
 * except by vmferry_qcow2_chain, and only on the caller's request.
 */
#ifndef VMFERRY_QCOW2_H
#define VMFERRY_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMFERRY_QCOW2_MAGIC 0x514649fbU              /* "QFI\xfb" */
#define VMFERRY_QCOW2_MAX_NAME 1023                   /* QEMU's limit */

/* Header field values. */
#define VMFERRY_QCOW2_CRYPT_NONE 0
#define VMFERRY_QCOW2_CRYPT_AES 1
#define VMFERRY_QCOW2_CRYPT_LUKS 2

/* Incompatible feature bits. */
#define VMFERRY_QCOW2_INCOMPAT_DIRTY (1ULL << 0)
#define VMFERRY_QCOW2_INCOMPAT_CORRUPT (1ULL << 1)
#define VMFERRY_QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define VMFERRY_QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define VMFERRY_QCOW2_INCOMPAT_EXTL2 (1ULL << 4)
#define VMFERRY_QCOW2_INCOMPAT_KNOWN ((1ULL << 5) - 1)

struct vmferry_qcow2_info {
  uint32_t version;             /* 2 or 3 */
  uint64_t virtual_size;        /* bytes the guest sees */
  uint32_t cluster_bits;        /* 9..21 */
  uint32_t crypt_method;        /* VMFERRY_QCOW2_CRYPT_* */
  uint64_t incompatible_features;
  uint64_t compatible_features;
  uint64_t autoclear_features;
  uint32_t header_length;       /* 72 for version 2 */
  /* The backing file name exactly as the header has it (not resolved,
   * see vmferry_qcow2_backing_path), "" when there is none.
   */
  bool has_backing;
  char backing_file[VMFERRY_QCOW2_MAX_NAME + 1];
  /* From the backing format extension ("qcow2", "raw"), "" if absent. */
  char backing_format[16];
  /* Incompatible bit 2 or the data file extension: the guest data lives
   * in another file that would not travel with this one.
   */
  bool has_data_file;
  char data_file[VMFERRY_QCOW2_MAX_NAME + 1];   /* "" if not named */
};

/* Read the header of the image open on FD (NAME is for messages).
 * Returns 1 and fills *INFO_RTN if it is qcow2, 0 if it is not (no qcow2
 * magic: raw, or too short to hold one), -1 with the error set if it
 * claims to be qcow2 but the header is unreadable, unsupported or out of
 * bounds.  Reads with pread; FD's offset is not used.
 */
int vmferry_qcow2_probe (int fd, const char *name,
                         struct vmferry_qcow2_info *info_rtn);

/* Refuse what cannot be carried as one self-contained file: an external
 * data file, an image marked corrupt, incompatible features this code does
 * not know.  Returns 0, or -1 with the error set.
 */
int vmferry_qcow2_check_carriable (const struct vmferry_qcow2_info *info,
                                   const char *name);

/* What the stream says of an image the importer has just written. */
struct vmferry_qcow2_expect {
  /* The manifest's format for it: "qcow2" or "raw". */
  const char *format;
  /* The stream gives it a backing file: another file of the same
   * stream, of format BACKING_FORMAT ("qcow2" or "raw").
   */
  bool has_backing;
  const char *backing_format;
  /* The backing file name the header must hold exactly, once the
   * importer has pointed the image at its backing file's new place;
   * NULL before that (the header still names the source host's path,
   * which is never followed, and any name is accepted).
   */
  const char *backing_name;
  /* The user allowed an external data file by name. */
  bool allow_data_file;
};

/* Validate the header of an image that arrived in a stream, open on FD
 * (NAME is for messages), against what the stream says of it, before
 * anything (qemu-img, libvirt, QEMU) opens it as an image.
 *
 * A file the stream calls raw is never read: its first bytes are guest
 * data, and a qcow2 header there (with a backing file, say) is only
 * data, as long as the domain opens the file as raw (the policy in
 * lib/refs.h compares the XML's format with the stream's).  Returns 0.
 *
 * A file the stream calls qcow2 must have a valid header (as
 * vmferry_qcow2_probe reads it), and is refused when: it is not qcow2;
 * the header names a backing file and the stream gives none, or the
 * stream gives one and the header none; the header's backing format
 * differs from the stream's format for that file (after the rebase, when
 * BACKING_NAME is given: the format must be there, and the name equal);
 * it keeps its data in an external data file (the incompatible bit or
 * the extension) and ALLOW_DATA_FILE is false; it is marked corrupt; it
 * has incompatible features this code does not know; it is encrypted
 * with the legacy AES method (only LUKS is accepted).  Returns 1 and
 * fills *INFO_RTN (may be NULL).
 *
 * Anything else the stream says of it (a format other than qcow2 or
 * raw, a backing file for a raw image) is refused too.  -1 with the
 * error set ("NAME: ...") on refusal.
 */
int vmferry_qcow2_validate_arrival (int fd, const char *name,
                                    const struct vmferry_qcow2_expect *exp,
                                    struct vmferry_qcow2_info *info_rtn);

/* Resolve BACKING (a backing file name from the header of OVERLAY) the
 * way QEMU does: an absolute name stays, a relative one is relative to
 * the directory of OVERLAY (itself made absolute against the current
 * directory).  A name with a protocol prefix ("nbd:", "json:",
 * "http://", even "file:") is refused: only plain local paths are
 * followed.  Nothing is opened and symlinks are not resolved.  The caller
 * frees the result.  NULL with the error set on failure.
 */
char *vmferry_qcow2_backing_path (const char *overlay, const char *backing);

/* One image of a backing chain. */
struct vmferry_qcow2_link {
  char *path;                   /* absolute, as resolved */
  char *format;                 /* "qcow2" or "raw" */
  /* The overlay named no backing format, so this one was probed (QEMU
   * would do the same but warns: a raw file could pass itself off as
   * qcow2).
   */
  bool format_probed;
  uint64_t virtual_size;        /* qcow2 only; 0 for raw */
  /* The backing name in this image's header, "" for the last one. */
  char *backing_name;
};

#define VMFERRY_QCOW2_MAX_CHAIN 64

/* Walk the backing chain of the image at PATH, whose format is FORMAT
 * ("qcow2", "raw", or NULL to probe).  (*CHAIN_RTN)[0] is PATH itself,
 * the last entry the base.  A raw image ends the chain (its contents are
 * never interpreted).  Refused: protocol backing names, a backing format
 * other than qcow2/raw, an image claiming qcow2 that is not, external
 * data files, loops, chains longer than VMFERRY_QCOW2_MAX_CHAIN.  Only
 * for local images the caller trusts to open (the exporting side).  Free
 * with vmferry_qcow2_chain_free.  Returns 0, or -1 with the error set.
 */
int vmferry_qcow2_chain (const char *path, const char *format,
                         struct vmferry_qcow2_link **chain_rtn, size_t *n_rtn);

void vmferry_qcow2_chain_free (struct vmferry_qcow2_link *chain, size_t n);

#endif
