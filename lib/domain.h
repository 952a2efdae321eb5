/* vmferry: libvirt domain XML, parsed safely and rewritten.
 *
 * The XML comes from libvirt on the exporting side and from a stream (so:
 * untrusted) on the importing side.  Parsing refuses anything that could
 * make libxml2 fetch, expand or allocate without bound: a DOCTYPE of any
 * kind (entities live there), more than VMFERRY_DOMAIN_MAX_SIZE bytes,
 * elements nested deeper than VMFERRY_DOMAIN_MAX_DEPTH, an element with
 * more than VMFERRY_DOMAIN_MAX_ATTRS attributes, more than
 * VMFERRY_DOMAIN_MAX_NS namespace declarations in scope, or more than
 * VMFERRY_DOMAIN_MAX_NODES nodes.  libxml2 never
 * prints: its messages become the vmferry error.
 *
 * Everything here is pure XML work: no libvirt calls, no file access.
 */
#ifndef VMFERRY_DOMAIN_H
#define VMFERRY_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

/* The readers of domain XML walk it with these. */
#include "xmlnode.h"

#define VMFERRY_DOMAIN_MAX_SIZE (16 * 1024 * 1024)
/* The same as libxml2's own limit without XML_PARSE_HUGE. */
#define VMFERRY_DOMAIN_MAX_DEPTH 256
/* Attributes (namespace declarations included) on one element, and
 * namespace declarations in scope at once: libxml2's cost grows with the
 * square of either.  libvirt writes at most a dozen of each; the limits
 * leave a wide margin and keep any accepted input to a second.
 */
#define VMFERRY_DOMAIN_MAX_ATTRS 256
#define VMFERRY_DOMAIN_MAX_NS 256
/* Elements, attributes, comments, processing instructions and CDATA
 * sections in one document: each costs an allocation or more, here and
 * in libxml2.  libvirt's largest test domains have about 2,000.
 */
#define VMFERRY_DOMAIN_MAX_NODES 100000

/* Parse LEN bytes of domain XML (no NUL terminator needed).  NAME names
 * the input in messages ("web01.xml", "stream record 2").  The root must
 * be <domain> with no namespace.  Returns a document the caller frees with
 * xmlFreeDoc (or CLEANUP_XMLDOC), or NULL with the error set.
 */
xmlDocPtr vmferry_domain_parse (const char *xml, size_t len, const char *name);

enum vmferry_domain_role {
  VMFERRY_ROLE_DISK = 1,        /* a <disk> of type file or block */
  VMFERRY_ROLE_NVRAM = 2,       /* /domain/os/nvram */
  VMFERRY_ROLE_TPM = 3,         /* <tpm><backend type='emulator'> */
  VMFERRY_ROLE_BACKING = 4,     /* a <backingStore> noted in the XML */
};

struct vmferry_domain_file {
  int role;                     /* enum vmferry_domain_role */
  /* The path as the XML has it.  NULL for a TPM whose state location
   * libvirt derives from the domain UUID (the usual case).
   */
  char *path;
  /* DISK, BACKING: the disk's target dev ("vda"), NULL if it has none. */
  char *target;
  /* DISK: <driver type>; BACKING: <format type>; NVRAM: the format
   * attribute.  NULL when the XML does not say.
   */
  char *format;
  /* NVRAM: the template attribute (kept, never followed), else NULL. */
  char *nvram_template;
  /* DISK of type 'volume': its storage pool and volume (path is NULL;
   * the exporter asks libvirt for it), else NULL.
   */
  char *pool, *volume;
  /* TPM: the backend version ("2.0"), NULL when libvirt's default. */
  char *tpm_version;
  bool readonly;                /* <readonly/>, or a backing store */
  bool shareable;               /* <shareable/> */
  bool cdrom;                   /* device='cdrom' */
  bool floppy;                  /* device='floppy' */
  bool lun;                     /* device='lun' (must stay a block device) */
  bool block;                   /* type='block': path is source/@dev */
  bool tpm_state_file;          /* TPM: <source type='file'>, not a dir */
  /* BACKING: how far down the XML chain (1: the disk's own backing store),
   * and the index in the returned array of the disk it belongs to.
   */
  unsigned depth;
  size_t disk_index;
  /* The element vmferry_domain_set_path rewrites: the <source> element,
   * the text-form <nvram>, or the TPM's <backend> when it has no source.
   * Points into the document: valid while the document lives.
   */
  xmlNodePtr node;
};

/* List the files a domain needs carried, in document order: disks, then
 * each disk's <backingStore> notes right after it, then NVRAM, then TPMs.
 *
 * A <disk> of type 'file' or 'block' with a source is listed.  CD-ROMs,
 * floppies, <readonly/> and <shareable/> disks are left out unless
 * INCLUDE_READONLY.  Disks with no source (an empty CD-ROM) are left out.
 * Any other disk type (network, volume, dir, nvme, vhostuser) is an error
 * unless the disk is left out anyway.  A disk with an external data file
 * (<dataStore>) is an error.
 *
 * The <backingStore> entries are notes so the import can rewrite them too;
 * the real chain of a qcow2 disk comes from its headers (formats/qcow2.h).
 *
 * On success *FILES_RTN (free with vmferry_domain_files_free) holds *N_RTN
 * entries, possibly zero.  Returns 0, or -1 with the error set.
 */
int vmferry_domain_files (xmlDocPtr doc, bool include_readonly,
                          struct vmferry_domain_file **files_rtn,
                          size_t *n_rtn);

/* Free what vmferry_domain_files returned; NULL is fine. */
void vmferry_domain_files_free (struct vmferry_domain_file *files, size_t n);

/* vmferry_domain_set_path flags. */
#define VMFERRY_DOMAIN_PATH_BLOCK 0x1   /* NEWPATH is a block device */

/* Point F (an entry from vmferry_domain_files on DOC) at NEWPATH: the
 * disk's or backing store's source/@file or @dev, the NVRAM path, or a
 * TPM's <source path>.  Without VMFERRY_DOMAIN_PATH_BLOCK the new path is
 * a file: a block disk becomes type='file' with source/@file.  With it, a
 * file disk becomes type='block' with source/@dev.  A 'lun' disk cannot
 * become a file, and a TPM without a <source> has no path to set (libvirt
 * derives it from the UUID).  Returns 0, or -1 with the error set.
 */
int vmferry_domain_set_path (xmlDocPtr doc, const struct vmferry_domain_file *f,
                             const char *newpath, unsigned flags);

/* Rewrite every <backingStore> source in every disk whose path (@file or
 * @dev) is OLDPATH to NEWPATH, keeping its type.  Returns the number of
 * sources rewritten (0 when none matched), or -1 with the error set.
 */
int vmferry_domain_set_backing_path (xmlDocPtr doc, const char *oldpath,
                                     const char *newpath);

/* The domain's <name> / <uuid> text.  The caller frees the string.  NULL
 * with the error set when the element is missing or empty.
 */
char *vmferry_domain_get_name (xmlDocPtr doc);
char *vmferry_domain_get_uuid (xmlDocPtr doc);

/* Set <name>: non-empty, no '/' or newline (libvirt refuses those). */
int vmferry_domain_set_name (xmlDocPtr doc, const char *name);

/* Set <uuid> (32 hex digits, dashes allowed in the usual 8-4-4-4-12
 * places), creating it after <name> if needed.  UUID NULL removes the
 * element so that libvirt generates a new one on define.
 */
int vmferry_domain_set_uuid (xmlDocPtr doc, const char *uuid);

/* Serialise DOC as UTF-8 without an XML declaration, keeping the
 * document's own whitespace.  The caller frees the string.  NULL with the
 * error set on failure.
 */
char *vmferry_domain_to_string (xmlDocPtr doc);

/* UUID (32 hex digits, dashes allowed in the usual 8-4-4-4-12 places) in
 * canonical lower-case 8-4-4-4-12 form into OUT.  -1 if it is not one.
 */
int vmferry_uuid_canonical (const char *uuid, char out[37]);

#endif
