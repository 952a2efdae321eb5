/* vmferry: cleanup attributes.
 *
 * A variable declared with one of these is released when it goes out of
 * scope.  Every helper is safe on NULL / -1, so a function can return early
 * from anywhere.  To hand ownership out, set the variable to NULL (or -1)
 * after copying it.
 */
#ifndef VMFERRY_CLEANUP_H
#define VMFERRY_CLEANUP_H

#include <stdio.h>

#include <libvirt/libvirt.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

void vmferry_cleanup_free (void *ptr);
void vmferry_cleanup_close (int *fdp);
void vmferry_cleanup_fclose (FILE **fpp);
void vmferry_cleanup_unlink_free (char **pathp);
void vmferry_cleanup_strv_free (char ***strvp);
void vmferry_cleanup_vir_connect (virConnectPtr *connp);
void vmferry_cleanup_vir_domain (virDomainPtr *domp);
void vmferry_cleanup_vir_pool (virStoragePoolPtr *poolp);
void vmferry_cleanup_vir_vol (virStorageVolPtr *volp);
void vmferry_cleanup_xml_doc (xmlDocPtr *docp);
void vmferry_cleanup_xml_xpath_ctx (xmlXPathContextPtr *ctxp);
void vmferry_cleanup_xml_xpath_obj (xmlXPathObjectPtr *objp);

#define CLEANUP_FREE __attribute__ ((cleanup (vmferry_cleanup_free)))
#define CLEANUP_CLOSE __attribute__ ((cleanup (vmferry_cleanup_close)))
#define CLEANUP_FCLOSE __attribute__ ((cleanup (vmferry_cleanup_fclose)))
/* Unlinks the path (if not NULL) and frees it: for temporary files that
 * must vanish on every error path.  Set to NULL to keep the file.
 */
#define CLEANUP_UNLINK_FREE __attribute__ ((cleanup (vmferry_cleanup_unlink_free)))
#define CLEANUP_STRV_FREE __attribute__ ((cleanup (vmferry_cleanup_strv_free)))
#define CLEANUP_VIR_CONNECT __attribute__ ((cleanup (vmferry_cleanup_vir_connect)))
#define CLEANUP_VIR_DOMAIN __attribute__ ((cleanup (vmferry_cleanup_vir_domain)))
#define CLEANUP_VIR_POOL __attribute__ ((cleanup (vmferry_cleanup_vir_pool)))
#define CLEANUP_VIR_VOL __attribute__ ((cleanup (vmferry_cleanup_vir_vol)))
#define CLEANUP_XMLDOC __attribute__ ((cleanup (vmferry_cleanup_xml_doc)))
#define CLEANUP_XPATH_CTX __attribute__ ((cleanup (vmferry_cleanup_xml_xpath_ctx)))
#define CLEANUP_XPATH_OBJ __attribute__ ((cleanup (vmferry_cleanup_xml_xpath_obj)))

/* Free a NULL-terminated array of strings and the array; NULL is fine. */
void vmferry_strv_free (char **strv);

#endif
