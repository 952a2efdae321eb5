/* vmferry: a pipe between two threads of one process, without the
 * kernel.
 *
 * The stages of vmferry-migrate (export, rewrite, send) hand the stream
 * on through these instead of pipe(2).  Without a buffer the writer's
 * bytes are copied once, straight from its buffers into the reader's,
 * with no system call and no pipe pages to allocate; a write returns
 * when the reader has taken all of it, so the writer's buffers are free
 * to reuse.  With a buffer (a ring of a fixed size) a write returns once
 * its bytes are in the ring, so the writer can run that far ahead of the
 * reader: the --buffer of vmferry-migrate (the export writes into the
 * ring) and of vmferry-send (a thread fills it from the input,
 * vmferry_handoff_fill), which lets the compressors work ahead of the
 * link while it is the bottleneck and draw on that lead where the data
 * is slow to compress.
 *
 * The functions have the signatures of a stream writer's and reader's
 * (stream.h: vmferry_stream_writer_new_fn, vmferry_stream_reader_new_fn).
 */
#ifndef VMFERRY_HANDOFF_H
#define VMFERRY_HANDOFF_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "error.h"

struct vmferry_handoff;

/* NAME names the writing end in messages ("export").  BUFFER is the
 * ring's size in bytes, 0 for none.  NULL with the error set.
 */
struct vmferry_handoff *vmferry_handoff_new (const char *name, size_t buffer);
/* After both ends are done with it.  NULL is fine. */
void vmferry_handoff_free (struct vmferry_handoff *h);

/* Write all of IOV; blocks until the reader has taken it (or until it
 * is in the ring).  -1 with EPIPE ("NAME: write: Broken pipe") once the
 * reader has closed.
 */
int vmferry_handoff_writev (void *h, const struct iovec *iov, int iovcnt);
/* Read up to LEN bytes, waiting for some.  0 once the writer has closed
 * and everything was read.
 */
ssize_t vmferry_handoff_read (void *h, void *buf, size_t len);

/* With a buffer: be the writer, with what FD holds (named FD_NAME in
 * messages), until its end.  0 at its end, once the reader has closed
 * or once a signal asked to quit (quit.h: as a cut input), -1 with the
 * error set if reading failed.  The caller then
 * closes the writing end.  It waits for input in poll(2) together with
 * the reader's close, so vmferry_handoff_close_read ends it even while
 * FD stays open and silent: no thread needs to be cancelled.
 */
int vmferry_handoff_fill (struct vmferry_handoff *h, int fd,
                          const char *fd_name);

/* The writer is done: the reader sees the end of its input. */
void vmferry_handoff_close_write (struct vmferry_handoff *h);
/* The reader is done: a waiting or later write fails with EPIPE. */
void vmferry_handoff_close_read (struct vmferry_handoff *h);

/* An input read ahead of its reader: a ring of a fixed size filled from
 * a descriptor by a thread of its own (vmferry_handoff_fill), read with
 * vmferry_handoff_read on H (vmferry-send's --buffer, vmferry-import's
 * stream from a pipe).
 */
struct vmferry_read_ahead {
  struct vmferry_handoff *h;
  int fd;
  const char *name;
  pthread_t thread;
  bool started;
  int rc, errnum;
  char err[VMFERRY_ERROR_MAX];
};

/* Start reading FD (named NAME) into a ring of BUFFER bytes.  0, or -1
 * with the error set (RA may then hold a ring: stop it all the same).
 */
int vmferry_read_ahead_start (struct vmferry_read_ahead *ra, int fd,
                              const char *name, size_t buffer);

/* The thread may wait for input that never comes (its reader failed or
 * stopped before the input's end): closing the ring's reading end wakes
 * it, and it ends.  After a failure (FAILED), a failed read of the
 * input is why the stream ended early: that becomes the error.  RA is
 * then empty; stopping it again does nothing.
 */
void vmferry_read_ahead_stop (struct vmferry_read_ahead *ra, bool failed);

#endif
