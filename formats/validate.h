/* vmferry: what a stream must be beyond its record rules.
 *
 * The stream reader (stream.h) checks each record: checksum, number,
 * order, bounds.  The validator checks what the records say together,
 * which is what every reader of a stream must refuse in the same way
 * (vmferry-import before it writes, vmferry-info --verify before it says
 * "verified"):
 *
 * - the manifest parses (manifest.h: version, types, safe names, ...);
 * - the domain XML is there, at most VMFERRY_MAX_METADATA bytes once
 *   decompressed, without a NUL byte and valid UTF-8 (whether it is good
 *   XML is lib/domain.c's to say);
 * - each FILE_BEGIN is a file of the manifest and its size is the one
 *   the manifest gives;
 * - every file of the manifest is begun and ended exactly once, and
 *   END's count is the number of files in the manifest.
 *
 * Feed it every record the reader returns, in order, then call finish.
 */
#ifndef VMFERRY_VALIDATE_H
#define VMFERRY_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "manifest.h"
#include "stream.h"

struct vmferry_validator;

/* INPUT_NAME starts every message ("web01.vmf: record 3 (file-begin) at
 * byte 1234: ...").  Free with vmferry_validator_free.
 */
struct vmferry_validator *vmferry_validator_new (const char *input_name);
void vmferry_validator_free (struct vmferry_validator *v);

/* Check REC (its payload at rec->payload, as the reader returns it).
 * Returns 0, or -1 with the error set naming the record and the problem.
 * After an error every further call fails.  Records of types this version
 * does not know (skippable ones a reader passed on) are ignored.
 */
int vmferry_validator_record (struct vmferry_validator *v,
                              const struct vmferry_record *rec);

/* The stream ended: END was seen and every file was begun and ended.
 * Returns 0 or -1 with the error set.
 */
int vmferry_validator_finish (struct vmferry_validator *v);

/* What the records held, for the caller to act on; NULL until the record
 * has been validated.  Owned by V, valid until it is freed.
 */
const struct vmferry_stream_header *
vmferry_validator_header (const struct vmferry_validator *v);
const struct vmferry_manifest *
vmferry_validator_manifest (const struct vmferry_validator *v);
/* The texts as decoded (decompressed, NUL-terminated); *LEN_RTN (may be
 * NULL) is the length.
 */
const char *vmferry_validator_manifest_text (const struct vmferry_validator *v,
                                             size_t *len_rtn);
const char *vmferry_validator_xml (const struct vmferry_validator *v,
                                   size_t *len_rtn);

#endif
