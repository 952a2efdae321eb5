/* vmferry: push a stream into a remote vmferry-import (see send.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "cleanup.h"
#include "error.h"
#include "fault.h"
#include "handoff.h"
#include "log.h"
#include "manifest.h"
#include "progress.h"
#include "resume.h"
#include "send.h"
#include "stream.h"
#include "stripe.h"

/* A metadata record kept to be written twice (query, then import). */
struct meta {
  uint16_t type, flags;
  uint32_t len;
  void *payload;
};

struct sender {
  const struct vmferry_send_opts *opts;
  struct vmferry_ssh *ssh;
  struct vmferry_stream_reader *rd;
  struct meta manifest, xml;
  char **names;                 /* file names, for progress */
  size_t nr_names;
  uint64_t features;            /* the input's mandatory bits (GUEST) */
};

/* The stream header the remote gets: the input's features, and RESUME
 * with TOKEN when it resumes.
 */
static int
write_header (struct vmferry_stream_writer *w, const struct sender *sd,
              const unsigned char *token)
{
  if (token)
    return vmferry_stream_write_header_ex (w, sd->features |
                                           VMFERRY_FEATURE_RESUME, 0, token,
                                           VMFERRY_RESUME_TOKEN_LEN);
  if (sd->features)
    return vmferry_stream_write_header_ex (w, sd->features, 0, NULL, 0);
  return vmferry_stream_write_header (w);
}

static int
build_command (const struct vmferry_send_opts *opts, const char *mode,
               char **cmd_rtn)
{
  char *cmd = NULL;

  if (vmferry_shell_quote_append (&cmd, opts->remote_import
                                        ? opts->remote_import
                                        : "vmferry-import") < 0 ||
      vmferry_shell_quote_append (&cmd, mode) < 0)
    goto fail;
  for (size_t i = 0; opts->import_args && opts->import_args[i]; i++)
    if (vmferry_shell_quote_append (&cmd, opts->import_args[i]) < 0)
      goto fail;
  /* The query's answer is JSON already. */
  if (opts->import_json && strcmp (mode, "--resumable") == 0 &&
      vmferry_shell_quote_append (&cmd, "--json") < 0)
    goto fail;
  *cmd_rtn = cmd;
  return 0;
 fail:
  free (cmd);
  return -1;
}

static int
keep_meta (const struct vmferry_record *rec, struct meta *m)
{
  m->type = rec->type;
  m->flags = rec->flags;
  m->len = rec->payload_len;
  m->payload = malloc (rec->payload_len ? rec->payload_len : 1);
  if (m->payload == NULL) {
    vmferry_set_error_errno (ENOMEM, "stream metadata");
    return -1;
  }
  memcpy (m->payload, rec->payload, rec->payload_len);
  return 0;
}

static int
write_meta (struct vmferry_stream_writer *w, const struct meta *m)
{
  struct vmferry_record rec = { .type = m->type, .flags = m->flags,
                                .payload_len = m->len };
  return vmferry_stream_write_record (w, &rec, m->payload);
}

/* Read the header, manifest and domain XML from the input. */
static int
read_metadata (struct sender *sd)
{
  struct vmferry_record rec;
  int r;

  while ((r = vmferry_stream_read_record (sd->rd, &rec)) == 1) {
    switch (rec.type) {
    case VMFERRY_REC_STREAM_HEADER:
      sd->features = vmferry_stream_header_mandatory (rec.payload,
                                                      rec.payload_len);
      if (sd->features & VMFERRY_FEATURE_RESUME) {
        vmferry_set_error ("%s: the input already is a resumed stream: send a "
                           "complete one", sd->opts->in_name);
        return -1;
      }
      break;
    case VMFERRY_REC_MANIFEST: {
      CLEANUP_FREE char *json =
        vmferry_record_metadata (&rec, rec.payload, NULL);
      struct vmferry_manifest *m;
      uint64_t total = 0;
      if (json == NULL) {
        vmferry_prefix_error ("%s", sd->opts->in_name);
        return -1;
      }
      if (keep_meta (&rec, &sd->manifest) < 0)
        return -1;
      if (vmferry_manifest_parse (json, strlen (json), sd->opts->in_name,
                                  &m) < 0)
        return -1;
      sd->names = calloc (m->nr_files ? m->nr_files : 1, sizeof *sd->names);
      for (size_t i = 0; sd->names && i < m->nr_files; i++) {
        sd->names[i] = strdup (m->files[i].name);
        total += m->files[i].size;
        sd->nr_names = i + 1;
      }
      /* One bar for the stream (the remote import's is not drawn: its
       * stderr is no terminal).
       */
      vmferry_progress_set_total (sd->opts->progress, m->domain_name, total,
                                  m->nr_files);
      vmferry_manifest_free (m);
      break;
    }
    case VMFERRY_REC_DOMAIN_XML:
      return keep_meta (&rec, &sd->xml);
    default:
      vmferry_set_error ("%s: unexpected %s record before the domain XML",
                         sd->opts->in_name,
                         vmferry_record_type_name (rec.type));
      return -1;
    }
  }
  if (r == 0)
    vmferry_set_error ("%s: the stream ended before its domain XML",
                       sd->opts->in_name);
  return -1;
}

/* Report a remote command that failed: its own words went to stderr. */
static void
remote_failed (struct sender *sd, const char *what, int status)
{
  if (status > 0)
    vmferry_set_error ("%s: %s failed (exit status %d)",
                       vmferry_ssh_host (sd->ssh), what, status);
  else
    vmferry_prefix_error ("%s", what);
}

/* Ask the remote what it holds of this stream: start the query and
 * send it the metadata (query_finish reads its answer).  NULL with the
 * error set.
 */
static struct vmferry_remote *
query_start (struct sender *sd)
{
  CLEANUP_FREE char *cmd = NULL;
  struct vmferry_stream_writer *w = NULL;
  struct vmferry_remote *rem;

  if (build_command (sd->opts, "--resume-query", &cmd) < 0)
    return NULL;
  rem = vmferry_remote_start (sd->ssh, cmd, true);
  if (rem == NULL)
    return NULL;
  w = vmferry_stream_writer_new_fn (vmferry_remote_writev, rem,
                                    vmferry_ssh_host (sd->ssh));
  /* A write failing means the query already ended: its status says why. */
  if (w)
    (void) (write_header (w, sd, NULL) < 0 ||
            write_meta (w, &sd->manifest) < 0 || write_meta (w, &sd->xml) < 0);
  vmferry_stream_writer_free (w);
  return rem;
}

/* The answer of the query REM (query_start), which ends it. */
static int
query_finish (struct sender *sd, struct vmferry_remote *rem,
              struct vmferry_resume_point *pt,
              struct vmferry_send_stats *stats)
{
  CLEANUP_FREE char *out = NULL;
  size_t len = 0;
  int status;

  status = vmferry_remote_finish (rem, &out, &len);
  stats->remote_status = status;
  if (status != 0) {
    remote_failed (sd, "vmferry-import --resume-query", status);
    return -1;
  }
  if (vmferry_resume_parse_answer (out, len, pt) < 0) {
    vmferry_prefix_error ("%s", vmferry_ssh_host (sd->ssh));
    return -1;
  }
  return 0;
}

/* The remotes of one push: over one connection, or N (stripe.h). */
struct push_conns {
  unsigned n;
  struct vmferry_ssh *ssh[VMFERRY_STRIPE_MAX];      /* [0] is the sender's */
  struct vmferry_remote *rem[VMFERRY_STRIPE_MAX];
  struct vmferry_stripes_out *stripes;
};

/* One more connection of a striped push: its session and its
 * "vmferry-import --join", made in a thread of its own.
 */
struct joiner {
  pthread_t thread;
  bool started;
  struct vmferry_ssh_opts so;
  char *cmd;
  struct vmferry_ssh *ssh;
  struct vmferry_remote *rem;
  char err[VMFERRY_ERROR_MAX];
};

static void *
joiner_thread (void *arg)
{
  struct joiner *j = arg;

  j->ssh = vmferry_ssh_connect (&j->so);
  if (j->ssh)
    j->rem = vmferry_remote_start (j->ssh, j->cmd, false);
  if (j->rem == NULL)
    snprintf (j->err, sizeof j->err, "%s", vmferry_get_error ());
  return NULL;
}

/* Connections 2..N, all at once (each costs a few round trips, long on
 * the links striping is for).  The first session is already there, so a
 * host key accepted anew is known to them.  On failure, what was made is
 * in PC for close_conns; the first failure is the error.
 */
static int
start_joiners (const struct vmferry_send_opts *opts, struct push_conns *pc,
               const char *token)
{
  struct joiner *j = calloc (pc->n, sizeof *j);
  char arg[VMFERRY_STRIPE_TOKEN_LEN + 32];
  int r = 0;

  if (j == NULL) {
    vmferry_set_error_errno (ENOMEM, "connections");
    return -1;
  }
  for (unsigned i = 1; i < pc->n && r == 0; i++) {
    j[i].so = opts->ssh;
    j[i].so.bandwidth = opts->ssh.bandwidth / pc->n;
    snprintf (arg, sizeof arg, "--join=%s:%u", token, i);
    if (vmferry_shell_quote_append (&j[i].cmd, opts->remote_import
                                               ? opts->remote_import
                                               : "vmferry-import") < 0 ||
        vmferry_shell_quote_append (&j[i].cmd, arg) < 0)
      r = -1;
    else if (pthread_create (&j[i].thread, NULL, joiner_thread, &j[i]) != 0) {
      vmferry_set_error ("connection %u of %u: cannot start a thread", i + 1,
                         pc->n);
      r = -1;
    }
    else
      j[i].started = true;
  }
  for (unsigned i = 1; i < pc->n; i++) {
    if (j[i].started) {
      pthread_join (j[i].thread, NULL);
      if (j[i].rem == NULL && r == 0) {
        vmferry_set_error ("connection %u of %u: %s", i + 1, pc->n, j[i].err);
        r = -1;
      }
    }
    pc->ssh[i] = j[i].ssh;
    pc->rem[i] = j[i].rem;
    free (j[i].cmd);
  }
  free (j);
  return r;
}

/* Start the import (and with several connections, the joiners), and a
 * writer into them.
 */
static struct vmferry_stream_writer *
open_conns (struct sender *sd, struct push_conns *pc)
{
  const struct vmferry_send_opts *opts = sd->opts;
  const char *host = vmferry_ssh_host (sd->ssh);
  CLEANUP_FREE char *cmd = NULL;
  char token[VMFERRY_STRIPE_TOKEN_LEN + 1], arg[VMFERRY_STRIPE_TOKEN_LEN + 32];

  pc->n = opts->connections > 1 ? opts->connections : 1;
  pc->ssh[0] = sd->ssh;
  if (pc->n == 1) {
    if (build_command (opts, "--resumable", &cmd) < 0 ||
        (pc->rem[0] = vmferry_remote_start (sd->ssh, cmd,
                                               opts->import_json)) == NULL)
      return NULL;
    return vmferry_stream_writer_new_fn (vmferry_remote_writev, pc->rem[0],
                                         host);
  }
  if (vmferry_stripe_token (token) < 0 ||
      build_command (opts, "--resumable", &cmd) < 0)
    return NULL;
  snprintf (arg, sizeof arg, "--stripes=%u:%s", pc->n, token);
  if (vmferry_shell_quote_append (&cmd, arg) < 0 ||
      (pc->rem[0] = vmferry_remote_start (sd->ssh, cmd,
                                               opts->import_json)) == NULL)
    return NULL;
  if (start_joiners (opts, pc, token) < 0)
    return NULL;
  vmferry_verbose ("%s: sending over %u connections", host, pc->n);
  pc->stripes = vmferry_stripes_out_new (pc->rem, pc->n, host);
  if (pc->stripes == NULL)
    return NULL;
  return vmferry_stream_writer_new_fn (vmferry_stripes_writev, pc->stripes,
                                       host);
}

/* Deliver what the writer queued: with END the remote sees the stream's
 * end, without it a cut.  0 or -1 with the error set.
 */
static int
flush_conns (struct push_conns *pc, bool end)
{
  return pc->stripes ? vmferry_stripes_out_finish (pc->stripes, end) : 0;
}

/* Wait for the import's exit status (and the joiners').  Returns it, or
 * -1 with the error set.  OUT_RTN (may be NULL) gets what the import
 * printed when it captured that (vmferry_remote_finish).  After a
 * failed push (CUT), the joiners' inputs end first: chunks queued for
 * them were dropped, and the import, waiting for the next one on a live
 * connection, would wait for ever.
 */
static int
finish_conns (struct push_conns *pc, bool cut, char **out_rtn,
              size_t *len_rtn)
{
  int status;

  vmferry_stripes_out_free (pc->stripes);
  pc->stripes = NULL;
  for (unsigned i = 1; cut && i < pc->n; i++) {
    vmferry_remote_abandon (pc->rem[i]);
    pc->rem[i] = NULL;
  }
  status = vmferry_remote_finish (pc->rem[0], out_rtn, len_rtn);
  pc->rem[0] = NULL;
  for (unsigned i = 1; i < pc->n; i++) {
    if (pc->rem[i]) {
      char msg[VMFERRY_ERROR_MAX];
      int st;

      snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
      st = vmferry_remote_finish (pc->rem[i], NULL, NULL);
      if (st != 0 && status == 0)
        vmferry_warn ("connection %u of %u ended with %s %d", i + 1, pc->n,
                         st < 0 ? "no status" : "status", st);
      vmferry_restore_error (msg, 0);
      pc->rem[i] = NULL;
    }
  }
  return status;
}

/* Abandon what is left of the connections; again is harmless. */
static void
close_conns (struct push_conns *pc)
{
  vmferry_stripes_out_free (pc->stripes);
  for (unsigned i = 0; i < pc->n; i++) {
    vmferry_remote_abandon (pc->rem[i]);
    if (i > 0)
      vmferry_ssh_free (pc->ssh[i]);
  }
  *pc = (struct push_conns) { 0 };
}

/* The bytes written into the connections count as sent; free W. */
static void
end_writer (struct vmferry_stream_writer **w, struct vmferry_send_stats *stats)
{
  if (*w) {
    stats->sent = vmferry_stream_writer_bytes (*w);
    vmferry_stream_writer_free (*w);
    *w = NULL;
  }
}

/* Send the stream into W, the import's input (open_conns), skipping
 * what PT says the remote holds.  Closes the connections.
 */
static int
push (struct sender *sd, const struct vmferry_resume_point *pt,
      struct vmferry_send_stats *stats, struct push_conns *pc,
      struct vmferry_stream_writer *w)
{
  const struct vmferry_send_opts *opts = sd->opts;
  struct vmferry_record rec;
  uint64_t skip = 0;
  int r, status, ret = -1;

  if (write_header (w, sd, pt->resume ? pt->token : NULL) < 0 ||
      write_meta (w, &sd->manifest) < 0 || write_meta (w, &sd->xml) < 0)
    goto remote_error;

  while ((r = vmferry_stream_read_record (sd->rd, &rec)) == 1) {
    const char *name;
    switch (rec.type) {
    case VMFERRY_REC_FILE_BEGIN: {
      uint64_t size;
      if (vmferry_record_file_begin (&rec, rec.payload, &size) < 0) {
        vmferry_prefix_error ("%s", opts->in_name);
        r = -1;
        goto input_failed;
      }
      skip = pt->resume && rec.file < pt->nr_files ? pt->offsets[rec.file] : 0;
      name = rec.file < sd->nr_names && sd->names[rec.file]
             ? sd->names[rec.file] : "file";
      vmferry_progress_begin (opts->progress, name, size);
      if (skip)
        vmferry_verbose ("%s: the remote holds %s", name,
                         skip == VMFERRY_RESUME_COMPLETE
                         ? "all of it" : "part of it");
      break;
    }
    case VMFERRY_REC_DATA:
    case VMFERRY_REC_ZERO:
      vmferry_progress_add (opts->progress, rec.length);
      stats->read += rec.length;
      if (skip == VMFERRY_RESUME_COMPLETE || rec.offset + rec.length <= skip) {
        stats->skipped += rec.length;
        continue;
      }
      if (rec.type == VMFERRY_REC_DATA)
        stats->written += rec.length;
      break;
    case VMFERRY_REC_FILE_END:
      vmferry_progress_done (opts->progress);
      break;
    }
    /* Renumbered when records were left out; else the very bytes. */
    if (vmferry_stream_copy_record (w, &rec, rec.payload) < 0)
      goto remote_error;
    if (rec.type == VMFERRY_REC_END)
      break;
    if (rec.type == VMFERRY_REC_DATA && vmferry_fault ("send-data") < 0)
      goto remote_error;
  }
 input_failed:
  if (r <= 0) {
    /* Our input failed (r == 0 cannot happen: the reader reports a
     * stream without END).  The remote sees its input end early and
     * keeps what it verified.
     */
    char msg[VMFERRY_ERROR_MAX];

    if (r == 0)
      vmferry_set_error ("%s: truncated", opts->in_name);
    snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
    end_writer (&w, stats);
    (void) flush_conns (pc, false);
    close_conns (pc);
    vmferry_set_error ("%s; the remote import keeps what it verified: run "
                       "the same command again to resume", msg);
    return -1;
  }
  end_writer (&w, stats);
  if (flush_conns (pc, true) < 0 || vmferry_fault ("send-end-sent") < 0)
    goto remote_error;
  status = finish_conns (pc, false,
                         sd->opts->import_json ? &stats->import_out : NULL,
                         &stats->import_out_len);
  stats->remote_status = status;
  if (status != 0) {
    remote_failed (sd, "vmferry-import", status);
    free (stats->import_out);
    stats->import_out = NULL;
  }
  else
    ret = 0;
  close_conns (pc);
  return ret;

 remote_error:
  end_writer (&w, stats);
  {
    char msg[VMFERRY_ERROR_MAX];
    snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
    status = finish_conns (pc, true, NULL, NULL);
    stats->remote_status = status;
    if (status > 0)
      remote_failed (sd, "vmferry-import", status);
    else
      vmferry_restore_error (msg, 0);
  }
  close_conns (pc);
  return -1;
}

struct vmferry_ssh *
vmferry_send_connect (const struct vmferry_send_opts *opts)
{
  struct vmferry_ssh_opts ssh_opts = opts->ssh;

  if (opts->connections > 1)
    ssh_opts.bandwidth /= opts->connections;    /* shared by the sessions */
  return vmferry_ssh_connect (&ssh_opts);
}

/* libssh's buffers per connection: what the channel's window lets it
 * take ahead of the socket (OpenSSH opens it 2 MiB wide), and a packet
 * being read.  Measured: 2.1 MB.
 */
#define SSH_CONN_MEMORY ((size_t) 3 << 20)

size_t
vmferry_send_memory (const struct vmferry_send_opts *opts)
{
  unsigned n = opts->connections > 1 ? opts->connections : 1;

  return vmferry_stream_reader_memory () + n * SSH_CONN_MEMORY +
         (n > 1 ? vmferry_stripes_out_memory (n) : 0);
}

size_t
vmferry_buffer_default (size_t held)
{
  const size_t room = VMFERRY_MEMORY_BUDGET - VMFERRY_MEMORY_BASE;
  size_t ring = held < room ? (room - held) & ~(((size_t) 1 << 20) - 1) : 0;
  char h[32], b[32], r[32];

  if (ring > VMFERRY_BUFFER_USEFUL)
    ring = VMFERRY_BUFFER_USEFUL;
  vmferry_human_size (held + VMFERRY_MEMORY_BASE, h, sizeof h);
  vmferry_human_size (VMFERRY_MEMORY_BUDGET, b, sizeof b);
  vmferry_human_size (ring, r, sizeof r);
  vmferry_verbose ("--buffer: %s (%s held besides it, of a budget of %s)",
                   r, h, b);
  return ring;
}

int
vmferry_send (const struct vmferry_send_opts *opts,
              struct vmferry_send_stats *stats)
{
  struct vmferry_send_stats dummy;
  struct sender sd = { .opts = opts };
  struct vmferry_resume_point pt = { 0 };
  struct vmferry_ssh *own_ssh = NULL;
  struct vmferry_stream_reader *own_rd = NULL;
  struct vmferry_read_ahead ra = { .h = NULL };
  struct push_conns pc = { 0 };
  struct vmferry_stream_writer *w = NULL;
  struct vmferry_remote *query_rem = NULL;
  size_t buffer = opts->buffer;
  double t0 = vmferry_monotonic ();
  int r = -1, k;

  if (stats == NULL)
    stats = &dummy;
  memset (stats, 0, sizeof *stats);
  stats->remote_status = -1;
  if (opts->connections > VMFERRY_STRIPE_MAX) {
    vmferry_set_error ("--connections %u: at most %d", opts->connections,
                       VMFERRY_STRIPE_MAX);
    return -1;
  }
  if (!opts->in && buffer == VMFERRY_SEND_BUFFER)
    buffer = vmferry_buffer_default (vmferry_send_memory (opts));
  if (opts->in)
    sd.rd = opts->in;
  else if (buffer > 0) {
    if (vmferry_read_ahead_start (&ra, opts->in_fd, opts->in_name,
                                  buffer) == 0)
      sd.rd = own_rd = vmferry_stream_reader_new_fn (vmferry_handoff_read,
                                                     ra.h, opts->in_name);
  }
  else
    sd.rd = own_rd = vmferry_stream_reader_new (opts->in_fd, opts->in_name);
  if (sd.rd == NULL || read_metadata (&sd) < 0)
    goto out;
  sd.ssh = opts->session ? opts->session
           : (own_ssh = vmferry_send_connect (opts));
  if (sd.ssh == NULL)
    goto out;
  /* The query's answer is what the stream waits for: it starts first.
   * Where the import can start unseen, it starts right after, while the
   * query runs: its start-up on the remote (exec, libvirt) overlaps the
   * query's.  It reads nothing until the query has answered and ended.
   */
  if ((query_rem = query_start (&sd)) == NULL)
    goto out;
  if (vmferry_ssh_can_prestart (sd.ssh) && (w = open_conns (&sd, &pc)) == NULL)
    goto out;
  k = query_finish (&sd, query_rem, &pt, stats);
  query_rem = NULL;             /* it has ended */
  if (k < 0 || vmferry_fault ("send-queried") < 0)
    goto out;
  if (pt.done) {
    vmferry_notice ("%s: %s: nothing was sent", vmferry_ssh_host (sd.ssh),
                    pt.reason ? pt.reason : "already there");
    stats->already = true;
    r = 0;
    goto out;
  }
  if (pt.resume && opts->no_resume) {
    vmferry_notice ("%s: discarding the interrupted transfer there "
                    "(--no-resume)", vmferry_ssh_host (sd.ssh));
    pt.resume = false;
  }
  if (pt.resume)
    vmferry_verbose ("%s: resuming an interrupted transfer",
                     vmferry_ssh_host (sd.ssh));
  else
    vmferry_verbose ("%s: nothing to resume (%s)", vmferry_ssh_host (sd.ssh),
                     pt.reason ? pt.reason : "no state");
  stats->resumed = pt.resume;
  if (w == NULL && (w = open_conns (&sd, &pc)) == NULL)
    goto out;
  r = push (&sd, &pt, stats, &pc, w);
  w = NULL;
  if (r == 0) {
    char sent[32], took[32], skipped[32];
    vmferry_human_size (stats->sent, sent, sizeof sent);
    vmferry_human_size (stats->skipped, skipped, sizeof skipped);
    vmferry_human_duration (vmferry_monotonic () - t0, took, sizeof took);
    vmferry_set_summary ("stream sent to %s (%s in %s%s%s%s)",
                         vmferry_ssh_host (sd.ssh), sent, took,
                         pt.resume ? "; resumed, " : "",
                         pt.resume ? skipped : "",
                         pt.resume ? " were already there" : "");
    vmferry_verbose ("%s: sent %" PRIu64 " bytes%s; %" PRIu64 " bytes of "
                     "file data were already there", vmferry_ssh_host (sd.ssh),
                     stats->sent, pt.resume ? " (resumed)" : "",
                     stats->skipped);
  }
 out:
  /* The import started ahead of a query that failed, or could not start:
   * it sees its input end before the stream, and nothing of it shows.
   */
  vmferry_stream_writer_free (w);
  close_conns (&pc);
  vmferry_remote_abandon (query_rem);
  vmferry_resume_point_free (&pt);
  vmferry_ssh_free (own_ssh);
  vmferry_stream_reader_free (own_rd);
  vmferry_read_ahead_stop (&ra, r < 0);
  free (sd.manifest.payload);
  free (sd.xml.payload);
  for (size_t i = 0; i < sd.nr_names; i++)
    free (sd.names[i]);
  free (sd.names);
  return r;
}

int
vmferry_parse_bandwidth (const char *arg, uint64_t *rtn)
{
  char *end;
  double v;
  uint64_t mult = 1;
  bool bits = false;

  errno = 0;
  v = strtod (arg, &end);
  if (errno || end == arg || v <= 0)
    goto bad;
  if (strcasecmp (end + (*end ? 1 : 0), "bit") == 0 ||
      strcasecmp (end, "bit") == 0)
    bits = true;
  switch (*end) {
  case 'k': case 'K': mult = bits ? 1000 : 1024; end++; break;
  case 'm': case 'M': mult = bits ? 1000000 : 1024 * 1024; end++; break;
  case 'g': case 'G':
    mult = bits ? 1000000000 : 1024 * 1024 * 1024; end++; break;
  }
  if (bits && strcasecmp (end, "bit") == 0)
    end += 3;
  if (*end == 'B' || (*end == 'i' && end[1] == 'B'))
    end += *end == 'B' ? 1 : 2;
  if (*end)
    goto bad;
  v *= mult;
  if (bits)
    v /= 8;
  if (v < 1 || v > 1e15)
    goto bad;
  *rtn = (uint64_t) v;
  return 0;
 bad:
  vmferry_set_error ("--bandwidth: '%s': give bytes per second (e.g. 50M) "
                     "or bits (e.g. 400Mbit)", arg);
  return -1;
}
