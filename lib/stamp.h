/* vmferry: the mark an import leaves in the domain it defines.
 *
 * The definition vmferry-import gives libvirt carries, in <metadata>, an
 * element <vmferry:import xmlns:vmferry="urn:vmferry:import:1"
 * stream="ID" token="TOKEN"/>: the identity of the stream it came from
 * (resume.h: the source domain and the identity of each source file) and
 * the token of the import that defined it.  The define is the moment an
 * import commits; the mark lets a later run tell, after a kill, whether
 * that moment was reached (the token), and lets a re-run of a move that
 * already completed say "already there" instead of failing (the stream).
 */
#ifndef VMFERRY_STAMP_H
#define VMFERRY_STAMP_H

#include <libxml/tree.h>

#define VMFERRY_STAMP_NS "urn:vmferry:import:1"

/* Put the mark into DOC, replacing any earlier one.  Returns 0, or -1
 * with the error set.
 */
int vmferry_stamp_set (xmlDocPtr doc, const char *stream_id, const char *token);

/* Read the mark of the domain XML in XML (as libvirt returns it).
 * Returns 1 with *STREAM_RTN and *TOKEN_RTN set (the caller frees them),
 * 0 if there is none, -1 with the error set.
 */
int vmferry_stamp_get (const char *xml, char **stream_rtn, char **token_rtn);

#endif
