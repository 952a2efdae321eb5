/* Unit tests for the pure parts of lib/live.c: the thin volume XML, the
 * destination XML preparation, the job statistics sample.
 */
#include "config.h"

#include "unit.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "live.h"

#define DISK(dev, driver, extra)                                        \
  "    <disk type='file' device='disk'>\n"                              \
  "      " driver "\n"                                                  \
  "      <source file='/var/lib/libvirt/images/" dev ".qcow2'/>\n"      \
  extra                                                                 \
  "      <target dev='" dev "' bus='virtio'/>\n"                        \
  "    </disk>\n"

#define BACKING                                                         \
  "      <backingStore type='file'>\n"                                  \
  "        <format type='qcow2'/>\n"                                    \
  "        <source file='/var/lib/libvirt/images/base.qcow2'/>\n"       \
  "        <backingStore/>\n"                                           \
  "      </backingStore>\n"

static xmlDocPtr
parse (const char *devices)
{
  char xml[8192];
  xmlDocPtr doc;

  snprintf (xml, sizeof xml,
            "<domain type='kvm'><name>web01</name><devices>\n%s</devices></domain>",
            devices);
  doc = vmferry_domain_parse (xml, strlen (xml), "test");
  ck_assert_msg (doc != NULL, "%s", vmferry_get_error ());
  return doc;
}

static char *
serialise (xmlDocPtr doc)
{
  char *s = vmferry_domain_to_string (doc);
  ck_assert_ptr_nonnull (s);
  return s;
}

START_TEST (test_volume_xml)
{
  CLEANUP_FREE char *q = vmferry_live_volume_xml ("a&b.qcow2", "qcow2", 1073741824);
  CLEANUP_FREE char *r = vmferry_live_volume_xml ("x.img", "raw", 0);

  ck_assert_ptr_nonnull (q);
  ck_assert_ptr_nonnull (strstr (q, "<name>a&amp;b.qcow2</name>"));
  ck_assert_ptr_nonnull (strstr (q, "<capacity unit=\"bytes\">1073741824</capacity>"));
  ck_assert_ptr_nonnull (strstr (q, "<allocation unit=\"bytes\">0</allocation>"));
  ck_assert_ptr_nonnull (strstr (q, "<format type=\"qcow2\"/>"));
  ck_assert_ptr_nonnull (r);
  ck_assert_ptr_nonnull (strstr (r, "<format type=\"raw\"/>"));
  /* A volume name is one path component. */
  ck_assert_ptr_null (vmferry_live_volume_xml ("../x", "raw", 1));
  ck_assert_ptr_null (vmferry_live_volume_xml ("", "raw", 1));
  ck_assert_ptr_null (vmferry_live_volume_xml ("x", NULL, 1));
}
END_TEST

static const struct {
  const char *driver;           /* the disk's <driver> */
  bool detect;
  const char *want;             /* in the result */
  const char *not_want;         /* not in the result */
} prepare_cases[] = {
  { "<driver name='qemu' type='qcow2'/>", true,
    "discard=\"unmap\" detect_zeroes=\"unmap\"", NULL },
  { "<driver name='qemu' type='qcow2'/>", false, NULL, "detect_zeroes" },
  /* The disk's own choices stay. */
  { "<driver name='qemu' type='qcow2' detect_zeroes='off'/>", true,
    "detect_zeroes=\"off\"", "discard" },
  { "<driver name='qemu' type='qcow2' discard='ignore'/>", true,
    "discard=\"ignore\" detect_zeroes=\"on\"", NULL },
  { "<driver name='qemu' type='qcow2' discard='unmap'/>", true,
    "discard=\"unmap\" detect_zeroes=\"unmap\"", NULL },
};

START_TEST (test_prepare_xml)
{
  for (size_t i = 0; i < sizeof prepare_cases / sizeof prepare_cases[0]; i++) {
    char devices[4096];
    const char *targets[] = { "vda", NULL };
    CLEANUP_XMLDOC xmlDocPtr doc = NULL;
    CLEANUP_FREE char *out = NULL;

    snprintf (devices, sizeof devices, "%s%s",
              DISK ("vda", "%s", BACKING), DISK ("vdb", "%s", BACKING));
    {
      char filled[4096];
      snprintf (filled, sizeof filled, devices, prepare_cases[i].driver,
                prepare_cases[i].driver);
      doc = parse (filled);
    }
    ck_assert_int_eq (vmferry_live_prepare_xml (doc, targets,
                                                prepare_cases[i].detect), 0);
    out = serialise (doc);
    if (prepare_cases[i].want)
      ck_assert_msg (strstr (out, prepare_cases[i].want), "case %zu: %s", i, out);
    /* vdb is not copied: its driver and backing chain stay. */
    {
      const char *vdb = strstr (out, "vdb.qcow2");
      ck_assert_ptr_nonnull (vdb);
      /* One backing store left, and it is vdb's. */
      ck_assert_msg (strstr (out, "base.qcow2") > vdb, "case %zu: %s", i, out);
      ck_assert_msg (strstr (strstr (out, "base.qcow2") + 1, "base.qcow2") == NULL,
                     "case %zu: vda kept its backing store: %s", i, out);
      if (prepare_cases[i].not_want) {
        const char *hit = strstr (out, prepare_cases[i].not_want);
        ck_assert_msg (hit == NULL || hit > vdb, "case %zu: %s", i, out);
      }
    }
  }
}
END_TEST

START_TEST (test_prepare_no_targets)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse (DISK ("vda", "<driver name='qemu' type='qcow2'/>", BACKING));
  CLEANUP_FREE char *before = serialise (doc), *after = NULL;
  const char *targets[] = { NULL };

  ck_assert_int_eq (vmferry_live_prepare_xml (doc, targets, true), 0);
  after = serialise (doc);
  ck_assert_str_eq (before, after);
}
END_TEST

START_TEST (test_sample)
{
  virTypedParameterPtr p = NULL;
  int n = 0, max = 0;
  struct vmferry_live_sample s;

  /* libvirt's error state is set up here (the tools do it on connect). */
  ck_assert_int_eq (virInitialize (), 0);
  ck_assert_int_eq (virTypedParamsAddULLong (&p, &n, &max, VIR_DOMAIN_JOB_DISK_PROCESSED, 10), 0);
  ck_assert_int_eq (virTypedParamsAddULLong (&p, &n, &max, VIR_DOMAIN_JOB_DISK_TOTAL, 100), 0);
  ck_assert_int_eq (virTypedParamsAddULLong (&p, &n, &max, VIR_DOMAIN_JOB_MEMORY_ITERATION, 2), 0);
  vmferry_live_sample_parse (p, n, &s);
  ck_assert_uint_eq (s.disk_processed, 10);
  ck_assert_uint_eq (s.disk_total, 100);
  ck_assert_uint_eq (s.mem_iteration, 2);
  /* Missing fields read as zero. */
  ck_assert_uint_eq (s.mem_processed, 0);
  ck_assert_uint_eq (s.mem_total, 0);
  ck_assert (!s.has_mem_remaining && !s.has_disk_remaining);
  ck_assert_int_eq (virTypedParamsAddULLong (&p, &n, &max,
                                             VIR_DOMAIN_JOB_MEMORY_REMAINING,
                                             0), 0);
  vmferry_live_sample_parse (p, n, &s);
  ck_assert (s.has_mem_remaining);
  ck_assert_uint_eq (s.mem_remaining, 0);
  virTypedParamsFree (p, n);
}
END_TEST

/* The "end" events the bar wrote to FD so far, as "label=done/total"
 * joined by spaces.
 */
static void
ends (int fd, char *out, size_t len)
{
  char buf[8192], *line, *save;
  ssize_t n = read (fd, buf, sizeof buf - 1);

  ck_assert_int_ge (n, 0);
  buf[n] = '\0';
  out[0] = '\0';
  for (line = strtok_r (buf, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save)) {
    json_object *o = json_tokener_parse (line), *ev, *label, *done, *total;
    size_t at = strlen (out);

    ck_assert_ptr_nonnull (o);
    ck_assert (json_object_object_get_ex (o, "event", &ev));
    ck_assert (json_object_object_get_ex (o, "label", &label));
    ck_assert (json_object_object_get_ex (o, "done", &done));
    ck_assert (json_object_object_get_ex (o, "total", &total));
    if (strcmp (json_object_get_string (ev), "end") == 0)
      snprintf (out + at, len - at, "%s%s=%" PRIu64 "/%" PRIu64, at ? " " : "",
                json_object_get_string (label), json_object_get_uint64 (done),
                json_object_get_uint64 (total));
    json_object_put (o);
  }
}

START_TEST (test_bar)
{
  int pfd[2];
  char got[1024];
  struct vmferry_progress *p;
  struct vmferry_live_bar b = { 0 };
  struct vmferry_live_sample disks = {
    .disk_total = 1000, .disk_processed = 260, .mem_total = 4000,
  };
  struct vmferry_live_sample mem = {
    .disk_total = 1000, .disk_processed = 1000, .mem_total = 4000,
    .mem_processed = 10, .has_mem_remaining = true, .mem_remaining = 3000,
  };

  ck_assert_int_eq (pipe (pfd), 0);
  p = vmferry_progress_new (VMFERRY_PROGRESS_MACHINE, pfd[1]);
  ck_assert_ptr_nonnull (p);

  /* Seen: the disks' last sample said 26%, memory's said almost nothing
   * sent (zero pages go as markers).  Memory's start ends the disks in
   * full; the completed job ends memory in full.
   */
  vmferry_live_bar_report (p, &b, &disks);
  vmferry_live_bar_report (p, &b, &mem);
  ends (pfd[0], got, sizeof got);
  ck_assert_str_eq (got, "disks=1000/1000");
  vmferry_live_bar_end (p, &b, true);
  ends (pfd[0], got, sizeof got);
  ck_assert_str_eq (got, "memory=4000/4000");

  /* Memory too quick to be sampled: it is shown done, from the total the
   * disks' samples carried.
   */
  memset (&b, 0, sizeof b);
  vmferry_live_bar_report (p, &b, &disks);
  vmferry_live_bar_end (p, &b, true);
  ends (pfd[0], got, sizeof got);
  ck_assert_str_eq (got, "disks=1000/1000 memory=4000/4000");

  /* A job that failed ends where it stopped (the error says why), and a
   * late sample without memory figures does not start the disks again.
   */
  memset (&b, 0, sizeof b);
  vmferry_live_bar_report (p, &b, &disks);
  vmferry_live_bar_report (p, &b, &mem);
  disks.disk_processed = 1000;
  vmferry_live_bar_report (p, &b, &disks);
  vmferry_live_bar_end (p, &b, false);
  ends (pfd[0], got, sizeof got);
  ck_assert_str_eq (got, "disks=1000/1000 memory=1000/4000");

  /* The disks done before the first sample (it is memory's already):
   * they are shown done first.
   */
  memset (&b, 0, sizeof b);
  vmferry_live_bar_report (p, &b, &mem);
  vmferry_live_bar_end (p, &b, true);
  ends (pfd[0], got, sizeof got);
  ck_assert_str_eq (got, "disks=1000/1000 memory=4000/4000");

  /* Nothing sampled, nothing drawn. */
  memset (&b, 0, sizeof b);
  vmferry_live_bar_end (p, &b, true);
  vmferry_progress_free (p);
  close (pfd[1]);
  ends (pfd[0], got, sizeof got);
  ck_assert_str_eq (got, "");
  close (pfd[0]);
}
END_TEST

VMFERRY_UNIT_MAIN ("live", test_volume_xml, test_prepare_xml,
                   test_prepare_no_targets, test_sample, test_bar)
