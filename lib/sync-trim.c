/* vmferry-sync --trim (see sync-trim.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "error.h"
#include "export-trim.h"
#include "guest.h"
#include "qcow2.h"
#include "sync-trim.h"

/* Where the overlays are: on disk, as export's (export.c). */
#define TRIM_BASE_DIR "/var/tmp"

struct vmferry_sync_trim {
  struct vmferry_trim *trim;
  size_t n;
  char **overlay;               /* per disk: the overlay's path */
  char **node;                  /* ... and its node, for the source */
  struct vmferry_source **src;
};

/* A node's text: {"driver": DRIVER, "file": {"driver": "file",
 * "filename": PATH}} and, with BACKING, "backing": BACKING (a node's
 * text, or "null").  The caller frees it.  NULL with the error set.
 */
static char *
node_of (const char *driver, const char *path, const char *backing)
{
  json_object *node = json_object_new_object ();
  json_object *file = json_object_new_object ();
  char *s = NULL;

  if (node && file) {
    json_object_object_add (file, "driver", json_object_new_string ("file"));
    json_object_object_add (file, "filename", json_object_new_string (path));
    json_object_object_add (node, "driver", json_object_new_string (driver));
    json_object_object_add (node, "file", file);
    file = NULL;
    if (backing)
      json_object_object_add (node, "backing", json_tokener_parse (backing));
    s = strdup (json_object_to_json_string_ext
                (node, JSON_C_TO_STRING_PLAIN |
                 JSON_C_TO_STRING_NOSLASHESCAPE));
  }
  json_object_put (file);
  json_object_put (node);
  if (s == NULL)
    vmferry_set_error_errno (ENOMEM, "%s", path);
  return s;
}

/* The node of disk PATH (FORMAT) and its virtual size. */
static char *
disk_node (const char *path, const char *format, uint64_t *size_rtn)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct vmferry_qcow2_info info;
  struct stat st;
  bool qcow2 = strcmp (format, "qcow2") == 0;

  if (fd < 0 || fstat (fd, &st) < 0) {
    vmferry_set_error_errno (errno, "%s", path);
    return NULL;
  }
  if (!qcow2) {
    *size_rtn = st.st_size;
    return node_of ("raw", path, NULL);
  }
  switch (vmferry_qcow2_probe (fd, path, &info)) {
  case 1: break;
  case 0: vmferry_set_error ("%s: not a qcow2 image", path); /* fallthrough */
  default: return NULL;
  }
  *size_rtn = info.virtual_size;
  /* No backing file: none is looked for.  One: the header's, as the
   * refresh's qemu-nbd -r reads it without --trim.
   */
  return node_of ("qcow2", path, info.has_backing ? NULL : "null");
}

struct vmferry_sync_trim *
vmferry_sync_trim_begin (const char *const *paths,
                         const char *const *formats,
                         const char *const *targets, size_t n,
                         char **untrimmed_rtn)
{
  struct vmferry_sync_trim *t = calloc (1, sizeof *t);
  CLEANUP_FREE struct vmferry_guest_disk *disks = calloc (n + 1,
                                                          sizeof *disks);

  *untrimmed_rtn = NULL;
  if (t == NULL || disks == NULL ||
      !(t->overlay = calloc (n + 1, sizeof *t->overlay)) ||
      !(t->node = calloc (n + 1, sizeof *t->node)) ||
      !(t->src = calloc (n + 1, sizeof *t->src))) {
    vmferry_set_error_errno (ENOMEM, "--trim");
    goto fail;
  }
  t->n = n;
  if (!(t->trim = vmferry_trim_new (TRIM_BASE_DIR)))
    goto fail;
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *node = NULL;
    uint64_t size;

    if (!(node = disk_node (paths[i], formats[i], &size)) ||
        !(t->overlay[i] = vmferry_trim_overlay (t->trim, node, formats[i],
                                                size)) ||
        !(t->node[i] = node_of ("qcow2", t->overlay[i], node)))
      goto fail;
    disks[i].path = t->overlay[i];
    disks[i].format = "qcow2";
    disks[i].target = targets[i];
  }
  if (vmferry_guest_trim (disks, n, untrimmed_rtn) < 0)
    goto fail;
  return t;
 fail:
  {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    if (vmferry_sync_trim_end (t) < 0)
      vmferry_append_error (&saved, "%s", vmferry_get_error ());
    else
      vmferry_restore_saved_error (&saved);
  }
  return NULL;
}

struct vmferry_source *
vmferry_sync_trim_source (struct vmferry_sync_trim *t, size_t i)
{
  if (t->src[i] == NULL)
    t->src[i] = vmferry_source_open_image (t->overlay[i], t->node[i]);
  return t->src[i];
}

int
vmferry_sync_trim_end (struct vmferry_sync_trim *t)
{
  int r;

  if (t == NULL)
    return 0;
  for (size_t i = 0; i < t->n; i++) {
    if (t->src)
      vmferry_source_free (t->src[i]);
    if (t->overlay)
      free (t->overlay[i]);
    if (t->node)
      free (t->node[i]);
  }
  free (t->src);
  free (t->overlay);
  free (t->node);
  r = vmferry_trim_end (t->trim);
  free (t);
  return r;
}
