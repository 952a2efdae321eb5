/* vmferry: the SSH transport: run a command on a remote host and push
 * bytes into it.
 *
 * Two backends behind one interface:
 *  - libssh (the default): a session that honours ~/.ssh/config (Host,
 *    HostName, User, Port, IdentityFile; ProxyJump as libssh 0.10 does
 *    it, through a ProxyCommand running ssh -W, whose messages libssh
 *    discards, so a failure names that command), verifies the host key
 *    against known_hosts (unknown, changed, other-type and @revoked keys
 *    fail closed with the fingerprint; accept_new_host_key adds an
 *    unknown one like OpenSSH's StrictHostKeyChecking=accept-new), and
 *    authenticates with the agent or the identity files.  It never asks
 *    for a password.  aes128-gcm is preferred when the CPU has AES-NI.
 *  - a command (ssh_command): "CMD DESTINATION 'REMOTE COMMAND'" run
 *    through /bin/sh, e.g. the system's ssh with its own options, for
 *    setups libssh cannot follow.
 * The remote command's standard error is copied verbatim to stderr_fd
 * as it arrives; its standard output is captured (for answers) or copied
 * to stdout_fd.
 */
#ifndef VMFERRY_SSH_H
#define VMFERRY_SSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "quote.h"            /* remote command lines */

struct vmferry_ssh_opts {
  const char *destination;      /* [ssh://][USER@]HOST[:PORT] */
  bool accept_new_host_key;
  /* The SSH configuration file (ssh -F) instead of ~/.ssh/config and
   * /etc/ssh/ssh_config; NULL: those.  Not with ssh_command.
   */
  const char *config;
  const char *ssh_command;      /* NULL: libssh */
  int stdout_fd, stderr_fd;     /* remote output goes here; -1: dropped */
  uint64_t bandwidth;           /* bytes per second, 0: unlimited */
};

/* Split DEST into user (NULL if none), host and port (0 if none).  Accepts
 * "ssh://" in front and "[v6addr]:port".  The caller frees USER and HOST.
 */
int vmferry_ssh_parse_destination (const char *dest, char **user_rtn,
                                   char **host_rtn, int *port_rtn);

/* The URI of the system libvirtd on OPTS's destination, reached as the
 * data is: qemu+ssh://[USER@]HOST[:PORT]/system, its ssh the same
 * program with the same configuration file, so that both see the same
 * known_hosts and keys.  libvirt's ssh transport runs one program (its
 * command= parameter), not a command line: with ssh_command or config,
 * a helper that runs "ssh_command ARGS..." or "ssh -F config ARGS..."
 * is made in a private directory; *HELPER_RTN is set to it (NULL when
 * none was needed) and must be given to vmferry_ssh_uri_helper_remove
 * once libvirt connections are made no more.  Caller frees the URI;
 * NULL with the error set.
 */
char *vmferry_ssh_libvirt_uri (const struct vmferry_ssh_opts *opts,
                               char **helper_rtn);

/* Remove the helper vmferry_ssh_libvirt_uri made, and free HELPER.
 * NULL is fine.
 */
void vmferry_ssh_uri_helper_remove (char *helper);

struct vmferry_ssh;

/* Connect and authenticate (libssh), or only check the destination (a
 * command).  Errors name the destination; a refused host key says
 * "nothing was sent".  Free with vmferry_ssh_free.
 */
struct vmferry_ssh *vmferry_ssh_connect (const struct vmferry_ssh_opts *opts);
void vmferry_ssh_free (struct vmferry_ssh *s);

/* The host as messages should name it. */
const char *vmferry_ssh_host (const struct vmferry_ssh *s);

/* True when a remote command started on S and abandoned before it was
 * written to shows nothing: libssh channels, whose output is read only
 * when asked for.  A command (ssh_command) writes its stderr straight
 * to ours.
 */
bool vmferry_ssh_can_prestart (const struct vmferry_ssh *s);

struct vmferry_remote;

/* Run COMMAND (a shell command line) on the remote.  With CAPTURE, its
 * standard output is collected for vmferry_remote_finish (at most 1 MiB);
 * else it goes to opts.stdout_fd.
 */
struct vmferry_remote *vmferry_remote_start (struct vmferry_ssh *s,
                                             const char *command, bool capture);

/* Write all of IOV to the command's standard input (the signature of a
 * stream writer's function).  -1 with the error set when the remote side
 * is gone: call vmferry_remote_finish for its status.  With libssh, a
 * command that exited (its exit status or signal came, even while
 * something it started keeps the channel open) or whose channel closed
 * ends the write at once; while the remote reads nothing, the write
 * waits as long as the command and the connection live (TCP keepalives
 * find a dead connection), saying so after a minute.
 */
int vmferry_remote_writev (void *remote, const struct iovec *iov, int iovcnt);

/* Bytes written so far. */
uint64_t vmferry_remote_bytes (const struct vmferry_remote *r);

/* From another thread: make a write on R in progress, and every later
 * one, fail soon ("HOST: stopped"), e.g. when another connection of a
 * striped push failed.  vmferry_remote_finish and _abandon still work.
 * NULL is fine.
 */
void vmferry_remote_cancel (struct vmferry_remote *r);

/* Close the command's input, wait for it to exit.  Returns its exit
 * status (0..255), or -1 with the error set when there is none (killed by
 * a signal, connection lost).  With capture, *OUT_RTN (NUL-terminated,
 * caller frees) and *LEN_RTN hold its standard output.  Frees R.
 */
int vmferry_remote_finish (struct vmferry_remote *r, char **out_rtn,
                           size_t *len_rtn);

/* With capture: read the command's standard output up to its next
 * newline, while it runs (first closing its input with CLOSE_INPUT).
 * Returns 1 with the line (without the newline, caller frees) in
 * *LINE_RTN, 0 when its output ended first (vmferry_remote_finish says
 * why), -1 with the error set.  What follows the line stays for the next
 * call or vmferry_remote_finish.
 */
int vmferry_remote_read_line (struct vmferry_remote *r, bool close_input,
                              char **line_rtn);

/* Close without waiting (after a local failure): the remote sees its
 * input end early.  Frees R.  NULL is fine.
 */
void vmferry_remote_abandon (struct vmferry_remote *r);

#endif
