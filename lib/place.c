/* vmferry: put an import's verified files in place and define the
 * domain, as one journaled step (see import-int.h).
 *
 * Everything is decided at the moment of acting, because a stream can
 * take hours and the host does not stand still meanwhile:
 *
 *  1. Lock.  Every new file, every file it replaces, and every file of
 *     the domain it replaces gets an exclusive lock on QEMU's image lock
 *     bytes (target.h): a QEMU using one of them makes this fail ("in
 *     use"), and no QEMU can open one of them until the placement is
 *     over, so a domain cannot be started under our feet.  A file that
 *     another domain refers to is never replaced.
 *  2. Journal.  The state file (resume.h) goes to phase "place" with
 *     every name involved and the identity (device, inode) of each new
 *     file, written and synced before anything is renamed.
 *  3. Rename.  A new file takes a free name with RENAME_NOREPLACE (so a
 *     file created there meanwhile is never overwritten), or, with
 *     --force, is exchanged with the old one (RENAME_EXCHANGE: the old
 *     file then carries the temporary name, whole, until the end).
 *     Before the first file, the domain the import replaces (--force)
 *     is renamed aside (libvirt refuses to rename a running one): after
 *     a kill, no domain of NAME points at files that changed under it.
 *  4. Define: the commit.  The definition carries the import's mark
 *     (stamp.h).  A new domain is defined under a temporary name and
 *     renamed: libvirt refuses both if a domain of that UUID or name
 *     appeared meanwhile, so nothing defined since is replaced.  An old
 *     domain of another UUID, aside, is undefined at the end; one of the
 *     same UUID is replaced by the define under its aside name, which
 *     then becomes NAME.  Without --define the last rename is the commit.
 *  5. Finish: the old files and definitions go, then the state.
 *
 * A run killed anywhere leaves the journal; the next run (or --abort)
 * reads it (vmferry_place_recover): if the commit happened (the domain is
 * defined with this journal's token; without define, every new file is
 * at its final name) it finishes, else it undoes every rename, so that
 * the old files and domain are as they were and the new files are back
 * under their temporary names, ready to be placed again.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "hex.h"
#include "extent.h"
#include "fault.h"
#include "imagelock.h"
#include "import-int.h"
#include "log.h"
#include "refs.h"
#include "stamp.h"
#include "stream.h"
#include "virt.h"

#define UNDEFINE_KEEP (VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | \
                       VIR_DOMAIN_UNDEFINE_KEEP_TPM | \
                       VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | \
                       VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | \
                       VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)

/* The files locked against QEMU for the time of the placement: closing
 * an fd releases its lock.  DEV/INO keep one file from being locked
 * twice (two open file descriptions of one file conflict).
 */
struct locks {
  size_t n;
  struct { int fd; dev_t dev; ino_t ino; } v[2 * VMFERRY_MAX_FILES + 64];
};

static void
locks_release (struct locks *l)
{
  for (size_t i = 0; i < l->n; i++)
    close (l->v[i].fd);
  l->n = 0;
}

/* Lock the image open on FD (NAME for messages); FD is kept (and closed
 * by locks_release) or closed here on failure.
 */
static int
locks_add (struct locks *l, int fd, const char *name)
{
  struct stat st;

  if (fstat (fd, &st) < 0) {
    vmferry_set_error_errno (errno, "%s: fstat", name);
    close (fd);
    return -1;
  }
  for (size_t i = 0; i < l->n; i++)
    if (l->v[i].dev == st.st_dev && l->v[i].ino == st.st_ino) {
      close (fd);
      return 0;
    }
  if (l->n >= sizeof l->v / sizeof l->v[0]) {
    vmferry_set_error ("%s: too many files to lock", name);
    close (fd);
    return -1;
  }
  if (vmferry_image_lock (fd, name) < 0) {
    close (fd);
    return -1;
  }
  l->v[l->n].fd = fd;
  l->v[l->n].dev = st.st_dev;
  l->v[l->n].ino = st.st_ino;
  l->n++;
  return 0;
}

/* Lock every image file the persistent definition of DOM names, so that
 * it cannot start while its definition or files are being replaced.  A
 * file that cannot be opened (missing, not ours to open) is skipped: QEMU
 * could not open it either.
 */
static int
lock_domain_files (struct locks *l, virDomainPtr dom)
{
  static const char *const expr =
    "//disk/source/@file | //disk/source/@dev | //backingStore/source/@file |"
    " //backingStore/source/@dev | /domain/os/nvram/text()";
  CLEANUP_FREE char *xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
  CLEANUP_XMLDOC xmlDocPtr doc = NULL;
  CLEANUP_XPATH_CTX xmlXPathContextPtr ctx = NULL;
  CLEANUP_XPATH_OBJ xmlXPathObjectPtr obj = NULL;

  if (xml == NULL) {
    vmferry_virt_error ("domain %s", virDomainGetName (dom));
    return -1;
  }
  doc = vmferry_domain_parse (xml, strlen (xml), virDomainGetName (dom));
  if (doc == NULL || (ctx = xmlXPathNewContext (doc)) == NULL ||
      (obj = xmlXPathEvalExpression (BAD_CAST expr, ctx)) == NULL) {
    vmferry_prefix_error ("domain %s", virDomainGetName (dom));
    return -1;
  }
  for (int i = 0; obj->nodesetval && i < obj->nodesetval->nodeNr; i++) {
    xmlChar *v = xmlNodeGetContent (obj->nodesetval->nodeTab[i]);
    struct stat st;
    int fd = -1;

    if (v && v[0] == '/' && stat ((const char *) v, &st) == 0 &&
        (S_ISREG (st.st_mode) || S_ISBLK (st.st_mode)))
      fd = open ((const char *) v, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0 && locks_add (l, fd, (const char *) v) < 0) {
      vmferry_prefix_error ("domain %s", virDomainGetName (dom));
      xmlFree (v);
      return -1;
    }
    xmlFree (v);
  }
  return 0;
}

/* Whether swtpm runs on the TPM state directory NAME below ROOT: it
 * holds a lock on DIR/tpm2/.lock (DIR/tpm1.2/.lock) while it runs.
 */
static int
tpm_in_use (const struct vmferry_target *root, const char *name)
{
  static const char *const subs[] = { "tpm2/.lock", "tpm1.2/.lock", ".lock" };

  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
    CLEANUP_FREE char *p = NULL;
    CLEANUP_CLOSE int fd = -1;
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

    if (asprintf (&p, "%s/%s", name, subs[i]) < 0)
      return -1;
    fd = vmferry_target_open_file (root, p, O_RDONLY);
    if (fd < 0)
      continue;
    if (fcntl (fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
      vmferry_set_error ("%s/%s: in use: swtpm runs on this TPM state",
                         root->path, name);
      return 1;
    }
  }
  vmferry_clear_error ();
  return 0;
}

/* The mark of domain DOM: 1 if it was defined by the import with TOKEN
 * (TOKEN NULL: by any import of STREAM_ID), 0 if not, -1 on error.
 */
static int
marked (virDomainPtr dom, const char *stream_id, const unsigned char *token)
{
  CLEANUP_FREE char *xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
  CLEANUP_FREE char *s = NULL, *t = NULL;
  char want[2 * VMFERRY_RESUME_TOKEN_LEN + 1];
  int r;

  if (xml == NULL) {
    vmferry_virt_error ("domain %s", virDomainGetName (dom));
    return -1;
  }
  r = vmferry_stamp_get (xml, &s, &t);
  if (r <= 0)
    return r;
  if (token) {
    vmferry_hex_encode (token, VMFERRY_RESUME_TOKEN_LEN, want);
    return strcmp (t, want) == 0;
  }
  return strcmp (s, stream_id) == 0;
}

int
vmferry_place_already (struct importer *im)
{
  CLEANUP_VIR_DOMAIN virDomainPtr dom = NULL;

  if (!im->opts->define || !im->resumable_id || im->conn == NULL)
    return 0;
  dom = virDomainLookupByName (im->conn, im->name);
  if (dom == NULL)
    return 0;
  return marked (dom, im->stream_id, NULL);
}

/* ---- the definition ---- */

/* The domain XML as it will be defined: every file at its new place, the
 * name and UUID, the import's mark.  NAME_AS: define under this name (a
 * temporary one).  Caller frees.
 */
static char *
domain_xml (struct importer *im, const char *name_as)
{
  struct vmferry_domain_file *df = NULL;
  char token[2 * VMFERRY_RESUME_TOKEN_LEN + 1];
  size_t n = 0;
  char *xml = NULL;

  if (vmferry_domain_files (im->doc, true, &df, &n) < 0)
    return NULL;
  for (size_t i = 0; i < im->nr_files; i++) {
    const struct import_file *f = &im->files[i];
    if (f->role == VMFERRY_ROLE_TPM || f->dropped)
      continue;
    for (size_t k = 0; k < n; k++)
      if (df[k].path && strcmp (df[k].path, f->source_path) == 0 &&
          df[k].role != VMFERRY_ROLE_BACKING &&
          vmferry_domain_set_path (im->doc, &df[k], f->final_path,
                                   f->device ? VMFERRY_DOMAIN_PATH_BLOCK
                                             : 0) < 0)
        goto out;
    if (vmferry_domain_set_backing_path (im->doc, f->source_path,
                                         f->final_path) < 0)
      goto out;
  }
  /* A UEFI variable store the stream did not carry (the source domain
   * never ran: libvirt makes it from its template at the first start)
   * gets a name in the target too, never a path the stream chose.
   */
  for (size_t k = 0; k < n; k++) {
    bool carried = false;
    if (df[k].role != VMFERRY_ROLE_NVRAM || df[k].path == NULL)
      continue;
    for (size_t i = 0; i < im->nr_files && !carried; i++)
      carried = im->files[i].final_path &&
        (strcmp (df[k].path, im->files[i].final_path) == 0 ||
         strcmp (df[k].path, im->files[i].source_path) == 0);
    if (carried)
      continue;
    if (im->nvram_new == NULL) {
      CLEANUP_FREE char *base = NULL;
      if (asprintf (&base, "%s_VARS.fd", im->name) < 0 ||
          !(im->nvram_new = vmferry_target_path (&im->tgt, base))) {
        vmferry_set_error_errno (ENOMEM, "import");
        goto out;
      }
    }
    if (vmferry_domain_set_path (im->doc, &df[k], im->nvram_new, 0) < 0)
      goto out;
  }
  /* Paths are set now: the next call must not look for the old ones. */
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    if (f->role != VMFERRY_ROLE_TPM && f->final_path) {
      free (f->source_path);
      f->source_path = strdup (f->final_path);
      if (f->source_path == NULL) {
        vmferry_set_error_errno (ENOMEM, "import");
        goto out;
      }
    }
  }
  vmferry_hex_encode (im->st.token, VMFERRY_RESUME_TOKEN_LEN, token);
  if (vmferry_domain_set_name (im->doc, name_as ? name_as : im->name) < 0 ||
      vmferry_domain_set_uuid (im->doc, im->uuid) < 0 ||
      vmferry_stamp_set (im->doc, im->stream_id, token) < 0)
    goto out;
  xml = vmferry_domain_to_string (im->doc);
 out:
  vmferry_domain_files_free (df, n);
  return xml;
}

/* Whether the XML gives a UEFI variable store no path, so that libvirt
 * makes one up from the domain's name at define.
 */
static bool
nvram_unnamed (xmlDocPtr doc)
{
  xmlNodePtr os = vmferry_xml_child (xmlDocGetRootElement (doc), "os");
  xmlNodePtr loader = vmferry_xml_child (os, "loader");
  xmlNodePtr nvram = vmferry_xml_child (os, "nvram");
  bool named = false;

  if (nvram) {
    xmlChar *c = xmlNodeGetContent (nvram);
    named = c && c[0];
    xmlFree (c);
  }
  return loader && !named;
}

/* Define the domain: the commit.  The domain it replaces, if any, was
 * renamed aside before the first file was exchanged (rename_aside).
 * OLD_SAME: that domain has this UUID; the new definition replaces it
 * under the aside name (libvirt keeps one definition per UUID), which
 * is then renamed to NAME.  Otherwise the new domain is defined under a
 * temporary name of its own and renamed to NAME, and the old one stays
 * aside until finish.  Returns 0; -1 with the error set and nothing
 * defined (the old domain, if aside, is back); or -2 when the new
 * definition replaced the old one but kept the aside name: committed,
 * the journal kept for the next run to finish.
 */
static int
define (struct importer *im, bool old_same)
{
  CLEANUP_VIR_DOMAIN virDomainPtr dom = NULL;
  CLEANUP_FREE char *xml = NULL;
  CLEANUP_FREE char *old_xml = NULL;
  const char *tmp = old_same ? im->st.aside : im->st.define_tmp;
  bool unnamed = nvram_unnamed (im->doc);

  if (old_same) {
    /* Kept to put back if NAME is taken before the new one gets it. */
    CLEANUP_VIR_DOMAIN virDomainPtr old =
      virDomainLookupByName (im->conn, tmp);
    old_xml = old ? virDomainGetXMLDesc (old, VIR_DOMAIN_XML_INACTIVE |
                                              VIR_DOMAIN_XML_SECURE)
                  : NULL;
    if (old_xml == NULL) {
      vmferry_virt_error ("domain %s (the old definition, aside)", tmp);
      return -1;
    }
  }
  xml = domain_xml (im, tmp);
  if (xml == NULL)
    return -1;
  dom = virDomainDefineXMLFlags (im->conn, xml, VIR_DOMAIN_DEFINE_VALIDATE);
  if (dom == NULL) {
    vmferry_virt_error ("domain %s: define failed", im->name);
    return -1;
  }
  if (vmferry_fault ("place-defined-tmp") < 0 ||
      virDomainRename (dom, im->name, 0) < 0) {
    if (!strstr (vmferry_get_error (), "injected"))
      vmferry_virt_error ("domain %s: a domain of that name was defined on "
                          "this host meanwhile; it is not replaced", im->name);
    if (old_same) {
      virDomainPtr back = virDomainDefineXMLFlags (im->conn, old_xml, 0);
      if (back == NULL) {
        vmferry_prefix_error ("domain %s is defined, as %s", im->name, tmp);
        return -2;
      }
      virDomainFree (back);
    }
    else
      virDomainUndefineFlags (dom, UNDEFINE_KEEP);
    return -1;
  }
  if (unnamed) {
    /* libvirt named the variable store after the temporary name: define
     * again under the real one so it gets that one's.
     */
    virDomainPtr again;
    free (xml);
    xml = domain_xml (im, NULL);
    again = xml ? virDomainDefineXMLFlags (im->conn, xml,
                                           VIR_DOMAIN_DEFINE_VALIDATE)
                : NULL;
    if (again)
      virDomainFree (again);
    else
      vmferry_warn ("domain %s: its UEFI variable store is named after a "
                    "temporary name (virsh edit %s to rename it)", im->name,
                    im->name);
  }
  vmferry_verbose ("domain %s defined", im->name);
  return 0;
}

/* Rename the domain that the import replaces aside, before its files
 * are exchanged: from then on no domain of NAME exists whose definition
 * points at files that change under it, so a `virsh start NAME` after
 * a kill cannot run the old definition on the new disks.  libvirt
 * refuses to rename a running domain (the check made at this moment).
 */
static int
rename_aside (struct importer *im)
{
  CLEANUP_VIR_DOMAIN virDomainPtr old = NULL;

  if (im->st.aside == NULL)
    return 0;
  old = virDomainLookupByName (im->conn, im->name);
  if (old == NULL || virDomainRename (old, im->st.aside, 0) < 0) {
    vmferry_virt_error ("domain %s: cannot rename it aside before its files "
                        "are replaced (was it started?)", im->name);
    return -1;
  }
  return vmferry_fault ("place-aside");
}

/* ---- recovery: finish or undo ---- */

static void
clear_placement (struct vmferry_resume_state *st)
{
  st->phase = VMFERRY_RESUME_TRANSFER;
  for (size_t i = 0; i < st->nr_files; i++) {
    free (st->files[i].final);
    st->files[i].final = NULL;
    st->files[i].dev = st->files[i].ino = 0;
    st->files[i].replace = false;
  }
  free (st->tpm_final);
  free (st->uuid);
  free (st->define_tmp);
  free (st->aside);
  st->tpm_final = st->uuid = st->define_tmp = st->aside = NULL;
  st->tpm_dev = st->tpm_ino = 0;
  st->tpm_replace = st->define = false;
}

/* Where the new file of RF is: 1 at its final name, 0 at its temporary
 * name, -1 neither (error set).
 */
static int
where (const struct vmferry_target *t, const char *tmp, const char *final,
       uint64_t dev, uint64_t ino)
{
  struct stat sb;

  if (final && vmferry_target_stat (t, final, &sb) == 1 &&
      sb.st_dev == dev && sb.st_ino == ino)
    return 1;
  if (vmferry_target_stat (t, tmp, &sb) == 1 &&
      sb.st_dev == dev && sb.st_ino == ino)
    return 0;
  vmferry_set_error ("%s: the new copy of %s is neither at %s nor at %s",
                     t->path, final ? final : tmp, final ? final : "-", tmp);
  return -1;
}

/* The new file at FINAL goes back to TMP; with REPLACE, the old one (at
 * TMP) back to FINAL.  Refused while a QEMU has the new file open.
 */
static int
move_back (const struct vmferry_target *t, const char *tmp, const char *final,
           bool replace, bool is_dir)
{
  CLEANUP_FREE char *path = vmferry_target_path (t, final);

  if (path == NULL)
    return -1;
  if (!is_dir) {
    CLEANUP_CLOSE int fd = vmferry_target_open_file (t, final, O_RDONLY);
    struct vmferry_image_lock lock;
    char who[96];
    if (fd >= 0 && vmferry_image_lock_holder (fd, path, &lock) > 0) {
      vmferry_set_error ("%s: %s has opened the new copy since: it is left "
                         "in place", path,
                         vmferry_image_lock_who (&lock, who, sizeof who));
      return -1;
    }
  }
  else if (tpm_in_use (t, final) > 0)
    return -1;
  if (replace) {
    /* The old copy, under the temporary name since the exchange, was
     * removed meanwhile (by hand: it looks like a leftover).  Nothing can
     * bring it back; the undo must not stop there for good.
     */
    struct stat sb;
    int r = vmferry_target_stat (t, tmp, &sb);
    if (r < 0)
      return -1;
    if (r == 0) {
      vmferry_warn ("%s/%s: the old copy of %s was removed since the import "
                    "was killed: %s is left without one", t->path, tmp, final,
                    path);
      replace = false;
    }
  }
  return vmferry_target_rename (t, final, t, tmp, replace ? RENAME_EXCHANGE
                                                         : RENAME_NOREPLACE);
}

/* Undo ST's placement (nothing was committed): every new file back under
 * its temporary name, every old one back under its name, the old domain
 * back under its name; ST back in phase TRANSFER (saved).
 */
static int
undo (struct importer *im, struct vmferry_resume_state *st)
{
  int ret = 0;

  if (st->aside && im->conn) {
    CLEANUP_VIR_DOMAIN virDomainPtr a =
      virDomainLookupByName (im->conn, st->aside);
    CLEANUP_VIR_DOMAIN virDomainPtr taken = NULL;
    if (a && virDomainRename (a, st->name, 0) < 0) {
      /* A domain of that name was defined meanwhile (with --force): the
       * old one stays whole, under the aside name.
       */
      taken = virDomainLookupByName (im->conn, st->name);
      if (taken)
        vmferry_warn ("domain %s was defined on this host meanwhile: the old "
                      "definition is kept as %s (virsh domrename %s %s once "
                      "%s is gone)", st->name, st->aside, st->aside, st->name,
                      st->name);
      else {
        vmferry_virt_error ("domain %s: cannot rename it back to %s",
                            st->aside, st->name);
        ret = -1;
      }
    }
  }
  if (st->tpm_final && st->tpm_tmp) {
    int w = where (&im->tpm_root, st->tpm_tmp, st->tpm_final,
                   st->tpm_dev, st->tpm_ino);
    if (w > 0 && move_back (&im->tpm_root, st->tpm_tmp, st->tpm_final,
                            st->tpm_replace, true) < 0)
      ret = -1;
    if (w < 0) {
      free (st->tpm_tmp);     /* sent again in any case */
      st->tpm_tmp = NULL;
    }
  }
  for (size_t i = st->nr_files; i-- > 0;) {
    struct vmferry_resume_file *rf = &st->files[i];
    int w;

    if (rf->tmp == NULL || rf->final == NULL)
      continue;
    w = where (&im->tgt, rf->tmp, rf->final, rf->dev, rf->ino);
    if (w > 0 &&
        move_back (&im->tgt, rf->tmp, rf->final, rf->replace, false) < 0)
      ret = -1;
    if (w < 0) {
      /* Lost: send it again. */
      vmferry_warn ("%s", vmferry_get_error ());
      free (rf->tmp);
      rf->tmp = NULL;
      rf->offset = 0;
    }
  }
  if (ret < 0)
    return -1;
  clear_placement (st);
  if (vmferry_resume_save (&im->tgt, im->state_file, st) < 0 ||
      vmferry_target_sync (&im->tgt) < 0)
    return -1;
  vmferry_verbose ("placement of %s undone: the old files are as they were",
                   st->name);
  return 0;
}

/* ST's placement was committed: remove what it replaced (the old files,
 * now under the temporary names; the old TPM state; the old definition
 * renamed aside) and the state.
 */
static void
finish (struct importer *im, struct vmferry_resume_state *st)
{
  for (size_t i = 0; i < st->nr_files; i++) {
    const struct vmferry_resume_file *rf = &st->files[i];
    struct stat sb;

    if (rf->replace && rf->tmp &&
        vmferry_target_stat (&im->tgt, rf->tmp, &sb) == 1 &&
        !(sb.st_dev == rf->dev && sb.st_ino == rf->ino))
      vmferry_target_unlink (&im->tgt, rf->tmp);
  }
  if (st->tpm_replace && st->tpm_tmp)
    vmferry_target_remove_tree (&im->tpm_root, st->tpm_tmp);
  if (st->aside && im->conn) {
    CLEANUP_VIR_DOMAIN virDomainPtr a =
      virDomainLookupByName (im->conn, st->aside);
    if (a && virDomainUndefineFlags (a, UNDEFINE_KEEP) < 0) {
      vmferry_virt_error ("domain %s (the definition replaced by the import)",
                          st->aside);
      vmferry_warn ("%s: it is left defined (virsh undefine %s)",
                    vmferry_get_error (), st->aside);
    }
  }
  vmferry_target_unlink (&im->tgt, im->state_file);
  vmferry_target_unlink (&im->tgt, im->written_file);
  vmferry_target_sync (&im->tgt);
}

/* Whether ST's placement was committed: 1 yes, 0 no, -1 error. */
static int
committed (struct importer *im, struct vmferry_resume_state *st)
{
  if (st->define) {
    CLEANUP_VIR_DOMAIN virDomainPtr dom =
      virDomainLookupByName (im->conn, st->name);
    CLEANUP_VIR_DOMAIN virDomainPtr tmp = NULL;
    int r;

    if (dom && (r = marked (dom, st->stream_id, st->token)) != 0)
      return r;
    /* Killed after the new definition replaced the old one (same UUID)
     * under the aside name: the old one is gone, the files are in place;
     * it only needs its name.
     */
    if (st->aside) {
      CLEANUP_VIR_DOMAIN virDomainPtr a =
        virDomainLookupByName (im->conn, st->aside);
      if (a && (r = marked (a, st->stream_id, st->token)) != 0) {
        if (r > 0 && virDomainRename (a, st->name, 0) < 0) {
          vmferry_virt_error ("domain %s (defined by the killed import): "
                              "cannot rename it to %s", st->aside, st->name);
          return -1;
        }
        return r;
      }
    }
    /* Killed between the define under the temporary name and the rename:
     * that definition goes.
     */
    tmp = virDomainLookupByName (im->conn, st->define_tmp);
    if (tmp && marked (tmp, st->stream_id, st->token) > 0) {
      if (virDomainIsActive (tmp) != 0) {
        vmferry_set_error ("domain %s (defined by the killed import) is "
                           "running: not touched", st->define_tmp);
        return -1;
      }
      if (virDomainUndefineFlags (tmp, UNDEFINE_KEEP) < 0) {
        vmferry_virt_error ("domain %s", st->define_tmp);
        return -1;
      }
    }
    return 0;
  }
  for (size_t i = 0; i < st->nr_files; i++) {
    const struct vmferry_resume_file *rf = &st->files[i];
    if (rf->final &&
        where (&im->tgt, rf->tmp, rf->final, rf->dev, rf->ino) != 1)
      return 0;
  }
  if (st->tpm_final &&
      where (&im->tpm_root, st->tpm_tmp, st->tpm_final,
             st->tpm_dev, st->tpm_ino) != 1)
    return 0;
  vmferry_clear_error ();
  return 1;
}

int
vmferry_place_recover (struct importer *im, struct vmferry_resume_state *st)
{
  const char *root = st->tpm_in_swtpm ? VMFERRY_SWTPM_STORAGE : im->tgt.path;
  int c;

  /* The journal's TPM state is where that run kept it, which is not
   * where this run keeps its own if one used --define and the other not
   * (looked for in the wrong place, a committed placement was undone).
   */
  if (st->tpm_tmp &&
      (im->tpm_root.fd < 0 || strcmp (im->tpm_root.path, root) != 0)) {
    vmferry_target_close (&im->tpm_root);
    if (vmferry_target_open (&im->tpm_root, root, false, 0) < 0)
      return -1;
  }
  c = committed (im, st);
  if (c < 0)
    return -1;
  if (c > 0) {
    vmferry_notice ("%s: an import of %s was killed after it defined the "
                    "domain; finishing it", im->dir, st->name);
    finish (im, st);
    return 1;
  }
  vmferry_notice ("%s: an import of %s was killed while it put its files in "
                  "place; undoing that: the old files are kept", im->dir,
                  st->name);
  return undo (im, st);
}

/* ---- placement ---- */

/* The file at F's final name, which --force replaces, is not one that any
 * other domain of this host refers to (the domain this import replaces
 * excepted).  Returns 0, or -1 with the error set naming the domain.
 */
int
vmferry_place_file_users (struct importer *im, const struct import_file *f)
{
  const struct vmferry_import_opts *opts = im->opts;
  CLEANUP_FREE char *users = NULL;
  struct stat sb;

  if (vmferry_target_stat (&im->tgt, f->final, &sb) != 1)
    return 0;
  users = vmferry_virt_file_users (im->conn, f->final_path, &sb,
                                   opts->define ? im->uuid : NULL);
  if (users == NULL)
    return -1;
  if (users[0] && opts->define) {
    /* A domain of the same name and another UUID is replaced too; once
     * renamed aside, under its aside name.
     */
    CLEANUP_VIR_DOMAIN virDomainPtr same =
      virDomainLookupByName (im->conn, im->name);
    if ((same && strcmp (users, im->name) == 0) ||
        (im->st.aside && strcmp (users, im->st.aside) == 0))
      users[0] = '\0';
  }
  if (users[0]) {
    vmferry_set_error ("%s: used by domain %s: never replaced (import under "
                       "another --name, or into another --dir)",
                       f->final_path, users);
    return -1;
  }
  return 0;
}

/* WARN false: every host resource the domain as it will be defined
 * refers to is one the stream carried into the target, or one the user
 * allowed by name (lib/refs.h), and its emulator one of this host's; else
 * -1 with the error set.  WARN true (no define: the definition is only
 * written beside the files): each finding is a warning, for whoever
 * defines it by hand.
 */
static int
check_refs (struct importer *im, bool warn)
{
  CLEANUP_FREE struct vmferry_refs_carried *carried =
    calloc (2 * im->nr_files + 2, sizeof *carried);
  CLEANUP_FREE char *xml = NULL;
  char **volumes = calloc (im->nr_files ? im->nr_files : 1, sizeof *volumes);
  char **emulators = NULL;
  size_t n = 0, n_emulators = 0;
  struct vmferry_refs_policy policy = {
    .allow = im->opts->allow, .n_allow = im->opts->n_allow,
  };
  int r = -1;

  if (carried == NULL || volumes == NULL) {
    vmferry_set_error_errno (ENOMEM, "import");
    goto out;
  }
  /* The paths as the domain will have them. */
  xml = domain_xml (im, NULL);
  if (xml == NULL)
    goto out;
  for (size_t i = 0; i < im->nr_files; i++) {
    const struct import_file *f = &im->files[i];
    if (f->role == VMFERRY_ROLE_TPM)
      continue;
    if (f->pool && f->volume &&
        asprintf (&volumes[i], "volume:%s/%s", f->pool, f->volume) < 0) {
      volumes[i] = NULL;
      vmferry_set_error_errno (ENOMEM, "import");
      goto out;
    }
    carried[n].path = f->final_path;
    carried[n++].format = f->format;
    if (volumes[i]) {
      carried[n].path = volumes[i];
      carried[n++].format = f->format;
    }
  }
  if (im->nvram_new) {
    /* Made by libvirt at the first start, where the import put it. */
    carried[n].path = im->nvram_new;
    carried[n++].format = NULL;
  }
  policy.carried = carried;
  policy.n_carried = n;
  if (im->conn) {
    if (vmferry_refs_host_emulators (im->conn, &emulators, &n_emulators) < 0)
      goto out;
    policy.emulators = (const char *const *) emulators;
    policy.n_emulators = n_emulators;
    policy.have_emulators = true;
  }
  if (!warn) {
    r = vmferry_refs_enforce (im->doc, &policy);
    if (r < 0)
      vmferry_prefix_error ("%s: domain %s is not defined",
                            im->opts->in_name, im->name);
  }
  else {
    struct vmferry_ref *refs = NULL;
    struct vmferry_ref_finding *fs = NULL;
    size_t nr = 0, nf = 0;

    r = vmferry_domain_refs (im->doc, &refs, &nr);
    if (r == 0)
      r = vmferry_refs_check (refs, nr, &policy, &fs, &nf);
    for (size_t i = 0; r == 0 && i < nf; i++)
      if (policy.have_emulators || fs[i].reason != VMFERRY_REF_UNKNOWN_EMULATOR)
        vmferry_warn ("%s.xml: %s (check it before virsh define)", im->name,
                      fs[i].message);
    vmferry_ref_findings_free (fs, nf);
    vmferry_refs_free (refs, nr);
  }
 out:
  for (size_t i = 0; volumes && i < im->nr_files; i++)
    free (volumes[i]);
  free (volumes);
  vmferry_strv_free (emulators);
  return r;
}

/* TEXT and a newline into FD (NAME in messages), flushed to disk.
 * Returns 0, or -1 with the error set.
 */
static int
write_text (int fd, const char *name, const char *text)
{
  if (vmferry_write_full (fd, name, text, strlen (text)) < 0 ||
      vmferry_write_full (fd, name, "\n", 1) < 0)
    return -1;
  if (fsync (fd) < 0) {
    vmferry_set_error_errno (errno, "%s: fsync", name);
    return -1;
  }
  return 0;
}

/* Without --define: the definition as it would be defined, written
 * beside the files as NAME.xml (a new file, or with --force over a plain
 * one), so that an admin can define it by hand.  After the files are in
 * place; a failure is a warning, the import is done.
 */
static void
write_xml (struct importer *im)
{
  CLEANUP_FREE char *xml = domain_xml (im, NULL), *file = NULL, *prefix = NULL;
  CLEANUP_FREE char *tmp = NULL, *path = NULL;
  struct stat sb;
  int fd = -1, r;

  if (xml == NULL || asprintf (&file, "%s.xml", im->name) < 0 ||
      asprintf (&prefix, ".%s.vmferry-", file) < 0 ||
      !(tmp = vmferry_target_random_name (prefix)) ||
      !(path = vmferry_target_path (&im->tgt, file)))
    goto fail;
  if (im->conn == NULL)
    im->conn = vmferry_virt_connect (im->opts->uri);
  vmferry_clear_error ();
  if (check_refs (im, true) < 0)
    goto fail;
  r = vmferry_target_stat (&im->tgt, file, &sb);
  if (r > 0 &&
      (!im->opts->force || !S_ISREG (sb.st_mode) || sb.st_nlink != 1)) {
    vmferry_warn ("%s: exists: the domain's definition was not written there "
                  "(it is in the stream: vmferry-info --xml)", path);
    return;
  }
  /* A new NAME.xml is written unnamed and linked when complete, so a
   * kill leaves nothing; one that replaces a file (or where the system
   * cannot: no O_TMPFILE, or neither CAP_DAC_READ_SEARCH nor /proc to
   * link it) goes through a temporary name and a rename.
   */
  if (r == 0) {
    fd = vmferry_target_create_unnamed (&im->tgt, 0600);
    if (fd < 0 && errno != EOPNOTSUPP && errno != EISDIR)
      goto fail;
  }
  if (fd >= 0) {
    if (write_text (fd, path, xml) < 0 ||
        vmferry_fault ("place-xml-written") < 0)
      goto fail;
    if (vmferry_target_link (&im->tgt, fd, file) < 0) {
      if (errno != EOPNOTSUPP)
        goto fail;
      close (fd);
      fd = -1;
    }
  }
  if (fd < 0) {
    fd = vmferry_target_create (&im->tgt, tmp, O_WRONLY, 0600, false);
    if (fd < 0 || write_text (fd, tmp, xml) < 0 ||
        vmferry_target_rename (&im->tgt, tmp, &im->tgt, file,
                               r > 0 ? 0 : RENAME_NOREPLACE) < 0) {
      if (fd >= 0)
        vmferry_target_unlink (&im->tgt, tmp);
      goto fail;
    }
  }
  close (fd);
  vmferry_verbose ("%s: the domain's definition (virsh define %s)", path, path);
  return;
 fail:
  if (fd >= 0)
    close (fd);
  vmferry_warn ("%s: the domain's definition was not written: %s", im->dir,
                vmferry_get_error ());
}

int
vmferry_place (struct importer *im)
{
  const struct vmferry_import_opts *opts = im->opts;
  struct vmferry_resume_state *st = &im->st;
  CLEANUP_VIR_DOMAIN virDomainPtr old = NULL;
  struct locks *l = calloc (1, sizeof *l);
  bool old_same = false;
  int ret = -1;
  struct stat sb;

  if (l == NULL) {
    vmferry_set_error_errno (ENOMEM, "import");
    return -1;
  }
  if (opts->force && im->conn == NULL &&
      !(im->conn = vmferry_virt_connect (opts->uri))) {
    vmferry_prefix_error ("--force: cannot check which domains use the files "
                          "it would replace");
    goto out;
  }
  if (opts->define && check_refs (im, false) < 0)
    goto out;
  if (im->nvram_new) {
    /* The variable store libvirt will make: nothing may be there already,
     * or, with --force, only one no other domain uses.
     */
    const char *base = strrchr (im->nvram_new, '/') + 1;
    struct import_file nv = {
      .final = (char *) base, .final_path = im->nvram_new,
    };
    int r = vmferry_target_stat (&im->tgt, base, &sb);
    if (r < 0)
      goto out;
    if (r > 0 && !opts->force) {
      vmferry_set_error ("%s: exists (the domain's UEFI variable store, which "
                         "the stream does not carry, would be this file): not "
                         "used (use --force to let the domain have it)",
                         im->nvram_new);
      goto out;
    }
    if (r > 0 && (im->conn == NULL || vmferry_place_file_users (im, &nv) < 0))
      goto out;
  }

  /* 1. Lock: the new files, then what they replace. */
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    struct vmferry_resume_file *rf = &st->files[i];
    CLEANUP_FREE char *path = NULL;
    int fd, r;

    /* On its device or dropped (import-convert.c): nothing to rename. */
    if (f->role == VMFERRY_ROLE_TPM || f->tmp == NULL)
      continue;
    path = vmferry_target_path (&im->tgt, f->tmp);
    fd = path ? vmferry_target_open_file (&im->tgt, f->tmp, O_RDWR) : -1;
    if (fd < 0 || fstat (fd, &sb) < 0) {
      if (fd >= 0)
        close (fd);
      goto refuse;
    }
    rf->dev = sb.st_dev;
    rf->ino = sb.st_ino;
    if (locks_add (l, fd, path) < 0)
      goto refuse;
    free (rf->final);
    if (!(rf->final = strdup (f->final))) {
      vmferry_set_error_errno (ENOMEM, "import");
      goto refuse;
    }
    rf->replace = false;
    r = vmferry_target_stat (&im->tgt, f->final, &sb);
    if (r < 0)
      goto refuse;
    if (r == 0)
      continue;
    if (!opts->force) {
      vmferry_set_error ("%s: was created during the transfer: not replaced "
                         "(use --force to replace it)", f->final_path);
      goto refuse;
    }
    fd = vmferry_target_open_file (&im->tgt, f->final, O_RDWR);
    if (fd < 0) {
      vmferry_prefix_error ("not replaced");
      goto refuse;
    }
    if (locks_add (l, fd, f->final_path) < 0) {
      vmferry_prefix_error ("not replaced");
      goto refuse;
    }
    if (vmferry_place_file_users (im, f) < 0)
      goto refuse;
    rf->replace = true;
  }
  if (im->tpm_dir && st->tpm_tmp) {
    int r = vmferry_target_stat (&im->tpm_root, st->tpm_tmp, &sb);
    if (r <= 0) {
      if (r == 0)
        vmferry_set_error ("%s/%s: the new TPM state is gone",
                           im->tpm_root.path, st->tpm_tmp);
      goto refuse;
    }
    st->tpm_dev = sb.st_dev;
    st->tpm_ino = sb.st_ino;
    free (st->tpm_final);
    if (!(st->tpm_final = strdup (im->tpm_dir))) {
      vmferry_set_error_errno (ENOMEM, "import");
      goto refuse;
    }
    r = vmferry_target_stat (&im->tpm_root, im->tpm_dir, &sb);
    if (r < 0)
      goto refuse;
    if (r > 0 && !opts->force) {
      vmferry_set_error ("%s/%s: TPM state was created during the transfer: "
                         "not replaced (use --force)", im->tpm_root.path,
                         im->tpm_dir);
      goto refuse;
    }
    if (r > 0 && tpm_in_use (&im->tpm_root, im->tpm_dir) != 0)
      goto refuse;
    st->tpm_replace = r > 0;
  }

  /* The domain it replaces: it must not run, and cannot start now. */
  if (opts->define) {
    CLEANUP_VIR_DOMAIN virDomainPtr by_uuid =
      virDomainLookupByUUIDString (im->conn, im->uuid);

    old = virDomainLookupByName (im->conn, im->name);
    if (by_uuid && strcmp (virDomainGetName (by_uuid), im->name) != 0) {
      vmferry_set_error ("domain %s was defined with this UUID (%s) during the "
                         "transfer; import it as a copy with --name NEW",
                         virDomainGetName (by_uuid), im->uuid);
      goto refuse;
    }
    if (old) {
      char uuid[VIR_UUID_STRING_BUFLEN];
      CLEANUP_FREE char *prefix = NULL;
      if (!opts->force) {
        vmferry_set_error ("domain %s was defined on this host during the "
                           "transfer: not replaced (use --force to replace "
                           "it)", im->name);
        goto refuse;
      }
      if (lock_domain_files (l, old) < 0) {
        vmferry_prefix_error ("domain %s is not replaced", im->name);
        goto refuse;
      }
      if (virDomainIsActive (old) != 0) {
        vmferry_set_error ("domain %s is running: it is not replaced",
                           im->name);
        goto refuse;
      }
      old_same = virDomainGetUUIDString (old, uuid) == 0 &&
                 strcmp (uuid, im->uuid) == 0;
      if (asprintf (&prefix, "%s.vmferry-old-", im->name) < 0 ||
          !(st->aside = vmferry_target_random_name (prefix)))
        goto refuse;
    }
    st->define = true;
    free (st->uuid);
    st->uuid = strdup (im->uuid);
    if (!old_same) {
      CLEANUP_FREE char *prefix = NULL;
      if (asprintf (&prefix, "%s.vmferry-new-", im->name) < 0 ||
          !(st->define_tmp = vmferry_target_random_name (prefix)))
        goto refuse;
    }
    else if (!(st->define_tmp = strdup (im->name)))
      goto refuse;
    if (st->uuid == NULL) {
      vmferry_set_error_errno (ENOMEM, "import");
      goto refuse;
    }
  }

  if (vmferry_fault ("place-locked") < 0)
    goto refuse;

  /* 2. The journal. */
  st->phase = VMFERRY_RESUME_PLACE;
  if (vmferry_import_save_state (im, -1, 0) < 0 ||
      vmferry_target_sync (&im->tgt) < 0 ||
      vmferry_fault ("place-journaled") < 0)
    goto undo;

  /* 3. Rename: the old domain aside, then the files. */
  if (opts->define && rename_aside (im) < 0)
    goto undo;
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    if (f->role == VMFERRY_ROLE_TPM || f->tmp == NULL)
      continue;
    /* A domain defined since the check may refer to the old file: asked
     * again right before it is replaced.
     */
    if (st->files[i].replace && vmferry_place_file_users (im, f) < 0)
      goto undo;
    if (vmferry_target_rename (&im->tgt, f->tmp, &im->tgt, f->final,
                               (st->files[i].replace
                                ? RENAME_EXCHANGE : RENAME_NOREPLACE)) < 0) {
      if (errno == EEXIST)
        vmferry_set_error ("%s: was created during the transfer: not "
                           "replaced (use --force to replace it)",
                           f->final_path);
      goto undo;
    }
    if (vmferry_fault ("place-renamed") < 0)
      goto undo;
  }
  if (st->tpm_final &&
      (vmferry_target_rename (&im->tpm_root, st->tpm_tmp,
                              &im->tpm_root, st->tpm_final,
                              (st->tpm_replace
                               ? RENAME_EXCHANGE : RENAME_NOREPLACE)) < 0 ||
       vmferry_fault ("place-tpm-renamed") < 0))
    goto undo;
  if (vmferry_target_sync (&im->tgt) < 0 ||
      (st->tpm_final && vmferry_target_sync (&im->tpm_root) < 0) ||
      vmferry_fault ("place-files-done") < 0)
    goto undo;

  /* 4. Define: the commit. */
  if (opts->define) {
    int d = define (im, old_same);
    if (d == -2) {
      vmferry_prefix_error ("the import of %s is not finished (the journal "
                            "%s/%s is kept: run the import again)", im->name,
                            im->dir, im->state_file);
      im->keep_state = true;
      goto out;
    }
    if (d < 0)
      goto undo;
  }
  /* Past the commit: a kill from here on is finished by the next run. */
  vmferry_fault ("place-committed");
  if (!opts->define)
    write_xml (im);

  /* 5. Finish: the files are released first, then what was replaced goes. */
  locks_release (l);
  finish (im, st);
  im->keep_state = false;
  ret = 0;
  if (opts->start) {
    CLEANUP_VIR_DOMAIN virDomainPtr dom =
      virDomainLookupByName (im->conn, im->name);
    if (dom == NULL || virDomainCreate (dom) < 0) {
      vmferry_virt_error ("domain %s was defined and verified but did not "
                          "start", im->name);
      ret = 1;
    }
  }
  goto out;

 refuse:
  /* Nothing was journaled or renamed: forget the plan. */
  clear_placement (st);
  goto out;

 undo:
  {
    struct vmferry_saved_error saved;

    vmferry_save_error (&saved);
    /* Our own locks would make the new files look in use. */
    locks_release (l);
    if (undo (im, st) < 0 && st->phase == VMFERRY_RESUME_PLACE) {
      vmferry_append_error (&saved, "and undoing the placement failed: %s "
                            "(the journal %s/%s is kept: run the import "
                            "again or --abort)", vmferry_get_error (),
                            im->dir, im->state_file);
      im->keep_state = true;
    }
    else
      /* Undone; or every file is back and only saving that failed (a
       * full disk): then the state on disk still says where each file
       * is, and the caller keeps or removes the copy as for any failure.
       */
      vmferry_restore_saved_error (&saved);
  }
 out:
  locks_release (l);
  free (l);
  return ret;
}

void
vmferry_place_remove_temporaries (struct importer *im)
{
  for (size_t i = 0; i < im->nr_files; i++) {
    struct import_file *f = &im->files[i];
    vmferry_import_close_file (f);
    if (f->tmp && f->role != VMFERRY_ROLE_TPM)
      vmferry_target_unlink (&im->tgt, f->tmp);
  }
  if (im->st.tpm_tmp && im->tpm_root.fd >= 0)
    vmferry_target_remove_tree (&im->tpm_root, im->st.tpm_tmp);
}
