/* Unit tests for lib/ssh.c and lib/send.c's pure parts: destinations,
 * shell quoting, --bandwidth.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "send.h"
#include "ssh.h"
#include "unit.h"

START_TEST (test_destinations)
{
  static const struct { const char *in, *user, *host; int port; } ok[] = {
    { "dst", NULL, "dst", 0 },
    { "root@dst", "root", "dst", 0 },
    { "ssh://dst", NULL, "dst", 0 },
    { "ssh://admin@dst.example:2222", "admin", "dst.example", 2222 },
    { "dst:22", NULL, "dst", 22 },
    { "ssh://dst/", NULL, "dst", 0 },
    { "[::1]:2200", NULL, "::1", 2200 },
    { "u@[fe80::1]", "u", "fe80::1", 0 },
  };
  static const char *const bad[] = {
    "", "@dst", "dst:0", "dst:70000", "dst:x", "-oProxyCommand=x", "a b", "ssh://",
    "[::1", "a:b:c", "dst'x",
  };
  char *user, *host;
  int port;

  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    ck_assert_msg (vmferry_ssh_parse_destination (ok[i].in, &user, &host, &port) == 0,
                   "%s refused", ok[i].in);
    if (ok[i].user)
      ck_assert_str_eq (user, ok[i].user);
    else
      ck_assert_ptr_null (user);
    ck_assert_str_eq (host, ok[i].host);
    ck_assert_int_eq (port, ok[i].port);
    free (user);
    free (host);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg (vmferry_ssh_parse_destination (bad[i], &user, &host, &port) == -1,
                   "%s accepted", bad[i]);
}
END_TEST

START_TEST (test_quote)
{
  char *s = NULL;

  ck_assert_int_eq (vmferry_shell_quote_append (&s, "vmferry-import"), 0);
  ck_assert_int_eq (vmferry_shell_quote_append (&s, "--dir"), 0);
  ck_assert_int_eq (vmferry_shell_quote_append (&s, "/a b/it's $(x)"), 0);
  ck_assert_str_eq (s, "'vmferry-import' '--dir' '/a b/it'\\''s $(x)'");
  free (s);
}
END_TEST

START_TEST (test_bandwidth)
{
  uint64_t v;

  ck_assert_int_eq (vmferry_parse_bandwidth ("1000", &v), 0);
  ck_assert_uint_eq (v, 1000);
  ck_assert_int_eq (vmferry_parse_bandwidth ("50M", &v), 0);
  ck_assert_uint_eq (v, 50 * 1024 * 1024);
  ck_assert_int_eq (vmferry_parse_bandwidth ("1G", &v), 0);
  ck_assert_uint_eq (v, 1024 * 1024 * 1024);
  ck_assert_int_eq (vmferry_parse_bandwidth ("400Mbit", &v), 0);
  ck_assert_uint_eq (v, 50000000);
  ck_assert_int_eq (vmferry_parse_bandwidth ("1Gbit", &v), 0);
  ck_assert_uint_eq (v, 125000000);
  ck_assert_int_eq (vmferry_parse_bandwidth ("0", &v), -1);
  ck_assert_int_eq (vmferry_parse_bandwidth ("-5M", &v), -1);
  ck_assert_int_eq (vmferry_parse_bandwidth ("5X", &v), -1);
  ck_assert_int_eq (vmferry_parse_bandwidth ("", &v), -1);
}
END_TEST

VMFERRY_UNIT_MAIN ("ssh", test_destinations, test_quote, test_bandwidth);
