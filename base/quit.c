/* vmferry: a signal asks the process to quit (see quit.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "quit.h"

/* All the handler touches: static, never freed.  The pipe is made once,
 * before the first handler is installed, and never closed.
 */
static volatile sig_atomic_t quit_sig;
static volatile int quit_read_fd = -1, quit_write_fd = -1;
static pthread_mutex_t pipe_lock = PTHREAD_MUTEX_INITIALIZER;

static int
make_pipe (void)
{
  int fds[2], r = 0;

  pthread_mutex_lock (&pipe_lock);
  if (quit_read_fd < 0) {
    /* Non-blocking: a handler never waits on a full pipe (which is
     * readable anyway).
     */
    if (pipe2 (fds, O_CLOEXEC | O_NONBLOCK) < 0) {
      vmferry_set_error_errno (errno, "quit: pipe");
      r = -1;
    }
    else {
      quit_write_fd = fds[1];
      quit_read_fd = fds[0];
    }
  }
  pthread_mutex_unlock (&pipe_lock);
  return r;
}

void
vmferry_quit_set (int sig)
{
  int fd = quit_write_fd;
  char c = 0;

  if (quit_sig == 0)
    quit_sig = sig;
  if (fd >= 0) {
    ssize_t n = write (fd, &c, 1);
    (void) n;                   /* full: it is readable already */
  }
}

static void
quit_handler (int sig)
{
  int saved = errno;

  vmferry_quit_set (sig);
  errno = saved;
}

int
vmferry_quit_on (int sig, bool only_if_default)
{
  struct sigaction sa, old;

  if (make_pipe () < 0)
    return -1;
  if (only_if_default) {
    if (sigaction (sig, NULL, &old) < 0) {
      vmferry_set_error_errno (errno, "signal %d: sigaction", sig);
      return -1;
    }
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
      return 0;
  }
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = quit_handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset (&sa.sa_mask);
  if (sigaction (sig, &sa, NULL) < 0) {
    vmferry_set_error_errno (errno, "signal %d: sigaction", sig);
    return -1;
  }
  return 0;
}

int
vmferry_quit_signal (void)
{
  return quit_sig;
}

const volatile sig_atomic_t *
vmferry_quit_flag (void)
{
  return &quit_sig;
}

int
vmferry_quit_fd (void)
{
  return quit_read_fd;
}

int
vmferry_quit_poll (int fd, short events, int timeout_ms)
{
  double deadline = vmferry_monotonic () + timeout_ms / 1000.0;
  int timeout = timeout_ms;

  /* poll(2) skips a negative fd: it would wait for the signal alone. */
  if (fd < 0) {
    vmferry_set_error_errno (EBADF, "poll");
    return -1;
  }
  for (;;) {
    struct pollfd pfd[2] = {
      { .fd = fd, .events = events },
      { .fd = quit_read_fd, .events = POLLIN },
    };
    int r;

    /* The flag first: it is set before the pipe is written. */
    if (quit_sig)
      return VMFERRY_QUIT;
    r = poll (pfd, pfd[1].fd >= 0 ? 2 : 1, timeout);
    if (r > 0)
      return pfd[1].fd >= 0 && pfd[1].revents ? VMFERRY_QUIT : 1;
    if (r == 0)
      return 0;
    if (errno != EINTR) {
      vmferry_set_error_errno (errno, "poll");
      return -1;
    }
    /* Another signal: go on waiting for what is left of the time. */
    if (timeout_ms >= 0) {
      double left = deadline - vmferry_monotonic ();
      timeout = left > 0 ? (int) (left * 1000) + 1 : 0;
    }
  }
}

ssize_t
vmferry_quit_read (int fd, void *buf, size_t len)
{
  for (;;) {
    int r = vmferry_quit_poll (fd, POLLIN, -1);
    ssize_t n;

    if (r < 0)
      return -1;
    if (r == VMFERRY_QUIT)
      return 0;
    n = read (fd, buf, len);
    if (n >= 0)
      return n;
    if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      vmferry_set_error_errno (errno, "read");
      return -1;
    }
  }
}

void
vmferry_quit_die (void)
{
  int sig = quit_sig ? quit_sig : SIGTERM;
  struct sigaction sa;
  sigset_t set;

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset (&sa.sa_mask);
  sigaction (sig, &sa, NULL);
  sigemptyset (&set);
  sigaddset (&set, sig);
  pthread_sigmask (SIG_UNBLOCK, &set, NULL);
  raise (sig);
  /* Only a signal whose default is not to end the process gets here. */
  _exit (128 + sig);
}

struct vmferry_quit_watch {
  pthread_t thread;
  int stop[2];                  /* written by unwatch */
  void (*fn) (int sig, void *opaque);
  void *opaque;
};

static void *
watch_thread (void *arg)
{
  struct vmferry_quit_watch *w = arg;

  if (vmferry_quit_poll (w->stop[0], POLLIN, -1) == VMFERRY_QUIT)
    w->fn (quit_sig, w->opaque);
  return NULL;
}

struct vmferry_quit_watch *
vmferry_quit_watch (void (*fn) (int sig, void *opaque), void *opaque)
{
  struct vmferry_quit_watch *w;
  int e;

  if (make_pipe () < 0)
    return NULL;
  w = calloc (1, sizeof *w);
  if (w == NULL) {
    vmferry_set_error_errno (errno, "quit: watch");
    return NULL;
  }
  w->fn = fn;
  w->opaque = opaque;
  if (pipe2 (w->stop, O_CLOEXEC) < 0) {
    vmferry_set_error_errno (errno, "quit: pipe");
    free (w);
    return NULL;
  }
  e = pthread_create (&w->thread, NULL, watch_thread, w);
  if (e != 0) {
    vmferry_set_error_errno (e, "quit: thread");
    close (w->stop[0]);
    close (w->stop[1]);
    free (w);
    return NULL;
  }
  return w;
}

void
vmferry_quit_unwatch (struct vmferry_quit_watch *w)
{
  char c = 0;

  if (w == NULL)
    return;
  if (write (w->stop[1], &c, 1) != 1)
    vmferry_debug ("quit: cannot stop the watch: %m");
  pthread_join (w->thread, NULL);
  close (w->stop[0]);
  close (w->stop[1]);
  free (w);
}
