/* vmferry: a directory made by hand, read as a stream (see
 * import-dir.h).
 *
 * vmferry_dir_open plans the whole directory first (the XML, every file
 * opened and checked, the manifest made), so that every refusal comes
 * before the first record; then each read makes the next records into a
 * buffer, as formats/tar.c does for an archive.
 */
#include "config.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "digest.h"
#include "domain.h"
#include "error.h"
#include "extent.h"
#include "full-rw.h"
#include "import-dir.h"
#include "log.h"
#include "manifest.h"
#include "names.h"
#include "qcow2.h"
#include "stream.h"
#include "tar.h"

/* The XML of an unpacked vmferry archive (formats/tar.h). */
#define ARCHIVE_XML ".vmferry/domain.xml"

/* The directories below libvirt's per-UUID TPM state that hold state. */
static const char *const tpm_dirs[] = { "tpm2", "tpm1.2" };

struct dir_file {
  int fd;                       /* in a directory */
  ssize_t entry;                /* in a tar made by hand, else -1 */
  int role;                     /* VMFERRY_ROLE_* (domain.h) */
  char *name;                   /* in DIR: a component, or for TPM state
                                 * a relative path */
  char *source_path;            /* as the XML has it */
  char *target, *format, *backing_format;
  int backing;                  /* index, or -1 */
  bool readonly;
  dev_t dev;
  ino_t ino;
  struct timespec mtime;
  uint64_t size, virtual_size, allocated;
};

enum dir_state { DS_HEADER, DS_FILE, DS_DATA, DS_DONE };

struct vmferry_dir_reader {
  char *path;                   /* DIR, absolute; or the archive's name */
  int dfd;                      /* -1 for an archive */
  struct vmferry_tar_plain *tar;        /* a tar made by hand, or NULL */
  char *root;                   /* its directory holding the XML, or "" */
  const char *kind;             /* "directory" or "archive" */
  char *xml;
  char *manifest;
  struct dir_file *files;
  size_t nr_files;
  struct vmferry_stream_writer *w;      /* makes the records */
  unsigned char *out;           /* records made, not yet read */
  size_t out_pos, out_len;
  unsigned char *buf;           /* a chunk of the current file */
  struct vmferry_digest *digest;
  enum dir_state st;
  uint32_t file;
  uint64_t pos, ext_end;        /* in the current file */
  /* An archive's data: d->buf is the window of VMFERRY_CHUNK_SIZE at
   * win, zero but [lo, hi); a block of libarchive's not yet taken.
   */
  uint64_t win, lo, hi;
  bool win_used, eof;
  const unsigned char *blk;
  size_t blk_len;
  uint64_t blk_off;
  bool failed;
  struct vmferry_saved_error error;
};

/* ---- opening files in DIR ---- */

/* A file of what the plan reads: open in the directory, or an entry of
 * the archive.
 */
struct src {
  int fd;
  ssize_t entry;
};

static void
src_close (struct src *s)
{
  if (s->fd >= 0)
    close (s->fd);
  s->fd = -1;
}

#define CLEANUP_SRC __attribute__ ((cleanup (src_close)))

/* Open NAME (a component, or a relative path of components that names
 * checked) below directory fd DFD for reading: no component a link,
 * the file regular with one link, checked before it is opened (a FIFO
 * would block, a device could act on open) and again after.  Returns
 * the fd, or -1 with the error set (errno ENOENT when nothing is there).
 */
static int
open_below (const struct vmferry_dir_reader *d, const char *name)
{
  CLEANUP_FREE char *copy = strdup (name);
  CLEANUP_CLOSE int cur = -1;
  char *leaf, *slash;
  struct stat st, st2;
  int fd;

  if (copy == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", d->path);
    return -1;
  }
  leaf = copy;
  while ((slash = strchr (leaf, '/')) != NULL) {
    int next;

    *slash = '\0';
    next = openat (cur >= 0 ? cur : d->dfd, leaf,
                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      int e = errno;
      vmferry_set_error_errno (e == ELOOP || e == ENOTDIR ? EINVAL : e,
                               "%s/%s: %s", d->path, name,
                               e == ELOOP || e == ENOTDIR
                               ? "a component is a link or no directory"
                               : "cannot open");
      return -1;
    }
    if (cur >= 0)
      close (cur);
    cur = next;
    leaf = slash + 1;
  }
  if (fstatat (cur >= 0 ? cur : d->dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    vmferry_set_error_errno (errno, "%s/%s", d->path, name);
    return -1;
  }
  if (S_ISLNK (st.st_mode)) {
    vmferry_set_error ("%s/%s: a symbolic link (links are not followed: "
                       "copy the file itself into the directory)", d->path,
                       name);
    return -1;
  }
  if (!S_ISREG (st.st_mode)) {
    vmferry_set_error ("%s/%s: not a regular file (a FIFO, a socket, a "
                       "device or a directory has no place here)", d->path,
                       name);
    return -1;
  }
  if (st.st_nlink != 1) {
    vmferry_set_error ("%s/%s: has %ju links (a hard link may be a file "
                       "outside the directory: copy it instead)", d->path,
                       name, (uintmax_t) st.st_nlink);
    return -1;
  }
  fd = openat (cur >= 0 ? cur : d->dfd, leaf,
               O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    vmferry_set_error_errno (errno, "%s/%s", d->path, name);
    return -1;
  }
  if (fstat (fd, &st2) < 0 || !S_ISREG (st2.st_mode) ||
      st2.st_dev != st.st_dev || st2.st_ino != st.st_ino ||
      st2.st_nlink != 1) {
    vmferry_set_error ("%s/%s: changed while it was opened", d->path, name);
    close (fd);
    return -1;
  }
  return fd;
}

/* NAME below the archive's root (the XML's directory in it).  The
 * caller frees it.
 */
static char *
tar_name (const struct vmferry_dir_reader *d, const char *name)
{
  char *full;

  if (asprintf (&full, "%s%s%s", d->root, d->root[0] ? "/" : "", name) < 0) {
    vmferry_set_error_errno (ENOMEM, "%s", d->path);
    return NULL;
  }
  return full;
}

/* Open NAME as open_below does, or find it in the archive (whose index
 * refused links, devices and FIFOs already).  0, or -1 with the error
 * set (errno ENOENT when nothing is there).
 */
static int
src_open (const struct vmferry_dir_reader *d, const char *name,
          struct src *s)
{
  CLEANUP_FREE char *full = NULL;
  ssize_t i;

  s->fd = -1;
  s->entry = -1;
  if (d->tar == NULL) {
    s->fd = open_below (d, name);
    return s->fd < 0 ? -1 : 0;
  }
  full = tar_name (d, name);
  if (full == NULL)
    return -1;
  i = vmferry_tar_plain_find (d->tar, full);
  if (i < 0) {
    vmferry_set_error_errno (ENOENT, "%s: archive: no entry %s", d->path,
                             full);
    return -1;
  }
  if (vmferry_tar_plain_entry (d->tar, i)->dir) {
    vmferry_set_error ("%s: archive: entry %s: not a regular file (a "
                       "directory has no place here)", d->path, full);
    return -1;
  }
  s->entry = i;
  return 0;
}

/* Whether something is named NAME (a link or any kind of file). */
static bool
src_exists (const struct vmferry_dir_reader *d, const char *name)
{
  CLEANUP_FREE char *full = NULL;

  if (d->tar == NULL)
    return !(faccessat (d->dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
             errno == ENOENT);
  full = tar_name (d, name);
  return full == NULL || vmferry_tar_plain_find (d->tar, full) >= 0;
}

/* vmferry_qcow2_probe of S: an entry's first bytes through a memory
 * file, which the header's parser reads as it reads any file.
 */
static int
src_probe (const struct vmferry_dir_reader *d, const struct src *s,
           const char *label, struct vmferry_qcow2_info *info)
{
  const struct vmferry_tar_plain_entry *e;
  CLEANUP_CLOSE int fd = -1;

  if (s->entry < 0)
    return vmferry_qcow2_probe (s->fd, label, info);
  e = vmferry_tar_plain_entry (d->tar, s->entry);
  fd = memfd_create ("vmferry-head", MFD_CLOEXEC);
  if (fd < 0 || vmferry_pwrite_full (fd, label, e->head, e->head_len, 0) < 0) {
    if (fd < 0)
      vmferry_set_error_errno (errno, "%s: memfd_create", label);
    return -1;
  }
  return vmferry_qcow2_probe (fd, label, info);
}

/* ---- the plan ---- */

static void
file_clear (struct dir_file *f)
{
  if (f->fd >= 0)
    close (f->fd);
  free (f->name);
  free (f->source_path);
  free (f->target);
  free (f->format);
  free (f->backing_format);
}

static int
plan_find (const struct vmferry_dir_reader *d, const struct src *s)
{
  struct stat st;

  if (s->entry >= 0) {
    for (size_t i = 0; i < d->nr_files; i++)
      if (d->files[i].entry == s->entry)
        return (int) i;
    return -1;
  }
  if (fstat (s->fd, &st) == 0)
    for (size_t i = 0; i < d->nr_files; i++)
      if (d->files[i].dev == st.st_dev && d->files[i].ino == st.st_ino)
        return (int) i;
  return -1;
}

/* Append the file S (its fd taken) as NAME.  Returns its index. */
static int
plan_add (struct vmferry_dir_reader *d, struct src *s, int role,
          const char *name, const char *source_path, const char *format)
{
  struct dir_file *f;
  struct stat st;
  void *p;

  for (size_t i = 0; i < d->nr_files; i++)
    if (strcmp (d->files[i].name, name) == 0) {
      vmferry_set_error ("%s/%s: named twice (two paths of the domain XML "
                         "have the same base name)", d->path, name);
      return -1;
    }
  if (d->nr_files >= VMFERRY_MAX_FILES) {
    vmferry_set_error ("%s: too many files (the limit is %d)", d->path,
                       VMFERRY_MAX_FILES);
    return -1;
  }
  p = realloc (d->files, (d->nr_files + 1) * sizeof *d->files);
  if (p == NULL)
    goto nomem;
  d->files = p;
  f = &d->files[d->nr_files++];
  memset (f, 0, sizeof *f);
  f->fd = s->fd;
  s->fd = -1;
  f->entry = s->entry;
  f->role = role;
  f->backing = -1;
  f->name = strdup (name);
  f->source_path = strdup (source_path);
  f->format = strdup (format);
  if (!f->name || !f->source_path || !f->format)
    goto nomem;
  /* An entry is known by the archive's identity and its place in it. */
  if (fstat (f->entry >= 0 ? vmferry_tar_plain_fd (d->tar) : f->fd,
             &st) < 0) {
    vmferry_set_error_errno (errno, "%s/%s: stat", d->path, name);
    return -1;
  }
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->mtime = st.st_mtim;
  if (f->entry >= 0) {
    const struct vmferry_tar_plain_entry *e =
      vmferry_tar_plain_entry (d->tar, f->entry);
    f->size = e->size;
    f->allocated = e->allocated;
  }
  else if (vmferry_file_size (f->fd, name, &f->size) < 0 ||
           vmferry_allocated_bytes (f->fd, &f->allocated) < 0)
    return -1;
  f->virtual_size = f->size;
  return (int) d->nr_files - 1;
 nomem:
  vmferry_set_error_errno (ENOMEM, "%s", d->path);
  return -1;
}

/* The base name of PATH, a path from the domain XML, as a name in DIR.
 * A ".." component anywhere is refused: the base name of such a path is
 * not the file it names.  NULL with the error set.
 */
static const char *
xml_base_name (const struct vmferry_dir_reader *d, const char *path)
{
  const char *base = strrchr (path, '/');

  base = base ? base + 1 : path;
  for (const char *s = path; (s = strstr (s, "..")) != NULL; s += 2)
    if ((s == path || s[-1] == '/') && (s[2] == '/' || s[2] == '\0')) {
      vmferry_set_error ("%s: the domain XML names %s: a path with \"..\" "
                         "is refused", d->path, path);
      return NULL;
    }
  if (!vmferry_name_ok (base, 0)) {
    vmferry_set_error ("%s: the domain XML names %s: its base name cannot "
                       "be a file of the directory", d->path, path);
    return NULL;
  }
  return base;
}

/* Add image NAME of FORMAT and, for qcow2, its backing chain before it,
 * each beside it in DIR.  SOURCE_PATH: the XML's path for it.  Returns
 * its index, or -1 (ENOENT in the error when it is not there).
 */
static int
plan_add_image (struct vmferry_dir_reader *d, const char *name,
                const char *source_path, const char *format, int role,
                unsigned depth)
{
  CLEANUP_SRC struct src src = { -1, -1 };
  struct vmferry_qcow2_info info;
  CLEANUP_FREE char *label = NULL;
  int idx, backing = -1, r;
  bool qcow2;

  if (format == NULL)
    format = "raw";             /* libvirt's default: never probed */
  qcow2 = strcmp (format, "qcow2") == 0;
  if (!qcow2 && strcmp (format, "raw") != 0) {
    vmferry_set_error ("%s/%s: format %s: only raw and qcow2 are imported",
                       d->path, name, format);
    return -1;
  }
  if (depth > VMFERRY_QCOW2_MAX_CHAIN) {
    vmferry_set_error ("%s/%s: backing chain longer than %d files", d->path,
                       name, VMFERRY_QCOW2_MAX_CHAIN);
    return -1;
  }
  if (src_open (d, name, &src) < 0)
    return -1;
  idx = plan_find (d, &src);
  if (idx >= 0)
    return idx;                 /* a base two overlays share */
  if (asprintf (&label, "%s/%s", d->path, name) < 0) {
    vmferry_set_error_errno (ENOMEM, "%s", d->path);
    return -1;
  }
  memset (&info, 0, sizeof info);
  if (qcow2) {
    r = src_probe (d, &src, label, &info);
    if (r < 0)
      return -1;
    if (r == 0) {
      vmferry_set_error ("%s: the domain XML says qcow2, but it is not a "
                         "qcow2 image", label);
      return -1;
    }
    if (vmferry_qcow2_check_carriable (&info, label) < 0)
      return -1;
    if (info.has_backing) {
      CLEANUP_FREE char *bsource = NULL;
      const char *bname;

      /* Found by base name, as the XML's paths are (the header of a
       * copied overlay still names the base where it was); a protocol,
       * a ".." or a name not in the directory is outside it.
       */
      bsource = vmferry_qcow2_backing_path (label, info.backing_file);
      if (bsource == NULL)
        return -1;
      bname = xml_base_name (d, bsource);
      if (bname == NULL || !src_exists (d, bname)) {
        vmferry_set_error ("%s: backing file %s is outside the %s (copy it "
                           "beside the image)", label, info.backing_file,
                           d->kind);
        return -1;
      }
      if (info.backing_format[0] == '\0') {
        vmferry_set_error ("%s: backing file %s has no recorded format "
                           "(set one with qemu-img rebase -u -F FORMAT)",
                           label, info.backing_file);
        return -1;
      }
      backing = plan_add_image (d, bname, bsource,
                                info.backing_format, VMFERRY_ROLE_BACKING,
                                depth + 1);
      if (backing < 0) {
        vmferry_prefix_error ("%s: backing file", label);
        return -1;
      }
    }
  }
  idx = plan_add (d, &src, role, name, source_path, format);
  if (idx >= 0 && qcow2) {
    struct dir_file *f = &d->files[idx];
    f->virtual_size = info.virtual_size;
    f->backing = backing;
    if (backing >= 0 && !(f->backing_format = strdup (info.backing_format))) {
      vmferry_set_error_errno (ENOMEM, "%s", label);
      return -1;
    }
  }
  return idx;
}

/* The regular files below REL (a directory of TPM state in DIR). */
static int
plan_add_tpm_dir (struct vmferry_dir_reader *d, const char *rel,
                  unsigned depth)
{
  CLEANUP_CLOSE int dfd = -1;
  struct dirent *e;
  DIR *dir;
  int r = 0;

  if (depth > VMFERRY_NAME_MAX_PARTS - 1) {
    vmferry_set_error ("%s/%s: TPM state nested too deep", d->path, rel);
    return -1;
  }
  /* Every component: no link, no '.' first, nothing but directories. */
  if (!vmferry_name_relpath_ok (rel, VMFERRY_NAME_MAX_PARTS, 0)) {
    vmferry_set_error ("%s/%s: not a name TPM state may have", d->path, rel);
    return -1;
  }
  dfd = openat (d->dfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                O_CLOEXEC);
  if (dfd < 0) {
    vmferry_set_error_errno (errno, "%s/%s: TPM state", d->path, rel);
    return -1;
  }
  dir = fdopendir (dfd);
  if (dir == NULL) {
    vmferry_set_error_errno (errno, "%s/%s", d->path, rel);
    return -1;
  }
  dfd = -1;                     /* the DIR owns it */
  while (r == 0 && (errno = 0, e = readdir (dir)) != NULL) {
    CLEANUP_FREE char *name = NULL;
    struct stat st;

    if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
      continue;
    if (asprintf (&name, "%s/%s", rel, e->d_name) < 0) {
      vmferry_set_error_errno (ENOMEM, "%s", d->path);
      r = -1;
    }
    /* swtpm's lock is a dot file, and no state. */
    else if (e->d_name[0] == '.')
      continue;
    else if (fstatat (dirfd (dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      vmferry_set_error_errno (errno, "%s/%s", d->path, name);
      r = -1;
    }
    else if (S_ISDIR (st.st_mode))
      r = plan_add_tpm_dir (d, name, depth + 1);
    else if (!vmferry_name_relpath_ok (name, VMFERRY_NAME_MAX_PARTS, 0)) {
      vmferry_set_error ("%s/%s: not a name TPM state may have", d->path,
                         name);
      r = -1;
    }
    else {
      /* Anything else is refused there, with its reason. */
      CLEANUP_FREE char *source = NULL;
      CLEANUP_SRC struct src src = { -1, -1 };
      if (src_open (d, name, &src) < 0 ||
          asprintf (&source, "%s/%s", d->path, name) < 0)
        r = -1;
      else if (plan_add (d, &src, VMFERRY_ROLE_TPM, name, source, "raw") < 0)
        r = -1;
    }
  }
  if (r == 0 && errno != 0) {
    vmferry_set_error_errno (errno, "%s/%s: readdir", d->path, rel);
    r = -1;
  }
  closedir (dir);
  return r;
}

/* The TPM state in an archive: its regular entries below tpm2/ and
 * tpm1.2/ of the root, as plan_add_tpm_dir takes them from a directory.
 */
static int
plan_add_tpm_tar (struct vmferry_dir_reader *d)
{
  size_t rootlen = strlen (d->root) + (d->root[0] ? 1 : 0);

  for (size_t i = 0; i < vmferry_tar_plain_count (d->tar); i++) {
    const struct vmferry_tar_plain_entry *e =
      vmferry_tar_plain_entry (d->tar, i);
    const char *rel = e->name + rootlen, *leaf;
    CLEANUP_FREE char *source = NULL;
    CLEANUP_SRC struct src src = { -1, -1 };
    bool state = false;

    if (e->dir || strlen (e->name) <= rootlen ||
        strncmp (e->name, d->root, rootlen - (d->root[0] ? 1 : 0)) != 0 ||
        (d->root[0] && e->name[rootlen - 1] != '/'))
      continue;
    for (size_t k = 0; k < sizeof tpm_dirs / sizeof *tpm_dirs; k++)
      if (strncmp (rel, tpm_dirs[k], strlen (tpm_dirs[k])) == 0 &&
          rel[strlen (tpm_dirs[k])] == '/')
        state = true;
    leaf = strrchr (rel, '/');
    /* swtpm's lock is a dot file, and no state. */
    if (!state || leaf[1] == '.')
      continue;
    if (!vmferry_name_relpath_ok (rel, VMFERRY_NAME_MAX_PARTS, 0)) {
      vmferry_set_error ("%s: archive: entry %s: not a name TPM state may "
                         "have", d->path, e->name);
      return -1;
    }
    if (src_open (d, rel, &src) < 0 ||
        asprintf (&source, "%s/%s", d->path, e->name) < 0 ||
        plan_add (d, &src, VMFERRY_ROLE_TPM, rel, source, "raw") < 0)
      return -1;
  }
  return 0;
}

/* The TPM state directories present in DIR. */
static int
plan_add_tpm (struct vmferry_dir_reader *d)
{
  if (d->tar)
    return plan_add_tpm_tar (d);
  for (size_t i = 0; i < sizeof tpm_dirs / sizeof *tpm_dirs; i++) {
    struct stat st;

    if (fstatat (d->dfd, tpm_dirs[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT)
        continue;
      vmferry_set_error_errno (errno, "%s/%s", d->path, tpm_dirs[i]);
      return -1;
    }
    if (!S_ISDIR (st.st_mode)) {
      vmferry_set_error ("%s/%s: TPM state must be a directory (not a link "
                         "or anything else)", d->path, tpm_dirs[i]);
      return -1;
    }
    if (plan_add_tpm_dir (d, tpm_dirs[i], 0) < 0)
      return -1;
  }
  return 0;
}

/* The domain XML's name in DIR: NAME, or found as import-dir.h says.
 * The caller frees it.
 */
static char *
find_xml (const struct vmferry_dir_reader *d, const char *name)
{
  CLEANUP_FREE char *found = NULL;
  struct dirent *e;
  size_t n = 0;
  DIR *dir;
  int fd;

  if (name) {
    if (!vmferry_name_ok (name, VMFERRY_NAME_HIDDEN_OK)) {
      vmferry_set_error ("--xml=%s: not a file name in %s", name, d->path);
      return NULL;
    }
    return strdup (name);
  }
  fd = openat (d->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || (dir = fdopendir (fd)) == NULL) {
    vmferry_set_error_errno (errno, "%s", d->path);
    if (fd >= 0)
      close (fd);
    return NULL;
  }
  while ((errno = 0, e = readdir (dir)) != NULL) {
    size_t len = strlen (e->d_name);

    if (e->d_name[0] == '.' || len < 5 ||
        strcmp (e->d_name + len - 4, ".xml") != 0)
      continue;
    if (n++ == 0)
      found = strdup (e->d_name);
    else {
      vmferry_set_error ("%s: holds more than one *.xml (%s, %s): name the "
                         "domain's with --xml=NAME", d->path, found,
                         e->d_name);
      closedir (dir);
      return NULL;
    }
  }
  if (errno != 0) {
    vmferry_set_error_errno (errno, "%s: readdir", d->path);
    closedir (dir);
    return NULL;
  }
  closedir (dir);
  if (n == 1) {
    char *r = found;
    found = NULL;
    return r;
  }
  if (faccessat (d->dfd, ARCHIVE_XML, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
    return strdup (ARCHIVE_XML);
  vmferry_set_error ("%s: no domain XML (*.xml, or " ARCHIVE_XML " of an "
                     "unpacked vmferry archive): write one with virsh dumpxml",
                     d->path);
  return NULL;
}

/* The domain XML of an archive: the only *.xml at its top or in one
 * directory (its root then: the directory the XML's files are in, as
 * for --from-dir), or XML_NAME.  Sets d->root; returns the XML's name
 * below it, which the caller frees.
 */
static char *
find_xml_tar (struct vmferry_dir_reader *d, const char *xml_name)
{
  const char *found = NULL, *slash;
  size_t n = vmferry_tar_plain_count (d->tar);

  for (size_t i = 0; i < n; i++) {
    const struct vmferry_tar_plain_entry *e =
      vmferry_tar_plain_entry (d->tar, i);
    const char *base = strrchr (e->name, '/');

    base = base ? base + 1 : e->name;
    if (e->dir ||
        (xml_name ? strcmp (base, xml_name) != 0
         : base[0] == '.' || strlen (base) < 5 ||
           strcmp (base + strlen (base) - 4, ".xml") != 0) ||
        (base != e->name && strchr (e->name, '/') != base - 1))
      continue;
    if (found) {
      vmferry_set_error ("%s: holds more than one %s (%s, %s)%s", d->path,
                         xml_name ? xml_name : "*.xml", found, e->name,
                         xml_name ? "" : ": unpack it with tar -xSf and name "
                         "the domain's with --from-dir --xml=NAME");
      return NULL;
    }
    found = e->name;
  }
  if (found == NULL) {
    vmferry_set_error ("%s: no domain XML (%s at the archive's top or in "
                       "one directory): write one with virsh dumpxml",
                       d->path, xml_name ? xml_name : "*.xml");
    return NULL;
  }
  slash = strchr (found, '/');
  free (d->root);
  d->root = strndup (found, slash ? (size_t) (slash - found) : 0);
  if (d->root == NULL)
    return NULL;
  return strdup (slash ? slash + 1 : found);
}

/* Read the domain XML into d->xml. */
static int
read_xml (struct vmferry_dir_reader *d, const char *xml_name)
{
  CLEANUP_FREE char *name = d->tar ? find_xml_tar (d, xml_name)
                                   : find_xml (d, xml_name);
  CLEANUP_SRC struct src src = { -1, -1 };
  const struct vmferry_tar_plain_entry *e = NULL;
  uint64_t size;

  if (name == NULL) {
    if (vmferry_get_error ()[0] == '\0')
      vmferry_set_error_errno (ENOMEM, "%s", d->path);
    return -1;
  }
  if (src_open (d, name, &src) < 0)
    return -1;
  if (src.entry >= 0) {
    e = vmferry_tar_plain_entry (d->tar, src.entry);
    size = e->size;
  }
  else if (vmferry_file_size (src.fd, name, &size) < 0)
    return -1;
  if (size > VMFERRY_MAX_METADATA) {
    vmferry_set_error ("%s/%s: larger than %d bytes", d->path, name,
                       VMFERRY_MAX_METADATA);
    return -1;
  }
  d->xml = malloc (size + 1);
  if (d->xml == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", d->path);
    return -1;
  }
  if (e) {
    assert (e->head_len == size);       /* all of a *.xml is kept */
    memcpy (d->xml, e->head, size);
  }
  else if (vmferry_pread_full (src.fd, name, d->xml, size, 0) < 0)
    return -1;
  d->xml[size] = '\0';
  if (strlen (d->xml) != size) {
    vmferry_set_error ("%s/%s: holds a NUL byte: not a domain XML", d->path,
                       name);
    return -1;
  }
  vmferry_verbose ("%s: domain XML %s", d->path, name);
  return 0;
}

/* "disk vda" and the like, for messages. */
static void
df_label (const struct vmferry_domain_file *df, char *buf, size_t len)
{
  if (df->role == VMFERRY_ROLE_NVRAM)
    snprintf (buf, len, "NVRAM");
  else
    snprintf (buf, len, "disk %s", df->target ? df->target : "?");
}

/* Every file the XML names, found in DIR. */
static int
plan_files (struct vmferry_dir_reader *d, xmlDocPtr doc)
{
  struct vmferry_domain_file *df = NULL;
  size_t n = 0;
  bool tpm = false;
  int r = 0;

  if (vmferry_domain_files (doc, false, &df, &n) < 0)
    return -1;
  for (size_t i = 0; r == 0 && i < n; i++) {
    const char *base;
    char label[64];
    int idx;

    df_label (&df[i], label, sizeof label);
    /* The chain is the qcow2 headers' (the XML's is a note), as on
     * export.
     */
    if (df[i].role == VMFERRY_ROLE_BACKING)
      continue;
    if (df[i].role == VMFERRY_ROLE_TPM) {
      if (df[i].path) {
        vmferry_set_error ("%s: TPM state in %s: only libvirt's per-UUID "
                           "state directory is supported", d->path,
                           df[i].path);
        r = -1;
      }
      else if (!tpm) {
        tpm = true;
        r = plan_add_tpm (d);
      }
      continue;
    }
    if (df[i].pool) {
      vmferry_set_error ("%s: %s: a volume of pool %s: --from-dir takes "
                         "disks of type file or block (make the XML name "
                         "the image's path)", d->path, label, df[i].pool);
      r = -1;
      continue;
    }
    base = xml_base_name (d, df[i].path);
    if (base == NULL) {
      vmferry_prefix_error ("%s", label);
      r = -1;
      continue;
    }
    if (df[i].role == VMFERRY_ROLE_NVRAM) {
      CLEANUP_SRC struct src src = { -1, -1 };
      int o = src_open (d, base, &src);
      if (o < 0 && vmferry_get_errno () == ENOENT) {
        /* libvirt makes it from its template at the first start. */
        vmferry_verbose ("%s: NVRAM %s not there: not carried", d->path,
                         base);
        continue;
      }
      if (o < 0 || plan_add (d, &src, VMFERRY_ROLE_NVRAM, base, df[i].path,
                              "raw") < 0) {
        vmferry_prefix_error ("NVRAM");
        r = -1;
      }
      continue;
    }
    if (!src_exists (d, base)) {
      vmferry_set_error ("%s: the domain XML names %s, and the %s has no "
                         "%s/%s%s%s", label, df[i].path, d->kind, d->path,
                         d->root && d->root[0] ? d->root : "",
                         d->root && d->root[0] ? "/" : "", base);
      r = -1;
      continue;
    }
    idx = plan_add_image (d, base, df[i].path, df[i].format,
                          VMFERRY_ROLE_DISK, 0);
    if (idx < 0) {
      vmferry_prefix_error ("%s", label);
      r = -1;
      continue;
    }
    d->files[idx].role = VMFERRY_ROLE_DISK;
    d->files[idx].readonly = df[i].readonly;
    if (df[i].target && !d->files[idx].target &&
        !(d->files[idx].target = strdup (df[i].target))) {
      vmferry_set_error_errno (ENOMEM, "%s", d->path);
      r = -1;
    }
  }
  vmferry_domain_files_free (df, n);
  return r;
}

/* The manifest of the plan (manifest.h), as export.c makes one. */
static int
make_manifest (struct vmferry_dir_reader *d, const char *name,
               const char *uuid)
{
  struct vmferry_manifest m = { .version = VMFERRY_MANIFEST_VERSION };
  char created[64], tool[] = PACKAGE_NAME " " PACKAGE_VERSION;
  char (*idents)[96];
  time_t now = time (NULL);
  struct tm tm;

  strftime (created, sizeof created, "%Y-%m-%dT%H:%M:%SZ",
            gmtime_r (&now, &tm));
  m.tool = tool;
  m.created = created;
  m.domain_name = (char *) name;
  m.domain_uuid = (char *) uuid;
  m.nr_files = d->nr_files;
  m.files = calloc (d->nr_files ? d->nr_files : 1, sizeof *m.files);
  idents = calloc (d->nr_files ? d->nr_files : 1, sizeof *idents);
  if (m.files == NULL || idents == NULL) {
    free (m.files);
    free (idents);
    vmferry_set_error_errno (ENOMEM, "manifest");
    return -1;
  }
  for (size_t i = 0; i < d->nr_files; i++) {
    const struct dir_file *f = &d->files[i];
    struct vmferry_manifest_file *mf = &m.files[i];

    /* What resume compares: another copy of the file is another id. */
    snprintf (idents[i], sizeof idents[i],
              "ino:%ju mtime:%jd.%09ld size:%" PRIu64, (uintmax_t) f->ino,
              (intmax_t) f->mtime.tv_sec, f->mtime.tv_nsec, f->size);
    mf->index = (uint32_t) i;
    mf->role = (enum vmferry_manifest_role) f->role;
    mf->name = f->name;
    mf->source_path = f->source_path;
    mf->target = f->target;
    mf->format = f->format;
    mf->size = f->size;
    mf->has_virtual_size = true;
    mf->virtual_size = f->virtual_size;
    mf->allocated = f->allocated;
    mf->backing = f->backing;
    mf->backing_format = f->backing >= 0 ? f->backing_format : NULL;
    mf->readonly = f->readonly;
    mf->source_identity = idents[i];
  }
  d->manifest = vmferry_manifest_to_json (&m);
  free (m.files);
  free (idents);
  if (d->manifest == NULL) {
    vmferry_prefix_error ("%s", d->path);
    return -1;
  }
  return 0;
}

static int
plan (struct vmferry_dir_reader *d, const char *xml_name)
{
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  CLEANUP_FREE char *name = NULL, *uuid = NULL;
  char canon[37];

  if (read_xml (d, xml_name) < 0)
    return -1;
  doc = vmferry_domain_parse (d->xml, strlen (d->xml), "domain XML");
  if (doc == NULL) {
    vmferry_prefix_error ("%s", d->path);
    return -1;
  }
  name = vmferry_domain_get_name (doc);
  uuid = vmferry_domain_get_uuid (doc);
  if (name == NULL || uuid == NULL ||
      vmferry_uuid_canonical (uuid, canon) < 0) {
    if (uuid && name)
      vmferry_set_error ("domain XML: <uuid> %s is not a UUID", uuid);
    vmferry_prefix_error ("%s", d->path);
    return -1;
  }
  if (plan_files (d, doc) < 0)
    return -1;
  return make_manifest (d, name, canon);
}

/* ---- the records ---- */

static int
collect (void *opaque, const struct iovec *iov, int iovcnt)
{
  struct vmferry_dir_reader *d = opaque;

  for (int i = 0; i < iovcnt; i++) {
    memcpy (d->out + d->out_len, iov[i].iov_base, iov[i].iov_len);
    d->out_len += iov[i].iov_len;
  }
  return 0;
}

/* The next piece of an archive's entry: whole blocks, in d->buf at
 * *START_RTN - d->win, zero where the entry has holes.  1, 0 at its end
 * (no piece), -1.
 */
static int
tar_piece (struct vmferry_dir_reader *d, uint64_t size, uint64_t *start_rtn,
           uint64_t *len_rtn)
{
  const uint64_t bs = VMFERRY_BLOCK_SIZE;

  for (;;) {
    uint64_t start, end;
    size_t n;

    if (d->blk_len == 0 && !d->eof) {
      const void *buf = NULL;
      size_t len = 0;
      uint64_t off = 0;
      int r = vmferry_tar_plain_read (d->tar, &buf, &len, &off);

      if (r < 0)
        return -1;
      if (r == 0)
        d->eof = true;
      d->blk = buf;
      d->blk_len = r ? len : 0;
      d->blk_off = off;
      continue;
    }
    if (d->blk_len == 0 ||
        (d->win_used && d->blk_off / VMFERRY_CHUNK_SIZE * VMFERRY_CHUNK_SIZE
                        != d->win)) {
      if (!d->win_used)
        return 0;
      /* The window's blocks from the one holding lo to the one holding
       * hi - 1 (the entry's last may be short).
       */
      start = d->lo / bs * bs;
      end = (d->hi + bs - 1) / bs * bs;
      if (end > size)
        end = size;
      d->win_used = false;
      *start_rtn = start;
      *len_rtn = end - start;
      return 1;
    }
    if (!d->win_used) {
      d->win = d->blk_off / VMFERRY_CHUNK_SIZE * VMFERRY_CHUNK_SIZE;
      d->lo = d->blk_off;
      d->win_used = true;
    }
    n = d->win + VMFERRY_CHUNK_SIZE - d->blk_off;
    if (n > d->blk_len)
      n = d->blk_len;
    memcpy (d->buf + (d->blk_off - d->win), d->blk, n);
    d->hi = d->blk_off + n;
    d->blk += n;
    d->blk_off += n;
    d->blk_len -= n;
  }
}

/* The next piece of the current file (at most a chunk of one extent) as
 * DATA and ZERO records, its blocks into the digest.
 */
static int
data_step (struct vmferry_dir_reader *d)
{
  struct dir_file *f = &d->files[d->file];
  uint64_t bs = VMFERRY_BLOCK_SIZE, len, run;
  unsigned char *buf = d->buf;
  int r;

  if (d->tar) {
    uint64_t start;

    r = tar_piece (d, f->size, &start, &len);
    if (r <= 0) {
      d->pos = f->size;
      return r;
    }
    buf = d->buf + (start - d->win);
    d->pos = start;
    if (vmferry_digest_update (d->digest, d->pos, buf, len) < 0)
      return -1;
    goto records;
  }
  if (d->pos >= d->ext_end) {
    uint64_t start, end;

    r = vmferry_next_data (f->fd, f->name, d->pos, f->size, &start, &end);
    if (r < 0)
      return -1;
    if (r == 0) {
      d->pos = d->ext_end = f->size;
      return 0;
    }
    d->pos = start;
    d->ext_end = end;
  }
  len = d->ext_end - d->pos;
  if (len > VMFERRY_CHUNK_SIZE)
    len = VMFERRY_CHUNK_SIZE;
  if (vmferry_pread_full (f->fd, f->name, d->buf, len, d->pos) < 0 ||
      vmferry_digest_update (d->digest, d->pos, d->buf, len) < 0)
    return -1;
 records:
  /* Runs of data blocks and of zero blocks, a record each: zeros are
   * written as holes (an allocated zero run of the source too).
   */
  for (uint64_t at = 0; at < len; at += run) {
    bool zero = vmferry_is_zero (buf + at, bs < len - at ? bs : len - at);

    for (run = 0; at + run < len; ) {
      uint64_t blen = bs < len - at - run ? bs : len - at - run;
      if (vmferry_is_zero (buf + at + run, blen) != zero)
        break;
      run += blen;
    }
    r = zero ? vmferry_stream_write_zero (d->w, d->file, d->pos + at, run)
             : vmferry_stream_write_data (d->w, d->file, d->pos + at, run, 0,
                                          buf + at, (uint32_t) run);
    if (r < 0)
      return -1;
  }
  if (d->tar)
    memset (buf, 0, len);       /* the window is zero but its data */
  d->pos += len;
  return 0;
}

/* Make the next record(s) into d->out. */
static int
step (struct vmferry_dir_reader *d)
{
  switch (d->st) {
  case DS_HEADER:
    d->st = d->nr_files ? DS_FILE : DS_DONE;
    if (vmferry_stream_write_header_ex (d->w, 0, 0, NULL, 0) < 0 ||
        vmferry_stream_write_manifest (d->w, d->manifest) < 0 ||
        vmferry_stream_write_xml (d->w, d->xml) < 0)
      return -1;
    return d->nr_files ? 0 : vmferry_stream_write_end (d->w, 0);
  case DS_FILE:
    vmferry_digest_free (d->digest);
    if ((d->digest = vmferry_digest_new ()) == NULL) {
      vmferry_set_error_errno (ENOMEM, "%s", d->path);
      return -1;
    }
    d->pos = d->ext_end = 0;
    d->st = DS_DATA;
    if (d->tar) {
      d->blk_len = 0;
      d->eof = d->win_used = false;
      if (vmferry_tar_plain_seek (d->tar, d->files[d->file].entry) < 0)
        return -1;
    }
    return vmferry_stream_write_file_begin (d->w, d->file,
                                            d->files[d->file].size);
  case DS_DATA: {
    unsigned char digest[VMFERRY_DIGEST_SIZE];

    if (d->pos < d->files[d->file].size)
      return data_step (d);
    vmferry_digest_final (d->digest, digest);
    if (vmferry_stream_write_file_end (d->w, d->file, digest) < 0)
      return -1;
    d->file++;
    if (d->file < d->nr_files) {
      d->st = DS_FILE;
      return 0;
    }
    d->st = DS_DONE;
    return vmferry_stream_write_end (d->w, (uint32_t) d->nr_files);
  }
  case DS_DONE:
    return 0;
  }
  return -1;
}

static ssize_t
dir_read (void *opaque, void *buf, size_t len)
{
  struct vmferry_dir_reader *d = opaque;
  size_t n;

  if (d->failed) {
    vmferry_set_error ("cannot read after an earlier error");
    return -1;
  }
  while (d->out_pos == d->out_len) {
    if (d->st == DS_DONE)
      return 0;
    d->out_pos = d->out_len = 0;
    if (step (d) < 0) {
      vmferry_prefix_error ("%s", d->path);
      vmferry_save_error (&d->error);
      d->failed = true;
      return -1;
    }
  }
  n = d->out_len - d->out_pos < len ? d->out_len - d->out_pos : len;
  memcpy (buf, d->out + d->out_pos, n);
  d->out_pos += n;
  return n;
}

void
vmferry_dir_reader_explain (const struct vmferry_dir_reader *d)
{
  if (d && d->failed)
    vmferry_restore_saved_error (&d->error);
}

void
vmferry_dir_reader_free (struct vmferry_dir_reader *d)
{
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->nr_files; i++)
    file_clear (&d->files[i]);
  free (d->files);
  if (d->dfd >= 0)
    close (d->dfd);
  vmferry_stream_writer_free (d->w);
  vmferry_digest_free (d->digest);
  free (d->xml);
  free (d->manifest);
  free (d->out);
  free (d->buf);
  free (d->path);
  free (d->root);
  vmferry_tar_plain_free (d->tar);
  free (d);
}

/* A reader named NAME, its buffers made; NULL with the error set. */
static struct vmferry_dir_reader *
reader_new (const char *name, const char *kind)
{
  struct vmferry_dir_reader *d = calloc (1, sizeof *d);
  /* The most one step makes: a chunk's records, one per block at worst. */
  size_t out_size = VMFERRY_CHUNK_SIZE +
    (VMFERRY_CHUNK_SIZE / VMFERRY_BLOCK_SIZE + 4) * VMFERRY_REC_HEADER_SIZE +
    2 * VMFERRY_MAX_PAYLOAD;

  if (d == NULL || (d->buf = calloc (1, VMFERRY_CHUNK_SIZE)) == NULL ||
      (d->out = malloc (out_size)) == NULL ||
      (d->w = vmferry_stream_writer_new_fn (collect, d, name)) == NULL ||
      (d->root = strdup ("")) == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", name);
    vmferry_dir_reader_free (d);
    return NULL;
  }
  d->dfd = -1;
  d->kind = kind;
  return d;
}

/* Plan D and make the stream reader of its records (D taken). */
static struct vmferry_stream_reader *
reader_start (struct vmferry_dir_reader *d, const char *xml_name,
              struct vmferry_dir_reader **dir_rtn)
{
  struct vmferry_stream_reader *rd;

  if (plan (d, xml_name) < 0) {
    vmferry_dir_reader_free (d);
    return NULL;
  }
  rd = vmferry_stream_reader_new_fn (dir_read, d, d->path);
  if (rd == NULL) {
    vmferry_dir_reader_free (d);
    return NULL;
  }
  /* The records come from this process: their checksums prove nothing. */
  vmferry_stream_reader_trust (rd);
  *dir_rtn = d;
  return rd;
}

struct vmferry_stream_reader *
vmferry_dir_open (const char *dir, const char *xml_name,
                  struct vmferry_dir_reader **dir_rtn)
{
  struct vmferry_dir_reader *d;

  *dir_rtn = NULL;
  d = reader_new (dir, "directory");
  if (d == NULL)
    return NULL;
  d->dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->dfd < 0) {
    int e = errno;
    vmferry_set_error_errno (e, "%s%s", dir, e == ENOTDIR
                             ? ": not a directory (an archive, vmferry's "
                               "or a tar made by hand, imports as FILE)"
                             : "");
    vmferry_dir_reader_free (d);
    return NULL;
  }
  d->path = realpath (dir, NULL);
  if (d->path == NULL) {
    vmferry_set_error_errno (errno, "%s", dir);
    vmferry_dir_reader_free (d);
    return NULL;
  }
  return reader_start (d, xml_name, dir_rtn);
}

struct vmferry_stream_reader *
vmferry_archive_open (int fd, const char *name,
                      struct vmferry_tar_reader **tar_rtn,
                      struct vmferry_dir_reader **dir_rtn)
{
  unsigned char peek[4];
  size_t got;

  *tar_rtn = NULL;
  *dir_rtn = NULL;
  if (vmferry_input_peek (fd, name, peek, &got) < 0)
    return NULL;
  return vmferry_archive_open_peeked (fd, name, peek, got, tar_rtn, dir_rtn);
}

struct vmferry_stream_reader *
vmferry_archive_open_peeked (int fd, const char *name,
                             const unsigned char *peek, size_t got,
                             struct vmferry_tar_reader **tar_rtn,
                             struct vmferry_dir_reader **dir_rtn)
{
  struct vmferry_tar_plain *plain = NULL;
  struct vmferry_stream_reader *rd =
    vmferry_input_open_peeked (fd, name, peek, got, tar_rtn, &plain);
  struct vmferry_dir_reader *d;

  *dir_rtn = NULL;
  if (rd || plain == NULL)
    return rd;
  d = reader_new (name, "archive");
  if (d == NULL || (d->path = strdup (name)) == NULL) {
    if (d)
      vmferry_set_error_errno (ENOMEM, "%s", name);
    vmferry_tar_plain_free (plain);
    vmferry_dir_reader_free (d);
    return NULL;
  }
  d->tar = plain;
  return reader_start (d, NULL, dir_rtn);
}
