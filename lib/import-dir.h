/* vmferry: a directory made by hand, read as a stream (vmferry-import
 * --from-dir).
 *
 * An admin's copy of a domain is often a directory: `virsh dumpxml`
 * beside copied images, NVRAM and TPM state, or what `tar -xSf` of a
 * vmferry archive gives.  This turns such a directory into the records
 * of a native stream (stream.h), as formats/tar.c does for an archive,
 * so that the importer reads it through the same reader, validator,
 * placement and define as any stream: there is one importer.
 *
 * What the directory must hold, and what is refused:
 *
 * - one domain XML: the NAME given, else the only *.xml in the
 *   directory, else .vmferry/domain.xml (an unpacked vmferry archive);
 * - every file the XML names (disks, NVRAM) by its base name in the
 *   directory, wherever the XML's path points (a path with a ".."
 *   component is refused: its base name is not what it names); a disk
 *   missing from the directory is an error naming both paths; an NVRAM
 *   file missing is not carried (libvirt makes it from its template, as
 *   after an export of a domain that never ran);
 * - TPM state (an emulated TPM in the XML) as libvirt keeps it below
 *   its per-UUID directory: the regular files below tpm2/ and tpm1.2/;
 * - a qcow2's backing file beside it, found by the base name of the
 *   name in its header (a copied overlay still names the base where it
 *   was); a protocol, a ".." or a base name the directory does not have
 *   is outside the directory and refused;
 * - each name through the one check of names from input (names.h); each
 *   file opened relative to the directory, never through a symbolic
 *   link, a regular file with one link only (a FIFO, a device node, a
 *   socket, a hard link to somewhere else are refused before they are
 *   opened for reading);
 * - formats as the XML says (raw when it says nothing): a qcow2 is read
 *   through the strict header parser (formats/qcow2.h) and refused when
 *   it is not one; a raw image is never probed.
 *
 * There is no manifest to verify against: the FILE_END digests are
 * computed from the bytes as they are read, so they prove that the copy
 * is what was read, not what a sender had.
 */
#ifndef VMFERRY_IMPORT_DIR_H
#define VMFERRY_IMPORT_DIR_H

#include "stream.h"
#include "tar.h"

struct vmferry_dir_reader;

/* Plan directory DIR (XML_NAME: the domain XML's name in it, or NULL to
 * find it as above) and return a stream reader of its records, or NULL
 * with the error set ("DIR: disk vda: ...").  Everything above that can
 * be refused is refused here, before any record is read.  *DIR_RTN is
 * set to the directory's reader: free it after the stream reader.
 */
struct vmferry_stream_reader *
vmferry_dir_open (const char *dir, const char *xml_name,
                  struct vmferry_dir_reader **dir_rtn);
void vmferry_dir_reader_free (struct vmferry_dir_reader *d);

/* Open the input on FD (NAME for messages) as a stream, as
 * vmferry_input_open (tar.h) does: a native stream or a vmferry archive
 * (*TAR_RTN), else a tar made by hand, planned as a directory is, above,
 * with the archive's entries for its files (*DIR_RTN; tar.h says how it
 * is read, twice, and why a pipe is refused).  Its directory is the one
 * holding its only *.xml, at the archive's top or one directory down.
 * At most one of *TAR_RTN and *DIR_RTN is set: free it after the stream
 * reader.
 */
struct vmferry_stream_reader *
vmferry_archive_open (int fd, const char *name,
                      struct vmferry_tar_reader **tar_rtn,
                      struct vmferry_dir_reader **dir_rtn);
/* The same, once the caller has taken FD's first GOT bytes, PEEK
 * (vmferry_input_peek).
 */
struct vmferry_stream_reader *
vmferry_archive_open_peeked (int fd, const char *name,
                             const unsigned char *peek, size_t got,
                             struct vmferry_tar_reader **tar_rtn,
                             struct vmferry_dir_reader **dir_rtn);

/* After the stream reader failed: if reading the directory was the
 * cause, make the error its own message, without the record number and
 * byte offset of records that exist only in this process.  D may be
 * NULL.
 */
void vmferry_dir_reader_explain (const struct vmferry_dir_reader *d);

#endif
