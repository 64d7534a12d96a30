# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure core of the managed_files module: validate the wanted directories and files, and compare them
with what a host has. Nothing here touches the system; the module reads the host and applies the plan."""

from __future__ import annotations

import hashlib
import posixpath
import re

_MODE = re.compile(r"^0?[0-7]{3,4}$")
_NAME = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$", re.IGNORECASE)


def check_path(path, option):
    """An absolute, normalised path: no '..', no '.', no doubled or trailing '/'. Raises ValueError."""
    if not isinstance(path, str) or not path:
        raise ValueError("%s: a path is required" % option)
    if not path.startswith("/") or path == "/":
        raise ValueError("%s: %r is not an absolute path below /" % (option, path))
    if any(c in path for c in "\0\n"):
        raise ValueError("%s: %r contains a NUL or newline character" % (option, path))
    if posixpath.normpath(path) != path or path.startswith("//"):
        raise ValueError("%s: %r is not normalised (no '..', '.', '//' or trailing '/'); write it as %r"
                         % (option, path, posixpath.normpath(path)))
    return path


def check_mode(mode, option):
    """An octal mode given as a string ('0644'); returns the int. Raises ValueError."""
    if not isinstance(mode, str) or not _MODE.match(mode):
        raise ValueError("%s: mode %r is not an octal string such as '0644' (quote it in YAML)" % (option, mode))
    return int(mode, 8)


def check_owner(name, option):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError("%s: %r is not a user or group name" % (option, name))
    return name


def normalise(directories, files, absent=()):
    """Validate the three lists; return (directories, files, absent): dicts with int modes, and the absent
    paths. A path may appear once in all three together. Raises ValueError."""
    seen = set()
    out_absent = []
    for index, path in enumerate(absent or []):
        where = "absent[%d]" % index
        path = check_path(path, where)
        if path in seen:
            raise ValueError("%s: %s is listed twice" % (where, path))
        seen.add(path)
        out_absent.append(path)
    out_dirs, out_files = [], []
    for kind, items, out in (("directories", directories, out_dirs), ("files", files, out_files)):
        for index, item in enumerate(items or []):
            where = "%s[%d]" % (kind, index)
            path = check_path(item.get("path"), where + ".path")
            if path in seen:
                raise ValueError("%s: %s is listed twice" % (where, path))
            seen.add(path)
            entry = {
                "path": path,
                "mode": check_mode(item.get("mode"), where + ".mode"),
                "owner": check_owner(item.get("owner") or "root", where + ".owner"),
                "group": check_owner(item.get("group") or "root", where + ".group"),
            }
            if kind == "files":
                content = item.get("content")
                if not isinstance(content, str):
                    raise ValueError("%s: content (a string) is required for %s" % (where, path))
                entry["content"] = content.encode("utf-8")
            out.append(entry)
    return out_dirs, out_files, out_absent


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def compare(entry, current, uid, gid):
    """What differs between a wanted entry and a host's current state of its path.

    current: None when the path does not exist, else {'type': 'directory'|'file'|'other', 'mode': int,
    'uid': int, 'gid': int, 'sha256': str (files only)}. uid/gid: the wanted owner's ids.
    Returns a list of reasons ([] when the path is as wanted). Raises ValueError when the path exists
    as another type (a directory where a file is wanted, a symlink, ...): never replaced silently."""
    want_type = "file" if "content" in entry else "directory"
    if current is None:
        return ["absent"]
    if current["type"] != want_type:
        kind = {"other": "symlink or special file"}.get(current["type"], current["type"])
        raise ValueError("%s is a %s, not a %s: move it away, this module replaces only its own kinds"
                         % (entry["path"], kind, want_type))
    reasons = []
    if want_type == "file" and current.get("sha256") != sha256(entry["content"]):
        reasons.append("content")
    if current["mode"] != entry["mode"]:
        reasons.append("mode %04o -> %04o" % (current["mode"], entry["mode"]))
    if current["uid"] != uid or current["gid"] != gid:
        reasons.append("owner")
    return reasons
