/* vmferry: the SSH transport (see ssh.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include "cleanup-libc.h"
#include "clock.h"
#include "error.h"
#include "full-rw.h"
#include "log.h"
#include "quote.h"
#include "ssh.h"
#include "vector.h"

extern char **environ;

#define MAX_CAPTURE (1024 * 1024)

/* A write that cannot go on waits for the remote at most this long
 * before it looks again at whether the remote is still there (and at
 * vmferry_remote_cancel).
 */
#define WAIT_SLICE_MS 200
/* The remote command has exited, but something it started keeps its
 * output open: what it wrote itself has arrived once nothing more came
 * for this long.
 */
#define EXIT_GRACE_SECONDS 2.0
/* A write that waits this long for a remote that is still there says
 * so (once); it goes on waiting: a busy importer may flush for minutes.
 */
#define STALL_NOTICE_SECONDS 60.0
/* A connection that died under a waiting write (the host is gone, the
 * link cut) is found by TCP keepalives (idle, interval, probes) while
 * nothing is in flight, and by the user timeout while something is
 * (keepalives are not sent then): milliseconds without an ACK.
 */
#define KEEPALIVE_IDLE 30
#define KEEPALIVE_INTERVAL 10
#define KEEPALIVE_PROBES 6
#define TCP_USER_TIMEOUT_MS (180 * 1000)

/* libssh lists chacha20 first; with AES-NI, AES-GCM costs far less CPU.
 * A Ciphers line in the user's config still wins (it is read later).
 */
#define CIPHERS_AESNI "aes128-gcm@openssh.com,aes256-gcm@openssh.com," \
  "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr"

struct remote_ops;

struct vmferry_ssh {
  const struct remote_ops *ops;
  struct vmferry_ssh_opts opts;
  char *user, *host;
  int port;
  char *label;                  /* "user@host:port" for messages */
  ssh_session session;          /* libssh */
};

DEFINE_VECTOR_TYPE (byte_vector, char);

struct vmferry_remote {
  struct vmferry_ssh *s;
  bool capture;
  struct byte_vector out;       /* captured stdout, NUL-terminated */
  uint64_t bytes;
  struct timespec started;
  int cancelled;                /* vmferry_remote_cancel (atomic) */
  /* libssh */
  ssh_channel channel;
  struct ssh_channel_callbacks_struct callbacks;
  bool exited;                  /* its exit status or signal came */
  bool eof_sent;                /* its input closed (read_line) */
  int exit_status;              /* -1: killed by a signal */
  char exit_signal[32];
  /* command */
  pid_t pid;
  int in_fd, out_fd;
};

struct remote_ops {
  int (*connect) (struct vmferry_ssh *s);
  int (*start) (struct vmferry_remote *r, const char *command);
  int (*write) (struct vmferry_remote *r, const void *buf, size_t len);
  int (*finish) (struct vmferry_remote *r);
  void (*abandon) (struct vmferry_remote *r);
  /* Close the input (once); then read its standard output into R->out
   * until it holds a whole line or ends.
   */
  int (*read_line) (struct vmferry_remote *r, bool close_input);
};

/* ---- helpers ---- */

int
vmferry_ssh_parse_destination (const char *dest, char **user_rtn,
                               char **host_rtn, int *port_rtn)
{
  const char *p = dest, *at, *hs, *he, *colon;
  char *user = NULL, *host = NULL;
  long port = 0;

  *user_rtn = *host_rtn = NULL;
  *port_rtn = 0;
  if (strncmp (p, "ssh://", 6) == 0)
    p += 6;
  at = strrchr (p, '@');
  if (at) {
    if (at == p)
      goto bad;
    user = strndup (p, at - p);
    p = at + 1;
  }
  if (*p == '[') {
    hs = p + 1;
    he = strchr (hs, ']');
    if (he == NULL)
      goto bad;
    colon = he[1] == ':' ? he + 1 : NULL;
    if (!colon && he[1] != '\0')
      goto bad;
  }
  else {
    hs = p;
    colon = strchr (p, ':');
    he = colon ? colon : p + strlen (p);
    if (colon && strchr (colon + 1, ':'))
      goto bad;
  }
  /* A trailing slash of a URI is fine. */
  if (he == hs)
    goto bad;
  host = strndup (hs, he - hs);
  if (colon) {
    char *end;
    errno = 0;
    port = strtol (colon + 1, &end, 10);
    if (errno || end == colon + 1 || (*end && strcmp (end, "/") != 0) ||
        port < 1 || port > 65535)
      goto bad;
  }
  else if (host[strlen (host) - 1] == '/')
    host[strlen (host) - 1] = '\0';
  if (host == NULL || host[0] == '\0' || host[0] == '-' ||
      strpbrk (host, " /'\"\\"))
    goto bad;
  *user_rtn = user;
  *host_rtn = host;
  *port_rtn = (int) port;
  return 0;
 bad:
  free (user);
  free (host);
  vmferry_set_error ("%s: not a destination ([ssh://][USER@]HOST[:PORT])",
                     dest);
  return -1;
}

/* Copy what the remote wrote to FD, as it is. */
static void
relay (int fd, const char *buf, size_t len)
{
  while (fd >= 0 && len > 0) {
    ssize_t n = write (fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    buf += n;
    len -= n;
  }
}

static int
capture_append (struct vmferry_remote *r, const char *buf, size_t len)
{
  if (r->out.len + len > MAX_CAPTURE) {
    vmferry_set_error ("%s: the remote command's answer is too long",
                       r->s->label);
    return -1;
  }
  if (byte_vector_reserve (&r->out, len + 1) == -1) {
    vmferry_set_error_errno (errno, "%s", r->s->label);
    return -1;
  }
  byte_vector_append_many (&r->out, buf, len);  /* reserved above */
  r->out.ptr[r->out.len] = '\0';
  return 0;
}

/* ---- libssh ---- */

static bool
have_aesni (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init ();
  return __builtin_cpu_supports ("aes");
#else
  return false;
#endif
}

/* Is KEY (base64 blob B64) marked @revoked in FILE?  libssh 0.10 does not
 * read markers (it skips such lines), so a revoked key that is also
 * listed plainly would pass: this is checked here, whatever the host
 * pattern, to fail closed.
 */
static bool
revoked_in (const char *file, const char *b64)
{
  CLEANUP_FCLOSE FILE *fp = NULL;
  char line[16384];

  if (file == NULL || (fp = fopen (file, "r")) == NULL)
    return false;
  while (fgets (line, sizeof line, fp)) {
    char *save, *tok[4];
    int n = 0;
    for (char *t = strtok_r (line, " \t\r\n", &save); t && n < 4;
         t = strtok_r (NULL, " \t\r\n", &save))
      tok[n++] = t;
    if (n == 4 && strcmp (tok[0], "@revoked") == 0 && strcmp (tok[3], b64) == 0)
      return true;
  }
  return false;
}

static int
check_host_key (struct vmferry_ssh *s)
{
  ssh_key key = NULL;
  unsigned char *hash = NULL;
  size_t hlen;
  char *fp = NULL, *b64 = NULL, *known = NULL, *global = NULL;
  const char *type;
  enum ssh_known_hosts_e state;
  int r = -1;

  if (ssh_get_server_publickey (s->session, &key) < 0 ||
      ssh_get_publickey_hash (key, SSH_PUBLICKEY_HASH_SHA256,
                              &hash, &hlen) < 0 ||
      (fp = ssh_get_fingerprint_hash (SSH_PUBLICKEY_HASH_SHA256,
                                      hash, hlen)) == NULL ||
      ssh_pki_export_pubkey_base64 (key, &b64) < 0) {
    vmferry_set_error ("%s: cannot read the host key: %s", s->label,
                       ssh_get_error (s->session));
    goto out;
  }
  type = ssh_key_type_to_char (ssh_key_type (key));
  if (ssh_options_get (s->session, SSH_OPTIONS_KNOWNHOSTS, &known) < 0)
    known = NULL;
  if (ssh_options_get (s->session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, &global) < 0)
    global = NULL;
  if (revoked_in (known, b64) || revoked_in (global, b64)) {
    vmferry_set_error ("%s: the host key %s %s is marked @revoked in "
                       "known_hosts; nothing was sent", s->label, type, fp);
    goto out;
  }
  state = ssh_session_is_known_server (s->session);
  switch (state) {
  case SSH_KNOWN_HOSTS_OK:
    vmferry_debug ("%s: host key %s %s is known", s->label, type, fp);
    r = 0;
    break;
  case SSH_KNOWN_HOSTS_CHANGED:
    vmferry_set_error ("%s: the host key has CHANGED (it is now %s %s): "
                       "someone could be intercepting the connection; nothing "
                       "was sent.  If the change is expected, remove the old "
                       "key (ssh-keygen -R) and check the new one", s->label,
                       type, fp);
    break;
  case SSH_KNOWN_HOSTS_OTHER:
    vmferry_set_error ("%s: the host offers a %s key %s, but known_hosts holds "
                       "a key of another type for it; nothing was sent",
                       s->label, type, fp);
    break;
  case SSH_KNOWN_HOSTS_NOT_FOUND:
  case SSH_KNOWN_HOSTS_UNKNOWN:
    if (!s->opts.accept_new_host_key) {
      vmferry_set_error ("%s: unknown host key %s %s (not in known_hosts); "
                         "nothing was sent.  Check the fingerprint, then add "
                         "it (ssh-keyscan) or pass --accept-new-host-key",
                         s->label, type, fp);
      break;
    }
    if (ssh_session_update_known_hosts (s->session) != SSH_OK) {
      vmferry_set_error ("%s: cannot add the host key to %s: %s", s->label,
                         known ? known : "known_hosts",
                         ssh_get_error (s->session));
      break;
    }
    vmferry_notice ("%s: first contact: added host key %s %s to %s", s->label,
                    type, fp, known ? known : "known_hosts");
    r = 0;
    break;
  case SSH_KNOWN_HOSTS_ERROR:
  default:
    vmferry_set_error ("%s: cannot check the host key %s %s against "
                       "known_hosts: %s; nothing was sent", s->label, type, fp,
                       ssh_get_error (s->session));
    break;
  }
 out:
  ssh_string_free_char (fp);
  ssh_string_free_char (b64);
  ssh_string_free_char (known);
  ssh_string_free_char (global);
  ssh_clean_pubkey_hash (&hash);
  ssh_key_free (key);
  return r;
}

/* PROXY with the %h, %p and %r libssh fills in, for a message that can
 * be pasted into a shell.  Caller frees; NULL if out of memory.
 */
static char *
proxy_for_humans (const char *proxy, const char *host, unsigned port,
                  const char *user)
{
  char *out = NULL;
  size_t len = 0;
  FILE *fp = open_memstream (&out, &len);

  if (fp == NULL)
    return NULL;
  for (const char *p = proxy; *p; p++) {
    if (p[0] != '%' || p[1] == '\0') {
      fputc (*p, fp);
      continue;
    }
    switch (*++p) {
    case 'h': fputs (host, fp); break;
    case 'p': fprintf (fp, "%u", port); break;
    case 'r': fputs (user ? user : "%r", fp); break;
    case '%': fputc ('%', fp); break;
    default: fputc ('%', fp); fputc (*p, fp); break;
    }
  }
  if (fclose (fp) != 0) {
    free (out);
    return NULL;
  }
  return out;
}

/* A write waits for the remote without a deadline while the remote is
 * there; these make a dead connection an error within a few minutes.
 * Not a socket (a ProxyCommand's pipe): its proxy has its own.
 */
static void
set_keepalive (int fd)
{
  int on = 1, idle = KEEPALIVE_IDLE, intvl = KEEPALIVE_INTERVAL;
  int cnt = KEEPALIVE_PROBES;
  unsigned user = TCP_USER_TIMEOUT_MS;

  if (fd < 0 || setsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0)
    return;
  setsockopt (fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt (fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt (fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  setsockopt (fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof user);
}

static int
libssh_connect (struct vmferry_ssh *s)
{
  char *user = NULL, *host = NULL, *proxy = NULL;
  CLEANUP_FREE char *shown = NULL;
  unsigned port = 0;
  int rc;

  s->session = ssh_new ();
  if (s->session == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s: ssh_new", s->label);
    return -1;
  }
  if (ssh_options_set (s->session, SSH_OPTIONS_HOST, s->host) < 0 ||
      (s->user &&
       ssh_options_set (s->session, SSH_OPTIONS_USER, s->user) < 0) ||
      (have_aesni () &&
       (ssh_options_set (s->session, SSH_OPTIONS_CIPHERS_C_S,
                         CIPHERS_AESNI) < 0 ||
        ssh_options_set (s->session, SSH_OPTIONS_CIPHERS_S_C,
                         CIPHERS_AESNI) < 0))) {
    vmferry_set_error ("%s: %s", s->label, ssh_get_error (s->session));
    return -1;
  }
  /* ~/.ssh/config, then /etc/ssh/ssh_config, or only the file given
   * (as ssh -F does).  libssh lets the config's Port override one set
   * before, so ours is set after.
   */
  if (s->opts.config && access (s->opts.config, R_OK) < 0) {
    vmferry_set_error_errno (errno, "%s: cannot read the SSH configuration %s",
                             s->label, s->opts.config);
    return -1;
  }
  if (ssh_options_parse_config (s->session, s->opts.config) < 0) {
    vmferry_set_error ("%s: cannot read the SSH configuration%s%s: %s",
                       s->label, s->opts.config ? " " : "",
                       s->opts.config ? s->opts.config : "",
                       ssh_get_error (s->session));
    return -1;
  }
  /* The config's LogLevel would make libssh print on stderr. */
  {
    int v = vmferry_get_verbosity () >= VMFERRY_LOG_DEBUG
            ? SSH_LOG_WARNING : SSH_LOG_NOLOG;
    ssh_options_set (s->session, SSH_OPTIONS_LOG_VERBOSITY, &v);
  }
  if (s->port) {
    port = s->port;
    ssh_options_set (s->session, SSH_OPTIONS_PORT, &port);
  }
  ssh_options_get (s->session, SSH_OPTIONS_HOST, &host);
  ssh_options_get (s->session, SSH_OPTIONS_USER, &user);
  ssh_options_get_port (s->session, &port);
  /* A ProxyJump in the configuration is a ProxyCommand by now (libssh
   * 0.10 turns it into "ssh -W [%h]:%p JUMP").  "none" is none.
   */
  if (ssh_options_get (s->session, SSH_OPTIONS_PROXYCOMMAND, &proxy) < 0 ||
      (proxy && strcasecmp (proxy, "none") == 0)) {
    ssh_string_free_char (proxy);
    proxy = NULL;
  }
  if (proxy)
    shown = proxy_for_humans (proxy, host ? host : s->host, port, user);
  vmferry_verbose ("%s: connecting to %s@%s port %u%s%s", s->label,
                   user ? user : "?", host ? host : s->host, port,
                   shown ? " through " : "", shown ? shown : "");
  ssh_string_free_char (host);
  ssh_string_free_char (user);
  ssh_string_free_char (proxy);

  if (ssh_connect (s->session) != SSH_OK) {
    /* libssh sends the proxy command's own messages to /dev/null. */
    if (shown)
      vmferry_set_error ("%s: cannot connect through the configuration's "
                         "ProxyJump or ProxyCommand, %s (run it to see its "
                         "messages): %s", s->label, shown,
                         ssh_get_error (s->session));
    else
      vmferry_set_error ("%s: cannot connect: %s", s->label,
                         ssh_get_error (s->session));
    return -1;
  }
  if (check_host_key (s) < 0)
    return -1;
  /* Agent first, then the identity files (config's and the defaults);
   * an encrypted key without an agent fails: no prompts.
   */
  rc = ssh_userauth_publickey_auto (s->session, NULL, NULL);
  if (rc != SSH_AUTH_SUCCESS) {
    vmferry_set_error ("%s: authentication failed (public keys from the agent "
                       "and the identity files were refused; vmferry never "
                       "asks for a password)%s%s", s->label,
                       rc == SSH_AUTH_ERROR ? ": " : "",
                       rc == SSH_AUTH_ERROR ? ssh_get_error (s->session) : "");
    return -1;
  }
  {
    const char *c = ssh_get_cipher_out (s->session);
    vmferry_verbose ("%s: authenticated; cipher %s", s->label, c ? c : "?");
  }
  set_keepalive (ssh_get_fd (s->session));
  return 0;
}

static void
libssh_drain (struct vmferry_remote *r)
{
  char buf[16384];
  int n;

  while ((n = ssh_channel_read_nonblocking (r->channel, buf, sizeof buf,
                                            1)) > 0)
    relay (r->s->opts.stderr_fd, buf, n);
  if (!r->capture)
    while ((n = ssh_channel_read_nonblocking (r->channel, buf, sizeof buf,
                                              0)) > 0)
      relay (r->s->opts.stdout_fd, buf, n);
}

/* libssh keeps the exit status for ssh_channel_get_exit_status, which
 * waits for it; these say without waiting that the command is gone.
 */
static void
libssh_on_exit_status (ssh_session session, ssh_channel channel, int status,
                       void *opaque)
{
  struct vmferry_remote *r = opaque;

  (void) session;
  (void) channel;
  r->exit_status = status;
  r->exited = true;
}

static void
libssh_on_exit_signal (ssh_session session, ssh_channel channel,
                       const char *signal, int core, const char *errmsg,
                       const char *lang, void *opaque)
{
  struct vmferry_remote *r = opaque;

  (void) session;
  (void) channel;
  (void) core;
  (void) errmsg;
  (void) lang;
  snprintf (r->exit_signal, sizeof r->exit_signal, "%s", signal ? signal : "?");
  r->exit_status = -1;
  r->exited = true;
}

static int
libssh_start (struct vmferry_remote *r, const char *command)
{
  struct vmferry_ssh *s = r->s;

  r->channel = ssh_channel_new (s->session);
  if (r->channel == NULL) {
    vmferry_set_error ("%s: cannot run %s: %s", s->label, command,
                       ssh_get_error (s->session));
    return -1;
  }
  ssh_callbacks_init (&r->callbacks);
  r->callbacks.userdata = r;
  r->callbacks.channel_exit_status_function = libssh_on_exit_status;
  r->callbacks.channel_exit_signal_function = libssh_on_exit_signal;
  if (ssh_set_channel_callbacks (r->channel, &r->callbacks) != SSH_OK ||
      ssh_channel_open_session (r->channel) != SSH_OK ||
      ssh_channel_request_exec (r->channel, command) != SSH_OK) {
    vmferry_set_error ("%s: cannot run %s: %s", s->label, command,
                       ssh_get_error (s->session));
    return -1;
  }
  return 0;
}

/* The remote command cannot read what we write any more: it exited,
 * its channel closed (libssh holds a close back while output is unread:
 * reading it lets the close complete), or we were asked to stop.  Sets
 * the error.
 */
static bool
libssh_gone (struct vmferry_remote *r)
{
  const char *label = r->s->label;

  libssh_drain (r);
  if (__atomic_load_n (&r->cancelled, __ATOMIC_ACQUIRE))
    vmferry_set_error ("%s: stopped", label);
  else if (r->exit_signal[0])
    vmferry_set_error ("%s: the remote command was killed by signal %s before "
                       "it read all of its input", label, r->exit_signal);
  else if (r->exited)
    vmferry_set_error ("%s: the remote command exited with status %d before it "
                       "read all of its input", label, r->exit_status);
  else if (ssh_channel_is_closed (r->channel))
    vmferry_set_error ("%s: the remote command closed its channel before it "
                       "read all of its input", label);
  else
    return false;
  return true;
}

/* Wait at most WAIT_SLICE_MS for the session to be readable, or
 * writable when libssh holds bytes it could not send yet.  Counts the
 * time the remote reads nothing in *STALLED (seconds), and says once
 * when that grows long.
 */
static void
libssh_wait (struct vmferry_remote *r, double *stalled, bool *noticed)
{
  ssh_session session = r->s->session;
  struct pollfd pfd = { .fd = ssh_get_fd (session), .events = POLLIN };
  double t0 = vmferry_monotonic ();

  if (ssh_get_status (session) & SSH_WRITE_PENDING)
    pfd.events |= POLLOUT;
  if (pfd.fd >= 0)
    poll (&pfd, 1, WAIT_SLICE_MS);
  *stalled += vmferry_monotonic () - t0;
  if (*stalled >= STALL_NOTICE_SECONDS && !*noticed) {
    vmferry_notice ("%s: the remote command has read nothing for %.0f s; "
                    "waiting for it", r->s->label, *stalled);
    *noticed = true;
  }
}

/* libssh's own waits, for the channel's window and for the socket,
 * have no deadline in blocking mode and end neither when the command
 * exits nor when its channel closes with output unread: writes nobody
 * reads then wait for ever.  So the session is non-blocking while we
 * write, and we wait here, a slice at a time, watching the remote.
 */
static int
libssh_write (struct vmferry_remote *r, const void *buf, size_t len)
{
  ssh_session session = r->s->session;
  const char *p = buf;
  double stalled = 0;
  bool noticed = false;
  int ret = -1;

  ssh_set_blocking (session, 0);
  while (len > 0) {
    uint32_t k = len > 1024 * 1024 ? 1024 * 1024 : (uint32_t) len;
    int n;

    if (r->exited || __atomic_load_n (&r->cancelled, __ATOMIC_ACQUIRE)) {
      libssh_gone (r);
      goto out;
    }
    /* Takes what the window allows (into libssh's buffer, sent as
     * the socket allows); 0 when the window is closed.
     */
    n = ssh_channel_write (r->channel, p, k);
    if (n == SSH_ERROR) {
      if (!libssh_gone (r))
        vmferry_set_error ("%s: the remote command stopped reading: %s",
                           r->s->label, ssh_get_error (session));
      goto out;
    }
    if (n > 0) {
      p += n;
      len -= n;
      stalled = 0;
      continue;
    }
    if (libssh_gone (r))
      goto out;
    libssh_wait (r, &stalled, &noticed);
  }
  /* Return once the bytes are with the kernel, as a blocking write
   * would: the caller may not write again for a while.
   */
  for (;;) {
    int f = ssh_blocking_flush (session, WAIT_SLICE_MS);

    if (f == SSH_OK)
      break;
    if (f == SSH_ERROR) {
      if (!libssh_gone (r))
        vmferry_set_error ("%s: the remote command stopped reading: %s",
                           r->s->label, ssh_get_error (session));
      goto out;
    }
    if (libssh_gone (r))
      goto out;
  }
  libssh_drain (r);
  ret = 0;
 out:
  ssh_set_blocking (session, 1);
  return ret;
}

static int
libssh_finish (struct vmferry_remote *r)
{
  char buf[16384];
  double quiet_since = vmferry_monotonic ();
  int n, status;

  if (!r->eof_sent)
    ssh_channel_send_eof (r->channel);
  for (;;) {
    int m;

    n = ssh_channel_read_nonblocking (r->channel, buf, sizeof buf, 1);
    if (n > 0)
      relay (r->s->opts.stderr_fd, buf, n);
    m = ssh_channel_read_nonblocking (r->channel, buf, sizeof buf, 0);
    if (m > 0) {
      if (r->capture) {
        if (capture_append (r, buf, m) < 0)
          return -1;
      }
      else
        relay (r->s->opts.stdout_fd, buf, m);
    }
    if (n > 0 || m > 0) {
      quiet_since = vmferry_monotonic ();
      continue;
    }
    if (ssh_channel_is_eof (r->channel) || ssh_channel_is_closed (r->channel) ||
        n == SSH_ERROR || m == SSH_ERROR)
      break;
    /* Exited, but its output is held open by something it started
     * (sshd then keeps the channel): what it wrote itself is here.
     */
    if (r->exited && vmferry_monotonic () - quiet_since >= EXIT_GRACE_SECONDS) {
      vmferry_debug ("%s: the remote command exited; its output is still held "
                     "open by another process there", r->s->label);
      break;
    }
    ssh_channel_poll_timeout (r->channel, WAIT_SLICE_MS, 0);
  }
  /* What is left of stderr after stdout's end. */
  while ((n = ssh_channel_read_nonblocking (r->channel, buf, sizeof buf,
                                            1)) > 0)
    relay (r->s->opts.stderr_fd, buf, n);
  status = r->exited ? r->exit_status
           : ssh_channel_get_exit_status (r->channel);
  if (r->exit_signal[0]) {
    vmferry_set_error ("%s: the remote command was killed by signal %s",
                       r->s->label, r->exit_signal);
    return -1;
  }
  if (status < 0) {
    vmferry_set_error ("%s: the remote command ended without an exit status "
                       "(killed, or the connection was lost)", r->s->label);
    return -1;
  }
  return status;
}

/* As libssh_finish reads, until a line is whole or the output ended. */
static int
libssh_read_line (struct vmferry_remote *r, bool close_input)
{
  char buf[16384];
  double quiet_since = vmferry_monotonic ();

  if (close_input && !r->eof_sent) {
    ssh_channel_send_eof (r->channel);
    r->eof_sent = true;
  }
  while (memchr (r->out.ptr ? r->out.ptr : "", '\n', r->out.len) == NULL) {
    int n = ssh_channel_read_nonblocking (r->channel, buf, sizeof buf, 1);
    int m;

    if (n > 0)
      relay (r->s->opts.stderr_fd, buf, n);
    m = ssh_channel_read_nonblocking (r->channel, buf, sizeof buf, 0);
    if (m > 0 && capture_append (r, buf, m) < 0)
      return -1;
    if (n > 0 || m > 0) {
      quiet_since = vmferry_monotonic ();
      continue;
    }
    if (ssh_channel_is_eof (r->channel) || ssh_channel_is_closed (r->channel) ||
        n == SSH_ERROR || m == SSH_ERROR ||
        (r->exited &&
         vmferry_monotonic () - quiet_since >= EXIT_GRACE_SECONDS))
      break;
    ssh_channel_poll_timeout (r->channel, WAIT_SLICE_MS, 0);
  }
  return 0;
}

static void
libssh_abandon (struct vmferry_remote *r)
{
  (void) r;                     /* closing the channel is enough */
}

static const struct remote_ops libssh_ops = {
  .connect = libssh_connect, .start = libssh_start, .write = libssh_write,
  .finish = libssh_finish, .abandon = libssh_abandon,
  .read_line = libssh_read_line,
};

/* ---- a command (--ssh-command) ---- */

static int
command_connect (struct vmferry_ssh *s)
{
  (void) s;                     /* each command connects by itself */
  return 0;
}

static int
command_start (struct vmferry_remote *r, const char *command)
{
  struct vmferry_ssh *s = r->s;
  CLEANUP_FREE char *script = NULL, *dest = NULL;
  posix_spawn_file_actions_t fa;
  int in[2] = { -1, -1 }, out[2] = { -1, -1 }, null_fd = -1, err;
  char *argv[7];

  /* OpenSSH takes ssh://user@host:port; keep plain forms plain. */
  if (s->port)
    err = asprintf (&dest, "ssh://%s%s%s:%d", s->user ? s->user : "",
                    s->user ? "@" : "", s->host, s->port);
  else
    err = asprintf (&dest, "%s%s%s", s->user ? s->user : "", s->user ? "@" : "",
                    s->host);
  if (err < 0 || asprintf (&script, "%s \"$@\"", s->opts.ssh_command) < 0) {
    vmferry_set_error_errno (ENOMEM, "%s", s->label);
    return -1;
  }
  if (pipe2 (in, O_CLOEXEC) < 0 || (r->capture && pipe2 (out, O_CLOEXEC) < 0) ||
      (null_fd = open ("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
    vmferry_set_error_errno (errno, "%s: pipe", s->label);
    goto fail;
  }
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, in[0], 0);
  posix_spawn_file_actions_adddup2 (&fa, r->capture ? out[1]
                                    : s->opts.stdout_fd >= 0
                                    ? s->opts.stdout_fd : null_fd, 1);
  posix_spawn_file_actions_adddup2 (&fa, s->opts.stderr_fd >= 0
                                    ? s->opts.stderr_fd : null_fd, 2);
  argv[0] = (char *) "/bin/sh";
  argv[1] = (char *) "-c";
  argv[2] = script;
  argv[3] = (char *) "sh";
  argv[4] = dest;
  argv[5] = (char *) command;
  argv[6] = NULL;
  vmferry_debug ("running: %s %s %s", s->opts.ssh_command, dest, command);
  err = posix_spawn (&r->pid, "/bin/sh", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  if (err) {
    vmferry_set_error_errno (err, "%s: cannot run %s", s->label,
                             s->opts.ssh_command);
    goto fail;
  }
  close (in[0]);
  r->in_fd = in[1];
  /* Our end only: command_write waits in poll(2), watching for a
   * cancel (vmferry_remote_cancel), not in write(2).
   */
  fcntl (r->in_fd, F_SETFL, fcntl (r->in_fd, F_GETFL) | O_NONBLOCK);
  if (r->capture) {
    close (out[1]);
    r->out_fd = out[0];
  }
  close (null_fd);
  return 0;
 fail:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0) close (in[i]);
    if (out[i] >= 0) close (out[i]);
  }
  if (null_fd >= 0)
    close (null_fd);
  return -1;
}

static int
command_write (struct vmferry_remote *r, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    struct pollfd pfd = { .fd = r->in_fd, .events = POLLOUT };
    ssize_t n;

    if (__atomic_load_n (&r->cancelled, __ATOMIC_ACQUIRE)) {
      vmferry_set_error ("%s: stopped", r->s->label);
      return -1;
    }
    n = write (r->in_fd, p, len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      poll (&pfd, 1, WAIT_SLICE_MS);
      continue;
    }
    if (n < 0) {
      vmferry_set_error_errno (errno, "%s: the remote command stopped reading",
                               r->s->label);
      return -1;
    }
    p += n;
    len -= n;
  }
  return 0;
}

static int
command_finish (struct vmferry_remote *r)
{
  int status;

  if (r->in_fd >= 0)
    close (r->in_fd);
  r->in_fd = -1;
  if (r->capture) {
    char buf[16384];
    ssize_t n;
    while ((n = read (r->out_fd, buf, sizeof buf)) != 0) {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 || capture_append (r, buf, n) < 0) {
        if (n < 0)
          vmferry_set_error_errno (errno, "%s: read", r->s->label);
        return -1;
      }
    }
  }
  while (waitpid (r->pid, &status, 0) < 0)
    if (errno != EINTR) {
      vmferry_set_error_errno (errno, "%s: waitpid", r->s->label);
      return -1;
    }
  r->pid = -1;
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  vmferry_set_error ("%s: %s was killed by signal %d", r->s->label,
                     r->s->opts.ssh_command, WTERMSIG (status));
  return -1;
}

/* The command's output is a pipe of ours: read it until a line is
 * whole or it ends.
 */
static int
command_read_line (struct vmferry_remote *r, bool close_input)
{
  char buf[16384];

  if (close_input && r->in_fd >= 0) {
    close (r->in_fd);
    r->in_fd = -1;
  }
  while (memchr (r->out.ptr ? r->out.ptr : "", '\n', r->out.len) == NULL) {
    ssize_t n = read (r->out_fd, buf, sizeof buf);

    if (n == 0)
      break;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      vmferry_set_error_errno (errno, "%s: read", r->s->label);
      return -1;
    }
    if (capture_append (r, buf, n) < 0)
      return -1;
  }
  return 0;
}

static void
command_abandon (struct vmferry_remote *r)
{
  int status;

  if (r->in_fd >= 0)
    close (r->in_fd);
  r->in_fd = -1;
  if (r->pid > 0)
    waitpid (r->pid, &status, 0);
}

static const struct remote_ops command_ops = {
  .connect = command_connect, .start = command_start, .write = command_write,
  .finish = command_finish, .abandon = command_abandon,
  .read_line = command_read_line,
};

/* ---- libvirt's connection to the destination ---- */

/* Append S to *BUF (realloc'd), percent-encoding all but unreserved
 * characters (and KEEP), as a URI component.
 */
static int
uri_append (char **buf, const char *s, const char *keep)
{
  size_t old = *buf ? strlen (*buf) : 0;
  char *p = realloc (*buf, old + 3 * strlen (s) + 1), *q;

  if (p == NULL) {
    vmferry_set_error_errno (ENOMEM, "libvirt URI");
    return -1;
  }
  *buf = p;
  q = p + old;
  for (; *s; s++) {
    unsigned char c = *s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || strchr ("-._~", c) ||
        (keep && strchr (keep, c)))
      *q++ = c;
    else
      q += sprintf (q, "%%%02X", c);
  }
  *q = '\0';
  return 0;
}

/* The helper libvirt runs as its ssh: "exec CMD "$@"", where CMD is
 * the command line OPTS give.  Returns its path (caller frees), NULL
 * with the error set.
 */
static char *
make_uri_helper (const struct vmferry_ssh_opts *opts)
{
  const char *tmp = getenv ("TMPDIR");
  CLEANUP_FREE char *cmd = NULL, *dir = NULL, *text = NULL;
  char *path = NULL;
  int fd = -1;

  if (opts->ssh_command)
    cmd = strdup (opts->ssh_command);
  else {
    /* libvirt's ssh need not run where we do. */
    CLEANUP_FREE char *abs = realpath (opts->config, NULL);
    if (abs == NULL) {
      vmferry_set_error_errno (errno, "%s: cannot read the SSH configuration",
                               opts->config);
      return NULL;
    }
    if ((cmd = strdup ("ssh -F")) != NULL &&
        vmferry_shell_quote_append (&cmd, abs) < 0)
      return NULL;
  }
  if (cmd == NULL ||
      asprintf (&dir, "%s/vmferry-ssh-XXXXXX",
                tmp && *tmp == '/' ? tmp : "/tmp") < 0) {
    dir = NULL;
    vmferry_set_error_errno (ENOMEM, "libvirt URI");
    return NULL;
  }
  if (asprintf (&text, "#!/bin/sh\n# vmferry: libvirt's ssh, as the data's\n"
                "exec %s \"$@\"\n", cmd) < 0) {
    text = NULL;
    vmferry_set_error_errno (ENOMEM, "libvirt URI");
    return NULL;
  }
  if (mkdtemp (dir) == NULL) {
    vmferry_set_error_errno (errno, "%s: cannot make a directory for libvirt's "
                             "ssh command", dir);
    return NULL;
  }
  if (asprintf (&path, "%s/ssh", dir) < 0) {
    path = NULL;
    vmferry_set_error_errno (ENOMEM, "libvirt URI");
    rmdir (dir);
    return NULL;
  }
  fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0700);
  if (fd < 0) {
    vmferry_set_error_errno (errno, "%s: cannot create", path);
    vmferry_ssh_uri_helper_remove (path);
    return NULL;
  }
  if (vmferry_write_full (fd, path, text, strlen (text)) < 0) {
    close (fd);
    vmferry_ssh_uri_helper_remove (path);
    return NULL;
  }
  if (close (fd) < 0) {
    vmferry_set_error_errno (errno, "%s: cannot write", path);
    vmferry_ssh_uri_helper_remove (path);
    return NULL;
  }
  return path;
}

char *
vmferry_ssh_libvirt_uri (const struct vmferry_ssh_opts *opts, char **helper_rtn)
{
  CLEANUP_FREE char *user = NULL, *host = NULL;
  char *uri = NULL, *helper = NULL;
  int port;

  *helper_rtn = NULL;
  if (vmferry_ssh_parse_destination (opts->destination, &user, &host,
                                     &port) < 0)
    return NULL;
  if ((opts->ssh_command || opts->config) && !(helper = make_uri_helper (opts)))
    return NULL;
  if ((uri = strdup ("qemu+ssh://")) == NULL)
    goto oom;
  if (user && (uri_append (&uri, user, NULL) < 0 ||
               uri_append (&uri, "@", "@") < 0))
    goto fail;
  if (uri_append (&uri, strchr (host, ':') ? "[" : "", "[") < 0 ||
      uri_append (&uri, host, ":") < 0 ||
      uri_append (&uri, strchr (host, ':') ? "]" : "", "]") < 0)
    goto fail;
  if (port) {
    char p[16];
    snprintf (p, sizeof p, ":%d", port);
    if (uri_append (&uri, p, ":") < 0)
      goto fail;
  }
  if (uri_append (&uri, "/system", "/") < 0 ||
      (helper && (uri_append (&uri, "?command=", "?=") < 0 ||
                  uri_append (&uri, helper, "/") < 0)))
    goto fail;
  *helper_rtn = helper;
  return uri;
 oom:
  vmferry_set_error_errno (ENOMEM, "libvirt URI");
 fail:
  free (uri);
  vmferry_ssh_uri_helper_remove (helper);
  return NULL;
}

void
vmferry_ssh_uri_helper_remove (char *helper)
{
  char *slash;

  if (helper == NULL)
    return;
  unlink (helper);
  slash = strrchr (helper, '/');
  if (slash) {
    *slash = '\0';
    rmdir (helper);
  }
  free (helper);
}

/* ---- interface ---- */

struct vmferry_ssh *
vmferry_ssh_connect (const struct vmferry_ssh_opts *opts)
{
  struct vmferry_ssh *s = calloc (1, sizeof *s);

  if (s == NULL) {
    vmferry_set_error_errno (ENOMEM, "ssh");
    return NULL;
  }
  s->opts = *opts;
  s->ops = opts->ssh_command ? &command_ops : &libssh_ops;
  if (vmferry_ssh_parse_destination (opts->destination, &s->user, &s->host,
                                     &s->port) < 0)
    goto fail;
  s->label = strdup (s->host);
  if (s->label == NULL) {
    vmferry_set_error_errno (ENOMEM, "ssh");
    goto fail;
  }
  if (s->ops->connect (s) < 0)
    goto fail;
  return s;
 fail:
  vmferry_ssh_free (s);
  return NULL;
}

void
vmferry_ssh_free (struct vmferry_ssh *s)
{
  if (s == NULL)
    return;
  if (s->session) {
    ssh_disconnect (s->session);
    ssh_free (s->session);
  }
  free (s->user);
  free (s->host);
  free (s->label);
  free (s);
}

const char *
vmferry_ssh_host (const struct vmferry_ssh *s)
{
  return s->label;
}

bool
vmferry_ssh_can_prestart (const struct vmferry_ssh *s)
{
  return s->ops == &libssh_ops;
}

static void
remote_free (struct vmferry_remote *r)
{
  if (r->channel) {
    /* libssh may keep the channel until the remote's close, and must
     * not call us then.
     */
    ssh_remove_channel_callbacks (r->channel, &r->callbacks);
    ssh_channel_close (r->channel);
    ssh_channel_free (r->channel);
  }
  if (r->in_fd >= 0)
    close (r->in_fd);
  if (r->out_fd >= 0)
    close (r->out_fd);
  byte_vector_reset (&r->out);
  free (r);
}

struct vmferry_remote *
vmferry_remote_start (struct vmferry_ssh *s, const char *command, bool capture)
{
  struct vmferry_remote *r = calloc (1, sizeof *r);

  if (r == NULL) {
    vmferry_set_error_errno (ENOMEM, "ssh");
    return NULL;
  }
  r->s = s;
  r->capture = capture;
  r->exit_status = -1;
  r->pid = -1;
  r->in_fd = r->out_fd = -1;
  clock_gettime (CLOCK_MONOTONIC, &r->started);
  vmferry_verbose ("%s: running %s", s->label, command);
  if (s->ops->start (r, command) < 0) {
    remote_free (r);
    return NULL;
  }
  return r;
}

/* --bandwidth: sleep until the bytes so far fit the rate. */
static void
throttle (struct vmferry_remote *r)
{
  struct timespec now, ts;
  double due, elapsed;

  if (r->s->opts.bandwidth == 0)
    return;
  clock_gettime (CLOCK_MONOTONIC, &now);
  elapsed = (now.tv_sec - r->started.tv_sec) +
            (now.tv_nsec - r->started.tv_nsec) / 1e9;
  due = (double) r->bytes / r->s->opts.bandwidth;
  if (due > elapsed) {
    double d = due - elapsed;
    ts.tv_sec = (time_t) d;
    ts.tv_nsec = (long) ((d - ts.tv_sec) * 1e9);
    while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
      ;
  }
}

int
vmferry_remote_writev (void *remote, const struct iovec *iov, int iovcnt)
{
  struct vmferry_remote *r = remote;

  for (int i = 0; i < iovcnt; i++) {
    if (r->s->ops->write (r, iov[i].iov_base, iov[i].iov_len) < 0)
      return -1;
    r->bytes += iov[i].iov_len;
  }
  throttle (r);
  return 0;
}

uint64_t
vmferry_remote_bytes (const struct vmferry_remote *r)
{
  return r->bytes;
}

void
vmferry_remote_cancel (struct vmferry_remote *r)
{
  if (r)
    __atomic_store_n (&r->cancelled, 1, __ATOMIC_RELEASE);
}

int
vmferry_remote_finish (struct vmferry_remote *r, char **out_rtn,
                       size_t *len_rtn)
{
  int status = r->s->ops->finish (r);


  if (status >= 0 && out_rtn) {
    *out_rtn = r->out.ptr ? r->out.ptr : strdup ("");
    *len_rtn = r->out.len;
    r->out = (struct byte_vector) VECTOR_INIT;
  }
  remote_free (r);
  return status;
}

int
vmferry_remote_read_line (struct vmferry_remote *r, bool close_input,
                          char **line_rtn)
{
  char *nl;
  size_t len;

  *line_rtn = NULL;
  if (!r->capture) {
    vmferry_set_error ("%s: the remote command's output is not read",
                       r->s->label);
    return -1;
  }
  if (r->s->ops->read_line (r, close_input) < 0)
    return -1;
  nl = r->out.ptr ? memchr (r->out.ptr, '\n', r->out.len) : NULL;
  if (nl == NULL)
    return 0;
  len = nl - r->out.ptr;
  *line_rtn = strndup (r->out.ptr, len);
  if (*line_rtn == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", r->s->label);
    return -1;
  }
  /* The rest stays for the next line or vmferry_remote_finish. */
  memmove (r->out.ptr, nl + 1, r->out.len - len - 1);
  r->out.len -= len + 1;
  r->out.ptr[r->out.len] = '\0';
  return 1;
}

void
vmferry_remote_abandon (struct vmferry_remote *r)
{
  if (r == NULL)
    return;
  r->s->ops->abandon (r);
  remote_free (r);
}
