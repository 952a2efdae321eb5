/* Unit tests for lib/resume.c: stream identity, the state file (round
 * trip, damage, forgery), the query answer.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "error.h"
#include "manifest.h"
#include "resume.h"
#include "target.h"
#include "unit.h"

#define MANIFEST(name, ident)                                            \
  "{\"format\":\"vmferry-manifest\",\"version\":1,"                     \
  "\"domain\":{\"name\":\"" name "\","                                   \
  "\"uuid\":\"4dea22b3-1d52-d8f3-2516-782e98ab3fa0\"},"                     \
  "\"files\":[{\"index\":0,\"role\":\"disk\",\"name\":\"a.img\","          \
  "\"source_path\":\"/v/a.img\",\"format\":\"raw\",\"size\":131072,"      \
  "\"allocated\":4096" ident "}]}"

/* The identity of manifest text M, read by formats' parser. */
static int
id_of (const char *m, char id[VMFERRY_RESUME_ID_LEN + 1])
{
  struct vmferry_manifest *pm;
  int r;

  ck_assert_msg (vmferry_manifest_parse (m, strlen (m), NULL, &pm) == 0,
                 "%s", vmferry_get_error ());
  r = vmferry_resume_stream_id (pm, id);
  vmferry_manifest_free (pm);
  return r;
}

START_TEST (test_stream_id)
{
  char a[33], b[33], c[33], d[33];
  const char *m1 = MANIFEST ("web01", ",\"source_identity\":\"ino:1 mtime:5.0 size:131072\"");

  ck_assert_int_eq (id_of (m1, a), 1);
  /* Stable, and "created" or other members do not matter. */
  ck_assert_int_eq (id_of (m1, b), 1);
  ck_assert_str_eq (a, b);
  /* A changed source file, another domain: another id. */
  ck_assert_int_eq (id_of (MANIFEST ("web01", ",\"source_identity\":\"ino:1 mtime:6.0 size:131072\""), c), 1);
  ck_assert_str_ne (a, c);
  ck_assert_int_eq (id_of (MANIFEST ("web02", ",\"source_identity\":\"ino:1 mtime:5.0 size:131072\""), d), 1);
  ck_assert_str_ne (a, d);
  /* An older writer's manifest: not resumable. */
  ck_assert_int_eq (id_of (MANIFEST ("web01", ""), d), 0);
  /* Members that are not the identity's do not change it. */
  ck_assert_int_eq (id_of (MANIFEST ("web01", ",\"source_identity\":\"ino:1 mtime:5.0 size:131072\",\"readonly\":true"), d), 1);
  ck_assert_str_eq (a, d);
}
END_TEST

/* The test's directory, open as a target. */
static struct vmferry_target T;

static char *
tmpdir (void)
{
  char *t = strdup ("/tmp/check_resume.XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (t));
  ck_assert_int_eq (vmferry_target_open (&T, t, false, 0), 0);
  return t;
}

/* DIR/FILE, for the test's own look at the files. */
static char *
in_dir (const char *dir, const char *file)
{
  char *p;
  ck_assert_int_ne (asprintf (&p, "%s/%s", dir, file), -1);
  return p;
}

static void
fill (struct vmferry_resume_state *st)
{
  memset (st, 0, sizeof *st);
  st->name = strdup ("web01");
  memset (st->stream_id, 'a', VMFERRY_RESUME_ID_LEN);
  ck_assert_int_eq (vmferry_resume_new_token (st->token), 0);
  st->nr_files = 2;
  st->files = calloc (2, sizeof *st->files);
  st->files[0].name = strdup ("a.img");
  st->files[0].tmp = strdup (".a.img.vmferry-Ab12Cd");
  st->files[0].size = 1 << 20;
  st->files[0].offset = VMFERRY_RESUME_COMPLETE;
  st->files[1].name = strdup ("b.img");
  st->files[1].tmp = strdup (".b.img.vmferry-xYz789");
  st->files[1].size = 1 << 22;
  st->files[1].offset = 1 << 21;
  st->files[1].device = strdup ("/dev/loop7");
  st->files[1].volume = strdup ("vg0/web01.img");
  st->files[1].volume_made = true;
}

START_TEST (test_round_trip)
{
  char *dir = tmpdir (), *file = vmferry_resume_name ("web01", "json");
  char *path = in_dir (dir, file);
  struct vmferry_resume_state st, got;

  fill (&st);
  ck_assert_int_eq (vmferry_resume_load (&T, file, &got), 0);      /* none yet */
  ck_assert_int_eq (vmferry_resume_save (&T, file, &st), 0);
  ck_assert_int_eq (vmferry_resume_load (&T, file, &got), 1);
  ck_assert_str_eq (got.name, "web01");
  ck_assert_str_eq (got.stream_id, st.stream_id);
  ck_assert_mem_eq (got.token, st.token, VMFERRY_RESUME_TOKEN_LEN);
  ck_assert_uint_eq (got.nr_files, 2);
  ck_assert_uint_eq (got.files[0].offset, VMFERRY_RESUME_COMPLETE);
  ck_assert_uint_eq (got.files[1].offset, 1 << 21);
  ck_assert_str_eq (got.files[1].tmp, ".b.img.vmferry-xYz789");
  ck_assert_ptr_null (got.files[0].device);
  ck_assert_str_eq (got.files[1].device, "/dev/loop7");
  ck_assert_ptr_null (got.files[0].volume);
  ck_assert_str_eq (got.files[1].volume, "vg0/web01.img");
  ck_assert (got.files[1].volume_made);
  ck_assert (!got.files[0].volume_made);
  vmferry_resume_state_free (&got);
  unlink (path);
  rmdir (dir);
  vmferry_resume_state_free (&st);
  free (path);
  free (file);
  vmferry_target_close (&T);
  free (dir);
}
END_TEST

/* Write TEXT as a state file with a correct check line. */
static void
write_checked (const char *path, const char *json)
{
  FILE *fp = fopen (path, "w");
  char *all;

  ck_assert_int_ne (asprintf (&all, "%s\n", json), -1);
  fprintf (fp, "%scheck %016llx\n", all, (unsigned long long) XXH3_64bits (all, strlen (all)));
  fclose (fp);
  free (all);
}

START_TEST (test_damaged_and_forged)
{
  char *dir = tmpdir (), *file = vmferry_resume_name ("web01", "json");
  char *path = in_dir (dir, file);
  struct vmferry_resume_state st, got;
  static const char *const forged[] = {
    /* a temporary file outside the directory */
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","
    "\"tmp\":\"../../etc/passwd\",\"size\":1,\"offset\":0}]}",
    /* another file's temporary name */
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","
    "\"tmp\":\".b.img.vmferry-AAAAAA\",\"size\":1,\"offset\":0}]}",
    /* an offset past the size, and one not block-aligned */
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","
    "\"tmp\":\".a.img.vmferry-AAAAAA\",\"size\":65536,\"offset\":131072}]}",
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","
    "\"tmp\":\".a.img.vmferry-AAAAAA\",\"size\":1048576,\"offset\":1000}]}",
    /* a TPM directory elsewhere */
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"tpm_tmp\":\"/etc\",\"files\":[]}",
    /* progress without a file */
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","
    "\"size\":1048576,\"offset\":65536}]}",
    /* a device that is not an absolute path, or that carries a newline
     * into the message that names it
     */
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","
    "\"device\":\"loop0\",\"size\":1048576,\"offset\":0}]}",
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","
    "\"device\":\"/dev/loop0\\nrm -rf /\",\"size\":1048576,\"offset\":0}]}",
    /* a volume that is not POOL/NAME of two plain names (the import
     * deletes what it names), or whose "made" is not a boolean
     */
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","
    "\"volume\":\"vg0/../x\",\"size\":1048576,\"offset\":0}]}",
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","
    "\"volume\":\"web01.img\",\"size\":1048576,\"offset\":0}]}",
    "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\",\"token\":\"00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","
    "\"volume\":\"vg0/a.img\",\"volume_made\":1,\"size\":1048576,\"offset\":0}]}",
  };
  FILE *fp;
  long size;
  char *buf;

  /* Damage: every single-byte change is caught by the check line. */
  fill (&st);
  ck_assert_int_eq (vmferry_resume_save (&T, file, &st), 0);
  fp = fopen (path, "r+");
  fseek (fp, 0, SEEK_END);
  size = ftell (fp);
  buf = malloc (size);
  fseek (fp, 0, SEEK_SET);
  ck_assert_int_eq (fread (buf, 1, size, fp), size);
  for (long i = 0; i < size - 1; i += 7) {
    char c = buf[i] ^ 0x04;
    fseek (fp, i, SEEK_SET);
    fputc (c, fp);
    fflush (fp);
    ck_assert_msg (vmferry_resume_load (&T, file, &got) == -1, "byte %ld changed: accepted", i);
    fseek (fp, i, SEEK_SET);
    fputc (buf[i], fp);
    fflush (fp);
  }
  ck_assert_int_eq (vmferry_resume_load (&T, file, &got), 1);
  vmferry_resume_state_free (&got);
  fclose (fp);
  free (buf);

  /* Forged with a valid check line: refused on content. */
  for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
    write_checked (path, forged[i]);
    ck_assert_msg (vmferry_resume_load (&T, file, &got) == -1, "forged %zu accepted", i);
    ck_assert_str_ne (vmferry_get_error (), "");
  }
  unlink (path);
  rmdir (dir);
  vmferry_resume_state_free (&st);
  free (path);
  free (file);
  vmferry_target_close (&T);
  free (dir);
}
END_TEST

/* The .written claims: saved beside the state, taken only where they fit
 * it (same token, same temporary file, meeting the durable offset at a
 * boundary), never written into the durable state, refused when
 * malformed.
 */
START_TEST (test_written_claims)
{
  char *dir = tmpdir (), *file = vmferry_resume_name ("web01", "json");
  char *path = in_dir (dir, file);
  char *wfile = vmferry_resume_name ("web01", "written"), *wpath = in_dir (dir, wfile);
  struct vmferry_resume_state st, got;
  const uint64_t base = 1 << 21, mid = (1 << 21) + (1 << 19), end = (1 << 21) + (1 << 20);
  int wfd;
  /* A state of a.img (1 MiB) with FIELDS; Z: a digest. */
#define CLAIMED(fields)                                                  \
  "{\"format\":\"vmferry-resume\",\"name\":\"web01\",\"stream_id\":\""     \
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"token\":\""                       \
  "00000000000000000000000000000000\",\"files\":[{\"name\":\"a.img\","      \
  "\"tmp\":\".a.img.vmferry-AAAAAA\",\"size\":1048576," fields "}]}"
#define Z "\"00000000000000000000000000000000\""
  static const char *const bad[] = {
    /* a claim not beyond the offset */
    CLAIMED ("\"offset\":131072,\"claims\":[{\"end\":131072,\"digest\":" Z "}]"),
    /* past the size */
    CLAIMED ("\"offset\":0,\"claims\":[{\"end\":2097152,\"digest\":" Z "}]"),
    /* not block-aligned */
    CLAIMED ("\"offset\":0,\"claims\":[{\"end\":1000,\"digest\":" Z "}]"),
    /* not in order */
    CLAIMED ("\"offset\":0,\"claims\":[{\"end\":131072,\"digest\":" Z "},"
             "{\"end\":65536,\"digest\":" Z "}]"),
    /* no digest */
    CLAIMED ("\"offset\":0,\"claims\":[{\"end\":65536}]"),
    /* too many */
    CLAIMED ("\"offset\":0,\"claims\":[{\"end\":65536,\"digest\":" Z "},"
             "{\"end\":131072,\"digest\":" Z "},{\"end\":196608,\"digest\":" Z "},"
             "{\"end\":262144,\"digest\":" Z "},{\"end\":327680,\"digest\":" Z "}]"),
    /* a complete file */
    CLAIMED ("\"complete\":true,\"claims\":[{\"end\":65536,\"digest\":" Z "}]"),
  };
#undef CLAIMED
#undef Z

  fill (&st);
  /* No .written file: no claims. */
  ck_assert_uint_eq (vmferry_resume_load_written (&T, wfile, &st), 0);
  /* Two claims on b.img: [base, mid) and [mid, end). */
  st.files[1].nr_claims = 2;
  st.files[1].claims[0].end = mid;
  memset (st.files[1].claims[0].digest, 0xab, 16);
  st.files[1].claims[1].end = end;
  memset (st.files[1].claims[1].digest, 0xcd, 16);
  ck_assert_int_eq (vmferry_resume_save (&T, file, &st), 0);
  /* Rewritten in place: a longer text first, then the claims; the old
   * tail must not survive.
   */
  wfd = open (wpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_ge (wfd, 0);
  free (st.files[0].tmp);
  st.files[0].tmp = strdup (".a.img.vmferry-Ab12Cd.but-a-much-longer-name-than-the-real-one");
  ck_assert_int_eq (vmferry_resume_write_claims (wfd, wpath, &st), 0);
  free (st.files[0].tmp);
  st.files[0].tmp = strdup (".a.img.vmferry-Ab12Cd");
  ck_assert_int_eq (vmferry_resume_write_claims (wfd, wpath, &st), 0);
  close (wfd);

  /* The durable state does not carry claims. */
  ck_assert_int_eq (vmferry_resume_load (&T, file, &got), 1);
  ck_assert_uint_eq (got.files[1].nr_claims, 0);
  ck_assert_uint_eq (vmferry_resume_load_written (&T, wfile, &got), 1);
  ck_assert_uint_eq (got.files[0].nr_claims, 0);
  ck_assert_uint_eq (got.files[1].nr_claims, 2);
  ck_assert_uint_eq (got.files[1].claims[0].end, mid);
  ck_assert_uint_eq (got.files[1].claims[1].end, end);
  for (int i = 0; i < 16; i++) {
    ck_assert_uint_eq (got.files[1].claims[0].digest[i], 0xab);
    ck_assert_uint_eq (got.files[1].claims[1].digest[i], 0xcd);
  }

  /* The state was saved with the first range durable after the claims
   * were written: the second one still counts.
   */
  got.files[1].offset = mid;
  ck_assert_uint_eq (vmferry_resume_load_written (&T, wfile, &got), 1);
  ck_assert_uint_eq (got.files[1].nr_claims, 1);
  ck_assert_uint_eq (got.files[1].claims[0].end, end);
  ck_assert_uint_eq (got.files[1].claims[0].digest[0], 0xcd);
  /* Durable up to the end of the claims, between two boundaries, below
   * the claims' start: none.
   */
  got.files[1].offset = end;
  ck_assert_uint_eq (vmferry_resume_load_written (&T, wfile, &got), 0);
  got.files[1].offset = mid + 65536;
  ck_assert_uint_eq (vmferry_resume_load_written (&T, wfile, &got), 0);
  got.files[1].offset = base - 65536;
  ck_assert_uint_eq (vmferry_resume_load_written (&T, wfile, &got), 0);
  ck_assert_uint_eq (got.files[1].nr_claims, 0);
  got.files[1].offset = base;
  /* Another token (a run took over since), another temporary file. */
  got.token[0] ^= 1;
  ck_assert_uint_eq (vmferry_resume_load_written (&T, wfile, &got), 0);
  got.token[0] ^= 1;
  got.files[1].tmp[strlen (got.files[1].tmp) - 1] = 'Q';
  ck_assert_uint_eq (vmferry_resume_load_written (&T, wfile, &got), 0);
  vmferry_resume_state_free (&got);

  /* A damaged .written file is no claim, and no error. */
  vmferry_set_error ("earlier");
  {
    FILE *fp = fopen (wpath, "r+");
    fseek (fp, 20, SEEK_SET);
    fputc ('#', fp);
    fclose (fp);
  }
  ck_assert_int_eq (vmferry_resume_load (&T, file, &got), 1);
  ck_assert_uint_eq (vmferry_resume_load_written (&T, wfile, &got), 0);
  ck_assert_str_eq (vmferry_get_error (), "earlier");
  vmferry_resume_state_free (&got);

  /* Malformed claims with a valid check line. */
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_checked (wpath, bad[i]);
    ck_assert_msg (vmferry_resume_load (&T, wfile, &got) == -1, "bad claim %zu accepted", i);
  }
  /* discard removes the .written file too. */
  vmferry_resume_discard (&T, NULL, &st);
  ck_assert_int_ne (access (path, F_OK), 0);
  ck_assert_int_ne (access (wpath, F_OK), 0);
  rmdir (dir);
  vmferry_resume_state_free (&st);
  free (path);
  free (wpath);
  free (file);
  free (wfile);
  vmferry_target_close (&T);
  free (dir);
}
END_TEST

START_TEST (test_names)
{
  ck_assert (vmferry_resume_tmp_name_ok ("a.img", ".a.img.vmferry-Ab12Cd"));
  ck_assert (!vmferry_resume_tmp_name_ok ("a.img", ".a.img.vmferry-Ab12C"));
  ck_assert (!vmferry_resume_tmp_name_ok ("a.img", ".a.img.vmferry-Ab/2Cd"));
  ck_assert (!vmferry_resume_tmp_name_ok ("a.img", "a.img"));
  ck_assert (!vmferry_resume_tmp_name_ok ("../x", ".../x.vmferry-Ab12Cd"));
  ck_assert (!vmferry_resume_tmp_name_ok ("a/b", ".a/b.vmferry-Ab12Cd"));
  /* a converted copy (import --format) and its way back */
  ck_assert (vmferry_resume_tmp_name_ok ("a.img",
                                         ".a.img.vmferry-Ab12Cd.converted"));
  ck_assert (!vmferry_resume_tmp_name_ok ("a.img",
                                          ".a.img.vmferry-Ab12Cd.convertedx"));
  ck_assert (!vmferry_resume_tmp_name_ok ("a.img",
                                          ".a.img.vmferry-Ab12.converted"));
  ck_assert (!vmferry_resume_tmp_name_ok ("a.img", ".a.img.vmferry-A"));
  {
    char *c = vmferry_resume_converted_name (".a.img.vmferry-Ab12Cd");
    char *b = c ? vmferry_resume_converted_name (c) : NULL;
    ck_assert_str_eq (c, ".a.img.vmferry-Ab12Cd.converted");
    ck_assert_str_eq (b, ".a.img.vmferry-Ab12Cd");
    free (c);
    free (b);
  }
  ck_assert_ptr_null (vmferry_resume_name ("../x", "json"));
  ck_assert_ptr_null (vmferry_resume_name ("..", "json"));
  ck_assert_ptr_null (vmferry_resume_name ("a/b", "json"));
  ck_assert_ptr_null (vmferry_resume_name ("esc\x1b", "json"));
}
END_TEST

START_TEST (test_answer)
{
  struct vmferry_resume_state st;
  struct vmferry_resume_point pt;
  char *a;

  fill (&st);
  a = vmferry_resume_answer (&st, NULL);
  ck_assert_int_eq (vmferry_resume_parse_answer (a, strlen (a), &pt), 0);
  ck_assert (pt.resume);
  ck_assert_mem_eq (pt.token, st.token, VMFERRY_RESUME_TOKEN_LEN);
  ck_assert_uint_eq (pt.nr_files, 2);
  ck_assert_uint_eq (pt.offsets[0], VMFERRY_RESUME_COMPLETE);
  ck_assert_uint_eq (pt.offsets[1], 1 << 21);
  vmferry_resume_point_free (&pt);
  free (a);
  a = vmferry_resume_answer (NULL, "no state");
  ck_assert_int_eq (vmferry_resume_parse_answer (a, strlen (a), &pt), 0);
  ck_assert (!pt.resume);
  ck_assert_str_eq (pt.reason, "no state");
  vmferry_resume_point_free (&pt);
  free (a);
  ck_assert_int_eq (vmferry_resume_parse_answer ("{}", 2, &pt), -1);
  ck_assert_int_eq (vmferry_resume_parse_answer ("{\"format\":\"vmferry-resume-answer\","
                                                 "\"resume\":true,\"token\":\"zz\"}", 60, &pt), -1);
  vmferry_resume_state_free (&st);
}
END_TEST

VMFERRY_UNIT_MAIN ("resume",
                   test_stream_id,
                   test_round_trip,
                   test_damaged_and_forged,
                   test_written_claims,
                   test_names,
                   test_answer);
