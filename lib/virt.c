/* vmferry: libvirt access (see virt.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/virterror.h>
#include <libxml/xpath.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "qcow2.h"
#include "vector.h"
#include "virt.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void
silent_handler (void *opaque, virErrorPtr err)
{
  (void) opaque;
  (void) err;
}

static void
virt_init (void)
{
  virInitialize ();
  virSetErrorFunc (NULL, silent_handler);
}

void
vmferry_virt_error (const char *fs, ...)
{
  char context[1024];
  va_list args;
  virErrorPtr err = virGetLastError ();

  va_start (args, fs);
  vsnprintf (context, sizeof context, fs, args);
  va_end (args);
  if (err && err->message)
    vmferry_set_error ("%s: %s", context, err->message);
  else
    vmferry_set_error ("%s: unknown libvirt error", context);
}

/* The embedded driver (qemu:///embed?root=DIR: libvirt's QEMU driver in
 * this process, no daemon) does not open without an event loop.  Only
 * then: a client with a loop it never runs would offer a daemon
 * keepalive it never answers, and lose a connection it holds idle for
 * long, as export does while it reads the disks.
 */
static void
virt_init_embed (void)
{
  virEventRegisterDefaultImpl ();
}

virConnectPtr
vmferry_virt_connect (const char *uri)
{
  static pthread_once_t embed_once = PTHREAD_ONCE_INIT;
  virConnectPtr conn;

  pthread_once (&init_once, virt_init);
  if (uri && strstr (uri, ":///embed"))
    pthread_once (&embed_once, virt_init_embed);
  conn = virConnectOpen (uri);
  if (conn == NULL) {
    vmferry_virt_error ("%s: cannot connect",
                        uri ? uri : "default libvirt URI");
    return NULL;
  }
  virConnSetErrorFunc (conn, NULL, silent_handler);
  return conn;
}

virDomainPtr
vmferry_virt_lookup_domain (virConnectPtr conn, const char *name)
{
  virDomainPtr dom = virDomainLookupByName (conn, name);

  char uuid[37];

  if (dom == NULL) {
    virErrorPtr err = virGetLastError ();
    if (err && err->code != VIR_ERR_NO_DOMAIN)
      goto error;
    /* Only a name that is a UUID is looked up as one: otherwise libvirt's
     * "Invalid UUID" would hide that there is no such domain.
     */
    if (vmferry_uuid_canonical (name, uuid) < 0) {
      vmferry_set_error ("domain %s: no such domain (virsh list --all shows "
                         "the defined ones)", name);
      return NULL;
    }
    dom = virDomainLookupByUUIDString (conn, uuid);
    if (dom == NULL && (err = virGetLastError ()) &&
        err->code == VIR_ERR_NO_DOMAIN) {
      vmferry_set_error ("domain %s: no such domain (virsh list --all shows "
                         "the defined ones)", name);
      return NULL;
    }
  }
  if (dom)
    return dom;
 error:
  vmferry_virt_error ("domain %s", name);
  return NULL;
}

int
vmferry_virt_domain_state (virDomainPtr dom)
{
  int state, reason;

  if (virDomainGetState (dom, &state, &reason, 0) < 0) {
    vmferry_virt_error ("domain %s: cannot get state", virDomainGetName (dom));
    return -1;
  }
  return state;
}

const char *
vmferry_virt_state_name (int state)
{
  switch (state) {
  case VIR_DOMAIN_NOSTATE: return "no state";
  case VIR_DOMAIN_RUNNING: return "running";
  case VIR_DOMAIN_BLOCKED: return "idle";
  case VIR_DOMAIN_PAUSED: return "paused";
  case VIR_DOMAIN_SHUTDOWN: return "in shutdown";
  case VIR_DOMAIN_SHUTOFF: return "shut off";
  case VIR_DOMAIN_CRASHED: return "crashed";
  case VIR_DOMAIN_PMSUSPENDED: return "pmsuspended";
  default: return "unknown";
  }
}

/* Whether V (a path from a definition) is PATH, or with ST the same file. */
static bool
same_file (const char *v, const char *path, const struct stat *st)
{
  struct stat sb;

  return strcmp (v, path) == 0 ||
    (st && v[0] == '/' && stat (v, &sb) == 0 &&
     sb.st_dev == st->st_dev && sb.st_ino == st->st_ino);
}

/* Whether the qcow2 image at IMAGE has PATH (ST) in its backing chain.
 * The chain is in the images' headers, not in an inactive definition:
 * libvirt finds it when the domain starts, so replacing a backing file
 * changes what an overlay of another domain reads.  Only regular files
 * are opened, without blocking, and only as far as the headers say
 * qcow2 (a raw image's first bytes are guest data).  Read errors end the
 * walk: what QEMU could not open either is nobody's backing file.
 */
static bool
chain_uses (const char *image, const char *path, const struct stat *st)
{
  char *cur = strdup (image);
  bool uses = false;

  for (int depth = 0; cur && !uses && depth < VMFERRY_QCOW2_MAX_CHAIN;
       depth++) {
    struct vmferry_qcow2_info info;
    struct stat sb;
    char *next = NULL;
    int fd = -1;

    if (stat (cur, &sb) == 0 && S_ISREG (sb.st_mode))
      fd = open (cur, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0 && vmferry_qcow2_probe (fd, cur, &info) == 1 &&
        info.has_backing &&
        (next = vmferry_qcow2_backing_path (cur, info.backing_file))) {
      uses = same_file (next, path, st);
      if (info.backing_format[0] &&
          strcmp (info.backing_format, "qcow2") != 0) {
        free (next);   /* raw: the chain ends there */
        next = NULL;
      }
    }
    if (fd >= 0)
      close (fd);
    free (cur);
    cur = next;
  }
  free (cur);
  vmferry_clear_error ();
  return uses;
}

char *
vmferry_virt_volume_path (virConnectPtr conn, const char *pool,
                          const char *volume)
{
  CLEANUP_VIR_POOL virStoragePoolPtr p =
    virStoragePoolLookupByName (conn, pool);
  CLEANUP_VIR_VOL virStorageVolPtr v = NULL;

  if (p == NULL || (v = virStorageVolLookupByName (p, volume)) == NULL)
    return NULL;
  return virStorageVolGetPath (v);
}

/* Whether the XML of one domain names PATH (or, with ST, the same file)
 * in any source, backing store or NVRAM element, as a volume of a pool,
 * or in the backing chain of a qcow2 disk.
 */
static bool
xml_uses (virConnectPtr conn, const char *xml, const char *path,
          const struct stat *st)
{
  static const char *const expr =
    "//source/@file | //source/@dev | //source/@path | //source/@dir |"
    " /domain/os/nvram/text() | /domain/os/loader/text() |"
    " /domain/os/kernel/text() | /domain/os/initrd/text()";
  CLEANUP_XMLDOC xmlDocPtr doc = vmferry_domain_parse (xml, strlen (xml),
                                                       "domain XML");
  CLEANUP_XPATH_CTX xmlXPathContextPtr ctx = NULL;
  CLEANUP_XPATH_OBJ xmlXPathObjectPtr obj = NULL;
  CLEANUP_XPATH_OBJ xmlXPathObjectPtr disks = NULL;
  bool uses = false;

  if (doc == NULL || (ctx = xmlXPathNewContext (doc)) == NULL ||
      (obj = xmlXPathEvalExpression (BAD_CAST expr, ctx)) == NULL ||
      obj->nodesetval == NULL)
    return false;
  for (int i = 0; i < obj->nodesetval->nodeNr && !uses; i++) {
    xmlChar *v = xmlNodeGetContent (obj->nodesetval->nodeTab[i]);

    uses = v && same_file ((const char *) v, path, st);
    xmlFree (v);
  }
  /* Disks named as pool volumes, and the backing chains of qcow2 disks. */
  disks = uses ? NULL : xmlXPathEvalExpression (BAD_CAST "//disk", ctx);
  for (int i = 0; disks && disks->nodesetval &&
       i < disks->nodesetval->nodeNr && !uses; i++) {
    xmlNodePtr disk = disks->nodesetval->nodeTab[i];
    xmlNodePtr source = vmferry_xml_child (disk, "source");
    xmlNodePtr driver = vmferry_xml_child (disk, "driver");
    xmlChar *type = driver ? xmlGetProp (driver, BAD_CAST "type") : NULL;
    xmlChar *file = NULL, *pool = NULL, *vol = NULL;
    char *image = NULL;

    if (source) {
      file = xmlGetProp (source, BAD_CAST "file");
      if (file == NULL)
        file = xmlGetProp (source, BAD_CAST "dev");
      pool = xmlGetProp (source, BAD_CAST "pool");
      vol = xmlGetProp (source, BAD_CAST "volume");
    }
    if (file)
      image = strdup ((const char *) file);
    else if (pool && vol && conn &&
             (image = vmferry_virt_volume_path (conn, (const char *) pool,
                                                (const char *) vol)) != NULL)
      uses = same_file (image, path, st);
    if (image && !uses && type && strcmp ((const char *) type, "qcow2") == 0)
      uses = chain_uses (image, path, st);
    free (image);
    xmlFree (type);
    xmlFree (file);
    xmlFree (pool);
    xmlFree (vol);
  }
  return uses;
}

DEFINE_VECTOR_TYPE (byte_vector, char);

char *
vmferry_virt_file_users (virConnectPtr conn, const char *path,
                         const struct stat *st, const char *exclude_uuid)
{
  virDomainPtr *doms = NULL;
  struct byte_vector list = VECTOR_INIT;
  bool failed = false;
  int n = virConnectListAllDomains (conn, &doms, 0);

  if (n < 0) {
    vmferry_virt_error ("cannot list the domains of this host");
    return NULL;
  }
  for (int i = 0; i < n && !failed; i++) {
    char uuid[VIR_UUID_STRING_BUFLEN];
    bool uses = false;

    if (!(exclude_uuid && virDomainGetUUIDString (doms[i], uuid) == 0 &&
          strcmp (uuid, exclude_uuid) == 0)) {
      for (int live = 0; live < 2 && !uses; live++) {
        CLEANUP_FREE char *xml = NULL;
        if (live && virDomainIsActive (doms[i]) != 1)
          continue;
        if (!live && virDomainIsPersistent (doms[i]) != 1)
          continue;
        xml = virDomainGetXMLDesc (doms[i],
                                   live ? 0 : VIR_DOMAIN_XML_INACTIVE);
        uses = xml && xml_uses (conn, xml, path, st);
      }
    }
    if (uses) {
      const char *name = virDomainGetName (doms[i]);
      failed = (list.len > 0 &&
                byte_vector_append_many (&list, ", ", 2) == -1) ||
               byte_vector_append_many (&list, name, strlen (name)) == -1;
    }
  }
  for (int i = 0; i < n; i++)
    virDomainFree (doms[i]);
  free (doms);
  if (failed || byte_vector_append (&list, '\0') == -1) {
    vmferry_set_error_errno (ENOMEM, "domains");
    byte_vector_reset (&list);
    return NULL;
  }
  return list.ptr;
}

/* What LVM needs, said when a logical pool cannot be used. */
#define LVM_NEEDS "a logical pool needs LVM on the host: the lvm2 package, " \
  "device-mapper in the kernel (/dev/mapper/control), and the pool's " \
  "volume group (vgcreate VG DEVICE; virsh pool-define-as POOL logical " \
  "--source-name VG --target /dev/VG; virsh pool-start POOL)"

const char *
vmferry_virt_pool_block_type (virStoragePoolPtr p, const char *pool)
{
  CLEANUP_FREE char *xml = virStoragePoolGetXMLDesc (p, 0);

  if (xml == NULL) {
    vmferry_virt_error ("storage pool %s", pool);
    return NULL;
  }
  if (strstr (xml, "<pool type='disk'") != NULL)
    return "disk";
  if (strstr (xml, "<pool type='logical'") != NULL)
    return "logical";
  return "";
}

/* Why an inactive pool of TYPE is so, as far as this host says: for a
 * logical pool, the parts of LVM that are missing.
 */
static void
say_inactive (const char *pool, const char *type)
{
  int fd;

  if (strcmp (type, "logical") != 0) {
    vmferry_set_error ("storage pool %s (%s) is not active (virsh pool-start "
                       "%s; a disk pool needs parted and its disk)", pool,
                       type, pool);
    return;
  }
  fd = open ("/dev/mapper/control", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    vmferry_set_error ("storage pool %s (logical) is not active, and cannot "
                       "be on this host: it has no device-mapper "
                       "(/dev/mapper/control: %s); %s", pool, strerror (errno),
                       LVM_NEEDS);
    return;
  }
  close (fd);
  if (access ("/sbin/lvcreate", X_OK) < 0 &&
      access ("/usr/sbin/lvcreate", X_OK) < 0) {
    vmferry_set_error ("storage pool %s (logical) is not active, and cannot "
                       "be on this host: lvcreate is not installed; %s", pool,
                       LVM_NEEDS);
    return;
  }
  vmferry_set_error ("storage pool %s (logical) is not active (virsh "
                     "pool-start %s: is its volume group there? vgs); %s",
                     pool, pool, LVM_NEEDS);
}

int
vmferry_virt_pool_usable (virStoragePoolPtr p, const char *pool,
                            const char *type)
{
  if (virStoragePoolIsActive (p) == 1)
    return 0;
  say_inactive (pool, type);
  return -1;
}
