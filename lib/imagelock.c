/* vmferry: QEMU's image locks (see imagelock.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup-libc.h"
#include "error.h"
#include "imagelock.h"

/* Is byte OFF of FD's file locked through another open file
 * description?  1, 0, or -1 with errno set.
 */
static int
byte_locked (int fd, off_t off)
{
  struct flock fl = {
    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1,
  };

  if (fcntl (fd, F_OFD_GETLK, &fl) < 0)
    return -1;
  return fl.l_type != F_UNLCK;
}

/* Does /proc/PID/fdinfo/FD list locks (those of that open file
 * description)?
 */
static bool
fd_has_locks (const char *pid, const char *fd)
{
  CLEANUP_FCLOSE FILE *fp = NULL;
  char path[64], line[256];

  snprintf (path, sizeof path, "/proc/%s/fdinfo/%s", pid, fd);
  if ((fp = fopen (path, "re")) == NULL)
    return false;
  while (fgets (line, sizeof line, fp))
    if (strncmp (line, "lock:", 5) == 0)
      return true;
  return false;
}

/* Which process has the file ST open: one whose descriptor of it holds
 * locks if there is one, else any.  0 if none can be seen (no /proc,
 * or not allowed to look).
 */
static pid_t
find_holder (const struct stat *st, char *comm, size_t commlen)
{
  DIR *proc = opendir ("/proc");
  struct dirent *p;
  pid_t self = getpid (), any = 0, found = 0;

  while (proc && !found && (p = readdir (proc)) != NULL) {
    DIR *fds;
    struct dirent *f;
    char path[300];
    pid_t pid = (pid_t) atoi (p->d_name);

    if (pid <= 0 || pid == self)
      continue;
    snprintf (path, sizeof path, "/proc/%s/fd", p->d_name);
    if ((fds = opendir (path)) == NULL)
      continue;
    while (!found && (f = readdir (fds)) != NULL) {
      struct stat fst;

      if (f->d_name[0] == '.')
        continue;
      snprintf (path, sizeof path, "/proc/%s/fd/%s", p->d_name, f->d_name);
      if (stat (path, &fst) < 0 || fst.st_dev != st->st_dev ||
          fst.st_ino != st->st_ino)
        continue;
      if (fd_has_locks (p->d_name, f->d_name))
        found = pid;
      else if (any == 0)
        any = pid;
    }
    closedir (fds);
  }
  if (proc)
    closedir (proc);
  if (!found)
    found = any;
  comm[0] = '\0';
  if (found) {
    CLEANUP_FCLOSE FILE *fp = NULL;
    char path[64];

    snprintf (path, sizeof path, "/proc/%d/comm", (int) found);
    if ((fp = fopen (path, "re")) != NULL && fgets (comm, (int) commlen, fp))
      comm[strcspn (comm, "\n")] = '\0';
  }
  return found;
}

int
vmferry_image_lock_holder (int fd, const char *path,
                           struct vmferry_image_lock *lock_rtn)
{
  struct stat st;

  memset (lock_rtn, 0, sizeof *lock_rtn);
  for (unsigned i = 0; i < VMFERRY_QEMU_LOCK_BITS; i++) {
    int u = byte_locked (fd, VMFERRY_QEMU_LOCK_PERM_BASE + i);
    int s = u < 0 ? -1 : byte_locked (fd, VMFERRY_QEMU_LOCK_SHARED_BASE + i);

    if (u < 0 || s < 0) {
      vmferry_set_error_errno (errno, "%s: cannot test for locks", path);
      return -1;
    }
    lock_rtn->used |= (unsigned) u << i;
    lock_rtn->unshared |= (unsigned) s << i;
  }
  if (lock_rtn->used == 0 && lock_rtn->unshared == 0)
    return 0;
  if (fstat (fd, &st) == 0)
    lock_rtn->pid = find_holder (&st, lock_rtn->comm, sizeof lock_rtn->comm);
  return 1;
}

const char *
vmferry_image_lock_who (const struct vmferry_image_lock *lock, char *buf,
                        size_t len)
{
  if (lock->pid > 0)
    snprintf (buf, len, "%s (pid %d)", lock->comm[0] ? lock->comm : "a process",
              (int) lock->pid);
  else
    snprintf (buf, len, "another process");
  return buf;
}

int
vmferry_image_lock (int fd, const char *path)
{
  struct flock fl = {
    .l_type = F_WRLCK,
    .l_whence = SEEK_SET,
    .l_start = VMFERRY_QEMU_LOCK_PERM_BASE,
    .l_len = VMFERRY_QEMU_LOCK_SHARED_BASE + VMFERRY_QEMU_LOCK_BITS -
             VMFERRY_QEMU_LOCK_PERM_BASE,
  };

  if (fcntl (fd, F_OFD_SETLK, &fl) == 0)
    return 0;
  if (errno == EAGAIN || errno == EACCES) {
    struct vmferry_image_lock lock;
    char who[96];
    if (vmferry_image_lock_holder (fd, path, &lock) <= 0)
      memset (&lock, 0, sizeof lock);
    vmferry_set_error_errno (EAGAIN,
                             "%s: in use by %s (it holds its image lock)", path,
                             vmferry_image_lock_who (&lock, who, sizeof who));
  }
  else
    vmferry_set_error_errno (errno, "%s: cannot lock", path);
  return -1;
}
