# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The install guide's device table (``Device Type Mount Free Used Sync Path``) from lsblk data.

Pure: takes ``lsblk -J -b`` output and /proc/self/mounts text, returns rows and their text.
"""

from __future__ import annotations

import json

# Filesystems dattobd can snapshot and track (block-level, with a journal or log it understands).
SYNC_FILESYSTEMS = ("ext2", "ext3", "ext4", "xfs")
COLUMNS = ("Device", "Type", "Mount", "Free", "Used", "Sync", "Path")


def human_size(size):
    """1.6G-style size, like the installer prints."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if value < 1024 or unit == "P":
            if unit == "B":
                return "%d%s" % (value, unit)
            return ("%.1f%s" % (value, unit)).replace(".0" + unit, unit)
        value /= 1024
    return "-"


def parse_mounts(text, block_only=True):
    """Map source -> list of (mountpoint, fstype) from /proc/self/mounts (block devices only by default)."""
    mounts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and (fields[0].startswith("/dev/") or not block_only):
            mount_point = fields[1].replace("\\040", " ")
            mounts.setdefault(fields[0], []).append((mount_point, fields[2]))
    return mounts


def _walk(devices):
    for device in devices:
        yield device
        yield from _walk(device.get("children") or [])


def device_rows(lsblk_json, mounts_text="", root_usage=None):
    """One row per mounted filesystem on a block device (first mount point of each).

    ``root_usage`` (size, available, used bytes of ``/``) adds a row for the root filesystem when it
    is not on a block device this host can see (a container's overlay): the agent cannot track it,
    and the table says so instead of leaving the operator with an empty table.
    """
    data = json.loads(lsblk_json) if isinstance(lsblk_json, str) else lsblk_json
    mounts = parse_mounts(mounts_text)
    rows = []
    for device in _walk(data.get("blockdevices", [])):
        path = device.get("path") or "/dev/%s" % device.get("name")
        points = [p for p in (device.get("mountpoints") or [device.get("mountpoint")]) if p]
        if not points and path in mounts:
            points = [mounts[path][0][0]]
        if not points:
            continue
        fstype = device.get("fstype") or (mounts[path][0][1] if path in mounts else None)
        mount_point = sorted(points, key=len)[0]
        size, used = device.get("fssize"), device.get("fsused")
        used_pct = "%d%%" % round(100.0 * int(used) / int(size)) if size and used is not None else "-"
        rows.append({
            "device": path,
            "type": fstype or "-",
            "mount": mount_point,
            "free": human_size(device.get("fsavail")),
            "used": used_pct,
            "sync": "Yes" if fstype in SYNC_FILESYSTEMS else "No",
            "path": path,
            "free_bytes": int(device["fsavail"]) if device.get("fsavail") is not None else None,
        })
    if root_usage is not None and not any(r["mount"] == "/" for r in rows):
        for source, points in parse_mounts(mounts_text, block_only=False).items():
            fstype = next((f for mount, f in points if mount == "/"), None)
            if fstype is None:
                continue
            size, avail, used = root_usage
            rows.append({
                "device": source, "type": fstype, "mount": "/", "free": human_size(avail),
                "used": "%d%%" % round(100.0 * used / size) if size else "-",
                "sync": "Yes" if source.startswith("/dev/") and fstype in SYNC_FILESYSTEMS else "No",
                "path": source, "free_bytes": avail,
            })
            break
    rows.sort(key=lambda r: r["mount"])
    return rows


def render_table(rows):
    """The rows as an aligned text table with the installer's header."""
    cells = [list(COLUMNS)] + [[r["device"], r["type"], r["mount"], r["free"], r["used"], r["sync"], r["path"]]
                               for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells)
