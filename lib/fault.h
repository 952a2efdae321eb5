/* vmferry: named fault-injection points, for the fault and race tests.
 *
 * The importer (and other long operations) call vmferry_fault ("name") at
 * the moments where a kill or a change of the world around them matters:
 * between writing a file and recording it, between two renames of a
 * placement, before a define.  Unless the environment asks for it, a
 * point does nothing but compare a pointer with NULL.
 *
 *   VMFERRY_FAULT=POINT[:ACTION][@N][,...]
 *       At the Nth time (default: the first) POINT is reached, do ACTION:
 *       kill   SIGKILL this process (the default): nothing is cleaned up,
 *              exactly as a power cut or the OOM killer would leave it;
 *       stop   write "POINT PID\n" to the file VMFERRY_FAULT_NOTIFY names (a
 *              FIFO the test reads) and SIGSTOP this process, so that the
 *              test can change the destination (create a file, define or
 *              start a domain) and SIGCONT it: a race at a known moment,
 *              without sleeps;
 *       fail   the point returns -1 with an error "injected fault at
 *              POINT" (EIO), as a failing system call would.
 *   VMFERRY_FAULT_TRACE=FILE
 *       Append every point reached, one name a line, so a test can list
 *       the points of a run and then fault each in turn.
 *   VMFERRY_FAULT_FILE=FILE
 *       Read the three settings above from FILE (lines NAME=VALUE) when
 *       the process starts: for a process the test cannot give an
 *       environment, such as an import that sshd runs (the test bed's
 *       sshd sets this for host B).
 *
 * These are test hooks: they do nothing an admin could not do with kill(1)
 * at the same moment, and they are documented in CONTRIBUTING.md.
 */
#ifndef VMFERRY_FAULT_H
#define VMFERRY_FAULT_H

/* Returns 0 (go on), or -1 with the error set (ACTION fail). */
int vmferry_fault (const char *point);

#endif
