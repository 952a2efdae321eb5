/* vmferry: what a stream must be beyond its record rules (see
 * validate.h).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "text.h"
#include "validate.h"

struct vmferry_validator {
  char *name;
  bool failed;
  bool have_header;
  struct vmferry_stream_header header;
  char *manifest_text;
  size_t manifest_len;
  struct vmferry_manifest *m;
  char *xml;
  size_t xml_len;
  unsigned char *state;         /* per manifest file: BEGUN | ENDED */
  int64_t current;              /* the file between FILE_BEGIN and FILE_END */
  bool ended;                   /* END seen */
};

#define BEGUN 1
#define ENDED 2

struct vmferry_validator *
vmferry_validator_new (const char *input_name)
{
  struct vmferry_validator *v = calloc (1, sizeof *v);

  if (v == NULL || (v->name = strdup (input_name)) == NULL) {
    free (v);
    vmferry_set_error_errno (ENOMEM, "%s", input_name);
    return NULL;
  }
  v->current = -1;
  return v;
}

void
vmferry_validator_free (struct vmferry_validator *v)
{
  if (v == NULL)
    return;
  free (v->name);
  free (v->manifest_text);
  vmferry_manifest_free (v->m);
  free (v->xml);
  free (v->state);
  free (v);
}

/* Set "NAME: record N (type) at byte B: message"; returns -1. */
static int __attribute__ ((format (printf, 3, 4)))
fail (struct vmferry_validator *v, const struct vmferry_record *rec,
      const char *fs, ...)
{
  char msg[VMFERRY_ERROR_MAX];
  va_list ap;

  va_start (ap, fs);
  vsnprintf (msg, sizeof msg, fs, ap);
  va_end (ap);
  vmferry_set_error ("%s: record %" PRIu64 " (%s) at byte %" PRIu64 ": %s",
                     v->name, rec->seq, vmferry_record_type_name (rec->type),
                     rec->stream_offset, msg);
  v->failed = true;
  return -1;
}

/* A lower layer's error, which already names the record. */
static int
fail_prefix (struct vmferry_validator *v)
{
  vmferry_prefix_error ("%s", v->name);
  v->failed = true;
  return -1;
}

static int
on_manifest (struct vmferry_validator *v, const struct vmferry_record *rec)
{
  if (v->manifest_text)
    return fail (v, rec, "a second manifest");
  v->manifest_text = vmferry_record_metadata (rec, rec->payload,
                                              &v->manifest_len);
  if (v->manifest_text == NULL)
    return fail_prefix (v);
  if (vmferry_manifest_parse (v->manifest_text, v->manifest_len, NULL,
                              &v->m) < 0) {
    vmferry_prefix_error ("%s: record %" PRIu64 " (manifest) at byte %" PRIu64,
                          v->name, rec->seq, rec->stream_offset);
    v->failed = true;
    return -1;
  }
  /* A reader that knew no GUEST would have refused the stream: one
   * that does not say so is not what a vmferry wrote.
   */
  for (size_t i = 0; i < v->m->nr_files; i++)
    if (v->m->files[i].guest &&
        !(v->header.mandatory & VMFERRY_FEATURE_GUEST))
      return fail (v, rec, "file %zu holds guest content but the stream "
                   "header lacks the GUEST feature", i);
  v->state = calloc (v->m->nr_files ? v->m->nr_files : 1, 1);
  if (v->state == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", v->name);
    v->failed = true;
    return -1;
  }
  return 0;
}

static int
on_xml (struct vmferry_validator *v, const struct vmferry_record *rec)
{
  char *xml;
  size_t len, bad;

  if (v->m == NULL)
    return fail (v, rec, "the domain XML came before the manifest");
  if (v->xml)
    return fail (v, rec, "a second domain XML");
  /* Refuses a NUL byte and more than VMFERRY_MAX_METADATA bytes, also
   * after decompression.
   */
  xml = vmferry_record_metadata (rec, rec->payload, &len);
  if (xml == NULL)
    return fail_prefix (v);
  if (len > VMFERRY_MAX_METADATA) {
    free (xml);
    return fail (v, rec, "the domain XML is %zu bytes, more than the limit "
                 "of %d", len, VMFERRY_MAX_METADATA);
  }
  if (!vmferry_utf8_valid (xml, len, &bad)) {
    free (xml);
    return fail (v, rec, "the domain XML is not valid UTF-8 (at byte %zu)",
                 bad);
  }
  v->xml = xml;
  v->xml_len = len;
  return 0;
}

static int
on_file_begin (struct vmferry_validator *v, const struct vmferry_record *rec)
{
  const struct vmferry_manifest_file *f;
  uint64_t size;

  if (v->xml == NULL)
    return fail (v, rec, "a file begins before the domain XML");
  if (vmferry_record_file_begin (rec, rec->payload, &size) < 0)
    return fail_prefix (v);
  f = vmferry_manifest_file (v->m, rec->file);
  if (f == NULL)
    return fail (v, rec, "file %" PRIu32 " is not in the manifest (it lists "
                 "%zu files)", rec->file, v->m->nr_files);
  if (v->current >= 0)
    return fail (v, rec, "file %" PRIu32 " begins inside file %" PRId64,
                 rec->file, v->current);
  if (v->state[rec->file] & BEGUN)
    return fail (v, rec, "file %" PRIu32 " (%s) begins a second time",
                 rec->file, f->name);
  if (size != f->size)
    return fail (v, rec, "file %" PRIu32 " (%s) is %" PRIu64 " bytes, the "
                 "manifest says %" PRIu64, rec->file, f->name, size, f->size);
  v->state[rec->file] |= BEGUN;
  v->current = rec->file;
  return 0;
}

static int
on_range (struct vmferry_validator *v, const struct vmferry_record *rec)
{
  const struct vmferry_manifest_file *f;

  if (v->current < 0 || rec->file != v->current)
    return fail (v, rec, "a record of file %" PRIu32 " outside that file",
                 rec->file);
  f = &v->m->files[rec->file];
  if (rec->length > f->size || rec->offset > f->size - rec->length)
    return fail (v, rec, "range %" PRIu64 "+%" PRIu64 " goes beyond the size "
                 "of file %" PRIu32 " (%s), %" PRIu64, rec->offset,
                 rec->length, rec->file, f->name, f->size);
  return 0;
}

static int
on_file_end (struct vmferry_validator *v, const struct vmferry_record *rec)
{
  unsigned char digest[16];

  if (v->current < 0 || rec->file != v->current)
    return fail (v, rec, "file %" PRIu32 " ends but has not begun",
                 rec->file);
  if (vmferry_record_file_end (rec, rec->payload, digest) < 0)
    return fail_prefix (v);
  v->state[rec->file] |= ENDED;
  v->current = -1;
  return 0;
}

static int
on_end (struct vmferry_validator *v, const struct vmferry_record *rec)
{
  uint64_t n;

  if (v->xml == NULL)
    return fail (v, rec, "the stream ends before its domain XML");
  if (vmferry_record_end (rec, rec->payload, &n) < 0)
    return fail_prefix (v);
  if (v->current >= 0)
    return fail (v, rec, "the stream ends inside file %" PRId64, v->current);
  if (n != v->m->nr_files)
    return fail (v, rec, "the stream counts %" PRIu64 " files, the manifest "
                 "lists %zu", n, v->m->nr_files);
  for (size_t i = 0; i < v->m->nr_files; i++)
    if (v->state[i] != (BEGUN | ENDED))
      return fail (v, rec, "file %zu (%s) of the manifest is not in the "
                   "stream", i, v->m->files[i].name);
  v->ended = true;
  return 0;
}

int
vmferry_validator_record (struct vmferry_validator *v,
                          const struct vmferry_record *rec)
{
  if (v->failed) {
    vmferry_set_error ("%s: cannot continue after an earlier error", v->name);
    return -1;
  }
  if (v->ended)
    return fail (v, rec, "a record after the END record");
  if (!v->have_header && rec->type != VMFERRY_REC_STREAM_HEADER)
    return fail (v, rec, "the stream does not start with its header");

  switch (rec->type) {
  case VMFERRY_REC_STREAM_HEADER:
    if (v->have_header)
      return fail (v, rec, "a second stream header");
    if (vmferry_record_stream_header (rec, rec->payload, &v->header) < 0)
      return fail_prefix (v);
    v->have_header = true;
    return 0;
  case VMFERRY_REC_MANIFEST:
    return on_manifest (v, rec);
  case VMFERRY_REC_DOMAIN_XML:
    return on_xml (v, rec);
  case VMFERRY_REC_FILE_BEGIN:
    return on_file_begin (v, rec);
  case VMFERRY_REC_DATA:
  case VMFERRY_REC_ZERO:
    return on_range (v, rec);
  case VMFERRY_REC_FILE_END:
    return on_file_end (v, rec);
  case VMFERRY_REC_END:
    return on_end (v, rec);
  default:
    return 0;                   /* skippable, passed on by the reader */
  }
}

int
vmferry_validator_finish (struct vmferry_validator *v)
{
  if (v->failed) {
    vmferry_set_error ("%s: cannot continue after an earlier error", v->name);
    return -1;
  }
  if (!v->ended) {
    vmferry_set_error ("%s: truncated: the stream ended before its END "
                       "record", v->name);
    v->failed = true;
    return -1;
  }
  return 0;
}

const struct vmferry_stream_header *
vmferry_validator_header (const struct vmferry_validator *v)
{
  return v->have_header ? &v->header : NULL;
}

const struct vmferry_manifest *
vmferry_validator_manifest (const struct vmferry_validator *v)
{
  return v->m;
}

const char *
vmferry_validator_manifest_text (const struct vmferry_validator *v,
                                 size_t *len_rtn)
{
  if (len_rtn)
    *len_rtn = v->manifest_len;
  return v->m ? v->manifest_text : NULL;
}

const char *
vmferry_validator_xml (const struct vmferry_validator *v, size_t *len_rtn)
{
  if (len_rtn)
    *len_rtn = v->xml_len;
  return v->xml;
}
