/* vmferry: libvirt domain XML, parsed safely and rewritten (see domain.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/globals.h>
#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlsave.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "vector.h"
#include "xmlnode.h"

/* libxml2 2.12 made the structured error const. */
#if LIBXML_VERSION >= 21200
typedef const xmlError *vmferry_xml_error_ptr;
#else
typedef xmlErrorPtr vmferry_xml_error_ptr;
#endif

/* Where libxml2's messages go while we call it: the first error is kept
 * for our own message, the rest (and all warnings) are dropped.
 */
struct xml_errors {
  bool doctype;                 /* a DOCTYPE was seen: parse was stopped */
  int doctype_line;
  bool have_error;
  int line;
  char msg[512];
};

static void
record_error (struct xml_errors *errs, int line, const char *msg)
{
  size_t n;

  if (errs->have_error)
    return;
  errs->have_error = true;
  errs->line = line;
  if (msg == NULL)
    msg = "unknown error";
  /* Its own advice ("use XML_PARSE_HUGE option") is not for our users. */
  if (strncmp (msg, "Excessive depth", 15) == 0) {
    snprintf (errs->msg, sizeof errs->msg, "elements nested more than %d deep",
              VMFERRY_DOMAIN_MAX_DEPTH);
    return;
  }
  snprintf (errs->msg, sizeof errs->msg, "%s", msg);
  /* libxml2's messages end with a newline and some run over two lines;
   * ours are one line.
   */
  n = strlen (errs->msg);
  while (n > 0 && isspace ((unsigned char) errs->msg[n - 1]))
    errs->msg[--n] = '\0';
  for (char *p = errs->msg; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
}

static void
quiet_serror (void *opaque, vmferry_xml_error_ptr err)
{
  struct xml_errors *errs = opaque;

  if (err == NULL || err->level < XML_ERR_ERROR)
    return;
  record_error (errs, err->line, err->message);
}

/* The parser passes its context (ctxt->userData) to sax->serror. */
static void
parse_serror (void *opaque, vmferry_xml_error_ptr err)
{
  xmlParserCtxtPtr ctxt = opaque;

  quiet_serror (ctxt->_private, err);
}

static void
quiet_generic (void *opaque, const char *fs, ...)
{
  struct xml_errors *errs = opaque;
  char buf[512];
  va_list args;

  va_start (args, fs);
  vsnprintf (buf, sizeof buf, fs, args);
  va_end (args);
  record_error (errs, 0, buf);
}

/* libxml2's error handlers are per thread; ours replace the caller's only
 * while we run, so that nothing reaches stderr and a caller's own
 * handlers survive.
 */
struct xml_quiet {
  xmlStructuredErrorFunc serror;
  void *serror_ctx;
  xmlGenericErrorFunc generic;
  void *generic_ctx;
};

static void
quiet_begin (struct xml_quiet *q, struct xml_errors *errs)
{
  q->serror = xmlStructuredError;
  q->serror_ctx = xmlStructuredErrorContext;
  q->generic = xmlGenericError;
  q->generic_ctx = xmlGenericErrorContext;
  xmlSetStructuredErrorFunc (errs, quiet_serror);
  xmlSetGenericErrorFunc (errs, quiet_generic);
}

static void
quiet_end (const struct xml_quiet *q)
{
  xmlSetStructuredErrorFunc (q->serror_ctx, q->serror);
  xmlSetGenericErrorFunc (q->generic_ctx, q->generic);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void
xml_init (void)
{
  xmlInitParser ();
}

/* SAX hooks.  A DOCTYPE is where entities (and so entity bombs and
 * external entities) are declared; libvirt never writes one, so the parse
 * stops at the first sight of it, before its internal subset is read.
 */
static void
refuse_doctype (void *ctx, const xmlChar *name, const xmlChar *external_id,
                const xmlChar *system_id)
{
  xmlParserCtxtPtr ctxt = ctx;
  struct xml_errors *errs = ctxt->_private;

  (void) name;
  (void) external_id;
  (void) system_id;
  if (!errs->doctype) {
    errs->doctype = true;
    errs->doctype_line = xmlSAX2GetLineNumber (ctx);
  }
  xmlStopParser (ctxt);
}

static void
refuse_entity_decl (void *ctx, const xmlChar *name, int type,
                    const xmlChar *public_id, const xmlChar *system_id,
                    xmlChar *content)
{
  (void) type;
  (void) public_id;
  (void) content;
  refuse_doctype (ctx, name, NULL, system_id);
}

static xmlParserInputPtr
refuse_resolve_entity (void *ctx, const xmlChar *public_id,
                       const xmlChar *system_id)
{
  refuse_doctype (ctx, NULL, public_id, system_id);
  return NULL;
}

/* Walk iteratively: a recursive walk is what a deep document attacks. */
static int
check_depth (xmlNodePtr root, const char *name)
{
  xmlNodePtr n = root;
  unsigned depth = 1;

  for (;;) {
    if (n->type == XML_ELEMENT_NODE) {
      if (depth > VMFERRY_DOMAIN_MAX_DEPTH) {
        vmferry_set_error ("%s: elements nested more than %d deep",
                           name, VMFERRY_DOMAIN_MAX_DEPTH);
        return -1;
      }
      if (n->children) {
        n = n->children;
        depth++;
        continue;
      }
    }
    while (n != root && n->next == NULL) {
      n = n->parent;
      depth--;
    }
    if (n == root)
      return 0;
    n = n->next;
  }
}

/* The line of offset P in XML, for a message. */
static unsigned
line_of (const char *xml, size_t p)
{
  unsigned line = 1;

  for (const char *q = xml; (q = memchr (q, '\n', xml + p - q)) != NULL; q++)
    line++;
  return line;
}

/* Where S[P..LEN) has END next, or LEN. */
static size_t
skip_to (const char *s, size_t p, size_t len, const char *end)
{
  const char *hit = memmem (s + p, len - p, end, strlen (end));

  return hit ? (size_t) (hit - s) + strlen (end) : len;
}

static bool
scan_ws (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* One linear pass over the text before libxml2 sees it, refusing the
 * shapes whose cost in libxml2 grows with the square of their size: the
 * attributes of one element (libxml2 2.9 checks each against every
 * other and appends each by walking the list) and the namespace
 * declarations in scope (every element's and prefixed attribute's
 * namespace is looked up through all of them); and the nodes of the
 * document, each of which costs libxml2 and the readers after it an
 * allocation or more.  Only markup is read, and only as far as counting
 * goes; whatever is malformed the parser refuses with its own message.
 */
static int
check_shape (const char *s, size_t len, const char *name)
{
  size_t p = 0, depth = 0, in_scope = 0, nodes = 0;
  /* Namespace declarations of each open element. */
  unsigned short ns_at[VMFERRY_DOMAIN_MAX_DEPTH + 1];

  while (p < len) {
    const char *lt = memchr (s + p, '<', len - p);
    size_t tag, attrs = 0, ns = 0;

    if (lt == NULL)
      return 0;
    p = tag = lt - s;
    if (len - p >= 2 && s[p + 1] != '/' && ++nodes > VMFERRY_DOMAIN_MAX_NODES)
      goto too_many;
    if (len - p >= 4 && memcmp (s + p, "<!--", 4) == 0) {
      p = skip_to (s, p + 4, len, "-->");
      continue;
    }
    if (len - p >= 9 && memcmp (s + p, "<![CDATA[", 9) == 0) {
      p = skip_to (s, p + 9, len, "]]>");
      continue;
    }
    if (len - p >= 2 && s[p + 1] == '?') {
      p = skip_to (s, p + 2, len, "?>");
      continue;
    }
    if (len - p >= 2 && s[p + 1] == '!')
      return 0;                 /* a DOCTYPE: the parser refuses it */
    if (len - p >= 2 && s[p + 1] == '/') {
      p = skip_to (s, p + 2, len, ">");
      if (depth > 0)
        in_scope -= ns_at[--depth];
      continue;
    }
    /* A start tag: its name, then NAME = 'VALUE' pairs. */
    p++;
    while (p < len && !scan_ws (s[p]) && s[p] != '>' && s[p] != '/')
      p++;
    for (;;) {
      size_t an;
      while (p < len && scan_ws (s[p]))
        p++;
      if (p >= len)
        return 0;
      if (s[p] == '>' || s[p] == '/')
        break;
      an = p;
      while (p < len && s[p] != '=' && s[p] != '>' && !scan_ws (s[p]))
        p++;
      while (p < len && scan_ws (s[p]))
        p++;
      if (p >= len || s[p] != '=')
        return 0;
      p++;
      while (p < len && scan_ws (s[p]))
        p++;
      if (p >= len || (s[p] != '\'' && s[p] != '"'))
        return 0;
      {
        const char *q = memchr (s + p + 1, s[p], len - p - 1);
        if (q == NULL)
          return 0;
        p = q - s + 1;
      }
      if (++nodes > VMFERRY_DOMAIN_MAX_NODES)
        goto too_many;
      if (++attrs > VMFERRY_DOMAIN_MAX_ATTRS) {
        vmferry_set_error ("%s: line %u: an element has more than %d "
                           "attributes", name, line_of (s, tag),
                           VMFERRY_DOMAIN_MAX_ATTRS);
        return -1;
      }
      if (p - an > 5 && memcmp (s + an, "xmlns", 5) == 0 &&
          (s[an + 5] == ':' || s[an + 5] == '=' || scan_ws (s[an + 5])))
        ns++;
    }
    in_scope += ns;
    if (in_scope > VMFERRY_DOMAIN_MAX_NS) {
      vmferry_set_error ("%s: line %u: more than %d XML namespace "
                         "declarations in scope", name, line_of (s, tag),
                         VMFERRY_DOMAIN_MAX_NS);
      return -1;
    }
    if (s[p] == '>') {
      /* Deeper than the limit: the parser refuses it. */
      if (depth >= VMFERRY_DOMAIN_MAX_DEPTH)
        return 0;
      ns_at[depth++] = ns;
    }
    else
      in_scope -= ns;
    p++;
  }
  return 0;

 too_many:
  vmferry_set_error ("%s: line %u: more than %d elements, attributes, "
                     "comments and processing instructions",
                     name, line_of (s, p), VMFERRY_DOMAIN_MAX_NODES);
  return -1;
}

xmlDocPtr
vmferry_domain_parse (const char *xml, size_t len, const char *name)
{
  struct xml_errors errs = { 0 };
  struct xml_quiet q;
  xmlParserCtxtPtr ctxt;
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  xmlDocPtr ret;
  xmlNodePtr root;

  if (name == NULL)
    name = "domain XML";
  if (xml == NULL) {
    vmferry_set_error_errno (EINVAL, "%s: no XML", name);
    return NULL;
  }
  if (len > VMFERRY_DOMAIN_MAX_SIZE) {
    vmferry_set_error ("%s: XML is %zu bytes, more than the %d MiB limit",
                       name, len, VMFERRY_DOMAIN_MAX_SIZE / (1024 * 1024));
    return NULL;
  }
  if (len == 0) {
    vmferry_set_error ("%s: cannot parse XML: the document is empty", name);
    return NULL;
  }

  if (check_shape (xml, len, name) == -1)
    return NULL;

  pthread_once (&init_once, xml_init);
  ctxt = xmlNewParserCtxt ();
  if (ctxt == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s: cannot create an XML parser", name);
    return NULL;
  }
  ctxt->_private = &errs;
  ctxt->sax->serror = parse_serror;
  ctxt->sax->error = NULL;
  ctxt->sax->warning = NULL;
  ctxt->sax->internalSubset = refuse_doctype;
  ctxt->sax->externalSubset = refuse_doctype;
  ctxt->sax->entityDecl = refuse_entity_decl;
  ctxt->sax->resolveEntity = refuse_resolve_entity;

  /* Not NOENT (no substitution), not DTDLOAD/DTDATTR/DTDVALID (no DTD),
   * not HUGE (keep libxml2's own depth and length limits).
   */
  quiet_begin (&q, &errs);
  doc = xmlCtxtReadMemory (ctxt, xml, (int) len, NULL, NULL, XML_PARSE_NONET);
  quiet_end (&q);
  xmlFreeParserCtxt (ctxt);

  if (errs.doctype || (doc && (doc->intSubset || doc->extSubset))) {
    vmferry_set_error ("%s: line %d: a DOCTYPE is not allowed in domain XML "
                       "(it can declare entities and load external files)",
                       name, errs.doctype ? errs.doctype_line : 1);
    return NULL;
  }
  if (errs.have_error) {
    if (errs.line > 0)
      vmferry_set_error ("%s: cannot parse XML: line %d: %s",
                         name, errs.line, errs.msg);
    else
      vmferry_set_error ("%s: cannot parse XML: %s", name, errs.msg);
    return NULL;
  }
  if (doc == NULL) {
    vmferry_set_error ("%s: cannot parse XML", name);
    return NULL;
  }

  root = xmlDocGetRootElement (doc);
  if (root == NULL) {
    vmferry_set_error ("%s: XML has no root element", name);
    return NULL;
  }
  if (!vmferry_xml_is_elem (root, "domain")) {
    vmferry_set_error ("%s: root element is <%s%s%s>, not <domain>", name,
                       root->ns && root->ns->prefix
                       ? (const char *) root->ns->prefix : "",
                       root->ns && root->ns->prefix ? ":" : "",
                       (const char *) root->name);
    return NULL;
  }
  if (check_depth (root, name) == -1)
    return NULL;

  ret = doc;
  doc = NULL;
  return ret;
}

/* The result array. */
DEFINE_VECTOR_TYPE (file_list, struct vmferry_domain_file);

/* A new entry for NODE, which takes *PATH over (PATH may be NULL). */
static struct vmferry_domain_file *
list_add (struct file_list *l, int role, xmlNodePtr node, char **path,
          bool block)
{
  struct vmferry_domain_file f = { .role = role, .node = node,
                                   .block = block };

  if (file_list_append (l, f) == -1) {
    vmferry_set_error_errno (errno, "domain XML: file list");
    return NULL;
  }
  if (path) {
    l->ptr[l->len - 1].path = *path;
    *path = NULL;
  }
  return &l->ptr[l->len - 1];
}

/* "disk vda", or "disk #2" for a disk with no target. */
static void
disk_label (xmlNodePtr disk, size_t ordinal, char *buf, size_t len)
{
  CLEANUP_FREE char *dev =
    vmferry_xml_attr (vmferry_xml_child (disk, "target"), "dev");

  if (dev && *dev)
    snprintf (buf, len, "disk %s", dev);
  else
    snprintf (buf, len, "disk #%zu", ordinal);
}

/* Note the <backingStore> chain under DISK (entries after the disk's). */
static int
add_backing (struct file_list *l, xmlNodePtr disk, size_t disk_index,
             const char *label)
{
  xmlNodePtr parent = disk, bs, src;
  unsigned depth = 0;

  while ((bs = vmferry_xml_child (parent, "backingStore")) != NULL) {
    CLEANUP_FREE char *type = NULL;
    CLEANUP_FREE char *path = NULL;
    struct vmferry_domain_file *f;
    bool block;

    if (vmferry_xml_get_attr (bs, "type", &type) == -1)
      return -1;
    /* <backingStore/> says "no backing file". */
    if (type == NULL)
      return 0;
    depth++;
    if (strcmp (type, "file") == 0)
      block = false;
    else if (strcmp (type, "block") == 0)
      block = true;
    else {
      vmferry_set_error ("%s: backing store type '%s' is not supported "
                         "for offline export", label, type);
      return -1;
    }
    src = vmferry_xml_child (bs, "source");
    if (vmferry_xml_get_attr (src, block ? "dev" : "file", &path) == -1)
      return -1;
    if (path == NULL || *path == '\0') {
      vmferry_set_error ("%s: backing store %u has no source %s",
                         label, depth, block ? "dev" : "file");
      return -1;
    }
    f = list_add (l, VMFERRY_ROLE_BACKING, src, &path, block);
    if (f == NULL)
      return -1;
    f->readonly = true;
    f->depth = depth;
    f->disk_index = disk_index;
    if (l->ptr[disk_index].target &&
        (f->target = strdup (l->ptr[disk_index].target)) == NULL)
      goto nomem;
    if (vmferry_xml_get_attr (vmferry_xml_child (bs, "format"), "type",
                              &f->format) == -1)
      return -1;
    parent = bs;
  }
  return 0;

 nomem:
  vmferry_set_error_errno (ENOMEM, "%s: backing store", label);
  return -1;
}

static int
add_disk (struct file_list *l, xmlNodePtr disk, size_t ordinal,
          bool include_readonly)
{
  char label[128];
  CLEANUP_FREE char *type = NULL;
  CLEANUP_FREE char *device = NULL;
  CLEANUP_FREE char *path = NULL, *pool = NULL, *vol = NULL;
  bool readonly, shareable, cdrom, floppy, lun, block, volume;
  xmlNodePtr src;
  struct vmferry_domain_file *f;
  size_t index;

  disk_label (disk, ordinal, label, sizeof label);
  if (vmferry_xml_get_attr (disk, "type", &type) == -1 ||
      vmferry_xml_get_attr (disk, "device", &device) == -1)
    return -1;

  /* libvirt's defaults when the attributes are absent. */
  cdrom = device && strcmp (device, "cdrom") == 0;
  floppy = device && strcmp (device, "floppy") == 0;
  lun = device && strcmp (device, "lun") == 0;
  if (device && !cdrom && !floppy && !lun && strcmp (device, "disk") != 0) {
    vmferry_set_error ("%s: unknown disk device '%s'", label, device);
    return -1;
  }
  readonly = vmferry_xml_child (disk, "readonly") != NULL;
  shareable = vmferry_xml_child (disk, "shareable") != NULL;
  if (!include_readonly && (cdrom || floppy || readonly || shareable))
    return 0;

  volume = type && strcmp (type, "volume") == 0;
  block = type && strcmp (type, "block") == 0;
  if (type && !volume && !block && strcmp (type, "file") != 0) {
    vmferry_set_error ("%s: type '%s' is not supported for offline export",
                       label, type);
    return -1;
  }

  src = vmferry_xml_child (disk, "source");
  if (volume) {
    /* A volume of a storage pool: named, not located (the exporter asks
     * libvirt for its path).
     */
    if (vmferry_xml_get_attr (src, "pool", &pool) == -1 ||
        vmferry_xml_get_attr (src, "volume", &vol) == -1)
      return -1;
    if (pool == NULL || vol == NULL || !*pool || !*vol)
      return 0;                 /* no source, like an empty CD-ROM */
  }
  else {
    if (vmferry_xml_get_attr (src, block ? "dev" : "file", &path) == -1)
      return -1;
    /* libvirt treats an empty path as no source too. */
    if (path == NULL || *path == '\0')
      return 0;
  }
  /* The data file would not travel with the qcow2 that names it. */
  if (vmferry_xml_child (src, "dataStore")) {
    vmferry_set_error ("%s: an external data file (<dataStore>) is not "
                       "supported", label);
    return -1;
  }

  index = l->len;
  f = list_add (l, VMFERRY_ROLE_DISK, src, &path, block);
  if (f == NULL)
    return -1;
  f->pool = pool;
  f->volume = vol;
  pool = vol = NULL;
  f->readonly = readonly;
  f->shareable = shareable;
  f->cdrom = cdrom;
  f->floppy = floppy;
  f->lun = lun;
  if (vmferry_xml_get_attr (vmferry_xml_child (disk, "target"), "dev",
                            &f->target) == -1 ||
      vmferry_xml_get_attr (vmferry_xml_child (disk, "driver"), "type",
                            &f->format) == -1)
    return -1;

  return add_backing (l, disk, index, label);
}

/* <nvram>PATH</nvram>, or since libvirt 8.5 <nvram type='file'><source
 * file='PATH'/></nvram>.  No path (only a template) means libvirt makes
 * the file itself: nothing to carry.
 */
static int
add_nvram (struct file_list *l, xmlNodePtr nvram)
{
  CLEANUP_FREE char *type = NULL;
  CLEANUP_FREE char *path = NULL;
  xmlNodePtr node = nvram;
  struct vmferry_domain_file *f;
  bool block = false;

  if (vmferry_xml_get_attr (nvram, "type", &type) == -1)
    return -1;
  if (type == NULL) {
    if ((path = vmferry_xml_text (nvram)) == NULL)
      return -1;
  }
  else if (strcmp (type, "file") == 0 || strcmp (type, "block") == 0) {
    block = type[0] == 'b';
    node = vmferry_xml_child (nvram, "source");
    if (vmferry_xml_get_attr (node, block ? "dev" : "file", &path) == -1)
      return -1;
  }
  else {
    vmferry_set_error ("nvram: type '%s' is not supported for offline export",
                       type);
    return -1;
  }
  if (path == NULL || *path == '\0')
    return 0;

  f = list_add (l, VMFERRY_ROLE_NVRAM, node, &path, block);
  if (f == NULL)
    return -1;
  if (vmferry_xml_get_attr (nvram, "format", &f->format) == -1 ||
      vmferry_xml_get_attr (nvram, "template", &f->nvram_template) == -1)
    return -1;
  return 0;
}

/* Only the emulator (swtpm) has state to carry. */
static int
add_tpm (struct file_list *l, xmlNodePtr tpm)
{
  xmlNodePtr backend = vmferry_xml_child (tpm, "backend");
  xmlNodePtr src;
  struct vmferry_domain_file *f;

  if (backend == NULL || !vmferry_xml_attr_eq (backend, "type", "emulator"))
    return 0;
  src = vmferry_xml_child (backend, "source");
  f = list_add (l, VMFERRY_ROLE_TPM, src ? src : backend, NULL, false);
  if (f == NULL)
    return -1;
  if (vmferry_xml_get_attr (backend, "version", &f->tpm_version) == -1)
    return -1;
  if (src) {
    if (vmferry_xml_get_attr (src, "path", &f->path) == -1)
      return -1;
    f->tpm_state_file = vmferry_xml_attr_eq (src, "type", "file");
    if (f->path && *f->path == '\0') {
      free (f->path);
      f->path = NULL;
    }
  }
  return 0;
}

int
vmferry_domain_files (xmlDocPtr doc, bool include_readonly,
                      struct vmferry_domain_file **files_rtn, size_t *n_rtn)
{
  struct file_list l = VECTOR_INIT;
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  size_t ordinal = 0;

  if (root == NULL || !vmferry_xml_is_elem (root, "domain")) {
    vmferry_set_error_errno (EINVAL, "domain XML: no <domain> element");
    return -1;
  }

  /* libvirt reads ./devices/disk: the disks of every <devices>, so do we;
   * a disk we did not list would keep a path we never rewrote.
   */
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next)
      if (vmferry_xml_is_elem (n, "disk") &&
          add_disk (&l, n, ++ordinal, include_readonly) == -1)
        goto error;
  }

  for (xmlNodePtr os = root->children; os; os = os->next) {
    xmlNodePtr nvram;
    if (vmferry_xml_is_elem (os, "os") &&
        (nvram = vmferry_xml_child (os, "nvram")) != NULL) {
      if (add_nvram (&l, nvram) == -1)
        goto error;
      break;
    }
  }

  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next)
      if (vmferry_xml_is_elem (n, "tpm") && add_tpm (&l, n) == -1)
        goto error;
  }

  *files_rtn = l.ptr;
  *n_rtn = l.len;
  return 0;

 error:
  vmferry_domain_files_free (l.ptr, l.len);
  return -1;
}

void
vmferry_domain_files_free (struct vmferry_domain_file *files, size_t n)
{
  if (files == NULL)
    return;
  for (size_t i = 0; i < n; i++) {
    free (files[i].path);
    free (files[i].target);
    free (files[i].format);
    free (files[i].nvram_template);
    free (files[i].pool);
    free (files[i].volume);
    free (files[i].tpm_version);
  }
  free (files);
}

/* Point a disk or backing store <source> at PATH, switching its parent's
 * type between 'file' and 'block' as needed.
 */
static int
set_source (xmlNodePtr src, const char *label, bool lun, const char *path,
            bool block)
{
  xmlNodePtr parent = src->parent;

  if (lun && !block) {
    vmferry_set_error ("%s: a 'lun' disk must stay a block device", label);
    return -1;
  }
  if (vmferry_xml_set_attr (parent, "type", block ? "block" : "file",
                            NULL) == -1 ||
      vmferry_xml_set_attr (src, block ? "dev" : "file", path, NULL) == -1)
    return -1;
  vmferry_xml_unset_attr (src, block ? "file" : "dev", NULL);
  return 0;
}

int
vmferry_domain_set_path (xmlDocPtr doc, const struct vmferry_domain_file *f,
                         const char *newpath, unsigned flags)
{
  bool block = flags & VMFERRY_DOMAIN_PATH_BLOCK;
  char label[128];

  if (doc == NULL || f == NULL || f->node == NULL || f->node->doc != doc ||
      newpath == NULL || *newpath == '\0' ||
      (flags & ~VMFERRY_DOMAIN_PATH_BLOCK) != 0) {
    vmferry_set_error_errno (EINVAL, "domain XML: set path");
    return -1;
  }

  switch (f->role) {
  case VMFERRY_ROLE_DISK:
  case VMFERRY_ROLE_BACKING:
    snprintf (label, sizeof label, "%s%s%s",
              f->role == VMFERRY_ROLE_DISK ? "disk " : "backing store of disk ",
              f->target ? f->target : "", f->target ? "" : "(no target)");
    if (!vmferry_xml_is_elem (f->node, "source") || f->node->parent == NULL) {
      vmferry_set_error_errno (EINVAL, "%s: not a <source> element", label);
      return -1;
    }
    return set_source (f->node, label, f->lun, newpath, block);

  case VMFERRY_ROLE_NVRAM:
    if (vmferry_xml_is_elem (f->node, "nvram")) {
      if (block) {
        vmferry_set_error ("nvram: the text form of <nvram> cannot name "
                           "a block device");
        return -1;
      }
      return vmferry_xml_set_text (f->node, newpath, NULL);
    }
    if (!vmferry_xml_is_elem (f->node, "source")) {
      vmferry_set_error_errno (EINVAL, "nvram: not a <source> element");
      return -1;
    }
    return set_source (f->node, "nvram", false, newpath, block);

  case VMFERRY_ROLE_TPM:
    if (!vmferry_xml_is_elem (f->node, "source")) {
      vmferry_set_error ("tpm: the XML names no state path (libvirt derives "
                         "it from the domain UUID)");
      return -1;
    }
    if (block) {
      vmferry_set_error ("tpm: state cannot be a block device");
      return -1;
    }
    return vmferry_xml_set_attr (f->node, "path", newpath, NULL);

  default:
    vmferry_set_error_errno (EINVAL, "domain XML: unknown file role %d",
                             f->role);
    return -1;
  }
}

int
vmferry_domain_set_backing_path (xmlDocPtr doc, const char *oldpath,
                                 const char *newpath)
{
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  int count = 0;

  if (root == NULL || oldpath == NULL || newpath == NULL || *newpath == '\0') {
    vmferry_set_error_errno (EINVAL, "domain XML: set backing path");
    return -1;
  }
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr disk = devs->children; disk; disk = disk->next) {
      xmlNodePtr bs = disk;
      if (!vmferry_xml_is_elem (disk, "disk"))
        continue;
      while ((bs = vmferry_xml_child (bs, "backingStore")) != NULL) {
        xmlNodePtr src = vmferry_xml_child (bs, "source");
        const char *attr =
          vmferry_xml_attr_eq (bs, "type", "block") ? "dev" : "file";
        if (src && vmferry_xml_attr_eq (src, attr, oldpath)) {
          if (vmferry_xml_set_attr (src, attr, newpath, NULL) == -1)
            return -1;
          count++;
        }
      }
    }
  }
  return count;
}

static char *
get_child_text (xmlDocPtr doc, const char *name)
{
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  xmlNodePtr n = vmferry_xml_child (root, name);
  char *ret;

  if (n == NULL) {
    vmferry_set_error ("domain XML: no <%s> element", name);
    return NULL;
  }
  if ((ret = vmferry_xml_text (n)) == NULL)
    return NULL;
  if (*ret == '\0') {
    free (ret);
    vmferry_set_error ("domain XML: <%s> is empty", name);
    return NULL;
  }
  return ret;
}

char *
vmferry_domain_get_name (xmlDocPtr doc)
{
  return get_child_text (doc, "name");
}

char *
vmferry_domain_get_uuid (xmlDocPtr doc)
{
  return get_child_text (doc, "uuid");
}

int
vmferry_domain_set_name (xmlDocPtr doc, const char *name)
{
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  xmlNodePtr n;

  if (root == NULL || name == NULL) {
    vmferry_set_error_errno (EINVAL, "domain XML: set name");
    return -1;
  }
  if (*name == '\0' || strchr (name, '/') || strchr (name, '\n')) {
    vmferry_set_error ("domain name '%s': must be non-empty, without '/' "
                       "or newline", name);
    return -1;
  }
  n = vmferry_xml_child (root, "name");
  if (n == NULL) {
    n = xmlNewDocNode (doc, NULL, BAD_CAST "name", NULL);
    if (n == NULL ||
        (root->children ? xmlAddPrevSibling (root->children, n)
                        : xmlAddChild (root, n)) == NULL) {
      xmlFreeNode (n);
      vmferry_set_error_errno (ENOMEM, "domain XML: <name>");
      return -1;
    }
  }
  return vmferry_xml_set_text (n, name, NULL);
}

int
vmferry_uuid_canonical (const char *uuid, char out[37])
{
  size_t len = strlen (uuid), j = 0;

  if (len != 32 && len != 36)
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
      if (uuid[i] != '-')
        return -1;
      continue;
    }
    if (!isxdigit ((unsigned char) uuid[i]))
      return -1;
    if (j == 8 || j == 13 || j == 18 || j == 23)
      out[j++] = '-';
    out[j++] = tolower ((unsigned char) uuid[i]);
  }
  out[j] = '\0';
  return 0;
}

int
vmferry_domain_set_uuid (xmlDocPtr doc, const char *uuid)
{
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  xmlNodePtr n, name;
  char canon[37];

  if (root == NULL) {
    vmferry_set_error_errno (EINVAL, "domain XML: set uuid");
    return -1;
  }
  n = vmferry_xml_child (root, "uuid");
  if (uuid == NULL) {
    while (n) {
      xmlNodePtr next = n->next;
      vmferry_xml_remove (n);
      /* libvirt would read only the first; leave none to read. */
      for (n = next; n && !vmferry_xml_is_elem (n, "uuid"); n = n->next)
        ;
    }
    return 0;
  }
  if (vmferry_uuid_canonical (uuid, canon) == -1) {
    vmferry_set_error ("uuid '%s': not a UUID (32 hex digits, "
                       "as 8-4-4-4-12 with dashes)", uuid);
    return -1;
  }
  if (n == NULL) {
    n = xmlNewDocNode (doc, NULL, BAD_CAST "uuid", NULL);
    name = vmferry_xml_child (root, "name");
    if (n == NULL ||
        (name ? vmferry_xml_insert_after (name, n)
              : root->children
              ? (xmlAddPrevSibling (root->children, n) ? 0 : -1)
              : (xmlAddChild (root, n) ? 0 : -1)) == -1) {
      xmlFreeNode (n);
      vmferry_set_error_errno (ENOMEM, "domain XML: <uuid>");
      return -1;
    }
  }
  return vmferry_xml_set_text (n, canon, NULL);
}

char *
vmferry_domain_to_string (xmlDocPtr doc)
{
  struct xml_errors errs = { 0 };
  struct xml_quiet q;
  xmlBufferPtr buf;
  xmlSaveCtxtPtr save;
  long r1 = -1;
  int r2 = -1;
  char *ret = NULL;

  if (doc == NULL) {
    vmferry_set_error_errno (EINVAL, "domain XML: to string");
    return NULL;
  }
  buf = xmlBufferCreate ();
  if (buf == NULL) {
    vmferry_set_error_errno (ENOMEM, "domain XML: cannot serialise");
    return NULL;
  }
  quiet_begin (&q, &errs);
  save = xmlSaveToBuffer (buf, "UTF-8", XML_SAVE_NO_DECL);
  if (save) {
    r1 = xmlSaveDoc (save, doc);
    r2 = xmlSaveClose (save);
  }
  quiet_end (&q);
  if (save == NULL || r1 < 0 || r2 < 0 || errs.have_error) {
    vmferry_set_error ("domain XML: cannot serialise: %s",
                       errs.have_error ? errs.msg : "libxml2 failed");
    xmlBufferFree (buf);
    return NULL;
  }
  ret = strdup ((const char *) xmlBufferContent (buf));
  if (ret == NULL)
    vmferry_set_error_errno (ENOMEM, "domain XML: cannot serialise");
  xmlBufferFree (buf);
  return ret;
}
