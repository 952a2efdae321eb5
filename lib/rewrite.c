/* vmferry: adapt a domain definition to its destination (see rewrite.h).
 *
 * The rules are kept per kind; applying them walks the document once per
 * kind in a fixed order (identity, emulator, machine, CPU, pools, paths,
 * networks, bridges, disk buses, dropped devices), so the result depends
 * only on the rule set, never on the order the options were given in.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libxml/tree.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "linediff.h"
#include "log.h"
#include "rewrite.h"
#include "stream.h"
#include "text.h"
#include "virt.h"
#include "xmlnode.h"
#include "xmlsource.h"

#define MAP_FILE_MAX (1024 * 1024)
#define MAP_LINE_MAX 4096

struct pair {
  char *old, *new;
  char *where;
};

struct pairs {
  struct pair *v;
  size_t n;
};

/* A file that became a pool volume: for the manifest. */
struct volmap {
  char *path, *pool, *volume;
};

struct vmferry_rewrite {
  struct pairs paths, pools, networks, bridges, buses;
  char *rename, *rename_where;
  bool new_uuid;
  char *uuid, *uuid_where;      /* given, or drawn once and then kept */
  bool new_macs;
  char *machine, *machine_where;
  char *cpu, *cpu_where;
  char *emulator, *emulator_where;
  char **drop;
  size_t nr_drop;
  bool in_map_file;
  /* Filled by vmferry_rewrite_doc for vmferry_rewrite_manifest. */
  struct volmap *vols;
  size_t nr_vols;
};

/* ---------------------------------------------------------------- rules */

struct vmferry_rewrite *
vmferry_rewrite_new (void)
{
  struct vmferry_rewrite *rw = calloc (1, sizeof *rw);

  if (rw == NULL)
    vmferry_set_error_errno (errno, "rewrite: calloc");
  return rw;
}

static void
pairs_free (struct pairs *p)
{
  for (size_t i = 0; i < p->n; i++) {
    free (p->v[i].old);
    free (p->v[i].new);
    free (p->v[i].where);
  }
  free (p->v);
  p->v = NULL;
  p->n = 0;
}

static void
vols_free (struct vmferry_rewrite *rw)
{
  for (size_t i = 0; i < rw->nr_vols; i++) {
    free (rw->vols[i].path);
    free (rw->vols[i].pool);
    free (rw->vols[i].volume);
  }
  free (rw->vols);
  rw->vols = NULL;
  rw->nr_vols = 0;
}

void
vmferry_rewrite_free (struct vmferry_rewrite *rw)
{
  if (rw == NULL)
    return;
  pairs_free (&rw->paths);
  pairs_free (&rw->pools);
  pairs_free (&rw->networks);
  pairs_free (&rw->bridges);
  pairs_free (&rw->buses);
  free (rw->rename);
  free (rw->rename_where);
  free (rw->uuid);
  free (rw->uuid_where);
  free (rw->machine);
  free (rw->machine_where);
  free (rw->cpu);
  free (rw->cpu_where);
  free (rw->emulator);
  free (rw->emulator_where);
  for (size_t i = 0; i < rw->nr_drop; i++)
    free (rw->drop[i]);
  free (rw->drop);
  vols_free (rw);
  free (rw);
}

bool
vmferry_rewrite_is_empty (const struct vmferry_rewrite *rw)
{
  return rw->paths.n == 0 && rw->pools.n == 0 && rw->networks.n == 0 &&
    rw->bridges.n == 0 && rw->buses.n == 0 && !rw->rename && !rw->new_uuid &&
    !rw->new_macs && !rw->machine && !rw->cpu && !rw->emulator &&
    rw->nr_drop == 0;
}

const char *
vmferry_rewrite_get_rename (const struct vmferry_rewrite *rw)
{
  return rw ? rw->rename : NULL;
}

bool
vmferry_rewrite_needs_dest (const struct vmferry_rewrite *rw)
{
  return (rw->machine && strcmp (rw->machine, "auto") == 0) ||
    (rw->emulator && strcmp (rw->emulator, "auto") == 0);
}

/* Printable, no control characters: values end up in XML attributes and
 * in messages.
 */
static bool
plain_text (const char *s)
{
  for (; *s; s++)
    if ((unsigned char) *s < 0x20 || *s == 0x7f)
      return false;
  return true;
}

/* An absolute path with no "." or ".." component; repeated and trailing
 * slashes are dropped (except for "/" itself).  Caller frees.
 */
static char *
normal_path (const char *where, const char *what, const char *p)
{
  char *ret, *q;

  if (p[0] != '/') {
    vmferry_set_error ("%s: %s '%s' is not an absolute path", where, what, p);
    return NULL;
  }
  if (!plain_text (p) || strlen (p) > 4096) {
    vmferry_set_error ("%s: %s: not a usable path", where, what);
    return NULL;
  }
  ret = malloc (strlen (p) + 1);
  if (ret == NULL) {
    vmferry_set_error_errno (errno, "%s", where);
    return NULL;
  }
  q = ret;
  while (*p) {
    const char *end;
    size_t len;
    while (*p == '/')
      p++;
    if (*p == '\0')
      break;
    end = strchrnul (p, '/');
    len = end - p;
    if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
      vmferry_set_error ("%s: %s: '.' and '..' are not allowed in a mapped path",
                         where, what);
      free (ret);
      return NULL;
    }
    *q++ = '/';
    memcpy (q, p, len);
    q += len;
    p = end;
  }
  if (q == ret)
    *q++ = '/';
  *q = '\0';
  return ret;
}

/* Is PATH equal to PREFIX or below it? */
static bool
path_under (const char *path, const char *prefix)
{
  size_t n = strlen (prefix);

  if (strcmp (prefix, "/") == 0)
    return path[0] == '/';
  return strncmp (path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* A name as libvirt allows for networks, bridges, pools, models: no
 * whitespace, no '/', no control characters.
 */
static bool
plain_name (const char *s, size_t max)
{
  size_t n = strlen (s);

  if (n == 0 || n > max)
    return false;
  for (; *s; s++)
    if ((unsigned char) *s <= 0x20 || *s == 0x7f || *s == '/' || *s == '=' ||
        *s == '\'' || *s == '"' || *s == '<' || *s == '>' || *s == '&')
      return false;
  return true;
}

static const char *const buses[] = {
  "virtio", "scsi", "sata", "ide", "usb", "xen", "fdc", "sd", "uml", NULL
};

static bool
known_bus (const char *b)
{
  for (size_t i = 0; buses[i]; i++)
    if (strcmp (b, buses[i]) == 0)
      return true;
  return false;
}

/* Split "OLD=NEW" (the first '='). */
static int
split_pair (const char *opt, const char *where, const char *value,
            char **old_rtn, char **new_rtn)
{
  const char *eq = value ? strchr (value, '=') : NULL;

  if (eq == NULL || eq == value || eq[1] == '\0') {
    vmferry_set_error ("%s: --%s wants OLD=NEW, not '%s'", where, opt,
                       value ? value : "");
    return -1;
  }
  *old_rtn = strndup (value, eq - value);
  *new_rtn = strdup (eq + 1);
  if (*old_rtn == NULL || *new_rtn == NULL) {
    free (*old_rtn);
    free (*new_rtn);
    vmferry_set_error_errno (ENOMEM, "%s", where);
    return -1;
  }
  return 0;
}

/* Does a rule's output match another rule's input again?  Then applying
 * the set twice would not give what applying it once gave.
 */
static bool
pair_chains (const struct pairs *p, const char *old, const char *new,
             bool paths, const struct pair **other_rtn)
{
  for (size_t i = 0; i <= p->n; i++) {
    const char *o = i < p->n ? p->v[i].old : old;
    const char *nw = i < p->n ? p->v[i].new : new;
    /* identity rules change nothing */
    if (strcmp (o, nw) == 0)
      continue;
    for (size_t k = 0; k <= p->n; k++) {
      const char *o2 = k < p->n ? p->v[k].old : old;
      const char *n2 = k < p->n ? p->v[k].new : new;
      if (strcmp (o2, n2) == 0)
        continue;
      /* Paths: what rule i produces overlaps what rule k takes. */
      if (paths ? (path_under (nw, o2) || path_under (o2, nw)) : strcmp (nw, o2) == 0) {
        *other_rtn = k < p->n ? &p->v[k] : (i < p->n ? &p->v[i] : NULL);
        return true;
      }
    }
  }
  return false;
}

static int
add_pair (struct pairs *p, const char *opt, const char *where,
          const char *value, bool paths)
{
  CLEANUP_FREE char *old = NULL;
  CLEANUP_FREE char *new = NULL;
  const struct pair *other = NULL;
  struct pair *v;

  if (split_pair (opt, where, value, &old, &new) == -1)
    return -1;
  if (paths) {
    char *o = normal_path (where, "--map-path: OLD", old), *n;
    if (o == NULL)
      return -1;
    free (old);
    old = o;
    n = normal_path (where, "--map-path: NEW", new);
    if (n == NULL)
      return -1;
    free (new);
    new = n;
  }
  else if (strcmp (opt, "pool") == 0) {
    /* SRC is a pool name or a directory; DST a pool name. */
    if (old[0] == '/') {
      char *o = normal_path (where, "--pool: SRC", old);
      if (o == NULL)
        return -1;
      free (old);
      old = o;
    }
    else if (!plain_name (old, 255)) {
      vmferry_set_error ("%s: --pool: '%s' is neither a pool name nor an "
                         "absolute directory", where, old);
      return -1;
    }
    if (!plain_name (new, 255)) {
      vmferry_set_error ("%s: --pool: '%s' is not a pool name", where, new);
      return -1;
    }
  }
  else if (strcmp (opt, "disk-bus") == 0) {
    if (!known_bus (old) || !known_bus (new)) {
      vmferry_set_error ("%s: --disk-bus: '%s' is not a disk bus (virtio, "
                         "scsi, sata, ide, usb, xen, fdc, sd, uml)", where,
                         known_bus (old) ? new : old);
      return -1;
    }
  }
  else {
    size_t max = strcmp (opt, "map-bridge") == 0 ? 15 : 255;
    if (!plain_name (old, max) || !plain_name (new, max)) {
      vmferry_set_error ("%s: --%s: '%s' is not a valid %s name", where, opt,
                         plain_name (old, max) ? new : old,
                         strcmp (opt, "map-bridge") == 0 ? "bridge" : "network");
      return -1;
    }
  }

  for (size_t i = 0; i < p->n; i++) {
    if (strcmp (p->v[i].old, old) != 0)
      continue;
    if (strcmp (p->v[i].new, new) == 0)
      return 0;                 /* said twice: one rule */
    vmferry_set_error ("%s: --%s %s=%s contradicts %s=%s (%s)", where, opt,
                       old, new, p->v[i].old, p->v[i].new, p->v[i].where);
    return -1;
  }
  if (pair_chains (p, old, new, paths, &other)) {
    if (other)
      vmferry_set_error ("%s: --%s %s=%s and %s=%s (%s) chain: what one "
                         "rewrites the other would rewrite again; give the "
                         "final value directly", where, opt, old, new,
                         other->old, other->new, other->where);
    else
      vmferry_set_error ("%s: --%s %s=%s: its result would be rewritten again "
                         "by the same rule; give a %s outside %s", where, opt,
                         old, new, paths ? "path" : "value", old);
    return -1;
  }

  v = reallocarray (p->v, p->n + 1, sizeof *p->v);
  if (v == NULL) {
    vmferry_set_error_errno (errno, "%s", where);
    return -1;
  }
  p->v = v;
  v = &p->v[p->n];
  v->where = strdup (where);
  if (v->where == NULL) {
    vmferry_set_error_errno (errno, "%s", where);
    return -1;
  }
  v->old = old;
  v->new = new;
  old = new = NULL;
  p->n++;
  return 0;
}

/* A rule with one value: repeating it is fine, changing it is not. */
static int
set_single (char **slot, char **slot_where, const char *opt, const char *where,
            const char *value)
{
  if (*slot) {
    if (strcmp (*slot, value) == 0)
      return 0;
    vmferry_set_error ("%s: --%s %s contradicts --%s %s (%s)", where, opt,
                       value, opt, *slot, *slot_where);
    return -1;
  }
  *slot = strdup (value);
  *slot_where = strdup (where);
  if (*slot == NULL || *slot_where == NULL) {
    vmferry_set_error_errno (errno, "%s", where);
    return -1;
  }
  return 0;
}

static const char *const cpu_modes[] = {
  "host-model", "host-passthrough", "maximum", NULL
};

static bool
is_cpu_mode (const char *s)
{
  for (size_t i = 0; cpu_modes[i]; i++)
    if (strcmp (s, cpu_modes[i]) == 0)
      return true;
  return false;
}

static bool
needs_value (const char *opt)
{
  return strcmp (opt, "new-macs") != 0 && strcmp (opt, "new-uuid") != 0;
}

int
vmferry_rewrite_add (struct vmferry_rewrite *rw, const char *opt,
                     const char *value, const char *where)
{
  char canon[37];

  if (rw == NULL || opt == NULL) {
    vmferry_set_error_errno (EINVAL, "rewrite: add");
    return -1;
  }
  if (where == NULL)
    where = opt;
  if (value && !plain_text (value)) {
    vmferry_set_error ("%s: --%s: the value has control characters", where, opt);
    return -1;
  }
  if (needs_value (opt) && (value == NULL || *value == '\0')) {
    vmferry_set_error ("%s: --%s needs a value", where, opt);
    return -1;
  }
  if (strcmp (opt, "new-macs") == 0 && value) {
    vmferry_set_error ("%s: --new-macs takes no value", where);
    return -1;
  }

  if (strcmp (opt, "map-path") == 0)
    return add_pair (&rw->paths, opt, where, value, true);
  if (strcmp (opt, "pool") == 0)
    return add_pair (&rw->pools, opt, where, value, false);
  if (strcmp (opt, "map-network") == 0)
    return add_pair (&rw->networks, opt, where, value, false);
  if (strcmp (opt, "map-bridge") == 0)
    return add_pair (&rw->bridges, opt, where, value, false);
  if (strcmp (opt, "disk-bus") == 0)
    return add_pair (&rw->buses, opt, where, value, false);
  if (strcmp (opt, "rename") == 0) {
    if (strchr (value, '/') || strlen (value) > 255) {
      vmferry_set_error ("%s: --rename: '%s' is not a valid domain name "
                         "(no '/', at most 255 bytes)", where, value);
      return -1;
    }
    return set_single (&rw->rename, &rw->rename_where, opt, where, value);
  }
  if (strcmp (opt, "new-uuid") == 0) {
    rw->new_uuid = true;
    if (value == NULL || *value == '\0')
      return 0;
    if (vmferry_uuid_canonical (value, canon) == -1) {
      vmferry_set_error ("%s: --new-uuid: '%s' is not a UUID", where, value);
      return -1;
    }
    return set_single (&rw->uuid, &rw->uuid_where, opt, where, canon);
  }
  if (strcmp (opt, "new-macs") == 0) {
    rw->new_macs = true;
    return 0;
  }
  if (strcmp (opt, "machine") == 0) {
    if (!plain_name (value, 255)) {
      vmferry_set_error ("%s: --machine: '%s' is not a machine type", where, value);
      return -1;
    }
    return set_single (&rw->machine, &rw->machine_where, opt, where, value);
  }
  if (strcmp (opt, "cpu") == 0) {
    if (!plain_name (value, 255)) {
      vmferry_set_error ("%s: --cpu: '%s' is neither a CPU mode (host-model, "
                         "host-passthrough, maximum) nor a model name", where,
                         value);
      return -1;
    }
    return set_single (&rw->cpu, &rw->cpu_where, opt, where, value);
  }
  if (strcmp (opt, "emulator") == 0) {
    if (strcmp (value, "auto") != 0) {
      CLEANUP_FREE char *p = normal_path (where, "--emulator", value);
      if (p == NULL)
        return -1;
      return set_single (&rw->emulator, &rw->emulator_where, opt, where, p);
    }
    return set_single (&rw->emulator, &rw->emulator_where, opt, where, value);
  }
  if (strcmp (opt, "drop-device") == 0) {
    char **v;
    for (const char *p = value; *p; p++)
      if (!islower ((unsigned char) *p)) {
        vmferry_set_error ("%s: --drop-device: '%s' is not a device kind "
                           "(an element of <devices>, e.g. hostdev)", where, value);
        return -1;
      }
    if (strcmp (value, "disk") == 0 || strcmp (value, "emulator") == 0) {
      vmferry_set_error ("%s: --drop-device %s: a domain's %ss cannot be "
                         "dropped by a rewrite", where, value, value);
      return -1;
    }
    for (size_t i = 0; i < rw->nr_drop; i++)
      if (strcmp (rw->drop[i], value) == 0)
        return 0;
    v = reallocarray (rw->drop, rw->nr_drop + 1, sizeof *v);
    if (v == NULL || (v[rw->nr_drop] = strdup (value)) == NULL) {
      if (v)
        rw->drop = v;
      vmferry_set_error_errno (ENOMEM, "%s", where);
      return -1;
    }
    rw->drop = v;
    rw->nr_drop++;
    return 0;
  }
  if (strcmp (opt, "map-file") == 0) {
    if (rw->in_map_file) {
      vmferry_set_error ("%s: a map file cannot read another map file", where);
      return -1;
    }
    return vmferry_rewrite_add_map_file (rw, value);
  }
  vmferry_set_error ("%s: unknown rewrite option '%s'", where, opt);
  return -1;
}

/* ---------------------------------------------------------------- map file */

static int
read_small_file (const char *path, char **buf_rtn, size_t *len_rtn)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  CLEANUP_FREE char *buf = NULL;
  struct stat st;
  size_t len = 0;

  if (fd < 0) {
    vmferry_set_error_errno (errno, "%s: cannot open map file", path);
    return -1;
  }
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode)) {
    vmferry_set_error ("%s: the map file is not a regular file", path);
    return -1;
  }
  buf = malloc (MAP_FILE_MAX + 1);
  if (buf == NULL) {
    vmferry_set_error_errno (errno, "%s", path);
    return -1;
  }
  for (;;) {
    ssize_t r = read (fd, buf + len, MAP_FILE_MAX + 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      vmferry_set_error_errno (errno, "%s: read", path);
      return -1;
    }
    if (r == 0)
      break;
    len += r;
    if (len > MAP_FILE_MAX) {
      vmferry_set_error ("%s: the map file is larger than %d bytes", path,
                         MAP_FILE_MAX);
      return -1;
    }
  }
  buf[len] = '\0';
  if (memchr (buf, '\0', len)) {
    vmferry_set_error ("%s: the map file is not text (it has a NUL byte)", path);
    return -1;
  }
  *buf_rtn = buf;
  *len_rtn = len;
  buf = NULL;
  return 0;
}

int
vmferry_rewrite_add_map_file (struct vmferry_rewrite *rw, const char *path)
{
  CLEANUP_FREE char *buf = NULL;
  struct vmferry_rewrite *tmp;
  size_t len;
  unsigned lineno = 0;
  char *line, *next;
  int ret = -1;

  if (read_small_file (path, &buf, &len) == -1)
    return -1;

  /* Rules go into a copy first, so a file with an error adds nothing. */
  tmp = vmferry_rewrite_new ();
  if (tmp == NULL)
    return -1;
  tmp->in_map_file = true;

  for (line = buf; line && *line; line = next) {
    char where[512];
    char *opt, *value, *end;

    lineno++;
    next = strchr (line, '\n');
    if (next)
      *next++ = '\0';
    if (strlen (line) > MAP_LINE_MAX) {
      vmferry_set_error ("%s:%u: line longer than %d bytes", path, lineno,
                         MAP_LINE_MAX);
      goto out;
    }
    /* Trim; a trailing \r too (a file written on Windows). */
    end = line + strlen (line);
    while (end > line && isspace ((unsigned char) end[-1]))
      *--end = '\0';
    while (isspace ((unsigned char) *line))
      line++;
    if (*line == '\0' || *line == '#')
      continue;
    snprintf (where, sizeof where, "%s:%u", path, lineno);
    opt = line;
    while (*line && !isspace ((unsigned char) *line))
      line++;
    if (*line) {
      *line++ = '\0';
      while (isspace ((unsigned char) *line))
        line++;
    }
    value = *line ? line : NULL;
    /* "--map-path" is accepted too, as one would paste it. */
    if (strncmp (opt, "--", 2) == 0)
      opt += 2;
    if (strcmp (opt, "map-file") == 0) {
      vmferry_set_error ("%s: a map file cannot read another map file", where);
      goto out;
    }
    if (vmferry_rewrite_add (tmp, opt, value, where) == -1)
      goto out;
    if (!needs_value (opt) && strcmp (opt, "new-uuid") != 0 && value) {
      vmferry_set_error ("%s: %s takes no value", where, opt);
      goto out;
    }
  }

  /* Merge: every rule again through the checks against the rules already
   * given on the command line.
   */
  {
    struct { struct pairs *p; const char *opt; } lists[] = {
      { &tmp->paths, "map-path" }, { &tmp->pools, "pool" },
      { &tmp->networks, "map-network" }, { &tmp->bridges, "map-bridge" },
      { &tmp->buses, "disk-bus" },
    };
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++)
      for (size_t i = 0; i < lists[l].p->n; i++) {
        const struct pair *pr = &lists[l].p->v[i];
        CLEANUP_FREE char *v = NULL;
        if (asprintf (&v, "%s=%s", pr->old, pr->new) < 0) {
          v = NULL;
          vmferry_set_error_errno (ENOMEM, "%s", path);
          goto out;
        }
        if (vmferry_rewrite_add (rw, lists[l].opt, v, pr->where) == -1)
          goto out;
      }
    if ((tmp->rename && vmferry_rewrite_add (rw, "rename", tmp->rename, tmp->rename_where) == -1) ||
        (tmp->new_uuid && vmferry_rewrite_add (rw, "new-uuid", tmp->uuid, tmp->uuid_where) == -1) ||
        (tmp->new_macs && vmferry_rewrite_add (rw, "new-macs", NULL, path) == -1) ||
        (tmp->machine && vmferry_rewrite_add (rw, "machine", tmp->machine, tmp->machine_where) == -1) ||
        (tmp->cpu && vmferry_rewrite_add (rw, "cpu", tmp->cpu, tmp->cpu_where) == -1) ||
        (tmp->emulator && vmferry_rewrite_add (rw, "emulator", tmp->emulator, tmp->emulator_where) == -1))
      goto out;
    for (size_t i = 0; i < tmp->nr_drop; i++)
      if (vmferry_rewrite_add (rw, "drop-device", tmp->drop[i], path) == -1)
        goto out;
  }
  ret = 0;
 out:
  vmferry_rewrite_free (tmp);
  return ret;
}

/* ---------------------------------------------------------------- paths */

/* Longest matching OLD wins; NULL when none matches. */
static const struct pair *
find_path_rule (const struct vmferry_rewrite *rw, const char *path)
{
  const struct pair *best = NULL;

  for (size_t i = 0; i < rw->paths.n; i++) {
    const struct pair *p = &rw->paths.v[i];
    if (path_under (path, p->old) &&
        (best == NULL || strlen (p->old) > strlen (best->old)))
      best = p;
  }
  return best;
}

char *
vmferry_rewrite_map_path (const struct vmferry_rewrite *rw, const char *path)
{
  const struct pair *p = path ? find_path_rule (rw, path) : NULL;
  char *ret;

  if (path == NULL) {
    vmferry_set_error_errno (EINVAL, "rewrite: map path");
    return NULL;
  }
  if (p == NULL)
    ret = strdup (path);
  else if (strcmp (p->old, "/") == 0)
    ret = strcmp (p->new, "/") == 0 ? strdup (path)
      : (asprintf (&ret, "%s%s", p->new, path) < 0 ? NULL : ret);
  else {
    const char *rest = path + strlen (p->old);
    if (strcmp (p->new, "/") == 0 && *rest == '/')
      ret = strdup (rest);
    else if (strcmp (p->new, "/") == 0 && *rest == '\0')
      ret = strdup ("/");
    else if (asprintf (&ret, "%s%s", p->new, rest) < 0)
      ret = NULL;
  }
  if (ret == NULL)
    vmferry_set_error_errno (ENOMEM, "rewrite: map path");
  return ret;
}

/* What every mapped or converted file is, before and after: to refuse
 * two files landing on one.
 */
struct dest_entry {
  char *before, *after;         /* "path:/x" or "volume:pool/vol" */
  char *label;
};

struct dests {
  struct dest_entry *v;
  size_t n;
};

static void
dests_free (struct dests *d)
{
  for (size_t i = 0; i < d->n; i++) {
    free (d->v[i].before);
    free (d->v[i].after);
    free (d->v[i].label);
  }
  free (d->v);
}

static int
dests_add (struct dests *d, const char *before, const char *after,
           const char *label)
{
  struct dest_entry *v = reallocarray (d->v, d->n + 1, sizeof *v);

  if (v == NULL) {
    vmferry_set_error_errno (errno, "rewrite");
    return -1;
  }
  d->v = v;
  v = &d->v[d->n];
  v->before = strdup (before);
  v->after = strdup (after);
  v->label = strdup (label);
  d->n++;
  if (!v->before || !v->after || !v->label) {
    vmferry_set_error_errno (ENOMEM, "rewrite");
    return -1;
  }
  return 0;
}

/* "path:/x" → "/x", "volume:p/v" → "volume p/v", "vol::p/v" → "p/v". */
static const char *
dest_text (const char *key, char *buf, size_t len)
{
  if (strncmp (key, "path:", 5) == 0)
    return key + 5;
  if (strncmp (key, "vol::", 5) == 0)
    snprintf (buf, len, "volume %s", key + 5);
  else
    snprintf (buf, len, "volume %s", key + 7);
  return buf;
}

static int
dests_check (const struct dests *d)
{
  char b1[512], b2[512], b3[512];

  for (size_t i = 0; i < d->n; i++)
    for (size_t k = i + 1; k < d->n; k++)
      if (strcmp (d->v[i].after, d->v[k].after) == 0 &&
          strcmp (d->v[i].before, d->v[k].before) != 0) {
        vmferry_set_error ("rewrite refused: %s (%s) and %s (%s) would both "
                           "become %s", d->v[i].label,
                           dest_text (d->v[i].before, b1, sizeof b1),
                           d->v[k].label, dest_text (d->v[k].before, b2, sizeof b2),
                           dest_text (d->v[k].after, b3, sizeof b3));
        return -1;
      }
  return 0;
}

/* Map the path in attribute NAME of N (or its text, NAME NULL). */
static int
map_node_path (struct vmferry_rewrite *rw, xmlNodePtr n, const char *name,
               const char *label, struct dests *d, int *changes)
{
  char *old = name ? vmferry_xml_attr (n, name) : vmferry_xml_text (n);
  CLEANUP_FREE char *new = NULL;
  CLEANUP_FREE char *b = NULL;
  CLEANUP_FREE char *a = NULL;
  int r = 0;

  if (old == NULL || old[0] != '/') {
    free (old);
    return 0;
  }
  new = vmferry_rewrite_map_path (rw, old);
  if (new == NULL ||
      asprintf (&b, "path:%s", old) < 0 || asprintf (&a, "path:%s", new) < 0) {
    free (old);
    vmferry_set_error_errno (ENOMEM, "rewrite");
    return -1;
  }
  if (d && dests_add (d, b, a, label) == -1)
    r = -1;
  else if (strcmp (old, new) != 0)
    r = name ? vmferry_xml_set_attr (n, name, new, changes) : vmferry_xml_set_text (n, new, changes);
  free (old);
  return r;
}

static const char *
disk_label (xmlNodePtr disk, char *buf, size_t len)
{
  char *dev = vmferry_xml_attr (vmferry_xml_child (disk, "target"), "dev");

  snprintf (buf, len, "disk %s", dev ? dev : "(no target)");
  free (dev);
  return buf;
}

/* A disk's own source and its backing chain. */
static int
map_disk_paths (struct vmferry_rewrite *rw, xmlNodePtr disk,
                struct dests *d, int *changes)
{
  char label[128];
  xmlNodePtr n = disk;

  disk_label (disk, label, sizeof label);
  while (n) {
    xmlNodePtr src = vmferry_xml_child (n, "source");
    char *type = vmferry_xml_attr (n, "type");
    const char *a = type && strcmp (type, "block") == 0 ? "dev"
      : (type == NULL || strcmp (type, "file") == 0) ? "file" : NULL;
    int r = 0;

    if (src && a)
      r = map_node_path (rw, src, a, label, n == disk ? d : NULL, changes);
    free (type);
    if (r == -1)
      return -1;
    n = vmferry_xml_child (n, "backingStore");
  }
  return 0;
}

static int
map_os_paths (struct vmferry_rewrite *rw, xmlNodePtr root, struct dests *d,
              int *changes)
{
  xmlNodePtr os = vmferry_xml_child (root, "os");
  xmlNodePtr nvram;

  if (os == NULL)
    return 0;
  if (map_node_path (rw, vmferry_xml_child (os, "loader"), NULL, "loader", NULL, changes) == -1 ||
      map_node_path (rw, vmferry_xml_child (os, "kernel"), NULL, "kernel", NULL, changes) == -1 ||
      map_node_path (rw, vmferry_xml_child (os, "initrd"), NULL, "initrd", NULL, changes) == -1 ||
      map_node_path (rw, vmferry_xml_child (os, "dtb"), NULL, "dtb", NULL, changes) == -1)
    return -1;
  nvram = vmferry_xml_child (os, "nvram");
  if (nvram == NULL)
    return 0;
  if (map_node_path (rw, nvram, "template", "nvram template", NULL, changes) == -1)
    return -1;
  if (vmferry_xml_attr_eq (nvram, "type", "file"))
    return map_node_path (rw, vmferry_xml_child (nvram, "source"), "file", "nvram", d, changes);
  if (vmferry_xml_attr_eq (nvram, "type", "block"))
    return map_node_path (rw, vmferry_xml_child (nvram, "source"), "dev", "nvram", d, changes);
  if (!xmlHasNsProp (nvram, BAD_CAST "type", NULL))
    return map_node_path (rw, nvram, NULL, "nvram", d, changes);
  return 0;
}

/* ---------------------------------------------------------------- pools */

static int
note_volume (struct vmferry_rewrite *rw, const char *path, const char *pool,
             const char *volume)
{
  struct volmap *v = reallocarray (rw->vols, rw->nr_vols + 1, sizeof *v);

  if (v == NULL) {
    vmferry_set_error_errno (errno, "rewrite");
    return -1;
  }
  rw->vols = v;
  v = &rw->vols[rw->nr_vols++];
  v->path = strdup (path);
  v->pool = strdup (pool);
  v->volume = strdup (volume);
  if (!v->path || !v->pool || !v->volume) {
    vmferry_set_error_errno (ENOMEM, "rewrite");
    return -1;
  }
  return 0;
}

/* type='volume' in pool SRC → pool DST; type='file' under directory SRC
 * → a volume of DST named as the file.  Returns 1 when the disk is (now)
 * a volume handled here, so path rules leave it alone.
 */
static int
pool_disk (struct vmferry_rewrite *rw, xmlNodePtr disk, struct dests *d,
           int *changes)
{
  xmlNodePtr src = vmferry_xml_child (disk, "source");
  char label[128];
  char *type = vmferry_xml_attr (disk, "type");
  bool is_volume = type && strcmp (type, "volume") == 0;
  bool is_file = type == NULL || strcmp (type, "file") == 0;

  free (type);
  if (src == NULL || rw->pools.n == 0 || (!is_volume && !is_file))
    return 0;
  disk_label (disk, label, sizeof label);

  if (is_volume) {
    char *pool = vmferry_xml_attr (src, "pool"), *vol = vmferry_xml_attr (src, "volume");
    CLEANUP_FREE char *b = NULL;
    CLEANUP_FREE char *a = NULL;
    int r = 0;
    for (size_t i = 0; pool && vol && i < rw->pools.n; i++) {
      const struct pair *p = &rw->pools.v[i];
      if (p->old[0] == '/' || strcmp (p->old, pool) != 0)
        continue;
      if (asprintf (&b, "vol::%s/%s", pool, vol) < 0 ||
          asprintf (&a, "volume:%s/%s", p->new, vol) < 0 ||
          dests_add (d, b, a, label) == -1 ||
          vmferry_xml_set_attr (src, "pool", p->new, changes) == -1)
        r = -1;
      else
        r = 1;
      break;
    }
    free (pool);
    free (vol);
    return r;
  }

  {
    char *path = vmferry_xml_attr (src, "file");
    const struct pair *best = NULL;
    CLEANUP_FREE char *b = NULL;
    CLEANUP_FREE char *a = NULL;
    const char *base;
    int r = 0;

    if (path == NULL)
      return 0;
    for (size_t i = 0; i < rw->pools.n; i++) {
      const struct pair *p = &rw->pools.v[i];
      if (p->old[0] == '/' && path_under (path, p->old) &&
          strcmp (path, p->old) != 0 &&
          (best == NULL || strlen (p->old) > strlen (best->old)))
        best = p;
    }
    if (best == NULL) {
      free (path);
      return 0;
    }
    /* A volume is one name in the pool's directory. */
    base = strrchr (path, '/') + 1;
    if (strchr (path + strlen (best->old) + 1, '/')) {
      vmferry_set_error ("%s: %s is in a subdirectory of %s: a pool volume is "
                         "a file directly in the pool", label, path, best->old);
      free (path);
      return -1;
    }
    if (asprintf (&b, "path:%s", path) < 0 ||
        asprintf (&a, "volume:%s/%s", best->new, base) < 0 ||
        dests_add (d, b, a, label) == -1 ||
        note_volume (rw, path, best->new, base) == -1 ||
        vmferry_xml_set_attr (disk, "type", "volume", changes) == -1 ||
        vmferry_xml_set_attr (src, "pool", best->new, changes) == -1 ||
        vmferry_xml_set_attr (src, "volume", base, changes) == -1)
      r = -1;
    else {
      vmferry_xml_unset_attr (src, "file", changes);
      r = 1;
    }
    free (path);
    return r;
  }
}

/* ---------------------------------------------------------------- identity */

static int
random_uuid (char out[37])
{
  unsigned char b[16];
  CLEANUP_CLOSE int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);

  if (fd < 0 || read (fd, b, sizeof b) != (ssize_t) sizeof b) {
    vmferry_set_error_errno (errno, "/dev/urandom: cannot draw a UUID");
    return -1;
  }
  b[6] = (b[6] & 0x0f) | 0x40;  /* version 4 */
  b[8] = (b[8] & 0x3f) | 0x80;  /* RFC 4122 variant */
  snprintf (out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
            b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return 0;
}

static int
rewrite_identity (struct vmferry_rewrite *rw, xmlDocPtr doc, int *changes)
{
  if (rw->rename) {
    CLEANUP_FREE char *old = vmferry_domain_get_name (doc);
    if (old == NULL || strcmp (old, rw->rename) != 0) {
      if (vmferry_domain_set_name (doc, rw->rename) == -1)
        return -1;
      (*changes)++;
    }
  }
  if (rw->new_uuid) {
    CLEANUP_FREE char *old = NULL;
    char canon[37];
    /* Drawn once per rule set: the XML and the manifest of one stream,
     * and every use by a caller, get the same new UUID.
     */
    if (rw->uuid == NULL) {
      if (random_uuid (canon) == -1)
        return -1;
      rw->uuid = strdup (canon);
      rw->uuid_where = strdup ("--new-uuid");
      if (rw->uuid == NULL || rw->uuid_where == NULL) {
        vmferry_set_error_errno (ENOMEM, "rewrite");
        return -1;
      }
    }
    old = vmferry_domain_get_uuid (doc);
    vmferry_clear_error ();
    if (old == NULL || vmferry_uuid_canonical (old, canon) == -1 || strcmp (canon, rw->uuid) != 0) {
      if (vmferry_domain_set_uuid (doc, rw->uuid) == -1)
        return -1;
      (*changes)++;
    }
  }
  return 0;
}

/* MAC i of the domain with UUID: 52:54:00 (QEMU's prefix, as libvirt
 * uses) and three bytes of a hash of the UUID and i.  A function of the
 * UUID, so rewriting again gives the same MACs, and a copy with a new
 * UUID gets new ones.
 */
static void
derived_mac (const char *uuid, unsigned i, char out[18])
{
  char buf[64];
  uint64_t h;

  snprintf (buf, sizeof buf, "%s/%u", uuid, i);
  h = XXH3_64bits (buf, strlen (buf));
  snprintf (out, 18, "52:54:00:%02x:%02x:%02x", (unsigned) (h & 0xff),
            (unsigned) ((h >> 8) & 0xff), (unsigned) ((h >> 16) & 0xff));
}

static int
rewrite_macs (xmlNodePtr root, xmlDocPtr doc, int *changes)
{
  CLEANUP_FREE char *uuid = vmferry_domain_get_uuid (doc);
  char canon[37];
  unsigned i = 0;

  if (uuid == NULL || vmferry_uuid_canonical (uuid, canon) == -1) {
    vmferry_set_error ("--new-macs: the domain has no valid UUID to derive "
                       "the MACs from (add --new-uuid)");
    return -1;
  }
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      xmlNodePtr mac;
      char m[18];
      if (!vmferry_xml_is_elem (n, "interface") || (mac = vmferry_xml_child (n, "mac")) == NULL)
        continue;
      derived_mac (canon, i++, m);
      if (vmferry_xml_set_attr (mac, "address", m, changes) == -1)
        return -1;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- dest caps */

static char *
xml_get_arch (xmlNodePtr root)
{
  return vmferry_xml_attr (vmferry_xml_child (vmferry_xml_child (root, "os"), "type"), "arch");
}

/* The destination's emulator for the domain's arch and virt type. */
static char *
dest_emulator (virConnectPtr dest, xmlNodePtr root, const char *what)
{
  char *arch = xml_get_arch (root), *virt = vmferry_xml_attr (root, "type");
  CLEANUP_FREE char *caps = virConnectGetDomainCapabilities (dest, NULL, arch, NULL, virt, 0);
  CLEANUP_XMLDOC xmlDocPtr d = NULL;
  char *path = NULL, *ret = NULL;

  if (caps == NULL) {
    vmferry_virt_error ("%s: the destination offers no emulator for arch %s, "
                        "type %s", what, arch ? arch : "(default)",
                        virt ? virt : "(default)");
    goto out;
  }
  d = xmlReadMemory (caps, strlen (caps), NULL, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
                     XML_PARSE_NOWARNING);
  path = d ? vmferry_xml_text (vmferry_xml_child (xmlDocGetRootElement (d), "path")) : NULL;
  if (path == NULL || path[0] != '/') {
    vmferry_set_error ("%s: the destination's domain capabilities name no "
                       "emulator", what);
    goto out;
  }
  ret = strdup (path);
 out:
  free (arch);
  free (virt);
  free (path);
  return ret;
}

/* The family a machine type belongs to, as the alias QEMU gives it. */
static const char *
machine_family (const char *m)
{
  if (strstr (m, "q35"))
    return "q35";
  if (strstr (m, "i440fx") || strcmp (m, "pc") == 0)
    return "pc";
  if (strncmp (m, "virt", 4) == 0)
    return "virt";
  if (strncmp (m, "pseries", 7) == 0)
    return "pseries";
  if (strncmp (m, "s390-ccw-virtio", 15) == 0)
    return "s390-ccw-virtio";
  return NULL;
}

/* The machine types the destination offers for ARCH (and virt type), as
 * pairs (name, canonical) into *V.  Caller frees with vmferry_strv_free.
 */
static int
dest_machines (virConnectPtr dest, const char *arch, const char *virt,
               char ***names_rtn, char ***canon_rtn, size_t *n_rtn)
{
  CLEANUP_FREE char *caps = virConnectGetCapabilities (dest);
  CLEANUP_XMLDOC xmlDocPtr d = NULL;
  char **names = NULL, **canon = NULL;
  size_t n = 0;

  if (caps == NULL) {
    vmferry_virt_error ("destination: cannot read its capabilities");
    return -1;
  }
  d = xmlReadMemory (caps, strlen (caps), NULL, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
                     XML_PARSE_NOWARNING);
  if (d == NULL) {
    vmferry_set_error ("destination: cannot parse its capabilities");
    return -1;
  }
  for (xmlNodePtr g = xmlDocGetRootElement (d)->children; g; g = g->next) {
    xmlNodePtr a = vmferry_xml_child (g, "arch");
    if (!vmferry_xml_is_elem (g, "guest") || a == NULL || (arch && !vmferry_xml_attr_eq (a, "name", arch)))
      continue;
    /* Machines of the arch, and those of the virt type's <domain>. */
    for (xmlNodePtr parent = a; parent; ) {
      for (xmlNodePtr m = parent->children; m; m = m->next) {
        char *t, *c;
        void *p1, *p2;
        if (!vmferry_xml_is_elem (m, "machine"))
          continue;
        t = vmferry_xml_text (m);
        c = vmferry_xml_attr (m, "canonical");
        p1 = reallocarray (names, n + 2, sizeof *names);
        if (p1)
          names = p1;
        p2 = reallocarray (canon, n + 2, sizeof *canon);
        if (p2)
          canon = p2;
        if (!p1 || !p2 || !t) {
          free (t);
          free (c);
          goto nomem;
        }
        names[n] = strdup (t);
        canon[n] = strdup (c ? c : t);
        names[n + 1] = canon[n + 1] = NULL;
        n++;
        free (t);
        free (c);
      }
      if (parent != a)
        break;
      parent = NULL;
      for (xmlNodePtr dm = a->children; dm; dm = dm->next)
        if (vmferry_xml_is_elem (dm, "domain") && virt && vmferry_xml_attr_eq (dm, "type", virt)) {
          parent = dm;
          break;
        }
    }
    break;
  }
  *names_rtn = names;
  *canon_rtn = canon;
  *n_rtn = n;
  return 0;
 nomem:
  vmferry_strv_free (names);
  vmferry_strv_free (canon);
  vmferry_set_error_errno (ENOMEM, "destination capabilities");
  return -1;
}

/* --machine auto: keep the machine when the destination offers it, else
 * the destination's current machine of the same family.
 */
static char *
auto_machine (virConnectPtr dest, xmlNodePtr root, const char *current)
{
  char *arch = xml_get_arch (root), *virt = vmferry_xml_attr (root, "type");
  CLEANUP_STRV_FREE char **names = NULL;
  CLEANUP_STRV_FREE char **canon = NULL;
  size_t n = 0;
  const char *fam = current ? machine_family (current) : NULL;
  char *ret = NULL;

  if (dest_machines (dest, arch, virt, &names, &canon, &n) == -1)
    goto out;
  for (size_t i = 0; current && i < n; i++)
    if (strcmp (names[i], current) == 0) {
      ret = strdup (current);
      goto out;
    }
  if (fam == NULL) {
    vmferry_set_error ("--machine auto: the destination does not offer "
                       "machine type '%s' and vmferry knows no family for "
                       "it; give --machine TYPE", current ? current : "(none)");
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    if (strcmp (names[i], fam) == 0) {
      ret = strdup (canon[i]);
      goto out;
    }
  vmferry_set_error ("--machine auto: the destination offers no '%s' machine "
                     "for arch %s", fam, arch ? arch : "(default)");
 out:
  free (arch);
  free (virt);
  return ret;
}

/* ---------------------------------------------------------------- machine, CPU, emulator */

static int
rewrite_emulator (struct vmferry_rewrite *rw, xmlNodePtr root,
                  virConnectPtr dest, int *changes)
{
  CLEANUP_FREE char *value = NULL;
  xmlNodePtr devs = vmferry_xml_child (root, "devices"), em;

  if (rw->emulator == NULL)
    return 0;
  if (strcmp (rw->emulator, "auto") == 0) {
    if (dest == NULL) {
      vmferry_set_error ("--emulator auto needs a destination (-c URI)");
      return -1;
    }
    if ((value = dest_emulator (dest, root, "--emulator auto")) == NULL)
      return -1;
  }
  else if ((value = strdup (rw->emulator)) == NULL) {
    vmferry_set_error_errno (ENOMEM, "rewrite");
    return -1;
  }
  if (devs == NULL) {
    vmferry_set_error ("--emulator: the domain has no <devices>");
    return -1;
  }
  em = vmferry_xml_child (devs, "emulator");
  if (em == NULL) {
    em = xmlNewDocNode (root->doc, NULL, BAD_CAST "emulator", NULL);
    if (em == NULL || vmferry_xml_prepend_child (devs, em) == -1) {
      xmlFreeNode (em);
      vmferry_set_error_errno (ENOMEM, "rewrite");
      return -1;
    }
  }
  return vmferry_xml_set_text (em, value, changes);
}

static int
rewrite_machine (struct vmferry_rewrite *rw, xmlNodePtr root,
                 virConnectPtr dest, int *changes)
{
  xmlNodePtr type = vmferry_xml_child (vmferry_xml_child (root, "os"), "type");
  char *cur;
  CLEANUP_FREE char *value = NULL;

  if (rw->machine == NULL)
    return 0;
  if (type == NULL) {
    vmferry_set_error ("--machine: the domain has no <os><type>");
    return -1;
  }
  {
    char *ostype = vmferry_xml_text (type);
    bool hvm = ostype && strcmp (ostype, "hvm") == 0;
    if (!hvm)
      vmferry_set_error ("--machine: only hvm guests have a machine type "
                         "(this one is '%s')", ostype ? ostype : "");
    free (ostype);
    if (!hvm)
      return -1;
  }
  cur = vmferry_xml_attr (type, "machine");
  if (strcmp (rw->machine, "auto") == 0) {
    if (dest == NULL) {
      free (cur);
      vmferry_set_error ("--machine auto needs a destination (-c URI)");
      return -1;
    }
    value = auto_machine (dest, root, cur);
  }
  else
    value = strdup (rw->machine);
  free (cur);
  if (value == NULL)
    return -1;
  return vmferry_xml_set_attr (type, "machine", value, changes);
}

static int
rewrite_cpu (struct vmferry_rewrite *rw, xmlNodePtr root, int *changes)
{
  xmlNodePtr cpu = vmferry_xml_child (root, "cpu"), n, next;
  bool mode = rw->cpu && is_cpu_mode (rw->cpu);

  if (rw->cpu == NULL)
    return 0;
  if (cpu == NULL) {
    xmlNodePtr after = vmferry_xml_child (root, "vcpu");
    cpu = xmlNewDocNode (root->doc, NULL, BAD_CAST "cpu", NULL);
    if (cpu == NULL ||
        (after ? vmferry_xml_insert_after (after, cpu) : vmferry_xml_append_child (root, cpu)) == -1) {
      xmlFreeNode (cpu);
      vmferry_set_error_errno (ENOMEM, "rewrite");
      return -1;
    }
    (*changes)++;
  }
  /* The model and what it requires are what the rule replaces; topology,
   * NUMA, cache and disabled features stay.
   */
  for (n = cpu->children; n; n = next) {
    next = n->next;
    if (vmferry_xml_is_elem (n, "vendor") || (mode && vmferry_xml_is_elem (n, "model"))) {
      vmferry_xml_remove (n);
      (*changes)++;
    }
    else if (vmferry_xml_is_elem (n, "feature")) {
      char *pol = vmferry_xml_attr (n, "policy");
      bool adds = pol == NULL || strcmp (pol, "require") == 0 ||
        strcmp (pol, "force") == 0;
      free (pol);
      if (adds) {
        vmferry_xml_remove (n);
        (*changes)++;
      }
    }
  }
  if (mode) {
    vmferry_xml_unset_attr (cpu, "match", changes);
    return vmferry_xml_set_attr (cpu, "mode", rw->cpu, changes);
  }
  if (vmferry_xml_set_attr (cpu, "mode", "custom", changes) == -1)
    return -1;
  if (!xmlHasNsProp (cpu, BAD_CAST "match", NULL) &&
      vmferry_xml_set_attr (cpu, "match", "exact", changes) == -1)
    return -1;
  n = vmferry_xml_child (cpu, "model");
  if (n == NULL) {
    n = xmlNewDocNode (root->doc, NULL, BAD_CAST "model", NULL);
    if (n == NULL || xmlAddChild (cpu, n) == NULL) {
      xmlFreeNode (n);
      vmferry_set_error_errno (ENOMEM, "rewrite");
      return -1;
    }
    if (vmferry_xml_set_attr (n, "fallback", "forbid", changes) == -1)
      return -1;
  }
  return vmferry_xml_set_text (n, rw->cpu, changes);
}

/* ---------------------------------------------------------------- networks */

static int
rewrite_interfaces (struct vmferry_rewrite *rw, xmlNodePtr root, int *changes)
{
  if (rw->networks.n == 0 && rw->bridges.n == 0)
    return 0;
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      xmlNodePtr src = vmferry_xml_child (n, "source");
      const struct pairs *p;
      const char *a;
      char *v;
      if (!vmferry_xml_is_elem (n, "interface") || src == NULL)
        continue;
      if (vmferry_xml_attr_eq (n, "type", "network"))
        p = &rw->networks, a = "network";
      else if (vmferry_xml_attr_eq (n, "type", "bridge"))
        p = &rw->bridges, a = "bridge";
      else
        continue;
      v = vmferry_xml_attr (src, a);
      for (size_t i = 0; v && i < p->n; i++)
        if (strcmp (p->v[i].old, v) == 0) {
          if (vmferry_xml_set_attr (src, a, p->v[i].new, changes) == -1) {
            free (v);
            return -1;
          }
          break;
        }
      free (v);
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- disk bus */

static const char *
bus_prefix (const char *bus)
{
  static const struct { const char *bus, *prefix; } t[] = {
    { "virtio", "vd" }, { "scsi", "sd" }, { "sata", "sd" }, { "usb", "sd" },
    { "sd", "sd" }, { "ide", "hd" }, { "xen", "xvd" }, { "fdc", "fd" },
    { "uml", "ubd" },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp (t[i].bus, bus) == 0)
      return t[i].prefix;
  return NULL;
}

/* "a".."z", "aa".."zz", ... as libvirt names disks. */
static void
disk_suffix (unsigned i, char *out, size_t len)
{
  char tmp[16];
  size_t n = 0;

  i++;
  while (i > 0 && n < sizeof tmp - 1) {
    i--;
    tmp[n++] = 'a' + i % 26;
    i /= 26;
  }
  for (size_t k = 0; k < n && k < len - 1; k++)
    out[k] = tmp[n - 1 - k];
  out[n < len - 1 ? n : len - 1] = '\0';
}

static bool
dev_used (xmlNodePtr root, const char *dev, xmlNodePtr except)
{
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next)
      if (vmferry_xml_is_elem (n, "disk") && n != except && vmferry_xml_attr_eq (vmferry_xml_child (n, "target"), "dev", dev))
        return true;
  }
  return false;
}

static int
rewrite_disk_buses (struct vmferry_rewrite *rw, xmlNodePtr root, int *changes)
{
  bool want_scsi = false;

  if (rw->buses.n == 0)
    return 0;
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      xmlNodePtr tgt = vmferry_xml_child (n, "target"), addr;
      char *bus, *dev;
      const struct pair *rule = NULL;
      const char *op, *np;

      if (!vmferry_xml_is_elem (n, "disk") || tgt == NULL)
        continue;
      bus = vmferry_xml_attr (tgt, "bus");
      for (size_t i = 0; bus && i < rw->buses.n; i++)
        if (strcmp (rw->buses.v[i].old, bus) == 0)
          rule = &rw->buses.v[i];
      free (bus);
      if (rule == NULL || strcmp (rule->old, rule->new) == 0)
        continue;
      if (vmferry_xml_set_attr (tgt, "bus", rule->new, changes) == -1)
        return -1;
      if (strcmp (rule->new, "scsi") == 0)
        want_scsi = true;
      /* The old bus's address means nothing on the new one. */
      if ((addr = vmferry_xml_child (n, "address")) != NULL) {
        vmferry_xml_remove (addr);
        (*changes)++;
      }
      op = bus_prefix (rule->old);
      np = bus_prefix (rule->new);
      dev = vmferry_xml_attr (tgt, "dev");
      if (dev && op && np && strcmp (op, np) != 0) {
        char newdev[32], suf[16];
        for (unsigned i = 0; i < 18278; i++) {
          disk_suffix (i, suf, sizeof suf);
          snprintf (newdev, sizeof newdev, "%s%s", np, suf);
          if (!dev_used (root, newdev, n))
            break;
        }
        if (vmferry_xml_set_attr (tgt, "dev", newdev, changes) == -1) {
          free (dev);
          return -1;
        }
      }
      free (dev);
    }
  }

  /* A SCSI disk needs a SCSI controller; virtio-scsi is the one a modern
   * guest drives (libvirt's default would be an emulated LSI card).
   */
  if (want_scsi) {
    xmlNodePtr devs = vmferry_xml_child (root, "devices"), ctl;
    for (xmlNodePtr n = devs->children; n; n = n->next)
      if (vmferry_xml_is_elem (n, "controller") && vmferry_xml_attr_eq (n, "type", "scsi"))
        return 0;
    ctl = xmlNewDocNode (root->doc, NULL, BAD_CAST "controller", NULL);
    if (ctl == NULL || xmlSetProp (ctl, BAD_CAST "type", BAD_CAST "scsi") == NULL ||
        xmlSetProp (ctl, BAD_CAST "index", BAD_CAST "0") == NULL ||
        xmlSetProp (ctl, BAD_CAST "model", BAD_CAST "virtio-scsi") == NULL ||
        vmferry_xml_append_child (devs, ctl) == -1) {
      xmlFreeNode (ctl);
      vmferry_set_error_errno (ENOMEM, "rewrite");
      return -1;
    }
    (*changes)++;
  }
  return 0;
}

/* ---------------------------------------------------------------- drop */

static int
drop_devices (struct vmferry_rewrite *rw, xmlNodePtr root, int *changes)
{
  for (size_t k = 0; k < rw->nr_drop; k++)
    for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
      xmlNodePtr n, next;
      if (!vmferry_xml_is_elem (devs, "devices"))
        continue;
      for (n = devs->children; n; n = next) {
        next = n->next;
        if (vmferry_xml_is_elem (n, rw->drop[k])) {
          vmferry_xml_remove (n);
          (*changes)++;
        }
      }
    }
  return 0;
}

/* ---------------------------------------------------------------- apply */

int
vmferry_rewrite_doc (struct vmferry_rewrite *rw, xmlDocPtr doc,
                     virConnectPtr dest)
{
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  struct dests d = { 0 };
  int changes = 0, ret = -1;

  if (rw == NULL || root == NULL || !vmferry_xml_is_elem (root, "domain")) {
    vmferry_set_error_errno (EINVAL, "rewrite: no <domain> document");
    return -1;
  }
  if (vmferry_rewrite_needs_dest (rw) && dest == NULL) {
    vmferry_set_error ("--%s auto needs a destination to choose from (-c URI)",
                       rw->machine && strcmp (rw->machine, "auto") == 0
                       ? "machine" : "emulator");
    return -1;
  }
  vols_free (rw);

  if (rewrite_identity (rw, doc, &changes) == -1 ||
      (rw->new_macs && rewrite_macs (root, doc, &changes) == -1) ||
      rewrite_emulator (rw, root, dest, &changes) == -1 ||
      rewrite_machine (rw, root, dest, &changes) == -1 ||
      rewrite_cpu (rw, root, &changes) == -1)
    goto out;

  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      int r;
      if (vmferry_xml_is_elem (n, "disk")) {
        if ((r = pool_disk (rw, n, &d, &changes)) == -1)
          goto out;
        if (r == 0 && map_disk_paths (rw, n, &d, &changes) == -1)
          goto out;
        if (r == 1) {
          /* The backing chain of a volume keeps its file paths. */
          xmlNodePtr bs = vmferry_xml_child (n, "backingStore");
          if (bs && map_disk_paths (rw, bs, NULL, &changes) == -1)
            goto out;
        }
      }
      else if (vmferry_xml_is_elem (n, "tpm")) {
        xmlNodePtr be = vmferry_xml_child (n, "backend");
        if (map_node_path (rw, vmferry_xml_child (be, "source"), "path", "tpm", NULL, &changes) == -1)
          goto out;
      }
    }
  }
  if (map_os_paths (rw, root, &d, &changes) == -1 ||
      dests_check (&d) == -1 ||
      rewrite_interfaces (rw, root, &changes) == -1 ||
      rewrite_disk_buses (rw, root, &changes) == -1 ||
      drop_devices (rw, root, &changes) == -1)
    goto out;
  ret = changes;
 out:
  dests_free (&d);
  return ret;
}

/* The source of DOC, parsed from XML[0..LEN), so that the rewritten
 * definition keeps its text wherever nothing changed; NULL (said in
 * debug messages) when the text cannot be tied to the tree, and the
 * result is then written by libxml2.
 */
static struct vmferry_xml_source *
source_of (xmlDocPtr doc, const char *xml, size_t len, const char *name)
{
  struct vmferry_xml_source *src = vmferry_xml_source_new (doc, xml, len);

  if (src == NULL) {
    vmferry_debug ("%s: %s: written as libxml2 serialises it", name,
                   vmferry_get_error ());
    vmferry_clear_error ();
  }
  return src;
}

/* DOC as text: spliced into its source when there is one. */
static char *
doc_text (const struct vmferry_xml_source *src, xmlDocPtr doc)
{
  return src ? vmferry_xml_source_splice (src, doc, NULL)
    : vmferry_domain_to_string (doc);
}

char *
vmferry_rewrite_xml (struct vmferry_rewrite *rw, const char *xml, size_t len,
                     const char *name, virConnectPtr dest, bool *changed_rtn)
{
  CLEANUP_XMLDOC xmlDocPtr doc = vmferry_domain_parse (xml, len, name);
  struct vmferry_xml_source *src;
  char *out;
  int r;

  if (doc == NULL)
    return NULL;
  src = source_of (doc, xml, len, name ? name : "domain XML");
  r = vmferry_rewrite_doc (rw, doc, dest);
  if (r < 0) {
    vmferry_xml_source_free (src);
    vmferry_prefix_error ("%s", name ? name : "domain XML");
    return NULL;
  }
  /* Nothing changed: the input, byte for byte. */
  out = r == 0 ? strndup (xml, len) : doc_text (src, doc);
  vmferry_xml_source_free (src);
  if (out == NULL && r == 0)
    vmferry_set_error_errno (errno, "%s", name ? name : "domain XML");
  if (out && changed_rtn)
    *changed_rtn = r > 0 && !(strlen (out) == len && memcmp (out, xml, len) == 0);
  return out;
}

/* ---------------------------------------------------------------- manifest */

static const char *
jstr (json_object *o, const char *key)
{
  json_object *v;

  if (!json_object_object_get_ex (o, key, &v) || !json_object_is_type (v, json_type_string))
    return NULL;
  return json_object_get_string (v);
}

static int
jset (json_object *o, const char *key, const char *value, bool *changed)
{
  const char *old = jstr (o, key);
  json_object *v;

  if (old && strcmp (old, value) == 0)
    return 0;
  v = json_object_new_string (value);
  if (v == NULL || json_object_object_add (o, key, v) < 0) {
    json_object_put (v);
    vmferry_set_error_errno (ENOMEM, "manifest");
    return -1;
  }
  *changed = true;
  return 0;
}

char *
vmferry_rewrite_manifest (struct vmferry_rewrite *rw, const char *json,
                          size_t len, const char *new_name,
                          const char *new_uuid, bool *changed_rtn)
{
  json_tokener *tok = json_tokener_new_ex (32);
  json_object *m = NULL, *files, *dom;
  bool changed = false;
  char *ret = NULL;
  size_t n;

  if (tok == NULL) {
    vmferry_set_error_errno (ENOMEM, "manifest");
    return NULL;
  }
  m = json_tokener_parse_ex (tok, json, (int) len);
  if (m == NULL || json_tokener_get_error (tok) != json_tokener_success ||
      !json_object_is_type (m, json_type_object) ||
      !json_object_object_get_ex (m, "files", &files) ||
      !json_object_is_type (files, json_type_array)) {
    vmferry_set_error ("manifest: not a vmferry manifest (bad JSON or no files)");
    goto out;
  }
  if (json_object_object_get_ex (m, "domain", &dom) &&
      json_object_is_type (dom, json_type_object)) {
    if ((new_name && jset (dom, "name", new_name, &changed) == -1) ||
        (new_uuid && jset (dom, "uuid", new_uuid, &changed) == -1))
      goto out;
  }
  n = json_object_array_length (files);
  for (size_t i = 0; i < n; i++) {
    json_object *f = json_object_array_get_idx (files, i);
    const char *role = jstr (f, "role"), *src = jstr (f, "source_path");
    CLEANUP_FREE char *mapped = NULL;
    bool vol = false;

    if (!json_object_is_type (f, json_type_object) || role == NULL || src == NULL)
      continue;
    if (strcmp (role, "tpm") == 0)
      continue;
    for (size_t k = 0; k < rw->nr_vols; k++)
      if (strcmp (rw->vols[k].path, src) == 0) {
        if (jset (f, "pool", rw->vols[k].pool, &changed) == -1 ||
            jset (f, "volume", rw->vols[k].volume, &changed) == -1)
          goto out;
        vol = true;
        break;
      }
    if (vol || src[0] != '/')
      continue;
    mapped = vmferry_rewrite_map_path (rw, src);
    if (mapped == NULL)
      goto out;
    if (strcmp (mapped, src) != 0) {
      const char *base = strrchr (mapped, '/') + 1;
      if (*base == '\0') {
        vmferry_set_error ("manifest: file %zu: --map-path makes %s a "
                           "directory (%s)", i, src, mapped);
        goto out;
      }
      /* jset may free SRC (it lives in the object it replaces). */
      if (jset (f, "name", base, &changed) == -1 ||
          jset (f, "source_path", mapped, &changed) == -1)
        goto out;
    }
  }
  /* The importer places files by name: two of one name would collide. */
  for (size_t i = 0; i < n; i++)
    for (size_t k = i + 1; k < n; k++) {
      json_object *a = json_object_array_get_idx (files, i);
      json_object *b = json_object_array_get_idx (files, k);
      const char *na = jstr (a, "name"), *nb = jstr (b, "name");
      const char *ra = jstr (a, "role"), *rb = jstr (b, "role");
      if (na && nb && ra && rb && strcmp (ra, "tpm") != 0 &&
          strcmp (rb, "tpm") != 0 && strcmp (na, nb) == 0) {
        vmferry_set_error ("rewrite refused: files %zu and %zu of the stream "
                           "would both be named %s", i, k, na);
        goto out;
      }
    }
  if (!changed) {
    ret = strndup (json, len);
  }
  else
    ret = strdup (json_object_to_json_string_ext (m, JSON_C_TO_STRING_PRETTY |
                                                  JSON_C_TO_STRING_SPACED |
                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
  if (ret == NULL)
    vmferry_set_error_errno (ENOMEM, "manifest");
  if (changed_rtn)
    *changed_rtn = changed;
 out:
  json_object_put (m);
  json_tokener_free (tok);
  return ret;
}

/* ---------------------------------------------------------------- stream */

/* Records read before the domain XML, held until it is rewritten. */
struct held {
  struct vmferry_record rec;
  void *payload;
};

#define MAX_HELD 64

int
vmferry_rewrite_stream (struct vmferry_rewrite *rw, int in_fd,
                        const char *in_name, int out_fd, const char *out_name,
                        virConnectPtr dest)
{
  struct vmferry_stream_reader *r = vmferry_stream_reader_new (in_fd, in_name);
  struct vmferry_stream_writer *w = vmferry_stream_writer_new (out_fd, out_name);
  int ret = -1;

  if (r && w)
    ret = vmferry_rewrite_records (rw, r, in_name, w, dest);
  vmferry_stream_writer_free (w);
  vmferry_stream_reader_free (r);
  return ret;
}

/* vmferry_rewrite_records; W NULL: write nothing.  BEFORE_RTN and
 * AFTER_RTN (may be NULL) get the domain XML as read and as rewritten.
 */
static int
rewrite_records (struct vmferry_rewrite *rw, struct vmferry_stream_reader *r,
                 const char *in_name, struct vmferry_stream_writer *w,
                 virConnectPtr dest, char **before_rtn, char **after_rtn)
{
  struct held held[MAX_HELD];
  size_t nr_held = 0, manifest_at = SIZE_MAX;
  struct vmferry_record rec;
  CLEANUP_FREE char *new_xml = NULL;
  CLEANUP_FREE char *new_manifest = NULL;
  bool xml_changed = false, manifest_changed = false, seen_xml = false;
  struct vmferry_xml_source *src = NULL;
  int rr, ret = -1;

  vmferry_stream_reader_pass_skipped (r, true);

  /* Up to the domain XML: read, keep. */
  while (!seen_xml) {
    rr = vmferry_stream_read_record (r, &rec);
    if (rr <= 0) {
      if (rr == 0)
        vmferry_set_error ("%s: truncated: no domain XML", in_name);
      goto out;
    }
    if (rec.type == VMFERRY_REC_DOMAIN_XML) {
      size_t len;
      CLEANUP_FREE char *xml = vmferry_record_metadata (&rec, rec.payload, &len);
      CLEANUP_XMLDOC xmlDocPtr doc = NULL;
      CLEANUP_FREE char *name = NULL;
      CLEANUP_FREE char *uuid = NULL;
      size_t mlen;
      int c;

      if (xml == NULL) {
        vmferry_prefix_error ("%s", in_name);
        goto out;
      }
      if (manifest_at == SIZE_MAX) {
        vmferry_set_error ("%s: the domain XML came before the manifest", in_name);
        goto out;
      }
      doc = vmferry_domain_parse (xml, len, "domain XML in the stream");
      if (doc == NULL)
        goto out;
      src = source_of (doc, xml, len, in_name);
      if ((c = vmferry_rewrite_doc (rw, doc, dest)) < 0) {
        vmferry_prefix_error ("%s: domain XML", in_name);
        goto out;
      }
      if (c > 0) {
        new_xml = doc_text (src, doc);
        if (new_xml == NULL)
          goto out;
        xml_changed = !(strlen (new_xml) == len && memcmp (new_xml, xml, len) == 0);
      }
      if (before_rtn) {
        *before_rtn = strndup (xml, len);
        *after_rtn = strdup (xml_changed ? new_xml : *before_rtn ? *before_rtn : "");
        if (*before_rtn == NULL || *after_rtn == NULL) {
          vmferry_set_error_errno (ENOMEM, "%s", in_name);
          goto out;
        }
      }
      name = rw->rename ? strdup (rw->rename) : NULL;
      uuid = rw->new_uuid && rw->uuid ? strdup (rw->uuid) : NULL;
      {
        CLEANUP_FREE char *mj = vmferry_record_metadata (&held[manifest_at].rec,
                                                         held[manifest_at].payload,
                                                         &mlen);
        if (mj == NULL) {
          vmferry_prefix_error ("%s", in_name);
          goto out;
        }
        new_manifest = vmferry_rewrite_manifest (rw, mj, mlen, name, uuid,
                                                 &manifest_changed);
        if (new_manifest == NULL) {
          vmferry_prefix_error ("%s", in_name);
          goto out;
        }
      }
      seen_xml = true;
      break;
    }
    if (nr_held == MAX_HELD) {
      vmferry_set_error ("%s: more than %d records before the domain XML",
                         in_name, MAX_HELD);
      goto out;
    }
    held[nr_held].rec = rec;
    held[nr_held].payload = malloc (rec.payload_len ? rec.payload_len : 1);
    if (held[nr_held].payload == NULL) {
      vmferry_set_error_errno (errno, "%s", in_name);
      goto out;
    }
    memcpy (held[nr_held].payload, rec.payload, rec.payload_len);
    held[nr_held].rec.payload = held[nr_held].payload;
    if (rec.type == VMFERRY_REC_MANIFEST)
      manifest_at = nr_held;
    nr_held++;
  }

  /* Everything checked: now the output begins. */
  for (size_t i = 0; w && i < nr_held; i++) {
    int wr;
    if (i == manifest_at && manifest_changed)
      wr = vmferry_stream_write_manifest (w, new_manifest);
    else
      wr = vmferry_stream_copy_record (w, &held[i].rec, held[i].payload);
    if (wr == -1)
      goto out;
  }
  if (w && (xml_changed ? vmferry_stream_write_xml (w, new_xml)
                        : vmferry_stream_copy_record (w, &rec, rec.payload)) == -1)
    goto out;
  vmferry_verbose ("%s: domain XML %s, manifest %s", in_name,
                   xml_changed ? "rewritten" : "unchanged",
                   manifest_changed ? "rewritten" : "unchanged");

  /* The rest: byte for byte. */
  while ((rr = vmferry_stream_read_record (r, &rec)) == 1)
    if (w && vmferry_stream_copy_record (w, &rec, rec.payload) == -1)
      goto out;
  if (rr < 0)
    goto out;
  ret = 0;
 out:
  if (ret == -1 && before_rtn) {
    free (*before_rtn);
    free (*after_rtn);
    *before_rtn = *after_rtn = NULL;
  }
  vmferry_xml_source_free (src);
  for (size_t i = 0; i < nr_held; i++)
    free (held[i].payload);
  return ret;
}

int
vmferry_rewrite_records (struct vmferry_rewrite *rw, struct vmferry_stream_reader *r,
                         const char *in_name, struct vmferry_stream_writer *w,
                         virConnectPtr dest)
{
  return rewrite_records (rw, r, in_name, w, dest, NULL, NULL);
}

int
vmferry_rewrite_stream_preview (struct vmferry_rewrite *rw, int in_fd,
                                const char *in_name, virConnectPtr dest,
                                char **before_rtn, char **after_rtn)
{
  struct vmferry_stream_reader *r = vmferry_stream_reader_new (in_fd, in_name);
  int ret = -1;

  *before_rtn = *after_rtn = NULL;
  if (r)
    ret = rewrite_records (rw, r, in_name, NULL, dest, before_rtn, after_rtn);
  vmferry_stream_reader_free (r);
  return ret;
}

/* ---------------------------------------------------------------- bare XML */

/* Bare XML from IN_FD into *BUF_RTN (at most VMFERRY_DOMAIN_MAX_SIZE). */
static int
read_xml (int in_fd, const char *in_name, char **buf_rtn, size_t *len_rtn)
{
  CLEANUP_FREE char *buf = malloc (VMFERRY_DOMAIN_MAX_SIZE + 1);
  size_t len = 0;

  if (buf == NULL) {
    vmferry_set_error_errno (errno, "%s", in_name);
    return -1;
  }
  for (;;) {
    ssize_t r = read (in_fd, buf + len, VMFERRY_DOMAIN_MAX_SIZE + 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      vmferry_set_error_errno (errno, "%s: read", in_name);
      return -1;
    }
    if (r == 0)
      break;
    len += r;
    if (len > VMFERRY_DOMAIN_MAX_SIZE) {
      vmferry_set_error ("%s: more than %d MiB: not domain XML", in_name,
                         VMFERRY_DOMAIN_MAX_SIZE / (1024 * 1024));
      return -1;
    }
  }
  buf[len] = '\0';
  *buf_rtn = buf;
  *len_rtn = len;
  buf = NULL;
  return 0;
}

static int
write_all (int fd, const char *name, const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t r = write (fd, buf, len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      vmferry_set_error_errno (errno, "%s: write", name);
      return -1;
    }
    buf += r;
    len -= r;
  }
  return 0;
}

int
vmferry_rewrite_xml_fd (struct vmferry_rewrite *rw, int in_fd,
                        const char *in_name, int out_fd, const char *out_name,
                        virConnectPtr dest)
{
  CLEANUP_FREE char *buf = NULL;
  CLEANUP_FREE char *out = NULL;
  size_t len;

  if (read_xml (in_fd, in_name, &buf, &len) == -1)
    return -1;
  out = vmferry_rewrite_xml (rw, buf, len, in_name, dest, NULL);
  if (out == NULL)
    return -1;
  return write_all (out_fd, out_name, out, strlen (out));
}

/* ---------------------------------------------------------------- diff */

/* TEXT with each line as vmferry_text_escape shows it.  Caller frees. */
static char *
escape_lines (const char *text)
{
  char *out = NULL;
  size_t size = 0;
  FILE *fp = open_memstream (&out, &size);

  if (fp == NULL)
    return NULL;
  while (*text) {
    const char *nl = strchrnul (text, '\n');
    char *e = vmferry_text_escape (text, nl - text);
    if (e == NULL || fprintf (fp, "%s%s", e, *nl ? "\n" : "") < 0) {
      free (e);
      fclose (fp);
      free (out);
      return NULL;
    }
    free (e);
    text = *nl ? nl + 1 : nl;
  }
  if (fclose (fp) != 0) {
    free (out);
    return NULL;
  }
  return out;
}

int
vmferry_rewrite_diff (struct vmferry_rewrite *rw, int in_fd,
                      const char *in_name, bool stream, bool escape,
                      virConnectPtr dest, char **diff_rtn)
{
  CLEANUP_FREE char *before = NULL;
  CLEANUP_FREE char *after = NULL;
  CLEANUP_FREE char *label = NULL;
  size_t len;

  *diff_rtn = NULL;
  if (stream) {
    if (vmferry_rewrite_stream_preview (rw, in_fd, in_name, dest, &before,
                                        &after) == -1)
      return -1;
    len = strlen (before);
  }
  else {
    if (read_xml (in_fd, in_name, &before, &len) == -1)
      return -1;
    after = vmferry_rewrite_xml (rw, before, len, in_name, dest, NULL);
    if (after == NULL)
      return -1;
  }
  if (asprintf (&label, "%s (rewritten)", in_name) < 0) {
    label = NULL;
    vmferry_set_error_errno (ENOMEM, "%s", in_name);
    return -1;
  }
  *diff_rtn = vmferry_diff_unified (before, len, in_name, after,
                                    strlen (after), label, 3, NULL);
  if (*diff_rtn && escape) {
    char *e = escape_lines (*diff_rtn);
    free (*diff_rtn);
    *diff_rtn = e;
    if (e == NULL)
      vmferry_set_error_errno (ENOMEM, "%s: diff", in_name);
  }
  return *diff_rtn ? 0 : -1;
}

/* ---------------------------------------------------------------- check input */

int
vmferry_rewrite_check_input (struct vmferry_rewrite *rw,
                             struct vmferry_check_input *in, virConnectPtr dest)
{
  int r;

  if (rw == NULL || in == NULL || in->doc == NULL) {
    vmferry_set_error_errno (EINVAL, "rewrite: check input");
    return -1;
  }
  r = vmferry_rewrite_doc (rw, in->doc, dest);
  if (r < 0)
    return -1;
  for (size_t i = 0; i < in->nr_files; i++) {
    struct vmferry_check_file *f = &in->files[i];
    char *np = NULL;

    if (strncmp (f->path, "volume:", 7) == 0) {
      const char *slash = strchr (f->path + 7, '/');
      for (size_t k = 0; slash && k < rw->pools.n; k++) {
        const struct pair *p = &rw->pools.v[k];
        if (p->old[0] != '/' && strlen (p->old) == (size_t) (slash - f->path - 7) &&
            strncmp (p->old, f->path + 7, slash - f->path - 7) == 0) {
          if (asprintf (&np, "volume:%s%s", p->new, slash) < 0)
            np = NULL;
          else
            goto set;
          goto nomem;
        }
      }
      continue;
    }
    for (size_t k = 0; k < rw->nr_vols; k++)
      if (strcmp (rw->vols[k].path, f->path) == 0) {
        if (asprintf (&np, "volume:%s/%s", rw->vols[k].pool, rw->vols[k].volume) < 0) {
          np = NULL;
          goto nomem;
        }
        goto set;
      }
    np = vmferry_rewrite_map_path (rw, f->path);
    if (np == NULL)
      return -1;
  set:
    free (f->path);
    f->path = np;
  }
  return r;
 nomem:
  vmferry_set_error_errno (ENOMEM, "rewrite: check input");
  return -1;
}
