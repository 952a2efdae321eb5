/* vmferry-sync: dirty bitmaps of shut-off qcow2 sources (see
 * sync-bitmap.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libnbd.h>

#include "cleanup.h"
#include "digest.h"
#include "error.h"
#include "log.h"
#include "source.h"
#include "sync-bitmap.h"

extern char **environ;

#define DEST8 8

static bool
is_hex (const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

int
vmferry_sync_bitmap_name (const char *dest_id, int64_t gen, char *buf)
{
  if (dest_id == NULL || strlen (dest_id) < DEST8 ||
      !is_hex (dest_id, DEST8) || gen <= 0) {
    vmferry_set_error ("bitmap name: destination id '%s', generation %"
                       PRId64, dest_id ? dest_id : "", gen);
    return -1;
  }
  snprintf (buf, VMFERRY_SYNC_BITMAP_NAME_MAX, "vmferry.%.8s.%" PRId64,
            dest_id, gen);
  return 0;
}

int64_t
vmferry_sync_bitmap_gen (const char *dest_id, const char *name)
{
  const char *p;
  int64_t gen = 0;

  if (dest_id == NULL || name == NULL || strlen (dest_id) < DEST8 ||
      strncmp (name, "vmferry.", 8) != 0 ||
      strncmp (name + 8, dest_id, DEST8) != 0 || name[8 + DEST8] != '.')
    return 0;
  p = name + 8 + DEST8 + 1;
  if (*p < '1' || *p > '9')
    return 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9' || gen > (INT64_MAX - (*p - '0')) / 10)
      return 0;
    gen = gen * 10 + (*p - '0');
  }
  return gen;
}

void
vmferry_sync_bitmaps_free (struct vmferry_sync_bitmap *b, size_t n)
{
  for (size_t i = 0; b && i < n; i++)
    free (b[i].name);
  free (b);
}

static bool
has_flag (json_object *flags, const char *flag)
{
  for (size_t k = 0; flags && k < json_object_array_length (flags); k++) {
    const char *f =
        json_object_get_string (json_object_array_get_idx (flags, k));
    if (f && strcmp (f, flag) == 0)
      return true;
  }
  return false;
}

int
vmferry_sync_bitmaps_parse (const char *json, const char *name,
                            struct vmferry_sync_bitmap **list_rtn,
                            size_t *n_rtn)
{
  json_object *o = json ? json_tokener_parse (json) : NULL;
  json_object *fmt, *spec, *data, *bm = NULL;
  struct vmferry_sync_bitmap *l = NULL;
  size_t n = 0, len;
  int r = -1;

  if (o == NULL || !json_object_is_type (o, json_type_object) ||
      !json_object_object_get_ex (o, "format", &fmt) ||
      !json_object_is_type (fmt, json_type_string)) {
    vmferry_set_error ("%s: qemu-img info: no image description", name);
    goto out;
  }
  if (strcmp (json_object_get_string (fmt), "qcow2") != 0) {
    vmferry_set_error ("%s: a %s image, not qcow2", name,
                       json_object_get_string (fmt));
    goto out;
  }
  /* Old qcow2 (compat 0.10) has no bitmaps member: no bitmaps. */
  if (json_object_object_get_ex (o, "format-specific", &spec) &&
      json_object_object_get_ex (spec, "data", &data))
    json_object_object_get_ex (data, "bitmaps", &bm);
  if (bm && !json_object_is_type (bm, json_type_array)) {
    vmferry_set_error ("%s: qemu-img info: bitmaps is not a list", name);
    goto out;
  }
  len = bm ? json_object_array_length (bm) : 0;
  l = calloc (len + 1, sizeof *l);
  if (l == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    goto out;
  }
  for (; n < len; n++) {
    json_object *b = json_object_array_get_idx (bm, n), *v, *flags = NULL;
    const char *bn;

    if (!json_object_object_get_ex (b, "name", &v) ||
        !(bn = json_object_get_string (v)) ||
        !json_object_is_type (v, json_type_string)) {
      vmferry_set_error ("%s: qemu-img info: a bitmap without a name", name);
      goto out;
    }
    if (!(l[n].name = strdup (bn))) {
      vmferry_set_error_errno (ENOMEM, "malloc");
      goto out;
    }
    if (json_object_object_get_ex (b, "granularity", &v))
      l[n].granularity = json_object_get_int64 (v);
    json_object_object_get_ex (b, "flags", &flags);
    if (flags && !json_object_is_type (flags, json_type_array))
      flags = NULL;
    l[n].in_use = has_flag (flags, "in-use");
    l[n].enabled = has_flag (flags, "auto");
  }
  *list_rtn = l;
  *n_rtn = n;
  l = NULL;
  r = 0;
 out:
  vmferry_sync_bitmaps_free (l, n);
  json_object_put (o);
  return r;
}

int
vmferry_sync_bitmap_usable (const struct vmferry_sync_bitmap *list, size_t n,
                            const char *dest_id, int64_t gen, char *why,
                            size_t why_len)
{
  char name[VMFERRY_SYNC_BITMAP_NAME_MAX];

  if (vmferry_sync_bitmap_name (dest_id, gen, name) < 0) {
    snprintf (why, why_len, "%s", vmferry_get_error ());
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    const struct vmferry_sync_bitmap *b = &list[i];

    if (strcmp (b->name, name) != 0)
      continue;
    if (b->in_use)
      snprintf (why, why_len, "bitmap %s in use: the image was not closed "
                "cleanly (a QEMU crashed?)", name);
    else if (!b->enabled)
      snprintf (why, why_len, "bitmap %s disabled: it did not record every "
                "write", name);
    /* Coarser is fine (whole blocks are read); finer than a block too;
     * but a granularity that is no power of two is not one of ours.
     */
    else if (b->granularity == 0 ||
             (b->granularity & (b->granularity - 1)) != 0)
      snprintf (why, why_len, "bitmap %s has granularity %" PRIu64
                ": not one of ours", name, b->granularity);
    else
      return 1;
    return 0;
  }
  snprintf (why, why_len, "bitmap %s missing", name);
  return 0;
}

/* ---- qemu-img ---- */

/* The image PATH as --image-opts: no protocol prefix or "json:" in the
 * name is ever parsed (a ',' in it is doubled, as QEMU's option syntax
 * wants).
 */
static char *
image_opts (const char *path)
{
  size_t n = strlen (path), k = 0;
  static const char pre[] = "driver=qcow2,file.driver=file,file.filename=";
  char *s = malloc (sizeof pre + 2 * n);

  if (s == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return NULL;
  }
  memcpy (s, pre, sizeof pre - 1);
  k = sizeof pre - 1;
  for (size_t i = 0; i < n; i++) {
    s[k++] = path[i];
    if (path[i] == ',')
      s[k++] = ',';
  }
  s[k] = '\0';
  return s;
}

/* Read FD to its end into a NUL-terminated string. */
static char *
slurp (int fd)
{
  size_t len = 0, cap = 4096;
  char *s = malloc (cap);
  ssize_t r;

  if (s == NULL)
    return NULL;
  for (;;) {
    if (len + 1 == cap) {
      char *t = realloc (s, cap * 2);
      if (t == NULL) {
        free (s);
        return NULL;
      }
      s = t;
      cap *= 2;
    }
    r = read (fd, s + len, cap - len - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += r;
  }
  s[len] = '\0';
  return s;
}

/* Run qemu-img with ARGV; its standard output into *OUT_RTN (may be
 * NULL: discarded).  A failure's error is qemu-img's last line of
 * standard error.  0, or -1 with the error set.
 */
static int
qemu_img (char *const argv[], char **out_rtn)
{
  posix_spawn_file_actions_t fa;
  int po[2] = { -1, -1 }, pe[2] = { -1, -1 };
  CLEANUP_FREE char *out = NULL;
  CLEANUP_FREE char *err = NULL;
  pid_t pid;
  int status, e;

  if (pipe2 (po, O_CLOEXEC) < 0 || pipe2 (pe, O_CLOEXEC) < 0) {
    vmferry_set_error_errno (errno, "pipe");
    goto fail;
  }
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, po[1], 1);
  posix_spawn_file_actions_adddup2 (&fa, pe[1], 2);
  e = posix_spawnp (&pid, "qemu-img", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (po[1]);
  close (pe[1]);
  po[1] = pe[1] = -1;
  if (e) {
    vmferry_set_error_errno (e, "cannot run qemu-img");
    goto fail;
  }
  /* qemu-img says little on stderr: it never fills the pipe before
   * stdout is read to its end.
   */
  out = slurp (po[0]);
  err = slurp (pe[0]);
  close (po[0]);
  close (pe[0]);
  po[0] = pe[0] = -1;
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR) {
      vmferry_set_error_errno (errno, "waitpid");
      return -1;
    }
  if (out == NULL || err == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    return -1;
  }
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    size_t n = strlen (err);
    char *last;

    while (n > 0 && err[n - 1] == '\n')
      err[--n] = '\0';
    last = strrchr (err, '\n');
    vmferry_set_error ("qemu-img %s: %s", argv[1],
                       *err ? (last ? last + 1 : err) : "failed");
    return -1;
  }
  if (out_rtn) {
    *out_rtn = out;
    out = NULL;
  }
  return 0;
 fail:
  for (int i = 0; i < 2; i++) {
    if (po[i] >= 0)
      close (po[i]);
    if (pe[i] >= 0)
      close (pe[i]);
  }
  return -1;
}

int
vmferry_sync_bitmaps_of (const char *path,
                         struct vmferry_sync_bitmap **list_rtn, size_t *n_rtn)
{
  CLEANUP_FREE char *opts = image_opts (path);
  CLEANUP_FREE char *out = NULL;

  if (opts == NULL)
    return -1;
  {
    char *argv[] = { (char *) "qemu-img", (char *) "info", (char *) "-U",
                     (char *) "--output=json", (char *) "--image-opts",
                     opts, NULL };
    if (qemu_img (argv, &out) < 0) {
      vmferry_prefix_error ("%s", path);
      return -1;
    }
  }
  return vmferry_sync_bitmaps_parse (out, path, list_rtn, n_rtn);
}

int
vmferry_sync_bitmap_add (const char *path, const char *name)
{
  CLEANUP_FREE char *opts = image_opts (path);
  char g[24];

  if (opts == NULL)
    return -1;
  snprintf (g, sizeof g, "%d", VMFERRY_SYNC_BITMAP_GRANULARITY);
  {
    char *argv[] = { (char *) "qemu-img", (char *) "bitmap", (char *) "--add",
                     (char *) "--enable", (char *) "-g", g,
                     (char *) "--image-opts", opts, (char *) name, NULL };
    if (qemu_img (argv, NULL) < 0) {
      vmferry_prefix_error ("%s: adding bitmap %s", path, name);
      return -1;
    }
  }
  vmferry_debug ("%s: bitmap %s added", path, name);
  return 0;
}

int
vmferry_sync_bitmap_remove (const char *path, const char *name)
{
  CLEANUP_FREE char *opts = image_opts (path);

  if (opts == NULL)
    return -1;
  {
    char *argv[] = { (char *) "qemu-img", (char *) "bitmap",
                     (char *) "--remove", (char *) "--image-opts", opts,
                     (char *) name, NULL };
    if (qemu_img (argv, NULL) < 0) {
      vmferry_prefix_error ("%s: removing bitmap %s", path, name);
      return -1;
    }
  }
  vmferry_debug ("%s: bitmap %s removed", path, name);
  return 0;
}

int
vmferry_sync_bitmap_prepare (const char *path, const char *dest_id,
                             int64_t gen, bool use, bool no_add, char *why,
                             size_t why_len)
{
  struct vmferry_sync_bitmap *l = NULL;
  char next[VMFERRY_SYNC_BITMAP_NAME_MAX];
  size_t n = 0;
  int usable = 0, r = -1;

  *why = '\0';
  if (vmferry_sync_bitmap_name (dest_id, gen + 1, next) < 0)
    return -1;
  if (vmferry_sync_bitmaps_of (path, &l, &n) < 0) {
    snprintf (why, why_len, "%s", vmferry_get_error ());
    return 0;
  }
  if (use)
    usable = vmferry_sync_bitmap_usable (l, n, dest_id, gen, why, why_len);
  /* Ours but bitmap GEN: a stale GEN + 1 of a run killed before its
   * commit, older ones, GEN itself when it cannot be used.
   */
  for (size_t i = 0; i < n; i++) {
    int64_t g = vmferry_sync_bitmap_gen (dest_id, l[i].name);
    if (g == 0 || (usable && g == gen))
      continue;
    if (vmferry_sync_bitmap_remove (path, l[i].name) < 0)
      goto out;
  }
  if (!no_add && vmferry_sync_bitmap_add (path, next) < 0) {
    /* Not fatal: this run reads all the same; the next one scans. */
    vmferry_verbose ("%s", vmferry_get_error ());
    if (usable) {
      /* Bitmap GEN would be removed at the commit with nothing to
       * follow it: scan now, and keep GEN as it is, the next run
       * tries again.
       */
      usable = 0;
    }
    snprintf (why, why_len, "%s", vmferry_get_error ());
  }
  r = usable;
 out:
  vmferry_sync_bitmaps_free (l, n);
  return r;
}

int
vmferry_sync_bitmap_forget (const char *path, const char *dest_id,
                            int64_t gen)
{
  struct vmferry_sync_bitmap *l = NULL;
  size_t n = 0;
  int r = 0;

  if (vmferry_sync_bitmaps_of (path, &l, &n) < 0)
    return -1;
  for (size_t i = 0; i < n && r == 0; i++) {
    int64_t g = vmferry_sync_bitmap_gen (dest_id, l[i].name);
    if (g != 0 && (gen == 0 || g == gen))
      r = vmferry_sync_bitmap_remove (path, l[i].name);
  }
  vmferry_sync_bitmaps_free (l, n);
  return r;
}

int
vmferry_sync_bitmap_strip (const char *path)
{
  struct vmferry_sync_bitmap *l = NULL;
  size_t n = 0;
  int r = 0;

  if (vmferry_sync_bitmaps_of (path, &l, &n) < 0)
    return -1;
  for (size_t i = 0; i < n && r == 0; i++)
    if (strncmp (l[i].name, "vmferry.", 8) == 0)
      r = vmferry_sync_bitmap_remove (path, l[i].name);
  vmferry_sync_bitmaps_free (l, n);
  return r;
}

/* ---- reading through qemu-nbd ---- */

struct vmferry_sync_qcow2 {
  struct nbd_handle *h;
  char *path;
  char *context;                /* "qemu:dirty-bitmap:NAME", or NULL */
  uint64_t size;
};

static int
nbd_fail (const char *path, const char *what)
{
  int e = nbd_get_errno ();

  vmferry_set_error_errno (e ? e : EIO, "%s: %s: %s", path, what,
                           nbd_get_error () ? nbd_get_error () : "failed");
  return -1;
}

struct vmferry_sync_qcow2 *
vmferry_sync_qcow2_open (const char *path, const char *bitmap)
{
  struct vmferry_sync_qcow2 *q = calloc (1, sizeof *q);
  CLEANUP_FREE char *opts = image_opts (path);
  int64_t size;

  if (q == NULL || opts == NULL || !(q->path = strdup (path)) ||
      (bitmap && asprintf (&q->context, "qemu:dirty-bitmap:%s", bitmap) < 0)) {
    if (q)
      q->context = NULL;
    vmferry_set_error_errno (ENOMEM, "malloc");
    goto err;
  }
  {
    char *argv[] = { (char *) "qemu-nbd", (char *) "-r",
                     (char *) "--image-opts", opts,
                     (char *) (bitmap ? "-B" : NULL), (char *) bitmap, NULL };
    if (!(q->h = nbd_create ())) {
      nbd_fail (path, "libnbd");
      goto err;
    }
    if ((q->context && nbd_add_meta_context (q->h, q->context) == -1) ||
        nbd_connect_systemd_socket_activation (q->h, argv) == -1 ||
        (size = nbd_get_size (q->h)) == -1) {
      nbd_fail (path, "qemu-nbd");
      goto err;
    }
  }
  if (q->context && nbd_can_meta_context (q->h, q->context) != 1) {
    vmferry_set_error ("%s: qemu-nbd does not export %s", path, q->context);
    goto err;
  }
  q->size = size;
  return q;
 err:
  vmferry_sync_qcow2_close (q);
  return NULL;
}

uint64_t
vmferry_sync_qcow2_size (const struct vmferry_sync_qcow2 *q)
{
  return q->size;
}

int
vmferry_sync_qcow2_read (struct vmferry_sync_qcow2 *q, void *buf, size_t n,
                         uint64_t off)
{
  /* In the pieces QEMU's server serves fastest (docs/design-dr.md). */
  for (size_t p = 0; p < n; p += VMFERRY_SOURCE_NBD_PIECE) {
    size_t k = n - p < VMFERRY_SOURCE_NBD_PIECE ? n - p
                                                : VMFERRY_SOURCE_NBD_PIECE;
    if (nbd_pread (q->h, (char *) buf + p, k, off + p, 0) == -1)
      return nbd_fail (q->path, "read");
  }
  return 0;
}

struct dirty_walk {
  const char *context;
  uint64_t chunk, size, next;   /* NEXT: where the answer ends */
  unsigned char *dirty;
  int64_t marked;
};

static int
dirty_extent (void *opaque, const char *metacontext, uint64_t offset,
              uint32_t *entries, size_t nr_entries, int *error)
{
  struct dirty_walk *w = opaque;

  (void) error;
  if (strcmp (metacontext, w->context) != 0)
    return 0;
  for (size_t i = 0; i + 1 < nr_entries; i += 2) {
    uint64_t len = entries[i];

    if (offset >= w->size)
      break;
    if (len > w->size - offset)
      len = w->size - offset;
    /* The context's flag 1: dirty. */
    if ((entries[i + 1] & 1) && len > 0)
      for (uint64_t c = offset / w->chunk; c <= (offset + len - 1) / w->chunk;
           c++)
        if (!w->dirty[c]) {
          w->dirty[c] = 1;
          w->marked++;
        }
    offset += len;
  }
  w->next = offset;
  return 0;
}

int64_t
vmferry_sync_qcow2_dirty (struct vmferry_sync_qcow2 *q, uint64_t chunk,
                          unsigned char *dirty)
{
  struct dirty_walk w = { .context = q->context, .chunk = chunk,
                          .size = q->size, .dirty = dirty };
  uint64_t pos = 0;

  if (q->context == NULL) {
    vmferry_set_error ("%s: no bitmap exported", q->path);
    return -1;
  }
  while (pos < q->size) {
    uint64_t count = q->size - pos < (1u << 30) ? q->size - pos : (1u << 30);

    w.next = pos;
    if (nbd_block_status (q->h, count, pos,
                          (nbd_extent_callback) { .callback = dirty_extent,
                                                  .user_data = &w }, 0) == -1)
      return nbd_fail (q->path, "block status");
    if (w.next <= pos) {
      vmferry_set_error ("%s: qemu-nbd's block status says nothing of %"
                         PRIu64, q->path, pos);
      return -1;
    }
    pos = w.next;
  }
  return w.marked;
}

int
vmferry_sync_qcow2_maps (const char *path, uint64_t chunk, uint64_t fine,
                         struct vmferry_map **map_rtn,
                         struct vmferry_map **fine_rtn, uint64_t *read)
{
  struct vmferry_sync_qcow2 *q = vmferry_sync_qcow2_open (path, NULL);
  CLEANUP_FREE unsigned char *buf = malloc (chunk);
  struct vmferry_map *m = NULL, *f = NULL;
  uint64_t size;

  if (q == NULL)
    return -1;
  size = q->size;
  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "malloc");
    goto err;
  }
  if (!(m = vmferry_map_new (size, chunk)) ||
      !(f = vmferry_map_new (size, fine)))
    goto err;
  for (uint64_t off = 0; off < size; off += chunk) {
    size_t n = size - off < chunk ? size - off : chunk;
    struct vmferry_map *ms[2] = { m, f };

    /* Each block into both maps while it is in the CPU's cache. */
    if (vmferry_sync_qcow2_read (q, buf, n, off) < 0 ||
        vmferry_digest_update_maps (NULL, ms, 2, off, buf, n) < 0)
      goto err;
    *read += n;
  }
  if (vmferry_sync_qcow2_close (q) < 0) {
    q = NULL;
    goto err;
  }
  *map_rtn = m;
  *fine_rtn = f;
  return 0;
 err:
  vmferry_sync_qcow2_close (q);
  vmferry_map_free (m);
  vmferry_map_free (f);
  return -1;
}

int
vmferry_sync_qcow2_close (struct vmferry_sync_qcow2 *q)
{
  int r = 0;

  if (q == NULL)
    return 0;
  if (q->h) {
    if (nbd_aio_is_ready (q->h) && nbd_shutdown (q->h, 0) == -1)
      r = nbd_fail (q->path, "shutdown");
    nbd_close (q->h);
  }
  free (q->context);
  free (q->path);
  free (q);
  return r;
}
