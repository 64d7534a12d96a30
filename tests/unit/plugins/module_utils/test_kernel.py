# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pathlib

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _kernel

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "unit" / "fixtures"


@pytest.mark.parametrize(
    "older, newer",
    [
        pytest.param("6.1.0-9-amd64", "6.1.0-50-amd64", id="ABI numbers compare as numbers"),
        pytest.param("6.1.0-56-amd64", "6.12.57+deb13-amd64", id="6.12 is newer than 6.1"),
        pytest.param("5.14.0-362.el9.x86_64", "5.14.0-427.el9.x86_64", id="RHEL z-stream"),
        pytest.param("5.15.0-91-generic", "6.8.0-45-generic", id="Ubuntu HWE"),
        pytest.param("6.12.57+deb13-amd64", "6.16.3+deb13-amd64", id="backports kernel"),
        pytest.param("6.1.0~rc1-amd64", "6.1.0-amd64", id="tilde sorts before release"),
    ],
)
def test_kernel_ordering(older, newer):
    assert _kernel.compare_kernels(older, newer) == -1
    assert _kernel.compare_kernels(newer, older) == 1
    assert _kernel.newest_kernel([newer, older]) == newer
    assert sorted([newer, older], key=_kernel.kernel_sort_key) == [older, newer]


def test_compare_equal_and_empty():
    assert _kernel.compare_kernels("6.1.0-50-amd64", "6.1.0-50-amd64") == 0
    assert _kernel.newest_kernel([]) is None


@pytest.mark.parametrize(
    "release, minimum, maximum, inside",
    [
        pytest.param("6.1.0-50-amd64", "3.10", "6.12", True, id="Debian 12 inside"),
        pytest.param("6.12.57+deb13-amd64", "3.10", "6.12", True, id="upper bound inclusive"),
        pytest.param("6.16.3+deb13-amd64", "3.10", "6.12", False, id="backports kernel above range"),
        pytest.param("3.2.0-4-amd64", "3.10", "6.12", False, id="below range"),
        pytest.param("6.16.3+deb13-amd64", "3.10", "6", True, id="bare major admits every minor"),
        pytest.param("7.3.0-1-amd64", "3.10", "6", False, id="next major outside bare major"),
    ],
)
def test_kernel_in_range(release, minimum, maximum, inside):
    assert _kernel.kernel_in_range(release, minimum, maximum) is inside


@pytest.mark.parametrize("bad", ["", "linux", "amd64-6.1"])
def test_major_minor_rejects_garbage(bad):
    with pytest.raises(ValueError, match="MAJOR.MINOR"):
        _kernel.kernel_major_minor(bad)


def test_range_bound_rejects_garbage():
    with pytest.raises(ValueError, match="range bound"):
        _kernel.kernel_in_range("6.1.0-50-amd64", "six", "6.12")


OS_RELEASE_BOOKWORM = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""

OS_RELEASE_ROCKY = """NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
"""

OS_RELEASE_UNKNOWN_LIKE_SUSE = """ID="mycorp-linux"
ID_LIKE="suse opensuse"
VERSION_ID="15.5"
"""


@pytest.mark.parametrize(
    "text, family, major, codename",
    [
        pytest.param(OS_RELEASE_BOOKWORM, "Debian", "12", "bookworm", id="debian 12"),
        pytest.param(OS_RELEASE_ROCKY, "RedHat", "9", "", id="rocky via ID"),
        pytest.param(OS_RELEASE_UNKNOWN_LIKE_SUSE, "Suse", "15", "", id="derivative via ID_LIKE"),
        pytest.param("", "unknown", "", "", id="no os-release"),
    ],
)
def test_distribution(text, family, major, codename):
    dist = _kernel.distribution_from_os_release(_kernel.parse_os_release(text))
    assert dist["family"] == family
    assert dist["version_major"] == major
    assert dist["codename"] == codename


@pytest.mark.parametrize(
    "family, release, package",
    [
        ("Debian", "6.1.0-50-amd64", "linux-headers-6.1.0-50-amd64"),
        ("RedHat", "5.14.0-427.el9.x86_64", "kernel-devel-5.14.0-427.el9.x86_64"),
        ("Suse", "5.14.21-150500.55.52-default", "kernel-default-devel"),
        ("Suse", "6.4.0-150600.23.7-azure", "kernel-azure-devel"),
        ("unknown", "6.1.0", None),
    ],
)
def test_headers_package(family, release, package):
    assert _kernel.headers_package(family, release) == package


def test_initramfs_paths():
    assert _kernel.initramfs_default_path("Debian", "6.1.0-50-amd64") == "/boot/initrd.img-6.1.0-50-amd64"
    assert _kernel.initramfs_default_path("RedHat", "5.14.0-427.el9.x86_64") == (
        "/boot/initramfs-5.14.0-427.el9.x86_64.img"
    )
    assert _kernel.initramfs_default_path("Suse", "5.14.21-default") == "/boot/initrd-5.14.21-default"
    assert _kernel.initramfs_candidates("K")[0] == "/boot/initrd.img-K"


@pytest.mark.parametrize(
    "head, verdict",
    [
        pytest.param(
            "ffffffff81000000 T _stext\n0000000000000000 D __per_cpu_start\n", "real", id="real map"
        ),
        pytest.param(
            "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n",
            "stub",
            id="debian stub",
        ),
        pytest.param("ffffffff81000000 T _stext\n" * 50, "unknown", id="long map without marker"),
    ],
)
def test_classify_symbol_map(head, verdict):
    assert _kernel.classify_symbol_map(head) == verdict


@pytest.mark.parametrize(
    "text, state",
    [
        ("SecureBoot enabled\n", "enabled"),
        ("SecureBoot disabled\n", "disabled"),
        ("EFI variables are not supported on this system\n", "disabled"),
        ("", "unknown"),
    ],
)
def test_mokutil_sb_state(text, state):
    assert _kernel.parse_mokutil_sb_state(text) == state


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("/var/lib/dkms/mok.pub is already enrolled\n", "enrolled"),
        ("/var/lib/dkms/mok.pub is not enrolled\n", "not-enrolled"),
        ("/var/lib/dkms/mok.pub is already in the enrollment request\n", "pending"),
        ("EFI variables are not supported on this system\n", "unknown"),
        ("", "unknown"),
    ],
)
def test_mokutil_test_key(text, state):
    assert _kernel.parse_mokutil_test_key(text) == state


def test_efivar_secure_boot():
    assert _kernel.parse_efivar_secure_boot(b"\x06\x00\x00\x00\x01") == "enabled"
    assert _kernel.parse_efivar_secure_boot(b"\x06\x00\x00\x00\x00") == "disabled"
    assert _kernel.parse_efivar_secure_boot(b"\x06") == "unknown"


def test_grub_default_setting():
    assert _kernel.grub_default_setting("") == "0"
    assert _kernel.grub_default_setting('GRUB_DEFAULT=saved\nGRUB_TIMEOUT=5\n') == "saved"
    assert _kernel.grub_default_setting('GRUB_DEFAULT="1>2"\n') == "1>2"


OLD, NEW = "6.1.0-50-amd64", "6.1.0-56-amd64"
GRUB_CFG = (FIXTURES / "boot" / "grub.cfg.debian12").read_text().replace("@NEW@", NEW).replace("@OLD@", OLD)


@pytest.mark.parametrize(
    "grubenv, default, expected",
    [
        pytest.param("", "0", NEW, id="default 0 boots the newest entry"),
        pytest.param("", "1>1", OLD, id="submenu path by index"),
        pytest.param("", "1", NEW, id="index of a submenu boots its first entry"),
        pytest.param("saved_entry=gnulinux-advanced-2b6f1a4e>gnulinux-%s-advanced-2b6f1a4e\n" % OLD,
                     "saved", OLD, id="saved entry by id path"),
        pytest.param("saved_entry=Debian GNU/Linux, with Linux %s\n" % OLD, "saved", OLD, id="saved entry by title"),
        pytest.param("", "saved", NEW, id="saved without saved_entry falls back to the first"),
        pytest.param("next_entry=gnulinux-%s-advanced-2b6f1a4e\n" % OLD, "0", OLD, id="grub-reboot one-shot"),
        pytest.param("", "7", None, id="index out of range"),
    ],
)
def test_next_boot_from_grub(grubenv, default, expected):
    assert _kernel.next_boot_from_grub(GRUB_CFG, grubenv, default) == expected


def test_grub_menu_tree():
    menu = _kernel.parse_grub_menu(GRUB_CFG)
    assert [item["kind"] for item in menu] == ["menuentry", "submenu"]
    assert [child["release"] for child in menu[1]["children"]] == [NEW, OLD]
    assert _kernel.next_boot_from_grub("") is None
