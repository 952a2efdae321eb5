/* Unit tests for lib/guest-fixup.c's edits (no appliance): fstab's
 * first field, root= of the boot loader, MACs on lines that name one,
 * host names.
 */
#include "config.h"

#include "unit.h"

#include <string.h>

#include "guest-fixup.h"

static const struct vmferry_fixup_disk disks[] = {
  { "/x/a.img", "raw", "vda", "sda" },
  { "/x/b.img", "raw", "vdb", "sdb" },
  { "/x/c.img", "raw", "vdc", "vdc" },          /* unchanged */
};
static const struct vmferry_fixup_mac macs[] = {
  { "52:54:00:12:34:56", "52:54:00:ab:cd:ef" },
};
static const struct vmferry_fixup_opts opts = {
  .disks = disks, .nr_disks = 3, .macs = macs, .nr_macs = 1,
};

typedef char *(*edit_fn) (const char *, const struct vmferry_fixup_opts *,
                          const char *, struct vmferry_fixup_change **,
                          size_t *);

/* EDIT on IN gives OUT with NR changes, the first one FIRST. */
static void
check_edit (edit_fn edit, const char *in, const char *out, size_t nr,
            const char *first)
{
  struct vmferry_fixup_change *c = NULL;
  size_t n = 0;
  char *r = edit (in, &opts, "/etc/f", &c, &n);

  ck_assert_ptr_nonnull (r);
  ck_assert_msg (strcmp (r, out) == 0, "got '%s' for '%s'", r, in);
  ck_assert_msg (n == nr, "%zu changes for '%s'", n, in);
  if (first) {
    ck_assert_str_eq (c[0].what, first);
    ck_assert_str_eq (c[0].file, "/etc/f");
  }
  vmferry_fixup_changes_free (c, n);
  free (r);
}

START_TEST (test_fstab)
{
  check_edit (vmferry_fixup_fstab_text,
              "/dev/vda1 / ext4 errors=remount-ro 0 1\n"
              "UUID=6f1c /data xfs defaults 0 2\n",
              "/dev/sda1 / ext4 errors=remount-ro 0 1\n"
              "UUID=6f1c /data xfs defaults 0 2\n", 1,
              "/dev/vda1 -> /dev/sda1");
  /* Comments, other disks, a name that only starts like one, a device
   * in another field, LABEL=, no final newline: all kept.
   */
  check_edit (vmferry_fixup_fstab_text,
              "# /dev/vda1 was here\n\n  /dev/vdb\t/srv ext4 0 0\n"
              "/dev/vdc1 /c ext4\n/dev/vdaa1 /x ext4\n"
              "tmpfs /dev/vda1 tmpfs\nLABEL=root / ext4",
              "# /dev/vda1 was here\n\n  /dev/sdb\t/srv ext4 0 0\n"
              "/dev/vdc1 /c ext4\n/dev/vdaa1 /x ext4\n"
              "tmpfs /dev/vda1 tmpfs\nLABEL=root / ext4", 1,
              "/dev/vdb -> /dev/sdb");
  check_edit (vmferry_fixup_fstab_text, "", "", 0, NULL);
}
END_TEST

START_TEST (test_root)
{
  check_edit (vmferry_fixup_root_text,
              "linux /boot/vmlinuz root=/dev/vda1 ro quiet\n"
              "linux /boot/vmlinuz-old root=/dev/vda1 ro single\n",
              "linux /boot/vmlinuz root=/dev/sda1 ro quiet\n"
              "linux /boot/vmlinuz-old root=/dev/sda1 ro single\n", 2,
              "/dev/vda1 -> /dev/sda1");
  check_edit (vmferry_fixup_root_text,
              "GRUB_CMDLINE_LINUX=\"root=/dev/vdb2 resume=/dev/vda2\"",
              "GRUB_CMDLINE_LINUX=\"root=/dev/sdb2 resume=/dev/vda2\"", 1,
              "/dev/vdb2 -> /dev/sdb2");
  /* By UUID, another option ending in root=, an unchanged disk. */
  check_edit (vmferry_fixup_root_text,
              "options root=UUID=1234 myroot=/dev/vda1 root=/dev/vdc1\n",
              "options root=UUID=1234 myroot=/dev/vda1 root=/dev/vdc1\n", 0,
              NULL);
}
END_TEST

START_TEST (test_mac)
{
  check_edit (vmferry_fixup_mac_text,
              "      match:\n        macaddress: \"52:54:00:12:34:56\"\n",
              "      match:\n        macaddress: \"52:54:00:ab:cd:ef\"\n", 1,
              "52:54:00:12:34:56 -> 52:54:00:ab:cd:ef");
  check_edit (vmferry_fixup_mac_text, "HWADDR=52:54:00:12:34:56\n",
              "HWADDR=52:54:00:ab:cd:ef\n", 1, NULL);
  /* The case the file had is kept. */
  check_edit (vmferry_fixup_mac_text, "HWADDR=52:54:00:12:34:56\n"
              "mac-address=52:54:00:12:34:56\n",
              "HWADDR=52:54:00:ab:cd:ef\nmac-address=52:54:00:ab:cd:ef\n",
              2, NULL);
  check_edit (vmferry_fixup_mac_text, "HWADDR=52:54:00:12:34:5A\n",
              "HWADDR=52:54:00:12:34:5A\n", 0, NULL);
  check_edit (vmferry_fixup_mac_text,
              "SUBSYSTEM==\"net\", ATTR{address}==\"52:54:00:12:34:56\", "
              "NAME=\"eth0\"\n",
              "SUBSYSTEM==\"net\", ATTR{address}==\"52:54:00:ab:cd:ef\", "
              "NAME=\"eth0\"\n", 1, NULL);
  /* A line that names no MAC, a longer hex run: kept. */
  check_edit (vmferry_fixup_mac_text,
              "# old: 52:54:00:12:34:56\nmacaddress: 52:54:00:12:34:56:78\n",
              "# old: 52:54:00:12:34:56\nmacaddress: 52:54:00:12:34:56:78\n",
              0, NULL);
}
END_TEST

START_TEST (test_upper_mac)
{
  check_edit (vmferry_fixup_mac_text, "HWADDR=52:54:00:12:34:5A\n",
              "HWADDR=52:54:00:12:34:5A\n", 0, NULL);
  {
    static const struct vmferry_fixup_mac up[] = {
      { "52:54:00:12:34:5a", "52:54:00:0a:0b:0c" },
    };
    struct vmferry_fixup_opts o = { .macs = up, .nr_macs = 1 };
    struct vmferry_fixup_change *c = NULL;
    size_t n = 0;
    char *r = vmferry_fixup_mac_text ("HWADDR=52:54:00:12:34:5A\n", &o,
                                      "/f", &c, &n);
    ck_assert_str_eq (r, "HWADDR=52:54:00:0A:0B:0C\n");
    ck_assert_uint_eq (n, 1);
    vmferry_fixup_changes_free (c, n);
    free (r);
  }
}
END_TEST

START_TEST (test_needed)
{
  struct vmferry_fixup_opts o = { .disks = disks + 2, .nr_disks = 1 };

  ck_assert (!vmferry_fixup_needed (&o));
  o.hostname = "web02";
  ck_assert (vmferry_fixup_needed (&o));
  ck_assert (vmferry_fixup_needed (&opts));
}
END_TEST

START_TEST (test_hostname)
{
  ck_assert (vmferry_fixup_hostname_ok ("web02"));
  ck_assert (vmferry_fixup_hostname_ok ("web02.dr.example.com"));
  ck_assert (vmferry_fixup_hostname_ok ("a-b"));
  ck_assert (!vmferry_fixup_hostname_ok (""));
  ck_assert (!vmferry_fixup_hostname_ok ("-a"));
  ck_assert (!vmferry_fixup_hostname_ok ("a-"));
  ck_assert (!vmferry_fixup_hostname_ok ("a..b"));
  ck_assert (!vmferry_fixup_hostname_ok ("a/b"));
  ck_assert (!vmferry_fixup_hostname_ok ("a\nb"));
  ck_assert (!vmferry_fixup_hostname_ok ("web_01"));
  ck_assert (!vmferry_fixup_hostname_ok
             ("a234567890123456789012345678901234567890123456789012345678901234"));
}
END_TEST

VMFERRY_UNIT_MAIN ("guest_fixup", test_fstab, test_root, test_mac,
                   test_upper_mac, test_needed, test_hostname)
