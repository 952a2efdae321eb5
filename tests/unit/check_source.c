/* Unit tests for lib/source*.c: the file source against the extent walk
 * and pread(2) of the same file; the NBD source against an nbdkit the
 * test starts on a socket it made (socket activation, so nothing waits
 * for a server to come up), serving that file: its map against
 * SEEK_DATA's, its bytes against the file's, its requests (nbdkit's log)
 * no larger than VMFERRY_SOURCE_NBD_PIECE; and nbdkit's extentlist
 * filter for holes, zeros and blocks that mix them.  Without nbdkit the
 * NBD cases say so and pass.
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup-libc.h"
#include "error.h"
#include "extent.h"
#include "full-rw.h"
#include "source.h"
#include "stream.h"

#define BS VMFERRY_BLOCK_SIZE
#define MiB (1024 * 1024)

/* Each test's scratch directory, inside TOP, which main makes in
 * /var/tmp (a disk file system, where SEEK_DATA is exact) and removes
 * after the suite: a failed assertion ends a test's process before its
 * cleanup ().
 */
static char top[64], dir[128];

static void
make_dir (void)
{
  snprintf (dir, sizeof dir, "%s/t.XXXXXX", top);
  ck_assert_ptr_nonnull (mkdtemp (dir));
}

static int
remove_tree (const char *path)
{
  char cmd[256];

  snprintf (cmd, sizeof cmd, "rm -rf '%s'", path);
  return system (cmd);
}

static void
cleanup (void)
{
  ck_assert_int_eq (remove_tree (dir), 0);
}

static char *
in_dir (const char *name)
{
  char *p;

  ck_assert_int_ge (asprintf (&p, "%s/%s", dir, name), 0);
  return p;
}

/* Bytes that differ at every offset, never zero. */
static void
pattern (unsigned char *buf, size_t len, uint64_t off)
{
  for (size_t i = 0; i < len; i++) {
    uint64_t x = (off + i) * 0x9e3779b97f4a7c15ULL;
    buf[i] = (unsigned char) ((x >> 56) | 1);
  }
}

static void
put (int fd, uint64_t off, size_t len)
{
  unsigned char *buf = malloc (len);

  pattern (buf, len, off);
  ck_assert_int_eq (pwrite (fd, buf, len, off), (ssize_t) len);
  free (buf);
}

/* The sparse file the cases read: SIZE (not block-aligned) with data in
 * a block, across a page boundary, 5 MiB dense (several chunks, many NBD
 * pieces), and the last byte.
 */
static const uint64_t sparse_size = 24 * MiB + 1234;

static char *
make_sparse (void)
{
  char *path = in_dir ("sparse.img");
  int fd = open (path, O_RDWR | O_CREAT | O_EXCL, 0600);

  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, sparse_size), 0);
  put (fd, 100000, 1);
  put (fd, 5 * MiB + 70000, 4096);
  put (fd, 8 * MiB + 12345, 5 * MiB);
  put (fd, sparse_size - 1, 1);
  ck_assert_int_eq (fsync (fd), 0);
  ck_assert_int_eq (close (fd), 0);
  return path;
}

/* Walk S's map (no zeros asked for) and FD's SEEK_DATA map side by side:
 * the same extents.  Read every extent through S in chunks and compare
 * with pread of FD.  Returns the number of extents.
 */
static size_t
compare_with_file (struct vmferry_source *s, int fd, uint64_t size)
{
  unsigned char *buf = vmferry_alloc_direct (VMFERRY_CHUNK_SIZE);
  unsigned char *want = malloc (VMFERRY_CHUNK_SIZE);
  struct vmferry_source_view v = { 0 };
  uint64_t pos = 0, start, end, fstart, fend;
  size_t n = 0;
  int r, fr;

  ck_assert_ptr_nonnull (buf);
  ck_assert_uint_eq (vmferry_source_size (s), size);
  for (;;) {
    r = vmferry_source_next_data (s, pos, size, &start, &end, NULL);
    fr = vmferry_next_data (fd, "file", pos, size, &fstart, &fend);
    ck_assert_msg (r == fr, "at %" PRIu64 ": source %d, file %d: %s", pos,
                   r, fr, vmferry_get_error ());
    if (r != 1)
      break;
    ck_assert_msg (start == fstart && end == fend,
                   "extent %zu: source [%" PRIu64 ", %" PRIu64 "), file [%"
                   PRIu64 ", %" PRIu64 ")", n, start, end, fstart, fend);
    for (uint64_t off = start; off < end; ) {
      size_t len = end - off < VMFERRY_CHUNK_SIZE ? end - off
                                                   : VMFERRY_CHUNK_SIZE;

      ck_assert_msg (vmferry_source_read (s, off, len, buf, &v) == 0, "%s",
                     vmferry_get_error ());
      ck_assert_int_eq (vmferry_pread_full (fd, "file", want, len, off), 0);
      ck_assert_msg (memcmp (v.data, want, len) == 0,
                     "bytes differ in [%" PRIu64 ", +%zu)", off, len);
      off += len;
    }
    pos = end;
    n++;
  }
  ck_assert_int_eq (r, 0);
  vmferry_source_view_release (&v);
  free (buf);
  free (want);
  return n;
}

START_TEST (test_file_source)
{
  CLEANUP_FREE char *path = NULL;
  struct vmferry_source *s;
  struct vmferry_source_view v = { 0 };
  unsigned char *buf = vmferry_alloc_direct (VMFERRY_CHUNK_SIZE);
  uint64_t start, end;
  bool zero = true;
  int fd;

  make_dir ();
  path = make_sparse ();
  fd = open (path, O_RDONLY);
  ck_assert_int_ge (fd, 0);
  s = vmferry_source_open_file (path, true);
  ck_assert_msg (s != NULL, "%s", vmferry_get_error ());
  ck_assert_str_eq (vmferry_source_name (s), path);
  ck_assert_int_ge (vmferry_source_fd (s), 0);
  /* 4 extents where SEEK_DATA is exact; at least one anywhere. */
  ck_assert_uint_ge (compare_with_file (s, fd, sparse_size), 1);

  /* A file tells no zeros: asking changes nothing. */
  ck_assert_int_eq (vmferry_source_next_data (s, 0, sparse_size, &start,
                                              &end, &zero), 1);
  ck_assert (!zero);

  /* Once in the page cache, a read is a mapping of it, not a copy. */
  ck_assert_int_eq (vmferry_source_read (s, 8 * MiB, BS, buf, &v), 0);
  ck_assert_int_eq (vmferry_source_read (s, 8 * MiB, BS, buf, &v), 0);
  ck_assert_ptr_nonnull (v.map);
  ck_assert_ptr_ne (v.data, buf);
  vmferry_source_view_release (&v);
  ck_assert_ptr_null (v.map);

  /* Past the end is an error, not zeros. */
  ck_assert_int_eq (vmferry_source_read (s, sparse_size - 10, 100, buf, &v),
                    -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "shrank"));
  vmferry_source_free (s);
  close (fd);
  free (buf);
  cleanup ();
}
END_TEST

START_TEST (test_file_refused)
{
  CLEANUP_FREE char *fifo = NULL, *link_path = NULL, *img = NULL;
  int fd;

  make_dir ();
  fifo = in_dir ("fifo");
  ck_assert_int_eq (mkfifo (fifo, 0600), 0);
  ck_assert_ptr_null (vmferry_source_open_file (fifo, false));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "a FIFO"));
  ck_assert_ptr_null (vmferry_source_open_file (dir, false));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "a directory"));

  /* NOFOLLOW: a link to an image is not the image. */
  img = in_dir ("img");
  link_path = in_dir ("link");
  fd = open (img, O_WRONLY | O_CREAT | O_EXCL, 0600);
  ck_assert_int_ge (fd, 0);
  close (fd);
  ck_assert_int_eq (symlink (img, link_path), 0);
  ck_assert_ptr_null (vmferry_source_open_file (link_path, true));
  fd = vmferry_source_open_fd (link_path, false);
  ck_assert_int_ge (fd, 0);
  close (fd);
  cleanup ();
}
END_TEST

/* ---- NBD ---- */

/* Is PROG on $PATH? */
static bool
on_path (const char *prog)
{
  const char *path = getenv ("PATH");
  CLEANUP_FREE char *copy = strdup (path ? path : "/usr/bin:/bin");
  char *save = NULL;

  for (char *d = strtok_r (copy, ":", &save); d;
       d = strtok_r (NULL, ":", &save)) {
    char p[4096];

    snprintf (p, sizeof p, "%s/%s", d, prog);
    if (access (p, X_OK) == 0)
      return true;
  }
  return false;
}

struct server {
  pid_t pid;
  char uri[256];
};

/* Start nbdkit with ARGS (after the program name and its common
 * options), handed a listening socket in DIR (systemd's socket
 * activation), so a client connects at once.  False, having said why,
 * when there is no nbdkit.
 */
static bool
start_nbdkit (struct server *srv, const char *const *args)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  const char *argv[32] = { "nbdkit", "-r", "-f", "--exit-with-parent" };
  size_t n = 4;
  int sock;

  if (!on_path ("nbdkit")) {
    fprintf (stderr, "check_source: no nbdkit on $PATH (Debian: apt-get "
             "install nbdkit): NBD source case not run\n");
    return false;
  }
  for (size_t i = 0; args[i]; i++) {
    ck_assert_uint_lt (n + 1, sizeof argv / sizeof argv[0]);
    argv[n++] = args[i];
  }
  argv[n] = NULL;
  snprintf (sun.sun_path, sizeof sun.sun_path, "%s/nbd.sock", dir);
  snprintf (srv->uri, sizeof srv->uri, "nbd+unix:///?socket=%s",
            sun.sun_path);
  unlink (sun.sun_path);        /* the previous server's */
  sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge (sock, 0);
  ck_assert_int_eq (bind (sock, (struct sockaddr *) &sun, sizeof sun), 0);
  ck_assert_int_eq (listen (sock, 8), 0);
  srv->pid = fork ();
  ck_assert_int_ge (srv->pid, 0);
  if (srv->pid == 0) {
    char pid[32];

    snprintf (pid, sizeof pid, "%d", (int) getpid ());
    if (dup2 (sock, 3) != 3)
      _exit (126);
    setenv ("LISTEN_PID", pid, 1);
    setenv ("LISTEN_FDS", "1", 1);
    execvp ("nbdkit", (char *const *) argv);
    _exit (127);
  }
  close (sock);
  return true;
}

static void
stop_nbdkit (struct server *srv)
{
  int status;

  kill (srv->pid, SIGTERM);
  ck_assert_int_eq (waitpid (srv->pid, &status, 0), srv->pid);
}

START_TEST (test_nbd_file)
{
  CLEANUP_FREE char *path = NULL, *log = NULL, *logarg = NULL;
  CLEANUP_FREE char *line = NULL;
  struct server srv;
  struct vmferry_source *s;
  struct vmferry_source_view v = { 0 };
  unsigned char *buf = vmferry_alloc_direct (VMFERRY_CHUNK_SIZE);
  unsigned reads = 0, biggest = 0, count;
  size_t cap = 0;
  FILE *fp;
  int fd;

  make_dir ();
  path = make_sparse ();
  log = in_dir ("nbdkit.log");
  ck_assert_int_ge (asprintf (&logarg, "logfile=%s", log), 0);
  if (!start_nbdkit (&srv, (const char *[]) { "--filter=log", "file", path,
                                              logarg, NULL })) {
    cleanup ();
    return;
  }
  s = vmferry_source_open_nbd (srv.uri);
  ck_assert_msg (s != NULL, "%s", vmferry_get_error ());
  ck_assert_int_eq (vmferry_source_fd (s), -1);
  fd = open (path, O_RDONLY);
  ck_assert_int_ge (fd, 0);
  ck_assert_uint_ge (compare_with_file (s, fd, sparse_size), 1);

  /* Past the end is refused before anything is sent. */
  ck_assert_int_eq (vmferry_source_read (s, sparse_size - 10, 100, buf, &v),
                    -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "past its end"));
  vmferry_source_free (s);      /* disconnects: the log is complete */
  stop_nbdkit (&srv);

  /* Every read the server saw was one piece at most; the 5 MiB of
   * data took at least 5 MiB / piece of them.
   */
  fp = fopen (log, "r");
  ck_assert_ptr_nonnull (fp);
  while (getline (&line, &cap, fp) > 0) {
    const char *c = strstr (line, " Read ");
    if (c && (c = strstr (c, "count=")) &&
        sscanf (c, "count=%x", &count) == 1) {
      reads++;
      if (count > biggest)
        biggest = count;
    }
  }
  fclose (fp);
  ck_assert_uint_le (biggest, VMFERRY_SOURCE_NBD_PIECE);
  ck_assert_uint_ge (reads, 5 * MiB / VMFERRY_SOURCE_NBD_PIECE);
  close (fd);
  free (buf);
  cleanup ();
}
END_TEST

struct want {
  uint64_t start, end;
  bool zero;
};

/* Walk S from POS, asking for zeros or not, and compare with WANT
 * (N extents).
 */
static void
check_map (struct vmferry_source *s, uint64_t pos, bool zeros,
           const struct want *want, size_t n)
{
  uint64_t start, end, size = vmferry_source_size (s);
  bool zero;
  size_t i = 0;
  int r;

  while ((r = vmferry_source_next_data (s, pos, size, &start, &end,
                                        zeros ? &zero : NULL)) == 1) {
    ck_assert_msg (i < n, "extra extent [%" PRIu64 ", %" PRIu64 ")",
                   start, end);
    ck_assert_msg (start == want[i].start && end == want[i].end &&
                   (!zeros || zero == want[i].zero),
                   "extent %zu: [%" PRIu64 ", %" PRIu64 ") zero %d, want [%"
                   PRIu64 ", %" PRIu64 ") zero %d", i, start, end,
                   zeros && zero, want[i].start, want[i].end, want[i].zero);
    pos = end;
    i++;
  }
  ck_assert_msg (r == 0, "%s", vmferry_get_error ());
  ck_assert_uint_eq (i, n);
}

START_TEST (test_nbd_extents)
{
  CLEANUP_FREE char *path = NULL, *list = NULL, *listarg = NULL;
  struct server srv;
  struct vmferry_source *s;
  FILE *fp;
  int fd;
  /* 16 blocks of data on disk; the list says what the server reports.
   * Block 3 is half hole, half zero: zero (not a hole).  Block 6 is a
   * hole that does not read as zeros: data.  Block 7 starts with a
   * hole: data.  From block 8 on the list says nothing: holes.
   */
  static const char extents[] =
    "0 64K\n"
    "64K 128K hole,zero\n"
    "192K 32K hole,zero\n"
    "224K 32K zero\n"
    "256K 128K zero\n"
    "384K 64K hole\n"
    "448K 10000 hole,zero\n"
    "468752 55536\n";
  static const struct want with_zeros[] = {
    { 0, BS, false }, { 3 * BS, 6 * BS, true }, { 6 * BS, 8 * BS, false },
  };
  static const struct want as_data[] = {
    { 0, BS, false }, { 3 * BS, 8 * BS, false },
  };
  static const struct want from_inside[] = { { 3 * BS, 8 * BS, false } };

  make_dir ();
  path = in_dir ("data.img");
  fd = open (path, O_RDWR | O_CREAT | O_EXCL, 0600);
  ck_assert_int_ge (fd, 0);
  put (fd, 0, 16 * BS);
  close (fd);
  list = in_dir ("extents");
  fp = fopen (list, "w");
  ck_assert_ptr_nonnull (fp);
  fputs (extents, fp);
  ck_assert_int_eq (fclose (fp), 0);
  ck_assert_int_ge (asprintf (&listarg, "extentlist=%s", list), 0);
  if (!start_nbdkit (&srv, (const char *[]) { "--filter=extentlist", "file",
                                              path, listarg, NULL })) {
    cleanup ();
    return;
  }
  s = vmferry_source_open_nbd (srv.uri);
  ck_assert_msg (s != NULL, "%s", vmferry_get_error ());
  ck_assert_uint_eq (vmferry_source_size (s), 16 * BS);
  check_map (s, 0, true, with_zeros, 3);
  check_map (s, 0, false, as_data, 2);
  /* An unaligned start inside a hole: the next data's block. */
  check_map (s, BS + 5000, false, from_inside, 1);
  vmferry_source_free (s);
  stop_nbdkit (&srv);

  /* A server without block status: all data. */
  if (start_nbdkit (&srv, (const char *[]) { "--filter=noextents", "file",
                                             path, NULL })) {
    static const struct want all[] = { { 0, 16 * BS, false } };

    s = vmferry_source_open_nbd (srv.uri);
    ck_assert_msg (s != NULL, "%s", vmferry_get_error ());
    check_map (s, 0, true, all, 1);
    vmferry_source_free (s);
    stop_nbdkit (&srv);
  }
  cleanup ();
}
END_TEST

START_TEST (test_nbd_refused)
{
  char uri[128];

  make_dir ();
  /* No server: the error names the URI. */
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s/none.sock", dir);
  ck_assert_ptr_null (vmferry_source_open_nbd (uri));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), uri));
  ck_assert_ptr_null (vmferry_source_open_nbd ("http://example.com/x"));
  cleanup ();
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("source");
  TCase *tc = tcase_create ("core");
  int r;

  strcpy (top, "/var/tmp/check_source.XXXXXX");
  if (mkdtemp (top) == NULL) {
    perror (top);
    return EXIT_FAILURE;
  }
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_file_source);
  tcase_add_test (tc, test_file_refused);
  tcase_add_test (tc, test_nbd_file);
  tcase_add_test (tc, test_nbd_extents);
  tcase_add_test (tc, test_nbd_refused);
  suite_add_tcase (s, tc);
  r = vmferry_run_suite (s);
  if (remove_tree (top) != 0)
    r = EXIT_FAILURE;
  return r;
}
