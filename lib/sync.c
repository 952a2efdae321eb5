/* vmferry: a standby copy refreshed with what changed (see sync.h). */
#include "config.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libnbd.h>
#include <libvirt/libvirt.h>
#include <xxhash.h>

#include "backup.h"
#include "cleanup.h"
#include "clock.h"
#include "digest.h"
#include "domain.h"
#include "error.h"
#include "export-trim.h"
#include "hex.h"
#include "extent.h"
#include "fault.h"
#include "full-rw.h"
#include "imagelock.h"
#include "import-int.h"
#include "iszero.h"
#include "log.h"
#include "migrate.h"
#include "progress.h"
#include "qcow2.h"
#include "qemu-img.h"
#include "source.h"
#include "ssh.h"
#include "stream.h"
#include "sync.h"
#include "sync-bitmap.h"
#include "sync-define.h"
#include "sync-running.h"
#include "sync-scan.h"
#include "sync-trim.h"
#include "target.h"
#include "virt.h"
#include "xmlnode.h"

#define CHUNK VMFERRY_MAP_CHUNK_SIZE
/* The sender also keeps a map per block: 1% of a disk written in random
 * 64 KiB pieces touches up to 16% of its 1 MiB chunks, but only the
 * blocks written need to travel.  16 bytes per 64 KiB (256 KiB a GiB),
 * on the sender only; the receiver and the stream speak in chunks.
 */
#define FINE VMFERRY_BLOCK_SIZE
#define TOKEN_HEX 33
/* A map file: magic, chunk size, file size, the digests, then XXH3-64 of
 * all that, so a torn or damaged record is refused, not trusted.
 */
#define MAP_MAGIC "VMFMAP1\n"
#define MAP_HEADER 24

const char *
vmferry_sync_state_dir (void)
{
  const char *d = getenv ("VMFERRY_SYNC_STATE_DIR");

  return d && *d ? d : "/var/lib/vmferry/sync";
}

/* ---- helpers both sides use ---- */

static void
put_le64 (unsigned char *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = v >> (8 * i);
}

static uint64_t
get_le64 (const unsigned char *p)
{
  uint64_t v = 0;

  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* Write BUF as NAME below T so that NAME is either the old or the whole
 * new content at any instant: a temporary file, synced, renamed over.
 */
static int
write_atomic (const struct vmferry_target *t, const char *prefix,
              const char *name, const void *buf, size_t len)
{
  CLEANUP_FREE char *tmp = vmferry_target_random_name (prefix);
  int fd;

  if (tmp == NULL)
    return -1;
  fd = vmferry_target_create (t, tmp, O_WRONLY, 0600, false);
  if (fd < 0)
    return -1;
  if (vmferry_write_full (fd, tmp, buf, len) < 0 || fsync (fd) < 0) {
    if (errno)
      vmferry_set_error_errno (errno, "%s/%s: cannot write", t->path, tmp);
    close (fd);
    vmferry_target_unlink (t, tmp);
    return -1;
  }
  close (fd);
  if (vmferry_target_rename (t, tmp, t, name, 0) < 0) {
    vmferry_target_unlink (t, tmp);
    return -1;
  }
  return vmferry_target_sync (t);
}

/* Temporary names: the sender's in its own directory; the receiver's
 * are its standby's (struct standby), which only its own runs remove.
 */
#define SENDER_TMP ".vmferry-sync-tmp-"

static int
map_save (const struct vmferry_target *t, const char *prefix,
          const char *name, struct vmferry_map *m)
{
  uint64_t n = vmferry_map_nr_chunks (m);
  size_t len = MAP_HEADER + n * VMFERRY_DIGEST_SIZE + 8;
  CLEANUP_FREE unsigned char *buf = malloc (len);

  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "map: malloc");
    return -1;
  }
  memcpy (buf, MAP_MAGIC, 8);
  put_le64 (buf + 8, vmferry_map_chunk (m));
  put_le64 (buf + 16, vmferry_map_size (m));
  for (uint64_t c = 0; c < n; c++)
    vmferry_map_get (m, c, buf + MAP_HEADER + c * VMFERRY_DIGEST_SIZE);
  put_le64 (buf + len - 8, XXH3_64bits (buf, len - 8));
  return write_atomic (t, prefix, name, buf, len);
}

/* The map recorded as NAME below T, or NULL with the error set. */
static struct vmferry_map *
map_load (const struct vmferry_target *t, const char *name)
{
  CLEANUP_CLOSE int fd = vmferry_target_open_file (t, name, O_RDONLY);
  CLEANUP_FREE unsigned char *buf = NULL;
  struct vmferry_map *m;
  uint64_t len, n;

  if (fd < 0 || vmferry_file_size (fd, name, &len) < 0)
    return NULL;
  if (len < MAP_HEADER + 8 || len > ((uint64_t) 1 << 32) ||
      (len - MAP_HEADER - 8) % VMFERRY_DIGEST_SIZE != 0)
    goto bad;
  buf = malloc (len);
  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s: malloc", name);
    return NULL;
  }
  if (vmferry_pread_full (fd, name, buf, len, 0) < 0)
    return NULL;
  if (memcmp (buf, MAP_MAGIC, 8) != 0 ||
      get_le64 (buf + len - 8) != XXH3_64bits (buf, len - 8))
    goto bad;
  m = vmferry_map_new (get_le64 (buf + 16), get_le64 (buf + 8));
  if (m == NULL)
    return NULL;
  n = (len - MAP_HEADER - 8) / VMFERRY_DIGEST_SIZE;
  if (n != vmferry_map_nr_chunks (m)) {
    vmferry_map_free (m);
    goto bad;
  }
  for (uint64_t c = 0; c < n; c++)
    vmferry_map_set (m, c, buf + MAP_HEADER + c * VMFERRY_DIGEST_SIZE);
  return m;
 bad:
  vmferry_set_error ("%s/%s: not a map record of this version, or damaged",
                     t->path, name);
  return NULL;
}

/* The JSON object in NAME below T; NULL with the error set (ENOENT kept
 * when there is none).
 */
static json_object *
json_load (const struct vmferry_target *t, const char *name)
{
  CLEANUP_CLOSE int fd = vmferry_target_open_file (t, name, O_RDONLY);
  CLEANUP_FREE char *buf = NULL;
  uint64_t len;
  json_object *o;

  if (fd < 0 || vmferry_file_size (fd, name, &len) < 0)
    return NULL;
  if (len > VMFERRY_MAX_METADATA || !(buf = calloc (1, len + 1))) {
    vmferry_set_error ("%s/%s: too large", t->path, name);
    return NULL;
  }
  if (vmferry_pread_full (fd, name, buf, len, 0) < 0)
    return NULL;
  o = json_tokener_parse (buf);
  if (o == NULL || !json_object_is_type (o, json_type_object)) {
    json_object_put (o);
    vmferry_set_error ("%s/%s: not a JSON object", t->path, name);
    return NULL;
  }
  return o;
}

static int
json_save (const struct vmferry_target *t, const char *prefix,
           const char *name, json_object *o)
{
  const char *s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);

  return write_atomic (t, prefix, name, s, strlen (s));
}

static int64_t
jint (json_object *o, const char *key)
{
  json_object *v;

  return json_object_object_get_ex (o, key, &v) ? json_object_get_int64 (v)
                                                : -1;
}

static const char *
jstr (json_object *o, const char *key)
{
  json_object *v;

  return json_object_object_get_ex (o, key, &v) &&
         json_object_is_type (v, json_type_string)
         ? json_object_get_string (v) : NULL;
}

static json_object *
jarr (json_object *o, const char *key)
{
  json_object *v;

  return json_object_object_get_ex (o, key, &v) &&
         json_object_is_type (v, json_type_array) ? v : NULL;
}

/* The entry of array A whose "target" is TARGET, or NULL. */
static json_object *
by_target (json_object *a, const char *target)
{
  for (size_t i = 0; a && i < json_object_array_length (a); i++) {
    json_object *d = json_object_array_get_idx (a, i);
    const char *t = jstr (d, "target");
    if (t && strcmp (t, target) == 0)
      return d;
  }
  return NULL;
}

static void
jset_str (json_object *o, const char *key, const char *v)
{
  json_object_object_add (o, key, json_object_new_string (v));
}

static void
jset_int (json_object *o, const char *key, int64_t v)
{
  json_object_object_add (o, key, json_object_new_int64 (v));
}

/* A target dev as a file name component: letters and digits only. */
static bool
target_ok (const char *t)
{
  if (t == NULL || *t == '\0' || strlen (t) > 32)
    return false;
  for (; *t; t++)
    if (!((*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9')))
      return false;
  return true;
}

/* The disks a domain's inactive XML names (files, not read-only): their
 * target devs and paths.
 */
struct disk {
  char *target, *path, *format;
};

static void
disks_free (struct disk *d, size_t n)
{
  for (size_t i = 0; d && i < n; i++) {
    free (d[i].target);
    free (d[i].path);
    free (d[i].format);
  }
  free (d);
}

static int
domain_disks (virDomainPtr dom, const char *name, struct disk **disks_rtn,
              size_t *n_rtn)
{
  CLEANUP_FREE char *xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  struct vmferry_domain_file *files = NULL;
  struct disk *d = NULL;
  size_t nf = 0, n = 0;
  int r = -1;

  if (xml == NULL) {
    vmferry_virt_error ("domain %s: cannot read its XML", name);
    return -1;
  }
  doc = vmferry_domain_parse (xml, strlen (xml), name);
  if (doc == NULL || vmferry_domain_files (doc, false, &files, &nf) < 0)
    return -1;
  d = calloc (nf ? nf : 1, sizeof *d);
  if (d == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    goto out;
  }
  for (size_t i = 0; i < nf; i++) {
    const struct vmferry_domain_file *f = &files[i];
    if (f->role == VMFERRY_ROLE_BACKING)
      continue;
    /* NVRAM and TPM state are not refreshed yet: refuse rather than
     * leave the standby with stale ones.
     */
    if (f->role != VMFERRY_ROLE_DISK || f->path == NULL || f->block ||
        !target_ok (f->target)) {
      vmferry_set_error ("domain %s: %s %s: only file disks are refreshed "
                         "for now", name,
                         f->role == VMFERRY_ROLE_DISK ? "disk" : "file",
                         f->path ? f->path : "(no path)");
      goto out;
    }
    if (!(d[n].target = strdup (f->target)) ||
        !(d[n].path = strdup (f->path)) ||
        (f->format && !(d[n].format = strdup (f->format)))) {
      n++;
      vmferry_set_error_errno (ENOMEM, "malloc");
      goto out;
    }
    n++;
  }
  if (n == 0) {
    vmferry_set_error ("domain %s has no disk to refresh", name);
    goto out;
  }
  *disks_rtn = d;
  *n_rtn = n;
  d = NULL;
  r = 0;
 out:
  disks_free (d, n);
  vmferry_domain_files_free (files, nf);
  return r;
}

/* ---- the receiver ---- */

/* The standby's layout (docs/design-dr.md, section 4): each disk is a
 * qcow2 top at a stable name S, BASE.top.qcow2, the name the standby's
 * XML uses, over the chain BASE <- S.gA <- S.gB ... <- S.  BASE is the
 * first copy's file in its own format; each S.gN is the top as it was at
 * generation N (a restore point, a second name link() gave the old top
 * before a refresh); a refresh writes only what changed into a new
 * overlay over it, renamed over S.  Backing names are relative: the chain
 * lives in one directory.
 */
#define TOP_SUFFIX ".top.qcow2"

struct chain {
  char *base, *format, *top;
  int64_t *gens;                /* the restore points, oldest first */
  size_t nr_gens;
};

static void
chain_free (struct chain *c)
{
  free (c->base);
  free (c->format);
  free (c->top);
  free (c->gens);
  memset (c, 0, sizeof *c);
}

/* One component, ours: no '/', not "." or "..", nothing hidden. */
static bool
name_ok (const char *n)
{
  return n && *n && *n != '.' && !strchr (n, '/') && strlen (n) < 250;
}

/* The chain a record (state or journal) gives disk D. */
static int
chain_parse (json_object *d, struct chain *c)
{
  json_object *g = d ? jarr (d, "gens") : NULL;

  memset (c, 0, sizeof *c);
  if (g == NULL || !name_ok (jstr (d, "base")) ||
      !name_ok (jstr (d, "top")) || !jstr (d, "base_format") ||
      (strcmp (jstr (d, "base_format"), "raw") != 0 &&
       strcmp (jstr (d, "base_format"), "qcow2") != 0))
    return -1;
  c->base = strdup (jstr (d, "base"));
  c->format = strdup (jstr (d, "base_format"));
  c->top = strdup (jstr (d, "top"));
  c->nr_gens = json_object_array_length (g);
  c->gens = calloc (c->nr_gens + 1, sizeof *c->gens);
  if (!c->base || !c->format || !c->top || !c->gens) {
    chain_free (c);
    return -1;
  }
  for (size_t k = 0; k < c->nr_gens; k++) {
    c->gens[k] = json_object_get_int64 (json_object_array_get_idx (g, k));
    if (c->gens[k] <= 0 || (k > 0 && c->gens[k] <= c->gens[k - 1])) {
      chain_free (c);
      return -1;
    }
  }
  return 0;
}

static size_t
chain_len (const struct chain *c)
{
  return c->nr_gens + 2;
}

static char *
gen_name (const struct chain *c, int64_t gen)
{
  char *n;

  if (asprintf (&n, "%s.g%" PRId64, c->top, gen) < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return NULL;
  }
  return n;
}

/* File K of the chain: 0 the base, then the restore points, the top. */
static char *
chain_name (const struct chain *c, size_t k)
{
  char *n;

  if (k == 0)
    n = strdup (c->base);
  else if (k <= c->nr_gens)
    return gen_name (c, c->gens[k - 1]);
  else
    n = strdup (c->top);
  if (n == NULL)
    vmferry_set_error_errno (ENOMEM, "malloc");
  return n;
}

/* The standby, locked, its disks in one directory beside which its
 * records live:
 *   .vmferry-sync-NAME.json         generation, token, per disk its
 *                                   chain, each file's stat, its root
 *   .vmferry-sync-NAME.TARGET.map   per disk the map of S's view
 *   .vmferry-sync-NAME.commit       the journal of a commit under way
 *   .vmferry-sync-NAME.merge        the journal of a merge under way
 *   .vmferry-sync-NAME.new-XXXXXX   a refresh's new overlay or map
 */
struct standby {
  const char *name;
  virConnectPtr conn;
  virDomainPtr dom;
  struct disk *disks;
  size_t nr;
  struct chain *chains;         /* per disk, once loaded from the state */
  struct vmferry_target dir;
  int lock_fd;
  char *state, *journal, *merge, *new_prefix;
};

static void
chains_free (struct standby *s)
{
  for (size_t i = 0; s->chains && i < s->nr; i++)
    chain_free (&s->chains[i]);
  free (s->chains);
  s->chains = NULL;
}

static void
standby_close (struct standby *s)
{
  if (s->lock_fd >= 0)
    close (s->lock_fd);
  vmferry_target_close (&s->dir);
  chains_free (s);
  disks_free (s->disks, s->nr);
  if (s->dom)
    virDomainFree (s->dom);
  if (s->conn)
    virConnectClose (s->conn);
  free (s->state);
  free (s->journal);
  free (s->merge);
  free (s->new_prefix);
}

static char *
map_name (const struct standby *s, const char *target)
{
  char *n;

  if (asprintf (&n, ".vmferry-sync-%s.%s.map", s->name, target) < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return NULL;
  }
  return n;
}

static const char *
base_name (const char *path)
{
  const char *b = strrchr (path, '/');

  return b ? b + 1 : path;
}

/* Each disk's chain from the record STATE; the standby's XML must name
 * each disk's top.
 */
static int
chains_load (struct standby *s, json_object *state)
{
  chains_free (s);
  s->chains = calloc (s->nr, sizeof *s->chains);
  if (s->chains == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  for (size_t i = 0; i < s->nr; i++) {
    json_object *d = by_target (jarr (state, "disks"), s->disks[i].target);

    if (chain_parse (d, &s->chains[i]) < 0) {
      vmferry_set_error ("%s/%s: disk %s: no overlay chain recorded (a "
                         "record of an older vmferry-sync?): run with --full",
                         s->dir.path, s->state, s->disks[i].target);
      return -1;
    }
    if (strcmp (s->chains[i].top, base_name (s->disks[i].path)) != 0 ||
        !s->disks[i].format || strcmp (s->disks[i].format, "qcow2") != 0) {
      vmferry_set_error ("standby %s: disk %s is %s, not the top %s its "
                         "record names: run with --full", s->name,
                         s->disks[i].target, s->disks[i].path,
                         s->chains[i].top);
      return -1;
    }
  }
  return 0;
}

/* Refuse while the standby runs: it may have taken over. */
static int
check_shut_off (struct standby *s)
{
  int st = vmferry_virt_domain_state (s->dom);

  if (st < 0)
    return -1;
  if (st != VIR_DOMAIN_SHUTOFF) {
    vmferry_set_error ("standby %s is %s on this host: it may have taken "
                       "over; refusing to overwrite", s->name,
                       vmferry_virt_state_name (st));
    return -1;
  }
  return 0;
}

/* Run qemu-img with ARGV and wait (the library's one way to run it). */
static int
qemu_img (char *const argv[])
{
  return vmferry_qemu_img (argv);
}

/* ---- the view through a qcow2 file: a qemu-nbd child driven by libnbd,
 * socket-activated (libnbd makes the socket in a directory of its own).
 */
static int
nbd_fail (const char *file, const char *what)
{
  int e = nbd_get_errno ();

  vmferry_set_error_errno (e ? e : EIO, "%s: %s: %s", file, what,
                           nbd_get_error () ? nbd_get_error () : "failed");
  return -1;
}

static struct nbd_handle *
view_open (struct standby *s, const char *file, bool writable,
           uint64_t *size_rtn)
{
  CLEANUP_FREE char *path = vmferry_target_path (&s->dir, file);
  char *argv[] = { (char *) "qemu-nbd", (char *) "-f", (char *) "qcow2",
                   (char *) (writable ? "--cache=writeback" : "-r"),
                   path, NULL };
  struct nbd_handle *h;
  int64_t size;

  if (path == NULL)
    return NULL;
  h = nbd_create ();
  if (h == NULL) {
    nbd_fail (file, "libnbd");
    return NULL;
  }
  if (nbd_connect_systemd_socket_activation (h, argv) == -1 ||
      (size = nbd_get_size (h)) == -1) {
    nbd_fail (file, "qemu-nbd");
    nbd_close (h);
    return NULL;
  }
  if (writable && nbd_is_read_only (h) != 0) {
    vmferry_set_error ("%s: qemu-nbd serves it read-only", file);
    nbd_close (h);
    return NULL;
  }
  *size_rtn = size;
  return h;
}

/* Disconnect; qemu-nbd, whose only client that was, exits. */
static int
view_close (struct nbd_handle *h, const char *file)
{
  int r = 0;

  if (h == NULL)
    return 0;
  if (nbd_aio_is_ready (h) && nbd_shutdown (h, 0) == -1)
    r = nbd_fail (file, "shutdown");
  nbd_close (h);
  return r;
}

/* Chunk C of the view H into BUF (N bytes), in the pieces NBD serves
 * fastest (docs/design-dr.md, section 1).
 */
static int
view_read (struct nbd_handle *h, const char *file, unsigned char *buf,
           size_t n, uint64_t off)
{
  for (size_t p = 0; p < n; p += VMFERRY_SOURCE_NBD_PIECE) {
    size_t k = n - p < VMFERRY_SOURCE_NBD_PIECE ? n - p
                                                : VMFERRY_SOURCE_NBD_PIECE;
    if (nbd_pread (h, buf + p, k, off + p, 0) == -1)
      return nbd_fail (file, "read");
  }
  return 0;
}

/* The map of the whole view through FILE (S's: what the standby's guest
 * would read), or NULL with the error set.
 */
static struct vmferry_map *
map_of_view (struct standby *s, const char *file)
{
  CLEANUP_FREE unsigned char *buf = malloc (CHUNK);
  struct vmferry_map *m = NULL;
  struct nbd_handle *h;
  uint64_t size;

  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return NULL;
  }
  h = view_open (s, file, false, &size);
  if (h == NULL || !(m = vmferry_map_new (size, CHUNK)))
    goto err;
  for (uint64_t off = 0; off < size; off += CHUNK) {
    size_t n = size - off < CHUNK ? size - off : CHUNK;
    if (view_read (h, file, buf, n, off) < 0 ||
        vmferry_map_update (m, off, buf, n) < 0)
      goto err;
  }
  if (view_close (h, file) < 0) {
    h = NULL;
    goto err;
  }
  return m;
 err:
  view_close (h, file);
  vmferry_map_free (m);
  return NULL;
}

static int finish_commit (struct standby *s);
static int finish_merge (struct standby *s);

static int
standby_open (const char *uri, const char *name, struct standby *s)
{
  CLEANUP_FREE char *dir = NULL;
  CLEANUP_FREE char *lock = NULL;

  memset (s, 0, sizeof *s);
  s->name = name;
  s->lock_fd = -1;
  s->dir.fd = -1;
  /* NAME becomes part of file names: one component, no dot first. */
  if (*name == '\0' || *name == '.' || strchr (name, '/') ||
      strlen (name) > 200) {
    vmferry_set_error ("standby name '%s': not usable in a file name", name);
    return -1;
  }
  if (!(s->conn = vmferry_virt_connect (uri)) ||
      !(s->dom = vmferry_virt_lookup_domain (s->conn, name)) ||
      domain_disks (s->dom, name, &s->disks, &s->nr) < 0)
    return -1;
  dir = strndup (s->disks[0].path,
                 base_name (s->disks[0].path) - s->disks[0].path);
  if (dir == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  for (size_t i = 1; i < s->nr; i++)
    if (strncmp (s->disks[i].path, dir, strlen (dir)) != 0 ||
        strchr (s->disks[i].path + strlen (dir), '/')) {
      vmferry_set_error ("standby %s: its disks are in several directories "
                         "(not supported yet)", name);
      return -1;
    }
  if (vmferry_target_open (&s->dir, *dir ? dir : "/", false, 0) < 0)
    return -1;
  if (asprintf (&lock, ".vmferry-sync-%s.lock", name) < 0 ||
      asprintf (&s->state, ".vmferry-sync-%s.json", name) < 0 ||
      asprintf (&s->journal, ".vmferry-sync-%s.commit", name) < 0 ||
      asprintf (&s->merge, ".vmferry-sync-%s.merge", name) < 0 ||
      asprintf (&s->new_prefix, ".vmferry-sync-%s.new-", name) < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  s->lock_fd = openat (s->dir.fd, lock, O_RDWR | O_CREAT | O_NOFOLLOW |
                       O_CLOEXEC, 0600);
  if (s->lock_fd < 0) {
    vmferry_set_error_errno (errno, "%s/%s", s->dir.path, lock);
    return -1;
  }
  if (flock (s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    vmferry_set_error_errno (errno, "standby %s: another vmferry-sync works "
                             "on it", name);
    return -1;
  }
  return finish_commit (s) < 0 ? -1 : finish_merge (s);
}

/* The stat fields that say a file is the one recorded. */
static void
stat_record (json_object *d, const struct stat *st)
{
  char t[64];

  jset_int (d, "dev", st->st_dev);
  jset_int (d, "ino", st->st_ino);
  jset_int (d, "size", st->st_size);
  snprintf (t, sizeof t, "%lld.%09ld", (long long) st->st_mtim.tv_sec,
            st->st_mtim.tv_nsec);
  jset_str (d, "mtime", t);
  snprintf (t, sizeof t, "%lld.%09ld", (long long) st->st_ctim.tv_sec,
            st->st_ctim.tv_nsec);
  jset_str (d, "ctime", t);
}

static bool
stat_matches (json_object *d, const struct stat *st)
{
  json_object *now = json_object_new_object ();
  bool same;

  stat_record (now, st);
  same = jint (d, "dev") == jint (now, "dev") &&
         jint (d, "ino") == jint (now, "ino") &&
         jint (d, "size") == jint (now, "size") &&
         jstr (d, "mtime") &&
         strcmp (jstr (d, "mtime"), jstr (now, "mtime")) == 0 &&
         jstr (d, "ctime") &&
         strcmp (jstr (d, "ctime"), jstr (now, "ctime")) == 0;
  json_object_put (now);
  return same;
}

/* Write the receiver's record from TMPL (generation, token, per disk its
 * target, root and chain: top, base, base_format, gens), each file of
 * every chain with its stat as it is now.
 */
static int
state_write (struct standby *s, json_object *tmpl)
{
  json_object *o = json_object_new_object (), *a = json_object_new_array ();
  static const char *const keep[] = { "target", "root", "top", "base",
                                      "base_format", "gens" };
  int r = -1;

  jset_int (o, "generation", jint (tmpl, "generation"));
  jset_str (o, "token", jstr (tmpl, "token") ? jstr (tmpl, "token") : "");
  json_object_object_add (o, "disks", a);
  for (size_t i = 0; i < s->nr; i++) {
    json_object *t = by_target (jarr (tmpl, "disks"), s->disks[i].target);
    json_object *d = json_object_new_object (), *f = json_object_new_array ();
    struct chain c;

    json_object_array_add (a, d);
    if (t == NULL || chain_parse (t, &c) < 0) {
      vmferry_set_error ("disk %s: a damaged record", s->disks[i].target);
      goto out;
    }
    for (size_t k = 0; k < sizeof keep / sizeof *keep; k++) {
      json_object *v;
      if (json_object_object_get_ex (t, keep[k], &v))
        json_object_object_add (d, keep[k], json_object_get (v));
    }
    json_object_object_add (d, "files", f);
    for (size_t k = 0; k < chain_len (&c); k++) {
      CLEANUP_FREE char *n = chain_name (&c, k);
      json_object *e = json_object_new_object ();
      struct stat st;

      json_object_array_add (f, e);
      if (n == NULL || vmferry_target_stat (&s->dir, n, &st) != 1) {
        vmferry_set_error ("%s/%s: gone", s->dir.path, n ? n : "?");
        chain_free (&c);
        goto out;
      }
      jset_str (e, "file", n);
      stat_record (e, &st);
    }
    chain_free (&c);
  }
  r = json_save (&s->dir, s->new_prefix, s->state, o);
 out:
  json_object_put (o);
  return r;
}

/* Whether every file of disk D's recorded chain is still the file
 * recorded: a write into S's view, by hand or by a guest, changes one of
 * them (the top, or a backing file written directly).
 */
static bool
chain_unchanged (struct standby *s, json_object *d)
{
  json_object *f = d ? jarr (d, "files") : NULL;
  struct chain c;
  bool same = true;

  if (f == NULL || chain_parse (d, &c) < 0)
    return false;
  if (json_object_array_length (f) != chain_len (&c))
    same = false;
  for (size_t k = 0; same && k < chain_len (&c); k++) {
    CLEANUP_FREE char *n = chain_name (&c, k);
    json_object *e = json_object_array_get_idx (f, k);
    struct stat st;

    same = n && jstr (e, "file") && strcmp (jstr (e, "file"), n) == 0 &&
           vmferry_target_stat (&s->dir, n, &st) == 1 &&
           stat_matches (e, &st);
  }
  chain_free (&c);
  return same;
}

/* A file a run of this standby made aside: its prefix and the six
 * letters or digits of vmferry_target_random_name, nothing after (another
 * standby, named "NAME.new-abcdef", has longer names).
 */
static bool
is_stray (const struct standby *s, const char *n)
{
  size_t pl = strlen (s->new_prefix);

  if (strncmp (n, s->new_prefix, pl) != 0 || strlen (n) != pl + 6)
    return false;
  for (n += pl; *n; n++)
    if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
          (*n >= '0' && *n <= '9')))
      return false;
  return true;
}

/* Take QEMU's image locks on FILE below DIR (none can open it while the
 * returned fd is open), or -1: in use, or an error.
 */
static int
lock_file (const struct vmferry_target *dir, const char *file)
{
  /* Not vmferry_target_open_file: the top has a second name, its restore
   * point's, linked by this refresh (named in the journal).
   */
  int fd = openat (dir->fd, file, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;

  if (fd < 0) {
    vmferry_set_error_errno (errno, "%s/%s", dir->path, file);
    return -1;
  }
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode)) {
    vmferry_set_error ("%s/%s: not a regular file", dir->path, file);
    close (fd);
    return -1;
  }
  if (vmferry_image_lock (fd, file) < 0) {
    close (fd);
    return -1;
  }
  return fd;
}

/* A restore point's name a killed refresh linked and never committed: a
 * second name of the top that the record does not list.
 */
static void
remove_stray_links (struct standby *s)
{
  json_object *state = json_load (&s->dir, s->state);
  DIR *dh;
  struct dirent *e;

  if (state == NULL)
    return;
  dh = vmferry_target_opendir (&s->dir);
  for (size_t i = 0; dh && i < s->nr; i++) {
    struct chain c;
    struct stat top, st;

    if (chain_parse (by_target (jarr (state, "disks"), s->disks[i].target),
                     &c) < 0)
      continue;
    rewinddir (dh);
    while (vmferry_target_stat (&s->dir, c.top, &top) == 1 &&
           (e = readdir (dh)) != NULL) {
      size_t tl = strlen (c.top);
      const char *g = e->d_name + tl + 2;
      bool listed = false;
      char *end;
      long long n;

      if (strncmp (e->d_name, c.top, tl) != 0 ||
          strncmp (e->d_name + tl, ".g", 2) != 0 || *g < '1' || *g > '9')
        continue;
      n = strtoll (g, &end, 10);
      if (*end != '\0')
        continue;
      for (size_t k = 0; k < c.nr_gens; k++)
        listed |= c.gens[k] == n;
      if (!listed && vmferry_target_stat (&s->dir, e->d_name, &st) == 1 &&
          st.st_dev == top.st_dev && st.st_ino == top.st_ino) {
        vmferry_debug ("removing %s/%s, linked by a killed run", s->dir.path,
                       e->d_name);
        vmferry_target_unlink (&s->dir, e->d_name);
      }
    }
    chain_free (&c);
  }
  if (dh)
    closedir (dh);
  json_object_put (state);
}

/* A commit that was journaled is finished (every new overlay renamed
 * over its top, every new map over its map, then the record); files a
 * run left without a journal are removed, and the restore point names
 * it linked: the standby is as before them.
 */
static int
finish_commit (struct standby *s)
{
  json_object *j = json_load (&s->dir, s->journal), *a;
  CLEANUP_FREE int *locks = NULL;
  DIR *dh;
  struct dirent *e;
  int r = -1;

  if (j == NULL && vmferry_get_errno () != ENOENT)
    return -1;
  if (j != NULL) {
    bool drop = false;

    a = jarr (j, "disks");
    locks = calloc (2 * s->nr, sizeof *locks);
    if (a == NULL || locks == NULL || jstr (j, "token") == NULL) {
      vmferry_set_error ("%s/%s: damaged", s->dir.path, s->journal);
      goto out;
    }
    /* No QEMU may open a top, old or new, while they are switched; and
     * a standby started since the journal (it took over: its disks are
     * not those the refresh was made on) keeps what it has.
     */
    for (size_t i = 0; i < 2 * s->nr; i++)
      locks[i] = -1;
    for (size_t i = 0; i < s->nr; i++) {
      json_object *d = by_target (a, s->disks[i].target), *old;
      const char *nf = d ? jstr (d, "new") : NULL;
      const char *top = d ? jstr (d, "top") : NULL;
      struct stat st;

      if (nf == NULL || !name_ok (top)) {
        vmferry_set_error ("%s/%s: damaged", s->dir.path, s->journal);
        goto out;
      }
      if (vmferry_target_stat (&s->dir, nf, &st) != 1)
        continue;               /* renamed already */
      if ((locks[2 * i] = lock_file (&s->dir, top)) < 0 ||
          (locks[2 * i + 1] = lock_file (&s->dir, nf)) < 0) {
        vmferry_prefix_error ("standby %s: cannot finish a refresh", s->name);
        goto out;
      }
      if (!json_object_object_get_ex (d, "old", &old) ||
          vmferry_target_stat (&s->dir, top, &st) != 1 ||
          !stat_matches (old, &st))
        drop = true;
    }
    if (check_shut_off (s) < 0)
      goto out;
    if (drop) {
      vmferry_notice ("standby %s changed since a refresh was made ready: "
                      "that refresh is dropped, the standby kept as it is",
                      s->name);
      if (vmferry_target_unlink (&s->dir, s->journal) < 0 ||
          vmferry_target_sync (&s->dir) < 0)
        goto out;
      json_object_put (j);
      j = NULL;
    }
    for (size_t i = 0; j && i < s->nr; i++) {
      json_object *d = by_target (a, s->disks[i].target);
      const char *nf = d ? jstr (d, "new") : NULL;
      const char *nm = d ? jstr (d, "new_map") : NULL;
      CLEANUP_FREE char *mn = map_name (s, s->disks[i].target);
      struct stat st;

      if (nf == NULL || nm == NULL || mn == NULL) {
        vmferry_set_error ("%s/%s: damaged", s->dir.path, s->journal);
        goto out;
      }
      /* Renamed already by the killed run: nothing to do. */
      if (vmferry_target_stat (&s->dir, nf, &st) == 1) {
        if (vmferry_target_rename (&s->dir, nf, &s->dir, jstr (d, "top"),
                                   0) < 0)
          goto out;
        if (vmferry_fault ("sync-renamed") < 0)
          goto out;
      }
      if (vmferry_target_stat (&s->dir, nm, &st) == 1 &&
          vmferry_target_rename (&s->dir, nm, &s->dir, mn, 0) < 0)
        goto out;
    }
    if (j && (vmferry_target_sync (&s->dir) < 0 ||
              state_write (s, j) < 0 ||
              vmferry_fault ("sync-recorded") < 0 ||
              vmferry_target_unlink (&s->dir, s->journal) < 0 ||
              vmferry_target_sync (&s->dir) < 0))
      goto out;
  }
  dh = vmferry_target_opendir (&s->dir);
  if (dh == NULL)
    goto out;
  while ((e = readdir (dh)) != NULL)
    if (is_stray (s, e->d_name)) {
      vmferry_debug ("removing %s/%s, left by a killed run", s->dir.path,
                     e->d_name);
      vmferry_target_unlink (&s->dir, e->d_name);
    }
  closedir (dh);
  remove_stray_links (s);
  r = 0;
 out:
  for (size_t i = 0; locks && i < 2 * s->nr; i++)
    if (locks[i] >= 0)
      close (locks[i]);
  json_object_put (j);
  return r;
}

/* ---- retention: restore points beyond --keep merged into the base ---- */

/* FILE is a qcow2 overlay of ours: its backing named BACKING, of
 * FORMAT, and nothing qemu-img would write elsewhere (an external data
 * file).  qemu-img commit writes where the header says: what it says is
 * checked first, not trusted.
 */
static int
check_overlay (struct standby *s, const char *file, const char *backing,
               const char *format)
{
  CLEANUP_CLOSE int fd = openat (s->dir.fd, file,
                                 O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct vmferry_qcow2_info q;

  if (fd < 0) {
    vmferry_set_error_errno (errno, "%s/%s", s->dir.path, file);
    return -1;
  }
  if (vmferry_qcow2_probe (fd, file, &q) != 1 || q.has_data_file ||
      (q.incompatible_features & ~VMFERRY_QCOW2_INCOMPAT_KNOWN) ||
      !q.has_backing || strcmp (q.backing_format, format) != 0 ||
      strcmp (q.backing_file, backing) != 0) {
    vmferry_set_error ("%s/%s: not the overlay of %s this standby made: "
                       "not merged", s->dir.path, file, backing);
    return -1;
  }
  return 0;
}

/* Carry out the merge journal J: the oldest restore point committed into
 * the base (qemu-img commit: the view through S is unchanged at every
 * instant, the overlay above still wins for each cluster it holds), its
 * child rebased onto the base (-u: the base now reads as it did), the
 * restore point removed, the record updated.  Every step may be done
 * again after a kill.
 */
static int
merge_run (struct standby *s, json_object *j)
{
  const char *target = jstr (j, "target"), *child = jstr (j, "child");
  json_object *state = NULL, *d, *gens;
  CLEANUP_FREE char *old = NULL;
  CLEANUP_FREE char *old_path = NULL;
  CLEANUP_FREE char *child_path = NULL;
  int64_t gen = jint (j, "gen");
  struct chain c;
  struct stat st;
  int r = -1;

  if (check_shut_off (s) < 0)
    return -1;
  state = json_load (&s->dir, s->state);
  d = state && target ? by_target (jarr (state, "disks"), target) : NULL;
  if (d == NULL || chain_parse (d, &c) < 0 || !name_ok (child)) {
    vmferry_set_error ("%s/%s: damaged", s->dir.path, s->merge);
    json_object_put (state);
    return -1;
  }
  if (!(old = gen_name (&c, gen)) ||
      !(old_path = vmferry_target_path (&s->dir, old)) ||
      !(child_path = vmferry_target_path (&s->dir, child)))
    goto out;
  if (vmferry_target_stat (&s->dir, old, &st) == 1) {
    char *commit[] = { (char *) "qemu-img", (char *) "commit", (char *) "-q",
                       (char *) "-d", (char *) "-f", (char *) "qcow2",
                       old_path, NULL };
    char *rebase[] = { (char *) "qemu-img", (char *) "rebase", (char *) "-u",
                       (char *) "-f", (char *) "qcow2", (char *) "-b",
                       c.base, (char *) "-F", c.format, child_path, NULL };

    /* The child points at the restore point, or at the base already
     * (a run killed after the rebase).
     */
    if (check_overlay (s, old, c.base, c.format) < 0 ||
        (check_overlay (s, child, old, "qcow2") < 0 &&
         check_overlay (s, child, c.base, c.format) < 0) ||
        qemu_img (commit) < 0 || vmferry_fault ("sync-merge-committed") < 0 ||
        qemu_img (rebase) < 0 || vmferry_fault ("sync-merge-rebased") < 0 ||
        vmferry_target_unlink (&s->dir, old) < 0 ||
        vmferry_target_sync (&s->dir) < 0) {
      vmferry_prefix_error ("standby %s: disk %s: merging restore point %"
                            PRId64 " into %s", s->name, target, gen, c.base);
      goto out;
    }
  }
  gens = json_object_new_array ();
  for (size_t k = 0; k < c.nr_gens; k++)
    if (c.gens[k] != gen)
      json_object_array_add (gens, json_object_new_int64 (c.gens[k]));
  json_object_object_add (d, "gens", gens);
  if (state_write (s, state) < 0 ||
      vmferry_target_unlink (&s->dir, s->merge) < 0 ||
      vmferry_target_sync (&s->dir) < 0)
    goto out;
  r = 0;
 out:
  chain_free (&c);
  json_object_put (state);
  return r;
}

static int
finish_merge (struct standby *s)
{
  json_object *j = json_load (&s->dir, s->merge);
  int r;

  if (j == NULL)
    return vmferry_get_errno () == ENOENT ? 0 : -1;
  r = merge_run (s, j);
  json_object_put (j);
  return r;
}

/* Merge each disk's restore points beyond KEEP, oldest first, each
 * journaled before it is done.  Only a chain still as recorded is
 * touched: qemu-img follows the backing names its files hold.
 */
static int
merge_old (struct standby *s, unsigned keep)
{
  json_object *state = json_load (&s->dir, s->state);
  int r = -1;

  if (state == NULL)
    return -1;
  for (size_t i = 0; i < s->nr; i++) {
    json_object *d = by_target (jarr (state, "disks"), s->disks[i].target);
    struct chain c;

    if (chain_parse (d, &c) < 0) {
      vmferry_set_error ("%s/%s: damaged", s->dir.path, s->state);
      goto out;
    }
    while (c.nr_gens > keep) {
      json_object *j = json_object_new_object ();
      CLEANUP_FREE char *child = chain_name (&c, 2);
      int rr = -1;

      if (!chain_unchanged (s, d)) {
        vmferry_notice ("standby %s: disk %s changed since it was recorded: "
                        "its restore points are not merged", s->name,
                        s->disks[i].target);
        json_object_put (j);
        break;
      }
      jset_str (j, "target", s->disks[i].target);
      jset_int (j, "gen", c.gens[0]);
      if (child)
        jset_str (j, "child", child);
      if (child && json_save (&s->dir, s->new_prefix, s->merge, j) == 0 &&
          vmferry_fault ("sync-merge-journaled") == 0)
        rr = merge_run (s, j);
      json_object_put (j);
      chain_free (&c);
      json_object_put (state);
      if (rr < 0 || !(state = json_load (&s->dir, s->state)))
        return -1;
      d = by_target (jarr (state, "disks"), s->disks[i].target);
      if (chain_parse (d, &c) < 0) {
        vmferry_set_error ("%s/%s: damaged", s->dir.path, s->state);
        goto out;
      }
    }
    chain_free (&c);
  }
  r = 0;
 out:
  json_object_put (state);
  return r;
}

/* The map of what the raw FILE holds, read in full. */
static struct vmferry_map *
map_of_file (struct standby *s, const char *file)
{
  CLEANUP_CLOSE int fd = vmferry_target_open_file (&s->dir, file, O_RDONLY);
  struct vmferry_map *m;
  uint64_t size;

  if (fd < 0 || vmferry_file_size (fd, file, &size) < 0 ||
      !(m = vmferry_map_new (size, CHUNK)))
    return NULL;
  if (vmferry_map_fd (fd, file, m, NULL) < 0) {
    vmferry_map_free (m);
    return NULL;
  }
  return m;
}

/* Disk I's recorded map, if the record is there and every file of its
 * chain is still the one recorded (else NULL, without an error: not
 * trusted).
 */
static struct vmferry_map *
trusted_map (struct standby *s, json_object *state, size_t i)
{
  json_object *d = by_target (jarr (state, "disks"), s->disks[i].target);
  CLEANUP_FREE char *mn = map_name (s, s->disks[i].target);
  unsigned char want[16], got[16];
  struct vmferry_map *m;

  if (d == NULL || mn == NULL || !chain_unchanged (s, d) ||
      vmferry_hex_decode_str (jstr (d, "root"), want, 16) < 0)
    return NULL;
  m = map_load (&s->dir, mn);
  /* A raw base's size is the disk's; a qcow2 base's file is not. */
  if (m == NULL || vmferry_map_root (m, got) < 0 || memcmp (got, want, 16) ||
      (jstr (d, "base_format") &&
       strcmp (jstr (d, "base_format"), "raw") == 0 &&
       (int64_t) vmferry_map_size (m) !=
       jint (json_object_array_get_idx (jarr (d, "files"), 0), "size"))) {
    vmferry_map_free (m);
    return NULL;
  }
  return m;
}

static int
print_json (FILE *out, json_object *o)
{
  const char *s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);

  if (fprintf (out, "%s\n", s) < 0 ||
      fflush (out) != 0) {
    vmferry_set_error_errno (errno, "stdout");
    return -1;
  }
  return 0;
}

/* The standby's XML with each disk's source at its top, as qcow2 (the
 * chain below it libvirt reads from the files), defined again: the same
 * domain, UUID and all.
 */
static int
define_on_tops (struct standby *s, char **tops)
{
  CLEANUP_FREE char *xml = virDomainGetXMLDesc (s->dom,
                                                VIR_DOMAIN_XML_INACTIVE |
                                                VIR_DOMAIN_XML_SECURE);
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  xmlChar *text = NULL;
  xmlNodePtr devs;
  virDomainPtr nd;
  size_t done = 0;
  int len, changes = 0;

  if (xml == NULL) {
    vmferry_virt_error ("standby %s: cannot read its XML", s->name);
    return -1;
  }
  doc = vmferry_domain_parse (xml, strlen (xml), s->name);
  devs = doc ? vmferry_xml_child (xmlDocGetRootElement (doc), "devices")
             : NULL;
  for (xmlNodePtr n = devs ? devs->children : NULL; n; n = n->next) {
    xmlNodePtr src = vmferry_xml_child (n, "source");
    xmlNodePtr drv = vmferry_xml_child (n, "driver");
    CLEANUP_FREE char *file = vmferry_xml_attr (src, "file");

    if (!vmferry_xml_is_elem (n, "disk") || file == NULL)
      continue;
    for (size_t i = 0; i < s->nr; i++) {
      CLEANUP_FREE char *p = NULL;
      if (strcmp (file, s->disks[i].path) != 0)
        continue;
      p = vmferry_target_path (&s->dir, tops[i]);
      if (p == NULL || drv == NULL ||
          vmferry_xml_set_attr (src, "file", p, &changes) < 0 ||
          vmferry_xml_set_attr (drv, "type", "qcow2", &changes) < 0)
        return -1;
      done++;
    }
  }
  if (done != s->nr) {
    vmferry_set_error ("standby %s: not every disk found in its XML",
                       s->name);
    return -1;
  }
  xmlDocDumpMemory (doc, &text, &len);
  if (text == NULL) {
    vmferry_set_error_errno (ENOMEM, "standby %s: XML", s->name);
    return -1;
  }
  if (vmferry_fault ("sync-init-define") < 0) {
    xmlFree (text);
    return -1;
  }
  nd = virDomainDefineXML (s->conn, (const char *) text);
  xmlFree (text);
  if (nd == NULL) {
    vmferry_virt_error ("standby %s: cannot define it on its tops", s->name);
    return -1;
  }
  virDomainFree (nd);
  return 0;
}

int
vmferry_sync_receive_init (const char *uri, const char *name,
                           const char *token, FILE *out)
{
  struct standby s;
  json_object *o = NULL, *a, *tmpl = NULL, *ta;
  CLEANUP_FREE char **tops = NULL;
  unsigned char tk[16];
  size_t made = 0, on_tops = 0;
  int r = -1;

  if (vmferry_hex_decode_str (token, tk, 16) < 0) {
    vmferry_set_error ("--token: 32 hex digits expected");
    return -1;
  }
  if (standby_open (uri, name, &s) < 0 || check_shut_off (&s) < 0)
    goto out;
  tops = calloc (s.nr, sizeof *tops);
  o = json_object_new_object ();
  a = json_object_new_array ();
  json_object_object_add (o, "disks", a);
  jset_int (o, "generation", 1);
  tmpl = json_object_new_object ();
  ta = json_object_new_array ();
  jset_int (tmpl, "generation", 1);
  jset_str (tmpl, "token", token);
  json_object_object_add (tmpl, "disks", ta);
  if (tops == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    goto out;
  }
  /* Each disk the first copy placed becomes the base of an empty top. */
  for (size_t i = 0; i < s.nr; i++) {
    const char *base = base_name (s.disks[i].path);
    CLEANUP_FREE char *tmp = vmferry_target_random_name (s.new_prefix);
    CLEANUP_FREE char *tmp_path = NULL;
    CLEANUP_FREE char *mn = map_name (&s, s.disks[i].target);
    CLEANUP_FREE char *t_base = NULL;
    struct vmferry_map *m = NULL;
    json_object *d = json_object_new_object (), *t = NULL;
    unsigned char root[16];
    struct stat st;
    char hex[33];
    const char *fmt = s.disks[i].format;

    json_object_array_add (a, d);
    /* On its top already: an init killed after the define (the sender
     * then recorded nothing and copies again).  What the top shows is
     * the first copy's.
     */
    if (s.disks[i].format && strcmp (s.disks[i].format, "qcow2") == 0 &&
        strlen (base) > strlen (TOP_SUFFIX) &&
        strcmp (base + strlen (base) - strlen (TOP_SUFFIX), TOP_SUFFIX) == 0) {
      if (!(tops[i] = strdup (base)) ||
          !(t = json_object_new_object ()))
        goto out;
      json_object_array_add (ta, t);
      t_base = strndup (base, strlen (base) - strlen (TOP_SUFFIX));
      /* The base's format: the one the top's header names. */
      {
        CLEANUP_CLOSE int tfd = vmferry_target_open_file (&s.dir, base,
                                                          O_RDONLY);
        struct vmferry_qcow2_info qi;
        fmt = tfd >= 0 && vmferry_qcow2_probe (tfd, base, &qi) == 1 &&
              strcmp (qi.backing_format, "qcow2") == 0 ? "qcow2" : "raw";
      }
      if (t_base == NULL || !name_ok (t_base) ||
          vmferry_target_stat (&s.dir, t_base, &st) != 1 ||
          !(m = map_of_view (&s, base)) || vmferry_map_root (m, root) < 0 ||
          map_save (&s.dir, s.new_prefix, mn, m) < 0) {
        vmferry_map_free (m);
        vmferry_prefix_error ("standby %s: disk %s: on a top without its "
                              "base", name, s.disks[i].target);
        goto out;
      }
      on_tops++;
      goto record;
    }
    if (!fmt || (strcmp (fmt, "raw") != 0 && strcmp (fmt, "qcow2") != 0)) {
      vmferry_set_error ("standby %s: disk %s is %s: only raw and qcow2 "
                         "disks are refreshed for now", name, s.disks[i].target,
                         s.disks[i].format ? s.disks[i].format
                                           : "of no stated format");
      goto out;
    }
    if (!name_ok (base) || asprintf (&tops[i], "%s" TOP_SUFFIX, base) < 0 ||
        tmp == NULL || mn == NULL ||
        !(tmp_path = vmferry_target_path (&s.dir, tmp))) {
      vmferry_set_error ("standby %s: disk %s: no usable name", name,
                         s.disks[i].path);
      goto out;
    }
    {
      char *argv[] = { (char *) "qemu-img", (char *) "create", (char *) "-q",
                       (char *) "-f", (char *) "qcow2", (char *) "-b",
                       (char *) base, (char *) "-F", (char *) fmt,
                       tmp_path, NULL };
      CLEANUP_FREE char *base_path = vmferry_target_path (&s.dir, base);

      /* A qcow2 base is mapped as the guest reads it; the source's
       * bitmaps it came with go: nothing records into the standby.
       */
      if (!base_path ||
          (strcmp (fmt, "qcow2") == 0 &&
           vmferry_sync_bitmap_strip (base_path) < 0) ||
          !(m = strcmp (fmt, "qcow2") == 0 ? map_of_view (&s, base)
                                           : map_of_file (&s, base)) ||
          vmferry_map_root (m, root) < 0 ||
          map_save (&s.dir, s.new_prefix, mn, m) < 0 || qemu_img (argv) < 0 ||
          vmferry_target_rename (&s.dir, tmp, &s.dir, tops[i],
                                 RENAME_NOREPLACE) < 0) {
        vmferry_map_free (m);
        vmferry_target_unlink (&s.dir, tmp);
        vmferry_prefix_error ("standby %s: disk %s: its top", name,
                              s.disks[i].target);
        goto out;
      }
    }
    made++;
    t = json_object_new_object ();
    json_object_array_add (ta, t);
    t_base = strdup (base);
    if (t_base == NULL)
      goto out;
  record:
    vmferry_hex_encode (root, 16, hex);
    jset_str (d, "target", s.disks[i].target);
    jset_str (d, "root", hex);
    jset_int (d, "size", vmferry_map_size (m));
    vmferry_map_free (m);
    jset_str (t, "target", s.disks[i].target);
    jset_str (t, "root", hex);
    jset_str (t, "top", tops[i]);
    jset_str (t, "base", t_base);
    jset_str (t, "base_format", fmt);
    json_object_object_add (t, "gens", json_object_new_array ());
  }
  if (on_tops != 0 && on_tops != s.nr) {
    vmferry_set_error ("standby %s: some disks are on their tops, some not: "
                       "not a standby this tool made", name);
    goto out;
  }
  if (vmferry_target_sync (&s.dir) < 0 || check_shut_off (&s) < 0 ||
      (on_tops == 0 && define_on_tops (&s, tops) < 0) ||
      vmferry_fault ("sync-init-defined") < 0 ||
      state_write (&s, tmpl) < 0)
    goto out;
  r = print_json (out, o);
 out:
  /* Not defined on them: the tops go (the standby is migrate's copy). */
  for (size_t i = 0; r < 0 && i < made; i++)
    vmferry_target_unlink (&s.dir, tops[i]);
  for (size_t i = 0; tops && i < s.nr; i++)
    free (tops[i]);
  json_object_put (tmpl);
  json_object_put (o);
  standby_close (&s);
  return r;
}

/* The answer to a query of the open standby S, printed on OUT. */
static int
query_answer (struct standby *s, bool compare, FILE *out)
{
  json_object *state = NULL, *o = json_object_new_object (), *a;
  int r = -1;
  bool trusted = true;

  state = json_load (&s->dir, s->state);
  if (state == NULL) {
    if (vmferry_get_errno () != ENOENT)
      goto out;
    jset_str (o, "state", "none");
    r = print_json (out, o);
    goto out;
  }
  if (chains_load (s, state) < 0)
    goto out;
  jset_int (o, "generation", jint (state, "generation"));
  jset_str (o, "token", jstr (state, "token") ? jstr (state, "token") : "");
  a = json_object_new_array ();
  json_object_object_add (o, "disks", a);
  for (size_t i = 0; i < s->nr; i++) {
    struct vmferry_map *m = compare ? NULL : trusted_map (s, state, i);
    json_object *d = json_object_new_object (), *rp;
    unsigned char root[16];
    char hex[33];

    json_object_array_add (a, d);
    jset_str (d, "target", s->disks[i].target);
    rp = json_object_new_array ();
    for (size_t k = 0; k < s->chains[i].nr_gens; k++)
      json_object_array_add (rp,
                             json_object_new_int64 (s->chains[i].gens[k]));
    json_object_object_add (d, "restore_points", rp);
    if (m == NULL) {
      /* Not the files recorded, or asked to doubt: what S's view holds. */
      CLEANUP_FREE char *all = NULL;
      uint64_t n;

      trusted = compare ? trusted : false;
      m = map_of_view (s, s->chains[i].top);
      if (m == NULL)
        goto out;
      n = vmferry_map_nr_chunks (m);
      all = malloc (2 * n * VMFERRY_DIGEST_SIZE + 1);
      if (all == NULL) {
        vmferry_map_free (m);
        vmferry_set_error_errno (ENOMEM, "malloc");
        goto out;
      }
      all[0] = '\0';
      for (uint64_t c = 0; c < n; c++) {
        unsigned char dg[16];
        vmferry_map_get (m, c, dg);
        vmferry_hex_encode (dg, 16, all + 2 * c * VMFERRY_DIGEST_SIZE);
      }
      jset_str (d, "map", all);
    }
    if (vmferry_map_root (m, root) < 0) {
      vmferry_map_free (m);
      goto out;
    }
    vmferry_hex_encode (root, 16, hex);
    jset_str (d, "root", hex);
    jset_int (d, "size", vmferry_map_size (m));
    vmferry_map_free (m);
  }
  json_object_object_add (o, "trusted", json_object_new_boolean (trusted));
  r = print_json (out, o);
 out:
  json_object_put (state);
  json_object_put (o);
  return r;
}

int
vmferry_sync_receive_query (const char *uri, const char *name, bool compare,
                            FILE *out)
{
  struct standby s;
  int r = -1;

  if (standby_open (uri, name, &s) == 0 && check_shut_off (&s) == 0)
    r = query_answer (&s, compare, out);
  standby_close (&s);
  return r;
}

int
vmferry_sync_receive_list (const char *uri, const char *name, FILE *out)
{
  struct standby s;
  json_object *state = NULL, *o = json_object_new_object (), *a;
  int r = -1;

  if (standby_open (uri, name, &s) < 0)
    goto out;
  state = json_load (&s.dir, s.state);
  if (state == NULL) {
    vmferry_prefix_error ("standby %s: no record of an earlier sync", name);
    goto out;
  }
  if (chains_load (&s, state) < 0)
    goto out;
  jset_int (o, "generation", jint (state, "generation"));
  a = json_object_new_array ();
  json_object_object_add (o, "disks", a);
  for (size_t i = 0; i < s.nr; i++) {
    json_object *d = json_object_new_object (), *rp = json_object_new_array ();

    json_object_array_add (a, d);
    jset_str (d, "target", s.disks[i].target);
    json_object_object_add (d, "restore_points", rp);
    for (size_t k = 0; k < s.chains[i].nr_gens; k++) {
      json_object *e = json_object_new_object ();
      CLEANUP_FREE char *n = gen_name (&s.chains[i], s.chains[i].gens[k]);
      CLEANUP_FREE char *p = n ? vmferry_target_path (&s.dir, n) : NULL;

      json_object_array_add (rp, e);
      if (p == NULL)
        goto out;
      jset_int (e, "generation", s.chains[i].gens[k]);
      jset_str (e, "file", p);
    }
  }
  r = print_json (out, o);
 out:
  json_object_put (state);
  json_object_put (o);
  standby_close (&s);
  return r;
}

/* One disk of a refresh being applied: a new overlay over the top's
 * restore point takes the stream's records through qemu-nbd; CHANGED
 * marks the chunks they touched.
 */
struct applied {
  char *new_file, *new_map, *link;
  struct nbd_handle *h;
  bool begun;
  uint64_t size;
  unsigned char *changed;       /* a byte a chunk */
  bool have_root;
  unsigned char root[16], base_root[16];
  struct vmferry_map *base;     /* the map the sender diffed against */
};

static void
mark (struct applied *ap, uint64_t off, uint64_t len)
{
  for (uint64_t c = off / CHUNK; c <= (off + len - 1) / CHUNK; c++)
    ap->changed[c] = 1;
}

/* Begin disk I: a new overlay over the top, under a temporary name,
 * served by qemu-nbd.  Its backing is named by the top's own name while
 * it is written: the top gets its restore point name only once the
 * overlay verified (overlay_link), so that a refresh cut before leaves
 * the top's inode, ctime and all, as recorded.
 */
static int
overlay_begin (struct standby *s, size_t i, struct applied *ap)
{
  const struct chain *c = &s->chains[i];
  CLEANUP_FREE char *path = NULL;

  if (!(ap->new_file = vmferry_target_random_name (s->new_prefix)) ||
      !(ap->new_map = vmferry_target_random_name (s->new_prefix)) ||
      !(path = vmferry_target_path (&s->dir, ap->new_file)))
    return -1;
  {
    char *argv[] = { (char *) "qemu-img", (char *) "create", (char *) "-q",
                     (char *) "-f", (char *) "qcow2", (char *) "-b",
                     c->top, (char *) "-F", (char *) "qcow2", path, NULL };
    if (qemu_img (argv) < 0)
      return -1;
  }
  ap->h = view_open (s, ap->new_file, true, &ap->size);
  return ap->h ? 0 : -1;
}

/* The verified overlay of disk I gets its backing's lasting name: the
 * top's restore point name for generation GEN, a second link of it.
 */
static int
overlay_link (struct standby *s, size_t i, int64_t gen, struct applied *ap)
{
  const struct chain *c = &s->chains[i];
  CLEANUP_FREE char *path = vmferry_target_path (&s->dir, ap->new_file);
  char *link = gen_name (c, gen);

  if (path == NULL || link == NULL) {
    free (link);
    return -1;
  }
  if (linkat (s->dir.fd, c->top, s->dir.fd, link, 0) < 0) {
    vmferry_set_error_errno (errno, "%s/%s: cannot link it as %s",
                             s->dir.path, c->top, link);
    free (link);                /* not ours: never removed */
    return -1;
  }
  ap->link = link;
  if (vmferry_fault ("sync-linked") < 0)
    return -1;
  {
    char *argv[] = { (char *) "qemu-img", (char *) "rebase", (char *) "-u",
                     (char *) "-f", (char *) "qcow2", (char *) "-b", link,
                     (char *) "-F", (char *) "qcow2", path, NULL };
    return qemu_img (argv);
  }
}

/* The new view's map: the base's with the touched chunks read again
 * through the new overlay's chain (an untrusted base was read in full
 * already, so this holds for both).
 */
static int
verify_applied (struct standby *s, struct applied *ap, const char *target,
                unsigned char root[16])
{
  CLEANUP_FREE unsigned char *buf = malloc (CHUNK);
  struct vmferry_map *m = ap->base;
  char want_hex[33], got_hex[33];

  (void) s;
  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  if (nbd_flush (ap->h, 0) == -1)
    return nbd_fail (ap->new_file, "flush");
  for (uint64_t c = 0; c < vmferry_map_nr_chunks (m); c++) {
    uint64_t off = c * CHUNK;
    size_t n = ap->size - off < CHUNK ? ap->size - off : CHUNK;

    if (!ap->changed[c])
      continue;
    vmferry_map_clear_chunk (m, c);
    if (view_read (ap->h, ap->new_file, buf, n, off) < 0 ||
        vmferry_map_update (m, off, buf, n) < 0)
      return -1;
  }
  if (vmferry_map_root (m, root) < 0)
    return -1;
  if (!ap->have_root || memcmp (root, ap->root, 16) != 0) {
    vmferry_hex_encode (ap->root, 16, want_hex);
    vmferry_hex_encode (root, 16, got_hex);
    vmferry_set_error ("disk %s: the refreshed copy does not verify (map root "
                       "%s, the stream says %s): the standby is unchanged",
                       target, got_hex, ap->have_root ? want_hex : "nothing");
    return -1;
  }
  return 0;
}

/* Apply the refresh stream on IN_FD to the open standby S (see
 * vmferry_sync_receive_apply), printing the answer on OUT.  ANSWER_FIRST
 * (after a query in the same process): the answer is printed once the
 * refresh is committed and redefined, before the merge, so that the
 * sender records its side meanwhile; and an input that ends before its
 * first byte (the sender chose not to refresh) is no error.
 */
static int
apply_run (struct standby *s, int in_fd, unsigned keep, FILE *out,
           bool answer_first)
{
  const char *name = s->name;
  struct vmferry_stream_reader *rd = NULL;
  struct vmferry_record rec;
  json_object *state = NULL, *manifest = NULL, *journal = NULL, *ja;
  json_object *files = NULL;
  struct applied *ap = NULL;
  CLEANUP_FREE unsigned char *buf = malloc (VMFERRY_MAX_RECORD_LENGTH);
  int64_t gen = -1;
  const char *token = NULL;
  CLEANUP_FREE char *src_xml = NULL;
  CLEANUP_FREE char *new_xml = NULL;
  int r = -1, rr, redefine = -1;
  size_t cur = SIZE_MAX;
  bool ended = false;

  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  state = json_load (&s->dir, s->state);
  if (state == NULL) {
    vmferry_prefix_error ("standby %s: no record of an earlier sync", name);
    goto out;
  }
  gen = jint (state, "generation");
  token = jstr (state, "token");
  ap = calloc (s->nr, sizeof *ap);
  rd = vmferry_stream_reader_new (in_fd, "stream");
  if (ap == NULL || rd == NULL || token == NULL || gen <= 0 ||
      chains_load (s, state) < 0)
    goto out;
  /* Each disk's new overlay is made before the stream comes, while the
   * sender gets ready (its bitmaps, its own qemu-nbd).
   */
  for (size_t i = 0; i < s->nr; i++)
    if (overlay_begin (s, i, &ap[i]) < 0)
      goto out;

  while ((rr = vmferry_stream_read_record (rd, &rec)) == 1) {
    switch (rec.type) {
    case VMFERRY_REC_STREAM_HEADER: {
      struct vmferry_stream_header h;
      if (vmferry_record_stream_header (&rec, rec.payload, &h) < 0)
        goto out;
      if (!(h.mandatory & VMFERRY_FEATURE_REFRESH)) {
        vmferry_set_error ("stream: not a refresh stream");
        goto out;
      }
      break;
    }
    case VMFERRY_REC_MANIFEST: {
      size_t len;
      CLEANUP_FREE char *text = vmferry_record_metadata (&rec, rec.payload,
                                                         &len);
      if (text == NULL)
        goto out;
      manifest = json_tokener_parse (text);
      files = manifest ? jarr (manifest, "files") : NULL;
      if (files == NULL) {
        vmferry_set_error ("stream: the manifest has no files");
        goto out;
      }
      break;
    }
    case VMFERRY_REC_DOMAIN_XML: {
      size_t len;
      free (src_xml);
      if (!(src_xml = vmferry_record_metadata (&rec, rec.payload, &len)))
        goto out;
      break;
    }
    case VMFERRY_REC_FILE_BEGIN: {
      json_object *f = json_object_array_get_idx (files, rec.file), *b, *v;
      const char *target = f ? jstr (f, "target") : NULL;
      uint64_t size;
      size_t i;

      if (!target || vmferry_record_file_begin (&rec, rec.payload, &size) < 0)
        goto bad_manifest;
      for (i = 0; i < s->nr && strcmp (s->disks[i].target, target) != 0; i++)
        ;
      if (i == s->nr || ap[i].begun ||
          !json_object_object_get_ex (f, "base", &b) ||
          !json_object_object_get_ex (b, "chunk", &v) ||
          json_object_get_int64 (v) != CHUNK ||
          vmferry_hex_decode_str (jstr (b, "root"), ap[i].base_root, 16) < 0)
        goto bad_manifest;
      ap[i].begun = true;
      /* The base the sender diffed against must be what this standby
       * holds: its record's, or what S's view holds now when doubted.
       */
      if (jint (b, "generation") != gen || !jstr (b, "token") ||
          strcmp (jstr (b, "token"), token) != 0) {
        vmferry_set_error ("stream: a refresh of another generation or "
                           "standby (generation %" PRId64 ", this standby "
                           "holds %" PRId64 ")", jint (b, "generation"), gen);
        goto out;
      }
      {
        unsigned char root[16];
        ap[i].base = trusted_map (s, state, i);
        if (ap[i].base == NULL &&
            !(ap[i].base = map_of_view (s, s->chains[i].top)))
          goto out;
        if (vmferry_map_root (ap[i].base, root) < 0)
          goto out;
        if (memcmp (root, ap[i].base_root, 16) != 0) {
          vmferry_set_error ("disk %s: changed since the sender compared "
                             "it: the standby is unchanged; run again",
                             target);
          goto out;
        }
      }
      if (size != ap[i].size) {
        vmferry_set_error ("disk %s: its size changed (%" PRIu64 " bytes, "
                           "the standby has %" PRIu64 "): run with --full",
                           target, size, ap[i].size);
        goto out;
      }
      ap[i].changed = calloc (vmferry_map_nr_chunks (ap[i].base) + 1, 1);
      if (ap[i].changed == NULL)
        goto out;
      cur = i;
      break;
    }
    case VMFERRY_REC_DATA:
      if (cur == SIZE_MAX || ap[cur].h == NULL ||
          rec.offset + rec.length > ap[cur].size) {
        vmferry_set_error ("stream: data outside a disk");
        goto out;
      }
      if (vmferry_record_data (&rec, rec.payload, buf) < 0)
        goto out;
      if (nbd_pwrite (ap[cur].h, buf, rec.length, rec.offset, 0) == -1) {
        nbd_fail (ap[cur].new_file, "write");
        goto out;
      }
      mark (&ap[cur], rec.offset, rec.length);
      if (vmferry_fault ("sync-received-data") < 0)
        goto out;
      break;
    case VMFERRY_REC_ZERO:
      /* Zeros that hide the backing (no NO_HOLE flag needed: qcow2 makes
       * zero clusters over a backing file, never holes that show it).
       */
      if (cur == SIZE_MAX || ap[cur].h == NULL ||
          rec.offset + rec.length > ap[cur].size) {
        vmferry_set_error ("stream: zeros outside a disk");
        goto out;
      }
      if (nbd_zero (ap[cur].h, rec.length, rec.offset, 0) == -1) {
        nbd_fail (ap[cur].new_file, "write zeros");
        goto out;
      }
      mark (&ap[cur], rec.offset, rec.length);
      break;
    case VMFERRY_REC_FILE_MAP: {
      uint64_t chunk;
      if (cur == SIZE_MAX ||
          vmferry_record_file_map (&rec, rec.payload, &chunk,
                                   ap[cur].root) < 0)
        goto out;
      ap[cur].have_root = chunk == CHUNK;
      break;
    }
    case VMFERRY_REC_FILE_END: {
      unsigned char root[16];
      if (cur == SIZE_MAX || ap[cur].h == NULL ||
          verify_applied (s, &ap[cur], s->disks[cur].target, root) < 0)
        goto out;
      rr = view_close (ap[cur].h, ap[cur].new_file);
      ap[cur].h = NULL;
      if (rr < 0 ||
          map_save (&s->dir, s->new_prefix, ap[cur].new_map, ap[cur].base) < 0)
        goto out;
      break;
    }
    case VMFERRY_REC_END:
      ended = true;
      break;
    }
  }
  if (rr < 0) {
    if (answer_first && vmferry_stream_reader_bytes (rd) == 0) {
      vmferry_debug ("standby %s: the sender sent no refresh", name);
      r = 0;
    }
    goto out;
  }
  if (!ended) {
    vmferry_set_error ("stream: truncated");
    goto out;
  }
  for (size_t i = 0; i < s->nr; i++)
    if (!ap[i].begun || ap[i].h != NULL) {
      vmferry_set_error ("stream: disk %s is missing", s->disks[i].target);
      goto out;
    }
  if (vmferry_fault ("sync-verified") < 0)
    goto out;
  /* The definition the source's XML makes, decided before the commit:
   * rules refused or a disk added leave the standby as it was.
   */
  if (src_xml &&
      (redefine = vmferry_sync_define_prepare (s->conn, s->dom, src_xml,
                                               jstr (manifest, "rules"),
                                               &new_xml)) < 0)
    goto out;
  for (size_t i = 0; i < s->nr; i++)
    if (overlay_link (s, i, gen, &ap[i]) < 0)
      goto out;

  /* The commit: journaled first, so that a kill from here on is finished
   * by the next run (every disk of one generation, never some).
   */
  journal = json_object_new_object ();
  ja = json_object_new_array ();
  jset_int (journal, "generation", gen + 1);
  jset_str (journal, "token", token);
  json_object_object_add (journal, "disks", ja);
  for (size_t i = 0; i < s->nr; i++) {
    const struct chain *c = &s->chains[i];
    json_object *d = json_object_new_object (), *g, *old;
    struct stat st;
    char hex[33];

    json_object_array_add (ja, d);
    vmferry_hex_encode (ap[i].root, 16, hex);
    jset_str (d, "target", s->disks[i].target);
    jset_str (d, "new", ap[i].new_file);
    jset_str (d, "new_map", ap[i].new_map);
    jset_str (d, "root", hex);
    jset_str (d, "top", c->top);
    jset_str (d, "base", c->base);
    jset_str (d, "base_format", c->format);
    g = json_object_new_array ();
    for (size_t k = 0; k < c->nr_gens; k++)
      json_object_array_add (g, json_object_new_int64 (c->gens[k]));
    json_object_array_add (g, json_object_new_int64 (gen));
    json_object_object_add (d, "gens", g);
    old = json_object_new_object ();
    json_object_object_add (d, "old", old);
    if (vmferry_target_stat (&s->dir, c->top, &st) != 1) {
      vmferry_set_error ("%s/%s: gone", s->dir.path, c->top);
      goto out;
    }
    stat_record (old, &st);
  }
  if (check_shut_off (s) < 0 ||
      json_save (&s->dir, s->new_prefix, s->journal, journal) < 0 ||
      vmferry_fault ("sync-journaled") < 0 || finish_commit (s) < 0)
    goto out;
  /* Committed: restore points beyond --keep go into the base (after
   * the answer when it comes first).
   */
  if (!answer_first && merge_old (s, keep) < 0)
    goto out;
  {
    json_object *o = json_object_new_object ();
    jset_int (o, "generation", gen + 1);
    /* The data is committed; the disks are the same files (the tops), so
     * the new definition names files that are there.  Killed before it,
     * the next refresh finds the definition differs and defines it.
     */
    if (redefine == 1 &&
        (vmferry_fault ("sync-redefine") < 0 ||
         vmferry_sync_define (s->conn, name, new_xml) < 0)) {
      jset_str (o, "definition", "failed");
      jset_str (o, "definition_error", vmferry_get_error ());
    }
    else if (redefine >= 0)
      jset_str (o, "definition", redefine ? "updated" : "unchanged");
    r = print_json (out, o);
    json_object_put (o);
  }
  /* A kill from here on leaves the merge to the next run (finish_merge,
   * or merge_old after its commit).
   */
  if (r == 0 && answer_first &&
      (vmferry_fault ("sync-answered") < 0 || merge_old (s, keep) < 0))
    r = -1;
 out:
  for (size_t i = 0; ap && i < s->nr; i++) {
    view_close (ap[i].h, ap[i].new_file);
    /* Not committed: what was made aside goes, and the restore point
     * name (committed: renamed, and kept).
     */
    if (journal == NULL) {
      if (ap[i].new_file)
        vmferry_target_unlink (&s->dir, ap[i].new_file);
      if (ap[i].new_map)
        vmferry_target_unlink (&s->dir, ap[i].new_map);
      if (ap[i].link)
        vmferry_target_unlink (&s->dir, ap[i].link);
    }
    free (ap[i].new_file);
    free (ap[i].new_map);
    free (ap[i].link);
    free (ap[i].changed);
    vmferry_map_free (ap[i].base);
  }
  free (ap);
  vmferry_stream_reader_free (rd);
  json_object_put (journal);
  json_object_put (manifest);
  json_object_put (state);
  return r;

 bad_manifest:
  vmferry_set_error ("stream: file %" PRIu32 " is not a disk of standby %s "
                     "with a base", rec.file, name);
  goto out;
}

int
vmferry_sync_receive_apply (const char *uri, const char *name, int in_fd,
                            unsigned keep, FILE *out)
{
  struct standby s;
  int r = -1;

  if (standby_open (uri, name, &s) == 0 && check_shut_off (&s) == 0)
    r = apply_run (&s, in_fd, keep, out, false);
  standby_close (&s);
  return r;
}

int
vmferry_sync_receive_refresh (const char *uri, const char *name,
                              bool compare, int in_fd, unsigned keep,
                              FILE *out)
{
  struct standby s;
  int r = -1;

  if (standby_open (uri, name, &s) == 0 && check_shut_off (&s) == 0 &&
      query_answer (&s, compare, out) == 0)
    r = apply_run (&s, in_fd, keep, out, true);
  standby_close (&s);
  return r;
}

/* ---- the sender ---- */

struct sender {
  const struct vmferry_sync_opts *opts;
  const char *standby;
  virConnectPtr conn;
  virDomainPtr dom;
  char *xml;
  struct disk *disks;
  size_t nr;
  struct vmferry_target dir;    /* <state dir>/<source UUID> */
  char dest_id[33];
  struct vmferry_ssh *ssh;
  const char *rules;            /* the rewrite rules recorded and sent */
  /* A running or paused source: read through a backup job
   * (sync-running.h), RUN while a refresh's job is active.
   */
  bool running;
  struct vmferry_sync_running *run;
  /* --trim: a refresh's overlays while it reads them (sync-trim.h). */
  struct vmferry_sync_trim *trim;
  int lock_fd;                  /* <dest id>.lock, held for the run */
};

/* The first copy is under way: what vmferry_sync_quit ends. */
static atomic_bool copying;

bool
vmferry_sync_quit (void)
{
  if (!atomic_load (&copying))
    return false;
  vmferry_backup_quit ();
  vmferry_trim_quit ();
  return true;
}

/* Did a signal ask to stop?  -1 with the error set if so. */
static int
check_cancel (const struct sender *sd)
{
  if (sd->opts->cancel && *sd->opts->cancel) {
    vmferry_set_error ("interrupted by signal %d", (int) *sd->opts->cancel);
    return -1;
  }
  return 0;
}

static void
sender_close (struct sender *sd)
{
  vmferry_sync_running_end (sd->run);
  if (vmferry_sync_trim_end (sd->trim) < 0)
    vmferry_warn ("%s", vmferry_get_error ());
  if (sd->lock_fd >= 0)
    close (sd->lock_fd);
  vmferry_ssh_free (sd->ssh);
  vmferry_target_close (&sd->dir);
  disks_free (sd->disks, sd->nr);
  free (sd->xml);
  if (sd->dom)
    virDomainFree (sd->dom);
  if (sd->conn)
    virConnectClose (sd->conn);
}

static char *
sender_file (const struct sender *sd, const char *target, const char *ext)
{
  char *n;

  if ((target ? asprintf (&n, "%s.%s.%s", sd->dest_id, target, ext)
              : asprintf (&n, "%s.%s", sd->dest_id, ext)) < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return NULL;
  }
  return n;
}

/* A receiver's exit status for a command line it does not take
 * (VMFERRY_EXIT_USAGE of tools/tool.h).
 */
#define RECEIVER_EXIT_USAGE 2

/* "vmferry-sync --receiver=ACTION [ARG] [ARG2] -- STANDBY", quoted. */
static char *
remote_command (struct sender *sd, const char *action, const char *arg,
                const char *arg2)
{
  CLEANUP_FREE char *act = NULL;
  char *cmd = NULL;

  if (asprintf (&act, "--receiver=%s", action) < 0 ||
      vmferry_shell_quote_append (&cmd, sd->opts->remote_sync
                                        ? sd->opts->remote_sync
                                        : "vmferry-sync") < 0 ||
      vmferry_shell_quote_append (&cmd, act) < 0 ||
      (arg && vmferry_shell_quote_append (&cmd, arg) < 0) ||
      (arg2 && vmferry_shell_quote_append (&cmd, arg2) < 0) ||
      (vmferry_get_verbosity () > 1 &&
       vmferry_shell_quote_append (&cmd, "-vv") < 0) ||
      vmferry_shell_quote_append (&cmd, "--") < 0 ||
      vmferry_shell_quote_append (&cmd, sd->standby) < 0) {
    free (cmd);
    vmferry_set_error_errno (ENOMEM, "malloc");
    return NULL;
  }
  vmferry_debug ("on %s: %s", sd->opts->m.ssh.destination, cmd);
  return cmd;
}

/* The receiver's STATUS (from vmferry_remote_finish) as the error, once
 * it is not 0; -1 (no status) keeps the error set.
 */
static void
remote_failed (struct sender *sd, const char *action, int status)
{
  if (status > 0)
    vmferry_set_error ("%s: vmferry-sync --receiver=%s failed (status %d)",
                       sd->opts->m.ssh.destination, action, status);
}

/* REM's input written by WRITE_STREAM; -1 with the error set on failure:
 * the receiver's own word, if it stopped first, is the cause.  REM is
 * finished and NULL then.
 */
static int
remote_write (struct sender *sd, const char *action,
              struct vmferry_remote **rem,
              int (*write_stream) (struct sender *, struct vmferry_remote *,
                                   void *),
              void *opaque)
{
  char err[VMFERRY_ERROR_MAX];
  int status;

  if (write_stream (sd, *rem, opaque) == 0)
    return 0;
  snprintf (err, sizeof err, "%s", vmferry_get_error ());
  status = vmferry_remote_finish (*rem, NULL, NULL);
  *rem = NULL;
  if (status > 0 && check_cancel (sd) == 0)
    remote_failed (sd, action, status);
  else
    vmferry_set_error ("%s", err);
  return -1;
}

/* LINE, the receiver's answer to ACTION: a JSON object, or NULL with the
 * error set.
 */
static json_object *
answer_parse (struct sender *sd, const char *action, const char *line)
{
  json_object *o = line ? json_tokener_parse (line) : NULL;

  if (o == NULL || !json_object_is_type (o, json_type_object)) {
    json_object_put (o);
    vmferry_set_error ("%s: vmferry-sync --receiver=%s: no answer",
                       sd->opts->m.ssh.destination, action);
    return NULL;
  }
  return o;
}

/* Run "vmferry-sync --receiver=ACTION [ARG] -- STANDBY" on the host and
 * parse the JSON it prints.  With WRITE_STREAM (a refresh), the stream
 * goes to its input.
 */
static json_object *
remote_call (struct sender *sd, const char *action, const char *arg,
             int (*write_stream) (struct sender *, struct vmferry_remote *,
                                  void *),
             void *opaque)
{
  CLEANUP_FREE char *cmd = remote_command (sd, action, arg, NULL);
  CLEANUP_FREE char *out = NULL;
  struct vmferry_remote *rem;
  size_t len;
  int status;

  if (cmd == NULL || !(rem = vmferry_remote_start (sd->ssh, cmd, true)))
    return NULL;
  if (write_stream &&
      remote_write (sd, action, &rem, write_stream, opaque) < 0)
    return NULL;
  status = vmferry_remote_finish (rem, &out, &len);
  if (status != 0) {
    remote_failed (sd, action, status);
    return NULL;
  }
  return answer_parse (sd, action, out);
}

/* The refresh's receiver, query and apply in one process
 * (--receiver=refresh): started, and its answer to the query read, into
 * *Q_RTN; *REM_RTN is the running receiver, waiting for the stream.  A
 * receiver too old for it (a usage error): a query of its own, and
 * *REM_RTN NULL (the apply follows apart).
 */
static int
refresh_start (struct sender *sd, bool compare, const char *keep,
               struct vmferry_remote **rem_rtn, json_object **q_rtn)
{
  CLEANUP_FREE char *cmd = remote_command (sd, "refresh", keep,
                                           compare ? "--compare" : NULL);
  CLEANUP_FREE char *line = NULL;
  struct vmferry_remote *rem;
  int rr, status;

  *rem_rtn = NULL;
  *q_rtn = NULL;
  if (cmd == NULL || !(rem = vmferry_remote_start (sd->ssh, cmd, true)))
    return -1;
  rr = vmferry_remote_read_line (rem, false, &line);
  if (rr == 1) {
    *rem_rtn = rem;
    *q_rtn = answer_parse (sd, "refresh", line);
    return *q_rtn ? 0 : -1;
  }
  if (rr < 0) {
    vmferry_remote_abandon (rem);
    return -1;
  }
  status = vmferry_remote_finish (rem, NULL, NULL);
  if (status != RECEIVER_EXIT_USAGE) {
    remote_failed (sd, "refresh", status);
    return -1;
  }
  vmferry_verbose ("%s: its vmferry-sync has no --receiver=refresh (an older "
                   "one): query and apply apart",
                   sd->opts->m.ssh.destination);
  *q_rtn = remote_call (sd, "query", compare ? "--compare" : NULL, NULL,
                        NULL);
  return *q_rtn ? 0 : -1;
}

/* The receiver REM (refresh_start's) not given a stream: its input ends
 * unwritten and it stops, the standby untouched, what it made aside
 * removed.  Waited for, so that the lock it holds is free for the next
 * run.  NULL is fine.
 */
static void
refresh_drop (struct vmferry_remote *rem)
{
  struct vmferry_saved_error saved;

  if (rem == NULL)
    return;
  vmferry_save_error (&saved);
  vmferry_remote_finish (rem, NULL, NULL);
  vmferry_restore_saved_error (&saved);
}

/* The stream written to the receiver REM (refresh_start's), its input
 * closed, and its answer to the apply read: the commit, whose merge
 * goes on there (refresh_end waits for it).  NULL with the error set
 * and *REM finished on failure.
 */
static json_object *
refresh_apply (struct sender *sd, struct vmferry_remote **rem,
               int (*write_stream) (struct sender *, struct vmferry_remote *,
                                    void *),
               void *opaque)
{
  CLEANUP_FREE char *line = NULL;
  int rr;

  if (remote_write (sd, "refresh", rem, write_stream, opaque) < 0)
    return NULL;
  rr = vmferry_remote_read_line (*rem, true, &line);
  if (rr == 1)
    return answer_parse (sd, "refresh", line);
  if (rr == 0) {
    int status = vmferry_remote_finish (*rem, NULL, NULL);

    *rem = NULL;
    if (status == 0)
      vmferry_set_error ("%s: vmferry-sync --receiver=refresh: no answer",
                         sd->opts->m.ssh.destination);
    remote_failed (sd, "refresh", status);
  }
  return NULL;
}

/* Wait for the receiver REM (after its answer to the apply: the merge
 * of the restore points beyond --keep).  -1 with the error set if it
 * failed.
 */
static int
refresh_end (struct sender *sd, struct vmferry_remote *rem)
{
  int status = vmferry_remote_finish (rem, NULL, NULL);

  if (status == 0)
    return 0;
  remote_failed (sd, "refresh", status);
  return -1;
}

/* Record the sender's state for generation GEN, once the receiver
 * committed it: each disk's map, then the state naming them.
 */
static int
sender_save (struct sender *sd, int64_t gen, const char *token,
             struct vmferry_map **maps, struct vmferry_map **fine)
{
  json_object *o = json_object_new_object (), *a = json_object_new_array ();
  CLEANUP_FREE char *sn = sender_file (sd, NULL, "json");
  int r = -1;

  jset_int (o, "generation", gen);
  jset_str (o, "token", token);
  jset_str (o, "standby", sd->standby);
  jset_str (o, "host", sd->opts->m.ssh.destination);
  jset_str (o, "rules", sd->rules ? sd->rules : "");
  json_object_object_add (o, "disks", a);
  for (size_t i = 0; i < sd->nr; i++) {
    json_object *d = json_object_new_object ();
    CLEANUP_FREE char *mn = sender_file (sd, sd->disks[i].target, "map");
    CLEANUP_FREE char *bn = sender_file (sd, sd->disks[i].target, "blocks");
    unsigned char root[16], broot[16];
    char hex[33];

    json_object_array_add (a, d);
    if (maps == NULL) {
      /* No map of what was sent (a running source's point in time): the
       * next refresh compares with the standby's own.
       */
      jset_str (d, "target", sd->disks[i].target);
      jset_str (d, "source_path", sd->disks[i].path);
      continue;
    }
    if (mn == NULL || bn == NULL || vmferry_map_root (maps[i], root) < 0 ||
        vmferry_map_root (fine[i], broot) < 0 ||
        map_save (&sd->dir, SENDER_TMP, bn, fine[i]) < 0 ||
        map_save (&sd->dir, SENDER_TMP, mn, maps[i]) < 0)
      goto out;
    vmferry_hex_encode (broot, 16, hex);
    jset_str (d, "blocks_root", hex);
    vmferry_hex_encode (root, 16, hex);
    jset_str (d, "target", sd->disks[i].target);
    jset_str (d, "source_path", sd->disks[i].path);
    jset_int (d, "size", vmferry_map_size (maps[i]));
    jset_str (d, "root", hex);
  }
  if (sn == NULL || json_save (&sd->dir, SENDER_TMP, sn, o) < 0)
    goto out;
  r = 0;
 out:
  json_object_put (o);
  return r;
}

static bool
is_qcow2 (const struct disk *d)
{
  return d->format && strcmp (d->format, "qcow2") == 0;
}

/* Disk I's changes are found by METHOD ("bitmap", "checkpoint", "scan"),
 * WHY ("" or a reason): into STATS->method, one word for all disks while
 * they agree (SAME), else each disk's ("vda checkpoint, vdb scan").
 */
static void
method_add (const struct sender *sd, struct vmferry_sync_stats *stats,
            size_t i, const char *method, const char *why, bool *same)
{
  char m[400];

  snprintf (m, sizeof m, "%s%s%s%s", method, *why ? " (" : "", why,
            *why ? ")" : "");
  if (i == 0)
    snprintf (stats->method, sizeof stats->method, "%s", m);
  else if (strcmp (stats->method, m) != 0 || !*same) {
    size_t l;

    /* Disks found differently: each says how. */
    if (*same) {
      char first[sizeof stats->method];
      snprintf (first, sizeof first, "%s", stats->method);
      snprintf (stats->method, sizeof stats->method, "%s %s",
                sd->disks[0].target, first);
      *same = false;
    }
    l = strlen (stats->method);
    snprintf (stats->method + l, sizeof stats->method - l, ", %s %s",
              sd->disks[i].target, m);
  }
}

/* The dirty bitmaps of the qcow2 disks before generation GEN - 1 is
 * read for generation GEN (sync-bitmap.h).  USE[i] says whether disk I
 * may use its bitmap GEN, and is set to whether it does; how each disk's
 * changes are found goes into STATS->method.  USE NULL: the first copy,
 * before the export reads the source, so that the identity of the move
 * (migrate.c, already_there) includes the change; bitmap 2 is added, or
 * kept when a killed first run added it: it recorded every write since,
 * and the source stays as that run left it, so that the same command
 * again finds the copy done.
 */
static int
bitmaps_prepare (struct sender *sd, int64_t gen, bool *use,
                 struct vmferry_sync_stats *stats)
{
  bool same = true;

  stats->method[0] = '\0';
  for (size_t i = 0; i < sd->nr; i++) {
    char why[300] = "";
    int u = 0;

    if (is_qcow2 (&sd->disks[i]) && use == NULL) {
      char bn[VMFERRY_SYNC_BITMAP_NAME_MAX];
      u = vmferry_sync_bitmap_prepare (sd->disks[i].path, sd->dest_id, 2,
                                       !sd->opts->no_bitmap, true, why,
                                       sizeof why);
      if (u < 0)
        return -1;
      *why = '\0';
      if (u == 0 && !sd->opts->no_bitmap &&
          (vmferry_sync_bitmap_name (sd->dest_id, 2, bn) < 0 ||
           vmferry_sync_bitmap_add (sd->disks[i].path, bn) < 0))
        snprintf (why, sizeof why, "%s", vmferry_get_error ());
      if (*why)
        vmferry_notice ("disk %s: no dirty bitmap: the next refresh scans "
                        "it (%s)", sd->disks[i].target, why);
    }
    else if (is_qcow2 (&sd->disks[i])) {
      u = vmferry_sync_bitmap_prepare (sd->disks[i].path, sd->dest_id, gen,
                                       use[i] && !sd->opts->no_bitmap &&
                                       !sd->opts->trim,
                                       sd->opts->no_bitmap, why, sizeof why);
      if (u < 0)
        return -1;
      if (sd->opts->no_bitmap)
        snprintf (why, sizeof why, "--no-bitmap");
      /* The bitmap does not see what the appliance discards on the
       * overlays: every chunk is read through them.
       */
      else if (sd->opts->trim && use[i])
        snprintf (why, sizeof why, "--trim");
      else if (u == 0 && !use[i] && !*why)
        snprintf (why, sizeof why, "the standby's own map was compared");
    }
    if (use)
      use[i] = u == 1;
    method_add (sd, stats, i, u == 1 ? "bitmap" : "scan", why, &same);
  }
  return 0;
}

/* A full scan reads the source this much at a time: a raw file with
 * O_DIRECT in reads of 4 MiB runs at twice the buffered rate of 1 MiB
 * reads here (bench/README.md), and the NBD sources keep more reads in
 * flight.  A bitmap or checkpoint's scan reads the chunks it marks.
 */
#define SCAN_WINDOW VMFERRY_CHUNK_SIZE

/* The maps of the source disk I (chunks, blocks), read in full: a raw
 * file as a refresh's scan reads it (sync-scan.h: O_DIRECT or the page
 * cache, holes unread, the reads ahead of the digests), each block
 * hashed into both maps while it is in the CPU's cache.
 */
static int
source_maps (struct sender *sd, size_t i, struct vmferry_sync_stats *stats,
             struct vmferry_map **map_rtn, struct vmferry_map **fine_rtn)
{
  const char *path = sd->disks[i].path;
  struct vmferry_source *src;
  struct vmferry_sync_scan *scan = NULL;
  struct vmferry_map *ms[2] = { NULL, NULL };
  uint64_t size, off, end, rd;
  const unsigned char *data;
  int r = -1, more;

  /* A qcow2 disk is mapped as the guest reads it, as the standby is. */
  if (is_qcow2 (&sd->disks[i]))
    return vmferry_sync_qcow2_maps (path, CHUNK, FINE, map_rtn, fine_rtn,
                                    &stats->read);
  if (!(src = vmferry_source_open_file (path, false)))
    return -1;
  size = vmferry_source_size (src);
  if (!(ms[0] = vmferry_map_new (size, CHUNK)) ||
      !(ms[1] = vmferry_map_new (size, FINE)) ||
      !(scan = vmferry_sync_scan_start (size, SCAN_WINDOW,
                                        vmferry_sync_scan_fill_source, src)))
    goto out;
  while ((more = vmferry_sync_scan_next (scan, &off, &end, &data,
                                         &rd)) == 1) {
    stats->read += rd;
    if (vmferry_digest_update_maps (NULL, ms, 2, off, data, end - off) < 0)
      goto out;
  }
  if (more < 0)
    goto out;
  *map_rtn = ms[0];
  *fine_rtn = ms[1];
  ms[0] = ms[1] = NULL;
  r = 0;
 out:
  vmferry_sync_scan_stop (scan);
  vmferry_source_free (src);
  vmferry_map_free (ms[0]);
  vmferry_map_free (ms[1]);
  return r;
}

static int
first_copy (struct sender *sd, struct vmferry_sync_stats *stats)
{
  struct vmferry_migrate_opts m = sd->opts->m;
  enum vmferry_migrate_outcome outcome;
  unsigned char tk[16];
  char token[TOKEN_HEX], *arg = NULL;
  struct vmferry_map **maps = NULL, **fine = NULL;
  json_object *o = NULL, *a;
  int r = -1;

  stats->first = true;
  m.start = m.undefine_source = m.remove_source_storage = false;
  m.live = m.dry_run = false;
  m.allow_running = sd->running;
  m.trim = sd->opts->trim;
  /* Bitmap 2 records from before the copy on (a shut-off qcow2; QEMU
   * holds a running one's, whose checkpoint the first refresh's job
   * makes).
   */
  if (!sd->running && bitmaps_prepare (sd, 1, NULL, stats) < 0)
    return -1;
  atomic_store (&copying, true);
  r = vmferry_migrate (&m, &outcome);
  atomic_store (&copying, false);
  if (r < 0 || check_cancel (sd) < 0 || vmferry_fault ("sync-copied") < 0)
    return -1;
  r = -1;
  if (getrandom (tk, sizeof tk, 0) != (ssize_t) sizeof tk) {
    vmferry_set_error_errno (errno, "getrandom");
    return -1;
  }
  vmferry_hex_encode (tk, 16, token);
  if (asprintf (&arg, "--token=%s", token) < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  if (!(sd->ssh = vmferry_ssh_connect (&sd->opts->m.ssh)) ||
      !(o = remote_call (sd, "init", arg, NULL, NULL)))
    goto out;
  a = jarr (o, "disks");
  if (sd->running || sd->opts->trim) {
    /* The copy is the disks at the backup job's start, which the source
     * has left since, or what the trim left of them, which the export's
     * overlays held: nothing here to compare with.
     */
    stats->changed = stats->chunks = 0;
    stats->generation = 1;
    r = sender_save (sd, 1, token, NULL, NULL);
    goto out;
  }
  maps = calloc (sd->nr, sizeof *maps);
  fine = calloc (sd->nr, sizeof *fine);
  if (maps == NULL || fine == NULL)
    goto out;
  /* The sender's map is of the source as it is now: it must be what the
   * standby received, or the next refresh would diff against a lie.
   */
  for (size_t i = 0; i < sd->nr; i++) {
    json_object *d = by_target (a, sd->disks[i].target);
    unsigned char root[16], want[16];

    if (source_maps (sd, i, stats, &maps[i], &fine[i]) < 0 ||
        vmferry_map_root (maps[i], root) < 0)
      goto out;
    if (d == NULL || vmferry_hex_decode_str (jstr (d, "root"), want, 16) < 0 ||
        memcmp (root, want, 16) != 0) {
      vmferry_set_error ("disk %s: the standby's copy differs from the "
                         "source now (was the source started during the "
                         "copy?): nothing was recorded; run again with "
                         "--compare", sd->disks[i].target);
      goto out;
    }
    stats->chunks += vmferry_map_nr_chunks (maps[i]);
  }
  stats->changed = stats->chunks;
  stats->generation = 1;
  r = sender_save (sd, 1, token, maps, fine);
 out:
  for (size_t i = 0; maps && fine && i < sd->nr; i++) {
    vmferry_map_free (maps[i]);
    vmferry_map_free (fine[i]);
  }
  free (maps);
  free (fine);
  free (arg);
  json_object_put (o);
  return r;
}

/* What a refresh sends, disk by disk. */
struct refresh {
  struct vmferry_sync_stats *stats;
  struct vmferry_map **base, **now;
  /* The sender's block maps: of the base (NULL where the standby's own
   * chunk map is the base) and of the source now.
   */
  struct vmferry_map **fine, **now_fine;
  unsigned char (*base_root)[VMFERRY_DIGEST_SIZE];
  int64_t generation;
  const char *token;
  bool *bitmap;                 /* per disk: its dirty bitmap says what
                                   changed (qcow2, sync-bitmap.h) */
};

/* Records for the chunk at OFF of N bytes in BUF: ZERO for each run of
 * zero blocks (applied as zeros: the base must not show through), DATA
 * for each run of others.
 */
static int
send_chunk (struct vmferry_stream_writer *w, uint32_t file, uint64_t off,
            const unsigned char *buf, size_t n)
{
  size_t i = 0;

  while (i < n) {
    size_t bn = n - i < VMFERRY_BLOCK_SIZE ? n - i : VMFERRY_BLOCK_SIZE;
    bool zero = vmferry_is_zero (buf + i, bn);
    size_t e = i + bn;

    while (e < n) {
      size_t en = n - e < VMFERRY_BLOCK_SIZE ? n - e : VMFERRY_BLOCK_SIZE;
      if (vmferry_is_zero (buf + e, en) != zero)
        break;
      e += en;
    }
    if (zero ? vmferry_stream_write_zero (w, file, off + i, e - i) < 0
             : vmferry_stream_write_data (w, file, off + i, e - i, 0, buf + i,
                                          e - i) < 0)
      return -1;
    i = e;
  }
  return 0;
}

/* The changed chunk at OFF: only its blocks whose digest differs from
 * the block map of the base, when there is one; else (or when no block
 * differs, which a sound record cannot give) all of it.
 */
static int
send_changed (struct vmferry_stream_writer *w, struct refresh *rf, size_t i,
              uint64_t off, const unsigned char *buf, size_t n)
{
  bool any = false;

  if (rf->fine[i] != NULL)
    for (size_t b = 0; b < n; b += FINE) {
      size_t bn = n - b < FINE ? n - b : FINE;
      unsigned char was[16], is[16];

      vmferry_map_get (rf->fine[i], (off + b) / FINE, was);
      vmferry_map_get (rf->now_fine[i], (off + b) / FINE, is);
      if (memcmp (was, is, 16) == 0)
        continue;
      if (send_chunk (w, i, off + b, buf + b, bn) < 0)
        return -1;
      any = true;
    }
  return any ? 0 : send_chunk (w, i, off, buf, n);
}

/* A full scan's fill of a shut-off qcow2 (OPAQUE), read as the guest
 * reads it through qemu-nbd: holes and all, which its server answers
 * without reading anything.
 */
static int
qcow2_fill (void *opaque, uint64_t off, uint64_t end, unsigned char *win,
            uint64_t *read)
{
  if (vmferry_sync_qcow2_read (opaque, win, end - off, off) < 0)
    return -1;
  *read += end - off;
  return 0;
}

/* Read source disk I chunk by chunk; send the chunks whose digest differs
 * from the base map.  The disk is read as the guest reads it: a raw
 * file directly, a shut-off qcow2 through qemu-nbd (sync-bitmap.h), a
 * running domain's disk from its backup job's export (sync-running.h).
 * What may have changed comes from the qcow2's dirty bitmap or the
 * job's checkpoint, where there is one: only the chunks it marks are
 * read, the others are the base's (the maps take the base's digests for
 * them); else every chunk is read and compared, the reads a window or
 * two ahead of the digests in a thread of their own (sync-scan.h), so
 * that the disk reads while the CPU hashes.  Each block is hashed into
 * the chunk map and the block map while it is in the CPU's cache.
 */
static int
scan_disk (struct sender *sd, struct refresh *rf,
           struct vmferry_stream_writer *w, size_t i)
{
  struct vmferry_source *src = NULL, *file = NULL;
  struct vmferry_sync_scan *scan = NULL;
  CLEANUP_FREE unsigned char *win = NULL;
  CLEANUP_FREE unsigned char *dirty = NULL;
  const unsigned char *wdata = NULL;
  const char *path = sd->disks[i].path;
  struct vmferry_progress *pr = sd->opts->m.progress;
  struct vmferry_sync_qcow2 *q = NULL;
  uint64_t size, nc, woff = 0, wend = 0, read0 = rf->stats->read;
  unsigned char digest[16], root[16];
  double t0 = vmferry_monotonic (), dt;
  bool partial;                 /* a bitmap or checkpoint says what */
  int r = -1;

  if (sd->run || sd->trim) {
    if (!(src = sd->run ? vmferry_sync_running_source (sd->run, i)
                        : vmferry_sync_trim_source (sd->trim, i)))
      return -1;
    size = vmferry_source_size (src);
  }
  else if (is_qcow2 (&sd->disks[i])) {
    char bn[VMFERRY_SYNC_BITMAP_NAME_MAX];
    int64_t marked;

    if ((rf->bitmap[i] &&
         vmferry_sync_bitmap_name (sd->dest_id, rf->generation + 1, bn) < 0) ||
        !(q = vmferry_sync_qcow2_open (path, rf->bitmap[i] ? bn : NULL)))
      return -1;
    size = vmferry_sync_qcow2_size (q);
    if (rf->bitmap[i] &&
        (!(dirty = calloc (size / CHUNK + 1, 1)) ||
         (marked = vmferry_sync_qcow2_dirty (q, CHUNK, dirty)) < 0)) {
      if (dirty == NULL)
        vmferry_set_error_errno (ENOMEM, "malloc");
      goto out;
    }
    if (rf->bitmap[i])
      vmferry_verbose ("disk %s: bitmap %s marks %" PRId64 " chunks",
                       sd->disks[i].target, bn, marked);
  }
  else if (!(src = file = vmferry_source_open_file (path, false)))
    return -1;
  else
    size = vmferry_source_size (src);
  partial = dirty != NULL ||
            (sd->run && strcmp (vmferry_sync_running_method (sd->run, i),
                                "checkpoint") == 0);
  if (partial && !(win = vmferry_alloc_direct (CHUNK + VMFERRY_DIRECT_ALIGN))) {
    vmferry_set_error_errno (errno, "malloc");
    goto out;
  }
  if (size != vmferry_map_size (rf->base[i])) {
    vmferry_set_error ("disk %s: its size changed (%" PRIu64 " bytes, was %"
                       PRIu64 "): run with --full", sd->disks[i].target, size,
                       vmferry_map_size (rf->base[i]));
    goto out;
  }
  if (!(rf->now[i] = vmferry_map_new (size, CHUNK)) ||
      !(rf->now_fine[i] = vmferry_map_new (size, FINE)) ||
      vmferry_stream_write_file_begin (w, i, size) < 0)
    goto out;
  if (!partial &&
      !(scan = vmferry_sync_scan_start (size, SCAN_WINDOW,
                                        q ? qcow2_fill
                                          : vmferry_sync_scan_fill_source,
                                        q ? (void *) q : (void *) src)))
    goto out;
  vmferry_progress_begin (pr, sd->disks[i].target, size);
  nc = vmferry_map_nr_chunks (rf->now[i]);
  for (uint64_t c = 0; c < nc; c++) {
    uint64_t off = c * CHUNK, end = off + CHUNK < size ? off + CHUNK : size;
    struct vmferry_map *maps[2] = { rf->now[i], rf->now_fine[i] };
    const unsigned char *data;
    unsigned char was[16], is[16];

    if (check_cancel (sd) < 0)
      goto out;
    if ((dirty && !dirty[c]) ||
        (sd->run && !vmferry_sync_running_changed (sd->run, i, off,
                                                   end - off))) {
      /* Unchanged since the base was read: its digests. */
      vmferry_map_get (rf->base[i], c, was);
      vmferry_map_set (rf->now[i], c, was);
      for (uint64_t b = off; b < end; b += FINE) {
        vmferry_map_get (rf->fine[i], b / FINE, was);
        vmferry_map_set (rf->now_fine[i], b / FINE, was);
      }
      vmferry_progress_add (pr, end - off);
      continue;
    }
    if (scan) {
      /* The reader's windows, in order; holes were not read. */
      while (off >= wend) {
        uint64_t rd;
        int more = vmferry_sync_scan_next (scan, &woff, &wend, &wdata, &rd);

        if (more == 0)
          vmferry_set_error ("disk %s: the scan ended at %" PRIu64
                             " bytes of %" PRIu64, sd->disks[i].target,
                             wend, size);
        if (more <= 0)
          goto out;
        rf->stats->read += rd;
      }
      assert (off >= woff && end <= wend);
      data = wdata + (off - woff);
    }
    else if (q) {
      if (vmferry_sync_qcow2_read (q, win, end - off, off) < 0)
        goto out;
      rf->stats->read += end - off;
      data = win;
    }
    else {
      if (vmferry_sync_scan_fill_source (src, off, end, win,
                                         &rf->stats->read) < 0)
        goto out;
      data = win;
    }
    if (vmferry_digest_update_maps (NULL, maps, 2, off, data, end - off) < 0)
      goto out;
    vmferry_map_get (rf->now[i], c, is);
    vmferry_map_get (rf->base[i], c, was);
    if (memcmp (is, was, 16) != 0) {
      if (send_changed (w, rf, i, off, data, end - off) < 0)
        goto out;
      rf->stats->changed++;
      if (vmferry_fault ("sync-sent-chunk") < 0)
        goto out;
    }
    vmferry_progress_add (pr, end - off);
  }
  rf->stats->chunks += nc;
  /* No digest of the whole file: the receiver applies the changed chunks
   * only and checks the FILE_MAP root, which a digest of the whole file
   * would make it read all of the standby to check; zeros say so
   * (vmferry-stream(5), REFRESH).
   */
  memset (digest, 0, sizeof digest);
  dt = vmferry_monotonic () - t0;
  vmferry_verbose ("disk %s: %s in %.2f s, %" PRIu64 " bytes read (%.0f "
                   "MB/s)", sd->disks[i].target,
                   partial ? "changed chunks read" : "scanned", dt,
                   rf->stats->read - read0,
                   dt > 0 ? (rf->stats->read - read0) / dt / 1e6 : 0.0);
  if (vmferry_map_root (rf->now[i], root) < 0 ||
      vmferry_stream_write_file_map (w, i, CHUNK, root) < 0 ||
      vmferry_stream_write_file_end (w, i, digest) < 0)
    goto out;
  vmferry_progress_done (pr);
  r = 0;
 out:
  /* The reader uses the source until it is stopped. */
  vmferry_sync_scan_stop (scan);
  if (vmferry_sync_qcow2_close (q) < 0 && r == 0)
    r = -1;
  vmferry_source_free (file);
  return r;
}

static int
write_refresh (struct sender *sd, struct vmferry_remote *rem, void *opaque)
{
  struct refresh *rf = opaque;
  struct vmferry_stream_writer *w =
      vmferry_stream_writer_new_fn (vmferry_remote_writev, rem,
                                    sd->opts->m.ssh.destination);
  json_object *o = json_object_new_object (), *files = json_object_new_array ();
  int r = -1;

  if (w == NULL)
    goto out;
  jset_str (o, "format", "vmferry-manifest");
  jset_int (o, "version", 1);
  {
    json_object *d = json_object_new_object ();
    char uuid[VIR_UUID_STRING_BUFLEN];
    jset_str (d, "name", sd->opts->m.domain);
    if (virDomainGetUUIDString (sd->dom, uuid) == 0)
      jset_str (d, "uuid", uuid);
    json_object_object_add (o, "domain", d);
  }
  if (sd->rules)
    jset_str (o, "rules", sd->rules);
  json_object_object_add (o, "files", files);
  for (size_t i = 0; i < sd->nr; i++) {
    json_object *f = json_object_new_object (), *b = json_object_new_object ();
    char hex[33];

    jset_int (f, "index", i);
    jset_str (f, "role", "disk");
    jset_str (f, "name", base_name (sd->disks[i].path));
    jset_str (f, "source_path", sd->disks[i].path);
    jset_str (f, "target", sd->disks[i].target);
    jset_int (f, "size", vmferry_map_size (rf->base[i]));
    jset_int (b, "generation", rf->generation);
    jset_str (b, "token", rf->token);
    vmferry_hex_encode (rf->base_root[i], 16, hex);
    jset_str (b, "root", hex);
    jset_int (b, "chunk", CHUNK);
    json_object_object_add (f, "base", b);
    json_object_array_add (files, f);
  }
  if (vmferry_stream_write_header_ex (w, VMFERRY_FEATURE_REFRESH, 0, NULL,
                                      0) < 0 ||
      vmferry_stream_write_manifest (w, json_object_to_json_string_ext
                                     (o, JSON_C_TO_STRING_PLAIN)) < 0 ||
      vmferry_stream_write_xml (w, sd->xml) < 0)
    goto out;
  for (size_t i = 0; i < sd->nr; i++)
    if (scan_disk (sd, rf, w, i) < 0)
      goto out;
  if (vmferry_stream_write_end (w, sd->nr) < 0)
    goto out;
  rf->stats->sent = vmferry_stream_writer_bytes (w);
  r = 0;
 out:
  vmferry_stream_writer_free (w);
  json_object_put (o);
  return r;
}

/* The rules a refresh uses: those given when the state has none (it was
 * recorded before rules were), else the recorded ones, which rules given
 * again must equal.
 */
static int
refresh_rules (struct sender *sd, json_object *sstate)
{
  const char *given = sd->opts->rules ? sd->opts->rules : "";
  const char *rec = jstr (sstate, "rules");

  sd->rules = rec ? rec : sd->opts->rules;
  if (rec == NULL || *given == '\0' || strcmp (given, rec) == 0)
    return 0;
  vmferry_set_error ("standby %s was copied under other rewrite rules "
                     "(%s): give the same again or none (the recorded ones "
                     "are then used), or run with --full to copy it anew "
                     "under these", sd->standby,
                     *rec ? "recorded in the sync state" : "none");
  return -1;
}

/* A disk of the standby that the source no longer has. */
static int
disks_removed (struct sender *sd, json_object *q)
{
  json_object *a = jarr (q, "disks");

  for (size_t k = 0; a && k < json_object_array_length (a); k++) {
    const char *t = jstr (json_object_array_get_idx (a, k), "target");
    size_t i;

    for (i = 0; t && i < sd->nr && strcmp (sd->disks[i].target, t) != 0; i++)
      ;
    if (t && i == sd->nr) {
      vmferry_set_error ("disk %s was removed from the source since standby "
                         "%s was copied: run with --full to copy it again",
                         t, sd->standby);
      return -1;
    }
  }
  return 0;
}

/* What the receiver said of the definition (sync.h's stats). */
static int
definition_of (json_object *done)
{
  const char *d = jstr (done, "definition");

  if (d == NULL)
    return -1;
  return strcmp (d, "unchanged") == 0 ? 0 : 1;
}

/* A running source: the backup job the refresh reads from, incremental
 * from the standby's generation's checkpoint where the sender holds that
 * generation's block maps.
 */
static int
running_begin (struct sender *sd, const struct refresh *rf,
               struct vmferry_sync_stats *stats)
{
  CLEANUP_FREE const char **targets = calloc (sd->nr, sizeof *targets);
  CLEANUP_FREE bool *bitmap = calloc (sd->nr, sizeof *bitmap);
  CLEANUP_FREE bool *known = calloc (sd->nr, sizeof *known);
  bool same = true;

  if (targets == NULL || bitmap == NULL || known == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  for (size_t i = 0; i < sd->nr; i++) {
    targets[i] = sd->disks[i].target;
    bitmap[i] = sd->disks[i].format &&
                strcmp (sd->disks[i].format, "qcow2") == 0;
    /* --no-bitmap: the checkpoints are made, not used. */
    known[i] = rf->fine[i] != NULL && !sd->opts->no_bitmap;
  }
  sd->run = vmferry_sync_running_begin (sd->dom, targets, bitmap, known,
                                       sd->nr, sd->opts->m.freeze,
                                       sd->dest_id, rf->generation);
  if (sd->run == NULL)
    return -1;
  stats->running = true;
  stats->frozen = vmferry_sync_running_frozen (sd->run);
  stats->method[0] = '\0';
  for (size_t i = 0; i < sd->nr; i++) {
    const char *m = vmferry_sync_running_method (sd->run, i), *why = "";

    if (strcmp (m, "checkpoint") == 0)
      ;
    else if (bitmap[i] && sd->opts->no_bitmap)
      why = "--no-bitmap";
    else if (bitmap[i] && !known[i])
      why = "the standby's own map was compared";
    else if (bitmap[i])
      why = "no usable checkpoint";
    method_add (sd, stats, i, m, why, &same);
  }
  return 0;
}

/* --trim: the overlays the refresh reads, trimmed in one appliance
 * launch; STATS->untrimmed says what was not.
 */
static int
trim_begin (struct sender *sd, struct vmferry_sync_stats *stats)
{
  CLEANUP_FREE const char **paths = calloc (sd->nr, sizeof *paths);
  CLEANUP_FREE const char **formats = calloc (sd->nr, sizeof *formats);
  CLEANUP_FREE const char **targets = calloc (sd->nr, sizeof *targets);
  CLEANUP_FREE char *untrimmed = NULL;

  if (paths == NULL || formats == NULL || targets == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  for (size_t i = 0; i < sd->nr; i++) {
    paths[i] = sd->disks[i].path;
    formats[i] = is_qcow2 (&sd->disks[i]) ? "qcow2" : "raw";
    targets[i] = sd->disks[i].target;
  }
  sd->trim = vmferry_sync_trim_begin (paths, formats, targets, sd->nr,
                                      &untrimmed);
  if (sd->trim == NULL) {
    vmferry_prefix_error ("domain %s: --trim", sd->opts->m.domain);
    return -1;
  }
  snprintf (stats->untrimmed, sizeof stats->untrimmed, "%s",
            untrimmed ? untrimmed : "");
  if (untrimmed)
    vmferry_notice ("domain %s: read as they are (not trimmed): %s",
                    sd->opts->m.domain, untrimmed);
  return check_cancel (sd);
}

static int
refresh (struct sender *sd, json_object *sstate,
         struct vmferry_sync_stats *stats)
{
  const struct vmferry_sync_opts *opts = sd->opts;
  struct refresh rf = { .stats = stats };
  json_object *q = NULL, *done = NULL;
  struct vmferry_remote *rem = NULL;
  CLEANUP_FREE char *keep = NULL;
  const char *token = jstr (sstate, "token");
  int64_t gen = jint (sstate, "generation");
  int r = -1;
  bool compare = opts->compare;

  /* The rules of the first copy, unless given again: the same, or a
   * refusal (a standby made by other rules is another standby).
   */
  if (refresh_rules (sd, sstate) < 0)
    return -1;
  rf.base = calloc (sd->nr, sizeof *rf.base);
  rf.now = calloc (sd->nr, sizeof *rf.now);
  rf.fine = calloc (sd->nr, sizeof *rf.fine);
  rf.now_fine = calloc (sd->nr, sizeof *rf.now_fine);
  rf.base_root = calloc (sd->nr, sizeof *rf.base_root);
  rf.bitmap = calloc (sd->nr, sizeof *rf.bitmap);
  if (!rf.base || !rf.now || !rf.fine || !rf.now_fine || !rf.base_root ||
      !rf.bitmap ||
      token == NULL ||
      !(sd->ssh = vmferry_ssh_connect (&opts->m.ssh)))
    goto out;
  if (asprintf (&keep, "--keep=%u", opts->keep) < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    goto out;
  }
 again:
  json_object_put (q);
  q = NULL;
  refresh_drop (rem);
  rem = NULL;
  if (refresh_start (sd, compare, keep, &rem, &q) < 0)
    goto out;
  if (jstr (q, "state") || !jstr (q, "token") ||
      strcmp (jstr (q, "token"), token) != 0) {
    vmferry_set_error ("standby %s on %s is not the copy this source "
                       "recorded: run with --full to copy it again",
                       sd->standby, opts->m.ssh.destination);
    goto out;
  }
  rf.generation = jint (q, "generation");
  rf.token = token;
  stats->compared = compare;
  stats->changed_by_hand = !jint (q, "trusted") ? !opts->compare : false;
  for (size_t i = 0; i < sd->nr; i++) {
    json_object *d = by_target (jarr (q, "disks"), sd->disks[i].target);
    json_object *sd_disk = by_target (jarr (sstate, "disks"),
                                      sd->disks[i].target);
    const char *map = d ? jstr (d, "map") : NULL;
    unsigned char root[16], mine[16];

    vmferry_map_free (rf.base[i]);
    vmferry_map_free (rf.fine[i]);
    rf.base[i] = rf.fine[i] = NULL;
    if (d == NULL ||
        vmferry_hex_decode_str (jstr (d, "root"), rf.base_root[i], 16) < 0) {
      vmferry_set_error ("disk %s was added to the source since standby %s "
                         "was copied (the standby has no such disk): run "
                         "with --full to copy it again",
                         sd->disks[i].target, sd->standby);
      goto out;
    }
    if (map) {
      /* The standby's own map: what it holds, whatever the records say. */
      uint64_t size = jint (d, "size");
      rf.base[i] = vmferry_map_new (size, CHUNK);
      if (rf.base[i] == NULL)
        goto out;
      if (strlen (map) != 2 * VMFERRY_DIGEST_SIZE *
          vmferry_map_nr_chunks (rf.base[i])) {
        vmferry_set_error ("%s: a map of another size", sd->disks[i].target);
        goto out;
      }
      for (uint64_t c = 0; c < vmferry_map_nr_chunks (rf.base[i]); c++) {
        unsigned char dg[16];
        char h[33];
        memcpy (h, map + 32 * c, 32);
        h[32] = '\0';
        if (vmferry_hex_decode_str (h, dg, 16) < 0) {
          vmferry_set_error ("%s: a damaged map", sd->disks[i].target);
          goto out;
        }
        vmferry_map_set (rf.base[i], c, dg);
      }
      if (vmferry_map_root (rf.base[i], root) < 0)
        goto out;
      if (memcmp (root, rf.base_root[i], 16) != 0) {
        vmferry_set_error ("%s: the standby's map does not match its root",
                           sd->disks[i].target);
        goto out;
      }
      continue;
    }
    /* Trusted there: the sender's map of the same generation must have
     * the same root; else (a run killed between the two records) ask for
     * the standby's own.
     */
    {
      CLEANUP_FREE char *mn = sender_file (sd, sd->disks[i].target, "map");
      if (mn && rf.generation == gen && sd_disk &&
          vmferry_hex_decode_str (jstr (sd_disk, "root"), mine, 16) == 0 &&
          memcmp (mine, rf.base_root[i], 16) == 0 &&
          (rf.base[i] = map_load (&sd->dir, mn)) != NULL &&
          vmferry_map_root (rf.base[i], root) == 0 &&
          memcmp (root, mine, 16) == 0) {
        /* The block map recorded with it, if it is whole. */
        CLEANUP_FREE char *bn = sender_file (sd, sd->disks[i].target,
                                             "blocks");
        unsigned char want[16];
        if (bn &&
            vmferry_hex_decode_str (jstr (sd_disk, "blocks_root"), want,
                                    16) == 0 &&
            (rf.fine[i] = map_load (&sd->dir, bn)) != NULL &&
            (vmferry_map_root (rf.fine[i], root) < 0 ||
             memcmp (root, want, 16) != 0 ||
             vmferry_map_size (rf.fine[i]) != vmferry_map_size (rf.base[i]))) {
          vmferry_map_free (rf.fine[i]);
          rf.fine[i] = NULL;
        }
        if (rf.fine[i] == NULL)
          vmferry_verbose ("disk %s: no block map: changed chunks are sent "
                           "whole", sd->disks[i].target);
        continue;
      }
    }
    if (compare) {
      vmferry_set_error ("standby %s: no map for disk %s", sd->standby,
                         sd->disks[i].target);
      goto out;
    }
    vmferry_verbose ("disk %s: the records disagree (generation %" PRId64
                     " here, %" PRId64 " on %s): comparing in full",
                     sd->disks[i].target, gen, rf.generation,
                     opts->m.ssh.destination);
    compare = true;
    goto again;
  }
  if (disks_removed (sd, q) < 0)
    goto out;
  /* A disk's bitmap or checkpoint says what changed since the sender's
   * own map was made (the block map too is needed): not against the
   * standby's.  A running domain's are QEMU's, its job's checkpoints.
   */
  for (size_t i = 0; i < sd->nr; i++)
    rf.bitmap[i] = !sd->running && rf.fine[i] != NULL;
  if (check_cancel (sd) < 0 ||
      (sd->running ? running_begin (sd, &rf, stats) < 0
       : (bitmaps_prepare (sd, rf.generation + 1, rf.bitmap, stats) < 0 ||
          vmferry_fault ("sync-bitmap-added") < 0)))
    goto out;
  if (opts->trim) {
    /* The bitmap of the next generation records from before the trim's
     * read; this one's is not read (bitmaps_prepare).
     */
    if (trim_begin (sd, stats) < 0)
      goto out;
    for (size_t i = 0; i < sd->nr; i++)
      rf.bitmap[i] = false;
  }
  done = rem ? refresh_apply (sd, &rem, write_refresh, &rf)
             : remote_call (sd, "apply", keep, write_refresh, &rf);
  if (sd->trim) {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    if (vmferry_sync_trim_end (sd->trim) < 0 && done != NULL)
      vmferry_warn ("%s", vmferry_get_error ());
    else
      vmferry_restore_saved_error (&saved);
    sd->trim = NULL;
  }
  /* The job's end does not wait for the standby's commit. */
  if (sd->run) {
    struct vmferry_saved_error saved;
    int e;

    vmferry_save_error (&saved);
    e = vmferry_sync_running_end (sd->run);
    sd->run = NULL;
    /* Committed: only the standby's generation's checkpoint is kept. */
    if (e == 0 && done != NULL)
      e = vmferry_sync_running_forget (sd->dom, sd->dest_id,
                                       jint (done, "generation"));
    if (e < 0 && done != NULL)
      vmferry_warn ("%s", vmferry_get_error ());
    else
      vmferry_restore_saved_error (&saved);
  }
  if (done == NULL) {
    vmferry_prefix_error ("the standby is as it was");
    goto out;
  }
  stats->generation = jint (done, "generation");
  stats->definition = definition_of (done);
  if (vmferry_fault ("sync-applied") < 0)
    goto out;
  r = sender_save (sd, stats->generation, token, rf.now, rf.now_fine);
  /* Committed: the bitmap read is done with (its successor records). */
  for (size_t i = 0; r == 0 && i < sd->nr; i++)
    if (rf.bitmap[i] &&
        vmferry_sync_bitmap_forget (sd->disks[i].path, sd->dest_id,
                                    stats->generation) < 0)
      vmferry_notice ("disk %s: %s (the next refresh removes it)",
                      sd->disks[i].target, vmferry_get_error ());
  /* The receiver's merge of the restore points beyond --keep went on
   * meanwhile: the data is committed whatever it says.
   */
  if (rem) {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    if (refresh_end (sd, rem) < 0 && r == 0) {
      vmferry_prefix_error ("standby %s on %s: the data is refreshed "
                            "(generation %u) but the restore points beyond "
                            "--keep are not merged (the next run merges "
                            "them)", sd->standby, opts->m.ssh.destination,
                            stats->generation);
      r = -1;
    }
    else
      vmferry_restore_saved_error (&saved);
    rem = NULL;
  }
  /* Recorded: the data is the standby's.  Its definition is not. */
  if (r == 0 && jstr (done, "definition") &&
      strcmp (jstr (done, "definition"), "failed") == 0) {
    vmferry_set_error ("standby %s on %s: the data is refreshed (generation "
                       "%u) but its definition was not updated: %s",
                       sd->standby, opts->m.ssh.destination,
                       stats->generation,
                       jstr (done, "definition_error")
                       ? jstr (done, "definition_error") : "?");
    r = -1;
  }
 out:
  for (size_t i = 0; i < sd->nr; i++) {
    if (rf.base)
      vmferry_map_free (rf.base[i]);
    if (rf.now)
      vmferry_map_free (rf.now[i]);
    if (rf.fine)
      vmferry_map_free (rf.fine[i]);
    if (rf.now_fine)
      vmferry_map_free (rf.now_fine[i]);
  }
  free (rf.base);
  free (rf.now);
  free (rf.fine);
  free (rf.now_fine);
  free (rf.base_root);
  free (rf.bitmap);
  refresh_drop (rem);
  json_object_put (q);
  json_object_put (done);
  return r;
}

/* ---- --forget ---- */

static int sender_open (struct sender *sd, bool create);

/* Append ", WHAT" (the first without the comma) to *LIST.  -1 on ENOMEM. */
static int
list_add (char **list, const char *what)
{
  char *n;

  if (asprintf (&n, "%s%s%s", *list ? *list : "", *list ? ", " : "",
                what) < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  free (*list);
  *list = n;
  return 0;
}

/* Is NAME one of DEST_ID's checkpoints, vmferry.cp.DEST8.GEN? */
static bool
is_our_checkpoint (const char *dest_id, const char *name)
{
  size_t l = strlen (VMFERRY_SYNC_CHECKPOINT_PREFIX);
  const char *p;

  if (strncmp (name, VMFERRY_SYNC_CHECKPOINT_PREFIX, l) != 0 ||
      strncmp (name + l, dest_id, 8) != 0 || name[l + 8] != '.')
    return false;
  p = name + l + 9;
  if (*p < '1' || *p > '9')
    return false;
  return strspn (p, "0123456789") == strlen (p);
}

/* Delete SD's domain's checkpoints of SD's destination; each into
 * *REMOVED, each that stays into *LEFT.
 */
static int
forget_checkpoints (struct sender *sd, char **removed, char **left)
{
  virDomainCheckpointPtr *cps = NULL;
  int n, r = 0;

  n = virDomainListAllCheckpoints (sd->dom, &cps, 0);
  if (n < 0) {
    vmferry_virt_error ("domain %s: cannot list its checkpoints",
                        sd->opts->m.domain);
    return list_add (left, "its checkpoints (cannot list them)");
  }
  for (int k = 0; k < n; k++) {
    const char *name = virDomainCheckpointGetName (cps[k]);
    CLEANUP_FREE char *what = NULL;

    if (r == 0 && name && is_our_checkpoint (sd->dest_id, name)) {
      /* A checkpoint whose bitmap is gone (QEMU killed) goes as
       * metadata; a shut-off qcow2's bitmap of it is removed below.
       */
      bool gone = virDomainCheckpointDelete (cps[k], 0) == 0 ||
                  virDomainCheckpointDelete
                    (cps[k], VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY) == 0;
      if (asprintf (&what, "checkpoint %s", name) < 0)
        what = NULL;
      r = what ? list_add (gone ? removed : left, what) : -1;
    }
    virDomainCheckpointFree (cps[k]);
  }
  free (cps);
  return r;
}

/* Remove the bitmaps of SD's destination from disk I's qcow2 (those of
 * the shut-off path, and a checkpoint's a metadata-only delete left);
 * each into *REMOVED, each that stays into *LEFT.
 */
static int
forget_bitmaps (struct sender *sd, size_t i, bool running, char **removed,
                char **left)
{
  struct vmferry_sync_bitmap *l = NULL;
  size_t n = 0;
  int r = 0;

  if (vmferry_sync_bitmaps_of (sd->disks[i].path, &l, &n) < 0) {
    CLEANUP_FREE char *what = NULL;

    vmferry_warn ("%s", vmferry_get_error ());
    if (asprintf (&what, "disk %s's bitmaps (cannot list them)",
                  sd->disks[i].target) < 0)
      return -1;
    return list_add (left, what);
  }
  for (size_t k = 0; r == 0 && k < n; k++) {
    CLEANUP_FREE char *what = NULL;
    bool gone;

    if (vmferry_sync_bitmap_gen (sd->dest_id, l[k].name) == 0 &&
        !is_our_checkpoint (sd->dest_id, l[k].name))
      continue;
    /* A running domain's QEMU holds the image: qemu-img cannot. */
    gone = !running &&
           vmferry_sync_bitmap_remove (sd->disks[i].path, l[k].name) == 0;
    if (!gone && !running)
      vmferry_warn ("%s", vmferry_get_error ());
    if (asprintf (&what, "bitmap %s of disk %s%s", l[k].name,
                  sd->disks[i].target,
                  gone || !running ? "" : " (the domain runs)") < 0) {
      vmferry_set_error_errno (ENOMEM, "malloc");
      r = -1;
    }
    else
      r = list_add (gone ? removed : left, what);
  }
  vmferry_sync_bitmaps_free (l, n);
  return r;
}

/* Remove the sender's records of SD's destination: every file of its
 * directory named DEST_ID.*, the lock last.
 */
static int
forget_records (struct sender *sd, char **removed, char **left)
{
  DIR *d = vmferry_target_opendir (&sd->dir);
  struct dirent *e;
  size_t l = strlen (sd->dest_id);
  unsigned nr = 0, kept = 0;
  CLEANUP_FREE char *ln = sender_file (sd, NULL, "lock");
  CLEANUP_FREE char *what = NULL;

  if (d == NULL || ln == NULL)
    return -1;
  while ((e = readdir (d)) != NULL) {
    if (strncmp (e->d_name, sd->dest_id, l) != 0 || e->d_name[l] != '.' ||
        strcmp (e->d_name, ln) == 0)
      continue;
    if (vmferry_target_unlink (&sd->dir, e->d_name) == 0)
      nr++;
    else {
      vmferry_warn ("%s", vmferry_get_error ());
      kept++;
    }
  }
  closedir (d);
  if (kept == 0 && vmferry_target_unlink (&sd->dir, ln) < 0)
    kept++;
  if (vmferry_target_sync (&sd->dir) < 0)
    vmferry_warn ("%s", vmferry_get_error ());
  if (nr) {
    if (asprintf (&what, "the sender's records (%u file%s in %s)", nr,
                  nr == 1 ? "" : "s", sd->dir.path) < 0 ||
        list_add (removed, what) < 0)
      goto nomem;
    free (what);
    what = NULL;
  }
  if (kept &&
      (asprintf (&what, "%u file%s of the sender's records in %s", kept,
                 kept == 1 ? "" : "s", sd->dir.path) < 0 ||
       list_add (left, what) < 0))
    goto nomem;
  return 0;
 nomem:
  vmferry_set_error_errno (ENOMEM, "malloc");
  return -1;
}

int
vmferry_sync_forget (const struct vmferry_sync_opts *opts, char **what_rtn)
{
  struct sender sd = { .opts = opts, .dir = { .fd = -1 }, .lock_fd = -1 };
  CLEANUP_FREE char *removed = NULL;
  CLEANUP_FREE char *left = NULL;
  bool running, no_dir = false;
  int st, r = -1;

  *what_rtn = NULL;
  if (sender_open (&sd, false) < 0) {
    /* No directory: no records, and no lock to take; still the bitmaps
     * and checkpoints named for the pair.
     */
    if (sd.dom == NULL || vmferry_get_errno () != ENOENT)
      goto out;
    no_dir = true;
  }
  if ((st = vmferry_virt_domain_state (sd.dom)) < 0 ||
      domain_disks (sd.dom, opts->m.domain, &sd.disks, &sd.nr) < 0)
    goto out;
  running = st != VIR_DOMAIN_SHUTOFF;
  if (forget_checkpoints (&sd, &removed, &left) < 0)
    goto out;
  for (size_t i = 0; i < sd.nr; i++)
    if (is_qcow2 (&sd.disks[i]) &&
        forget_bitmaps (&sd, i, running, &removed, &left) < 0)
      goto out;
  if (!no_dir && forget_records (&sd, &removed, &left) < 0)
    goto out;
  if (left) {
    vmferry_set_error ("standby %s on %s: %s%s; left: %s%s", sd.standby,
                       opts->m.ssh.destination,
                       removed ? "removed " : "removed nothing",
                       removed ? removed : "", left,
                       running ? " (run --forget again once the domain is "
                       "shut off)" : "");
    goto out;
  }
  if (asprintf (what_rtn, "%s", removed ? removed : "nothing (no bitmap, "
                "checkpoint or record of it)") < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    *what_rtn = NULL;
    goto out;
  }
  r = 0;
 out:
  sender_close (&sd);
  return r;
}

int
vmferry_sync_list (const struct vmferry_sync_opts *opts, FILE *out)
{
  struct sender sd = { .opts = opts, .dir = { .fd = -1 }, .lock_fd = -1 };
  json_object *o = NULL, *a;
  int r = -1;

  sd.standby = opts->standby ? opts->standby : opts->m.domain;
  if (!(sd.ssh = vmferry_ssh_connect (&opts->m.ssh)) ||
      !(o = remote_call (&sd, "list", NULL, NULL, NULL)))
    goto out;
  a = jarr (o, "disks");
  for (size_t i = 0; a && i < json_object_array_length (a); i++) {
    json_object *d = json_object_array_get_idx (a, i);
    json_object *rp = jarr (d, "restore_points");

    for (size_t k = 0; rp && k < json_object_array_length (rp); k++) {
      json_object *e = json_object_array_get_idx (rp, k);
      if (fprintf (out, "%s %" PRId64 " %s\n", jstr (d, "target"),
                   jint (e, "generation"),
                   jstr (e, "file") ? jstr (e, "file") : "?") < 0) {
        vmferry_set_error_errno (errno, "stdout");
        goto out;
      }
    }
  }
  if (fflush (out) != 0) {
    vmferry_set_error_errno (errno, "stdout");
    goto out;
  }
  r = 0;
 out:
  json_object_put (o);
  sender_close (&sd);
  return r;
}

/* Open SD's domain and its state directory (<state dir>/<source UUID>,
 * made with CREATE), name the destination (sd->dest_id) and take the
 * pair's lock: one vmferry-sync of a source and a standby at a time, and
 * --forget never under a running one.  0, or -1 with the error set; a
 * directory that does not exist is ENOENT.
 */
static int
sender_open (struct sender *sd, bool create)
{
  const struct vmferry_sync_opts *opts = sd->opts;
  char uuid[VIR_UUID_STRING_BUFLEN];
  XXH128_canonical_t c;
  CLEANUP_FREE char *key = NULL;
  CLEANUP_FREE char *dir = NULL;
  CLEANUP_FREE char *ln = NULL;
  int fd;

  sd->standby = opts->standby ? opts->standby : opts->m.domain;
  if (!(sd->conn = vmferry_virt_connect (opts->m.uri)) ||
      !(sd->dom = vmferry_virt_lookup_domain (sd->conn, opts->m.domain)))
    return -1;
  if (virDomainGetUUIDString (sd->dom, uuid) < 0) {
    vmferry_virt_error ("domain %s", opts->m.domain);
    return -1;
  }
  /* One record per source and destination: the host as given and the
   * standby's name.
   */
  if (asprintf (&key, "%s%c%s", opts->m.ssh.destination, 0,
                sd->standby) < 0 ||
      asprintf (&dir, "%s/%s", opts->state_dir ? opts->state_dir
                : vmferry_sync_state_dir (), uuid) < 0) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  XXH128_canonicalFromHash (&c, XXH3_128bits (key, strlen (key) + 1 +
                                              strlen (sd->standby)));
  vmferry_hex_encode (c.digest, 16, sd->dest_id);
  if (vmferry_target_open (&sd->dir, dir, create, 0700) < 0 ||
      !(ln = sender_file (sd, NULL, "lock")))
    return -1;
  fd = openat (sd->dir.fd, ln, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
               0600);
  if (fd < 0) {
    vmferry_set_error_errno (errno, "%s/%s", sd->dir.path, ln);
    return -1;
  }
  if (flock (fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;

    close (fd);
    if (e == EWOULDBLOCK)
      vmferry_set_error ("standby %s on %s: a vmferry-sync of domain %s to "
                         "it runs (%s/%s is locked): nothing was done",
                         sd->standby, opts->m.ssh.destination,
                         opts->m.domain, sd->dir.path, ln);
    else
      vmferry_set_error_errno (e, "%s/%s: flock", sd->dir.path, ln);
    return -1;
  }
  sd->lock_fd = fd;
  return 0;
}

int
vmferry_sync (const struct vmferry_sync_opts *opts,
              struct vmferry_sync_stats *stats)
{
  struct sender sd = { .opts = opts, .dir = { .fd = -1 }, .lock_fd = -1 };
  json_object *sstate = NULL;
  CLEANUP_FREE char *sn = NULL;
  int st, r = -1;

  memset (stats, 0, sizeof *stats);
  stats->definition = -1;
  sd.rules = opts->rules;
  if (sender_open (&sd, true) < 0)
    goto out;
  if ((st = vmferry_virt_domain_state (sd.dom)) < 0)
    goto out;
  /* A running or paused domain is read through a backup job (its disks
   * as the guest sees them), a shut-off one from its files.
   */
  sd.running = st == VIR_DOMAIN_RUNNING || st == VIR_DOMAIN_PAUSED;
  if (st != VIR_DOMAIN_SHUTOFF && !sd.running) {
    vmferry_set_error ("domain %s is %s: vmferry-sync copies running, "
                       "paused and shut-off domains", opts->m.domain,
                       vmferry_virt_state_name (st));
    goto out;
  }
  if (sd.running && opts->trim) {
    vmferry_set_error ("domain %s is %s: --trim needs it shut off (its "
                       "filesystems would change under the appliance): "
                       "nothing was done", opts->m.domain,
                       vmferry_virt_state_name (st));
    goto out;
  }
  if (!(sd.xml = virDomainGetXMLDesc (sd.dom, VIR_DOMAIN_XML_INACTIVE |
                                      VIR_DOMAIN_XML_SECURE |
                                      VIR_DOMAIN_XML_MIGRATABLE))) {
    vmferry_virt_error ("domain %s", opts->m.domain);
    goto out;
  }
  if (domain_disks (sd.dom, opts->m.domain, &sd.disks, &sd.nr) < 0)
    goto out;
  /* The standby's overlays hold what the guest reads; a raw file's bytes
   * are that, a qcow2 disk is read through qemu-nbd (sync-bitmap.h), a
   * running domain's disks through its backup job (sync-running.h).
   */
  for (size_t i = 0; i < sd.nr && !sd.running; i++)
    if (!sd.disks[i].format || (strcmp (sd.disks[i].format, "raw") != 0 &&
                                !is_qcow2 (&sd.disks[i]))) {
      vmferry_set_error ("domain %s: disk %s is %s: only raw and qcow2 disks "
                         "are refreshed for now", opts->m.domain,
                         sd.disks[i].target, sd.disks[i].format
                         ? sd.disks[i].format : "of no stated format");
      goto out;
    }
  if (!(sn = sender_file (&sd, NULL, "json")))
    goto out;
  if (!opts->full) {
    sstate = json_load (&sd.dir, sn);
    if (sstate == NULL && vmferry_get_errno () != ENOENT)
      goto out;
  }
  r = sstate ? refresh (&sd, sstate, stats) : first_copy (&sd, stats);
 out:
  json_object_put (sstate);
  sender_close (&sd);
  return r;
}
