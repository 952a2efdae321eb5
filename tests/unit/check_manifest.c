/* Unit tests for formats/manifest.c: the one manifest parser and writer,
 * and the agreement between its table of members and the format spec.
 */
#include "config.h"

#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "domain.h"
#include "error.h"
#include "manifest.h"
#include "names.h"
#include "stream.h"

#define UUID "6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e"

/* Two disks (one on the other's backing file, one a pool volume), an
 * NVRAM and a TPM file, two rewritten MACs: every member of the table
 * appears.
 */
static const char good[] =
  "{\"format\": \"vmferry-manifest\", \"version\": 1,"
  " \"tool\": \"vmferry 0.1.0\", \"created\": \"2024-05-01T12:00:00Z\","
  " \"source\": {\"host\": \"src.example\", \"uri\": \"qemu:///system\"},"
  " \"domain\": {\"name\": \"web01\", \"uuid\": \"" UUID "\","
  "  \"mac_map\": [{\"old\": \"52:54:00:12:34:56\","
  "               \"new\": \"52:54:00:ab:cd:ef\"},"
  "              {\"old\": \"52:54:00:AA:BB:CC\","
  "               \"new\": \"52:54:00:00:00:01\"}]},"
  " \"files\": ["
  "  {\"index\": 0, \"role\": \"backing\", \"name\": \"base.qcow2\","
  "   \"source_path\": \"/img/base.qcow2\", \"target\": null,"
  "   \"format\": \"qcow2\", \"size\": 1000, \"virtual_size\": 4096,"
  "   \"allocated\": 1100, \"readonly\": false,"
  "   \"source_identity\": \"ino:1 mtime:2.000000003 size:1000\"},"
  "  {\"index\": 1, \"role\": \"disk\", \"name\": \"web01.qcow2\","
  "   \"source_path\": \"/img/web01.qcow2\", \"target\": \"vda\","
  "   \"format\": \"qcow2\", \"size\": 2000, \"virtual_size\": 4096,"
  "   \"allocated\": 2100, \"backing\": 0, \"backing_format\": \"qcow2\","
  "   \"readonly\": true},"
  "  {\"index\": 2, \"role\": \"disk\", \"name\": \"data.raw\","
  "   \"source_path\": \"/img/data.raw\", \"target\": \"vdb\","
  "   \"format\": \"raw\", \"size\": 3000, \"allocated\": 0,"
  "   \"pool\": \"default\", \"volume\": \"data.raw\"},"
  "  {\"index\": 3, \"role\": \"nvram\", \"name\": \"web01_VARS.fd\","
  "   \"source_path\": \"/nvram/web01_VARS.fd\", \"format\": \"raw\","
  "   \"size\": 4000, \"allocated\": 4000},"
  "  {\"index\": 4, \"role\": \"tpm\", \"name\": \"tpm2/tpm2-00.permall\","
  "   \"source_path\": \"/swtpm/" UUID "/tpm2/tpm2-00.permall\","
  "   \"format\": \"raw\", \"size\": 5000, \"allocated\": 4096}],"
  " \"totals\": {\"size\": 15000, \"allocated\": 11296}}";

/* The error message contains S. */
static void
error_has (const char *s)
{
  ck_assert_msg (strstr (vmferry_get_error (), s) != NULL,
                 "error '%s', expected '%s'", vmferry_get_error (), s);
}

static struct vmferry_manifest *
parse_ok (const char *json)
{
  struct vmferry_manifest *m = NULL;

  ck_assert_msg (vmferry_manifest_parse (json, strlen (json), "t", &m) == 0,
                 "%s", vmferry_get_error ());
  ck_assert_ptr_nonnull (m);
  return m;
}

START_TEST (test_parse_good)
{
  struct vmferry_manifest *m = parse_ok (good);
  const struct vmferry_manifest_file *f;

  ck_assert_uint_eq (m->version, 1);
  ck_assert_str_eq (m->tool, "vmferry 0.1.0");
  ck_assert_str_eq (m->created, "2024-05-01T12:00:00Z");
  ck_assert_str_eq (m->source_host, "src.example");
  ck_assert_str_eq (m->source_uri, "qemu:///system");
  ck_assert_str_eq (m->domain_name, "web01");
  ck_assert_str_eq (m->domain_uuid, UUID);
  ck_assert_uint_eq (m->nr_files, 5);
  ck_assert_ptr_null (m->extra);

  f = vmferry_manifest_file (m, 0);
  ck_assert_int_eq (f->role, VMFERRY_MANIFEST_BACKING);
  ck_assert_ptr_null (f->target);
  ck_assert (f->has_virtual_size);
  ck_assert_uint_eq (f->virtual_size, 4096);
  ck_assert_int_eq (f->backing, -1);
  ck_assert_str_eq (f->source_identity, "ino:1 mtime:2.000000003 size:1000");
  f = vmferry_manifest_file (m, 1);
  ck_assert_uint_eq (f->index, 1);
  ck_assert_str_eq (f->name, "web01.qcow2");
  ck_assert_str_eq (f->source_path, "/img/web01.qcow2");
  ck_assert_str_eq (f->target, "vda");
  ck_assert_str_eq (f->format, "qcow2");
  ck_assert_uint_eq (f->size, 2000);
  ck_assert_uint_eq (f->allocated, 2100);
  ck_assert_int_eq (f->backing, 0);
  ck_assert_str_eq (f->backing_format, "qcow2");
  ck_assert (f->readonly);
  ck_assert_ptr_null (f->source_identity);
  f = vmferry_manifest_file (m, 2);
  ck_assert_str_eq (f->pool, "default");
  ck_assert_str_eq (f->volume, "data.raw");
  ck_assert (!f->has_virtual_size);
  ck_assert (!f->readonly);
  ck_assert (!f->guest);
  ck_assert_int_eq (vmferry_manifest_file (m, 3)->role, VMFERRY_MANIFEST_NVRAM);
  f = vmferry_manifest_file (m, 4);
  ck_assert_int_eq (f->role, VMFERRY_MANIFEST_TPM);
  ck_assert_str_eq (f->name, "tpm2/tpm2-00.permall");
  ck_assert_ptr_null (vmferry_manifest_file (m, 5));
  vmferry_manifest_free (m);
}
END_TEST

/* A backslash and "u0000" in a string are text, not a NUL. */
START_TEST (test_escaped_backslash)
{
  static const char json[] =
    "{\"format\": \"vmferry-manifest\", \"version\": 1,"
    " \"tool\": \"a\\\\u0000b\","
    " \"domain\": {\"name\": \"d\", \"uuid\": \"" UUID "\"},"
    " \"files\": []}";
  struct vmferry_manifest *m = parse_ok (json);

  ck_assert_str_eq (m->tool, "a\\u0000b");
  vmferry_manifest_free (m);
}
END_TEST

/* What the writer emits the parser reads back, field for field. */
START_TEST (test_round_trip)
{
  struct vmferry_manifest *m = parse_ok (good), *back;
  char *json = vmferry_manifest_to_json (m);

  ck_assert_msg (json != NULL, "%s", vmferry_get_error ());
  back = parse_ok (json);
  ck_assert_uint_eq (back->nr_files, m->nr_files);
  ck_assert_str_eq (back->domain_name, m->domain_name);
  ck_assert_str_eq (back->domain_uuid, m->domain_uuid);
  ck_assert_str_eq (back->source_uri, m->source_uri);
  for (size_t i = 0; i < m->nr_files; i++) {
    const struct vmferry_manifest_file *a = &m->files[i], *b = &back->files[i];
#define SAME_STR(x) \
    ck_assert_msg ((a->x == NULL && b->x == NULL) || \
                   (a->x && b->x && strcmp (a->x, b->x) == 0), \
                   "file %zu: " #x " differs", i)
    SAME_STR (name);
    SAME_STR (source_path);
    SAME_STR (pool);
    SAME_STR (volume);
    SAME_STR (target);
    SAME_STR (format);
    SAME_STR (backing_format);
    SAME_STR (source_identity);
#undef SAME_STR
    ck_assert_int_eq (a->role, b->role);
    ck_assert_uint_eq (a->size, b->size);
    ck_assert_int_eq (a->has_virtual_size, b->has_virtual_size);
    ck_assert_uint_eq (a->virtual_size, b->virtual_size);
    ck_assert_uint_eq (a->allocated, b->allocated);
    ck_assert_int_eq (a->backing, b->backing);
    ck_assert_int_eq (a->readonly, b->readonly);
    ck_assert_int_eq (a->guest, b->guest);
  }
  ck_assert_uint_eq (back->nr_macs, 2);
  for (size_t i = 0; i < m->nr_macs; i++) {
    ck_assert_str_eq (back->macs[i].old_mac, m->macs[i].old_mac);
    ck_assert_str_eq (back->macs[i].new_mac, m->macs[i].new_mac);
  }
  /* As written: the case of a MAC is the writer's. */
  ck_assert_str_eq (back->macs[1].old_mac, "52:54:00:AA:BB:CC");
  free (json);
  vmferry_manifest_free (back);
  vmferry_manifest_free (m);
}
END_TEST

/* Members a later minor version may add are kept where they were. */
START_TEST (test_unknown_members_kept)
{
  static const char json[] =
    "{\"format\": \"vmferry-manifest\", \"version\": 1,"
    " \"future\": {\"kept\": [1, 2]},"
    " \"source\": {\"host\": \"h\", \"arch\": \"x86_64\"},"
    " \"domain\": {\"name\": \"d\", \"uuid\": \"" UUID "\", \"title\": \"T\"},"
    " \"files\": [{\"index\": 0, \"role\": \"disk\", \"name\": \"a.img\","
    "  \"source_path\": \"/a.img\", \"format\": \"raw\", \"size\": 1,"
    "  \"allocated\": 1, \"guest\": {\"os\": \"linux\"}}],"
    " \"totals\": {\"size\": 1, \"allocated\": 1, \"files\": 1}}";
  struct vmferry_manifest *m = parse_ok (json), *back;
  char *out = vmferry_manifest_to_json (m);
  json_object *o;
  const char *s;

  ck_assert_ptr_nonnull (m->extra);
  ck_assert_ptr_nonnull (m->source_extra);
  ck_assert_ptr_nonnull (m->domain_extra);
  ck_assert_ptr_nonnull (m->totals_extra);
  ck_assert_ptr_nonnull (m->files[0].extra);
  ck_assert_ptr_nonnull (out);
  o = json_tokener_parse (out);
  ck_assert_ptr_nonnull (o);
  s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  ck_assert_ptr_nonnull (strstr (s, "\"future\":{\"kept\":[1,2]}"));
  ck_assert_ptr_nonnull (strstr (s, "\"arch\":\"x86_64\""));
  ck_assert_ptr_nonnull (strstr (s, "\"title\":\"T\""));
  ck_assert_ptr_nonnull (strstr (s, "\"guest\":{\"os\":\"linux\"}"));
  ck_assert_ptr_nonnull (strstr (s, "\"files\":1}"));
  json_object_put (o);
  /* And a second pass keeps them again. */
  back = parse_ok (out);
  ck_assert_str_eq (back->files[0].extra, m->files[0].extra);
  ck_assert_str_eq (back->extra, m->extra);
  vmferry_manifest_free (back);
  vmferry_manifest_free (m);
  free (out);
}
END_TEST

/* ---- Refusals ---- */

/* Apply "path=JSON" (or "-path" to remove) to the tree of GOOD. */
static void
edit (json_object *root, const char *e)
{
  bool del = e[0] == '-';
  const char *eq = strchr (e, '=');
  char *path = del ? strdup (e + 1) : strndup (e, eq - e);
  char *save = NULL, *part, *next;
  json_object *o = root, *v = NULL;

  ck_assert_ptr_nonnull (path);
  if (!del) {
    json_tokener *tok = json_tokener_new ();
    v = json_tokener_parse_ex (tok, eq + 1, (int) strlen (eq + 1) + 1);
    ck_assert_msg (json_tokener_get_error (tok) == json_tokener_success,
                   "bad edit %s", e);
    json_tokener_free (tok);
  }
  part = strtok_r (path, ".", &save);
  while ((next = strtok_r (NULL, ".", &save)) != NULL) {
    json_object *c = NULL;
    if (json_object_is_type (o, json_type_array))
      c = json_object_array_get_idx (o, atoi (part));
    else
      json_object_object_get_ex (o, part, &c);
    ck_assert_msg (c != NULL, "edit %s: no %s", e, part);
    o = c;
    part = next;
  }
  if (json_object_is_type (o, json_type_array)) {
    if (del)
      json_object_array_del_idx (o, atoi (part), 1);
    else
      json_object_array_put_idx (o, atoi (part), v);
  }
  else if (del)
    json_object_object_del (o, part);
  else
    json_object_object_add (o, part, v);
  free (path);
}

START_TEST (test_refuse)
{
  static const struct { const char *edits[4]; const char *error; } cases[] = {
    { { "version=2" }, "manifest: version 2 is not supported" },
    { { "version=0" }, "version 0 is not supported" },
    { { "version=\"1\"" }, "version: missing or not an integer" },
    { { "version=1.0" }, "version: missing or not an integer" },
    { { "-version" }, "version: missing" },
    { { "format=\"other\"" }, "format: not a vmferry manifest: \"other\"" },
    { { "-format" }, "format: missing" },
    { { "-domain" }, "domain: missing" },
    { { "domain=[]" }, "domain: must be an object" },
    { { "-domain.uuid" }, "domain.uuid: missing" },
    { { "domain.uuid=\"6F0C9A4E-1C8E-4D7C-9A53-2F5F1C0D2B1E\"" },
      "domain.uuid: not a UUID in canonical form" },
    { { "domain.name=\"../x\"" }, "domain.name: not a name" },
    { { "domain.name=\"..\"" }, "domain.name: not a name" },
    { { "domain.name=\"\"" }, "domain.name: empty" },
    { { "tool=7" }, "tool: must be a string" },
    { { "source=\"h\"" }, "source: must be an object" },
    { { "source.host=null" }, "source.host: must be a string" },
    /* domain.mac_map: a guest's configurations are edited by it. */
    { { "domain.mac_map={}" }, "domain.mac_map: must be an array" },
    { { "domain.mac_map.0=\"52:54:00:12:34:56\"" },
      "domain.mac_map[0]: must be an object" },
    { { "-domain.mac_map.1.new" }, "domain.mac_map[1].new: missing" },
    { { "domain.mac_map.0.old=5" }, "domain.mac_map[0].old: must be a string" },
    { { "domain.mac_map.0.old=\"52:54:00:12:34\"" },
      "domain.mac_map[0].old: not a MAC address" },
    { { "domain.mac_map.1.new=\"52:54:00:00:00:01 \"" },
      "domain.mac_map[1].new: not a MAC address" },
    { { "domain.mac_map.1.new=\"52-54-00-00-00-01\"" },
      "domain.mac_map[1].new: not a MAC address" },
    { { "domain.mac_map.1.new=\"52:54:00:0g:00:01\"" },
      "domain.mac_map[1].new: not a MAC address" },
    { { "domain.mac_map.0.old=\"/etc/passwd\"" },
      "digits joined by ':'): \"/etc/passwd\"" },
    { { "domain.mac_map.0.new=\"52:54:00:12:34:56\"" },
      "domain.mac_map[0]: old and new are the same MAC" },
    { { "domain.mac_map.1.old=\"52:54:00:12:34:56\"" },
      "domain.mac_map[1]: repeats the old MAC of entry 0" },
    { { "domain.mac_map.1.new=\"52:54:00:AB:CD:EF\"" },
      "domain.mac_map[1]: repeats the new MAC of entry 0" },
    { { "-files" }, "files: missing" },
    { { "files={}" }, "files: must be an array" },
    { { "files.0=1" }, "files[0]: must be an object" },
    { { "files.1.index=0" }, "files[1].index: is 0, the file's position is 1" },
    { { "files.1.index=-1" }, "files[1].index: must be an integer from 0" },
    { { "files.1.role=\"kernel\"" }, "files[1].role: not a role" },
    { { "files.1.role=\"Disk\"" }, "files[1].role: not a role" },
    { { "-files.1.name" }, "files[1].name: missing" },
    { { "files.1.name=\"../../etc/passwd\"" },
      "files[1].name: not a safe file name" },
    { { "files.1.name=\"a/b\"" }, "files[1].name: not a safe file name" },
    { { "files.1.name=\".hidden\"" }, "files[1].name: not a safe file name" },
    { { "files.1.name=\".\"" }, "files[1].name: not a safe file name" },
    { { "files.1.name=\"base.qcow2\"" },
      "files[1].name: file 0 has the same name" },
    { { "files.4.name=\"tpm2/../../x\"" },
      "files[4].name: not a safe relative path" },
    { { "files.4.name=\"/abs\"" }, "files[4].name: not a safe relative path" },
    { { "files.4.name=\"1/2/3/4/5/6/7/8/9\"" },
      "files[4].name: not a safe relative path" },
    { { "files.1.source_path=\"\"" }, "files[1].source_path: empty" },
    { { "files.1.format=\"qcow2 -o x\"" },
      "files[1].format: not an image format" },
    { { "files.1.format=\"abcdefghijabcdefghijabcdefghijabc\"" },
      "files[1].format: not an image format" },
    { { "files.1.size=-1" },
      "files[1].size: must be an integer from 0 to 2^63 - 1" },
    { { "files.1.size=9223372036854775808" },
      "files[1].size: must be an integer from 0" },
    { { "files.1.size=18446744073709551616" },
      "files[1].size: must be an integer from 0" },
    { { "files.1.size=2e3" }, "files[1].size: must be an integer" },
    { { "files.1.size=\"2000\"" }, "files[1].size: must be an integer" },
    { { "-files.1.allocated" }, "files[1].allocated: missing" },
    { { "files.1.readonly=1" }, "files[1].readonly: must be a boolean" },
    { { "files.1.target=5" }, "files[1].target: must be a string or null" },
    { { "files.1.backing=1" },
      "files[1].backing: 1 is not the index of an earlier file" },
    { { "files.1.backing=7" },
      "files[1].backing: 7 is not the index of an earlier file" },
    { { "files.1.backing=null" }, "files[1].backing: must be an integer" },
    { { "-files.1.backing_format" }, "files[1].backing_format: missing" },
    { { "files.0.backing_format=\"raw\"" },
      "files[0].backing_format: given, but" },
    { { "files.4.backing=1", "files.4.backing_format=\"raw\"" },
      "files[4].backing: a tpm file has no backing file" },
    { { "files.4.backing=3", "files.4.role=\"disk\"", "files.4.name=\"x\"",
        "files.4.backing_format=\"raw\"" },
      "files[4].backing: file 3 is a nvram file, not an image" },
    { { "files.3.pool=\"p\"", "files.3.volume=\"v\"" },
      "files[3].pool: only a disk can be a volume" },
    { { "-files.2.volume" }, "files[2]: pool and volume go together" },
    { { "files.2.pool=\"../p\"" }, "files[2].pool: not a safe pool name" },
    { { "files.2.volume=\"a/b\"" }, "files[2].volume: not a safe volume name" },
    { { "files.1.pool=\"default\"", "files.1.volume=\"data.raw\"" },
      "files[2].volume: file 1 is the same volume" },
    /* Guest content: a raw disk of its own, nothing else. */
    { { "files.2.content=\"other\"" },
      "files[2].content: not a content this version knows" },
    { { "files.2.content=\"Guest\"" },
      "files[2].content: not a content this version knows" },
    { { "files.2.content=1" }, "files[2].content: must be a string" },
    { { "files.3.content=\"guest\"" },
      "files[3].content: guest content on a nvram file" },
    { { "files.4.content=\"guest\"" },
      "files[4].content: guest content on a tpm file" },
    { { "files.0.content=\"guest\"" },
      "files[0].content: guest content on a backing file" },
    { { "files.1.content=\"guest\"" },
      "files[1].content: guest content is stored as format raw, not: "
      "\"qcow2\"" },
    { { "files.1.content=\"guest\"", "files.1.format=\"raw\"",
        "files.1.virtual_size=2000" },
      "files[1].backing: guest content has no backing file" },
    { { "files.0.content=\"guest\"", "files.0.role=\"disk\"",
        "files.0.format=\"raw\"", "-files.0.virtual_size" },
      "files[1].backing: file 0 is guest content" },
    { { "files.2.content=\"guest\"", "files.2.virtual_size=3001" },
      "files[2].content: guest content's virtual_size 3001 is not its "
      "size 3000" },
    { { "totals.size=1" },
      "totals.size: is 1, the files' sizes add up to 15000" },
    { { "totals.allocated=1" }, "totals.allocated: is 1" },
    { { "totals=[]" }, "totals: must be an object" },
    { { "files.0.size=9223372036854775807", "files.1.size=9223372036854775807",
        "-totals" }, "files: the files' sizes add up to more than" },
    /* Control characters anywhere, also where nothing reads them. */
    { { "files.1.name=\"a\\u001b[2Jb\"" },
      "files[1].name: the string holds a control character or is not UTF-8: "
      "\"a\\x1b[2Jb\"" },
    { { "files.1.source_path=\"/a\\nb\"" },
      "files[1].source_path: the string holds a control" },
    { { "domain.name=\"a\\u0000b\"" },
      "manifest: a string holds a NUL character (\\u0000)" },
    { { "tool=\"\\u007f\"" }, "tool: the string holds a control" },
    { { "created=\"\\u009b31m\"" }, "created: the string holds a control" },
    { { "future=\"\\u001b]0;title\\u0007\"" },
      "future: the string holds a control" },
    { { "future={\"a\\u001bb\": 1}" },
      "future: a member name holds a control" },
    { { "future=[\"ok\", \"\\t\"]" }, "future[1]: the string holds a control" },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_object *root = json_tokener_parse (good);
    struct vmferry_manifest *m = (void *) 1;
    const char *s;

    ck_assert_ptr_nonnull (root);
    for (size_t k = 0; k < 4 && cases[i].edits[k]; k++)
      edit (root, cases[i].edits[k]);
    s = json_object_to_json_string_ext (root, JSON_C_TO_STRING_PLAIN);
    ck_assert_msg (vmferry_manifest_parse (s, strlen (s), "t", &m) == -1,
                   "case %zu (%s) was accepted", i, cases[i].edits[0]);
    ck_assert_ptr_null (m);
    ck_assert_msg (strstr (vmferry_get_error (), cases[i].error) != NULL,
                   "case %zu (%s): error '%s', expected '%s'", i,
                   cases[i].edits[0], vmferry_get_error (), cases[i].error);
    ck_assert_msg (strncmp (vmferry_get_error (), "t: manifest: ", 13) == 0,
                   "case %zu: '%s'", i, vmferry_get_error ());
    /* The message can be printed: it quotes hostile text escaped. */
    for (s = vmferry_get_error (); *s; s++)
      ck_assert_msg ((unsigned char) *s >= 0x20 && *s != 0x7f,
                     "case %zu: raw control character in the message", i);
    json_object_put (root);
  }
}
END_TEST

/* "content": "guest" is read, kept and written back; "image" is the
 * default, which the writer leaves out (today's manifests unchanged).
 */
START_TEST (test_guest_content)
{
  json_object *root = json_tokener_parse (good);
  struct vmferry_manifest *m, *back;
  const char *s;
  char *json;

  edit (root, "files.2.content=\"guest\"");
  edit (root, "files.1.content=\"image\"");
  s = json_object_to_json_string_ext (root, JSON_C_TO_STRING_PLAIN);
  m = parse_ok (s);
  ck_assert (m->files[2].guest);
  ck_assert (!m->files[1].guest);
  ck_assert (!m->files[0].guest);
  json = vmferry_manifest_to_json (m);
  ck_assert_msg (json != NULL, "%s", vmferry_get_error ());
  ck_assert_ptr_nonnull (strstr (json, "\"content\": \"guest\""));
  ck_assert_ptr_null (strstr (json, "\"image\""));
  /* Once: file 1's "image" is not written back. */
  ck_assert_ptr_null (strstr (strstr (json, "\"content\"") + 1,
                              "\"content\""));
  back = parse_ok (json);
  ck_assert (back->files[2].guest);
  ck_assert (!back->files[1].guest);
  free (json);
  vmferry_manifest_free (back);
  vmferry_manifest_free (m);
  json_object_put (root);
}
END_TEST

START_TEST (test_refuse_text)
{
  static const struct { const char *json; const char *error; } cases[] = {
    { "", "not valid JSON: it ends early" },
    { "{", "not valid JSON: it ends early" },
    { "[]", "manifest: not a JSON object" },
    { "\"vmferry-manifest\"", "not a JSON object" },
    { "{\"format\": \"vmferry-manifest\", \"version\": 1} x",
      "not valid JSON" },
    { "{\"format\": \"vmferry-manifest\", \"version\": 1} {}",
      "not valid JSON" },
    { "{\"format\": \"vmferry-manifest\", \"version\": 1 /* c */}",
      "not valid JSON" },
    /* json-c would read this member name as "files". */
    { "{\"format\": \"vmferry-manifest\", \"version\": 1,"
      " \"files\\u0000x\": []}", "a string holds a NUL character" },
    { "{\"format\": \"vmferry-manifest\", \"version\": 1, \"x\": \"\xff\"}",
      "not valid JSON: invalid utf-8" },
    /* An overlong '/': json-c lets it through, the string check not. */
    { "{\"format\": \"vmferry-manifest\", \"version\": 1, \"x\": \"\xc0\xaf\"}",
      "x: the string holds a control character or is not UTF-8: "
      "\"\\xc0\\xaf\"" },
    { "{\"format\": \"vmferry-manifest\", \"version\": 1, \"x\":"
      " [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}", "nesting too deep" },
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct vmferry_manifest *m = NULL;
    ck_assert_int_eq (vmferry_manifest_parse (cases[i].json,
                                              strlen (cases[i].json), NULL,
                                              &m), -1);
    ck_assert_msg (strstr (vmferry_get_error (), cases[i].error) != NULL,
                   "case %zu: error '%s', expected '%s'", i,
                   vmferry_get_error (), cases[i].error);
  }
}
END_TEST

/* A manifest of N plain files. */
static char *
many_files (size_t n)
{
  size_t cap = 200 + n * 160, len;
  char *s = malloc (cap);

  ck_assert_ptr_nonnull (s);
  len = snprintf (s, cap, "{\"format\": \"vmferry-manifest\", \"version\": 1,"
                  " \"domain\": {\"name\": \"d\", \"uuid\": \"" UUID "\"},"
                  " \"files\": [");
  for (size_t i = 0; i < n; i++)
    len += snprintf (s + len, cap - len,
                     "%s{\"index\": %zu, \"role\": \"disk\","
                     " \"name\": \"f%zu\", \"source_path\": \"/f\", \"format\":"
                     " \"raw\", \"size\": 1, \"allocated\": 1}",
                     i ? "," : "", i, i);
  snprintf (s + len, cap - len, "]}");
  return s;
}

START_TEST (test_limits)
{
  struct vmferry_manifest *m = NULL;
  char *s = many_files (VMFERRY_MAX_FILES), *big;
  size_t len;

  m = parse_ok (s);
  ck_assert_uint_eq (m->nr_files, VMFERRY_MAX_FILES);
  vmferry_manifest_free (m);
  free (s);
  s = many_files (VMFERRY_MAX_FILES + 1);
  ck_assert_int_eq (vmferry_manifest_parse (s, strlen (s), NULL, &m), -1);
  error_has ("files: 4097 files, the limit is 4096");
  free (s);

  /* Known strings are bounded; the whole text is too. */
  big = malloc (VMFERRY_MAX_METADATA + 2);
  ck_assert_ptr_nonnull (big);
  len = snprintf (big, 200, "{\"format\": \"vmferry-manifest\", \"version\": 1,"
                  " \"tool\": \"");
  memset (big + len, 'x', VMFERRY_MANIFEST_MAX_STRING + 1);
  strcpy (big + len + VMFERRY_MANIFEST_MAX_STRING + 1,
          "\", \"domain\": {\"name\": \"d\", \"uuid\": \"" UUID "\"},"
          " \"files\": []}");
  ck_assert_int_eq (vmferry_manifest_parse (big, strlen (big), NULL, &m), -1);
  error_has ("tool: longer than 4096 bytes");
  memset (big, ' ', VMFERRY_MAX_METADATA + 1);
  ck_assert_int_eq (vmferry_manifest_parse (big, VMFERRY_MAX_METADATA + 1,
                                            NULL, &m), -1);
  error_has ("more than the limit");
  free (big);

  /* domain.mac_map: VMFERRY_MANIFEST_MAX_MACS entries, no more. */
  for (int n = VMFERRY_MANIFEST_MAX_MACS; n <= VMFERRY_MANIFEST_MAX_MACS + 1;
       n++) {
    json_object *root = json_tokener_parse (good), *dom, *a;
    const char *text;

    ck_assert (json_object_object_get_ex (root, "domain", &dom));
    a = json_object_new_array ();
    for (int i = 0; i < n; i++) {
      json_object *e = json_object_new_object ();
      char old[18], new[18];
      snprintf (old, sizeof old, "52:54:00:00:%02x:%02x", i >> 8, i & 0xff);
      snprintf (new, sizeof new, "52:54:01:00:%02x:%02x", i >> 8, i & 0xff);
      json_object_object_add (e, "old", json_object_new_string (old));
      json_object_object_add (e, "new", json_object_new_string (new));
      json_object_array_add (a, e);
    }
    json_object_object_add (dom, "mac_map", a);
    text = json_object_to_json_string (root);
    if (n == VMFERRY_MANIFEST_MAX_MACS) {
      m = parse_ok (text);
      ck_assert_uint_eq (m->nr_macs, n);
      vmferry_manifest_free (m);
    }
    else {
      ck_assert_int_eq (vmferry_manifest_parse (text, strlen (text), NULL,
                                                &m), -1);
      error_has ("domain.mac_map: 1025 entries, the limit is 1024");
    }
    json_object_put (root);
  }
}
END_TEST

/* The writer refuses what readers refuse, with the parser's message, so
 * an export fails before it reads any data.
 */
START_TEST (test_writer_refuses)
{
  struct vmferry_manifest_file f = {
    .index = 0, .role = VMFERRY_MANIFEST_DISK, .name = (char *) "../x",
    .source_path = (char *) "/x", .format = (char *) "raw", .backing = -1,
  };
  struct vmferry_manifest m = {
    .version = 1, .domain_name = (char *) "d", .domain_uuid = (char *) UUID,
    .nr_files = 1, .files = &f,
  };
  char *s;

  ck_assert_ptr_null (vmferry_manifest_to_json (&m));
  error_has ("files[0].name: not a safe file name");
  f.name = (char *) "ok.img";
  f.source_path = (char *) "/a\nb";
  ck_assert_ptr_null (vmferry_manifest_to_json (&m));
  error_has ("files[0].source_path: the string holds");
  f.source_path = (char *) "/ok.img";
  f.size = (uint64_t) INT64_MAX + 1;
  ck_assert_ptr_null (vmferry_manifest_to_json (&m));
  f.size = 1;
  m.extra = (char *) "{\"format\": \"other\", \"added\": 1}";
  s = vmferry_manifest_to_json (&m);
  ck_assert_msg (s != NULL, "%s", vmferry_get_error ());
  /* A known member in the extras does not override the struct. */
  ck_assert_ptr_nonnull (strstr (s, "\"format\": \"vmferry-manifest\""));
  ck_assert_ptr_nonnull (strstr (s, "\"added\": 1"));
  ck_assert_ptr_nonnull (strstr (s, "\"totals\": {"));
  ck_assert_ptr_null (strstr (s, "\"other\""));
  free (s);
}
END_TEST

START_TEST (test_roles)
{
  /* Importer and exporter convert between the two by value. */
  ck_assert_int_eq (VMFERRY_MANIFEST_DISK, VMFERRY_ROLE_DISK);
  ck_assert_int_eq (VMFERRY_MANIFEST_NVRAM, VMFERRY_ROLE_NVRAM);
  ck_assert_int_eq (VMFERRY_MANIFEST_TPM, VMFERRY_ROLE_TPM);
  ck_assert_int_eq (VMFERRY_MANIFEST_BACKING, VMFERRY_ROLE_BACKING);
  ck_assert_str_eq (vmferry_manifest_role_name (VMFERRY_MANIFEST_TPM), "tpm");
  ck_assert_str_eq (vmferry_manifest_role_name (99), "unknown");
  /* The validator's XML limit is the importer's. */
  ck_assert_int_eq (VMFERRY_MAX_METADATA, VMFERRY_DOMAIN_MAX_SIZE);
}
END_TEST

/* ---- The spec's table ---- */

struct row {
  char name[64], type[32], required[8];
};

static void
trim_into (char *dst, size_t cap, const char *s)
{
  size_t n = 0;

  for (; *s; s++)
    if (*s != '*' && *s != '\\' && n + 1 < cap && !(n == 0 && *s == ' '))
      dst[n++] = *s;
  while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\n'))
    n--;
  dst[n] = '\0';
}

/* The rows of the table in man/vmferry-stream.5.scd whose header starts
 * "[[ *Member*": first three cells of each row.
 */
static size_t
spec_rows (struct row *rows, size_t max)
{
  const char *src = getenv ("VMFERRY_SOURCE_DIR");
  char path[4096], line[1024];
  size_t n = 0;
  int cell = -1;
  bool in_table = false;
  FILE *fp;

  if (src)
    snprintf (path, sizeof path, "%s/man/vmferry-stream.5.scd", src);
  else {
    /* tests/unit/check_manifest.c -> the source tree */
    snprintf (path, sizeof path, "%s", __FILE__);
    *strstr (path, "/tests/unit/") = '\0';
    strcat (path, "/man/vmferry-stream.5.scd");
  }
  fp = fopen (path, "r");
  ck_assert_msg (fp != NULL, "%s: %s", path, strerror (errno));
  while (fgets (line, sizeof line, fp)) {
    if (!in_table) {
      in_table = strncmp (line, "[[ *Member*", 11) == 0;
      continue;
    }
    if (line[0] == '\n')
      break;
    if (line[0] == '|') {
      ck_assert (n < max);
      memset (&rows[n], 0, sizeof rows[n]);
      trim_into (rows[n++].name, sizeof rows[0].name, line + 1);
      cell = 0;
    }
    else if (line[0] == ':' && cell >= 0) {
      cell++;
      if (cell == 1)
        trim_into (rows[n - 1].type, sizeof rows[0].type, line + 1);
      else if (cell == 2)
        trim_into (rows[n - 1].required, sizeof rows[0].required, line + 1);
    }
  }
  fclose (fp);
  ck_assert_msg (in_table, "%s: no table of manifest members", path);
  return n;
}

START_TEST (test_spec_table)
{
  struct row rows[128];
  size_t nr_rows = spec_rows (rows, 128), nr_fields;
  const struct vmferry_manifest_field *fields;

  fields = vmferry_manifest_fields (&nr_fields);

  for (size_t i = 0; i < nr_rows; i++) {
    size_t k;
    for (k = 0; k < nr_fields; k++)
      if (strcmp (fields[k].name, rows[i].name) == 0)
        break;
    ck_assert_msg (k < nr_fields, "the spec lists %s, the parser does not "
                   "know it", rows[i].name);
    ck_assert_msg (strcmp (fields[k].type, rows[i].type) == 0,
                   "%s: the spec says %s, the parser %s", rows[i].name,
                   rows[i].type, fields[k].type);
    ck_assert_msg (strcmp (fields[k].required ? "yes" : "no",
                           rows[i].required) == 0,
                   "%s: the spec says required '%s', the parser %s",
                   rows[i].name, rows[i].required,
                   fields[k].required ? "yes" : "no");
    ck_assert_msg (k == i, "%s: row %zu in the spec, %zu in the parser",
                   rows[i].name, i, k);
  }
  for (size_t k = 0; k < nr_fields; k++) {
    size_t i;
    for (i = 0; i < nr_rows; i++)
      if (strcmp (fields[k].name, rows[i].name) == 0)
        break;
    ck_assert_msg (i < nr_rows, "the parser knows %s, the spec does not "
                   "list it", fields[k].name);
  }
}
END_TEST

/* Every member in the table is read: a manifest with all of them set has
 * nothing left over as "extra".
 */
/* vmferry_manifest_add_mac: rewrites one after another keep the MAC the
 * guest knows as "old".
 */
START_TEST (test_add_mac)
{
  static const char plain[] =
    "{\"format\": \"vmferry-manifest\", \"version\": 1,"
    " \"domain\": {\"name\": \"w\", \"uuid\": \"" UUID "\"},"
    " \"files\": []}";
  struct vmferry_manifest *m = parse_ok (plain), *back;
  char *json;

  ck_assert_int_eq (vmferry_manifest_add_mac (m, "52:54:00:00:00:01",
                                              "52:54:00:00:00:02"), 0);
  ck_assert_int_eq (vmferry_manifest_add_mac (m, "52:54:00:00:00:0a",
                                              "52:54:00:00:00:0b"), 0);
  /* Again: 02 was 01's, so 01 now goes to 03. */
  ck_assert_int_eq (vmferry_manifest_add_mac (m, "52:54:00:00:00:02",
                                              "52:54:00:00:00:03"), 0);
  ck_assert_uint_eq (m->nr_macs, 2);
  ck_assert_str_eq (m->macs[0].old_mac, "52:54:00:00:00:01");
  ck_assert_str_eq (m->macs[0].new_mac, "52:54:00:00:00:03");
  /* Back to the MAC the guest knows: nothing to fix up for it. */
  ck_assert_int_eq (vmferry_manifest_add_mac (m, "52:54:00:00:00:0B",
                                              "52:54:00:00:00:0a"), 0);
  ck_assert_uint_eq (m->nr_macs, 1);
  /* An entry the XML no longer matched (its old MAC in use again):
   * replaced, not repeated; a new MAC claimed twice keeps the latest.
   */
  ck_assert_int_eq (vmferry_manifest_add_mac (m, "52:54:00:00:00:01",
                                              "52:54:00:00:00:04"), 0);
  ck_assert_uint_eq (m->nr_macs, 1);
  ck_assert_str_eq (m->macs[0].new_mac, "52:54:00:00:00:04");
  ck_assert_int_eq (vmferry_manifest_add_mac (m, "52:54:00:00:00:05",
                                              "52:54:00:00:00:04"), 0);
  ck_assert_uint_eq (m->nr_macs, 1);
  ck_assert_str_eq (m->macs[0].old_mac, "52:54:00:00:00:05");
  /* What it makes, readers read. */
  json = vmferry_manifest_to_json (m);
  ck_assert_msg (json != NULL, "%s", vmferry_get_error ());
  back = parse_ok (json);
  ck_assert_uint_eq (back->nr_macs, 1);
  free (json);
  vmferry_manifest_free (back);
  vmferry_manifest_free (m);
}
END_TEST

START_TEST (test_table_complete)
{
  struct vmferry_manifest *m = parse_ok (good);

  ck_assert_ptr_null (m->extra);
  ck_assert_ptr_null (m->source_extra);
  ck_assert_ptr_null (m->domain_extra);
  ck_assert_ptr_null (m->totals_extra);
  for (size_t i = 0; i < m->nr_files; i++)
    ck_assert_ptr_null (m->files[i].extra);
  vmferry_manifest_free (m);
}
END_TEST

VMFERRY_UNIT_MAIN ("manifest", test_parse_good, test_escaped_backslash,
                   test_guest_content, test_round_trip,
                   test_unknown_members_kept, test_refuse, test_refuse_text,
                   test_limits, test_writer_refuses, test_roles,
                   test_spec_table, test_add_mac, test_table_complete)
