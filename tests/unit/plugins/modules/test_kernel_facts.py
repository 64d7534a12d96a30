# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kernel_facts over a prepared root tree; only run_command and get_bin_path are replaced."""

from __future__ import annotations

import os
import pathlib

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common import warnings

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _secure_boot
from ansible_collections.hypermotion.linux_agent.plugins.modules import kernel_facts

OLD, NEW = "6.1.0-50-amd64", "6.1.0-56-amd64"
FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"


def write(root, path, text=""):
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text)
    return target


@pytest.fixture
def host(tmp_path, monkeypatch, bin_paths):
    """A Debian 12 host running OLD, with NEW installed (image only) and dattobd on OLD."""
    root = tmp_path / "root"
    write(root, "/etc/os-release", 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    for kernel in (OLD, NEW):
        write(root, "/boot/vmlinuz-%s" % kernel, "kernel")
        write(root, "/boot/System.map-%s" % kernel,
              "ffffffffffffffff B The real System.map is in the linux-image-%s-dbg package\n" % kernel)
        write(root, "/lib/modules/%s/modules.dep" % kernel, "kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz\n")
    write(root, "/boot/initrd.img-%s" % OLD, "initrd")
    write(root, "/lib/modules/%s/build/include/linux/module.h" % OLD)
    write(root, "/lib/modules/%s/updates/dkms/dattobd.ko.xz" % OLD, "ko")
    write(root, "/lib/modules/%s/modules.dep" % OLD, "updates/dkms/dattobd.ko.xz:\n")
    write(root, "/var/lib/dkms/dattobd/0.12.1/%s/x86_64/module/dattobd.ko.xz" % OLD, "ko")
    write(root, "/proc/modules", "dattobd 53248 0 - Live 0x0000000000000000\next4 1 0 - Live 0x0\n")
    grub = (FIXTURES / "boot" / "grub.cfg.debian12").read_text().replace("@NEW@", NEW).replace("@OLD@", OLD)
    write(root, "/boot/grub/grub.cfg", grub)

    monkeypatch.setattr(kernel_facts, "ROOT", str(root))
    monkeypatch.setattr(kernel_facts.platform, "release", lambda: OLD)
    monkeypatch.setattr(kernel_facts.platform, "machine", lambda: "x86_64")
    bin_paths.update({"dkms": "/usr/sbin/dkms", "apt-get": "/usr/bin/apt-get",
                      "update-initramfs": "/usr/sbin/update-initramfs", "lsinitramfs": "/usr/bin/lsinitramfs"})
    calls = []

    def run_command(self, argv, **kwargs):
        calls.append(argv)
        if argv[0].endswith("dkms"):
            return 0, "dkms-3.0.10\n", ""
        if argv[0].endswith("lsinitramfs"):
            return 0, "usr/lib/modules/%s/updates/dkms/dattobd.ko.xz\nusr/bin/busybox\n" % OLD, ""
        raise AssertionError(argv)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    return root, calls


def facts(run_module, **args):
    failed, result = run_module(kernel_facts, args)
    assert not failed, result
    assert result["changed"] is False
    return result["ansible_facts"]["hypermotion_kernel"]


def test_reports_kernels_headers_maps_and_module(run_module, host):
    data = facts(run_module, modules=["dattobd"])
    assert data["running_kernel"] == OLD
    assert data["kernel_list"] == [OLD, NEW]
    assert data["distribution"]["family"] == "Debian"
    assert data["package_manager"] == "apt"
    assert data["initramfs_tool"] == "update-initramfs"
    assert data["dkms"] == {"installed": True, "version": "3.0.10", "no_autoinstall": False}
    old, new = data["kernels"][OLD], data["kernels"][NEW]
    assert old["headers_present"] and not new["headers_present"]
    assert new["headers_package"] == "linux-headers-%s" % NEW
    assert old["symbol_map"] == "kallsyms"
    assert new["symbol_map"] == "stub"
    assert new["initramfs_present"] is False and new["initramfs"] == "/boot/initrd.img-%s" % NEW
    assert old["modules"]["dattobd"] == {
        "built_versions": ["0.12.1"],
        "installed_path": "/lib/modules/%s/updates/dkms/dattobd.ko.xz" % OLD,
        "installed": True,
        "in_modules_dep": True,
        "in_initramfs": True,
        "initramfs_required": True,
        "initramfs_current": False,
        "loaded": True,
    }
    assert new["modules"]["dattobd"]["installed"] is False
    assert new["modules"]["dattobd"]["in_initramfs"] is None


def test_next_boot_from_grub_and_targets(run_module, host):
    data = facts(run_module)
    assert data["next_boot_kernel"] == NEW
    assert data["next_boot_source"] == "grub"
    assert data["kernels"][NEW]["next_boot"] is True
    assert data["target_kernels"] == [OLD, NEW]
    assert data["can_load_modules"] is True


def test_real_symbol_map_wins_over_stub(run_module, host):
    root, _calls = host
    write(root, "/usr/lib/debug/boot/System.map-%s" % NEW,
          "0000000000000000 D __per_cpu_start\nffffffff81000000 T _stext\n")
    data = facts(run_module)
    assert data["kernels"][NEW]["symbol_map"] == "real"
    assert data["kernels"][NEW]["symbol_map_path"] == "/usr/lib/debug/boot/System.map-%s" % NEW


def test_container_targets_installed_kernels_with_headers(run_module, host, monkeypatch):
    root, _calls = host
    write(root, "/run/.containerenv")
    monkeypatch.setattr(kernel_facts.platform, "release", lambda: "6.18.44-fc-v595")
    data = facts(run_module, modules=["dattobd"])
    assert data["container"] == "podman"
    assert data["can_load_modules"] is False
    assert "podman" in data["load_blocked_reason"]
    assert data["target_kernels"] == [OLD]
    assert data["kernels"][OLD]["symbol_map"] == "stub"
    assert data["kernels"][OLD]["modules"]["dattobd"]["loaded"] is False


def test_no_initramfs_lookup_without_modules(run_module, host):
    _root, calls = host
    facts(run_module)
    assert not [c for c in calls if "lsinitramfs" in c[0]]


def test_secure_boot_unknown_without_mokutil_or_efivars(run_module, host):
    assert facts(run_module)["secure_boot"] == "unknown"


def test_secure_boot_from_efivars(run_module, host):
    root, _calls = host
    write(root, _secure_boot.SECURE_BOOT_EFIVAR, b"\x06\x00\x00\x00\x01")
    data = facts(run_module)
    assert (data["secure_boot"], data["secure_boot_source"]) == ("enabled", "efivars")


@pytest.fixture
def mokutil(monkeypatch, bin_paths):
    """A scripted mokutil: Secure Boot on, and ANSWER to --test-key; returns its calls."""
    bin_paths["mokutil"] = "/usr/bin/mokutil"
    # Module warnings collect in a process-wide dict: start each case without the previous one's.
    monkeypatch.setattr(warnings, "_global_warnings", {})
    calls = []
    answer = {"test-key": "is not enrolled"}
    previous = basic.AnsibleModule.run_command

    def run_command(self, argv, **kwargs):
        if argv[0] != "/usr/bin/mokutil":
            return previous(self, argv, **kwargs)
        calls.append(argv[1:])
        if argv[1] == "--sb-state":
            return 0, "SecureBoot enabled\n", ""
        return 0, "%s %s\n" % (argv[2], answer["test-key"]), ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    return calls, answer


def test_mok_enrolled_not_asked(run_module, host, mokutil):
    calls, _answer = mokutil
    data = facts(run_module)
    assert (data["secure_boot"], data["secure_boot_source"], data["mok_enrolled"]) == ("enabled", "mokutil", None)
    assert calls == [["--sb-state"]]


@pytest.mark.parametrize(("answer", "state", "warned"), [
    ("is not enrolled", "not-enrolled", True),
    ("is already enrolled", "enrolled", False),
])
def test_mok_enrolled(run_module, host, mokutil, answer, state, warned):
    root, _calls = host
    calls, answers = mokutil
    answers["test-key"] = answer
    write(root, "/var/lib/dkms/mok.pub", b"der")
    failed, result = run_module(kernel_facts, {"mok_certificate": "/var/lib/dkms/mok.pub"})
    assert not failed, result
    assert result["ansible_facts"]["hypermotion_kernel"]["mok_enrolled"] == state
    assert calls[-1] == ["--test-key", "/var/lib/dkms/mok.pub"]
    warnings = str(result.get("warnings", []))  # strings, or dicts with the message (ansible-core 2.19)
    assert ("MOK enrolment needed" in warnings) is warned
    assert ("mokutil --import /var/lib/dkms/mok.pub" in warnings) is warned


def test_mok_enrolled_certificate_missing(run_module, host, mokutil):
    calls, _answer = mokutil
    assert facts(run_module, mok_certificate="/var/lib/dkms/mok.pub")["mok_enrolled"] is None
    assert ["--test-key", "/var/lib/dkms/mok.pub"] not in calls


def test_disk_free_of_nearest_existing_parent(run_module, host):
    data = facts(run_module, disk_paths=["/var/lib/dkms", "/usr/src"])
    assert set(data["disk_free_mb"]) == {"/var/lib/dkms", "/usr/src"}
    assert all(isinstance(v, int) and v > 0 for v in data["disk_free_mb"].values())


def test_initramfs_current_follows_mtimes(run_module, host):
    root, _calls = host
    module_file = root / ("lib/modules/%s/updates/dkms/dattobd.ko.xz" % OLD)
    image = root / ("boot/initrd.img-%s" % OLD)
    os.utime(module_file, (1000, 1000))
    os.utime(image, (2000, 2000))
    assert facts(run_module, modules=["dattobd"])["kernels"][OLD]["modules"]["dattobd"]["initramfs_current"] is True
    os.utime(module_file, (3000, 3000))
    assert facts(run_module, modules=["dattobd"])["kernels"][OLD]["modules"]["dattobd"]["initramfs_current"] is False


@pytest.mark.parametrize("args, in_image, required, current", [
    pytest.param({"modules": ["v4l2loopback"]}, False, False, True, id="generic module, not in the image"),
    pytest.param({"modules": ["v4l2loopback"]}, True, False, False, id="generic module, older copy in the image"),
    pytest.param({"modules": ["v4l2loopback"], "initramfs_modules": ["v4l2loopback"]}, False, True, False,
                 id="declared an initramfs module"),
    pytest.param({"modules": ["dattobd"], "initramfs_modules": []}, False, False, True,
                 id="dattobd declared not to belong there"),
])
def test_initramfs_current_only_where_the_module_belongs(run_module, host, monkeypatch, args, in_image, required,
                                                         current):
    root, _calls = host
    name = args["modules"][0]
    module_file = write(root, "/lib/modules/%s/updates/dkms/%s.ko.xz" % (OLD, name), "ko")
    os.utime(module_file, (3000, 3000))
    os.utime(root / ("boot/initrd.img-%s" % OLD), (2000, 2000))
    listing = "usr/lib/modules/%s/updates/dkms/%s.ko.xz\n" % (OLD, name) if in_image else "usr/bin/busybox\n"

    def run_command(self, argv, **kwargs):
        if argv[0].endswith("lsinitramfs"):
            return 0, listing, ""
        return 0, "dkms-3.0.10\n", ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    state = facts(run_module, **args)["kernels"][OLD]["modules"][name]
    assert (state["in_initramfs"], state["initramfs_required"], state["initramfs_current"]) == (
        in_image, required, current)


def test_dattobd_keeps_its_meaning_by_default(run_module, host):
    state = facts(run_module, modules=["dattobd", "v4l2loopback"])["kernels"][OLD]["modules"]
    assert state["dattobd"]["initramfs_required"] is True
    assert state["v4l2loopback"]["initramfs_required"] is False
    assert state["v4l2loopback"]["initramfs_current"] is True
