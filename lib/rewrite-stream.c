/* vmferry: rewriting a whole stream: its manifest and the domain XML it
 * carries, the other records copied as they are.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libxml/tree.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "json.h"
#include "log.h"
#include "rewrite-int.h"
#include "rewrite.h"
#include "stream.h"
#include "xmlsource.h"

/* ---------------------------------------------------------------- manifest */

static int
jset (json_object *o, const char *key, const char *value, bool *changed)
{
  const char *old = vmferry_json_str (o, key);
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
    vmferry_set_error ("manifest: not a vmferry manifest "
                       "(bad JSON or no files)");
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
    const char *role = vmferry_json_str (f, "role"), *src = vmferry_json_str (f, "source_path");
    CLEANUP_FREE char *mapped = NULL;
    bool vol = false;

    if (!json_object_is_type (f, json_type_object) || role == NULL ||
        src == NULL)
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
      const char *na = vmferry_json_str (a, "name"), *nb = vmferry_json_str (b, "name");
      const char *ra = vmferry_json_str (a, "role"), *rb = vmferry_json_str (b, "role");
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
    ret = strdup (json_object_to_json_string_ext
                  (m, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
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
