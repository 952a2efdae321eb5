/* vmferry: what a domain definition makes the host open, run or hand
 * over, and whether an import may define it.
 *
 * A domain XML from a stream is untrusted.  libvirt acts on every path
 * in it as root: it chowns and relabels disks and kernels, copies NVRAM
 * templates, executes emulators and interface scripts, binds sockets and
 * hands host devices to QEMU.  So after an import every host resource the
 * definition names must be one the stream carried into the target, or
 * one the user allowed by name (--allow-path); everything else is a
 * finding and the domain is not defined.
 *
 * vmferry_domain_refs lists the references; vmferry_refs_check judges
 * them.  Both are pure (no libvirt calls, no file access), so the policy
 * is tested by unit tests; vmferry_refs_host_emulators is the one thin
 * libvirt wrapper.
 *
 * Deliberately not references (they name no host file, device or
 * program, or libvirt confines them itself): guest-side names (disk and
 * filesystem <target>, interface <target dev>, <boot dev>, aliases);
 * networks, bridges and direct (macvtap) interfaces, checked by name by
 * vmferry-check's network and bridge checks; network endpoints of
 * chardevs, interfaces (udp, mcast, server, client) and graphics listen
 * addresses; libvirt secrets (<auth>, <encryption>: a secret only opens
 * the resource it is attached to, which is itself a reference or a
 * carried image); <resource><partition> (a cgroup below libvirt's own
 * machine slice); the TPM emulator's state (libvirt derives its place
 * from the UUID; it travels as the stream's TPM files); LXC-only <init>
 * and <initdir> (paths inside the container); output-only attributes
 * libvirt ignores on define (a pty's path, <console tty>); a
 * per-device <seclabel> (it can only stop relabelling).
 */
#ifndef VMFERRY_REFS_H
#define VMFERRY_REFS_H

#include <stdbool.h>
#include <stddef.h>

#include <libvirt/libvirt.h>
#include <libxml/tree.h>

enum vmferry_ref_kind {
  VMFERRY_REF_DISK = 1,         /* disk, backing store, data store or
                                 * mirror: source file, block device or
                                 * directory */
  VMFERRY_REF_NETWORK_DISK,     /* "PROTOCOL:NAME" ("rbd:pool/img") */
  VMFERRY_REF_VOLUME,           /* "volume:POOL/NAME" */
  VMFERRY_REF_LOADER,           /* os/loader */
  VMFERRY_REF_NVRAM,            /* os/nvram, os/varstore */
  VMFERRY_REF_NVRAM_TEMPLATE,   /* os/nvram/@template, varstore template */
  VMFERRY_REF_BOOT_FILE,        /* kernel, initrd, dtb, shim, ACPI table,
                                 * option ROM, fw_cfg file: QEMU reads it
                                 * into the guest */
  VMFERRY_REF_EMULATOR,         /* devices/emulator: libvirt runs it */
  VMFERRY_REF_EXECUTABLE,       /* interface scripts, virtiofsd binary,
                                 * Xen bootloader: libvirt runs it */
  VMFERRY_REF_FILESYSTEM,       /* <filesystem> source */
  VMFERRY_REF_CHARDEV,          /* a chardev's file, pipe or device */
  VMFERRY_REF_OUTPUT_FILE,      /* written by QEMU or a helper: chardev
                                 * log, passt log, audio file, pstore */
  VMFERRY_REF_SOCKET,           /* a UNIX socket connected to or bound */
  VMFERRY_REF_DEVICE_NODE,      /* a /dev node handed to QEMU: evdev,
                                 * TPM, vDPA, render node, audio, tap,
                                 * blkiotune */
  VMFERRY_REF_ENTROPY_SOURCE,   /* an RNG's backend device */
  VMFERRY_REF_CONFIG_FILE,      /* read by a backend for itself: RBD
                                 * config, SSH known hosts and key, NSS
                                 * database, X authority */
  VMFERRY_REF_TPM_STATE,        /* a TPM emulator's state, when the XML
                                 * places it */
  VMFERRY_REF_HOST_DEVICE,      /* "pci:DDDD:BB:SS.F", "usb:...",
                                 * "scsi:...", "scsi_host:...",
                                 * "mdev:UUID", "netdev:NAME" */
  VMFERRY_REF_MEMORY_FILE,      /* nvdimm / virtio-pmem backing file */
  VMFERRY_REF_SHMEM,            /* "shmem:NAME": host shared memory */
  VMFERRY_REF_LEASE,            /* a lock manager's lease file */
  VMFERRY_REF_SECLABEL,         /* "seclabel:MODEL:TYPE[:LABEL]": a
                                 * domain confined other than libvirt's
                                 * dynamic default */
  VMFERRY_REF_QEMU_COMMANDLINE, /* "qemu-commandline": any element in
                                 * libvirt's qemu namespace */
  VMFERRY_REF_DRIVER_NAMESPACE, /* "namespace:URI": another libvirt
                                 * driver's namespace (lxc, xen, bhyve) */
  VMFERRY_REF_OTHER,            /* a path-like attribute or element this
                                 * module has no rule for (a newer libvirt
                                 * element): reported, never ignored */
};

#define VMFERRY_REF_KIND_MAX VMFERRY_REF_OTHER

/* "disk", "network-disk", ...: the kind's name for messages and JSON. */
const char *vmferry_ref_kind_name (int kind);

struct vmferry_ref {
  int kind;                     /* enum vmferry_ref_kind */
  /* A path exactly as the XML has it (is_path), or a resource name in
   * the forms listed above.
   */
  char *value;
  bool is_path;
  /* Where, for people: "disk vdb source", "disk vda backing store 1
   * source", "os/kernel", "serial 0 log file".
   */
  char *where;
  /* Disks, backing and data stores, NVRAM: the format the XML gives
   * (<driver type>, <format type>, nvram/@format), NULL when it gives
   * none.
   */
  char *format;
  /* LOADER: the XML lets QEMU write it (readonly='no', or a pflash
   * loader without readonly='yes').
   */
  bool writable_loader;
  /* The element the value comes from (points into the document), and
   * the attribute (a static string), NULL when it is the element's text.
   */
  xmlNodePtr node;
  const char *attr;
};

/* Every host resource DOC (a parsed domain, vmferry_domain_parse) refers
 * to, in document order within each part (os, devices, the rest).  An
 * empty or missing element or attribute is no reference: libvirt uses
 * its own default there.  Values are not normalised; vmferry_refs_check
 * judges them.  *REFS_RTN (free with vmferry_refs_free) holds *N_RTN
 * entries, possibly zero.  Returns 0, or -1 with the error set (only when
 * memory runs out, or DOC has more than VMFERRY_REFS_MAX references).
 */
#define VMFERRY_REFS_MAX 100000
int vmferry_domain_refs (xmlDocPtr doc, struct vmferry_ref **refs_rtn,
                         size_t *n_rtn);

void vmferry_refs_free (struct vmferry_ref *refs, size_t n);

/* A file the stream carried into the target, as the XML names it when
 * checked: the final path the importer placed it at (or, before the
 * import, the source path the importer will rewrite), or
 * "volume:POOL/NAME".  FORMAT is the stream's format for it ("raw",
 * "qcow2"), or NULL not to compare.
 */
struct vmferry_refs_carried {
  const char *path;
  const char *format;
};

struct vmferry_refs_policy {
  const struct vmferry_refs_carried *carried;
  size_t n_carried;
  /* --allow-path values, as the user gave them (see
   * vmferry_refs_allow_valid).  A path (made absolute and lexically
   * normal first) allows that file and, component by component,
   * everything below it; any other value allows exactly that resource.
   */
  const char *const *allow;
  size_t n_allow;
  /* The host's emulators (vmferry_refs_host_emulators).  With
   * HAVE_EMULATORS false no emulator is known, and one the XML names is
   * a finding unless allowed.
   */
  const char *const *emulators;
  size_t n_emulators;
  bool have_emulators;
};

enum vmferry_ref_reason {
  VMFERRY_REF_NOT_ALLOWED = 1,  /* neither carried nor allowed */
  VMFERRY_REF_NOT_NORMAL,       /* relative, or holds "//", "." or ".." */
  VMFERRY_REF_FORMAT_MISMATCH,  /* carried, but the XML gives another
                                 * format than the stream */
  VMFERRY_REF_WRITABLE_LOADER,  /* system firmware QEMU could write */
  VMFERRY_REF_UNKNOWN_EMULATOR, /* not one of the host's emulators */
};

struct vmferry_ref_finding {
  size_t ref;                   /* index into the references checked */
  int reason;                   /* enum vmferry_ref_reason */
  /* One line naming the element and the value, why, and how to allow
   * it: "disk vdb source /etc/shadow: not carried by the stream and not
   * allowed (if the host's own file is meant: --allow-path /etc/shadow)".
   */
  char *message;
  /* The message's first SUBJECT_LEN bytes are "WHERE VALUE", then ": "
   * and why (for callers that show the subject apart).
   */
  size_t subject_len;
  /* The --allow-path value that accepts it, NULL when none does
   * (NOT_NORMAL and FORMAT_MISMATCH are never allowed).
   */
  char *allow;
};

/* Judge REFS (N of them) under POLICY.  A reference passes when it is
 * carried (its value equals a carried path, and where both give a
 * format, the formats agree); or when it is a normal absolute path (or a
 * resource name) that an --allow-path value allows; or by one of the
 * built-in allowances:
 *   - a loader or NVRAM template below a system firmware directory
 *     (vmferry_refs_firmware_dirs), a loader only when read-only;
 *   - an emulator that is in the host's list;
 *   - an RNG backend on /dev/random, /dev/urandom or /dev/hwrng (what
 *     libvirt itself offers).
 * A path that is relative or holds "//", "/./" or "/../" (or ends in
 * "/", "/." or "/..") is a finding unless carried: it is never
 * normalised to pass.  Every other reference is a finding.
 *
 * *FINDINGS_RTN (free with vmferry_ref_findings_free) holds *N_RTN
 * findings in the order of REFS, possibly zero.  Pure: no file access.
 * Returns 0, or -1 with the error set (memory).
 */
int vmferry_refs_check (const struct vmferry_ref *refs, size_t n,
                        const struct vmferry_refs_policy *policy,
                        struct vmferry_ref_finding **findings_rtn,
                        size_t *n_rtn);

void vmferry_ref_findings_free (struct vmferry_ref_finding *f, size_t n);

/* For the importer, in one call: the references of DOC checked under
 * POLICY.  Returns 0 when nothing is found; -1 with the error set
 * otherwise, naming the first finding and how many there are in all
 * ("domain refers to 3 host resources the stream did not carry: disk
 * vdb source /etc/shadow: ... (and 2 more)").
 */
int vmferry_refs_enforce (xmlDocPtr doc,
                          const struct vmferry_refs_policy *policy);

/* Is VALUE a usable --allow-path value?  An absolute path, or a
 * resource name: "qemu-commandline", or KIND ":" something
 * ("rbd:pool/img", "pci:0000:03:00.0", "volume:default/x.iso").
 * Relative paths and empty values are refused (a relative path would
 * depend on the directory the tool runs in).  Returns 0, or -1 with the
 * error set.
 */
int vmferry_refs_allow_valid (const char *value);

/* Does one of the ALLOW values (N of them, --allow-path) allow VALUE:
 * for a path (IS_PATH), a normal absolute one equal to or below an
 * allowed path; for a resource name, an equal one?  The rule
 * vmferry_refs_check applies, for callers that ask about one value.
 */
bool vmferry_refs_allowed (const char *value, bool is_path,
                           const char *const *allow, size_t n);

/* The directories below which loaders and NVRAM templates are allowed
 * without --allow-path, NULL-terminated.
 */
extern const char *const vmferry_refs_firmware_dirs[];

/* Is PATH absolute and lexically normal: no empty, "." or ".."
 * component, no trailing "/" ("/" itself is normal)?
 */
bool vmferry_path_is_normal (const char *path);

/* PATH made lexically normal: "//" and "/./" collapse, ".." removes the
 * component before it (never above "/"), a trailing "/" goes.  Only for
 * absolute paths the user gave (--allow-path); symlinks are not looked
 * at.  The caller frees the result.  NULL with the error set if PATH is
 * not absolute.
 */
char *vmferry_path_normalise (const char *path);

/* Is PATH equal to DIR or below it, component by component ("/srv/iso"
 * holds "/srv/iso/a" but not "/srv/isos")?  Both must be normal.
 */
bool vmferry_path_within (const char *path, const char *dir);

/* The emulators CONN's host offers (its capabilities: every
 * guest/arch/emulator and guest/arch/domain/emulator), for
 * vmferry_refs_policy.  *EMULATORS_RTN is NULL-terminated (free with
 * vmferry_strv_free).  Returns 0, or -1 with the error set.
 */
int vmferry_refs_host_emulators (virConnectPtr conn, char ***emulators_rtn,
                                 size_t *n_rtn);

#endif
