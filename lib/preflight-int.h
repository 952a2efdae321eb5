/* vmferry: what the parts of the pre-flight check share (preflight.c
 * runs the checks of preflight-machine.c, -network.c, -storage.c,
 * -domain.c and -refs.c, each adding findings to one struct preflight).
 * Private to those files.
 *
 * A check never fails: what it cannot learn is a finding, and only
 * running out of memory (c->oom) stops the run.
 */
#ifndef VMFERRY_PREFLIGHT_INT_H
#define VMFERRY_PREFLIGHT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>
#include <libxml/tree.h>

#include "preflight.h"

struct preflight {
  virConnectPtr dest;
  const struct vmferry_check_input *in;
  xmlNodePtr root;
  struct vmferry_findings *out;
  bool oom;
  char *arch, *virt, *machine, *emulator;  /* as the XML has them */
  char *use_emulator;           /* what to ask the destination about */
  bool machine_ok;
  xmlDocPtr domcaps;            /* for use_emulator, arch, machine */
  char *default_emulator;       /* the destination's, from domcaps */
  unsigned probe;               /* counter for transient pool names */
  /* References the import would refuse (check_refs): their directories
   * are not looked at (a transient pool over /dev or /etc is no way to
   * learn what the answer already is).
   */
  struct vmferry_check_string_vector refused;
  /* The destination's emulators (its capabilities), when it told. */
  char **emulators;
  size_t nemulators;
  bool have_emulators;
};

/* preflight.c */

/* Add a finding.  FIX: NULL-terminated words (copied), or NULL. */
void vmferry_preflight_add (struct preflight *c, int sev, const char *check,
                            const char *object, const char *const *fix,
                            const char *hint, const char *fs, ...)
  __attribute__ ((format (printf, 7, 8)));

/* An error that vmferry-rewrite's OPTION OLD=PICK fixes when PICK is not
 * NULL: then with that fix and HINT, else (also when memory for the pair
 * runs out) with no fix and NO_PICK for the hint.
 */
void vmferry_preflight_add_pick (struct preflight *c, const char *check,
                                 const char *object, const char *option,
                                 const char *old, const char *pick,
                                 const char *hint, const char *no_pick,
                                 const char *fs, ...)
  __attribute__ ((format (printf, 9, 10)));

/* A "space" error: WHAT ("the files", "the volumes") need NEED bytes
 * where AVAILABLE are free.  Rounded in the message, exact in the JSON.
 */
void vmferry_preflight_add_space (struct preflight *c, const char *object,
                                  const char *hint, const char *what,
                                  uint64_t need, uint64_t available);

/* libvirt's last error message, one line, and its code (0: none). */
const char *vmferry_preflight_virt_msg (void);
int vmferry_preflight_virt_code (void);

/* preflight-machine.c */

/* The destination's domain capabilities for EMULATOR and MACHINE (NULL:
 * its default), or NULL when it does not tell.  The caller frees it.
 */
xmlDocPtr vmferry_preflight_domcaps (struct preflight *c,
                                     const char *emulator,
                                     const char *machine);
void vmferry_preflight_type_and_emulator (struct preflight *c);
void vmferry_preflight_machine (struct preflight *c);
void vmferry_preflight_cpu (struct preflight *c);

/* preflight-network.c */

/* S is one of SEEN[0..N). */
bool vmferry_preflight_seen_before (char **seen, size_t n, const char *s);
void vmferry_preflight_interfaces (struct preflight *c);

/* preflight-storage.c */
void vmferry_preflight_storage (struct preflight *c);

/* preflight-block.c: a block pool (--dest-pool) and the devices named
 * for disks (--dest-disk).
 */
void vmferry_preflight_block (struct preflight *c);

/* preflight-domain.c */
void vmferry_preflight_identity (struct preflight *c);
void vmferry_preflight_devices (struct preflight *c);

/* preflight-refs.c */
void vmferry_preflight_refs (struct preflight *c);

/* preflight-guest.c: what the guest's inspection says about a disk that
 * gets another name, or a Windows guest off virtio.
 */
void vmferry_preflight_guest (struct preflight *c);

/* Keep manifest M's "guest" (may be NULL) and the target each of IN's
 * disks had on the source (the manifest's, else the XML's).  Returns 0,
 * or -1 with the error set.
 */
struct vmferry_manifest;
int vmferry_preflight_keep_guest (struct vmferry_check_input *in,
                                  const struct vmferry_manifest *m);

#endif
