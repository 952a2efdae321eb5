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

#endif
