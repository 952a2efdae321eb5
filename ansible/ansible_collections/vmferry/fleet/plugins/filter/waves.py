# -*- coding: utf-8 -*-
# vmferry.fleet.waves: a fleet plan cut into waves that keep every host
# within its limits (the playbook vmferry.fleet.move runs one wave at a
# time, the moves of a wave at once).
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types


def _limit(name, value):
    try:
        n = int(value or 0)
    except (TypeError, ValueError):
        raise AnsibleFilterError("waves: %s must be a number, not %r"
                                 % (name, value))
    if n < 0:
        raise AnsibleFilterError("waves: %s must be 0 (no limit) or more"
                                 % name)
    return n


def _check(plan):
    if not isinstance(plan, list):
        raise AnsibleFilterError("waves: the plan must be a list of moves")
    seen = set()
    for i, move in enumerate(plan):
        where = "plan line %d" % (i + 1)
        if not isinstance(move, dict):
            raise AnsibleFilterError("waves: %s is not a mapping" % where)
        for key in ("domain", "source", "dest"):
            if not isinstance(move.get(key), string_types) or not move[key]:
                raise AnsibleFilterError("waves: %s has no %s" % (where, key))
        if move["source"] == move["dest"]:
            raise AnsibleFilterError("waves: %s (%s) moves from %s to itself"
                                     % (where, move["domain"], move["source"]))
        # Two lines for one domain would race each other on its files.
        key = (move["source"], move["domain"])
        if key in seen:
            raise AnsibleFilterError("waves: %s moves %s from %s a second time"
                                     % (where, move["domain"], move["source"]))
        seen.add(key)


def waves(plan, per_source=0, per_dest=0, per_host=0):
    """Cut PLAN (a list of moves: domain, source, dest, ...) into waves.

    In a wave, a host is the source of at most PER_SOURCE moves, the
    destination of at most PER_DEST, and takes part (either way) in at
    most PER_HOST; 0 is no limit.  Each move goes into the first wave
    with room for it, so the plan's order is kept as far as the limits
    allow: list first what must go first.  Each move is returned as a
    copy with "wave" (0, 1, ...) added.
    """
    _check(plan)
    limits = (_limit("per_source", per_source), _limit("per_dest", per_dest),
              _limit("per_host", per_host))
    cut = []  # [moves, {source: n}, {dest: n}, {host: n}]
    for move in plan:
        src, dst = move["source"], move["dest"]
        for wave in cut:
            _, by_src, by_dst, by_host = wave
            if limits[0] and by_src.get(src, 0) >= limits[0]:
                continue
            if limits[1] and by_dst.get(dst, 0) >= limits[1]:
                continue
            if limits[2] and (by_host.get(src, 0) >= limits[2]
                              or by_host.get(dst, 0) >= limits[2]):
                continue
            break
        else:
            wave = [[], {}, {}, {}]
            cut.append(wave)
        wave[1][src] = wave[1].get(src, 0) + 1
        wave[2][dst] = wave[2].get(dst, 0) + 1
        wave[3][src] = wave[3].get(src, 0) + 1
        wave[3][dst] = wave[3].get(dst, 0) + 1
        placed = dict(move)
        placed["wave"] = cut.index(wave)
        wave[0].append(placed)
    return [wave[0] for wave in cut]


class FilterModule(object):
    def filters(self):
        return {"waves": waves}
