/* Unit tests for lib/backup.c's pure parts: the backup job's XML, the
 * socket read back from a job's XML, and which sockets are ours.  The
 * job itself is tested on the test bed (integration/export-running).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "backup.h"
#include "error.h"
#include "unit.h"

static xmlDocPtr
parse (const char *xml)
{
  xmlDocPtr doc = xmlReadMemory (xml, (int) strlen (xml), NULL, NULL,
                                 XML_PARSE_NONET);
  ck_assert_msg (doc != NULL, "not XML: %s", xml);
  return doc;
}

/* The only element child of N named NAME, checking there is one. */
static xmlNodePtr
only_child (xmlNodePtr n, const char *name)
{
  xmlNodePtr found = NULL;

  for (xmlNodePtr c = n->children; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE &&
        strcmp ((const char *) c->name, name) == 0) {
      ck_assert_msg (found == NULL, "two <%s> in <%s>", name, n->name);
      found = c;
    }
  return found;
}

static size_t
nr_children (xmlNodePtr n)
{
  size_t k = 0;

  for (xmlNodePtr c = n->children; c; c = c->next)
    k += c->type == XML_ELEMENT_NODE;
  return k;
}

/* Attribute NAME of N is VALUE (NULL: absent). */
static void
attr_is (xmlNodePtr n, const char *name, const char *value)
{
  xmlChar *v = xmlGetProp (n, BAD_CAST name);

  if (value == NULL)
    ck_assert_msg (v == NULL, "<%s %s='%s'>, expected none", n->name, name,
                   (char *) v);
  else {
    ck_assert_msg (v != NULL, "<%s> has no %s", n->name, name);
    ck_assert_str_eq ((char *) v, value);
  }
  xmlFree (v);
}

/* A full backup: every disk listed, those not backed up backup='no'
 * and without scratch, no <incremental>, no backupmode.
 */
START_TEST (test_full)
{
  const struct vmferry_backup_disk disks[] = {
    { "vda", "/var/tmp/vmferry-backup-abc123/scratch-0.qcow2", false },
    { "hdc", NULL, false },
    { "vdb", "/var/tmp/vmferry-backup-abc123/scratch-2.qcow2", true },
  };
  char *xml = vmferry_backup_xml ("/var/tmp/vmferry-backup-abc123/nbd.sock",
                                  NULL, disks, 3);
  xmlDocPtr doc;
  xmlNodePtr root, server, list, d;

  ck_assert_msg (xml != NULL, "%s", vmferry_get_error ());
  doc = parse (xml);
  root = xmlDocGetRootElement (doc);
  ck_assert_str_eq ((const char *) root->name, "domainbackup");
  attr_is (root, "mode", "pull");
  ck_assert_ptr_null (only_child (root, "incremental"));
  server = only_child (root, "server");
  ck_assert_ptr_nonnull (server);
  attr_is (server, "transport", "unix");
  attr_is (server, "socket", "/var/tmp/vmferry-backup-abc123/nbd.sock");
  list = only_child (root, "disks");
  ck_assert_ptr_nonnull (list);
  ck_assert_uint_eq (nr_children (list), 3);
  d = list->children;
  while (d->type != XML_ELEMENT_NODE)
    d = d->next;
  attr_is (d, "name", "vda");
  attr_is (d, "backup", "yes");
  attr_is (d, "type", "file");
  /* full matters in an incremental only. */
  attr_is (d, "backupmode", NULL);
  ck_assert_ptr_nonnull (only_child (d, "scratch"));
  attr_is (only_child (d, "scratch"), "file",
           "/var/tmp/vmferry-backup-abc123/scratch-0.qcow2");
  do d = d->next; while (d->type != XML_ELEMENT_NODE);
  attr_is (d, "name", "hdc");
  attr_is (d, "backup", "no");
  attr_is (d, "type", NULL);
  ck_assert_uint_eq (nr_children (d), 0);
  do d = d->next; while (d->type != XML_ELEMENT_NODE);
  attr_is (d, "name", "vdb");
  attr_is (d, "backupmode", NULL);
  xmlFreeDoc (doc);
  free (xml);
}
END_TEST

/* Incremental (for step 5): <incremental> names the checkpoint; a disk
 * without a bitmap (raw) is read whole.
 */
START_TEST (test_incremental)
{
  const struct vmferry_backup_disk disks[] = {
    { "vda", "/s/scratch-0.qcow2", false },
    { "vdb", "/s/scratch-1.qcow2", true },
  };
  char *xml = vmferry_backup_xml ("/s/nbd.sock", "vmferry.0a1b2c3d.7", disks,
                                  2);
  xmlDocPtr doc = parse (xml);
  xmlNodePtr root = xmlDocGetRootElement (doc), inc, list, d;
  xmlChar *text;

  inc = only_child (root, "incremental");
  ck_assert_ptr_nonnull (inc);
  text = xmlNodeGetContent (inc);
  ck_assert_str_eq ((char *) text, "vmferry.0a1b2c3d.7");
  xmlFree (text);
  list = only_child (root, "disks");
  for (d = list->children; d->type != XML_ELEMENT_NODE; d = d->next)
    ;
  attr_is (d, "backupmode", NULL);
  do d = d->next; while (d->type != XML_ELEMENT_NODE);
  attr_is (d, "name", "vdb");
  attr_is (d, "backupmode", "full");
  xmlFreeDoc (doc);
  free (xml);
}
END_TEST

/* Names are data: quotes, markup and entities stay in their values. */
START_TEST (test_escaped)
{
  const char *sock = "/tmp/a'b\"c&d<e>/nbd.sock";
  const struct vmferry_backup_disk disks[] = {
    { "vd'a\"/><x y='", "/s/<scratch/>&amp;", false },
  };
  char *xml = vmferry_backup_xml (sock, "cp</incremental><x/>", disks, 1);
  xmlDocPtr doc = parse (xml);
  xmlNodePtr root = xmlDocGetRootElement (doc), list, d;
  xmlChar *text;
  char *back;

  ck_assert_uint_eq (nr_children (root), 3);
  text = xmlNodeGetContent (only_child (root, "incremental"));
  ck_assert_str_eq ((char *) text, "cp</incremental><x/>");
  xmlFree (text);
  attr_is (only_child (root, "server"), "socket", sock);
  list = only_child (root, "disks");
  ck_assert_uint_eq (nr_children (list), 1);
  d = only_child (list, "disk");
  attr_is (d, "name", "vd'a\"/><x y='");
  attr_is (only_child (d, "scratch"), "file", "/s/<scratch/>&amp;");
  back = vmferry_backup_xml_socket (xml);
  ck_assert_ptr_nonnull (back);
  ck_assert_str_eq (back, sock);
  free (back);
  xmlFreeDoc (doc);
  free (xml);
}
END_TEST

/* The socket of a job as libvirt describes it; NULL for what is no pull
 * job on a unix socket.
 */
START_TEST (test_xml_socket)
{
  static const struct { const char *xml, *socket; } cases[] = {
    { "<domainbackup mode='pull'><server transport='unix' "
      "socket='/var/tmp/vmferry-backup-Ab12Cd/nbd.sock'/><disks/>"
      "</domainbackup>", "/var/tmp/vmferry-backup-Ab12Cd/nbd.sock" },
    { "<domainbackup mode='pull'><server transport='tcp' name='h' "
      "port='10809'/></domainbackup>", NULL },
    { "<domainbackup mode='push'><disks/></domainbackup>", NULL },
    { "<domainbackup><server transport='unix' socket='/s'/></domainbackup>",
      NULL },
    { "<domaincheckpoint><server transport='unix' socket='/s'/>"
      "</domaincheckpoint>", NULL },
    { "<domainbackup mode='pull'>", NULL },
    { "", NULL },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *s = vmferry_backup_xml_socket (cases[i].xml);
    if (cases[i].socket == NULL)
      ck_assert_msg (s == NULL, "case %zu: '%s'", i, s);
    else {
      ck_assert_msg (s != NULL, "case %zu: none", i);
      ck_assert_str_eq (s, cases[i].socket);
    }
    free (s);
  }
  ck_assert_ptr_null (vmferry_backup_xml_socket (NULL));
}
END_TEST

/* Only a job in a directory of ours is ended as a killed run's. */
START_TEST (test_socket_is_ours)
{
  static const struct { const char *socket; bool ours; } cases[] = {
    { "/var/tmp/vmferry-backup-Ab12Cd/nbd.sock", true },
    { "/vmferry-backup-000000/nbd.sock", true },
    { "/a/b/c/vmferry-backup-zzzzzz/nbd.sock", true },
    { "vmferry-backup-Ab12Cd/nbd.sock", false },           /* relative */
    { "/var/tmp/vmferry-backup-Ab12C/nbd.sock", false },   /* five */
    { "/var/tmp/vmferry-backup-Ab12Cde/nbd.sock", false }, /* seven */
    { "/var/tmp/vmferry-backup-Ab.2Cd/nbd.sock", false },
    { "/var/tmp/xvmferry-backup-Ab12Cd/nbd.sock", false },
    { "/var/tmp/vmferry-backup-Ab12Cd/other.sock", false },
    { "/var/tmp/vmferry-backup-Ab12Cd/nbd.sock/", false },
    { "/var/tmp/vmferry-backup-Ab12Cd/x/nbd.sock", false },
    { "/../vmferry-backup-Ab12Cd/nbd.sock", false },
    { "/var/tmp/backup/nbd.sock", false },
    { "/nbd.sock", false },
    { "", false },
    { NULL, false },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ck_assert_msg (vmferry_backup_socket_is_ours (cases[i].socket) ==
                   cases[i].ours, "case %zu (%s): %s", i,
                   cases[i].socket ? cases[i].socket : "NULL",
                   cases[i].ours ? "not ours" : "ours");
}
END_TEST

VMFERRY_UNIT_MAIN ("backup", test_full, test_incremental, test_escaped,
                   test_xml_socket, test_socket_is_ours)
