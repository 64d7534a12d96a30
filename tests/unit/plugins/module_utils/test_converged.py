# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
import os
import pathlib

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _converged

# Captured in the Debian 12 test image (tests/testbed): `dpkg-query -W -f=<DPKG_QUERY_FORMAT>` as built, and
# `systemctl show -p Id,LoadState,ActiveState,UnitFileState -- ...` on a host the install converged.
FIXTURES = pathlib.Path(__file__).parents[3] / "unit" / "fixtures" / "converged"
DPKG = (FIXTURES / "bookworm-dpkg-query.txt").read_text()
SYSTEMCTL = (FIXTURES / "bookworm-systemctl-show.txt").read_text()


def test_parse_dpkg_query_captured():
    packages = _converged.parse_dpkg_query(DPKG)
    assert len(packages) == len(DPKG.splitlines())
    assert packages["apt"] == {"abbrev": "ii ", "version": "2.6.1"}
    assert _converged.unfinished_packages(packages) == []


@pytest.mark.parametrize(("text", "unfinished"), [
    pytest.param("iF \thm-probe\t1.0\nii \tbash\t5.2\n", ["hm-probe"], id="half-configured"),
    pytest.param("iU \tunpacked\t1\n", ["unpacked"], id="unpacked"),
    pytest.param("iiR\tflagged\t1\n", ["flagged"], id="reinst-required"),
    pytest.param("rc \told\t1\n", [], id="config-files-only"),
    pytest.param("garbage\n\nii \t\t1\n", [], id="malformed-lines"),
])
def test_unfinished_packages(text, unfinished):
    assert _converged.unfinished_packages(_converged.parse_dpkg_query(text)) == unfinished


def test_select_packages_by_glob():
    packages = _converged.parse_dpkg_query(
        "ii \tlinux-image-6.1.0-41-amd64\t6.1.158-1\nii \tlinux-headers-6.1.0-41-amd64\t6.1.158-1\n"
        "ii \tdkms\t3.0.10-8+deb12u1\nii \tbash\t5.2.15-2+b9\nrc \tlinux-image-6.1.0-40-amd64\t6.1.153-1\n")
    assert _converged.select_packages(packages, ["dkms", "linux-image-*"]) == {
        "dkms": "ii 3.0.10-8+deb12u1",
        "linux-image-6.1.0-41-amd64": "ii 6.1.158-1",
        "linux-image-6.1.0-40-amd64": "rc 6.1.153-1",
    }


def test_parse_systemctl_show_captured():
    units = _converged.parse_systemctl_show(SYSTEMCTL)
    assert units["egisplus-agent.service"] == {"LoadState": "loaded", "ActiveState": "active",
                                               "UnitFileState": "enabled"}
    assert units["hypermotion-dattobd-build.service"]["UnitFileState"] == "enabled"
    assert _converged.service_problems(units, ["egisplus-agent", "hypermotion-monitor"]) == []


@pytest.mark.parametrize(("props", "problems"), [
    pytest.param(None, ["service svc is not installed"], id="unknown-unit"),
    pytest.param({"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""},
                 ["service svc is not installed"], id="not-found"),
    pytest.param({"LoadState": "loaded", "ActiveState": "failed", "UnitFileState": "enabled"},
                 ["service svc is failed, not active"], id="failed"),
    pytest.param({"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "disabled"},
                 ["service svc is disabled, not enabled"], id="disabled"),
    pytest.param({"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"}, [], id="running"),
])
def test_service_problems(props, problems):
    units = {} if props is None else {"svc.service": props}
    assert _converged.service_problems(units, ["svc"]) == problems


def test_path_fingerprint_file_and_directory(tmp_path):
    root = tmp_path
    (root / "etc").mkdir()
    conf = root / "etc" / "dattobd.conf"
    conf.write_text("dattobd\n")
    conf.chmod(0o644)
    tree = root / "usr" / "src" / "dattobd-1"
    (tree / "src").mkdir(parents=True)
    (tree / "dkms.conf").write_text("PACKAGE_NAME=dattobd\n")
    os.symlink("dkms.conf", tree / "link")

    entry = _converged.path_fingerprint(str(root), "/etc/dattobd.conf")
    assert entry["type"] == "file" and entry["mode"] == "0644" and entry["size"] == 8
    assert entry["sha256"] == hashlib.sha256(b"dattobd\n").hexdigest()
    listing = _converged.path_fingerprint(str(root), "/usr/src/dattobd-1")
    assert sorted(listing) == [".", "dkms.conf", "link", "src"]
    assert listing["link"] == {"type": "link", "mode": listing["link"]["mode"], "owner": listing["link"]["owner"],
                               "target": "dkms.conf"}
    assert _converged.path_fingerprint(str(root), "/nowhere") == "absent"


def test_path_fingerprint_sees_every_kind_of_change(tmp_path):
    root = str(tmp_path)
    target = tmp_path / "f"
    target.write_text("a")
    before = _converged.path_fingerprint(root, "/f")
    target.write_text("b")  # same size, other content
    assert _converged.path_fingerprint(root, "/f") != before
    before = _converged.path_fingerprint(root, "/f")
    target.chmod(0o600)
    assert _converged.path_fingerprint(root, "/f") != before

    # A restore from an image or backup may change modification times only: the same file.
    before = _converged.path_fingerprint(root, "/f")
    os.utime(target, (1, 1))
    assert _converged.path_fingerprint(root, "/f") == before

    (tmp_path / "d").mkdir()
    before = _converged.path_fingerprint(root, "/d")
    (tmp_path / "d" / "new").write_text("x")
    assert _converged.path_fingerprint(root, "/d") != before
    assert _converged.path_fingerprint(root, "/d") == _converged.path_fingerprint(root, "/d")


def test_present_matches(tmp_path):
    sources = tmp_path / "etc" / "apt" / "sources.list.d"
    sources.mkdir(parents=True)
    (sources / "debian.sources").write_text("")
    assert _converged.present_matches(str(tmp_path), ["/etc/apt/sources.list.d/hypermotion-linux-agent-*"]) == []
    (sources / "hypermotion-linux-agent-backports.sources").write_text("")
    assert _converged.present_matches(str(tmp_path), ["/etc/apt/sources.list.d/hypermotion-linux-agent-*"]) == [
        "/etc/apt/sources.list.d/hypermotion-linux-agent-backports.sources"]


def test_kernel_fingerprint(tmp_path):
    root = tmp_path
    release = "6.1.0-41-amd64"
    for path, text in [("boot/vmlinuz-" + release, "k"), ("boot/initrd.img-" + release, "i"),
                       ("lib/modules/%s/modules.dep" % release, "updates/dkms/dattobd.ko:\n"),
                       ("lib/modules/%s/updates/dkms/dattobd.ko" % release, "ko")]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    entry = _converged.kernel_fingerprint(str(root), release, ["dattobd", "other"], None)
    assert entry["modules"]["dattobd"]["path"] == "/lib/modules/%s/updates/dkms/dattobd.ko" % release
    assert entry["modules"]["other"] == {"path": None, "file": "absent"}
    assert entry["initramfs"]["type"] == "file"
    before = _converged.digest(entry)
    (root / "boot" / ("initrd.img-" + release)).write_text("j")
    assert _converged.digest(_converged.kernel_fingerprint(str(root), release, ["dattobd", "other"], None)) != before


FP = {"kernels": {"6.1": {"initramfs": {"sha256": "a"}}}, "units": {"svc": "enabled"}}


@pytest.mark.parametrize(("stamp", "inputs", "current", "problems", "converged", "reasons"), [
    pytest.param(_converged.stamp_document("i", FP), "i", FP, [], True, [], id="equal"),
    pytest.param(None, "i", FP, [], False, ["no record of a verified install on this host"], id="no-stamp"),
    pytest.param({"format": 0, "inputs_sha256": "i", "fingerprint": FP}, "i", FP, [], False,
                 ["no record of a verified install on this host"], id="older-format"),
    pytest.param(_converged.stamp_document("i", FP), "j", FP, [], False,
                 ["the install variables differ from the last verified install"], id="variables"),
    pytest.param(_converged.stamp_document("i", FP), "i",
                 {"kernels": {"6.1": {"initramfs": {"sha256": "b"}}, "6.12": {}}, "units": {"svc": "enabled"}},
                 [], False, ["changed since the last verified install: kernel 6.1 initramfs, "
                             "kernel 6.12 (installed or removed)"],
                 id="initramfs-and-new-kernel"),
    pytest.param(_converged.stamp_document("i", FP), "i", FP, ["service svc is failed, not active"], False,
                 ["service svc is failed, not active"], id="live-problem-wins"),
])
def test_compare(stamp, inputs, current, problems, converged, reasons):
    assert _converged.compare(stamp, inputs, current, problems) == (converged, reasons)


def test_compare_shortens_long_lists():
    before = {"paths": {str(n): "a" for n in range(15)}}
    after = {"paths": {str(n): "b" for n in range(15)}}
    _ok, reasons = _converged.compare(_converged.stamp_document("i", before), "i", after, [], limit=3)
    assert reasons == ["changed since the last verified install: 0, 1, 10 and 12 more"]


def test_digest_ignores_key_order():
    assert _converged.digest({"a": 1, "b": [1, 2]}) == _converged.digest({"b": [1, 2], "a": 1})
    assert _converged.digest({"a": 1}) != _converged.digest({"a": 2})


@pytest.mark.parametrize(("key", "name"), [
    (("paths", "/etc/modules-load.d/dattobd.conf", "sha256"), "/etc/modules-load.d/dattobd.conf"),
    (("paths", "/var/lib/dkms/dattobd", "0.12.1/source"), "/var/lib/dkms/dattobd"),
    (("kernels", "6.12.57+deb12-amd64"), "kernel 6.12.57+deb12-amd64 (installed or removed)"),
    (("kernels", "6.1.0-41-amd64", "initramfs", "sha256"), "kernel 6.1.0-41-amd64 initramfs"),
    (("kernels", "6.1.0-41-amd64", "modules_dep"), "kernel 6.1.0-41-amd64 depmod index"),
    (("kernels", "6.1.0-41-amd64", "modules", "dattobd", "file"), "kernel 6.1.0-41-amd64 dattobd module"),
    (("packages", "dkms"), "package dkms"),
    (("units", "hypermotion-dattobd-build.service"), "unit hypermotion-dattobd-build.service enablement"),
    (("loaded", "dattobd"), "dattobd loaded or not"),
    (("secure_boot",), "Secure Boot"),
    (("running_kernel",), "the running kernel"),
])
def test_describe(key, name):
    assert _converged.describe(key) == name
