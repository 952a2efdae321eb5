/* vmferry: the standby's definition on a refresh (see sync-define.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "log.h"
#include "rewrite.h"
#include "stamp.h"
#include "sync-define.h"
#include "virt.h"
#include "xmlnode.h"

/* Read what the map file reader reads, and no more: it is valid. */
#define RULES_FILE_MAX (1024 * 1024)

static int
append_line (char **rules, const char *line, size_t len)
{
  size_t have = *rules ? strlen (*rules) : 0;
  char *n = realloc (*rules, have + len + 2);

  if (n == NULL) {
    vmferry_set_error_errno (ENOMEM, "rules");
    return -1;
  }
  memcpy (n + have, line, len);
  n[have + len] = '\n';
  n[have + len + 1] = '\0';
  *rules = n;
  return 0;
}

int
vmferry_sync_rules_add (char **rules, const char *option, const char *value)
{
  CLEANUP_FREE char *line = NULL;
  int len;

  if (strcmp (option, "rename") == 0)
    return 0;
  if (value && strpbrk (value, "\r\n")) {
    vmferry_set_error ("--%s: a value with a line break", option);
    return -1;
  }
  len = value ? asprintf (&line, "%s %s", option, value)
              : asprintf (&line, "%s", option);
  if (len < 0) {
    line = NULL;
    vmferry_set_error_errno (ENOMEM, "rules");
    return -1;
  }
  return append_line (rules, line, len);
}

int
vmferry_sync_rules_add_file (char **rules, const char *path)
{
  FILE *f = fopen (path, "re");
  CLEANUP_FREE char *buf = malloc (RULES_FILE_MAX + 1);
  size_t len;
  char *line, *next;

  if (f == NULL || buf == NULL) {
    vmferry_set_error_errno (f ? ENOMEM : errno, "%s", path);
    if (f)
      fclose (f);
    return -1;
  }
  len = fread (buf, 1, RULES_FILE_MAX, f);
  fclose (f);
  buf[len] = '\0';
  for (line = buf; line && *line; line = next) {
    char *end;

    next = strchr (line, '\n');
    if (next)
      *next++ = '\0';
    end = line + strlen (line);
    while (end > line && (end[-1] == ' ' || end[-1] == '\t' ||
                          end[-1] == '\r'))
      *--end = '\0';
    while (*line == ' ' || *line == '\t')
      line++;
    if (*line == '\0' || *line == '#')
      continue;
    if (strncmp (line, "--", 2) == 0)
      line += 2;
    /* --rename from a map file names the standby too: not a rule here. */
    if (strncmp (line, "rename", 6) == 0 &&
        (line[6] == ' ' || line[6] == '\t' || line[6] == '\0'))
      continue;
    if (append_line (rules, line, strlen (line)) < 0)
      return -1;
  }
  return 0;
}

/* The rule set of RULES, with --new-uuid made the standby's UUID: the
 * first copy drew it (or was given it), and --new-macs derives the
 * addresses from it, so both come out as the first copy made them.
 */
static struct vmferry_rewrite *
rules_parse (const char *rules, const char *uuid)
{
  struct vmferry_rewrite *rw = vmferry_rewrite_new ();
  CLEANUP_FREE char *copy = rules ? strdup (rules) : NULL;
  unsigned n = 0;

  if (rw == NULL || (rules && copy == NULL)) {
    vmferry_rewrite_free (rw);
    if (rw)
      vmferry_set_error_errno (ENOMEM, "rules");
    return NULL;
  }
  for (char *line = copy, *next; line && *line; line = next) {
    char where[64], *value;

    next = strchr (line, '\n');
    if (next)
      *next++ = '\0';
    n++;
    value = strpbrk (line, " \t");
    if (value) {
      *value++ = '\0';
      value += strspn (value, " \t");
      if (*value == '\0')
        value = NULL;
    }
    if (strcmp (line, "new-uuid") == 0)
      value = (char *) uuid;
    snprintf (where, sizeof where, "the recorded rule %u", n);
    if (vmferry_rewrite_add (rw, line, value, where) < 0) {
      vmferry_rewrite_free (rw);
      return NULL;
    }
  }
  return rw;
}

static xmlNodePtr
devices_of (xmlDocPtr doc)
{
  return vmferry_xml_child (xmlDocGetRootElement (doc), "devices");
}

static char *
target_of (xmlNodePtr disk)
{
  return vmferry_xml_attr (vmferry_xml_child (disk, "target"), "dev");
}

static xmlNodePtr
disk_by_target (xmlDocPtr doc, const char *target)
{
  xmlNodePtr devs = devices_of (doc);

  for (xmlNodePtr n = devs ? devs->children : NULL; n; n = n->next) {
    CLEANUP_FREE char *t = NULL;
    if (vmferry_xml_is_elem (n, "disk") && (t = target_of (n)) &&
        strcmp (t, target) == 0)
      return n;
  }
  return NULL;
}

/* Replace the child NAME of TO by a copy of FROM's (none: removed). */
static int
copy_child (xmlNodePtr to, xmlNodePtr from, const char *name)
{
  xmlNodePtr old = vmferry_xml_child (to, name);
  xmlNodePtr src = vmferry_xml_child (from, name), cp;

  if (src == NULL) {
    if (old)
      vmferry_xml_remove (old);
    return 0;
  }
  cp = xmlDocCopyNode (src, to->doc, 1);
  if (cp == NULL) {
    vmferry_set_error_errno (ENOMEM, "XML");
    return -1;
  }
  if (old) {
    xmlReplaceNode (old, cp);
    xmlFreeNode (old);
    return 0;
  }
  return vmferry_xml_append_child (to, cp);
}

/* Each disk of NEW gets the storage of the standby's disk of its target
 * (the type, the source, the driver's format): the standby's layout, not
 * the source's, decides where its data is.  A disk on one side only is
 * a disk added or removed.
 */
static int
pin_storage (xmlDocPtr new, xmlDocPtr standby, const char *name)
{
  xmlNodePtr devs = devices_of (new), sdevs = devices_of (standby);
  int changes = 0;

  for (xmlNodePtr n = devs ? devs->children : NULL; n; n = n->next) {
    CLEANUP_FREE char *t = NULL;
    CLEANUP_FREE char *type = NULL;
    CLEANUP_FREE char *fmt = NULL;
    xmlNodePtr s, sdrv, drv;

    if (!vmferry_xml_is_elem (n, "disk"))
      continue;
    t = target_of (n);
    if (t == NULL) {
      vmferry_set_error ("the source's XML has a disk without a target");
      return -1;
    }
    s = disk_by_target (standby, t);
    if (s == NULL) {
      vmferry_set_error ("disk %s was added to the source since standby %s "
                         "was copied: run with --full to copy it again",
                         t, name);
      return -1;
    }
    type = vmferry_xml_attr (s, "type");
    sdrv = vmferry_xml_child (s, "driver");
    drv = vmferry_xml_child (n, "driver");
    fmt = vmferry_xml_attr (sdrv, "type");
    if ((type && vmferry_xml_set_attr (n, "type", type, &changes) < 0) ||
        copy_child (n, s, "source") < 0 ||
        copy_child (n, s, "backingStore") < 0 ||
        (drv && fmt && vmferry_xml_set_attr (drv, "type", fmt, &changes) < 0))
      return -1;
  }
  for (xmlNodePtr n = sdevs ? sdevs->children : NULL; n; n = n->next) {
    CLEANUP_FREE char *t = NULL;

    if (vmferry_xml_is_elem (n, "disk") && (t = target_of (n)) &&
        disk_by_target (new, t) == NULL) {
      vmferry_set_error ("disk %s was removed from the source since standby "
                         "%s was copied: run with --full to copy it again",
                         t, name);
      return -1;
    }
  }
  return 0;
}

/* DOC as one canonical text: whitespace between elements dropped (the
 * rewrite keeps the input's layout, libvirt writes its own), the rest as
 * libxml2 writes it.
 */
static char *
canonical (xmlDocPtr doc)
{
  xmlChar *text = NULL, *out = NULL;
  CLEANUP_XMLDOC xmlDocPtr re = NULL;
  char *r;
  int len;

  xmlDocDumpMemory (doc, &text, &len);
  if (text == NULL) {
    vmferry_set_error_errno (ENOMEM, "XML");
    return NULL;
  }
  re = xmlReadMemory ((const char *) text, len, "domain.xml", NULL,
                      XML_PARSE_NONET | XML_PARSE_NOBLANKS |
                      XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  xmlFree (text);
  if (re == NULL) {
    vmferry_set_error ("the definition does not parse again");
    return NULL;
  }
  xmlDocDumpMemory (re, &out, &len);
  if (out == NULL) {
    vmferry_set_error_errno (ENOMEM, "XML");
    return NULL;
  }
  r = strdup ((const char *) out);
  xmlFree (out);
  if (r == NULL)
    vmferry_set_error_errno (ENOMEM, "XML");
  return r;
}

int
vmferry_sync_define_prepare (virConnectPtr conn, virDomainPtr dom,
                             const char *src_xml, const char *rules,
                             char **xml_rtn)
{
  /* Both as libvirt writes them for a migration: the source's is so
   * (the sender reads it that way), and the defaults a define adds are
   * left out of both.
   */
  CLEANUP_FREE char *cur = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE |
                                                VIR_DOMAIN_XML_SECURE |
                                                VIR_DOMAIN_XML_MIGRATABLE);
  CLEANUP_XMLDOC xmlDocPtr cdoc = NULL;
  CLEANUP_XMLDOC xmlDocPtr ndoc = NULL;
  CLEANUP_FREE char *name = NULL;
  CLEANUP_FREE char *uuid = NULL;
  CLEANUP_FREE char *a = NULL;
  CLEANUP_FREE char *b = NULL;
  CLEANUP_FREE char *stream = NULL;
  CLEANUP_FREE char *token = NULL;
  struct vmferry_rewrite *rw = NULL;
  xmlChar *text = NULL;
  int len, rs, r = -1;

  *xml_rtn = NULL;
  if (cur == NULL) {
    vmferry_virt_error ("standby: cannot read its XML");
    return -1;
  }
  if (!(cdoc = vmferry_domain_parse (cur, strlen (cur), "the standby's XML")) ||
      !(name = vmferry_domain_get_name (cdoc)) ||
      !(uuid = vmferry_domain_get_uuid (cdoc)) ||
      !(ndoc = vmferry_domain_parse (src_xml, strlen (src_xml),
                                     "the source's XML")) ||
      !(rw = rules_parse (rules, uuid)))
    return -1;
  if (!vmferry_rewrite_is_empty (rw) &&
      vmferry_rewrite_doc (rw, ndoc, conn) < 0) {
    vmferry_prefix_error ("standby %s: the recorded rewrite rules", name);
    goto out;
  }
  /* The standby keeps its identity whatever the source is called, and
   * the mark of the import that made it (stamp.h), which a re-run of
   * that copy looks for.
   */
  if (vmferry_domain_set_name (ndoc, name) < 0 ||
      vmferry_domain_set_uuid (ndoc, uuid) < 0 ||
      (rs = vmferry_stamp_get (cur, &stream, &token)) < 0 ||
      (rs == 1 && vmferry_stamp_set (ndoc, stream, token) < 0) ||
      pin_storage (ndoc, cdoc, name) < 0 ||
      !(a = canonical (ndoc)) || !(b = canonical (cdoc)))
    goto out;
  if (strcmp (a, b) == 0) {
    r = 0;
    goto out;
  }
  {
    size_t k = 0;
    while (a[k] && a[k] == b[k])
      k++;
    k = k > 40 ? k - 40 : 0;
    vmferry_debug ("standby %s: its definition differs from the source's "
                   "from \"%.120s\" (the standby has \"%.120s\")", name,
                   a + k, b + k);
  }
  xmlDocDumpMemory (ndoc, &text, &len);
  if (text == NULL || !(*xml_rtn = strdup ((const char *) text))) {
    vmferry_set_error_errno (ENOMEM, "XML");
    goto out;
  }
  r = 1;
 out:
  xmlFree (text);
  vmferry_rewrite_free (rw);
  return r;
}

int
vmferry_sync_define (virConnectPtr conn, const char *name, const char *xml)
{
  virDomainPtr d = virDomainDefineXML (conn, xml);

  if (d == NULL) {
    vmferry_virt_error ("standby %s: cannot define it again", name);
    return -1;
  }
  virDomainFree (d);
  return 0;
}
