/* vmferry: the input of a pre-flight check (see preflight.h): a domain
 * definition and its files, from a stream, a file or a libvirt domain.
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

#include <libxml/tree.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "manifest.h"
#include "preflight-int.h"
#include "preflight.h"
#include "refs.h"
#include "stream.h"
#include "virt.h"
#include "xmlnode.h"

/* ---------------------------------------------------------------- input */

void
vmferry_check_input_free (struct vmferry_check_input *in)
{
  if (in == NULL)
    return;
  if (in->doc)
    xmlFreeDoc (in->doc);
  free (in->name);
  for (size_t i = 0; i < in->files.len; i++) {
    free (in->files.ptr[i].path);
    free (in->files.ptr[i].format);
  }
  vmferry_check_file_vector_reset (&in->files);
  for (size_t i = 0; i < in->allow.len; i++)
    free (in->allow.ptr[i]);
  vmferry_check_string_vector_reset (&in->allow);
  free (in->guest);
  for (size_t i = 0; i < in->disk_targets.len; i++)
    free (in->disk_targets.ptr[i]);
  vmferry_check_string_vector_reset (&in->disk_targets);
  memset (in, 0, sizeof *in);
}

int
vmferry_check_input_allow (struct vmferry_check_input *in, const char *value)
{
  char *v;

  if (vmferry_refs_allow_valid (value) == -1)
    return -1;
  v = strdup (value);
  if (v == NULL || vmferry_check_string_vector_append (&in->allow, v) == -1) {
    free (v);
    vmferry_set_error_errno (ENOMEM, "--allow-path");
    return -1;
  }
  return 0;
}

static int
add_file (struct vmferry_check_input *in, const char *path, uint64_t allocated,
          bool carried, const char *format, uint64_t capacity)
{
  struct vmferry_check_file *v;

  if (vmferry_check_file_vector_reserve (&in->files, 1) == -1)
    return -1;
  v = &in->files.ptr[in->files.len];
  memset (v, 0, sizeof *v);
  v->path = strdup (path);
  if (v->path == NULL)
    return -1;
  if (format && (v->format = strdup (format)) == NULL) {
    free (v->path);
    return -1;
  }
  v->allocated = allocated;
  v->capacity = capacity;
  v->carried = carried;
  in->files.len++;
  return 0;
}

static ssize_t
read_full (int fd, void *buf, size_t len)
{
  size_t got = 0;

  while (got < len) {
    ssize_t r = read (fd, (char *) buf + got, len - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    got += r;
  }
  return got;
}

/* The files of manifest M: by pool/volume, or source_path. */
static int
files_from_manifest (struct vmferry_check_input *in,
                     const struct vmferry_manifest *m)
{
  for (size_t i = 0; i < m->nr_files; i++) {
    const struct vmferry_manifest_file *f = &m->files[i];
    CLEANUP_FREE char *key = NULL;

    /* TPM state goes where the domain's UUID says: no reference. */
    if (f->role == VMFERRY_MANIFEST_TPM)
      continue;
    if (f->pool) {
      if (asprintf (&key, "volume:%s/%s", f->pool, f->volume) < 0)
        key = NULL;
    }
    else
      key = strdup (f->source_path);
    if (key == NULL ||
        add_file (in, key, f->allocated, true, f->format,
                  f->role != VMFERRY_MANIFEST_DISK ? 0
                  : f->has_virtual_size ? f->virtual_size : f->size) == -1) {
      vmferry_set_error_errno (ENOMEM, "%s", in->name);
      return -1;
    }
  }
  return 0;
}

/* The first records of a stream: header, manifest, domain XML.  PREFIX
 * holds bytes already read from FD.
 */
static int
load_stream (struct vmferry_check_input *in, int fd,
             const unsigned char *prefix, size_t plen)
{
  struct vmferry_manifest *m = NULL;
  unsigned char *payload = NULL;
  uint64_t offset = 0;          /* of the record, in the stream */
  int ret = -1;

  for (uint64_t seq = 0; seq < 64; seq++) {
    unsigned char hdr[VMFERRY_REC_HEADER_SIZE];
    struct vmferry_record rec;
    size_t have = 0;
    ssize_t r;

    if (plen) {
      have = plen < sizeof hdr ? plen : sizeof hdr;
      memcpy (hdr, prefix, have);
      prefix += have;
      plen -= have;
    }
    r = read_full (fd, hdr + have, sizeof hdr - have);
    if (r < 0 || have + r < sizeof hdr) {
      vmferry_set_error ("%s: truncated before the domain XML", in->name);
      goto out;
    }
    if (vmferry_record_decode_header (hdr, &rec) < 0) {
      vmferry_prefix_error ("%s: record %" PRIu64, in->name, seq);
      goto out;
    }
    free (payload);
    payload = malloc (rec.payload_len ? rec.payload_len : 1);
    if (payload == NULL) {
      vmferry_set_error_errno (errno, "%s", in->name);
      goto out;
    }
    r = read_full (fd, payload, rec.payload_len);
    if (r < 0 || (size_t) r < rec.payload_len) {
      vmferry_set_error ("%s: truncated before the domain XML", in->name);
      goto out;
    }
    if (vmferry_record_checksum (hdr, payload,
                                 rec.payload_len) != rec.checksum ||
        rec.seq != seq) {
      vmferry_set_error ("%s: record %" PRIu64 ": checksum mismatch or "
                         "bad number", in->name, seq);
      goto out;
    }
    rec.payload = payload;
    rec.stream_offset = offset;
    offset += sizeof hdr + rec.payload_len;
    if (seq == 0) {
      if (rec.type != VMFERRY_REC_STREAM_HEADER ||
          vmferry_stream_parse_header (payload, rec.payload_len, NULL,
                                       NULL) < 0) {
        if (rec.type != VMFERRY_REC_STREAM_HEADER)
          vmferry_set_error ("%s: does not start with a stream header",
                             in->name);
        else
          vmferry_prefix_error ("%s", in->name);
        goto out;
      }
      continue;
    }
    if (rec.type == VMFERRY_REC_MANIFEST) {
      CLEANUP_FREE char *json = NULL;
      size_t len;
      if (m) {
        vmferry_set_error ("%s: record %" PRIu64 " (manifest) at byte %"
                           PRIu64 ": a second manifest", in->name, seq,
                           rec.stream_offset);
        goto out;
      }
      json = vmferry_record_metadata (&rec, payload, &len);
      if (json == NULL) {
        vmferry_prefix_error ("%s", in->name);
        goto out;
      }
      /* The importer's parser and its words (formats/validate.c): what
       * the import would refuse is refused here.
       */
      if (vmferry_manifest_parse (json, len, NULL, &m) < 0) {
        vmferry_prefix_error ("%s: record %" PRIu64 " (manifest) at byte %"
                              PRIu64, in->name, seq, rec.stream_offset);
        goto out;
      }
    }
    else if (rec.type == VMFERRY_REC_DOMAIN_XML) {
      size_t len;
      CLEANUP_FREE char *xml = vmferry_record_metadata (&rec, payload, &len);
      if (xml == NULL) {
        vmferry_prefix_error ("%s", in->name);
        goto out;
      }
      if (m == NULL) {
        vmferry_set_error ("%s: the domain XML came before the manifest",
                           in->name);
        goto out;
      }
      in->doc = vmferry_domain_parse (xml, len, "domain XML in the stream");
      if (in->doc == NULL || files_from_manifest (in, m) == -1 ||
          vmferry_preflight_keep_guest (in, m) == -1)
        goto out;
      ret = 0;
      goto out;
    }
    else if (!(rec.flags & VMFERRY_REC_F_SKIPPABLE)) {
      vmferry_set_error ("%s: record %" PRIu64 " (%s) before the domain XML",
                         in->name, seq, vmferry_record_type_name (rec.type));
      goto out;
    }
  }
  vmferry_set_error ("%s: no domain XML in the first 64 records", in->name);
 out:
  vmferry_manifest_free (m);
  free (payload);
  return ret;
}

/* Would export carry this disk?  (Not read-only, shareable, CD-ROM or
 * floppy.)
 */
static bool
carried_disk (xmlNodePtr d)
{
  CLEANUP_FREE char *dev = vmferry_xml_attr (d, "device");

  return !(dev &&
           (strcmp (dev, "cdrom") == 0 || strcmp (dev, "floppy") == 0)) &&
    vmferry_xml_child (d, "readonly") == NULL &&
    vmferry_xml_child (d, "shareable") == NULL;
}

/* Files of a bare XML or a domain: sizes from FN (NULL: stat here). */
static int
files_from_xml (struct vmferry_check_input *in, virDomainPtr dom)
{
  xmlNodePtr root = xmlDocGetRootElement (in->doc);
  xmlNodePtr os = vmferry_xml_child (root, "os");
  xmlNodePtr nv = vmferry_xml_child (os, "nvram");

  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr d = devs->children; d; d = d->next) {
      CLEANUP_FREE char *type = NULL;
      CLEANUP_FREE char *path = NULL;
      uint64_t alloc = 0, cap = 0;
      if (!vmferry_xml_is_elem (d, "disk"))
        continue;
      type = vmferry_xml_attr (d, "type");
      if (type == NULL || strcmp (type, "file") == 0)
        path = vmferry_xml_attr (vmferry_xml_child (d, "source"), "file");
      else if (strcmp (type, "block") == 0)
        path = vmferry_xml_attr (vmferry_xml_child (d, "source"), "dev");
      if (path == NULL || *path != '/')
        continue;
      if (dom) {
        virDomainBlockInfo bi;
        if (virDomainGetBlockInfo (dom, path, &bi, 0) == 0) {
          alloc = bi.allocation;
          cap = bi.capacity;
        }
      }
      else {
        struct stat st;
        if (stat (path, &st) == 0) {
          alloc = (uint64_t) st.st_blocks * 512;
          cap = (uint64_t) st.st_size;
        }
      }
      if (vmferry_xml_attr_eq (d, "device", "cdrom") ||
          vmferry_xml_attr_eq (d, "device", "floppy"))
        cap = 0;
      if (add_file (in, path, alloc, carried_disk (d), NULL, cap) == -1)
        return -1;
    }
  }
  if (nv) {
    CLEANUP_FREE char *path = vmferry_xml_attr_eq (nv, "type", "file")
      ? vmferry_xml_attr (vmferry_xml_child (nv, "source"), "file")
      : xmlHasNsProp (nv, BAD_CAST "type", NULL) ? NULL : vmferry_xml_text (nv);
    if (path && *path == '/' &&
        add_file (in, path, 540672, true, NULL, 0) == -1)
      return -1;
  }
  return 0;
}

int
vmferry_check_input_load (const char *what, const char *source_uri,
                          struct vmferry_check_input *in)
{
  struct stat st;

  memset (in, 0, sizeof *in);
  if (what == NULL) {
    vmferry_set_error_errno (EINVAL, "check: nothing to check");
    return -1;
  }
  if (strcmp (what, "-") == 0 ||
      (strchr (what, '/') && stat (what, &st) == 0) ||
      (stat (what, &st) == 0 && S_ISREG (st.st_mode))) {
    CLEANUP_CLOSE int fd = strcmp (what, "-") == 0 ? dup (STDIN_FILENO)
      : open (what, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    unsigned char first[4];
    ssize_t n;

    in->name = strdup (strcmp (what, "-") == 0 ? "stdin" : what);
    if (in->name == NULL) {
      vmferry_set_error_errno (ENOMEM, "check");
      return -1;
    }
    if (fd < 0) {
      vmferry_set_error_errno (errno, "%s: cannot open", in->name);
      goto fail;
    }
    n = read_full (fd, first, sizeof first);
    if (n < 0) {
      vmferry_set_error_errno (errno, "%s: read", in->name);
      goto fail;
    }
    if (n == 4 && memcmp (first, VMFERRY_REC_MAGIC, 4) == 0) {
      if (load_stream (in, fd, first, 4) == -1)
        goto fail;
      return 0;
    }
    /* Otherwise domain XML, read whole (bounded) and parsed safely. */
    {
      CLEANUP_FREE char *buf = malloc (VMFERRY_DOMAIN_MAX_SIZE + 1);
      size_t len = n;
      ssize_t r;
      if (buf == NULL) {
        vmferry_set_error_errno (errno, "%s", in->name);
        goto fail;
      }
      memcpy (buf, first, n);
      r = read_full (fd, buf + len, VMFERRY_DOMAIN_MAX_SIZE + 1 - len);
      if (r < 0) {
        vmferry_set_error_errno (errno, "%s: read", in->name);
        goto fail;
      }
      len += r;
      if (len > VMFERRY_DOMAIN_MAX_SIZE) {
        vmferry_set_error ("%s: neither a vmferry stream nor domain XML of at "
                           "most %d MiB", in->name,
                           VMFERRY_DOMAIN_MAX_SIZE >> 20);
        goto fail;
      }
      in->doc = vmferry_domain_parse (buf, len, in->name);
      if (in->doc == NULL || files_from_xml (in, NULL) == -1)
        goto fail;
      return 0;
    }
  }

  /* A domain on the source host, read as export reads it. */
  {
    CLEANUP_VIR_CONNECT virConnectPtr src = vmferry_virt_connect (source_uri);
    CLEANUP_VIR_DOMAIN virDomainPtr dom = NULL;
    CLEANUP_FREE char *xml = NULL;

    in->name = strdup (what);
    if (src == NULL || in->name == NULL)
      goto fail;
    dom = vmferry_virt_lookup_domain (src, what);
    if (dom == NULL)
      goto fail;
    xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE |
                               VIR_DOMAIN_XML_SECURE |
                               VIR_DOMAIN_XML_MIGRATABLE);
    if (xml == NULL) {
      vmferry_virt_error ("domain %s: cannot read its XML", what);
      goto fail;
    }
    in->doc = vmferry_domain_parse (xml, strlen (xml), what);
    if (in->doc == NULL || files_from_xml (in, dom) == -1)
      goto fail;
    return 0;
  }
 fail:
  vmferry_check_input_free (in);
  return -1;
}
