/* The format spec (man/vmferry-stream.5.scd) against the code, field for
 * field.  The spec's tables are read from the page itself:
 *
 * - MANIFEST: every member the writer emits is a row, with the row's
 *   type, in the row's order, and every row is emitted; a required
 *   member's absence is refused and an optional one's is not; a value of
 *   another type (or null, where the type does not allow it) is refused;
 *   the page's example parses, every member known.
 * - RECORD TYPES, the flags, the stream header, LIMITS: the numbers and
 *   names of formats/stream.h.
 *
 * (check_manifest compares the same MANIFEST table with the parser's own
 * list, vmferry_manifest_fields.)
 */
#include "config.h"

#include "unit.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "error.h"
#include "manifest.h"
#include "stream.h"

#define UUID "6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e"

/* Every member of the spec's table, each at least once: a rewritten MAC,
 * a backing file and a disk on it, a pool volume of guest content, NVRAM and a TPM
 * file.
 */
static const char full[] =
  "{\"format\": \"vmferry-manifest\", \"version\": 1,"
  " \"tool\": \"vmferry 0.1.0\", \"created\": \"2024-05-01T12:00:00Z\","
  " \"source\": {\"host\": \"src.example\", \"uri\": \"qemu:///system\"},"
  " \"domain\": {\"name\": \"web01\", \"uuid\": \"" UUID "\","
  "  \"mac_map\": [{\"old\": \"52:54:00:12:34:56\","
  "               \"new\": \"52:54:00:ab:cd:ef\"}]},"
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
  "   \"readonly\": true,"
  "   \"source_identity\": \"ino:2 mtime:2.000000003 size:2000\"},"
  "  {\"index\": 2, \"role\": \"disk\", \"name\": \"data.raw\","
  "   \"source_path\": \"/img/data.raw\", \"target\": \"vdb\","
  "   \"format\": \"raw\", \"content\": \"guest\", \"size\": 3000,"
  "   \"allocated\": 0,"
  "   \"pool\": \"default\", \"volume\": \"data.raw\"},"
  "  {\"index\": 3, \"role\": \"nvram\", \"name\": \"web01_VARS.fd\","
  "   \"source_path\": \"/nvram/web01_VARS.fd\", \"format\": \"raw\","
  "   \"size\": 4000, \"allocated\": 4000},"
  "  {\"index\": 4, \"role\": \"tpm\", \"name\": \"tpm2/tpm2-00.permall\","
  "   \"source_path\": \"/swtpm/" UUID "/tpm2/tpm2-00.permall\","
  "   \"format\": \"raw\", \"size\": 5000, \"allocated\": 4096}],"
  " \"guest\": {\"os\": [{\"root\": \"vda1\", \"type\": \"linux\","
  "   \"distro\": \"debian\", \"product\": \"Debian GNU/Linux 12\","
  "   \"hostname\": \"web01\", \"major\": 12, \"minor\": 0}],"
  "  \"filesystems\": [{\"device\": \"vda1\", \"type\": \"ext4\","
  "   \"uuid\": \"" UUID "\", \"label\": \"root\","
  "   \"mountpoint\": \"/\"}]},"
  " \"totals\": {\"size\": 15000, \"allocated\": 11296}}";

/* ---- The page's tables ---- */

#define MAX_ROWS 64
#define MAX_CELLS 4

struct table {
  size_t nr_rows;
  char cell[MAX_ROWS][MAX_CELLS][512];
};

static char *
spec_text (void)
{
  const char *src = getenv ("VMFERRY_SOURCE_DIR");
  char path[4096];
  FILE *fp;
  char *text;
  long len;

  if (src)
    snprintf (path, sizeof path, "%s/man/vmferry-stream.5.scd", src);
  else {
    /* tests/unit/check_spec.c -> the source tree */
    snprintf (path, sizeof path, "%s", __FILE__);
    *strstr (path, "/tests/unit/") = '\0';
    strcat (path, "/man/vmferry-stream.5.scd");
  }
  fp = fopen (path, "r");
  ck_assert_msg (fp != NULL, "%s: %s", path, strerror (errno));
  ck_assert (fseek (fp, 0, SEEK_END) == 0 && (len = ftell (fp)) > 0);
  rewind (fp);
  text = calloc (1, len + 1);
  ck_assert (text && fread (text, 1, len, fp) == (size_t) len);
  fclose (fp);
  return text;
}

/* Append LINE to CELL: scdoc's markup (*bold*, _underline_, "\\"
 * escapes) dropped, white space folded to one space.
 */
static void
cell_append (char *cell, size_t cap, const char *line, size_t len)
{
  size_t n = strlen (cell);

  for (size_t i = 0; i < len; i++) {
    char c = line[i];
    if (c == '*' || c == '\\')
      continue;
    /* _x_ is underline; an "_" inside a word (source_path) is text. */
    if (c == '_' && (i == 0 || !isalnum ((unsigned char) line[i - 1]) ||
                     i + 1 == len || !isalnum ((unsigned char) line[i + 1])))
      continue;
    if (isspace ((unsigned char) c)) {
      if (n == 0 || cell[n - 1] == ' ')
        continue;
      c = ' ';
    }
    if (n + 1 < cap)
      cell[n++] = c;
  }
  cell[n] = '\0';
}

/* The table of the page, after line SECTION ("# MANIFEST"), whose
 * header line starts with HEADER ("[[ *Member*").  Rows start with "|",
 * further cells with ":", and a cell goes on over indented lines.
 */
static void
spec_table (const char *section, const char *header, struct table *t)
{
  char *text = spec_text ();
  const char *p = text, *sec;
  int cell = -1;
  bool in_table = false;

  memset (t, 0, sizeof *t);
  sec = strstr (text, section);
  ck_assert_msg (sec != NULL, "the spec has no section '%s'", section);
  for (p = sec; *p; ) {
    const char *nl = strchr (p, '\n');
    size_t len = nl ? (size_t) (nl - p) : strlen (p);

    if (!in_table)
      in_table = strncmp (p, header, strlen (header)) == 0;
    else if (len == 0)
      break;
    else if (p[0] == ':' && t->nr_rows == 0)
      ;                         /* the header's other cells */
    else if (p[0] == '|' || p[0] == ':') {
      if (p[0] == '|') {
        ck_assert (t->nr_rows < MAX_ROWS);
        t->nr_rows++;
        cell = 0;
      }
      else
        cell++;
      ck_assert (cell >= 0 && cell < MAX_CELLS);
      cell_append (t->cell[t->nr_rows - 1][cell], sizeof t->cell[0][0],
                   p + 1, len - 1);
    }
    else if (cell >= 0) {
      char *c = t->cell[t->nr_rows - 1][cell];
      cell_append (c, sizeof t->cell[0][0], " ", 1);
      cell_append (c, sizeof t->cell[0][0], p, len);
    }
    p = nl ? nl + 1 : p + len;
  }
  ck_assert_msg (in_table && t->nr_rows > 0, "%s: no table '%s'",
                 section, header);
  for (size_t r = 0; r < t->nr_rows; r++)
    for (size_t c = 0; c < MAX_CELLS; c++) {
      size_t n = strlen (t->cell[r][c]);
      while (n > 0 && t->cell[r][c][n - 1] == ' ')
        t->cell[r][c][--n] = '\0';
    }
  free (text);
}

/* The MANIFEST table: member, type, required. */
static void
manifest_table (struct table *t)
{
  spec_table ("# MANIFEST", "[[ *Member*", t);
}

/* ---- Manifests as JSON ---- */

/* The JSON type as the spec's table names it. */
static const char *
type_name (json_object *v)
{
  switch (json_object_get_type (v)) {
  case json_type_null: return "null";
  case json_type_boolean: return "boolean";
  case json_type_int: return "integer";
  case json_type_double: return "number";
  case json_type_string: return "string";
  case json_type_object: return "object";
  case json_type_array: return "array";
  }
  return "?";
}

/* The type each row's member was emitted with ("" if never). */
struct seen {
  char type[MAX_ROWS][16];
};

/* Every member of O below PATH (members of an array's objects as
 * "files[].size"): a row of table T, and after the one before it in T;
 * its type goes to S.
 */
static void
walk (json_object *o, const char *path, const struct table *t,
      struct seen *s)
{
  size_t last = 0;
  bool first = true;

  json_object_object_foreach (o, key, v) {
    char sub[64], *type;
    size_t r;

    snprintf (sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
    for (r = 0; r < t->nr_rows; r++)
      if (strcmp (t->cell[r][0], sub) == 0)
        break;
    ck_assert_msg (r < t->nr_rows, "the writer emits %s, the spec's table "
                   "does not list it", sub);
    ck_assert_msg (first || r > last, "the writer emits %s after %s, the "
                   "spec's table lists it before", sub, t->cell[last][0]);
    first = false;
    last = r;
    type = s->type[r];
    if (!*type)
      snprintf (type, sizeof s->type[0], "%s", type_name (v));
    else if (strcmp (type, type_name (v)) != 0 &&
             strcmp (type, "string or null") != 0) {
      /* "target": a string here, null there. */
      char both[16];
      bool was_null = strcmp (type, "null") == 0;
      snprintf (both, sizeof both, "%s or %s",
                was_null ? type_name (v) : type,
                was_null ? "null" : type_name (v));
      snprintf (type, sizeof s->type[0], "%s", both);
    }
    if (json_object_is_type (v, json_type_object))
      walk (v, sub, t, s);
    else if (json_object_is_type (v, json_type_array)) {
      char elem[64];
      snprintf (elem, sizeof elem, "%s[]", sub);
      for (size_t k = 0; k < json_object_array_length (v); k++)
        walk (json_object_array_get_idx (v, k), elem, t, s);
    }
  }
}

/* PATH ("files[].size") in ROOT: apply FN to the member's parent object
 * and its key, in every element of an array on the way.
 */
static void
each_member (json_object *root, const char *path,
             void (*fn) (json_object *parent, const char *key, void *arg),
             void *arg)
{
  const char *dot = strchr (path, '.');
  char head[64];

  if (dot == NULL) {
    fn (root, path, arg);
    return;
  }
  snprintf (head, sizeof head, "%.*s", (int) (dot - path), path);
  if (strlen (head) > 2 && strcmp (head + strlen (head) - 2, "[]") == 0) {
    json_object *a;
    head[strlen (head) - 2] = '\0';
    ck_assert (json_object_object_get_ex (root, head, &a));
    for (size_t k = 0; k < json_object_array_length (a); k++)
      each_member (json_object_array_get_idx (a, k), dot + 1, fn, arg);
  }
  else {
    json_object *o;
    ck_assert (json_object_object_get_ex (root, head, &o));
    each_member (o, dot + 1, fn, arg);
  }
}

static void
del_member (json_object *parent, const char *key, void *arg)
{
  (void) arg;
  json_object_object_del (parent, key);
}

static void
set_member (json_object *parent, const char *key, void *arg)
{
  json_object *v = arg;

  /* Only where it is (an optional member stays absent elsewhere). */
  if (json_object_object_get_ex (parent, key, NULL))
    json_object_object_add (parent, key, json_object_get (v));
}

/* Parse TEXT as vmferry's readers do: 0, or -1 with the error set. */
static int
parse (const char *text)
{
  struct vmferry_manifest *m = NULL;
  int r = vmferry_manifest_parse (text, strlen (text), NULL, &m);

  vmferry_manifest_free (m);
  return r;
}

/* Whether MSG names member PATH ("files[].size") where the parser's
 * messages do: "files[K].size: ...", "domain.name: ...".
 */
static bool
names_member (const char *msg, const char *path)
{
  const char *b = strstr (path, "[]"), *m;
  char head[64], tail[64];

  if (b == NULL) {
    snprintf (tail, sizeof tail, "%s:", path);
    return strstr (msg, tail) != NULL;
  }
  snprintf (head, sizeof head, "%.*s[", (int) (b - path), path);
  snprintf (tail, sizeof tail, "]%s:", b + 2);
  for (m = strstr (msg, head); m; m = strstr (m + 1, head)) {
    const char *p = m + strlen (head);
    while (isdigit ((unsigned char) *p))
      p++;
    if (p > m + strlen (head) && strncmp (p, tail, strlen (tail)) == 0)
      return true;
  }
  return false;
}

/* The page's text with every run of white space one space, so that a
 * phrase is found wherever its lines break.
 */
static char *
spec_flat (void)
{
  char *text = spec_text ();
  size_t n = 0;

  for (size_t i = 0; text[i]; i++) {
    if (isspace ((unsigned char) text[i])) {
      if (n > 0 && text[n - 1] == ' ')
        continue;
      text[n++] = ' ';
    }
    else
      text[n++] = text[i];
  }
  text[n] = '\0';
  return text;
}

/* ---- Tests ---- */

/* What the writer emits is what the table lists, type for type, each
 * object's members in the table's order; nothing more, nothing less.
 */
START_TEST (test_manifest_emitted)
{
  struct table t;
  struct vmferry_manifest *m = NULL;
  struct seen s;
  json_object *root;
  char *json;

  memset (&s, 0, sizeof s);
  manifest_table (&t);
  ck_assert_msg (vmferry_manifest_parse (full, strlen (full), NULL, &m) == 0,
                 "%s", vmferry_get_error ());
  json = vmferry_manifest_to_json (m);
  ck_assert_msg (json != NULL, "%s", vmferry_get_error ());
  root = json_tokener_parse (json);
  ck_assert (root != NULL);
  walk (root, "", &t, &s);

  for (size_t r = 0; r < t.nr_rows; r++) {
    ck_assert_msg (*s.type[r], "the spec lists %s, the writer does not "
                   "emit it", t.cell[r][0]);
    ck_assert_msg (strcmp (t.cell[r][1], s.type[r]) == 0 ||
                   (strcmp (t.cell[r][1], "string or null") == 0 &&
                    strcmp (s.type[r], "string") == 0),
                   "%s: the spec says %s, the writer emits %s",
                   t.cell[r][0], t.cell[r][1], s.type[r]);
  }
  json_object_put (root);
  free (json);
  vmferry_manifest_free (m);
}
END_TEST

/* A manifest without a member: refused, naming it, exactly when the
 * table says it is required.
 */
START_TEST (test_manifest_required)
{
  /* Members that come in pairs: without one, the other is refused for
   * that reason (the table's "Meaning" says so), not for its own.
   */
  static const char *const pairs[][2] = {
    { "files[].backing", "files[].backing_format" },
    { "files[].pool", "files[].volume" },
  };
  struct table t;

  manifest_table (&t);
  for (size_t r = 0; r < t.nr_rows; r++) {
    const char *path = t.cell[r][0], *req = t.cell[r][2];
    json_object *root = json_tokener_parse (full);
    int got;

    ck_assert_msg (strcmp (req, "yes") == 0 || strcmp (req, "no") == 0,
                   "%s: required is '%s', not yes or no", path, req);
    each_member (root, path, del_member, NULL);
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++)
      for (int h = 0; h < 2; h++)
        if (strcmp (path, pairs[k][h]) == 0)
          each_member (root, pairs[k][!h], del_member, NULL);
    got = parse (json_object_to_json_string (root));
    if (strcmp (req, "yes") == 0) {
      ck_assert_msg (got < 0, "%s is required, but a manifest without it "
                     "was accepted", path);
      ck_assert_msg (names_member (vmferry_get_error (), path) &&
                     strstr (vmferry_get_error (), "missing"),
                     "without %s: '%s', not that it is missing", path,
                     vmferry_get_error ());
    }
    else
      ck_assert_msg (got == 0, "%s is optional, but a manifest without it "
                     "was refused: %s", path, vmferry_get_error ());
    json_object_put (root);
  }
}
END_TEST

/* A member of another type than the table's, or null where it does not
 * say "or null": refused, naming the member; null where it does:
 * accepted.
 */
START_TEST (test_manifest_types)
{
  struct table t;

  manifest_table (&t);
  for (size_t r = 0; r < t.nr_rows; r++) {
    const char *path = t.cell[r][0], *type = t.cell[r][1];
    json_object *wrong[3] = { NULL, NULL, NULL };
    size_t n = 0;

    if (strcmp (type, "string") == 0)
      wrong[n++] = json_object_new_int (7);
    else if (strcmp (type, "integer") == 0) {
      wrong[n++] = json_object_new_string ("7");
      wrong[n++] = json_object_new_double (7.5);
    }
    else if (strcmp (type, "boolean") == 0)
      wrong[n++] = json_object_new_string ("true");
    else if (strcmp (type, "object") == 0)
      wrong[n++] = json_object_new_array ();
    else if (strcmp (type, "array") == 0)
      wrong[n++] = json_object_new_object ();
    else if (strcmp (type, "string or null") == 0)
      wrong[n++] = json_object_new_boolean (1);
    else
      ck_abort_msg ("%s: the spec's type '%s' is none this test knows",
                    path, type);
    if (strstr (type, "or null") == NULL)
      wrong[n++] = NULL;        /* json null */

    for (size_t k = 0; k < n; k++) {
      json_object *root = json_tokener_parse (full);
      each_member (root, path, set_member, wrong[k]);
      ck_assert_msg (parse (json_object_to_json_string (root)) < 0,
                     "%s (%s): %s was accepted", path, type,
                     json_object_to_json_string (wrong[k]));
      ck_assert_msg (names_member (vmferry_get_error (), path),
                     "%s = %s: the message does not name it: %s", path,
                     json_object_to_json_string (wrong[k]),
                     vmferry_get_error ());
      json_object_put (root);
    }
    if (strstr (type, "or null")) {
      json_object *root = json_tokener_parse (full);
      each_member (root, path, set_member, NULL);
      ck_assert_msg (parse (json_object_to_json_string (root)) == 0,
                     "%s (%s): null was refused: %s", path, type,
                     vmferry_get_error ());
      json_object_put (root);
    }
    for (size_t k = 0; k < n; k++)
      json_object_put (wrong[k]);
  }
}
END_TEST

/* The page's example manifest parses, with no member the table lacks. */
START_TEST (test_manifest_example)
{
  char *text = spec_text ();
  const char *sec = strstr (text, "# MANIFEST"), *a, *b;
  struct vmferry_manifest *m = NULL;
  char *json;
  size_t n = 0;

  ck_assert (sec != NULL);
  a = strstr (sec, "```\n");
  ck_assert (a != NULL);
  a += 4;
  b = strstr (a, "```");
  ck_assert (b != NULL);
  json = calloc (1, b - a + 1);
  ck_assert (json != NULL);
  for (const char *p = a; p < b; p++)
    if (*p != '\t')
      json[n++] = *p;
  ck_assert_msg (vmferry_manifest_parse (json, n, NULL, &m) == 0,
                 "the spec's example: %s", vmferry_get_error ());
  ck_assert_msg (m->extra == NULL && m->source_extra == NULL &&
                 m->domain_extra == NULL && m->totals_extra == NULL &&
                 m->files[0].extra == NULL,
                 "the spec's example has members its table lacks");
  vmferry_manifest_free (m);
  free (json);
  free (text);
}
END_TEST

/* RECORD TYPES: the numbers and names of stream.h; the others unknown. */
START_TEST (test_record_types)
{
  struct table t;
  bool listed[16] = { false };

  spec_table ("# RECORD TYPES", "[[ *Type*", &t);
  for (size_t r = 0; r < t.nr_rows; r++) {
    char *end, name[64];
    long type = strtol (t.cell[r][0], &end, 10);
    size_t i;

    ck_assert_msg (*end == '\0' && type > 0 && type < 16,
                   "record type '%s'", t.cell[r][0]);
    /* STREAM_HEADER is "stream-header" in messages. */
    for (i = 0; t.cell[r][1][i] && i + 1 < sizeof name; i++)
      name[i] = t.cell[r][1][i] == '_' ? '-'
                : tolower ((unsigned char) t.cell[r][1][i]);
    name[i] = '\0';
    ck_assert_str_eq (vmferry_record_type_name (type), name);
    listed[type] = true;
  }
  for (int type = 0; type < 16; type++)
    if (!listed[type])
      ck_assert_msg (strcmp (vmferry_record_type_name (type), "unknown") == 0,
                     "type %d is %s in the code, not in the spec", type,
                     vmferry_record_type_name (type));
  ck_assert_uint_eq (t.nr_rows, VMFERRY_REC_FILE_MAP);
}
END_TEST

/* The flags, the record and stream headers, the version. */
START_TEST (test_flags_headers)
{
  struct table t;
  char *text = spec_flat ();

  spec_table ("# RECORD HEADER", "[[ *Bit*", &t);
  ck_assert_uint_eq (t.nr_rows, 2);
  ck_assert_uint_eq (strtoul (t.cell[0][0], NULL, 16), VMFERRY_REC_F_ZSTD);
  ck_assert (strstr (t.cell[0][0], "(F_ZSTD)"));
  ck_assert_uint_eq (strtoul (t.cell[1][0], NULL, 16),
                     VMFERRY_REC_F_SKIPPABLE);
  ck_assert (strstr (t.cell[1][0], "(F_SKIPPABLE)"));
  ck_assert_uint_eq (VMFERRY_REC_F_KNOWN,
                     VMFERRY_REC_F_ZSTD | VMFERRY_REC_F_SKIPPABLE);

  ck_assert (strstr (text, "a fixed 48-byte header"));
  ck_assert_uint_eq (VMFERRY_REC_HEADER_SIZE, 48);
  ck_assert (strstr (text, "the four bytes \"VMFR\""));
  ck_assert_str_eq (VMFERRY_REC_MAGIC, "VMFR");
  ck_assert (strstr (text, "The payload must be at least 40 bytes."));
  ck_assert_uint_eq (VMFERRY_STREAM_HEADER_SIZE, 40);
  ck_assert (strstr (text, "magic: \"VMFERRY\\\\n\""));
  ck_assert_str_eq (VMFERRY_STREAM_MAGIC, "VMFERRY\n");
  ck_assert (strstr (text, "version major: 1."));
  ck_assert_uint_eq (VMFERRY_STREAM_VERSION_MAJOR, 1);
  ck_assert (strstr (text, "0x1 (RESUME, version 1.1)"));
  ck_assert_uint_eq (VMFERRY_FEATURE_RESUME, 1);
  ck_assert (strstr (text, "0x4 (GUEST, version 1.2)"));
  ck_assert (strstr (text, "feature GUEST (bit"));
  ck_assert (strstr (text, "0x4, minor version 2)"));
  ck_assert_uint_eq (VMFERRY_FEATURE_GUEST, 4);
  ck_assert (strstr (text, "0x2 (REFRESH, version 1.2)"));
  ck_assert_uint_eq (VMFERRY_FEATURE_REFRESH, 2);
  ck_assert_uint_eq (VMFERRY_FEATURES_MANDATORY_KNOWN,
                     VMFERRY_FEATURE_RESUME | VMFERRY_FEATURE_REFRESH |
                     VMFERRY_FEATURE_GUEST);
  ck_assert (strstr (text, "bytes 40 to 55 are its token"));
  ck_assert_uint_eq (VMFERRY_RESUME_TOKEN_SIZE, 16);
  ck_assert (strstr (text, "multiple of the block size, 65536 bytes"));
  ck_assert_uint_eq (VMFERRY_BLOCK_SIZE, 65536);
  free (text);
}
END_TEST

/* LIMITS: each value the spec gives in bytes is the code's. */
START_TEST (test_limits)
{
  static const struct {
    const char *what;
    unsigned long long value;
  } limits[] = {
    { "payload_len of MANIFEST, DOMAIN_XML", VMFERRY_MAX_METADATA },
    { "payload_len of any other record", VMFERRY_MAX_PAYLOAD },
    { "length of DATA", VMFERRY_CHUNK_SIZE },
    { "length of ZERO", VMFERRY_MAX_RECORD_LENGTH },
    { "number of files", VMFERRY_MAX_FILES },
    { "file size", 0 },         /* 2^63 - 1: see check_manifest */
  };
  struct table t;

  spec_table ("# LIMITS", "[[ *What*", &t);
  ck_assert_uint_eq (t.nr_rows, sizeof limits / sizeof limits[0]);
  for (size_t r = 0; r < t.nr_rows; r++) {
    const char *open;
    unsigned long long v;

    ck_assert_str_eq (t.cell[r][0], limits[r].what);
    if (limits[r].value == 0) {
      ck_assert_str_eq (t.cell[r][1], "2^63 - 1");
      continue;
    }
    /* "16 MiB (16777216); also ...", "4096" */
    open = strchr (t.cell[r][1], '(');
    v = strtoull (open ? open + 1 : t.cell[r][1], NULL, 10);
    ck_assert_msg (v == limits[r].value, "%s: the spec says %llu, the code "
                   "%llu", limits[r].what, v, limits[r].value);
  }
}
END_TEST

VMFERRY_UNIT_MAIN ("spec", test_manifest_emitted, test_manifest_required,
                   test_manifest_types, test_manifest_example,
                   test_record_types, test_flags_headers, test_limits)
