#!/usr/bin/python
# -*- coding: utf-8 -*-
# vmferry.fleet.migrate: one vmferry-migrate run on the source host, its
# result object (vmferry-migrate --json, man vmferry-migrate: JSON OUTPUT)
# as the module's result.
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: migrate
short_description: Move one libvirt domain to another host with vmferry-migrate
version_added: "1.0.0"
description:
  - Runs C(vmferry-migrate --json) on the host the task runs on (the
    source), for one domain and one destination host, and returns the
    tool's result object.
  - A move that an earlier run completed is reported as C(already-there)
    and not changed; nothing is sent again.
  - Check mode runs C(vmferry-migrate --dry-run); nothing is copied, the
    plan and the pre-flight findings are returned.
options:
  domain:
    description: The domain on the source host (name or UUID).
    type: str
    required: true
  dest:
    description: The destination, C([ssh://][USER@]HOST[:PORT]).
    type: str
    required: true
  connect:
    description: The source's libvirt URI (default libvirt's).
    type: str
  dest_uri:
    description: The destination's libvirt URI for the pre-flight check.
    type: str
  dest_dir:
    description: Directory on the destination for the files.
    type: str
  dest_pool:
    description: Storage pool on the destination for the files.
    type: str
  live:
    description: Migrate a running domain live (C(--live)).
    type: bool
    default: false
  start:
    description: Start the domain on the destination.
    type: bool
    default: false
  undefine_source:
    description: Undefine the source domain once the copy is verified.
    type: bool
    default: false
  bandwidth:
    description: At most this rate, as C(--bandwidth) takes it (C(100M)).
    type: str
  rename:
    description: The domain's name on the destination.
    type: str
  new_uuid:
    description: Give the domain a new UUID.
    type: bool
    default: false
  map_network:
    description: C(OLD=NEW) network maps.
    type: list
    elements: str
    default: []
  map_bridge:
    description: C(OLD=NEW) bridge maps.
    type: list
    elements: str
    default: []
  map_path:
    description: C(OLD=NEW) path maps.
    type: list
    elements: str
    default: []
  extra_args:
    description: More vmferry-migrate options, one word each.
    type: list
    elements: str
    default: []
  executable:
    description: The vmferry-migrate to run.
    type: str
    default: vmferry-migrate
author:
  - vmferry
"""

EXAMPLES = r"""
- name: Move web01 to dst2
  vmferry.fleet.migrate:
    domain: web01
    dest: dst2.example
    map_network: ["lan-a=lan-b"]
"""

RETURN = r"""
result:
  description: The object vmferry-migrate --json printed (version 1).
  returned: when the tool printed one
  type: dict
state:
  description: moved, already-there, would-move, blocked or failed.
  returned: when the tool printed a result
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule


def build_argv(module):
    p = module.params
    argv = [p["executable"], "--json"]
    for opt, key in (("--connect", "connect"), ("--dest-uri", "dest_uri"),
                     ("--dest-dir", "dest_dir"), ("--dest-pool", "dest_pool"),
                     ("--bandwidth", "bandwidth"), ("--rename", "rename")):
        if p[key]:
            argv.append("%s=%s" % (opt, p[key]))
    for flag, key in (("--live", "live"), ("--start", "start"),
                      ("--undefine-source", "undefine_source"),
                      ("--new-uuid", "new_uuid")):
        if p[key]:
            argv.append(flag)
    for opt, key in (("--map-network", "map_network"),
                     ("--map-bridge", "map_bridge"),
                     ("--map-path", "map_path")):
        for value in p[key]:
            argv.append("%s=%s" % (opt, value))
    argv.extend(p["extra_args"])
    if module.check_mode:
        argv.append("--dry-run")
    # The domain and host last, after "--": a name cannot be an option.
    argv.extend(["--", p["domain"], p["dest"]])
    return argv


def findings_text(result):
    pre = result.get("preflight") or {}
    lines = []
    for f in pre.get("findings") or []:
        if f.get("severity") != "error":
            continue
        line = "%s: %s" % (f.get("object"), f.get("message"))
        if f.get("fix"):
            line += " (fix: %s)" % " ".join(f["fix"])
        lines.append(line)
    return "; ".join(lines)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domain=dict(type="str", required=True),
            dest=dict(type="str", required=True),
            connect=dict(type="str"),
            dest_uri=dict(type="str"),
            dest_dir=dict(type="str"),
            dest_pool=dict(type="str"),
            live=dict(type="bool", default=False),
            start=dict(type="bool", default=False),
            undefine_source=dict(type="bool", default=False),
            bandwidth=dict(type="str"),
            rename=dict(type="str"),
            new_uuid=dict(type="bool", default=False),
            map_network=dict(type="list", elements="str", default=[]),
            map_bridge=dict(type="list", elements="str", default=[]),
            map_path=dict(type="list", elements="str", default=[]),
            extra_args=dict(type="list", elements="str", default=[]),
            executable=dict(type="str", default="vmferry-migrate"),
        ),
        mutually_exclusive=[("dest_dir", "dest_pool")],
        supports_check_mode=True,
    )
    argv = build_argv(module)
    rc, out, err = module.run_command(argv)
    lines = [line for line in out.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    if not isinstance(result, dict) or result.get("version") != 1:
        module.fail_json(msg="vmferry-migrate gave no result (status %d): %s"
                         % (rc, err.strip() or out.strip()),
                         rc=rc, cmd=argv, stderr=err)
    state = result.get("state")
    changed = state == "moved" or (module.check_mode and state == "would-move")
    if state in ("blocked", "failed") or rc != 0:
        msg = result.get("error") or "vmferry-migrate failed"
        found = findings_text(result)
        if found:
            msg += ": " + found
        # Status 3: copied and defined there, the source still defined.
        module.fail_json(msg=msg, state=state, result=result, rc=rc,
                         changed=rc == 3, cmd=argv, stderr=err)
    module.exit_json(changed=changed, state=state, result=result, rc=rc,
                     cmd=argv, stderr=err)


if __name__ == "__main__":
    main()
