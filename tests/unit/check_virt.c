/* Unit tests for lib/virt.c: libvirt errors become vmferry errors.
 * No daemon is needed: the URIs point at sockets that do not exist.
 */
#include "config.h"

#include "unit.h"

#include <string.h>

#include "error.h"
#include "virt.h"

START_TEST (test_connect_error_names_uri)
{
  const char *uri = "qemu:///system?socket=/nonexistent/vmferry-check.sock";
  virConnectPtr conn = vmferry_virt_connect (uri);

  ck_assert_ptr_null (conn);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), uri));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "cannot connect"));
  /* libvirt's own reason follows. */
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "/nonexistent/vmferry-check.sock"));
}
END_TEST

START_TEST (test_bad_uri)
{
  ck_assert_ptr_null (vmferry_virt_connect ("nosuchdriver:///x"));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "nosuchdriver:///x: cannot connect: "));
}
END_TEST

START_TEST (test_state_names)
{
  ck_assert_str_eq (vmferry_virt_state_name (VIR_DOMAIN_RUNNING), "running");
  ck_assert_str_eq (vmferry_virt_state_name (VIR_DOMAIN_SHUTOFF), "shut off");
  ck_assert_str_eq (vmferry_virt_state_name (VIR_DOMAIN_PAUSED), "paused");
  ck_assert_str_eq (vmferry_virt_state_name (999), "unknown");
}
END_TEST

VMFERRY_UNIT_MAIN ("virt", test_connect_error_names_uri, test_bad_uri,
                   test_state_names)
