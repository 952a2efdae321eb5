/* vmferry: where a tool writes a stream.
 *
 * "-" is standard output (refused if it is a terminal).  A path is
 * written under a temporary name beside it and renamed into place only
 * when the stream is complete and flushed, so an interrupted run never
 * leaves a truncated stream under the name the user asked for, and an
 * existing file of that name is never overwritten.
 */
#ifndef VMFERRY_OUTPUT_H
#define VMFERRY_OUTPUT_H

struct vmferry_output {
  int fd;
  char *path;                   /* final name; NULL for stdout */
  char *tmp;                    /* temporary name; NULL for stdout */
  const char *name;             /* for messages */
};

int vmferry_output_open (const char *path, struct vmferry_output *out);
/* Flush and rename into place (no-op for stdout). */
int vmferry_output_commit (struct vmferry_output *out);
/* Remove the temporary file; safe after commit or on a failed open. */
void vmferry_output_discard (struct vmferry_output *out);

#endif
