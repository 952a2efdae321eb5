/* vmferry: progress reporting (see progress.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "clock.h"
#include "error.h"
#include "human.h"
#include "log.h"
#include "progress.h"
#include "vector.h"

/* An item begun while another is shown. */
struct queued {
  char *label;
  uint64_t total;
  double started;
};

DEFINE_VECTOR_TYPE (queued_vector, struct queued);

struct vmferry_progress {
  enum vmferry_progress_mode mode;
  int fd;
  pthread_mutex_t lock;
  double (*clock) (void *opaque);
  void *clock_opaque;

  /* The item shown: the oldest begun and not ended. */
  char *label;
  uint64_t total, done;
  double started, last_shown;
  bool active;

  /* Items begun while that one was open (an import's reader starts the
   * next file before the writers end the last), shown in turn.
   */
  struct queued_vector queue;

  /* The run (vmferry_progress_set_total), when there is one. */
  bool run, run_begun;
  char *run_name;
  uint64_t run_total, run_done;
  size_t run_items, run_ended;
  double run_started;

  bool line_open;               /* a bar drawn without its newline */
};

/* Defined below, with the drawing. */
static void write_all (int fd, const char *buf, size_t len);

static double
monotonic_clock (void *opaque)
{
  (void) opaque;
  return vmferry_monotonic ();
}

struct vmferry_progress *
vmferry_progress_new (enum vmferry_progress_mode mode, int fd)
{
  struct vmferry_progress *p = calloc (1, sizeof *p);

  if (p == NULL) {
    vmferry_set_error_errno (errno, "progress: calloc");
    return NULL;
  }
  p->mode = mode;
  p->fd = fd;
  p->clock = monotonic_clock;
  pthread_mutex_init (&p->lock, NULL);
  return p;
}

struct vmferry_progress *
vmferry_progress_auto (int progress_fd, bool quiet)
{
  if (progress_fd >= 0)
    return vmferry_progress_new (VMFERRY_PROGRESS_MACHINE, progress_fd);
  if (!quiet && isatty (STDERR_FILENO)) {
    struct vmferry_progress *p = vmferry_progress_new (VMFERRY_PROGRESS_BAR,
                                                       STDERR_FILENO);
    vmferry_progress_own_line (p);
    return p;
  }
  return NULL;
}

/* The bar that owns its terminal line; one per process. */
static struct vmferry_progress *line_owner;

void
vmferry_progress_break_line (void)
{
  struct vmferry_progress *p = __atomic_load_n (&line_owner, __ATOMIC_ACQUIRE);

  if (p == NULL)
    return;
  pthread_mutex_lock (&p->lock);
  if (p->line_open) {
    write_all (p->fd, "\n", 1);
    p->line_open = false;
  }
  pthread_mutex_unlock (&p->lock);
}

/* vmferry_log's sink while a bar owns the line (called under its lock). */
static void
log_below_bar (void *opaque, int level, const char *msg)
{
  struct vmferry_progress *p = opaque;
  char *line;

  (void) level;
  vmferry_progress_break_line ();
  if (asprintf (&line, "%s: %s\n", vmferry_program_name (), msg) >= 0) {
    write_all (p->fd, line, strlen (line));
    free (line);
  }
}

void
vmferry_progress_own_line (struct vmferry_progress *p)
{
  if (p == NULL || p->mode != VMFERRY_PROGRESS_BAR)
    return;
  __atomic_store_n (&line_owner, p, __ATOMIC_RELEASE);
  vmferry_set_log_fn (log_below_bar, p);
}

bool
vmferry_progress_fd_is_sink (int fd)
{
  struct stat st;

  if (fstat (fd, &st) < 0)
    return false;
  return !S_ISFIFO (st.st_mode) && !S_ISSOCK (st.st_mode);
}

struct vmferry_progress *
vmferry_progress_auto_stream (int progress_fd, bool quiet, int stream_fd)
{
  if (progress_fd < 0 && !vmferry_progress_fd_is_sink (stream_fd))
    return NULL;
  return vmferry_progress_auto (progress_fd, quiet);
}

void
vmferry_progress_free (struct vmferry_progress *p)
{
  if (p == NULL)
    return;
  if (__atomic_load_n (&line_owner, __ATOMIC_ACQUIRE) == p) {
    vmferry_set_log_fn (NULL, NULL);
    __atomic_store_n (&line_owner, NULL, __ATOMIC_RELEASE);
  }
  if (p->line_open)
    write_all (p->fd, "\n", 1);
  pthread_mutex_destroy (&p->lock);
  free (p->label);
  for (size_t i = 0; i < p->queue.len; i++)
    free (p->queue.ptr[i].label);
  queued_vector_reset (&p->queue);
  free (p->run_name);
  free (p);
}

void
vmferry_progress_set_total (struct vmferry_progress *p, const char *name,
                            uint64_t total, size_t nr_items)
{
  char *copy = NULL;

  if (p == NULL)
    return;
  if (name)
    copy = strdup (name);       /* without it, the bar shows items only */
  pthread_mutex_lock (&p->lock);
  free (p->run_name);
  p->run_name = copy;
  p->run = true;
  p->run_begun = false;
  p->run_total = total;
  p->run_done = 0;
  p->run_items = nr_items;
  p->run_ended = 0;
  pthread_mutex_unlock (&p->lock);
}

void
vmferry_progress_set_clock (struct vmferry_progress *p,
                            double (*clock) (void *opaque), void *opaque)
{
  if (p == NULL)
    return;
  p->clock = clock;
  p->clock_opaque = opaque;
}

/* Write all of BUF; progress is best effort, so errors are ignored (a
 * closed progress pipe must not fail a copy).
 */
static void
write_all (int fd, const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t r = write (fd, buf, len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return;
    buf += r;
    len -= r;
  }
}

/* Rate in bytes/s and ETA in seconds (-1 unknown) from the item so far. */
static void
rate_eta (const struct vmferry_progress *p, double now, double *rate,
          double *eta)
{
  double elapsed = now - p->started;

  *rate = elapsed > 0 ? p->done / elapsed : 0;
  if (p->total > 0 && *rate > 0 && p->done <= p->total)
    *eta = (p->total - p->done) / *rate;
  else
    *eta = -1;
}

static void
show_machine (struct vmferry_progress *p, const char *event, double now)
{
  json_object *o = json_object_new_object ();
  double rate, eta;
  const char *s;
  char *line;

  rate_eta (p, now, &rate, &eta);
  json_object_object_add (o, "event", json_object_new_string (event));
  json_object_object_add (o, "label", json_object_new_string (p->label));
  json_object_object_add (o, "done", json_object_new_uint64 (p->done));
  json_object_object_add (o, "total", json_object_new_uint64 (p->total));
  json_object_object_add (o, "rate", json_object_new_int64 ((int64_t) rate));
  json_object_object_add (o, "eta", json_object_new_int64 ((int64_t) eta));
  if (p->run) {
    json_object_object_add (o, "run_done",
                            json_object_new_uint64 (p->run_done));
    json_object_object_add (o, "run_total",
                            json_object_new_uint64 (p->run_total));
  }
  if (strcmp (event, "end") == 0)
    json_object_object_add (o, "elapsed",
                            json_object_new_double (now - p->started));
  s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  if (asprintf (&line, "%s\n", s) >= 0) {
    write_all (p->fd, line, strlen (line));
    free (line);
  }
  json_object_put (o);
}

size_t
vmferry_progress_format_bar (char *buf, size_t len, const char *label,
                             uint64_t done, uint64_t total, double rate,
                             double seconds, bool final)
{
  /* At most 79 columns with the widest figures (a terminal wraps a
   * longer line, and "\r" then redraws only its last row).
   */
  enum { width = 9 };
  char done_s[32], total_s[32], speed[32], time_s[32], bar[width + 1];
  double frac;
  int filled, n;

  if (len == 0)
    return 0;
  frac = total ? (double) done / total : 0;
  if (frac > 1)
    frac = 1;
  filled = (int) (frac * width);
  for (int i = 0; i < width; i++)
    bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
  bar[width] = '\0';
  vmferry_human_size (done, done_s, sizeof done_s);
  vmferry_human_size (total, total_s, sizeof total_s);
  vmferry_human_size (rate > 0 ? (uint64_t) rate : 0, speed, sizeof speed);
  vmferry_human_duration (seconds, time_s, sizeof time_s);
  if (total)
    n = snprintf (buf, len, "\r%-14.14s %3d%% [%s] %s/%s %s/s %s %s\033[K%s",
                  label, (int) (frac * 100), bar, done_s, total_s, speed,
                  final ? "in" : "ETA", time_s, final ? "\n" : "");
  else
    n = snprintf (buf, len, "\r%-14.14s %s %s/s%s%s\033[K%s", label, done_s,
                  speed, final ? " in " : "", final ? time_s : "",
                  final ? "\n" : "");
  if (n < 0) {
    buf[0] = '\0';
    return 0;
  }
  return (size_t) n < len ? (size_t) n : len - 1;
}

/* Draw the item, or with a run the run, in place; FINAL ends the line. */
static void
show_bar (struct vmferry_progress *p, bool final, double now)
{
  char line[512], label[256];
  double rate, eta, elapsed;
  uint64_t done = p->done, total = p->total;
  size_t n;

  rate_eta (p, now, &rate, &eta);
  elapsed = now - p->started;
  if (p->run) {
    done = p->run_done;
    total = p->run_total;
    elapsed = now - p->run_started;
    rate = elapsed > 0 ? done / elapsed : 0;
    eta = total > 0 && rate > 0 && done <= total ? (total - done) / rate : -1;
    snprintf (label, sizeof label, "%s", p->run_name ? p->run_name : p->label);
  }
  else
    snprintf (label, sizeof label, "%s", p->label);
  n = vmferry_progress_format_bar (line, sizeof line, label, done, total, rate,
                                   final ? elapsed : eta, final);
  write_all (p->fd, line, n);
  p->line_open = !final;
}

/* Show item LABEL (owned) of TOTAL bytes, begun at STARTED. */
static void
show_item (struct vmferry_progress *p, char *label, uint64_t total,
           double started)
{
  free (p->label);
  p->label = label;
  p->total = total;
  p->done = 0;
  p->started = p->last_shown = started;
  p->active = true;
  if (p->mode == VMFERRY_PROGRESS_MACHINE)
    show_machine (p, "begin", started);
  else
    show_bar (p, false, p->clock (p->clock_opaque));
}

void
vmferry_progress_begin (struct vmferry_progress *p, const char *label,
                        uint64_t total)
{
  char *copy;
  double now;

  if (p == NULL)
    return;
  copy = strdup (label ? label : "");
  if (copy == NULL)
    return;                     /* best effort: the item is not shown */
  pthread_mutex_lock (&p->lock);
  now = p->clock (p->clock_opaque);
  if (p->run && !p->run_begun) {
    p->run_started = now;
    p->run_begun = true;
  }
  if (!p->active)
    show_item (p, copy, total, now);
  else if (queued_vector_append (&p->queue,
                                 (struct queued) { copy, total, now }) == -1)
    free (copy);
  pthread_mutex_unlock (&p->lock);
}

void
vmferry_progress_add (struct vmferry_progress *p, uint64_t bytes)
{
  double now, interval;

  if (p == NULL)
    return;
  pthread_mutex_lock (&p->lock);
  if (!p->active)
    goto out;
  p->done += bytes;
  p->run_done += bytes;
  now = p->clock (p->clock_opaque);
  interval = p->mode == VMFERRY_PROGRESS_MACHINE ? 1.0 : 0.1;
  if (now - p->last_shown >= interval) {
    p->last_shown = now;
    if (p->mode == VMFERRY_PROGRESS_MACHINE)
      show_machine (p, "progress", now);
    else
      show_bar (p, false, now);
  }
 out:
  pthread_mutex_unlock (&p->lock);
}

static void
end_item (struct vmferry_progress *p, bool complete)
{
  uint64_t carry = 0;
  double now;

  if (p == NULL)
    return;
  pthread_mutex_lock (&p->lock);
  /* Bytes beyond the item with one queued: the next one's, counted while
   * this one was shown.
   */
  if (p->active && p->queue.len > 0 && p->total && p->done > p->total) {
    carry = p->done - p->total;
    p->done = p->total;
  }
  if (p->active && complete && p->done < p->total) {
    p->run_done += p->total - p->done;
    p->done = p->total;
  }
  if (p->active) {
    now = p->clock (p->clock_opaque);
    p->run_ended++;
    if (p->mode == VMFERRY_PROGRESS_MACHINE)
      show_machine (p, "end", now);
    else
      show_bar (p, !p->run || p->run_ended >= p->run_items, now);
    p->active = false;
    if (p->queue.len > 0) {
      struct queued q = p->queue.ptr[0];

      queued_vector_remove (&p->queue, 0);
      show_item (p, q.label, q.total, q.started);
      p->done = carry;
    }
  }
  pthread_mutex_unlock (&p->lock);
}

void
vmferry_progress_end (struct vmferry_progress *p)
{
  end_item (p, false);
}

void
vmferry_progress_done (struct vmferry_progress *p)
{
  end_item (p, true);
}
