/* vmferry: reading and editing the nodes of a parsed XML document.
 *
 * One ownership rule: every string a function here returns is a copy
 * from malloc that the caller frees with free (or CLEANUP_FREE); none
 * points into the document, none wants xmlFree.  Every reader takes a
 * NULL node and then finds nothing.
 *
 * Names are read and written without a namespace: the elements and
 * attributes of libvirt's schemas have none, and those that do
 * (<metadata>, qemu:commandline) are never what we look for.
 *
 * The editors take an optional change counter: they add one to *CHANGES
 * only when the document really changed (CHANGES may be NULL), so a
 * caller can tell a rewrite that did nothing.  Out of memory they
 * return -1 with the error set.
 */
#ifndef VMFERRY_XMLNODE_H
#define VMFERRY_XMLNODE_H

#include <stdbool.h>

#include <libxml/tree.h>

/* Parse XML that libvirtd sent (capabilities, pool and network
 * definitions): no network access, no entity substitution, and libxml2
 * prints nothing.  The caller frees the document with xmlFreeDoc (or
 * CLEANUP_XMLDOC).  NULL when it does not parse, with no error set (the
 * caller says what it asked for).  Untrusted XML goes through
 * vmferry_domain_parse (domain.h) instead.
 */
xmlDocPtr vmferry_xml_parse_libvirt (const char *xml);

/* N is an element named NAME, in no namespace. */
bool vmferry_xml_is_elem (xmlNodePtr n, const char *name);

/* The first child element of PARENT named NAME, or NULL. */
xmlNodePtr vmferry_xml_child (xmlNodePtr parent, const char *name);

/* Attribute NAME of N into *RTN (the caller frees it), NULL when N has
 * no such attribute.  Returns 0, or -1 with the error set when out of
 * memory: for callers to whom an attribute lost to a failed allocation
 * must not look absent.
 */
int vmferry_xml_get_attr (xmlNodePtr n, const char *name, char **rtn);

/* Attribute NAME of N (the caller frees it), or NULL when absent or out
 * of memory (then with the error set): for reads where both lead to the
 * same answer.
 */
char *vmferry_xml_attr (xmlNodePtr n, const char *name);

/* Attribute NAME of N is present and equals VALUE. */
bool vmferry_xml_attr_eq (xmlNodePtr n, const char *name, const char *value);

/* The value of attribute node A, whatever its namespace (the caller
 * frees it), or NULL when out of memory (then with the error set).
 */
char *vmferry_xml_attr_value (xmlAttrPtr a);

/* The whole text of N (its descendants' text, concatenated), "" when it
 * has none; the caller frees it.  NULL when N is NULL, or out of memory
 * with the error set.
 */
char *vmferry_xml_text (xmlNodePtr n);

/* Set attribute NAME of element N to VALUE, stored literally ('&' stays
 * '&').  Returns 0, or -1 with the error set.
 */
int vmferry_xml_set_attr (xmlNodePtr n, const char *name, const char *value,
                          int *changes);

/* Remove attribute NAME of N, if it has one. */
void vmferry_xml_unset_attr (xmlNodePtr n, const char *name, int *changes);

/* Make the literal string S (no entity parsing) the only content of
 * element N, in place of its children.  Returns 0, or -1 with the error
 * set.
 */
int vmferry_xml_set_text (xmlNodePtr n, const char *s, int *changes);

/* N is a text node of white space only (indentation). */
bool vmferry_xml_is_blank (xmlNodePtr n);

/* Unlink and free N with the indentation in front of it. */
void vmferry_xml_remove (xmlNodePtr n);

/* Add NODE as the last child of PARENT, after PREV, or as the first
 * child of PARENT, indented like its neighbours so that a pretty-printed
 * document stays pretty.  Returns 0, or -1 with the error set; NODE is
 * then in no document and still the caller's to free.
 */
int vmferry_xml_append_child (xmlNodePtr parent, xmlNodePtr node);
int vmferry_xml_insert_after (xmlNodePtr prev, xmlNodePtr node);
int vmferry_xml_prepend_child (xmlNodePtr parent, xmlNodePtr node);

#endif
