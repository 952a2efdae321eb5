/* Unit tests for formats/qcow2.c: real images made by qemu-img, and
 * hand-made hostile headers.
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "qcow2.h"

/* Each test works in its own directory under one root in /var/tmp (big
 * sparse files are fine there).  check runs every test in a child that
 * may die on a failed assertion without cleaning up, so the root belongs
 * to the parent process: made before the tests, removed after them.
 */
static char root[64];
static pid_t root_owner;
static char dir[128];

__attribute__ ((constructor)) static void
make_root (void)
{
  strcpy (root, "/var/tmp/check_qcow2.XXXXXX");
  if (mkdtemp (root) == NULL) {
    perror ("mkdtemp");
    exit (EXIT_FAILURE);
  }
  root_owner = getpid ();
}

__attribute__ ((destructor)) static void
remove_root (void)
{
  char cmd[128];

  if (getpid () != root_owner)
    return;
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system (cmd) != 0)
    fprintf (stderr, "cannot remove %s\n", root);
}

static void
make_dir (void)
{
  snprintf (dir, sizeof dir, "%s/XXXXXX", root);
  ck_assert_ptr_nonnull (mkdtemp (dir));
}

/* Run a shell command in the test directory; it must succeed. */
static void
run (const char *fs, ...)
{
  char cmd[1024];
  char full[1200];
  va_list args;

  va_start (args, fs);
  vsnprintf (cmd, sizeof cmd, fs, args);
  va_end (args);
  snprintf (full, sizeof full, "cd '%s' && %s >/dev/null", dir, cmd);
  ck_assert_msg (system (full) == 0, "failed: %s", cmd);
}

static char *
path_of (const char *name)
{
  char *p;

  ck_assert_int_ne (asprintf (&p, "%s/%s", dir, name), -1);
  return p;
}

/* Probe DIR/NAME; returns what vmferry_qcow2_probe returned. */
static int
probe (const char *name, struct vmferry_qcow2_info *info)
{
  CLEANUP_FREE char *p = path_of (name);
  CLEANUP_CLOSE int fd = open (p, O_RDONLY);

  ck_assert_int_ge (fd, 0);
  vmferry_clear_error ();
  return vmferry_qcow2_probe (fd, name, info);
}

START_TEST (test_not_qcow2)
{
  struct vmferry_qcow2_info info;

  make_dir ();
  run ("truncate -s 1M raw.img && : > empty && printf QFI > short");
  ck_assert_int_eq (probe ("raw.img", &info), 0);
  ck_assert_int_eq (probe ("empty", &info), 0);
  ck_assert_int_eq (probe ("short", &info), 0);
}
END_TEST

START_TEST (test_plain)
{
  struct vmferry_qcow2_info info;

  make_dir ();
  run ("qemu-img create -q -f qcow2 v3.qcow2 1G");
  run ("qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 v2.qcow2 10M");
  ck_assert_int_eq (probe ("v3.qcow2", &info), 1);
  ck_assert_uint_eq (info.version, 3);
  ck_assert_uint_eq (info.virtual_size, 1024 * 1024 * 1024);
  ck_assert_uint_eq (info.cluster_bits, 16);
  ck_assert_uint_eq (info.crypt_method, VMFERRY_QCOW2_CRYPT_NONE);
  ck_assert (!info.has_backing && !info.has_data_file);
  ck_assert_str_eq (info.backing_file, "");
  ck_assert_str_eq (info.backing_format, "");
  ck_assert_int_eq (vmferry_qcow2_check_carriable (&info, "v3.qcow2"), 0);

  ck_assert_int_eq (probe ("v2.qcow2", &info), 1);
  ck_assert_uint_eq (info.version, 2);
  ck_assert_uint_eq (info.cluster_bits, 12);
  ck_assert_uint_eq (info.header_length, 72);
  ck_assert_uint_eq (info.virtual_size, 10 * 1024 * 1024);
}
END_TEST

START_TEST (test_backing_qcow2)
{
  struct vmferry_qcow2_info info;
  CLEANUP_FREE char *base = NULL;
  CLEANUP_FREE char *top = NULL;
  struct vmferry_qcow2_link *chain = NULL;
  size_t n = 0;

  make_dir ();
  base = path_of ("base.qcow2");
  top = path_of ("top.qcow2");
  run ("qemu-img create -q -f qcow2 base.qcow2 64M");
  run ("qemu-img create -q -f qcow2 -b '%s' -F qcow2 top.qcow2", base);
  ck_assert_int_eq (probe ("top.qcow2", &info), 1);
  ck_assert (info.has_backing);
  ck_assert_str_eq (info.backing_file, base);
  ck_assert_str_eq (info.backing_format, "qcow2");
  ck_assert_uint_eq (info.virtual_size, 64 * 1024 * 1024);

  ck_assert_msg (vmferry_qcow2_chain (top, "qcow2", &chain, &n) == 0,
                 "%s", vmferry_get_error ());
  ck_assert_uint_eq (n, 2);
  ck_assert_str_eq (chain[0].path, top);
  ck_assert_str_eq (chain[0].format, "qcow2");
  ck_assert_str_eq (chain[0].backing_name, base);
  ck_assert (!chain[0].format_probed);
  ck_assert_str_eq (chain[1].path, base);
  ck_assert_str_eq (chain[1].format, "qcow2");
  ck_assert_str_eq (chain[1].backing_name, "");
  ck_assert (!chain[1].format_probed);
  vmferry_qcow2_chain_free (chain, n);
}
END_TEST

START_TEST (test_backing_raw)
{
  struct vmferry_qcow2_info info;
  CLEANUP_FREE char *top = NULL;
  struct vmferry_qcow2_link *chain = NULL;
  size_t n = 0;

  make_dir ();
  top = path_of ("top.qcow2");
  /* The raw base starts with the qcow2 magic: guest data, never a header. */
  run ("truncate -s 8M base.raw && printf 'QFI\\373' | dd of=base.raw conv=notrunc 2>/dev/null");
  run ("qemu-img create -q -f qcow2 -b base.raw -F raw top.qcow2");
  ck_assert_int_eq (probe ("top.qcow2", &info), 1);
  ck_assert_str_eq (info.backing_file, "base.raw");
  ck_assert_str_eq (info.backing_format, "raw");

  /* Probing the top too. */
  ck_assert_msg (vmferry_qcow2_chain (top, NULL, &chain, &n) == 0,
                 "%s", vmferry_get_error ());
  ck_assert_uint_eq (n, 2);
  ck_assert (chain[0].format_probed);
  ck_assert_str_eq (chain[0].format, "qcow2");
  ck_assert_str_eq (chain[1].format, "raw");
  ck_assert (!chain[1].format_probed);
  ck_assert_uint_eq (chain[1].virtual_size, 0);
  vmferry_qcow2_chain_free (chain, n);
}
END_TEST

START_TEST (test_backing_relative)
{
  struct vmferry_qcow2_info info;
  CLEANUP_FREE char *want = NULL;
  CLEANUP_FREE char *got = NULL;
  struct vmferry_qcow2_link *chain = NULL;
  size_t n = 0;

  make_dir ();
  run ("mkdir sub && qemu-img create -q -f qcow2 base.qcow2 1M");
  run ("qemu-img create -q -f qcow2 -b ../base.qcow2 -F qcow2 sub/mid.qcow2");
  run ("qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 sub/top.qcow2");
  ck_assert_int_eq (probe ("sub/top.qcow2", &info), 1);
  ck_assert_str_eq (info.backing_file, "mid.qcow2");

  /* Relative to the overlay's directory, not to the current one; and a
   * relative overlay is made absolute against the current directory.
   */
  ck_assert_int_eq (chdir (dir), 0);
  ck_assert_msg (vmferry_qcow2_chain ("sub/top.qcow2", "qcow2", &chain, &n) == 0,
                 "%s", vmferry_get_error ());
  ck_assert_uint_eq (n, 3);
  want = path_of ("sub/mid.qcow2");
  ck_assert_str_eq (chain[1].path, want);
  free (want);
  want = path_of ("sub/../base.qcow2");
  ck_assert_str_eq (chain[2].path, want);
  ck_assert_str_eq (chain[1].backing_name, "../base.qcow2");
  vmferry_qcow2_chain_free (chain, n);

  got = vmferry_qcow2_backing_path ("sub/top.qcow2", "mid.qcow2");
  free (want);
  want = path_of ("sub/mid.qcow2");
  ck_assert_str_eq (got, want);
}
END_TEST

START_TEST (test_backing_path_rules)
{
  static const struct {
    const char *overlay, *backing, *want;
  } ok[] = {
    { "/srv/vm/top.qcow2", "/srv/base/b.qcow2", "/srv/base/b.qcow2" },
    { "/srv/vm/top.qcow2", "b.qcow2", "/srv/vm/b.qcow2" },
    { "/srv/vm/top.qcow2", "../b.qcow2", "/srv/vm/../b.qcow2" },
    { "/top.qcow2", "b.qcow2", "/b.qcow2" },
    { "/srv/vm/top.qcow2", "./a:b.qcow2", "/srv/vm/./a:b.qcow2" },
    { "/srv/vm/top.qcow2", "/srv/a:b.qcow2", "/srv/a:b.qcow2" },
  };
  static const struct {
    const char *backing, *want;
  } bad[] = {
    { "nbd:localhost:10809",
      "/o.qcow2: backing file 'nbd:localhost:10809' uses the protocol 'nbd': "
      "only local paths are followed" },
    { "json:{\"file.driver\":\"http\",\"file.url\":\"http://x/y\"}",
      "uses the protocol 'json'" },
    { "http://example.com/base.qcow2", "uses the protocol 'http'" },
    { "file:/etc/passwd", "uses the protocol 'file'" },
    { "a:b.qcow2", "uses the protocol 'a'" },
    { "", "/o.qcow2: empty backing file name" },
  };

  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    CLEANUP_FREE char *p = vmferry_qcow2_backing_path (ok[i].overlay,
                                                       ok[i].backing);
    ck_assert_msg (p != NULL, "%s", vmferry_get_error ());
    ck_assert_str_eq (p, ok[i].want);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_ptr_null (vmferry_qcow2_backing_path ("/o.qcow2", bad[i].backing));
    ck_assert_msg (strstr (vmferry_get_error (), bad[i].want),
                   "'%s' lacks '%s'", vmferry_get_error (), bad[i].want);
  }
}
END_TEST

START_TEST (test_chain_refusals)
{
  CLEANUP_FREE char *a = NULL;
  CLEANUP_FREE char *o = NULL;
  CLEANUP_FREE char *p = NULL;
  struct vmferry_qcow2_link *chain = NULL;
  size_t n = 0;

  make_dir ();
  a = path_of ("a.qcow2");
  o = path_of ("o.qcow2");
  p = path_of ("p.qcow2");

  /* a -> b -> a, made with unsafe rebases. */
  run ("qemu-img create -q -f qcow2 a.qcow2 1M");
  run ("qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2");
  run ("qemu-img rebase -u -f qcow2 -b b.qcow2 -F qcow2 a.qcow2");
  ck_assert_int_eq (vmferry_qcow2_chain (a, "qcow2", &chain, &n), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "backing chain loops"));

  /* The overlay says qcow2; the base is raw. */
  run ("truncate -s 1M base.raw");
  run ("qemu-img create -q -f qcow2 -b base.raw -F raw o.qcow2");
  run ("qemu-img rebase -u -f qcow2 -b base.raw -F qcow2 o.qcow2");
  ck_assert_int_eq (vmferry_qcow2_chain (o, "qcow2", &chain, &n), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "base.raw: not a qcow2 image, but "));

  /* A protocol backing name. */
  run ("qemu-img rebase -u -f qcow2 -b nbd:localhost:10809 -F raw o.qcow2");
  ck_assert_int_eq (vmferry_qcow2_chain (o, "qcow2", &chain, &n), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "uses the protocol 'nbd'"));

  /* A format we do not carry. */
  run ("qemu-img create -q -f vmdk v.vmdk 1M");
  run ("qemu-img create -q -f qcow2 -b v.vmdk -F vmdk p.qcow2");
  ck_assert_int_eq (vmferry_qcow2_chain (p, "qcow2", &chain, &n), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "v.vmdk: format 'vmdk' is not supported"));

  /* A missing base. */
  run ("rm v.vmdk");
  ck_assert_int_eq (vmferry_qcow2_chain (p, "raw", &chain, &n), 0);
  ck_assert_uint_eq (n, 1);
  vmferry_qcow2_chain_free (chain, n);
  run ("qemu-img rebase -u -f qcow2 -b gone.qcow2 -F qcow2 p.qcow2");
  ck_assert_int_eq (vmferry_qcow2_chain (p, "qcow2", &chain, &n), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "gone.qcow2: cannot open: No such file"));
}
END_TEST

START_TEST (test_data_file)
{
  struct vmferry_qcow2_info info;

  make_dir ();
  run ("qemu-img create -q -f qcow2 -o data_file=d.raw,data_file_raw=on x.qcow2 1M");
  ck_assert_int_eq (probe ("x.qcow2", &info), 1);
  ck_assert (info.has_data_file);
  ck_assert (info.incompatible_features & VMFERRY_QCOW2_INCOMPAT_DATA_FILE);
  ck_assert_str_eq (info.data_file, "d.raw");
  ck_assert_int_eq (vmferry_qcow2_check_carriable (&info, "x.qcow2"), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "x.qcow2: qcow2 image keeps its data in an external data "
                    "file 'd.raw': not supported (the data would not travel "
                    "with the image)");
}
END_TEST

START_TEST (test_encrypted)
{
  struct vmferry_qcow2_info info;

  make_dir ();
  /* QEMU 7.2 times PBKDF2 in thread CPU time and gives up with "Unable
   * to get accurate CPU usage" when a round measures 0 ms, which on a
   * CPU with SHA extensions happens about one time in ten.  Only that
   * failure is tried again, at most ten times.
   */
  run ("for i in 1 2 3 4 5 6 7 8 9 10; do "
       "qemu-img create -q --object secret,id=s0,data=hunter2 -f qcow2 "
       "-o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 "
       "e.qcow2 1M 2>err && exit 0; "
       "grep -q 'Unable to get accurate CPU usage' err || break; "
       "done; cat err >&2; exit 1");
  ck_assert_int_eq (probe ("e.qcow2", &info), 1);
  ck_assert_uint_eq (info.crypt_method, VMFERRY_QCOW2_CRYPT_LUKS);
  /* Carriable: the bytes travel as they are; the secret is libvirt's. */
  ck_assert_int_eq (vmferry_qcow2_check_carriable (&info, "e.qcow2"), 0);
}
END_TEST

/* Hand-made headers.  Each starts as a minimal valid version 3 header
 * (64 KiB clusters, 1 MiB disk, an end-of-extensions marker at 104) in a
 * FILE_LEN-byte file, then the case's patches are applied.
 */
struct patch {
  unsigned off;
  unsigned width;               /* 1, 4 or 8, or FILL; 0 ends the list */
  uint64_t value;
};

/* Fill from OFF to the end of the file with empty unknown extensions. */
#define FILL 99

struct hostile {
  const char *what;             /* what it attacks */
  size_t file_len;
  struct patch patches[8];
  const char *want;             /* error substring; NULL: probe succeeds */
};

static const struct hostile hostile[] = {
  { "the unpatched header is valid", 4096, { { 0 } }, NULL },
  { "backing name offset past the end of the file", 512,
    { { 8, 8, 4096 }, { 16, 4, 10 } },
    "h.img: qcow2 backing file name (offset 4096, 10 bytes) lies past the "
    "end of the file (512 bytes)" },
  { "backing name offset past the first cluster, into a huge file",
    4096, { { 8, 8, 1ULL << 40 }, { 16, 4, 10 } },
    "lies outside the first cluster (65536 bytes)" },
  { "backing name offset that wraps with its length", 4096,
    { { 8, 8, UINT64_MAX - 4 }, { 16, 4, 10 } },
    "lies outside the first cluster" },
  { "backing name length 2^31", 4096,
    { { 8, 8, 512 }, { 16, 4, 1ULL << 31 } },
    "h.img: qcow2 backing file name is 2147483648 bytes, more than 1023" },
  { "backing name over the header fields", 4096,
    { { 8, 8, 8 }, { 16, 4, 10 } },
    "backing file name at offset 8 overlaps the header (104 bytes)" },
  { "backing name with a NUL inside", 4096,
    { { 8, 8, 512 }, { 16, 4, 6 }, { 512, 4, 0x61620063 } },
    "h.img: qcow2 backing file name contains a NUL byte" },
  { "cluster_bits 40", 4096, { { 20, 4, 40 } },
    "h.img: qcow2 cluster_bits 40 is out of range (9 to 21)" },
  { "cluster_bits 8", 4096, { { 20, 4, 8 } },
    "cluster_bits 8 is out of range" },
  { "version 4", 4096, { { 4, 4, 4 } },
    "h.img: qcow2 version 4 is not supported (only 2 and 3)" },
  { "header truncated before the v3 fields", 80, { { 0 } },
    "h.img: qcow2 header truncated: the file has 80 bytes, the header needs 104" },
  { "header_length not a multiple of 8", 4096, { { 100, 4, 105 } },
    "qcow2 header length 105 is invalid" },
  { "header_length beyond the cluster", 4096, { { 100, 4, 1 << 20 } },
    "qcow2 header length 1048576 is invalid" },
  { "unknown encryption method", 4096, { { 32, 4, 7 } },
    "qcow2 encryption method 7 is unknown" },
  { "refcount order 7", 4096, { { 96, 4, 7 } },
    "refcount order 7 is out of range" },
  { "virtual size above INT64_MAX", 4096, { { 24, 8, UINT64_MAX } },
    "virtual size 18446744073709551615 is too large" },
  { "extension length 4 GiB - 1", 4096,
    { { 104, 4, 0x12345678 }, { 108, 4, 0xffffffff } },
    "h.img: qcow2 header extension 0x12345678 at offset 104: length "
    "4294967295 runs past the first cluster at offset 65536" },
  { "extension running past the end of the file", 4096,
    { { 104, 4, 0x12345678 }, { 108, 4, 8000 } },
    "length 8000 runs past the end of the file (4096 bytes)" },
  { "extension running into the backing file name", 4096,
    { { 8, 8, 200 }, { 16, 4, 4 }, { 200, 4, 0x61626364 },
      { 104, 4, 0x12345678 }, { 108, 4, 96 } },
    "length 96 runs past the backing file name at offset 200" },
  /* Offsets only grow, so extensions cannot loop; a cluster full of
   * empty ones is the nearest thing, and is cut short.
   */
  { "no end marker: 8000 empty extensions", 65536, { { 104, FILL, 0 } },
    "qcow2 header has more than 1024 extensions" },
  { "no end marker in a short file", 200, { { 104, FILL, 0 } },
    "qcow2 header extension at offset 200 lies past the end of the file" },
  { "backing format too long", 4096,
    { { 104, 4, 0xe2792aca }, { 108, 4, 16 } },
    "qcow2 backing format is 16 bytes, more than 15" },
  { "two backing formats", 4096,
    { { 104, 4, 0xe2792aca }, { 108, 4, 3 }, { 112, 4, 0x72617700 },
      { 120, 4, 0xe2792aca }, { 124, 4, 3 }, { 128, 4, 0x72617700 } },
    "two backing format extensions" },
};

START_TEST (test_hostile_headers)
{
  make_dir ();
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    const struct hostile *h = &hostile[i];
    CLEANUP_FREE unsigned char *buf = calloc (1, h->file_len);
    CLEANUP_FREE char *p = path_of ("h.img");
    struct vmferry_qcow2_info info;
    int fd, r;

    /* magic, version 3, cluster_bits 16, size 1 MiB, refcount order 4,
     * header length 104; zeros after it end the extensions.
     */
    static const unsigned char base[104] = {
      'Q', 'F', 'I', 0xfb, 0, 0, 0, 3,
      [20] = 0, 0, 0, 16, [24] = 0, 0, 0, 0, 0, 0x10, 0, 0,
      [96] = 0, 0, 0, 4, 0, 0, 0, 104,
    };
    memcpy (buf, base, h->file_len < sizeof base ? h->file_len : sizeof base);
    for (const struct patch *pt = h->patches; pt->width; pt++)
      if (pt->width == FILL)
        for (size_t off = pt->off; off + 8 <= h->file_len; off += 8)
          memcpy (buf + off, "\x12\x34\x56\x78\0\0\0\0", 8);
      else
        for (unsigned b = 0; b < pt->width; b++)
          if (pt->off + b < h->file_len)
            buf[pt->off + b] = pt->value >> (8 * (pt->width - 1 - b));
    fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge (fd, 0);
    ck_assert_int_eq (write (fd, buf, h->file_len), (ssize_t) h->file_len);
    close (fd);

    r = probe ("h.img", &info);
    if (h->want == NULL) {
      ck_assert_msg (r == 1, "%s: %s", h->what, vmferry_get_error ());
      continue;
    }
    ck_assert_msg (r == -1, "%s: accepted", h->what);
    ck_assert_msg (strstr (vmferry_get_error (), h->want) != NULL,
                   "%s: error '%s' lacks '%s'", h->what,
                   vmferry_get_error (), h->want);
    ck_assert_msg (strncmp (vmferry_get_error (), "h.img: ", 7) == 0,
                   "%s: error '%s' does not name the file", h->what,
                   vmferry_get_error ());
  }
}
END_TEST

START_TEST (test_hostile_features)
{
  static const struct {
    uint64_t incompat;
    const char *want;
  } cases[] = {
    { VMFERRY_QCOW2_INCOMPAT_DATA_FILE,
      "h.img: qcow2 image keeps its data in an external data file: not "
      "supported (the data would not travel with the image)" },
    { VMFERRY_QCOW2_INCOMPAT_CORRUPT,
      "h.img: qcow2 image is marked corrupt (repair it with 'qemu-img check -r all' first)" },
    { 1ULL << 40,
      "h.img: qcow2 image has unknown incompatible features 0x10000000000" },
  };

  make_dir ();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    unsigned char hdr[4096] = {
      'Q', 'F', 'I', 0xfb, 0, 0, 0, 3,
      [20] = 0, 0, 0, 16, [24] = 0, 0, 0, 0, 0, 0x10, 0, 0,
      [96] = 0, 0, 0, 4, 0, 0, 0, 104,
    };
    CLEANUP_FREE char *p = path_of ("h.img");
    struct vmferry_qcow2_info info;
    int fd;

    for (unsigned b = 0; b < 8; b++)
      hdr[72 + b] = cases[i].incompat >> (8 * (7 - b));
    fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge (fd, 0);
    ck_assert_int_eq (write (fd, hdr, sizeof hdr), (ssize_t) sizeof hdr);
    close (fd);
    ck_assert_int_eq (probe ("h.img", &info), 1);
    ck_assert_int_eq (vmferry_qcow2_check_carriable (&info, "h.img"), -1);
    ck_assert_str_eq (vmferry_get_error (), cases[i].want);
  }
}
END_TEST

/* ---------------------------------------------------------------- arrival */

/* A header as the hostile cases build it: the minimal valid version 3
 * header, then PATCHES, in a FILE_LEN-byte buffer.  The caller frees it.
 */
static unsigned char *
build_header (size_t file_len, const struct patch *patches)
{
  static const unsigned char base[104] = {
    'Q', 'F', 'I', 0xfb, 0, 0, 0, 3,
    [20] = 0, 0, 0, 16, [24] = 0, 0, 0, 0, 0, 0x10, 0, 0,
    [96] = 0, 0, 0, 4, 0, 0, 0, 104,
  };
  unsigned char *buf = calloc (1, file_len);

  ck_assert_ptr_nonnull (buf);
  memcpy (buf, base, file_len < sizeof base ? file_len : sizeof base);
  for (const struct patch *pt = patches; pt->width; pt++)
    for (unsigned b = 0; b < pt->width; b++)
      if (pt->off + b < file_len)
        buf[pt->off + b] = pt->value >> (8 * (pt->width - 1 - b));
  return buf;
}

/* Bytes of a string at OFF, as patches (4 bytes each): "base.qcow2"
 * needs three.
 */
#define STR4(off, a, b, c, d) \
  { off, 4, (uint64_t) (a) << 24 | (uint64_t) (b) << 16 | (c) << 8 | (d) }

/* Extension headers: backing format "qcow2" / "raw", data file "d.raw". */
#define EXT_FMT_QCOW2(off) \
  { off, 4, 0xe2792aca }, { off + 4, 4, 5 }, STR4 (off + 8, 'q', 'c', 'o', 'w'), \
  { off + 12, 1, '2' }
#define EXT_FMT_RAW(off) \
  { off, 4, 0xe2792aca }, { off + 4, 4, 3 }, STR4 (off + 8, 'r', 'a', 'w', 0)
#define EXT_DATA_FILE(off) \
  { off, 4, 0x44415441 }, { off + 4, 4, 5 }, STR4 (off + 8, 'd', '.', 'r', 'a'), \
  { off + 12, 1, 'w' }
/* Backing name "/etc/shadow" (11 bytes) at 512. */
#define BACKING_SHADOW \
  { 8, 8, 512 }, { 16, 4, 11 }, STR4 (512, '/', 'e', 't', 'c'), \
  STR4 (516, '/', 's', 'h', 'a'), STR4 (520, 'd', 'o', 'w', 0)
/* Backing name "base.qcow2" (10 bytes) at 512. */
#define BACKING_BASE \
  { 8, 8, 512 }, { 16, 4, 10 }, STR4 (512, 'b', 'a', 's', 'e'), \
  STR4 (516, '.', 'q', 'c', 'o'), STR4 (520, 'w', '2', 0, 0)

struct arrival {
  const char *what;
  struct patch patches[16];
  struct vmferry_qcow2_expect exp;
  int want_r;                   /* 1, 0 or -1 */
  const char *want;             /* -1: error substring */
};

#define QCOW2 { .format = "qcow2" }
#define QCOW2_ON(fmt) { .format = "qcow2", .has_backing = true, \
                        .backing_format = fmt }

static const struct arrival arrivals[] = {
  { "plain qcow2", { { 0 } }, QCOW2, 1, NULL },
  { "qcow2 header on a file the stream calls raw: only data", { BACKING_SHADOW },
    { .format = "raw" }, 0, NULL },
  { "raw content the stream calls qcow2", { { 0, 4, 0x7f454c46 } }, QCOW2, -1,
    "a.img: not a qcow2 image, but the stream says it is" },
  { "backing file the stream does not give", { BACKING_SHADOW }, QCOW2, -1,
    "a.img: qcow2 header names the backing file '/etc/shadow', but the "
    "stream gives it none: refused (QEMU would open that file)" },
  { "backing file with a format, the stream gives none",
    { BACKING_SHADOW, EXT_FMT_RAW (104) }, QCOW2, -1,
    "names the backing file '/etc/shadow', but the stream gives it none" },
  { "backing file the stream gives, same format, before the rebase",
    { BACKING_SHADOW, EXT_FMT_QCOW2 (104) }, QCOW2_ON ("qcow2"), 1, NULL },
  { "backing format raw, the stream's backing file is qcow2",
    { BACKING_BASE, EXT_FMT_RAW (104) }, QCOW2_ON ("qcow2"), -1,
    "a.img: qcow2 header gives the backing file format 'raw', but the "
    "stream's backing file is qcow2" },
  { "no backing format before the rebase: the rebase sets it",
    { BACKING_BASE }, QCOW2_ON ("raw"), 1, NULL },
  { "no backing format after the rebase",
    { BACKING_BASE },
    { .format = "qcow2", .has_backing = true, .backing_format = "raw",
      .backing_name = "base.qcow2" }, -1,
    "a.img: qcow2 header gives no backing file format (QEMU would probe it)" },
  { "after the rebase: the name and format the importer wrote",
    { BACKING_BASE, EXT_FMT_QCOW2 (104) },
    { .format = "qcow2", .has_backing = true, .backing_format = "qcow2",
      .backing_name = "base.qcow2" }, 1, NULL },
  { "after the rebase: another name",
    { BACKING_SHADOW, EXT_FMT_QCOW2 (104) },
    { .format = "qcow2", .has_backing = true, .backing_format = "qcow2",
      .backing_name = "base.qcow2" }, -1,
    "a.img: qcow2 header names the backing file '/etc/shadow', not "
    "'base.qcow2'" },
  { "the stream gives a backing file, the header none", { { 0 } },
    QCOW2_ON ("qcow2"), -1,
    "a.img: qcow2 header names no backing file, but the stream gives it one" },
  { "external data file: incompatible bit and extension",
    { { 72, 8, 4 }, EXT_DATA_FILE (104) }, QCOW2, -1,
    "a.img: qcow2 image keeps its data in an external data file 'd.raw', "
    "which did not travel with it: refused (QEMU would open that host file)" },
  { "external data file: the extension alone", { EXT_DATA_FILE (104) }, QCOW2,
    -1, "keeps its data in an external data file 'd.raw'" },
  { "external data file: the bit alone", { { 72, 8, 4 } }, QCOW2, -1,
    "keeps its data in an external data file, which did not travel" },
  { "external data file, allowed", { { 72, 8, 4 }, EXT_DATA_FILE (104) },
    { .format = "qcow2", .allow_data_file = true }, 1, NULL },
  { "corrupt bit", { { 72, 8, 2 } }, QCOW2, -1,
    "a.img: qcow2 image is marked corrupt" },
  { "dirty bit: QEMU repairs it", { { 72, 8, 1 } }, QCOW2, 1, NULL },
  { "unknown incompatible feature", { { 72, 8, 1ULL << 40 } }, QCOW2, -1,
    "a.img: qcow2 image has unknown incompatible features 0x10000000000" },
  { "legacy AES encryption", { { 32, 4, 1 } }, QCOW2, -1,
    "a.img: qcow2 image uses the legacy AES encryption (only LUKS is "
    "accepted)" },
  { "LUKS encryption", { { 32, 4, 2 } }, QCOW2, 1, NULL },
  { "a header the probe refuses", { { 20, 4, 40 } }, QCOW2, -1,
    "a.img: qcow2 cluster_bits 40 is out of range" },
  { "a backing name with terminal escapes",
    { { 8, 8, 512 }, { 16, 4, 4 }, STR4 (512, 0x1b, '[', '2', 'J') }, QCOW2,
    -1, "names the backing file '\\x1b[2J', but" },
  { "format the stream cannot carry", { { 0 } }, { .format = "vmdk" }, -1,
    "a.img: format 'vmdk' is not supported (only qcow2 and raw)" },
  { "a raw image with a backing file", { { 0 } },
    { .format = "raw", .has_backing = true, .backing_format = "raw" }, -1,
    "a.img: the stream gives a raw image a backing file" },
  { "a backing file of a format the stream cannot carry", { BACKING_BASE },
    QCOW2_ON ("vmdk"), -1,
    "a.img: the stream's backing file has format 'vmdk' (only qcow2 and raw)" },
};

START_TEST (test_arrival)
{
  make_dir ();
  for (size_t i = 0; i < sizeof arrivals / sizeof arrivals[0]; i++) {
    const struct arrival *a = &arrivals[i];
    CLEANUP_FREE unsigned char *buf = build_header (4096, a->patches);
    CLEANUP_FREE char *p = path_of ("a.img");
    CLEANUP_CLOSE int fd = open (p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    struct vmferry_qcow2_info info;
    int r;

    ck_assert_int_ge (fd, 0);
    ck_assert_int_eq (write (fd, buf, 4096), 4096);
    vmferry_clear_error ();
    r = vmferry_qcow2_validate_arrival (fd, "a.img", &a->exp, &info);
    ck_assert_msg (r == a->want_r, "%s: returned %d, not %d (%s)", a->what, r,
                   a->want_r, vmferry_get_error ());
    if (a->want)
      ck_assert_msg (strstr (vmferry_get_error (), a->want) != NULL,
                     "%s: error '%s' lacks '%s'", a->what,
                     vmferry_get_error (), a->want);
  }
}
END_TEST

/* The same with images made by qemu-img: a backing file on a host file,
 * an external data file, and the chain the importer makes by rebasing.
 */
START_TEST (test_arrival_qemu_img)
{
  static const struct vmferry_qcow2_expect none = { .format = "qcow2" };
  struct vmferry_qcow2_expect on_base = {
    .format = "qcow2", .has_backing = true, .backing_format = "qcow2",
    .backing_name = "base.qcow2",
  };
  struct vmferry_qcow2_info info;

  make_dir ();
  /* A host path that does not exist: -u keeps qemu-img from opening it,
   * and nothing is there to harm if it did.
   */
  run ("qemu-img create -q -f qcow2 -u -b /nonexistent/host.img -F raw "
       "evil.qcow2 1M");
  /* qemu-img creates (truncates) the data file it is given: only ever a
   * name in the test directory.
   */
  run ("qemu-img create -q -f qcow2 -o data_file=d.raw,data_file_raw=on "
       "df.qcow2 1M");
  run ("qemu-img create -q -f qcow2 base.qcow2 1M");
  run ("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2");
  {
    CLEANUP_FREE char *p = path_of ("evil.qcow2");
    CLEANUP_CLOSE int fd = open (p, O_RDONLY);
    ck_assert_int_eq (vmferry_qcow2_validate_arrival (fd, "evil.qcow2", &none,
                                                      &info), -1);
    ck_assert_str_eq (vmferry_get_error (),
                      "evil.qcow2: qcow2 header names the backing file "
                      "'/nonexistent/host.img', but the stream gives it "
                      "none: refused (QEMU would open that file)");
  }
  {
    CLEANUP_FREE char *p = path_of ("df.qcow2");
    CLEANUP_CLOSE int fd = open (p, O_RDONLY);
    ck_assert_int_eq (vmferry_qcow2_validate_arrival (fd, "df.qcow2", &none,
                                                      &info), -1);
    ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                   "keeps its data in an external data file"));
  }
  {
    CLEANUP_FREE char *p = path_of ("top.qcow2");
    CLEANUP_CLOSE int fd = open (p, O_RDONLY);
    ck_assert_msg (vmferry_qcow2_validate_arrival (fd, "top.qcow2", &on_base,
                                                   &info) == 1,
                   "%s", vmferry_get_error ());
    ck_assert_str_eq (info.backing_file, "base.qcow2");
    on_base.backing_format = "raw";
    ck_assert_int_eq (vmferry_qcow2_validate_arrival (fd, "top.qcow2",
                                                      &on_base, &info), -1);
  }
}
END_TEST

/* ---------------------------------------------------------------- mutations */

/* A deterministic mutation test in the manner of QEMU's image fuzzer
 * (tests/image-fuzzer): valid headers (version 2 and 3, with and without
 * a backing file, with extensions) have fields set to boundary values,
 * bytes flipped, extensions planted and the file cut, thousands of
 * times from a fixed seed.  Every result must be refused with a message
 * naming the file, or accepted with fields in bounds and consistent
 * with the bytes; and the arrival check must never accept what it
 * promises to refuse.  The sanitizer build runs it under ASan/UBSan.
 */
#define MUTATION_ROUNDS 12000
#define MUTATION_SEED 0x766d6665727279ULL       /* "vmferry" */

static uint64_t rng_state;

static uint64_t
rng (void)
{
  /* xorshift64*: small, and the same sequence everywhere. */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

static const uint64_t interesting[] = {
  0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 21, 22, 63, 64, 72, 103, 104, 105, 111,
  112, 127, 128, 255, 256, 511, 512, 1023, 1024, 4095, 4096, 65535, 65536,
  65537, 0x1fffff, 0x200000, 0x7fffffff, 0x80000000, 0xfffffffe,
  0xffffffff, 0x100000000ULL, 0x7fffffffffffffffULL, 0x8000000000000000ULL,
  0xfffffffffffffff8ULL, 0xffffffffffffffffULL, 0x514649fb, 0xe2792aca,
  0x44415441, 0x6803f857,
};

/* Header fields: offset and width. */
static const struct { unsigned off, width; } fields[] = {
  { 0, 4 }, { 4, 4 }, { 8, 8 }, { 16, 4 }, { 20, 4 }, { 24, 8 }, { 32, 4 },
  { 36, 4 }, { 40, 8 }, { 48, 8 }, { 56, 4 }, { 60, 4 }, { 64, 8 },
  { 72, 8 }, { 80, 8 }, { 88, 8 }, { 96, 4 }, { 100, 4 }, { 104, 1 },
  { 104, 4 }, { 108, 4 }, { 112, 4 }, { 116, 4 }, { 120, 4 }, { 124, 4 },
};

static void
put (unsigned char *buf, size_t len, size_t off, unsigned width, uint64_t v)
{
  for (unsigned b = 0; b < width; b++)
    if (off + b < len)
      buf[off + b] = v >> (8 * (width - 1 - b));
}

static void
mutate (unsigned char *buf, size_t *len, size_t cap)
{
  unsigned n = 1 + rng () % 4;

  for (unsigned k = 0; k < n; k++) {
    size_t span = *len < 640 ? *len : 640;
    switch (rng () % 6) {
    case 0:                     /* flip a bit */
      if (span)
        buf[rng () % span] ^= 1 << (rng () % 8);
      break;
    case 1:                     /* a random byte */
      if (span)
        buf[rng () % span] = rng ();
      break;
    case 2: case 3: {           /* a field to a boundary value */
      unsigned f = rng () % (sizeof fields / sizeof fields[0]);
      uint64_t v = interesting[rng () % (sizeof interesting /
                                         sizeof interesting[0])];
      if (rng () % 4 == 0)
        v += (rng () % 3) - 1;
      put (buf, *len, fields[f].off, fields[f].width, v);
      break;
    }
    case 4: {                   /* plant an extension header */
      static const uint32_t types[] = {
        0, 0xe2792aca, 0x44415441, 0x6803f857, 0x23852875, 0x0537be77,
      };
      size_t off = 72 + 8 * (rng () % 70);
      put (buf, *len, off, 4, types[rng () % (sizeof types / sizeof types[0])]);
      put (buf, *len, off + 4, 4,
           interesting[rng () % (sizeof interesting / sizeof interesting[0])]);
      break;
    }
    case 5:                     /* cut or grow the file */
      *len = rng () % cap;
      break;
    }
  }
}

/* The fields of an accepted header are in bounds and match the bytes. */
static void
check_accepted (const unsigned char *buf, size_t len,
                const struct vmferry_qcow2_info *in, uint64_t round)
{
  uint64_t boff = 0;
  uint32_t blen = 0;

  ck_assert_msg (in->version == 2 || in->version == 3, "round %llu",
                 (unsigned long long) round);
  ck_assert (in->cluster_bits >= 9 && in->cluster_bits <= 21);
  if (in->version == 2)
    ck_assert_uint_eq (in->header_length, 72);
  else
    ck_assert (in->header_length >= 104 && in->header_length % 8 == 0 &&
               in->header_length <= (1U << in->cluster_bits));
  ck_assert (in->virtual_size <= INT64_MAX);
  ck_assert (in->crypt_method <= VMFERRY_QCOW2_CRYPT_LUKS);
  ck_assert (memchr (in->backing_file, 0, sizeof in->backing_file));
  ck_assert (memchr (in->backing_format, 0, sizeof in->backing_format));
  ck_assert (memchr (in->data_file, 0, sizeof in->data_file));
  for (int b = 0; b < 8; b++)
    boff = boff << 8 | buf[8 + b];
  for (int b = 0; b < 4; b++)
    blen = blen << 8 | buf[16 + b];
  if (in->has_backing) {
    size_t n = strlen (in->backing_file);
    ck_assert (n >= 1 && n <= VMFERRY_QCOW2_MAX_NAME && n == blen);
    ck_assert (boff >= in->header_length && boff + n <= len &&
               boff + n <= (1U << in->cluster_bits));
    ck_assert (memcmp (buf + boff, in->backing_file, n) == 0);
  }
  else {
    ck_assert_str_eq (in->backing_file, "");
    ck_assert (boff == 0 || blen == 0);
  }
  if (in->incompatible_features & VMFERRY_QCOW2_INCOMPAT_DATA_FILE)
    ck_assert (in->has_data_file);
}

START_TEST (test_mutations)
{
  /* The seeds: what qemu-img writes, laid out by hand. */
  static const struct patch v2_backing[] = {
    { 4, 4, 2 }, { 100, 4, 0 }, { 96, 4, 0 },
    { 8, 8, 256 }, { 16, 4, 5 }, STR4 (256, 'b', '.', 'i', 'm'),
    { 260, 1, 'g' }, { 0 } };
  static const struct patch v3_backing[] = {
    BACKING_BASE, EXT_FMT_QCOW2 (104), { 0 } };
  static const struct patch v3_everything[] = {
    { 72, 8, 4 }, EXT_FMT_RAW (104), EXT_DATA_FILE (120),
    { 136, 4, 0x6803f857 }, { 140, 4, 48 }, { 144, 1, 0 }, { 145, 1, 2 },
    STR4 (146, 'd', 'a', 't', 'a'), BACKING_BASE, { 0 } };
  static const struct patch v3_long_header[] = {
    { 100, 4, 112 }, { 104, 1, 0 }, EXT_FMT_RAW (112), BACKING_BASE, { 0 } };
  static const struct patch v3_plain[] = { { 0 } };
  const struct patch *seeds[] = {
    v3_plain, v2_backing, v3_backing, v3_everything, v3_long_header,
  };
  static const struct vmferry_qcow2_expect exps[] = {
    { .format = "qcow2" },
    { .format = "qcow2", .allow_data_file = true },
    { .format = "qcow2", .has_backing = true, .backing_format = "qcow2" },
    { .format = "qcow2", .has_backing = true, .backing_format = "raw",
      .backing_name = "base.qcow2" },
  };
  enum { CAP = 8192 };
  unsigned char *buf = malloc (CAP);
  int fd = memfd_create ("check_qcow2", MFD_CLOEXEC);
  uint64_t probed_ok = 0, probe_refused = 0, not_qcow2 = 0;
  uint64_t arrived = 0, arrival_refused = 0;

  ck_assert_ptr_nonnull (buf);
  ck_assert_int_ge (fd, 0);
  rng_state = MUTATION_SEED;
  for (uint64_t round = 0; round < MUTATION_ROUNDS; round++) {
    const struct patch *seed = seeds[round % (sizeof seeds / sizeof seeds[0])];
    CLEANUP_FREE unsigned char *h = build_header (4096, seed);
    size_t len = 4096;
    struct vmferry_qcow2_info info;
    int r;

    memcpy (buf, h, len);
    mutate (buf, &len, CAP);
    ck_assert_int_eq (ftruncate (fd, 0), 0);
    ck_assert_int_eq (pwrite (fd, buf, len, 0), (ssize_t) len);

    vmferry_clear_error ();
    r = vmferry_qcow2_probe (fd, "m.img", &info);
    if (r == 0) {
      ck_assert (len < 4 || memcmp (buf, "QFI\xfb", 4) != 0);
      not_qcow2++;
    }
    else if (r == -1) {
      ck_assert_msg (strncmp (vmferry_get_error (), "m.img: ", 7) == 0,
                     "round %llu: '%s'", (unsigned long long) round,
                     vmferry_get_error ());
      probe_refused++;
    }
    else {
      ck_assert_int_eq (r, 1);
      check_accepted (buf, len, &info, round);
      probed_ok++;
    }

    for (size_t e = 0; e < sizeof exps / sizeof exps[0]; e++) {
      const struct vmferry_qcow2_expect *x = &exps[e];
      struct vmferry_qcow2_info ai;
      int v = vmferry_qcow2_validate_arrival (fd, "m.img", x, &ai);

      ck_assert (v == 1 || v == -1);
      if (v == -1) {
        ck_assert (strncmp (vmferry_get_error (), "m.img: ", 7) == 0);
        arrival_refused++;
        continue;
      }
      /* Accepted: only what the contract lets through. */
      ck_assert_int_eq (r, 1);
      check_accepted (buf, len, &ai, round);
      ck_assert (!ai.has_data_file || x->allow_data_file);
      ck_assert (!(ai.incompatible_features &
                   (VMFERRY_QCOW2_INCOMPAT_CORRUPT |
                    ~VMFERRY_QCOW2_INCOMPAT_KNOWN)));
      ck_assert (ai.crypt_method != VMFERRY_QCOW2_CRYPT_AES);
      ck_assert (ai.has_backing == x->has_backing);
      if (x->has_backing && ai.backing_format[0])
        ck_assert_str_eq (ai.backing_format, x->backing_format);
      if (x->backing_name) {
        ck_assert_str_eq (ai.backing_file, x->backing_name);
        ck_assert_str_eq (ai.backing_format, x->backing_format);
      }
      arrived++;
    }
  }
  printf ("qcow2 mutations: %d rounds (seed 0x%llx): probe accepted %llu, "
          "refused %llu, not qcow2 %llu; arrival accepted %llu, refused "
          "%llu\n", MUTATION_ROUNDS, (unsigned long long) MUTATION_SEED,
          (unsigned long long) probed_ok, (unsigned long long) probe_refused,
          (unsigned long long) not_qcow2, (unsigned long long) arrived,
          (unsigned long long) arrival_refused);
  /* The mutations reach both sides of every decision. */
  ck_assert_uint_gt (probed_ok, MUTATION_ROUNDS / 20);
  ck_assert_uint_gt (probe_refused, MUTATION_ROUNDS / 20);
  ck_assert_uint_gt (arrived, MUTATION_ROUNDS / 20);
  ck_assert_uint_gt (arrival_refused, MUTATION_ROUNDS / 20);
  close (fd);
  free (buf);
}
END_TEST

VMFERRY_UNIT_MAIN ("qcow2",
                   test_not_qcow2,
                   test_plain,
                   test_backing_qcow2,
                   test_backing_raw,
                   test_backing_relative,
                   test_backing_path_rules,
                   test_chain_refusals,
                   test_data_file,
                   test_encrypted,
                   test_hostile_headers,
                   test_hostile_features,
                   test_arrival,
                   test_arrival_qemu_img,
                   test_mutations)
