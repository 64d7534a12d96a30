# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers about kernels: version ordering, per-distro names and paths, boot-loader parsing.

Nothing here touches the system: every function takes text or names and returns data, so the
table tests in tests/unit/plugins/module_utils/ cover them with real captured input.
"""

from __future__ import annotations

import re
import shlex

# ---------------------------------------------------------------------------------------------
# Kernel release ordering
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\d+|[A-Za-z]+|~")


def _release_tokens(release):
    """Split a release like ``6.1.0-50-amd64`` into comparable tokens.

    Follows the dpkg/rpm rule that matters for kernels: runs of digits compare numerically and
    sort after letters (``6.12`` > ``6.1``; ``6.1.0-50`` > ``6.1.0-9``), ``~`` sorts first.
    """
    tokens = []
    for tok in _TOKEN.findall(release):
        if tok == "~":
            tokens.append((-1, 0, ""))
        elif tok.isdigit():
            tokens.append((1, int(tok), ""))
        else:
            tokens.append((0, 0, tok))
    return tokens


def kernel_sort_key(release):
    """Sort key ordering kernel releases oldest first."""
    return (_release_tokens(release), release)


def compare_kernels(left, right):
    """Return -1, 0 or 1 like ``cmp`` for two kernel releases."""
    a, b = kernel_sort_key(left), kernel_sort_key(right)
    return (a > b) - (a < b)


def newest_kernel(releases):
    """The newest release of an iterable, or None when it is empty."""
    releases = list(releases)
    if not releases:
        return None
    return max(releases, key=kernel_sort_key)


_MAJOR_MINOR = re.compile(r"^(\d+)\.(\d+)")


def kernel_major_minor(release):
    """``(6, 1)`` for ``6.1.0-50-amd64``. Raises ValueError for a release without x.y."""
    match = _MAJOR_MINOR.match(release or "")
    if not match:
        raise ValueError("kernel release %r does not start with MAJOR.MINOR" % (release,))
    return int(match.group(1)), int(match.group(2))


def parse_major_minor(text):
    """Parse a range bound like ``6.12`` or ``5`` into a comparable ``(major, minor)``."""
    match = re.match(r"^\s*(\d+)(?:\.(\d+))?\s*$", str(text))
    if not match:
        raise ValueError("kernel range bound %r is not MAJOR or MAJOR.MINOR (e.g. 6.12)" % (text,))
    return int(match.group(1)), int(match.group(2) or 0)


def kernel_in_range(release, minimum, maximum):
    """Whether ``release``'s MAJOR.MINOR lies within [minimum, maximum], both inclusive.

    A bare major as maximum (``6``) admits every 6.x release.
    """
    version = kernel_major_minor(release)
    low = parse_major_minor(minimum)
    high = parse_major_minor(maximum)
    if re.match(r"^\s*\d+\s*$", str(maximum)):
        high = (high[0], 10 ** 6)
    return low <= version <= high


# ---------------------------------------------------------------------------------------------
# Distribution specifics
# ---------------------------------------------------------------------------------------------

FAMILY_DEBIAN = "Debian"
FAMILY_REDHAT = "RedHat"
FAMILY_SUSE = "Suse"

_FAMILY_BY_ID = {
    "debian": FAMILY_DEBIAN,
    "ubuntu": FAMILY_DEBIAN,
    "linuxmint": FAMILY_DEBIAN,
    "raspbian": FAMILY_DEBIAN,
    "rhel": FAMILY_REDHAT,
    "centos": FAMILY_REDHAT,
    "rocky": FAMILY_REDHAT,
    "almalinux": FAMILY_REDHAT,
    "ol": FAMILY_REDHAT,
    "fedora": FAMILY_REDHAT,
    "amzn": FAMILY_REDHAT,
    "sles": FAMILY_SUSE,
    "sled": FAMILY_SUSE,
    "opensuse-leap": FAMILY_SUSE,
    "opensuse-tumbleweed": FAMILY_SUSE,
    "opensuse": FAMILY_SUSE,
}


def parse_os_release(text):
    """Parse /etc/os-release into a dict (shell-quoted KEY=value lines)."""
    data = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _sep, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("'\"")]
        data[key.strip()] = parts[0] if parts else ""
    return data


def distribution_from_os_release(os_release):
    """Distribution summary (id, family, version, major, codename) from parsed os-release."""
    dist_id = os_release.get("ID", "").lower()
    family = _FAMILY_BY_ID.get(dist_id)
    if family is None:
        for like in os_release.get("ID_LIKE", "").lower().split():
            if like in _FAMILY_BY_ID:
                family = _FAMILY_BY_ID[like]
                break
    version = os_release.get("VERSION_ID", "")
    return {
        "id": dist_id,
        "family": family or "unknown",
        "version": version,
        "version_major": version.split(".")[0] if version else "",
        "codename": os_release.get("VERSION_CODENAME", ""),
        "pretty_name": os_release.get("PRETTY_NAME", ""),
    }


def headers_package(family, release):
    """Name of the package that carries the build headers of ``release`` on ``family``."""
    if family == FAMILY_DEBIAN:
        return "linux-headers-%s" % release
    if family == FAMILY_REDHAT:
        return "kernel-devel-%s" % release
    if family == FAMILY_SUSE:
        # SUSE ships one -devel package per flavour; the flavour is the release's last word.
        flavour = release.rsplit("-", 1)[-1] if "-" in release else "default"
        if not flavour.isalpha():
            flavour = "default"
        return "kernel-%s-devel" % flavour
    return None


def image_package(family, release):
    """Name of the package that carries the kernel image of ``release`` on ``family``."""
    if family == FAMILY_DEBIAN:
        return "linux-image-%s" % release
    if family == FAMILY_REDHAT:
        return "kernel-core-%s" % release
    return None


def initramfs_candidates(release):
    """Initramfs image paths used by initramfs-tools, dracut and SUSE's mkinitrd, in that order."""
    return [
        "/boot/initrd.img-%s" % release,
        "/boot/initramfs-%s.img" % release,
        "/boot/initrd-%s" % release,
    ]


def initramfs_default_path(family, release):
    """The path a family's initramfs tool writes for ``release`` when none exists yet."""
    if family == FAMILY_REDHAT:
        return "/boot/initramfs-%s.img" % release
    if family == FAMILY_SUSE:
        return "/boot/initrd-%s" % release
    return "/boot/initrd.img-%s" % release


def symbol_map_candidates(release):
    """Where dattobd's configure step looks for the target kernel's symbol map, in its order."""
    return [
        "/lib/modules/%s/System.map" % release,
        "/boot/System.map-%s" % release,
        "/usr/lib/debug/boot/System.map-%s" % release,
    ]


SYMBOL_MAP_MARKER = "__per_cpu_start"


def classify_symbol_map(head):
    """Classify the first bytes of a System.map-like file: ``real``, ``stub`` or ``unknown``.

    A real map lists ``__per_cpu_start`` (it sorts near the top on x86_64); Debian's placeholder
    is a single line that points to the linux-image-*-dbg package (datto/dattobd#431).
    """
    if SYMBOL_MAP_MARKER in head:
        return "real"
    lowered = head.lower()
    if "-dbg" in lowered or "placeholder" in lowered or len(head.strip().splitlines()) <= 3:
        return "stub"
    return "unknown"


# ---------------------------------------------------------------------------------------------
# Next-boot kernel from GRUB
# ---------------------------------------------------------------------------------------------

_MENUENTRY = re.compile(r"^\s*(menuentry|submenu)\s+(['\"])(?P<title>.*?)\2(?P<rest>.*)\{\s*$")
_ENTRY_ID = re.compile(r"\$menuentry_id_option\s+'([^']+)'")
_LINUX_LINE = re.compile(r"^\s*linux(?:efi|16)?\s+\S*?vmlinuz-(?P<release>\S+)")


def parse_grub_menu(grub_cfg):
    """The GRUB menu as a tree: a list of items, each a dict with kind, title, id, release, children."""
    root = {"kind": "submenu", "title": "", "id": None, "release": None, "children": []}
    stack = [root]
    for line in grub_cfg.splitlines():
        match = _MENUENTRY.match(line)
        if match:
            ident = _ENTRY_ID.search(match.group("rest"))
            item = {
                "kind": match.group(1),
                "title": match.group("title"),
                "id": ident.group(1) if ident else None,
                "release": None,
                "children": [],
            }
            stack[-1]["children"].append(item)
            stack.append(item)
            continue
        if len(stack) > 1:
            linux = _LINUX_LINE.match(line)
            if linux and stack[-1]["kind"] == "menuentry" and stack[-1]["release"] is None:
                stack[-1]["release"] = linux.group("release")
            if line.strip() == "}":
                stack.pop()
    return root["children"]


def _first_entry(item):
    while item is not None and item["kind"] == "submenu":
        item = item["children"][0] if item["children"] else None
    return item


def _resolve_selector(menu, selector):
    """Follow a GRUB_DEFAULT/saved_entry selector (``0``, ``1>2``, an id or a title) to an entry."""
    items = menu
    item = None
    for part in selector.split(">"):
        part = part.strip()
        if part.isdigit():
            index = int(part)
            item = items[index] if index < len(items) else None
        else:
            item = next((i for i in items if part in (i["id"], i["title"])), None)
            if item is None and ">" not in selector:
                # A bare id or title may name an entry inside a submenu (grub-reboot accepts that).
                item = _find_anywhere(menu, part)
        if item is None:
            return None
        items = item["children"]
    return _first_entry(item)


def _find_anywhere(items, name):
    for item in items:
        if name in (item["id"], item["title"]):
            return item
        found = _find_anywhere(item["children"], name)
        if found is not None:
            return found
    return None


def parse_grubenv(text):
    """KEY=value pairs of a grubenv block (padding '#' lines ignored)."""
    env = {}
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, _sep, value = line.partition("=")
        env[key.strip()] = value.strip()
    return env


def grub_default_setting(etc_default_grub):
    """The GRUB_DEFAULT value of /etc/default/grub ('0' when unset, as GRUB does)."""
    value = "0"
    for line in etc_default_grub.splitlines():
        line = line.strip()
        if line.startswith("GRUB_DEFAULT="):
            raw = line.split("=", 1)[1]
            try:
                parts = shlex.split(raw)
            except ValueError:
                parts = [raw.strip("'\"")]
            value = parts[0] if parts else "0"
    return value


def next_boot_from_grub(grub_cfg, grubenv_text="", default_setting="0"):
    """The kernel release GRUB boots next, or None when it cannot be told.

    Honours a one-shot ``next_entry`` (grub-reboot), then ``GRUB_DEFAULT=saved`` with
    ``saved_entry`` (falling back to the first entry, as GRUB does), then GRUB_DEFAULT itself.
    """
    menu = parse_grub_menu(grub_cfg)
    if not menu:
        return None
    env = parse_grubenv(grubenv_text)
    selectors = []
    if env.get("next_entry"):
        selectors.append(env["next_entry"])
    if default_setting == "saved":
        if env.get("saved_entry"):
            selectors.append(env["saved_entry"])
        selectors.append("0")
    else:
        selectors.append(default_setting)
    for selector in selectors:
        entry = _resolve_selector(menu, selector)
        if entry is not None and entry["release"]:
            return entry["release"]
    return None


# ---------------------------------------------------------------------------------------------
# Secure Boot
# ---------------------------------------------------------------------------------------------


def parse_mokutil_sb_state(text):
    """``enabled``/``disabled``/``unknown`` from ``mokutil --sb-state`` output."""
    lowered = text.lower()
    if "secureboot enabled" in lowered:
        return "enabled"
    if "secureboot disabled" in lowered:
        return "disabled"
    if "not supported" in lowered:
        # mokutil on a BIOS machine: no EFI, hence no Secure Boot.
        return "disabled"
    return "unknown"


def parse_mokutil_test_key(text):
    """Whether the certificate ``mokutil --test-key CERT`` asked about is in the MOK list.

    ``enrolled``, ``pending`` (in the enrolment request, confirmed at the next boot), ``not-enrolled``
    or ``unknown``. mokutil's exit code is not used: only its message says which it is.
    """
    lowered = text.lower()
    if "already enrolled" in lowered:
        return "enrolled"
    if "enrollment request" in lowered or "enrolment request" in lowered:
        return "pending"
    if "not enrolled" in lowered:
        return "not-enrolled"
    return "unknown"


def parse_efivar_secure_boot(data):
    """Secure Boot state from the raw SecureBoot efivar: 4 attribute bytes then 1 value byte."""
    if len(data) < 5:
        return "unknown"
    return "enabled" if data[4] == 1 else "disabled"
