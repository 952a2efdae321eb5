/* vmferry: the rule set of a rewrite, from options and map files (see
 * rewrite.h): each rule is checked when added, so that a set that would
 * not be idempotent is refused before anything is read.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "rewrite-int.h"
#include "rewrite.h"

#define MAP_FILE_MAX (1024 * 1024)
#define MAP_LINE_MAX 4096

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
  for (size_t i = 0; i < p->len; i++) {
    free (p->ptr[i].old);
    free (p->ptr[i].new);
    free (p->ptr[i].where);
  }
  pairs_reset (p);
}

void
vmferry_rewrite_notes_free (struct vmferry_rewrite *rw)
{
  for (size_t i = 0; i < rw->vols.len; i++) {
    free (rw->vols.ptr[i].path);
    free (rw->vols.ptr[i].pool);
    free (rw->vols.ptr[i].volume);
  }
  volmaps_reset (&rw->vols);
  pairs_free (&rw->macs);
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
  for (size_t i = 0; i < rw->drop.len; i++)
    free (rw->drop.ptr[i]);
  strings_reset (&rw->drop);
  vmferry_rewrite_notes_free (rw);
  free (rw);
}

bool
vmferry_rewrite_is_empty (const struct vmferry_rewrite *rw)
{
  return rw->paths.len == 0 && rw->pools.len == 0 &&
    rw->networks.len == 0 && rw->bridges.len == 0 && rw->buses.len == 0 &&
    !rw->rename && !rw->new_uuid && !rw->new_macs && !rw->machine &&
    !rw->cpu && !rw->emulator && rw->drop.len == 0;
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
      vmferry_set_error ("%s: %s: '.' and '..' are not allowed in a "
                         "mapped path", where, what);
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
bool
vmferry_rewrite_path_under (const char *path, const char *prefix)
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
  for (size_t i = 0; i <= p->len; i++) {
    const char *o = i < p->len ? p->ptr[i].old : old;
    const char *nw = i < p->len ? p->ptr[i].new : new;
    /* identity rules change nothing */
    if (strcmp (o, nw) == 0)
      continue;
    for (size_t k = 0; k <= p->len; k++) {
      const char *o2 = k < p->len ? p->ptr[k].old : old;
      const char *n2 = k < p->len ? p->ptr[k].new : new;
      if (strcmp (o2, n2) == 0)
        continue;
      /* Paths: what rule i produces overlaps what rule k takes. */
      if (paths ? (vmferry_rewrite_path_under (nw, o2) ||
                   vmferry_rewrite_path_under (o2, nw))
                : strcmp (nw, o2) == 0) {
        *other_rtn = k < p->len ? &p->ptr[k]
          : i < p->len ? &p->ptr[i] : NULL;
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
  struct pair rule;

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
                         strcmp (opt, "map-bridge") == 0
                         ? "bridge" : "network");
      return -1;
    }
  }

  for (size_t i = 0; i < p->len; i++) {
    if (strcmp (p->ptr[i].old, old) != 0)
      continue;
    if (strcmp (p->ptr[i].new, new) == 0)
      return 0;                 /* said twice: one rule */
    vmferry_set_error ("%s: --%s %s=%s contradicts %s=%s (%s)", where, opt,
                       old, new, p->ptr[i].old, p->ptr[i].new, p->ptr[i].where);
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

  rule = (struct pair) { .old = old, .new = new, .where = strdup (where) };
  if (rule.where == NULL || pairs_append (p, rule) == -1) {
    free (rule.where);
    vmferry_set_error_errno (ENOMEM, "%s", where);
    return -1;
  }
  old = new = NULL;             /* the rule has them */
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

bool
vmferry_rewrite_is_cpu_mode (const char *s)
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
    vmferry_set_error ("%s: --%s: the value has control characters", where,
                       opt);
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
      vmferry_set_error ("%s: --machine: '%s' is not a machine type", where,
                         value);
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
    char *kind;
    for (const char *p = value; *p; p++)
      if (!islower ((unsigned char) *p)) {
        vmferry_set_error ("%s: --drop-device: '%s' is not a device kind (an "
                           "element of <devices>, e.g. hostdev)", where, value);
        return -1;
      }
    if (strcmp (value, "disk") == 0 || strcmp (value, "emulator") == 0) {
      vmferry_set_error ("%s: --drop-device %s: a domain's %ss cannot be "
                         "dropped by a rewrite", where, value, value);
      return -1;
    }
    for (size_t i = 0; i < rw->drop.len; i++)
      if (strcmp (rw->drop.ptr[i], value) == 0)
        return 0;
    kind = strdup (value);
    if (kind == NULL || strings_append (&rw->drop, kind) == -1) {
      free (kind);
      vmferry_set_error_errno (ENOMEM, "%s", where);
      return -1;
    }
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
  size_t len;
  int r;

  if (fd < 0) {
    vmferry_set_error_errno (errno, "%s: cannot open map file", path);
    return -1;
  }
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode)) {
    vmferry_set_error ("%s: the map file is not a regular file", path);
    return -1;
  }
  r = vmferry_rewrite_read_fd (fd, path, MAP_FILE_MAX, &buf, &len);
  if (r == 1)
    vmferry_set_error ("%s: the map file is larger than %d bytes", path,
                       MAP_FILE_MAX);
  if (r != 0)
    return -1;
  if (memchr (buf, '\0', len)) {
    vmferry_set_error ("%s: the map file is not text (it has a NUL byte)",
                       path);
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
      for (size_t i = 0; i < lists[l].p->len; i++) {
        const struct pair *pr = &lists[l].p->ptr[i];
        CLEANUP_FREE char *v = NULL;
        if (asprintf (&v, "%s=%s", pr->old, pr->new) < 0) {
          v = NULL;
          vmferry_set_error_errno (ENOMEM, "%s", path);
          goto out;
        }
        if (vmferry_rewrite_add (rw, lists[l].opt, v, pr->where) == -1)
          goto out;
      }
    if ((tmp->rename &&
         vmferry_rewrite_add (rw, "rename", tmp->rename,
                              tmp->rename_where) == -1) ||
        (tmp->new_uuid &&
         vmferry_rewrite_add (rw, "new-uuid", tmp->uuid,
                              tmp->uuid_where) == -1) ||
        (tmp->new_macs &&
         vmferry_rewrite_add (rw, "new-macs", NULL, path) == -1) ||
        (tmp->machine &&
         vmferry_rewrite_add (rw, "machine", tmp->machine,
                              tmp->machine_where) == -1) ||
        (tmp->cpu &&
         vmferry_rewrite_add (rw, "cpu", tmp->cpu, tmp->cpu_where) == -1) ||
        (tmp->emulator &&
         vmferry_rewrite_add (rw, "emulator", tmp->emulator,
                              tmp->emulator_where) == -1))
      goto out;
    for (size_t i = 0; i < tmp->drop.len; i++)
      if (vmferry_rewrite_add (rw, "drop-device", tmp->drop.ptr[i],
                               path) == -1)
        goto out;
  }
  ret = 0;
 out:
  vmferry_rewrite_free (tmp);
  return ret;
}
