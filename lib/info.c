/* vmferry: describe and verify a stream (see info.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "digest.h"
#include "error.h"
#include "info.h"
#include "progress.h"
#include "stream.h"

struct file_stats {
  uint64_t wire, data, zero, records;
  bool verified;
};

static json_object *
get (json_object *o, const char *key)
{
  json_object *v = NULL;

  json_object_object_get_ex (o, key, &v);
  return v;
}

static void
print_text (FILE *out, json_object *manifest, const struct file_stats *st,
            size_t nr, uint64_t total_wire, bool verify)
{
  json_object *dom = get (manifest, "domain"), *files = get (manifest, "files");
  json_object *src = get (manifest, "source");
  uint64_t total_alloc = 0;
  char a[32], b[32], c[32];

  fprintf (out, "domain:   %s\n", json_object_get_string (get (dom, "name")));
  fprintf (out, "uuid:     %s\n", json_object_get_string (get (dom, "uuid")));
  fprintf (out, "source:   %s\n", json_object_get_string (get (src, "host")));
  fprintf (out, "created:  %s by %s\n", json_object_get_string (get (manifest, "created")),
           json_object_get_string (get (manifest, "tool")));
  fprintf (out, "files:\n");
  fprintf (out, "  %-3s %-7s %-5s %-6s %10s %10s %10s %6s  %s\n", "#", "role",
           "dev", "format", "virtual", "allocated", "on wire", "ratio", "name");
  for (size_t i = 0; i < nr; i++) {
    json_object *f = json_object_array_get_idx (files, i);
    uint64_t alloc = json_object_get_uint64 (get (f, "allocated"));
    const char *target = json_object_get_string (get (f, "target"));

    total_alloc += alloc;
    vmferry_human_size (json_object_get_uint64 (get (f, "virtual_size")), a, sizeof a);
    vmferry_human_size (alloc, b, sizeof b);
    vmferry_human_size (st[i].wire, c, sizeof c);
    fprintf (out, "  %-3zu %-7s %-5s %-6s %10s %10s %10s %5.1f%%  %s%s\n", i,
             json_object_get_string (get (f, "role")), target ? target : "-",
             json_object_get_string (get (f, "format")), a, b, c,
             alloc ? 100.0 * st[i].wire / alloc : 0.0,
             json_object_get_string (get (f, "name")),
             verify ? (st[i].verified ? "  (verified)" : "  (NOT verified)") : "");
  }
  vmferry_human_size (total_alloc, a, sizeof a);
  vmferry_human_size (total_wire, b, sizeof b);
  fprintf (out, "stream:   %s for %s allocated (%.1f%%)%s\n", b, a,
           total_alloc ? 100.0 * total_wire / total_alloc : 0.0,
           verify ? ", every checksum and digest verified" : ", record checksums verified");
}

int
vmferry_info (int fd, const char *name, bool json, bool verify, FILE *out)
{
  struct vmferry_stream_reader *rd = vmferry_stream_reader_new (fd, name);
  struct vmferry_record rec;
  json_object *manifest = NULL;
  struct file_stats *st = NULL;
  struct vmferry_digest *dg = NULL;
  unsigned char *buf = NULL;
  size_t nr = 0;
  uint64_t total_wire = 0;
  bool ended = false;
  int r, ret = -1;

  if (rd == NULL)
    return -1;
  if (verify && !(buf = malloc (VMFERRY_CHUNK_SIZE))) {
    vmferry_set_error_errno (ENOMEM, "%s", name);
    goto out;
  }
  while ((r = vmferry_stream_read_record (rd, &rec)) == 1) {
    uint64_t wire = VMFERRY_REC_HEADER_SIZE + rec.payload_len;

    total_wire += wire;
    switch (rec.type) {
    case VMFERRY_REC_MANIFEST: {
      json_tokener *tok = json_tokener_new_ex (32);
      json_object *files;
      size_t len;
      char *text = vmferry_record_metadata (&rec, rec.payload, &len);
      if (text == NULL) {
        vmferry_prefix_error ("%s", name);
        json_tokener_free (tok);
        goto out;
      }
      manifest = tok ? json_tokener_parse_ex (tok, text, (int) len) : NULL;
      json_tokener_free (tok);
      free (text);
      files = manifest ? get (manifest, "files") : NULL;
      if (!files || !json_object_is_type (files, json_type_array)) {
        vmferry_set_error ("%s: record %" PRIu64 ": the manifest is not valid", name, rec.seq);
        goto out;
      }
      nr = json_object_array_length (files);
      if (nr > VMFERRY_MAX_FILES || !(st = calloc (nr ? nr : 1, sizeof *st))) {
        vmferry_set_error ("%s: manifest: too many files", name);
        goto out;
      }
      break;
    }
    case VMFERRY_REC_FILE_BEGIN:
    case VMFERRY_REC_DATA:
    case VMFERRY_REC_ZERO:
    case VMFERRY_REC_FILE_END:
      if (st == NULL || rec.file >= nr) {
        vmferry_set_error ("%s: record %" PRIu64 " (%s): file %" PRIu32
                           " is not in the manifest", name, rec.seq,
                           vmferry_record_type_name (rec.type), rec.file);
        goto out;
      }
      st[rec.file].wire += wire;
      st[rec.file].records++;
      if (rec.type == VMFERRY_REC_ZERO)
        st[rec.file].zero += rec.length;
      if (rec.type == VMFERRY_REC_DATA)
        st[rec.file].data += rec.length;
      if (!verify)
        break;
      if (rec.type == VMFERRY_REC_FILE_BEGIN && !(dg = vmferry_digest_new ()))
        goto out;
      if (rec.type == VMFERRY_REC_DATA) {
        if (vmferry_record_data (&rec, rec.payload, buf) < 0) {
          vmferry_prefix_error ("%s", name);
          goto out;
        }
        if (vmferry_digest_update (dg, rec.offset, buf, rec.length) < 0) {
          vmferry_prefix_error ("%s: record %" PRIu64 " (data) at byte %" PRIu64,
                                name, rec.seq, rec.stream_offset);
          goto out;
        }
      }
      if (rec.type == VMFERRY_REC_FILE_END) {
        unsigned char got[16];
        char want_hex[33], got_hex[33];
        vmferry_digest_final (dg, got);
        vmferry_digest_free (dg);
        dg = NULL;
        if (memcmp (got, rec.payload, 16) != 0) {
          vmferry_digest_hex (rec.payload, want_hex);
          vmferry_digest_hex (got, got_hex);
          vmferry_set_error ("%s: file %" PRIu32 ": digest mismatch (FILE_END says %s, "
                             "the data gives %s)", name, rec.file, want_hex, got_hex);
          goto out;
        }
        st[rec.file].verified = true;
      }
      break;
    case VMFERRY_REC_END:
      ended = true;
      break;
    default:
      break;
    }
  }
  if (r < 0)
    goto out;
  if (!ended || manifest == NULL) {
    vmferry_set_error ("%s: truncated: no END record", name);
    goto out;
  }
  if (json) {
    json_object *o = json_object_new_object ();
    json_object *files = json_object_new_array ();
    json_object_object_add (o, "manifest", json_object_get (manifest));
    for (size_t i = 0; i < nr; i++) {
      json_object *f = json_object_new_object ();
      json_object_object_add (f, "index", json_object_new_int64 ((int64_t) i));
      json_object_object_add (f, "wire_bytes", json_object_new_uint64 (st[i].wire));
      json_object_object_add (f, "data_bytes", json_object_new_uint64 (st[i].data));
      json_object_object_add (f, "zero_bytes", json_object_new_uint64 (st[i].zero));
      json_object_object_add (f, "records", json_object_new_uint64 (st[i].records));
      if (verify)
        json_object_object_add (f, "verified", json_object_new_boolean (st[i].verified));
      json_object_array_add (files, f);
    }
    json_object_object_add (o, "files", files);
    json_object_object_add (o, "wire_bytes", json_object_new_uint64 (total_wire));
    json_object_object_add (o, "verified", json_object_new_boolean (verify));
    fprintf (out, "%s\n", json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put (o);
  }
  else
    print_text (out, manifest, st, nr, total_wire, verify);
  ret = 0;
 out:
  vmferry_digest_free (dg);
  free (buf);
  free (st);
  json_object_put (manifest);
  vmferry_stream_reader_free (rd);
  return ret;
}
