/* Unit tests for lib/xmlsource.c: a changed document written as its
 * source text, the source's bytes kept wherever nothing changed.
 */
#include "config.h"

#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "xmlsource.h"

/* Written in every way XML allows and libvirt's parser reads. */
static const char *const keep[] = {
  "<domain type='kvm'>\n  <name>a</name>\n</domain>\n",
  "<domain type=\"kvm\">\n  <name>a</name>\n</domain>",
  "<?xml version='1.0' encoding='UTF-8'?>\n<!-- made by hand -->\n"
  "<domain type='kvm' id=\"3\"><name>a</name></domain>\n<!-- end -->\n\n",
  "\xef\xbb\xbf<domain>\r\n  <name>a\r\nb</name>\r\n</domain>\r\n",
  "<domain><name>a&amp;b&#x41;&#66;&lt;&gt;</name>"
  "<x v=\"it&apos;s &quot;q&quot; &lt; &#10;\" w='a\tb\nc'/></domain>",
  "<domain\n    type = 'kvm'\n  ><devices\t><disk type='file' ></disk >"
  "<e/><f /></devices ></domain>",
  "<domain><![CDATA[<not & markup>]]><!-- c --><?pi some data?>"
  "<name>x</name>  </domain>",
  "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
  "<metadata><app:x xmlns:app='urn:x' app:path='/a' path=\"/b\"/></metadata>"
  "<qemu:commandline><qemu:arg value='-x'/></qemu:commandline></domain>",
  "<domain/>",
  "<domain><name>\xc3\xa9t\xc3\xa9 \xe2\x82\xac</name></domain>",
};

static xmlDocPtr
parse (const char *xml)
{
  xmlDocPtr doc = vmferry_domain_parse (xml, strlen (xml), "t");

  ck_assert_msg (doc != NULL, "parse: %s", vmferry_get_error ());
  return doc;
}

/* libxml2's view of a text: equal for two texts that say the same. */
static char *
canonical (const char *xml)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse (xml);
  char *s = vmferry_domain_to_string (doc);

  ck_assert_ptr_nonnull (s);
  return s;
}

START_TEST (test_keep)
{
  for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
    CLEANUP_XMLDOC xmlDocPtr doc = parse (keep[i]);
    struct vmferry_xml_source *src;
    CLEANUP_FREE char *out = NULL;
    size_t len = 0;

    src = vmferry_xml_source_new (doc, keep[i], strlen (keep[i]));
    ck_assert_msg (src != NULL, "%zu: %s", i, vmferry_get_error ());
    out = vmferry_xml_source_splice (src, doc, &len);
    ck_assert_ptr_nonnull (out);
    ck_assert_uint_eq (len, strlen (keep[i]));
    ck_assert_str_eq (out, keep[i]);
    vmferry_xml_source_free (src);
  }
}
END_TEST

enum edit {
  SET_FILE, SET_QUOTE, DROP_MIDDLE, ADD_ATTR, ADD_CHILD, DROP_ELEM,
  SET_TEXT, NEW_ELEM, MERGE_TEXT, NS_ATTR, READD,
};

static xmlNodePtr
find (xmlNodePtr n, const char *name)
{
  for (; n; n = n->next) {
    xmlNodePtr c;
    if (n->type == XML_ELEMENT_NODE && strcmp ((const char *) n->name, name) == 0)
      return n;
    if ((c = find (n->children, name)) != NULL)
      return c;
  }
  return NULL;
}

static void
apply (xmlDocPtr doc, enum edit e)
{
  xmlNodePtr root = xmlDocGetRootElement (doc), n, c;

  switch (e) {
  case SET_FILE:
    ck_assert_ptr_nonnull (xmlSetProp (find (root, "source"), BAD_CAST "file",
                                       BAD_CAST "/srv/it's&<x>"));
    break;
  case SET_QUOTE:
    ck_assert_ptr_nonnull (xmlSetProp (find (root, "source"), BAD_CAST "file",
                                       BAD_CAST "/a\"b'c"));
    break;
  case DROP_MIDDLE:
    xmlRemoveProp (xmlHasProp (find (root, "target"), BAD_CAST "dev"));
    break;
  case ADD_ATTR:
    ck_assert_ptr_nonnull (xmlSetProp (find (root, "target"), BAD_CAST "x",
                                       BAD_CAST "1\n2"));
    break;
  case ADD_CHILD:
    n = find (root, "cpu");
    c = xmlNewDocNode (doc, NULL, BAD_CAST "model", BAD_CAST "Skylake");
    ck_assert_ptr_nonnull (xmlAddChild (n, c));
    break;
  case DROP_ELEM:
    n = find (root, "target");
    xmlUnlinkNode (n);
    xmlFreeNode (n);
    break;
  case SET_TEXT:
    n = find (root, "name");
    xmlNodeSetContent (n, NULL);
    ck_assert_ptr_nonnull (xmlAddChild (n, xmlNewDocText (doc, BAD_CAST "b&c<d>")));
    break;
  case NEW_ELEM:
    n = xmlNewDocNode (doc, NULL, BAD_CAST "controller", NULL);
    ck_assert_ptr_nonnull (xmlSetProp (n, BAD_CAST "type", BAD_CAST "scsi"));
    ck_assert_ptr_nonnull (xmlAddChild (find (root, "devices"), n));
    break;
  case MERGE_TEXT:
    /* libxml2 merges a text node added before a text node into it. */
    n = find (root, "devices")->last;
    ck_assert_int_eq (n->type, XML_TEXT_NODE);
    ck_assert_ptr_nonnull (xmlAddPrevSibling (n, xmlNewDocText (doc, BAD_CAST "\n    ")));
    break;
  case READD:
    n = find (root, "target");
    xmlRemoveProp (xmlHasProp (n, BAD_CAST "dev"));
    ck_assert_ptr_nonnull (xmlSetProp (n, BAD_CAST "dev", BAD_CAST "vda"));
    break;
  case NS_ATTR:
    n = find (root, "x");
    ck_assert_ptr_nonnull (xmlSetNsProp (n, n->nsDef, BAD_CAST "path", BAD_CAST "/c"));
    break;
  }
}

static const struct {
  enum edit edit;
  const char *in, *out;
} edits[] = {
  { SET_FILE,
    "<domain>\n  <source file='/a' index=\"1\"/>\n</domain>\n",
    "<domain>\n  <source file='/srv/it&apos;s&amp;&lt;x&gt;' index=\"1\"/>\n</domain>\n" },
  { SET_FILE,
    "<domain><source  file = \"/a\"\n   /></domain>",
    "<domain><source  file = \"/srv/it's&amp;&lt;x&gt;\"\n   /></domain>" },
  { SET_QUOTE,
    "<domain><source file=\"/a\"/></domain>",
    "<domain><source file=\"/a&quot;b'c\"/></domain>" },
  { DROP_MIDDLE,
    "<domain><target bus='virtio' dev='vda'  x=\"y\"/></domain>",
    "<domain><target bus='virtio'  x=\"y\"/></domain>" },
  { ADD_ATTR,
    "<domain><target bus=\"virtio\" dev='vda'/></domain>",
    "<domain><target bus=\"virtio\" dev='vda' x=\"1&#10;2\"/></domain>" },
  { ADD_CHILD,
    "<domain>\n  <cpu mode='custom' />\n</domain>",
    "<domain>\n  <cpu mode='custom' ><model>Skylake</model></cpu>\n</domain>" },
  { ADD_CHILD,
    "<domain><cpu mode='custom'></cpu></domain>",
    "<domain><cpu mode='custom'><model>Skylake</model></cpu></domain>" },
  { DROP_ELEM,
    "<domain>\n  <disk>\n    <target dev='a'/>\n  </disk>\n</domain>\n",
    "<domain>\n  <disk>\n    \n  </disk>\n</domain>\n" },
  { SET_TEXT,
    "<?xml version='1.0'?>\n<domain>\n  <name >a&amp;</name >\n</domain>",
    "<?xml version='1.0'?>\n<domain>\n  <name >b&amp;c&lt;d&gt;</name >\n</domain>" },
  { NEW_ELEM,
    "<domain type='kvm'>\n  <devices>\n  </devices>\n</domain>",
    "<domain type='kvm'>\n  <devices>\n  <controller type='scsi'/></devices>\n</domain>" },
  { NEW_ELEM,
    "<domain type=\"kvm\"><devices/></domain>",
    "<domain type=\"kvm\"><devices><controller type=\"scsi\"/></devices></domain>" },
  { NEW_ELEM,
    "<domain><devices/></domain>",
    "<domain><devices><controller type='scsi'/></devices></domain>" },
  { MERGE_TEXT,
    "<domain>\n  <devices>\n    <disk/>\n  </devices>\n</domain>",
    "<domain>\n  <devices>\n    <disk/>\n    \n  </devices>\n</domain>" },
  /* Removed and set again: at the end, as libxml2 has it now. */
  { READD,
    "<domain><target dev='vda' bus=\"virtio\"/></domain>",
    "<domain><target bus=\"virtio\" dev='vda'/></domain>" },
  { NS_ATTR,
    "<domain><metadata><app:x xmlns:app='urn:x' app:path='/a' path=\"/b\"/>"
    "</metadata></domain>",
    "<domain><metadata><app:x xmlns:app='urn:x' app:path='/c' path=\"/b\"/>"
    "</metadata></domain>" },
};

START_TEST (test_edits)
{
  for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
    CLEANUP_XMLDOC xmlDocPtr doc = parse (edits[i].in);
    struct vmferry_xml_source *src;
    CLEANUP_FREE char *out = NULL;
    CLEANUP_FREE char *want = NULL;
    CLEANUP_FREE char *got = NULL;

    src = vmferry_xml_source_new (doc, edits[i].in, strlen (edits[i].in));
    ck_assert_msg (src != NULL, "%zu: %s", i, vmferry_get_error ());
    apply (doc, edits[i].edit);
    out = vmferry_xml_source_splice (src, doc, NULL);
    ck_assert_ptr_nonnull (out);
    ck_assert_msg (strcmp (out, edits[i].out) == 0, "%zu: got\n%s\nwant\n%s",
                   i, out, edits[i].out);
    /* What it says is what the changed tree says. */
    want = vmferry_domain_to_string (doc);
    got = canonical (out);
    ck_assert_str_eq (got, want);
    vmferry_xml_source_free (src);
  }
}
END_TEST

/* Text that cannot be tied to its tree gives no source (the caller
 * serialises with libxml2), never a wrong one.
 */
START_TEST (test_no_source)
{
  const char *latin1 = "<?xml version='1.0' encoding='ISO-8859-1'?>"
    "<domain><name>caf\xe9</name></domain>";
  const char *ok = "<domain><name>a</name></domain>";
  CLEANUP_XMLDOC xmlDocPtr doc = parse (latin1);
  CLEANUP_XMLDOC xmlDocPtr doc2 = parse (ok);

  ck_assert_ptr_null (vmferry_xml_source_new (doc, latin1, strlen (latin1)));
  ck_assert_str_eq (vmferry_get_error (), "XML source: encoded as ISO-8859-1, not UTF-8");
  /* Another text than the one parsed. */
  ck_assert_ptr_null (vmferry_xml_source_new (doc2, "<domain><name>b</name></domain>", 31));
  ck_assert_ptr_null (vmferry_xml_source_new (doc2, "<domain><nam>a</nam></domain>", 29));
  ck_assert_ptr_null (vmferry_xml_source_new (doc2, "<domain><name>a</name>", 22));
  /* And the tree is left unmarked: a later source ties it again. */
  {
    struct vmferry_xml_source *src = vmferry_xml_source_new (doc2, ok, strlen (ok));
    CLEANUP_FREE char *out = NULL;
    ck_assert_ptr_nonnull (src);
    out = vmferry_xml_source_splice (src, doc2, NULL);
    ck_assert_str_eq (out, ok);
    vmferry_xml_source_free (src);
  }
}
END_TEST

/* An element with as many attributes as the parse lets through, one of
 * them changed: written in one pass, not one search per attribute.  (The
 * parse refuses more: libxml2 itself takes time quadratic in the number
 * of an element's attributes, 40 s for 50000.)
 */
START_TEST (test_many_attributes)
{
  const size_t n = VMFERRY_DOMAIN_MAX_ATTRS;
  size_t len = 0;
  CLEANUP_FREE char *xml = malloc (n * 16 + 64);
  CLEANUP_FREE char *out = NULL;
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  struct vmferry_xml_source *src;
  xmlNodePtr el;

  ck_assert_ptr_nonnull (xml);
  len += sprintf (xml, "<domain><source");
  for (size_t i = 0; i < n; i++)
    len += sprintf (xml + len, " a%zu='%zu'", i, i);
  len += sprintf (xml + len, "/></domain>");
  doc = parse (xml);
  src = vmferry_xml_source_new (doc, xml, len);
  ck_assert_ptr_nonnull (src);
  el = xmlDocGetRootElement (doc)->children;
  ck_assert_ptr_nonnull (xmlSetProp (el, BAD_CAST "a1", BAD_CAST "x"));
  out = vmferry_xml_source_splice (src, doc, NULL);
  ck_assert_ptr_nonnull (out);
  ck_assert (strncmp (out, "<domain><source a0='0' a1='x' a2='2'", 36) == 0);
  ck_assert_uint_eq (strlen (out), len);
  vmferry_xml_source_free (src);
}
END_TEST

/* Mutated documents (a fixed seed, so a failure repeats): whenever
 * libxml2 accepts one and a source is made, the splice of the unchanged
 * tree is the text, and after an edit the splice says what the tree says.
 */
START_TEST (test_mutations)
{
  static const char base[] =
    "<?xml version='1.0'?>\n<!-- c -->\n"
    "<domain type='kvm' xmlns:q=\"urn:q\">\r\n"
    "  <name>a&amp;b&#65;</name>\n"
    "  <devices><disk type=\"file\" device='disk'>\n"
    "    <source file='/x&apos;y' q:z='1'/><![CDATA[<&>]]>\n"
    "  </disk><?pi x?><e\n  a = 'b' /></devices>\n"
    "</domain>\n";
  static const char pick[] = "<>'\"&;#x\r\n\t =/!?-[]ae:1";
  size_t len = strlen (base), made = 0, parsed = 0;
  char buf[sizeof base];

  srand (1);
  for (int round = 0; round < 20000; round++) {
    xmlDocPtr doc;
    struct vmferry_xml_source *src;
    char *out;

    memcpy (buf, base, sizeof base);
    for (int k = 0, n = 1 + rand () % 3; k < n; k++)
      buf[rand () % len] = pick[rand () % (sizeof pick - 1)];
    vmferry_clear_error ();
    doc = vmferry_domain_parse (buf, len, "m");
    if (doc == NULL)
      continue;
    parsed++;
    src = vmferry_xml_source_new (doc, buf, len);
    if (src) {
      xmlNodePtr root = xmlDocGetRootElement (doc), el;
      made++;
      out = vmferry_xml_source_splice (src, doc, NULL);
      ck_assert_msg (out && strcmp (out, buf) == 0, "round %d: splice "
                     "differs from\n%s", round, buf);
      free (out);
      for (el = root->children; el && el->type != XML_ELEMENT_NODE; el = el->next)
        ;
      if (el) {
        CLEANUP_FREE char *want = NULL;
        CLEANUP_FREE char *got = NULL;
        ck_assert_ptr_nonnull (xmlSetProp (el, BAD_CAST "v", BAD_CAST "'\"&<\n"));
        out = vmferry_xml_source_splice (src, doc, NULL);
        ck_assert_ptr_nonnull (out);
        want = vmferry_domain_to_string (doc);
        got = canonical (out);
        ck_assert_msg (strcmp (got, want) == 0, "round %d: after an edit\n%s",
                       round, out);
        free (out);
      }
      vmferry_xml_source_free (src);
    }
    xmlFreeDoc (doc);
  }
  printf ("mutations: %zu parsed, %zu tied to their text\n", parsed, made);
  ck_assert_uint_gt (made, 100);
}
END_TEST

VMFERRY_UNIT_MAIN ("xmlsource", test_keep, test_edits, test_no_source,
                   test_many_attributes, test_mutations)
