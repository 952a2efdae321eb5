/* Unit tests for tools/tool.c: argument parsing shared by the tools. */
#include "config.h"

#include "unit.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "error.h"
#include "log.h"
#include "tool.h"

START_TEST (test_parse_uint)
{
  uint64_t v;

  ck_assert (vmferry_parse_uint ("--threads", "4", 1, 256, &v));
  ck_assert_uint_eq (v, 4);
  ck_assert (!vmferry_parse_uint ("--threads", "0", 1, 256, &v));
  ck_assert_str_eq (vmferry_get_error (), "--threads: 0 is out of range (1 to 256)");
  ck_assert (!vmferry_parse_uint ("--threads", "-1", 1, 256, &v));
  ck_assert_str_eq (vmferry_get_error (), "--threads: '-1' is not a number");
  ck_assert (!vmferry_parse_uint ("--threads", "4x", 1, 256, &v));
  ck_assert (!vmferry_parse_uint ("--threads", "", 1, 256, &v));
  ck_assert (!vmferry_parse_uint ("--threads", "99999999999999999999999", 0, UINT64_MAX, &v));
}
END_TEST

START_TEST (test_parse_fd)
{
  int fd;

  ck_assert (vmferry_parse_fd ("--progress", "2", &fd));
  ck_assert_int_eq (fd, 2);
  ck_assert (!vmferry_parse_fd ("--progress", "999", &fd));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "--progress: file descriptor 999: Bad file descriptor"));
}
END_TEST

START_TEST (test_common_options)
{
  vmferry_set_verbosity (VMFERRY_LOG_NORMAL);
  ck_assert (vmferry_tool_common_option ('v', ""));
  ck_assert (vmferry_tool_common_option ('v', ""));
  ck_assert (vmferry_tool_common_option ('v', ""));
  ck_assert_int_eq (vmferry_get_verbosity (), VMFERRY_LOG_DEBUG);
  ck_assert (vmferry_tool_common_option ('q', ""));
  ck_assert_int_eq (vmferry_get_verbosity (), VMFERRY_LOG_QUIET);
  ck_assert (!vmferry_tool_common_option ('c', ""));
  vmferry_set_verbosity (VMFERRY_LOG_NORMAL);
}
END_TEST

/* Run FN with stdout (FD 1) or stderr (FD 2) going to a file; return what
 * it wrote (the caller frees).
 */
static char *
capture (int fd, void (*fn) (void))
{
  FILE *f = tmpfile ();
  int saved = dup (fd);
  char *text;
  long len;

  ck_assert_ptr_nonnull (f);
  fflush (fd == 1 ? stdout : stderr);
  ck_assert_int_ge (dup2 (fileno (f), fd), 0);
  fn ();
  fflush (fd == 1 ? stdout : stderr);
  ck_assert_int_ge (dup2 (saved, fd), 0);
  close (saved);
  len = (long) lseek (fileno (f), 0, SEEK_END);
  text = calloc (1, (size_t) len + 1);
  ck_assert_ptr_nonnull (text);
  ck_assert_int_eq (pread (fileno (f), text, (size_t) len, 0), len);
  fclose (f);
  return text;
}

static int fail_status;

static void
fail_blocked (void)
{
  vmferry_set_error ("disk /x: \"quoted\" and\ta tab");
  fail_status = vmferry_tool_fail (VMFERRY_EXIT_FAILED);
}

/* The table's values are what scripts and the man pages rely on. */
START_TEST (test_exit_codes)
{
  ck_assert_int_eq (VMFERRY_EXIT_OK, 0);
  ck_assert_int_eq (VMFERRY_EXIT_FAILED, 1);
  ck_assert_int_eq (VMFERRY_EXIT_USAGE, 2);
  ck_assert_int_eq (VMFERRY_EXIT_CANNOT_RUN, 2);
  ck_assert_int_eq (VMFERRY_EXIT_BOTH_DEFINED, 3);
  ck_assert_int_eq (VMFERRY_EXIT_LEFTOVERS, 4);
  ck_assert_int_eq (VMFERRY_EXIT_SPLIT, 5);
  ck_assert_int_eq (VMFERRY_EXIT_SIGNAL + 2, 130);
  ck_assert_int_eq (VMFERRY_EXIT_SIGNAL + 15, 143);
}
END_TEST

/* Without --json an error is one line on stderr and nothing on stdout. */
START_TEST (test_fail_text)
{
  char *out, *err;
  char *argv[] = { "vmferry-check", "-c", "x", "--", "--json", NULL };

  vmferry_set_program_name ("vmferry-check");
  ck_assert (!vmferry_tool_json_errors (5, argv, "vmferry-check/1"));
  out = capture (1, fail_blocked);
  ck_assert_int_eq (fail_status, 1);
  ck_assert_str_eq (out, "");
  err = capture (2, fail_blocked);
  ck_assert_str_eq (err, "vmferry-check: disk /x: \"quoted\" and\ta tab\n");
  free (out);
  free (err);
}
END_TEST

/* With --json, stdout gets one object: format, the message, the status. */
START_TEST (test_fail_json)
{
  char *argv[] = { "vmferry-check", "-c", "x", "--json", "dom", NULL };
  json_object *o, *v;
  char *out;

  vmferry_set_program_name ("vmferry-check");
  ck_assert (vmferry_tool_json_errors (5, argv, "vmferry-check/1"));
  out = capture (1, fail_blocked);
  o = json_tokener_parse (out);
  ck_assert_msg (o != NULL, "not JSON: %s", out);
  ck_assert (json_object_object_get_ex (o, "format", &v));
  ck_assert_str_eq (json_object_get_string (v), "vmferry-check/1");
  ck_assert (json_object_object_get_ex (o, "error", &v));
  ck_assert_str_eq (json_object_get_string (v), "disk /x: \"quoted\" and\ta tab");
  ck_assert (json_object_object_get_ex (o, "exit_status", &v));
  ck_assert_int_eq (json_object_get_int (v), 1);
  json_object_put (o);
  free (out);
}
END_TEST

static void
summary (void)
{
  vmferry_tool_print_summary ();
}

/* The summary line: printed on stderr unless -q, only when there is one. */
START_TEST (test_summary)
{
  char *err;

  vmferry_set_program_name ("vmferry-export");
  vmferry_set_verbosity (VMFERRY_LOG_NORMAL);
  vmferry_clear_summary ();
  err = capture (2, summary);
  ck_assert_str_eq (err, "");
  free (err);
  vmferry_set_summary ("domain %s exported to %s", "web01", "web01.vmf");
  vmferry_set_summary ("domain %s exported to %s (%s)", "web01", "stdout",
                       "the last one counts");
  err = capture (2, summary);
  ck_assert_str_eq (err, "vmferry-export: domain web01 exported to stdout "
                    "(the last one counts)\n");
  free (err);
  ck_assert (vmferry_tool_common_option ('q', ""));
  err = capture (2, summary);
  ck_assert_str_eq (err, "");
  free (err);
  vmferry_set_verbosity (VMFERRY_LOG_NORMAL);
}
END_TEST

/* Another tool's option, as getopt_long left it in argv[optind - 1]. */
START_TEST (test_option_hint)
{
  static const struct vmferry_option_hint hints[] = {
    { "--dir", "use --dest-dir" }, { "--name", "use --rename" }, { NULL, NULL }
  };

  ck_assert (vmferry_tool_option_hint ("--dir", hints));
  ck_assert (vmferry_tool_option_hint ("--dir=/srv/vm", hints));
  ck_assert (vmferry_tool_option_hint ("--name", hints));
  ck_assert (!vmferry_tool_option_hint ("--di", hints));
  ck_assert (!vmferry_tool_option_hint ("--dirs", hints));
  ck_assert (!vmferry_tool_option_hint ("-d", hints));
  ck_assert (!vmferry_tool_option_hint ("dir", hints));
  ck_assert (!vmferry_tool_option_hint (NULL, hints));
}
END_TEST

/* The shared option groups parse into the fields they are given, and
 * leave alone an option of a group the tool did not give.
 */
START_TEST (test_shared_options)
{
  struct vmferry_ssh_opts ssh = { 0 };
  unsigned connections = 0, threads = 0;
  size_t buffer = 0;
  enum vmferry_compress compress = VMFERRY_COMPRESS_AUTO;
  int level = 0, progress_fd = -1;
  const struct vmferry_tool_shared all = {
    .ssh = &ssh, .connections = &connections, .buffer = &buffer,
    .compress = &compress, .level = &level, .threads = &threads,
    .progress_fd = &progress_fd,
  };
  const struct vmferry_tool_shared none = { 0 };

  ck_assert_int_eq (vmferry_tool_shared_option (&all, 'F', "cfg"), 1);
  ck_assert_str_eq (ssh.config, "cfg");
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_SSH_COMMAND, "ssh -x"), 1);
  ck_assert_str_eq (ssh.ssh_command, "ssh -x");
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_ACCEPT_NEW, NULL), 1);
  ck_assert (ssh.accept_new_host_key);
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_CONNECTIONS, "4"), 1);
  ck_assert_uint_eq (connections, 4);
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_CONNECTIONS, "0"), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "--connections: 0 is out of range (1 to 64)");
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_BANDWIDTH, "1M"), 1);
  ck_assert_uint_eq (ssh.bandwidth, 1 << 20);
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_BUFFER, "2M"), 1);
  ck_assert_uint_eq (buffer, 2 << 20);
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_COMPRESS, "zstd:7"), 1);
  ck_assert_int_eq (compress, VMFERRY_COMPRESS_ZSTD);
  ck_assert_int_eq (level, 7);
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_COMPRESS, "zstd:20"), -1);
  ck_assert_str_eq (vmferry_get_error (),
                    "--compress: 'zstd:20': the zstd level must be 1 to 19");
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_COMPRESS, "none"), 1);
  ck_assert_int_eq (compress, VMFERRY_COMPRESS_NONE);
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_THREADS, "3"), 1);
  ck_assert_uint_eq (threads, 3);
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&all, VMFERRY_OPT_PROGRESS, "2"), 1);
  ck_assert_int_eq (progress_fd, 2);

  /* Not the tool's groups, not its own options: not handled. */
  ck_assert_int_eq (vmferry_tool_shared_option
                    (&none, VMFERRY_OPT_THREADS, "3"), 0);
  ck_assert_int_eq (vmferry_tool_shared_option (&none, 'F', "x"), 0);
  ck_assert_int_eq (vmferry_tool_shared_option (&all, 'v', NULL), 0);
  ck_assert_int_eq (vmferry_tool_shared_option (&all, '?', NULL), 0);
}
END_TEST

VMFERRY_UNIT_MAIN ("tool", test_parse_uint, test_parse_fd, test_common_options,
                   test_exit_codes, test_fail_text, test_fail_json,
                   test_summary,
                   test_option_hint,
                   test_shared_options)
