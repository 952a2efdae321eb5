/* vmferry: running qemu-img (qemu-img.h). */
#include "config.h"

#include <errno.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "qemu-img.h"

int
vmferry_qemu_img (char *const argv[])
{
  pid_t pid;
  int status, err;

  err = posix_spawnp (&pid, "qemu-img", NULL, NULL, argv, environ);
  if (err) {
    vmferry_set_error_errno (err, "cannot run qemu-img");
    return -1;
  }
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR) {
      vmferry_set_error_errno (errno, "qemu-img %s", argv[1]);
      return -1;
    }
  if (!WIFEXITED (status) || WEXITSTATUS (status)) {
    vmferry_set_error ("qemu-img %s failed", argv[1]);
    return -1;
  }
  return 0;
}
