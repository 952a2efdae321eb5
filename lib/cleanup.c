/* vmferry: cleanup attribute helpers (see cleanup.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "cleanup.h"

void
vmferry_cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}

void
vmferry_cleanup_close (int *fdp)
{
  int saved = errno;

  if (*fdp >= 0)
    close (*fdp);
  errno = saved;
}

void
vmferry_cleanup_fclose (FILE **fpp)
{
  int saved = errno;

  if (*fpp)
    fclose (*fpp);
  errno = saved;
}

void
vmferry_cleanup_unlink_free (char **pathp)
{
  int saved = errno;

  if (*pathp) {
    unlink (*pathp);
    free (*pathp);
  }
  errno = saved;
}

void
vmferry_strv_free (char **strv)
{
  if (strv) {
    for (size_t i = 0; strv[i]; i++)
      free (strv[i]);
    free (strv);
  }
}

void
vmferry_cleanup_strv_free (char ***strvp)
{
  vmferry_strv_free (*strvp);
}

void
vmferry_cleanup_vir_connect (virConnectPtr *connp)
{
  if (*connp)
    virConnectClose (*connp);
}

void
vmferry_cleanup_vir_domain (virDomainPtr *domp)
{
  if (*domp)
    virDomainFree (*domp);
}

void
vmferry_cleanup_vir_pool (virStoragePoolPtr *poolp)
{
  if (*poolp)
    virStoragePoolFree (*poolp);
}

void
vmferry_cleanup_vir_vol (virStorageVolPtr *volp)
{
  if (*volp)
    virStorageVolFree (*volp);
}

void
vmferry_cleanup_xml_doc (xmlDocPtr *docp)
{
  if (*docp)
    xmlFreeDoc (*docp);
}

void
vmferry_cleanup_xml_xpath_ctx (xmlXPathContextPtr *ctxp)
{
  if (*ctxp)
    xmlXPathFreeContext (*ctxp);
}

void
vmferry_cleanup_xml_xpath_obj (xmlXPathObjectPtr *objp)
{
  if (*objp)
    xmlXPathFreeObject (*objp);
}
