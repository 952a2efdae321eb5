/* vmferry: resume state of an interrupted import (see resume.h). */
#include "config.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <xxhash.h>

#include "cleanup.h"
#include "error.h"
#include "extent.h"
#include "hex.h"
#include "json.h"
#include "manifest.h"
#include "names.h"
#include "resume.h"
#include "stream.h"
#include "target.h"

#define STATE_FORMAT "vmferry-resume"
#define MAX_STATE_SIZE (4 * 1024 * 1024)

void
vmferry_resume_state_free (struct vmferry_resume_state *st)
{
  if (st == NULL)
    return;
  for (size_t i = 0; i < st->nr_files; i++) {
    free (st->files[i].name);
    free (st->files[i].tmp);
    free (st->files[i].device);
    free (st->files[i].volume);
    free (st->files[i].final);
  }
  free (st->files);
  free (st->name);
  free (st->tpm_tmp);
  free (st->tpm_final);
  free (st->uuid);
  free (st->define_tmp);
  free (st->aside);
  memset (st, 0, sizeof *st);
}

/* A device named in a state (only ever printed): an absolute path of
 * printable characters.
 */
static bool
device_name_ok (const char *s)
{
  if (s[0] != '/' || strlen (s) > 4096)
    return false;
  for (; *s; s++)
    if ((unsigned char) *s < 0x20 || *s == 0x7f)
      return false;
  return true;
}

/* A volume named in a state (import-pool.c deletes it): POOL/NAME, two
 * plain names.
 */
static bool
volume_name_ok (const char *s)
{
  const char *slash = strchr (s, '/');
  CLEANUP_FREE char *pool = slash ? strndup (s, slash - s) : NULL;

  return pool && vmferry_name_ok (pool, 0) && vmferry_name_ok (slash + 1, 0);
}

static bool
ju64 (json_object *o, const char *key, uint64_t *rtn)
{
  json_object *v;
  if (!json_object_object_get_ex (o, key, &v) ||
      !json_object_is_type (v, json_type_int))
    return false;
  if (json_object_get_int64 (v) < 0)
    return false;
  errno = 0;
  *rtn = json_object_get_uint64 (v);
  return errno == 0;
}

static json_object *
parse_json (const char *text, size_t len)
{
  json_tokener *tok = json_tokener_new_ex (16);
  json_object *o;

  if (tok == NULL)
    return NULL;
  o = json_tokener_parse_ex (tok, text, (int) len);
  if (o && (json_tokener_get_error (tok) != json_tokener_success ||
            !json_object_is_type (o, json_type_object))) {
    json_object_put (o);
    o = NULL;
  }
  json_tokener_free (tok);
  return o;
}

int
vmferry_resume_stream_id (const struct vmferry_manifest *m,
                          char id_rtn[VMFERRY_RESUME_ID_LEN + 1])
{
  XXH3_state_t *h;
  XXH128_canonical_t c;

  /* An older writer's stream: not resumable. */
  for (size_t i = 0; i < m->nr_files; i++)
    if (m->files[i].source_identity == NULL)
      return 0;
  h = XXH3_createState ();
  if (h == NULL) {
    vmferry_set_error_errno (ENOMEM, "manifest");
    return -1;
  }
  XXH3_128bits_reset (h);
  /* Each field NUL-terminated, so no two lists hash alike. */
  XXH3_128bits_update (h, "vmferry-stream-id-1", 20);
  XXH3_128bits_update (h, m->domain_name, strlen (m->domain_name) + 1);
  for (size_t i = 0; i < m->nr_files; i++) {
    const struct vmferry_manifest_file *f = &m->files[i];
    char buf[32];

    snprintf (buf, sizeof buf, "%" PRIu64, f->size);
    XXH3_128bits_update (h, f->name, strlen (f->name) + 1);
    XXH3_128bits_update (h, buf, strlen (buf) + 1);
    XXH3_128bits_update (h, f->source_identity,
                         strlen (f->source_identity) + 1);
  }
  XXH128_canonicalFromHash (&c, XXH3_128bits_digest (h));
  vmferry_hex_encode (c.digest, 16, id_rtn);
  XXH3_freeState (h);
  return 1;
}

/* The prefix of every state file; the importer's own temporary files
 * start with '.' and a name from a stream never does (names.h).
 */
#define STATE_PREFIX ".vmferry-resume-"

char *
vmferry_resume_name (const char *name, const char *suffix)
{
  char *p;

  if (!vmferry_name_ok (name, VMFERRY_NAME_HIDDEN_OK) ||
      strlen (name) + strlen (STATE_PREFIX) + strlen (suffix) + 1 >
          VMFERRY_NAME_MAX) {
    vmferry_set_error ("domain name '%s' cannot name a resume state file",
                       name);
    return NULL;
  }
  if (asprintf (&p, STATE_PREFIX "%s.%s", name, suffix) < 0) {
    vmferry_set_error_errno (ENOMEM, "resume state");
    return NULL;
  }
  return p;
}

int
vmferry_resume_lock (const struct vmferry_target *t, const char *name,
                     unsigned wait_seconds)
{
  CLEANUP_FREE char *file = vmferry_resume_name (name, "lock");
  struct timespec start, now, pause = { 0, 100 * 1000 * 1000 };

  if (file == NULL)
    return -1;
  clock_gettime (CLOCK_MONOTONIC, &start);
  for (;;) {
    struct stat held, named;
    int fd = vmferry_target_open_file (t, file, O_RDWR);
    int r;

    if (fd < 0 && errno == ENOENT) {
      fd = vmferry_target_create (t, file, O_RDWR, 0600, false);
      if (fd < 0 && errno == EEXIST)
        continue;               /* made by another import just now */
    }
    if (fd < 0)
      return -1;
    /* An import cut a moment ago may still be saving its state: wait for
     * it rather than fail, but not forever.
     */
    while ((r = flock (fd, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
      ;
    if (r == 0) {
      /* The holder before us may have removed the file (and another
       * import made a new one): then this lock guards nothing.
       */
      if (fstat (fd, &held) == 0 &&
          vmferry_target_stat (t, file, &named) == 1 &&
          held.st_dev == named.st_dev && held.st_ino == named.st_ino)
        return fd;
      close (fd);
      continue;
    }
    if (errno != EWOULDBLOCK) {
      vmferry_set_error_errno (errno, "%s/%s: cannot lock", t->path, file);
      close (fd);
      return -1;
    }
    close (fd);
    clock_gettime (CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec >= (time_t) wait_seconds) {
      vmferry_set_error ("%s/%s: another import of domain %s into %s is "
                         "running (waited %u s)",
                         t->path, file, name, t->path, wait_seconds);
      return -1;
    }
    nanosleep (&pause, NULL);
  }
}

void
vmferry_resume_remove_stale (const struct vmferry_target *t, const char *name)
{
  CLEANUP_FREE char *file = vmferry_resume_name (name, "json");
  CLEANUP_FREE char *prefix = NULL;
  DIR *d;
  struct dirent *e;

  if (file == NULL || asprintf (&prefix, "%s.new-", file) < 0)
    return;
  d = vmferry_target_opendir (t);
  if (d == NULL)
    return;
  while ((e = readdir (d)) != NULL)
    if (strncmp (e->d_name, prefix, strlen (prefix)) == 0 &&
        strlen (e->d_name) == strlen (prefix) + 6)
      unlinkat (dirfd (d), e->d_name, 0);
  closedir (d);
}

void
vmferry_resume_unlock_remove (const struct vmferry_target *t, const char *name,
                              int lock_fd)
{
  struct vmferry_saved_error saved;
  CLEANUP_FREE char *file = NULL;

  /* Called on the way out of a failure too: its message stays. */
  vmferry_save_error (&saved);
  file = vmferry_resume_name (name, "lock");
  if (file)
    vmferry_target_unlink (t, file);
  if (lock_fd >= 0)
    close (lock_fd);
  vmferry_restore_saved_error (&saved);
}

/* The suffix of a converted copy (vmferry_resume_converted_name). */
#define CONVERTED_SUFFIX ".converted"

bool
vmferry_resume_tmp_name_ok (const char *name, const char *tmp)
{
  size_t n = strlen (name);

  if (!vmferry_name_ok (name, 0) ||
      !vmferry_name_ok (tmp, VMFERRY_NAME_HIDDEN_OK) || tmp[0] != '.' ||
      strncmp (tmp + 1, name, n) != 0 ||
      strncmp (tmp + 1 + n, ".vmferry-", 9) != 0)
    return false;
  tmp += 1 + n + 9;
  /* or the converted copy of one (vmferry_resume_converted_name) */
  if (strlen (tmp) < 6 ||
      (tmp[6] != '\0' && strcmp (tmp + 6, CONVERTED_SUFFIX) != 0))
    return false;
  for (int i = 0; i < 6; i++)
    if (!((tmp[i] >= 'a' && tmp[i] <= 'z') ||
          (tmp[i] >= 'A' && tmp[i] <= 'Z') || (tmp[i] >= '0' && tmp[i] <= '9')))
      return false;
  return true;
}

/* A temporary TPM directory: ".COMPONENT.vmferry-XXXXXX", one component
 * below its root.
 */
static bool
tpm_tmp_ok (const char *p)
{
  size_t n = p ? strlen (p) : 0;

  if (n < 17 || p[0] != '.' || !vmferry_name_ok (p, VMFERRY_NAME_HIDDEN_OK))
    return false;
  return strncmp (p + n - 15, ".vmferry-", 9) == 0;
}

bool
vmferry_resume_claims_ordered (const struct vmferry_resume_file *f)
{
  uint64_t prev = f->offset;

  if (f->nr_claims > VMFERRY_RESUME_MAX_CLAIMS)
    return false;
  for (size_t i = 0; i < f->nr_claims; i++) {
    if (f->claims[i].end <= prev || f->claims[i].end > f->size)
      return false;
    prev = f->claims[i].end;
  }
  return true;
}

/* The "claims" array V of file RF: ranges in order, each past the one
 * before (the first past the offset), within the file, block-aligned.
 */
static int
load_claims (struct vmferry_resume_file *rf, json_object *v)
{
  if (rf->tmp == NULL || rf->offset == VMFERRY_RESUME_COMPLETE ||
      !json_object_is_type (v, json_type_array) ||
      json_object_array_length (v) > VMFERRY_RESUME_MAX_CLAIMS)
    return -1;
  rf->nr_claims = json_object_array_length (v);
  for (size_t i = 0; i < rf->nr_claims; i++) {
    json_object *c = json_object_array_get_idx (v, i);
    struct vmferry_resume_claim *cl = &rf->claims[i];

    if (!ju64 (c, "end", &cl->end) ||
        (cl->end % VMFERRY_BLOCK_SIZE && cl->end != rf->size) ||
        vmferry_hex_decode_str (vmferry_json_str (c, "digest"), cl->digest,
                                sizeof cl->digest) < 0)
      return -1;
  }
  return vmferry_resume_claims_ordered (rf) ? 0 : -1;
}

/* An optional boolean member: false when absent, -1 if not a boolean. */
static int
jbool (json_object *o, const char *key, bool *rtn)
{
  json_object *v;

  *rtn = false;
  if (!json_object_object_get_ex (o, key, &v))
    return 0;
  if (!json_object_is_type (v, json_type_boolean))
    return -1;
  *rtn = json_object_get_boolean (v);
  return 0;
}

/* An optional string member that must pass OK: NULL when absent (*BAD
 * left alone), else a copy, or NULL with *BAD set if it does not pass.
 */
static char *
jname (json_object *o, const char *key, bool (*ok) (const char *), bool *bad)
{
  json_object *v;
  char *s;

  if (!json_object_object_get_ex (o, key, &v))
    return NULL;
  if (!json_object_is_type (v, json_type_string) ||
      !ok (json_object_get_string (v)) ||
      !(s = strdup (json_object_get_string (v)))) {
    *bad = true;
    return NULL;
  }
  return s;
}

static bool
hex_ok (const char *s)
{
  if (strlen (s) != VMFERRY_RESUME_ID_LEN)
    return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

static bool
component_ok (const char *s)
{
  return vmferry_name_ok (s, 0);
}

static bool
hidden_component_ok (const char *s)
{
  return vmferry_name_ok (s, VMFERRY_NAME_HIDDEN_OK);
}

/* A name the placement gives a domain for a while: NAME.vmferry-WHAT-
 * and six random characters (vmferry_target_random_name), or with
 * SAME_OK NAME itself.  Recovery renames and undefines the domains these
 * name: a state must not be able to point it at any other domain.
 */
static bool
domain_tmp_ok (const char *name, const char *tmp, const char *what,
               bool same_ok)
{
  size_t n = strlen (name), w = strlen (what);

  if (same_ok && strcmp (tmp, name) == 0)
    return true;
  return strncmp (tmp, name, n) == 0 &&
    strncmp (tmp + n, ".vmferry-", 9) == 0 &&
    strncmp (tmp + n + 9, what, w) == 0 && tmp[n + 9 + w] == '-' &&
    strlen (tmp + n + 10 + w) == 6;
}

/* The members of file RF that only a placement has. */
static int
parse_placement (struct vmferry_resume_file *rf, json_object *f, bool place)
{
  bool bad = false;

  rf->final = jname (f, "final", component_ok, &bad);
  if (bad || jbool (f, "replace", &rf->replace) < 0)
    return -1;
  if (json_object_object_get_ex (f, "local_digest", NULL)) {
    if (rf->offset != VMFERRY_RESUME_COMPLETE ||
        vmferry_hex_decode_str (vmferry_json_str (f, "stream_digest"),
                                rf->stream_digest, 16) < 0 ||
        vmferry_hex_decode_str (vmferry_json_str (f, "local_digest"),
                                rf->local_digest, 16) < 0)
      return -1;
    rf->changed = true;
  }
  if (!place || rf->tmp == NULL)
    return rf->final || rf->replace ? -1 : 0;
  /* Placing: every file with a temporary file of its own (all but TPM
   * state, which moves with its directory) is complete and has a final
   * name.
   */
  if (rf->final == NULL || rf->offset != VMFERRY_RESUME_COMPLETE ||
      !ju64 (f, "dev", &rf->dev) || !ju64 (f, "ino", &rf->ino))
    return -1;
  return 0;
}

int
vmferry_resume_parse (const char *text, size_t len, const char *path,
                      struct vmferry_resume_state *st)
{
  CLEANUP_FREE char *buf = malloc (len + 1);
  json_object *o = NULL, *files;
  char *nl, want[17];
  const char *s;
  bool bad = false;
  int r = -1;

  memset (st, 0, sizeof *st);
  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", path);
    return -1;
  }
  memcpy (buf, text, len);
  buf[len] = '\0';
  /* The last line: "check HEX\n" over everything before it. */
  if (len < 24 || buf[len - 1] != '\n' || strlen (buf) != len) {
    vmferry_set_error ("%s: damaged resume state (no check line)", path);
    return -1;
  }
  buf[len - 1] = '\0';
  nl = strrchr (buf, '\n');
  if (nl == NULL || strncmp (nl + 1, "check ", 6) != 0) {
    vmferry_set_error ("%s: damaged resume state (no check line)", path);
    return -1;
  }
  snprintf (want, sizeof want, "%016" PRIx64,
            (uint64_t) XXH3_64bits (buf, nl + 1 - buf));
  if (strcmp (nl + 7, want) != 0) {
    vmferry_set_error ("%s: damaged resume state (check mismatch)", path);
    return -1;
  }
  o = parse_json (buf, nl - buf);
  if (o == NULL || (s = vmferry_json_str (o, "format")) == NULL ||
      strcmp (s, STATE_FORMAT) != 0 ||
      (s = vmferry_json_str (o, "name")) == NULL ||
      !hidden_component_ok (s) || !(st->name = strdup (s)) ||
      (s = vmferry_json_str (o, "stream_id")) == NULL || !hex_ok (s) ||
      vmferry_hex_decode_str (vmferry_json_str (o, "token"), st->token,
                              VMFERRY_RESUME_TOKEN_LEN) < 0 ||
      !json_object_object_get_ex (o, "files", &files) ||
      !json_object_is_type (files, json_type_array) ||
      json_object_array_length (files) > VMFERRY_MAX_FILES) {
    vmferry_set_error ("%s: invalid resume state", path);
    goto out;
  }
  memcpy (st->stream_id, s, VMFERRY_RESUME_ID_LEN + 1);
  {
    json_object *v;
    uint64_t version;
    if (json_object_object_get_ex (o, "version", &v) &&
        (!ju64 (o, "version", &version) || version != 1)) {
      vmferry_set_error ("%s: resume state of another version (this vmferry "
                         "writes version 1)", path);
      goto out;
    }
  }
  st->tpm_tmp = jname (o, "tpm_tmp", tpm_tmp_ok, &bad);
  if (bad || jbool (o, "tpm_in_swtpm", &st->tpm_in_swtpm) < 0) {
    vmferry_set_error ("%s: invalid resume state: TPM directory", path);
    goto out;
  }
  if (st->tpm_tmp == NULL)
    st->tpm_in_swtpm = false;   /* says where a TPM directory is: none */
  if ((s = vmferry_json_str (o, "phase")) != NULL && strcmp (s, "place") == 0)
    st->phase = VMFERRY_RESUME_PLACE;
  else if (s != NULL && strcmp (s, "transfer") != 0) {
    vmferry_set_error ("%s: invalid resume state: phase", path);
    goto out;
  }
  st->nr_files = json_object_array_length (files);
  st->files = calloc (st->nr_files ? st->nr_files : 1, sizeof *st->files);
  if (st->files == NULL) {
    st->nr_files = 0;
    goto out;
  }
  for (size_t i = 0; i < st->nr_files; i++) {
    json_object *f = json_object_array_get_idx (files, i), *v;
    struct vmferry_resume_file *rf = &st->files[i];
    const char *name = vmferry_json_str (f, "name");
    const char *tmp = vmferry_json_str (f, "tmp");
    bool complete;

    /* A TPM state file's name is a relative path (it has no temporary
     * file of its own: its directory has).
     */
    if (name == NULL ||
        !vmferry_name_relpath_ok (name, VMFERRY_NAME_MAX_PARTS, 0) ||
        (tmp && !component_ok (name)) || !ju64 (f, "size", &rf->size) ||
        jbool (f, "complete", &complete) < 0 || !(rf->name = strdup (name)) ||
        (tmp && (!vmferry_resume_tmp_name_ok (name, tmp) ||
                 !(rf->tmp = strdup (tmp))))) {
      vmferry_set_error ("%s: invalid resume state: file %zu", path, i);
      goto out;
    }
    for (size_t k = 0; k < i; k++)
      if (strcmp (st->files[k].name, name) == 0) {
        vmferry_set_error ("%s: invalid resume state: two files named %s", path,
                           name);
        goto out;
      }
    if (complete)
      rf->offset = VMFERRY_RESUME_COMPLETE;
    else if (!ju64 (f, "offset", &rf->offset) || rf->offset > rf->size ||
             (rf->offset % VMFERRY_BLOCK_SIZE && rf->offset != rf->size)) {
      vmferry_set_error ("%s: invalid resume state: file %s: bad offset", path,
                         name);
      goto out;
    }
    if (tmp == NULL && rf->offset != 0) {
      vmferry_set_error ("%s: invalid resume state: file %s: progress without "
                         "a file", path, name);
      goto out;
    }
    if ((s = vmferry_json_str (f, "device")) != NULL &&
        (!device_name_ok (s) || !(rf->device = strdup (s)))) {
      vmferry_set_error ("%s: invalid resume state: file %s: bad device", path,
                         name);
      goto out;
    }
    if ((s = vmferry_json_str (f, "volume")) != NULL &&
        (!volume_name_ok (s) || !(rf->volume = strdup (s)) ||
         jbool (f, "volume_made", &rf->volume_made) < 0)) {
      vmferry_set_error ("%s: invalid resume state: file %s: bad volume", path,
                         name);
      goto out;
    }
    if (json_object_object_get_ex (f, "claims", &v) &&
        load_claims (rf, v) < 0) {
      vmferry_set_error ("%s: invalid resume state: file %s: bad claims", path,
                         name);
      goto out;
    }
    if (parse_placement (rf, f, st->phase == VMFERRY_RESUME_PLACE) < 0) {
      vmferry_set_error ("%s: invalid resume state: file %s: bad placement",
                         path, name);
      goto out;
    }
  }
  if (st->phase == VMFERRY_RESUME_PLACE) {
    st->tpm_final = jname (o, "tpm_final", hidden_component_ok, &bad);
    st->uuid = jname (o, "uuid", vmferry_name_uuid_ok, &bad);
    st->define_tmp = jname (o, "define_tmp", hidden_component_ok, &bad);
    st->aside = jname (o, "aside", hidden_component_ok, &bad);
    if (bad || jbool (o, "tpm_replace", &st->tpm_replace) < 0 ||
        jbool (o, "define", &st->define) < 0 ||
        (st->tpm_tmp != NULL) != (st->tpm_final != NULL) ||
        (st->tpm_tmp && (!ju64 (o, "tpm_dev", &st->tpm_dev) ||
                         !ju64 (o, "tpm_ino", &st->tpm_ino))) ||
        (st->define && (st->uuid == NULL || st->define_tmp == NULL)) ||
        (st->define &&
         !domain_tmp_ok (st->name, st->define_tmp, "new", true)) ||
        (st->define && st->aside &&
         !domain_tmp_ok (st->name, st->aside, "old", false))) {
      vmferry_set_error ("%s: invalid resume state: bad placement", path);
      goto out;
    }
    /* What has no meaning without its subject is not kept. */
    if (st->tpm_final == NULL)
      st->tpm_replace = false;
    if (!st->define) {
      free (st->uuid);
      free (st->define_tmp);
      free (st->aside);
      st->uuid = st->define_tmp = st->aside = NULL;
    }
  }
  r = 1;
 out:
  if (r < 0) {
    if (!vmferry_get_error ()[0])
      vmferry_set_error_errno (ENOMEM, "%s", path);
    vmferry_resume_state_free (st);
  }
  json_object_put (o);
  return r;
}

int
vmferry_resume_load (const struct vmferry_target *t, const char *file,
                     struct vmferry_resume_state *st)
{
  CLEANUP_FREE char *path = vmferry_target_path (t, file);
  CLEANUP_FREE char *buf = NULL;
  CLEANUP_CLOSE int fd = -1;
  struct stat sb;
  ssize_t n;

  memset (st, 0, sizeof *st);
  if (path == NULL)
    return -1;
  fd = vmferry_target_open_file (t, file, O_RDONLY);
  if (fd < 0 && errno == ENOENT) {
    vmferry_clear_error ();
    return 0;
  }
  if (fd < 0) {
    vmferry_prefix_error ("resume state");
    return -1;
  }
  if (fstat (fd, &sb) < 0 || sb.st_size > MAX_STATE_SIZE) {
    vmferry_set_error ("%s: not a resume state file", path);
    return -1;
  }
  buf = malloc (sb.st_size + 1);
  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", path);
    return -1;
  }
  n = pread (fd, buf, sb.st_size, 0);
  if (n != sb.st_size) {
    vmferry_set_error_errno (n < 0 ? errno : EIO, "%s: read", path);
    return -1;
  }
  if (vmferry_resume_parse (buf, n, path, st) < 0)
    return -1;
  /* The state of domain NAME is in the files named after NAME: one that
   * speaks for another domain would have a run of NAME act for that one.
   */
  {
    size_t p = strlen (STATE_PREFIX), k = strlen (st->name);
    if (strncmp (file, STATE_PREFIX, p) != 0 ||
        strncmp (file + p, st->name, k) != 0 ||
        (strcmp (file + p + k, ".json") != 0 &&
         strcmp (file + p + k, ".written") != 0)) {
      vmferry_set_error ("%s: invalid resume state: it names domain %s", path,
                         st->name);
      vmferry_resume_state_free (st);
      return -1;
    }
  }
  return 1;
}

/* "\ncheck " and 16 hex digits and "\n" */
#define CHECK_LINE_LEN 24

/* The text of a state file: ST as one line of JSON (with its claims if
 * CLAIMS), padded with spaces to MIN_LEN bytes in all if shorter, then
 * the check line.  NULL with the error set.  Caller frees.
 */
static char *
state_text (const struct vmferry_resume_state *st, bool claims, size_t min_len)
{
  json_object *o = json_object_new_object (), *files = json_object_new_array ();
  char tok[2 * VMFERRY_RESUME_TOKEN_LEN + 1];
  const char *js;
  char *text = NULL;
  size_t jl, pad;

  vmferry_hex_encode (st->token, VMFERRY_RESUME_TOKEN_LEN, tok);
  json_object_object_add (o, "format", json_object_new_string (STATE_FORMAT));
  json_object_object_add (o, "version", json_object_new_int (1));
  json_object_object_add (o, "name", json_object_new_string (st->name));
  json_object_object_add (o, "stream_id",
                          json_object_new_string (st->stream_id));
  json_object_object_add (o, "token", json_object_new_string (tok));
  if (st->tpm_tmp) {
    json_object_object_add (o, "tpm_tmp", json_object_new_string (st->tpm_tmp));
    json_object_object_add (o, "tpm_in_swtpm",
                            json_object_new_boolean (st->tpm_in_swtpm));
  }
  if (st->phase == VMFERRY_RESUME_PLACE) {
    json_object_object_add (o, "phase", json_object_new_string ("place"));
    if (st->tpm_final) {
      json_object_object_add (o, "tpm_final",
                              json_object_new_string (st->tpm_final));
      json_object_object_add (o, "tpm_dev",
                              json_object_new_uint64 (st->tpm_dev));
      json_object_object_add (o, "tpm_ino",
                              json_object_new_uint64 (st->tpm_ino));
      json_object_object_add (o, "tpm_replace",
                              json_object_new_boolean (st->tpm_replace));
    }
    json_object_object_add (o, "define", json_object_new_boolean (st->define));
    if (st->uuid)
      json_object_object_add (o, "uuid", json_object_new_string (st->uuid));
    if (st->define_tmp)
      json_object_object_add (o, "define_tmp",
                              json_object_new_string (st->define_tmp));
    if (st->aside)
      json_object_object_add (o, "aside", json_object_new_string (st->aside));
  }
  for (size_t i = 0; i < st->nr_files; i++) {
    const struct vmferry_resume_file *f = &st->files[i];
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "name", json_object_new_string (f->name));
    if (f->tmp)
      json_object_object_add (j, "tmp", json_object_new_string (f->tmp));
    if (f->device)
      json_object_object_add (j, "device", json_object_new_string (f->device));
    if (f->volume) {
      json_object_object_add (j, "volume", json_object_new_string (f->volume));
      json_object_object_add (j, "volume_made",
                              json_object_new_boolean (f->volume_made));
    }
    json_object_object_add (j, "size", json_object_new_uint64 (f->size));
    if (f->offset == VMFERRY_RESUME_COMPLETE)
      json_object_object_add (j, "complete", json_object_new_boolean (1));
    else
      json_object_object_add (j, "offset", json_object_new_uint64 (f->offset));
    if (claims && f->tmp && f->offset != VMFERRY_RESUME_COMPLETE &&
        f->nr_claims) {
      json_object *a = json_object_new_array ();

      /* Made by this import (load_claims checks what it reads). */
      assert (vmferry_resume_claims_ordered (f));
      for (size_t k = 0; k < f->nr_claims; k++) {
        json_object *c = json_object_new_object ();
        char dg[2 * sizeof f->claims[k].digest + 1];
        vmferry_hex_encode (f->claims[k].digest,
                            sizeof f->claims[k].digest, dg);
        json_object_object_add (c, "end",
                                json_object_new_uint64 (f->claims[k].end));
        json_object_object_add (c, "digest", json_object_new_string (dg));
        json_object_array_add (a, c);
      }
      json_object_object_add (j, "claims", a);
    }
    if (f->changed && f->offset == VMFERRY_RESUME_COMPLETE) {
      char dg[33];
      vmferry_hex_encode (f->stream_digest, 16, dg);
      json_object_object_add (j, "stream_digest", json_object_new_string (dg));
      vmferry_hex_encode (f->local_digest, 16, dg);
      json_object_object_add (j, "local_digest", json_object_new_string (dg));
    }
    if (st->phase == VMFERRY_RESUME_PLACE && f->final) {
      json_object_object_add (j, "final", json_object_new_string (f->final));
      json_object_object_add (j, "dev", json_object_new_uint64 (f->dev));
      json_object_object_add (j, "ino", json_object_new_uint64 (f->ino));
      json_object_object_add (j, "replace",
                              json_object_new_boolean (f->replace));
    }
    json_object_array_add (files, j);
  }
  json_object_object_add (o, "files", files);
  js = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN |
                                       JSON_C_TO_STRING_NOSLASHESCAPE);
  if (js == NULL)
    goto out;
  jl = strlen (js);
  pad = min_len > jl + CHECK_LINE_LEN ? min_len - jl - CHECK_LINE_LEN : 0;
  text = malloc (jl + pad + CHECK_LINE_LEN + 1);
  if (text == NULL)
    goto out;
  memcpy (text, js, jl);
  memset (text + jl, ' ', pad);
  text[jl + pad] = '\n';
  snprintf (text + jl + pad + 1, CHECK_LINE_LEN, "check %016" PRIx64 "\n",
            (uint64_t) XXH3_64bits (text, jl + pad + 1));
 out:
  if (text == NULL)
    vmferry_set_error_errno (ENOMEM, "resume state");
  json_object_put (o);
  return text;
}

char *
vmferry_resume_text (const struct vmferry_resume_state *st)
{
  return state_text (st, false, 0);
}

int
vmferry_resume_save (const struct vmferry_target *t, const char *file,
                     const struct vmferry_resume_state *st)
{
  CLEANUP_FREE char *text = state_text (st, false, 0);

  return text ? vmferry_resume_save_text (t, file, text) : -1;
}

int
vmferry_resume_save_text (const struct vmferry_target *t, const char *file,
                          const char *text)
{
  CLEANUP_FREE char *prefix = NULL, *tmp = NULL;
  size_t len = strlen (text);
  int fd;

  /* A fresh name each time, created exclusively: whatever was planted
   * under a predictable name is never written through.
   */
  if (asprintf (&prefix, "%s.new-", file) < 0) {
    prefix = NULL;
    vmferry_set_error_errno (ENOMEM, "%s", file);
    return -1;
  }
  tmp = vmferry_target_random_name (prefix);
  if (tmp == NULL)
    return -1;
  fd = vmferry_target_create (t, tmp, O_WRONLY, 0600, false);
  if (fd < 0)
    return -1;
  if (vmferry_pwrite_full (fd, tmp, text, len, 0) < 0 || fdatasync (fd) < 0) {
    vmferry_set_error_errno (errno, "%s/%s: cannot write the resume state",
                             t->path, tmp);
    close (fd);
    vmferry_target_unlink (t, tmp);
    return -1;
  }
  close (fd);
  if (vmferry_target_rename (t, tmp, t, file, 0) < 0) {
    vmferry_prefix_error ("resume state");
    vmferry_target_unlink (t, tmp);
    return -1;
  }
  return 0;
}

int
vmferry_resume_create_written (const struct vmferry_target *t, const char *file)
{
  if (vmferry_target_unlink (t, file) < 0)
    return -1;
  return vmferry_target_create (t, file, O_RDWR, 0600, false);
}

int
vmferry_resume_write_claims (int fd, const char *path,
                             const struct vmferry_resume_state *st)
{
  CLEANUP_FREE char *text = NULL;
  struct stat sb;

  if (fstat (fd, &sb) < 0) {
    vmferry_set_error_errno (errno, "%s: fstat", path);
    return -1;
  }
  /* Never shorter than what is there, so no old tail is left after the
   * check line.
   */
  text = state_text (st, true, sb.st_size);
  if (text == NULL)
    return -1;
  return vmferry_pwrite_full (fd, path, text, strlen (text), 0);
}

unsigned
vmferry_resume_load_written (const struct vmferry_target *t, const char *file,
                             struct vmferry_resume_state *st)
{
  struct vmferry_resume_state w;
  struct vmferry_saved_error saved;
  unsigned n = 0;
  int r;

  for (size_t i = 0; i < st->nr_files; i++)
    st->files[i].nr_claims = 0;
  /* A damaged claim is no error: keep the caller's message. */
  vmferry_save_error (&saved);
  r = vmferry_resume_load (t, file, &w);
  vmferry_restore_saved_error (&saved);
  if (r != 1)
    return 0;
  if (strcmp (w.name, st->name) == 0 &&
      strcmp (w.stream_id, st->stream_id) == 0 &&
      memcmp (w.token, st->token, VMFERRY_RESUME_TOKEN_LEN) == 0 &&
      w.nr_files == st->nr_files) {
    for (size_t i = 0; i < st->nr_files; i++) {
      struct vmferry_resume_file *f = &st->files[i];
      const struct vmferry_resume_file *c = &w.files[i];
      uint64_t at = c->offset;
      size_t k = 0;

      if (c->nr_claims == 0 || f->tmp == NULL || c->tmp == NULL ||
          strcmp (f->tmp, c->tmp) != 0 || f->size != c->size ||
          f->offset == VMFERRY_RESUME_COMPLETE || c->offset > f->offset)
        continue;
      /* The state may have been saved after these claims were written. */
      while (k < c->nr_claims && at < f->offset)
        at = c->claims[k++].end;
      if (at != f->offset || k == c->nr_claims)
        continue;
      f->nr_claims = c->nr_claims - k;
      memcpy (f->claims, c->claims + k, f->nr_claims * sizeof f->claims[0]);
      assert (vmferry_resume_claims_ordered (f));
      n++;
    }
  }
  vmferry_resume_state_free (&w);
  return n;
}

int
vmferry_resume_new_token (unsigned char token[VMFERRY_RESUME_TOKEN_LEN])
{
  if (getrandom (token, VMFERRY_RESUME_TOKEN_LEN, 0) !=
      VMFERRY_RESUME_TOKEN_LEN) {
    vmferry_set_error_errno (errno, "getrandom");
    return -1;
  }
  return 0;
}

/* An answer: a new object O with its format and whether it resumes. */
static json_object *
answer_new (bool resume)
{
  json_object *o = json_object_new_object ();

  json_object_object_add (o, "format",
                          json_object_new_string ("vmferry-resume-answer"));
  json_object_object_add (o, "resume", json_object_new_boolean (resume));
  return o;
}

/* The answer O as one line of JSON, O freed.  NULL with the error set.
 * The caller frees the line.
 */
static char *
answer_text (json_object *o)
{
  int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
  char *ret = strdup (json_object_to_json_string_ext (o, flags));

  json_object_put (o);
  if (ret == NULL)
    vmferry_set_error_errno (ENOMEM, "resume answer");
  return ret;
}

char *
vmferry_resume_answer (const struct vmferry_resume_state *st,
                       const char *reason)
{
  json_object *o = answer_new (st != NULL);

  if (st) {
    char tok[2 * VMFERRY_RESUME_TOKEN_LEN + 1];
    json_object *files = json_object_new_array ();
    vmferry_hex_encode (st->token, VMFERRY_RESUME_TOKEN_LEN, tok);
    json_object_object_add (o, "token", json_object_new_string (tok));
    for (size_t i = 0; i < st->nr_files; i++) {
      json_object *f = json_object_new_object ();
      if (st->files[i].offset == VMFERRY_RESUME_COMPLETE)
        json_object_object_add (f, "complete", json_object_new_boolean (1));
      else
        json_object_object_add (f, "offset",
                                json_object_new_uint64 (st->files[i].offset));
      json_object_array_add (files, f);
    }
    json_object_object_add (o, "files", files);
  }
  if (reason)
    json_object_object_add (o, "reason", json_object_new_string (reason));
  return answer_text (o);
}

char *
vmferry_resume_answer_done (const char *what)
{
  json_object *o = answer_new (false);

  json_object_object_add (o, "done", json_object_new_boolean (1));
  json_object_object_add (o, "reason", json_object_new_string (what));
  return answer_text (o);
}

int
vmferry_resume_parse_answer (const char *json, size_t len,
                             struct vmferry_resume_point *pt)
{
  json_object *o, *v, *files;
  const char *s;
  int r = -1;

  memset (pt, 0, sizeof *pt);
  o = parse_json (json, len);
  if (o == NULL || (s = vmferry_json_str (o, "format")) == NULL ||
      strcmp (s, "vmferry-resume-answer") != 0 ||
      !json_object_object_get_ex (o, "resume", &v)) {
    vmferry_set_error ("the remote import's resume answer is not valid");
    goto out;
  }
  if ((s = vmferry_json_str (o, "reason")) != NULL &&
      !(pt->reason = strdup (s)))
    goto nomem;
  pt->resume = json_object_get_boolean (v);
  if (json_object_object_get_ex (o, "done", &v))
    pt->done = json_object_get_boolean (v);
  if (!pt->resume) {
    r = 0;
    goto out;
  }
  if (vmferry_hex_decode_str (vmferry_json_str (o, "token"), pt->token,
                              VMFERRY_RESUME_TOKEN_LEN) < 0 ||
      !json_object_object_get_ex (o, "files", &files) ||
      !json_object_is_type (files, json_type_array) ||
      json_object_array_length (files) > VMFERRY_MAX_FILES) {
    vmferry_set_error ("the remote import's resume answer is not valid");
    goto out;
  }
  pt->nr_files = json_object_array_length (files);
  pt->offsets = calloc (pt->nr_files ? pt->nr_files : 1, sizeof *pt->offsets);
  if (pt->offsets == NULL)
    goto nomem;
  for (size_t i = 0; i < pt->nr_files; i++) {
    json_object *f = json_object_array_get_idx (files, i);
    if (json_object_object_get_ex (f, "complete", &v) &&
        json_object_get_boolean (v))
      pt->offsets[i] = VMFERRY_RESUME_COMPLETE;
    else if (!ju64 (f, "offset", &pt->offsets[i])) {
      vmferry_set_error ("the remote import's resume answer is not valid");
      goto out;
    }
  }
  r = 0;
  goto out;
 nomem:
  vmferry_set_error_errno (ENOMEM, "resume answer");
 out:
  if (r < 0)
    vmferry_resume_point_free (pt);
  json_object_put (o);
  return r;
}

void
vmferry_resume_point_free (struct vmferry_resume_point *pt)
{
  free (pt->reason);
  free (pt->offsets);
  memset (pt, 0, sizeof *pt);
}

char *
vmferry_resume_converted_name (const char *tmp)
{
  size_t n = strlen (tmp), k = strlen (CONVERTED_SUFFIX);
  char *s;

  if (n > k && strcmp (tmp + n - k, CONVERTED_SUFFIX) == 0)
    s = strndup (tmp, n - k);
  else if (asprintf (&s, "%s%s", tmp, CONVERTED_SUFFIX) < 0)
    s = NULL;
  if (s == NULL)
    vmferry_set_error_errno (ENOMEM, "resume");
  return s;
}

unsigned
vmferry_resume_discard (const struct vmferry_target *t,
                        const struct vmferry_target *tpm_root,
                        const struct vmferry_resume_state *st)
{
  unsigned n = 0;

  for (size_t i = 0; i < st->nr_files; i++) {
    struct stat sb;
    CLEANUP_FREE char *other = NULL;

    if (st->files[i].tmp &&
        vmferry_target_stat (t, st->files[i].tmp, &sb) == 1 &&
        S_ISREG (sb.st_mode) &&
        vmferry_target_unlink (t, st->files[i].tmp) == 0)
      n++;
    /* A conversion killed midway leaves its partner (import-convert.c). */
    if (st->files[i].tmp &&
        (other = vmferry_resume_converted_name (st->files[i].tmp)) &&
        vmferry_target_stat (t, other, &sb) == 1 && S_ISREG (sb.st_mode))
      vmferry_target_unlink (t, other);
  }
  if (st->tpm_tmp && tpm_root &&
      vmferry_target_remove_tree (tpm_root, st->tpm_tmp) > 0)
    n++;
  if (st->name) {
    CLEANUP_FREE char *p = vmferry_resume_name (st->name, "json");
    CLEANUP_FREE char *w = vmferry_resume_name (st->name, "written");
    if (p && vmferry_target_unlink (t, p) == 0)
      n++;
    if (w)
      vmferry_target_unlink (t, w);
  }
  return n;
}
