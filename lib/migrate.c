/* vmferry: offline migration in one call (see migrate.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "fault.h"
#include "export.h"
#include "handoff.h"
#include "imagelock.h"
#include "import.h"
#include "live.h"
#include "log.h"
#include "manifest.h"
#include "migrate.h"
#include "pipeline.h"
#include "preflight.h"
#include "resume.h"
#include "send.h"
#include "stamp.h"
#include "virt.h"

/* A stage running in its own thread, its error kept for the caller. */
struct stage {
  pthread_t thread;
  bool started;
  int rc;
  char err[VMFERRY_ERROR_MAX];
  int errnum;
};

struct xfer {
  const struct vmferry_migrate_opts *opts;
  struct vmferry_export_opts eopts;
  virConnectPtr dest;
  /* export -> h[0] -> send, or export -> h[0] -> rewrite -> h[1] -> send */
  struct vmferry_handoff *h[2];
  struct stage export_st, rewrite_st;
};

static void
stage_done (struct stage *st, int rc)
{
  st->rc = rc;
  if (rc < 0) {
    snprintf (st->err, sizeof st->err, "%s", vmferry_get_error ());
    st->errnum = vmferry_get_errno ();
  }
}

/* The SSH session, connected in a thread while the pre-flight check
 * and the export's start run.
 */
struct connector {
  struct stage st;
  const struct vmferry_send_opts *so;
  struct vmferry_ssh *ssh;
};

static void *
connect_thread (void *arg)
{
  struct connector *c = arg;

  c->ssh = vmferry_send_connect (c->so);
  stage_done (&c->st, c->ssh ? 0 : -1);
  return NULL;
}

static void
connector_start (struct connector *c, const struct vmferry_send_opts *so)
{
  c->so = so;
  /* Without the thread, vmferry_send connects by itself. */
  c->st.started = pthread_create (&c->st.thread, NULL, connect_thread, c) == 0;
}

/* The session, or NULL when the connection failed (c->st has why). */
static struct vmferry_ssh *
connector_join (struct connector *c)
{
  if (c->st.started) {
    pthread_join (c->st.thread, NULL);
    c->st.started = false;
  }
  return c->ssh;
}

/* What the stages hold besides the ring, which gets what the budget
 * leaves (send.h): the export, the rewrite's reader of its input, the
 * send.
 */
static size_t
migrate_memory (const struct vmferry_export_opts *eopts,
                const struct vmferry_send_opts *so, bool rewriting)
{
  return vmferry_export_memory (eopts) + vmferry_send_memory (so) +
         (rewriting ? vmferry_stream_reader_memory () : 0);
}

static void *
export_thread (void *arg)
{
  struct xfer *x = arg;

  stage_done (&x->export_st, vmferry_export (&x->eopts));
  /* The end of the input tells the next stage the stream is complete (or
   * cut, without its END record).
   */
  vmferry_handoff_close_write (x->h[0]);
  return NULL;
}

static void *
rewrite_thread (void *arg)
{
  struct xfer *x = arg;

  struct vmferry_stream_reader *r =
    vmferry_stream_reader_new_fn (vmferry_handoff_read, x->h[0], "export");
  struct vmferry_stream_writer *w =
    vmferry_stream_writer_new_fn (vmferry_handoff_writev, x->h[1], "rewrite");
  int rc = -1;

  if (r && w) {
    vmferry_stream_reader_trust (r);    /* our own export; B verifies */
    rc = vmferry_rewrite_records (x->opts->rewrite, r, "export", w, x->dest);
  }
  stage_done (&x->rewrite_st, rc);
  vmferry_stream_writer_free (w);
  vmferry_stream_reader_free (r);
  vmferry_handoff_close_read (x->h[0]);
  vmferry_handoff_close_write (x->h[1]);
  return NULL;
}

/* The destination's libvirtd: the URI messages and the live journal
 * name, and the one libvirt opens (with the helper it runs as its ssh,
 * ssh.h); --dest-uri for both when given.
 */
struct dest {
  const char *uri, *connect;
  char *own_uri, *own_connect, *helper;
};

static void
dest_free (struct dest *d)
{
  free (d->own_uri);
  free (d->own_connect);
  vmferry_ssh_uri_helper_remove (d->helper);
  memset (d, 0, sizeof *d);
}

/* Without --dest-uri, the destination's libvirtd is reached as the data
 * is: the one URI of ssh.h.  When CONNECTING, libvirt's ssh must find
 * the host key the data's session accepted, so that session is made
 * first (CONN's, or one of its own when CONN has none): an unknown or
 * changed key is refused with its fingerprint, and
 * --accept-new-host-key records an unknown one in the known_hosts both
 * read.
 */
static int
dest_setup (const struct vmferry_migrate_opts *opts, struct connector *conn,
            bool connecting, struct dest *d)
{
  struct vmferry_ssh_opts plain = opts->ssh;
  char *none;

  memset (d, 0, sizeof *d);
  if (opts->dest_uri) {
    d->uri = d->connect = opts->dest_uri;
    return 0;
  }
  plain.ssh_command = plain.config = NULL;
  if (!(d->uri = d->own_uri = vmferry_ssh_libvirt_uri (&plain, &none)))
    return -1;
  d->connect = d->uri;
  if (!connecting)
    return 0;
  if (opts->ssh.ssh_command == NULL) {
    if (conn && conn->st.started) {
      if (connector_join (conn) == NULL) {
        vmferry_restore_error (conn->st.err, conn->st.errnum);
        return -1;
      }
    }
    else {
      struct vmferry_ssh *s = vmferry_ssh_connect (&opts->ssh);
      if (s == NULL)
        return -1;
      vmferry_ssh_free (s);
    }
  }
  if (opts->ssh.ssh_command || opts->ssh.config) {
    d->own_connect = vmferry_ssh_libvirt_uri (&opts->ssh, &d->helper);
    if ((d->connect = d->own_connect) == NULL)
      return -1;
  }
  return 0;
}

static const char *
base_name (const char *path)
{
  const char *s = strrchr (path, '/');
  return s && s[1] ? s + 1 : path;
}

/* The directory of the first disk of the (rewritten) definition. */
static char *
first_disk_dir (xmlDocPtr doc)
{
  struct vmferry_domain_file *df = NULL;
  size_t n = 0;
  char *dir = NULL;

  if (vmferry_domain_files (doc, false, &df, &n) < 0)
    return NULL;
  for (size_t i = 0; i < n && !dir; i++)
    if (df[i].role == VMFERRY_ROLE_DISK && df[i].path && df[i].path[0] == '/') {
      dir = strdup (df[i].path);
      if (dir)
        *strrchr (dir, '/') = dir == strrchr (dir, '/') ? '/' : '\0';
      if (dir && dir[0] == '\0')
        strcpy (dir, "/");
    }
  vmferry_domain_files_free (df, n);
  if (dir == NULL)
    vmferry_set_error ("the domain has no disk with a path: give --dest-dir "
                       "or --dest-pool");
  return dir;
}

/* The importer puts every carried file into the target directory and
 * points the definition there: check what it will define.
 */
static int
relocate (struct vmferry_check_input *in, const char *dir)
{
  struct vmferry_domain_file *df = NULL;
  size_t n = 0;
  int r = -1;

  if (vmferry_domain_files (in->doc, false, &df, &n) < 0)
    return -1;
  for (size_t k = 0; k < n; k++) {
    CLEANUP_FREE char *p = NULL;
    bool carried = false;

    if (!df[k].path || (df[k].role != VMFERRY_ROLE_DISK &&
                        df[k].role != VMFERRY_ROLE_NVRAM))
      continue;
    for (size_t i = 0; i < in->files.len; i++)
      if (in->files.ptr[i].carried &&
          strcmp (base_name (in->files.ptr[i].path),
                  base_name (df[k].path)) == 0)
        carried = true;
    /* An NVRAM file that does not exist yet is made from its template. */
    if (!carried && df[k].role != VMFERRY_ROLE_NVRAM)
      continue;
    if (asprintf (&p, "%s/%s", dir, base_name (df[k].path)) < 0) {
      p = NULL;
      vmferry_set_error_errno (ENOMEM, "check");
      goto out;
    }
    if (vmferry_domain_set_backing_path (in->doc, df[k].path, p) < 0 ||
        vmferry_domain_set_path (in->doc, &df[k], p, 0) < 0)
      goto out;
  }
  for (size_t i = 0; i < in->files.len; i++)
    if (in->files.ptr[i].carried) {
      char *p;
      if (asprintf (&p, "%s/%s", dir, base_name (in->files.ptr[i].path)) < 0) {
        vmferry_set_error_errno (ENOMEM, "check");
        goto out;
      }
      free (in->files.ptr[i].path);
      in->files.ptr[i].path = p;
    }
  r = 0;
 out:
  vmferry_domain_files_free (df, n);
  return r;
}

/* The result's picture of the destination (opts->result): the domain's
 * name there and where its carried files go, as IN (checked, relocated)
 * says.  Only memory can fail here, and then the result says less: the
 * move goes on.
 */
static void
note_dest (struct vmferry_migrate_result *res, const char *dest_uri,
           const struct vmferry_check_input *in, const char *dir,
           const char *pool)
{
  if (res == NULL)
    return;
  free (res->dest_uri);
  free (res->dest_name);
  free (res->dest_where);
  res->dest_uri = dest_uri ? strdup (dest_uri) : NULL;
  res->dest_name = vmferry_domain_get_name (in->doc);
  res->dest_where = NULL;
  if (dir)
    res->dest_where = strdup (dir);
  else if (pool && asprintf (&res->dest_where, "pool %s", pool) < 0)
    res->dest_where = NULL;
  for (size_t i = 0; i < res->dest_files.len; i++)
    free (res->dest_files.ptr[i]);
  res->dest_files.len = 0;
  for (size_t i = 0; i < in->files.len; i++) {
    const char *path = in->files.ptr[i].path;
    char *p = NULL;

    if (!in->files.ptr[i].carried)
      continue;
    if (pool && !dir) {
      if (asprintf (&p, "%s/%s", pool, base_name (path)) < 0)
        p = NULL;
    }
    else
      p = strdup (path);
    if (p == NULL ||
        vmferry_check_string_vector_append (&res->dest_files, p) < 0) {
      free (p);
      return;
    }
  }
}

/* The findings go to the result, which then owns them. */
static void
note_findings (struct vmferry_migrate_result *res,
               struct vmferry_findings *findings, bool checked, bool blocked)
{
  if (res == NULL)
    return;
  res->checked = checked;
  res->blocked = blocked;
  if (checked) {
    vmferry_findings_free (&res->findings);
    res->findings = *findings;
    memset (findings, 0, sizeof *findings);
  }
}

void
vmferry_migrate_result_free (struct vmferry_migrate_result *res)
{
  if (res == NULL)
    return;
  vmferry_findings_free (&res->findings);
  free (res->dest_uri);
  free (res->dest_name);
  free (res->dest_where);
  for (size_t i = 0; i < res->dest_files.len; i++)
    free (res->dest_files.ptr[i]);
  free (res->dest_files.ptr);
  vmferry_import_result_free (&res->import);
  memset (res, 0, sizeof *res);
}

/* --rename NEW: a new name never shares a file with another domain (the
 * original may be on the destination too, or it is the source itself).
 * Each file the domain carries (disks, NVRAM) follows the new name as
 * vmferry-import --name names it, by a --map-path rule of its own added
 * to the rule set, so the rewritten definition, the manifest, the
 * pre-flight check, a resumed transfer and the live copy all see the
 * same paths.  A file a --map-path rule names itself keeps the path
 * the admin chose; one a rule for a directory above it moves follows
 * the name there.  Deterministic: a run again adds the same
 * rules.  Returns 0, or -1 with the error set.
 */
static int
follow_rename (const struct vmferry_migrate_opts *opts)
{
  const char *new_name = vmferry_rewrite_get_rename (opts->rewrite);
  struct vmferry_check_input in = { 0 };
  CLEANUP_FREE char *old_name = NULL;
  int r = -1;

  if (new_name == NULL)
    return 0;
  if (vmferry_check_input_load (opts->domain, opts->uri, &in) < 0 ||
      !(old_name = vmferry_domain_get_name (in.doc)))
    goto out;
  if (strcmp (old_name, new_name) == 0) {
    r = 0;
    goto out;
  }
  for (size_t i = 0; i < in.files.len; i++) {
    const char *path = in.files.ptr[i].path;
    CLEANUP_FREE char *mapped = NULL, *dir = NULL, *mdir = NULL;
    CLEANUP_FREE char *moved = NULL, *base = NULL, *rule = NULL;
    const char *slash = strrchr (path, '/');
    const char *sep;

    if (!in.files.ptr[i].carried || path[0] != '/' || slash[1] == '\0')
      continue;
    /* Where the rules put the file, and where they put its directory:
     * when the two disagree, a rule names the file itself.
     */
    if (!(dir = strndup (path, slash == path ? 1 : (size_t) (slash - path))))
      goto nomem;
    if (!(mapped = vmferry_rewrite_map_path (opts->rewrite, path)) ||
        !(mdir = vmferry_rewrite_map_path (opts->rewrite, dir)))
      goto out;
    sep = mdir[strlen (mdir) - 1] == '/' ? "" : "/";
    if (asprintf (&moved, "%s%s%s", mdir, sep, slash + 1) < 0) {
      moved = NULL;
      goto nomem;
    }
    if (strcmp (moved, mapped) != 0)
      continue;
    /* A rule is OLD=NEW: a path with '=' cannot be one's OLD. */
    if (strchr (path, '=')) {
      vmferry_set_error ("--rename %s: %s: a path with '=' cannot follow the "
                         "new name; move the file first, or migrate without "
                         "--rename", new_name, path);
      goto out;
    }
    base = vmferry_import_follow_name (slash + 1, old_name, new_name);
    if (base == NULL)
      goto out;
    if (asprintf (&rule, "%s=%s%s%s", path, mdir, sep, base) < 0) {
      rule = NULL;
      goto nomem;
    }
    if (vmferry_rewrite_add (opts->rewrite, "map-path", rule, "--rename") < 0)
      goto out;
    vmferry_debug ("--rename %s: %s becomes %s", new_name, path,
                   rule + strlen (path) + 1);
  }
  r = 0;
  goto out;
 nomem:
  vmferry_set_error_errno (ENOMEM, "--rename");
 out:
  vmferry_check_input_free (&in);
  return r;
}

/* --dry-run: what would be copied, where, how much. */
static int
print_plan (const struct vmferry_migrate_opts *opts, FILE *fp,
            const char *dest_uri, const char *where, int changes,
            xmlDocPtr doc)
{
  struct vmferry_migrate_result *res = opts->result;
  struct vmferry_export_opts e = { .uri = opts->uri, .domain = opts->domain,
                                   .out_fd = -1, .out_name = "plan",
                                   .offline = true, .trim = opts->trim };
  CLEANUP_FREE char *manifest = NULL, *rewritten = NULL, *dname = NULL;
  CLEANUP_FREE char *uuid = NULL;
  struct vmferry_manifest *m = NULL, *m0 = NULL;
  const char *plan;
  uint64_t tsize = 0, talloc = 0;
  char a[32], b[32];
  int r = -1;

  e.manifest_rtn = &manifest;
  if (vmferry_export (&e) < 0)
    return -1;
  /* The files under the names they will have there (--rename,
   * --map-path), as the stream the rewrite makes will say; each file's
   * source path from the source's manifest (same order).
   */
  if (opts->rewrite && !vmferry_rewrite_is_empty (opts->rewrite)) {
    if (!(dname = vmferry_domain_get_name (doc)) ||
        !(uuid = vmferry_domain_get_uuid (doc)) ||
        !(rewritten = vmferry_rewrite_manifest (opts->rewrite, manifest,
                                                strlen (manifest), dname, uuid,
                                                NULL)))
      return -1;
  }
  plan = rewritten ? rewritten : manifest;
  if (vmferry_manifest_parse (manifest, strlen (manifest), "dry run",
                              &m0) < 0 ||
      vmferry_manifest_parse (plan, strlen (plan), "dry run", &m) < 0)
    goto out;
  fprintf (fp, "Dry run: nothing is copied or changed.\n");
  fprintf (fp, "Domain %s (%s) on %s\n", m->domain_name, m->domain_uuid,
           opts->uri ? opts->uri : "libvirt's default URI");
  fprintf (fp, "  to %s (libvirt %s), files into %s\n",
           opts->ssh.destination, dest_uri, where);
  for (size_t i = 0; i < m->nr_files; i++) {
    const struct vmferry_manifest_file *f = &m->files[i];
    const char *role = vmferry_manifest_role_name (f->role);
    const char *src = i < m0->nr_files && m0->files[i].source_path
                      ? m0->files[i].source_path : "";
    bool tpm = f->role == VMFERRY_MANIFEST_TPM;
    char c[64] = "";

    vmferry_human_size (f->size, a, sizeof a);
    vmferry_human_size (f->allocated, b, sizeof b);
    /* A qcow2's own size is not the disk's size the guest sees. */
    if (f->has_virtual_size && f->virtual_size && f->virtual_size != f->size) {
      char d[32];
      vmferry_human_size (f->virtual_size, d, sizeof d);
      snprintf (c, sizeof c, ", virtual size %s", d);
    }
    fprintf (fp, "  %-7s %s -> %s%s%s (file size %s%s, allocated %s)\n",
             role, src, tpm ? "TPM state/" : where, tpm ? "" : "/", f->name,
             a, c, b);
    tsize += f->size;
    talloc += f->allocated;
  }
  vmferry_human_size (tsize, a, sizeof a);
  vmferry_human_size (talloc, b, sizeof b);
  fprintf (fp, "  %zu files, %s in all, %s allocated: at most that much data "
           "is read and sent (less after compression; holes are never "
           "sent)\n", m->nr_files, a, b);
  if (changes > 0)
    fprintf (fp, "Rewrite: %d change%s to the definition\n", changes,
             changes == 1 ? "" : "s");
  else
    fprintf (fp, "Rewrite: none\n");
  fprintf (fp, "Then: define%s on the destination%s%s\n",
           opts->start ? " and start" : "",
           opts->undefine_source ? "; undefine the source once that succeeded"
                                 : "",
           opts->remove_source_storage ? ", and remove its files that no "
           "other domain uses" : "");
  if (res) {
    res->has_plan = true;
    res->plan_files = m->nr_files;
    res->plan_size = tsize;
    res->plan_allocated = talloc;
    res->plan_changes = changes;
  }
  r = 0;
 out:
  vmferry_manifest_free (m);
  vmferry_manifest_free (m0);
  return r;
}

/* Is this very move already done?  The stream the export would write
 * now, as rewritten, has an identity (resume.h: the domain and the
 * identity of each source file); the import on the destination marks the
 * domain it defines with the identity of its stream (stamp.h).  So when
 * the destination has domain NAME marked with this identity, an earlier
 * run completed the move from the same, unchanged source (it may have
 * been killed before it could say so).  Returns 1 if so, 0 if not, -1 on
 * error.
 */
static int
already_there (const struct vmferry_migrate_opts *opts, virConnectPtr dest,
               xmlDocPtr doc)
{
  struct vmferry_export_opts e = { .uri = opts->uri, .domain = opts->domain,
                                   .out_fd = -1, .out_name = "plan",
                                   .offline = true };
  CLEANUP_FREE char *manifest = NULL, *rewritten = NULL, *name = NULL;
  CLEANUP_FREE char *uuid = NULL;
  CLEANUP_FREE char *xml = NULL, *stream = NULL, *token = NULL;
  CLEANUP_VIR_DOMAIN virDomainPtr dom = NULL;
  struct vmferry_manifest *pm;
  char id[VMFERRY_RESUME_ID_LEN + 1];
  const char *m;
  int r;

  if (dest == NULL || !(name = vmferry_domain_get_name (doc)) ||
      !(dom = virDomainLookupByName (dest, name)))
    return 0;
  if (!(xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE)) ||
      vmferry_stamp_get (xml, &stream, &token) <= 0)
    return 0;
  e.manifest_rtn = &manifest;
  if (vmferry_export (&e) < 0)
    return -1;
  m = manifest;
  if (opts->rewrite && !vmferry_rewrite_is_empty (opts->rewrite)) {
    uuid = vmferry_domain_get_uuid (doc);
    rewritten = vmferry_rewrite_manifest (opts->rewrite, manifest,
                                          strlen (manifest), name, uuid, NULL);
    if (rewritten == NULL)
      return -1;
    m = rewritten;
  }
  if (vmferry_manifest_parse (m, strlen (m), "plan", &pm) < 0)
    return -1;
  r = vmferry_resume_stream_id (pm, id);
  vmferry_manifest_free (pm);
  if (r != 1)
    return r;
  return strcmp (id, stream) == 0;
}

/* --live: the pre-flight check and the rewrite as for an offline move,
 * then libvirt's copy-storage migration through lib/live.c.
 */
static int
live_rewrite (void *opaque, xmlDocPtr doc, virConnectPtr dest)
{
  return vmferry_rewrite_doc (opaque, doc, dest);
}

static int
migrate_live (const struct vmferry_migrate_opts *opts,
              enum vmferry_migrate_outcome *outcome_rtn)
{
  CLEANUP_VIR_CONNECT virConnectPtr dest = NULL;
  struct dest d;
  const char *dest_uri;
  struct vmferry_check_input in = { 0 };
  char **leftovers = NULL;
  struct vmferry_findings findings = { 0 };
  bool rewriting = opts->rewrite && !vmferry_rewrite_is_empty (opts->rewrite);
  FILE *report = opts->report ? opts->report : stdout;
  enum vmferry_live_outcome lo = VMFERRY_LIVE_NOTHING;
  struct vmferry_live_opts lopts;
  bool checked = false;
  int r = -1;

  if (dest_setup (opts, NULL, true, &d) < 0) {
    dest_free (&d);
    return -1;
  }
  dest_uri = d.uri;
  if (opts->result && !opts->result->dest_uri)
    opts->result->dest_uri = strdup (dest_uri);
  lopts = (struct vmferry_live_opts) {
    .uri = opts->uri, .domain = opts->domain, .dest_uri = dest_uri,
    .connect_uri = d.connect,
    .migrate_uri = opts->migrate_uri,
    .rewrite = rewriting ? live_rewrite : NULL, .opaque = opts->rewrite,
    /* libvirt counts MiB/s; never round a limit down to "unlimited". */
    .bandwidth = opts->ssh.bandwidth
                 ? (opts->ssh.bandwidth + (1 << 20) - 1) >> 20 : 0,
    .auto_converge = opts->auto_converge, .postcopy = opts->postcopy,
    .undefine_source = opts->undefine_source, .progress = opts->progress,
    .cancel = opts->cancel,
  };
  /* What a killed earlier run left goes first; a move it completed is
   * said so (the pre-flight would see the files and the domain there).
   */
  if (!opts->dry_run) {
    int k = vmferry_live_recover (&lopts, &lo);
    if (k != 0) {
      r = k > 0 ? 0 : -1;
      goto outcome;
    }
  }
  if (!opts->no_check || opts->dry_run) {
    dest = vmferry_virt_connect (d.connect);
    if (dest == NULL) {
      vmferry_prefix_error ("destination");
      goto out;
    }
    if (vmferry_check_input_load (opts->domain, opts->uri, &in) < 0 ||
        (rewriting &&
         vmferry_rewrite_check_input (opts->rewrite, &in, dest) < 0))
      goto out;
    in.check_for = VMFERRY_CHECK_FOR_LIVE;
    /* A real run removes these first (vmferry_live_recover, above). */
    if (opts->dry_run &&
        vmferry_live_leftovers (&lopts, &leftovers, &in.nr_leftovers) < 0)
      goto out;
    in.leftovers = leftovers;
    note_dest (opts->result, dest_uri, &in, NULL, NULL);
    if (vmferry_check (dest, &in, &findings) < 0) {
      vmferry_prefix_error ("pre-flight check");
      goto out;
    }
    if (opts->dry_run || findings.list.len > 0)
      vmferry_findings_print (&findings, report, false, dest_uri, opts->domain);
    checked = true;
    /* A plan the check blocks would be refused: the dry run says so in
     * its status, as the real run's pre-flight would.
     */
    if (opts->dry_run && !vmferry_findings_blocking (&findings)) {
      fprintf (report, "Dry run: %s would be migrated live to %s; "
               "nothing was done.\n", opts->domain, dest_uri);
      r = 0;
      goto out;
    }
    if (opts->dry_run) {
      vmferry_set_error ("--dry-run: domain %s cannot run on %s as it is (see "
                         "the findings above): the migration would be refused",
                         opts->domain, dest_uri);
      goto out;
    }
    if (vmferry_findings_blocking (&findings)) {
      vmferry_set_error ("domain %s cannot run on %s as it is (see the "
                         "findings above); nothing was started and the "
                         "domain still runs on the source",
                         opts->domain, dest_uri);
      goto out;
    }
  }
  r = vmferry_migrate_live (&lopts, &lo);
 outcome:
  switch (lo) {
  case VMFERRY_LIVE_NOTHING: *outcome_rtn = VMFERRY_MIGRATE_NOTHING; break;
  case VMFERRY_LIVE_MIGRATED: *outcome_rtn = VMFERRY_MIGRATE_DONE; break;
  case VMFERRY_LIVE_MIGRATED_SOURCE_DEFINED:
    *outcome_rtn = VMFERRY_MIGRATE_SOURCE_DEFINED; break;
  case VMFERRY_LIVE_LEFTOVERS: *outcome_rtn = VMFERRY_MIGRATE_LEFTOVERS; break;
  case VMFERRY_LIVE_SPLIT: *outcome_rtn = VMFERRY_MIGRATE_SPLIT; break;
  case VMFERRY_LIVE_ALREADY: *outcome_rtn = VMFERRY_MIGRATE_ALREADY; break;
  }
 out:
  note_findings (opts->result, &findings, checked,
                 checked && vmferry_findings_blocking (&findings));
  vmferry_findings_free (&findings);
  for (size_t i = 0; leftovers && i < in.nr_leftovers; i++)
    free (leftovers[i]);
  free (leftovers);
  vmferry_check_input_free (&in);
  if (dest) {
    virConnectClose (dest);
    dest = NULL;
  }
  dest_free (&d);
  return r;
}

/* --remove-source-storage, once the copy is verified and defined on the
 * destination and the source undefined (its TPM state went with it):
 * each file IN (the source's definition) names that travelled -- disks
 * and the NVRAM file; not backing files, which other images may share,
 * nor read-only disks, which did not travel.  Each is decided at the
 * moment of removal: a plain file with one link, taken from QEMU (its
 * image lock: no QEMU has it open, none can open it while we act), that
 * no defined domain on SRC refers to, and still the file the path
 * names.  A file that fails any of this is kept and said so; the move
 * stands either way.
 */
static void
remove_source_storage (const struct vmferry_migrate_opts *opts,
                       virConnectPtr src, const struct vmferry_check_input *in)
{
  for (size_t i = 0; i < in->files.len; i++) {
    const char *path = in->files.ptr[i].path;
    CLEANUP_FREE char *users = NULL;
    CLEANUP_CLOSE int fd = -1;
    struct stat st, now;

    if (!in->files.ptr[i].carried || path[0] != '/')
      continue;
    fd = open (path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
      continue;                 /* an NVRAM never made */
    if (fd < 0) {
      vmferry_notice ("%s: kept: %s", path, strerror (errno));
      continue;
    }
    if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_nlink != 1) {
      vmferry_notice ("%s: kept: not a plain file with one link", path);
      continue;
    }
    if (vmferry_image_lock (fd, path) < 0) {
      vmferry_notice ("%s: kept: %s", path, vmferry_get_error ());
      continue;
    }
    users = vmferry_virt_file_users (src, path, &st, NULL);
    if (users == NULL || users[0]) {
      vmferry_notice ("%s: kept: %s%s", path, users ? "used by domain " : "",
                      users ? users : vmferry_get_error ());
      continue;
    }
    if (lstat (path, &now) < 0 || now.st_dev != st.st_dev ||
        now.st_ino != st.st_ino) {
      vmferry_notice ("%s: kept: replaced meanwhile", path);
      continue;
    }
    if (unlink (path) < 0) {
      vmferry_notice ("%s: kept: cannot remove it: %s", path, strerror (errno));
      continue;
    }
    vmferry_verbose ("domain %s: removed %s", opts->domain, path);
  }
}

int
vmferry_migrate (const struct vmferry_migrate_opts *opts,
                 enum vmferry_migrate_outcome *outcome_rtn)
{
  enum vmferry_migrate_outcome dummy;
  CLEANUP_FREE char *dir = NULL;
  struct dest d = { 0 };
  CLEANUP_VIR_CONNECT virConnectPtr src = NULL;
  CLEANUP_VIR_DOMAIN virDomainPtr dom = NULL;
  struct vmferry_check_input in = { 0 }, src_in = { 0 };
  struct vmferry_findings findings = { 0 };
  struct xfer x = { .opts = opts };
  struct vmferry_stream_reader *sin = NULL;
  struct vmferry_send_opts so = { .ssh = opts->ssh,
                                  .connections = opts->connections };
  struct vmferry_send_stats stats = { 0 };
  struct connector conn = { 0 };
  const char *dest_uri;
  CLEANUP_FREE const char **args = calloc (12 + 2 * opts->n_dest_disks,
                                           sizeof *args);
  size_t buffer;
  bool rewriting = opts->rewrite && !vmferry_rewrite_is_empty (opts->rewrite);
  bool already = false;      /* this very move is done on the destination */
  bool need_dest, checked = false;
  int changes = 0, na = 0, r = -1, state;
  FILE *report = opts->report ? opts->report : stdout;

  if (outcome_rtn == NULL)
    outcome_rtn = &dummy;
  *outcome_rtn = VMFERRY_MIGRATE_NOTHING;
  if (args == NULL) {
    vmferry_set_error_errno (ENOMEM, "migrate");
    return -1;
  }
  if (follow_rename (opts) < 0)
    return -1;
  if (opts->live)
    return migrate_live (opts, outcome_rtn);

  /* The SSH connection is made while everything up to the send runs. */
  if (!opts->dry_run)
    connector_start (&conn, &so);

  /* The source: shut off, and staying so (export checks again). */
  src = vmferry_virt_connect (opts->uri);
  if (src == NULL || !(dom = vmferry_virt_lookup_domain (src, opts->domain)))
    goto out;
  state = vmferry_virt_domain_state (dom);
  if (state < 0)
    goto out;
  if (state != VIR_DOMAIN_SHUTOFF &&
      !(opts->allow_running && (state == VIR_DOMAIN_RUNNING ||
                                state == VIR_DOMAIN_PAUSED))) {
    vmferry_set_error ("domain %s is %s: an offline migration needs it shut "
                       "off (or use --live); nothing was done", opts->domain,
                       vmferry_virt_state_name (state));
    goto out;
  }

  need_dest = !opts->no_check ||
    (rewriting && vmferry_rewrite_needs_dest (opts->rewrite));
  if (dest_setup (opts, &conn, need_dest, &d) < 0)
    goto out;
  dest_uri = d.uri;
  if (opts->result && !opts->result->dest_uri)
    opts->result->dest_uri = strdup (dest_uri);
  if (need_dest) {
    x.dest = vmferry_virt_connect (d.connect);
    if (x.dest == NULL) {
      vmferry_prefix_error ("destination");
      goto out;
    }
  }

  /* The definition as it will be on the destination, and its files
   * where the rules put them (then relocate puts them where the import
   * will): the check judges the plan as it will be executed.
   */
  if (vmferry_check_input_load (opts->domain, opts->uri, &in) < 0)
    goto out;
  if (rewriting &&
      (changes = vmferry_rewrite_check_input (opts->rewrite, &in, x.dest)) < 0)
    goto out;
  if (opts->dest_pool)
    dir = NULL;
  else if (opts->dest_dir)
    dir = strdup (opts->dest_dir);
  else if (!(dir = first_disk_dir (in.doc)))
    goto out;

  if (dir && relocate (&in, dir) < 0)
    goto out;
  note_dest (opts->result, dest_uri, &in, dir, opts->dest_pool);

  /* A move that was done already (an earlier run may have been killed
   * after the destination finished): nothing to copy.  Not said of a
   * running source, whose content moves on.
   */
  if (x.dest && !opts->allow_running) {
    int k = already_there (opts, x.dest, in.doc);
    if (k < 0)
      goto out;
    if (k > 0 && opts->dry_run) {
      vmferry_notice ("domain %s is already on %s, moved from this same "
                      "source state: nothing would be copied", opts->domain,
                      opts->ssh.destination);
      *outcome_rtn = VMFERRY_MIGRATE_ALREADY;
      r = 0;
      goto out;
    }
    /* The import's resume query says so too, once it has finished what a
     * killed import left there; no data is sent.
     */
    if (k > 0)
      already = true;
  }
  if (!opts->no_check && !already) {
    in.check_for = VMFERRY_CHECK_FOR_MIGRATE;
    in.dest_dir = opts->dest_dir;
    in.dest_pool = opts->dest_pool;
    in.dest_disks = opts->dest_disks;
    in.n_dest_disks = opts->n_dest_disks;
    if (vmferry_check (x.dest, &in, &findings) < 0) {
      vmferry_prefix_error ("pre-flight check");
      goto out;
    }
    checked = true;
    if (opts->dry_run || findings.list.len > 0)
      vmferry_findings_print (&findings, report, false, dest_uri, opts->domain);
    if (vmferry_findings_blocking (&findings) && !opts->dry_run) {
      vmferry_set_error ("domain %s cannot run on %s as it is (see the "
                         "findings above); nothing was copied and the "
                         "source is unchanged",
                         opts->domain, opts->ssh.destination);
      goto out;
    }
  }
  if (opts->dry_run) {
    CLEANUP_FREE char *where = NULL;
    if (asprintf (&where, "%s%s", dir ? dir : "pool ",
                  dir ? "" : opts->dest_pool) < 0)
      goto out;
    r = print_plan (opts, report, dest_uri, where, changes, in.doc);
    /* A plan the check blocks would be refused: say so in the status. */
    if (r == 0 && !opts->no_check && vmferry_findings_blocking (&findings)) {
      vmferry_set_error ("--dry-run: domain %s cannot run on %s as it is "
                         "(see the findings above): the migration would be "
                         "refused", opts->domain, opts->ssh.destination);
      r = -1;
    }
    goto out;
  }

  if (vmferry_fault ("migrate-checked") < 0)
    goto out;
  /* export -> (rewrite) -> send, each in its thread, the stream handed
   * on without the kernel (handoff.h) and its checksums verified once,
   * by the import on B.
   */
  x.eopts = (struct vmferry_export_opts) {
    .uri = opts->uri, .domain = opts->domain, .out_fd = -1,
    .out_name = "export", .out_fn = vmferry_handoff_writev,
    .compress = opts->compress, .level = opts->level, .threads = opts->threads,
    /* An offline move moves a shut-off domain (--live the running). */
    .offline = !opts->allow_running, .freeze = opts->freeze,
    .trim = opts->trim,
  };
  buffer = opts->buffer;
  if (buffer == VMFERRY_SEND_BUFFER) {
    unsigned asked = x.eopts.threads;

    /* With the default --buffer the budget holds: more compression
     * workers than fit in it (each with its slot and compressor) get
     * none, rather than pushing the process over it.
     */
    while (x.eopts.threads > vmferry_default_threads () &&
           migrate_memory (&x.eopts, &so, rewriting) + VMFERRY_MEMORY_BASE >
           VMFERRY_MEMORY_BUDGET)
      x.eopts.threads--;
    if (x.eopts.threads != asked)
      vmferry_notice ("--threads=%u: %u fit in the memory budget of %zu MiB "
                      "(a --buffer=SIZE lifts the budget)", asked,
                      x.eopts.threads, VMFERRY_MEMORY_BUDGET >> 20);
    buffer = vmferry_buffer_default (migrate_memory (&x.eopts, &so, rewriting));
  }
  for (int i = 0; i < (rewriting ? 2 : 1); i++)
    if (!(x.h[i] = vmferry_handoff_new (i == 0 ? "export" : "rewrite",
                                        i == rewriting ? buffer : 0)))
      goto out;
  x.eopts.out_opaque = x.h[0];
  sin = vmferry_stream_reader_new_fn (vmferry_handoff_read, x.h[rewriting],
                                      rewriting ? "rewrite" : "export");
  if (sin == NULL)
    goto out;
  vmferry_stream_reader_trust (sin);
  if (pthread_create (&x.export_st.thread, NULL, export_thread, &x) != 0) {
    vmferry_set_error ("cannot start the export thread");
    goto out;
  }
  x.export_st.started = true;
  if (rewriting) {
    if (pthread_create (&x.rewrite_st.thread, NULL, rewrite_thread, &x) != 0) {
      vmferry_set_error ("cannot start the rewrite thread");
      vmferry_handoff_close_read (x.h[0]);
      goto join;
    }
    x.rewrite_st.started = true;
  }

  if (dir) {
    args[na++] = "--dir";
    args[na++] = dir;
  }
  else {
    args[na++] = "--pool";
    args[na++] = opts->dest_pool;
  }
  args[na++] = opts->start ? "--start" : "--define";
  if (opts->format) {
    args[na++] = "--format";
    args[na++] = opts->format;
  }
  if (opts->flatten)
    args[na++] = "--flatten";
  if (opts->no_fixup)
    args[na++] = "--no-fixup";
  if (opts->new_identity) {
    args[na++] = "--new-identity";
    args[na++] = opts->new_identity;
  }
  for (size_t i = 0; i < opts->n_dest_disks; i++) {
    args[na++] = "--disk";
    args[na++] = opts->dest_disks[i];
  }
  if (vmferry_get_verbosity () > 0)
    args[na++] = "-v";
  args[na] = NULL;
  so.import_args = args;
  so.in = sin;
  so.in_name = rewriting ? "rewrite" : "export";
  so.no_resume = opts->no_resume;
  so.import_json = opts->result != NULL;
  /* The bar is the send's, as in export | send: what has reached the
   * remote, not what the export has read ahead into the buffer.
   */
  so.progress = opts->progress;
  /* The session may have been joined already (dest_setup). */
  so.session = connector_join (&conn);
  if (conn.st.rc < 0)
    vmferry_restore_error (conn.st.err, conn.st.errnum);
  else {
    if (opts->at_send) {
      CLEANUP_FREE char *name = vmferry_domain_get_name (in.doc);
      CLEANUP_FREE char *where = NULL;
      if (name == NULL || asprintf (&where, "%s%s", dir ? dir : "pool ",
                                    dir ? "" : opts->dest_pool) < 0) {
        where = NULL;
        vmferry_set_error_errno (ENOMEM, "migrate");
        vmferry_handoff_close_read (x.h[rewriting]);
        goto join;
      }
      opts->at_send (opts->at_send_opaque, name, where);
    }
    r = vmferry_send (&so, &stats);
    if (opts->result) {
      opts->result->has_bytes = true;
      opts->result->bytes_read = stats.read;
      opts->result->bytes_sent = stats.sent;
      opts->result->bytes_written = stats.written;
      opts->result->bytes_skipped = stats.skipped;
      opts->result->resumed = stats.resumed;
      /* The import is done: a result it printed that cannot be read
       * loses only the account of the fix-ups (the import listed them).
       */
      if (r == 0 && stats.import_out &&
          vmferry_import_result_parse (stats.import_out, stats.import_out_len,
                                       &opts->result->import) < 0)
        vmferry_warn ("%s: %s", opts->ssh.destination, vmferry_get_error ());
    }
    free (stats.import_out);
    if (r == 0 && opts->at_send)
      opts->at_send (opts->at_send_opaque, NULL, NULL);
  }
  /* Unblock the stages if send stopped early. */
  vmferry_handoff_close_read (x.h[rewriting]);

 join:
  {
    char send_err[VMFERRY_ERROR_MAX];
    snprintf (send_err, sizeof send_err, "%s", vmferry_get_error ());
    if (x.export_st.started)
      pthread_join (x.export_st.thread, NULL);
    if (x.rewrite_st.started)
      pthread_join (x.rewrite_st.thread, NULL);
    /* The first stage's own failure is the cause; a broken pipe there
     * only echoes a later stage's.
     */
    if (x.export_st.started && x.export_st.rc < 0 &&
        x.export_st.errnum != EPIPE) {
      vmferry_restore_error (x.export_st.err, x.export_st.errnum);
      r = -1;
    }
    else if (x.rewrite_st.started && x.rewrite_st.rc < 0 &&
             x.rewrite_st.errnum != EPIPE) {
      vmferry_restore_error (x.rewrite_st.err, x.rewrite_st.errnum);
      r = -1;
    }
    else if (r < 0)
      vmferry_restore_error (send_err, 0);
  }
  if (r < 0) {
    vmferry_prefix_error ("domain %s", opts->domain);
    {
      char msg[VMFERRY_ERROR_MAX];
      snprintf (msg, sizeof msg, "%s", vmferry_get_error ());
      vmferry_set_error ("%s; the source is unchanged%s", msg,
                         opts->undefine_source ? " and still defined" : "");
    }
    goto out;
  }
  vmferry_fault ("migrate-sent");
  *outcome_rtn = stats.already ? VMFERRY_MIGRATE_ALREADY : VMFERRY_MIGRATE_DONE;
  if (!stats.already)
    vmferry_verbose ("domain %s: copied, verified and defined on %s (%" PRIu64
                     " bytes sent%s)", opts->domain, opts->ssh.destination,
                     stats.sent, stats.resumed ? ", resumed" : "");

  if (opts->undefine_source) {
    /* What the source's definition names, read while it exists. */
    if (opts->remove_source_storage &&
        vmferry_check_input_load (opts->domain, opts->uri, &src_in) < 0) {
      vmferry_prefix_error ("domain %s: copied and defined on %s, but "
                            "--remove-source-storage cannot list the source's "
                            "files: the source was not undefined", opts->domain,
                            opts->ssh.destination);
      *outcome_rtn = VMFERRY_MIGRATE_SOURCE_DEFINED;
      goto out;
    }
    /* Keep NVRAM (removed below, if asked, only when no other domain
     * uses it) and TPM state unless asked: the source's data is never
     * deleted by default.
     */
    state = vmferry_virt_domain_state (dom);
    if (state != VIR_DOMAIN_SHUTOFF ||
        virDomainUndefineFlags (dom, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM |
                                (opts->remove_source_storage ?
                                 VIR_DOMAIN_UNDEFINE_TPM :
                                 VIR_DOMAIN_UNDEFINE_KEEP_TPM) |
                                VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                                VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA) < 0) {
      if (state != VIR_DOMAIN_SHUTOFF)
        vmferry_set_error ("domain %s: copied and defined on %s, but the "
                           "source was started meanwhile: it was not "
                           "undefined", opts->domain, opts->ssh.destination);
      else
        vmferry_virt_error ("domain %s: copied and defined on %s, but the "
                            "source could not be undefined", opts->domain,
                            opts->ssh.destination);
      *outcome_rtn = VMFERRY_MIGRATE_SOURCE_DEFINED;
      goto out;
    }
    if (!opts->remove_source_storage)
      vmferry_verbose ("domain %s: source undefined (its files are kept)",
                       opts->domain);
    else
      remove_source_storage (opts, src, &src_in);
  }
  r = 0;
 out:
  vmferry_check_input_free (&src_in);
  vmferry_stream_reader_free (sin);
  vmferry_handoff_free (x.h[0]);
  vmferry_handoff_free (x.h[1]);
  vmferry_ssh_free (connector_join (&conn));
  note_findings (opts->result, &findings, checked,
                 checked && vmferry_findings_blocking (&findings));
  vmferry_findings_free (&findings);
  vmferry_check_input_free (&in);
  if (x.dest)
    virConnectClose (x.dest);
  dest_free (&d);
  return r;
}

/* Where the offline migration of OPTS sends to: the name the domain has
 * there (*NAME_RTN) and the import's --dir (*DIR_RTN) or, with
 * --dest-pool, NULL.  As vmferry_migrate decides them.
 */
static int
plan_target (const struct vmferry_migrate_opts *opts, char **name_rtn,
             char **dir_rtn)
{
  struct vmferry_check_input in = { 0 };
  CLEANUP_VIR_CONNECT virConnectPtr dest = NULL;
  struct dest d = { 0 };
  int r = -1;

  *name_rtn = *dir_rtn = NULL;
  if (opts->rewrite && vmferry_rewrite_needs_dest (opts->rewrite)) {
    if (dest_setup (opts, NULL, true, &d) < 0)
      return -1;
    dest = vmferry_virt_connect (d.connect);
    if (dest == NULL) {
      vmferry_prefix_error ("destination");
      dest_free (&d);
      return -1;
    }
  }
  if (vmferry_check_input_load (opts->domain, opts->uri, &in) < 0)
    goto out;
  if (opts->rewrite && !vmferry_rewrite_is_empty (opts->rewrite) &&
      vmferry_rewrite_doc (opts->rewrite, in.doc, dest) < 0)
    goto out;
  if (!(*name_rtn = vmferry_domain_get_name (in.doc)))
    goto out;
  if (opts->dest_dir && !(*dir_rtn = strdup (opts->dest_dir))) {
    vmferry_set_error_errno (ENOMEM, "migrate");
    goto out;
  }
  if (!opts->dest_dir && !opts->dest_pool &&
      !(*dir_rtn = first_disk_dir (in.doc)))
    goto out;
  r = 0;
 out:
  if (r < 0) {
    free (*name_rtn);
    *name_rtn = NULL;
  }
  vmferry_check_input_free (&in);
  dest_free (&d);
  return r;
}

static int
abort_live (const struct vmferry_migrate_opts *opts, char **what_rtn)
{
  bool rewriting = opts->rewrite && !vmferry_rewrite_is_empty (opts->rewrite);
  enum vmferry_live_outcome lo = VMFERRY_LIVE_NOTHING;
  struct vmferry_live_opts lopts;
  struct dest d = { 0 };
  const char *dest_uri;
  int k, r = -1;

  if (dest_setup (opts, NULL, true, &d) < 0)
    return -1;
  dest_uri = d.uri;
  /* Never --undefine-source here: an abort leaves the source as it is. */
  lopts = (struct vmferry_live_opts) {
    .uri = opts->uri, .domain = opts->domain, .dest_uri = d.uri,
    .connect_uri = d.connect,
    .rewrite = rewriting ? live_rewrite : NULL, .opaque = opts->rewrite,
  };
  k = vmferry_live_recover (&lopts, &lo);
  if (k < 0)
    goto out;
  if (k > 0) {
    vmferry_set_error ("domain %s: nothing to abort: it runs on %s and not on "
                       "the source (the live migration was completed)",
                       opts->domain, dest_uri);
    goto out;
  }
  if (asprintf (what_rtn, "what an interrupted live migration of %s left "
                "on %s, if anything", opts->domain, dest_uri) < 0) {
    *what_rtn = NULL;
    vmferry_set_error_errno (ENOMEM, "migrate");
    goto out;
  }
  r = 0;
 out:
  dest_free (&d);
  return r;
}

int
vmferry_migrate_abort (const struct vmferry_migrate_opts *opts, char **what_rtn)
{
  CLEANUP_FREE char *name = NULL, *dir = NULL, *arg = NULL, *cmd = NULL;
  CLEANUP_FREE char *out = NULL;
  struct vmferry_send_opts so = { .ssh = opts->ssh };
  struct vmferry_remote *remote;
  struct vmferry_ssh *s = NULL;
  size_t out_len;
  int status, r = -1;

  *what_rtn = NULL;
  if (follow_rename (opts) < 0)
    return -1;
  if (opts->live)
    return abort_live (opts, what_rtn);
  if (plan_target (opts, &name, &dir) < 0)
    return -1;
  if (asprintf (&arg, "--abort=%s", name) < 0) {
    arg = NULL;
    goto nomem;
  }
  if (vmferry_shell_quote_append (&cmd, "vmferry-import") < 0 ||
      vmferry_shell_quote_append (&cmd, arg) < 0 ||
      vmferry_shell_quote_append (&cmd, dir ? "--dir" : "--pool") < 0 ||
      vmferry_shell_quote_append (&cmd, dir ? dir : opts->dest_pool) < 0)
    goto nomem;
  /* The same SSH path as the send: host keys, config, --ssh-command. */
  s = vmferry_send_connect (&so);
  if (s == NULL)
    return -1;
  /* Its output ("aborted 1 interrupted transfer") is ours to say;
   * its errors reach stderr as they come.
   */
  remote = vmferry_remote_start (s, cmd, true);
  if (remote == NULL)
    goto out;
  status = vmferry_remote_finish (remote, &out, &out_len);
  if (status != 0) {
    if (status > 0)
      vmferry_set_error ("%s: vmferry-import --abort failed (exit status %d, "
                         "its message above)", opts->ssh.destination, status);
    else
      vmferry_prefix_error ("%s: vmferry-import --abort",
                            opts->ssh.destination);
    goto out;
  }
  if (asprintf (what_rtn, "the interrupted transfer of %s (partial files and "
                "resume state) from %s%s on %s", name, dir ? "" : "pool ",
                dir ? dir : opts->dest_pool, opts->ssh.destination) < 0) {
    *what_rtn = NULL;
    goto nomem;
  }
  r = 0;
  goto out;
 nomem:
  vmferry_set_error_errno (ENOMEM, "migrate");
 out:
  vmferry_ssh_free (s);
  return r;
}
