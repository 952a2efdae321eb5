/* vmferry: what the parts of the rewrite share (rewrite.c applies the
 * rules that rewrite-rules.c collected, one kind at a time, with the
 * functions of rewrite-identity.c, rewrite-machine.c, rewrite-storage.c
 * and rewrite-devices.c; rewrite-stream.c and rewrite-xmlfile.c feed it).
 * Private to those files.
 *
 * The vmferry_rewrite_* functions below that take CHANGES add one to it
 * per change made to the document (xmlnode.h), and return 0, or -1 with
 * the error set, unless they say otherwise.
 */
#ifndef VMFERRY_REWRITE_INT_H
#define VMFERRY_REWRITE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <libvirt/libvirt.h>
#include <libxml/tree.h>

#include "vector.h"
#include "xmlsource.h"

struct pair {
  char *old, *new;
  char *where;
};

DEFINE_VECTOR_TYPE (pairs, struct pair);

/* A file that became a pool volume: for the manifest. */
struct volmap {
  char *path, *pool, *volume;
};

DEFINE_VECTOR_TYPE (volmaps, struct volmap);

DEFINE_VECTOR_TYPE (strings, char *);

struct vmferry_rewrite {
  struct pairs paths, pools, networks, bridges, buses;
  char *rename, *rename_where;
  bool new_uuid;
  char *uuid, *uuid_where;      /* given, or drawn once and then kept */
  bool new_macs;
  char *machine, *machine_where;
  char *cpu, *cpu_where;
  char *emulator, *emulator_where;
  struct strings drop;          /* --drop-device: element names */
  bool in_map_file;
  /* Filled by vmferry_rewrite_doc for vmferry_rewrite_manifest: the
   * files that became volumes, and the MACs --new-macs changed (old,
   * new; no where).
   */
  struct volmaps vols;
  struct pairs macs;
};

/* What every mapped or converted file is, before and after: to refuse
 * two files landing on one.
 */
struct dest_entry {
  char *before, *after;         /* "path:/x" or "volume:pool/vol" */
  char *label;
};

DEFINE_VECTOR_TYPE (dests, struct dest_entry);

/* rewrite-rules.c */

/* Forget the volumes and MACs noted by the last vmferry_rewrite_doc. */
void vmferry_rewrite_notes_free (struct vmferry_rewrite *rw);

/* Is PATH equal to PREFIX or below it? */
bool vmferry_rewrite_path_under (const char *path, const char *prefix);

/* S is a CPU mode libvirt knows (--cpu takes a mode or a model). */
bool vmferry_rewrite_is_cpu_mode (const char *s);

/* rewrite-storage.c */

void vmferry_rewrite_dests_free (struct dests *d);

/* -1 with the error set when two files land on one destination. */
int vmferry_rewrite_dests_check (const struct dests *d);

/* Map the path in attribute NAME of N (or its text, NAME NULL), noting
 * it in D unless D is NULL.
 */
int vmferry_rewrite_node_path (struct vmferry_rewrite *rw, xmlNodePtr n,
                               const char *name, const char *label,
                               struct dests *d, int *changes);

/* A disk's own source and its backing chain. */
int vmferry_rewrite_disk_paths (struct vmferry_rewrite *rw, xmlNodePtr disk,
                                struct dests *d, int *changes);

/* The paths under <os>: loader, kernel, initrd, dtb, NVRAM. */
int vmferry_rewrite_os_paths (struct vmferry_rewrite *rw, xmlNodePtr root,
                              struct dests *d, int *changes);

/* type='volume' in pool SRC -> pool DST; type='file' under directory SRC
 * -> a volume of DST named as the file.  Returns 1 when the disk is (now)
 * a volume handled here, so path rules leave it alone.
 */
int vmferry_rewrite_pool_disk (struct vmferry_rewrite *rw, xmlNodePtr disk,
                               struct dests *d, int *changes);

/* rewrite-identity.c */

/* --rename, --new-uuid. */
int vmferry_rewrite_identity (struct vmferry_rewrite *rw, xmlDocPtr doc,
                              int *changes);

/* --new-macs: addresses derived from the (new) UUID; each MAC changed
 * is noted in RW->macs.
 */
int vmferry_rewrite_macs (struct vmferry_rewrite *rw, xmlNodePtr root,
                          xmlDocPtr doc, int *changes);

/* rewrite-machine.c: --emulator, --machine, --cpu. */

int vmferry_rewrite_emulator (struct vmferry_rewrite *rw, xmlNodePtr root,
                              virConnectPtr dest, int *changes);
int vmferry_rewrite_machine (struct vmferry_rewrite *rw, xmlNodePtr root,
                             virConnectPtr dest, int *changes);
int vmferry_rewrite_cpu (struct vmferry_rewrite *rw, xmlNodePtr root,
                         int *changes);

/* rewrite-devices.c: --map-network and --map-bridge, --map-bus, --drop. */

int vmferry_rewrite_interfaces (struct vmferry_rewrite *rw, xmlNodePtr root,
                                int *changes);
int vmferry_rewrite_disk_buses (struct vmferry_rewrite *rw, xmlNodePtr root,
                                int *changes);
int vmferry_rewrite_drop_devices (struct vmferry_rewrite *rw,
                                  xmlNodePtr root, int *changes);

/* rewrite-xmlfile.c */

/* At most MAX bytes from FD (NAME in messages) into *BUF_RTN, with a NUL
 * after them (the caller frees it), their number into *LEN_RTN.  Returns
 * 0; 1 when FD holds more than MAX bytes, with the error not set, so that
 * the caller says what its limit is for; or -1 with the error set.
 */
int vmferry_rewrite_read_fd (int fd, const char *name, size_t max,
                             char **buf_rtn, size_t *len_rtn);

/* rewrite.c */

/* The source of DOC, parsed from XML[0..LEN), so that the rewritten
 * definition keeps its text wherever nothing changed; NULL (said in
 * debug messages) when the text cannot be tied to the tree, and the
 * result is then written by libxml2.
 */
struct vmferry_xml_source *vmferry_rewrite_source_of (xmlDocPtr doc,
                                                      const char *xml,
                                                      size_t len,
                                                      const char *name);

/* DOC as text: spliced into its source when there is one.  The caller
 * frees it.
 */
char *vmferry_rewrite_doc_text (const struct vmferry_xml_source *src,
                                xmlDocPtr doc);

#endif
