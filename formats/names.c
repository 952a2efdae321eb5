/* vmferry: names from untrusted input that become parts of paths (see
 * names.h).
 */
#include "config.h"

#include <string.h>

#include "names.h"

bool
vmferry_name_component (const char *s, size_t len, unsigned flags)
{
  if (s == NULL || len == 0 || len > VMFERRY_NAME_MAX)
    return false;
  if (s[0] == '.') {
    if (!(flags & VMFERRY_NAME_HIDDEN_OK))
      return false;
    if (len == 1 || (len == 2 && s[1] == '.'))
      return false;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = s[i];
    if (c == '/' || c < 0x20 || c == 0x7f)
      return false;
  }
  return true;
}

bool
vmferry_name_ok (const char *s, unsigned flags)
{
  return s != NULL &&
         vmferry_name_component (s, strnlen (s, VMFERRY_NAME_MAX + 1), flags);
}

bool
vmferry_name_relpath_ok (const char *s, unsigned max_parts, unsigned flags)
{
  unsigned parts = 0;

  if (s == NULL)
    return false;
  for (;;) {
    const char *slash = strchr (s, '/');
    size_t len = slash ? (size_t) (slash - s) : strlen (s);

    if (!vmferry_name_component (s, len, flags) || ++parts > max_parts)
      return false;
    if (slash == NULL)
      return true;
    s = slash + 1;
  }
}

bool
vmferry_name_uuid_ok (const char *s)
{
  if (s == NULL || strlen (s) != 36)
    return false;
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return false;
    }
    else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  }
  return true;
}
