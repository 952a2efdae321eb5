/* vmferry: the mark an import leaves in the domain it defines (see
 * stamp.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "stamp.h"

static bool
is_stamp (xmlNodePtr n)
{
  return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
    strcmp ((const char *) n->ns->href, VMFERRY_STAMP_NS) == 0 &&
    strcmp ((const char *) n->name, "import") == 0;
}

int
vmferry_stamp_set (xmlDocPtr doc, const char *stream_id, const char *token)
{
  xmlNodePtr root = xmlDocGetRootElement (doc), meta, n, next, mark;
  xmlNsPtr ns;

  if (root == NULL) {
    vmferry_set_error ("domain XML: no root element");
    return -1;
  }
  meta = vmferry_xml_child (root, "metadata");
  if (meta == NULL) {
    /* libvirt's own order puts <metadata> after <title>/<description>. */
    xmlNodePtr after = vmferry_xml_child (root, "description");
    if (after == NULL)
      after = vmferry_xml_child (root, "title");
    if (after == NULL)
      after = vmferry_xml_child (root, "uuid");
    if (after == NULL)
      after = vmferry_xml_child (root, "name");
    meta = xmlNewDocNode (doc, NULL, BAD_CAST "metadata", NULL);
    if (meta == NULL)
      goto nomem;
    if (after ? xmlAddNextSibling (after, meta) == NULL
              : xmlAddChild (root, meta) == NULL) {
      xmlFreeNode (meta);
      goto nomem;
    }
  }
  for (n = meta->children; n; n = next) {
    next = n->next;
    if (is_stamp (n)) {
      xmlUnlinkNode (n);
      xmlFreeNode (n);
    }
  }
  mark = xmlNewChild (meta, NULL, BAD_CAST "import", NULL);
  if (mark == NULL)
    goto nomem;
  ns = xmlNewNs (mark, BAD_CAST VMFERRY_STAMP_NS, BAD_CAST "vmferry");
  if (ns == NULL)
    goto nomem;
  xmlSetNs (mark, ns);
  if (xmlNewProp (mark, BAD_CAST "stream", BAD_CAST stream_id) == NULL ||
      xmlNewProp (mark, BAD_CAST "token", BAD_CAST token) == NULL)
    goto nomem;
  return 0;
 nomem:
  vmferry_set_error_errno (ENOMEM, "domain XML: metadata");
  return -1;
}

int
vmferry_stamp_get (const char *xml, char **stream_rtn, char **token_rtn)
{
  CLEANUP_XMLDOC xmlDocPtr doc = vmferry_domain_parse (xml, strlen (xml),
                                                       "domain XML");
  xmlNodePtr meta;

  *stream_rtn = *token_rtn = NULL;
  if (doc == NULL)
    return -1;
  meta = vmferry_xml_child (xmlDocGetRootElement (doc), "metadata");
  for (xmlNodePtr n = meta ? meta->children : NULL; n; n = n->next) {
    xmlChar *s, *t;

    if (!is_stamp (n))
      continue;
    s = xmlGetProp (n, BAD_CAST "stream");
    t = xmlGetProp (n, BAD_CAST "token");
    if (s && t) {
      *stream_rtn = strdup ((const char *) s);
      *token_rtn = strdup ((const char *) t);
    }
    xmlFree (s);
    xmlFree (t);
    if (*stream_rtn == NULL || *token_rtn == NULL) {
      free (*stream_rtn);
      free (*token_rtn);
      *stream_rtn = *token_rtn = NULL;
      continue;
    }
    return 1;
  }
  return 0;
}
