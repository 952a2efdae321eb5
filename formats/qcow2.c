/* vmferry: qcow2 headers, read with suspicion (see qcow2.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup-libc.h"
#include "error.h"
#include "qcow2.h"

/* Header extension types. */
#define EXT_END 0x00000000U
#define EXT_BACKING_FORMAT 0xe2792acaU
#define EXT_DATA_FILE 0x44415441U

#define V2_HEADER_LENGTH 72
#define V3_HEADER_LENGTH 104
/* More than any real image has; bounds the loop on a hostile one. */
#define MAX_EXTENSIONS 1024

static uint32_t
be32 (const unsigned char *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 |
    (uint32_t) p[2] << 8 | p[3];
}

static uint64_t
be64 (const unsigned char *p)
{
  return (uint64_t) be32 (p) << 32 | be32 (p + 4);
}

/* Read up to LEN bytes at OFFSET; fewer only at end of file.  Returns the
 * number read or -1 with errno set.
 */
static ssize_t
pread_full (int fd, void *buf, size_t len, off_t offset)
{
  size_t done = 0;

  while (done < len) {
    ssize_t r = pread (fd, (char *) buf + done, len - done, offset + done);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0)
      break;
    done += r;
  }
  return done;
}

/* Copy a name of LEN bytes at P into OUT (OUTLEN bytes with the NUL),
 * refusing what QEMU would truncate or misread.
 */
static int
copy_name (const char *name, const char *what, const unsigned char *p,
           uint64_t len, char *out, size_t outlen)
{
  if (len > outlen - 1) {
    vmferry_set_error ("%s: qcow2 %s is %llu bytes, more than %zu",
                       name, what, (unsigned long long) len, outlen - 1);
    return -1;
  }
  if (memchr (p, '\0', len) != NULL) {
    vmferry_set_error ("%s: qcow2 %s contains a NUL byte", name, what);
    return -1;
  }
  memcpy (out, p, len);
  out[len] = '\0';
  return 0;
}

/* Does [OFF, OFF+LEN) fit below LIMIT?  Written so nothing can wrap. */
static bool
fits (uint64_t off, uint64_t len, uint64_t limit)
{
  return off <= limit && len <= limit - off;
}

static int
read_extensions (const char *name, const unsigned char *buf, size_t avail,
                 uint64_t start, uint64_t end, const char *end_what,
                 struct vmferry_qcow2_info *info)
{
  uint64_t offset = start;
  unsigned count = 0;
  bool have_format = false, have_data_file = false;

  while (offset < end) {
    uint32_t type, len;
    uint64_t data;

    if (!fits (offset, 8, end)) {
      vmferry_set_error ("%s: qcow2 header extension at offset %llu: "
                         "truncated by %s at offset %llu", name,
                         (unsigned long long) offset, end_what,
                         (unsigned long long) end);
      return -1;
    }
    if (!fits (offset, 8, avail)) {
      vmferry_set_error ("%s: qcow2 header extension at offset %llu lies "
                         "past the end of the file (%zu bytes)", name,
                         (unsigned long long) offset, avail);
      return -1;
    }
    if (++count > MAX_EXTENSIONS) {
      vmferry_set_error ("%s: qcow2 header has more than %d extensions",
                         name, MAX_EXTENSIONS);
      return -1;
    }
    type = be32 (buf + offset);
    len = be32 (buf + offset + 4);
    data = offset + 8;
    if (type == EXT_END)
      return 0;
    if (!fits (data, len, end)) {
      vmferry_set_error ("%s: qcow2 header extension 0x%08x at offset %llu: "
                         "length %u runs past %s at offset %llu", name, type,
                         (unsigned long long) offset, len, end_what,
                         (unsigned long long) end);
      return -1;
    }
    if (!fits (data, len, avail)) {
      vmferry_set_error ("%s: qcow2 header extension 0x%08x at offset %llu: "
                         "length %u runs past the end of the file (%zu bytes)",
                         name, type, (unsigned long long) offset, len, avail);
      return -1;
    }

    switch (type) {
    case EXT_BACKING_FORMAT:
      if (have_format) {
        vmferry_set_error ("%s: qcow2 header has two backing format "
                           "extensions", name);
        return -1;
      }
      have_format = true;
      if (copy_name (name, "backing format", buf + data, len,
                     info->backing_format, sizeof info->backing_format) == -1)
        return -1;
      break;
    case EXT_DATA_FILE:
      if (have_data_file) {
        vmferry_set_error ("%s: qcow2 header has two data file extensions",
                           name);
        return -1;
      }
      have_data_file = true;
      info->has_data_file = true;
      if (copy_name (name, "data file name", buf + data, len,
                     info->data_file, sizeof info->data_file) == -1)
        return -1;
      break;
    default:
      /* Feature names, bitmaps, the LUKS header pointer, extensions
       * from later QEMUs: nothing vmferry needs, and QEMU keeps them.
       */
      break;
    }
    /* Extension data is padded to 8 bytes; len < 2^32, so no wrap. */
    offset = data + (((uint64_t) len + 7) & ~(uint64_t) 7);
  }
  return 0;
}

int
vmferry_qcow2_probe (int fd, const char *name,
                     struct vmferry_qcow2_info *info_rtn)
{
  struct vmferry_qcow2_info info;
  unsigned char hdr[V3_HEADER_LENGTH];
  CLEANUP_FREE unsigned char *buf = NULL;
  ssize_t r;
  size_t avail;
  uint32_t cluster_size, refcount_order = 4;
  uint64_t backing_offset, ext_end;
  uint32_t backing_len;

  r = pread_full (fd, hdr, sizeof hdr, 0);
  if (r == -1) {
    vmferry_set_error_errno (errno, "%s: cannot read header", name);
    return -1;
  }
  if (r < 4 || be32 (hdr) != VMFERRY_QCOW2_MAGIC)
    return 0;

  memset (&info, 0, sizeof info);
  info.version = be32 (hdr + 4);
  if (info.version != 2 && info.version != 3) {
    vmferry_set_error ("%s: qcow2 version %u is not supported (only 2 and 3)",
                       name, info.version);
    return -1;
  }
  info.header_length = info.version == 2 ? V2_HEADER_LENGTH : V3_HEADER_LENGTH;
  if ((size_t) r < info.header_length) {
    vmferry_set_error ("%s: qcow2 header truncated: the file has %zd bytes, "
                       "the header needs %u", name, r, info.header_length);
    return -1;
  }

  backing_offset = be64 (hdr + 8);
  backing_len = be32 (hdr + 16);
  info.cluster_bits = be32 (hdr + 20);
  info.virtual_size = be64 (hdr + 24);
  info.crypt_method = be32 (hdr + 32);
  if (info.version == 3) {
    info.incompatible_features = be64 (hdr + 72);
    info.compatible_features = be64 (hdr + 80);
    info.autoclear_features = be64 (hdr + 88);
    refcount_order = be32 (hdr + 96);
    info.header_length = be32 (hdr + 100);
  }

  if (info.cluster_bits < 9 || info.cluster_bits > 21) {
    vmferry_set_error ("%s: qcow2 cluster_bits %u is out of range (9 to 21)",
                       name, info.cluster_bits);
    return -1;
  }
  cluster_size = UINT32_C (1) << info.cluster_bits;
  if (info.version == 3 &&
      (info.header_length < V3_HEADER_LENGTH || info.header_length % 8 != 0 ||
       info.header_length > cluster_size)) {
    vmferry_set_error ("%s: qcow2 header length %u is invalid (a multiple "
                       "of 8, at least %d, at most the cluster size %u)",
                       name, info.header_length, V3_HEADER_LENGTH,
                       cluster_size);
    return -1;
  }
  if (refcount_order > 6) {
    vmferry_set_error ("%s: qcow2 refcount order %u is out of range (0 to 6)",
                       name, refcount_order);
    return -1;
  }
  if (info.virtual_size > INT64_MAX) {
    vmferry_set_error ("%s: qcow2 virtual size %llu is too large", name,
                       (unsigned long long) info.virtual_size);
    return -1;
  }
  if (info.crypt_method > VMFERRY_QCOW2_CRYPT_LUKS) {
    vmferry_set_error ("%s: qcow2 encryption method %u is unknown",
                       name, info.crypt_method);
    return -1;
  }

  /* Everything else this reads lives in the first cluster (at most
   * 2 MiB): read it once, as much of it as the file has.
   */
  buf = malloc (cluster_size);
  if (buf == NULL) {
    vmferry_set_error_errno (errno, "%s: qcow2 header", name);
    return -1;
  }
  r = pread_full (fd, buf, cluster_size, 0);
  if (r == -1) {
    vmferry_set_error_errno (errno, "%s: cannot read header", name);
    return -1;
  }
  avail = r;

  /* Extensions end where the backing file name begins, as in QEMU, even
   * when the name is empty (which QEMU reads as "no backing file").
   */
  ext_end = cluster_size;
  if (backing_offset != 0) {
    if (backing_offset > cluster_size) {
      vmferry_set_error ("%s: qcow2 backing file name (offset %llu, %u bytes) "
                         "lies outside the first cluster (%u bytes)", name,
                         (unsigned long long) backing_offset, backing_len,
                         cluster_size);
      return -1;
    }
    ext_end = backing_offset;
  }
  if (backing_offset != 0 && backing_len != 0) {
    if (backing_len > VMFERRY_QCOW2_MAX_NAME) {
      vmferry_set_error ("%s: qcow2 backing file name is %u bytes, more "
                         "than %d", name, backing_len, VMFERRY_QCOW2_MAX_NAME);
      return -1;
    }
    if (backing_offset < info.header_length) {
      vmferry_set_error ("%s: qcow2 backing file name at offset %llu "
                         "overlaps the header (%u bytes)", name,
                         (unsigned long long) backing_offset,
                         info.header_length);
      return -1;
    }
    if (!fits (backing_offset, backing_len, cluster_size)) {
      vmferry_set_error ("%s: qcow2 backing file name (offset %llu, %u bytes) "
                         "lies outside the first cluster (%u bytes)", name,
                         (unsigned long long) backing_offset, backing_len,
                         cluster_size);
      return -1;
    }
    if (!fits (backing_offset, backing_len, avail)) {
      vmferry_set_error ("%s: qcow2 backing file name (offset %llu, %u bytes) "
                         "lies past the end of the file (%zu bytes)", name,
                         (unsigned long long) backing_offset, backing_len,
                         avail);
      return -1;
    }
    if (copy_name (name, "backing file name", buf + backing_offset,
                   backing_len, info.backing_file,
                   sizeof info.backing_file) == -1)
      return -1;
    info.has_backing = true;
  }

  if (read_extensions (name, buf, avail, info.header_length, ext_end,
                       backing_offset ? "the backing file name"
                                      : "the first cluster", &info) == -1)
    return -1;
  if (info.incompatible_features & VMFERRY_QCOW2_INCOMPAT_DATA_FILE)
    info.has_data_file = true;

  *info_rtn = info;
  return 1;
}

int
vmferry_qcow2_check_carriable (const struct vmferry_qcow2_info *info,
                               const char *name)
{
  uint64_t unknown = info->incompatible_features &
                     ~VMFERRY_QCOW2_INCOMPAT_KNOWN;

  if (info->has_data_file) {
    vmferry_set_error ("%s: qcow2 image keeps its data in an external data "
                       "file%s%s%s: not supported (the data would not travel "
                       "with the image)", name,
                       info->data_file[0] ? " '" : "", info->data_file,
                       info->data_file[0] ? "'" : "");
    return -1;
  }
  if (info->incompatible_features & VMFERRY_QCOW2_INCOMPAT_CORRUPT) {
    vmferry_set_error ("%s: qcow2 image is marked corrupt (repair it with "
                       "'qemu-img check -r all' first)", name);
    return -1;
  }
  if (unknown) {
    vmferry_set_error ("%s: qcow2 image has unknown incompatible features "
                       "0x%llx", name, (unsigned long long) unknown);
    return -1;
  }
  return 0;
}

/* NAME (from a header: any bytes but NUL) for a message: control bytes
 * and bytes >= 0x7f as \xNN, so a hostile name cannot drive a terminal.
 * OUT holds at least 4 * VMFERRY_QCOW2_MAX_NAME + 1 bytes.
 */
static const char *
printable (const char *in, char *out)
{
  size_t used = 0;

  for (const unsigned char *p = (const unsigned char *) in; *p; p++)
    if (*p < 0x20 || *p >= 0x7f || *p == '\\')
      used += sprintf (out + used, "\\x%02x", *p);
    else
      out[used++] = *p;
  out[used] = '\0';
  return out;
}

int
vmferry_qcow2_validate_arrival (int fd, const char *name,
                                const struct vmferry_qcow2_expect *exp,
                                struct vmferry_qcow2_info *info_rtn)
{
  struct vmferry_qcow2_info info;
  char shown[4 * VMFERRY_QCOW2_MAX_NAME + 1];
  uint64_t unknown;
  int r;

  if (exp == NULL || exp->format == NULL) {
    vmferry_set_error_errno (EINVAL, "%s: no format to validate against",
                             name);
    return -1;
  }
  if (strcmp (exp->format, "raw") == 0) {
    if (exp->has_backing) {
      vmferry_set_error ("%s: the stream gives a raw image a backing file",
                         name);
      return -1;
    }
    return 0;
  }
  if (strcmp (exp->format, "qcow2") != 0) {
    vmferry_set_error ("%s: format '%s' is not supported (only qcow2 and "
                       "raw)", name, exp->format);
    return -1;
  }
  if (exp->has_backing &&
      (exp->backing_format == NULL ||
       (strcmp (exp->backing_format, "qcow2") != 0 &&
        strcmp (exp->backing_format, "raw") != 0))) {
    vmferry_set_error ("%s: the stream's backing file has format '%s' (only "
                       "qcow2 and raw)", name,
                       exp->backing_format ? exp->backing_format : "");
    return -1;
  }

  r = vmferry_qcow2_probe (fd, name, &info);
  if (r == -1)
    return -1;
  if (r == 0) {
    vmferry_set_error ("%s: not a qcow2 image, but the stream says it is",
                       name);
    return -1;
  }

  if (info.has_data_file && !exp->allow_data_file) {
    vmferry_set_error ("%s: qcow2 image keeps its data in an external data "
                       "file%s%s%s, which did not travel with it: refused "
                       "(QEMU would open that host file)", name,
                       info.data_file[0] ? " '" : "",
                       printable (info.data_file, shown),
                       info.data_file[0] ? "'" : "");
    return -1;
  }
  if (info.incompatible_features & VMFERRY_QCOW2_INCOMPAT_CORRUPT) {
    vmferry_set_error ("%s: qcow2 image is marked corrupt", name);
    return -1;
  }
  unknown = info.incompatible_features & ~VMFERRY_QCOW2_INCOMPAT_KNOWN;
  if (unknown) {
    vmferry_set_error ("%s: qcow2 image has unknown incompatible features "
                       "0x%llx", name, (unsigned long long) unknown);
    return -1;
  }
  if (info.crypt_method == VMFERRY_QCOW2_CRYPT_AES) {
    vmferry_set_error ("%s: qcow2 image uses the legacy AES encryption "
                       "(only LUKS is accepted)", name);
    return -1;
  }

  if (info.has_backing && !exp->has_backing) {
    vmferry_set_error ("%s: qcow2 header names the backing file '%s', but "
                       "the stream gives it none: refused (QEMU would open "
                       "that file)", name,
                       printable (info.backing_file, shown));
    return -1;
  }
  if (!info.has_backing && exp->has_backing) {
    vmferry_set_error ("%s: qcow2 header names no backing file, but the "
                       "stream gives it one", name);
    return -1;
  }
  if (exp->has_backing) {
    if (info.backing_format[0] &&
        strcmp (info.backing_format, exp->backing_format) != 0) {
      vmferry_set_error ("%s: qcow2 header gives the backing file format "
                         "'%s', but the stream's backing file is %s", name,
                         printable (info.backing_format, shown),
                         exp->backing_format);
      return -1;
    }
    if (exp->backing_name) {
      if (info.backing_format[0] == '\0') {
        vmferry_set_error ("%s: qcow2 header gives no backing file format "
                           "(QEMU would probe it)", name);
        return -1;
      }
      if (strcmp (info.backing_file, exp->backing_name) != 0) {
        vmferry_set_error ("%s: qcow2 header names the backing file '%s', "
                           "not '%s'", name,
                           printable (info.backing_file, shown),
                           exp->backing_name);
        return -1;
      }
    }
  }
  if (info_rtn)
    *info_rtn = info;
  return 1;
}

/* PATH made absolute against the current directory, unresolved.  The
 * caller frees it.
 */
static char *
absolute (const char *path)
{
  char cwd[PATH_MAX];
  char *ret;

  if (path[0] == '/')
    ret = strdup (path);
  else if (getcwd (cwd, sizeof cwd) == NULL) {
    vmferry_set_error_errno (errno, "%s: cannot get the current directory",
                             path);
    return NULL;
  }
  else if (asprintf (&ret, "%s/%s", strcmp (cwd, "/") ? cwd : "", path) == -1)
    ret = NULL;
  if (ret == NULL)
    vmferry_set_error_errno (ENOMEM, "%s", path);
  return ret;
}

char *
vmferry_qcow2_backing_path (const char *overlay, const char *backing)
{
  CLEANUP_FREE char *base = NULL;
  const char *p, *slash;
  char *ret;

  if (overlay == NULL || *overlay == '\0' || backing == NULL) {
    vmferry_set_error_errno (EINVAL, "backing path");
    return NULL;
  }
  if (*backing == '\0') {
    vmferry_set_error ("%s: empty backing file name", overlay);
    return NULL;
  }
  /* QEMU's path_has_protocol: a ':' before any '/'. */
  p = backing + strcspn (backing, ":/");
  if (*p == ':') {
    vmferry_set_error ("%s: backing file '%s' uses the protocol '%.*s': "
                       "only local paths are followed", overlay, backing,
                       (int) (p - backing), backing);
    return NULL;
  }
  if (strlen (backing) > VMFERRY_QCOW2_MAX_NAME) {
    vmferry_set_error ("%s: backing file name is longer than %d bytes",
                       overlay, VMFERRY_QCOW2_MAX_NAME);
    return NULL;
  }
  if (backing[0] == '/') {
    ret = strdup (backing);
    if (ret == NULL)
      vmferry_set_error_errno (ENOMEM, "%s", overlay);
    return ret;
  }

  base = absolute (overlay);
  if (base == NULL)
    return NULL;
  slash = strrchr (base, '/');
  if (asprintf (&ret, "%.*s/%s", (int) (slash - base), base, backing) == -1) {
    vmferry_set_error_errno (ENOMEM, "%s", overlay);
    return NULL;
  }
  if (strlen (ret) >= PATH_MAX) {
    free (ret);
    vmferry_set_error_errno (ENAMETOOLONG, "%s: backing file '%s'",
                             overlay, backing);
    return NULL;
  }
  return ret;
}

void
vmferry_qcow2_chain_free (struct vmferry_qcow2_link *chain, size_t n)
{
  if (chain == NULL)
    return;
  for (size_t i = 0; i < n; i++) {
    free (chain[i].path);
    free (chain[i].format);
    free (chain[i].backing_name);
  }
  free (chain);
}

int
vmferry_qcow2_chain (const char *path, const char *format,
                     struct vmferry_qcow2_link **chain_rtn, size_t *n_rtn)
{
  struct vmferry_qcow2_link *chain = NULL;
  size_t n = 0;
  struct { dev_t dev; ino_t ino; } seen[VMFERRY_QCOW2_MAX_CHAIN];
  CLEANUP_FREE char *cur = NULL;
  char fmt[sizeof ((struct vmferry_qcow2_info *) 0)->backing_format] = "";
  bool probe;

  if (path == NULL || *path == '\0') {
    vmferry_set_error_errno (EINVAL, "qcow2 chain");
    return -1;
  }
  cur = absolute (path);
  if (cur == NULL)
    return -1;
  probe = format == NULL;
  if (format && snprintf (fmt, sizeof fmt, "%s", format) >= (int) sizeof fmt) {
    vmferry_set_error ("%s: format '%s' is not supported (only qcow2 and raw)",
                       path, format);
    return -1;
  }
  chain = calloc (VMFERRY_QCOW2_MAX_CHAIN, sizeof *chain);
  if (chain == NULL) {
    vmferry_set_error_errno (errno, "%s: backing chain", path);
    return -1;
  }

  for (;;) {
    CLEANUP_CLOSE int fd = -1;
    struct vmferry_qcow2_info info;
    struct vmferry_qcow2_link *link;
    struct stat st;
    int r = 0;

    if (n == VMFERRY_QCOW2_MAX_CHAIN) {
      vmferry_set_error ("%s: backing chain is longer than %d images",
                         path, VMFERRY_QCOW2_MAX_CHAIN);
      goto error;
    }
    if (!probe && strcmp (fmt, "qcow2") != 0 && strcmp (fmt, "raw") != 0) {
      vmferry_set_error ("%s: format '%s' is not supported (only qcow2 and "
                         "raw)", cur, fmt);
      goto error;
    }
    fd = open (cur, O_RDONLY | O_CLOEXEC);
    if (fd == -1 || fstat (fd, &st) == -1) {
      vmferry_set_error_errno (errno, "%s: cannot open", cur);
      goto error;
    }
    for (size_t i = 0; i < n; i++)
      if (seen[i].dev == st.st_dev && seen[i].ino == st.st_ino) {
        vmferry_set_error ("%s: backing chain loops: %s is %s again",
                           path, cur, chain[i].path);
        goto error;
      }
    seen[n].dev = st.st_dev;
    seen[n].ino = st.st_ino;

    /* A raw image's first bytes are guest data: never read as a header. */
    if (probe || strcmp (fmt, "qcow2") == 0) {
      r = vmferry_qcow2_probe (fd, cur, &info);
      if (r == -1)
        goto error;
      if (r == 0 && !probe) {
        vmferry_set_error ("%s: not a qcow2 image, but %s says it is", cur,
                           n == 0 ? "the caller" : chain[n - 1].path);
        goto error;
      }
    }

    link = &chain[n++];
    link->path = cur;
    cur = NULL;
    link->format = strdup (r == 1 ? "qcow2" : "raw");
    link->format_probed = probe;
    link->backing_name = strdup (r == 1 ? info.backing_file : "");
    if (link->format == NULL || link->backing_name == NULL) {
      vmferry_set_error_errno (ENOMEM, "%s", link->path);
      goto error;
    }
    if (r == 0)
      break;
    link->virtual_size = info.virtual_size;
    if (vmferry_qcow2_check_carriable (&info, link->path) == -1)
      goto error;
    if (!info.has_backing)
      break;
    cur = vmferry_qcow2_backing_path (link->path, info.backing_file);
    if (cur == NULL)
      goto error;
    probe = info.backing_format[0] == '\0';
    memcpy (fmt, info.backing_format, sizeof fmt);
  }

  *chain_rtn = chain;
  *n_rtn = n;
  return 0;

 error:
  vmferry_qcow2_chain_free (chain, n);
  return -1;
}
