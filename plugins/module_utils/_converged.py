# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fingerprint of a converged host, and what differs from the last verified install.

A successful install records the fingerprint of everything it manages (files, the DKMS tree, each
kernel's module file and initramfs, packages, services, the loaded module) together with a digest of the
variables it ran with. The next run reads the host once, in one module call, and compares: equal means
nothing the roles would look at has changed since they last verified it, so they can be skipped in bulk.
Anything different — a file, a kernel, a package, a stopped service, another variable — sends the run down
the full path, which checks and repairs as usual and records again.

The readers below take ``root`` so unit tests can point them at a prepared tree; the comparison and the
parsers of command output are pure.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import stat

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _host, _packages

# The stamp's format; a stamp of another format is treated as no stamp (full path, then re-recorded).
STAMP_FORMAT = 1
# One dpkg-query call lists every package: the fingerprinted ones and any dpkg left half-done.
DPKG_QUERY_FORMAT = "${db:Status-Abbrev}\t${Package}\t${Version}\n"
SYSTEMCTL_PROPERTIES = ("Id", "LoadState", "ActiveState", "UnitFileState")


def _p(root, path):
    return os.path.join(root, path.lstrip("/"))


def digest(data):
    """sha256 of a JSON-serialisable value, independent of dict order."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _entry(full, st):
    kind = "link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "file"
    entry = {"type": kind, "mode": "%04o" % stat.S_IMODE(st.st_mode), "owner": "%d:%d" % (st.st_uid, st.st_gid)}
    if kind == "link":
        entry["target"] = os.readlink(full)
    elif kind == "file":
        entry["size"] = st.st_size
        entry["sha256"] = _host.file_sha256(full)
    return entry


def path_fingerprint(root, path):
    """A file: its type, mode, owner and sha256. A directory: the same for every entry below it.

    Content, never modification times: a host restored from a backup or an image (tar keeps whole
    seconds) is the same host. What the install manages is small (sources, DKMS builds, a few
    downloads): hashing it costs milliseconds. A missing path: ``absent``."""
    full = _p(root, path)
    try:
        st = os.lstat(full)
    except OSError:
        return "absent"
    if not stat.S_ISDIR(st.st_mode):
        return _entry(full, st)
    tree = {".": _entry(full, st)}
    for dirpath, dirnames, filenames in os.walk(full):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            child = os.path.join(dirpath, name)
            try:
                tree[os.path.relpath(child, full)] = _entry(child, os.lstat(child))
            except OSError:
                continue
    return tree


def present_matches(root, patterns):
    """Paths matching any of the glob patterns (files that must not exist, e.g. temporary sources)."""
    found = []
    for pattern in patterns:
        found.extend("/" + os.path.relpath(path, root) for path in glob.glob(_p(root, pattern)))
    return sorted(set(found))


def kernel_fingerprint(root, release, modules, family):
    """What the roles manage per kernel: the image, each module file, depmod's index, the initramfs."""
    image = _host.image_path(root, release)
    initramfs = _host.initramfs_image(root, release, family)
    dep = _p(root, "/lib/modules/%s/modules.dep" % release)
    entry = {
        "image": path_fingerprint(root, image) if image else "absent",
        "initramfs": path_fingerprint(root, initramfs) if initramfs else "absent",
        "modules_dep": "absent",
        "modules": {},
    }
    if os.path.isfile(dep):
        entry["modules_dep"] = _host.file_sha256(dep)
    for name in modules:
        found = _host.find_module_file(root, release, name)
        entry["modules"][name] = {"path": found, "file": path_fingerprint(root, found) if found else "absent"}
    return entry


def parse_dpkg_query(text):
    """``{package: {"abbrev": "ii ", "version": V}}`` from DPKG_QUERY_FORMAT output."""
    packages = {}
    for line in (text or "").splitlines():
        fields = line.split("\t")
        if len(fields) != 3 or len(fields[0]) != 3 or not fields[1]:
            continue
        packages[fields[1]] = {"abbrev": fields[0], "version": fields[2]}
    return packages


def unfinished_packages(packages):
    """Names of the packages dpkg left half-done (the install refuses to run on such a host)."""
    return sorted(name for name, entry in packages.items()
                  if entry["abbrev"][1] in _packages.UNFINISHED_STATUS
                  or entry["abbrev"][2] == _packages.REINST_REQUIRED)


def select_packages(packages, patterns):
    """The packages whose names match any glob pattern: ``{name: "ABBREV VERSION"}``."""
    return {name: "%s %s" % (entry["abbrev"].strip(), entry["version"]) for name, entry in packages.items()
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)}


def parse_systemctl_show(text):
    """``{unit: {property: value}}`` from ``systemctl show -p Id,LoadState,ActiveState,UnitFileState U...``.

    systemctl prints one block per unit, separated by a blank line, in the order asked."""
    units = {}
    for block in (text or "").strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            units[props["Id"]] = {key: props.get(key, "") for key in SYSTEMCTL_PROPERTIES if key != "Id"}
    return units


def unit_name(name):
    return name if "." in name else name + ".service"


def service_problems(units, services):
    """Reasons the services that must run do not: not found, not active or not enabled."""
    problems = []
    for name in services:
        props = units.get(unit_name(name))
        if props is None or props.get("LoadState") != "loaded":
            problems.append("service %s is not installed" % name)
            continue
        if props.get("ActiveState") != "active":
            problems.append("service %s is %s, not active" % (name, props.get("ActiveState") or "unknown"))
        if props.get("UnitFileState") not in ("enabled", "static", "enabled-runtime"):
            problems.append("service %s is %s, not enabled" % (name, props.get("UnitFileState") or "unknown"))
    return problems


def _walk(prefix, before, after, out):
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            _walk(prefix + (key,), before.get(key, "absent"), after.get(key, "absent"), out)
    elif before != after:
        out.append(prefix)


def differences(recorded, current):
    """Key paths (tuples into the fingerprint) whose values differ."""
    out = []
    _walk((), recorded, current, out)
    return out


_KERNEL_PARTS = {"image": "image", "initramfs": "initramfs", "modules_dep": "depmod index"}


def describe(key):
    """An operator's name for a differing key path: the file, the kernel's part, the package, the unit."""
    head, rest = key[0], key[1:]
    if head == "paths" and rest:
        return rest[0]
    if head == "kernels" and rest:
        if len(rest) == 1:
            return "kernel %s (installed or removed)" % rest[0]
        if rest[1] == "modules" and len(rest) > 2:
            return "kernel %s %s module" % (rest[0], rest[2])
        return "kernel %s %s" % (rest[0], _KERNEL_PARTS.get(rest[1], rest[1]))
    if head == "packages" and rest:
        return "package " + rest[0]
    if head == "units" and rest:
        return "unit %s enablement" % rest[0]
    if head == "loaded" and rest:
        return "%s loaded or not" % rest[0]
    return {"running_kernel": "the running kernel", "secure_boot": "Secure Boot"}.get(head, "/".join(key))


def compare(stamp, inputs_sha256, fingerprint, live_problems, limit=10):
    """Whether the host is as the last verified install left it, and if not, why (operator's words)."""
    reasons = list(live_problems)
    if not isinstance(stamp, dict) or stamp.get("format") != STAMP_FORMAT:
        reasons.append("no record of a verified install on this host")
        return False, reasons
    if stamp.get("inputs_sha256") != inputs_sha256:
        reasons.append("the install variables differ from the last verified install")
    changed = []
    for key in differences(stamp.get("fingerprint", {}), fingerprint):
        name = describe(key)
        if name not in changed:
            changed.append(name)
    if changed:
        shown = changed[:limit]
        more = len(changed) - len(shown)
        reasons.append("changed since the last verified install: %s%s"
                       % (", ".join(shown), " and %d more" % more if more > 0 else ""))
    return not reasons, reasons


def stamp_document(inputs_sha256, fingerprint):
    return {"format": STAMP_FORMAT, "inputs_sha256": inputs_sha256, "fingerprint": fingerprint}
