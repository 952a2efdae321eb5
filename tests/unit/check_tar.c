/* Unit tests for formats/tar.c: a stream's records written as an archive
 * (plain and zstd) read back through vmferry_input_open as the same
 * content and digests, holes kept out of the archive; a native stream
 * still read through the same call; data outside a file's map refused;
 * a tar made by hand indexed ("./" dropped, the XML kept whole, entries
 * read again out of order), and refused named twice or from a pipe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "stream.h"
#include "tar.h"
#include "unit.h"

#define UUID "00000000-0000-4000-8000-000000000001"
#define BS VMFERRY_BLOCK_SIZE
#define F0_SIZE ((uint64_t) 64 * 1024 * 1024 + 1000)
#define F1_SIZE 4096
#define MID ((uint64_t) 32 * 1024 * 1024)

static const char manifest[] =
  "{\"format\": \"vmferry-manifest\", \"version\": 1,"
  " \"domain\": {\"name\": \"web01\", \"uuid\": \"" UUID "\"},"
  " \"files\": ["
  "{\"index\": 0, \"role\": \"disk\", \"name\": \"web01.img\","
  " \"source_path\": \"/i/web01.img\", \"format\": \"raw\","
  " \"size\": 67109864, \"allocated\": 0},"
  "{\"index\": 1, \"role\": \"nvram\", \"name\": \"web01_VARS.fd\","
  " \"source_path\": \"/n/web01_VARS.fd\", \"format\": \"raw\","
  " \"size\": 4096, \"allocated\": 0}]}";

static const unsigned char digest0[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
static const unsigned char digest1[16] = { 0xff, 0xee };

/* The archive of web01 in a memfd (ZSTD: compressed), positioned at 0.
 * With OUTSIDE, file 0 gets a DATA record its map does not hold, and
 * the return is the writing's result instead of the fd.
 */
static int
write_archive (bool zstd, bool outside)
{
  int fd = memfd_create ("tar", 0);
  struct vmferry_tar_writer *t = vmferry_tar_writer_new (fd, "t.tar", zstd,
                                                         1, 2);
  struct vmferry_stream_writer *w;
  static unsigned char a[BS], b[2 * BS], c[1000];
  const struct vmferry_tar_extent map0[] = {
    { 0, BS }, { MID, 2 * BS }, { F0_SIZE - 1000, 1000 },
  };
  int r;

  ck_assert_ptr_nonnull (t);
  w = vmferry_stream_writer_new_fn (vmferry_tar_write_record, t, "t.tar");
  ck_assert_ptr_nonnull (w);
  memset (a, 0x11, sizeof a);
  memset (b, 0x22, BS);
  memset (c, 0x33, sizeof c);
  ck_assert_int_eq (vmferry_stream_write_header (w), 0);
  ck_assert_int_eq (vmferry_stream_write_manifest (w, manifest), 0);
  ck_assert_int_eq (vmferry_stream_write_xml (w, "<domain/>"), 0);
  ck_assert_int_eq (vmferry_tar_writer_map (t, 0, map0, 3), 0);
  ck_assert_int_eq (vmferry_stream_write_file_begin (w, 0, F0_SIZE), 0);
  ck_assert_int_eq (vmferry_stream_write_data (w, 0, 0, BS, 0, a, BS), 0);
  if (outside) {
    r = vmferry_stream_write_data (w, 0, 16 * BS, BS, 0, a, BS);
    vmferry_stream_writer_free (w);
    vmferry_tar_writer_free (t);
    close (fd);
    return r;
  }
  ck_assert_int_eq (vmferry_stream_write_data (w, 0, MID, BS, 0, b, BS), 0);
  /* Written zeros inside the map: stored as zeros. */
  ck_assert_int_eq (vmferry_stream_write_zero (w, 0, MID + BS, BS), 0);
  ck_assert_int_eq (vmferry_stream_write_data (w, 0, F0_SIZE - 1000, 1000, 0,
                                               c, 1000), 0);
  ck_assert_int_eq (vmferry_stream_write_file_end (w, 0, digest0), 0);
  /* All hole. */
  ck_assert_int_eq (vmferry_tar_writer_map (t, 1, NULL, 0), 0);
  ck_assert_int_eq (vmferry_stream_write_file_begin (w, 1, F1_SIZE), 0);
  ck_assert_int_eq (vmferry_stream_write_file_end (w, 1, digest1), 0);
  ck_assert_int_eq (vmferry_stream_write_end (w, 2), 0);
  vmferry_stream_writer_free (w);
  vmferry_tar_writer_free (t);
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  return fd;
}

/* Read the archive on FD back as records; check content and digests. */
static void
read_back (int fd)
{
  struct vmferry_tar_reader *tar;
  struct vmferry_stream_reader *rd = vmferry_input_open (fd, "t.tar", &tar);
  unsigned char *f0 = calloc (1, F0_SIZE);
  struct vmferry_record rec;
  unsigned ends = 0;
  bool seen_end = false;
  int r;

  ck_assert_ptr_nonnull (rd);
  ck_assert_ptr_nonnull (tar);
  ck_assert_ptr_nonnull (f0);
  while ((r = vmferry_stream_read_record (rd, &rec)) == 1) {
    switch (rec.type) {
    case VMFERRY_REC_MANIFEST: {
      char *m = vmferry_record_metadata (&rec, rec.payload, NULL);
      ck_assert_str_eq (m, manifest);
      free (m);
      break;
    }
    case VMFERRY_REC_DATA:
      ck_assert_uint_eq (rec.file, 0);
      ck_assert_uint_le (rec.offset + rec.length, F0_SIZE);
      ck_assert_int_eq (vmferry_record_data (&rec, rec.payload,
                                             f0 + rec.offset), 0);
      break;
    case VMFERRY_REC_FILE_END: {
      unsigned char d[16];
      ck_assert_int_eq (vmferry_record_file_end (&rec, rec.payload, d), 0);
      ck_assert_mem_eq (d, ends ? digest1 : digest0, 16);
      ends++;
      break;
    }
    case VMFERRY_REC_END:
      seen_end = true;
      break;
    }
  }
  ck_assert_msg (r == 0, "read: %s", vmferry_get_error ());
  ck_assert (seen_end);
  ck_assert_uint_eq (ends, 2);
  for (uint64_t i = 0; i < F0_SIZE; i++) {
    unsigned char want = i < BS ? 0x11
                         : i >= MID && i < MID + BS ? 0x22
                         : i >= F0_SIZE - 1000 ? 0x33 : 0;
    if (f0[i] != want)
      ck_abort_msg ("byte %llu is %#x, expected %#x", (unsigned long long) i,
                    f0[i], want);
  }
  free (f0);
  vmferry_stream_reader_free (rd);
  vmferry_tar_reader_free (tar);
}

START_TEST (test_plain_roundtrip)
{
  int fd = write_archive (false, false);
  struct stat st;

  /* 64 MiB of file, 193 KiB of data: the holes are not in the archive. */
  ck_assert_int_eq (fstat (fd, &st), 0);
  ck_assert_msg (st.st_size < 1024 * 1024, "archive of %lld bytes",
                 (long long) st.st_size);
  read_back (fd);
  close (fd);
}
END_TEST

START_TEST (test_zstd_roundtrip)
{
  int fd = write_archive (true, false);
  unsigned char magic[4];

  ck_assert_int_eq (pread (fd, magic, 4, 0), 4);
  ck_assert_mem_eq (magic, "\x28\xb5\x2f\xfd", 4);
  read_back (fd);
  close (fd);
}
END_TEST

START_TEST (test_outside_map)
{
  ck_assert_int_eq (write_archive (false, true), -1);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "outside the file's map"));
}
END_TEST

/* A native stream goes through vmferry_input_open untouched: the bytes
 * it looked at are given back.
 */
START_TEST (test_native_stream)
{
  int fd = memfd_create ("vmf", 0);
  struct vmferry_stream_writer *w = vmferry_stream_writer_new (fd, "t.vmf");
  struct vmferry_stream_reader *rd;
  struct vmferry_tar_reader *tar = (void *) 1;
  struct vmferry_record rec;
  unsigned n = 0;
  int r;

  ck_assert_int_eq (vmferry_stream_write_header (w), 0);
  ck_assert_int_eq (vmferry_stream_write_manifest (w, manifest), 0);
  vmferry_stream_writer_free (w);
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  rd = vmferry_input_open (fd, "t.vmf", &tar);
  ck_assert_ptr_nonnull (rd);
  ck_assert_ptr_null (tar);
  while ((r = vmferry_stream_read_record (rd, &rec)) == 1)
    n++;
  /* Two whole records, then the stream is cut (no END). */
  ck_assert_int_eq (r, -1);
  ck_assert_uint_eq (n, 2);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "truncated"));
  vmferry_stream_reader_free (rd);
  close (fd);
}
END_TEST

START_TEST (test_neither)
{
  int fd = memfd_create ("noise", 0);
  struct vmferry_tar_reader *tar;

  ck_assert_int_eq (write (fd, "hello, this is not a tar file", 29), 29);
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  ck_assert_ptr_null (vmferry_input_open (fd, "noise", &tar));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "neither a vmferry stream nor a tar"));
  close (fd);
}
END_TEST

/* ---- a tar made by hand ---- */

/* Append a ustar entry NAME of TYPE ('0' file, '5' directory) holding
 * BODY[0..LEN) to FD.
 */
static void
ustar_entry (int fd, const char *name, char type, const char *body,
             size_t len)
{
  unsigned char h[512] = { 0 }, pad[512] = { 0 };
  unsigned sum = 0;

  snprintf ((char *) h, 100, "%s", name);
  snprintf ((char *) h + 100, 8, "%07o", type == '5' ? 0755 : 0600);
  snprintf ((char *) h + 108, 8, "%07o", 0);
  snprintf ((char *) h + 116, 8, "%07o", 0);
  snprintf ((char *) h + 124, 12, "%011zo", len);
  snprintf ((char *) h + 136, 12, "%011o", 0);
  memset (h + 148, ' ', 8);
  h[156] = type;
  memcpy (h + 257, "ustar", 6);
  memcpy (h + 263, "00", 2);
  for (size_t i = 0; i < 512; i++)
    sum += h[i];
  snprintf ((char *) h + 148, 8, "%06o", sum);
  ck_assert_int_eq (write (fd, h, 512), 512);
  if (len) {
    ck_assert_int_eq (write (fd, body, len), (ssize_t) len);
    ck_assert_int_eq (write (fd, pad, (512 - len % 512) % 512),
                      (ssize_t) ((512 - len % 512) % 512));
  }
}

/* The hand-made archive: the disk before the XML, "./" names. */
static int
hand_tar (bool twice)
{
  int fd = memfd_create ("hand", 0);
  unsigned char end[1024] = { 0 };

  ck_assert_int_ge (fd, 0);
  ustar_entry (fd, "./", '5', NULL, 0);
  ustar_entry (fd, "./vm/", '5', NULL, 0);
  ustar_entry (fd, "./vm/disk.img", '0', "DISKDATA", 8);
  ustar_entry (fd, "./vm/vm.xml", '0', "<domain/>", 9);
  if (twice)
    ustar_entry (fd, "vm/disk.img", '0', "X", 1);
  ck_assert_int_eq (write (fd, end, sizeof end), (ssize_t) sizeof end);
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  return fd;
}

START_TEST (test_hand_index)
{
  int fd = hand_tar (false);
  struct vmferry_tar_reader *tar;
  struct vmferry_tar_plain *p;
  const struct vmferry_tar_plain_entry *e;
  const void *buf;
  size_t len;
  uint64_t off;

  /* Not a vmferry archive: refused, unless the caller reads the index. */
  ck_assert_ptr_null (vmferry_input_open (fd, "hand", &tar));
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "the first entry must be"));
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  ck_assert_ptr_null (vmferry_input_open_plain (fd, "hand", &tar, &p));
  ck_assert_ptr_null (tar);
  ck_assert_ptr_nonnull (p);
  /* "./" itself is not an entry; the names lose their "./". */
  ck_assert_uint_eq (vmferry_tar_plain_count (p), 3);
  e = vmferry_tar_plain_entry (p, 0);
  ck_assert_str_eq (e->name, "vm");
  ck_assert (e->dir);
  ck_assert_int_eq (vmferry_tar_plain_find (p, "vm/disk.img"), 1);
  e = vmferry_tar_plain_entry (p, 2);
  ck_assert_str_eq (e->name, "vm/vm.xml");
  ck_assert_uint_eq (e->head_len, 9);   /* all of an XML */
  ck_assert_int_eq (memcmp (e->head, "<domain/>", 9), 0);
  ck_assert_uint_eq (vmferry_tar_plain_entry (p, 1)->head_len, 4);
  /* The XML's data, then the disk's, behind it: read again. */
  ck_assert_int_eq (vmferry_tar_plain_seek (p, 2), 0);
  ck_assert_int_eq (vmferry_tar_plain_read (p, &buf, &len, &off), 1);
  ck_assert_uint_eq (len, 9);
  ck_assert_int_eq (vmferry_tar_plain_seek (p, 1), 0);
  ck_assert_int_eq (vmferry_tar_plain_read (p, &buf, &len, &off), 1);
  ck_assert_uint_eq (off, 0);
  ck_assert_uint_eq (len, 8);
  ck_assert_int_eq (memcmp (buf, "DISKDATA", 8), 0);
  ck_assert_int_eq (vmferry_tar_plain_read (p, &buf, &len, &off), 0);
  vmferry_tar_plain_free (p);
  close (fd);
}
END_TEST

START_TEST (test_hand_refused)
{
  int fd = hand_tar (true), pfd[2];
  struct vmferry_tar_reader *tar;
  struct vmferry_tar_plain *p;
  char buf[8192];
  ssize_t n;

  ck_assert_ptr_null (vmferry_input_open_plain (fd, "hand", &tar, &p));
  ck_assert_ptr_null (p);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (), "is there twice"));
  /* From a pipe: it cannot be read twice. */
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  ck_assert_int_eq (pipe (pfd), 0);
  n = read (fd, buf, sizeof buf);
  ck_assert_int_gt (n, 0);
  ck_assert_int_eq (write (pfd[1], buf, n), n);
  close (pfd[1]);
  ck_assert_ptr_null (vmferry_input_open_plain (pfd[0], "pipe", &tar, &p));
  ck_assert_ptr_null (p);
  ck_assert_ptr_nonnull (strstr (vmferry_get_error (),
                                 "cannot be read again"));
  close (pfd[0]);
  close (fd);
}
END_TEST

/* GNU tar's first entry for `tar -cf vm.tar DIR`: DIR/, however long. */
START_TEST (test_hand_first_dir)
{
  int fd = memfd_create ("hand", 0);
  unsigned char end[1024] = { 0 };
  struct vmferry_tar_reader *tar;
  struct vmferry_tar_plain *p;

  ustar_entry (fd, "a-rather-long-directory-name/", '5', NULL, 0);
  ustar_entry (fd, "a-rather-long-directory-name/vm.xml", '0', "<d/>", 4);
  ck_assert_int_eq (write (fd, end, sizeof end), (ssize_t) sizeof end);
  ck_assert_int_eq (lseek (fd, 0, SEEK_SET), 0);
  ck_assert_ptr_null (vmferry_input_open_plain (fd, "hand", &tar, &p));
  ck_assert_msg (p != NULL, "%s", vmferry_get_error ());
  ck_assert_uint_eq (vmferry_tar_plain_count (p), 2);
  ck_assert_str_eq (vmferry_tar_plain_entry (p, 0)->name,
                    "a-rather-long-directory-name");
  vmferry_tar_plain_free (p);
  close (fd);
}
END_TEST

VMFERRY_UNIT_MAIN ("tar", test_plain_roundtrip, test_zstd_roundtrip,
                   test_outside_map, test_native_stream, test_neither,
                   test_hand_index, test_hand_refused, test_hand_first_dir)
