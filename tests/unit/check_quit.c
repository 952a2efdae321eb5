/* Unit tests for lib/quit.c: the flag and the pipe a real signal sets,
 * waits that a signal ends (also one that came before the wait), the
 * watch thread, and dying of the signal.  Each test runs in a process
 * of its own (check forks), so each starts with no signal caught.
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "quit.h"

static bool
readable (int fd)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };

  return poll (&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

START_TEST (test_flag_and_pipe)
{
  ck_assert_int_eq (vmferry_quit_signal (), 0);
  ck_assert_int_eq (vmferry_quit_on (SIGUSR1, false), 0);
  ck_assert_int_eq (vmferry_quit_on (SIGUSR2, false), 0);
  ck_assert_int_ge (vmferry_quit_fd (), 0);
  ck_assert (!readable (vmferry_quit_fd ()));
  ck_assert_int_eq (*vmferry_quit_flag (), 0);

  ck_assert_int_eq (raise (SIGUSR1), 0);
  ck_assert_int_eq (vmferry_quit_signal (), SIGUSR1);
  ck_assert_int_eq (*vmferry_quit_flag (), SIGUSR1);
  /* Every waiter sees it, however many look. */
  ck_assert (readable (vmferry_quit_fd ()));
  ck_assert (readable (vmferry_quit_fd ()));
  /* The first signal is the one that asked. */
  ck_assert_int_eq (raise (SIGUSR2), 0);
  ck_assert_int_eq (vmferry_quit_signal (), SIGUSR1);
}
END_TEST

START_TEST (test_only_if_default)
{
  struct sigaction sa;

  /* nohup: an ignored signal stays ignored. */
  signal (SIGUSR1, SIG_IGN);
  ck_assert_int_eq (vmferry_quit_on (SIGUSR1, true), 0);
  ck_assert_int_eq (raise (SIGUSR1), 0);
  ck_assert_int_eq (vmferry_quit_signal (), 0);
  ck_assert (!readable (vmferry_quit_fd ()));
  ck_assert_int_eq (sigaction (SIGUSR1, NULL, &sa), 0);
  ck_assert (sa.sa_handler == SIG_IGN);
  /* Without the condition it is taken over. */
  ck_assert_int_eq (vmferry_quit_on (SIGUSR1, false), 0);
  ck_assert_int_eq (raise (SIGUSR1), 0);
  ck_assert_int_eq (vmferry_quit_signal (), SIGUSR1);
}
END_TEST

/* A pipe that never has data: what is waited on besides the signal. */
static int idle[2];

static void *
send_later (void *arg)
{
  /* The main thread is in its wait, or about to be: either way the
   * signal must end it.
   */
  (void) arg;
  raise (SIGUSR1);
  return NULL;
}

START_TEST (test_wait_ends)
{
  char buf[16];
  pthread_t t;

  ck_assert_int_eq (pipe (idle), 0);
  ck_assert_int_eq (vmferry_quit_on (SIGUSR1, false), 0);
  /* No signal: a timeout, and data is data. */
  ck_assert_int_eq (vmferry_quit_poll (idle[0], POLLIN, 10), 0);
  ck_assert_int_eq (write (idle[1], "ab", 2), 2);
  ck_assert_int_eq (vmferry_quit_poll (idle[0], POLLIN, -1), 1);
  ck_assert_int_eq (vmferry_quit_read (idle[0], buf, sizeof buf), 2);

  ck_assert_int_eq (pthread_create (&t, NULL, send_later, NULL), 0);
  /* Blocks until the signal: a read that ends reads as end of input. */
  ck_assert_int_eq (vmferry_quit_read (idle[0], buf, sizeof buf), 0);
  ck_assert_int_eq (pthread_join (t, NULL), 0);
  ck_assert_int_eq (vmferry_quit_signal (), SIGUSR1);
  /* A wait that begins after the signal ends at once, even with data. */
  ck_assert_int_eq (write (idle[1], "c", 1), 1);
  ck_assert_int_eq (vmferry_quit_poll (idle[0], POLLIN, -1), VMFERRY_QUIT);
  ck_assert_int_eq (vmferry_quit_read (idle[0], buf, sizeof buf), 0);
}
END_TEST

START_TEST (test_read_error)
{
  char buf[4];
  int fds[2];

  ck_assert_int_eq (vmferry_quit_on (SIGUSR1, false), 0);
  ck_assert_int_eq (vmferry_quit_read (-1, buf, sizeof buf), -1);
  ck_assert_int_eq (vmferry_get_errno (), EBADF);
  /* A closed fd is ready (POLLNVAL): the read says why it failed. */
  ck_assert_int_eq (pipe (fds), 0);
  close (fds[0]);
  close (fds[1]);
  ck_assert_int_eq (vmferry_quit_read (fds[0], buf, sizeof buf), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "read"));
  ck_assert_int_eq (vmferry_get_errno (), EBADF);
}
END_TEST

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int watched;
static pthread_t watcher;

static void
on_quit (int sig, void *opaque)
{
  pthread_mutex_lock (&lock);
  watched = sig + *(int *) opaque;
  watcher = pthread_self ();
  pthread_cond_signal (&cond);
  pthread_mutex_unlock (&lock);
}

START_TEST (test_watch)
{
  struct vmferry_quit_watch *w;
  int plus = 1000;

  ck_assert_int_eq (vmferry_quit_on (SIGUSR2, false), 0);
  /* Stopped before any signal: FN never runs. */
  w = vmferry_quit_watch (on_quit, &plus);
  ck_assert_ptr_nonnull (w);
  vmferry_quit_unwatch (w);
  ck_assert_int_eq (watched, 0);
  vmferry_quit_unwatch (NULL);

  w = vmferry_quit_watch (on_quit, &plus);
  ck_assert_ptr_nonnull (w);
  ck_assert_int_eq (raise (SIGUSR2), 0);
  pthread_mutex_lock (&lock);
  while (watched == 0)
    pthread_cond_wait (&cond, &lock);
  pthread_mutex_unlock (&lock);
  ck_assert_int_eq (watched, SIGUSR2 + 1000);
  /* Outside the handler, in a thread of its own. */
  ck_assert (!pthread_equal (watcher, pthread_self ()));
  vmferry_quit_unwatch (w);
}
END_TEST

/* The status a child gets from DIE_AS: raise SIG (quit_on if HANDLED),
 * then vmferry_quit_die.
 */
static int
die_as (int sig, bool handled)
{
  pid_t pid = fork ();
  int status;

  ck_assert_int_ge (pid, 0);
  if (pid == 0) {
    if (handled) {
      if (vmferry_quit_on (sig, false) < 0 || raise (sig) != 0 ||
          vmferry_quit_signal () != sig)
        _exit (99);
    }
    vmferry_quit_die ();
  }
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  return status;
}

START_TEST (test_die)
{
  int status;

  status = die_as (SIGINT, true);
  ck_assert (WIFSIGNALED (status));
  ck_assert_int_eq (WTERMSIG (status), SIGINT);
  status = die_as (SIGHUP, true);
  ck_assert (WIFSIGNALED (status));
  ck_assert_int_eq (WTERMSIG (status), SIGHUP);
  /* No signal asked: SIGTERM. */
  status = die_as (SIGINT, false);
  ck_assert (WIFSIGNALED (status));
  ck_assert_int_eq (WTERMSIG (status), SIGTERM);
}
END_TEST

VMFERRY_UNIT_MAIN ("quit", test_flag_and_pipe, test_only_if_default,
                   test_wait_ends, test_read_error, test_watch, test_die)
