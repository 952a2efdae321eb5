/* vmferry: the directory an import writes into, and nothing outside it.
 *
 * An import turns names from a stream, a state file or a domain XML into
 * files.  Every one of those files is reached through a struct
 * vmferry_target: the directory is opened once, and from then on every
 * file below it is opened, created, renamed and removed relative to that
 * directory's fd, one checked component at a time (formats/names.h),
 * without following a symbolic link anywhere.  An existing file is used
 * only if it is a regular file with exactly one link, so a hard link
 * planted at one of the importer's own names cannot make it write to a
 * file elsewhere.
 *
 * Names passed here are relative paths of components that
 * vmferry_name_component accepts with VMFERRY_NAME_HIDDEN_OK (the
 * importer's own temporary and state files start with '.'); a name that
 * does not is refused with EINVAL before any system call.
 */
#ifndef VMFERRY_TARGET_H
#define VMFERRY_TARGET_H

#include <dirent.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

struct vmferry_target {
  int fd;                       /* the directory, O_DIRECTORY */
  char *path;                   /* for messages */
};

/* Open the directory PATH (links in PATH itself are followed: the admin
 * named it) as T.  With CREATE, missing directories of PATH are made with
 * MODE first.  Returns 0, or -1 with the error set ("PATH: not a
 * directory").
 */
int vmferry_target_open (struct vmferry_target *t, const char *path,
                         bool create, mode_t mode);
void vmferry_target_close (struct vmferry_target *t);

/* "T/NAME" for messages and for libvirt (the caller frees), or NULL
 * with the error set.
 */
char *vmferry_target_path (const struct vmferry_target *t, const char *name);

/* Open the existing file NAME below T with FLAGS (O_RDONLY or O_RDWR;
 * O_NOFOLLOW and O_CLOEXEC are added).  It must be a regular file with
 * one link.  Returns the fd, or -1 with the error set and errno kept
 * (ENOENT when it does not exist).
 */
int vmferry_target_open_file (const struct vmferry_target *t, const char *name,
                              int flags);

/* Create the new file NAME below T (O_CREAT | O_EXCL, so never an
 * existing file or link) with FLAGS and MODE; the directories on the way
 * must exist unless MKDIRS, which makes them with mode 0700.  Returns the
 * fd, or -1 with the error set (EEXIST when something is there).
 */
int vmferry_target_create (const struct vmferry_target *t, const char *name,
                           int flags, mode_t mode, bool mkdirs);

/* A new file in T's directory that has no name yet (O_TMPFILE), opened
 * O_RDWR with MODE: a kill before vmferry_target_link leaves nothing.
 * Returns the fd, or -1 with the error set and errno kept (EOPNOTSUPP or
 * EISDIR where the file system cannot: create a named temporary file
 * then).
 */
int vmferry_target_create_unnamed (const struct vmferry_target *t,
                                   mode_t mode);

/* Give the unnamed file FD (vmferry_target_create_unnamed) the name NAME
 * below T; atomically never over an existing one (EEXIST).  Returns 0,
 * or -1 with the error set and errno kept (EOPNOTSUPP: not possible
 * here, as without CAP_DAC_READ_SEARCH and /proc: use a named temporary
 * file).
 */
int vmferry_target_link (const struct vmferry_target *t, int fd,
                         const char *name);

/* lstat NAME below T.  Returns 1 with *ST filled, 0 if it does not
 * exist, -1 with the error set.
 */
int vmferry_target_stat (const struct vmferry_target *t, const char *name,
                         struct stat *st);

/* Remove the file NAME below T; a missing one is fine.  Returns 0, or
 * -1 with the error set.
 */
int vmferry_target_unlink (const struct vmferry_target *t, const char *name);

/* Rename FROM below T to TO below TO_T (the same file system), with
 * renameat2 FLAGS: RENAME_NOREPLACE (fails with EEXIST, atomically, if TO
 * exists) or RENAME_EXCHANGE (swaps the two atomically; both must exist).
 * Returns 0, or -1 with the error set and errno kept.
 */
int vmferry_target_rename (const struct vmferry_target *t, const char *from,
                           const struct vmferry_target *to_t, const char *to,
                           unsigned flags);

/* Make the directory NAME below T (MODE).  Unless EXCLUSIVE, an
 * existing directory is fine.  Returns 0, or -1 with the error set
 * (EEXIST when EXCLUSIVE and something is there).
 */
int vmferry_target_mkdir (const struct vmferry_target *t, const char *name,
                          mode_t mode, bool exclusive);

/* Remove NAME below T and, if it is a directory, everything below it,
 * never following a link and never leaving T.  A missing NAME is fine.
 * Returns how many entries were removed, or -1 with the error set.
 */
int vmferry_target_remove_tree (const struct vmferry_target *t,
                                const char *name);

/* A directory stream of T itself, with its own position (a dup of T's
 * fd would share one with every other dup, and a second listing would
 * start at the end of the first).  NULL with the error set.  Close it
 * with closedir.
 */
DIR *vmferry_target_opendir (const struct vmferry_target *t);

/* fsync the directory itself, so renames and new names in it are
 * durable.  Returns 0, or -1 with the error set.
 */
int vmferry_target_sync (const struct vmferry_target *t);

/* A name for a new temporary file: PREFIX followed by six random letters
 * and digits (the caller frees), or NULL with the error set.  It is only
 * a name: create it with vmferry_target_create, which fails if it exists.
 */
char *vmferry_target_random_name (const char *prefix);

#endif
