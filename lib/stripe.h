/* vmferry: one stream spread over several connections (--connections N).
 *
 * The sender cuts its byte stream into chunks and deals them round-robin
 * to N remotes, chunk K to remote K mod N, each remote fed by its own
 * thread (so N SSH sessions encrypt in parallel and N TCP windows are in
 * flight).  On the remote, connection 0 runs
 *   vmferry-import --stripes=N:TOKEN IMPORT-OPTIONS...
 * and connections 1..N-1 run
 *   vmferry-import --join=TOKEN:I
 * A joining process hands its standard input (the SSH channel) to the
 * main import over a Unix socket in a private directory
 * ($TMPDIR or /tmp)/vmferry-join-UID/TOKEN (SCM_RIGHTS, the peer's uid
 * checked), then waits there for the import's exit status and exits
 * with it.  The main import reads the chunks back in order, so what it
 * sees is exactly the stream that was sent: resume, verification and
 * everything else are as over one connection.
 *
 * A chunk is a 16-byte header, "VMFC", length (u32 LE, at most
 * VMFERRY_STRIPE_CHUNK_MAX), sequence number (u64 LE, from 0), and the
 * bytes.  A chunk of length 0 ends the stream; without it, the end of
 * any connection is a cut.
 */
#ifndef VMFERRY_STRIPE_H
#define VMFERRY_STRIPE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ssh.h"

#define VMFERRY_STRIPE_MAX 64
#define VMFERRY_STRIPE_TOKEN_LEN 32      /* hex digits */
#define VMFERRY_STRIPE_CHUNK_MAX (8u * 1024 * 1024)

/* ---- sending ---- */

struct vmferry_stripes_out;

/* Spread over REMOTES[0..N-1] (not owned; they must stay until free).
 * NAME names the destination in errors.
 */
struct vmferry_stripes_out *
vmferry_stripes_out_new (struct vmferry_remote **remotes, unsigned n,
                         const char *name);

/* A stream writer's function (stream.h): queue IOV for the connections.
 * -1 with the error set once any connection failed.
 */
int vmferry_stripes_writev (void *stripes, const struct iovec *iov, int iovcnt);

/* Send what is queued (and with END, the end chunk; without it the
 * remote sees a cut), and wait until every connection took its share.
 * -1 with the error set if one failed.
 */
int vmferry_stripes_out_finish (struct vmferry_stripes_out *s, bool end);

/* Stop the threads (after a failure, or after finish).  NULL is fine. */
void vmferry_stripes_out_free (struct vmferry_stripes_out *s);

/* The most the chunks of N connections hold (a budget's share; see
 * send.h).
 */
size_t vmferry_stripes_out_memory (unsigned n);

/* A fresh random token (VMFERRY_STRIPE_TOKEN_LEN hex digits and NUL). */
int vmferry_stripe_token (char token[VMFERRY_STRIPE_TOKEN_LEN + 1]);

/* ---- receiving ---- */

struct vmferry_stripes_in;

/* Parse "N:TOKEN" (--stripes) or "TOKEN:I" (--join).  0 or -1 with the
 * error set.
 */
int vmferry_stripe_parse_stripes (const char *arg, unsigned *n_rtn,
                                  char token[VMFERRY_STRIPE_TOKEN_LEN + 1]);
int vmferry_stripe_parse_join (const char *arg,
                               char token[VMFERRY_STRIPE_TOKEN_LEN + 1],
                               unsigned *index_rtn);

/* The main import: listen for the N-1 joining connections under TOKEN;
 * connection 0 is FD0.  Joiners are accepted as the stream reaches
 * their chunks, waiting at most a minute for each.
 */
struct vmferry_stripes_in *vmferry_stripes_in_new (const char *token,
                                                   unsigned n, int fd0);

/* A stream reader's function (stream.h).  A signal that asks to quit
 * (quit.h) ends the stream as a cut does.
 */
ssize_t vmferry_stripes_read (void *stripes, void *buf, size_t len);

/* Tell every joined process STATUS (its exit status), remove the
 * socket, free.  NULL is fine.
 */
void vmferry_stripes_in_free (struct vmferry_stripes_in *s, int status);

/* A joining process: hand FD (the connection's input) to the main
 * import under TOKEN as connection INDEX and wait for its status.
 * Returns the exit status to use; on failure 1 with the error set.
 */
int vmferry_stripe_join (const char *token, unsigned index, int fd);

#endif
