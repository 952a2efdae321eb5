/* Unit tests for lib/tool.c: argument parsing shared by the tools. */
#include "config.h"

#include "unit.h"

#include <string.h>

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

VMFERRY_UNIT_MAIN ("tool", test_parse_uint, test_parse_fd, test_common_options,
                   test_option_hint)
