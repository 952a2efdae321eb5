/* Unit tests for lib/rewrite.c: the rules, their checks, XML, manifest
 * and stream rewriting (no libvirt: rules needing a destination are
 * tested by the integration tests).
 */
#include "config.h"

#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "linediff.h"
#include "manifest.h"
#include "rewrite.h"
#include "stream.h"
#include "xmlsource.h"

#define UUID "c7a5fdbd-edaf-9455-926a-d65c16db1809"

#define DOMAIN(os, devices)                                             \
  "<domain type='kvm'>\n"                                               \
  "  <name>web01</name>\n"                                              \
  "  <uuid>" UUID "</uuid>\n"                                           \
  "  <memory unit='KiB'>1048576</memory>\n"                             \
  "  <vcpu>2</vcpu>\n"                                                  \
  "  <os>\n"                                                            \
  "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\n"           \
  os                                                                    \
  "  </os>\n"                                                           \
  "  <devices>\n"                                                       \
  "    <emulator>/usr/libexec/qemu-kvm</emulator>\n"                    \
  devices                                                               \
  "  </devices>\n"                                                      \
  "  <metadata><app:x xmlns:app='urn:x' path='/var/lib/libvirt/images/keep'/></metadata>\n" \
  "</domain>\n"

#define DISK(path, dev, bus)                                            \
  "    <disk type='file' device='disk'>\n"                              \
  "      <driver name='qemu' type='qcow2'/>\n"                          \
  "      <source file='" path "'/>\n"                                   \
  "      <target dev='" dev "' bus='" bus "'/>\n"                       \
  "      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>\n" \
  "    </disk>\n"

#define NIC(type, attr, name, mac)                                      \
  "    <interface type='" type "'>\n"                                   \
  "      <mac address='" mac "'/>\n"                                    \
  "      <source " attr "='" name "'/>\n"                               \
  "      <model type='virtio'/>\n"                                      \
  "    </interface>\n"

static struct vmferry_rewrite *
rules (const char *const *opts)
{
  struct vmferry_rewrite *rw = vmferry_rewrite_new ();

  ck_assert_ptr_nonnull (rw);
  for (size_t i = 0; opts && opts[i]; i += 2)
    ck_assert_msg (vmferry_rewrite_add (rw, opts[i], opts[i + 1], "test") == 0,
                   "--%s %s: %s", opts[i], opts[i + 1] ? opts[i + 1] : "",
                   vmferry_get_error ());
  return rw;
}

/* Rewrite XML with RW; the result (caller frees). */
static char *
apply (struct vmferry_rewrite *rw, const char *xml)
{
  char *out = vmferry_rewrite_xml (rw, xml, strlen (xml), "test.xml", NULL, NULL);

  ck_assert_msg (out != NULL, "rewrite failed: %s", vmferry_get_error ());
  return out;
}

/* The rewrite is refused with a message containing WANT. */
static void
refused (struct vmferry_rewrite *rw, const char *xml, const char *want)
{
  char *out;

  vmferry_clear_error ();
  out = vmferry_rewrite_xml (rw, xml, strlen (xml), "test.xml", NULL, NULL);
  ck_assert_msg (out == NULL, "rewrite should have been refused:\n%s", out ? out : "");
  ck_assert_msg (strstr (vmferry_get_error (), want) != NULL,
                 "error '%s' lacks '%s'", vmferry_get_error (), want);
}

/* libxml2 writes attributes with double quotes: compare with quotes
 * made the same.
 */
static char *
dq (const char *s)
{
  char *r = strdup (s);

  for (char *p = r; *p; p++)
    if (*p == '\'')
      *p = '"';
  return r;
}

static void
has (const char *s, const char *want)
{
  CLEANUP_FREE char *a = dq (s);
  CLEANUP_FREE char *b = dq (want);

  ck_assert_msg (strstr (a, b) != NULL, "missing '%s' in:\n%s", want, s);
}

static void
lacks (const char *s, const char *unwanted)
{
  CLEANUP_FREE char *a = dq (s);
  CLEANUP_FREE char *b = dq (unwanted);

  ck_assert_msg (strstr (a, b) == NULL, "unexpected '%s' in:\n%s", unwanted, s);
}

/* Rewriting the output again changes nothing. */
static void
idempotent (struct vmferry_rewrite *rw, const char *out)
{
  bool changed = true;
  CLEANUP_FREE char *again = vmferry_rewrite_xml (rw, out, strlen (out), "again",
                                                  NULL, &changed);

  ck_assert_msg (again != NULL, "%s", vmferry_get_error ());
  ck_assert_str_eq (again, out);
  ck_assert (!changed);
}

/* ---------------------------------------------------------------- rules */

START_TEST (test_rule_syntax)
{
  static const struct { const char *opt, *value, *error; } bad[] = {
    { "map-path", "relative=/x", "not an absolute path" },
    { "map-path", "/a", "OLD=NEW" },
    { "map-path", "=/b", "OLD=NEW" },
    { "map-path", "/a/../b=/c", "'..'" },
    { "map-path", "/a=/b\n", "control characters" },
    { "map-network", "a b=c", "not a valid network name" },
    { "map-bridge", "a=this-name-is-too-long", "not a valid bridge name" },
    { "disk-bus", "virtio=floppy", "not a disk bus" },
    { "pool", "rel/dir=p", "neither a pool name" },
    { "rename", "a/b", "not a valid domain name" },
    { "new-uuid", "1234", "not a UUID" },
    { "new-macs", "x", "takes no value" },
    { "drop-device", "Hostdev", "not a device kind" },
    { "drop-device", "disk", "cannot be dropped" },
    { "emulator", "qemu", "not an absolute path" },
    { "cpu", "host model", "neither a CPU mode" },
    { "frobnicate", "x", "unknown rewrite option" },
    { "machine", NULL, "needs a value" },
  };

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct vmferry_rewrite *rw = rules (NULL);
    vmferry_clear_error ();
    ck_assert_msg (vmferry_rewrite_add (rw, bad[i].opt, bad[i].value, "here") == -1,
                   "--%s %s accepted", bad[i].opt, bad[i].value);
    ck_assert_msg (strstr (vmferry_get_error (), bad[i].error) &&
                   strncmp (vmferry_get_error (), "here: ", 6) == 0,
                   "--%s %s: error '%s' lacks '%s'", bad[i].opt, bad[i].value,
                   vmferry_get_error (), bad[i].error);
    vmferry_rewrite_free (rw);
  }
}
END_TEST

START_TEST (test_rule_conflicts)
{
  static const char *const sets[][5] = {
    /* contradicting values */
    { "map-network", "a=b", "map-network", "a=c", "contradicts" },
    { "machine", "q35", "machine", "pc", "contradicts" },
    /* chains: the result would be rewritten again */
    { "map-network", "a=b", "map-network", "b=c", "chain" },
    { "map-path", "/a=/b", "map-path", "/b/c=/d", "chain" },
    { "map-path", "/a=/a/b", NULL, NULL, "same rule" },
    { "disk-bus", "ide=sata", "disk-bus", "sata=scsi", "chain" },
  };

  for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
    struct vmferry_rewrite *rw = vmferry_rewrite_new ();
    int r = vmferry_rewrite_add (rw, sets[i][0], sets[i][1], "one");
    if (sets[i][2]) {
      ck_assert_int_eq (r, 0);
      r = vmferry_rewrite_add (rw, sets[i][2], sets[i][3], "two");
    }
    ck_assert_msg (r == -1, "set %zu accepted", i);
    ck_assert_msg (strstr (vmferry_get_error (), sets[i][4]), "set %zu: %s", i,
                   vmferry_get_error ());
    vmferry_rewrite_free (rw);
  }

  /* Repeating a rule, identity rules and order do not matter. */
  {
    const char *const a[] = { "map-network", "a=b", "map-network", "a=b",
                              "map-network", "c=c", "map-path", "/x=/y",
                              "map-path", "/z=/x", NULL };
    struct vmferry_rewrite *rw = vmferry_rewrite_new ();
    for (size_t i = 0; a[i]; i += 2) {
      int r = vmferry_rewrite_add (rw, a[i], a[i + 1], "t");
      /* /z=/x chains into /x=/y: refused */
      ck_assert_int_eq (r, strcmp (a[i + 1], "/z=/x") == 0 ? -1 : 0);
    }
    vmferry_rewrite_free (rw);
  }
}
END_TEST

/* ---------------------------------------------------------------- paths */

START_TEST (test_map_path)
{
  static const char xml[] = DOMAIN (
    "    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\n"
    "    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/web01_VARS.fd</nvram>\n"
    "    <kernel>/var/lib/libvirt/boot/vmlinuz</kernel>\n",
    DISK ("/var/lib/libvirt/images/web01.qcow2", "vda", "virtio")
    DISK ("/var/lib/libvirt/images2/other.qcow2", "vdb", "virtio")
    "    <disk type='file' device='disk'>\n"
    "      <source file='/var/lib/libvirt/images/sub/top.qcow2'/>\n"
    "      <backingStore type='file'><format type='qcow2'/>\n"
    "        <source file='/var/lib/libvirt/images/base.qcow2'/><backingStore/>\n"
    "      </backingStore>\n"
    "      <target dev='vdc' bus='virtio'/>\n"
    "    </disk>\n");
  const char *const opts[] = {
    "map-path", "/var/lib/libvirt/images=/srv/vm",
    "map-path", "/var/lib/libvirt/images/sub/=/srv/deep",   /* longest wins */
    "map-path", "/var/lib/libvirt=/data/libvirt",
    "map-path", "/usr/share/OVMF=/usr/share/edk2/ovmf",
    NULL };
  struct vmferry_rewrite *rw = rules (opts);
  CLEANUP_FREE char *out = apply (rw, xml);
  CLEANUP_FREE char *m = vmferry_rewrite_map_path (rw, "/var/lib/libvirt/images");

  has (out, "file='/srv/vm/web01.qcow2'");
  /* whole components only: images2 is under /var/lib/libvirt, not images */
  has (out, "file='/data/libvirt/images2/other.qcow2'");
  has (out, "file='/srv/deep/top.qcow2'");
  has (out, "file='/srv/vm/base.qcow2'");
  has (out, ">/usr/share/edk2/ovmf/OVMF_CODE_4M.fd</loader>");
  has (out, "template='/usr/share/edk2/ovmf/OVMF_VARS_4M.fd'");
  has (out, ">/data/libvirt/qemu/nvram/web01_VARS.fd</nvram>");
  has (out, "<kernel>/data/libvirt/boot/vmlinuz</kernel>");
  /* namespaced metadata is not ours: kept as it was */
  has (out, "path='/var/lib/libvirt/images/keep'");
  ck_assert_str_eq (m, "/srv/vm");
  idempotent (rw, out);
  vmferry_rewrite_free (rw);
}
END_TEST

START_TEST (test_two_disks_one_path)
{
  static const char xml[] = DOMAIN ("",
    DISK ("/a/disk.qcow2", "vda", "virtio")
    DISK ("/b/disk.qcow2", "vdb", "virtio"));
  static const char shared[] = DOMAIN ("",
    DISK ("/a/disk.qcow2", "vda", "virtio")
    DISK ("/a/disk.qcow2", "vdb", "virtio"));
  static const char already[] = DOMAIN ("",
    DISK ("/a/disk.qcow2", "vda", "virtio")
    DISK ("/c/disk.qcow2", "vdb", "virtio"));
  const char *const two[] = { "map-path", "/a=/c", "map-path", "/b=/c", NULL };
  const char *const one[] = { "map-path", "/a=/c", NULL };
  struct vmferry_rewrite *rw = rules (two);
  CLEANUP_FREE char *ok = NULL;

  refused (rw, xml, "would both become /c/disk.qcow2");
  /* Two disks that already shared one file may keep sharing it. */
  ok = apply (rw, shared);
  has (ok, "'/c/disk.qcow2'");
  vmferry_rewrite_free (rw);
  rw = rules (one);
  refused (rw, already, "disk vda (/a/disk.qcow2) and disk vdb (/c/disk.qcow2)");
  vmferry_rewrite_free (rw);
}
END_TEST

START_TEST (test_pool)
{
  static const char xml[] = DOMAIN ("",
    DISK ("/var/lib/libvirt/images/web01.qcow2", "vda", "virtio")
    "    <disk type='volume' device='disk'>\n"
    "      <source pool='old' volume='data.raw'/>\n"
    "      <target dev='vdb' bus='virtio'/>\n"
    "    </disk>\n"
    DISK ("/elsewhere/x.qcow2", "vdc", "virtio"));
  const char *const opts[] = { "pool", "/var/lib/libvirt/images=fast",
                               "pool", "old=bulk", NULL };
  struct vmferry_rewrite *rw = rules (opts);
  CLEANUP_FREE char *out = apply (rw, xml);

  has (out, "<disk type=\"volume\" device=\"disk\">\n      <driver name=\"qemu\" type=\"qcow2\"/>\n"
       "      <source pool=\"fast\" volume=\"web01.qcow2\"/>");
  has (out, "<source pool='bulk' volume='data.raw'/>");
  has (out, "file='/elsewhere/x.qcow2'");
  lacks (out, "file='/var/lib/libvirt/images");
  idempotent (rw, out);
  vmferry_rewrite_free (rw);
}
END_TEST

/* ---------------------------------------------------------------- identity */

START_TEST (test_identity)
{
  static const char xml[] = DOMAIN ("",
    NIC ("network", "network", "default", "52:54:00:11:22:33")
    NIC ("bridge", "bridge", "br0", "52:54:00:11:22:34"));
  const char *const opts[] = { "rename", "web01-dr",
    "new-uuid", "0123456789abcdef0123456789ABCDEF", "new-macs", NULL, NULL };
  struct vmferry_rewrite *rw = rules (opts);
  CLEANUP_FREE char *out = apply (rw, xml);
  CLEANUP_FREE char *out2 = NULL;
  struct vmferry_rewrite *rw2;

  has (out, "<name>web01-dr</name>");
  has (out, "<uuid>01234567-89ab-cdef-0123-456789abcdef</uuid>");
  lacks (out, "52:54:00:11:22:3");
  has (out, "<mac address=\"52:54:00:");
  idempotent (rw, out);

  /* The same UUID gives the same MACs: deterministic. */
  rw2 = rules (opts);
  out2 = apply (rw2, xml);
  ck_assert_str_eq (out, out2);
  vmferry_rewrite_free (rw2);
  vmferry_rewrite_free (rw);

  /* A random UUID: drawn once, so applying the set again keeps it. */
  {
    const char *const r[] = { "new-uuid", NULL, NULL };
    CLEANUP_FREE char *a = NULL;
    rw = rules (r);
    a = apply (rw, xml);
    lacks (a, UUID);
    idempotent (rw, a);
    vmferry_rewrite_free (rw);
  }
}
END_TEST

START_TEST (test_networks)
{
  static const char xml[] = DOMAIN ("",
    NIC ("network", "network", "lan-a", "52:54:00:11:22:33")
    NIC ("network", "network", "other", "52:54:00:11:22:35")
    NIC ("bridge", "bridge", "br-a", "52:54:00:11:22:34"));
  const char *const opts[] = { "map-network", "lan-a=lan-b",
                               "map-bridge", "br-a=br-b", NULL };
  struct vmferry_rewrite *rw = rules (opts);
  CLEANUP_FREE char *out = apply (rw, xml);

  has (out, "network=\"lan-b\"");
  has (out, "network='other'");
  has (out, "bridge=\"br-b\"");
  has (out, "52:54:00:11:22:33");
  idempotent (rw, out);
  vmferry_rewrite_free (rw);
}
END_TEST

/* ---------------------------------------------------------------- hardware */

START_TEST (test_disk_bus)
{
  static const char xml[] = DOMAIN ("",
    DISK ("/v/a.qcow2", "vda", "virtio")
    "    <disk type='file' device='cdrom'>\n"
    "      <source file='/iso/x.iso'/>\n"
    "      <target dev='sda' bus='sata'/>\n"
    "      <readonly/>\n"
    "    </disk>\n"
    DISK ("/v/b.qcow2", "vdb", "virtio")
    "    <controller type='sata' index='0'/>\n");
  const char *const opts[] = { "disk-bus", "virtio=scsi", NULL };
  struct vmferry_rewrite *rw = rules (opts);
  CLEANUP_FREE char *out = apply (rw, xml);

  /* vda, vdb become the first free sd names: sda is the CD-ROM's. */
  has (out, "<target dev=\"sdb\" bus=\"scsi\"/>");
  has (out, "<target dev=\"sdc\" bus=\"scsi\"/>");
  has (out, "<target dev='sda' bus='sata'/>");
  lacks (out, "type='pci'");
  has (out, "<controller type=\"scsi\" index=\"0\" model=\"virtio-scsi\"/>");
  idempotent (rw, out);
  vmferry_rewrite_free (rw);
}
END_TEST

/* A name a disk leaves is free for the disks renamed after it. */
START_TEST (test_disk_bus_freed_name)
{
  static const char xml[] = DOMAIN ("",
    DISK ("/v/a.qcow2", "hda", "ide")
    DISK ("/v/b.qcow2", "sda", "scsi")
    DISK ("/v/c.qcow2", "hdb", "ide"));
  const char *const opts[] = { "disk-bus", "ide=sata",
                               "disk-bus", "scsi=virtio", NULL };
  struct vmferry_rewrite *rw = rules (opts);
  CLEANUP_FREE char *out = apply (rw, xml);

  has (out, "<target dev=\"sdb\" bus=\"sata\"/>");
  has (out, "<target dev=\"vda\" bus=\"virtio\"/>");
  has (out, "<target dev=\"sda\" bus=\"sata\"/>");
  vmferry_rewrite_free (rw);
}
END_TEST

START_TEST (test_cpu_machine_emulator_drop)
{
  static const char xml[] = DOMAIN ("",
    "    <hostdev mode='subsystem' type='pci' managed='yes'>\n"
    "      <source><address domain='0' bus='3' slot='0' function='0'/></source>\n"
    "    </hostdev>\n"
    "    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/><product id='0x2'/></source></hostdev>\n"
    "    <redirdev bus='usb' type='spicevmc'/>\n"
    "    <memballoon model='none'/>\n");
  static const char with_cpu[] =
    "<domain type='kvm'><name>x</name><uuid>" UUID "</uuid><vcpu>1</vcpu>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
    "<cpu mode='custom' match='exact' check='partial'><model fallback='forbid'>Skylake-Server</model>"
    "<vendor>Intel</vendor><topology sockets='1' cores='2' threads='1'/>"
    "<feature policy='require' name='avx512f'/><feature policy='disable' name='hle'/>"
    "</cpu><devices/></domain>";
  const char *const o1[] = { "cpu", "host-model", "machine", "q35",
    "emulator", "/usr/bin/qemu-system-x86_64", "drop-device", "hostdev",
    "drop-device", "redirdev", NULL };
  const char *const o2[] = { "cpu", "Haswell", NULL };
  struct vmferry_rewrite *rw = rules (o1);
  CLEANUP_FREE char *out = apply (rw, xml);
  CLEANUP_FREE char *c1 = apply (rw, with_cpu);
  CLEANUP_FREE char *c2 = NULL;

  has (out, "<emulator>/usr/bin/qemu-system-x86_64</emulator>");
  has (out, "machine=\"q35\"");
  has (out, "<cpu mode=\"host-model\"/>");
  has (out, "    <memballoon model='none'/>\n  </devices>");
  lacks (out, "hostdev");
  lacks (out, "redirdev");
  idempotent (rw, out);
  has (c1, "<cpu mode=\"host-model\" check=\"partial\"><topology");
  has (c1, "name='hle'");
  lacks (c1, "avx512f");
  lacks (c1, "Skylake");
  lacks (c1, "Intel");
  vmferry_rewrite_free (rw);

  rw = rules (o2);
  c2 = apply (rw, with_cpu);
  has (c2, "<cpu mode='custom' match='exact' check='partial'><model fallback='forbid'>Haswell</model>");
  lacks (c2, "avx512f");
  has (c2, "name='hle'");
  idempotent (rw, c2);
  vmferry_rewrite_free (rw);

  /* auto needs a destination */
  {
    const char *const o3[] = { "machine", "auto", NULL };
    rw = rules (o3);
    ck_assert (vmferry_rewrite_needs_dest (rw));
    refused (rw, xml, "needs a destination");
    vmferry_rewrite_free (rw);
  }
}
END_TEST

/* ---------------------------------------------------------------- untrusted XML */

START_TEST (test_bad_xml)
{
  static const struct { const char *xml, *error; } bad[] = {
    { "<domain><name>x</name>", "cannot parse XML" },
    { "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
      "<domain><name>&e;</name></domain>", "DOCTYPE is not allowed" },
    { "<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>"
      "<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;'>]><domain>&c;</domain>", "DOCTYPE" },
    { "<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/x.dtd'><domain/>", "DOCTYPE" },
    { "<domain><name>&ext;</name></domain>", "cannot parse XML" },
    { "<network><name>x</name></network>", "not <domain>" },
  };
  struct vmferry_rewrite *rw = rules (NULL);
  char *deep;
  size_t n = 0;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    refused (rw, bad[i].xml, bad[i].error);

  deep = malloc (20000 * 11 + 64);
  n += sprintf (deep, "<domain>");
  for (int i = 0; i < 20000; i++)
    n += sprintf (deep + n, "<a>");
  for (int i = 0; i < 20000; i++)
    n += sprintf (deep + n, "</a>");
  sprintf (deep + n, "</domain>");
  refused (rw, deep, "nested more than");
  free (deep);
  vmferry_rewrite_free (rw);
}
END_TEST

/* ---------------------------------------------------------------- map file */

static char *
write_tmp (const char *content)
{
  char *path = strdup ("/tmp/vmferry-map-XXXXXX");
  int fd = mkstemp (path);

  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (write (fd, content, strlen (content)), (ssize_t) strlen (content));
  close (fd);
  return path;
}

START_TEST (test_map_file)
{
  static const struct { const char *content, *error; } bad[] = {
    { "map-path /a=/b\nfrobnicate x\n", ":2: unknown rewrite option 'frobnicate'" },
    { "\n# c\nmap-network a b=c\n", ":3: --map-network" },
    { "map-file /etc/passwd\n", ":1: a map file cannot read another" },
    { "map-network a=b\nmap-network a=c\n", ":2: --map-network a=c contradicts" },
    { "new-macs yes\n", ":1: --new-macs takes no value" },
    { "cpu\n", ":1: --cpu needs a value" },
    { "map-path /x=/y\0map-path", "not text" },
  };
  static const char good[] =
    "# site rules\n"
    "\n"
    "map-path   /var/lib/libvirt/images=/srv/vm images\r\n"
    "--map-network default=lan\n"
    "  new-macs\n"
    "drop-device hostdev\n";
  static const char xml[] = DOMAIN ("",
    DISK ("/var/lib/libvirt/images/w.qcow2", "vda", "virtio")
    NIC ("network", "network", "default", "52:54:00:11:22:33"));

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CLEANUP_UNLINK_FREE char *p = NULL;
    struct vmferry_rewrite *rw = rules (NULL);
    size_t len = strlen (bad[i].content);
    if (i == 6)
      len = sizeof "map-path /x=/y\0map-path" - 1;
    p = strdup ("/tmp/vmferry-map-XXXXXX");
    {
      int fd = mkstemp (p);
      ck_assert_int_eq (write (fd, bad[i].content, len), (ssize_t) len);
      close (fd);
    }
    ck_assert_int_eq (vmferry_rewrite_add_map_file (rw, p), -1);
    ck_assert_msg (strstr (vmferry_get_error (), bad[i].error), "case %zu: '%s' lacks '%s'",
                   i, vmferry_get_error (), bad[i].error);
    /* none of the file's rules was taken */
    ck_assert (vmferry_rewrite_is_empty (rw));
    vmferry_rewrite_free (rw);
  }

  {
    CLEANUP_UNLINK_FREE char *p = write_tmp (good);
    struct vmferry_rewrite *rw = rules (NULL);
    CLEANUP_FREE char *out = NULL;
    ck_assert_msg (vmferry_rewrite_add_map_file (rw, p) == 0, "%s", vmferry_get_error ());
    out = apply (rw, xml);
    /* the value runs to the end of the line: a path with a space */
    has (out, "/srv/vm images/w.qcow2");
    has (out, "network=\"lan\"");
    lacks (out, "52:54:00:11:22:33");
    /* the command line and the file are checked together */
    ck_assert_int_eq (vmferry_rewrite_add (rw, "map-network", "default=wan", "cmd"), -1);
    vmferry_rewrite_free (rw);
  }
  {
    struct vmferry_rewrite *rw = rules (NULL);
    ck_assert_int_eq (vmferry_rewrite_add_map_file (rw, "/nonexistent/x.map"), -1);
    ck_assert (strstr (vmferry_get_error (), "/nonexistent/x.map: cannot open map file"));
    vmferry_rewrite_free (rw);
  }
}
END_TEST

/* vmferry-migrate --rename adds a rule per file beside the admin's
 * directory rule: the file's own (longer) rule wins, for the XML and the
 * manifest alike.
 */
START_TEST (test_rename_file_rule)
{
  static const char xml[] = DOMAIN ("",
    DISK ("/var/lib/libvirt/images/web01.qcow2", "vda", "virtio")
    DISK ("/var/lib/libvirt/images/data.img", "vdb", "virtio"));
  const char *const opts[] = {
    "rename", "web01-copy",
    "map-path", "/var/lib/libvirt/images=/srv/vm",
    "map-path", "/var/lib/libvirt/images/web01.qcow2=/srv/vm/web01-copy.qcow2",
    NULL };
  struct vmferry_rewrite *rw = rules (opts);
  CLEANUP_FREE char *out = apply (rw, xml);

  ck_assert_str_eq (vmferry_rewrite_get_rename (rw), "web01-copy");
  ck_assert_ptr_null (vmferry_rewrite_get_rename (NULL));
  has (out, "file='/srv/vm/web01-copy.qcow2'");
  has (out, "file='/srv/vm/data.img'");
  has (out, "<name>web01-copy</name>");
  idempotent (rw, out);
  vmferry_rewrite_free (rw);
}
END_TEST

/* ---------------------------------------------------------------- manifest */

START_TEST (test_manifest)
{
  static const char m[] =
    "{\"format\": \"vmferry-manifest\", \"version\": 1,"
    " \"domain\": {\"name\": \"web01\", \"uuid\": \"" UUID "\"},"
    " \"future\": {\"kept\": true},"
    " \"files\": ["
    "  {\"index\": 0, \"role\": \"disk\", \"name\": \"w.qcow2\","
    "   \"source_path\": \"/var/lib/libvirt/images/w.qcow2\","
    "   \"format\": \"qcow2\", \"size\": 9, \"allocated\": 5},"
    "  {\"index\": 1, \"role\": \"nvram\", \"name\": \"w_VARS.fd\","
    "   \"source_path\": \"/var/lib/libvirt/qemu/nvram/w_VARS.fd\","
    "   \"format\": \"raw\", \"size\": 5, \"allocated\": 5},"
    "  {\"index\": 2, \"role\": \"tpm\", \"name\": \"tpm2/tpm2-00.permall\","
    "   \"source_path\": \"/var/lib/libvirt/swtpm/x/tpm2/tpm2-00.permall\","
    "   \"format\": \"raw\", \"size\": 1, \"allocated\": 1}]}";
  const char *const opts[] = { "map-path", "/var/lib/libvirt/images/w.qcow2=/srv/vm/web02.qcow2", NULL };
  const char *const clash[] = { "map-path", "/var/lib/libvirt/images/w.qcow2=/srv/vm/w_VARS.fd", NULL };
  const char *const hidden[] = {
    "map-path", "/var/lib/libvirt/images/w.qcow2=/srv/vm/.w", NULL };
  static const char loose[] =
    "{\"format\": \"vmferry-manifest\", \"version\": 1,"
    " \"domain\": {\"name\": \"web01\"}, \"files\": []}";
  struct vmferry_manifest *pm;
  struct vmferry_rewrite *rw = rules (opts);
  bool changed = false;
  CLEANUP_FREE char *out = vmferry_rewrite_manifest (rw, m, strlen (m), "web02", NULL, &changed);
  CLEANUP_FREE char *same = NULL;

  ck_assert_msg (out != NULL, "%s", vmferry_get_error ());
  ck_assert (changed);
  has (out, "\"source_path\": \"/srv/vm/web02.qcow2\"");
  has (out, "\"name\": \"web02.qcow2\"");
  has (out, "\"name\": \"web02\"");
  has (out, "\"kept\": true");
  has (out, "/var/lib/libvirt/qemu/nvram/w_VARS.fd");
  has (out, "tpm2/tpm2-00.permall");
  /* Written by formats' one writer: what the parser reads back, totals
   * and all; the same rules again change nothing.
   */
  ck_assert_msg (vmferry_manifest_parse (out, strlen (out), "out", &pm) == 0,
                 "%s", vmferry_get_error ());
  ck_assert_str_eq (pm->domain_name, "web02");
  ck_assert_str_eq (pm->domain_uuid, UUID);
  ck_assert_str_eq (pm->files[0].name, "web02.qcow2");
  ck_assert_str_eq (pm->files[1].name, "w_VARS.fd");
  ck_assert_ptr_nonnull (strstr (pm->extra, "\"future\""));
  vmferry_manifest_free (pm);
  has (out, "\"totals\": {");
  same = vmferry_rewrite_manifest (rw, out, strlen (out), "web02", NULL,
                                   &changed);
  ck_assert (!changed);
  ck_assert_str_eq (same, out);
  free (same);
  vmferry_rewrite_free (rw);

  /* No change: the very same text. */
  rw = rules (NULL);
  same = vmferry_rewrite_manifest (rw, m, strlen (m), NULL, NULL, &changed);
  ck_assert (!changed);
  ck_assert_str_eq (same, m);
  vmferry_rewrite_free (rw);

  /* What the importer would refuse is refused, in the parser's words,
   * changed or not.
   */
  rw = rules (NULL);
  ck_assert_ptr_null (vmferry_rewrite_manifest (rw, loose, strlen (loose),
                                                NULL, NULL, NULL));
  has (vmferry_get_error (), "manifest: domain.uuid: missing");
  vmferry_rewrite_free (rw);
  rw = rules (hidden);
  ck_assert_ptr_null (vmferry_rewrite_manifest (rw, m, strlen (m), NULL,
                                                NULL, NULL));
  /* A rule that makes a name the importer refuses: the rule is named. */
  has (vmferry_get_error (), "rewrite refused: --map-path makes file 0 "
       "(/var/lib/libvirt/images/w.qcow2) /srv/vm/.w, whose name is not a "
       "safe file name");
  ck_assert_ptr_null (vmferry_rewrite_manifest (rw, m, strlen (m), "..",
                                                NULL, NULL));
  has (vmferry_get_error (), "rewrite refused: the new domain name '..' "
       "cannot be part of a path");
  vmferry_rewrite_free (rw);

  /* Two files of one name would collide in the importer's directory. */
  rw = rules (clash);
  ck_assert_ptr_null (vmferry_rewrite_manifest (rw, m, strlen (m), NULL, NULL, NULL));
  has (vmferry_get_error (), "would both be named w_VARS.fd");
  vmferry_rewrite_free (rw);
}
END_TEST

/* ---------------------------------------------------------------- stream */

static const char stream_xml[] = DOMAIN ("",
  DISK ("/var/lib/libvirt/images/w.qcow2", "vda", "virtio"));
static const char stream_manifest[] =
  "{\"format\": \"vmferry-manifest\", \"version\": 1,"
  " \"domain\": {\"name\": \"web01\", \"uuid\": \"" UUID "\"},"
  " \"files\": [{\"index\": 0, \"role\": \"disk\", \"name\": \"w.qcow2\","
  " \"source_path\": \"/var/lib/libvirt/images/w.qcow2\", \"format\": \"raw\","
  " \"size\": 262144, \"allocated\": 262144}]}";

/* A stream in a temporary file: one file with a raw and a compressed data
 * record, a zero record and an unknown skippable record.
 */
static int
make_stream (const char *xml)
{
  char path[] = "/tmp/vmferry-stream-XXXXXX";
  int fd = mkstemp (path);
  struct vmferry_stream_writer *w;
  struct vmferry_compressor *c = vmferry_compressor_new (3);
  static unsigned char data[65536], comp[70000], digest[16];
  struct vmferry_record skip = { .type = 77, .flags = VMFERRY_REC_F_SKIPPABLE,
                                 .payload_len = 3 };
  size_t clen;

  ck_assert_int_ge (fd, 0);
  unlink (path);
  memset (data, 'x', sizeof data);
  ck_assert_int_eq (vmferry_compress (c, data, sizeof data, comp, sizeof comp, &clen), 1);
  w = vmferry_stream_writer_new (fd, "test stream");
  ck_assert_int_eq (vmferry_stream_write_header (w), 0);
  ck_assert_int_eq (vmferry_stream_write_manifest (w, stream_manifest), 0);
  ck_assert_int_eq (vmferry_stream_write_xml (w, xml), 0);
  ck_assert_int_eq (vmferry_stream_write_file_begin (w, 0, 262144), 0);
  ck_assert_int_eq (vmferry_stream_write_data (w, 0, 0, 65536, 0, data, 65536), 0);
  ck_assert_int_eq (vmferry_stream_write_record (w, &skip, "abc"), 0);
  ck_assert_int_eq (vmferry_stream_write_data (w, 0, 65536, 65536, VMFERRY_REC_F_ZSTD,
                                               comp, clen), 0);
  ck_assert_int_eq (vmferry_stream_write_zero (w, 0, 131072, 65536), 0);
  memset (digest, 7, sizeof digest);    /* not verified by a pass-through */
  ck_assert_int_eq (vmferry_stream_write_file_end (w, 0, digest), 0);
  ck_assert_int_eq (vmferry_stream_write_end (w, 1), 0);
  vmferry_stream_writer_free (w);
  vmferry_compressor_free (c);
  lseek (fd, 0, SEEK_SET);
  return fd;
}

static int
tmpfd (void)
{
  char path[] = "/tmp/vmferry-out-XXXXXX";
  int fd = mkstemp (path);

  ck_assert_int_ge (fd, 0);
  unlink (path);
  return fd;
}

static char *
slurp (int fd, size_t *len)
{
  off_t size = lseek (fd, 0, SEEK_END);
  char *buf = malloc (size + 1);

  ck_assert_int_eq (pread (fd, buf, size, 0), size);
  buf[size] = '\0';
  *len = size;
  return buf;
}

/* Byte offset after record 2 (header, manifest, XML). */
static size_t
meta_end (const char *buf)
{
  size_t off = 0;

  for (int i = 0; i < 3; i++) {
    uint32_t len;
    memcpy (&len, buf + off + 12, 4);
    off += VMFERRY_REC_HEADER_SIZE + le32toh (len);
  }
  return off;
}

START_TEST (test_stream)
{
  const char *const opts[] = { "map-path", "/var/lib/libvirt/images=/srv/vm",
                               "rename", "web02", NULL };
  struct vmferry_rewrite *rw = rules (opts);
  CLEANUP_CLOSE int in = make_stream (stream_xml);
  CLEANUP_CLOSE int out = tmpfd ();
  CLEANUP_FREE char *a = NULL;
  CLEANUP_FREE char *b = NULL;
  size_t alen, blen, ea, eb;
  struct vmferry_stream_reader *r;
  struct vmferry_record rec;
  int n = 0, got;

  ck_assert_msg (vmferry_rewrite_stream (rw, in, "in", out, "out", NULL) == 0,
                 "%s", vmferry_get_error ());
  a = slurp (in, &alen);
  b = slurp (out, &blen);
  ea = meta_end (a);
  eb = meta_end (b);
  /* Everything after the XML: the same bytes, compressed data included. */
  ck_assert_uint_eq (alen - ea, blen - eb);
  ck_assert (memcmp (a + ea, b + eb, alen - ea) == 0);
  ck_assert_uint_ne (ea, eb);

  /* The output reads as a valid stream, with the new XML and manifest. */
  lseek (out, 0, SEEK_SET);
  r = vmferry_stream_reader_new (out, "out");
  while ((got = vmferry_stream_read_record (r, &rec)) == 1) {
    if (rec.type == VMFERRY_REC_DOMAIN_XML || rec.type == VMFERRY_REC_MANIFEST) {
      CLEANUP_FREE char *t = vmferry_record_metadata (&rec, rec.payload, NULL);
      has (t, rec.type == VMFERRY_REC_MANIFEST ? "/srv/vm/w.qcow2" : "file=\"/srv/vm/w.qcow2\"");
      has (t, rec.type == VMFERRY_REC_MANIFEST ? "\"web02\"" : "<name>web02</name>");
    }
    n++;
  }
  ck_assert_msg (got == 0, "%s", vmferry_get_error ());
  ck_assert_int_eq (n, 9);      /* the skippable record is not returned */
  vmferry_stream_reader_free (r);
  vmferry_rewrite_free (rw);

  /* Identity: the output is the input, byte for byte. */
  {
    CLEANUP_CLOSE int in2 = make_stream (stream_xml);
    CLEANUP_CLOSE int out2 = tmpfd ();
    CLEANUP_FREE char *c = NULL;
    size_t clen;
    rw = rules (NULL);
    ck_assert_int_eq (vmferry_rewrite_stream (rw, in2, "in", out2, "out", NULL), 0);
    c = slurp (out2, &clen);
    ck_assert_uint_eq (clen, alen);
    ck_assert (memcmp (a, c, alen) == 0);
    vmferry_rewrite_free (rw);
  }
}
END_TEST

/* --new-macs notes the MACs it changed in the manifest's mac_map, and a
 * second rewrite goes on from the first: the guest still knows the MACs
 * the first one replaced.
 */
START_TEST (test_stream_mac_map)
{
  static const char xml[] = DOMAIN ("",
    DISK ("/var/lib/libvirt/images/w.qcow2", "vda", "virtio")
    NIC ("network", "network", "default", "52:54:00:11:22:33")
    NIC ("bridge", "bridge", "br0", "52:54:00:11:22:34"));
  const char *const opts[] = { "new-uuid", NULL, "new-macs", NULL, NULL };
  int fd[3] = { make_stream (xml), tmpfd (), tmpfd () };
  CLEANUP_FREE char *manifest = NULL;
  CLEANUP_FREE char *text = NULL;
  struct vmferry_manifest *m = NULL;
  struct vmferry_stream_reader *r;
  struct vmferry_record rec;

  for (int k = 0; k < 2; k++) {
    struct vmferry_rewrite *rw = rules (opts);
    lseek (fd[k], 0, SEEK_SET);
    ck_assert_msg (vmferry_rewrite_stream (rw, fd[k], "in", fd[k + 1], "out",
                                           NULL) == 0,
                   "%s", vmferry_get_error ());
    vmferry_rewrite_free (rw);
  }
  lseek (fd[2], 0, SEEK_SET);
  r = vmferry_stream_reader_new (fd[2], "out");
  while (text == NULL && vmferry_stream_read_record (r, &rec) == 1) {
    if (rec.type == VMFERRY_REC_MANIFEST)
      manifest = vmferry_record_metadata (&rec, rec.payload, NULL);
    else if (rec.type == VMFERRY_REC_DOMAIN_XML)
      text = vmferry_record_metadata (&rec, rec.payload, NULL);
  }
  vmferry_stream_reader_free (r);
  ck_assert (manifest && text);
  ck_assert_msg (vmferry_manifest_parse (manifest, strlen (manifest), "out",
                                         &m) == 0, "%s", vmferry_get_error ());
  ck_assert_uint_eq (m->nr_macs, 2);
  ck_assert_str_eq (m->macs[0].old_mac, "52:54:00:11:22:33");
  ck_assert_str_eq (m->macs[1].old_mac, "52:54:00:11:22:34");
  for (size_t i = 0; i < 2; i++) {
    char attr[64];
    snprintf (attr, sizeof attr, "<mac address=\"%s\"/>", m->macs[i].new_mac);
    has (text, attr);
  }
  lacks (text, "52:54:00:11:22:3");
  vmferry_manifest_free (m);
  for (int k = 0; k < 3; k++)
    close (fd[k]);
}
END_TEST

/* Bad XML in a stream, or a refused rewrite: nothing at all is written. */
START_TEST (test_stream_nothing_written)
{
  static const char *const xmls[] = {
    "<!DOCTYPE domain [<!ENTITY x SYSTEM '/etc/passwd'>]><domain>&x;</domain>",
    "<domain><name>web01</name>",
    DOMAIN ("", DISK ("/a/d.qcow2", "vda", "virtio") DISK ("/b/d.qcow2", "vdb", "virtio")),
  };
  const char *const opts[] = { "map-path", "/a=/c", "map-path", "/b=/c", NULL };

  for (size_t i = 0; i < sizeof xmls / sizeof xmls[0]; i++) {
    struct vmferry_rewrite *rw = rules (opts);
    CLEANUP_CLOSE int in = make_stream (xmls[i]);
    CLEANUP_CLOSE int out = tmpfd ();
    ck_assert_int_eq (vmferry_rewrite_stream (rw, in, "in", out, "out", NULL), -1);
    ck_assert_int_eq (lseek (out, 0, SEEK_END), 0);
    vmferry_rewrite_free (rw);
  }
}
END_TEST

/* The check sees files where the rewrite puts them. */
START_TEST (test_check_input)
{
  static const char xml[] = DOMAIN ("",
    DISK ("/var/lib/libvirt/images/w.qcow2", "vda", "virtio")
    DISK ("/big/data.raw", "vdb", "virtio"));
  const char *const opts[] = { "map-path", "/var/lib/libvirt/images=/srv/vm",
                               "pool", "/big=bulk", "pool", "old=new", NULL };
  struct vmferry_rewrite *rw = rules (opts);
  struct vmferry_check_file files[] = {
    { .path = strdup ("/var/lib/libvirt/images/w.qcow2"), .carried = true },
    { .path = strdup ("/big/data.raw"), .carried = true },
    { .path = strdup ("volume:old/v1"), .carried = true },
    { .path = strdup ("/iso/x.iso") },
  };
  struct vmferry_check_input in = {
    .doc = vmferry_domain_parse (xml, strlen (xml), "t"),
    .files = { .ptr = malloc (sizeof files), .len = 4, .cap = 4 },
  };

  memcpy (in.files.ptr, files, sizeof files);
  ck_assert_int_gt (vmferry_rewrite_check_input (rw, &in, NULL), 0);
  ck_assert_str_eq (in.files.ptr[0].path, "/srv/vm/w.qcow2");
  ck_assert_str_eq (in.files.ptr[1].path, "volume:bulk/data.raw");
  ck_assert_str_eq (in.files.ptr[2].path, "volume:new/v1");
  ck_assert_str_eq (in.files.ptr[3].path, "/iso/x.iso");
  vmferry_check_input_free (&in);
  vmferry_rewrite_free (rw);
}
END_TEST

/* ---------------------------------------------------------------- layout */

/* The output is the input where nothing changed: its quoting, its
 * declaration, comments and line ends; a diff shows the changed lines
 * only.
 */
START_TEST (test_layout)
{
  static const char xml[] =
    "<?xml version='1.0' encoding='UTF-8'?>\r\n"
    "<!-- virsh dumpxml web01 -->\r\n"
    "<domain type='kvm' xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\">\r\n"
    "  <name>web01</name>\r\n"
    "  <uuid>" UUID "</uuid>\r\n"
    "  <vcpu placement = \"static\" >2</vcpu>\r\n"
    "  <devices>\r\n"
    "    <disk type='file' device=\"disk\">\r\n"
    "      <source file='/var/lib/libvirt/images/web01.qcow2' index=\"1\"/>\r\n"
    "      <target dev='vda'\r\n"
    "              bus='virtio'/>\r\n"
    "      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>\r\n"
    "    </disk>\r\n"
    "    <interface type='bridge'>\r\n"
    "      <source bridge='br0'/><!-- uplink -->\r\n"
    "    </interface>\r\n"
    "  </devices>\r\n"
    "</domain>";
  static const char want[] =
    "--- a\n+++ b\n"
    "@@ -4 +4 @@\n"
    "-  <name>web01</name>\r\n"
    "+  <name>web01-dr</name>\r\n"
    "@@ -9,4 +9,3 @@\n"
    "-      <source file='/var/lib/libvirt/images/web01.qcow2' index=\"1\"/>\r\n"
    "-      <target dev='vda'\r\n"
    "-              bus='virtio'/>\r\n"
    "-      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>\r\n"
    "+      <source file='/srv/vm/web01.qcow2' index=\"1\"/>\r\n"
    "+      <target dev='sda'\r\n"
    "+              bus='scsi'/>\r\n"
    "@@ -15 +14 @@\n"
    "-      <source bridge='br0'/><!-- uplink -->\r\n"
    "+      <source bridge='br9'/><!-- uplink -->\r\n"
    "@@ -16,0 +16 @@\n"
    "+    <controller type='scsi' index='0' model='virtio-scsi'/>\r\n";
  const char *const opts[] = { "rename", "web01-dr",
    "map-path", "/var/lib/libvirt/images=/srv/vm", "map-bridge", "br0=br9",
    "disk-bus", "virtio=scsi", NULL, NULL };
  struct vmferry_rewrite *none = vmferry_rewrite_new ();
  struct vmferry_rewrite *rw = rules (opts);
  CLEANUP_FREE char *same = apply (none, xml);
  CLEANUP_FREE char *out = apply (rw, xml);
  CLEANUP_FREE char *d = NULL;

  /* No rules: byte for byte, without a final newline as it came. */
  ck_assert_str_eq (same, xml);
  d = vmferry_diff_unified (xml, strlen (xml), "a", out, strlen (out), "b",
                            0, NULL);
  ck_assert_ptr_nonnull (d);
  ck_assert_msg (strcmp (d, want) == 0, "got:\n%s\nwant:\n%s", d, want);
  idempotent (rw, out);
  vmferry_rewrite_free (rw);
  vmferry_rewrite_free (none);
}
END_TEST

/* The same through a stream: the XML record of the output is the input's
 * with the changed lines only.
 */
START_TEST (test_stream_layout)
{
  static const char xml[] = DOMAIN ("", NIC ("bridge", "bridge", "br0",
                                              "52:54:00:11:22:34"));
  const char *const opts[] = { "map-bridge", "br0=br9", NULL, NULL };
  struct vmferry_rewrite *rw = rules (opts);
  CLEANUP_FREE char *before = NULL;
  CLEANUP_FREE char *after = NULL;
  CLEANUP_FREE char *d = NULL;
  CLEANUP_CLOSE int in = make_stream (xml);

  ck_assert_msg (vmferry_rewrite_stream_preview (rw, in, "in", NULL, &before,
                                                 &after) == 0,
                 "%s", vmferry_get_error ());
  ck_assert_str_eq (before, xml);
  d = vmferry_diff_unified (before, strlen (before), "a", after, strlen (after),
                            "b", 0, NULL);
  ck_assert_str_eq (d, "--- a\n+++ b\n@@ -13 +13 @@\n"
                    "-      <source bridge='br0'/>\n"
                    "+      <source bridge='br9'/>\n");
  vmferry_rewrite_free (rw);
}
END_TEST

/* --diff: diff -u of the bare XML before and after; for a terminal,
 * what could drive it (a C1 control, a bidirectional override) escaped.
 */
START_TEST (test_diff)
{
  static const char xml[] =
    "<domain type='kvm'>\n"
    "  <name>web01</name>\n"
    "  <description>a\xc2\x9b" "2J b\xe2\x80\xae</description>\n"
    "</domain>\n";
  const char *const opts[] = { "rename", "web02", NULL, NULL };
  struct vmferry_rewrite *rw = rules (opts);

  for (int escape = 0; escape <= 1; escape++) {
    char path[] = "/tmp/vmferry-diff-XXXXXX";
    CLEANUP_CLOSE int fd = mkstemp (path);
    CLEANUP_FREE char *d = NULL;
    char want[512];

    ck_assert_int_ge (fd, 0);
    unlink (path);
    ck_assert_int_eq (write (fd, xml, strlen (xml)), (ssize_t) strlen (xml));
    lseek (fd, 0, SEEK_SET);
    ck_assert_msg (vmferry_rewrite_diff (rw, fd, "w.xml", false, escape, NULL,
                                         &d) == 0, "%s", vmferry_get_error ());
    snprintf (want, sizeof want,
              "--- w.xml\n+++ w.xml (rewritten)\n@@ -1,4 +1,4 @@\n"
              " <domain type='kvm'>\n-  <name>web01</name>\n"
              "+  <name>web02</name>\n   <description>a%s2J b%s</description>\n"
              " </domain>\n",
              escape ? "\\u009b" : "\xc2\x9b", escape ? "\\u202e" : "\xe2\x80\xae");
    ck_assert_str_eq (d, want);
  }
  vmferry_rewrite_free (rw);
}
END_TEST

/* ---------------------------------------------------------------- corpus */

/* Real definitions (VMFERRY_XML_CORPUS: a directory of domain XML files,
 * e.g. the virt-manager test data): with no rules the output is the
 * input byte for byte, and each source ties to its tree (no fallback to
 * libxml2's serialisation); with rules the output means what libxml2's
 * serialisation of the rewritten tree means, and a diff against the
 * input shows no more changed lines than the diff of the two libxml2
 * serialisations (the changes alone).
 */
static const char *const corpus_rules[][9] = {
  { "map-path", "/var/lib/libvirt/images=/srv/vm", "rename", "renamed" },
  { "new-uuid", "11111111-2222-3333-4444-555555555555", "new-macs", NULL },
  { "map-network", "default=prod", "map-bridge", "br0=br9" },
  { "disk-bus", "virtio=scsi" },
  { "disk-bus", "ide=sata", "disk-bus", "scsi=virtio" },
  { "cpu", "host-passthrough" },
  { "cpu", "Skylake-Client" },
  { "machine", "q35", "emulator", "/usr/bin/qemu-system-x" },
  { "drop-device", "hostdev", "drop-device", "graphics", "drop-device", "interface" },
  { "pool", "default=p2", "pool", "/var/lib/libvirt/images=p3" },
  { "map-path", "/var=/srv/dr", "map-path", "/usr/share=/opt/share" },
};

static char *
read_file (const char *path, size_t *len_rtn)
{
  FILE *fp = fopen (path, "r");
  char *buf = malloc (VMFERRY_DOMAIN_MAX_SIZE);
  size_t len;

  ck_assert_ptr_nonnull (fp);
  ck_assert_ptr_nonnull (buf);
  len = fread (buf, 1, VMFERRY_DOMAIN_MAX_SIZE - 1, fp);
  fclose (fp);
  buf[len] = '\0';
  *len_rtn = len;
  return buf;
}

static char *
serialised (const char *xml, size_t len, struct vmferry_rewrite *rw)
{
  CLEANUP_XMLDOC xmlDocPtr doc = vmferry_domain_parse (xml, len, "corpus");
  char *s;

  ck_assert_ptr_nonnull (doc);
  if (rw)
    ck_assert_int_ge (vmferry_rewrite_doc (rw, doc, NULL), 0);
  s = vmferry_domain_to_string (doc);
  ck_assert_ptr_nonnull (s);
  return s;
}

START_TEST (test_corpus)
{
  const char *dir = getenv ("VMFERRY_XML_CORPUS");
  size_t files = 0, other = 0, changed[sizeof corpus_rules / sizeof corpus_rules[0]] = { 0 };
  size_t refused_n = 0;
  struct dirent **names;
  int n;

  ck_assert_ptr_nonnull (dir);
  n = scandir (dir, &names, NULL, alphasort);
  ck_assert_msg (n >= 0, "%s: cannot list", dir);
  for (int i = 0; i < n; i++) {
    char path[4096];
    CLEANUP_FREE char *xml = NULL;
    CLEANUP_FREE char *same = NULL;
    CLEANUP_XMLDOC xmlDocPtr doc = NULL;
    struct vmferry_rewrite *none;
    size_t len;
    bool ch = true;

    snprintf (path, sizeof path, "%s/%s", dir, names[i]->d_name);
    if (strlen (names[i]->d_name) < 5 ||
        strcmp (names[i]->d_name + strlen (names[i]->d_name) - 4, ".xml") != 0) {
      free (names[i]);
      continue;
    }
    free (names[i]);
    xml = read_file (path, &len);
    doc = vmferry_domain_parse (xml, len, path);
    if (doc == NULL) {
      /* Not a domain (a snapshot): nothing to rewrite. */
      ck_assert_msg (strstr (vmferry_get_error (), "not <domain>"), "%s", vmferry_get_error ());
      other++;
      continue;
    }
    files++;
    {
      struct vmferry_xml_source *src = vmferry_xml_source_new (doc, xml, len);
      CLEANUP_FREE char *sp = NULL;
      ck_assert_msg (src != NULL, "%s: %s", path, vmferry_get_error ());
      sp = vmferry_xml_source_splice (src, doc, NULL);
      ck_assert_msg (sp && strcmp (sp, xml) == 0, "%s: splice differs", path);
      vmferry_xml_source_free (src);
    }
    none = vmferry_rewrite_new ();
    same = vmferry_rewrite_xml (none, xml, len, path, NULL, &ch);
    ck_assert_msg (same && strcmp (same, xml) == 0 && !ch, "%s: identity", path);
    vmferry_rewrite_free (none);

    for (size_t r = 0; r < sizeof corpus_rules / sizeof corpus_rules[0]; r++) {
      struct vmferry_rewrite *rw = rules (corpus_rules[r]);
      CLEANUP_FREE char *out = NULL;
      CLEANUP_FREE char *want = NULL;
      CLEANUP_FREE char *got = NULL;
      CLEANUP_FREE char *plain = NULL;
      CLEANUP_FREE char *d1 = NULL;
      CLEANUP_FREE char *d2 = NULL;
      size_t c1, c2;

      out = vmferry_rewrite_xml (rw, xml, len, path, NULL, &ch);
      if (out == NULL) {
        refused_n++;            /* e.g. --machine on a non-hvm guest */
        vmferry_rewrite_free (rw);
        continue;
      }
      if (ch) {
        changed[r]++;
        want = serialised (xml, len, rw);
        got = serialised (out, strlen (out), NULL);
        ck_assert_msg (strcmp (got, want) == 0, "%s, rules %zu: the output "
                       "means something else than the rewritten tree", path, r);
        plain = serialised (xml, len, NULL);
        d1 = vmferry_diff_unified (xml, len, "a", out, strlen (out), "b", 0, &c1);
        d2 = vmferry_diff_unified (plain, strlen (plain), "a", want,
                                   strlen (want), "b", 0, &c2);
        ck_assert_msg (c1 <= c2, "%s, rules %zu: %zu changed lines, the "
                       "rewrite changes %zu:\n%s", path, r, c1, c2, d1);
      }
      vmferry_rewrite_free (rw);
    }
  }
  free (names);
  printf ("corpus: %zu domains (and %zu other files), %zu refusals;"
          " changed per rule set:", files, other, refused_n);
  for (size_t r = 0; r < sizeof changed / sizeof changed[0]; r++)
    printf (" %zu", changed[r]);
  printf ("\n");
  ck_assert_uint_gt (files, 0);
}
END_TEST

/* With "corpus" as the argument: test_corpus alone (77, skipped, when
 * VMFERRY_XML_CORPUS is not set).
 */
int
main (int argc, char *argv[])
{
  bool corpus = argc > 1 && strcmp (argv[1], "corpus") == 0;
  Suite *s;
  TCase *tc;

  /* Before the suite is made: nothing of it to free (LeakSanitizer). */
  if (corpus && getenv ("VMFERRY_XML_CORPUS") == NULL) {
    printf ("skipped: VMFERRY_XML_CORPUS names no directory of domain XML\n");
    return 77;
  }
  s = suite_create ("rewrite");
  tc = tcase_create ("core");
  tcase_set_timeout (tc, 300);
  if (corpus) {
    tcase_add_test (tc, test_corpus);
  }
  else {
    const TTest *tests[] = {
      test_rule_syntax, test_rule_conflicts, test_map_path,
      test_two_disks_one_path, test_pool, test_identity, test_networks,
      test_disk_bus, test_disk_bus_freed_name,
      test_cpu_machine_emulator_drop, test_bad_xml,
      test_map_file, test_manifest, test_stream, test_stream_mac_map,
      test_stream_nothing_written,
      test_check_input, test_rename_file_rule, test_layout, test_stream_layout,
      test_diff,
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
      _tcase_add_test (tc, tests[i], 0, 0, 0, 1);
  }
  suite_add_tcase (s, tc);
  return vmferry_run_suite (s);
}
