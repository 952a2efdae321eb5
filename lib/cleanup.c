/* vmferry: cleanup helpers for libvirt and libxml2 objects (see
 * cleanup.h).
 */
#include "config.h"

#include "cleanup.h"

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
