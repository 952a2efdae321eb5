/* Write the seed corpora of the fuzz harnesses that vmferry's own API can
 * make: streams (the stream writer), resume state files and answers (the
 * resume module), domain XML.  tests/fuzz/make-seeds.sh runs it and adds
 * the qcow2 images; tests/fuzz/seeds/README says why each seed exists.
 *
 *   make_seeds OUTDIR      (writes OUTDIR/fuzz_stream/..., ...)
 *
 * The output is deterministic (no time, no random token), so that
 * regenerating the seeds changes them only when the format changes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "error.h"
#include "manifest.h"
#include "resume.h"
#include "stream.h"

static const char *outdir;

static void
die (const char *what)
{
  fprintf (stderr, "make_seeds: %s: %s\n", what, vmferry_get_error ());
  exit (EXIT_FAILURE);
}

static void
die_errno (const char *what)
{
  fprintf (stderr, "make_seeds: %s: %s\n", what, strerror (errno));
  exit (EXIT_FAILURE);
}

/* Create OUTDIR/SUB/NAME for writing; returns the fd. */
static int
create (const char *sub, const char *name)
{
  char path[4096];
  int fd;

  snprintf (path, sizeof path, "%s/%s", outdir, sub);
  if (mkdir (path, 0755) < 0 && errno != EEXIST)
    die_errno (path);
  snprintf (path, sizeof path, "%s/%s/%s", outdir, sub, name);
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    die_errno (path);
  return fd;
}

static void
write_seed (const char *sub, const char *name, const void *buf, size_t len)
{
  int fd = create (sub, name);

  if (write (fd, buf, len) != (ssize_t) len || close (fd) < 0)
    die_errno (name);
}

/* ---------------------------------------------------------------- XML */

static const char xml_uefi[] =
  "<domain type='kvm'>\n"
  "  <name>web01</name>\n"
  "  <uuid>6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e</uuid>\n"
  "  <memory unit='KiB'>131072</memory>\n"
  "  <vcpu>1</vcpu>\n"
  "  <os>\n"
  "    <type arch='x86_64' machine='q35'>hvm</type>\n"
  "    <loader readonly='yes' type='pflash'>"
  "/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\n"
  "    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>"
  "/var/lib/libvirt/qemu/nvram/web01_VARS.fd</nvram>\n"
  "  </os>\n"
  "  <features><acpi/></features>\n"
  "  <devices>\n"
  "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
  "    <disk type='file' device='disk'>\n"
  "      <driver name='qemu' type='raw'/>\n"
  "      <source file='/var/lib/libvirt/images/web01.img'/>\n"
  "      <target dev='vda' bus='virtio'/>\n"
  "    </disk>\n"
  "    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>\n"
  "  </devices>\n"
  "</domain>\n";

static const char xml_chain[] =
  "<domain type='qemu'>\n"
  "  <name>db-2</name>\n"
  "  <uuid>0b7e3c1a5d2f4e6a8b9c0d1e2f3a4b5c</uuid>\n"
  "  <memory>262144</memory>\n"
  "  <os><type>hvm</type></os>\n"
  "  <devices>\n"
  "    <disk type='file' device='disk'>\n"
  "      <driver name='qemu' type='qcow2'/>\n"
  "      <source file='/srv/vm/db-2.qcow2'/>\n"
  "      <backingStore type='file'>\n"
  "        <format type='qcow2'/>\n"
  "        <source file='/srv/vm/base.qcow2'/>\n"
  "        <backingStore type='file'>\n"
  "          <format type='raw'/>\n"
  "          <source file='/srv/vm/base.raw'/>\n"
  "          <backingStore/>\n"
  "        </backingStore>\n"
  "      </backingStore>\n"
  "      <target dev='vda' bus='virtio'/>\n"
  "    </disk>\n"
  "    <disk type='block' device='disk'>\n"
  "      <driver name='qemu' type='raw'/>\n"
  "      <source dev='/dev/vg0/db-2-data'/>\n"
  "      <target dev='vdb' bus='virtio'/>\n"
  "    </disk>\n"
  "    <disk type='block' device='lun'>\n"
  "      <source dev='/dev/sdc'/>\n"
  "      <target dev='sda' bus='scsi'/>\n"
  "    </disk>\n"
  "    <disk type='file' device='cdrom'>\n"
  "      <source file='/srv/iso/install.iso'/>\n"
  "      <target dev='hdc' bus='sata'/>\n"
  "      <readonly/>\n"
  "    </disk>\n"
  "    <disk type='file' device='disk'>\n"
  "      <source file='/srv/vm/shared.img'/>\n"
  "      <target dev='vdc' bus='virtio'/>\n"
  "      <shareable/>\n"
  "    </disk>\n"
  "    <disk type='volume' device='disk'>\n"
  "      <driver name='qemu' type='qcow2'/>\n"
  "      <source pool='default' volume='db-2-logs.qcow2'/>\n"
  "      <target dev='vdd' bus='virtio'/>\n"
  "    </disk>\n"
  "  </devices>\n"
  "</domain>\n";

static const char xml_tpm_file[] =
  "<domain type='kvm'>\n"
  "  <name>fw</name>\n"
  "  <os firmware='efi'>\n"
  "    <nvram format='qcow2'>"
  "/var/lib/libvirt/qemu/nvram/fw_VARS.qcow2</nvram>\n"
  "  </os>\n"
  "  <devices>\n"
  "    <tpm model='tpm-tis'>\n"
  "      <backend type='emulator' version='2.0'>\n"
  "        <source type='file' path='/var/lib/libvirt/swtpm/fw.permall'/>\n"
  "      </backend>\n"
  "    </tpm>\n"
  "  </devices>\n"
  "</domain>\n";

static const char xml_minimal[] = "<domain type='qemu'><name>a</name></domain>";

static void
domain_seeds (void)
{
  write_seed ("fuzz_domain", "uefi-tpm.xml", xml_uefi, strlen (xml_uefi));
  write_seed ("fuzz_domain", "disks-chain.xml", xml_chain, strlen (xml_chain));
  write_seed ("fuzz_domain", "tpm-file-nvram.xml", xml_tpm_file,
              strlen (xml_tpm_file));
  write_seed ("fuzz_domain", "minimal.xml", xml_minimal, strlen (xml_minimal));
}

/* ------------------------------------------------------------- streams */

/* One file of a stream: its size and its DATA/ZERO pieces. */
struct piece {
  char kind;                    /* 'c': DATA, zstd; 'r': DATA, raw; 'z': ZERO */
  uint64_t offset, length;
  unsigned char fill;           /* byte pattern seed of DATA */
};

struct seed_file {
  uint64_t size;
  const struct piece *pieces;
  size_t n;
};

static void
fill (unsigned char *buf, size_t len, unsigned char seed, uint64_t offset)
{
  /* Compressible but not all one byte. */
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char) (seed + ((offset + i) / 512) % 7);
}

/* Write FILE's records as file INDEX; RESUME_FROM: leave out the
 * pieces below it (a resumed stream).
 */
static void
write_file (struct vmferry_stream_writer *w, struct vmferry_compressor *c,
            uint32_t index, const struct seed_file *f, uint64_t resume_from)
{
  struct vmferry_digest *d = vmferry_digest_new ();
  unsigned char digest[VMFERRY_DIGEST_SIZE];

  if (d == NULL || vmferry_stream_write_file_begin (w, index, f->size) < 0)
    die ("file begin");
  for (size_t i = 0; i < f->n; i++) {
    const struct piece *p = &f->pieces[i];
    unsigned char *buf, *z;
    size_t zlen = 0, cap;

    if (p->kind == 'z') {
      if (p->offset >= resume_from &&
          vmferry_stream_write_zero (w, index, p->offset, p->length) < 0)
        die ("zero");
      continue;
    }
    buf = malloc (p->length);
    cap = vmferry_zstd_bound (p->length);
    z = malloc (cap);
    if (buf == NULL || z == NULL)
      die_errno ("malloc");
    fill (buf, p->length, p->fill, p->offset);
    if (vmferry_digest_update (d, p->offset, buf, p->length) < 0)
      die ("digest");
    if (p->offset >= resume_from) {
      if (p->kind == 'c' &&
          vmferry_compress (c, buf, p->length, z, cap, &zlen) == 1) {
        if (vmferry_stream_write_data (w, index, p->offset, p->length,
                                       VMFERRY_REC_F_ZSTD, z, zlen) < 0)
          die ("data");
      }
      else if (vmferry_stream_write_data (w, index, p->offset, p->length, 0,
                                          buf, p->length) < 0)
        die ("data");
    }
    free (buf);
    free (z);
  }
  vmferry_digest_final (d, digest);
  vmferry_digest_free (d);
  if (vmferry_stream_write_file_end (w, index, digest) < 0)
    die ("file end");
}

#define BLK VMFERRY_BLOCK_SIZE

static const struct piece disk_pieces[] = {
  { 'c', 0, BLK, 0x40 },
  { 'z', BLK, 2 * BLK, 0 },
  { 'c', 4 * BLK, 2 * BLK, 0x61 },
  { 'r', 6 * BLK, 100, 0x7a },           /* the short last block, raw */
};
static const struct seed_file disk = { 6 * BLK + 100, disk_pieces, 4 };

static const struct piece nvram_pieces[] = {
  { 'c', 0, BLK, 0x10 },
  { 'c', 8 * BLK, 4096, 0x20 },
};
static const struct seed_file nvram = { 8 * BLK + 4096, nvram_pieces, 2 };

static const char manifest_fmt[] =
  "{\"format\":\"vmferry-manifest\",\"version\":1,\"tool\":\"vmferry 0.1.0\","
  "\"created\":\"2024-05-01T12:00:00Z\","
  "\"source\":{\"host\":\"src.example\",\"uri\":\"qemu:///system\"},"
  "\"domain\":{\"name\":\"web01\","
  "\"uuid\":\"6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e\"},"
  "\"files\":[{\"index\":0,\"role\":\"disk\",\"name\":\"web01.img\","
  "\"source_path\":\"/var/lib/libvirt/images/web01.img\",\"target\":\"vda\","
  "\"format\":\"raw\",\"size\":%llu,\"virtual_size\":%llu,\"allocated\":327680,"
  "\"readonly\":false,"
  "\"source_identity\":\"ino:1234 mtime:1714564800.5 size:%llu\"}"
  "%s],\"totals\":{\"size\":%llu,\"allocated\":393216}}";

static const char manifest_nvram_fmt[] =
  ",{\"index\":1,\"role\":\"nvram\",\"name\":\"web01_VARS.fd\","
  "\"source_path\":\"/var/lib/libvirt/qemu/nvram/web01_VARS.fd\","
  "\"target\":null,"
  "\"format\":\"raw\",\"size\":%llu,\"virtual_size\":%llu,\"allocated\":69632,"
  "\"readonly\":false,"
  "\"source_identity\":\"ino:1240 mtime:1714564801.25 size:%llu\"}";

static char *
manifest (bool with_nvram)
{
  char nv[1024] = "";
  char *m;
  unsigned long long ds = disk.size, ns = nvram.size;

  if (with_nvram)
    snprintf (nv, sizeof nv, manifest_nvram_fmt, ns, ns, ns);
  if (asprintf (&m, manifest_fmt, ds, ds, ds, nv,
                ds + (with_nvram ? ns : 0)) < 0)
    die_errno ("asprintf");
  return m;
}

static struct vmferry_stream_writer *
writer (const char *name, int *fd_rtn)
{
  struct vmferry_stream_writer *w;

  *fd_rtn = create ("fuzz_stream", name);
  w = vmferry_stream_writer_new (*fd_rtn, name);
  if (w == NULL)
    die (name);
  return w;
}

static void
finish (struct vmferry_stream_writer *w, int fd, uint32_t nr_files)
{
  if (vmferry_stream_write_end (w, nr_files) < 0)
    die ("end");
  vmferry_stream_writer_free (w);
  if (close (fd) < 0)
    die_errno ("close");
}

/* A record of a type this version does not know, which a reader skips. */
static void
skippable (struct vmferry_stream_writer *w)
{
  struct vmferry_record rec = {
    .type = 100, .flags = VMFERRY_REC_F_SKIPPABLE, .payload_len = 5,
  };

  if (vmferry_stream_write_record (w, &rec, "later") < 0)
    die ("skippable record");
}

/* The domain XML as one zstd frame (F_ZSTD). */
static void
compressed_xml (struct vmferry_stream_writer *w, struct vmferry_compressor *c,
                const char *xml)
{
  size_t len = strlen (xml), cap = vmferry_zstd_bound (len), zlen = 0;
  unsigned char *z = malloc (cap);
  struct vmferry_record rec = { .type = VMFERRY_REC_DOMAIN_XML,
                                .flags = VMFERRY_REC_F_ZSTD };

  if (z == NULL)
    die_errno ("malloc");
  if (vmferry_compress (c, xml, len, z, cap, &zlen) != 1)
    die ("compress the XML");
  rec.payload_len = zlen;
  if (vmferry_stream_write_record (w, &rec, z) < 0)
    die ("xml");
  free (z);
}

static void
stream_seeds (void)
{
  struct vmferry_compressor *c = vmferry_compressor_new (3);
  struct vmferry_stream_writer *w;
  unsigned char token[VMFERRY_RESUME_TOKEN_SIZE];
  char *m;
  int fd;

  if (c == NULL)
    die ("compressor");

  /* One raw disk: zstd and raw DATA, ZERO, holes, a short last block. */
  w = writer ("one-disk.vmf", &fd);
  m = manifest (false);
  if (vmferry_stream_write_header (w) < 0 ||
      vmferry_stream_write_manifest (w, m) < 0 ||
      vmferry_stream_write_xml (w, xml_minimal) < 0)
    die ("one-disk");
  write_file (w, c, 0, &disk, 0);
  finish (w, fd, 1);
  free (m);

  /* A disk and an NVRAM file, the XML compressed, a skippable record. */
  w = writer ("disk-nvram.vmf", &fd);
  m = manifest (true);
  if (vmferry_stream_write_header (w) < 0 ||
      vmferry_stream_write_manifest (w, m) < 0)
    die ("disk-nvram");
  compressed_xml (w, c, xml_uefi);
  skippable (w);
  write_file (w, c, 0, &disk, 0);
  write_file (w, c, 1, &nvram, 0);
  finish (w, fd, 2);
  free (m);

  /* A resumed stream: the RESUME feature and its token, the first
   * pieces left out.
   */
  for (size_t i = 0; i < sizeof token; i++)
    token[i] = (unsigned char) (0xa0 + i);
  w = writer ("resumed.vmf", &fd);
  m = manifest (false);
  if (vmferry_stream_write_header_ex (w, VMFERRY_FEATURE_RESUME, 0, token,
                                      sizeof token) < 0 ||
      vmferry_stream_write_manifest (w, m) < 0 ||
      vmferry_stream_write_xml (w, xml_uefi) < 0)
    die ("resumed");
  write_file (w, c, 0, &disk, 4 * BLK);
  finish (w, fd, 1);
  free (m);

  /* No files at all. */
  w = writer ("no-files.vmf", &fd);
  if (vmferry_stream_write_header (w) < 0 ||
      vmferry_stream_write_manifest (w, "{\"format\":\"vmferry-manifest\","
                                     "\"version\":1,\"files\":[]}") < 0 ||
      vmferry_stream_write_xml (w, xml_minimal) < 0)
    die ("no-files");
  finish (w, fd, 0);

  vmferry_compressor_free (c);
}

/* -------------------------------------------------------------- resume */

static void
resume_seeds (void)
{
  struct vmferry_resume_file files[2] = {
    { .name = (char *) "web01.img", .tmp = (char *) ".web01.img.vmferry-a1B2c3",
      .size = disk.size, .offset = 4 * BLK, .nr_claims = 2,
      .claims = { { 5 * BLK, { 1, 2, 3 } }, { disk.size, { 4, 5, 6 } } } },
    { .name = (char *) "web01_VARS.fd",
      .tmp = (char *) ".web01_VARS.fd.vmferry-Zz9y8X",
      .size = nvram.size, .offset = VMFERRY_RESUME_COMPLETE },
  };
  struct vmferry_resume_state st = {
    .name = (char *) "web01",
    .tpm_tmp = (char *) ".6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e.vmferry-Qw3rTy",
    .tpm_in_swtpm = true,
    .nr_files = 2, .files = files,
  };
  char *state, *answer, *m;
  struct vmferry_manifest *pm;
  char written[8192];
  ssize_t n;
  int fd;

  for (size_t i = 0; i < sizeof st.token; i++)
    st.token[i] = (unsigned char) (0xa0 + i);
  m = manifest (true);
  if (vmferry_manifest_parse (m, strlen (m), NULL, &pm) < 0 ||
      vmferry_resume_stream_id (pm, st.stream_id) != 1)
    die ("stream id");
  vmferry_manifest_free (pm);

  /* The state file as the importer saves it. */
  state = vmferry_resume_text (&st);
  if (state == NULL)
    die ("state");
  write_seed ("fuzz_resume", "state.json", state, strlen (state));

  /* The same import killed while it placed its files (the journal): both
   * complete, the disk replacing an older one, the NVRAM changed after it
   * was verified, the domain defined under a temporary name, an older
   * definition renamed aside.
   */
  {
    struct vmferry_resume_state pl = st;
    struct vmferry_resume_file pf[2];
    char *text;

    memcpy (pf, files, sizeof pf);
    pf[0].offset = VMFERRY_RESUME_COMPLETE;
    pf[0].nr_claims = 0;
    pf[0].final = (char *) "web01.img";
    pf[0].dev = 65024;
    pf[0].ino = 131;
    pf[0].replace = true;
    pf[1].final = (char *) "web01_VARS.fd";
    pf[1].dev = 65024;
    pf[1].ino = 132;
    pf[1].changed = true;
    memset (pf[1].stream_digest, 0x11, 16);
    memset (pf[1].local_digest, 0x22, 16);
    pl.files = pf;
    pl.phase = VMFERRY_RESUME_PLACE;
    pl.tpm_final = (char *) "6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e";
    pl.tpm_dev = 65024;
    pl.tpm_ino = 133;
    pl.tpm_replace = true;
    pl.define = true;
    pl.uuid = (char *) "6f0c9a4e-1c8e-4d7c-9a53-2f5f1c0d2b1e";
    pl.define_tmp = (char *) "web01.vmferry-new-Ab12Cd";
    pl.aside = (char *) "web01.vmferry-old-Ef34Gh";
    text = vmferry_resume_text (&pl);
    if (text == NULL)
      die ("placing state");
    write_seed ("fuzz_resume", "placing.json", text, strlen (text));
    free (text);
  }

  /* The state, a NUL, then the .written file with claims (see
   * fuzz_resume.c for the layout).
   */
  fd = memfd_create ("written", 0);
  if (fd < 0 || vmferry_resume_write_claims (fd, "written", &st) < 0)
    die ("claims");
  n = pread (fd, written, sizeof written, 0);
  if (n <= 0)
    die_errno ("pread");
  close (fd);
  fd = create ("fuzz_resume", "state-written.json");
  if (write (fd, state, strlen (state) + 1) != (ssize_t) strlen (state) + 1 ||
      write (fd, written, n) != n || close (fd) < 0)
    die_errno ("state-written.json");
  free (state);

  /* The answers a sender gets, and a manifest (stream identity). */
  answer = vmferry_resume_answer (&st, NULL);
  if (answer == NULL)
    die ("answer");
  write_seed ("fuzz_resume", "answer.json", answer, strlen (answer));
  free (answer);
  answer = vmferry_resume_answer (NULL, "no resumable state for web01");
  if (answer == NULL)
    die ("answer");
  write_seed ("fuzz_resume", "answer-none.json", answer, strlen (answer));
  free (answer);
  write_seed ("fuzz_resume", "manifest.json", m, strlen (m));
  free (m);
}

int
main (int argc, char *argv[])
{
  if (argc != 2) {
    fprintf (stderr, "usage: make_seeds OUTDIR\n");
    return EXIT_FAILURE;
  }
  outdir = argv[1];
  if (mkdir (outdir, 0755) < 0 && errno != EEXIST)
    die_errno (outdir);
  domain_seeds ();
  stream_seeds ();
  resume_seeds ();
  return EXIT_SUCCESS;
}
