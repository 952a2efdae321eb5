/* Unit tests for lib/sync-bitmap.c: the bitmaps' names, qemu-img info's
 * JSON, and which bitmap may say what changed.
 */
#include "config.h"

#include "unit.h"

#include <string.h>

#include "error.h"
#include "sync-bitmap.h"

#define DEST "0a1b2c3d4e5f60718293a4b5c6d7e8f9"

START_TEST (test_name)
{
  char n[VMFERRY_SYNC_BITMAP_NAME_MAX];

  ck_assert_int_eq (vmferry_sync_bitmap_name (DEST, 3, n), 0);
  ck_assert_str_eq (n, "vmferry.0a1b2c3d.3");
  ck_assert_int_eq (vmferry_sync_bitmap_name (DEST, INT64_MAX, n), 0);
  ck_assert_str_eq (n, "vmferry.0a1b2c3d.9223372036854775807");
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, n), INT64_MAX);
  ck_assert_int_eq (vmferry_sync_bitmap_name (DEST, 0, n), -1);
  ck_assert_int_eq (vmferry_sync_bitmap_name ("0a1b2c", 2, n), -1);
  ck_assert_int_eq (vmferry_sync_bitmap_name ("0A1B2C3D", 2, n), -1);
  ck_assert_int_eq (vmferry_sync_bitmap_name (NULL, 2, n), -1);
}
END_TEST

START_TEST (test_gen)
{
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, "vmferry.0a1b2c3d.1"), 1);
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, "vmferry.0a1b2c3d.42"),
                    42);
  /* Another destination's, a libvirt checkpoint's, malformed. */
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, "vmferry.0a1b2c3e.2"), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, "cp2"), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, "vmferry.0a1b2c3d."), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, "vmferry.0a1b2c3d.0"), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, "vmferry.0a1b2c3d.02"), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, "vmferry.0a1b2c3d.2x"), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, "vmferry.0a1b2c3d.-2"), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, "vmferry.0a1b2c3d2"), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_gen
                    (DEST, "vmferry.0a1b2c3d.99999999999999999999"), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_gen (DEST, NULL), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_gen ("0a1b", "vmferry.0a1b.2"), 0);
}
END_TEST

/* As qemu-img 8 prints it, after a qemu-io killed while writing. */
static const char info[] =
  "{\n"
  "    \"virtual-size\": 67108864,\n"
  "    \"filename\": \"v.qcow2\",\n"
  "    \"format\": \"qcow2\",\n"
  "    \"format-specific\": {\n"
  "        \"type\": \"qcow2\",\n"
  "        \"data\": {\n"
  "            \"compat\": \"1.1\",\n"
  "            \"bitmaps\": [\n"
  "                {\"flags\": [\"in-use\", \"auto\"],\n"
  "                 \"name\": \"vmferry.0a1b2c3d.2\",\n"
  "                 \"granularity\": 65536},\n"
  "                {\"flags\": [\"auto\"],\n"
  "                 \"name\": \"vmferry.0a1b2c3d.3\",\n"
  "                 \"granularity\": 65536},\n"
  "                {\"flags\": [],\n"
  "                 \"name\": \"vmferry.0a1b2c3d.4\",\n"
  "                 \"granularity\": 65536},\n"
  "                {\"flags\": [\"auto\"],\n"
  "                 \"name\": \"vmferry.0a1b2c3d.5\", \"granularity\": 3},\n"
  "                {\"flags\": [\"auto\"],\n"
  "                 \"name\": \"other\", \"granularity\": 131072}\n"
  "            ],\n"
  "            \"corrupt\": false\n"
  "        }\n"
  "    },\n"
  "    \"dirty-flag\": false\n"
  "}\n";

START_TEST (test_parse)
{
  struct vmferry_sync_bitmap *l = NULL;
  size_t n = 0;

  ck_assert_int_eq (vmferry_sync_bitmaps_parse (info, "v", &l, &n), 0);
  ck_assert_uint_eq (n, 5);
  ck_assert_str_eq (l[0].name, "vmferry.0a1b2c3d.2");
  ck_assert (l[0].in_use && l[0].enabled);
  ck_assert_uint_eq (l[0].granularity, 65536);
  ck_assert (!l[1].in_use && l[1].enabled);
  ck_assert (!l[2].in_use && !l[2].enabled);
  ck_assert_str_eq (l[4].name, "other");
  ck_assert_uint_eq (l[4].granularity, 131072);
  vmferry_sync_bitmaps_free (l, n);

  /* No bitmaps (compat 0.10, or none added). */
  l = NULL;
  ck_assert_int_eq (vmferry_sync_bitmaps_parse
                    ("{\"format\": \"qcow2\", \"format-specific\": "
                     "{\"type\": \"qcow2\", \"data\": {\"compat\": "
                     "\"0.10\"}}}", "old", &l, &n), 0);
  ck_assert_uint_eq (n, 0);
  vmferry_sync_bitmaps_free (l, n);

  /* Not qcow2, not JSON, a bitmap without a name, bitmaps not a list. */
  ck_assert_int_eq (vmferry_sync_bitmaps_parse ("{\"format\": \"raw\"}", "r",
                                                &l, &n), -1);
  ck_assert (strstr (vmferry_get_error (), "a raw image, not qcow2"));
  ck_assert_int_eq (vmferry_sync_bitmaps_parse ("qemu-img: oops", "x", &l,
                                                &n), -1);
  ck_assert_int_eq (vmferry_sync_bitmaps_parse (NULL, "x", &l, &n), -1);
  ck_assert_int_eq (vmferry_sync_bitmaps_parse
                    ("{\"format\": \"qcow2\", \"format-specific\": {\"data\":"
                     " {\"bitmaps\": [{\"flags\": []}]}}}", "x", &l, &n), -1);
  ck_assert_int_eq (vmferry_sync_bitmaps_parse
                    ("{\"format\": \"qcow2\", \"format-specific\": {\"data\":"
                     " {\"bitmaps\": {}}}}", "x", &l, &n), -1);
}
END_TEST

START_TEST (test_usable)
{
  struct vmferry_sync_bitmap *l = NULL;
  size_t n = 0;
  char why[200];

  ck_assert_int_eq (vmferry_sync_bitmaps_parse (info, "v", &l, &n), 0);
  ck_assert_int_eq (vmferry_sync_bitmap_usable (l, n, DEST, 2, why,
                                                sizeof why), 0);
  ck_assert (strstr (why, "bitmap vmferry.0a1b2c3d.2 in use"));
  ck_assert_int_eq (vmferry_sync_bitmap_usable (l, n, DEST, 3, why,
                                                sizeof why), 1);
  ck_assert_int_eq (vmferry_sync_bitmap_usable (l, n, DEST, 4, why,
                                                sizeof why), 0);
  ck_assert (strstr (why, "bitmap vmferry.0a1b2c3d.4 disabled"));
  ck_assert_int_eq (vmferry_sync_bitmap_usable (l, n, DEST, 5, why,
                                                sizeof why), 0);
  ck_assert (strstr (why, "granularity 3"));
  ck_assert_int_eq (vmferry_sync_bitmap_usable (l, n, DEST, 6, why,
                                                sizeof why), 0);
  ck_assert_str_eq (why, "bitmap vmferry.0a1b2c3d.6 missing");
  /* Another destination's bitmap 3 is not ours. */
  ck_assert_int_eq (vmferry_sync_bitmap_usable (l, n, "ffffffff", 3, why,
                                                sizeof why), 0);
  ck_assert_str_eq (why, "bitmap vmferry.ffffffff.3 missing");
  vmferry_sync_bitmaps_free (l, n);
}
END_TEST

VMFERRY_UNIT_MAIN ("sync_bitmap",
                   test_name,
                   test_gen,
                   test_parse,
                   test_usable)
