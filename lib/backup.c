/* vmferry: a libvirt pull-mode backup of a running domain (see backup.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libxml/tree.h>
#include <libvirt/virterror.h>

#include "backup.h"
#include "cleanup.h"
#include "error.h"
#include "log.h"
#include "virt.h"
#include "xmlnode.h"

/* How long libvirt may take to forget an aborted job (it removes the
 * scratch files first, which may take a while when they grew large).
 */
#define GONE_TIMEOUT_S 120

struct vmferry_backup {
  virDomainPtr dom;             /* a reference of our own */
  char *name;                   /* the domain's, for messages */
  char *dir;                    /* the directory we made */
  char *socket;
  bool frozen;
  char *why_not_frozen;
};

/* The process's active backup (vmferry_backup_quit ends it).  The lock
 * is held for the whole of an end, so the quit never finds a job half
 * ended, and never given back by the quit.
 */
static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vmferry_backup *active;

/* ---- the XML ---- */

static xmlNodePtr
new_child (xmlNodePtr parent, const char *name)
{
  return xmlNewChild (parent, NULL, BAD_CAST name, NULL);
}

static bool
set_prop (xmlNodePtr n, const char *name, const char *value)
{
  return n && xmlNewProp (n, BAD_CAST name, BAD_CAST value) != NULL;
}

char *
vmferry_backup_xml (const char *socket, const char *incremental,
                    const struct vmferry_backup_disk *disks, size_t n)
{
  CLEANUP_XMLDOC xmlDocPtr doc = xmlNewDoc (BAD_CAST "1.0");
  xmlNodePtr root, server, list, d, s;
  xmlChar *mem = NULL;
  char *ret;
  int len = 0;
  bool ok;

  root = doc ? xmlNewNode (NULL, BAD_CAST "domainbackup") : NULL;
  if (root == NULL)
    goto nomem;
  xmlDocSetRootElement (doc, root);
  ok = set_prop (root, "mode", "pull");
  /* The text is escaped by libxml2: a name cannot add elements. */
  if (incremental)
    ok = ok && xmlNewTextChild (root, NULL, BAD_CAST "incremental",
                                BAD_CAST incremental) != NULL;
  server = new_child (root, "server");
  ok = ok && set_prop (server, "transport", "unix") &&
       set_prop (server, "socket", socket);
  list = new_child (root, "disks");
  ok = ok && list;
  for (size_t i = 0; ok && i < n; i++) {
    d = new_child (list, "disk");
    ok = set_prop (d, "name", disks[i].name) &&
         set_prop (d, "backup", disks[i].scratch ? "yes" : "no");
    if (!ok || disks[i].scratch == NULL)
      continue;
    if (incremental && disks[i].full)
      ok = set_prop (d, "backupmode", "full");
    s = ok && set_prop (d, "type", "file") ? new_child (d, "scratch") : NULL;
    ok = set_prop (s, "file", disks[i].scratch);
  }
  if (!ok)
    goto nomem;
  xmlDocDumpFormatMemory (doc, &mem, &len, 1);
  if (mem == NULL)
    goto nomem;
  ret = strndup ((const char *) mem, (size_t) len);
  xmlFree (mem);
  if (ret == NULL)
    goto nomem;
  return ret;
 nomem:
  vmferry_set_error_errno (ENOMEM, "backup XML");
  return NULL;
}

char *
vmferry_backup_xml_socket (const char *xml)
{
  CLEANUP_XMLDOC xmlDocPtr doc = xml ? vmferry_xml_parse_libvirt (xml) : NULL;
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  xmlNodePtr server;

  if (!vmferry_xml_is_elem (root, "domainbackup") ||
      !vmferry_xml_attr_eq (root, "mode", "pull"))
    return NULL;
  server = vmferry_xml_child (root, "server");
  if (!vmferry_xml_attr_eq (server, "transport", "unix"))
    return NULL;
  return vmferry_xml_attr (server, "socket");
}

bool
vmferry_backup_socket_is_ours (const char *socket)
{
  const size_t plen = strlen (VMFERRY_BACKUP_DIR_PREFIX);
  const char *tail = "/" VMFERRY_BACKUP_SOCKET;
  size_t len = socket ? strlen (socket) : 0, tlen = strlen (tail);
  const char *dir;

  if (len < tlen + 1 + plen + 6 || socket[0] != '/' ||
      strcmp (socket + len - tlen, tail) != 0)
    return false;
  dir = socket + len - tlen - plen - 6;
  if (dir[-1] != '/' || strncmp (dir, VMFERRY_BACKUP_DIR_PREFIX, plen) != 0)
    return false;
  for (size_t i = 0; i < 6; i++) {
    char c = dir[plen + i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9')))
      return false;
  }
  return strstr (socket, "/../") == NULL && strstr (socket, "/./") == NULL;
}

/* ---- the job ---- */

/* The job's XML, or NULL: with *GONE_RTN true when DOM has no backup
 * job (or no longer runs), else with the error set.
 */
static char *
job_xml (virDomainPtr dom, bool *gone_rtn)
{
  char *xml = virDomainBackupGetXMLDesc (dom, 0);
  virErrorPtr e;

  *gone_rtn = false;
  if (xml)
    return xml;
  e = virGetLastError ();
  if (e && (e->code == VIR_ERR_NO_DOMAIN_BACKUP ||
            e->code == VIR_ERR_OPERATION_INVALID ||
            e->code == VIR_ERR_NO_DOMAIN)) {
    *gone_rtn = true;
    virResetLastError ();
    return NULL;
  }
  vmferry_virt_error ("domain %s: cannot read its backup job",
                      virDomainGetName (dom));
  return NULL;
}

/* Remove DIR and what the job left in it (the socket; scratch files
 * libvirt did not remove).  Only names without a dot first are ours.
 */
static int
remove_dir (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  int r = 0;

  if (d == NULL) {
    if (errno == ENOENT)
      return 0;
    vmferry_set_error_errno (errno, "%s", dir);
    return -1;
  }
  while ((e = readdir (d)) != NULL)
    if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0 &&
        unlinkat (dirfd (d), e->d_name, 0) < 0 && errno != ENOENT) {
      vmferry_set_error_errno (errno, "%s/%s: cannot remove it", dir,
                               e->d_name);
      r = -1;
    }
  closedir (d);
  if (r == 0 && rmdir (dir) < 0 && errno != ENOENT) {
    vmferry_set_error_errno (errno, "%s: cannot remove it", dir);
    r = -1;
  }
  return r;
}

/* Abort DOM's backup job whose socket is SOCKET and wait until libvirt
 * no longer lists it.  A job already gone is fine.
 */
static int
abort_job (virDomainPtr dom, const char *socket)
{
  const char *name = virDomainGetName (dom);
  struct timespec pause = { 0, 20 * 1000 * 1000 };
  bool gone, aborted = false;

  for (unsigned i = 0; i < GONE_TIMEOUT_S * 50; i++) {
    CLEANUP_FREE char *xml = job_xml (dom, &gone);
    CLEANUP_FREE char *now = NULL;

    if (gone)
      return 0;
    if (xml == NULL)
      return -1;
    now = vmferry_backup_xml_socket (xml);
    if (now == NULL || strcmp (now, socket) != 0)
      return 0;                 /* ours ended; this is another job */
    if (!aborted) {
      if (virDomainAbortJob (dom) < 0) {
        /* It may have ended between the two calls. */
        free (job_xml (dom, &gone));
        if (gone)
          return 0;
        vmferry_virt_error ("domain %s: cannot end its backup job", name);
        return -1;
      }
      aborted = true;
    }
    nanosleep (&pause, NULL);
  }
  vmferry_set_error ("domain %s: its backup job (socket %s) was aborted but "
                     "is still there after %d s", name, socket, GONE_TIMEOUT_S);
  return -1;
}

int
vmferry_backup_clean_stale (virDomainPtr dom)
{
  const char *name = virDomainGetName (dom);
  CLEANUP_FREE char *xml = NULL, *socket = NULL, *dir = NULL;
  bool gone;
  char *slash;

  xml = job_xml (dom, &gone);
  if (gone)
    return 0;
  if (xml == NULL)
    return -1;
  socket = vmferry_backup_xml_socket (xml);
  if (!vmferry_backup_socket_is_ours (socket)) {
    vmferry_set_error ("domain %s has a backup job that is not vmferry's "
                       "(%s%s): wait for it to end, or end it with virsh "
                       "domjobabort %s", name, socket ? "socket " : "no unix "
                       "socket", socket ? socket : "", name);
    return -1;
  }
  if (abort_job (dom, socket) < 0)
    return -1;
  dir = strdup (socket);
  if (dir == NULL) {
    vmferry_set_error_errno (ENOMEM, "%s", socket);
    return -1;
  }
  slash = strrchr (dir, '/');
  *slash = '\0';
  if (remove_dir (dir) < 0)
    return -1;
  vmferry_notice ("domain %s: ended the backup job of an interrupted run and "
                  "removed %s", name, dir);
  return 1;
}

/* Percent-encode S for a URI's path or query (libnbd's URIs). */
static char *
uri_escape (const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  char *r = malloc (strlen (s) * 3 + 1), *p = r;

  if (r == NULL)
    return NULL;
  for (; *s; s++) {
    unsigned char c = (unsigned char) *s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || strchr ("/-._~", c))
      *p++ = (char) c;
    else {
      *p++ = '%';
      *p++ = hex[c >> 4];
      *p++ = hex[c & 15];
    }
  }
  *p = '\0';
  return r;
}

char *
vmferry_backup_uri (const struct vmferry_backup *b, const char *target)
{
  CLEANUP_FREE char *t = uri_escape (target), *s = uri_escape (b->socket);
  char *uri;

  if (t == NULL || s == NULL ||
      asprintf (&uri, "nbd+unix:///%s?socket=%s", t, s) < 0) {
    vmferry_set_error_errno (ENOMEM, "backup");
    return NULL;
  }
  return uri;
}

bool
vmferry_backup_frozen (const struct vmferry_backup *b)
{
  return b->frozen;
}

const char *
vmferry_backup_why_not_frozen (const struct vmferry_backup *b)
{
  return b->why_not_frozen ? b->why_not_frozen : "not asked to freeze";
}

static void
backup_free (struct vmferry_backup *b)
{
  if (b == NULL)
    return;
  if (b->dom)
    virDomainFree (b->dom);
  free (b->name);
  free (b->dir);
  free (b->socket);
  free (b->why_not_frozen);
  free (b);
}

/* The disks of DOM's live XML as the backup lists them: TARGETS backed
 * up, each with a scratch file in B's directory, the others not.
 * Fills *DISKS_RTN (N_RTN of them; scratch names owned by the caller,
 * to be freed with free_disks).
 */
static void
free_disks (struct vmferry_backup_disk *d, size_t n)
{
  for (size_t i = 0; d && i < n; i++) {
    free ((char *) d[i].name);
    free ((char *) d[i].scratch);
  }
  free (d);
}

static int
live_disks (struct vmferry_backup *b, const char *const *targets, size_t nt,
            struct vmferry_backup_disk **disks_rtn, size_t *n_rtn)
{
  CLEANUP_FREE char *xml = virDomainGetXMLDesc (b->dom, 0);
  CLEANUP_XMLDOC xmlDocPtr doc = xml ? vmferry_xml_parse_libvirt (xml) : NULL;
  xmlNodePtr devices, n;
  struct vmferry_backup_disk *d = NULL;
  size_t nd = 0, cap = 0, found = 0;

  if (xml == NULL) {
    vmferry_virt_error ("domain %s: cannot get its live XML", b->name);
    return -1;
  }
  if (doc == NULL) {
    vmferry_prefix_error ("domain %s: its live XML", b->name);
    return -1;
  }
  devices = vmferry_xml_child (xmlDocGetRootElement (doc), "devices");
  for (n = devices ? devices->children : NULL; n; n = n->next) {
    char *target;
    bool want = false;

    if (!vmferry_xml_is_elem (n, "disk"))
      continue;
    target = vmferry_xml_attr (vmferry_xml_child (n, "target"), "dev");
    if (target == NULL)
      continue;
    if (nd == cap) {
      struct vmferry_backup_disk *nd2;
      cap = cap ? cap * 2 : 8;
      nd2 = realloc (d, cap * sizeof *d);
      if (nd2 == NULL) {
        free (target);
        goto nomem;
      }
      d = nd2;
    }
    for (size_t i = 0; i < nt; i++)
      if (strcmp (targets[i], target) == 0)
        want = true;
    d[nd].name = target;
    d[nd].scratch = NULL;
    d[nd].full = false;
    nd++;
    /* By position, not by the target's name: a name is libvirt's to
     * check, a path is ours.
     */
    if (want) {
      found++;
      if (asprintf ((char **) &d[nd - 1].scratch, "%s/scratch-%zu.qcow2",
                    b->dir, nd - 1) < 0) {
        d[nd - 1].scratch = NULL;
        goto nomem;
      }
    }
  }
  if (found != nt) {
    for (size_t i = 0; i < nt; i++) {
      bool seen = false;
      for (size_t k = 0; k < nd; k++)
        seen = seen || strcmp (d[k].name, targets[i]) == 0;
      if (!seen) {
        vmferry_set_error ("domain %s: disk %s of its definition is not in "
                           "the running domain (changed since it started?)",
                           b->name, targets[i]);
        break;
      }
    }
    if (found == nt)
      vmferry_set_error ("domain %s: two disks of one target", b->name);
    free_disks (d, nd);
    return -1;
  }
  *disks_rtn = d;
  *n_rtn = nd;
  return 0;
 nomem:
  free_disks (d, nd);
  vmferry_set_error_errno (ENOMEM, "domain %s", b->name);
  return -1;
}

/* Freeze the guest's file systems as FREEZE says: 0 (frozen or not,
 * B->frozen tells) or -1 (FREEZE_YES and the agent did not answer).
 */
static int
freeze (struct vmferry_backup *b, enum vmferry_freeze how)
{
  if (how == VMFERRY_FREEZE_NO)
    return 0;
  if (virDomainFSFreeze (b->dom, NULL, 0, 0) >= 0) {
    b->frozen = true;
    return 0;
  }
  if (how == VMFERRY_FREEZE_YES) {
    vmferry_virt_error ("domain %s: --freeze=yes: cannot freeze its file "
                        "systems", b->name);
    return -1;
  }
  b->why_not_frozen = strdup (virGetLastErrorMessage ());
  virResetLastError ();
  vmferry_verbose ("domain %s: file systems not frozen: %s", b->name,
                   b->why_not_frozen ? b->why_not_frozen : "?");
  return 0;
}

struct vmferry_backup *
vmferry_backup_begin (virDomainPtr dom, const char *base_dir,
                      const char *const *targets, size_t n,
                      enum vmferry_freeze how, bool *cleaned_rtn)
{
  return vmferry_backup_begin_checkpoint (dom, base_dir, targets, n, how,
                                          cleaned_rtn, NULL);
}

struct vmferry_backup *
vmferry_backup_begin_checkpoint (virDomainPtr dom, const char *base_dir,
                                 const char *const *targets, size_t n,
                                 enum vmferry_freeze how, bool *cleaned_rtn,
                                 const struct vmferry_backup_checkpoint *cp)
{
  struct vmferry_backup *b = calloc (1, sizeof *b);
  struct vmferry_backup_disk *disks = NULL;
  size_t nd = 0;
  CLEANUP_FREE char *xml = NULL;
  int r, began;

  if (cleaned_rtn)
    *cleaned_rtn = false;
  if (b == NULL || !(b->name = strdup (virDomainGetName (dom))) ||
      asprintf (&b->dir, "%s/" VMFERRY_BACKUP_DIR_PREFIX "XXXXXX",
                base_dir) < 0) {
    if (b)
      b->dir = NULL;
    vmferry_set_error_errno (ENOMEM, "backup");
    goto err;
  }
  virDomainRef (dom);
  b->dom = dom;
  r = vmferry_backup_clean_stale (dom);
  if (r < 0)
    goto err;
  if (cleaned_rtn)
    *cleaned_rtn = r == 1;
  /* 0700, ours alone: the socket path must not be one someone else put
   * a file at, and the scratch files hold guest data.
   */
  if (mkdtemp (b->dir) == NULL) {
    vmferry_set_error_errno (errno, "%s: cannot make the backup's directory",
                             b->dir);
    free (b->dir);
    b->dir = NULL;
    goto err;
  }
  if (asprintf (&b->socket, "%s/" VMFERRY_BACKUP_SOCKET, b->dir) < 0) {
    b->socket = NULL;
    vmferry_set_error_errno (ENOMEM, "backup");
    goto err;
  }
  if (live_disks (b, targets, n, &disks, &nd) < 0)
    goto err;
  for (size_t k = 0; cp && cp->full && k < nd; k++)
    for (size_t i = 0; disks[k].scratch && i < n; i++)
      if (strcmp (disks[k].name, targets[i]) == 0)
        disks[k].full = cp->full[i];
  xml = vmferry_backup_xml (b->socket, cp ? cp->incremental : NULL, disks,
                            nd);
  free_disks (disks, nd);
  if (xml == NULL)
    goto err;
  vmferry_debug ("backup XML: %s", xml);
  /* Locked from before the job exists until it is the active one: a
   * signal's vmferry_backup_quit that comes meanwhile waits, then ends
   * it (or finds none).
   */
  pthread_mutex_lock (&active_lock);
  if (freeze (b, how) < 0) {
    pthread_mutex_unlock (&active_lock);
    goto err;
  }
  if (cp && cp->xml)
    vmferry_debug ("checkpoint XML: %s", cp->xml);
  began = virDomainBackupBegin (dom, xml, cp ? cp->xml : NULL, 0);
  if (began < 0)
    vmferry_virt_error ("domain %s: cannot start a backup job", b->name);
  if (b->frozen && virDomainFSThaw (dom, NULL, 0, 0) < 0) {
    struct vmferry_saved_error saved;

    vmferry_virt_error ("domain %s: cannot thaw its file systems (try virsh "
                        "domfsthaw %s)", b->name, b->name);
    if (began >= 0) {
      vmferry_save_error (&saved);
      abort_job (dom, b->socket);
      vmferry_restore_saved_error (&saved);
    }
    began = -1;
  }
  if (began >= 0)
    active = b;
  pthread_mutex_unlock (&active_lock);
  if (began < 0)
    goto err;
  vmferry_verbose ("domain %s: backup job serving %zu disk%s on %s", b->name,
                   n, n == 1 ? "" : "s", b->socket);
  return b;

 err:
  if (b && b->dir) {
    struct vmferry_saved_error saved;
    vmferry_save_error (&saved);
    remove_dir (b->dir);
    vmferry_restore_saved_error (&saved);
  }
  backup_free (b);
  return NULL;
}

int
vmferry_backup_check (const struct vmferry_backup *b)
{
  CLEANUP_FREE char *xml = NULL, *socket = NULL;
  bool gone;

  xml = job_xml (b->dom, &gone);
  if (xml == NULL && gone)
    vmferry_set_error ("domain %s: the backup job ended before the export "
                       "did (aborted, or the domain stopped)", b->name);
  if (xml == NULL)
    return -1;
  socket = vmferry_backup_xml_socket (xml);
  if (socket == NULL || strcmp (socket, b->socket) != 0) {
    vmferry_set_error ("domain %s: its backup job is no longer the export's "
                       "(socket %s)", b->name, socket ? socket : "none");
    return -1;
  }
  return 0;
}

/* End B's job and remove its directory; called locked. */
static int
end_locked (struct vmferry_backup *b)
{
  int r = abort_job (b->dom, b->socket);

  if (r == 0)
    r = remove_dir (b->dir);
  return r;
}

int
vmferry_backup_end (struct vmferry_backup *b)
{
  int r;

  if (b == NULL)
    return 0;
  pthread_mutex_lock (&active_lock);
  if (active == b)
    active = NULL;
  r = end_locked (b);
  pthread_mutex_unlock (&active_lock);
  backup_free (b);
  return r;
}

void
vmferry_backup_quit (void)
{
  /* Never given back: the process ends after this. */
  pthread_mutex_lock (&active_lock);
  if (active) {
    end_locked (active);
    active = NULL;
  }
}
