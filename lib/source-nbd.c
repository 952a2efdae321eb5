/* vmferry: the NBD source: an NBD export read through libnbd (see
 * source.h).
 *
 * The map comes from block status (base:allocation), asked for a range
 * at a time and kept until the walk leaves it.  A block is a hole (not
 * read, as SEEK_HOLE) only where the server says HOLE and ZERO for all
 * of it: a hole that is not known to read as zeros (a backing file
 * shows through) is data.  Reads are split into requests of at most
 * VMFERRY_SOURCE_NBD_PIECE bytes, NBD_IN_FLIGHT of them in flight at
 * once on the one connection (libnbd's aio), all into the caller's
 * buffer: no copy.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "cleanup.h"
#include "error.h"
#include "source-int.h"
#include "stream.h"           /* VMFERRY_BLOCK_SIZE */
#include "vector.h"

/* Requests in flight: enough to keep QEMU's server busy while we wait
 * (a 4 MiB chunk is 8 pieces), few enough to stay out of its way.
 */
#define NBD_IN_FLIGHT 8

/* Block status asked for at most this much at a time (the protocol's
 * count is 32 bits); a server may answer for less.
 */
#define NBD_MAP_SPAN (1024 * 1024 * 1024)

struct nbd_extent {
  uint64_t off, len;
  uint32_t flags;               /* LIBNBD_STATE_* */
};

DEFINE_VECTOR_TYPE (nbd_extent_vector, struct nbd_extent);

struct nbd_source {
  struct vmferry_source s;      /* first: the sources' common part */
  struct nbd_handle *h;
  bool can_map;                 /* the server answers base:allocation */
  bool dead;                    /* a failed poll: requests may be lost */
  int read_err;                 /* the first failed request's errno */
  size_t piece;                 /* the largest request */
  struct nbd_extent_vector map; /* contiguous, from map.ptr[0].off */
};

enum block_class { BLOCK_HOLE, BLOCK_ZERO, BLOCK_DATA };

/* Set the error from libnbd's, naming the source. */
static void
nbd_source_error (const struct vmferry_source *s)
{
  char msg[VMFERRY_ERROR_MAX];
  const char *e = nbd_get_error ();

  snprintf (msg, sizeof msg, "%s: %s", s->name, e ? e : "NBD error");
  vmferry_restore_error (msg, nbd_get_errno ());
}

static int
map_extent (void *opaque, const char *metacontext, uint64_t offset,
            uint32_t *entries, size_t nr_entries, int *error)
{
  struct nbd_source *ns = opaque;

  if (strcmp (metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (size_t i = 0; i + 1 < nr_entries; i += 2) {
    struct nbd_extent e = { offset, entries[i], entries[i + 1] };

    if (e.len == 0)
      break;                    /* a broken server: ends the answer */
    if (nbd_extent_vector_append (&ns->map, e) == -1) {
      *error = ENOMEM;
      return -1;
    }
    offset += e.len;
  }
  return 0;
}

/* Ask for the map from OFF on. */
static int
map_fetch (struct nbd_source *ns, uint64_t off)
{
  uint64_t count = ns->s.size - off;

  if (count > NBD_MAP_SPAN)
    count = NBD_MAP_SPAN;
  ns->map.len = 0;
  if (nbd_block_status (ns->h, count, off,
                        (nbd_extent_callback) { .callback = map_extent,
                                                .user_data = ns }, 0) == -1) {
    nbd_source_error (&ns->s);
    return -1;
  }
  if (ns->map.len == 0 || ns->map.ptr[0].off != off) {
    vmferry_set_error ("%s: the server's block status at %" PRIu64
                       " covers nothing", ns->s.name, off);
    return -1;
  }
  return 0;
}

/* The flags of the extent that holds OFF (< size) and where it ends. */
static int
map_at (struct nbd_source *ns, uint64_t off, uint32_t *flags_rtn,
        uint64_t *end_rtn)
{
  size_t lo, hi;

  if (!ns->can_map) {
    *flags_rtn = 0;
    *end_rtn = ns->s.size;
    return 0;
  }
  if (ns->map.len == 0 || off < ns->map.ptr[0].off ||
      off >= ns->map.ptr[ns->map.len - 1].off +
             ns->map.ptr[ns->map.len - 1].len) {
    if (map_fetch (ns, off) < 0)
      return -1;
  }
  lo = 0;
  hi = ns->map.len;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (ns->map.ptr[mid].off <= off)
      lo = mid;
    else
      hi = mid;
  }
  *flags_rtn = ns->map.ptr[lo].flags;
  *end_rtn = ns->map.ptr[lo].off + ns->map.ptr[lo].len;
  return 0;
}

static enum block_class
class_of (bool hole, bool zero)
{
  return hole && zero ? BLOCK_HOLE : zero ? BLOCK_ZERO : BLOCK_DATA;
}

/* The class of the block at B (block-aligned, < SIZE) and *RUN_END_RTN,
 * the end of the blocks from B on known to have the same class (at
 * least the end of B's block, at most SIZE).
 */
static int
block_class (struct nbd_source *ns, uint64_t b, uint64_t size,
             enum block_class *class_rtn, uint64_t *run_end_rtn)
{
  const uint64_t bs = VMFERRY_BLOCK_SIZE;
  uint64_t bend = size - b > bs ? b + bs : size, e, x;
  uint32_t flags;
  bool hole, zero;

  if (map_at (ns, b, &flags, &e) < 0)
    return -1;
  hole = flags & LIBNBD_STATE_HOLE;
  zero = flags & LIBNBD_STATE_ZERO;
  if (e >= bend) {
    /* Every whole block inside the extent is like this one. */
    *class_rtn = class_of (hole, zero);
    *run_end_rtn = e >= size ? size : b + (e - b) / bs * bs;
    return 0;
  }
  for (x = e; x < bend; x = e) {
    if (map_at (ns, x, &flags, &e) < 0)
      return -1;
    hole = hole && (flags & LIBNBD_STATE_HOLE);
    zero = zero && (flags & LIBNBD_STATE_ZERO);
  }
  *class_rtn = class_of (hole, zero);
  *run_end_rtn = bend;
  return 0;
}

static int
source_nbd_next_data (struct vmferry_source *s, uint64_t pos, uint64_t size,
                      uint64_t *start_rtn, uint64_t *end_rtn, bool *zero_rtn)
{
  struct nbd_source *ns = (struct nbd_source *) s;
  uint64_t b = pos - pos % VMFERRY_BLOCK_SIZE, run_end, start;
  enum block_class c, next;

  if (size > s->size)
    size = s->size;
  if (pos >= size)
    return 0;
  while (b < size) {
    if (block_class (ns, b, size, &c, &run_end) < 0)
      return -1;
    if (c == BLOCK_HOLE) {
      b = run_end;
      continue;
    }
    if (c == BLOCK_ZERO && zero_rtn == NULL)
      c = BLOCK_DATA;
    start = b;
    b = run_end;
    while (b < size) {
      if (block_class (ns, b, size, &next, &run_end) < 0)
        return -1;
      if (next == BLOCK_ZERO && zero_rtn == NULL)
        next = BLOCK_DATA;
      if (next != c)
        break;
      b = run_end;
    }
    *start_rtn = start;
    *end_rtn = b;
    if (zero_rtn)
      *zero_rtn = c == BLOCK_ZERO;
    return 1;
  }
  return 0;
}

/* A read request done: keeps the first error (in the source, not on
 * a stack: a request the server never answers may complete late).
 */
static int
read_done (void *opaque, int *error)
{
  struct nbd_source *ns = opaque;

  if (*error && ns->read_err == 0)
    ns->read_err = *error;
  return 1;                     /* retire the command */
}

/* Wait until no request is in flight (they write into the caller's
 * buffer).  0, or -1 with the error set: the connection is then unusable.
 */
static int
drain (struct nbd_source *ns)
{
  while (nbd_aio_in_flight (ns->h) > 0)
    if (nbd_poll (ns->h, -1) == -1) {
      nbd_source_error (&ns->s);
      ns->dead = true;
      return -1;
    }
  return 0;
}

static int
source_nbd_read (struct vmferry_source *s, uint64_t off, size_t len,
                 unsigned char *buf, struct vmferry_source_view *v)
{
  struct nbd_source *ns = (struct nbd_source *) s;
  size_t done = 0;

  if (ns->dead) {
    vmferry_set_error ("%s: the connection failed before", s->name);
    return -1;
  }
  if (off > s->size || len > s->size - off) {
    vmferry_set_error ("%s: %zu bytes at %" PRIu64 " are past its end (%"
                       PRIu64 " bytes)", s->name, len, off, s->size);
    return -1;
  }
  v->data = buf;
  ns->read_err = 0;
  while (done < len || nbd_aio_in_flight (ns->h) > 0) {
    while (done < len && ns->read_err == 0 &&
           nbd_aio_in_flight (ns->h) < NBD_IN_FLIGHT) {
      size_t n = len - done < ns->piece ? len - done : ns->piece;

      if (nbd_aio_pread (ns->h, buf + done, n, off + done,
                         (nbd_completion_callback) { .callback = read_done,
                                                     .user_data = ns },
                         0) == -1) {
        struct vmferry_saved_error saved;

        nbd_source_error (s);
        vmferry_save_error (&saved);
        drain (ns);
        vmferry_restore_saved_error (&saved);
        return -1;
      }
      done += n;
    }
    if (ns->read_err)
      done = len;               /* issue no more; wait for the rest */
    if (nbd_aio_in_flight (ns->h) > 0 && nbd_poll (ns->h, -1) == -1) {
      nbd_source_error (s);
      ns->dead = true;
      return -1;
    }
  }
  if (ns->read_err) {
    vmferry_set_error_errno (ns->read_err, "%s: read of %zu bytes at %"
                             PRIu64, s->name, len, off);
    return -1;
  }
  return 0;
}

static void
source_nbd_close (struct vmferry_source *s)
{
  struct nbd_source *ns = (struct nbd_source *) s;

  if (ns->h)
    nbd_close (ns->h);
  nbd_extent_vector_reset (&ns->map);
  free (s->name);
  free (ns);
}

static const struct vmferry_source_ops nbd_ops = {
  .next_data = source_nbd_next_data,
  .read = source_nbd_read,
  .close = source_nbd_close,
};

/* Connect to URI, or with ARGV (a server to start) when URI is NULL;
 * NAME names the source in errors.
 */
static struct vmferry_source *
open_nbd (const char *name, const char *uri, char *const *argv)
{
  struct nbd_source *ns = calloc (1, sizeof *ns);
  int64_t size, max;

  if (ns == NULL) {
    vmferry_set_error_errno (errno, "%s", name);
    return NULL;
  }
  ns->s.ops = &nbd_ops;
  ns->s.fd = -1;
  ns->piece = VMFERRY_SOURCE_NBD_PIECE;
  if (!(ns->s.name = strdup (name))) {
    vmferry_set_error_errno (errno, "%s", name);
    goto err;
  }
  ns->h = nbd_create ();
  if (ns->h == NULL ||
      nbd_add_meta_context (ns->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
      (uri ? nbd_connect_uri (ns->h, uri)
           : nbd_connect_systemd_socket_activation (ns->h,
                                                    (char **) argv)) == -1 ||
      (size = nbd_get_size (ns->h)) == -1) {
    nbd_source_error (&ns->s);
    goto err;
  }
  ns->s.size = (uint64_t) size;
  /* Without block status everything is data, as for a file system
   * that cannot tell holes.
   */
  ns->can_map = nbd_can_meta_context (ns->h,
                                      LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
  max = nbd_get_block_size (ns->h, LIBNBD_SIZE_MAXIMUM);
  if (max > 0 && (uint64_t) max < ns->piece)
    ns->piece = (size_t) max;
  return &ns->s;

 err:
  source_nbd_close (&ns->s);
  return NULL;
}

struct vmferry_source *
vmferry_source_open_nbd (const char *uri)
{
  return open_nbd (uri, uri, NULL);
}

struct vmferry_source *
vmferry_source_open_image (const char *name, const char *node)
{
  CLEANUP_FREE char *image = NULL;
  /* No -f: the json: name says every driver.  One client (qemu-nbd's
   * default), so the server ends when the source closes or this
   * process dies.
   */
  char *argv[] = { (char *) "qemu-nbd", (char *) "--read-only", NULL, NULL };

  if (asprintf (&image, "json:%s", node) < 0) {
    vmferry_set_error_errno (ENOMEM, "%s", name);
    return NULL;
  }
  argv[2] = image;
  return open_nbd (name, NULL, argv);
}
