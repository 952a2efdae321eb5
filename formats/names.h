/* vmferry: names from untrusted input that become parts of paths.
 *
 * A stream, a resume state file or a domain XML can name files, a domain
 * or a UUID that the importer turns into paths below a directory it
 * chose.  Every such name is checked here, and only here, before it is
 * used: a name that passes can never leave the directory it is put in
 * (no '/', no "." or "..") and never hides control characters from the
 * admin reading a message or a listing.
 */
#ifndef VMFERRY_NAMES_H
#define VMFERRY_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* Longest component accepted (NAME_MAX on the file systems in use). */
#define VMFERRY_NAME_MAX 255
/* Most components in a relative path (TPM state: "tpm2/tpm2-00.permall"). */
#define VMFERRY_NAME_MAX_PARTS 8

/* vmferry_name_component flags */
#define VMFERRY_NAME_HIDDEN_OK 0x1   /* may start with '.' (not "." or "..") */

/* S[0..LEN) is one path component: 1 to VMFERRY_NAME_MAX bytes, not "."
 * or "..", no '/', no NUL, no control character (0x00-0x1f, 0x7f).
 * Unless VMFERRY_NAME_HIDDEN_OK, it does not start with '.' either, so
 * it cannot collide with the importer's own hidden temporary and state
 * files.
 */
bool vmferry_name_component (const char *s, size_t len, unsigned flags);

/* NUL-terminated S is one component (as above). */
bool vmferry_name_ok (const char *s, unsigned flags);

/* S is a relative path of 1 to MAX_PARTS components, each one that
 * vmferry_name_component accepts with FLAGS, separated by single '/'s (no
 * leading, trailing or doubled '/').
 */
bool vmferry_name_relpath_ok (const char *s, unsigned max_parts,
                              unsigned flags);

/* S is a UUID in canonical form: 36 characters, lower-case hex digits
 * with dashes at 8, 13, 18, 23 (what libvirt prints and what names a
 * domain's TPM state directory).
 */
bool vmferry_name_uuid_ok (const char *s);

#endif
