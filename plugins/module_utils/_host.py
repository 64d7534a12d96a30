# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only probes of a host's kernels, boot files and DKMS tree.

Everything reads files below ``root`` (``/`` on a real host, a prepared tree in unit tests)
and never runs a command or writes: the modules run commands, this only reads.
"""

from __future__ import annotations

import hashlib
import os
import re

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _kernel

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def _p(root, path):
    return os.path.join(root, path.lstrip("/"))


def read_text(root, path, limit=None):
    """File content as text, or None when it cannot be read."""
    try:
        with open(_p(root, path), "rb") as handle:
            data = handle.read() if limit is None else handle.read(limit)
    except OSError:
        return None
    return data.decode("utf-8", "replace")


def file_sha256(full):
    """sha256 of a file, read in 1 MiB chunks (the path as given: callers add their root)."""
    digest = hashlib.sha256()
    with open(full, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def exists(root, path):
    return os.path.exists(_p(root, path))


def installed_kernels(root="/"):
    """Releases that have an image in /boot or a directory in /lib/modules."""
    releases = set()
    try:
        for name in os.listdir(_p(root, "/boot")):
            for prefix in ("vmlinuz-", "vmlinux-", "Image-"):
                if name.startswith(prefix) and len(name) > len(prefix):
                    releases.add(name[len(prefix):])
    except OSError:
        pass
    try:
        for name in os.listdir(_p(root, "/lib/modules")):
            if os.path.isdir(_p(root, "/lib/modules/" + name)):
                releases.add(name)
    except OSError:
        pass
    return sorted(releases, key=_kernel.kernel_sort_key)


def image_path(root, release):
    for prefix in ("vmlinuz-", "vmlinux-", "Image-"):
        path = "/boot/%s%s" % (prefix, release)
        if exists(root, path):
            return path
    return None


def headers_present(root, release):
    """DKMS's own test: the kernel's build tree has an include directory."""
    return os.path.isdir(_p(root, "/lib/modules/%s/build/include" % release))


def symbol_map(root, release, running_release):
    """Status of the target kernel's symbol map: (status, path).

    ``real`` — a map listing __per_cpu_start; ``kallsyms`` — no real map, but the kernel is the
    running one, so /proc/kallsyms serves; ``stub`` — only Debian's placeholder; ``missing``.
    """
    stub_path = None
    for path in _kernel.symbol_map_candidates(release):
        full = _p(root, path)
        if not os.path.isfile(full):
            continue
        kind = _classify_map_file(full)
        if kind == "real":
            return "real", path
        if stub_path is None:
            stub_path = path
    if release == running_release:
        return "kallsyms", "/proc/kallsyms"
    if stub_path is not None:
        return "stub", stub_path
    return "missing", None


def _classify_map_file(full):
    # __per_cpu_start sorts to the top of an x86_64 map, but other arches place it later:
    # read in chunks and stop at the first hit instead of loading a 5 MB file at once.
    try:
        with open(full, "rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
            if _kernel.SYMBOL_MAP_MARKER in head:
                return "real"
            verdict = _kernel.classify_symbol_map(head)
            if verdict == "stub":
                return "stub"
            carry = head[-64:]
            while True:
                chunk = handle.read(1 << 20)
                if not chunk:
                    return verdict
                text = carry + chunk.decode("utf-8", "replace")
                if _kernel.SYMBOL_MAP_MARKER in text:
                    return "real"
                carry = text[-64:]
    except OSError:
        return "unknown"


def initramfs_image(root, release, family):
    for path in _kernel.initramfs_candidates(release):
        if exists(root, path):
            return path
    return None


def find_module_file(root, release, name):
    """Path of ``name``'s module file under /lib/modules/RELEASE, or None.

    DKMS installs to updates/dkms on Debian/Ubuntu and extra on RHEL/SUSE; DEST_MODULE_LOCATION
    may name kernel/drivers/block. A full walk is the fallback for custom locations.
    """
    base = "/lib/modules/%s" % release
    for sub in ("updates/dkms", "updates", "extra", "kernel/drivers/block", "weak-updates"):
        for suffix in MODULE_SUFFIXES:
            path = "%s/%s/%s%s" % (base, sub, name, suffix)
            if os.path.isfile(_p(root, path)):
                return path
    wanted = set(name + suffix for suffix in MODULE_SUFFIXES)
    top = _p(root, base)
    for dirpath, dirnames, filenames in os.walk(top):
        # build/ and source/ point into the headers tree: never descend there.
        dirnames[:] = [d for d in dirnames if d not in ("build", "source")]
        for filename in filenames:
            if filename in wanted:
                return "/" + os.path.relpath(os.path.join(dirpath, filename), root).lstrip("/")
    return None


def in_modules_dep(root, release, name):
    """Whether depmod has indexed ``name`` for RELEASE (modules.dep lists its path)."""
    text = read_text(root, "/lib/modules/%s/modules.dep" % release)
    if not text:
        return False
    pattern = re.compile(r"(^|/)%s\.ko(\.\w+)?:" % re.escape(name), re.M)
    return bool(pattern.search(text))


def dkms_built_versions(root, name, release):
    """Versions of DKMS module ``name`` that have a built module for RELEASE."""
    versions = []
    base = _p(root, "/var/lib/dkms/%s" % name)
    try:
        candidates = sorted(os.listdir(base))
    except OSError:
        return versions
    for version in candidates:
        kernel_dir = os.path.join(base, version, release)
        if os.path.islink(os.path.join(base, version)) or not os.path.isdir(kernel_dir):
            continue
        for arch in os.listdir(kernel_dir):
            module_dir = os.path.join(kernel_dir, arch, "module")
            if os.path.isdir(module_dir) and any(f.startswith(name + ".ko") for f in os.listdir(module_dir)):
                versions.append(version)
                break
    return versions


def loaded_modules(root="/"):
    """Names of loaded modules from /proc/modules."""
    text = read_text(root, "/proc/modules") or ""
    return set(line.split(" ", 1)[0] for line in text.splitlines() if line)


def container_kind(root="/"):
    """Name of the container or chroot this runs in, or None on a host of its own.

    The running kernel then belongs to another machine: modules must never be loaded.
    """
    if exists(root, "/run/.containerenv"):
        return "podman"
    if exists(root, "/.dockerenv"):
        return "docker"
    environ = read_text(root, "/proc/1/environ") or ""
    for item in environ.split("\0"):
        if item.startswith("container="):
            return item.split("=", 1)[1] or "container"
    if root == "/":
        try:
            mine, init = os.stat("/"), os.stat("/proc/1/root/.")
            if (mine.st_dev, mine.st_ino) != (init.st_dev, init.st_ino):
                return "chroot"
        except OSError:
            pass
    return None
