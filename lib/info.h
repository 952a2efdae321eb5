/* vmferry: describe and verify a stream (vmferry-info). */
#ifndef VMFERRY_INFO_H
#define VMFERRY_INFO_H

#include <stdbool.h>
#include <stdio.h>

/* The "format" member of vmferry-info --json: its layout's version. */
#define VMFERRY_INFO_JSON_FORMAT "vmferry-info/1"

/* Read the stream on FD (NAME for messages) to its end and print what it
 * holds to OUT, as text or as one JSON object.  Record checksums and the
 * stream's structure are always checked; with VERIFY every data record is
 * also decompressed and every file's digest recomputed.  Returns 0, or -1
 * with the error set naming the first problem.
 */
int vmferry_info (int fd, const char *name, bool json, bool verify, FILE *out);

/* The same reading and checks as vmferry_info, then the domain XML the
 * stream carries, as stored (byte for byte), to OUT.  With ESCAPE (for
 * a terminal), every line is printed as vmferry_text_escape shows it.
 * Nothing is printed unless the whole stream passed.
 */
int vmferry_info_xml (int fd, const char *name, bool verify, bool escape,
                      FILE *out);

#endif
