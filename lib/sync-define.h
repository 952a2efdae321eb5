/* vmferry: the standby's definition on a refresh (vmferry-sync, issue 16).
 *
 * The rewrite rules of the first copy are recorded by the sender as text,
 * one "OPTION VALUE" a line as a map file has them (--rename aside: it
 * names the standby and so picks the record).  A refresh sends the
 * source's domain XML and those rules; the receiver rewrites the XML with
 * them against its own libvirtd, gives the result the standby's identity
 * (name, UUID) and storage (each disk's source and format, by target), and
 * compares it with the standby's definition, both as libvirt writes them
 * for a migration, whitespace aside.  When they differ, the standby is
 * defined again once the data is committed: its disks are the same files
 * before and after (the tops), so it never names a file that is not there.
 */
#ifndef VMFERRY_SYNC_DEFINE_H
#define VMFERRY_SYNC_DEFINE_H

#include <libvirt/libvirt.h>

/* Append the rule OPTION (a long option without its dashes) with VALUE
 * (NULL: none) to *RULES (NULL: empty) as one line.  --rename is not
 * recorded.  Returns 0, or -1 with the error set (a value holding a line
 * break cannot be one line).
 */
int vmferry_sync_rules_add (char **rules, const char *option,
                            const char *value);

/* Append the rules of the map file PATH (already read by
 * vmferry_rewrite_add_map_file, so valid): its lines but comments and
 * blank ones.  Returns 0, or -1 with the error set.
 */
int vmferry_sync_rules_add_file (char **rules, const char *path);

/* The definition the standby DOM (on CONN) gets from the source's XML
 * SRC_XML under RULES (NULL: none).  Returns 0 when the standby's is the
 * same, 1 with *XML_RTN (the caller frees it) when it differs, -1 with
 * the error set when the rules are refused or the source's disks are not
 * the standby's (a disk added or removed: a full copy is needed).
 */
int vmferry_sync_define_prepare (virConnectPtr conn, virDomainPtr dom,
                                 const char *src_xml, const char *rules,
                                 char **xml_rtn);

/* Define XML on CONN (the standby NAME in messages).  Returns 0, or -1
 * with the error set.
 */
int vmferry_sync_define (virConnectPtr conn, const char *name,
                         const char *xml);

#endif
