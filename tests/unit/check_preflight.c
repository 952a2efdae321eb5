/* Unit tests for lib/preflight.c without a destination: loading what to
 * check (stream, XML; bad input refused) and printing findings.  The
 * checks themselves need a libvirtd: tests/integration/check-*.sh.
 */
#include "config.h"

#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "preflight.h"
#include "stream.h"
#include "validate.h"

static const char xml[] =
  "<domain type='kvm'><name>web01</name>"
  "<os><type arch='x86_64' machine='pc'>hvm</type>"
  "<nvram>/var/lib/libvirt/qemu/nvram/web01_VARS.fd</nvram></os><devices>"
  "<disk type='file' device='disk'><source file='/nonexistent/web01.qcow2'/>"
  "<target dev='vda' bus='virtio'/></disk>"
  "<disk type='file' device='cdrom'><source file='/nonexistent/x.iso'/>"
  "<target dev='sda' bus='sata'/><readonly/></disk>"
  "<disk type='volume' device='disk'><source pool='p' volume='v'/>"
  "<target dev='vdb' bus='virtio'/></disk>"
  "</devices></domain>";

static const char manifest[] =
  "{\"format\": \"vmferry-manifest\", \"version\": 1,"
  " \"domain\": {\"name\": \"web01\","
  " \"uuid\": \"4dea22b3-1d52-d8f3-2516-782e98ab3fa0\"},"
  " \"files\": [{\"index\": 0, \"role\": \"disk\", \"name\": \"web01.qcow2\","
  " \"source_path\": \"/nonexistent/web01.qcow2\", \"format\": \"qcow2\","
  " \"size\": 65536, \"allocated\": 12345},"
  " {\"index\": 1, \"role\": \"disk\", \"name\": \"v\", \"pool\": \"p\","
  " \"volume\": \"v\", \"source_path\": \"/old/v\", \"format\": \"raw\","
  " \"size\": 7, \"allocated\": 7},"
  " {\"index\": 2, \"role\": \"tpm\", \"name\": \"tpm2/x\","
  " \"source_path\": \"/x\", \"format\": \"raw\", \"size\": 1,"
  " \"allocated\": 1}]}";

static char *
write_file (const void *buf, size_t len)
{
  char *path = strdup ("/tmp/vmferry-pf-XXXXXX");
  int fd = mkstemp (path);

  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (write (fd, buf, len), (ssize_t) len);
  close (fd);
  return path;
}

static const struct vmferry_check_file *
find (const struct vmferry_check_input *in, const char *path)
{
  for (size_t i = 0; i < in->files.len; i++)
    if (strcmp (in->files.ptr[i].path, path) == 0)
      return &in->files.ptr[i];
  return NULL;
}

START_TEST (test_load_xml)
{
  CLEANUP_UNLINK_FREE char *p = write_file (xml, strlen (xml));
  struct vmferry_check_input in;
  const struct vmferry_check_file *f;

  ck_assert_msg (vmferry_check_input_load (p, NULL, &in) == 0, "%s", vmferry_get_error ());
  ck_assert_ptr_nonnull (in.doc);
  f = find (&in, "/nonexistent/web01.qcow2");
  ck_assert_ptr_nonnull (f);
  ck_assert (f->carried);
  ck_assert_uint_eq (f->allocated, 0);          /* not here: unknown */
  f = find (&in, "/nonexistent/x.iso");
  ck_assert_ptr_nonnull (f);
  ck_assert (!f->carried);                      /* a CD-ROM stays */
  ck_assert_ptr_nonnull (find (&in, "/var/lib/libvirt/qemu/nvram/web01_VARS.fd"));
  vmferry_check_input_free (&in);
}
END_TEST

START_TEST (test_load_stream)
{
  char path[] = "/tmp/vmferry-pf-XXXXXX";
  int fd = mkstemp (path);
  struct vmferry_stream_writer *w = vmferry_stream_writer_new (fd, path);
  struct vmferry_check_input in;
  const struct vmferry_check_file *f;

  ck_assert_int_eq (vmferry_stream_write_header (w), 0);
  ck_assert_int_eq (vmferry_stream_write_manifest (w, manifest), 0);
  ck_assert_int_eq (vmferry_stream_write_xml (w, xml), 0);
  /* The rest of the stream is never read. */
  vmferry_stream_writer_free (w);
  close (fd);

  ck_assert_msg (vmferry_check_input_load (path, NULL, &in) == 0, "%s", vmferry_get_error ());
  f = find (&in, "/nonexistent/web01.qcow2");
  ck_assert_ptr_nonnull (f);
  ck_assert_uint_eq (f->allocated, 12345);
  ck_assert (f->carried);
  /* The stream's format, for the reference check to compare. */
  ck_assert_str_eq (f->format, "qcow2");
  f = find (&in, "volume:p/v");
  ck_assert_ptr_nonnull (f);
  ck_assert_uint_eq (f->allocated, 7);
  ck_assert_str_eq (f->format, "raw");
  ck_assert_ptr_null (find (&in, "/x"));        /* TPM state: by UUID */

  /* --allow-path values: paths and resource names, never relative. */
  ck_assert_int_eq (vmferry_check_input_allow (&in, "/srv/iso"), 0);
  ck_assert_int_eq (vmferry_check_input_allow (&in, "rbd:pool/img"), 0);
  ck_assert_int_eq (vmferry_check_input_allow (&in, "srv/iso"), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "--allow-path: 'srv/iso'"));
  ck_assert_uint_eq (in.allow.len, 2);
  ck_assert_str_eq (in.allow.ptr[1], "rbd:pool/img");
  vmferry_check_input_free (&in);
  unlink (path);
}
END_TEST

START_TEST (test_load_refused)
{
  static const char *const bad[] = {
    "<!DOCTYPE domain [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><domain>&e;</domain>",
    "<domain><name>x</name>",
    "VMFRgarbage that is not a record header at all, long enough for one",
  };
  static const char *const want[] = { "DOCTYPE", "cannot parse", ": record 0: " };
  struct vmferry_check_input in;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CLEANUP_UNLINK_FREE char *p = write_file (bad[i], strlen (bad[i]));
    ck_assert_int_eq (vmferry_check_input_load (p, NULL, &in), -1);
    ck_assert_msg (strstr (vmferry_get_error (), want[i]), "%zu: %s", i, vmferry_get_error ());
    ck_assert_ptr_null (in.doc);
  }
}
END_TEST

/* A manifest the importer refuses is refused here, in the importer's
 * words (formats/validate.c): one parser decides for both.
 */
START_TEST (test_load_manifest_refused)
{
  static const char *const bad[] = {
    /* No UUID, files without format and size: what check once took. */
    "{\"format\": \"vmferry-manifest\", \"version\": 1,"
    " \"domain\": {\"name\": \"web01\"}, \"files\": []}",
    /* A name that is a path. */
    "{\"format\": \"vmferry-manifest\", \"version\": 1,"
    " \"domain\": {\"name\": \"web01\","
    " \"uuid\": \"4dea22b3-1d52-d8f3-2516-782e98ab3fa0\"},"
    " \"files\": [{\"index\": 0, \"role\": \"disk\", \"name\": \"../x\","
    " \"source_path\": \"/x\", \"format\": \"raw\", \"size\": 1,"
    " \"allocated\": 1}]}",
    /* A version this vmferry does not read. */
    "{\"format\": \"vmferry-manifest\", \"version\": 2}",
  };
  static const char *const want[] = {
    "manifest: domain.uuid: missing", "manifest: files[0].name: ",
    "manifest: version 2 is not supported",
  };

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char path[] = "/tmp/vmferry-pf-XXXXXX";
    int fd = mkstemp (path);
    struct vmferry_stream_writer *w = vmferry_stream_writer_new (fd, path);
    struct vmferry_stream_reader *r;
    struct vmferry_validator *v = vmferry_validator_new (path);
    struct vmferry_check_input in;
    struct vmferry_record rec;
    CLEANUP_FREE char *msg = NULL;
    int got, vr = 0;

    ck_assert_int_eq (vmferry_stream_write_header (w), 0);
    ck_assert_int_eq (vmferry_stream_write_manifest (w, bad[i]), 0);
    ck_assert_int_eq (vmferry_stream_write_xml (w, xml), 0);
    vmferry_stream_writer_free (w);

    ck_assert_int_eq (vmferry_check_input_load (path, NULL, &in), -1);
    ck_assert_ptr_null (in.doc);
    msg = strdup (vmferry_get_error ());
    ck_assert_msg (strstr (msg, want[i]), "%zu: %s", i, msg);
    ck_assert_msg (strstr (msg, ": record 1 (manifest) at byte "),
                   "%zu: %s", i, msg);

    /* The importer's validator, on the same bytes: the same message. */
    lseek (fd, 0, SEEK_SET);
    r = vmferry_stream_reader_new (fd, path);
    while (vr == 0 && (got = vmferry_stream_read_record (r, &rec)) == 1)
      vr = vmferry_validator_record (v, &rec);
    ck_assert_int_eq (vr, -1);
    ck_assert_str_eq (vmferry_get_error (), msg);
    vmferry_stream_reader_free (r);
    vmferry_validator_free (v);
    close (fd);
    unlink (path);
  }
}
END_TEST

START_TEST (test_print)
{
  char *fix1[] = { strdup ("--map-network"), strdup ("lan a=default"), NULL };
  struct vmferry_finding v[] = {
    { .severity = VMFERRY_SEV_ERROR, .check = strdup ("network"),
      .object = strdup ("network lan a"), .message = strdup ("no such network"),
      .fix = malloc (sizeof fix1) },
    { .severity = VMFERRY_SEV_WARNING, .check = strdup ("memory"),
      .object = strdup ("memory"), .message = strdup ("little"),
      .hint = strdup ("buy more") },
  };
  struct vmferry_findings f = {
    .list = { .ptr = malloc (sizeof v), .len = 2, .cap = 2 },
  };
  char *buf = NULL;
  size_t len = 0;
  FILE *out;

  memcpy (v[0].fix, fix1, sizeof fix1);
  memcpy (f.list.ptr, v, sizeof v);
  ck_assert (vmferry_findings_blocking (&f));

  out = open_memstream (&buf, &len);
  ck_assert_int_eq (vmferry_findings_print (&f, out, false, "qemu:///x", "web01"), 0);
  fclose (out);
  ck_assert_msg (strstr (buf, "error: network: network lan a: no such network\n"
                         "  fix: vmferry-rewrite --map-network 'lan a=default'\n"), "%s", buf);
  ck_assert_msg (strstr (buf, "warning: memory: memory: little\n  fix: buy more\n"), "%s", buf);
  ck_assert_msg (strstr (buf, "blocked: 1 error, 1 warning: web01 cannot run on qemu:///x"), "%s", buf);
  ck_assert_msg (strstr (buf, "rewrite with: vmferry-rewrite --map-network 'lan a=default'\n"), "%s", buf);
  free (buf);

  out = open_memstream (&buf, &len);
  ck_assert_int_eq (vmferry_findings_print (&f, out, true, "qemu:///x", "web01"), 0);
  fclose (out);
  ck_assert_msg (strstr (buf, "\"ok\": false"), "%s", buf);
  ck_assert_msg (strstr (buf, "\"fix\": [\n        \"--map-network\",\n        \"lan a=default\"\n      ]"), "%s", buf);
  ck_assert_msg (strstr (buf, "\"fix\": null"), "%s", buf);
  ck_assert_msg (strstr (buf, "\"hint\": \"buy more\""), "%s", buf);
  free (buf);

  /* Only a warning: nothing blocks. */
  f.list.ptr[0].severity = VMFERRY_SEV_INFO;
  ck_assert (!vmferry_findings_blocking (&f));
  out = open_memstream (&buf, &len);
  ck_assert_int_eq (vmferry_findings_print (&f, out, false, "qemu:///x", "web01"), 0);
  fclose (out);
  ck_assert_msg (strstr (buf, "ok: web01 can be defined and started on qemu:///x (1 warning)"), "%s", buf);
  free (buf);
  vmferry_findings_free (&f);
  ck_assert_ptr_null (f.list.ptr);
}
END_TEST

VMFERRY_UNIT_MAIN ("preflight", test_load_xml, test_load_stream,
                   test_load_refused, test_load_manifest_refused, test_print)
