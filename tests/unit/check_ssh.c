/* Unit tests for lib/ssh.c and lib/send.c's pure parts: destinations,
 * shell quoting, --bandwidth.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
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

/* The one URI of the destination's libvirtd: escaped, and with a helper
 * that runs ssh -F FILE or the --ssh-command, removed afterwards.
 */
START_TEST (test_libvirt_uri)
{
  static const struct {
    const char *dest, *uri;
  } t[] = {
    { "hostb", "qemu+ssh://hostb/system" },
    { "ssh://root@10.0.0.2:2222", "qemu+ssh://root@10.0.0.2:2222/system" },
    { "[fd00::2]:22", "qemu+ssh://[fd00::2]:22/system" },
    { "a%b?c#@hostb", "qemu+ssh://a%25b%3Fc%23@hostb/system" },
  };
  char tmpl[] = "/tmp/check_ssh-XXXXXX", conf[64], *helper, *uri, text[512];
  struct vmferry_ssh_opts o = { 0 };
  FILE *fp;
  size_t n;

  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    o.destination = t[i].dest;
    uri = vmferry_ssh_libvirt_uri (&o, &helper);
    ck_assert_msg (uri && strcmp (uri, t[i].uri) == 0, "%s: %s", t[i].dest,
                   uri ? uri : vmferry_get_error ());
    ck_assert_ptr_null (helper);
    free (uri);
  }
  o.destination = "-oProxyCommand=x";
  ck_assert_ptr_null (vmferry_ssh_libvirt_uri (&o, &helper));

  /* -F: a helper runs ssh -F with the file's absolute path. */
  ck_assert_ptr_nonnull (mkdtemp (tmpl));
  ck_assert_int_eq (setenv ("TMPDIR", tmpl, 1), 0);
  snprintf (conf, sizeof conf, "%s/it's", tmpl);
  fp = fopen (conf, "w");
  ck_assert_ptr_nonnull (fp);
  fclose (fp);
  o.destination = "hostb";
  o.config = conf;
  uri = vmferry_ssh_libvirt_uri (&o, &helper);
  ck_assert_msg (uri != NULL, "%s", vmferry_get_error ());
  ck_assert_ptr_nonnull (helper);
  ck_assert_msg (strncmp (helper, tmpl, strlen (tmpl)) == 0, "%s", helper);
  ck_assert_msg (strncmp (uri, "qemu+ssh://hostb/system?command=", 32) == 0 &&
                 strcmp (uri + 32, helper) == 0, "%s", uri);
  fp = fopen (helper, "r");
  ck_assert_ptr_nonnull (fp);
  n = fread (text, 1, sizeof text - 1, fp);
  text[n] = '\0';
  fclose (fp);
  ck_assert_msg (strstr (text, "#!/bin/sh\n") == text, "%s", text);
  ck_assert_msg (strstr (text, "\nexec ssh -F '") &&
                 strstr (text, "/it'\\''s' \"$@\"\n"), "%s", text);
  ck_assert_int_eq (access (helper, X_OK), 0);
  vmferry_ssh_uri_helper_remove (helper);
  free (uri);
  ck_assert_int_eq (unlink (conf), 0);
  /* Nothing but the directory itself is left. */
  ck_assert_int_eq (rmdir (tmpl), 0);

  /* --ssh-command: run as given; a config that cannot be read fails. */
  ck_assert_ptr_nonnull (mkdtemp (strcpy (tmpl, "/tmp/check_ssh-XXXXXX")));
  ck_assert_int_eq (setenv ("TMPDIR", tmpl, 1), 0);
  o.config = NULL;
  o.ssh_command = "ssh -o BatchMode=yes";
  uri = vmferry_ssh_libvirt_uri (&o, &helper);
  ck_assert_ptr_nonnull (uri);
  fp = fopen (helper, "r");
  ck_assert_ptr_nonnull (fp);
  n = fread (text, 1, sizeof text - 1, fp);
  text[n] = '\0';
  fclose (fp);
  ck_assert_msg (strstr (text, "\nexec ssh -o BatchMode=yes \"$@\"\n"), "%s", text);
  vmferry_ssh_uri_helper_remove (helper);
  free (uri);
  o.ssh_command = NULL;
  o.config = "/nonexistent/config";
  ck_assert_ptr_null (vmferry_ssh_libvirt_uri (&o, &helper));
  ck_assert_ptr_null (helper);
  ck_assert_int_eq (rmdir (tmpl), 0);
  unsetenv ("TMPDIR");
}
END_TEST

VMFERRY_UNIT_MAIN ("ssh", test_destinations, test_quote, test_bandwidth,
                   test_libvirt_uri);
