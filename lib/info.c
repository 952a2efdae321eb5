/* vmferry: describe and verify a stream (see info.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cleanup-libc.h"
#include "digest.h"
#include "error.h"
#include "guest.h"
#include "human.h"
#include "import-dir.h"
#include "info.h"
#include "manifest.h"
#include "progress.h"
#include "stream.h"
#include "tar.h"
#include "text.h"
#include "validate.h"

struct file_stats {
  uint64_t wire, data, zero, records;
  bool verified;
};

/* Text from the stream, safe to print: the manifest parser refuses
 * control characters, and this escapes them again (and the invisible
 * characters that reorder a line) so that nothing a stream carries can
 * drive the terminal.  "-" for none.  The caller frees the result.
 */
static char *
shown (const char *s)
{
  char *e;

  if (s == NULL)
    return strdup ("-");
  e = vmferry_text_escape (s, strlen (s));
  return e ? e : strdup ("?");
}

static void
print_text (FILE *out, const struct vmferry_manifest *m,
            const struct file_stats *st, uint64_t total_wire, bool verify,
            bool handmade)
{
  CLEANUP_FREE char *dom = shown (m->domain_name);
  CLEANUP_FREE char *uuid = shown (m->domain_uuid);
  CLEANUP_FREE char *host = shown (m->source_host);
  CLEANUP_FREE char *created = shown (m->created);
  CLEANUP_FREE char *tool = shown (m->tool);
  uint64_t total_alloc = 0;
  char a[32], b[32], c[32];

  fprintf (out, "domain:   %s\n", dom ? dom : "?");
  fprintf (out, "uuid:     %s\n", uuid ? uuid : "?");
  fprintf (out, "source:   %s\n", host ? host : "?");
  fprintf (out, "created:  %s by %s\n", created ? created : "?",
           tool ? tool : "?");
  if (m->guest) {
    struct vmferry_guest_info *info = NULL;

    fprintf (out, "guest:\n");
    if (vmferry_guest_info_from_json (m->guest, &info) == 0)
      vmferry_guest_info_print (info, "  ", out);
    else
      fprintf (out, "  ?\n");
    vmferry_guest_info_free (info);
  }
  fprintf (out, "files:\n");
  fprintf (out, "  %-3s %-7s %-5s %-6s %10s %10s %10s %6s  %s\n", "#", "role",
           "dev", "format", "virtual", "allocated", "on wire", "ratio", "name");
  for (size_t i = 0; i < m->nr_files; i++) {
    const struct vmferry_manifest_file *f = &m->files[i];
    CLEANUP_FREE char *target = shown (f->target);
    CLEANUP_FREE char *format = shown (f->format);
    CLEANUP_FREE char *name = shown (f->name);

    total_alloc += f->allocated;
    vmferry_human_size (f->has_virtual_size ? f->virtual_size : f->size,
                        a, sizeof a);
    vmferry_human_size (f->allocated, b, sizeof b);
    vmferry_human_size (st[i].wire, c, sizeof c);
    fprintf (out, "  %-3zu %-7s %-5s %-6s %10s %10s %10s %5.1f%%  %s%s%s\n",
             i, vmferry_manifest_role_name (f->role), target ? target : "?",
             format ? format : "?", a, b, c,
             f->allocated ? 100.0 * st[i].wire / f->allocated : 0.0,
             name ? name : "?",
             f->guest ? "  (guest content of a running domain)" : "",
             !verify ? ""
             : st[i].verified ? "  (verified)" : "  (NOT verified)");
  }
  vmferry_human_size (total_alloc, a, sizeof a);
  vmferry_human_size (total_wire, b, sizeof b);
  fprintf (out, "stream:   %s for %s allocated (%.1f%%)%s\n", b, a,
           total_alloc ? 100.0 * total_wire / total_alloc : 0.0,
           handmade ? ", made by hand: no manifest, the content not "
                      "verified against a digest made at the source"
           : verify ? ", every checksum and digest verified"
           : ", record checksums verified");
}

/* One JSON object: the manifest as the parser understood it (known
 * members and the ones it kept without knowing them) and the figures.
 * json-c escapes every control character in strings.
 */
static int
print_json (FILE *out, const struct vmferry_manifest *m,
            const struct file_stats *st, uint64_t total_wire, bool verify,
            bool handmade)
{
  CLEANUP_FREE char *text = vmferry_manifest_to_json (m);
  json_object *o, *files, *manifest;

  if (text == NULL)
    return -1;
  manifest = json_tokener_parse (text);
  o = json_object_new_object ();
  files = json_object_new_array ();
  if (manifest == NULL || o == NULL || files == NULL) {
    json_object_put (manifest);
    json_object_put (o);
    json_object_put (files);
    vmferry_set_error_errno (ENOMEM, "json");
    return -1;
  }
  json_object_object_add (o, "format",
                          json_object_new_string (VMFERRY_INFO_JSON_FORMAT));
  json_object_object_add (o, "manifest", manifest);
  for (size_t i = 0; i < m->nr_files; i++) {
    json_object *f = json_object_new_object ();
#define ADD(key, v) json_object_object_add (f, key, v)
    ADD ("index", json_object_new_int64 ((int64_t) i));
    ADD ("wire_bytes", json_object_new_uint64 (st[i].wire));
    ADD ("data_bytes", json_object_new_uint64 (st[i].data));
    ADD ("zero_bytes", json_object_new_uint64 (st[i].zero));
    ADD ("records", json_object_new_uint64 (st[i].records));
    if (verify)
      ADD ("verified", json_object_new_boolean (st[i].verified));
#undef ADD
    json_object_array_add (files, f);
  }
  json_object_object_add (o, "files", files);
  json_object_object_add (o, "wire_bytes", json_object_new_uint64 (total_wire));
  json_object_object_add (o, "verified",
                          json_object_new_boolean (verify && !handmade));
  if (handmade)
    json_object_object_add (o, "made_by_hand", json_object_new_boolean (true));
  fprintf (out, "%s\n",
           json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY |
                                           JSON_C_TO_STRING_SPACED |
                                           JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (o);
  return 0;
}

/* The domain XML as stored, to OUT; with ESCAPE, each line as
 * vmferry_text_escape shows it (for a terminal: the XML is not parsed
 * here, so nothing else keeps control characters from it).
 */
static int
print_xml (FILE *out, const char *xml, size_t len, bool escape)
{
  if (!escape)
    return fwrite (xml, 1, len, out) == len ? 0 : -1;
  for (size_t i = 0; i < len; ) {
    const char *nl = memchr (xml + i, '\n', len - i);
    size_t n = nl ? (size_t) (nl - (xml + i)) : len - i;
    CLEANUP_FREE char *e = vmferry_text_escape (xml + i, n);
    if (e == NULL || fprintf (out, "%s\n", e) < 0)
      return -1;
    i += n + 1;
  }
  return 0;
}

/* vmferry_info, or with XML (ESCAPE as print_xml) vmferry_info_xml. */
static int
info (int fd, const char *name, bool json, bool xml, bool escape, bool verify,
      FILE *out)
{
  /* A stream or an archive (tar.h), told apart by its first bytes, or a
   * tar made by hand (import-dir.h).
   */
  struct vmferry_tar_reader *tar = NULL;
  struct vmferry_dir_reader *dir = NULL;
  struct vmferry_stream_reader *rd = vmferry_archive_open (fd, name, &tar,
                                                           &dir);
  struct vmferry_validator *v = vmferry_validator_new (name);
  const struct vmferry_manifest *m = NULL;
  struct vmferry_record rec;
  struct file_stats *st = NULL;
  struct vmferry_digest *dg = NULL;
  struct vmferry_map *map = NULL;
  unsigned char *buf = NULL;
  uint64_t total_wire = 0;
  int r, ret = -1;

  if (rd == NULL || v == NULL)
    goto out;
  if (verify && !(buf = malloc (VMFERRY_CHUNK_SIZE))) {
    vmferry_set_error_errno (ENOMEM, "%s", name);
    goto out;
  }
  while ((r = vmferry_stream_read_record (rd, &rec)) == 1) {
    uint64_t wire = VMFERRY_REC_HEADER_SIZE + rec.payload_len;

    /* What the importer refuses is refused here, by the same checks. */
    if (vmferry_validator_record (v, &rec) < 0)
      goto out;
    total_wire += wire;
    switch (rec.type) {
    case VMFERRY_REC_MANIFEST:
      m = vmferry_validator_manifest (v);
      st = calloc (m->nr_files ? m->nr_files : 1, sizeof *st);
      if (st == NULL) {
        vmferry_set_error_errno (ENOMEM, "%s", name);
        goto out;
      }
      break;
    case VMFERRY_REC_FILE_BEGIN:
    case VMFERRY_REC_DATA:
    case VMFERRY_REC_ZERO:
    case VMFERRY_REC_FILE_END:
    case VMFERRY_REC_FILE_MAP:
      /* The validator checked that the file is in the manifest. */
      st[rec.file].wire += wire;
      st[rec.file].records++;
      if (rec.type == VMFERRY_REC_ZERO)
        st[rec.file].zero += rec.length;
      if (rec.type == VMFERRY_REC_DATA)
        st[rec.file].data += rec.length;
      if (!verify)
        break;
      if (rec.type == VMFERRY_REC_FILE_BEGIN) {
        uint64_t size;
        if (!(dg = vmferry_digest_new ()) ||
            vmferry_record_file_begin (&rec, rec.payload, &size) < 0 ||
            !(map = vmferry_map_new (size, VMFERRY_MAP_CHUNK_SIZE)))
          goto out;
      }
      if (rec.type == VMFERRY_REC_FILE_MAP) {
        unsigned char want[16], got[16];
        char want_hex[33], got_hex[33];
        uint64_t chunk;
        if (vmferry_record_file_map (&rec, rec.payload, &chunk, want) < 0) {
          vmferry_prefix_error ("%s", name);
          goto out;
        }
        /* Another chunk size is not this version's: not compared. */
        if (chunk == VMFERRY_MAP_CHUNK_SIZE) {
          if (vmferry_map_root (map, got) < 0)
            goto out;
          if (memcmp (got, want, 16) != 0) {
            vmferry_digest_hex (want, want_hex);
            vmferry_digest_hex (got, got_hex);
            vmferry_set_error ("%s: file %" PRIu32 ": map root mismatch "
                               "(FILE_MAP says %s, the data gives %s)",
                               name, rec.file, want_hex, got_hex);
            goto out;
          }
        }
      }
      if (rec.type == VMFERRY_REC_DATA) {
        if (vmferry_record_data (&rec, rec.payload, buf) < 0) {
          vmferry_prefix_error ("%s", name);
          goto out;
        }
        if (vmferry_digest_update_map (dg, NULL, map, rec.offset, buf,
                                       rec.length) < 0) {
          vmferry_prefix_error ("%s: record %" PRIu64 " (data) at byte %"
                                PRIu64, name, rec.seq, rec.stream_offset);
          goto out;
        }
      }
      if (rec.type == VMFERRY_REC_FILE_END) {
        unsigned char want[16], got[16];
        char want_hex[33], got_hex[33];
        if (vmferry_record_file_end (&rec, rec.payload, want) < 0) {
          vmferry_prefix_error ("%s", name);
          goto out;
        }
        vmferry_digest_final (dg, got);
        vmferry_digest_free (dg);
        dg = NULL;
        vmferry_map_free (map);
        map = NULL;
        if (memcmp (got, want, 16) != 0) {
          vmferry_digest_hex (want, want_hex);
          vmferry_digest_hex (got, got_hex);
          vmferry_set_error ("%s: file %" PRIu32 ": digest mismatch "
                             "(FILE_END says %s, the data gives %s)",
                             name, rec.file, want_hex, got_hex);
          goto out;
        }
        st[rec.file].verified = true;
      }
      break;
    default:
      break;
    }
  }
  if (r < 0) {
    vmferry_tar_reader_explain (tar);
    vmferry_dir_reader_explain (dir);
  }
  if (r < 0 || vmferry_validator_finish (v) < 0)
    goto out;
  /* A tar made by hand: its digests are of what was just read. */
  for (size_t i = 0; dir && i < m->nr_files; i++)
    st[i].verified = false;
  if (xml) {
    size_t len;
    const char *x = vmferry_validator_xml (v, &len);
    if (print_xml (out, x, len, escape) < 0) {
      vmferry_set_error_errno (errno, "%s: domain XML: cannot print", name);
      goto out;
    }
  }
  else if (json) {
    if (print_json (out, m, st, total_wire, verify, dir != NULL) < 0)
      goto out;
  }
  else
    print_text (out, m, st, total_wire, verify, dir != NULL);
  ret = 0;
 out:
  vmferry_digest_free (dg);
  vmferry_map_free (map);
  free (buf);
  free (st);
  vmferry_validator_free (v);
  vmferry_stream_reader_free (rd);
  vmferry_tar_reader_free (tar);
  vmferry_dir_reader_free (dir);
  return ret;
}

int
vmferry_info (int fd, const char *name, bool json, bool verify, FILE *out)
{
  return info (fd, name, json, false, false, verify, out);
}

int
vmferry_info_xml (int fd, const char *name, bool verify, bool escape,
                  FILE *out)
{
  return info (fd, name, false, true, escape, verify, out);
}
