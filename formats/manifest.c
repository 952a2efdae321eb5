/* vmferry: the stream's manifest, its one parser and its one writer (see
 * manifest.h and man/vmferry-stream.5, MANIFEST).
 *
 * The manifest comes from a stream, so from anyone: the parser bounds
 * the JSON's size and nesting, checks every string before any of it is
 * quoted in a message, and checks each member's type against the table
 * below before it reads the member.  Members are read only through that
 * table (member() aborts on any other), so the table is the complete list
 * of what this version understands, and what is not in it is kept as
 * "extra".
 */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "error.h"
#include "manifest.h"
#include "names.h"
#include "stream.h"
#include "text.h"

/* Every member of a version 1 manifest, in the order the writer emits
 * them.  man/vmferry-stream.5.scd has the same table (check_manifest
 * compares them).
 */
static const struct vmferry_manifest_field fields[] = {
  { "format", "string", true },
  { "version", "integer", true },
  { "tool", "string", false },
  { "created", "string", false },
  { "source", "object", false },
  { "source.host", "string", false },
  { "source.uri", "string", false },
  { "domain", "object", true },
  { "domain.name", "string", true },
  { "domain.uuid", "string", true },
  { "domain.mac_map", "array", false },
  { "domain.mac_map[].old", "string", true },
  { "domain.mac_map[].new", "string", true },
  { "files", "array", true },
  { "files[].index", "integer", true },
  { "files[].role", "string", true },
  { "files[].name", "string", true },
  { "files[].source_path", "string", true },
  { "files[].target", "string or null", false },
  { "files[].format", "string", true },
  { "files[].content", "string", false },
  { "files[].size", "integer", true },
  { "files[].virtual_size", "integer", false },
  { "files[].allocated", "integer", true },
  { "files[].backing", "integer", false },
  { "files[].backing_format", "string", false },
  { "files[].readonly", "boolean", false },
  { "files[].pool", "string", false },
  { "files[].volume", "string", false },
  { "files[].source_identity", "string", false },
  { "guest", "object", false },
  { "guest.os", "array", true },
  { "guest.os[].root", "string", true },
  { "guest.os[].type", "string", true },
  { "guest.os[].distro", "string", true },
  { "guest.os[].product", "string", true },
  { "guest.os[].hostname", "string", true },
  { "guest.os[].major", "integer", true },
  { "guest.os[].minor", "integer", true },
  { "guest.filesystems", "array", true },
  { "guest.filesystems[].device", "string", true },
  { "guest.filesystems[].type", "string", true },
  { "guest.filesystems[].uuid", "string", false },
  { "guest.filesystems[].label", "string", false },
  { "guest.filesystems[].mountpoint", "string", false },
  { "totals", "object", false },
  { "totals.size", "integer", false },
  { "totals.allocated", "integer", false },
};
#define NR_FIELDS (sizeof fields / sizeof fields[0])

const struct vmferry_manifest_field *
vmferry_manifest_fields (size_t *nr_rtn)
{
  *nr_rtn = NR_FIELDS;
  return fields;
}

const char *
vmferry_manifest_role_name (enum vmferry_manifest_role role)
{
  switch (role) {
  case VMFERRY_MANIFEST_DISK: return "disk";
  case VMFERRY_MANIFEST_NVRAM: return "nvram";
  case VMFERRY_MANIFEST_TPM: return "tpm";
  case VMFERRY_MANIFEST_BACKING: return "backing";
  }
  return "unknown";
}

static bool
role_from_name (const char *s, enum vmferry_manifest_role *role_rtn)
{
  static const enum vmferry_manifest_role roles[] = {
    VMFERRY_MANIFEST_DISK, VMFERRY_MANIFEST_NVRAM, VMFERRY_MANIFEST_TPM,
    VMFERRY_MANIFEST_BACKING,
  };

  for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
    if (strcmp (s, vmferry_manifest_role_name (roles[i])) == 0) {
      *role_rtn = roles[i];
      return true;
    }
  return false;
}

bool
vmferry_manifest_mac_ok (const char *s)
{
  for (int i = 0; i < 17; i++) {
    if (i % 3 == 2 ? s[i] != ':' : !isxdigit ((unsigned char) s[i]))
      return false;
  }
  return s[17] == '\0';
}

void
vmferry_manifest_remove_mac (struct vmferry_manifest *m, size_t i)
{
  free (m->macs[i].old_mac);
  free (m->macs[i].new_mac);
  free (m->macs[i].extra);
  memmove (&m->macs[i], &m->macs[i + 1],
           (m->nr_macs - i - 1) * sizeof *m->macs);
  m->nr_macs--;
}

int
vmferry_manifest_add_mac (struct vmferry_manifest *m, const char *old,
                          const char *new)
{
  struct vmferry_manifest_mac *e = NULL;
  char *copy;
  size_t at;

  assert (vmferry_manifest_mac_ok (old) && vmferry_manifest_mac_ok (new));
  for (at = 0; at < m->nr_macs && !e; at++)
    if (strcasecmp (m->macs[at].new_mac, old) == 0)
      e = &m->macs[at];
  for (at = 0; at < m->nr_macs && !e; at++)
    if (strcasecmp (m->macs[at].old_mac, old) == 0)
      e = &m->macs[at];
  if (e == NULL) {
    struct vmferry_manifest_mac *macs;

    if (m->nr_macs >= VMFERRY_MANIFEST_MAX_MACS) {
      vmferry_set_error ("manifest: domain.mac_map: more than %d MACs "
                         "changed", VMFERRY_MANIFEST_MAX_MACS);
      return -1;
    }
    macs = realloc (m->macs, (m->nr_macs + 1) * sizeof *macs);
    if (macs == NULL)
      goto nomem;
    m->macs = macs;
    e = &m->macs[m->nr_macs];
    *e = (struct vmferry_manifest_mac) { .old_mac = strdup (old) };
    if (e->old_mac == NULL)
      goto nomem;
    m->nr_macs++;
  }
  if ((copy = strdup (new)) == NULL)
    goto nomem;
  free (e->new_mac);
  e->new_mac = copy;
  at = e - m->macs;
  for (size_t i = m->nr_macs; i-- > 0;)
    if (i != at && strcasecmp (m->macs[i].new_mac, new) == 0) {
      vmferry_manifest_remove_mac (m, i);
      if (i < at)
        at--;
    }
  if (strcasecmp (m->macs[at].old_mac, m->macs[at].new_mac) == 0)
    vmferry_manifest_remove_mac (m, at);
  return 0;
 nomem:
  vmferry_set_error_errno (ENOMEM, "manifest");
  return -1;
}

const struct vmferry_manifest_file *
vmferry_manifest_file (const struct vmferry_manifest *m, uint32_t file)
{
  return m && file < m->nr_files ? &m->files[file] : NULL;
}

static void
free_file (struct vmferry_manifest_file *f)
{
  free (f->name);
  free (f->source_path);
  free (f->pool);
  free (f->volume);
  free (f->target);
  free (f->format);
  free (f->backing_format);
  free (f->source_identity);
  free (f->extra);
}

void
vmferry_manifest_free (struct vmferry_manifest *m)
{
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->nr_files; i++)
    free_file (&m->files[i]);
  free (m->files);
  for (size_t i = 0; i < m->nr_macs; i++) {
    free (m->macs[i].old_mac);
    free (m->macs[i].new_mac);
    free (m->macs[i].extra);
  }
  free (m->macs);
  free (m->tool);
  free (m->created);
  free (m->source_host);
  free (m->source_uri);
  free (m->domain_name);
  free (m->domain_uuid);
  free (m->extra);
  free (m->source_extra);
  free (m->domain_extra);
  free (m->totals_extra);
  free (m->guest);
  free (m);
}

/* ---- Parsing ---- */

struct parse {
  const char *input;            /* for messages, or NULL */
};

/* Set the error "INPUT: manifest: WHERE: message" and return -1. */
static int __attribute__ ((format (printf, 3, 4)))
fail (const struct parse *p, const char *where, const char *fs, ...)
{
  char msg[VMFERRY_ERROR_MAX];
  va_list ap;

  va_start (ap, fs);
  vsnprintf (msg, sizeof msg, fs, ap);
  va_end (ap);
  vmferry_set_error ("%s%smanifest: %s%s%s", p->input ? p->input : "",
                     p->input ? ": " : "", where ? where : "",
                     where && *where ? ": " : "", msg);
  return -1;
}

static int
nomem (const struct parse *p)
{
  vmferry_set_error_errno (ENOMEM, "%s%smanifest", p->input ? p->input : "",
                           p->input ? ": " : "");
  return -1;
}

/* Quote S[0..LEN) in a message: escaped, cut to a readable length. */
static int
fail_text (const struct parse *p, const char *where, const char *what,
           const char *s, size_t len)
{
  char *e = vmferry_text_escape (s, len < 200 ? len : 200);
  int r;

  r = fail (p, where, "%s: \"%s\"%s", what, e ? e : "?",
            len > 200 ? "..." : "");
  free (e);
  return r;
}

/* Every string in the tree, member names included, is UTF-8 without
 * control characters; checked first, so that later messages can quote
 * any of them.  PATH is the tree's position ("files[2]").
 */
static int
check_strings (const struct parse *p, json_object *o, const char *path)
{
  char sub[256];

  switch (json_object_get_type (o)) {
  case json_type_string: {
    const char *s = json_object_get_string (o);
    size_t len = (size_t) json_object_get_string_len (o);
    if (strlen (s) != len)
      return fail (p, path, "the string holds a NUL character");
    if (!vmferry_text_plain (s, len))
      return fail_text (p, path, "the string holds a control character or "
                        "is not UTF-8", s, len);
    return 0;
  }
  case json_type_object: {
    json_object_object_foreach (o, key, v) {
      if (!vmferry_text_plain (key, strlen (key)))
        return fail_text (p, path, "a member name holds a control character "
                          "or is not UTF-8", key, strlen (key));
      snprintf (sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
      if (v && check_strings (p, v, sub) < 0)
        return -1;
    }
    return 0;
  }
  case json_type_array:
    for (size_t i = 0; i < json_object_array_length (o); i++) {
      snprintf (sub, sizeof sub, "%s[%zu]", path, i);
      if (check_strings (p, json_object_array_get_idx (o, i), sub) < 0)
        return -1;
    }
    return 0;
  default:
    return 0;
  }
}

/* The table entry of member KEY of an object at PARENT ("", "domain",
 * "files[]"), or NULL.
 */
static const struct vmferry_manifest_field *
field_find (const char *parent, const char *key)
{
  size_t plen = strlen (parent);

  /* "source.host" at the top is a member of that name, not source's. */
  if (strchr (key, '.') || strchr (key, '['))
    return NULL;
  for (size_t i = 0; i < NR_FIELDS; i++) {
    const char *n = fields[i].name;
    if (plen == 0) {
      if (strcmp (n, key) == 0)
        return &fields[i];
    }
    else if (strncmp (n, parent, plen) == 0 && n[plen] == '.' &&
             strcmp (n + plen + 1, key) == 0)
      return &fields[i];
  }
  return NULL;
}

/* Whether the integer V is one a manifest may hold: 0 to 2^63 - 1.
 * json-c keeps larger values as uint64 (or clamps them to UINT64_MAX).
 */
static bool
int_ok (json_object *v)
{
  return json_object_get_int64 (v) >= 0 &&
    json_object_get_uint64 (v) <= (uint64_t) INT64_MAX;
}

static bool
type_ok (const struct vmferry_manifest_field *f, json_object *v)
{
  if (strcmp (f->type, "string or null") == 0)
    return v == NULL || json_object_is_type (v, json_type_string);
  if (v == NULL)
    return false;
  if (strcmp (f->type, "string") == 0)
    return json_object_is_type (v, json_type_string);
  if (strcmp (f->type, "integer") == 0)
    return json_object_is_type (v, json_type_int) && int_ok (v);
  if (strcmp (f->type, "boolean") == 0)
    return json_object_is_type (v, json_type_boolean);
  if (strcmp (f->type, "object") == 0)
    return json_object_is_type (v, json_type_object);
  if (strcmp (f->type, "array") == 0)
    return json_object_is_type (v, json_type_array);
  abort ();                     /* a type the table must not use */
}

/* Check object O at table position PARENT (its place in the tree is
 * PATH): every known member present when required and of its type; the
 * unknown members go, as one JSON object's text, to *EXTRA_RTN (NULL
 * when there are none).
 */
static int
check_members (const struct parse *p, json_object *o, const char *parent,
               const char *path, char **extra_rtn)
{
  size_t plen = strlen (parent);
  json_object *extra = NULL;
  char where[256];

  *extra_rtn = NULL;
  if (!json_object_is_type (o, json_type_object))
    return fail (p, path, "must be an object");
  for (size_t i = 0; i < NR_FIELDS; i++) {
    const char *n = fields[i].name, *key;
    json_object *v;
    bool present;

    if (plen == 0)
      key = n;
    else if (strncmp (n, parent, plen) == 0 && n[plen] == '.')
      key = n + plen + 1;
    else
      continue;
    if (strchr (key, '.') || strstr (key, "[]"))
      continue;                 /* a member of a member */
    snprintf (where, sizeof where, "%s%s%s", path, *path ? "." : "", key);
    present = json_object_object_get_ex (o, key, &v);
    if (!present) {
      if (fields[i].required)
        return fail (p, where, "missing");
      continue;
    }
    if (!type_ok (&fields[i], v)) {
      if (strcmp (fields[i].type, "integer") == 0 && v &&
          json_object_is_type (v, json_type_int))
        return fail (p, where, "must be an integer from 0 to 2^63 - 1");
      return fail (p, where, "must be %s %s",
                   fields[i].type[0] == 'a' || fields[i].type[0] == 'i' ||
                   fields[i].type[0] == 'o' ? "an" : "a", fields[i].type);
    }
  }

  json_object_object_foreach (o, key, v) {
    if (field_find (parent, key))
      continue;
    if (extra == NULL && (extra = json_object_new_object ()) == NULL)
      return nomem (p);
    if (json_object_object_add (extra, key, json_object_get (v)) < 0) {
      json_object_put (extra);
      return nomem (p);
    }
  }
  if (extra) {
    const char *text =
      json_object_to_json_string_ext (extra, JSON_C_TO_STRING_PLAIN |
                                      JSON_C_TO_STRING_NOSLASHESCAPE);
    *extra_rtn = text ? strdup (text) : NULL;
    json_object_put (extra);
    if (*extra_rtn == NULL)
      return nomem (p);
  }
  return 0;
}

/* Member KEY of O, which check_members has checked at PARENT: NULL when
 * absent or null.  Only members in the table can be read.
 */
static json_object *
member (json_object *o, const char *parent, const char *key)
{
  json_object *v = NULL;

  /* Not an assert: it must hold in every build, or the table lies. */
  if (field_find (parent, key) == NULL)
    abort ();
  if (o == NULL)
    return NULL;
  json_object_object_get_ex (o, key, &v);
  return v;
}

/* Copy string member KEY into *DST (NULL when absent). */
static int
get_string (const struct parse *p, json_object *o, const char *parent,
            const char *key, const char *path, char **dst)
{
  json_object *v = member (o, parent, key);
  char where[256];

  *dst = NULL;
  if (v == NULL)
    return 0;
  if ((size_t) json_object_get_string_len (v) > VMFERRY_MANIFEST_MAX_STRING) {
    snprintf (where, sizeof where, "%s%s%s", path, *path ? "." : "", key);
    return fail (p, where, "longer than %d bytes", VMFERRY_MANIFEST_MAX_STRING);
  }
  if (json_object_get_string_len (v) == 0) {
    snprintf (where, sizeof where, "%s%s%s", path, *path ? "." : "", key);
    return fail (p, where, "empty");
  }
  *dst = strdup (json_object_get_string (v));
  return *dst ? 0 : nomem (p);
}

static uint64_t
get_u64 (json_object *o, const char *parent, const char *key, bool *present)
{
  json_object *v = member (o, parent, key);

  if (present)
    *present = v != NULL;
  return v ? json_object_get_uint64 (v) : 0;
}

/* An image format name as libvirt and qemu-img spell them. */
static bool
format_ok (const char *s)
{
  size_t len = strlen (s);

  if (len == 0 || len > VMFERRY_MANIFEST_MAX_FORMAT)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' ||
          s[i] == '.'))
      return false;
  return true;
}

/* "content": "image" (the default: the file's bytes) or "guest" (the
 * disk as the guest reads it, which this version stores as raw only:
 * the importer writes the bytes as they come).
 */
static int
parse_content (const struct parse *p, json_object *o,
               struct vmferry_manifest_file *f, const char *path)
{
  char where[96];
  char *content = NULL;

  snprintf (where, sizeof where, "%s.content", path);
  if (get_string (p, o, "files[]", "content", path, &content) < 0)
    return -1;
  if (content == NULL || strcmp (content, "image") == 0) {
    free (content);
    return 0;
  }
  if (strcmp (content, "guest") != 0) {
    int r = fail_text (p, where, "not a content this version knows (image, "
                       "guest)", content, strlen (content));
    free (content);
    return r;
  }
  free (content);
  f->guest = true;
  if (f->role != VMFERRY_MANIFEST_DISK)
    return fail (p, where, "guest content on a %s file (only a disk has "
                 "it)", vmferry_manifest_role_name (f->role));
  if (strcmp (f->format, "raw") != 0)
    return fail_text (p, where, "guest content is stored as format raw, "
                      "not", f->format, strlen (f->format));
  if (f->has_virtual_size && f->virtual_size != f->size)
    return fail (p, where, "guest content's virtual_size %" PRIu64
                 " is not its size %" PRIu64, f->virtual_size, f->size);
  return 0;
}

static int
parse_file (const struct parse *p, json_object *o, struct vmferry_manifest *m,
            size_t i)
{
  struct vmferry_manifest_file *f = &m->files[i];
  json_object *v;
  char path[64], where[96];
  const char *role;
  bool has_backing;
  uint64_t u;

  f->backing = -1;
  snprintf (path, sizeof path, "files[%zu]", i);
  if (check_members (p, o, "files[]", path, &f->extra) < 0)
    return -1;

  snprintf (where, sizeof where, "%s.index", path);
  if (get_u64 (o, "files[]", "index", NULL) != i)
    return fail (p, where, "is %" PRIu64 ", the file's position is %zu",
                 get_u64 (o, "files[]", "index", NULL), i);
  f->index = (uint32_t) i;

  role = json_object_get_string (member (o, "files[]", "role"));
  if (!role_from_name (role, &f->role)) {
    snprintf (where, sizeof where, "%s.role", path);
    return fail_text (p, where, "not a role this version knows (disk, "
                      "backing, nvram, tpm)", role, strlen (role));
  }

  if (get_string (p, o, "files[]", "name", path, &f->name) < 0 ||
      get_string (p, o, "files[]", "source_path", path, &f->source_path) < 0 ||
      get_string (p, o, "files[]", "format", path, &f->format) < 0 ||
      get_string (p, o, "files[]", "target", path, &f->target) < 0 ||
      get_string (p, o, "files[]", "backing_format", path,
                  &f->backing_format) < 0 ||
      get_string (p, o, "files[]", "pool", path, &f->pool) < 0 ||
      get_string (p, o, "files[]", "volume", path, &f->volume) < 0 ||
      get_string (p, o, "files[]", "source_identity", path,
                  &f->source_identity) < 0)
    return -1;

  /* The importer makes a path of the name below a directory it chose. */
  if (f->role == VMFERRY_MANIFEST_TPM
      ? !vmferry_name_relpath_ok (f->name, VMFERRY_NAME_MAX_PARTS, 0)
      : !vmferry_name_ok (f->name, 0)) {
    snprintf (where, sizeof where, "%s.name", path);
    return fail_text (p, where, f->role == VMFERRY_MANIFEST_TPM
                      ? "not a safe relative path (components without '/', "
                      "not '.', '..' or starting with '.')"
                      : "not a safe file name (one component, no '/', not "
                      "starting with '.')", f->name, strlen (f->name));
  }
  if (!format_ok (f->format)) {
    snprintf (where, sizeof where, "%s.format", path);
    return fail_text (p, where, "not an image format name", f->format,
                      strlen (f->format));
  }

  f->size = get_u64 (o, "files[]", "size", NULL);
  f->virtual_size = get_u64 (o, "files[]", "virtual_size",
                             &f->has_virtual_size);
  if (parse_content (p, o, f, path) < 0)
    return -1;
  f->allocated = get_u64 (o, "files[]", "allocated", NULL);
  v = member (o, "files[]", "readonly");
  f->readonly = v && json_object_get_boolean (v);

  u = get_u64 (o, "files[]", "backing", &has_backing);
  snprintf (where, sizeof where, "%s.backing", path);
  if (has_backing) {
    if (f->guest)
      return fail (p, where, "guest content has no backing file");
    if (u >= i)
      return fail (p, where, "%" PRIu64 " is not the index of an earlier "
                   "file (a backing file comes first)", u);
    if (f->role != VMFERRY_MANIFEST_DISK && f->role != VMFERRY_MANIFEST_BACKING)
      return fail (p, where, "a %s file has no backing file",
                   vmferry_manifest_role_name (f->role));
    if (m->files[u].role != VMFERRY_MANIFEST_DISK &&
        m->files[u].role != VMFERRY_MANIFEST_BACKING)
      return fail (p, where, "file %" PRIu64 " is a %s file, not an image",
                   u, vmferry_manifest_role_name (m->files[u].role));
    if (m->files[u].guest)
      return fail (p, where, "file %" PRIu64 " is guest content, not an "
                   "image a file can be an overlay of", u);
    f->backing = (int) u;
  }
  snprintf (where, sizeof where, "%s.backing_format", path);
  if (has_backing && f->backing_format == NULL)
    return fail (p, where, "missing (the file has a backing file)");
  if (!has_backing && f->backing_format)
    return fail (p, where, "given, but the file has no backing file");
  if (f->backing_format && !format_ok (f->backing_format))
    return fail_text (p, where, "not an image format name", f->backing_format,
                      strlen (f->backing_format));

  if (f->pool || f->volume) {
    snprintf (where, sizeof where, "%s.%s", path, f->pool ? "pool" : "volume");
    if (f->role != VMFERRY_MANIFEST_DISK)
      return fail (p, where, "only a disk can be a volume of a pool");
    if (!f->pool || !f->volume)
      return fail (p, path, "pool and volume go together");
    if (!vmferry_name_ok (f->pool, 0))
      return fail_text (p, where, "not a safe pool name", f->pool,
                        strlen (f->pool));
    snprintf (where, sizeof where, "%s.volume", path);
    if (!vmferry_name_ok (f->volume, 0))
      return fail_text (p, where, "not a safe volume name", f->volume,
                        strlen (f->volume));
  }

  /* Two files of one name would land on one path. */
  for (size_t k = 0; k < i; k++) {
    const struct vmferry_manifest_file *g = &m->files[k];
    char what[64];
    if (strcmp (g->name, f->name) == 0) {
      snprintf (where, sizeof where, "%s.name", path);
      snprintf (what, sizeof what, "file %zu has the same name", k);
      return fail_text (p, where, what, f->name, strlen (f->name));
    }
    if (f->pool && g->pool && strcmp (f->pool, g->pool) == 0 &&
        strcmp (f->volume, g->volume) == 0) {
      snprintf (where, sizeof where, "%s.volume", path);
      snprintf (what, sizeof what, "file %zu is the same volume", k);
      return fail_text (p, where, what, f->volume, strlen (f->volume));
    }
  }
  return 0;
}

/* "format" and "version" first: a manifest of another version may differ
 * in anything else, and this is what its reader needs to be told.
 */
static int
check_version (const struct parse *p, json_object *root)
{
  json_object *v;
  const char *s;

  if (!json_object_object_get_ex (root, "format", &v) ||
      !json_object_is_type (v, json_type_string))
    return fail (p, "format", "missing or not a string (not a vmferry "
                 "manifest)");
  s = json_object_get_string (v);
  if (strcmp (s, VMFERRY_MANIFEST_FORMAT) != 0)
    return fail_text (p, "format", "not a vmferry manifest", s,
                      (size_t) json_object_get_string_len (v));
  if (!json_object_object_get_ex (root, "version", &v) ||
      !json_object_is_type (v, json_type_int))
    return fail (p, "version", "missing or not an integer");
  if (json_object_get_int64 (v) != VMFERRY_MANIFEST_VERSION)
    return fail (p, NULL, "version %" PRId64 " is not supported (this "
                 "vmferry reads version %d; written by a newer vmferry?)",
                 json_object_get_int64 (v), VMFERRY_MANIFEST_VERSION);
  return 0;
}

/* "domain.mac_map": what an importer changes in the guest's network
 * configurations, so each entry must be a MAC to a MAC, and no MAC may
 * be claimed twice.
 */
static int
parse_mac_map (const struct parse *p, json_object *dom,
               struct vmferry_manifest *m)
{
  json_object *arr = member (dom, "domain", "mac_map");
  size_t n = arr ? json_object_array_length (arr) : 0;
  char where[64];

  if (n > VMFERRY_MANIFEST_MAX_MACS)
    return fail (p, "domain.mac_map", "%zu entries, the limit is %d", n,
                 VMFERRY_MANIFEST_MAX_MACS);
  if (n == 0)
    return 0;
  m->macs = calloc (n, sizeof *m->macs);
  if (m->macs == NULL)
    return nomem (p);
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (arr, i);
    struct vmferry_manifest_mac *mac = &m->macs[i];

    snprintf (where, sizeof where, "domain.mac_map[%zu]", i);
    m->nr_macs = i + 1;
    if (check_members (p, e, "domain.mac_map[]", where, &mac->extra) < 0 ||
        get_string (p, e, "domain.mac_map[]", "old", where,
                    &mac->old_mac) < 0 ||
        get_string (p, e, "domain.mac_map[]", "new", where,
                    &mac->new_mac) < 0)
      return -1;
    if (!vmferry_manifest_mac_ok (mac->old_mac) ||
        !vmferry_manifest_mac_ok (mac->new_mac)) {
      const char *bad = vmferry_manifest_mac_ok (mac->old_mac)
                        ? mac->new_mac : mac->old_mac;
      snprintf (where + strlen (where), sizeof where - strlen (where), ".%s",
                bad == mac->old_mac ? "old" : "new");
      return fail_text (p, where, "not a MAC address (six pairs of "
                        "hexadecimal digits joined by ':')", bad,
                        strlen (bad));
    }
    if (strcasecmp (mac->old_mac, mac->new_mac) == 0)
      return fail (p, where, "old and new are the same MAC");
    for (size_t k = 0; k < i; k++)
      if (strcasecmp (m->macs[k].old_mac, mac->old_mac) == 0 ||
          strcasecmp (m->macs[k].new_mac, mac->new_mac) == 0)
        return fail (p, where, "repeats the %s MAC of entry %zu",
                     strcasecmp (m->macs[k].old_mac, mac->old_mac) == 0
                     ? "old" : "new", k);
  }
  return 0;
}

static int
parse_domain (const struct parse *p, json_object *root,
              struct vmferry_manifest *m)
{
  json_object *src = member (root, "", "source");
  json_object *dom = member (root, "", "domain");

  if (get_string (p, root, "", "tool", "", &m->tool) < 0 ||
      get_string (p, root, "", "created", "", &m->created) < 0)
    return -1;
  if (src) {
    if (check_members (p, src, "source", "source", &m->source_extra) < 0 ||
        get_string (p, src, "source", "host", "source", &m->source_host) < 0 ||
        get_string (p, src, "source", "uri", "source", &m->source_uri) < 0)
      return -1;
  }
  if (check_members (p, dom, "domain", "domain", &m->domain_extra) < 0 ||
      get_string (p, dom, "domain", "name", "domain", &m->domain_name) < 0 ||
      get_string (p, dom, "domain", "uuid", "domain", &m->domain_uuid) < 0)
    return -1;
  /* It names the resume state and, without --define, the TPM state. */
  if (!vmferry_name_ok (m->domain_name, VMFERRY_NAME_HIDDEN_OK))
    return fail_text (p, "domain.name", "not a name that can be part of a "
                      "path (no '/', not '.' or '..')", m->domain_name,
                      strlen (m->domain_name));
  if (!vmferry_name_uuid_ok (m->domain_uuid))
    return fail_text (p, "domain.uuid", "not a UUID in canonical form",
                      m->domain_uuid, strlen (m->domain_uuid));
  return parse_mac_map (p, dom, m);
}

static int
parse_totals (const struct parse *p, json_object *root,
              struct vmferry_manifest *m)
{
  json_object *t = member (root, "", "totals");
  uint64_t size = 0, alloc = 0, v;
  bool present;

  for (size_t i = 0; i < m->nr_files; i++) {
    /* Each is below 2^63, so two never overflow. */
    size += m->files[i].size;
    alloc += m->files[i].allocated;
    if (size > (uint64_t) INT64_MAX || alloc > (uint64_t) INT64_MAX)
      return fail (p, "files", "the files' sizes add up to more than "
                   "2^63 - 1 bytes");
  }
  if (t == NULL)
    return 0;
  if (check_members (p, t, "totals", "totals", &m->totals_extra) < 0)
    return -1;
  v = get_u64 (t, "totals", "size", &present);
  if (present && v != size)
    return fail (p, "totals.size", "is %" PRIu64 ", the files' sizes add up "
                 "to %" PRIu64, v, size);
  v = get_u64 (t, "totals", "allocated", &present);
  if (present && v != alloc)
    return fail (p, "totals.allocated", "is %" PRIu64 ", the files' "
                 "allocations add up to %" PRIu64, v, alloc);
  return 0;
}

/* The known string members of object O at table position PARENT are
 * neither empty nor longer than VMFERRY_MANIFEST_MAX_STRING (PATH for
 * messages).
 */
static int
check_string_lengths (const struct parse *p, json_object *o,
                      const char *parent, const char *path)
{
  json_object_object_foreach (o, key, v) {
    const struct vmferry_manifest_field *f = field_find (parent, key);
    size_t len;

    if (f == NULL || strcmp (f->type, "string") != 0)
      continue;
    len = (size_t) json_object_get_string_len (v);
    if (len == 0 || len > VMFERRY_MANIFEST_MAX_STRING)
      return fail (p, path, "%s: %s", key, len ? "longer than 4096 bytes"
                   : "empty");
  }
  return 0;
}

/* "guest": what inspection found (vmferry-export --inspect).  Its known
 * members are checked; the object is kept as its text, unknown members
 * inside it too, for the tools that show it.
 */
static int
parse_guest (const struct parse *p, json_object *root,
             struct vmferry_manifest *m)
{
  static const char *const arrays[] = { "os", "filesystems" };
  json_object *g = member (root, "", "guest");
  char *extra = NULL;
  const char *text;

  if (g == NULL)
    return 0;
  if (check_members (p, g, "guest", "guest", &extra) < 0)
    return -1;
  free (extra);
  for (size_t a = 0; a < 2; a++) {
    json_object *arr = member (g, "guest", arrays[a]);
    char parent[32], path[64];

    snprintf (parent, sizeof parent, "guest.%s[]", arrays[a]);
    for (size_t i = 0; i < json_object_array_length (arr); i++) {
      json_object *e = json_object_array_get_idx (arr, i);

      snprintf (path, sizeof path, "guest.%s[%zu]", arrays[a], i);
      if (check_members (p, e, parent, path, &extra) < 0)
        return -1;
      free (extra);
      if (check_string_lengths (p, e, parent, path) < 0)
        return -1;
    }
  }
  text = json_object_to_json_string_ext (g, JSON_C_TO_STRING_PLAIN |
                                         JSON_C_TO_STRING_NOSLASHESCAPE);
  if (text == NULL || (m->guest = strdup (text)) == NULL)
    return nomem (p);
  return 0;
}

static int
parse_tree (const struct parse *p, json_object *root,
            struct vmferry_manifest *m)
{
  json_object *files;
  size_t n;

  if (!json_object_is_type (root, json_type_object))
    return fail (p, NULL, "not a JSON object");
  if (check_version (p, root) < 0 || check_strings (p, root, "") < 0 ||
      check_members (p, root, "", "", &m->extra) < 0)
    return -1;
  m->version = VMFERRY_MANIFEST_VERSION;
  if (parse_domain (p, root, m) < 0)
    return -1;

  files = member (root, "", "files");
  n = json_object_array_length (files);
  if (n > VMFERRY_MAX_FILES)
    return fail (p, "files", "%zu files, the limit is %d", n,
                 VMFERRY_MAX_FILES);
  m->files = calloc (n ? n : 1, sizeof *m->files);
  if (m->files == NULL)
    return nomem (p);
  for (size_t i = 0; i < n; i++) {
    m->nr_files = i + 1;
    if (parse_file (p, json_object_array_get_idx (files, i), m, i) < 0)
      return -1;
  }
  if (parse_guest (p, root, m) < 0)
    return -1;
  return parse_totals (p, root, m);
}

/* json-c cuts a member name at an escaped NUL ("files\u0000x" reads as
 * "files"), after which no check can see it: the escape itself is
 * refused.  A backslash outside a string is not JSON, so every one starts
 * an escape.
 */
static bool
has_escaped_nul (const char *json, size_t len)
{
  for (size_t i = 0; i + 1 < len; i++) {
    if (json[i] != '\\')
      continue;
    if (i + 6 <= len && memcmp (json + i + 1, "u0000", 5) == 0)
      return true;
    i++;                        /* the escaped character */
  }
  return false;
}

int
vmferry_manifest_parse (const char *json, size_t len, const char *input_name,
                        struct vmferry_manifest **m_rtn)
{
  struct parse p = { .input = input_name };
  struct vmferry_manifest *m;
  json_tokener *tok;
  json_object *root;
  enum json_tokener_error err;
  int r = -1;

  *m_rtn = NULL;
  if (len > VMFERRY_MAX_METADATA)
    return fail (&p, NULL, "%zu bytes, more than the limit of %d", len,
                 VMFERRY_MAX_METADATA);
  if (has_escaped_nul (json, len))
    return fail (&p, NULL, "a string holds a NUL character (\\u0000)");
  tok = json_tokener_new_ex (VMFERRY_MANIFEST_MAX_DEPTH);
  if (tok == NULL)
    return nomem (&p);
  /* Strict: no comments, no trailing data; not UTF-8 is an error. */
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT |
                          JSON_TOKENER_VALIDATE_UTF8);
  root = json_tokener_parse_ex (tok, json, (int) len);
  err = json_tokener_get_error (tok);
  if (root == NULL || err != json_tokener_success ||
      json_tokener_get_parse_end (tok) != len) {
    if (err == json_tokener_success || err == json_tokener_continue)
      fail (&p, NULL, "not valid JSON: %s at byte %zu",
            err == json_tokener_continue ? "it ends early"
            : "data after the object", json_tokener_get_parse_end (tok));
    else
      fail (&p, NULL, "not valid JSON: %s at byte %zu",
            json_tokener_error_desc (err), json_tokener_get_parse_end (tok));
    goto out;
  }
  m = calloc (1, sizeof *m);
  if (m == NULL) {
    nomem (&p);
    goto out;
  }
  if (parse_tree (&p, root, m) < 0) {
    vmferry_manifest_free (m);
    goto out;
  }
  *m_rtn = m;
  r = 0;
 out:
  json_object_put (root);
  json_tokener_free (tok);
  return r;
}

/* ---- Writing ---- */

static int
add (json_object *o, const char *key, json_object *v)
{
  if (v == NULL || json_object_object_add (o, key, v) < 0) {
    json_object_put (v);
    return -1;
  }
  return 0;
}

static int
add_string (json_object *o, const char *key, const char *s)
{
  return s ? add (o, key, json_object_new_string (s)) : 0;
}

/* TEXT, a JSON object's text the parser kept, as an object; NULL with
 * the error set (WHAT names it) when it is none.
 */
static json_object *
object_of_text (const char *text, const char *what)
{
  json_tokener *tok = json_tokener_new_ex (VMFERRY_MANIFEST_MAX_DEPTH);
  json_object *x;

  x = tok ? json_tokener_parse_ex (tok, text, (int) strlen (text)) : NULL;
  json_tokener_free (tok);
  if (x == NULL || !json_object_is_type (x, json_type_object)) {
    json_object_put (x);
    vmferry_set_error ("manifest: %s is not a JSON object", what);
    return NULL;
  }
  return x;
}

/* Put back the members of EXTRA (a JSON object's text) that O does not
 * already have: known members come from the struct.
 */
static int
add_extra (json_object *o, const char *extra)
{
  json_object *x;
  int r = 0;

  if (extra == NULL)
    return 0;
  x = object_of_text (extra, "the extra members");
  if (x == NULL)
    return -1;
  json_object_object_foreach (x, key, v) {
    if (!json_object_object_get_ex (o, key, NULL) &&
        json_object_object_add (o, key, json_object_get (v)) < 0) {
      r = -1;
      break;
    }
  }
  json_object_put (x);
  if (r < 0)
    vmferry_set_error_errno (ENOMEM, "manifest");
  return r;
}

static json_object *
file_to_json (const struct vmferry_manifest_file *f)
{
  json_object *o = json_object_new_object ();
  int r = 0;

  if (o == NULL)
    return NULL;
  r |= add (o, "index", json_object_new_int64 (f->index));
  r |= add (o, "role",
            json_object_new_string (vmferry_manifest_role_name (f->role)));
  r |= add_string (o, "name", f->name);
  r |= add_string (o, "source_path", f->source_path);
  /* null for none, as vmferry has always written it. */
  if (r == 0 &&
      json_object_object_add (o, "target", f->target
                              ? json_object_new_string (f->target) : NULL) < 0)
    r = -1;
  r |= add_string (o, "format", f->format);
  if (f->guest)
    r |= add_string (o, "content", "guest");
  r |= add (o, "size", json_object_new_uint64 (f->size));
  if (f->has_virtual_size)
    r |= add (o, "virtual_size", json_object_new_uint64 (f->virtual_size));
  r |= add (o, "allocated", json_object_new_uint64 (f->allocated));
  if (f->backing >= 0)
    r |= add (o, "backing", json_object_new_int (f->backing));
  r |= add_string (o, "backing_format", f->backing_format);
  r |= add (o, "readonly", json_object_new_boolean (f->readonly));
  r |= add_string (o, "pool", f->pool);
  r |= add_string (o, "volume", f->volume);
  r |= add_string (o, "source_identity", f->source_identity);
  if (r != 0) {
    json_object_put (o);
    vmferry_set_error_errno (ENOMEM, "manifest");
    return NULL;
  }
  if (add_extra (o, f->extra) < 0) {
    json_object_put (o);
    return NULL;
  }
  return o;
}

static int
mac_map_to_json (json_object *dom, const struct vmferry_manifest *m)
{
  json_object *a = json_object_new_array ();

  if (a == NULL || add (dom, "mac_map", a) < 0)
    goto nomem;
  for (size_t i = 0; i < m->nr_macs; i++) {
    json_object *e = json_object_new_object ();

    if (e == NULL || json_object_array_add (a, e) < 0) {
      json_object_put (e);
      goto nomem;
    }
    if (add_string (e, "old", m->macs[i].old_mac) < 0 ||
        add_string (e, "new", m->macs[i].new_mac) < 0)
      goto nomem;
    if (add_extra (e, m->macs[i].extra) < 0)
      return -1;
  }
  return 0;
 nomem:
  vmferry_set_error_errno (ENOMEM, "manifest");
  return -1;
}

static json_object *
to_tree (const struct vmferry_manifest *m)
{
  json_object *o = json_object_new_object ();
  json_object *src = json_object_new_object ();
  json_object *dom = json_object_new_object ();
  json_object *files = json_object_new_array ();
  json_object *totals = json_object_new_object ();
  uint64_t size = 0, alloc = 0;
  int r = 0;

  if (!o || !src || !dom || !files || !totals) {
    r = -1;
    goto nomem;
  }
  r |= add (o, "format", json_object_new_string (VMFERRY_MANIFEST_FORMAT));
  r |= add (o, "version", json_object_new_int (VMFERRY_MANIFEST_VERSION));
  r |= add_string (o, "tool", m->tool);
  r |= add_string (o, "created", m->created);
  r |= add_string (src, "host", m->source_host);
  r |= add_string (src, "uri", m->source_uri);
  r |= add_string (dom, "name", m->domain_name);
  r |= add_string (dom, "uuid", m->domain_uuid);
  if (r != 0)
    goto nomem;
  if (m->nr_macs > 0 && mac_map_to_json (dom, m) < 0)
    goto fail;
  if (add_extra (src, m->source_extra) < 0 ||
      add_extra (dom, m->domain_extra) < 0)
    goto fail;
  /* A manifest read without "source" is written without it. */
  if (json_object_object_length (src) > 0)
    r = add (o, "source", src);
  else
    json_object_put (src);
  src = NULL;
  r |= add (o, "domain", dom);
  dom = NULL;
  if (r != 0)
    goto nomem;
  for (size_t i = 0; i < m->nr_files; i++) {
    json_object *f = file_to_json (&m->files[i]);
    if (f == NULL)
      goto fail;
    if (json_object_array_add (files, f) < 0) {
      json_object_put (f);
      goto nomem;
    }
    size += m->files[i].size;
    alloc += m->files[i].allocated;
  }
  r = add (o, "files", files);
  files = NULL;
  if (r == 0 && m->guest) {
    json_object *g = object_of_text (m->guest, "guest");
    if (g == NULL)
      goto fail;
    r = add (o, "guest", g);
  }
  r |= add (totals, "size", json_object_new_uint64 (size));
  r |= add (totals, "allocated", json_object_new_uint64 (alloc));
  if (r != 0)
    goto nomem;
  if (add_extra (totals, m->totals_extra) < 0)
    goto fail;
  r = add (o, "totals", totals);
  totals = NULL;
  if (r != 0)
    goto nomem;

  if (add_extra (o, m->extra) < 0)
    goto fail;
  return o;

 nomem:
  vmferry_set_error_errno (ENOMEM, "manifest");
 fail:
  json_object_put (o);
  json_object_put (src);
  json_object_put (dom);
  json_object_put (files);
  json_object_put (totals);
  return NULL;
}

char *
vmferry_manifest_to_json (const struct vmferry_manifest *m)
{
  json_object *o = to_tree (m);
  struct vmferry_manifest *check = NULL;
  const char *s;
  char *ret;

  if (o == NULL)
    return NULL;
  s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY |
                                      JSON_C_TO_STRING_SPACED |
                                      JSON_C_TO_STRING_NOSLASHESCAPE);
  ret = s ? strdup (s) : NULL;
  json_object_put (o);
  if (ret == NULL) {
    vmferry_set_error_errno (ENOMEM, "manifest");
    return NULL;
  }
  /* What readers refuse is not written: the same parser decides. */
  if (vmferry_manifest_parse (ret, strlen (ret), NULL, &check) < 0) {
    free (ret);
    return NULL;
  }
  vmferry_manifest_free (check);
  return ret;
}
