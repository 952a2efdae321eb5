/* vmferry: where a tool writes a stream (see output.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup-libc.h"
#include "error.h"
#include "human.h"
#include "log.h"
#include "output.h"
#include "progress.h"
#include "quit.h"

#define TMP_SUFFIX ".vmferry-"
#define TMP_RANDOM 6                    /* as mkstemp's XXXXXX */

/* ---- temporary files of runs that were killed ---- */

/* Is NAME one of our temporary names for BASE: ".BASE.vmferry-XXXXXX"? */
static bool
is_tmp_name (const char *name, const char *base)
{
  size_t blen = strlen (base), slen = strlen (TMP_SUFFIX);

  return name[0] == '.' && strncmp (name + 1, base, blen) == 0 &&
    strncmp (name + 1 + blen, TMP_SUFFIX, slen) == 0 &&
    strlen (name + 1 + blen + slen) == TMP_RANDOM &&
    strchr (name + 1 + blen + slen, '/') == NULL;
}

/* Remove the temporary files for BASE in DIR that earlier runs left
 * (killed with SIGKILL, or the machine went down).  A running export
 * holds a lock on its own (vmferry_output_open), so only what no live
 * process holds goes, and only our user's plain files.  Best effort:
 * what cannot be removed stays, and is said.
 */
static void
remove_stale (const char *dir, const char *base)
{
  DIR *d = opendir (dir);
  struct dirent *e;

  if (d == NULL)
    return;
  while ((e = readdir (d)) != NULL) {
    struct stat st, now;
    int fd;

    if (!is_tmp_name (e->d_name, base))
      continue;
    fd = openat (dirfd (d), e->d_name,
                 O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
      continue;
    /* Held by a live run: not stale.  Holding the lock ourselves, no
     * run can take the file while we look.
     */
    if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) ||
        st.st_uid != geteuid () || st.st_nlink != 1 ||
        flock (fd, LOCK_EX | LOCK_NB) < 0) {
      close (fd);
      continue;
    }
    if (fstatat (dirfd (d), e->d_name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
        now.st_dev == st.st_dev && now.st_ino == st.st_ino) {
      char size[32];
      vmferry_human_size ((uint64_t) st.st_size, size, sizeof size);
      if (unlinkat (dirfd (d), e->d_name, 0) == 0)
        vmferry_notice ("%s/%s: removed the temporary file of an interrupted "
                        "run (%s)", dir, e->d_name, size);
      else
        vmferry_warn ("%s/%s: the temporary file of an interrupted run could "
                      "not be removed: %s", dir, e->d_name, strerror (errno));
    }
    close (fd);
  }
  closedir (d);
}

/* Create the temporary file TMP_RTN (DIR/.BASE.vmferry-XXXXXX), mode
 * 0600 less the umask, already locked (see remove_stale): made
 * nameless (O_TMPFILE) and locked before it gets its name, where the
 * file system allows; else named by mkostemp and locked at once.
 * Returns the fd, or -1 with errno set.
 */
static int
create_locked (const char *dir, const char *base, char **tmp_rtn)
{
  int fd;

  fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) {
    char self[64];

    snprintf (self, sizeof self, "/proc/self/fd/%d", fd);
    if (flock (fd, LOCK_EX) < 0)
      goto fallback;
    for (int tries = 0; tries < 100; tries++) {
      static const char chars[] =
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
      unsigned char rnd[TMP_RANDOM];
      char suffix[TMP_RANDOM + 1];

      if (getrandom (rnd, sizeof rnd, 0) != (ssize_t) sizeof rnd)
        goto fallback;
      for (int i = 0; i < TMP_RANDOM; i++)
        suffix[i] = chars[rnd[i] % (sizeof chars - 1)];
      suffix[TMP_RANDOM] = '\0';
      free (*tmp_rtn);
      if (asprintf (tmp_rtn, "%s/.%s" TMP_SUFFIX "%s", dir, base, suffix) < 0) {
        *tmp_rtn = NULL;
        close (fd);
        errno = ENOMEM;
        return -1;
      }
      if (linkat (AT_FDCWD, self, AT_FDCWD, *tmp_rtn, AT_SYMLINK_FOLLOW) == 0)
        return fd;
      if (errno != EEXIST)
        goto fallback;
    }
  fallback:
    close (fd);
  }
  free (*tmp_rtn);
  if (asprintf (tmp_rtn, "%s/.%s" TMP_SUFFIX "XXXXXX", dir, base) < 0) {
    *tmp_rtn = NULL;
    errno = ENOMEM;
    return -1;
  }
  fd = mkostemp (*tmp_rtn, O_CLOEXEC);
  if (fd >= 0 && flock (fd, LOCK_EX) < 0) {
    int err = errno;
    unlink (*tmp_rtn);
    close (fd);
    errno = err;
    return -1;
  }
  return fd;
}

int
vmferry_output_open (const char *path, struct vmferry_output *out)
{
  CLEANUP_FREE char *dircopy = NULL;
  const char *base, *dir;
  struct stat st;

  memset (out, 0, sizeof *out);
  out->fd = -1;
  if (strcmp (path, "-") == 0) {
    if (isatty (STDOUT_FILENO)) {
      vmferry_set_error ("refusing to write a binary stream to a terminal "
                         "(redirect it, pipe it, or use -o FILE)");
      return -1;
    }
    out->fd = STDOUT_FILENO;
    out->name = "stdout";
    return 0;
  }
  if (lstat (path, &st) == 0) {
    vmferry_set_error ("%s: already exists; not overwritten (remove it or "
                       "choose another name)", path);
    return -1;
  }
  if (errno != ENOENT) {
    vmferry_set_error_errno (errno, "%s", path);
    return -1;
  }
  dircopy = strdup (path);
  out->path = strdup (path);
  if (!dircopy || !out->path) {
    vmferry_set_error_errno (ENOMEM, "%s", path);
    vmferry_output_discard (out);
    return -1;
  }
  base = strrchr (path, '/') ? strrchr (path, '/') + 1 : path;
  dir = dirname (dircopy);
  remove_stale (dir, base);
  out->fd = create_locked (dir, base, &out->tmp);
  if (out->fd < 0) {
    vmferry_set_error_errno (errno, "%s: cannot create a file there", path);
    free (out->tmp);
    out->tmp = NULL;
    vmferry_output_discard (out);
    return -1;
  }
  out->name = out->path;
  return 0;
}

/* ---- removal on a signal ---- */

/* The temporary file the watch thread removes: set while one exists.
 * Handlers never see it (quit.h): they only wake the thread.
 */
static pthread_mutex_t signal_lock = PTHREAD_MUTEX_INITIALIZER;
static char *signal_tmp;
static struct vmferry_quit_watch *signal_watch;   /* until the end */
static void (*signal_hook) (void);

/* The signals that end a process and can wait for a thread.  A fault
 * (SIGSEGV, SIGBUS, SIGABRT...) cannot: it leaves the file as SIGKILL
 * does, for the next run to remove.
 */
static const int fatal_signals[] = {
  SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2,
  SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF,
};

/* Remove the file, then die of the signal as if no handler were there. */
static void
remove_on_signal (int sig, void *opaque)
{
  (void) sig;
  (void) opaque;
  /* Never given back: a commit or discard that comes now waits for
   * the end.
   */
  pthread_mutex_lock (&signal_lock);
  if (signal_hook)
    signal_hook ();
  if (signal_tmp)
    unlink (signal_tmp);
  vmferry_quit_die ();
}

void
vmferry_output_on_signal (void (*fn) (void))
{
  signal_hook = fn;
}

int
vmferry_output_remove_on_signal (const struct vmferry_output *out)
{
  char *tmp = NULL;

  if (out->tmp == NULL && signal_hook == NULL)
    return 0;
  if (out->tmp && (tmp = strdup (out->tmp)) == NULL) {
    vmferry_set_error_errno (errno, "%s", out->tmp);
    return -1;
  }
  pthread_mutex_lock (&signal_lock);
  free (signal_tmp);
  signal_tmp = tmp;
  pthread_mutex_unlock (&signal_lock);
  /* An ignored signal stays ignored (nohup), and a handler already
   * there (a sanitizer's) is kept.
   */
  for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
    if (vmferry_quit_on (fatal_signals[i], true) < 0)
      return -1;
  if (signal_watch == NULL &&
      (signal_watch = vmferry_quit_watch (remove_on_signal, NULL)) == NULL)
    return -1;
  return 0;
}

/* The watch must not remove a name that is no longer ours. */
static void
disarm (const struct vmferry_output *out)
{
  pthread_mutex_lock (&signal_lock);
  if (signal_tmp && out->tmp && strcmp (signal_tmp, out->tmp) == 0) {
    free (signal_tmp);
    signal_tmp = NULL;
  }
  pthread_mutex_unlock (&signal_lock);
}

int
vmferry_output_commit (struct vmferry_output *out)
{
  if (out->tmp == NULL)
    return 0;
  if (fsync (out->fd) < 0) {
    vmferry_set_error_errno (errno, "%s: fsync", out->path);
    return -1;
  }
  if (renameat2 (AT_FDCWD, out->tmp, AT_FDCWD, out->path,
                 RENAME_NOREPLACE) < 0) {
    vmferry_set_error_errno (errno, "%s: cannot rename %s into place",
                             out->path, out->tmp);
    return -1;
  }
  disarm (out);
  free (out->tmp);
  out->tmp = NULL;
  return 0;
}

void
vmferry_output_discard (struct vmferry_output *out)
{
  if (out->tmp) {
    disarm (out);
    unlink (out->tmp);
    free (out->tmp);
    out->tmp = NULL;
  }
  /* Closed last: the lock keeps a cleaner away until the name is gone. */
  if (out->fd >= 0 && out->fd != STDOUT_FILENO)
    close (out->fd);
  out->fd = -1;
  free (out->path);
  out->path = NULL;
}
