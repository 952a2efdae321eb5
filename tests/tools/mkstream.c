/* mkstream: write a small vmferry stream, valid or deliberately broken,
 * for the tests that check what readers refuse (tests/hostile).  Not
 * installed.
 *
 *   mkstream [OPTION]... OUTPUT|-
 *
 * By default the stream is valid: FILES disk files of SIZE bytes each,
 * every file a data block, a zero block and a hole in turn, a manifest
 * made by the project's own emitter and a small domain XML.  The options
 * break one thing each:
 *
 *   --files N              files in the stream (default 1)
 *   --size BYTES           size of each file (default 200000)
 *   --set PATH=JSON        set a manifest member: PATH is dotted, array
 *                          elements by number ("files.0.name"), JSON is
 *                          the value as JSON ('"../x"', '2', 'null');
 *                          "totals" is recomputed unless PATH sets it
 *   --del PATH             remove a manifest member (or array element)
 *   --manifest FILE        the manifest payload is FILE's bytes
 *   --manifest-zstd        compress the manifest record
 *   --xml FILE             the domain XML payload is FILE's bytes
 *   --xml-size BYTES       pad the default XML with a comment to BYTES
 *   --xml-zstd             compress the domain XML record
 *   --omit-files N         the last N files of the manifest are not in
 *                          the stream (END counts the ones that are)
 *   --begin-size K=BYTES   file K's FILE_BEGIN says BYTES (its records
 *                          fit that size); the manifest keeps SIZE
 *   --bad-digest K         file K's FILE_END carries a wrong digest
 *   --end-count N          END says N files
 *   --no-end               stop before END (a truncated stream)
 *   --content FILE         every file's bytes are FILE's (its size is
 *                          SIZE): a real image, say a hostile qcow2;
 *                          given N times, file K gets the (K mod N)th
 *                          FILE and its size
 *   --zeros                --content's all-zero blocks are ZERO records
 *                          (default: holes)
 *   --zstd                 DATA payloads are zstd frames
 *   --seal-state FILE      write no stream: OUTPUT gets FILE's text (a
 *                          resume state's JSON) with the check line an
 *                          importer writes after it, for forged states
 *   --raw                  encode records here, without the writer's
 *                          checks (for records the writer refuses, such
 *                          as a raw payload beyond the limits)
 *
 * Exit status 0 when the stream was written as asked.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <xxhash.h>
#include <zstd.h>

#include "digest.h"
#include "error.h"
#include "manifest.h"
#include "stream.h"

#define MAX_EDITS 64
#define MAX_CONTENTS 8

static const char *prog = "mkstream";

struct opts {
  unsigned files;
  uint64_t size;
  const char *set[MAX_EDITS], *del[MAX_EDITS];
  size_t nr_set, nr_del;
  const char *manifest_file, *xml_file;
  bool manifest_zstd, xml_zstd;
  size_t xml_size;
  long begin_file;              /* -1: none */
  uint64_t begin_size;
  long bad_digest;              /* -1: none */
  unsigned omit;                /* files listed but not carried */
  long long end_count;          /* -1: the real count */
  bool no_end, raw;
  /* --content: file K's bytes are contents[K % nr_contents]. */
  unsigned char *contents[MAX_CONTENTS];
  uint64_t content_sizes[MAX_CONTENTS];
  size_t nr_contents;
  bool zeros, zstd;
};

/* File K's size as the manifest gives it. */
static uint64_t
file_size (const struct opts *op, unsigned k)
{
  if (op->nr_contents)
    return op->content_sizes[k % op->nr_contents];
  return op->size;
}

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fs, ...)
{
  va_list ap;

  fprintf (stderr, "%s: ", prog);
  va_start (ap, fs);
  vfprintf (stderr, fs, ap);
  va_end (ap);
  fprintf (stderr, "\n");
  exit (EXIT_FAILURE);
}

static void __attribute__ ((noreturn))
die_lib (const char *what)
{
  die ("%s: %s", what, vmferry_get_error ());
}

static void *
xmalloc (size_t len)
{
  void *p = malloc (len ? len : 1);

  if (p == NULL)
    die ("out of memory");
  return p;
}

static uint64_t
number (const char *s, const char *opt)
{
  char *end;
  unsigned long long v;

  errno = 0;
  v = strtoull (s, &end, 0);
  if (errno || end == s || *end)
    die ("%s: '%s' is not a number", opt, s);
  return v;
}

static char *
read_file (const char *path, size_t *len_rtn)
{
  FILE *fp = fopen (path, "rb");
  char *buf = NULL;
  size_t cap = 0, len = 0, n;

  if (fp == NULL)
    die ("%s: %s", path, strerror (errno));
  do {
    if (len == cap) {
      cap = cap ? 2 * cap : 65536;
      buf = realloc (buf, cap);
      if (buf == NULL)
        die ("out of memory");
    }
    n = fread (buf + len, 1, cap - len, fp);
    len += n;
  } while (n > 0);
  if (ferror (fp))
    die ("%s: read error", path);
  fclose (fp);
  *len_rtn = len;
  return buf;
}

/* ---- Records: through the writer, or encoded here (--raw) ---- */

struct out {
  struct vmferry_stream_writer *w;
  int fd;
  uint64_t seq;
};

static void
emit (struct out *o, uint16_t type, uint16_t flags, uint32_t file,
      uint64_t offset, uint64_t length, const void *payload, size_t len)
{
  struct vmferry_record rec = {
    .type = type, .flags = flags, .file = file, .payload_len = len,
    .offset = offset, .length = length,
  };
  unsigned char hdr[VMFERRY_REC_HEADER_SIZE];

  if (o->w) {
    if (vmferry_stream_write_record (o->w, &rec, payload) < 0)
      die_lib ("write");
    return;
  }
  rec.seq = o->seq++;
  vmferry_record_encode_header (&rec, hdr);
  rec.checksum = vmferry_record_checksum (hdr, payload, len);
  vmferry_record_encode_header (&rec, hdr);
  if (write (o->fd, hdr, sizeof hdr) != (ssize_t) sizeof hdr ||
      (len && write (o->fd, payload, len) != (ssize_t) len))
    die ("write: %s", strerror (errno));
}

static void
emit_u64 (struct out *o, uint16_t type, uint32_t file, uint64_t v)
{
  unsigned char p[8];

  for (int i = 0; i < 8; i++)
    p[i] = v >> (8 * i);
  emit (o, type, 0, file, 0, 0, p, sizeof p);
}

/* A metadata record, compressed into one zstd frame with ZSTD. */
static void
emit_text (struct out *o, uint16_t type, const char *text, size_t len,
           bool zstd)
{
  size_t cap, n;
  void *frame;

  if (!zstd) {
    emit (o, type, 0, 0, 0, 0, text, len);
    return;
  }
  cap = ZSTD_compressBound (len);
  frame = xmalloc (cap);
  n = ZSTD_compress (frame, cap, text, len, 3);
  if (ZSTD_isError (n))
    die ("zstd: %s", ZSTD_getErrorName (n));
  emit (o, type, VMFERRY_REC_F_ZSTD, 0, 0, 0, frame, n);
  free (frame);
}

/* ---- The manifest ---- */

/* The member PATH names in ROOT: its parent and its last component. */
static json_object *
walk (json_object *root, const char *path, char **last_rtn)
{
  char *copy = strdup (path), *save = NULL, *part, *next;
  json_object *o = root;

  if (copy == NULL)
    die ("out of memory");
  part = strtok_r (copy, ".", &save);
  while (part && (next = strtok_r (NULL, ".", &save)) != NULL) {
    json_object *c = NULL;
    if (json_object_is_type (o, json_type_array))
      c = json_object_array_get_idx (o, number (part, path));
    else if (json_object_is_type (o, json_type_object))
      json_object_object_get_ex (o, part, &c);
    if (c == NULL)
      die ("%s: no member %s", path, part);
    o = c;
    part = next;
  }
  if (part == NULL)
    die ("%s: empty path", path);
  *last_rtn = strdup (part);
  free (copy);
  return o;
}

static void
edit_set (json_object *root, const char *arg)
{
  const char *eq = strchr (arg, '=');
  char *path, *last;
  json_object *parent, *v;
  json_tokener *tok;

  if (eq == NULL)
    die ("--set %s: expected PATH=JSON", arg);
  path = strndup (arg, eq - arg);
  tok = json_tokener_new ();
  /* With its NUL: a number at the very end is complete. */
  v = json_tokener_parse_ex (tok, eq + 1, (int) strlen (eq + 1) + 1);
  if (json_tokener_get_error (tok) != json_tokener_success)
    die ("--set %s: the value is not JSON", arg);
  json_tokener_free (tok);
  parent = walk (root, path, &last);
  if (json_object_is_type (parent, json_type_array)) {
    if (json_object_array_put_idx (parent, number (last, arg), v) < 0)
      die ("--set %s: cannot set", arg);
  }
  else if (json_object_object_add (parent, last, v) < 0)
    die ("--set %s: cannot set", arg);
  free (path);
  free (last);
}

static void
edit_del (json_object *root, const char *path)
{
  char *last;
  json_object *parent = walk (root, path, &last);

  if (json_object_is_type (parent, json_type_array))
    json_object_array_del_idx (parent, number (last, path), 1);
  else
    json_object_object_del (parent, last);
  free (last);
}

/* "totals" as the files' sums, so that an edit of one file's size tests
 * that, not the totals.
 */
static void
fix_totals (json_object *root)
{
  json_object *files, *totals, *v;
  uint64_t size = 0, alloc = 0;

  if (!json_object_object_get_ex (root, "files", &files) ||
      !json_object_is_type (files, json_type_array) ||
      !json_object_object_get_ex (root, "totals", &totals) ||
      !json_object_is_type (totals, json_type_object))
    return;
  for (size_t i = 0; i < json_object_array_length (files); i++) {
    json_object *f = json_object_array_get_idx (files, i);
    if (json_object_object_get_ex (f, "size", &v))
      size += json_object_get_uint64 (v);
    if (json_object_object_get_ex (f, "allocated", &v))
      alloc += json_object_get_uint64 (v);
  }
  json_object_object_add (totals, "size", json_object_new_uint64 (size));
  json_object_object_add (totals, "allocated", json_object_new_uint64 (alloc));
}

static char *
make_manifest (const struct opts *op, size_t *len_rtn)
{
  struct vmferry_manifest m = {
    .version = VMFERRY_MANIFEST_VERSION,
    .tool = (char *) "mkstream", .created = (char *) "2024-05-01T12:00:00Z",
    .source_host = (char *) "src.example",
    .source_uri = (char *) "qemu:///system",
    .domain_name = (char *) "mk",
    .domain_uuid = (char *) "6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e",
    .nr_files = op->files,
  };
  char (*names)[32], (*paths)[64];
  char *text, *ret;
  json_object *root;
  bool totals_set = false;
  int flags;

  if (op->manifest_file)
    return read_file (op->manifest_file, len_rtn);
  names = xmalloc (op->files * sizeof *names);
  paths = xmalloc (op->files * sizeof *paths);
  m.files = calloc (op->files ? op->files : 1, sizeof *m.files);
  if (m.files == NULL)
    die ("out of memory");
  for (unsigned k = 0; k < op->files; k++) {
    struct vmferry_manifest_file *f = &m.files[k];
    snprintf (names[k], sizeof names[k], "disk%u.img", k);
    snprintf (paths[k], sizeof paths[k],
              "/var/lib/libvirt/images/disk%u.img", k);
    f->index = k;
    f->role = VMFERRY_MANIFEST_DISK;
    f->name = names[k];
    f->source_path = paths[k];
    f->format = (char *) "raw";
    f->size = f->allocated = f->virtual_size = file_size (op, k);
    f->has_virtual_size = true;
    f->backing = -1;
  }
  text = vmferry_manifest_to_json (&m);
  if (text == NULL)
    die_lib ("manifest");
  free (m.files);
  free (names);
  free (paths);
  if (op->nr_set == 0 && op->nr_del == 0) {
    *len_rtn = strlen (text);
    return text;
  }

  /* Edits go through json-c: they may break what the emitter refuses. */
  root = json_tokener_parse (text);
  free (text);
  for (size_t i = 0; i < op->nr_del; i++) {
    edit_del (root, op->del[i]);
    totals_set |= strncmp (op->del[i], "totals", 6) == 0;
  }
  for (size_t i = 0; i < op->nr_set; i++) {
    edit_set (root, op->set[i]);
    totals_set |= strncmp (op->set[i], "totals", 6) == 0;
  }
  if (!totals_set)
    fix_totals (root);
  flags = JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE;
  ret = strdup (json_object_to_json_string_ext (root, flags));
  json_object_put (root);
  *len_rtn = strlen (ret);
  return ret;
}

static char *
make_xml (const struct opts *op, size_t *len_rtn)
{
  static const char head[] =
    "<domain type='kvm'>\n  <name>mk</name>\n"
    "  <uuid>6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e</uuid>\n"
    "  <memory unit='KiB'>65536</memory>\n  <os><type>hvm</type></os>\n";
  static const char tail[] = "</domain>\n";
  size_t len = strlen (head) + strlen (tail), pad = 0;
  char *xml, *p;

  if (op->xml_file)
    return read_file (op->xml_file, len_rtn);
  /* "<!--" + pad + "-->\n" */
  if (op->xml_size > len + 8)
    pad = op->xml_size - len - 8;
  xml = xmalloc (len + (pad ? pad + 8 : 0) + 1);
  p = stpcpy (xml, head);
  if (pad) {
    p = stpcpy (p, "<!--");
    memset (p, 'x', pad);
    p = stpcpy (p + pad, "-->\n");
  }
  p = stpcpy (p, tail);
  *len_rtn = p - xml;
  return xml;
}

/* ---- Files ---- */

/* A DATA record of LEN bytes at OFF of file K: raw, or with --zstd one
 * frame that declares its size.
 */
static void
emit_data (struct out *o, const struct opts *op, unsigned k, uint64_t off,
           const unsigned char *p, size_t len)
{
  size_t cap, n;
  void *frame;

  if (!op->zstd) {
    emit (o, VMFERRY_REC_DATA, 0, k, off, len, p, len);
    return;
  }
  cap = ZSTD_compressBound (len);
  frame = xmalloc (cap);
  n = ZSTD_compress (frame, cap, p, len, 3);
  if (ZSTD_isError (n))
    die ("zstd: %s", ZSTD_getErrorName (n));
  emit (o, VMFERRY_REC_DATA, VMFERRY_REC_F_ZSTD, k, off, len, frame, n);
  free (frame);
}

static void
emit_file (struct out *o, const struct opts *op, unsigned k)
{
  uint64_t size = (long) k == op->begin_file ? op->begin_size
                  : file_size (op, k);
  const unsigned char *content =
    op->nr_contents ? op->contents[k % op->nr_contents] : NULL;
  uint64_t content_size = content ? file_size (op, k) : 0;
  unsigned char *block = xmalloc (VMFERRY_BLOCK_SIZE);
  struct vmferry_digest *dg = vmferry_digest_new ();
  unsigned char digest[16];

  if (dg == NULL)
    die_lib ("digest");
  emit_u64 (o, VMFERRY_REC_FILE_BEGIN, k, size);
  /* Block by block: data, zero, hole, data, ... (or --content's data,
   * its zero blocks left as holes or, with --zeros, ZERO records).
   */
  for (uint64_t off = 0, b = 0; off < size; off += VMFERRY_BLOCK_SIZE, b++) {
    uint64_t len = size - off < VMFERRY_BLOCK_SIZE
                   ? size - off : VMFERRY_BLOCK_SIZE;
    if (content) {
      /* --begin-size may make the file longer than its content. */
      uint64_t have = off < content_size ? content_size - off : 0;
      bool zero = true;
      memset (block, 0, len);
      memcpy (block, content + off, have < len ? have : len);
      for (uint64_t i = 0; i < len && zero; i++)
        zero = block[i] == 0;
      if (!zero) {
        emit_data (o, op, k, off, block, len);
        if (vmferry_digest_update (dg, off, block, len) < 0)
          die_lib ("digest");
      }
      else if (op->zeros)
        emit (o, VMFERRY_REC_ZERO, 0, k, off, len, NULL, 0);
    }
    else if (b % 3 == 0) {
      for (uint64_t i = 0; i < len; i++)
        block[i] = (unsigned char) (k * 7 + b + i) | 1;
      emit_data (o, op, k, off, block, len);
      if (vmferry_digest_update (dg, off, block, len) < 0)
        die_lib ("digest");
    }
    else if (b % 3 == 1)
      emit (o, VMFERRY_REC_ZERO, 0, k, off, len, NULL, 0);
  }
  vmferry_digest_final (dg, digest);
  if ((long) k == op->bad_digest)
    digest[0] ^= 0xff;
  emit (o, VMFERRY_REC_FILE_END, 0, k, 0, 0, digest, sizeof digest);
  vmferry_digest_free (dg);
  free (block);
}

/* ---- main ---- */

enum {
  OPT_FILES = 256, OPT_SIZE, OPT_SET, OPT_DEL, OPT_MANIFEST, OPT_MANIFEST_ZSTD,
  OPT_XML, OPT_XML_SIZE, OPT_XML_ZSTD, OPT_BEGIN_SIZE, OPT_BAD_DIGEST,
  OPT_END_COUNT, OPT_NO_END, OPT_RAW, OPT_OMIT_FILES, OPT_CONTENT,
  OPT_SEAL_STATE, OPT_ZEROS, OPT_ZSTD,
};

static const struct option long_options[] = {
  { "files", required_argument, NULL, OPT_FILES },
  { "size", required_argument, NULL, OPT_SIZE },
  { "set", required_argument, NULL, OPT_SET },
  { "del", required_argument, NULL, OPT_DEL },
  { "manifest", required_argument, NULL, OPT_MANIFEST },
  { "manifest-zstd", no_argument, NULL, OPT_MANIFEST_ZSTD },
  { "xml", required_argument, NULL, OPT_XML },
  { "xml-size", required_argument, NULL, OPT_XML_SIZE },
  { "xml-zstd", no_argument, NULL, OPT_XML_ZSTD },
  { "begin-size", required_argument, NULL, OPT_BEGIN_SIZE },
  { "bad-digest", required_argument, NULL, OPT_BAD_DIGEST },
  { "end-count", required_argument, NULL, OPT_END_COUNT },
  { "no-end", no_argument, NULL, OPT_NO_END },
  { "raw", no_argument, NULL, OPT_RAW },
  { "omit-files", required_argument, NULL, OPT_OMIT_FILES },
  { "content", required_argument, NULL, OPT_CONTENT },
  { "seal-state", required_argument, NULL, OPT_SEAL_STATE },
  { "zeros", no_argument, NULL, OPT_ZEROS },
  { "zstd", no_argument, NULL, OPT_ZSTD },
  { NULL, 0, NULL, 0 }
};

int
main (int argc, char *argv[])
{
  struct opts op = {
    .files = 1, .size = 200000, .begin_file = -1, .bad_digest = -1,
    .end_count = -1,
  };
  struct out o = { .fd = STDOUT_FILENO };
  const char *out_name = "stdout", *seal = NULL;
  char *manifest, *xml;
  size_t manifest_len, xml_len;
  int c;

  while ((c = getopt_long (argc, argv, "", long_options, NULL)) != -1) {
    switch (c) {
    case OPT_FILES: op.files = number (optarg, "--files"); break;
    case OPT_SIZE: op.size = number (optarg, "--size"); break;
    case OPT_SET:
      if (op.nr_set == MAX_EDITS)
        die ("too many --set");
      op.set[op.nr_set++] = optarg;
      break;
    case OPT_DEL:
      if (op.nr_del == MAX_EDITS)
        die ("too many --del");
      op.del[op.nr_del++] = optarg;
      break;
    case OPT_MANIFEST: op.manifest_file = optarg; break;
    case OPT_MANIFEST_ZSTD: op.manifest_zstd = true; break;
    case OPT_XML: op.xml_file = optarg; break;
    case OPT_XML_SIZE: op.xml_size = number (optarg, "--xml-size"); break;
    case OPT_XML_ZSTD: op.xml_zstd = true; break;
    case OPT_BEGIN_SIZE: {
      char *eq = strchr (optarg, '=');
      if (eq == NULL)
        die ("--begin-size: expected K=BYTES");
      *eq = '\0';
      op.begin_file = number (optarg, "--begin-size");
      op.begin_size = number (eq + 1, "--begin-size");
      break;
    }
    case OPT_BAD_DIGEST: op.bad_digest = number (optarg, "--bad-digest"); break;
    case OPT_END_COUNT: op.end_count = number (optarg, "--end-count"); break;
    case OPT_NO_END: op.no_end = true; break;
    case OPT_RAW: op.raw = true; break;
    case OPT_OMIT_FILES: op.omit = number (optarg, "--omit-files"); break;
    case OPT_CONTENT: {
      size_t len;
      if (op.nr_contents == MAX_CONTENTS)
        die ("too many --content");
      op.contents[op.nr_contents] = (unsigned char *) read_file (optarg, &len);
      op.content_sizes[op.nr_contents++] = len;
      break;
    }
    case OPT_ZEROS: op.zeros = true; break;
    case OPT_ZSTD: op.zstd = true; break;
    case OPT_SEAL_STATE: seal = optarg; break;
    default:
      die ("usage: mkstream [OPTION]... OUTPUT|- (see tests/tools/mkstream.c)");
    }
  }
  if (argc - optind != 1)
    die ("usage: mkstream [OPTION]... OUTPUT|-");
  if (op.omit > op.files)
    die ("--omit-files: more than --files");
  if (strcmp (argv[optind], "-") != 0) {
    out_name = argv[optind];
    o.fd = open (out_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o.fd < 0)
      die ("%s: %s", out_name, strerror (errno));
  }
  if (seal) {
    /* As lib/resume.c writes it: the JSON, a newline, then "check " and
     * the XXH3 of everything before, in 16 hex digits.
     */
    size_t len;
    char *json = read_file (seal, &len);
    char check[32];
    while (len && json[len - 1] == '\n')
      len--;
    json[len++] = '\n';
    snprintf (check, sizeof check, "check %016" PRIx64 "\n",
              (uint64_t) XXH3_64bits (json, len));
    if (write (o.fd, json, len) != (ssize_t) len ||
        write (o.fd, check, strlen (check)) != (ssize_t) strlen (check))
      die ("%s: %s", out_name, strerror (errno));
    free (json);
    return 0;
  }
  if (!op.raw && (o.w = vmferry_stream_writer_new (o.fd, out_name)) == NULL)
    die_lib ("writer");

  manifest = make_manifest (&op, &manifest_len);
  xml = make_xml (&op, &xml_len);
  if (o.w) {
    if (vmferry_stream_write_header (o.w) < 0)
      die_lib ("write");
  }
  else {
    unsigned char h[VMFERRY_STREAM_HEADER_SIZE] = { 0 };
    memcpy (h, VMFERRY_STREAM_MAGIC, 8);
    h[8] = VMFERRY_STREAM_VERSION_MAJOR;
    emit (&o, VMFERRY_REC_STREAM_HEADER, 0, 0, 0, 0, h, sizeof h);
  }
  emit_text (&o, VMFERRY_REC_MANIFEST, manifest, manifest_len,
             op.manifest_zstd);
  emit_text (&o, VMFERRY_REC_DOMAIN_XML, xml, xml_len, op.xml_zstd);
  for (unsigned k = 0; k < op.files - op.omit; k++)
    emit_file (&o, &op, k);
  if (!op.no_end)
    emit_u64 (&o, VMFERRY_REC_END, 0,
              op.end_count >= 0 ? (uint64_t) op.end_count : op.files - op.omit);
  vmferry_stream_writer_free (o.w);
  free (manifest);
  free (xml);
  for (size_t i = 0; i < op.nr_contents; i++)
    free (op.contents[i]);
  if (o.fd != STDOUT_FILENO && close (o.fd) < 0)
    die ("%s: %s", out_name, strerror (errno));
  return EXIT_SUCCESS;
}
