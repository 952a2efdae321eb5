/* vmferry: rewriting a whole stream: its manifest and the domain XML it
 * carries, the other records copied as they are.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "log.h"
#include "manifest.h"
#include "names.h"
#include "rewrite-int.h"
#include "rewrite.h"
#include "stream.h"
#include "xmlsource.h"

/* ---------------------------------------------------------------- manifest */

/* Set the string *FIELD to VALUE unless it holds it already. */
static int
set_string (char **field, const char *value, bool *changed)
{
  char *copy;

  if (*field && strcmp (*field, value) == 0)
    return 0;
  copy = strdup (value);
  if (copy == NULL) {
    vmferry_set_error_errno (ENOMEM, "manifest");
    return -1;
  }
  free (*field);
  *field = copy;
  *changed = true;
  return 0;
}

/* The rules for file I of the manifest: a pool volume now, or a path
 * (and with it a name) that --map-path moves.
 */
static int
rewrite_file (struct vmferry_rewrite *rw, struct vmferry_manifest_file *f,
              size_t i, bool *changed)
{
  CLEANUP_FREE char *mapped = NULL;
  const char *base;

  /* TPM state goes where the domain's UUID says, not by its path. */
  if (f->role == VMFERRY_MANIFEST_TPM)
    return 0;
  for (size_t k = 0; k < rw->vols.len; k++)
    if (strcmp (rw->vols.ptr[k].path, f->source_path) == 0)
      return set_string (&f->pool, rw->vols.ptr[k].pool, changed) < 0 ||
        set_string (&f->volume, rw->vols.ptr[k].volume, changed) < 0
        ? -1 : 0;
  if (f->source_path[0] != '/')
    return 0;
  mapped = vmferry_rewrite_map_path (rw, f->source_path);
  if (mapped == NULL)
    return -1;
  if (strcmp (mapped, f->source_path) == 0)
    return 0;
  base = strrchr (mapped, '/') + 1;
  if (*base == '\0') {
    vmferry_set_error ("manifest: file %zu: --map-path makes %s a "
                       "directory (%s)", i, f->source_path, mapped);
    return -1;
  }
  /* The importer names the copy so: the rule, not the stream, is wrong. */
  if (!vmferry_name_ok (base, 0)) {
    vmferry_set_error ("rewrite refused: --map-path makes file %zu (%s) "
                       "%s, whose name is not a safe file name (not "
                       "starting with '.')", i, f->source_path, mapped);
    return -1;
  }
  if (set_string (&f->name, base, changed) < 0 ||
      set_string (&f->source_path, mapped, changed) < 0)
    return -1;
  return 0;
}

char *
vmferry_rewrite_manifest (struct vmferry_rewrite *rw, const char *json,
                          size_t len, const char *new_name,
                          const char *new_uuid, bool *changed_rtn)
{
  struct vmferry_manifest *m;
  bool changed = false;
  char *ret = NULL;

  /* The importer's parser: what it would refuse is refused here. */
  if (vmferry_manifest_parse (json, len, NULL, &m) < 0)
    return NULL;
  if (new_name && !vmferry_name_ok (new_name, VMFERRY_NAME_HIDDEN_OK)) {
    vmferry_set_error ("rewrite refused: the new domain name '%s' cannot "
                       "be part of a path (no '/', not '.' or '..')",
                       new_name);
    goto out;
  }
  if ((new_name && set_string (&m->domain_name, new_name, &changed) < 0) ||
      (new_uuid && set_string (&m->domain_uuid, new_uuid, &changed) < 0))
    goto out;
  for (size_t i = 0; i < m->nr_files; i++)
    if (rewrite_file (rw, &m->files[i], i, &changed) < 0)
      goto out;
  /* The importer fixes up the guest's network configurations by it. */
  for (size_t i = 0; i < rw->macs.len; i++) {
    if (vmferry_manifest_add_mac (m, rw->macs.ptr[i].old,
                                  rw->macs.ptr[i].new) < 0)
      goto out;
    changed = true;
  }
  /* The importer places files by name: two of one name would collide.
   * (The writer would refuse them too, but not say that a rule did it.)
   */
  for (size_t i = 0; i < m->nr_files; i++)
    for (size_t k = i + 1; k < m->nr_files; k++)
      if (strcmp (m->files[i].name, m->files[k].name) == 0) {
        vmferry_set_error ("rewrite refused: files %zu and %zu of the stream "
                           "would both be named %s", i, k, m->files[i].name);
        goto out;
      }
  /* Unchanged, the input's very bytes; else the one writer's text. */
  if (!changed) {
    ret = strndup (json, len);
    if (ret == NULL)
      vmferry_set_error_errno (ENOMEM, "manifest");
  }
  else
    ret = vmferry_manifest_to_json (m);
  if (ret && changed_rtn)
    *changed_rtn = changed;
 out:
  vmferry_manifest_free (m);
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
  struct vmferry_stream_writer *w =
    vmferry_stream_writer_new (out_fd, out_name);
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
      CLEANUP_FREE char *xml =
        vmferry_record_metadata (&rec, rec.payload, &len);
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
        vmferry_set_error ("%s: the domain XML came before the manifest",
                           in_name);
        goto out;
      }
      doc = vmferry_domain_parse (xml, len, "domain XML in the stream");
      if (doc == NULL)
        goto out;
      src = vmferry_rewrite_source_of (doc, xml, len, in_name);
      if ((c = vmferry_rewrite_doc (rw, doc, dest)) < 0) {
        vmferry_prefix_error ("%s: domain XML", in_name);
        goto out;
      }
      if (c > 0) {
        new_xml = vmferry_rewrite_doc_text (src, doc);
        if (new_xml == NULL)
          goto out;
        xml_changed =
          !(strlen (new_xml) == len && memcmp (new_xml, xml, len) == 0);
      }
      if (before_rtn) {
        *before_rtn = strndup (xml, len);
        *after_rtn = strdup (xml_changed ? new_xml
                             : *before_rtn ? *before_rtn : "");
        if (*before_rtn == NULL || *after_rtn == NULL) {
          vmferry_set_error_errno (ENOMEM, "%s", in_name);
          goto out;
        }
      }
      name = rw->rename ? strdup (rw->rename) : NULL;
      uuid = rw->new_uuid && rw->uuid ? strdup (rw->uuid) : NULL;
      {
        CLEANUP_FREE char *mj =
          vmferry_record_metadata (&held[manifest_at].rec,
                                   held[manifest_at].payload, &mlen);
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
  if (w && (xml_changed
            ? vmferry_stream_write_xml (w, new_xml)
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
vmferry_rewrite_records (struct vmferry_rewrite *rw,
                         struct vmferry_stream_reader *r,
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
