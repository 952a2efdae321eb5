/* Unit tests for lib/progress.c: units, machine lines, the bar. */
#include "config.h"

#include "unit.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "log.h"
#include "progress.h"

static double fake_now;

static double
fake_clock (void *opaque)
{
  (void) opaque;
  return fake_now;
}

/* Read what the reporter wrote into the pipe so far. */
static void
drain (int fd, char *buf, size_t len)
{
  ssize_t n = read (fd, buf, len - 1);

  ck_assert_int_ge (n, 0);
  buf[n] = '\0';
}

START_TEST (test_human_size)
{
  static const struct { uint64_t n; const char *s; } cases[] = {
    { 0, "0 B" }, { 1023, "1023 B" }, { 1024, "1.0 KiB" },
    { 1536, "1.5 KiB" }, { 1048576, "1.0 MiB" },
    { 17179869184ULL, "16.0 GiB" }, { UINT64_MAX, "16.0 EiB" },
  };
  char buf[32];

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    vmferry_human_size (cases[i].n, buf, sizeof buf);
    ck_assert_str_eq (buf, cases[i].s);
  }
}
END_TEST

START_TEST (test_human_duration)
{
  char buf[32];

  vmferry_human_duration (-1, buf, sizeof buf);
  ck_assert_str_eq (buf, "--:--");
  vmferry_human_duration (0, buf, sizeof buf);
  ck_assert_str_eq (buf, "0:00");
  vmferry_human_duration (125.4, buf, sizeof buf);
  ck_assert_str_eq (buf, "2:05");
  vmferry_human_duration (3723, buf, sizeof buf);
  ck_assert_str_eq (buf, "1:02:03");
}
END_TEST

START_TEST (test_machine_lines)
{
  int pfd[2];
  char buf[4096];
  struct vmferry_progress *p;
  json_object *o, *v;

  ck_assert_int_eq (pipe (pfd), 0);
  p = vmferry_progress_new (VMFERRY_PROGRESS_MACHINE, pfd[1]);
  ck_assert_ptr_nonnull (p);
  vmferry_progress_set_clock (p, fake_clock, NULL);

  fake_now = 100;
  vmferry_progress_begin (p, "disk \"vda\"", 1000);
  drain (pfd[0], buf, sizeof buf);
  o = json_tokener_parse (buf);
  ck_assert_ptr_nonnull (o);
  ck_assert (json_object_object_get_ex (o, "event", &v));
  ck_assert_str_eq (json_object_get_string (v), "begin");
  ck_assert (json_object_object_get_ex (o, "label", &v));
  ck_assert_str_eq (json_object_get_string (v), "disk \"vda\"");
  json_object_put (o);

  /* Within a second: nothing is written. */
  fake_now = 100.5;
  vmferry_progress_add (p, 100);
  fake_now = 102;
  vmferry_progress_add (p, 100);
  drain (pfd[0], buf, sizeof buf);
  o = json_tokener_parse (buf);
  ck_assert_ptr_nonnull (o);
  ck_assert (json_object_object_get_ex (o, "done", &v));
  ck_assert_int_eq (json_object_get_int64 (v), 200);
  ck_assert (json_object_object_get_ex (o, "rate", &v));
  ck_assert_int_eq (json_object_get_int64 (v), 100);      /* 200 B in 2 s */
  ck_assert (json_object_object_get_ex (o, "eta", &v));
  ck_assert_int_eq (json_object_get_int64 (v), 8);        /* 800 B left */
  json_object_put (o);

  fake_now = 110;
  vmferry_progress_add (p, 800);
  drain (pfd[0], buf, sizeof buf);                         /* progress line */
  vmferry_progress_end (p);
  drain (pfd[0], buf, sizeof buf);
  o = json_tokener_parse (buf);
  ck_assert_ptr_nonnull (o);
  ck_assert (json_object_object_get_ex (o, "event", &v));
  ck_assert_str_eq (json_object_get_string (v), "end");
  ck_assert (json_object_object_get_ex (o, "elapsed", &v));
  ck_assert (json_object_get_double (v) == 10.0);
  json_object_put (o);

  vmferry_progress_free (p);
  close (pfd[0]);
  close (pfd[1]);
}
END_TEST

START_TEST (test_bar)
{
  int pfd[2];
  char buf[4096];
  struct vmferry_progress *p;

  ck_assert_int_eq (pipe (pfd), 0);
  p = vmferry_progress_new (VMFERRY_PROGRESS_BAR, pfd[1]);
  vmferry_progress_set_clock (p, fake_clock, NULL);
  fake_now = 0;
  vmferry_progress_begin (p, "vda", 4 << 20);
  drain (pfd[0], buf, sizeof buf);
  fake_now = 1;
  vmferry_progress_add (p, 1 << 20);
  drain (pfd[0], buf, sizeof buf);
  ck_assert_ptr_nonnull (strstr (buf, " 25% "));
  ck_assert_ptr_nonnull (strstr (buf, "1.0 MiB/4.0 MiB"));
  ck_assert_ptr_nonnull (strstr (buf, "1.0 MiB/s"));
  ck_assert_ptr_nonnull (strstr (buf, "ETA 0:03"));
  ck_assert_int_eq (buf[0], '\r');
  fake_now = 4;
  vmferry_progress_add (p, 3 << 20);
  vmferry_progress_end (p);
  drain (pfd[0], buf, sizeof buf);
  ck_assert_ptr_nonnull (strstr (buf, "100%"));
  ck_assert_int_eq (buf[strlen (buf) - 1], '\n');
  vmferry_progress_free (p);
  close (pfd[0]);
  close (pfd[1]);
}
END_TEST

START_TEST (test_format_bar)
{
  char buf[512];
  size_t n;

  n = vmferry_progress_format_bar (buf, sizeof buf, "web01 vda", 3 << 20,
                                   12 << 20, 1 << 20, 9, false);
  ck_assert_uint_eq (n, strlen (buf));
  ck_assert_str_eq (buf, "\rweb01 vda       25% [==>      ] "
                    "3.0 MiB/12.0 MiB 1.0 MiB/s ETA 0:09\033[K");
  /* Done: full, the time taken, and the line ends. */
  vmferry_progress_format_bar (buf, sizeof buf, "vda", 12 << 20, 12 << 20,
                               1 << 20, 12, true);
  ck_assert_str_eq (buf, "\rvda            100% [=========] "
                    "12.0 MiB/12.0 MiB 1.0 MiB/s in 0:12\033[K\n");
  /* More than the total (a file rewritten on resume): never past 100%. */
  vmferry_progress_format_bar (buf, sizeof buf, "vda", 13 << 20, 12 << 20,
                               0, -1, false);
  ck_assert_ptr_nonnull (strstr (buf, " 100% ["));
  ck_assert_ptr_nonnull (strstr (buf, " 0 B/s ETA --:--"));
  /* Unknown total: no percentage, no bar. */
  vmferry_progress_format_bar (buf, sizeof buf, "memory", 1536, 0, 512, 3,
                               true);
  ck_assert_str_eq (buf, "\rmemory         "
                    "1.5 KiB 512 B/s in 0:03\033[K\n");
  /* A label longer than its columns is cut, a small buffer truncates. */
  n = vmferry_progress_format_bar (buf, 8, "a-very-long-label-indeed-yes", 1, 2,
                                   1, 1, false);
  ck_assert_uint_eq (n, 7);
  ck_assert_str_eq (buf, "\ra-very");
  vmferry_progress_format_bar (buf, sizeof buf, "a-very-long-label-indeed-yes",
                               1, 2, 1, 1, false);
  ck_assert_ptr_nonnull (strstr (buf, "\ra-very-long-la  50% "));
  /* The widest figures fit an 80-column terminal: a wrapped line would
   * be redrawn from its last row only.
   */
  n = vmferry_progress_format_bar (buf, sizeof buf, "a-very-long-label",
                                   1023ULL << 40, 1023ULL << 40,
                                   1023.9 * (1 << 30), 359999, false);
  ck_assert_ptr_nonnull (strstr (buf, "1023.0 TiB/1023.0 TiB"));
  ck_assert_ptr_nonnull (strstr (buf, " ETA 99:59:59\033[K"));
  ck_assert_uint_le (n - strlen ("\r\033[K"), 79);
}
END_TEST

/* Count the carriage returns (bar draws) and newlines in BUF. */
static void
count_lines (const char *buf, int *cr, int *nl)
{
  *cr = *nl = 0;
  for (; *buf; buf++) {
    *cr += *buf == '\r';
    *nl += *buf == '\n';
  }
}

START_TEST (test_run)
{
  int pfd[2], cr, nl;
  char buf[8192];
  struct vmferry_progress *p;

  ck_assert_int_eq (pipe (pfd), 0);
  p = vmferry_progress_new (VMFERRY_PROGRESS_BAR, pfd[1]);
  vmferry_progress_set_clock (p, fake_clock, NULL);
  vmferry_progress_set_total (p, "web01", 4 << 20, 2);
  fake_now = 10;
  vmferry_progress_begin (p, "vda", 3 << 20);
  fake_now = 11;
  vmferry_progress_add (p, 3 << 20);
  vmferry_progress_end (p);
  drain (pfd[0], buf, sizeof buf);
  /* One line for the run: the first item's end does not end it. */
  count_lines (buf, &cr, &nl);
  ck_assert_int_eq (cr, 3);
  ck_assert_int_eq (nl, 0);
  ck_assert_ptr_nonnull (strstr (buf, "\rweb01           75% "));
  ck_assert_ptr_nonnull (strstr (buf, " 3.0 MiB/4.0 MiB 3.0 MiB/s ETA 0:00"));
  fake_now = 12;
  vmferry_progress_begin (p, "nvram", 1 << 20);
  drain (pfd[0], buf, sizeof buf);
  ck_assert_ptr_nonnull (strstr (buf, "\rweb01           75% "));
  /* Half of it a hole the stream leaves out: done counts it. */
  fake_now = 14;
  vmferry_progress_add (p, 1 << 19);
  vmferry_progress_done (p);
  drain (pfd[0], buf, sizeof buf);
  count_lines (buf, &cr, &nl);
  ck_assert_int_eq (nl, 1);
  ck_assert_int_eq (buf[strlen (buf) - 1], '\n');
  ck_assert_ptr_nonnull (strstr (buf, "100% [=========] "
                                 "4.0 MiB/4.0 MiB 1.0 MiB/s in 0:04"));
  /* Ended: freeing adds nothing. */
  vmferry_progress_free (p);
  close (pfd[1]);
  drain (pfd[0], buf, sizeof buf);
  ck_assert_str_eq (buf, "");
  close (pfd[0]);
}
END_TEST

START_TEST (test_run_cut)
{
  int pfd[2];
  char buf[4096];
  struct vmferry_progress *p;
  json_object *o, *v;

  /* A run that fails half way: its line is ended when it is freed. */
  ck_assert_int_eq (pipe (pfd), 0);
  p = vmferry_progress_new (VMFERRY_PROGRESS_BAR, pfd[1]);
  vmferry_progress_set_clock (p, fake_clock, NULL);
  vmferry_progress_set_total (p, NULL, 4 << 20, 2);
  fake_now = 0;
  vmferry_progress_begin (p, "vda", 3 << 20);
  vmferry_progress_add (p, 1 << 20);
  drain (pfd[0], buf, sizeof buf);
  ck_assert_ptr_nonnull (strstr (buf, "\rvda "));
  vmferry_progress_free (p);
  drain (pfd[0], buf, sizeof buf);
  ck_assert_str_eq (buf, "\n");
  close (pfd[0]);
  close (pfd[1]);

  /* Machine lines stay per item and carry the run's figures. */
  ck_assert_int_eq (pipe (pfd), 0);
  p = vmferry_progress_new (VMFERRY_PROGRESS_MACHINE, pfd[1]);
  vmferry_progress_set_clock (p, fake_clock, NULL);
  vmferry_progress_set_total (p, "web01", 4 << 20, 2);
  vmferry_progress_begin (p, "vda", 3 << 20);
  drain (pfd[0], buf, sizeof buf);
  vmferry_progress_add (p, 3 << 20);
  vmferry_progress_end (p);
  drain (pfd[0], buf, sizeof buf);
  o = json_tokener_parse (buf);
  ck_assert_ptr_nonnull (o);
  ck_assert (json_object_object_get_ex (o, "label", &v));
  ck_assert_str_eq (json_object_get_string (v), "vda");
  ck_assert (json_object_object_get_ex (o, "run_done", &v));
  ck_assert_int_eq (json_object_get_int64 (v), 3 << 20);
  ck_assert (json_object_object_get_ex (o, "run_total", &v));
  ck_assert_int_eq (json_object_get_int64 (v), 4 << 20);
  json_object_put (o);
  vmferry_progress_free (p);
  close (pfd[0]);
  close (pfd[1]);
}
END_TEST

START_TEST (test_overlap)
{
  int pfd[2];
  char buf[8192], *line, *save;
  struct vmferry_progress *p;
  const char *want[] = {
    "begin vda 0/3145728", "end vda 3145728/3145728",
    "begin nvram 0/1048576", "end nvram 1048576/1048576",
  };
  size_t n = 0;

  /* An import begins the next file before the last one ends, and its
   * reader counts the next file's zeros meanwhile: items are shown in
   * turn, each complete once, and the run ends at its total.
   */
  ck_assert_int_eq (pipe (pfd), 0);
  p = vmferry_progress_new (VMFERRY_PROGRESS_MACHINE, pfd[1]);
  vmferry_progress_set_clock (p, fake_clock, NULL);
  vmferry_progress_set_total (p, "web01", 4 << 20, 2);
  fake_now = 0;
  vmferry_progress_begin (p, "vda", 3 << 20);
  vmferry_progress_add (p, 2 << 20);
  vmferry_progress_begin (p, "nvram", 1 << 20);
  vmferry_progress_add (p, 1 << 20);            /* vda's last data */
  vmferry_progress_add (p, 1 << 19);            /* nvram's zeros */
  vmferry_progress_done (p);
  vmferry_progress_done (p);
  vmferry_progress_done (p);                    /* nothing left to end */
  drain (pfd[0], buf, sizeof buf);
  for (line = strtok_r (buf, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save)) {
    json_object *o = json_tokener_parse (line), *ev, *label, *done, *total;
    char got[128];

    ck_assert_ptr_nonnull (o);
    ck_assert (json_object_object_get_ex (o, "event", &ev));
    ck_assert (json_object_object_get_ex (o, "label", &label));
    ck_assert (json_object_object_get_ex (o, "done", &done));
    ck_assert (json_object_object_get_ex (o, "total", &total));
    snprintf (got, sizeof got, "%s %s %" PRIu64 "/%" PRIu64,
              json_object_get_string (ev), json_object_get_string (label),
              json_object_get_uint64 (done), json_object_get_uint64 (total));
    ck_assert_uint_lt (n, sizeof want / sizeof want[0]);
    ck_assert_str_eq (got, want[n]);
    n++;
    if (strcmp (json_object_get_string (ev), "end") == 0 &&
        strcmp (json_object_get_string (label), "nvram") == 0) {
      ck_assert (json_object_object_get_ex (o, "run_done", &done));
      ck_assert_uint_eq (json_object_get_uint64 (done), 4 << 20);
    }
    json_object_put (o);
  }
  ck_assert_uint_eq (n, 4);
  vmferry_progress_free (p);
  close (pfd[0]);
  close (pfd[1]);
}
END_TEST

START_TEST (test_sink)
{
  int pfd[2], sv[2];
  char path[] = "/tmp/check_progress.XXXXXX";
  int fd = mkstemp (path);

  /* A file ends the stream; a pipe or socket passes it on; a bad FD is
   * not a sink (better no bar than two).
   */
  ck_assert_int_ge (fd, 0);
  unlink (path);
  ck_assert (vmferry_progress_fd_is_sink (fd));
  ck_assert_int_eq (pipe (pfd), 0);
  ck_assert (!vmferry_progress_fd_is_sink (pfd[1]));
  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ck_assert (!vmferry_progress_fd_is_sink (sv[0]));
  ck_assert (!vmferry_progress_fd_is_sink (-1));
  /* Not quiet, but the stream goes on: no reporter; asked for machine
   * lines: they are written wherever the stream goes.
   */
  ck_assert_ptr_null (vmferry_progress_auto_stream (-1, false, pfd[1]));
  {
    struct vmferry_progress *p = vmferry_progress_auto_stream (pfd[1], false,
                                                               sv[0]);
    ck_assert_ptr_nonnull (p);
    vmferry_progress_free (p);
  }
  close (fd);
  close (pfd[0]);
  close (pfd[1]);
  close (sv[0]);
  close (sv[1]);
}
END_TEST

START_TEST (test_own_line)
{
  int pfd[2];
  char buf[4096];
  struct vmferry_progress *p;

  /* A message while the bar is drawn goes on a line of its own below it,
   * and so does an error the tool prints; after the bar is freed,
   * messages are no longer its business.
   */
  ck_assert_int_eq (pipe (pfd), 0);
  vmferry_set_program_name ("vmferry-test");
  p = vmferry_progress_new (VMFERRY_PROGRESS_BAR, pfd[1]);
  vmferry_progress_set_clock (p, fake_clock, NULL);
  vmferry_progress_own_line (p);
  fake_now = 0;
  vmferry_progress_begin (p, "vda", 4 << 20);
  vmferry_notice ("a notice");
  drain (pfd[0], buf, sizeof buf);
  ck_assert_ptr_nonnull (strstr (buf, "\033[K\nvmferry-test: a notice\n"));
  ck_assert_int_eq (buf[0], '\r');
  vmferry_notice ("another");
  drain (pfd[0], buf, sizeof buf);
  ck_assert_str_eq (buf, "vmferry-test: another\n");
  fake_now = 1;
  vmferry_progress_add (p, 1 << 20);
  vmferry_progress_break_line ();
  drain (pfd[0], buf, sizeof buf);
  ck_assert_int_eq (buf[0], '\r');
  ck_assert_int_eq (buf[strlen (buf) - 1], '\n');
  vmferry_progress_free (p);
  vmferry_progress_break_line ();
  vmferry_notice ("a notice after the bar, to stderr");
  close (pfd[1]);
  drain (pfd[0], buf, sizeof buf);
  ck_assert_str_eq (buf, "");
  close (pfd[0]);
}
END_TEST

START_TEST (test_null_is_ignored)
{
  vmferry_progress_begin (NULL, "x", 1);
  vmferry_progress_add (NULL, 1);
  vmferry_progress_end (NULL);
  vmferry_progress_set_total (NULL, "x", 1, 1);
  vmferry_progress_free (NULL);
  /* Not a terminal, no FD: no reporter. */
  ck_assert_ptr_null (vmferry_progress_auto (-1, true));
}
END_TEST

VMFERRY_UNIT_MAIN ("progress", test_human_size, test_human_duration,
                   test_machine_lines, test_bar, test_format_bar, test_run,
                   test_run_cut, test_overlap, test_sink, test_own_line,
                   test_null_is_ignored)
