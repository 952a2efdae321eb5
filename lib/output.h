/* vmferry: where a tool writes a stream.
 *
 * "-" is standard output (refused if it is a terminal).  A path is
 * written under a temporary name beside it, ".NAME.vmferry-XXXXXX", and
 * renamed into place only when the stream is complete and flushed, so
 * an interrupted run never leaves a truncated stream under the name the
 * user asked for, and an existing file of that name is never
 * overwritten.  The file is created mode 0600 less the umask: a stream
 * carries TPM state and disks.
 *
 * What an interrupted run leaves: the temporary file is removed on
 * every signal that ends a process and can be caught, except a fault
 * (vmferry_output_remove_on_signal), and a run killed otherwise
 * (SIGKILL, a fault, a crash of the machine) leaves one that the next
 * run writing the same NAME removes, saying so.  A
 * running export holds a lock (flock) on its temporary file from
 * before the file has its name, so only files no live process holds
 * are removed.
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
/* Remove OUT's temporary file if the process is killed by a signal
 * that can be caught, then die of it as before.  Makes the terminating
 * signals whose action is the default ask to quit (quit.h; an ignored
 * one stays ignored), and a thread removes the file when one does.
 * For one output per process: call it from main() after
 * vmferry_output_open; commit and discard end it.  0, or -1 with the
 * error set.
 */
int vmferry_output_remove_on_signal (const struct vmferry_output *out);

/* Call FN, in the thread that acts on the signal, before the temporary
 * file is removed and the process dies (an export ends its backup job
 * there).  Set it before vmferry_output_remove_on_signal, which then
 * acts on the signals also when the output has no temporary file
 * (standard output).
 */
void vmferry_output_on_signal (void (*fn) (void));
/* Flush and rename into place (no-op for stdout). */
int vmferry_output_commit (struct vmferry_output *out);
/* Remove the temporary file; safe after commit or on a failed open. */
void vmferry_output_discard (struct vmferry_output *out);

#endif
