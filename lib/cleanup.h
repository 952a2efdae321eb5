/* vmferry: cleanup attributes for libvirt and libxml2 objects, and
 * those of the base (cleanup-libc.h: free, close, fclose...).
 *
 * The same rules as the base's: released at the end of the scope, safe
 * on NULL, set to NULL to hand ownership out.  Kept out of base/ and
 * formats/ so that parsers of hostile input never see these headers.
 */
#ifndef VMFERRY_CLEANUP_H
#define VMFERRY_CLEANUP_H

#include <libvirt/libvirt.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "cleanup-libc.h"

void vmferry_cleanup_vir_connect (virConnectPtr *connp);
void vmferry_cleanup_vir_domain (virDomainPtr *domp);
void vmferry_cleanup_vir_pool (virStoragePoolPtr *poolp);
void vmferry_cleanup_vir_vol (virStorageVolPtr *volp);
void vmferry_cleanup_xml_doc (xmlDocPtr *docp);
void vmferry_cleanup_xml_xpath_ctx (xmlXPathContextPtr *ctxp);
void vmferry_cleanup_xml_xpath_obj (xmlXPathObjectPtr *objp);

#define CLEANUP_VIR_CONNECT \
  __attribute__ ((cleanup (vmferry_cleanup_vir_connect)))
#define CLEANUP_VIR_DOMAIN \
  __attribute__ ((cleanup (vmferry_cleanup_vir_domain)))
#define CLEANUP_VIR_POOL __attribute__ ((cleanup (vmferry_cleanup_vir_pool)))
#define CLEANUP_VIR_VOL __attribute__ ((cleanup (vmferry_cleanup_vir_vol)))
#define CLEANUP_XMLDOC __attribute__ ((cleanup (vmferry_cleanup_xml_doc)))
#define CLEANUP_XPATH_CTX \
  __attribute__ ((cleanup (vmferry_cleanup_xml_xpath_ctx)))
#define CLEANUP_XPATH_OBJ \
  __attribute__ ((cleanup (vmferry_cleanup_xml_xpath_obj)))

#endif
