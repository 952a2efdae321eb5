/* vmferry: a changed XML document written as its source text (see
 * xmlsource.h).
 *
 * The text is cut into tokens (start tag, end tag, character data,
 * CDATA section, comment, processing instruction) by a tokeniser that
 * knows only what a document libxml2 accepted without a DTD can hold.
 * The tokens are then matched one by one against the tree in document
 * order, comparing every name, attribute value and text as libxml2
 * decoded it; one mismatch and there is no source (the caller falls
 * back to libxml2's serialisation), so a node is never tied to bytes
 * that say something else.  Splicing compares each node with its token
 * again: whatever the rewrite changed is written anew.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "vector.h"
#include "xmlnode.h"
#include "xmlsource.h"

struct src_attr {
  char *qname;
  char *value;                  /* decoded and normalised as libxml2 does */
  size_t ws;                    /* the whitespace before the name */
  size_t val, val_end;          /* the value between its quotes */
  size_t end;                   /* after the closing quote */
  char quote;
  bool nsdecl;                  /* xmlns or xmlns:PREFIX */
};

DEFINE_VECTOR_TYPE (src_attr_vector, struct src_attr);

enum tok_kind { TOK_START, TOK_END, TOK_TEXT, TOK_CDATA, TOK_COMMENT, TOK_PI };

struct tok {
  enum tok_kind kind;
  size_t start, end;            /* the token's bytes */
  char *name;                   /* START, END: qualified name; PI: target */
  char *content;                /* TEXT, CDATA, COMMENT, PI: decoded */
  struct src_attr_vector attrs; /* START */
  size_t nr_nsdecl;
  size_t name_end;              /* after "<NAME" */
  size_t attrs_end;             /* after the last attribute: the tail */
  bool empty;                   /* <NAME/> */
  size_t end_tok;               /* START, not empty: its END token */
};

DEFINE_VECTOR_TYPE (tok_vector, struct tok);

struct vmferry_xml_source {
  char *text;
  size_t len;
  struct tok_vector toks;
  size_t root;
  char quote;                   /* for attributes of new elements */
  bool crlf;                    /* lines end in "\r\n": new ones too */
};

/* ---------------------------------------------------------------- tokens */

static bool
is_ws (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool
is_name_char (char c)
{
  return !is_ws (c) && c != '/' && c != '>' && c != '=' && c != '<' &&
    c != '\'' && c != '"' && c != '?' && c != '\0';
}

/* Append code point CP as UTF-8. */
static size_t
put_utf8 (char *out, uint32_t cp)
{
  if (cp < 0x80) {
    out[0] = cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = 0xc0 | (cp >> 6);
    out[1] = 0x80 | (cp & 0x3f);
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = 0xe0 | (cp >> 12);
    out[1] = 0x80 | ((cp >> 6) & 0x3f);
    out[2] = 0x80 | (cp & 0x3f);
    return 3;
  }
  out[0] = 0xf0 | (cp >> 18);
  out[1] = 0x80 | ((cp >> 12) & 0x3f);
  out[2] = 0x80 | ((cp >> 6) & 0x3f);
  out[3] = 0x80 | (cp & 0x3f);
  return 4;
}

/* Decode S[0..LEN) as libxml2 reads character data (ATTR false) or an
 * attribute value without a DTD (ATTR true): line ends become '\n', in
 * an attribute every literal whitespace character a space; the five
 * predefined entities and character references are replaced.  Any other
 * reference fails (NULL): without a DTD libxml2 has refused it already.
 * Caller frees.
 */
static char *
decode (const char *s, size_t len, bool attr, bool refs)
{
  char *out = malloc (len + 1), *q = out;
  size_t i = 0;

  if (out == NULL)
    return NULL;
  while (i < len) {
    char c = s[i];
    if (c == '\r') {
      *q++ = attr ? ' ' : '\n';
      i += i + 1 < len && s[i + 1] == '\n' ? 2 : 1;
      continue;
    }
    if (attr && (c == '\n' || c == '\t')) {
      *q++ = ' ';
      i++;
      continue;
    }
    if (c != '&' || !refs) {
      *q++ = c;
      i++;
      continue;
    }
    {
      const char *semi = memchr (s + i, ';', len - i);
      size_t n = semi ? (size_t) (semi - (s + i)) + 1 : 0;
      static const struct { const char *ref; char c; } pre[] = {
        { "&lt;", '<' }, { "&gt;", '>' }, { "&amp;", '&' },
        { "&apos;", '\'' }, { "&quot;", '"' },
      };
      bool done = false;

      if (semi == NULL)
        goto bad;
      for (size_t k = 0; k < sizeof pre / sizeof pre[0]; k++)
        if (n == strlen (pre[k].ref) && memcmp (s + i, pre[k].ref, n) == 0) {
          *q++ = pre[k].c;
          done = true;
        }
      if (!done && n > 3 && s[i + 1] == '#') {
        bool hex = s[i + 2] == 'x';
        uint32_t cp = 0;
        size_t k = i + (hex ? 3 : 2);
        if (k == i + n - 1)
          goto bad;
        for (; k < i + n - 1; k++) {
          char d = s[k];
          uint32_t v;
          if (d >= '0' && d <= '9')
            v = d - '0';
          else if (hex && d >= 'a' && d <= 'f')
            v = d - 'a' + 10;
          else if (hex && d >= 'A' && d <= 'F')
            v = d - 'A' + 10;
          else
            goto bad;
          cp = cp * (hex ? 16 : 10) + v;
          if (cp > 0x10ffff)
            goto bad;
        }
        if (cp == 0)
          goto bad;
        /* A reference is at least 4 bytes, its UTF-8 at most 4. */
        q += put_utf8 (q, cp);
        done = true;
      }
      if (!done)
        goto bad;
      i += n;
    }
  }
  *q = '\0';
  return out;
 bad:
  free (out);
  return NULL;
}

static char *
dup_range (const char *s, size_t len)
{
  return strndup (s, len);
}

static struct tok *
new_tok (struct vmferry_xml_source *src, enum tok_kind kind, size_t start)
{
  struct tok t = { .kind = kind, .start = start };

  if (tok_vector_append (&src->toks, t) == -1)
    return NULL;
  return &src->toks.ptr[src->toks.len - 1];
}

static bool
starts (const struct vmferry_xml_source *src, size_t p, const char *s)
{
  size_t n = strlen (s);

  return p + n <= src->len && memcmp (src->text + p, s, n) == 0;
}

/* The offset of S at or after P, or SIZE_MAX. */
static size_t
find (const struct vmferry_xml_source *src, size_t p, const char *s)
{
  const char *hit = p <= src->len
    ? memmem (src->text + p, src->len - p, s, strlen (s)) : NULL;

  return hit ? (size_t) (hit - src->text) : SIZE_MAX;
}

/* "<!--...-->", "<![CDATA[...]]>", "<?...?>" at P. */
static int
markup_tok (struct vmferry_xml_source *src, size_t p, size_t *next)
{
  const char *open, *close;
  enum tok_kind kind;
  struct tok *t;
  size_t body, q;

  if (starts (src, p, "<!--"))
    open = "<!--", close = "-->", kind = TOK_COMMENT;
  else if (starts (src, p, "<![CDATA["))
    open = "<![CDATA[", close = "]]>", kind = TOK_CDATA;
  else
    open = "<?", close = "?>", kind = TOK_PI;
  body = p + strlen (open);
  q = find (src, body, close);
  if (q == SIZE_MAX || (t = new_tok (src, kind, p)) == NULL)
    return -1;
  t->end = q + strlen (close);
  if (kind == TOK_PI) {
    size_t e = body;
    while (e < q && is_name_char (src->text[e]))
      e++;
    t->name = dup_range (src->text + body, e - body);
    while (e < q && is_ws (src->text[e]))
      e++;
    body = e;
  }
  t->content = decode (src->text + body, q - body, false, false);
  if (t->content == NULL || (kind == TOK_PI && t->name == NULL))
    return -1;
  *next = t->end;
  return 0;
}

static int
add_attr (struct tok *t, struct src_attr *a)
{
  if (src_attr_vector_append (&t->attrs, *a) == -1)
    return -1;
  if (a->nsdecl)
    t->nr_nsdecl++;
  return 0;
}

/* A start tag at P. */
static int
start_tok (struct vmferry_xml_source *src, size_t p, size_t *next)
{
  const char *s = src->text;
  size_t e = p + 1;
  struct tok *t = new_tok (src, TOK_START, p);

  if (t == NULL)
    return -1;
  while (e < src->len && is_name_char (s[e]))
    e++;
  if (e == p + 1 || (t->name = dup_range (s + p + 1, e - p - 1)) == NULL)
    return -1;
  t->name_end = t->attrs_end = e;
  for (;;) {
    struct src_attr a = { .ws = e };
    size_t n;
    while (e < src->len && is_ws (s[e]))
      e++;
    if (e >= src->len)
      return -1;
    if (s[e] == '>' || (s[e] == '/' && e + 1 < src->len && s[e + 1] == '>')) {
      t->empty = s[e] == '/';
      t->end = e + (t->empty ? 2 : 1);
      break;
    }
    if (e == a.ws)              /* attributes are separated by whitespace */
      return -1;
    n = e;
    while (e < src->len && is_name_char (s[e]))
      e++;
    if (e == n)
      return -1;
    a.qname = dup_range (s + n, e - n);
    if (a.qname == NULL)
      return -1;
    a.nsdecl = strcmp (a.qname, "xmlns") == 0 ||
      strncmp (a.qname, "xmlns:", 6) == 0;
    while (e < src->len && is_ws (s[e]))
      e++;
    if (e >= src->len || s[e] != '=')
      goto bad_attr;
    e++;
    while (e < src->len && is_ws (s[e]))
      e++;
    if (e >= src->len || (s[e] != '\'' && s[e] != '"'))
      goto bad_attr;
    a.quote = s[e++];
    a.val = e;
    while (e < src->len && s[e] != a.quote)
      e++;
    if (e >= src->len)
      goto bad_attr;
    a.val_end = e++;
    a.end = e;
    a.value = decode (s + a.val, a.val_end - a.val, true, true);
    if (a.value == NULL || add_attr (t, &a) == -1) {
      free (a.value);
      goto bad_attr;
    }
    t->attrs_end = e;
    if (src->quote == '\0' && !a.nsdecl)
      src->quote = a.quote;
    continue;
  bad_attr:
    free (a.qname);
    return -1;
  }
  *next = t->end;
  return 0;
}

/* Everything from the root's start tag to its end tag. */
static int
tokenise (struct vmferry_xml_source *src)
{
  const char *s = src->text;
  size_t p = 0, depth = 0;
  size_t stack[VMFERRY_DOMAIN_MAX_DEPTH + 1];

  if (starts (src, 0, "\xef\xbb\xbf"))
    p = 3;
  /* The prolog: declaration, comments, PIs, whitespace.  Not tree
   * nodes of the root: kept as bytes.
   */
  for (;;) {
    while (p < src->len && is_ws (s[p]))
      p++;
    if (p >= src->len || s[p] != '<')
      return -1;
    if (starts (src, p, "<?")) {
      size_t q = find (src, p, "?>");
      if (q == SIZE_MAX)
        return -1;
      p = q + 2;
    }
    else if (starts (src, p, "<!--")) {
      size_t q = find (src, p + 4, "-->");
      if (q == SIZE_MAX)
        return -1;
      p = q + 3;
    }
    else if (starts (src, p, "<!"))
      return -1;                /* DOCTYPE: refused by the parser anyway */
    else
      break;
  }

  src->root = src->toks.len;
  do {
    if (s[p] != '<') {
      size_t q = p;
      struct tok *t;
      while (q < src->len && s[q] != '<')
        q++;
      if (q >= src->len || (t = new_tok (src, TOK_TEXT, p)) == NULL)
        return -1;
      t->end = q;
      t->content = decode (s + p, q - p, false, true);
      if (t->content == NULL)
        return -1;
      p = q;
    }
    else if (starts (src, p, "<!--") || starts (src, p, "<![CDATA[") ||
             starts (src, p, "<?")) {
      if (depth == 0 || markup_tok (src, p, &p) == -1)
        return -1;
    }
    else if (starts (src, p, "<!"))
      return -1;
    else if (starts (src, p, "</")) {
      size_t n = p + 2, e = n;
      struct tok *t, *open;
      while (e < src->len && is_name_char (s[e]))
        e++;
      if (depth == 0 || (t = new_tok (src, TOK_END, p)) == NULL)
        return -1;
      if ((t->name = dup_range (s + n, e - n)) == NULL)
        return -1;
      while (e < src->len && is_ws (s[e]))
        e++;
      if (e >= src->len || s[e] != '>')
        return -1;
      t->end = p = e + 1;
      open = &src->toks.ptr[stack[--depth]];
      if (strcmp (open->name, t->name) != 0)
        return -1;
      open->end_tok = src->toks.len - 1;
    }
    else {
      size_t me = src->toks.len;
      if (depth > VMFERRY_DOMAIN_MAX_DEPTH || start_tok (src, p, &p) == -1)
        return -1;
      if (!src->toks.ptr[me].empty)
        stack[depth++] = me;
    }
    if (p >= src->len && depth > 0)
      return -1;
  } while (depth > 0);
  return 0;
}

/* ---------------------------------------------------------------- match */

/* The qualified name NS:NAME as written.  Caller frees. */
static char *
qualified (xmlNsPtr ns, const xmlChar *name)
{
  char *r;

  if (ns && ns->prefix) {
    if (asprintf (&r, "%s:%s", (const char *) ns->prefix,
                  (const char *) name) < 0)
      return NULL;
    return r;
  }
  return strdup ((const char *) name);
}

static char *
qname (xmlNodePtr n)
{
  return qualified (n->ns, n->name);
}

static char *
attr_qname (xmlAttrPtr a)
{
  return qualified (a->ns, a->name);
}

static size_t
count_nsdef (xmlNodePtr n)
{
  size_t k = 0;

  for (xmlNsPtr ns = n->nsDef; ns; ns = ns->next)
    k++;
  return k;
}

/* Does N's attribute list equal the token's (names, values, order)? */
static bool
same_attrs (const struct tok *t, xmlNodePtr n)
{
  xmlAttrPtr a = n->properties;

  for (size_t i = 0; i < t->attrs.len; i++) {
    char *q, *v;
    bool eq;
    if (t->attrs.ptr[i].nsdecl)
      continue;
    if (a == NULL)
      return false;
    q = attr_qname (a);
    v = vmferry_xml_attr_value (a);
    eq = q && v && strcmp (q, t->attrs.ptr[i].qname) == 0 &&
      strcmp (v, t->attrs.ptr[i].value) == 0;
    free (q);
    free (v);
    if (!eq)
      return false;
    a = a->next;
  }
  return a == NULL && count_nsdef (n) == t->nr_nsdecl;
}

static const char *
content (xmlNodePtr n)
{
  return n->content ? (const char *) n->content : "";
}

static int
match_children (struct vmferry_xml_source *src, xmlNodePtr parent, size_t *ti)
{
  for (xmlNodePtr c = parent->children; c; c = c->next) {
    struct tok *t = *ti < src->toks.len ? &src->toks.ptr[*ti] : NULL;
    char *q;
    bool ok;

    if (t == NULL)
      return -1;
    switch (c->type) {
    case XML_ELEMENT_NODE:
      q = qname (c);
      ok = t->kind == TOK_START && q && strcmp (q, t->name) == 0 &&
        same_attrs (t, c);
      free (q);
      if (!ok)
        return -1;
      c->_private = t;
      (*ti)++;
      if (t->empty) {
        if (c->children)
          return -1;
        continue;
      }
      if (match_children (src, c, ti) == -1 || *ti != t->end_tok)
        return -1;
      (*ti)++;
      continue;
    case XML_TEXT_NODE:
      ok = t->kind == TOK_TEXT;
      break;
    case XML_CDATA_SECTION_NODE:
      ok = t->kind == TOK_CDATA;
      break;
    case XML_COMMENT_NODE:
      ok = t->kind == TOK_COMMENT;
      break;
    case XML_PI_NODE:
      ok = t->kind == TOK_PI && strcmp ((const char *) c->name, t->name) == 0;
      break;
    default:
      return -1;
    }
    if (!ok || strcmp (content (c), t->content) != 0)
      return -1;
    c->_private = t;
    (*ti)++;
  }
  return 0;
}

static void
clear_private (xmlNodePtr n)
{
  for (; n; n = n->next) {
    n->_private = NULL;
    if (n->type == XML_ELEMENT_NODE)
      clear_private (n->children);
  }
}

void
vmferry_xml_source_free (struct vmferry_xml_source *src)
{
  if (src == NULL)
    return;
  for (size_t i = 0; i < src->toks.len; i++) {
    struct tok *t = &src->toks.ptr[i];
    free (t->name);
    free (t->content);
    for (size_t k = 0; k < t->attrs.len; k++) {
      free (t->attrs.ptr[k].qname);
      free (t->attrs.ptr[k].value);
    }
    src_attr_vector_reset (&t->attrs);
  }
  tok_vector_reset (&src->toks);
  free (src->text);
  free (src);
}

struct vmferry_xml_source *
vmferry_xml_source_new (xmlDocPtr doc, const char *text, size_t len)
{
  struct vmferry_xml_source *src;
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  size_t ti;
  struct tok *rt;

  if (root == NULL || text == NULL) {
    vmferry_set_error_errno (EINVAL, "XML source");
    return NULL;
  }
  if (doc->encoding &&
      strcasecmp ((const char *) doc->encoding, "UTF-8") != 0) {
    vmferry_set_error ("XML source: encoded as %s, not UTF-8",
                       (const char *) doc->encoding);
    return NULL;
  }
  src = calloc (1, sizeof *src);
  if (src == NULL || (src->text = malloc (len + 1)) == NULL) {
    vmferry_set_error_errno (errno, "XML source");
    vmferry_xml_source_free (src);
    return NULL;
  }
  memcpy (src->text, text, len);
  src->text[len] = '\0';
  src->len = len;
  {
    const char *nl = memchr (text, '\n', len);
    src->crlf = nl && nl > text && nl[-1] == '\r';
  }
  if (memchr (text, '\0', len) || tokenise (src) == -1)
    goto mismatch;

  /* The root, then what is inside it. */
  ti = src->root;
  rt = &src->toks.ptr[ti];
  {
    char *q = qname (root);
    bool ok = rt->kind == TOK_START && q && strcmp (q, rt->name) == 0 &&
      same_attrs (rt, root);
    free (q);
    if (!ok)
      goto mismatch;
  }
  root->_private = rt;
  ti++;
  if (rt->empty ? root->children != NULL
      : (match_children (src, root, &ti) == -1 || ti != rt->end_tok))
    goto mismatch;
  if (src->quote == '\0')
    src->quote = '\'';
  return src;

 mismatch:
  root->_private = NULL;
  clear_private (root->children);
  vmferry_set_error ("XML source: the text does not tokenise as the "
                     "parsed document");
  vmferry_xml_source_free (src);
  return NULL;
}

/* ---------------------------------------------------------------- splice */

DEFINE_VECTOR_TYPE (byte_vector, char);

/* The text, NUL-terminated; NOMEM once a put failed. */
struct out {
  struct byte_vector text;
  bool nomem;
};

static void
put (struct out *o, const char *s, size_t n)
{
  if (o->nomem)
    return;
  if (byte_vector_reserve (&o->text, n + 1) == -1) {
    o->nomem = true;
    return;
  }
  byte_vector_append_many (&o->text, s, n);     /* reserved above */
  o->text.ptr[o->text.len] = '\0';
}

static void
puts_ (struct out *o, const char *s)
{
  put (o, s, strlen (s));
}

static void
put_raw (struct out *o, const struct vmferry_xml_source *src, size_t from,
         size_t to)
{
  put (o, src->text + from, to - from);
}

/* S escaped for character data, or (QUOTE not 0) for an attribute value
 * in QUOTE: what libxml2 would read back as S.  In character data a
 * newline is written as the source ends its lines (CRLF).
 */
static void
put_escaped (struct out *o, const char *s, char quote, bool crlf)
{
  for (; *s; s++) {
    const char *e = NULL;
    switch (*s) {
    case '&': e = "&amp;"; break;
    case '<': e = "&lt;"; break;
    case '>': e = "&gt;"; break;
    case '\r': e = "&#13;"; break;
    case '\'': e = quote == '\'' ? "&apos;" : NULL; break;
    case '"': e = quote == '"' ? "&quot;" : NULL; break;
    case '\n': e = quote ? "&#10;" : crlf ? "\r\n" : NULL; break;
    case '\t': e = quote ? "&#9;" : NULL; break;
    }
    if (e)
      puts_ (o, e);
    else
      put (o, s, 1);
  }
}

/* N's token when N still is the node it was tied to. */
static const struct tok *
tok_of (const struct vmferry_xml_source *src, xmlNodePtr n)
{
  uintptr_t p = (uintptr_t) n->_private;
  uintptr_t lo = (uintptr_t) src->toks.ptr;
  uintptr_t hi = (uintptr_t) (src->toks.ptr + src->toks.len);
  const struct tok *t;

  if (p < lo || p >= hi || (p - lo) % sizeof *src->toks.ptr != 0)
    return NULL;
  t = n->_private;
  switch (n->type) {
  case XML_ELEMENT_NODE: return t->kind == TOK_START ? t : NULL;
  case XML_TEXT_NODE: return t->kind == TOK_TEXT ? t : NULL;
  case XML_CDATA_SECTION_NODE: return t->kind == TOK_CDATA ? t : NULL;
  case XML_COMMENT_NODE: return t->kind == TOK_COMMENT ? t : NULL;
  case XML_PI_NODE: return t->kind == TOK_PI ? t : NULL;
  default: return NULL;
  }
}

static void put_node (struct out *o, const struct vmferry_xml_source *src,
                      xmlNodePtr n);

static void
put_attr (struct out *o, xmlAttrPtr a, char quote)
{
  char *q = attr_qname (a);
  char *v = vmferry_xml_attr_value (a);

  if (q == NULL || v == NULL)
    o->nomem = true;
  else {
    puts_ (o, " ");
    puts_ (o, q);
    put (o, "=", 1);
    put (o, &quote, 1);
    put_escaped (o, v, quote, false);
    put (o, &quote, 1);
  }
  free (q);
  free (v);
}

/* An element the source does not have, written whole. */
static void
put_new_element (struct out *o, const struct vmferry_xml_source *src,
                 xmlNodePtr n, const char *name)
{
  char q = src->quote;

  puts_ (o, "<");
  puts_ (o, name);
  for (xmlNsPtr ns = n->nsDef; ns; ns = ns->next) {
    puts_ (o, ns->prefix ? " xmlns:" : " xmlns");
    if (ns->prefix)
      puts_ (o, (const char *) ns->prefix);
    put (o, "=", 1);
    put (o, &q, 1);
    put_escaped (o, ns->href ? (const char *) ns->href : "", q, false);
    put (o, &q, 1);
  }
  for (xmlAttrPtr a = n->properties; a; a = a->next)
    put_attr (o, a, q);
  if (n->children == NULL) {
    puts_ (o, "/>");
    return;
  }
  puts_ (o, ">");
  for (xmlNodePtr c = n->children; c; c = c->next)
    put_node (o, src, c);
  puts_ (o, "</");
  puts_ (o, name);
  puts_ (o, ">");
}

/* Element N tied to start tag T: the bytes of every attribute still as
 * it was, the new value of a changed one in its own quotes, nothing for
 * a removed one, new ones at the end.  One pass over both lists (a
 * hostile element may have very many attributes): libxml2 keeps an
 * attribute's place when its value is set and appends new ones, so the
 * tree's attributes that the tag had come in the tag's order; one that
 * does not (removed and added again) is written as a new one.
 */
static void
put_kept_element (struct out *o, const struct vmferry_xml_source *src,
                  xmlNodePtr n, const struct tok *t)
{
  bool open = n->children != NULL, have_quote = false;
  char quote = src->quote;

  if (same_attrs (t, n) && !(t->empty && open))
    put_raw (o, src, t->start, t->end);
  else {
    xmlAttrPtr a = n->properties;

    put_raw (o, src, t->start, t->name_end);
    for (size_t i = 0; i < t->attrs.len; i++) {
      const struct src_attr *sa = &t->attrs.ptr[i];
      char *q, *v;
      if (sa->nsdecl) {
        put_raw (o, src, sa->ws, sa->end);
        continue;
      }
      if (!have_quote) {
        quote = sa->quote;
        have_quote = true;
      }
      if (a == NULL)
        continue;               /* removed */
      q = attr_qname (a);
      if (q == NULL || strcmp (q, sa->qname) != 0) {
        if (q == NULL)
          o->nomem = true;
        free (q);
        continue;               /* removed */
      }
      free (q);
      v = vmferry_xml_attr_value (a);
      if (v && strcmp (v, sa->value) == 0)
        put_raw (o, src, sa->ws, sa->end);
      else if (v) {
        put_raw (o, src, sa->ws, sa->val);
        put_escaped (o, v, sa->quote, false);
        put (o, &sa->quote, 1);
      }
      else
        o->nomem = true;
      free (v);
      a = a->next;
    }
    for (; a; a = a->next)
      put_attr (o, a, quote);
    /* The tail: ">", "/>", " />"; an empty tag that now has children
     * loses its '/'.
     */
    for (size_t i = t->attrs_end; i < t->end; i++)
      if (!(t->empty && open && src->text[i] == '/'))
        put (o, src->text + i, 1);
  }
  for (xmlNodePtr c = n->children; c; c = c->next)
    put_node (o, src, c);
  if (!t->empty) {
    const struct tok *e = &src->toks.ptr[t->end_tok];
    put_raw (o, src, e->start, e->end);
  }
  else if (open) {
    puts_ (o, "</");
    puts_ (o, t->name);
    puts_ (o, ">");
  }
}

static void
put_node (struct out *o, const struct vmferry_xml_source *src, xmlNodePtr n)
{
  const struct tok *t = tok_of (src, n);
  const char *c = content (n);

  switch (n->type) {
  case XML_ELEMENT_NODE: {
    char *name = qname (n);
    if (name == NULL)
      o->nomem = true;
    else if (t && strcmp (name, t->name) == 0 &&
             count_nsdef (n) == t->nr_nsdecl)
      put_kept_element (o, src, n, t);
    else
      put_new_element (o, src, n, name);
    free (name);
    return;
  }
  case XML_TEXT_NODE:
    if (t) {
      size_t cl = strlen (c), tl = strlen (t->content);
      /* libxml2 merges a text node added next to another into it. */
      if (cl >= tl && memcmp (c, t->content, tl) == 0) {
        put_raw (o, src, t->start, t->end);
        put_escaped (o, c + tl, '\0', src->crlf);
        return;
      }
      if (cl >= tl && memcmp (c + cl - tl, t->content, tl) == 0) {
        CLEANUP_FREE char *head = strndup (c, cl - tl);
        if (head == NULL) {
          o->nomem = true;
          return;
        }
        put_escaped (o, head, '\0', src->crlf);
        put_raw (o, src, t->start, t->end);
        return;
      }
    }
    put_escaped (o, c, '\0', src->crlf);
    return;
  case XML_CDATA_SECTION_NODE:
  case XML_COMMENT_NODE:
  case XML_PI_NODE:
    if (t && strcmp (c, t->content) == 0) {
      put_raw (o, src, t->start, t->end);
      return;
    }
    if (n->type == XML_CDATA_SECTION_NODE) {
      puts_ (o, "<![CDATA[");
      puts_ (o, c);
      puts_ (o, "]]>");
    }
    else if (n->type == XML_COMMENT_NODE) {
      puts_ (o, "<!--");
      puts_ (o, c);
      puts_ (o, "-->");
    }
    else {
      puts_ (o, "<?");
      puts_ (o, (const char *) n->name);
      if (*c) {
        puts_ (o, " ");
        puts_ (o, c);
      }
      puts_ (o, "?>");
    }
    return;
  default:
    /* An entity reference: none in a document parsed without a DTD,
     * and the rewrite makes none.
     */
    put_escaped (o, c, '\0', src->crlf);
    return;
  }
}

char *
vmferry_xml_source_splice (const struct vmferry_xml_source *src, xmlDocPtr doc,
                           size_t *len_rtn)
{
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  const struct tok *rt;
  struct out o = { .text = VECTOR_INIT };
  size_t after;

  if (src == NULL || root == NULL || (rt = tok_of (src, root)) == NULL ||
      rt != &src->toks.ptr[src->root]) {
    vmferry_set_error_errno (EINVAL, "XML source: not the document it was "
                             "made from");
    return NULL;
  }
  after = rt->empty ? rt->end : src->toks.ptr[rt->end_tok].end;
  put_raw (&o, src, 0, rt->start);
  put_node (&o, src, root);
  put_raw (&o, src, after, src->len);
  if (o.nomem || o.text.ptr == NULL) {
    byte_vector_reset (&o.text);
    vmferry_set_error_errno (ENOMEM, "XML source");
    return NULL;
  }
  if (len_rtn)
    *len_rtn = o.text.len;
  return o.text.ptr;
}
