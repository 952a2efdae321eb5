/* vmferry: reading and editing the nodes of a parsed XML document (see
 * xmlnode.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "error.h"
#include "xmlnode.h"

xmlDocPtr
vmferry_xml_parse_libvirt (const char *xml)
{
  return xmlReadMemory (xml, strlen (xml), NULL, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR |
                        XML_PARSE_NOWARNING);
}

bool
vmferry_xml_is_elem (xmlNodePtr n, const char *name)
{
  return n && n->type == XML_ELEMENT_NODE && n->ns == NULL &&
    xmlStrEqual (n->name, BAD_CAST name);
}

xmlNodePtr
vmferry_xml_child (xmlNodePtr parent, const char *name)
{
  if (parent == NULL)
    return NULL;
  for (xmlNodePtr n = parent->children; n; n = n->next)
    if (vmferry_xml_is_elem (n, name))
      return n;
  return NULL;
}

/* libxml2's string V (freed here) as ours.  xmlNodeGetContent gives ""
 * for an element or attribute with nothing in it, so NULL is libxml2
 * out of memory.
 */
static char *
own (xmlChar *v, const char *what, const xmlChar *name)
{
  char *r = v ? strdup ((const char *) v) : NULL;

  xmlFree (v);
  if (r == NULL)
    vmferry_set_error_errno (ENOMEM, "XML: %s %s", what,
                             name ? (const char *) name : "");
  return r;
}

int
vmferry_xml_get_attr (xmlNodePtr n, const char *name, char **rtn)
{
  xmlAttrPtr a;

  *rtn = NULL;
  if (n == NULL || (a = xmlHasNsProp (n, BAD_CAST name, NULL)) == NULL)
    return 0;
  *rtn = vmferry_xml_attr_value (a);
  return *rtn ? 0 : -1;
}

char *
vmferry_xml_attr (xmlNodePtr n, const char *name)
{
  char *v;

  vmferry_xml_get_attr (n, name, &v);
  return v;
}

bool
vmferry_xml_attr_eq (xmlNodePtr n, const char *name, const char *value)
{
  xmlChar *v = n ? xmlGetNoNsProp (n, BAD_CAST name) : NULL;
  bool r = v && xmlStrEqual (v, BAD_CAST value);

  xmlFree (v);
  return r;
}

char *
vmferry_xml_attr_value (xmlAttrPtr a)
{
  return own (xmlNodeGetContent ((xmlNodePtr) a), "attribute", a->name);
}

char *
vmferry_xml_text (xmlNodePtr n)
{
  if (n == NULL)
    return NULL;
  return own (xmlNodeGetContent (n), "element", n->name);
}

int
vmferry_xml_set_attr (xmlNodePtr n, const char *name, const char *value,
                      int *changes)
{
  if (vmferry_xml_attr_eq (n, name, value))
    return 0;
  /* xmlSetProp stores the value literally. */
  if (xmlSetProp (n, BAD_CAST name, BAD_CAST value) == NULL) {
    vmferry_set_error_errno (ENOMEM, "XML: <%s %s>",
                             (const char *) n->name, name);
    return -1;
  }
  if (changes)
    (*changes)++;
  return 0;
}

void
vmferry_xml_unset_attr (xmlNodePtr n, const char *name, int *changes)
{
  xmlAttrPtr a = xmlHasNsProp (n, BAD_CAST name, NULL);

  if (a) {
    xmlRemoveProp (a);
    if (changes)
      (*changes)++;
  }
}

/* N holds only text, and that text is S. */
static bool
text_is (xmlNodePtr n, const char *s)
{
  xmlChar *v;
  bool r;

  for (xmlNodePtr c = n->children; c; c = c->next)
    if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
      return false;
  v = xmlNodeGetContent (n);
  r = v && xmlStrEqual (v, BAD_CAST s);
  xmlFree (v);
  return r;
}

int
vmferry_xml_set_text (xmlNodePtr n, const char *s, int *changes)
{
  xmlNodePtr t;

  if (text_is (n, s))
    return 0;
  /* A text node, not xmlNodeSetContent's string: that one would parse
   * entities, and '&' in a path must stay '&'.
   */
  t = xmlNewDocText (n->doc, BAD_CAST s);
  if (t == NULL)
    goto nomem;
  xmlNodeSetContent (n, NULL);
  if (xmlAddChild (n, t) == NULL) {
    xmlFreeNode (t);
    goto nomem;
  }
  if (changes)
    (*changes)++;
  return 0;

 nomem:
  vmferry_set_error_errno (ENOMEM, "XML: <%s>", (const char *) n->name);
  return -1;
}

bool
vmferry_xml_is_blank (xmlNodePtr n)
{
  return n && n->type == XML_TEXT_NODE && xmlIsBlankNode (n);
}

void
vmferry_xml_remove (xmlNodePtr n)
{
  if (vmferry_xml_is_blank (n->prev)) {
    xmlNodePtr ws = n->prev;
    xmlUnlinkNode (ws);
    xmlFreeNode (ws);
  }
  xmlUnlinkNode (n);
  xmlFreeNode (n);
}

/* Copy the indentation WS in next to NODE (after it when AFTER), which
 * is in the document already.  On failure NODE leaves the document
 * again, so the caller may free it.
 */
static int
indent (xmlNodePtr node, xmlNodePtr ws, bool after)
{
  xmlNodePtr copy = xmlCopyNode (ws, 0);

  if (copy == NULL ||
      (after ? xmlAddNextSibling (node, copy)
             : xmlAddPrevSibling (node, copy)) == NULL) {
    xmlFreeNode (copy);
    xmlUnlinkNode (node);
    vmferry_set_error_errno (ENOMEM, "XML: <%s>", (const char *) node->name);
    return -1;
  }
  return 0;
}

static int
added (xmlNodePtr r, xmlNodePtr node)
{
  if (r == NULL) {
    vmferry_set_error_errno (ENOMEM, "XML: <%s>", (const char *) node->name);
    return -1;
  }
  return 0;
}

/* The node goes in before the whitespace is copied: a text node added
 * next to another text node is merged into it by libxml2, which would
 * put the indentation after the node.
 */
int
vmferry_xml_append_child (xmlNodePtr parent, xmlNodePtr node)
{
  xmlNodePtr last = parent->last, prev_ws = NULL;

  if (!vmferry_xml_is_blank (last))
    return added (xmlAddChild (parent, node), node);

  /* "\n    " before the closing tag: put the new node before it, with
   * the indentation of the previous element.
   */
  for (xmlNodePtr n = last->prev; n; n = n->prev)
    if (vmferry_xml_is_blank (n)) {
      prev_ws = n;
      break;
    }
  if (added (xmlAddPrevSibling (last, node), node) == -1)
    return -1;
  if (prev_ws && !vmferry_xml_is_blank (node->prev))
    return indent (node, prev_ws, false);
  return 0;
}

int
vmferry_xml_insert_after (xmlNodePtr prev, xmlNodePtr node)
{
  if (added (xmlAddNextSibling (prev, node), node) == -1)
    return -1;
  if (vmferry_xml_is_blank (prev->prev))
    return indent (node, prev->prev, false);
  return 0;
}

int
vmferry_xml_prepend_child (xmlNodePtr parent, xmlNodePtr node)
{
  xmlNodePtr first = parent->children;

  if (first == NULL)
    return added (xmlAddChild (parent, node), node);
  if (!vmferry_xml_is_blank (first))
    return added (xmlAddPrevSibling (first, node), node);
  if (added (xmlAddNextSibling (first, node), node) == -1)
    return -1;
  if (node->next && !vmferry_xml_is_blank (node->next))
    return indent (node, first, true);
  return 0;
}
