/* vmferry: the stream's manifest (man/vmferry-stream.5, MANIFEST).
 *
 * The MANIFEST record's payload is a JSON object describing the domain
 * and every file the stream carries.  This is its one parser and its one
 * writer: everything that reads a manifest gets the same typed struct
 * and the same refusals, and what the writer emits is what the parser
 * accepts.  The members, their JSON types and whether they are required
 * are one table (vmferry_manifest_fields) that the format spec repeats
 * and a unit test compares with it.
 *
 * The parser is strict about everything a reader acts on (types, ranges,
 * names that become paths, the backing chain) and keeps members it does
 * not know, so that a filter (vmferry-rewrite) passes on what a later
 * minor version added.
 */
#ifndef VMFERRY_MANIFEST_H
#define VMFERRY_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMFERRY_MANIFEST_FORMAT "vmferry-manifest"
/* The manifest's own version: readers refuse any other. */
#define VMFERRY_MANIFEST_VERSION 1
/* JSON nesting the parser accepts (the manifest itself needs 3). */
#define VMFERRY_MANIFEST_MAX_DEPTH 16
/* Longest string of a known member, in bytes (PATH_MAX). */
#define VMFERRY_MANIFEST_MAX_STRING 4096
/* Longest image format name ("qcow2"). */
#define VMFERRY_MANIFEST_MAX_FORMAT 32

/* Most entries of "domain.mac_map". */
#define VMFERRY_MANIFEST_MAX_MACS 1024

/* The same values as enum vmferry_domain_role (lib/domain.h). */
enum vmferry_manifest_role {
  VMFERRY_MANIFEST_DISK = 1,    /* a disk image of the domain */
  VMFERRY_MANIFEST_NVRAM = 2,   /* UEFI variable store */
  VMFERRY_MANIFEST_TPM = 3,     /* a file of the emulated TPM's state */
  VMFERRY_MANIFEST_BACKING = 4, /* a backing file of a disk or backing */
};

/* One entry of "files".  Strings are NUL-terminated, valid UTF-8 without
 * control characters; a parsed manifest owns them.
 */
struct vmferry_manifest_file {
  uint32_t index;               /* its position in files[] */
  enum vmferry_manifest_role role;
  /* A safe path component (vmferry_name_ok); for TPM a relative path of
   * such components (vmferry_name_relpath_ok).
   */
  char *name;
  char *source_path;
  char *pool, *volume;          /* both or neither; disks only */
  char *target;                 /* "vda"; NULL for none */
  char *format;                 /* "raw", "qcow2" */
  /* "content": "guest": the disk as the guest reads it (a running
   * domain's), stored as format raw; false: the file's own bytes
   * ("image", the default).  Needs VMFERRY_FEATURE_GUEST in the header.
   */
  bool guest;
  uint64_t size;                /* bytes, as in FILE_BEGIN; < 2^63 */
  bool has_virtual_size;
  uint64_t virtual_size;
  uint64_t allocated;
  int backing;                  /* index of an earlier file, or -1 */
  char *backing_format;         /* with backing, else NULL */
  bool readonly;
  char *source_identity;        /* NULL: an older writer's stream */
  char *extra;                  /* members not known here, see below */
};

/* One entry of "domain.mac_map": an interface's MAC before a rewrite
 * changed it (--new-macs) and the one the DOMAIN_XML has now, each as
 * vmferry_manifest_mac_ok says.
 */
struct vmferry_manifest_mac {
  char *old_mac, *new_mac;
  char *extra;                  /* members not known here */
};

struct vmferry_manifest {
  unsigned version;             /* VMFERRY_MANIFEST_VERSION */
  char *tool;                   /* "vmferry 0.1.0", or NULL */
  char *created;                /* RFC 3339, or NULL */
  char *source_host, *source_uri;       /* or NULL */
  char *domain_name;            /* vmferry_name_ok (hidden allowed) */
  char *domain_uuid;            /* canonical (vmferry_name_uuid_ok) */
  size_t nr_files;              /* at most VMFERRY_MAX_FILES */
  struct vmferry_manifest_file *files;
  /* The MACs rewrites changed on the way, oldest first; no two entries
   * share an old or a new MAC (in any case), none keeps its MAC.  At
   * most VMFERRY_MANIFEST_MAX_MACS.
   */
  size_t nr_macs;
  struct vmferry_manifest_mac *macs;
  /* Members this version does not know, each a JSON object's text (or
   * NULL for none): at the top level, in "source", in "domain" and in
   * "totals".  The writer puts them back where they were.
   */
  char *extra, *source_extra, *domain_extra, *totals_extra;
  /* "guest": what inspecting the guest found (vmferry-export --inspect,
   * lib/guest.h), its known members checked: the object's JSON text, or
   * NULL when the stream has none.
   */
  char *guest;
};

/* Parse LEN bytes of manifest JSON (no NUL terminator needed).  Refuses,
 * naming the member ("files[2].name") and escaping any text it quotes:
 * what is not one JSON object, nested deeper than
 * VMFERRY_MANIFEST_MAX_DEPTH or followed by more than white space; a
 * format other than VMFERRY_MANIFEST_FORMAT or a version other than
 * VMFERRY_MANIFEST_VERSION; a missing required member or one of the wrong
 * type; any string (member name or value, known or not) that is not
 * UTF-8 or holds a control character; an integer below 0 or above
 * 2^63 - 1; more than VMFERRY_MAX_FILES files; an index that is not the
 * file's position; an unknown role; a file name that is not a safe path
 * component; two files of one name, or two of one pool and volume; a
 * backing index not below the file's own or a backing chain through an
 * NVRAM or TPM file; backing_format without backing or the reverse; pool
 * or volume on anything but a disk, or one without the other; a
 * content other than "image" or "guest", and guest content on anything
 * but a raw disk without a backing file that no file uses as its
 * backing, or whose virtual_size is not its size; a domain.mac_map
 * entry whose MACs are not MACs, are equal, or repeat another entry's;
 * totals that are not the sums over the files.
 * INPUT_NAME (may be NULL) starts the message: "web01.vmf: manifest: ...".
 * On success *M_RTN is a manifest the caller frees with
 * vmferry_manifest_free.
 */
int vmferry_manifest_parse (const char *json, size_t len,
                            const char *input_name,
                            struct vmferry_manifest **m_rtn);

void vmferry_manifest_free (struct vmferry_manifest *m);

/* The manifest M as JSON text (pretty-printed), with totals computed from
 * the files and the extra members put back.  M is only read (a caller
 * may fill a struct on the stack with strings it owns).  Refuses what
 * vmferry_manifest_parse would refuse, with the same message, so no
 * writer can emit a manifest that readers refuse.  The caller frees the
 * result.
 */
char *vmferry_manifest_to_json (const struct vmferry_manifest *m);

/* Is S a MAC address as libvirt writes one: six pairs of hexadecimal
 * digits (either case) joined by ':' ("52:54:00:ab:cd:ef")?
 */
bool vmferry_manifest_mac_ok (const char *s);

/* Entry I of M's MAC map removed (the later ones move up one). */
void vmferry_manifest_remove_mac (struct vmferry_manifest *m, size_t i);

/* Note in M's mac_map that a rewrite changed an interface's MAC from OLD
 * to NEW (both vmferry_manifest_mac_ok): the entry whose new MAC is OLD
 * now goes to NEW (the guest still knows its old one), else an entry
 * of OLD (one left by a change the map did not see) does, else one is
 * added; an entry that comes back to its old MAC is removed, and so is
 * another that claimed NEW.  0, or -1 with the error set (out of
 * memory, or more than VMFERRY_MANIFEST_MAX_MACS entries).
 */
int vmferry_manifest_add_mac (struct vmferry_manifest *m, const char *old,
                              const char *new);

/* "disk", "nvram", "tpm", "backing"; "unknown" for other values. */
const char *vmferry_manifest_role_name (enum vmferry_manifest_role role);

/* The file of M whose index is FILE, or NULL. */
const struct vmferry_manifest_file *
vmferry_manifest_file (const struct vmferry_manifest *m, uint32_t file);

/* The members the parser knows: NAME is a path ("files[].size"), TYPE is
 * "string", "integer", "boolean", "object", "array" or "string or null",
 * REQUIRED says whether a manifest without it is refused.  The format
 * spec's table lists exactly these.
 */
struct vmferry_manifest_field {
  const char *name;
  const char *type;
  bool required;
};

const struct vmferry_manifest_field *vmferry_manifest_fields (size_t *nr_rtn);

#endif
