/* Unit tests for lib/domain.c: safe parsing, the file list, rewrites. */
#include "config.h"

#include "unit.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"

#define UUID "c7a5fdbd-edaf-9455-926a-d65c16db1809"

/* A domain as `virsh dumpxml --inactive --security-info --migratable`
 * prints it, cut to what matters here.  DEVICES goes inside <devices>.
 */
#define DOMAIN(devices) DOMAIN_OS ("", devices)
#define DOMAIN_OS(os, devices)                                          \
  "<domain type='kvm'>\n"                                               \
  "  <name>web01</name>\n"                                              \
  "  <uuid>" UUID "</uuid>\n"                                           \
  "  <memory unit='KiB'>1048576</memory>\n"                             \
  "  <os>\n"                                                            \
  "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n"           \
  os                                                                    \
  "  </os>\n"                                                           \
  "  <devices>\n"                                                       \
  devices                                                               \
  "  </devices>\n"                                                      \
  "</domain>\n"

#define FILE_DISK(path, dev)                                            \
  "    <disk type='file' device='disk'>\n"                              \
  "      <driver name='qemu' type='qcow2'/>\n"                          \
  "      <source file='" path "'/>\n"                                   \
  "      <target dev='" dev "' bus='virtio'/>\n"                        \
  "    </disk>\n"

static xmlDocPtr
parse (const char *xml)
{
  xmlDocPtr doc = vmferry_domain_parse (xml, strlen (xml), "test.xml");

  ck_assert_msg (doc != NULL, "parse failed: %s", vmferry_get_error ());
  return doc;
}

/* Parse XML expecting a refusal whose message contains WANT. */
static void
refuse (const char *xml, size_t len, const char *want)
{
  xmlDocPtr doc;

  vmferry_clear_error ();
  doc = vmferry_domain_parse (xml, len, "evil.xml");
  ck_assert_msg (doc == NULL, "accepted, expected: %s", want);
  ck_assert_msg (strstr (vmferry_get_error (), want) != NULL,
                 "error '%s' does not contain '%s'", vmferry_get_error (), want);
  ck_assert_msg (strncmp (vmferry_get_error (), "evil.xml: ", 10) == 0,
                 "error '%s' does not name the input", vmferry_get_error ());
}

static size_t
list (xmlDocPtr doc, bool include_readonly, struct vmferry_domain_file **files)
{
  size_t n = 0;

  ck_assert_msg (vmferry_domain_files (doc, include_readonly, files, &n) == 0,
                 "files: %s", vmferry_get_error ());
  return n;
}

START_TEST (test_parse_basic)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse (DOMAIN (FILE_DISK ("/a.qcow2", "vda")));
  CLEANUP_FREE char *name = vmferry_domain_get_name (doc);
  CLEANUP_FREE char *uuid = vmferry_domain_get_uuid (doc);

  ck_assert_str_eq (name, "web01");
  ck_assert_str_eq (uuid, UUID);
}
END_TEST

START_TEST (test_files_kinds)
{
  static const char xml[] = DOMAIN (
    FILE_DISK ("/var/lib/libvirt/images/root.qcow2", "vda")
    "    <disk type='block' device='disk'>\n"
    "      <driver name='qemu' type='raw' cache='none'/>\n"
    "      <source dev='/dev/vg0/data'/>\n"
    "      <target dev='vdb' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='cdrom'>\n"
    "      <driver name='qemu' type='raw'/>\n"
    "      <source file='/iso/debian.iso'/>\n"
    "      <target dev='sda' bus='sata'/>\n"
    "      <readonly/>\n"
    "    </disk>\n"
    "    <disk type='file' device='cdrom'>\n"
    "      <target dev='sdb' bus='sata'/>\n"
    "      <readonly/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <source file='/srv/ro.img'/>\n"
    "      <target dev='vdc' bus='virtio'/>\n"
    "      <readonly/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='raw'/>\n"
    "      <source file='/srv/shared.img'/>\n"
    "      <target dev='vdd' bus='virtio'/>\n"
    "      <shareable/>\n"
    "    </disk>\n"
    "    <disk device='floppy'>\n"
    "      <source file='/srv/fd.img'/>\n"
    "      <target dev='fda' bus='fdc'/>\n"
    "    </disk>\n"
    "    <disk type='network' device='cdrom'>\n"
    "      <source protocol='https' name='/x.iso'><host name='h'/></source>\n"
    "      <target dev='sdc' bus='sata'/>\n"
    "      <readonly/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <source file=''/>\n"
    "      <target dev='vde' bus='virtio'/>\n"
    "    </disk>\n");
  CLEANUP_XMLDOC xmlDocPtr doc = parse (xml);
  struct vmferry_domain_file *f = NULL;
  size_t n = list (doc, false, &f);

  ck_assert_uint_eq (n, 2);
  ck_assert_int_eq (f[0].role, VMFERRY_ROLE_DISK);
  ck_assert_str_eq (f[0].path, "/var/lib/libvirt/images/root.qcow2");
  ck_assert_str_eq (f[0].target, "vda");
  ck_assert_str_eq (f[0].format, "qcow2");
  ck_assert (!f[0].block && !f[0].readonly && !f[0].cdrom);
  ck_assert_str_eq ((const char *) f[0].node->name, "source");
  ck_assert_str_eq (f[1].path, "/dev/vg0/data");
  ck_assert_str_eq (f[1].format, "raw");
  ck_assert (f[1].block);
  vmferry_domain_files_free (f, n);

  /* The network CD-ROM was only fine because it was left out. */
  ck_assert_int_eq (vmferry_domain_files (doc, true, &f, &n), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "disk sdc: type 'network' is not supported for offline export");
}
END_TEST

START_TEST (test_files_include_readonly)
{
  static const char xml[] = DOMAIN (
    FILE_DISK ("/a.qcow2", "vda")
    "    <disk type='file' device='cdrom'>\n"
    "      <source file='/iso/debian.iso'/>\n"
    "      <target dev='sda' bus='sata'/>\n"
    "      <readonly/>\n"
    "    </disk>\n"
    "    <disk type='file' device='cdrom'>\n"
    "      <target dev='sdb' bus='sata'/>\n"
    "      <readonly/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <source file='/srv/shared.img'/>\n"
    "      <target dev='vdd' bus='virtio'/>\n"
    "      <shareable/>\n"
    "    </disk>\n"
    "    <disk device='floppy'>\n"
    "      <source file='/srv/fd.img'/>\n"
    "      <target dev='fda' bus='fdc'/>\n"
    "    </disk>\n");
  CLEANUP_XMLDOC xmlDocPtr doc = parse (xml);
  struct vmferry_domain_file *f = NULL;
  size_t n = list (doc, true, &f);

  /* The empty CD-ROM has nothing to carry even so. */
  ck_assert_uint_eq (n, 4);
  ck_assert_str_eq (f[1].path, "/iso/debian.iso");
  ck_assert (f[1].cdrom && f[1].readonly);
  ck_assert_str_eq (f[2].path, "/srv/shared.img");
  ck_assert (f[2].shareable && !f[2].readonly);
  ck_assert_str_eq (f[3].path, "/srv/fd.img");
  ck_assert (f[3].floppy && !f[3].block);
  ck_assert_ptr_null (f[3].format);
  vmferry_domain_files_free (f, n);
}
END_TEST

START_TEST (test_files_unsupported)
{
  static const struct {
    const char *disk;
    const char *want;
  } cases[] = {
    { "<disk type='network' device='disk'>"
      "<source protocol='rbd' name='pool/img'><host name='mon'/></source>"
      "<target dev='vdb' bus='virtio'/></disk>",
      "disk vdb: type 'network' is not supported for offline export" },
    { "<disk type='dir' device='disk'><source dir='/srv/d'/>"
      "<target dev='hda' bus='ide'/></disk>",
      "disk hda: type 'dir' is not supported for offline export" },
    { "<disk type='nvme' device='disk'>"
      "<source type='pci' managed='yes' namespace='1'/></disk>",
      "disk #1: type 'nvme' is not supported for offline export" },
    { "<disk type='file' device='tape'><source file='/t'/>"
      "<target dev='vdb'/></disk>",
      "disk vdb: unknown disk device 'tape'" },
    { "<disk type='file' device='disk'><source file='/a.qcow2'>"
      "<dataStore type='file'><format type='raw'/>"
      "<source file='/a.data'/></dataStore></source>"
      "<target dev='vda'/></disk>",
      "disk vda: an external data file (<dataStore>) is not supported" },
    { "<disk type='file' device='disk'><source file='/o.qcow2'/>"
      "<backingStore type='network'><format type='raw'/>"
      "<source protocol='nbd' name='x'><host name='h'/></source>"
      "</backingStore><target dev='vda'/></disk>",
      "disk vda: backing store type 'network' is not supported for "
      "offline export" },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char xml[4096];
    CLEANUP_XMLDOC xmlDocPtr doc = NULL;
    struct vmferry_domain_file *f = NULL;
    size_t n = 99;

    snprintf (xml, sizeof xml, "<domain><name>x</name><devices>%s</devices>"
              "</domain>", cases[i].disk);
    doc = parse (xml);
    ck_assert_int_eq (vmferry_domain_files (doc, false, &f, &n), -1);
    ck_assert_str_eq (vmferry_get_error (), cases[i].want);
  }
}
END_TEST

/* A volume disk is listed by pool and volume; the path is libvirt's to
 * tell (the exporter asks it).
 */
START_TEST (test_files_volume)
{
  static const char xml[] = "<domain><name>x</name><devices>"
    "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source pool='default' volume='a.qcow2'/>"
    "<target dev='vdc' bus='virtio'/></disk></devices></domain>";
  CLEANUP_XMLDOC xmlDocPtr doc = parse (xml);
  struct vmferry_domain_file *f = NULL;
  size_t n = 0;

  ck_assert_int_eq (vmferry_domain_files (doc, false, &f, &n), 0);
  ck_assert_uint_eq (n, 1);
  ck_assert_int_eq (f[0].role, VMFERRY_ROLE_DISK);
  ck_assert_ptr_null (f[0].path);
  ck_assert_str_eq (f[0].pool, "default");
  ck_assert_str_eq (f[0].volume, "a.qcow2");
  ck_assert_str_eq (f[0].target, "vdc");
  ck_assert_str_eq (f[0].format, "qcow2");
  vmferry_domain_files_free (f, n);
}
END_TEST

START_TEST (test_files_nvram_tpm)
{
  static const char xml[] = DOMAIN_OS (
    "    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\n"
    "    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>"
    "/var/lib/libvirt/qemu/nvram/web01_VARS.fd</nvram>\n",
    FILE_DISK ("/a.qcow2", "vda")
    "    <tpm model='tpm-crb'>\n"
    "      <backend type='emulator' version='2.0'/>\n"
    "    </tpm>\n"
    "    <tpm model='tpm-tis'>\n"
    "      <backend type='passthrough'><device path='/dev/tpm0'/></backend>\n"
    "    </tpm>\n");
  CLEANUP_XMLDOC xmlDocPtr doc = parse (xml);
  struct vmferry_domain_file *f = NULL;
  size_t n = list (doc, false, &f);

  ck_assert_uint_eq (n, 3);
  ck_assert_int_eq (f[1].role, VMFERRY_ROLE_NVRAM);
  ck_assert_str_eq (f[1].path, "/var/lib/libvirt/qemu/nvram/web01_VARS.fd");
  ck_assert_str_eq (f[1].nvram_template, "/usr/share/OVMF/OVMF_VARS_4M.fd");
  ck_assert_int_eq (f[2].role, VMFERRY_ROLE_TPM);
  ck_assert_ptr_null (f[2].path);
  ck_assert_str_eq (f[2].tpm_version, "2.0");
  /* No path in the XML: nothing to set, and it says why. */
  ck_assert_int_eq (vmferry_domain_set_path (doc, &f[2], "/x", 0), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "UUID"));
  vmferry_domain_files_free (f, n);
}
END_TEST

START_TEST (test_files_nvram_forms)
{
  /* A template alone: libvirt creates the file, nothing to carry. */
  CLEANUP_XMLDOC xmlDocPtr d1 =
    parse (DOMAIN_OS ("<nvram template='/usr/share/OVMF/VARS.fd'/>", ""));
  /* The libvirt >= 8.5 source form, and a TPM with its own state dir. */
  CLEANUP_XMLDOC xmlDocPtr d2 =
    parse (DOMAIN_OS ("<nvram type='file' format='raw'>"
                      "<source file='/n/web01_VARS.fd'/></nvram>",
                      "<tpm model='tpm-crb'><backend type='emulator'>"
                      "<source type='dir' path='/srv/tpm/web01'/>"
                      "</backend></tpm>"));
  CLEANUP_XMLDOC xmlDocPtr d3 =
    parse (DOMAIN_OS ("<nvram type='network'><source protocol='iscsi' "
                      "name='x'/></nvram>", ""));
  struct vmferry_domain_file *f = NULL;
  size_t n;
  CLEANUP_FREE char *s = NULL;

  ck_assert_uint_eq (list (d1, false, &f), 0);
  vmferry_domain_files_free (f, 0);

  n = list (d2, false, &f);
  ck_assert_uint_eq (n, 2);
  ck_assert_str_eq (f[0].path, "/n/web01_VARS.fd");
  ck_assert_str_eq (f[0].format, "raw");
  ck_assert_str_eq (f[1].path, "/srv/tpm/web01");
  ck_assert (!f[1].tpm_state_file);
  ck_assert_int_eq (vmferry_domain_set_path (d2, &f[0], "/m/VARS.fd", 0), 0);
  ck_assert_int_eq (vmferry_domain_set_path (d2, &f[1], "/m/tpm", 0), 0);
  vmferry_domain_files_free (f, n);
  s = vmferry_domain_to_string (d2);
  ck_assert_ptr_nonnull (strstr (s, "<source file=\"/m/VARS.fd\"/>"));
  ck_assert_ptr_nonnull (strstr (s, "<source type=\"dir\" path=\"/m/tpm\"/>"));

  ck_assert_int_eq (vmferry_domain_files (d3, false, &f, &n), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "nvram: type 'network' is not supported for offline export");
}
END_TEST

START_TEST (test_backing_store)
{
  static const char xml[] = DOMAIN (
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='qcow2'/>\n"
    "      <source file='/img/top.qcow2'/>\n"
    "      <backingStore type='file'>\n"
    "        <format type='qcow2'/>\n"
    "        <source file='/img/mid.qcow2'/>\n"
    "        <backingStore type='block'>\n"
    "          <format type='raw'/>\n"
    "          <source dev='/dev/vg0/base'/>\n"
    "          <backingStore/>\n"
    "        </backingStore>\n"
    "      </backingStore>\n"
    "      <target dev='vda' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='qcow2'/>\n"
    "      <source file='/img/other.qcow2'/>\n"
    "      <backingStore type='file'>\n"
    "        <format type='qcow2'/>\n"
    "        <source file='/img/mid.qcow2'/>\n"
    "      </backingStore>\n"
    "      <target dev='vdb' bus='virtio'/>\n"
    "    </disk>\n");
  CLEANUP_XMLDOC xmlDocPtr doc = parse (xml);
  CLEANUP_XMLDOC xmlDocPtr doc2 = NULL;
  CLEANUP_FREE char *s = NULL;
  struct vmferry_domain_file *f = NULL;
  size_t n = list (doc, false, &f);

  ck_assert_uint_eq (n, 5);
  ck_assert_int_eq (f[0].role, VMFERRY_ROLE_DISK);
  ck_assert_int_eq (f[1].role, VMFERRY_ROLE_BACKING);
  ck_assert_str_eq (f[1].path, "/img/mid.qcow2");
  ck_assert_str_eq (f[1].format, "qcow2");
  ck_assert_str_eq (f[1].target, "vda");
  ck_assert_uint_eq (f[1].depth, 1);
  ck_assert_uint_eq (f[1].disk_index, 0);
  ck_assert_str_eq (f[2].path, "/dev/vg0/base");
  ck_assert (f[2].block && f[2].readonly);
  ck_assert_uint_eq (f[2].depth, 2);
  ck_assert_int_eq (f[4].role, VMFERRY_ROLE_BACKING);
  ck_assert_uint_eq (f[4].disk_index, 3);

  /* Both disks share the middle image: one call rewrites both. */
  ck_assert_int_eq (vmferry_domain_set_backing_path (doc, "/img/mid.qcow2",
                                                     "/new/mid.qcow2"), 2);
  ck_assert_int_eq (vmferry_domain_set_backing_path (doc, "/nope", "/x"), 0);
  /* A block backing store written out as a file. */
  ck_assert_int_eq (vmferry_domain_set_path (doc, &f[2], "/new/base.raw", 0), 0);
  vmferry_domain_files_free (f, n);

  s = vmferry_domain_to_string (doc);
  doc2 = parse (s);
  n = list (doc2, false, &f);
  ck_assert_uint_eq (n, 5);
  ck_assert_str_eq (f[1].path, "/new/mid.qcow2");
  ck_assert_str_eq (f[2].path, "/new/base.raw");
  ck_assert (!f[2].block);
  ck_assert_str_eq (f[4].path, "/new/mid.qcow2");
  ck_assert_ptr_null (strstr (s, "dev=\"/dev/vg0/base\""));
  vmferry_domain_files_free (f, n);
}
END_TEST

START_TEST (test_set_path_round_trip)
{
  static const char xml[] = DOMAIN_OS (
    "    <nvram>/var/lib/libvirt/qemu/nvram/web01_VARS.fd</nvram>\n",
    FILE_DISK ("/var/lib/libvirt/images/root.qcow2", "vda")
    "    <disk type='block' device='disk'>\n"
    "      <driver name='qemu' type='raw' io='native'/>\n"
    "      <source dev='/dev/vg0/data'/>\n"
    "      <target dev='vdb' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type='block' device='lun'>\n"
    "      <source dev='/dev/sdz'/>\n"
    "      <target dev='sda' bus='scsi'/>\n"
    "    </disk>\n"
    FILE_DISK ("/srv/x.qcow2", "vdc"));
  /* Characters XML must escape survive as themselves. */
  static const char odd[] = "/srv/vm/a&b <\"c\">'.qcow2";
  CLEANUP_XMLDOC xmlDocPtr doc = parse (xml);
  CLEANUP_XMLDOC xmlDocPtr doc2 = NULL;
  CLEANUP_FREE char *s = NULL;
  struct vmferry_domain_file *f = NULL;
  size_t n = list (doc, false, &f);

  ck_assert_uint_eq (n, 5);
  ck_assert_int_eq (vmferry_domain_set_path (doc, &f[0], odd, 0), 0);
  ck_assert_int_eq (vmferry_domain_set_path (doc, &f[1], "/srv/vm/data.raw", 0), 0);
  ck_assert_int_eq (vmferry_domain_set_path (doc, &f[2], "/srv/lun.raw", 0), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "disk sda: a 'lun' disk must stay a block device");
  ck_assert_int_eq (vmferry_domain_set_path (doc, &f[2], "/dev/sdy",
                                             VMFERRY_DOMAIN_PATH_BLOCK), 0);
  ck_assert_int_eq (vmferry_domain_set_path (doc, &f[3], "/dev/vg1/x",
                                             VMFERRY_DOMAIN_PATH_BLOCK), 0);
  ck_assert_int_eq (vmferry_domain_set_path (doc, &f[4], "/srv/vm/&amp;", 0), 0);
  vmferry_domain_files_free (f, n);

  s = vmferry_domain_to_string (doc);
  ck_assert_ptr_null (strstr (s, "<?xml"));
  doc2 = parse (s);
  n = list (doc2, false, &f);
  ck_assert_uint_eq (n, 5);
  ck_assert_str_eq (f[0].path, odd);
  ck_assert (!f[0].block);
  ck_assert_str_eq (f[1].path, "/srv/vm/data.raw");
  ck_assert (!f[1].block);
  ck_assert_str_eq (f[1].format, "raw");
  ck_assert_str_eq (f[2].path, "/dev/sdy");
  ck_assert (f[2].block && f[2].lun);
  ck_assert_str_eq (f[3].path, "/dev/vg1/x");
  ck_assert (f[3].block);
  ck_assert_int_eq (f[4].role, VMFERRY_ROLE_NVRAM);
  ck_assert_str_eq (f[4].path, "/srv/vm/&amp;");
  vmferry_domain_files_free (f, n);
  /* The block disk lost its dev attribute, kept its driver. */
  ck_assert_ptr_nonnull (strstr (s, "<disk type=\"file\" device=\"disk\">\n"
                                 "      <driver name=\"qemu\" type=\"raw\" io=\"native\"/>\n"
                                 "      <source file=\"/srv/vm/data.raw\"/>"));

  /* An entry from another document is refused, not followed. */
  n = list (doc2, false, &f);
  ck_assert_int_eq (vmferry_domain_set_path (doc, &f[0], "/x", 0), -1);
  vmferry_domain_files_free (f, n);
}
END_TEST

START_TEST (test_rename)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse (DOMAIN (FILE_DISK ("/a.qcow2", "vda")));
  CLEANUP_XMLDOC xmlDocPtr doc2 = NULL;
  CLEANUP_FREE char *s1 = NULL;
  CLEANUP_FREE char *s2 = NULL;
  CLEANUP_FREE char *name = NULL;
  CLEANUP_FREE char *uuid = NULL;

  ck_assert_int_eq (vmferry_domain_set_name (doc, "web01-copy & <b>"), 0);
  ck_assert_int_eq (vmferry_domain_set_uuid (doc, "0123456789ABCDEF0123456789abcdef"), 0);
  s1 = vmferry_domain_to_string (doc);
  doc2 = parse (s1);
  name = vmferry_domain_get_name (doc2);
  uuid = vmferry_domain_get_uuid (doc2);
  ck_assert_str_eq (name, "web01-copy & <b>");
  ck_assert_str_eq (uuid, "01234567-89ab-cdef-0123-456789abcdef");

  ck_assert_int_eq (vmferry_domain_set_name (doc, "a/b"), -1);
  ck_assert_int_eq (vmferry_domain_set_name (doc, ""), -1);
  ck_assert_int_eq (vmferry_domain_set_uuid (doc, "not-a-uuid"), -1);
  ck_assert_int_eq (vmferry_domain_set_uuid (doc, "01234567-89ab-cdef-0123-456789abcdeg"), -1);

  /* Removing the uuid lets libvirt make one; the indentation goes too. */
  ck_assert_int_eq (vmferry_domain_set_uuid (doc, NULL), 0);
  ck_assert_ptr_null (vmferry_domain_get_uuid (doc));
  ck_assert_str_eq (vmferry_get_error (), "domain XML: no <uuid> element");
  s2 = vmferry_domain_to_string (doc);
  ck_assert_ptr_nonnull (strstr (s2, "<name>web01-copy &amp; &lt;b&gt;</name>\n"
                                 "  <memory"));
  /* Adding it back puts it after <name>, indented like it. */
  ck_assert_int_eq (vmferry_domain_set_uuid (doc, UUID), 0);
  free (s2);
  s2 = vmferry_domain_to_string (doc);
  ck_assert_ptr_nonnull (strstr (s2, "</name>\n  <uuid>" UUID "</uuid>\n  <memory"));
}
END_TEST

START_TEST (test_identity_round_trip)
{
  /* Comments, CDATA, namespaced metadata and qemu:commandline kept. */
  static const char xml[] =
    "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
    "  <name>w\xc3\xa9" "b</name>\n"
    "  <!-- a comment -->\n"
    "  <metadata><app:x xmlns:app='urn:app'><![CDATA[<raw>&]]></app:x></metadata>\n"
    "  <devices/>\n"
    "  <qemu:commandline><qemu:arg value='-S'/></qemu:commandline>\n"
    "</domain>\n";
  CLEANUP_XMLDOC xmlDocPtr doc = parse (xml);
  CLEANUP_FREE char *s = vmferry_domain_to_string (doc);
  CLEANUP_FREE char *name = vmferry_domain_get_name (doc);

  ck_assert_str_eq (name, "w\xc3\xa9" "b");
  ck_assert_str_eq (s,
    "<domain xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\" type=\"kvm\">\n"
    "  <name>w\xc3\xa9" "b</name>\n"
    "  <!-- a comment -->\n"
    "  <metadata><app:x xmlns:app=\"urn:app\"><![CDATA[<raw>&]]></app:x></metadata>\n"
    "  <devices/>\n"
    "  <qemu:commandline><qemu:arg value=\"-S\"/></qemu:commandline>\n"
    "</domain>\n");
}
END_TEST

START_TEST (test_two_devices_elements)
{
  /* libvirt reads ./devices/disk across every <devices>: so must we, or a
   * disk in the second would keep a path import never rewrote.
   */
  static const char xml[] =
    "<domain><name>x</name><devices>" FILE_DISK ("/a", "vda") "</devices>"
    "<devices>" FILE_DISK ("/etc/shadow", "vdb") "</devices></domain>";
  CLEANUP_XMLDOC xmlDocPtr doc = parse (xml);
  struct vmferry_domain_file *f = NULL;
  size_t n = list (doc, false, &f);

  ck_assert_uint_eq (n, 2);
  ck_assert_str_eq (f[1].path, "/etc/shadow");
  vmferry_domain_files_free (f, n);
}
END_TEST

/* Malicious inputs.  The external entity loader is replaced so that any
 * attempt to fetch something is seen, and stderr is captured so that any
 * libxml2 message printed behind our back is seen too.
 */
static int fetches;

static xmlParserInputPtr
spy_loader (const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
  (void) url;
  (void) id;
  (void) ctxt;
  fetches++;
  return NULL;
}

static char stderr_path[64];
static int saved_stderr = -1;

static void
capture_stderr (void)
{
  int fd;

  strcpy (stderr_path, "/tmp/check_domain_stderrXXXXXX");
  fd = mkstemp (stderr_path);

  ck_assert_int_ge (fd, 0);
  fflush (stderr);
  saved_stderr = dup (2);
  ck_assert_int_ge (dup2 (fd, 2), 0);
  close (fd);
  xmlSetExternalEntityLoader (spy_loader);
  fetches = 0;
}

static void
check_quiet (void)
{
  FILE *fp;
  long size;

  fflush (stderr);
  dup2 (saved_stderr, 2);
  close (saved_stderr);
  fp = fopen (stderr_path, "r");
  ck_assert_ptr_nonnull (fp);
  fseek (fp, 0, SEEK_END);
  size = ftell (fp);
  fclose (fp);
  unlink (stderr_path);
  ck_assert_int_eq (fetches, 0);
  ck_assert_msg (size == 0, "libxml2 wrote %ld bytes to stderr", size);
}

#define REFUSE(xml, want) refuse (xml, sizeof xml - 1, want)

START_TEST (test_refuse_external_entities)
{
  capture_stderr ();
  REFUSE ("<?xml version='1.0'?>\n"
          "<!DOCTYPE domain [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>\n"
          "<domain><name>&xxe;</name></domain>",
          "evil.xml: line 2: a DOCTYPE is not allowed in domain XML");
  REFUSE ("<!DOCTYPE domain [<!ENTITY xxe SYSTEM 'http://127.0.0.1:9/x'>]>"
          "<domain><name>&xxe;</name></domain>",
          "DOCTYPE is not allowed");
  REFUSE ("<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/domain.dtd'>"
          "<domain><name>x</name></domain>",
          "DOCTYPE is not allowed");
  REFUSE ("<!DOCTYPE domain [<!ENTITY % p SYSTEM 'file:///etc/passwd'> %p;]>"
          "<domain><name>x</name></domain>",
          "DOCTYPE is not allowed");
  /* No DOCTYPE, so no entity can be defined: a reference is an error. */
  REFUSE ("<domain><name>&xxe;</name></domain>",
          "evil.xml: cannot parse XML: line 1: Entity 'xxe' not defined");
  check_quiet ();
}
END_TEST

START_TEST (test_refuse_entity_bomb)
{
  capture_stderr ();
  REFUSE ("<?xml version='1.0'?>\n"
          "<!DOCTYPE lolz [\n"
          " <!ENTITY lol 'lol'>\n"
          " <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n"
          " <!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>\n"
          " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\n"
          " <!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>\n"
          " <!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>\n"
          " <!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>\n"
          " <!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>\n"
          " <!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>\n"
          " <!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>\n"
          "]>\n"
          "<domain><name>&lol9;</name></domain>\n",
          "evil.xml: line 2: a DOCTYPE is not allowed");
  check_quiet ();
}
END_TEST

START_TEST (test_refuse_deep_nesting)
{
  size_t depth = 10000, len = 0;
  CLEANUP_FREE char *xml = malloc (depth * 8 + 64);

  capture_stderr ();
  len += sprintf (xml, "<domain>");
  for (size_t i = 0; i < depth; i++)
    len += sprintf (xml + len, "<a>");
  for (size_t i = 0; i < depth; i++)
    len += sprintf (xml + len, "</a>");
  len += sprintf (xml + len, "</domain>");
  refuse (xml, len, "evil.xml: cannot parse XML: line 1: elements nested "
          "more than 256 deep");
  check_quiet ();

  /* Just inside the limit is fine, text in the deepest element too. */
  len = sprintf (xml, "<domain>");
  for (size_t i = 0; i < VMFERRY_DOMAIN_MAX_DEPTH - 1; i++)
    len += sprintf (xml + len, "<a>");
  len += sprintf (xml + len, "text");
  for (size_t i = 0; i < VMFERRY_DOMAIN_MAX_DEPTH - 1; i++)
    len += sprintf (xml + len, "</a>");
  len += sprintf (xml + len, "</domain>");
  xmlFreeDoc (parse (xml));
}
END_TEST

START_TEST (test_refuse_malformed)
{
  static const char bad_utf8[] = "<domain><name>caf\xc3\x28</name></domain>";
  static const char with_nul[] = "<domain><name>a\0b</name></domain>";

  capture_stderr ();
  REFUSE ("<network><name>default</name></network>",
          "evil.xml: root element is <network>, not <domain>");
  REFUSE ("<l:domain xmlns:l='urn:x'><name>x</name></l:domain>",
          "evil.xml: root element is <l:domain>, not <domain>");
  REFUSE ("<domain type='kvm'>\n  <name>web01</name>\n  <devices>\n    <disk type='fi",
          "evil.xml: cannot parse XML: line 4: ");
  REFUSE ("<domain><name>x</name></domain><domain/>",
          "Extra content at the end of the document");
  refuse (bad_utf8, sizeof bad_utf8 - 1, "evil.xml: cannot parse XML: line 1: "
          "Input is not proper UTF-8, indicate encoding ! Bytes: 0xC3 0x28");
  refuse (with_nul, sizeof with_nul - 1, "evil.xml: cannot parse XML: line 1:");
  REFUSE ("", "evil.xml: cannot parse XML: the document is empty");
  REFUSE ("   ", "evil.xml: cannot parse XML: line 1: ");
  check_quiet ();
}
END_TEST

START_TEST (test_refuse_too_big)
{
  size_t len = 20 * 1024 * 1024;
  CLEANUP_FREE char *xml = malloc (len);
  static const char head[] = "<domain><name>x</name><description>";

  /* Refused on its size, before libxml2 sees a byte. */
  memset (xml, 'a', len);
  memcpy (xml, head, sizeof head - 1);
  refuse (xml, len, "evil.xml: XML is 20971520 bytes, more than the 16 MiB limit");
}
END_TEST

/* <domain> with N attributes a0..; then BODY. */
static size_t
with_attrs (char *xml, size_t n, const char *body)
{
  size_t len = sprintf (xml, "<domain");

  for (size_t i = 0; i < n; i++)
    len += sprintf (xml + len, " a%zu = \"%s\"", i, i == 0 ? "/>'" : "");
  return len + sprintf (xml + len, ">%s</domain>", body);
}

/* The shapes libxml2 takes quadratic time for, refused before it sees
 * them, each just past its limit; just inside it parses.
 */
START_TEST (test_refuse_shapes)
{
  const size_t n = VMFERRY_DOMAIN_MAX_NODES;
  CLEANUP_FREE char *xml = malloc (n * 8 + 4096);
  size_t len;

  capture_stderr ();
  /* Attributes: a value with '>', '/' and a quote is no tag's end. */
  len = with_attrs (xml, VMFERRY_DOMAIN_MAX_ATTRS + 1, "");
  refuse (xml, len, "evil.xml: line 1: an element has more than 256 "
          "attributes");
  len = with_attrs (xml, VMFERRY_DOMAIN_MAX_ATTRS, "");
  xmlFreeDoc (parse (xml));
  /* Markup in a comment or CDATA section is not counted. */
  len = sprintf (xml, "<domain><!-- <x");
  for (size_t i = 0; i < 300; i++)
    len += sprintf (xml + len, " a%zu=''", i);
  len += sprintf (xml + len, "/> --><![CDATA[<x a=''");
  for (size_t i = 1; i < 300; i++)
    len += sprintf (xml + len, " a%zu=''", i);
  len += sprintf (xml + len, "/>]]></domain>");
  xmlFreeDoc (parse (xml));

  /* Namespace declarations: those in scope at once count. */
  len = sprintf (xml, "<domain>\n<a:x");
  for (size_t i = 0; i < 200; i++)
    len += sprintf (xml + len, " xmlns:a%zu='u'", i);
  len += sprintf (xml + len, " xmlns:a='u'><b:x xmlns:b='u'");
  for (size_t i = 0; i < 100; i++)
    len += sprintf (xml + len, " xmlns:b%zu='u'", i);
  len += sprintf (xml + len, "/></a:x></domain>");
  refuse (xml, len, "evil.xml: line 2: more than 256 XML namespace "
          "declarations in scope");
  /* Siblings: one's declarations are gone when the next starts. */
  len = sprintf (xml, "<domain>");
  for (size_t k = 0; k < 3; k++) {
    len += sprintf (xml + len, "<a:x xmlns:a='u'");
    for (size_t i = 0; i < 200; i++)
      len += sprintf (xml + len, " xmlns:a%zu='u'", i);
    len += sprintf (xml + len, k == 0 ? "/>" : "></a:x>");
  }
  len += sprintf (xml + len, "</domain>");
  xmlFreeDoc (parse (xml));

  /* Nodes: <domain>, N - 2 elements and a comment, then one more. */
  len = sprintf (xml, "<domain><!---->");
  for (size_t i = 0; i < n - 2; i++)
    len += sprintf (xml + len, "<x/>");
  sprintf (xml + len, "</domain>");
  xmlFreeDoc (parse (xml));
  len += sprintf (xml + len, "<?x?></domain>");
  refuse (xml, len, "evil.xml: line 1: more than 100000 elements, "
          "attributes, comments and processing instructions");
  check_quiet ();
}
END_TEST

VMFERRY_UNIT_MAIN ("domain",
                   test_parse_basic,
                   test_files_kinds,
                   test_files_include_readonly,
                   test_files_unsupported,
                   test_files_volume,
                   test_files_nvram_tpm,
                   test_files_nvram_forms,
                   test_backing_store,
                   test_set_path_round_trip,
                   test_rename,
                   test_identity_round_trip,
                   test_two_devices_elements,
                   test_refuse_external_entities,
                   test_refuse_entity_bomb,
                   test_refuse_deep_nesting,
                   test_refuse_malformed,
                   test_refuse_too_big,
                   test_refuse_shapes)
