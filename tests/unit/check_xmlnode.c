/* Unit tests for lib/xmlnode.c: reads that hand back our own memory,
 * edits that count only real changes and keep the indentation.
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "cleanup.h"
#include "error.h"
#include "xmlnode.h"

/* libxml2's allocations still live: a string that came back from it
 * rather than from malloc shows as one more.  With xml_fail set, every
 * allocation of libxml2's fails.
 */
static long xml_live;
static bool xml_fail;

static void
count_free (void *p)
{
  if (p)
    xml_live--;
  free (p);
}

static void *
count_malloc (size_t n)
{
  void *p = xml_fail ? NULL : malloc (n);

  if (p)
    xml_live++;
  return p;
}

static void *
count_realloc (void *p, size_t n)
{
  void *r = xml_fail ? NULL : realloc (p, n);

  if (r && p == NULL)
    xml_live++;
  return r;
}

static char *
count_strdup (const char *s)
{
  char *r = xml_fail ? NULL : strdup (s);

  if (r)
    xml_live++;
  return r;
}

#define DOC                                                             \
  "<domain xmlns:q='urn:q'>\n"                                          \
  "  <name>web01</name>\n"                                              \
  "  <q:name>other</q:name>\n"                                          \
  "  <empty/>\n"                                                        \
  "  <disk type='file' q:type='ns' blank=''>\n"                         \
  "    <source file='/a&amp;b'/>\n"                                     \
  "  </disk>\n"                                                         \
  "  <mixed>a<b>b</b>c</mixed>\n"                                       \
  "</domain>"

static xmlDocPtr
parse (const char *xml)
{
  xmlDocPtr doc = xmlReadMemory (xml, strlen (xml), NULL, NULL,
                                 XML_PARSE_NONET);

  ck_assert (doc != NULL);
  return doc;
}

static xmlNodePtr
root_of (xmlDocPtr doc)
{
  return xmlDocGetRootElement (doc);
}

/* DOC's root element serialised, for comparing whole layouts. */
static char *
dump (xmlDocPtr doc)
{
  xmlBufferPtr buf = xmlBufferCreate ();
  char *r;

  ck_assert (buf != NULL);
  ck_assert_int_ge (xmlNodeDump (buf, doc, root_of (doc), 0, 0), 0);
  r = strdup ((const char *) xmlBufferContent (buf));
  xmlBufferFree (buf);
  ck_assert (r != NULL);
  return r;
}

/* libvirtd's answers: parsed, but an entity never pulls a file in. */
START_TEST (test_parse_libvirt)
{
  char path[] = "/tmp/check_xmlnode-XXXXXX";
  int fd = mkstemp (path);
  CLEANUP_FREE char *xml = NULL;
  CLEANUP_FREE char *text = NULL;
  xmlDocPtr doc;

  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (write (fd, "SECRET", 6), 6);
  close (fd);
  ck_assert_int_gt (asprintf (&xml, "<!DOCTYPE d [<!ENTITY e SYSTEM "
                              "'file://%s'>]><d>a&e;b</d>", path), 0);
  doc = vmferry_xml_parse_libvirt (xml);
  unlink (path);
  ck_assert (doc != NULL);
  text = vmferry_xml_text (root_of (doc));
  ck_assert_msg (strstr (text, "SECRET") == NULL, "%s", text);
  xmlFreeDoc (doc);

  ck_assert (vmferry_xml_parse_libvirt ("<d>") == NULL);
  ck_assert (vmferry_xml_parse_libvirt ("") == NULL);
}
END_TEST

START_TEST (test_elements)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse (DOC);
  xmlNodePtr root = root_of (doc);
  xmlNodePtr name = vmferry_xml_child (root, "name");

  ck_assert (name != NULL);
  ck_assert (vmferry_xml_is_elem (name, "name"));
  ck_assert (!vmferry_xml_is_elem (name, "nam"));
  /* The namespaced <q:name> is never the one found. */
  ck_assert (!vmferry_xml_is_elem (name->next->next, "name"));
  ck_assert (!vmferry_xml_is_elem (name->children, "name"));
  ck_assert (!vmferry_xml_is_elem (NULL, "name"));
  ck_assert (vmferry_xml_child (root, "nothing") == NULL);
  ck_assert (vmferry_xml_child (NULL, "name") == NULL);
}
END_TEST

START_TEST (test_attr)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse (DOC);
  xmlNodePtr disk = vmferry_xml_child (root_of (doc), "disk");
  xmlNodePtr src = vmferry_xml_child (disk, "source");
  char *v = (char *) "unset";

  ck_assert_int_eq (vmferry_xml_get_attr (disk, "type", &v), 0);
  ck_assert_str_eq (v, "file");       /* not q:type's "ns" */
  free (v);
  ck_assert_int_eq (vmferry_xml_get_attr (disk, "blank", &v), 0);
  ck_assert_str_eq (v, "");
  free (v);
  ck_assert_int_eq (vmferry_xml_get_attr (disk, "device", &v), 0);
  ck_assert (v == NULL);
  v = (char *) "unset";
  ck_assert_int_eq (vmferry_xml_get_attr (NULL, "type", &v), 0);
  ck_assert (v == NULL);

  {
    CLEANUP_FREE char *file = vmferry_xml_attr (src, "file");
    ck_assert_str_eq (file, "/a&b");
  }
  ck_assert (vmferry_xml_attr (src, "dev") == NULL);
  ck_assert (vmferry_xml_attr (NULL, "dev") == NULL);

  ck_assert (vmferry_xml_attr_eq (disk, "type", "file"));
  ck_assert (!vmferry_xml_attr_eq (disk, "type", "ns"));
  ck_assert (!vmferry_xml_attr_eq (disk, "device", ""));
  ck_assert (vmferry_xml_attr_eq (disk, "blank", ""));
  ck_assert (!vmferry_xml_attr_eq (NULL, "type", "file"));

  /* Any attribute node's value, the namespaced one too. */
  for (xmlAttrPtr a = disk->properties; a; a = a->next)
    if (a->ns) {
      CLEANUP_FREE char *ns = vmferry_xml_attr_value (a);
      ck_assert_str_eq (ns, "ns");
    }
}
END_TEST

START_TEST (test_text)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse (DOC);
  xmlNodePtr root = root_of (doc);
  CLEANUP_FREE char *name = vmferry_xml_text (vmferry_xml_child (root, "name"));
  CLEANUP_FREE char *empty =
    vmferry_xml_text (vmferry_xml_child (root, "empty"));
  CLEANUP_FREE char *mixed =
    vmferry_xml_text (vmferry_xml_child (root, "mixed"));

  ck_assert_str_eq (name, "web01");
  ck_assert_str_eq (empty, "");
  ck_assert_str_eq (mixed, "abc");
  ck_assert (vmferry_xml_text (NULL) == NULL);
}
END_TEST

/* The ownership rule: what comes back is ours, not libxml2's.  Counted
 * through libxml2's allocator hooks, so a reader that returned
 * xmlGetProp's string (to be freed with xmlFree) leaves one more live.
 */
START_TEST (test_ownership)
{
  xmlDocPtr doc;
  xmlNodePtr disk;
  long before;
  char *v;

  ck_assert_int_eq (xmlMemSetup (count_free, count_malloc, count_realloc,
                                 count_strdup), 0);
  doc = parse (DOC);
  disk = vmferry_xml_child (root_of (doc), "disk");

  before = xml_live;
  v = vmferry_xml_attr (disk, "type");
  ck_assert_int_eq (xml_live, before);
  free (v);
  ck_assert_int_eq (vmferry_xml_get_attr (disk, "blank", &v), 0);
  ck_assert_int_eq (xml_live, before);
  free (v);
  v = vmferry_xml_attr_value (disk->properties);
  ck_assert_int_eq (xml_live, before);
  free (v);
  v = vmferry_xml_text (root_of (doc));
  ck_assert_int_eq (xml_live, before);
  free (v);
  (void) vmferry_xml_attr_eq (disk, "type", "file");
  ck_assert_int_eq (xml_live, before);

  xmlFreeDoc (doc);
}
END_TEST

/* libxml2 reports its own failures too; not on the test's output. */
static void
quiet (void *ctx __attribute__ ((unused)),
       const char *fs __attribute__ ((unused)), ...)
{
}

/* Out of memory is an error, never an attribute that looks absent. */
START_TEST (test_nomem)
{
  xmlDocPtr doc;
  xmlNodePtr disk;
  char *v = (char *) "unset";

  ck_assert_int_eq (xmlMemSetup (count_free, count_malloc, count_realloc,
                                 count_strdup), 0);
  doc = parse (DOC);
  disk = vmferry_xml_child (root_of (doc), "disk");
  xmlSetGenericErrorFunc (NULL, quiet);
  xml_fail = true;

  vmferry_clear_error ();
  ck_assert_int_eq (vmferry_xml_get_attr (disk, "type", &v), -1);
  ck_assert (v == NULL);
  ck_assert_int_eq (vmferry_get_errno (), ENOMEM);
  vmferry_clear_error ();
  ck_assert (vmferry_xml_attr (disk, "blank") == NULL);
  ck_assert_int_eq (vmferry_get_errno (), ENOMEM);
  vmferry_clear_error ();
  ck_assert (vmferry_xml_text (disk) == NULL);
  ck_assert_int_eq (vmferry_get_errno (), ENOMEM);
  /* Absent is still absent. */
  ck_assert_int_eq (vmferry_xml_get_attr (disk, "device", &v), 0);
  ck_assert (v == NULL);

  xml_fail = false;
  xmlFreeDoc (doc);
}
END_TEST

START_TEST (test_set_attr)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse (DOC);
  xmlNodePtr disk = vmferry_xml_child (root_of (doc), "disk");
  xmlNodePtr src = vmferry_xml_child (disk, "source");
  CLEANUP_FREE char *out = NULL;
  int changes = 0;

  ck_assert_int_eq (vmferry_xml_set_attr (disk, "type", "file", &changes), 0);
  ck_assert_int_eq (changes, 0);
  ck_assert_int_eq (vmferry_xml_set_attr (disk, "type", "block", &changes),
                    0);
  ck_assert_int_eq (changes, 1);
  ck_assert (vmferry_xml_attr_eq (disk, "type", "block"));
  /* The namespaced attribute of the same name is left alone. */
  ck_assert_int_eq (vmferry_xml_set_attr (src, "file", "/x&y", &changes), 0);
  ck_assert_int_eq (changes, 2);
  ck_assert (vmferry_xml_attr_eq (src, "file", "/x&y"));
  ck_assert_int_eq (vmferry_xml_set_attr (src, "dev", "/dev/sda", NULL), 0);

  vmferry_xml_unset_attr (src, "nothing", &changes);
  ck_assert_int_eq (changes, 2);
  vmferry_xml_unset_attr (src, "dev", &changes);
  ck_assert_int_eq (changes, 3);
  vmferry_xml_unset_attr (disk, "type", NULL);
  ck_assert (vmferry_xml_attr (disk, "type") == NULL);

  out = dump (doc);
  ck_assert_msg (strstr (out, "<disk q:type=\"ns\" blank=\"\">") != NULL,
                 "%s", out);
  ck_assert_msg (strstr (out, "<source file=\"/x&amp;y\"/>") != NULL,
                 "%s", out);
}
END_TEST

START_TEST (test_set_text)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse (DOC);
  xmlNodePtr root = root_of (doc);
  xmlNodePtr name = vmferry_xml_child (root, "name");
  xmlNodePtr mixed = vmferry_xml_child (root, "mixed");
  CLEANUP_FREE char *out = NULL;
  int changes = 0;

  ck_assert_int_eq (vmferry_xml_set_text (name, "web01", &changes), 0);
  ck_assert_int_eq (changes, 0);
  ck_assert_int_eq (vmferry_xml_set_text (name, "a&b<c", &changes), 0);
  ck_assert_int_eq (changes, 1);
  /* Same text, but not only text: the element child goes. */
  ck_assert_int_eq (vmferry_xml_set_text (mixed, "abc", &changes), 0);
  ck_assert_int_eq (changes, 2);
  ck_assert (vmferry_xml_child (mixed, "b") == NULL);
  ck_assert_int_eq (vmferry_xml_set_text (vmferry_xml_child (root, "empty"),
                                          "x", NULL), 0);

  out = dump (doc);
  ck_assert_msg (strstr (out, "<name>a&amp;b&lt;c</name>") != NULL,
                 "%s", out);
  ck_assert_msg (strstr (out, "<mixed>abc</mixed>") != NULL, "%s", out);
  ck_assert_msg (strstr (out, "<empty>x</empty>") != NULL, "%s", out);
}
END_TEST

#define LAYOUT                                  \
  "<domain>\n"                                  \
  "  <name>a</name>\n"                          \
  "  <memory>1</memory>\n"                      \
  "  <devices>\n"                               \
  "    <disk/>\n"                               \
  "  </devices>\n"                              \
  "</domain>"

static xmlNodePtr
new_node (xmlDocPtr doc, const char *name)
{
  xmlNodePtr n = xmlNewDocNode (doc, NULL, BAD_CAST name, NULL);

  ck_assert (n != NULL);
  return n;
}

START_TEST (test_layout)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse (LAYOUT);
  xmlNodePtr root = root_of (doc);
  xmlNodePtr name = vmferry_xml_child (root, "name");
  xmlNodePtr devs = vmferry_xml_child (root, "devices");
  CLEANUP_FREE char *out = NULL;

  ck_assert (vmferry_xml_is_blank (name->prev));
  ck_assert (!vmferry_xml_is_blank (name));
  ck_assert (!vmferry_xml_is_blank (name->children));
  ck_assert (!vmferry_xml_is_blank (NULL));

  ck_assert_int_eq (vmferry_xml_insert_after (name, new_node (doc, "uuid")),
                    0);
  ck_assert_int_eq (vmferry_xml_append_child (devs, new_node (doc, "tpm")),
                    0);
  ck_assert_int_eq (vmferry_xml_prepend_child (devs,
                                               new_node (doc, "emulator")),
                    0);
  ck_assert_int_eq (vmferry_xml_append_child (root, new_node (doc, "cpu")),
                    0);
  vmferry_xml_remove (vmferry_xml_child (root, "memory"));

  out = dump (doc);
  ck_assert_str_eq (out,
                    "<domain>\n"
                    "  <name>a</name>\n"
                    "  <uuid/>\n"
                    "  <devices>\n"
                    "    <emulator/>\n"
                    "    <disk/>\n"
                    "    <tpm/>\n"
                    "  </devices>\n"
                    "  <cpu/>\n"
                    "</domain>");
}
END_TEST

/* Children with no indentation get none. */
START_TEST (test_layout_flat)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse ("<d><a/><b/></d>");
  xmlNodePtr root = root_of (doc);
  CLEANUP_FREE char *out = NULL;

  ck_assert_int_eq (vmferry_xml_append_child (root, new_node (doc, "z")), 0);
  ck_assert_int_eq (vmferry_xml_prepend_child (root, new_node (doc, "y")), 0);
  ck_assert_int_eq (vmferry_xml_insert_after (vmferry_xml_child (root, "a"),
                                              new_node (doc, "x")), 0);
  vmferry_xml_remove (vmferry_xml_child (root, "b"));
  ck_assert_int_eq (vmferry_xml_prepend_child (vmferry_xml_child (root, "a"),
                                               new_node (doc, "w")), 0);
  out = dump (doc);
  ck_assert_str_eq (out, "<d><y/><a><w/></a><x/><z/></d>");
}
END_TEST

VMFERRY_UNIT_MAIN ("xmlnode", test_parse_libvirt, test_elements, test_attr,
                   test_text, test_ownership, test_nomem, test_set_attr,
                   test_set_text, test_layout, test_layout_flat)
