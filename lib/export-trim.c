/* vmferry: --trim's overlays (see export-trim.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "export-trim.h"
#include "qemu-img.h"

#define OWNER "owner"

struct vmferry_trim {
  char *dir;
  unsigned nr;                  /* overlays made */
};

/* The run under way, for vmferry_trim_quit. */
static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vmferry_trim *active;

/* The start time of process PID (field 22 of /proc/PID/stat), or 0
 * when there is no such process.
 */
static unsigned long long
start_time (long pid)
{
  char path[64], buf[1024], *p;
  unsigned long long t = 0;
  FILE *fp;

  snprintf (path, sizeof path, "/proc/%ld/stat", pid);
  fp = fopen (path, "re");
  if (fp == NULL)
    return 0;
  if (fgets (buf, sizeof buf, fp) && (p = strrchr (buf, ')')) != NULL) {
    /* After the command's ')' come fields 3 on: skip 19 to reach 22. */
    p++;
    for (int i = 0; i < 19 && p; i++)
      p = strchr (p + 1, ' ');
    if (p)
      t = strtoull (p + 1, NULL, 10);
  }
  fclose (fp);
  return t;
}

/* Remove DIR, which holds only OWNER and overlays ("N.qcow2"): a name
 * of another kind means it is not ours, and it is left alone.
 */
static int
remove_dir (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  int r = 0;

  if (d == NULL) {
    if (errno == ENOENT)
      return 0;
    vmferry_set_error_errno (errno, "%s", dir);
    return -1;
  }
  while ((e = readdir (d)) != NULL) {
    size_t n = strlen (e->d_name);

    if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
      continue;
    if (strcmp (e->d_name, OWNER) != 0 &&
        (n < 7 || strcmp (e->d_name + n - 6, ".qcow2") != 0)) {
      vmferry_set_error ("%s/%s: not an overlay: the directory is left as it "
                         "is", dir, e->d_name);
      r = -1;
      break;
    }
    if (unlinkat (dirfd (d), e->d_name, 0) < 0 && errno != ENOENT) {
      vmferry_set_error_errno (errno, "%s/%s: cannot remove it", dir,
                               e->d_name);
      r = -1;
    }
  }
  closedir (d);
  if (r == 0 && rmdir (dir) < 0 && errno != ENOENT) {
    vmferry_set_error_errno (errno, "%s: cannot remove it", dir);
    r = -1;
  }
  return r;
}

/* Is DIR (a directory of ours) one a process that is gone made? */
static bool
is_stale (int dfd)
{
  char buf[128];
  long pid;
  unsigned long long t;
  ssize_t n;
  int fd = openat (dfd, OWNER, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

  if (fd < 0)
    return false;               /* being made, or not ours */
  n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  if (sscanf (buf, "%ld %llu", &pid, &t) != 2 || pid <= 0)
    return false;
  return start_time (pid) != t;
}

int
vmferry_trim_clean_stale (const char *base)
{
  DIR *d = opendir (base);
  struct dirent *e;
  int removed = 0, r = 0;

  if (d == NULL) {
    vmferry_set_error_errno (errno, "%s", base);
    return -1;
  }
  while ((e = readdir (d)) != NULL) {
    CLEANUP_FREE char *path = NULL;
    struct stat st;
    int dfd;
    bool stale;

    if (strncmp (e->d_name, VMFERRY_TRIM_DIR_PREFIX,
                 strlen (VMFERRY_TRIM_DIR_PREFIX)) != 0)
      continue;
    if (fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISDIR (st.st_mode) || st.st_uid != geteuid ())
      continue;
    dfd = openat (dirfd (d), e->d_name,
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
      continue;
    stale = is_stale (dfd);
    close (dfd);
    if (!stale)
      continue;
    if (asprintf (&path, "%s/%s", base, e->d_name) < 0) {
      path = NULL;
      vmferry_set_error_errno (ENOMEM, "%s", base);
      r = -1;
      break;
    }
    if (remove_dir (path) < 0) {
      r = -1;
      break;
    }
    vmferry_notice ("removed %s, the trim overlays of an interrupted run",
                    path);
    removed++;
  }
  closedir (d);
  return r < 0 ? -1 : removed;
}

struct vmferry_trim *
vmferry_trim_new (const char *base)
{
  struct vmferry_trim *t;
  CLEANUP_FREE char *owner = NULL;
  char line[64];
  int fd, n;

  if (vmferry_trim_clean_stale (base) < 0)
    return NULL;
  t = calloc (1, sizeof *t);
  if (t == NULL ||
      asprintf (&t->dir, "%s/" VMFERRY_TRIM_DIR_PREFIX "XXXXXX", base) < 0) {
    free (t);
    vmferry_set_error_errno (ENOMEM, "trim");
    return NULL;
  }
  /* 0700, ours alone: the overlays hold guest data. */
  if (mkdtemp (t->dir) == NULL) {
    vmferry_set_error_errno (errno, "%s: cannot make the trim's directory",
                             t->dir);
    free (t->dir);
    free (t);
    return NULL;
  }
  pthread_mutex_lock (&active_lock);
  active = t;
  pthread_mutex_unlock (&active_lock);
  n = snprintf (line, sizeof line, "%ld %llu\n", (long) getpid (),
                start_time (getpid ()));
  if (asprintf (&owner, "%s/" OWNER, t->dir) < 0) {
    owner = NULL;
    vmferry_set_error_errno (ENOMEM, "trim");
    goto err;
  }
  fd = open (owner, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
             0600);
  if (fd < 0 || write (fd, line, n) != n || close (fd) < 0) {
    vmferry_set_error_errno (errno, "%s", owner);
    if (fd >= 0)
      close (fd);
    goto err;
  }
  return t;

 err:
  vmferry_trim_end (t);
  return NULL;
}

char *
vmferry_trim_overlay (struct vmferry_trim *t, const char *backing_node,
                      const char *format, uint64_t size)
{
  CLEANUP_FREE char *backing = NULL;
  char sz[32];
  char *path = NULL;
  char *argv[] = { (char *) "qemu-img", (char *) "create", (char *) "-q",
                   (char *) "-f", (char *) "qcow2", (char *) "-u",
                   (char *) "-b", NULL, (char *) "-F", (char *) format,
                   NULL, sz, NULL };

  if (asprintf (&backing, "json:%s", backing_node) < 0 ||
      asprintf (&path, "%s/%u.qcow2", t->dir, t->nr) < 0) {
    vmferry_set_error_errno (ENOMEM, "trim");
    return NULL;
  }
  snprintf (sz, sizeof sz, "%" PRIu64, size);
  argv[7] = backing;
  argv[10] = path;
  if (vmferry_qemu_img (argv) < 0) {
    vmferry_prefix_error ("%s: cannot make the trim's overlay", path);
    free (path);
    return NULL;
  }
  t->nr++;
  return path;
}

int
vmferry_trim_end (struct vmferry_trim *t)
{
  int r;

  if (t == NULL)
    return 0;
  pthread_mutex_lock (&active_lock);
  if (active == t)
    active = NULL;
  r = remove_dir (t->dir);
  pthread_mutex_unlock (&active_lock);
  if (r < 0)
    vmferry_prefix_error ("trim overlays left in %s", t->dir);
  free (t->dir);
  free (t);
  return r;
}

void
vmferry_trim_quit (void)
{
  /* Never given back: the process ends after this. */
  pthread_mutex_lock (&active_lock);
  if (active)
    remove_dir (active->dir);
  active = NULL;
}
