/* vmferry: libvirt access (see virt.h). */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include <libvirt/virterror.h>

#include "error.h"
#include "virt.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void
silent_handler (void *opaque, virErrorPtr err)
{
  (void) opaque;
  (void) err;
}

static void
virt_init (void)
{
  virInitialize ();
  virSetErrorFunc (NULL, silent_handler);
}

void
vmferry_virt_error (const char *fs, ...)
{
  char context[1024];
  va_list args;
  virErrorPtr err = virGetLastError ();

  va_start (args, fs);
  vsnprintf (context, sizeof context, fs, args);
  va_end (args);
  if (err && err->message)
    vmferry_set_error ("%s: %s", context, err->message);
  else
    vmferry_set_error ("%s: unknown libvirt error", context);
}

virConnectPtr
vmferry_virt_connect (const char *uri)
{
  virConnectPtr conn;

  pthread_once (&init_once, virt_init);
  conn = virConnectOpen (uri);
  if (conn == NULL) {
    vmferry_virt_error ("%s: cannot connect", uri ? uri : "default libvirt URI");
    return NULL;
  }
  virConnSetErrorFunc (conn, NULL, silent_handler);
  return conn;
}

virDomainPtr
vmferry_virt_lookup_domain (virConnectPtr conn, const char *name)
{
  virDomainPtr dom = virDomainLookupByName (conn, name);

  if (dom == NULL) {
    virErrorPtr err = virGetLastError ();
    if (err && err->code != VIR_ERR_NO_DOMAIN)
      goto error;
    dom = virDomainLookupByUUIDString (conn, name);
  }
  if (dom)
    return dom;
 error:
  vmferry_virt_error ("domain %s", name);
  return NULL;
}

int
vmferry_virt_domain_state (virDomainPtr dom)
{
  int state, reason;

  if (virDomainGetState (dom, &state, &reason, 0) < 0) {
    vmferry_virt_error ("domain %s: cannot get state", virDomainGetName (dom));
    return -1;
  }
  return state;
}

const char *
vmferry_virt_state_name (int state)
{
  switch (state) {
  case VIR_DOMAIN_NOSTATE: return "no state";
  case VIR_DOMAIN_RUNNING: return "running";
  case VIR_DOMAIN_BLOCKED: return "idle";
  case VIR_DOMAIN_PAUSED: return "paused";
  case VIR_DOMAIN_SHUTDOWN: return "in shutdown";
  case VIR_DOMAIN_SHUTOFF: return "shut off";
  case VIR_DOMAIN_CRASHED: return "crashed";
  case VIR_DOMAIN_PMSUSPENDED: return "pmsuspended";
  default: return "unknown";
  }
}
