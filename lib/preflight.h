/* vmferry: pre-flight check of a domain against a destination host
 * (vmferry-check).
 *
 * Everything is asked of the destination's libvirtd (local or remote):
 * its capabilities and domain capabilities, networks, interfaces, storage
 * pools, domains, node devices and CPU comparison.  Nothing on the
 * destination is changed, with one exception: to see whether a directory
 * exists, has room and is writable, a transient directory pool may be
 * created over it (and destroyed again) and an empty probe volume created
 * in it and deleted; a directory that is already the target of a pool is
 * looked at through that pool instead.
 *
 * Each problem found is a finding with a severity, what it is about,
 * why, and when a vmferry-rewrite option fixes it, that option.
 */
#ifndef VMFERRY_PREFLIGHT_H
#define VMFERRY_PREFLIGHT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <libvirt/libvirt.h>
#include <libxml/tree.h>

#include "vector.h"

enum vmferry_severity {
  VMFERRY_SEV_INFO = 0,         /* worth knowing, nothing to do */
  VMFERRY_SEV_WARNING = 1,      /* it may work, or work differently */
  VMFERRY_SEV_ERROR = 2,        /* blocks: define or start would fail */
};

struct vmferry_finding {
  int severity;                 /* enum vmferry_severity */
  char *check;                  /* which check: "emulator", "machine",
                                 * "cpu", "network", "bridge", "pool",
                                 * "path", "space", "name", "uuid",
                                 * "firmware", "device", "memory",
                                 * "domain-type", "reference" */
  char *object;                 /* what: "network lan-a", "/srv/vm" */
  char *message;                /* why */
  /* The vmferry-rewrite options that fix it, as argv words, NULL-
   * terminated ("--map-network", "lan-a=default", NULL); NULL when no
   * rewrite does.
   */
  char **fix;
  char *hint;                   /* what else would fix it, or NULL */
  /* "space": the bytes needed and free there (the message rounds them);
   * 0 for the other checks.
   */
  uint64_t need, available;
};

/* Who acts on the findings: the hints name what it offers. */
enum vmferry_check_for {
  VMFERRY_CHECK_FOR_IMPORT = 0, /* vmferry-rewrite and vmferry-import
                                 * (vmferry-check, a pipeline) */
  VMFERRY_CHECK_FOR_MIGRATE,    /* vmferry-migrate: the rewrite options
                                 * are its own, files go to --dest-dir
                                 * or --dest-pool, nothing is replaced */
  VMFERRY_CHECK_FOR_LIVE,       /* vmferry-migrate --live */
};

DEFINE_VECTOR_TYPE (vmferry_finding_vector, struct vmferry_finding);

struct vmferry_findings {
  struct vmferry_finding_vector list;
  int check_for;                /* enum vmferry_check_for, from the input */
};

void vmferry_findings_free (struct vmferry_findings *f);

/* True when a finding is an error (the domain cannot run there as is). */
bool vmferry_findings_blocking (const struct vmferry_findings *f);

/* A file the domain needs, as the (possibly rewritten) XML names it,
 * with the bytes it will occupy at the destination (0: unknown).
 */
struct vmferry_check_file {
  char *path;                   /* or "volume:POOL/NAME" for a pool volume */
  uint64_t allocated;
  bool carried;                 /* travels with the domain (else it must
                                 * already exist at the destination) */
  char *format;                 /* the stream's format for it, or NULL */
  /* A disk's size as the guest sees it (what a block device or volume
   * must hold); 0 for files that are not disks.
   */
  uint64_t capacity;
};

DEFINE_VECTOR_TYPE (vmferry_check_file_vector, struct vmferry_check_file);
DEFINE_VECTOR_TYPE (vmferry_check_string_vector, char *);

/* What to check: the domain XML and its files' sizes. */
struct vmferry_check_input {
  xmlDocPtr doc;
  char *name;                   /* for messages: domain or file name */
  struct vmferry_check_file_vector files;
  /* --allow-path values: host paths and resources the domain may refer
   * to without carrying them (lib/refs.h), as vmferry-import would
   * accept them.
   */
  struct vmferry_check_string_vector allow;
  /* A stream's: the manifest's "guest" (export --inspect; JSON text) or
   * NULL, and the target each of the domain's disks had on the source
   * (in the XML's order, "" for none), so that the check sees what a
   * rewrite changes (preflight-guest.c).
   */
  char *guest;
  struct vmferry_check_string_vector disk_targets;
  /* For the hints (not freed by vmferry_check_input_free): */
  int check_for;                /* enum vmferry_check_for */
  /* vmferry-migrate --dest-dir: the carried files go there whatever
   * their paths say, so that option, not --map-path, moves them.
   */
  const char *dest_dir;
  /* The storage pool the disks go to (--dest-pool, vmferry-check
   * --dest-pool), and the block devices named for disks
   * (TARGET=DEVICE), checked by preflight-block.c.
   */
  const char *dest_pool;
  const char *const *dest_disks;
  size_t n_dest_disks;
  /* Files on the destination that an interrupted live migration of this
   * domain made (its journal, live.h): the next run removes them before
   * anything else, so they are not in the way.
   */
  char *const *leftovers;
  size_t nr_leftovers;
};

void vmferry_check_input_free (struct vmferry_check_input *in);

/* Add an --allow-path value to IN (after vmferry_check_input_load).
 * Returns 0, or -1 with the error set when the value is not one
 * (vmferry_refs_allow_valid).
 */
int vmferry_check_input_allow (struct vmferry_check_input *in,
                               const char *value);

/* Load what to check from WHAT:
 *   "-" or a file starting with a stream record: a vmferry stream (only
 *     the manifest and the domain XML are read; sizes from the manifest);
 *   a file starting with '<': bare domain XML (sizes of files that exist
 *     here, else unknown);
 *   anything else: a domain name (or UUID) on SOURCE_URI (NULL: libvirt's
 *     default), read as export would read it, sizes from libvirt.
 * Returns 0, or -1 with the error set.
 */
int vmferry_check_input_load (const char *what, const char *source_uri,
                              struct vmferry_check_input *in);

/* Run every check of IN against DEST.  *FINDINGS_RTN is set (possibly to
 * zero findings) when the checks ran; -1 with the error set when they
 * could not (the destination does not answer).
 */
int vmferry_check (virConnectPtr dest, const struct vmferry_check_input *in,
                   struct vmferry_findings *findings_rtn);

/* The "format" member of vmferry-check --json: its layout's version. */
#define VMFERRY_CHECK_JSON_FORMAT "vmferry-check/1"

/* Print the findings: as text (one block per finding, then the combined
 * vmferry-rewrite command that fixes what a rewrite can), or as one JSON
 * object {"format", "destination", "domain", "ok", "findings": [{"severity",
 * "check", "object", "message", "fix": [words] | null, "hint"[,
 * "need_bytes", "free_bytes"]}], "fix":
 * [all fix words]}.  DEST_URI and DOMAIN go into the output.
 */
int vmferry_findings_print (const struct vmferry_findings *f, FILE *out,
                            bool json, const char *dest_uri,
                            const char *domain);

/* The findings as vmferry-check --json prints them, as a new json-c
 * object (the caller puts it), for a tool's own JSON to carry
 * (vmferry-migrate --json).  NULL with the error set.
 */
struct json_object;
struct json_object *vmferry_findings_json (const struct vmferry_findings *f,
                                           const char *dest_uri,
                                           const char *domain);

/* "error", "warning", "info". */
const char *vmferry_severity_name (int severity);

#endif
