# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: read the package database's state from ``dpkg-query`` output.

The query the roles run (one call, every package)::

    dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${db:Status-Status}\\n'

``db:Status-Abbrev`` is three characters: the wanted action, the current status and the error flag
(a space when there is none), so a line reads ``iF  hm-probe half-configured``. ``dpkg --audit``
lists the same problems in prose but exits 0 either way, which is why the state is parsed instead.
"""

from __future__ import annotations

# Current status letters of a package a dpkg run stopped in the middle of: Half-installed, Unpacked,
# half-conFigured, triggers-aWaiting, triggers-pending. Installed (i), not-installed (n) and
# config-files (c, a removed package) are settled states.
UNFINISHED_STATUS = frozenset("HUFWt")
# The error flag R (reinst-required): the package must be reinstalled before anything else works.
REINST_REQUIRED = "R"


def parse_unfinished(text):
    """Packages dpkg left half-done, as ``[{"package": P, "status": S, "reinst_required": bool}]``."""
    unfinished = []
    for line in (text or "").splitlines():
        if len(line) < 4:
            continue
        abbrev, rest = line[:3], line[3:].split()
        if not rest:
            continue
        status, flag = abbrev[1], abbrev[2]
        if status in UNFINISHED_STATUS or flag == REINST_REQUIRED:
            unfinished.append({
                "package": rest[0],
                "status": " ".join(rest[1:]) or status,
                "reinst_required": flag == REINST_REQUIRED,
            })
    return unfinished


def describe_unfinished(text):
    """The same packages as ``PACKAGE (STATUS)`` strings, for an operator's message."""
    return ["%s (%s%s)" % (entry["package"], entry["status"], ", reinst-required" if entry["reinst_required"] else "")
            for entry in parse_unfinished(text)]
