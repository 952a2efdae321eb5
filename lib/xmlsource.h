/* vmferry: write a changed XML document as the text it was parsed from,
 * with only what changed rewritten.
 *
 * libxml2 serialises every attribute in double quotes and drops an XML
 * declaration, so a definition written by libvirt (single quotes) comes
 * back from a parse and a save with every line changed, and a diff
 * against the original is noise.  A source ties each node of a parsed
 * document to its bytes in the text; after the document was changed in
 * place, vmferry_xml_source_splice writes the original bytes of every
 * node and attribute that is still as it was, and new text only for
 * what changed: an attribute's new value in the quotes it had, a removed
 * attribute or element gone with nothing else, a new element in the
 * document's quoting.  Everything outside the root element (declaration,
 * comments, the final newline) is kept as it is.
 *
 * The source marks the document's nodes through their _private field:
 * nothing else may use it while the source lives, and the source must
 * outlive every use of the document with it.
 */
#ifndef VMFERRY_XMLSOURCE_H
#define VMFERRY_XMLSOURCE_H

#include <stddef.h>

#include <libxml/tree.h>

struct vmferry_xml_source;

/* Tie DOC, just parsed from TEXT[0..LEN), to TEXT (copied).  Fails (NULL,
 * error set) when the text does not tokenise as the tree libxml2 made of
 * it (an encoding other than UTF-8, a construct this tokeniser does not
 * know): the caller then serialises with libxml2 instead.
 */
struct vmferry_xml_source *vmferry_xml_source_new (xmlDocPtr doc,
                                                   const char *text,
                                                   size_t len);
void vmferry_xml_source_free (struct vmferry_xml_source *src);

/* DOC (the document given to vmferry_xml_source_new, maybe changed since)
 * as text: the source's bytes wherever a node is unchanged.  *LEN_RTN
 * (may be NULL) is its length.  The caller frees it; NULL with the error
 * set when out of memory.
 */
char *vmferry_xml_source_splice (const struct vmferry_xml_source *src,
                                 xmlDocPtr doc, size_t *len_rtn);

#endif
