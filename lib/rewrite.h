/* vmferry: adapt a domain definition to its destination (vmferry-rewrite).
 *
 * A struct vmferry_rewrite is a set of rules built from options (one call
 * per option, in any order) or from a map file (the same options, one a
 * line, see vmferry-rewrite(1) MAP FILE).  The rules are then applied to
 * a parsed domain (vmferry_rewrite_doc), to a bare XML text
 * (vmferry_rewrite_xml) or to a whole stream (vmferry_rewrite_stream).
 *
 * Rewriting is deterministic (the same input and rules give the same
 * output; the one exception is --new-uuid without a value, which draws a
 * random UUID) and idempotent (rewriting the output again changes
 * nothing): rule sets whose output another rule would match again, such
 * as --map-network a=b --map-network b=c, are refused when added.
 * Elements and attributes the rules do not name are kept as they are,
 * and so is their text: a diff of the input and output shows the lines
 * the rules changed and no others.
 *
 * Rule values checked only against a destination ("auto") need a libvirt
 * connection to it; without one, such a rule is an error at apply time.
 */
#ifndef VMFERRY_REWRITE_H
#define VMFERRY_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include <libvirt/libvirt.h>
#include <libxml/tree.h>

#include "preflight.h"
#include "stream.h"

struct vmferry_rewrite;

/* An empty rule set (an identity rewrite).  NULL with the error set. */
struct vmferry_rewrite *vmferry_rewrite_new (void);
void vmferry_rewrite_free (struct vmferry_rewrite *rw);

/* Add one rule, named as the long option without its dashes:
 *   "map-path" OLD=NEW     "pool" SRC=DST      "rename" NAME
 *   "new-uuid" [UUID]      "new-macs" (no value)
 *   "map-network" OLD=NEW  "map-bridge" OLD=NEW
 *   "machine" TYPE|auto    "cpu" MODE|MODEL    "emulator" PATH|auto
 *   "disk-bus" OLD=NEW     "drop-device" KIND
 *   "map-file" FILE        (reads FILE's rules; not allowed inside one)
 * VALUE is NULL for the options without one.  WHERE names the origin in
 * messages ("--map-path", "site.map:12").  Returns 0, or -1 with the
 * error set when the value is malformed or contradicts an earlier rule.
 */
int vmferry_rewrite_add (struct vmferry_rewrite *rw, const char *option,
                         const char *value, const char *where);

/* Read a map file: "OPTION VALUE" or "OPTION" per line, '#' comments and
 * blank lines ignored, at most 1 MiB.  Any error (unknown option, bad
 * value, unreadable file) names FILE:LINE and adds no rule of the file.
 */
int vmferry_rewrite_add_map_file (struct vmferry_rewrite *rw, const char *path);

/* Does the rule set use "auto" (and so need a destination)? */
bool vmferry_rewrite_needs_dest (const struct vmferry_rewrite *rw);

/* Has the rule set no rule at all? */
bool vmferry_rewrite_is_empty (const struct vmferry_rewrite *rw);

/* The --rename rule's name, or NULL (RW may be NULL).  Owned by RW. */
const char *vmferry_rewrite_get_rename (const struct vmferry_rewrite *rw);

/* Apply the rules to DOC in place.  DEST (may be NULL) is the destination
 * host, used to resolve "auto".  Refuses (-1, error set, DOC possibly
 * partly changed: discard it) a result where two different files would
 * land on one path or volume.  Returns the number of changes made (0:
 * DOC is unchanged), or -1.
 */
int vmferry_rewrite_doc (struct vmferry_rewrite *rw, xmlDocPtr doc,
                         virConnectPtr dest);

/* The path PATH maps to under the --map-path rules (longest matching
 * prefix, on a '/' boundary); a copy of PATH when no rule matches.  The
 * caller frees it.  NULL with the error set when out of memory.
 */
char *vmferry_rewrite_map_path (const struct vmferry_rewrite *rw,
                                const char *path);

/* Parse LEN bytes of domain XML named NAME, apply the rules, and write
 * the result as the input was written: the input's bytes wherever the
 * rules changed nothing (quoting, layout, comments, an XML declaration;
 * see xmlsource.h), so with no change the output is the input.
 * *CHANGED_RTN (may be NULL) says whether anything changed.  The caller
 * frees the result; NULL with the error set.
 */
char *vmferry_rewrite_xml (struct vmferry_rewrite *rw, const char *xml,
                           size_t len, const char *name, virConnectPtr dest,
                           bool *changed_rtn);

/* Apply the rules to a manifest (JSON text of a MANIFEST record) so it
 * stays consistent with the rewritten XML: the domain's name and UUID,
 * each file's source_path and name under --map-path, and "pool"/"volume"
 * for files that became pool volumes, the MACs --new-macs changed in
 * domain.mac_map (vmferry_manifest_add_mac).  NEW_NAME and NEW_UUID are the
 * rewritten XML's (NULL: keep).  The manifest is read by the importer's
 * parser and, when changed, written by formats' one writer (manifest.h),
 * so what either refuses is refused here; unchanged, the result is the
 * input's bytes.  *CHANGED_RTN (may be NULL) says which.  The caller
 * frees the result; NULL with the error set (including two files that
 * would get one name).
 */
char *vmferry_rewrite_manifest (struct vmferry_rewrite *rw, const char *json,
                                size_t len, const char *new_name,
                                const char *new_uuid, bool *changed_rtn);

/* Filter a stream from IN_FD to OUT_FD: the MANIFEST and DOMAIN_XML
 * records are replaced (when the rules change them), every other record
 * is copied byte for byte, data is never decompressed.  Nothing is
 * written before the domain XML has been read and rewritten, so bad
 * input (or a refused rewrite) writes nothing; a problem found later
 * (a corrupt data record) stops the copy, and the output then ends
 * without its END record, which every reader refuses.  Returns 0, or -1
 * with the error set.
 */
int vmferry_rewrite_stream (struct vmferry_rewrite *rw, int in_fd,
                            const char *in_name, int out_fd,
                            const char *out_name, virConnectPtr dest);

/* The same from reader R (IN_NAME in messages) to writer W, e.g. ends of
 * a handoff (handoff.h).  Neither is freed.
 */
int vmferry_rewrite_records (struct vmferry_rewrite *rw,
                             struct vmferry_stream_reader *r,
                             const char *in_name,
                             struct vmferry_stream_writer *w,
                             virConnectPtr dest);

/* What vmferry_rewrite_stream would do to the stream on IN_FD, without
 * writing anything: the stream is read to its end and checked as the
 * filter checks it, and *BEFORE_RTN and *AFTER_RTN are its domain XML as
 * it is and as the rules make it (equal when they change nothing).  The
 * caller frees both.  Returns 0, or -1 with the error set (both NULL).
 */
int vmferry_rewrite_stream_preview (struct vmferry_rewrite *rw, int in_fd,
                                    const char *in_name, virConnectPtr dest,
                                    char **before_rtn, char **after_rtn);

/* Apply the rules to what vmferry_check will look at: IN's document, and
 * the path of each of IN's files the same way (--map-path, and files
 * that became pool volumes: "volume:POOL/NAME"), so that the check sees
 * the domain as it will arrive.  Returns the number of changes to the
 * document, or -1 with the error set.
 */
int vmferry_rewrite_check_input (struct vmferry_rewrite *rw,
                                 struct vmferry_check_input *in,
                                 virConnectPtr dest);

/* Read bare domain XML from IN_FD (at most VMFERRY_DOMAIN_MAX_SIZE
 * bytes), rewrite it (vmferry_rewrite_xml), and write it to OUT_FD.
 * Nothing is written unless the whole rewrite succeeded.  Returns 0, or
 * -1 with the error set.
 */
int vmferry_rewrite_xml_fd (struct vmferry_rewrite *rw, int in_fd,
                            const char *in_name, int out_fd,
                            const char *out_name, virConnectPtr dest);

/* The rules' effect on the definition read from IN_FD (IN_NAME in
 * messages and in the diff's header): a vmferry stream when STREAM (read
 * to its end and checked, see vmferry_rewrite_stream_preview), else bare
 * domain XML, as a unified diff of the domain XML before and after (the
 * empty string when the rules change nothing).  With ESCAPE (for a
 * terminal), each line as vmferry_text_escape shows it: a stream's XML
 * may hold characters that drive a terminal.  Nothing is written.  The
 * caller frees *DIFF_RTN.  Returns 0, or -1 with the error set.
 */
int vmferry_rewrite_diff (struct vmferry_rewrite *rw, int in_fd,
                          const char *in_name, bool stream, bool escape,
                          virConnectPtr dest, char **diff_rtn);

#endif
