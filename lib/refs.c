/* vmferry: what a domain definition makes the host open, run or hand
 * over, and whether an import may define it (see refs.h).
 *
 * The collector reads the XML the way libvirt does where that is cheap
 * to match (attributes without a namespace, the element's whole text),
 * and wider where it is not: every <source> child is read, not only the
 * first, and every path attribute of a source whatever the disk's type,
 * so that a definition cannot hide a path where libvirt would find it.
 * A last pass reports any path-like attribute no rule claimed.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "refs.h"
#include "vector.h"
#include "virt.h"
#include "xmlnode.h"

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"
#define LIBVIRT_NS_PREFIX "http://libvirt.org/schemas/domain/"

const char *const vmferry_refs_firmware_dirs[] = {
  "/usr/share/OVMF",            /* Debian, Ubuntu: ovmf */
  "/usr/share/AAVMF",           /* Debian, Ubuntu: qemu-efi-aarch64/arm */
  "/usr/share/qemu-efi-aarch64",
  "/usr/share/qemu-efi",
  "/usr/share/ovmf",            /* openSUSE, older Debian */
  "/usr/share/edk2",            /* Fedora, RHEL: edk2-ovmf, edk2-aarch64 */
  "/usr/share/edk2-ovmf",       /* Arch, Gentoo, older Fedora */
  "/usr/share/qemu",            /* QEMU's own ROMs and descriptors */
  "/usr/share/seabios",         /* Debian: seabios */
  "/usr/lib/xen/boot",          /* Xen's hvmloader */
  NULL,
};

/* What libvirt itself offers as RNG backends (domain capabilities). */
static const char *const entropy_sources[] = {
  "/dev/random", "/dev/urandom", "/dev/hwrng", NULL,
};

static const char *const kind_names[] = {
  [VMFERRY_REF_DISK] = "disk",
  [VMFERRY_REF_NETWORK_DISK] = "network-disk",
  [VMFERRY_REF_VOLUME] = "volume",
  [VMFERRY_REF_LOADER] = "loader",
  [VMFERRY_REF_NVRAM] = "nvram",
  [VMFERRY_REF_NVRAM_TEMPLATE] = "nvram-template",
  [VMFERRY_REF_BOOT_FILE] = "boot-file",
  [VMFERRY_REF_EMULATOR] = "emulator",
  [VMFERRY_REF_EXECUTABLE] = "executable",
  [VMFERRY_REF_FILESYSTEM] = "filesystem",
  [VMFERRY_REF_CHARDEV] = "chardev",
  [VMFERRY_REF_OUTPUT_FILE] = "output-file",
  [VMFERRY_REF_SOCKET] = "socket",
  [VMFERRY_REF_DEVICE_NODE] = "device-node",
  [VMFERRY_REF_ENTROPY_SOURCE] = "entropy-source",
  [VMFERRY_REF_CONFIG_FILE] = "config-file",
  [VMFERRY_REF_TPM_STATE] = "tpm-state",
  [VMFERRY_REF_HOST_DEVICE] = "host-device",
  [VMFERRY_REF_MEMORY_FILE] = "memory-file",
  [VMFERRY_REF_SHMEM] = "shmem",
  [VMFERRY_REF_LEASE] = "lease",
  [VMFERRY_REF_SECLABEL] = "seclabel",
  [VMFERRY_REF_QEMU_COMMANDLINE] = "qemu-commandline",
  [VMFERRY_REF_DRIVER_NAMESPACE] = "driver-namespace",
  [VMFERRY_REF_OTHER] = "other",
};

const char *
vmferry_ref_kind_name (int kind)
{
  if (kind <= 0 || kind > VMFERRY_REF_KIND_MAX || kind_names[kind] == NULL)
    return "unknown";
  return kind_names[kind];
}

/* ---------------------------------------------------------------- paths */

bool
vmferry_path_is_normal (const char *path)
{
  const char *p;

  if (path == NULL || path[0] != '/')
    return false;
  if (path[1] == '\0')
    return true;
  for (p = path; *p; ) {
    size_t len;

    /* P is at a '/': the component runs to the next one. */
    p++;
    len = strcspn (p, "/");
    if (len == 0 || (len == 1 && p[0] == '.') ||
        (len == 2 && p[0] == '.' && p[1] == '.'))
      return false;
    p += len;
  }
  return true;
}

char *
vmferry_path_normalise (const char *path)
{
  char *out;
  size_t used = 0;

  if (path == NULL || path[0] != '/') {
    vmferry_set_error ("%s: not an absolute path", path ? path : "(null)");
    return NULL;
  }
  out = malloc (strlen (path) + 2);
  if (out == NULL) {
    vmferry_set_error_errno (errno, "%s", path);
    return NULL;
  }
  for (const char *p = path; *p; ) {
    size_t len;

    while (*p == '/')
      p++;
    len = strcspn (p, "/");
    if (len == 0 || (len == 1 && p[0] == '.'))
      ;
    else if (len == 2 && p[0] == '.' && p[1] == '.') {
      while (used > 0 && out[used - 1] != '/')
        used--;
      if (used > 0)
        used--;                 /* the '/' before the removed component */
    }
    else {
      out[used++] = '/';
      memcpy (out + used, p, len);
      used += len;
    }
    p += len;
  }
  if (used == 0)
    out[used++] = '/';
  out[used] = '\0';
  return out;
}

bool
vmferry_path_within (const char *path, const char *dir)
{
  size_t len = strlen (dir);

  if (strcmp (dir, "/") == 0)
    return path[0] == '/';
  return strncmp (path, dir, len) == 0 &&
    (path[len] == '\0' || path[len] == '/');
}

/* --------------------------------------------------------------- collecting */

/* A place a rule has read: the safety net leaves it alone. */
struct claim {
  xmlNodePtr node;
  const char *attr;             /* NULL: the element's text */
};

DEFINE_VECTOR_TYPE (ref_vector, struct vmferry_ref);
DEFINE_VECTOR_TYPE (claim_vector, struct claim);
DEFINE_VECTOR_TYPE (string_vector, char *);

struct collector {
  struct ref_vector refs;
  /* Places read on purpose without a reference (a pty's path). */
  struct claim_vector ignored;
  bool failed;                  /* the error is set */
};

void
vmferry_refs_free (struct vmferry_ref *refs, size_t n)
{
  if (refs == NULL)
    return;
  for (size_t i = 0; i < n; i++) {
    free (refs[i].value);
    free (refs[i].where);
    free (refs[i].format);
  }
  free (refs);
}

/* The element's whole text, as libvirt's string() reads it; NULL when
 * there is none or it is only white space (libvirt's default then: an
 * <nvram> that only holds a <source> has indentation for text).
 */
static char *
nonblank (char *v)
{
  if (v && v[strspn (v, " \t\n\r\f\v")] == '\0') {
    free (v);
    return NULL;
  }
  return v;
}

static char *
text (xmlNodePtr n)
{
  return nonblank (vmferry_xml_text (n));
}

/* Add one reference; VALUE is taken over (freed here on failure).  An
 * empty VALUE is no reference.  WHERE is printf-style.
 */
static void
add (struct collector *c, int kind, bool is_path, char *value,
     const char *format, xmlNodePtr node, const char *attr,
     const char *fs, ...) __attribute__ ((format (printf, 8, 9)));

static void
add (struct collector *c, int kind, bool is_path, char *value,
     const char *format, xmlNodePtr node, const char *attr,
     const char *fs, ...)
{
  struct vmferry_ref *r;
  va_list args;
  int len;

  if (c->failed || value == NULL || *value == '\0') {
    free (value);
    return;
  }
  if (c->refs.len == VMFERRY_REFS_MAX) {
    vmferry_set_error ("domain XML: more than %d host references",
                       VMFERRY_REFS_MAX);
    c->failed = true;
    free (value);
    return;
  }
  if (ref_vector_reserve (&c->refs, 1) == -1)
    goto nomem;
  r = &c->refs.ptr[c->refs.len];
  memset (r, 0, sizeof *r);
  r->kind = kind;
  r->is_path = is_path;
  r->value = value;
  value = NULL;
  r->node = node;
  r->attr = attr;
  if (format && (r->format = strdup (format)) == NULL) {
    free (r->value);
    goto nomem;
  }
  va_start (args, fs);
  len = vasprintf (&r->where, fs, args);
  va_end (args);
  if (len < 0) {
    free (r->value);
    free (r->format);
    goto nomem;
  }
  c->refs.len++;
  return;
 nomem:
  free (value);
  vmferry_set_error_errno (ENOMEM, "domain XML: host references");
  c->failed = true;
}

/* Mark N's ATTR as read on purpose, with no reference. */
static void
ignore (struct collector *c, xmlNodePtr n, const char *attr)
{
  struct claim cl = { .node = n, .attr = attr };

  if (c->failed)
    return;
  if (claim_vector_append (&c->ignored, cl) == -1) {
    vmferry_set_error_errno (ENOMEM, "domain XML: host references");
    c->failed = true;
  }
}

/* Attribute ATTR of N, or its text (ATTR NULL), for a path reference.
 * Out of memory stops the collection: a path lost to a failed
 * allocation must not look absent.
 */
static char *
path_value (struct collector *c, xmlNodePtr n, const char *attr)
{
  char *v = NULL;

  if (c->failed || n == NULL)
    return NULL;
  if (attr ? vmferry_xml_get_attr (n, attr, &v) == -1
      : (v = vmferry_xml_text (n)) == NULL)
    c->failed = true;
  return attr ? v : nonblank (v);
}

/* Attribute ATTR of N as a path reference. */
#define ADD_PATH_ATTR(c, kind, n, attr, format, ...) \
  add (c, kind, true, path_value (c, n, attr), format, n, attr, __VA_ARGS__)
/* The text of N as a path reference. */
#define ADD_PATH_TEXT(c, kind, n, format, ...) \
  add (c, kind, true, path_value (c, n, NULL), format, n, NULL, __VA_ARGS__)

/* A resource name made with printf. */
static char *
name_of (const char *fs, ...) __attribute__ ((format (printf, 1, 2)));

static char *
name_of (const char *fs, ...)
{
  va_list args;
  char *r;

  va_start (args, fs);
  if (vasprintf (&r, fs, args) < 0)
    r = NULL;
  va_end (args);
  return r;
}

/* Children of N named NAME, in order. */
#define FOR_CHILDREN(child, n, name)                                    \
  for (xmlNodePtr child = (n) ? (n)->children : NULL; child;            \
       child = child->next)                                             \
    if (vmferry_xml_is_elem (child, name))

/* A path a rule reads: attribute ATTR (NULL: the text) of each child
 * named ELEM (NULL: of the element itself), a reference of KIND named
 * "WHERE WHAT" (WHAT alone when there is no WHERE).
 */
struct path_rule {
  const char *elem, *attr;
  int kind;
  const char *what;
};

static void
add_path (struct collector *c, xmlNodePtr n, const struct path_rule *r,
          const char *where)
{
  const char *sep = *where ? " " : "";

  if (r->attr)
    ADD_PATH_ATTR (c, r->kind, n, r->attr, NULL, "%s%s%s", where, sep,
                   r->what);
  else
    ADD_PATH_TEXT (c, r->kind, n, NULL, "%s%s%s", where, sep, r->what);
}

/* The paths RULES name under N, in the order of the rules; the rules
 * that follow one another with one ELEM read each such child in turn.
 */
#define ADD_PATHS(c, n, rules, where) \
  add_paths (c, n, rules, sizeof rules / sizeof rules[0], where)

static void
add_paths (struct collector *c, xmlNodePtr n, const struct path_rule *rules,
           size_t nrules, const char *where)
{
  for (size_t i = 0, j; i < nrules; i = j) {
    const char *elem = rules[i].elem;

    for (j = i + 1; j < nrules && (rules[j].elem == elem ||
                                   (elem && rules[j].elem &&
                                    strcmp (rules[j].elem, elem) == 0)); j++)
      ;
    if (elem == NULL) {
      for (size_t k = i; k < j; k++)
        add_path (c, n, &rules[k], where);
      continue;
    }
    FOR_CHILDREN (e, n, elem)
      for (size_t k = i; k < j; k++)
        add_path (c, e, &rules[k], where);
  }
}

/* An unsigned number as libvirt reads addresses (0x prefix for hex),
 * or -1.
 */
static long long
number (xmlNodePtr n, const char *attr)
{
  CLEANUP_FREE char *v = vmferry_xml_attr (n, attr);
  unsigned long long r;
  char *end;

  if (v == NULL || *v == '\0' || *v == '-')
    return -1;
  errno = 0;
  r = strtoull (v, &end, 0);
  if (errno || *end || r > 0xffffffffULL)
    return -1;
  return r;
}

/* "pci:DDDD:BB:SS.F" for a PCI <address>; the attributes as written
 * when they do not parse (libvirt would refuse them anyway).
 */
static char *
pci_name (xmlNodePtr addr)
{
  long long d = number (addr, "domain"), b = number (addr, "bus");
  long long s = number (addr, "slot"), f = number (addr, "function");
  CLEANUP_FREE char *ds = NULL;
  CLEANUP_FREE char *bs = NULL;
  CLEANUP_FREE char *ss = NULL;
  CLEANUP_FREE char *fs = NULL;

  if (addr == NULL)
    return NULL;
  if (d < 0)
    d = 0;                      /* libvirt's default domain */
  if (b >= 0 && s >= 0 && f >= 0)
    return name_of ("pci:%04llx:%02llx:%02llx.%llx", d, b, s, f);
  ds = vmferry_xml_attr (addr, "domain");
  bs = vmferry_xml_attr (addr, "bus");
  ss = vmferry_xml_attr (addr, "slot");
  fs = vmferry_xml_attr (addr, "function");
  return name_of ("pci:%s:%s:%s.%s", ds ? ds : "", bs ? bs : "",
                  ss ? ss : "", fs ? fs : "");
}

/* Of a store's <source>: network disks' hosts and credentials. */
static const struct path_rule source_paths[] = {
  { "host", "socket", VMFERRY_REF_SOCKET, "host socket" },
  { "config", "file", VMFERRY_REF_CONFIG_FILE, "source config file" },
  { "knownHosts", "path", VMFERRY_REF_CONFIG_FILE,
    "source known hosts file" },
  { "identity", "keyfile", VMFERRY_REF_CONFIG_FILE, "source identity key" },
  { "identity", "agentsock", VMFERRY_REF_SOCKET, "source agent socket" },
};

/* The sources of a disk-like store: <source> children of STORE (a
 * <disk>, <backingStore>, <dataStore>, <mirror> or <nvram>).  FILE_KIND
 * is the kind of a file, block device or directory there; WHERE names
 * the store; FORMAT is its format.
 */
static void
store_sources (struct collector *c, xmlNodePtr store, int file_kind,
               const char *format, const char *where)
{
  FOR_CHILDREN (src, store, "source") {
    CLEANUP_FREE char *protocol = vmferry_xml_attr (src, "protocol");
    CLEANUP_FREE char *pool = vmferry_xml_attr (src, "pool");
    CLEANUP_FREE char *volume = vmferry_xml_attr (src, "volume");

    ADD_PATH_ATTR (c, file_kind, src, "file", format, "%s source", where);
    ADD_PATH_ATTR (c, file_kind, src, "dev", format, "%s source", where);
    ADD_PATH_ATTR (c, file_kind, src, "dir", format, "%s source", where);
    /* vhost-user disks: a socket. */
    ADD_PATH_ATTR (c, VMFERRY_REF_SOCKET, src, "path", NULL,
                   "%s source socket", where);
    if (protocol) {
      CLEANUP_FREE char *name = vmferry_xml_attr (src, "name");
      add (c, VMFERRY_REF_NETWORK_DISK, false,
           name_of ("%s:%s", protocol, name ? name : ""), format, src,
           "protocol", "%s source", where);
    }
    if (pool || volume)
      add (c, VMFERRY_REF_VOLUME, false,
           name_of ("volume:%s/%s", pool ? pool : "", volume ? volume : ""),
           format, src, "volume", "%s source", where);
    ADD_PATHS (c, src, source_paths, where);
    FOR_CHILDREN (res, src, "reservations")
      FOR_CHILDREN (rs, res, "source")
        ADD_PATH_ATTR (c, VMFERRY_REF_SOCKET, rs, "path", NULL,
                       "%s persistent reservations socket", where);
    /* NVMe disks: a PCI controller of the host. */
    FOR_CHILDREN (a, src, "address")
      add (c, VMFERRY_REF_HOST_DEVICE, false, pci_name (a), NULL, a, NULL,
           "%s source", where);
    FOR_CHILDREN (ds, src, "dataStore") {
      CLEANUP_FREE char *dsfmt =
        vmferry_xml_attr (vmferry_xml_child (ds, "format"), "type");
      char w[300];
      snprintf (w, sizeof w, "%s data store", where);
      store_sources (c, ds, VMFERRY_REF_DISK, dsfmt, w);
    }
  }
}

static void
disk_refs (struct collector *c, xmlNodePtr disk, size_t index)
{
  CLEANUP_FREE char *dev =
    vmferry_xml_attr (vmferry_xml_child (disk, "target"), "dev");
  CLEANUP_FREE char *fmt =
    vmferry_xml_attr (vmferry_xml_child (disk, "driver"), "type");
  char where[300];
  unsigned depth = 0;

  if (dev && *dev)
    snprintf (where, sizeof where, "disk %.64s", dev);
  else
    snprintf (where, sizeof where, "disk %zu", index);
  store_sources (c, disk, VMFERRY_REF_DISK, fmt, where);

  /* libvirt honours a <backingStore> written in the XML instead of the
   * image's header: each level is a source of its own.  Nesting is
   * bounded by the parser's depth limit.
   */
  for (xmlNodePtr bs = vmferry_xml_child (disk, "backingStore"); bs;
       bs = vmferry_xml_child (bs, "backingStore")) {
    CLEANUP_FREE char *bfmt =
      vmferry_xml_attr (vmferry_xml_child (bs, "format"), "type");
    char w[340];
    snprintf (w, sizeof w, "%s backing store %u", where, ++depth);
    store_sources (c, bs, VMFERRY_REF_DISK, bfmt, w);
  }
  FOR_CHILDREN (m, disk, "mirror") {
    CLEANUP_FREE char *mfmt = vmferry_xml_attr (m, "format");
    char w[340];
    if (mfmt == NULL)
      mfmt = vmferry_xml_attr (vmferry_xml_child (m, "format"), "type");
    snprintf (w, sizeof w, "%s mirror", where);
    ADD_PATH_ATTR (c, VMFERRY_REF_DISK, m, "file", mfmt, "%s", w);
    store_sources (c, m, VMFERRY_REF_DISK, mfmt, w);
  }
}

/* A chardev's host side: serial, parallel, console, channel, and the
 * chardev backends of smartcards, RNGs and USB redirection.  TYPE_NODE
 * carries the type attribute, SRC_PARENT the <source> and <log>.
 */
static void
chardev_refs (struct collector *c, xmlNodePtr type_node, xmlNodePtr src_parent,
              const char *where)
{
  CLEANUP_FREE char *type = vmferry_xml_attr (type_node, "type");
  int kind = VMFERRY_REF_CHARDEV;

  /* A pty's path is what libvirt reports back; it makes a new pty. */
  if (type && strcmp (type, "pty") == 0) {
    FOR_CHILDREN (src, src_parent, "source")
      ignore (c, src, "path");
    goto log;
  }
  if (type && strcmp (type, "file") == 0)
    kind = VMFERRY_REF_OUTPUT_FILE;
  else if (type && strcmp (type, "unix") == 0)
    kind = VMFERRY_REF_SOCKET;
  FOR_CHILDREN (src, src_parent, "source") {
    ADD_PATH_ATTR (c, kind, src, "path", NULL, "%s source", where);
    ADD_PATH_ATTR (c, VMFERRY_REF_CHARDEV, src, "master", NULL,
                   "%s source master", where);
    ADD_PATH_ATTR (c, VMFERRY_REF_CHARDEV, src, "slave", NULL,
                   "%s source slave", where);
  }
 log:
  FOR_CHILDREN (log, src_parent, "log")
    ADD_PATH_ATTR (c, VMFERRY_REF_OUTPUT_FILE, log, "file", NULL,
                   "%s log file", where);
}

static const struct path_rule filesystem_source_paths[] = {
  { NULL, "dir", VMFERRY_REF_FILESYSTEM, "source" },
  { NULL, "file", VMFERRY_REF_FILESYSTEM, "source" },
  { NULL, "dev", VMFERRY_REF_FILESYSTEM, "source" },
  { NULL, "socket", VMFERRY_REF_SOCKET, "source socket" },
};

static const struct path_rule filesystem_paths[] = {
  { "binary", "path", VMFERRY_REF_EXECUTABLE, "virtiofsd binary" },
};

static void
filesystem_refs (struct collector *c, xmlNodePtr fs, const char *where)
{
  FOR_CHILDREN (src, fs, "source") {
    CLEANUP_FREE char *pool = vmferry_xml_attr (src, "pool");
    CLEANUP_FREE char *volume = vmferry_xml_attr (src, "volume");
    ADD_PATHS (c, src, filesystem_source_paths, where);
    if (pool || volume)
      add (c, VMFERRY_REF_VOLUME, false,
           name_of ("volume:%s/%s", pool ? pool : "", volume ? volume : ""),
           NULL, src, "volume", "%s source", where);
  }
  ADD_PATHS (c, fs, filesystem_paths, where);
}

static const struct path_rule interface_paths[] = {
  { "script", "path", VMFERRY_REF_EXECUTABLE, "script" },
  { "downscript", "path", VMFERRY_REF_EXECUTABLE, "downscript" },
  { "backend", "tap", VMFERRY_REF_DEVICE_NODE, "backend tap" },
  { "backend", "vhost", VMFERRY_REF_DEVICE_NODE, "backend vhost" },
  { "backend", "logFile", VMFERRY_REF_OUTPUT_FILE, "backend log file" },
};

static void
interface_refs (struct collector *c, xmlNodePtr iface, const char *where)
{
  CLEANUP_FREE char *type = vmferry_xml_attr (iface, "type");

  FOR_CHILDREN (src, iface, "source") {
    /* vhost-user: a socket; vdpa: a device.  Direct (macvtap) and
     * bridge names are network plumbing (see refs.h).
     */
    ADD_PATH_ATTR (c, VMFERRY_REF_SOCKET, src, "path", NULL,
                   "%s source socket", where);
    if (type && strcmp (type, "vdpa") == 0)
      ADD_PATH_ATTR (c, VMFERRY_REF_DEVICE_NODE, src, "dev", NULL,
                     "%s source device", where);
    if (type && strcmp (type, "hostdev") == 0)
      FOR_CHILDREN (a, src, "address") {
        CLEANUP_FREE char *atype = vmferry_xml_attr (a, "type");
        if (atype && strcmp (atype, "usb") == 0)
          add (c, VMFERRY_REF_HOST_DEVICE, false,
               name_of ("usb:%lld.%lld", number (a, "bus"),
                        number (a, "device")), NULL, a, NULL,
               "%s source", where);
        else
          add (c, VMFERRY_REF_HOST_DEVICE, false, pci_name (a), NULL, a,
               NULL, "%s source", where);
      }
  }
  ADD_PATHS (c, iface, interface_paths, where);
}

static const struct path_rule graphics_paths[] = {
  { NULL, "socket", VMFERRY_REF_SOCKET, "socket" },
  { NULL, "xauth", VMFERRY_REF_CONFIG_FILE, "X authority file" },
};

static const struct path_rule graphics_child_paths[] = {
  { "listen", "socket", VMFERRY_REF_SOCKET, "listen socket" },
  { "gl", "rendernode", VMFERRY_REF_DEVICE_NODE, "render node" },
};

static void
graphics_refs (struct collector *c, xmlNodePtr g, const char *where)
{
  CLEANUP_FREE char *display = vmferry_xml_attr (g, "display");
  CLEANUP_FREE char *address = vmferry_xml_attr (g, "address");

  ADD_PATHS (c, g, graphics_paths, where);
  /* SDL and desktop: a display of the host's X server. */
  if (display)
    add (c, VMFERRY_REF_SOCKET, false, name_of ("display:%s", display),
         NULL, g, "display", "%s display", where);
  /* D-Bus display: a bus address. */
  if (address && vmferry_xml_attr_eq (g, "type", "dbus"))
    add (c, VMFERRY_REF_SOCKET, false, name_of ("dbus:%s", address),
         NULL, g, "address", "%s bus address", where);
  ADD_PATHS (c, g, graphics_child_paths, where);
}

static void
hostdev_refs (struct collector *c, xmlNodePtr h, const char *where)
{
  CLEANUP_FREE char *type = vmferry_xml_attr (h, "type");
  CLEANUP_FREE char *mode = vmferry_xml_attr (h, "mode");
  xmlNodePtr src = vmferry_xml_child (h, "source");

  if (mode && strcmp (mode, "capabilities") == 0) {
    FOR_CHILDREN (b, src, "block")
      ADD_PATH_TEXT (c, VMFERRY_REF_DEVICE_NODE, b, NULL, "%s block", where);
    FOR_CHILDREN (ch, src, "char")
      ADD_PATH_TEXT (c, VMFERRY_REF_DEVICE_NODE, ch, NULL, "%s char", where);
    FOR_CHILDREN (i, src, "interface") {
      CLEANUP_FREE char *name = text (i);
      if (name)
        add (c, VMFERRY_REF_HOST_DEVICE, false, name_of ("netdev:%s", name),
             NULL, i, NULL, "%s interface", where);
    }
    return;
  }
  if (type == NULL)
    return;
  if (strcmp (type, "pci") == 0) {
    FOR_CHILDREN (s, h, "source")
      FOR_CHILDREN (a, s, "address")
        add (c, VMFERRY_REF_HOST_DEVICE, false, pci_name (a), NULL, a, NULL,
             "%s source", where);
  }
  else if (strcmp (type, "usb") == 0) {
    FOR_CHILDREN (s, h, "source") {
      xmlNodePtr v = vmferry_xml_child (s, "vendor");
      xmlNodePtr p = vmferry_xml_child (s, "product");
      xmlNodePtr a = vmferry_xml_child (s, "address");
      if (v || p)
        add (c, VMFERRY_REF_HOST_DEVICE, false,
             name_of ("usb:%04llx:%04llx", number (v, "id") & 0xffff,
                      number (p, "id") & 0xffff), NULL, s, NULL,
             "%s source", where);
      if (a)
        add (c, VMFERRY_REF_HOST_DEVICE, false,
             name_of ("usb:%lld.%lld", number (a, "bus"),
                      number (a, "device")), NULL, a, NULL,
             "%s source", where);
    }
  }
  else if (strcmp (type, "scsi") == 0) {
    FOR_CHILDREN (s, h, "source") {
      CLEANUP_FREE char *protocol = vmferry_xml_attr (s, "protocol");
      CLEANUP_FREE char *name = vmferry_xml_attr (s, "name");
      CLEANUP_FREE char *adapter =
        vmferry_xml_attr (vmferry_xml_child (s, "adapter"), "name");
      xmlNodePtr a = vmferry_xml_child (s, "address");
      if (protocol)
        add (c, VMFERRY_REF_HOST_DEVICE, false,
             name_of ("%s:%s", protocol, name ? name : ""), NULL, s, NULL,
             "%s source", where);
      else
        add (c, VMFERRY_REF_HOST_DEVICE, false,
             name_of ("scsi:%s:%lld:%lld:%lld", adapter ? adapter : "",
                      number (a, "bus"), number (a, "target"),
                      number (a, "unit")), NULL, s, NULL,
             "%s source", where);
    }
  }
  else if (strcmp (type, "scsi_host") == 0) {
    FOR_CHILDREN (s, h, "source") {
      CLEANUP_FREE char *wwpn = vmferry_xml_attr (s, "wwpn");
      add (c, VMFERRY_REF_HOST_DEVICE, false,
           name_of ("scsi_host:%s", wwpn ? wwpn : ""), NULL, s, NULL,
           "%s source", where);
    }
  }
  else if (strcmp (type, "mdev") == 0) {
    FOR_CHILDREN (s, h, "source")
      FOR_CHILDREN (a, s, "address") {
        CLEANUP_FREE char *uuid = vmferry_xml_attr (a, "uuid");
        add (c, VMFERRY_REF_HOST_DEVICE, false,
             name_of ("mdev:%s", uuid ? uuid : ""), NULL, a, NULL,
             "%s source", where);
      }
  }
  else {
    /* A type this code does not know: the whole device, by type. */
    add (c, VMFERRY_REF_HOST_DEVICE, false, name_of ("%s:", type), NULL, h,
         NULL, "%s", where);
  }
}

static void
smartcard_refs (struct collector *c, xmlNodePtr sc, const char *where)
{
  CLEANUP_FREE char *mode = vmferry_xml_attr (sc, "mode");

  if (mode && strcmp (mode, "passthrough") == 0)
    chardev_refs (c, sc, sc, where);
  else if (mode) {
    /* The host's card reader, or certificates from its NSS database
     * (/etc/pki/nssdb when none is named).
     */
    add (c, VMFERRY_REF_HOST_DEVICE, false, name_of ("smartcard:%s", mode),
         NULL, sc, "mode", "%s", where);
    FOR_CHILDREN (db, sc, "database")
      ADD_PATH_TEXT (c, VMFERRY_REF_CONFIG_FILE, db, NULL, "%s database",
                     where);
  }
}

static void
rng_refs (struct collector *c, xmlNodePtr rng, const char *where)
{
  FOR_CHILDREN (b, rng, "backend") {
    CLEANUP_FREE char *model = vmferry_xml_attr (b, "model");
    if (model && strcmp (model, "random") == 0)
      ADD_PATH_TEXT (c, VMFERRY_REF_ENTROPY_SOURCE, b, NULL, "%s backend",
                     where);
    else if (model && strcmp (model, "egd") == 0)
      chardev_refs (c, b, b, where);
  }
}

static void
tpm_refs (struct collector *c, xmlNodePtr tpm, const char *where)
{
  FOR_CHILDREN (b, tpm, "backend") {
    CLEANUP_FREE char *type = vmferry_xml_attr (b, "type");
    FOR_CHILDREN (d, b, "device")
      ADD_PATH_ATTR (c, VMFERRY_REF_DEVICE_NODE, d, "path", NULL,
                     "%s passthrough device", where);
    FOR_CHILDREN (s, b, "source")
      ADD_PATH_ATTR (c, type && strcmp (type, "emulator") == 0
                     ? VMFERRY_REF_TPM_STATE : VMFERRY_REF_SOCKET, s, "path",
                     NULL, "%s backend source", where);
  }
}

static void
memory_refs (struct collector *c, xmlNodePtr mem, const char *where)
{
  FOR_CHILDREN (s, mem, "source")
    FOR_CHILDREN (p, s, "path")
      ADD_PATH_TEXT (c, VMFERRY_REF_MEMORY_FILE, p, NULL, "%s source path",
                     where);
}

static const struct path_rule audio_paths[] = {
  { NULL, "path", VMFERRY_REF_OUTPUT_FILE, "file" },
  { NULL, "runtimeDir", VMFERRY_REF_SOCKET, "runtime directory" },
};

static const struct path_rule audio_child_paths[] = {
  { "input", "dev", VMFERRY_REF_DEVICE_NODE, "input device" },
  { "output", "dev", VMFERRY_REF_DEVICE_NODE, "output device" },
};

static void
audio_refs (struct collector *c, xmlNodePtr a, const char *where)
{
  CLEANUP_FREE char *server = vmferry_xml_attr (a, "serverName");

  ADD_PATHS (c, a, audio_paths, where);
  if (server)
    add (c, VMFERRY_REF_SOCKET, false, name_of ("audio-server:%s", server),
         NULL, a, "serverName", "%s server", where);
  ADD_PATHS (c, a, audio_child_paths, where);
}

/* A name for the Nth device of its element name, for messages. */
static void
device_where (xmlNodePtr d, size_t index, char *buf, size_t len)
{
  snprintf (buf, len, "%s %zu", (const char *) d->name, index);
}

static bool
is_chardev (xmlNodePtr d)
{
  return vmferry_xml_is_elem (d, "serial") ||
    vmferry_xml_is_elem (d, "parallel") ||
    vmferry_xml_is_elem (d, "console") || vmferry_xml_is_elem (d, "channel") ||
    vmferry_xml_is_elem (d, "redirdev");
}

/* Per element name, how many were seen (for "serial 0", "serial 1"). */
struct counter {
  const xmlChar *name;
  size_t n;
};

static size_t
count (struct counter *cs, size_t *ncs, size_t max, const xmlChar *name)
{
  for (size_t i = 0; i < *ncs; i++)
    if (xmlStrEqual (cs[i].name, name))
      return cs[i].n++;
  if (*ncs < max) {
    cs[*ncs].name = name;
    cs[(*ncs)++].n = 1;
  }
  return 0;
}

static void
devices_refs (struct collector *c, xmlNodePtr devs)
{
  struct counter cs[64];
  size_t ncs = 0;

  for (xmlNodePtr d = devs->children; d && !c->failed; d = d->next) {
    char where[128];
    size_t index;

    if (d->type != XML_ELEMENT_NODE || d->ns != NULL)
      continue;
    index = count (cs, &ncs, sizeof cs / sizeof cs[0], d->name);
    device_where (d, index, where, sizeof where);

    if (vmferry_xml_is_elem (d, "emulator"))
      ADD_PATH_TEXT (c, VMFERRY_REF_EMULATOR, d, NULL, "emulator");
    else if (vmferry_xml_is_elem (d, "disk"))
      disk_refs (c, d, index);
    else if (vmferry_xml_is_elem (d, "filesystem"))
      filesystem_refs (c, d, where);
    else if (vmferry_xml_is_elem (d, "interface"))
      interface_refs (c, d, where);
    else if (vmferry_xml_is_elem (d, "graphics"))
      graphics_refs (c, d, where);
    else if (vmferry_xml_is_elem (d, "video")) {
      FOR_CHILDREN (m, d, "model")
        FOR_CHILDREN (acc, m, "acceleration")
          ADD_PATH_ATTR (c, VMFERRY_REF_DEVICE_NODE, acc, "rendernode", NULL,
                         "%s render node", where);
    }
    else if (is_chardev (d))
      chardev_refs (c, d, d, where);
    else if (vmferry_xml_is_elem (d, "smartcard"))
      smartcard_refs (c, d, where);
    else if (vmferry_xml_is_elem (d, "rng"))
      rng_refs (c, d, where);
    else if (vmferry_xml_is_elem (d, "tpm"))
      tpm_refs (c, d, where);
    else if (vmferry_xml_is_elem (d, "input")) {
      FOR_CHILDREN (s, d, "source") {
        ADD_PATH_ATTR (c, VMFERRY_REF_DEVICE_NODE, s, "evdev", NULL,
                       "%s source", where);
        ADD_PATH_ATTR (c, VMFERRY_REF_DEVICE_NODE, s, "dev", NULL,
                       "%s source", where);
      }
    }
    else if (vmferry_xml_is_elem (d, "hostdev"))
      hostdev_refs (c, d, where);
    else if (vmferry_xml_is_elem (d, "shmem")) {
      CLEANUP_FREE char *name = vmferry_xml_attr (d, "name");
      /* ivshmem: memory shared with whatever else on the host opens the
       * same name.
       */
      if (name)
        add (c, VMFERRY_REF_SHMEM, false, name_of ("shmem:%s", name), NULL,
             d, "name", "%s", where);
      FOR_CHILDREN (s, d, "server")
        ADD_PATH_ATTR (c, VMFERRY_REF_SOCKET, s, "path", NULL,
                       "%s server socket", where);
    }
    else if (vmferry_xml_is_elem (d, "memory"))
      memory_refs (c, d, where);
    else if (vmferry_xml_is_elem (d, "lease")) {
      FOR_CHILDREN (t, d, "target")
        ADD_PATH_ATTR (c, VMFERRY_REF_LEASE, t, "path", NULL, "%s target",
                       where);
    }
    else if (vmferry_xml_is_elem (d, "audio"))
      audio_refs (c, d, where);
    else if (vmferry_xml_is_elem (d, "pstore")) {
      FOR_CHILDREN (p, d, "path")
        ADD_PATH_TEXT (c, VMFERRY_REF_OUTPUT_FILE, p, NULL, "%s path", where);
    }

    /* Any PCI device may load an option ROM from the host. */
    FOR_CHILDREN (rom, d, "rom")
      ADD_PATH_ATTR (c, VMFERRY_REF_BOOT_FILE, rom, "file", NULL,
                     "%s rom", where);
  }
}

static const struct path_rule os_paths[] = {
  { "varstore", "path", VMFERRY_REF_NVRAM, "os/varstore" },
  { "varstore", "template", VMFERRY_REF_NVRAM_TEMPLATE,
    "os/varstore template" },
  { "kernel", NULL, VMFERRY_REF_BOOT_FILE, "os/kernel" },
  { "initrd", NULL, VMFERRY_REF_BOOT_FILE, "os/initrd" },
  { "dtb", NULL, VMFERRY_REF_BOOT_FILE, "os/dtb" },
  { "shim", NULL, VMFERRY_REF_BOOT_FILE, "os/shim" },
};

static void
os_refs (struct collector *c, xmlNodePtr os)
{
  FOR_CHILDREN (l, os, "loader") {
    CLEANUP_FREE char *ro = vmferry_xml_attr (l, "readonly");
    CLEANUP_FREE char *type = vmferry_xml_attr (l, "type");
    size_t before = c->refs.len;
    ADD_PATH_TEXT (c, VMFERRY_REF_LOADER, l, NULL, "os/loader");
    if (c->refs.len > before)
      c->refs.ptr[before].writable_loader =
        (ro && strcmp (ro, "no") == 0) ||
        (type && strcmp (type, "pflash") == 0 &&
         !(ro && strcmp (ro, "yes") == 0));
  }
  FOR_CHILDREN (nv, os, "nvram") {
    CLEANUP_FREE char *fmt = vmferry_xml_attr (nv, "format");
    ADD_PATH_ATTR (c, VMFERRY_REF_NVRAM_TEMPLATE, nv, "template", NULL,
                   "os/nvram template");
    /* The text form; with type='file' or 'network' a <source>. */
    if (vmferry_xml_child (nv, "source") == NULL)
      ADD_PATH_TEXT (c, VMFERRY_REF_NVRAM, nv, fmt, "os/nvram");
    store_sources (c, nv, VMFERRY_REF_NVRAM, fmt, "os/nvram");
  }
  ADD_PATHS (c, os, os_paths, "");
  FOR_CHILDREN (a, os, "acpi")
    FOR_CHILDREN (t, a, "table")
      ADD_PATH_TEXT (c, VMFERRY_REF_BOOT_FILE, t, NULL, "os/acpi table");
}

static void
seclabel_refs (struct collector *c, xmlNodePtr sl)
{
  CLEANUP_FREE char *type = vmferry_xml_attr (sl, "type");
  CLEANUP_FREE char *model = vmferry_xml_attr (sl, "model");
  CLEANUP_FREE char *label = NULL;

  /* Dynamic (the default when no type is given): libvirt confines the
   * domain itself.  Static or none: the XML chooses the confinement.
   */
  if (type == NULL || strcmp (type, "dynamic") == 0)
    return;
  label = text (vmferry_xml_child (sl, "label"));
  add (c, VMFERRY_REF_SECLABEL, false,
       label ? name_of ("seclabel:%s:%s:%s", model ? model : "", type, label)
             : name_of ("seclabel:%s:%s", model ? model : "", type),
       NULL, sl, "type", "seclabel");
}

/* Elements in libvirt's driver namespaces.  libvirt reads them only at
 * the top; they are looked for everywhere but in <metadata> (which is
 * for applications, and which libvirt never acts on).
 */
static void
namespace_refs (struct collector *c, xmlNodePtr root)
{
  xmlNodePtr n = root->children;
  xmlNodePtr qemu_first = NULL;
  size_t nqemu = 0;

  while (n && n != root) {
    bool descend = true;

    if (n->type == XML_ELEMENT_NODE) {
      if (n->ns == NULL && n->parent == root &&
          vmferry_xml_is_elem (n, "metadata"))
        descend = false;
      else if (n->ns && n->ns->href) {
        const char *href = (const char *) n->ns->href;
        if (strcmp (href, QEMU_NS) == 0) {
          if (nqemu++ == 0)
            qemu_first = n;
        }
        else if (strncmp (href, LIBVIRT_NS_PREFIX,
                          strlen (LIBVIRT_NS_PREFIX)) == 0)
          add (c, VMFERRY_REF_DRIVER_NAMESPACE, false,
               name_of ("namespace:%s", href), NULL, n, NULL,
               "<%s> in %s", (const char *) n->name, href);
        descend = false;
      }
    }
    if (descend && n->children)
      n = n->children;
    else {
      while (n != root && n->next == NULL)
        n = n->parent;
      if (n != root)
        n = n->next;
    }
  }
  /* Arbitrary QEMU arguments, environment, device properties: one
   * reference for all of them, allowed (or not) as a whole.
   */
  if (nqemu)
    add (c, VMFERRY_REF_QEMU_COMMANDLINE, false, strdup ("qemu-commandline"),
         NULL, qemu_first, NULL, "<qemu:%s>%s in libvirt's qemu namespace",
         (const char *) qemu_first->name, nqemu > 1 ? " and more" : "");
}

/* The safety net: attributes with these names, and the text of elements
 * with these names, that hold an absolute path no rule above claimed.
 */
static const char *const net_attrs[] = {
  "path", "file", "dev", "dir", "socket", "evdev", "rendernode", "keyfile",
  "agentsock", "logFile", "tap", "vhost", "xauth", "template", "runtimeDir",
  "master", "slave", NULL,
};
static const char *const net_texts[] = {
  "path", "kernel", "initrd", "dtb", "shim", "loader", "nvram", "emulator",
  "backend", "block", "char", "table", "database", "bootloader", NULL,
};
/* Guest-side names, and what refs.h leaves out on purpose. */
static const char *const net_skip[] = {
  "metadata", "description", "title", "target", "boot", "alias", "guest",
  "init", "initdir", "initarg", "initenv", "cmdline", "partition", NULL,
};

static bool
in_list (const char *const *list, const xmlChar *s)
{
  for (size_t i = 0; list[i]; i++)
    if (xmlStrEqual (BAD_CAST list[i], s))
      return true;
  return false;
}

static int
claim_cmp (const void *a, const void *b)
{
  const struct claim *x = a, *y = b;

  return x->node < y->node ? -1 : x->node > y->node;
}

static bool
claimed (const struct claim *cl, size_t n, xmlNodePtr node, const char *attr)
{
  struct claim key = { node, NULL };
  const struct claim *hit = bsearch (&key, cl, n, sizeof *cl, claim_cmp);
  size_t i;

  if (hit == NULL)
    return false;
  i = hit - cl;
  while (i > 0 && cl[i - 1].node == node)
    i--;
  for (; i < n && cl[i].node == node; i++)
    if (attr == NULL ? cl[i].attr == NULL
                     : cl[i].attr && strcmp (cl[i].attr, attr) == 0)
      return true;
  return false;
}

static void
safety_net (struct collector *c, xmlNodePtr root)
{
  xmlNodePtr n = root;
  CLEANUP_FREE struct claim *cl = NULL;
  size_t ncl = c->refs.len + c->ignored.len;

  if (c->failed)
    return;
  cl = calloc (ncl ? ncl : 1, sizeof *cl);
  if (cl == NULL) {
    vmferry_set_error_errno (ENOMEM, "domain XML: host references");
    c->failed = true;
    return;
  }
  for (size_t i = 0; i < c->refs.len; i++) {
    cl[i].node = c->refs.ptr[i].node;
    cl[i].attr = c->refs.ptr[i].attr;
  }
  if (c->ignored.len)
    memcpy (cl + c->refs.len, c->ignored.ptr, c->ignored.len * sizeof *cl);
  qsort (cl, ncl, sizeof *cl, claim_cmp);

  while (n && !c->failed) {
    bool descend = true;

    if (n->type == XML_ELEMENT_NODE) {
      if (n->ns != NULL || in_list (net_skip, n->name))
        descend = false;
      else {
        for (xmlAttrPtr a = n->properties; a; a = a->next) {
          CLEANUP_FREE char *v = NULL;
          const char *name = (const char *) a->name;
          if (a->ns || !in_list (net_attrs, a->name))
            continue;
          v = vmferry_xml_attr (n, name);
          if (v && v[0] == '/' && !claimed (cl, ncl, n, name)) {
            /* The attribute name must outlive the document: use ours. */
            for (size_t i = 0; net_attrs[i]; i++)
              if (strcmp (net_attrs[i], name) == 0)
                name = net_attrs[i];
            add (c, VMFERRY_REF_OTHER, true, v, NULL, n, name, "%s/@%s",
                 (const char *) n->name, name);
            v = NULL;
          }
        }
        if (in_list (net_texts, n->name) && !claimed (cl, ncl, n, NULL)) {
          CLEANUP_FREE char *v = text (n);
          if (v && v[0] == '/') {
            add (c, VMFERRY_REF_OTHER, true, v, NULL, n, NULL, "%s",
                 (const char *) n->name);
            v = NULL;
          }
        }
      }
    }
    if (descend && n->children)
      n = n->children;
    else {
      while (n && n != root && n->next == NULL)
        n = n->parent;
      if (n == NULL || n == root)
        break;
      n = n->next;
    }
  }
}

int
vmferry_domain_refs (xmlDocPtr doc, struct vmferry_ref **refs_rtn,
                     size_t *n_rtn)
{
  struct collector c = { .refs = VECTOR_INIT, .ignored = VECTOR_INIT };
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;

  if (root == NULL) {
    vmferry_set_error_errno (EINVAL, "domain XML: no root element");
    return -1;
  }
  FOR_CHILDREN (os, root, "os")
    os_refs (&c, os);
  FOR_CHILDREN (devs, root, "devices")
    devices_refs (&c, devs);
  /* The Xen bootloader is run on the host. */
  FOR_CHILDREN (bl, root, "bootloader")
    ADD_PATH_TEXT (&c, VMFERRY_REF_EXECUTABLE, bl, NULL, "bootloader");
  FOR_CHILDREN (bt, root, "blkiotune")
    FOR_CHILDREN (dev, bt, "device")
      FOR_CHILDREN (p, dev, "path")
        ADD_PATH_TEXT (&c, VMFERRY_REF_DEVICE_NODE, p, NULL,
                       "blkiotune device");
  /* fw_cfg entries: QEMU reads the host file into the guest. */
  FOR_CHILDREN (si, root, "sysinfo")
    FOR_CHILDREN (e, si, "entry")
      ADD_PATH_ATTR (&c, VMFERRY_REF_BOOT_FILE, e, "file", NULL,
                     "sysinfo entry file");
  FOR_CHILDREN (sl, root, "seclabel")
    seclabel_refs (&c, sl);
  /* TDX attestation: QEMU connects to the host's quote service. */
  FOR_CHILDREN (ls, root, "launchSecurity")
    FOR_CHILDREN (q, ls, "quoteGenerationService")
      ADD_PATH_ATTR (&c, VMFERRY_REF_SOCKET, q, "path", NULL,
                     "launchSecurity quote generation service");
  namespace_refs (&c, root);
  safety_net (&c, root);
  claim_vector_reset (&c.ignored);

  if (c.failed) {
    vmferry_refs_free (c.refs.ptr, c.refs.len);
    return -1;
  }
  *refs_rtn = c.refs.ptr;
  *n_rtn = c.refs.len;
  return 0;
}

/* ---------------------------------------------------------------- policy */

void
vmferry_ref_findings_free (struct vmferry_ref_finding *f, size_t n)
{
  if (f == NULL)
    return;
  for (size_t i = 0; i < n; i++) {
    free (f[i].message);
    free (f[i].allow);
  }
  free (f);
}

int
vmferry_refs_allow_valid (const char *value)
{
  const char *colon;

  if (value == NULL || *value == '\0') {
    vmferry_set_error ("--allow-path: empty value");
    return -1;
  }
  if (value[0] == '/')
    return 0;
  if (strcmp (value, "qemu-commandline") == 0)
    return 0;
  colon = strchr (value, ':');
  if (colon && colon > value && strcspn (value, "/") > (size_t) (colon - value))
    return 0;
  vmferry_set_error ("--allow-path: '%s' is neither an absolute path nor a "
                     "resource name (KIND:NAME, e.g. rbd:pool/image, "
                     "pci:0000:03:00.0, or qemu-commandline)", value);
  return -1;
}

/* VALUE for a one-line message: control bytes and bytes >= 0x7f as \xNN,
 * at most 512 bytes of it.  A stream chooses these strings; they must not
 * reach a terminal raw.
 */
static char *
printable (const char *value)
{
  size_t len = strlen (value), used = 0;
  char *out = malloc ((len < 512 ? len : 512) * 4 + 4);

  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < len && i < 512; i++) {
    unsigned char ch = value[i];
    if (ch < 0x20 || ch >= 0x7f || ch == '\\')
      used += sprintf (out + used, "\\x%02x", ch);
    else
      out[used++] = ch;
  }
  if (len > 512)
    used += sprintf (out + used, "...");
  out[used] = '\0';
  return out;
}

static bool
carried_match (const struct vmferry_refs_policy *p, const char *value,
               const struct vmferry_refs_carried **match)
{
  for (size_t i = 0; i < p->n_carried; i++)
    if (p->carried[i].path && strcmp (p->carried[i].path, value) == 0) {
      *match = &p->carried[i];
      return true;
    }
  return false;
}

static bool
list_has_dir (const char *const *dirs, size_t n, const char *path)
{
  for (size_t i = 0; i < n && dirs[i]; i++)
    if (vmferry_path_within (path, dirs[i]))
      return true;
  return false;
}

static bool
list_has (const char *const *list, size_t n, const char *s)
{
  for (size_t i = 0; i < n && list[i]; i++)
    if (strcmp (list[i], s) == 0)
      return true;
  return false;
}

bool
vmferry_refs_allowed (const char *value, bool is_path,
                      const char *const *allow, size_t n)
{
  if (value == NULL)
    return false;
  if (!is_path)
    return list_has (allow, n, value);
  if (!vmferry_path_is_normal (value))
    return false;
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *a = NULL;
    if (allow[i] == NULL || allow[i][0] != '/')
      continue;
    a = vmferry_path_normalise (allow[i]);
    if (a && vmferry_path_within (value, a))
      return true;
  }
  return false;
}

/* The noun for the thing a kind names, for "if the host's own X". */
static const char *
noun (int kind)
{
  switch (kind) {
  case VMFERRY_REF_EMULATOR:
  case VMFERRY_REF_EXECUTABLE: return "program";
  case VMFERRY_REF_SOCKET: return "socket";
  case VMFERRY_REF_DEVICE_NODE:
  case VMFERRY_REF_ENTROPY_SOURCE:
  case VMFERRY_REF_HOST_DEVICE: return "device";
  case VMFERRY_REF_NETWORK_DISK:
  case VMFERRY_REF_VOLUME: return "storage";
  case VMFERRY_REF_SHMEM:
  case VMFERRY_REF_SECLABEL:
  case VMFERRY_REF_QEMU_COMMANDLINE:
  case VMFERRY_REF_DRIVER_NAMESPACE: return "setting";
  default: return "file";
  }
}

int
vmferry_refs_check (const struct vmferry_ref *refs, size_t n,
                    const struct vmferry_refs_policy *policy,
                    struct vmferry_ref_finding **findings_rtn, size_t *n_rtn)
{
  struct vmferry_ref_finding *out = NULL;
  size_t nout = 0;
  char **allow_paths = NULL;
  size_t nallow_paths = 0;
  char emulators[512] = "";
  int ret = -1;

  *findings_rtn = NULL;
  *n_rtn = 0;
  if (n == 0)
    return 0;
  /* Path allowances, made normal once; a relative one allows nothing. */
  allow_paths = calloc (policy->n_allow + 1, sizeof *allow_paths);
  out = calloc (n, sizeof *out);
  if (allow_paths == NULL || out == NULL)
    goto nomem;
  for (size_t i = 0; i < policy->n_allow; i++) {
    const char *a = policy->allow[i];
    if (a && a[0] == '/') {
      allow_paths[nallow_paths] = vmferry_path_normalise (a);
      if (allow_paths[nallow_paths] == NULL)
        goto out;
      nallow_paths++;
    }
  }
  if (policy->have_emulators) {
    size_t used = 0;
    for (size_t i = 0; i < policy->n_emulators && used < sizeof emulators; i++)
      used += snprintf (emulators + used, sizeof emulators - used, "%s%s",
                        used ? ", " : "", policy->emulators[i]);
  }

  for (size_t i = 0; i < n; i++) {
    const struct vmferry_ref *r = &refs[i];
    const struct vmferry_refs_carried *cm = NULL;
    CLEANUP_FREE char *pv = printable (r->value);
    CLEANUP_FREE char *pf = NULL;
    struct vmferry_ref_finding *f = &out[nout];
    int len = 0;

    if (pv == NULL)
      goto nomem;
    if (carried_match (policy, r->value, &cm)) {
      if (cm->format == NULL || r->format == NULL ||
          strcmp (cm->format, r->format) == 0)
        continue;
      pf = printable (r->format);
      f->reason = VMFERRY_REF_FORMAT_MISMATCH;
      len = asprintf (&f->message, "%s %s: the XML gives it format '%s', "
                      "but the stream carried it as %s", r->where, pv,
                      pf ? pf : "?", cm->format);
    }
    else if (r->is_path && !vmferry_path_is_normal (r->value)) {
      f->reason = VMFERRY_REF_NOT_NORMAL;
      len = asprintf (&f->message, "%s %s: not an absolute path in normal "
                      "form (relative, or with an empty, '.' or '..' "
                      "component): refused whatever is allowed", r->where,
                      pv);
    }
    else if (r->is_path
             ? list_has_dir ((const char *const *) allow_paths, nallow_paths,
                             r->value)
             : list_has (policy->allow, policy->n_allow, r->value))
      continue;
    else if ((r->kind == VMFERRY_REF_LOADER ||
              r->kind == VMFERRY_REF_NVRAM_TEMPLATE) &&
             list_has_dir (vmferry_refs_firmware_dirs, SIZE_MAX, r->value)) {
      if (!(r->kind == VMFERRY_REF_LOADER && r->writable_loader))
        continue;
      f->reason = VMFERRY_REF_WRITABLE_LOADER;
      len = asprintf (&f->message, "%s %s: system firmware that QEMU may "
                      "write (the loader lacks readonly='yes'); to accept "
                      "it: --allow-path %s", r->where, pv, pv);
    }
    else if (r->kind == VMFERRY_REF_ENTROPY_SOURCE &&
             list_has (entropy_sources, SIZE_MAX, r->value))
      continue;
    else if (r->kind == VMFERRY_REF_EMULATOR && policy->have_emulators &&
             list_has (policy->emulators, policy->n_emulators, r->value))
      continue;
    else if (r->kind == VMFERRY_REF_EMULATOR) {
      f->reason = VMFERRY_REF_UNKNOWN_EMULATOR;
      len = asprintf (&f->message, "%s %s: not one of this host's emulators "
                      "(%s), and libvirt runs it as root; to run it anyway: "
                      "--allow-path %s", r->where, pv,
                      policy->have_emulators
                      ? (emulators[0] ? emulators : "none")
                      : "the host's list was not read", pv);
    }
    else if (strcmp (noun (r->kind), "setting") == 0) {
      f->reason = VMFERRY_REF_NOT_ALLOWED;
      len = asprintf (&f->message, "%s %s: gives the domain power over the "
                      "host that only the host's owner may grant (to "
                      "accept it: --allow-path %s)", r->where, pv, pv);
    }
    else {
      f->reason = VMFERRY_REF_NOT_ALLOWED;
      len = asprintf (&f->message, "%s %s: not carried by the stream and "
                      "not allowed (if the host's own %s is meant: "
                      "--allow-path %s)", r->where, pv, noun (r->kind), pv);
    }
    if (len < 0) {
      f->message = NULL;
      goto nomem;
    }
    f->ref = i;
    f->subject_len = strlen (r->where) + 1 + strlen (pv);
    if (f->reason != VMFERRY_REF_NOT_NORMAL &&
        f->reason != VMFERRY_REF_FORMAT_MISMATCH &&
        (f->allow = strdup (r->value)) == NULL) {
      nout++;
      goto nomem;
    }
    nout++;
  }
  if (nout == 0) {
    free (out);
    out = NULL;
  }
  *findings_rtn = out;
  *n_rtn = nout;
  out = NULL;
  nout = 0;
  ret = 0;
  goto out;
 nomem:
  vmferry_set_error_errno (ENOMEM, "host references");
 out:
  vmferry_ref_findings_free (out, nout);
  for (size_t i = 0; i < nallow_paths; i++)
    free (allow_paths[i]);
  free (allow_paths);
  return ret;
}

int
vmferry_refs_enforce (xmlDocPtr doc, const struct vmferry_refs_policy *policy)
{
  struct vmferry_ref *refs = NULL;
  struct vmferry_ref_finding *f = NULL;
  size_t n = 0, nf = 0;
  int ret = -1;

  if (vmferry_domain_refs (doc, &refs, &n) == -1)
    return -1;
  if (vmferry_refs_check (refs, n, policy, &f, &nf) == -1)
    goto out;
  if (nf == 0)
    ret = 0;
  else if (nf == 1)
    vmferry_set_error ("the domain refers to a host resource the stream did "
                       "not carry: %s", f[0].message);
  else
    vmferry_set_error ("the domain refers to %zu host resources the stream "
                       "did not carry: %s (and %zu more)", nf, f[0].message,
                       nf - 1);
 out:
  vmferry_ref_findings_free (f, nf);
  vmferry_refs_free (refs, n);
  return ret;
}

/* ---------------------------------------------------------------- libvirt */

int
vmferry_refs_host_emulators (virConnectPtr conn, char ***emulators_rtn,
                             size_t *n_rtn)
{
  CLEANUP_FREE char *caps = virConnectGetCapabilities (conn);
  CLEANUP_XMLDOC xmlDocPtr d = NULL;
  /* NULL-terminated beyond its LEN. */
  struct string_vector v = VECTOR_INIT;

  if (caps == NULL) {
    vmferry_virt_error ("cannot read the host's capabilities");
    return -1;
  }
  d = vmferry_xml_parse_libvirt (caps);
  if (d == NULL || xmlDocGetRootElement (d) == NULL) {
    vmferry_set_error ("cannot parse the host's capabilities");
    return -1;
  }
  if (string_vector_reserve (&v, 1) == -1)
    goto nomem;
  v.ptr[0] = NULL;
  FOR_CHILDREN (g, xmlDocGetRootElement (d), "guest")
    FOR_CHILDREN (a, g, "arch") {
      xmlNodePtr ems[64];
      size_t nems = 0;
      FOR_CHILDREN (e, a, "emulator")
        if (nems < 64)
          ems[nems++] = e;
      FOR_CHILDREN (dom, a, "domain")
        FOR_CHILDREN (e, dom, "emulator")
          if (nems < 64)
            ems[nems++] = e;
      for (size_t i = 0; i < nems; i++) {
        char *t = text (ems[i]);
        if (t == NULL)
          continue;
        if (list_has ((const char *const *) v.ptr, v.len, t)) {
          free (t);
          continue;
        }
        if (string_vector_reserve (&v, 2) == -1) {
          free (t);
          goto nomem;
        }
        v.ptr[v.len++] = t;
        v.ptr[v.len] = NULL;
      }
    }
  *emulators_rtn = v.ptr;
  *n_rtn = v.len;
  return 0;
 nomem:
  vmferry_strv_free (v.ptr);
  vmferry_set_error_errno (ENOMEM, "host emulators");
  return -1;
}
