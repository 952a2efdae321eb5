/* vmferry: the directory an import writes into (see target.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "names.h"
#include "target.h"

static int
mkdir_p (const char *path, mode_t mode)
{
  CLEANUP_FREE char *copy = strdup (path);

  if (copy == NULL)
    return -1;
  for (char *p = copy + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir (copy, mode) < 0 && errno != EEXIST)
        return -1;
      *p = '/';
    }
  if (mkdir (copy, mode) < 0 && errno != EEXIST)
    return -1;
  return 0;
}

int
vmferry_target_open (struct vmferry_target *t, const char *path, bool create,
                     mode_t mode)
{
  t->fd = -1;
  t->path = NULL;
  if (create && mkdir_p (path, mode) < 0) {
    vmferry_set_error_errno (errno, "%s: cannot create the directory", path);
    return -1;
  }
  t->fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (t->fd < 0) {
    vmferry_set_error_errno (errno, "%s: not a directory", path);
    return -1;
  }
  /* Paths built from it go into domain definitions, which libvirt wants
   * absolute: a relative one is the directory just opened.
   */
  t->path = path[0] == '/' ? strdup (path) : realpath (path, NULL);
  if (t->path == NULL) {
    vmferry_set_error_errno (errno, "%s", path);
    vmferry_target_close (t);
    return -1;
  }
  return 0;
}

void
vmferry_target_close (struct vmferry_target *t)
{
  if (t->fd >= 0)
    close (t->fd);
  t->fd = -1;
  free (t->path);
  t->path = NULL;
}

char *
vmferry_target_path (const struct vmferry_target *t, const char *name)
{
  char *p;

  if (asprintf (&p, "%s%s%s", t->path,
                t->path[0] && t->path[strlen (t->path) - 1] == '/' ? "" : "/",
                name) < 0) {
    vmferry_set_error_errno (ENOMEM, "%s", name);
    return NULL;
  }
  return p;
}

/* Walk to the directory holding the last component of NAME: returns an
 * fd of that directory (T's own fd is dup'ed so the caller always closes
 * it) and sets *BASE_RTN to the last component, or -1 with the error set.
 * With MKDIRS, directories on the way are made (0700).
 */
static int
walk (const struct vmferry_target *t, const char *name, bool mkdirs,
      const char **base_rtn)
{
  const char *p = name;
  int dfd;

  if (!vmferry_name_relpath_ok (name, VMFERRY_NAME_MAX_PARTS,
                                VMFERRY_NAME_HIDDEN_OK)) {
    vmferry_set_error_errno (EINVAL, "%s/%s: not a plain name below the "
                             "target directory", t->path, name);
    return -1;
  }
  dfd = fcntl (t->fd, F_DUPFD_CLOEXEC, 0);
  if (dfd < 0) {
    vmferry_set_error_errno (errno, "%s: dup", t->path);
    return -1;
  }
  for (;;) {
    const char *slash = strchr (p, '/');
    char part[VMFERRY_NAME_MAX + 1];
    int next;

    if (slash == NULL) {
      *base_rtn = p;
      return dfd;
    }
    memcpy (part, p, slash - p);
    part[slash - p] = '\0';
    if (mkdirs && mkdirat (dfd, part, 0700) < 0 && errno != EEXIST) {
      vmferry_set_error_errno (errno, "%s/%s: cannot make directory %s",
                               t->path, name, part);
      close (dfd);
      return -1;
    }
    next = openat (dfd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      vmferry_set_error_errno (errno, "%s/%s: %s is not a directory", t->path,
                               name, part);
      close (dfd);
      return -1;
    }
    close (dfd);
    dfd = next;
    p = slash + 1;
  }
}

/* The file open on FD (NAME below T) is a regular file with one link. */
static int
check_plain (const struct vmferry_target *t, const char *name, int fd)
{
  struct stat st;

  if (fstat (fd, &st) < 0) {
    vmferry_set_error_errno (errno, "%s/%s: fstat", t->path, name);
    return -1;
  }
  if (!S_ISREG (st.st_mode)) {
    vmferry_set_error_errno (EINVAL, "%s/%s: not a regular file",
                             t->path, name);
    return -1;
  }
  if (st.st_nlink != 1) {
    vmferry_set_error_errno (EMLINK, "%s/%s: has %ju links (a hard link to "
                             "a file elsewhere?): not used", t->path, name,
                             (uintmax_t) st.st_nlink);
    return -1;
  }
  return 0;
}

/* The call on NAME below T failed with ERR: "T/NAME: WHAT: reason" is
 * recorded, and ERR is left in errno too, for callers that test it.
 * Returns -1.
 */
static int
failed (const struct vmferry_target *t, const char *name, int err,
        const char *what)
{
  vmferry_set_error_errno (err, "%s/%s: %s", t->path, name, what);
  errno = err;
  return -1;
}

int
vmferry_target_open_file (const struct vmferry_target *t, const char *name,
                          int flags)
{
  const char *base;
  int dfd = walk (t, name, false, &base), fd, err;

  if (dfd < 0)
    return -1;
  /* O_NONBLOCK: a FIFO planted here must not hang the open. */
  fd = openat (dfd, base,
               flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  err = errno;
  close (dfd);
  if (fd < 0)
    return failed (t, name, err, "cannot open");
  if (check_plain (t, name, fd) < 0) {
    err = vmferry_get_errno ();
    close (fd);
    errno = err;
    return -1;
  }
  /* Back to blocking I/O for a regular file. */
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

int
vmferry_target_create (const struct vmferry_target *t, const char *name,
                       int flags, mode_t mode, bool mkdirs)
{
  const char *base;
  int dfd = walk (t, name, mkdirs, &base), fd, err;

  if (dfd < 0)
    return -1;
  fd = openat (dfd, base, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
               mode);
  err = errno;
  close (dfd);
  if (fd < 0)
    return failed (t, name, err, "cannot create");
  return fd;
}

int
vmferry_target_create_unnamed (const struct vmferry_target *t, mode_t mode)
{
  int fd = openat (t->fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);

  if (fd < 0) {
    int err = errno;
    vmferry_set_error_errno (err, "%s: cannot create an unnamed file",
                             t->path);
    errno = err;
  }
  return fd;
}

int
vmferry_target_link (const struct vmferry_target *t, int fd,
                     const char *name)
{
  char proc[64];
  const char *base;
  int dfd = walk (t, name, false, &base), r, err;

  if (dfd < 0)
    return -1;
  /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (root has it); without it,
   * through /proc, when /proc is there.
   */
  r = linkat (fd, "", dfd, base, AT_EMPTY_PATH);
  err = errno;
  if (r < 0 && (err == EPERM || err == ENOENT)) {
    snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
    r = linkat (AT_FDCWD, proc, dfd, base, AT_SYMLINK_FOLLOW);
    err = errno;
    if (r < 0 && err == ENOENT && access ("/proc/self/fd", F_OK) < 0)
      err = EOPNOTSUPP;
  }
  close (dfd);
  if (r < 0)
    return failed (t, name, err, "cannot link");
  return 0;
}

int
vmferry_target_stat (const struct vmferry_target *t, const char *name,
                     struct stat *st)
{
  const char *base;
  int dfd = walk (t, name, false, &base), r, err;

  if (dfd < 0)
    return vmferry_get_errno () == ENOENT ? 0 : -1;
  r = fstatat (dfd, base, st, AT_SYMLINK_NOFOLLOW);
  err = errno;
  close (dfd);
  if (r == 0)
    return 1;
  if (err == ENOENT)
    return 0;
  return failed (t, name, err, "stat");
}

int
vmferry_target_unlink (const struct vmferry_target *t, const char *name)
{
  const char *base;
  int dfd = walk (t, name, false, &base), r, err;

  if (dfd < 0)
    return vmferry_get_errno () == ENOENT ? 0 : -1;
  r = unlinkat (dfd, base, 0);
  err = errno;
  close (dfd);
  if (r < 0 && err != ENOENT)
    return failed (t, name, err, "cannot remove");
  return 0;
}

int
vmferry_target_rename (const struct vmferry_target *t, const char *from,
                       const struct vmferry_target *to_t, const char *to,
                       unsigned flags)
{
  const char *fbase, *tbase;
  int fdfd = -1, tdfd = -1, r = -1, err = 0;

  fdfd = walk (t, from, false, &fbase);
  if (fdfd < 0)
    return -1;
  tdfd = walk (to_t, to, false, &tbase);
  if (tdfd < 0) {
    err = vmferry_get_errno ();
    goto out;
  }
  r = renameat2 (fdfd, fbase, tdfd, tbase, flags);
  if (r < 0) {
    err = errno;
    vmferry_set_error_errno (err, "%s/%s: cannot %s %s/%s", to_t->path, to,
                             (flags & RENAME_EXCHANGE
                              ? "exchange it with" : "rename into it"),
                             t->path, from);
  }
 out:
  close (fdfd);
  if (tdfd >= 0)
    close (tdfd);
  errno = err;
  return r;
}

int
vmferry_target_mkdir (const struct vmferry_target *t, const char *name,
                      mode_t mode, bool exclusive)
{
  const char *base;
  int dfd = walk (t, name, false, &base), r, err;

  if (dfd < 0)
    return -1;
  r = mkdirat (dfd, base, mode);
  err = errno;
  close (dfd);
  if (r < 0 && (err != EEXIST || exclusive))
    return failed (t, name, err, "cannot make the directory");
  return 0;
}

/* Remove everything in the directory open on DFD (closed here). */
static int
empty_dir (int dfd, const char *path, int depth)
{
  DIR *d;
  struct dirent *e;
  int n = 0;

  if (depth > 16) {
    vmferry_set_error ("%s: directories nested too deep to remove", path);
    close (dfd);
    return -1;
  }
  d = fdopendir (dfd);
  if (d == NULL) {
    vmferry_set_error_errno (errno, "%s: cannot read", path);
    close (dfd);
    return -1;
  }
  while ((e = readdir (d)) != NULL) {
    struct stat st;

    if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
      continue;
    if (fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    if (S_ISDIR (st.st_mode)) {
      int sub = openat (dirfd (d), e->d_name,
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int k;
      if (sub < 0)
        continue;
      k = empty_dir (sub, path, depth + 1);
      if (k < 0) {
        closedir (d);
        return -1;
      }
      n += k;
      if (unlinkat (dirfd (d), e->d_name, AT_REMOVEDIR) == 0)
        n++;
    }
    else if (unlinkat (dirfd (d), e->d_name, 0) == 0)
      n++;
  }
  closedir (d);
  return n;
}

int
vmferry_target_remove_tree (const struct vmferry_target *t, const char *name)
{
  CLEANUP_FREE char *path = vmferry_target_path (t, name);
  const char *base;
  struct stat st;
  int dfd, sub, n = 0, k;

  if (path == NULL)
    return -1;
  dfd = walk (t, name, false, &base);
  if (dfd < 0)
    return vmferry_get_errno () == ENOENT ? 0 : -1;
  if (fstatat (dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    close (dfd);
    return 0;
  }
  if (!S_ISDIR (st.st_mode)) {
    n = unlinkat (dfd, base, 0) == 0;
    close (dfd);
    return n;
  }
  sub = openat (dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0) {
    vmferry_set_error_errno (errno, "%s: cannot open", path);
    close (dfd);
    return -1;
  }
  k = empty_dir (sub, path, 0);
  if (k < 0) {
    close (dfd);
    return -1;
  }
  n += k;
  if (unlinkat (dfd, base, AT_REMOVEDIR) < 0) {
    vmferry_set_error_errno (errno, "%s: cannot remove", path);
    close (dfd);
    return -1;
  }
  close (dfd);
  return n + 1;
}

DIR *
vmferry_target_opendir (const struct vmferry_target *t)
{
  int fd = openat (t->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir (fd) : NULL;

  if (d == NULL) {
    vmferry_set_error_errno (errno, "%s: cannot read", t->path);
    if (fd >= 0)
      close (fd);
  }
  return d;
}

int
vmferry_target_sync (const struct vmferry_target *t)
{
  if (fsync (t->fd) < 0) {
    vmferry_set_error_errno (errno, "%s: fsync", t->path);
    return -1;
  }
  return 0;
}

char *
vmferry_target_random_name (const char *prefix)
{
  static const char chars[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  unsigned char rnd[6];
  char *name;
  size_t n = strlen (prefix);

  if (getrandom (rnd, sizeof rnd, 0) != (ssize_t) sizeof rnd) {
    vmferry_set_error_errno (errno, "getrandom");
    return NULL;
  }
  name = malloc (n + sizeof rnd + 1);
  if (name == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", prefix);
    return NULL;
  }
  memcpy (name, prefix, n);
  for (size_t i = 0; i < sizeof rnd; i++)
    name[n + i] = chars[rnd[i] % (sizeof chars - 1)];
  name[n + sizeof rnd] = '\0';
  return name;
}
