/* Unit tests for lib/log.c: verbosity filtering and sinks. */
#include "config.h"

#include "unit.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

struct capture {
  int count;
  int level;
  char last[256];
};

static void
capture_fn (void *opaque, int level, const char *msg)
{
  struct capture *c = opaque;

  c->count++;
  c->level = level;
  snprintf (c->last, sizeof c->last, "%s", msg);
}

START_TEST (test_program_name)
{
  vmferry_set_program_name ("/usr/bin/vmferry-export");
  ck_assert_str_eq (vmferry_program_name (), "vmferry-export");
  vmferry_set_program_name ("vmferry-info");
  ck_assert_str_eq (vmferry_program_name (), "vmferry-info");
}
END_TEST

START_TEST (test_filtering)
{
  struct capture c = { 0 };

  vmferry_set_log_fn (capture_fn, &c);
  vmferry_set_verbosity (VMFERRY_LOG_NORMAL);
  vmferry_debug ("hidden %d", 1);
  vmferry_verbose ("hidden %d", 2);
  ck_assert_int_eq (c.count, 0);
  vmferry_warn ("disk %s is shared", "vdb");
  ck_assert_int_eq (c.count, 1);
  ck_assert_str_eq (c.last, "warning: disk vdb is shared");

  vmferry_set_verbosity (VMFERRY_LOG_DEBUG);
  vmferry_debug ("shown %d", 3);
  ck_assert_int_eq (c.count, 2);
  ck_assert_int_eq (c.level, VMFERRY_LOG_DEBUG);
  ck_assert_str_eq (c.last, "shown 3");

  vmferry_set_verbosity (VMFERRY_LOG_QUIET);
  vmferry_warn ("quiet hides warnings");
  ck_assert_int_eq (c.count, 2);
  vmferry_set_log_fn (NULL, NULL);
  vmferry_set_verbosity (VMFERRY_LOG_NORMAL);
}
END_TEST

VMFERRY_UNIT_MAIN ("log", test_program_name, test_filtering)
