/* Unit tests for lib/refs.c: the host references of a domain and the
 * import policy over them.  The hand-written definitions in
 * tests/data/refs/ say in comments what they attack and what must be
 * found (see the README there); the real-world corpus in
 * /work/shared/corpus/domain-xml (or $VMFERRY_DOMAIN_CORPUS) is run
 * when present.
 */
#include "config.h"

#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "refs.h"

static const char *const reason_names[] = {
  [VMFERRY_REF_NOT_ALLOWED] = "not-allowed",
  [VMFERRY_REF_NOT_NORMAL] = "not-normal",
  [VMFERRY_REF_FORMAT_MISMATCH] = "format-mismatch",
  [VMFERRY_REF_WRITABLE_LOADER] = "writable-loader",
  [VMFERRY_REF_UNKNOWN_EMULATOR] = "unknown-emulator",
};

static xmlDocPtr
parse_string (const char *xml)
{
  xmlDocPtr d = vmferry_domain_parse (xml, strlen (xml), "test");

  ck_assert_msg (d != NULL, "%s", vmferry_get_error ());
  return d;
}

/* Read a whole file (small) into a malloc'd buffer. */
static char *
slurp (const char *path, size_t *len_rtn)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  char *buf;

  if (fd < 0 || fstat (fd, &st) < 0 || st.st_size > 4 * 1024 * 1024)
    return NULL;
  buf = malloc (st.st_size + 1);
  if (buf == NULL || read (fd, buf, st.st_size) != st.st_size) {
    free (buf);
    return NULL;
  }
  buf[st.st_size] = '\0';
  *len_rtn = st.st_size;
  return buf;
}

/* ---------------------------------------------------------------- paths */

START_TEST (test_paths)
{
  static const struct {
    const char *path;
    bool normal;
    const char *normalised;
  } cases[] = {
    { "/", true, "/" },
    { "/etc/shadow", true, "/etc/shadow" },
    { "/a b/c:d", true, "/a b/c:d" },
    { "/srv/..x/.y", true, "/srv/..x/.y" },
    { "//etc/shadow", false, "/etc/shadow" },
    { "/etc//shadow", false, "/etc/shadow" },
    { "/etc/./shadow", false, "/etc/shadow" },
    { "/srv/iso/../../etc/shadow", false, "/etc/shadow" },
    { "/..", false, "/" },
    { "/../../x", false, "/x" },
    { "/srv/iso/", false, "/srv/iso" },
    { "/srv/iso/.", false, "/srv/iso" },
    { "/srv/iso/..", false, "/srv" },
    { "/a/b/c/../../d", false, "/a/d" },
    { "etc/shadow", false, NULL },
    { "./x", false, NULL },
    { "", false, NULL },
  };
  static const struct {
    const char *path, *dir;
    bool within;
  } within[] = {
    { "/srv/iso/a.iso", "/srv/iso", true },
    { "/srv/iso", "/srv/iso", true },
    { "/srv/isos/a.iso", "/srv/iso", false },
    { "/srv/iso.d", "/srv/iso", false },
    { "/srv", "/srv/iso", false },
    { "/anything", "/", true },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CLEANUP_FREE char *n = vmferry_path_normalise (cases[i].path);
    ck_assert_msg (vmferry_path_is_normal (cases[i].path) == cases[i].normal,
                   "'%s' normal?", cases[i].path);
    if (cases[i].normalised == NULL)
      ck_assert_msg (n == NULL, "'%s' normalised to '%s'", cases[i].path, n);
    else {
      ck_assert_msg (n != NULL, "%s", vmferry_get_error ());
      ck_assert_str_eq (n, cases[i].normalised);
      ck_assert (vmferry_path_is_normal (n));
    }
  }
  ck_assert (!vmferry_path_is_normal (NULL));
  for (size_t i = 0; i < sizeof within / sizeof within[0]; i++)
    ck_assert_msg (vmferry_path_within (within[i].path, within[i].dir) ==
                   within[i].within, "'%s' within '%s'?", within[i].path,
                   within[i].dir);
}
END_TEST

START_TEST (test_allow_valid)
{
  static const char *const good[] = {
    "/srv/iso", "/", "/srv/iso/", "rbd:pool/img", "pci:0000:03:00.0",
    "qemu-commandline", "volume:default/x.iso", "seclabel:dac:static:+0:+0",
    "http:/path", "usb:1050:0407",
  };
  static const char *const bad[] = {
    "", "srv/iso", "./x", "x", ":foo", "dir/rbd:pool",
  };

  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    ck_assert_msg (vmferry_refs_allow_valid (good[i]) == 0, "%s: %s", good[i],
                   vmferry_get_error ());
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg (vmferry_refs_allow_valid (bad[i]) == -1, "'%s' accepted",
                   bad[i]);
    ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "--allow-path"));
  }
  ck_assert_int_eq (vmferry_refs_allow_valid (NULL), -1);
}
END_TEST

/* ---------------------------------------------------------------- the definitions */

/* A policy read from a data file's comments. */
struct spec {
  struct vmferry_refs_carried carried[16];
  char *carried_buf[16];
  size_t ncarried;
  const char *allow[16];
  size_t nallow;
  char *emulator_buf;
  const char *emulators[16];
  size_t nemulators;
  bool have_emulators;
  char *expect[32];
  size_t nexpect;
};

static void
spec_free (struct spec *s)
{
  for (size_t i = 0; i < s->ncarried; i++)
    free (s->carried_buf[i]);
  for (size_t i = 0; i < s->nallow; i++)
    free ((char *) s->allow[i]);
  for (size_t i = 0; i < s->nexpect; i++)
    free (s->expect[i]);
  free (s->emulator_buf);
}

static void
read_spec (xmlDocPtr doc, struct spec *s)
{
  memset (s, 0, sizeof *s);
  for (xmlNodePtr n = doc->children; n; n = n->next) {
    CLEANUP_FREE char *c = NULL;
    char *v;
    size_t len;

    if (n->type != XML_COMMENT_NODE)
      continue;
    c = (char *) xmlNodeGetContent (n);
    ck_assert_ptr_nonnull (c);
    /* " key: value " */
    v = c + strspn (c, " ");
    len = strlen (v);
    if (len && v[len - 1] == ' ')
      v[--len] = '\0';
    if (strncmp (v, "carried: ", 9) == 0) {
      char *sp;
      ck_assert (s->ncarried < 16);
      s->carried_buf[s->ncarried] = strdup (v + 9);
      sp = strchr (s->carried_buf[s->ncarried], ' ');
      if (sp)
        *sp++ = '\0';
      s->carried[s->ncarried].path = s->carried_buf[s->ncarried];
      s->carried[s->ncarried].format = sp;
      s->ncarried++;
    }
    else if (strncmp (v, "allow: ", 7) == 0) {
      ck_assert (s->nallow < 16);
      s->allow[s->nallow++] = strdup (v + 7);
    }
    else if (strncmp (v, "emulators: ", 11) == 0) {
      char *save = NULL;
      s->emulator_buf = strdup (v + 11);
      s->have_emulators = true;
      for (char *t = strtok_r (s->emulator_buf, " ", &save); t;
           t = strtok_r (NULL, " ", &save)) {
        ck_assert (s->nemulators < 16);
        s->emulators[s->nemulators++] = t;
      }
    }
    else if (strncmp (v, "expect: ", 8) == 0) {
      ck_assert (s->nexpect < 32);
      s->expect[s->nexpect++] = strdup (v + 8);
    }
  }
}

/* Every kind the committed definitions produce, to require that each
 * kind is covered by one of them.
 */
static bool kinds_seen[VMFERRY_REF_KIND_MAX + 1];

static void
check_file (const char *dir, const char *name)
{
  CLEANUP_FREE char *path = NULL;
  CLEANUP_FREE char *buf = NULL;
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  struct vmferry_ref *refs = NULL;
  struct vmferry_ref_finding *f = NULL;
  size_t n = 0, nf = 0, len = 0;
  struct spec s;
  struct vmferry_refs_policy p;
  bool matched[32] = { false };
  bool attacks = false;

  ck_assert_int_ne (asprintf (&path, "%s/%s", dir, name), -1);
  buf = slurp (path, &len);
  ck_assert_msg (buf != NULL, "%s: cannot read", path);
  doc = vmferry_domain_parse (buf, len, name);
  ck_assert_msg (doc != NULL, "%s", vmferry_get_error ());
  read_spec (doc, &s);
  for (xmlNodePtr c = doc->children; c; c = c->next) {
    CLEANUP_FREE char *t = c->type == XML_COMMENT_NODE
      ? (char *) xmlNodeGetContent (c) : NULL;
    if (t && (strstr (t, "attacks: ") || strstr (t, "checks: ")))
      attacks = true;
  }
  ck_assert_msg (attacks, "%s: no comment saying what it attacks", name);

  p = (struct vmferry_refs_policy) {
    .carried = s.carried, .n_carried = s.ncarried,
    .allow = s.allow, .n_allow = s.nallow,
    .emulators = s.emulators, .n_emulators = s.nemulators,
    .have_emulators = s.have_emulators,
  };
  ck_assert_msg (vmferry_domain_refs (doc, &refs, &n) == 0, "%s: %s", name,
                 vmferry_get_error ());
  ck_assert_msg (vmferry_refs_check (refs, n, &p, &f, &nf) == 0, "%s: %s",
                 name, vmferry_get_error ());
  for (size_t i = 0; i < n; i++)
    kinds_seen[refs[i].kind] = true;

  for (size_t i = 0; i < nf; i++) {
    const struct vmferry_ref *r = &refs[f[i].ref];
    CLEANUP_FREE char *got = NULL;
    bool found = false;

    ck_assert_int_ne (asprintf (&got, "%s %s %s", reason_names[f[i].reason],
                                r->where, r->value), -1);
    for (size_t k = 0; k < s.nexpect; k++)
      if (!matched[k] && strcmp (s.expect[k], got) == 0) {
        matched[k] = found = true;
        break;
      }
    ck_assert_msg (found, "%s: unexpected finding '%s' (%s)", name, got,
                   f[i].message);
    /* The message names the element and the value, then says why. */
    ck_assert_msg (strncmp (f[i].message, r->where, strlen (r->where)) == 0,
                   "%s: %s", name, f[i].message);
    ck_assert_msg (strncmp (f[i].message + f[i].subject_len, ": ", 2) == 0,
                   "%s: subject of '%s' is not %zu bytes", name,
                   f[i].message, f[i].subject_len);
    if (f[i].allow) {
      CLEANUP_FREE char *hint = NULL;
      ck_assert_int_ne (asprintf (&hint, "--allow-path %s", f[i].allow), -1);
      ck_assert_msg (strstr (f[i].message, hint) != NULL,
                     "%s: '%s' does not say '%s'", name, f[i].message, hint);
      ck_assert_str_eq (f[i].allow, r->value);
    }
    else
      ck_assert (f[i].reason == VMFERRY_REF_NOT_NORMAL ||
                 f[i].reason == VMFERRY_REF_FORMAT_MISMATCH);
  }
  for (size_t k = 0; k < s.nexpect; k++)
    ck_assert_msg (matched[k], "%s: expected finding not found: '%s'", name,
                   s.expect[k]);
  printf ("refs: %s: %zu references, %zu findings, as expected\n", name, n,
          nf);
  vmferry_ref_findings_free (f, nf);
  vmferry_refs_free (refs, n);
  spec_free (&s);
}

START_TEST (test_data_files)
{
  const char *data = getenv ("VMFERRY_TEST_DATA");
  CLEANUP_FREE char *dir = NULL;
  struct dirent **names = NULL;
  int n, files = 0;

  ck_assert_msg (data != NULL, "VMFERRY_TEST_DATA is not set");
  ck_assert_int_ne (asprintf (&dir, "%s/refs", data), -1);
  n = scandir (dir, &names, NULL, alphasort);
  ck_assert_msg (n >= 0, "%s: %s", dir, strerror (errno));
  for (int i = 0; i < n; i++) {
    size_t len = strlen (names[i]->d_name);
    if (len > 4 && strcmp (names[i]->d_name + len - 4, ".xml") == 0) {
      check_file (dir, names[i]->d_name);
      files++;
    }
    free (names[i]);
  }
  free (names);
  ck_assert_int_ge (files, 10);
  for (int k = 1; k <= VMFERRY_REF_KIND_MAX; k++)
    ck_assert_msg (kinds_seen[k], "no definition in %s has a reference of "
                   "kind %s", dir, vmferry_ref_kind_name (k));
}
END_TEST

/* ---------------------------------------------------------------- messages */

START_TEST (test_messages)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse_string
    ("<domain type='kvm'><name>m</name>"
     "<os><type>hvm</type><kernel>/boot/vmlinuz</kernel></os><devices>"
     "<emulator>/usr/libexec/qemu-kvm</emulator>"
     "<disk type='file'><driver type='qcow2'/>"
     "<source file='/t/a.img'/><target dev='vda'/></disk>"
     "<disk type='file'><source file='/tmp/a&#10;b&#9;c'/>"
     "<target dev='vdb'/></disk>"
     "</devices></domain>");
  struct vmferry_ref *refs = NULL;
  struct vmferry_ref_finding *f = NULL;
  size_t n = 0, nf = 0;
  static const struct vmferry_refs_carried carried[] = {
    { "/t/a.img", "raw" },
  };
  static const char *const emulators[] = {
    "/usr/bin/qemu-system-x86_64", "/usr/bin/qemu-system-i386",
  };
  struct vmferry_refs_policy p = {
    .carried = carried, .n_carried = 1,
    .emulators = emulators, .n_emulators = 2, .have_emulators = true,
  };

  ck_assert_int_eq (vmferry_domain_refs (doc, &refs, &n), 0);
  ck_assert_uint_eq (n, 4);
  ck_assert_int_eq (vmferry_refs_check (refs, n, &p, &f, &nf), 0);
  ck_assert_uint_eq (nf, 4);
  ck_assert_str_eq (f[0].message,
                    "os/kernel /boot/vmlinuz: not carried by the stream and "
                    "not allowed (if the host's own file is meant: "
                    "--allow-path /boot/vmlinuz)");
  ck_assert_str_eq (f[1].message,
                    "emulator /usr/libexec/qemu-kvm: not one of this host's "
                    "emulators (/usr/bin/qemu-system-x86_64, "
                    "/usr/bin/qemu-system-i386), and libvirt runs it as "
                    "root; to run it anyway: --allow-path "
                    "/usr/libexec/qemu-kvm");
  ck_assert_str_eq (f[2].message,
                    "disk vda source /t/a.img: the XML gives it format "
                    "'qcow2', but the stream carried it as raw");
  ck_assert_ptr_null (f[2].allow);
  /* A value from the stream never reaches a terminal raw. */
  ck_assert_str_eq (f[3].message,
                    "disk vdb source /tmp/a\\x0ab\\x09c: not carried by the "
                    "stream and not allowed (if the host's own file is "
                    "meant: --allow-path /tmp/a\\x0ab\\x09c)");
  vmferry_ref_findings_free (f, nf);

  /* Without the host's list, every emulator is a finding. */
  p.have_emulators = false;
  p.emulators = NULL;
  p.n_emulators = 0;
  ck_assert_int_eq (vmferry_refs_check (refs, n, &p, &f, &nf), 0);
  ck_assert_uint_eq (nf, 4);
  ck_assert_int_eq (f[1].reason, VMFERRY_REF_UNKNOWN_EMULATOR);
  ck_assert_ptr_nonnull (strstr (f[1].message, "the host's list was not read"));
  vmferry_ref_findings_free (f, nf);

  /* The same, allowed by the values the findings named. */
  {
    const char *allow[] = { "/boot", "/usr/libexec/qemu-kvm", "/tmp" };
    p.allow = allow;
    p.n_allow = 3;
    ck_assert_int_eq (vmferry_refs_check (refs, n, &p, &f, &nf), 0);
    ck_assert_uint_eq (nf, 1);    /* the format mismatch stays */
    ck_assert_int_eq (f[0].reason, VMFERRY_REF_FORMAT_MISMATCH);
    vmferry_ref_findings_free (f, nf);
  }
  vmferry_refs_free (refs, n);
}
END_TEST

START_TEST (test_enforce)
{
  CLEANUP_XMLDOC xmlDocPtr doc = parse_string
    ("<domain type='kvm'><name>e</name><os><type>hvm</type></os><devices>"
     "<disk type='file'><source file='/srv/t/a.qcow2'/><target dev='vda'/>"
     "</disk>"
     "<disk type='block'><source dev='/dev/sda'/><target dev='vdb'/></disk>"
     "<disk type='file'><source file='/etc/shadow'/><target dev='vdc'/></disk>"
     "</devices></domain>");
  static const struct vmferry_refs_carried carried[] = {
    { "/srv/t/a.qcow2", "qcow2" },
  };
  const char *allow[] = { "/dev/sda", "/etc/shadow" };
  struct vmferry_refs_policy p = { .carried = carried, .n_carried = 1 };

  vmferry_clear_error ();
  ck_assert_int_eq (vmferry_refs_enforce (doc, &p), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "the domain refers to 2 host resources the stream did "
                    "not carry: disk vdb source /dev/sda: not carried by the "
                    "stream and not allowed (if the host's own file is "
                    "meant: --allow-path /dev/sda) (and 1 more)");
  p.allow = allow;
  p.n_allow = 1;
  ck_assert_int_eq (vmferry_refs_enforce (doc, &p), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "refers to a host resource the stream did "
                                 "not carry: disk vdc source /etc/shadow"));
  p.n_allow = 2;
  ck_assert_msg (vmferry_refs_enforce (doc, &p) == 0, "%s",
                 vmferry_get_error ());
}
END_TEST

/* A definition libvirt reads differently from a naive reader must not
 * hide a path: several <source> elements, attributes the type does not
 * use, a path in a namespaced attribute (libvirt ignores it: so does
 * this), and a very long chain of backing stores.
 */
START_TEST (test_hiding)
{
  CLEANUP_FREE char *xml = NULL;
  CLEANUP_FREE char *chain = NULL;
  size_t used = 0;
  struct vmferry_ref *refs = NULL;
  size_t n = 0;
  const int depth = 200;

  chain = malloc (depth * 120 + 1);
  ck_assert_ptr_nonnull (chain);
  for (int i = 0; i < depth; i++)
    used += sprintf (chain + used, "<backingStore type='file'>"
                     "<source file='/x/%d'/>", i);
  for (int i = 0; i < depth; i++)
    used += sprintf (chain + used, "</backingStore>");
  ck_assert_int_ne (asprintf
                    (&xml, "<domain type='kvm' xmlns:x='urn:x'><name>h</name>"
                     "<os><type>hvm</type></os><devices>"
                     "<disk type='file'><source file='/ok'/>"
                     "<source file='/second'/><source x:file='/ns'/>"
                     "<target dev='vda'/>%s</disk>"
                     "<disk type='network'><source protocol='nbd' "
                     "file='/hidden' dir='/hidden2'/><target dev='vdb'/>"
                     "</disk></devices></domain>", chain), -1);
  {
    CLEANUP_XMLDOC xmlDocPtr doc = parse_string (xml);
    bool second = false, hidden = false, hidden2 = false, deepest = false;
    ck_assert_int_eq (vmferry_domain_refs (doc, &refs, &n), 0);
    for (size_t i = 0; i < n; i++) {
      second |= strcmp (refs[i].value, "/second") == 0;
      hidden |= strcmp (refs[i].value, "/hidden") == 0;
      hidden2 |= strcmp (refs[i].value, "/hidden2") == 0;
      deepest |= strcmp (refs[i].value, "/x/199") == 0 &&
        strcmp (refs[i].where, "disk vda backing store 200 source") == 0;
      ck_assert_str_ne (refs[i].value, "/ns");
    }
    ck_assert (second && hidden && hidden2 && deepest);
    ck_assert_uint_eq (n, 2 + depth + 3);
    vmferry_refs_free (refs, n);
  }
}
END_TEST

/* ---------------------------------------------------------------- the corpus */

START_TEST (test_corpus)
{
  const char *dir = getenv ("VMFERRY_DOMAIN_CORPUS");
  struct dirent **names = NULL;
  size_t tally[VMFERRY_REF_KIND_MAX + 1] = { 0 };
  size_t domains = 0, others = 0, refs_total = 0, findings_total = 0;
  int n;

  if (dir == NULL)
    dir = "/work/shared/corpus/domain-xml";
  n = scandir (dir, &names, NULL, alphasort);
  if (n < 0) {
    printf ("refs: corpus: SKIP: %s: %s (set VMFERRY_DOMAIN_CORPUS to a "
            "directory of domain XML files)\n", dir, strerror (errno));
    return;
  }
  for (int i = 0; i < n; i++) {
    CLEANUP_FREE char *path = NULL;
    CLEANUP_FREE char *buf = NULL;
    CLEANUP_XMLDOC xmlDocPtr doc = NULL;
    struct vmferry_ref *refs = NULL;
    struct vmferry_ref_finding *f = NULL;
    size_t nr = 0, nf = 0, len = 0;
    struct vmferry_refs_policy p = { .have_emulators = true };
    CLEANUP_FREE struct dirent *ent = names[i];

    if (ent->d_name[0] == '.' ||
        asprintf (&path, "%s/%s", dir, ent->d_name) < 0)
      continue;
    buf = slurp (path, &len);
    if (buf == NULL)
      continue;
    /* Some are snapshots, not domains: refused by the parser. */
    doc = vmferry_domain_parse (buf, len, path);
    if (doc == NULL)
      continue;
    domains++;
    ck_assert_msg (vmferry_domain_refs (doc, &refs, &nr) == 0, "%s: %s",
                   path, vmferry_get_error ());
    ck_assert_msg (vmferry_refs_check (refs, nr, &p, &f, &nf) == 0, "%s: %s",
                   path, vmferry_get_error ());
    /* Nothing carried or allowed: every reference that no built-in
     * allowance covers is a finding.
     */
    ck_assert_uint_le (nf, nr);
    for (size_t k = 0; k < nr; k++) {
      tally[refs[k].kind]++;
      if (refs[k].kind == VMFERRY_REF_OTHER) {
        printf ("refs: corpus: %s: unclaimed: %s %s\n", ent->d_name,
                refs[k].where, refs[k].value);
        others++;
      }
    }
    refs_total += nr;
    findings_total += nf;
    vmferry_ref_findings_free (f, nf);
    vmferry_refs_free (refs, nr);
  }
  free (names);
  printf ("refs: corpus: %zu domains in %s, %zu references, %zu findings "
          "with nothing carried or allowed\n", domains, dir, refs_total,
          findings_total);
  for (int k = 1; k <= VMFERRY_REF_KIND_MAX; k++)
    printf ("refs: corpus:   %-18s %zu\n", vmferry_ref_kind_name (k),
            tally[k]);
  ck_assert_uint_gt (domains, 0);
  ck_assert_uint_gt (tally[VMFERRY_REF_DISK], 0);
  (void) others;
}
END_TEST

VMFERRY_UNIT_MAIN ("refs",
                   test_paths,
                   test_allow_valid,
                   test_data_files,
                   test_messages,
                   test_enforce,
                   test_hiding,
                   test_corpus)
