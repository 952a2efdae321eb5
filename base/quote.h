/* vmferry: quoting for a POSIX shell.
 *
 * A remote command runs under the remote user's shell, so every
 * argument that comes from a user or a stream (paths, names) is quoted.
 */
#ifndef VMFERRY_QUOTE_H
#define VMFERRY_QUOTE_H

/* Quote ARG for a POSIX shell ('...'), appending it to *BUF (realloc'd;
 * NULL starts a new string), after a space unless *BUF is empty.
 */
int vmferry_shell_quote_append (char **buf, const char *arg);

#endif
