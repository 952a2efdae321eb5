/* vmferry: the identity of a rewritten domain: its name, its UUID and
 * the MAC addresses derived from it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libxml/tree.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "cleanup.h"
#include "domain.h"
#include "error.h"
#include "manifest.h"
#include "rewrite-int.h"
#include "rewrite.h"
#include "xmlnode.h"

/* ---------------------------------------------------------------- identity */

static int
random_uuid (char out[37])
{
  unsigned char b[16];
  CLEANUP_CLOSE int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);

  if (fd < 0 || read (fd, b, sizeof b) != (ssize_t) sizeof b) {
    vmferry_set_error_errno (errno, "/dev/urandom: cannot draw a UUID");
    return -1;
  }
  b[6] = (b[6] & 0x0f) | 0x40;  /* version 4 */
  b[8] = (b[8] & 0x3f) | 0x80;  /* RFC 4122 variant */
  snprintf (out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
            b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return 0;
}

int
vmferry_rewrite_identity (struct vmferry_rewrite *rw, xmlDocPtr doc,
                          int *changes)
{
  if (rw->rename) {
    CLEANUP_FREE char *old = vmferry_domain_get_name (doc);
    if (old == NULL || strcmp (old, rw->rename) != 0) {
      if (vmferry_domain_set_name (doc, rw->rename) == -1)
        return -1;
      (*changes)++;
    }
  }
  if (rw->new_uuid) {
    CLEANUP_FREE char *old = NULL;
    char canon[37];
    /* Drawn once per rule set: the XML and the manifest of one stream,
     * and every use by a caller, get the same new UUID.
     */
    if (rw->uuid == NULL) {
      if (random_uuid (canon) == -1)
        return -1;
      rw->uuid = strdup (canon);
      rw->uuid_where = strdup ("--new-uuid");
      if (rw->uuid == NULL || rw->uuid_where == NULL) {
        vmferry_set_error_errno (ENOMEM, "rewrite");
        return -1;
      }
    }
    old = vmferry_domain_get_uuid (doc);
    vmferry_clear_error ();
    if (old == NULL || vmferry_uuid_canonical (old, canon) == -1 ||
        strcmp (canon, rw->uuid) != 0) {
      if (vmferry_domain_set_uuid (doc, rw->uuid) == -1)
        return -1;
      (*changes)++;
    }
  }
  return 0;
}

/* MAC i of the domain with UUID: 52:54:00 (QEMU's prefix, as libvirt
 * uses) and three bytes of a hash of the UUID and i.  A function of the
 * UUID, so rewriting again gives the same MACs, and a copy with a new
 * UUID gets new ones.
 */
static void
derived_mac (const char *uuid, unsigned i, char out[18])
{
  char buf[64];
  uint64_t h;

  snprintf (buf, sizeof buf, "%s/%u", uuid, i);
  h = XXH3_64bits (buf, strlen (buf));
  snprintf (out, 18, "52:54:00:%02x:%02x:%02x", (unsigned) (h & 0xff),
            (unsigned) ((h >> 8) & 0xff), (unsigned) ((h >> 16) & 0xff));
}

/* Note OLD -> NEW for the manifest (rewrite-stream.c); a MAC that is
 * none (libvirt would not have defined it) has nothing to follow.
 */
static int
note_mac (struct vmferry_rewrite *rw, const char *old, const char *new)
{
  struct pair p = { 0 };

  if (old == NULL || !vmferry_manifest_mac_ok (old) ||
      strcasecmp (old, new) == 0)
    return 0;
  p.old = strdup (old);
  p.new = strdup (new);
  if (p.old == NULL || p.new == NULL || pairs_append (&rw->macs, p) == -1) {
    free (p.old);
    free (p.new);
    vmferry_set_error_errno (ENOMEM, "rewrite");
    return -1;
  }
  return 0;
}

int
vmferry_rewrite_macs (struct vmferry_rewrite *rw, xmlNodePtr root,
                      xmlDocPtr doc, int *changes)
{
  CLEANUP_FREE char *uuid = vmferry_domain_get_uuid (doc);
  char canon[37];
  unsigned i = 0;

  if (uuid == NULL || vmferry_uuid_canonical (uuid, canon) == -1) {
    vmferry_set_error ("--new-macs: the domain has no valid UUID to derive "
                       "the MACs from (add --new-uuid)");
    return -1;
  }
  for (xmlNodePtr devs = root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      CLEANUP_FREE char *old = NULL;
      xmlNodePtr mac;
      char m[18];
      if (!vmferry_xml_is_elem (n, "interface") ||
          (mac = vmferry_xml_child (n, "mac")) == NULL)
        continue;
      old = vmferry_xml_attr (mac, "address");
      derived_mac (canon, i++, m);
      if (note_mac (rw, old, m) == -1 ||
          vmferry_xml_set_attr (mac, "address", m, changes) == -1)
        return -1;
    }
  }
  return 0;
}
