/* Unit tests for base/hex.c: the one hex encoder and strict decoder. */
#include "config.h"

#include "unit.h"

#include <string.h>

#include "hex.h"

START_TEST (test_round_trip)
{
  unsigned char bytes[256], back[256];
  char text[513];

  for (int i = 0; i < 256; i++)
    bytes[i] = i;
  vmferry_hex_encode (bytes, sizeof bytes, text);
  ck_assert_uint_eq (strlen (text), 512);
  ck_assert (strncmp (text, "000102", 6) == 0);
  ck_assert (strcmp (text + 506, "fdfeff") == 0);
  ck_assert_int_eq (vmferry_hex_decode (text, back, sizeof back), 0);
  ck_assert (memcmp (bytes, back, sizeof bytes) == 0);
  vmferry_hex_encode (bytes, 0, text);
  ck_assert_str_eq (text, "");
}
END_TEST

START_TEST (test_decode_refuses)
{
  unsigned char b[2];

  /* Upper case, non-digits, a string that ends early. */
  ck_assert_int_eq (vmferry_hex_decode ("0A0b", b, 2), -1);
  ck_assert_int_eq (vmferry_hex_decode ("0g0b", b, 2), -1);
  ck_assert_int_eq (vmferry_hex_decode ("0a0", b, 2), -1);
  ck_assert_int_eq (vmferry_hex_decode ("", b, 1), -1);
  ck_assert_int_eq (vmferry_hex_decode (" a0b", b, 2), -1);
  /* What follows the digits is the caller's. */
  ck_assert_int_eq (vmferry_hex_decode ("0a0bzz", b, 2), 0);
  ck_assert_uint_eq (b[0], 0x0a);
  ck_assert_uint_eq (b[1], 0x0b);
  /* ... unless it is the whole string. */
  ck_assert_int_eq (vmferry_hex_decode_str ("0a0bzz", b, 2), -1);
  ck_assert_int_eq (vmferry_hex_decode_str ("0a0", b, 2), -1);
  ck_assert_int_eq (vmferry_hex_decode_str (NULL, b, 2), -1);
  ck_assert_int_eq (vmferry_hex_decode_str ("ff00", b, 2), 0);
  ck_assert_uint_eq (b[0], 0xff);
}
END_TEST

VMFERRY_UNIT_MAIN ("hex",
                   test_round_trip,
                   test_decode_refuses)
