/* vmferry: pre-flight check of the networks and bridges the domain's
 * interfaces use.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>
#include <libxml/tree.h>

#include "cleanup.h"
#include "error.h"
#include "preflight-int.h"
#include "preflight.h"
#include "xmlnode.h"

/* -------------------------------------------------------- networks, bridges */

/* An active network to suggest: "default" if active, else the first
 * active one by name.  Also a list for the message.
 */
static char *
pick_network (struct preflight *c, char *list, size_t len)
{
  virNetworkPtr *nets = NULL;
  int n = virConnectListAllNetworks (c->dest, &nets,
                                     VIR_CONNECT_LIST_NETWORKS_ACTIVE);
  char *pick = NULL;
  size_t used = 0;

  list[0] = '\0';
  for (int i = 0; i < n; i++) {
    const char *name = virNetworkGetName (nets[i]);
    used += snprintf (list + used, used < len ? len - used : 0, "%s%s",
                      used ? ", " : "", name);
    if (strcmp (name, "default") == 0 || pick == NULL ||
        (strcmp (pick, "default") != 0 && strcmp (name, pick) < 0)) {
      free (pick);
      pick = strdup (name);
    }
  }
  for (int i = 0; i < n; i++)
    virNetworkFree (nets[i]);
  free (nets);
  return pick;
}

/* Is BR the bridge of an active network of the destination (one in
 * forward mode bridge: a bridge the site chose for guests)?
 */
static bool
network_bridge (struct preflight *c, const char *br)
{
  virNetworkPtr *nets = NULL;
  int n = virConnectListAllNetworks (c->dest, &nets,
                                     VIR_CONNECT_LIST_NETWORKS_ACTIVE);
  bool ret = false;

  for (int i = 0; i < n; i++) {
    CLEANUP_FREE char *b = ret ? NULL : virNetworkGetBridgeName (nets[i]);
    if (b && strcmp (b, br) == 0)
      ret = true;
    virNetworkFree (nets[i]);
  }
  free (nets);
  vmferry_clear_error ();
  return ret;
}

/* A host bridge to suggest: one an active network uses, else the first
 * by name that libvirt's networks did not make (virbr*).
 */
static char *
pick_bridge (struct preflight *c, char *list, size_t len)
{
  virInterfacePtr *ifs = NULL;
  int n = virConnectListAllInterfaces (c->dest, &ifs, 0);
  char *pick = NULL;
  bool pick_net = false;
  size_t used = 0;

  list[0] = '\0';
  for (int i = 0; i < n; i++) {
    CLEANUP_FREE char *xml = virInterfaceGetXMLDesc (ifs[i], 0);
    const char *name = virInterfaceGetName (ifs[i]);
    if (xml == NULL || strstr (xml, "type='bridge'") == NULL)
      continue;
    used += snprintf (list + used, used < len ? len - used : 0, "%s%s",
                      used ? ", " : "", name);
    if (strncmp (name, "virbr", 5) != 0) {
      bool net = network_bridge (c, name);
      if (pick == NULL || (net && !pick_net) ||
          (net == pick_net && strcmp (name, pick) < 0)) {
        free (pick);
        pick = strdup (name);
        pick_net = net;
      }
    }
  }
  for (int i = 0; i < n; i++)
    virInterfaceFree (ifs[i]);
  free (ifs);
  return pick;
}

bool
vmferry_preflight_seen_before (char **seen, size_t n, const char *s)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (seen[i], s) == 0)
      return true;
  return false;
}

void
vmferry_preflight_interfaces (struct preflight *c)
{
  char *seen[256];
  size_t nseen = 0;

  for (xmlNodePtr devs = c->root->children; devs; devs = devs->next) {
    if (!vmferry_xml_is_elem (devs, "devices"))
      continue;
    for (xmlNodePtr n = devs->children; n; n = n->next) {
      xmlNodePtr src = vmferry_xml_child (n, "source");
      bool net = vmferry_xml_attr_eq (n, "type", "network");
      bool br = vmferry_xml_attr_eq (n, "type", "bridge");
      CLEANUP_FREE char *name = NULL;
      char object[300], list[1024], key[300];

      if (!vmferry_xml_is_elem (n, "interface") || !(net || br) ||
          (name = vmferry_xml_attr (src, net ? "network" : "bridge")) == NULL)
        continue;
      snprintf (key, sizeof key, "%c%s", net ? 'n' : 'b', name);
      if (vmferry_preflight_seen_before (seen, nseen, key) || nseen == 256)
        continue;
      seen[nseen++] = strdup (key);
      if (seen[nseen - 1] == NULL) {
        nseen--;
        c->oom = true;
      }
      snprintf (object, sizeof object, "%s %s", net ? "network" : "bridge",
                name);

      if (net) {
        virNetworkPtr nw = virNetworkLookupByName (c->dest, name);
        CLEANUP_FREE char *pick = NULL;
        int active = nw ? virNetworkIsActive (nw) : -1;
        if (nw)
          virNetworkFree (nw);
        if (active == 1)
          continue;
        pick = pick_network (c, list, sizeof list);
        if (nw == NULL)
          vmferry_preflight_add_pick (c, "network", object, "--map-network",
                                      name, pick, NULL,
                                      "define the network on the destination",
                                      "no such network on the destination "
                                      "(its active networks: %s)",
                                      list[0] ? list : "none");
        else {
          char hint[300];
          snprintf (hint, sizeof hint,
                    "or start it there: virsh net-start %s", name);
          vmferry_preflight_add_pick (c, "network", object, "--map-network",
                                      name, pick, hint, hint,
                                      "the network exists on the destination "
                                      "but is not active");
        }
      }
      else {
        virInterfacePtr ifp = virInterfaceLookupByName (c->dest, name);
        CLEANUP_FREE char *pick = NULL;
        if (ifp) {
          CLEANUP_FREE char *xml = virInterfaceGetXMLDesc (ifp, 0);
          virInterfaceFree (ifp);
          if (xml && strstr (xml, "type='bridge'") == NULL)
            vmferry_preflight_add (c, VMFERRY_SEV_ERROR, "bridge", object, NULL,
                                   NULL,
                                   "the destination has an interface of this "
                                   "name, but it is not a bridge");
          continue;
        }
        if (vmferry_preflight_virt_code () == VIR_ERR_NO_SUPPORT) {
          vmferry_preflight_add (c, VMFERRY_SEV_WARNING, "bridge", object, NULL,
                                 NULL,
                                 "cannot list the destination's interfaces: %s",
                                 vmferry_preflight_virt_msg ());
          continue;
        }
        pick = pick_bridge (c, list, sizeof list);
        vmferry_preflight_add_pick (c, "bridge", object, "--map-bridge", name,
                                    pick, NULL,
                                    "create the bridge on the destination, "
                                    "or use a network",
                                    "no such bridge on the destination (its "
                                    "bridges: %s)",
                                    list[0] ? list : "none");
      }
    }
  }
  for (size_t i = 0; i < nseen; i++)
    free (seen[i]);
}
