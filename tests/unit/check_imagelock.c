/* Unit tests for lib/imagelock.c: QEMU's image locks are found through
 * another open file description, whoever holds them (another process,
 * named with its pid; this process through another descriptor), each
 * permission byte read as its bit; a file without them is free; a
 * read-only descriptor is enough and no lock is taken by the test.
 */
#include "config.h"

#include "unit.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "imagelock.h"

/* Take QEMU-style shared locks on FD's bytes BASE+bit for BITS. */
static void
lock_bits (int fd, int base, unsigned bits)
{
  for (unsigned i = 0; i < VMFERRY_QEMU_LOCK_BITS; i++)
    if (bits & (1u << i)) {
      struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET,
                          .l_start = base + i, .l_len = 1 };
      ck_assert_int_eq (fcntl (fd, F_OFD_SETLK, &fl), 0);
    }
}

static char *
temp_image (void)
{
  const char *tmp = getenv ("TMPDIR");
  char *path;
  int fd;

  ck_assert_int_ge (asprintf (&path, "%s/check_imagelock.XXXXXX",
                              tmp ? tmp : "/tmp"), 0);
  fd = mkstemp (path);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, 1 << 20), 0);
  close (fd);
  return path;
}

START_TEST (test_no_locks)
{
  char *path = temp_image ();
  struct vmferry_image_lock lk;
  char who[64];
  int fd = open (path, O_RDONLY);

  ck_assert_int_eq (vmferry_image_lock_holder (fd, path, &lk), 0);
  ck_assert_uint_eq (lk.used, 0);
  ck_assert_uint_eq (lk.unshared, 0);
  /* Locks outside QEMU's bytes are not QEMU's. */
  lock_bits (fd, 0, 0x3);
  lock_bits (fd, 400, 0x1);
  close (fd);
  fd = open (path, O_RDWR);
  {
    int other = open (path, O_RDONLY);
    lock_bits (other, 0, 0x3);
    ck_assert_int_eq (vmferry_image_lock_holder (fd, path, &lk), 0);
    close (other);
  }
  ck_assert_str_eq (vmferry_image_lock_who (&lk, who, sizeof who),
                    "another process");
  close (fd);
  unlink (path);
  free (path);
}
END_TEST

/* A process holding the locks of a QEMU that writes (consistent read,
 * write; sharing no write): found, and named.
 */
START_TEST (test_other_process)
{
  char *path = temp_image ();
  struct vmferry_image_lock lk;
  int ready[2], done[2], fd;
  char c, who[64], want[64];
  pid_t pid;

  ck_assert_int_eq (pipe (ready), 0);
  ck_assert_int_eq (pipe (done), 0);
  pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0) {
    int img = open (path, O_RDWR);

    lock_bits (img, VMFERRY_QEMU_LOCK_PERM_BASE,
               VMFERRY_QEMU_PERM_CONSISTENT_READ | VMFERRY_QEMU_PERM_WRITE);
    lock_bits (img, VMFERRY_QEMU_LOCK_SHARED_BASE, VMFERRY_QEMU_PERM_WRITE);
    close (ready[0]);
    close (done[1]);
    if (write (ready[1], "r", 1) != 1 || read (done[0], &c, 1) < 0)
      _exit (1);
    _exit (0);
  }
  close (ready[1]);
  close (done[0]);
  ck_assert_int_eq (read (ready[0], &c, 1), 1);

  fd = open (path, O_RDONLY);
  ck_assert_int_eq (vmferry_image_lock_holder (fd, path, &lk), 1);
  ck_assert_uint_eq (lk.used, VMFERRY_QEMU_PERM_CONSISTENT_READ |
                     VMFERRY_QEMU_PERM_WRITE);
  ck_assert_uint_eq (lk.unshared, VMFERRY_QEMU_PERM_WRITE);
  ck_assert_int_eq (lk.pid, pid);
  snprintf (want, sizeof want, "%s (pid %d)", lk.comm, (int) pid);
  ck_assert_str_eq (vmferry_image_lock_who (&lk, who, sizeof who), want);
  ck_assert_str_ne (lk.comm, "");

  /* The holder goes: the file is free. */
  close (done[1]);
  ck_assert_int_eq (waitpid (pid, NULL, 0), pid);
  ck_assert_int_eq (vmferry_image_lock_holder (fd, path, &lk), 0);
  close (fd);
  close (ready[0]);
  unlink (path);
  free (path);
}
END_TEST

/* Locks of this very process, through another open file description,
 * count too (OFD locks conflict across descriptions); the test itself
 * takes none, so it can run again.
 */
START_TEST (test_same_process)
{
  char *path = temp_image ();
  struct vmferry_image_lock lk;
  int holder = open (path, O_RDWR), fd = open (path, O_RDONLY);

  lock_bits (holder, VMFERRY_QEMU_LOCK_PERM_BASE, VMFERRY_QEMU_PERM_CONSISTENT_READ);
  lock_bits (holder, VMFERRY_QEMU_LOCK_SHARED_BASE,
             VMFERRY_QEMU_PERM_WRITE | VMFERRY_QEMU_PERM_RESIZE);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq (vmferry_image_lock_holder (fd, path, &lk), 1);
    ck_assert_uint_eq (lk.used, VMFERRY_QEMU_PERM_CONSISTENT_READ);
    ck_assert_uint_eq (lk.unshared, VMFERRY_QEMU_PERM_WRITE |
                       VMFERRY_QEMU_PERM_RESIZE);
    ck_assert_int_eq (lk.pid, 0);          /* ourselves: not named */
  }
  close (holder);
  ck_assert_int_eq (vmferry_image_lock_holder (fd, path, &lk), 0);
  close (fd);
  unlink (path);
  free (path);
}
END_TEST

START_TEST (test_bad_fd)
{
  struct vmferry_image_lock lk;

  ck_assert_int_eq (vmferry_image_lock_holder (-1, "nowhere", &lk), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "nowhere: cannot test for locks: Bad file descriptor");
}
END_TEST

VMFERRY_UNIT_MAIN ("imagelock", test_no_locks, test_other_process,
                   test_same_process, test_bad_fd)
