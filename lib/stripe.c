/* vmferry: one stream over several connections (see stripe.h). */
#include "config.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "hex.h"
#include "log.h"
#include "quit.h"
#include "stripe.h"

#define CHUNK_MAGIC "VMFC"
#define CHUNK_HEADER 16
/* What the sender puts in a chunk: large enough that the header and a
 * thread hand-off per chunk cost nothing, small enough that the
 * connections take turns often.
 */
#define CHUNK_SIZE (1024 * 1024)
_Static_assert (CHUNK_SIZE <= VMFERRY_STRIPE_CHUNK_MAX,
                "a receiver refuses chunks above VMFERRY_STRIPE_CHUNK_MAX");
/* Chunks queued per connection. */
#define QUEUE_DEPTH 2
/* How long one side waits for the other to appear. */
#define JOIN_SECONDS 60

/* ---- sending ---- */

struct chunk {
  struct chunk *next;           /* free list */
  size_t len;                   /* bytes after the header */
  unsigned char buf[CHUNK_HEADER + CHUNK_SIZE];
};

struct conn {
  struct vmferry_stripes_out *s;
  unsigned index;
  struct vmferry_remote *remote;
  pthread_t thread;
  bool started;
  struct chunk *queue[QUEUE_DEPTH];
  unsigned head, count;
};

struct vmferry_stripes_out {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct conn conns[VMFERRY_STRIPE_MAX];
  unsigned n;
  char *name;
  struct chunk *cur;            /* being filled */
  struct chunk *spare;          /* free list */
  uint64_t seq;                 /* of the next chunk */
  bool stop;                    /* no more chunks will come */
  int failed;                   /* first failed connection, or -1 */
  struct vmferry_saved_error error;     /* the first failure's */
};

static void *
conn_thread (void *arg)
{
  struct conn *c = arg;
  struct vmferry_stripes_out *s = c->s;

  pthread_mutex_lock (&s->lock);
  for (;;) {
    struct chunk *ch;
    struct iovec iov;
    int r;

    while (c->count == 0 && !s->stop && s->failed < 0)
      pthread_cond_wait (&s->cond, &s->lock);
    if (s->failed >= 0 || c->count == 0)
      break;
    assert (c->count <= QUEUE_DEPTH && c->head < QUEUE_DEPTH);
    ch = c->queue[c->head];
    pthread_mutex_unlock (&s->lock);

    iov.iov_base = ch->buf;
    iov.iov_len = CHUNK_HEADER + ch->len;
    r = vmferry_remote_writev (c->remote, &iov, 1);

    pthread_mutex_lock (&s->lock);
    c->head = (c->head + 1) % QUEUE_DEPTH;
    c->count--;
    ch->next = s->spare;
    s->spare = ch;
    if (r < 0 && s->failed < 0) {
      s->failed = c->index;
      vmferry_prefix_error ("connection %u of %u", c->index + 1, s->n);
      vmferry_save_error (&s->error);
      /* The others may wait on remotes that read nothing more (the
       * import refused, so its joiners wait for a socket that never
       * comes): the push is over, so are their writes.
       */
      for (unsigned i = 0; i < s->n; i++)
        if (i != c->index)
          vmferry_remote_cancel (s->conns[i].remote);
    }
    pthread_cond_broadcast (&s->cond);
  }
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

struct vmferry_stripes_out *
vmferry_stripes_out_new (struct vmferry_remote **remotes, unsigned n,
                         const char *name)
{
  struct vmferry_stripes_out *s;

  if (n < 1 || n > VMFERRY_STRIPE_MAX) {
    vmferry_set_error ("%s: %u connections: give 1 to %d", name, n,
                       VMFERRY_STRIPE_MAX);
    return NULL;
  }
  s = calloc (1, sizeof *s);
  if (s == NULL || (s->name = strdup (name)) == NULL) {
    vmferry_set_error_errno (errno, "%s: calloc", name);
    free (s);
    return NULL;
  }
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  s->n = n;
  s->failed = -1;
  for (unsigned i = 0; i < n; i++) {
    struct conn *c = &s->conns[i];
    int err;

    c->s = s;
    c->index = i;
    c->remote = remotes[i];
    err = pthread_create (&c->thread, NULL, conn_thread, c);
    if (err) {
      vmferry_set_error_errno (err, "%s: pthread_create", name);
      vmferry_stripes_out_free (s);
      return NULL;
    }
    c->started = true;
  }
  return s;
}

static int
failed_error (struct vmferry_stripes_out *s)
{
  vmferry_restore_saved_error (&s->error);
  return -1;
}

/* Hand the current chunk (or an empty one: the end) to its connection.
 * Called with the lock held.
 */
static int
emit (struct vmferry_stripes_out *s, struct chunk *ch)
{
  /* Chunk K to connection K mod N: the reader expects no other. */
  struct conn *c = &s->conns[s->seq % s->n];
  uint32_t len = htole32 ((uint32_t) ch->len);
  uint64_t seq = htole64 (s->seq);

  assert (ch->len <= CHUNK_SIZE);
  memcpy (ch->buf, CHUNK_MAGIC, 4);
  memcpy (ch->buf + 4, &len, 4);
  memcpy (ch->buf + 8, &seq, 8);
  while (c->count == QUEUE_DEPTH && s->failed < 0)
    pthread_cond_wait (&s->cond, &s->lock);
  if (s->failed >= 0) {
    ch->next = s->spare;
    s->spare = ch;
    return -1;
  }
  assert (c->count < QUEUE_DEPTH);
  c->queue[(c->head + c->count) % QUEUE_DEPTH] = ch;
  c->count++;
  s->seq++;
  pthread_cond_broadcast (&s->cond);
  return 0;
}

size_t
vmferry_stripes_out_memory (unsigned n)
{
  /* Each connection's queue (the chunk its thread sends stays in it
   * until sent) and the one being filled: get_chunk reuses them.
   */
  return ((size_t) n * QUEUE_DEPTH + 1) * sizeof (struct chunk);
}

static struct chunk *
get_chunk (struct vmferry_stripes_out *s)
{
  struct chunk *ch = s->spare;

  if (ch)
    s->spare = ch->next;
  else if ((ch = malloc (sizeof *ch)) == NULL) {
    vmferry_set_error_errno (errno, "%s: malloc", s->name);
    return NULL;
  }
  ch->len = 0;
  return ch;
}

int
vmferry_stripes_writev (void *opaque, const struct iovec *iov, int iovcnt)
{
  struct vmferry_stripes_out *s = opaque;
  int r = 0;

  pthread_mutex_lock (&s->lock);
  for (int i = 0; i < iovcnt && r == 0; i++) {
    const unsigned char *p = iov[i].iov_base;
    size_t left = iov[i].iov_len;

    while (left > 0) {
      size_t k;

      if (s->cur == NULL && (s->cur = get_chunk (s)) == NULL) {
        r = -1;
        break;
      }
      k = CHUNK_SIZE - s->cur->len;
      if (k > left)
        k = left;
      memcpy (s->cur->buf + CHUNK_HEADER + s->cur->len, p, k);
      s->cur->len += k;
      p += k;
      left -= k;
      if (s->cur->len == CHUNK_SIZE) {
        struct chunk *ch = s->cur;
        s->cur = NULL;
        if (emit (s, ch) < 0) {
          r = failed_error (s);
          break;
        }
      }
    }
  }
  pthread_mutex_unlock (&s->lock);
  return r;
}

int
vmferry_stripes_out_finish (struct vmferry_stripes_out *s, bool end)
{
  int r = 0;

  pthread_mutex_lock (&s->lock);
  if (s->cur && s->cur->len > 0) {
    struct chunk *ch = s->cur;
    s->cur = NULL;
    r = emit (s, ch);
  }
  if (r == 0 && end) {
    struct chunk *ch = get_chunk (s);
    r = ch ? emit (s, ch) : -1;
  }
  s->stop = true;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
  for (unsigned i = 0; i < s->n; i++)
    if (s->conns[i].started) {
      pthread_join (s->conns[i].thread, NULL);
      s->conns[i].started = false;
    }
  if (s->failed >= 0)
    return failed_error (s);
  return r;
}

void
vmferry_stripes_out_free (struct vmferry_stripes_out *s)
{
  if (s == NULL)
    return;
  pthread_mutex_lock (&s->lock);
  s->stop = true;
  if (s->failed < 0)
    s->failed = (int) s->n;     /* drop what is queued */
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
  /* Threads still running may be in a write: it ends now. */
  for (unsigned i = 0; i < s->n; i++)
    if (s->conns[i].started)
      vmferry_remote_cancel (s->conns[i].remote);
  for (unsigned i = 0; i < s->n; i++) {
    struct conn *c = &s->conns[i];
    if (c->started)
      pthread_join (c->thread, NULL);
    for (unsigned k = 0; k < c->count; k++)
      free (c->queue[(c->head + k) % QUEUE_DEPTH]);
  }
  free (s->cur);
  while (s->spare) {
    struct chunk *ch = s->spare;
    s->spare = ch->next;
    free (ch);
  }
  pthread_mutex_destroy (&s->lock);
  pthread_cond_destroy (&s->cond);
  free (s->name);
  free (s);
}

int
vmferry_stripe_token (char token[VMFERRY_STRIPE_TOKEN_LEN + 1])
{
  unsigned char raw[VMFERRY_STRIPE_TOKEN_LEN / 2];

  if (getrandom (raw, sizeof raw, 0) != (ssize_t) sizeof raw) {
    vmferry_set_error_errno (errno, "getrandom");
    return -1;
  }
  vmferry_hex_encode (raw, sizeof raw, token);
  return 0;
}

/* ---- the rendezvous ---- */

static bool
token_ok (const char *t, size_t len)
{
  if (len != VMFERRY_STRIPE_TOKEN_LEN)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
      return false;
  return true;
}

int
vmferry_stripe_parse_stripes (const char *arg, unsigned *n_rtn,
                              char token[VMFERRY_STRIPE_TOKEN_LEN + 1])
{
  const char *colon = strchr (arg, ':');
  char *end;
  unsigned long n;

  errno = 0;
  n = strtoul (arg, &end, 10);
  if (colon == NULL || end != colon || errno || n < 2 ||
      n > VMFERRY_STRIPE_MAX || !token_ok (colon + 1, strlen (colon + 1))) {
    vmferry_set_error ("--stripes: '%s': expected N:TOKEN (N from 2 to %d, "
                       "TOKEN %d hex digits), as vmferry-send gives it",
                       arg, VMFERRY_STRIPE_MAX, VMFERRY_STRIPE_TOKEN_LEN);
    return -1;
  }
  memcpy (token, colon + 1, VMFERRY_STRIPE_TOKEN_LEN + 1);
  *n_rtn = (unsigned) n;
  return 0;
}

int
vmferry_stripe_parse_join (const char *arg,
                           char token[VMFERRY_STRIPE_TOKEN_LEN + 1],
                           unsigned *index_rtn)
{
  const char *colon = strchr (arg, ':');
  char *end;
  unsigned long i;

  if (colon && token_ok (arg, colon - arg)) {
    errno = 0;
    i = strtoul (colon + 1, &end, 10);
    if (!errno && *end == '\0' && end != colon + 1 && i >= 1 &&
        i < VMFERRY_STRIPE_MAX) {
      memcpy (token, arg, VMFERRY_STRIPE_TOKEN_LEN);
      token[VMFERRY_STRIPE_TOKEN_LEN] = '\0';
      *index_rtn = (unsigned) i;
      return 0;
    }
  }
  vmferry_set_error ("--join: '%s': expected TOKEN:I (TOKEN %d hex digits, I "
                     "from 1 to %d), as vmferry-send gives it",
                     arg, VMFERRY_STRIPE_TOKEN_LEN, VMFERRY_STRIPE_MAX - 1);
  return -1;
}

/* The private directory of the rendezvous sockets: made if CREATE, and
 * refused unless it is ours alone.
 */
static char *
join_dir (bool create)
{
  const char *tmp = getenv ("TMPDIR");
  char *dir;
  struct stat st;

  if (tmp == NULL || *tmp != '/')
    tmp = "/tmp";
  if (asprintf (&dir, "%s/vmferry-join-%u", tmp, (unsigned) getuid ()) < 0) {
    vmferry_set_error_errno (ENOMEM, "asprintf");
    return NULL;
  }
  if (create && mkdir (dir, 0700) < 0 && errno != EEXIST) {
    vmferry_set_error_errno (errno, "%s: mkdir", dir);
    free (dir);
    return NULL;
  }
  if (lstat (dir, &st) < 0) {
    vmferry_set_error_errno (errno, "%s", dir);
    free (dir);
    return NULL;
  }
  if (!S_ISDIR (st.st_mode) || st.st_uid != getuid () || (st.st_mode & 077)) {
    vmferry_set_error ("%s: not a private directory of this user (a directory, "
                       "owner uid %u, mode 0700): refusing to use it", dir,
                       (unsigned) getuid ());
    free (dir);
    return NULL;
  }
  return dir;
}

static int
socket_address (const char *dir, const char *token, struct sockaddr_un *sa)
{
  memset (sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if ((size_t) snprintf (sa->sun_path, sizeof sa->sun_path, "%s/%s", dir, token)
      >= sizeof sa->sun_path) {
    vmferry_set_error ("%s/%s: the socket path is too long (set TMPDIR to a "
                       "shorter directory)", dir, token);
    return -1;
  }
  return 0;
}

/* ---- receiving ---- */

struct vmferry_stripes_in {
  unsigned n;
  int fds[VMFERRY_STRIPE_MAX];          /* -1: not joined yet */
  int socks[VMFERRY_STRIPE_MAX];        /* the joiner's, for its status */
  int listen_fd;
  char *path;
  uint64_t seq;                 /* of the next chunk */
  uint32_t left;                /* bytes left in the current chunk */
  unsigned cur;                 /* its connection */
  bool ended;
};

struct vmferry_stripes_in *
vmferry_stripes_in_new (const char *token, unsigned n, int fd0)
{
  CLEANUP_FREE char *dir = NULL;
  struct vmferry_stripes_in *s;
  struct sockaddr_un sa;

  if (n < 2 || n > VMFERRY_STRIPE_MAX) {
    vmferry_set_error ("%u connections: give 2 to %d", n, VMFERRY_STRIPE_MAX);
    return NULL;
  }
  dir = join_dir (true);
  if (dir == NULL || socket_address (dir, token, &sa) < 0)
    return NULL;
  s = calloc (1, sizeof *s);
  if (s == NULL) {
    vmferry_set_error_errno (errno, "calloc");
    return NULL;
  }
  s->n = n;
  for (unsigned i = 0; i < n; i++)
    s->fds[i] = s->socks[i] = -1;
  s->fds[0] = fd0;
  s->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->listen_fd < 0) {
    vmferry_set_error_errno (errno, "socket");
    goto fail;
  }
  if (bind (s->listen_fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
    vmferry_set_error_errno (errno, "%s: bind", sa.sun_path);
    goto fail;
  }
  s->path = strdup (sa.sun_path);
  if (s->path == NULL || listen (s->listen_fd, VMFERRY_STRIPE_MAX) < 0) {
    vmferry_set_error_errno (errno, "%s: listen", sa.sun_path);
    goto fail;
  }
  return s;
 fail:
  vmferry_stripes_in_free (s, 1);
  return NULL;
}

/* A join is one message on the socket: the connection's index (u32 LE)
 * and, as SCM_RIGHTS, the descriptor it hands over.
 */
struct join_msg {
  uint32_t index;
  struct iovec iov;
  struct msghdr msg;
  /* Last: clang takes CMSG_SPACE for a variable size. */
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE (sizeof (int))];
  } ctl;
};

static void
join_msg_init (struct join_msg *m)
{
  memset (m, 0, sizeof *m);
  m->iov = (struct iovec) { .iov_base = &m->index, .iov_len = sizeof m->index };
  m->msg = (struct msghdr) { .msg_iov = &m->iov, .msg_iovlen = 1,
                             .msg_control = m->ctl.buf,
                             .msg_controllen = sizeof m->ctl.buf };
}

/* Hand FD over SOCK as connection INDEX.  0, or -1 with errno set. */
static int
send_join (int sock, unsigned index, int fd)
{
  struct join_msg m;
  struct cmsghdr *cm;

  join_msg_init (&m);
  m.index = htole32 (index);
  cm = CMSG_FIRSTHDR (&m.msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN (sizeof (int));
  memcpy (CMSG_DATA (cm), &fd, sizeof fd);
  if (sendmsg (sock, &m.msg, MSG_NOSIGNAL) != (ssize_t) sizeof m.index)
    return -1;
  return 0;
}

/* Receive a join from SOCK: the index and the descriptor (owned by the
 * caller), or -1 if the message is not one.
 */
static int
recv_join (int sock, unsigned *index_rtn, int *fd_rtn)
{
  struct join_msg m;
  struct cmsghdr *cm;
  ssize_t n;
  int fd = -1;

  join_msg_init (&m);
  n = recvmsg (sock, &m.msg, MSG_CMSG_CLOEXEC);
  cm = CMSG_FIRSTHDR (&m.msg);
  if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
      cm->cmsg_len == CMSG_LEN (sizeof (int)))
    memcpy (&fd, CMSG_DATA (cm), sizeof fd);
  if (n != (ssize_t) sizeof m.index || fd < 0) {
    if (fd >= 0)
      close (fd);
    return -1;
  }
  *index_rtn = le32toh (m.index);
  *fd_rtn = fd;
  return 0;
}

/* Take one joining connection from the listening socket.  Returns 1 when
 * one joined, 0 when it was refused (the reason logged), -1 on error.
 */
static int
accept_one (struct vmferry_stripes_in *s)
{
  struct ucred cred;
  socklen_t credlen = sizeof cred;
  struct pollfd pfd;
  unsigned index;
  int sock, fd;

  sock = accept4 (s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (sock < 0) {
    if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
      return 0;
    vmferry_set_error_errno (errno, "%s: accept", s->path);
    return -1;
  }
  if (getsockopt (sock, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0 ||
      cred.uid != getuid ()) {
    vmferry_debug ("%s: refused a connection from another user", s->path);
    goto refuse;
  }
  pfd = (struct pollfd) { .fd = sock, .events = POLLIN };
  if (poll (&pfd, 1, 5000) != 1)
    goto refuse;
  if (recv_join (sock, &index, &fd) < 0) {
    vmferry_debug ("%s: refused a malformed join", s->path);
    goto refuse;
  }
  if (index < 1 || index >= s->n || s->fds[index] >= 0) {
    vmferry_debug ("%s: refused a join as connection %u", s->path, index + 1);
    close (fd);
    goto refuse;
  }
  vmferry_debug ("%s: connection %u of %u joined", s->path, index + 1, s->n);
  s->fds[index] = fd;
  s->socks[index] = sock;
  return 1;
 refuse:
  close (sock);
  return 0;
}

/* Until connection I has joined.  Returns 1, 0 if a signal asked to
 * quit (quit.h: the stream ends there, as if cut), -1 on timeout or
 * error.
 */
static int
wait_joined (struct vmferry_stripes_in *s, unsigned i)
{
  double deadline = vmferry_monotonic () + JOIN_SECONDS;

  while (s->fds[i] < 0) {
    double left = deadline - vmferry_monotonic ();
    int r;

    if (left <= 0) {
      vmferry_set_error ("connection %u of %u did not join within %d seconds",
                         i + 1, s->n, JOIN_SECONDS);
      return -1;
    }
    r = vmferry_quit_poll (s->listen_fd, POLLIN, (int) (left * 1000) + 1);
    if (r == VMFERRY_QUIT)
      return 0;
    if (r < 0) {
      vmferry_prefix_error ("%s", s->path);
      return -1;
    }
    if (r == 1 && accept_one (s) < 0)
      return -1;
  }
  return 1;
}

/* read(2) of connection I: 0 means its end, or that a signal asked to
 * quit (quit.h).
 */
static ssize_t
read_conn (struct vmferry_stripes_in *s, unsigned i, void *buf, size_t len)
{
  ssize_t n = vmferry_quit_read (s->fds[i], buf, len);

  if (n < 0)
    vmferry_prefix_error ("connection %u of %u", i + 1, s->n);
  return n;
}

ssize_t
vmferry_stripes_read (void *opaque, void *buf, size_t len)
{
  struct vmferry_stripes_in *s = opaque;
  ssize_t n;

  if (s->ended || len == 0)
    return 0;
  if (s->left == 0) {
    unsigned char hdr[CHUNK_HEADER];
    unsigned i = s->seq % s->n;
    uint32_t clen;
    uint64_t seq;
    size_t got = 0;
    int r = wait_joined (s, i);

    if (r <= 0)
      return r;
    while (got < sizeof hdr) {
      n = read_conn (s, i, hdr + got, sizeof hdr - got);
      if (n <= 0)
        return n;             /* a cut: the stream reader says where */
      got += n;
    }
    memcpy (&clen, hdr + 4, 4);
    memcpy (&seq, hdr + 8, 8);
    clen = le32toh (clen);
    seq = le64toh (seq);
    if (memcmp (hdr, CHUNK_MAGIC, 4) != 0 || seq != s->seq ||
        clen > VMFERRY_STRIPE_CHUNK_MAX) {
      vmferry_set_error ("connection %u of %u: chunk %" PRIu64
                         ": bad chunk header "
                         "(magic, sequence %" PRIu64 " or length %" PRIu32 ")",
                         i + 1, s->n, s->seq, seq, clen);
      return -1;
    }
    s->seq++;
    s->cur = i;
    if (clen == 0) {
      s->ended = true;
      return 0;
    }
    s->left = clen;
  }
  /* Within the chunk of connection SEQ - 1 mod N. */
  assert (s->left <= VMFERRY_STRIPE_CHUNK_MAX &&
          s->cur == (s->seq - 1) % s->n);
  if (len > s->left)
    len = s->left;
  n = read_conn (s, s->cur, buf, len);
  if (n > 0)
    s->left -= n;
  return n;
}

void
vmferry_stripes_in_free (struct vmferry_stripes_in *s, int status)
{
  unsigned char st = (unsigned char) status;

  if (s == NULL)
    return;
  /* Joiners that came but were not needed wait for a status too.  The
   * socket goes first: a joiner that comes later finds no socket and,
   * with nothing on its input, ends with 0; those that connected before
   * are in the backlog, taken (and answered below) before it closes.
   */
  if (s->path)
    unlink (s->path);
  if (s->listen_fd >= 0) {
    struct pollfd pfd = { .fd = s->listen_fd, .events = POLLIN };
    for (unsigned k = 0;
         k < 2 * VMFERRY_STRIPE_MAX && poll (&pfd, 1, 0) == 1; k++)
      if (accept_one (s) < 0)
        break;
    close (s->listen_fd);
  }
  for (unsigned i = 1; i < s->n; i++) {
    if (s->socks[i] >= 0) {
      if (write (s->socks[i], &st, 1) != 1)
        vmferry_debug ("connection %u: could not pass the status", i + 1);
      close (s->socks[i]);
    }
    if (s->fds[i] >= 0)
      close (s->fds[i]);
  }
  free (s->path);
  free (s);
}

/* ---- joining ---- */

int
vmferry_stripe_join (const char *token, unsigned index, int fd)
{
  double deadline = vmferry_monotonic () + JOIN_SECONDS;
  CLEANUP_FREE char *dir = NULL;
  CLEANUP_CLOSE int sock = -1;
  struct sockaddr_un sa;
  unsigned char st;
  ssize_t n;
  int avail;

  for (;;) {
    struct pollfd pfd = { .fd = fd, .events = POLLIN };

    if (dir || (dir = join_dir (false)) != NULL) {
      if (socket_address (dir, token, &sa) < 0)
        return 1;
      sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (sock < 0) {
        vmferry_set_error_errno (errno, "socket");
        return 1;
      }
      if (connect (sock, (struct sockaddr *) &sa, sizeof sa) == 0)
        break;
      if (errno != ENOENT && errno != ECONNREFUSED) {
        vmferry_set_error_errno (errno, "%s: connect", sa.sun_path);
        return 1;
      }
      close (sock);
      sock = -1;
    }
    else if (vmferry_get_errno () != ENOENT)
      return 1;
    /* Our input ended with nothing in it: this connection carried
     * nothing (a stream shorter than the connections), or the sender
     * gave up before it began.  Either way no import needs us.
     */
    if (poll (&pfd, 1, 0) == 1 && (pfd.revents & (POLLIN | POLLHUP)) &&
        ioctl (fd, FIONREAD, &avail) == 0 && avail == 0)
      return 0;
    if (vmferry_monotonic () > deadline) {
      vmferry_set_error ("no vmferry-import is waiting for connection %u "
                         "(%s/%s did not appear within %d seconds)",
                         index + 1, dir ? dir : "the join directory", token,
                         JOIN_SECONDS);
      return 1;
    }
    poll (NULL, 0, 50);
  }
  if (send_join (sock, index, fd) < 0) {
    vmferry_set_error_errno (errno, "%s: sendmsg", sa.sun_path);
    return 1;
  }
  /* The import reads our input now; stay until it says how it ended, so
   * that sshd keeps the channel open.
   */
  do
    n = read (sock, &st, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) {
    vmferry_set_error ("connection %u: the vmferry-import it joined ended "
                       "without an exit status", index + 1);
    return 1;
  }
  return st;
}
