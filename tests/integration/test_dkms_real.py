# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dkms_module and kernel_facts for real: real dkms, gcc and Debian headers in Debian 12 and 13 containers.

The container's running kernel is this machine's, so every call names the Debian ABIs installed in
the image (picked by tests/testbed/images.sh with apt-cache at build time). The tests of one
release run in order against one container, each step starting from the state the previous left.
"""

from __future__ import annotations

import pytest
import testbed

pytestmark = pytest.mark.slow

V1, V2 = "0.12.1", "0.12.2"


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def target(request, tmp_path_factory):
    work = tmp_path_factory.mktemp("dkms-%s" % request.param)
    image = testbed.ensure_image("ensure-dkms", request.param)
    box = testbed.Target(image, testbed.podman_environment(), work).start()
    request.addfinalizer(box.stop)
    box.suite = request.param
    box.kernels = box.sh("cat /etc/hm-testbed/kernels").stdout.split()
    assert len(box.kernels) == 2, box.kernels
    # A real symbol map per kernel, where dattobd's configure step looks (the -dbg package's path).
    for kernel in box.kernels:
        local = testbed.system_map(image, kernel, work / ("System.map-%s" % kernel))
        box.sh("mkdir -p /usr/lib/debug/boot")
        box.copy_in(local, "/usr/lib/debug/boot/System.map-%s" % kernel)
    box.install_source = lambda version, *variants: install_source(box, work, version, *variants)
    box.install_source(V1)
    return box


def install_source(box, work, version, *variants):
    tarball = testbed.fixture_tree(work, version, *variants)
    box.copy_in(tarball, "/tmp/src.tar.gz")
    box.sh(f"rm -rf /usr/src/dattobd-{version} && mkdir -p /usr/src/dattobd-{version} && "
           f"tar -xzf /tmp/src.tar.gz -C /usr/src/dattobd-{version} --strip-components=1")


def dkms(box, **args):
    base = {"name": "dattobd", "version": V1, "kernels": box.kernels}
    base.update(args)
    return base


def status(box):
    return box.sh("dkms status").stdout


def test_add_registers_once(target):
    first = target.module("dkms_module", dkms(target, state="present"))
    assert not first.get("failed"), first
    assert first["changed"] is True and first["registered"] is True
    assert "dattobd/%s: added" % V1 in status(target)
    again = target.module("dkms_module", dkms(target, state="present"))
    assert again["changed"] is False


def test_install_for_both_kernels(target):
    result = target.module("dkms_module", dkms(target), diff=True)
    assert not result.get("failed"), result.get("msg")
    k1, k2 = target.kernels
    assert result["diff"]["before"] == {k1: "added", k2: "added"}
    assert result["diff"]["after"] == {k1: "installed", k2: "installed"}
    assert set(result["changed_kernels"]) == set(target.kernels)
    for kernel in target.kernels:
        assert result["kernels"][kernel]["actions"] == ["build", "install"]
        version = target.sh("modinfo -k %s -F version dattobd" % kernel).stdout.strip()
        assert version == V1
        assert "dattobd/%s, %s, x86_64: installed" % (V1, kernel) in status(target)


def test_second_run_changes_nothing(target):
    result = target.module("dkms_module", dkms(target))
    assert result["changed"] is False
    assert result["commands"] == []
    assert all(k["after"] == "installed" for k in result["kernels"].values())


def test_check_mode_touches_nothing(target):
    before = status(target)
    result = target.module("dkms_module", dkms(target, state="absent", kernels=None), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["commands"][0][1:] == ["remove", "-m", "dattobd", "-v", V1, "--all"]
    assert set(result["diff"]["after"].values()) == {"absent"}
    assert status(target) == before


def test_kernel_facts_in_a_container(target):
    result = target.module("kernel_facts", {"modules": ["dattobd"]})
    facts = result["ansible_facts"]["hypermotion_kernel"]
    assert facts["container"] == "podman"
    assert facts["can_load_modules"] is False
    assert set(target.kernels) <= set(facts["kernel_list"])
    assert set(facts["target_kernels"]) == set(target.kernels)
    assert facts["distribution"]["family"] == "Debian"
    assert facts["dkms"]["installed"] is True and facts["dkms"]["version"]
    for kernel in target.kernels:
        info = facts["kernels"][kernel]
        assert info["headers_present"] is True
        assert info["headers_package"] == "linux-headers-%s" % kernel
        assert (info["symbol_map"], info["symbol_map_path"]) == ("real", "/usr/lib/debug/boot/System.map-%s" % kernel)
        assert info["modules"]["dattobd"]["installed"] is True
        assert info["modules"]["dattobd"]["built_versions"] == [V1]
        assert info["modules"]["dattobd"]["loaded"] is False
        assert info["modules"]["dattobd"]["in_initramfs"] in (True, False)


def test_force_rebuilds_and_reinstalls(target):
    kernel = target.kernels[0]
    path = target.sh("modinfo -k %s -n dattobd" % kernel).stdout.strip()
    stamp = target.sh("stat -c %%Y.%%Z %s" % path).stdout
    target.sh("sleep 1")
    result = target.module("dkms_module", dkms(target, kernels=[kernel], force=True))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert [c[1] for c in result["commands"]] == ["build", "install"]
    assert "--force" in result["commands"][0]
    assert target.sh("stat -c %%Y.%%Z %s" % path).stdout != stamp


def test_failed_upgrade_keeps_the_old_version(target):
    kernel = target.kernels[0]
    target.install_source(V2, "--broken-compile")
    result = target.module("dkms_module", dkms(target, version=V2, kernels=[kernel]))
    assert result.get("failed") is True
    assert "dkms build of dattobd/%s for %s failed with exit code 10" % (V2, kernel) in result["msg"]
    assert "make.log" in result["msg"]
    assert "error" in result["make_log_tail"]
    assert result["rolled_back"] is True
    assert "dattobd/%s" % V2 not in status(target)
    assert "dattobd/%s, %s, x86_64: installed" % (V1, kernel) in status(target)
    assert target.sh("modinfo -k %s -F version dattobd" % kernel).stdout.strip() == V1
    target.sh("rm -rf /usr/src/dattobd-%s" % V2)


def test_configure_step_without_symbol_map_fails_clearly(target):
    kernel = target.kernels[1]
    target.install_source(V2)
    target.sh(f"mv /usr/lib/debug/boot/System.map-{kernel} /root/map.save")
    try:
        result = target.module("dkms_module", dkms(target, version=V2, kernels=[kernel]))
    finally:
        target.sh(f"mv /root/map.save /usr/lib/debug/boot/System.map-{kernel}")
    assert result.get("failed") is True
    assert kernel in result["msg"]
    assert "System.map file not found" in (result.get("make_log_tail") or "") + result.get("stdout", "") \
        + result.get("stderr", "")
    assert "dattobd/%s" % V2 not in status(target)
    target.sh("rm -rf /usr/src/dattobd-%s" % V2)


def test_build_exclusive_kernel_is_skipped(target):
    target.install_source(V2)
    target.sh("echo 'BUILD_EXCLUSIVE_KERNEL=\"^2\\.6\\.\"' >> /usr/src/dattobd-%s/dkms.conf" % V2)
    result = target.module("dkms_module", dkms(target, version=V2))
    assert not result.get("failed"), result.get("msg")
    for kernel in target.kernels:
        assert "BUILD_EXCLUSIVE" in result["kernels"][kernel]["skipped"]
        assert result["kernels"][kernel]["after"] == "excluded"
    assert result["changed_kernels"] == []
    cleanup = target.module("dkms_module", dkms(target, version=V2, state="absent", kernels=None))
    assert cleanup["changed"] is True
    target.sh("rm -rf /usr/src/dattobd-%s" % V2)


def test_stale_tree_is_reported_then_repaired_from_source(target):
    target.sh(f"cp -a /usr/src/dattobd-{V1} /root/dattobd-source && rm /usr/src/dattobd-{V1}/dkms.conf")
    broken = target.module("dkms_module", dkms(target))
    assert broken.get("failed") is True
    assert "is stale" in broken["msg"] and "/usr/src/dattobd-%s" % V1 in broken["msg"]
    repaired = target.module("dkms_module", dkms(target, source="/root/dattobd-source"))
    assert not repaired.get("failed"), repaired.get("msg")
    assert target.sh("test -f /usr/src/dattobd-%s/dkms.conf" % V1).returncode == 0
    assert all(k["after"] == "installed" for k in repaired["kernels"].values())


def test_absent_removes_every_trace(target):
    result = target.module("dkms_module", dkms(target, state="absent", kernels=None))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert set(result["changed_kernels"]) == set(target.kernels)
    assert "dattobd" not in status(target)
    assert target.sh("test -e /var/lib/dkms/dattobd/%s" % V1, check=False).returncode != 0
    for kernel in target.kernels:
        assert target.sh("modinfo -k %s -n dattobd" % kernel, check=False).returncode != 0
    again = target.module("dkms_module", dkms(target, state="absent", kernels=None))
    assert again["changed"] is False


# ---------------------------------------------------------------------------------------------
# Any DKMS module, not only dattobd: names that would leave DKMS's trees, BUILD_EXCLUSIVE kernels,
# a failed add, and kernel_facts, proven on a third-party module from the Debian archive
# (v4l2loopback-dkms, unpacked with dpkg -x, never installed through its postinst).
# ---------------------------------------------------------------------------------------------


def victim(box, path):
    """A directory outside DKMS with content that must survive; returns a listing to compare."""
    box.sh(f"rm -rf {path} && mkdir -p {path}/v/6.1.0-1-amd64/x86_64/module {path}/keep && "
           f"echo precious > {path}/keep/file && echo precious > {path}/v/file")
    return box.sh(f"find {path} | sort").stdout


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("option, value", [
    ("name", "../../../tmp/victim"),
    ("version", "../../../../tmp/victim/v"),
    ("kernels", "../../../../tmp/victim"),
])
def test_traversal_is_refused_and_the_victim_survives(target, option, value, check_mode):
    listing = victim(target, "/tmp/victim")
    args = {"name": "hmtraversal", "version": "v", "state": "absent"}
    args[option] = [value] if option == "kernels" else value
    if option == "name":
        args["version"] = "v"
    result = target.module("dkms_module", args, check_mode=check_mode)
    assert result.get("failed") is True, result
    assert result["changed"] is False
    assert option in result["msg"] and "path component" in result["msg"]
    assert target.sh("find /tmp/victim | sort").stdout == listing
    target.sh("rm -rf /tmp/victim")


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "run"])
def test_a_link_out_of_the_dkms_tree_is_not_followed(target, check_mode):
    """/var/lib/dkms/NAME links elsewhere: the stale 'tree' behind it is outside DKMS and must stay."""
    listing = victim(target, "/tmp/victim-link")
    target.sh("mkdir -p /tmp/victim-link/1.0/6.1.0-1-amd64 && ln -sfn /tmp/victim-link /var/lib/dkms/hmlink")
    listing = target.sh("find /tmp/victim-link | sort").stdout
    try:
        result = target.module("dkms_module", {"name": "hmlink", "version": "1.0", "state": "absent"},
                               check_mode=check_mode)
        assert result.get("failed") is True, result
        assert "refusing to delete /var/lib/dkms/hmlink/1.0" in result["msg"]
        assert "/tmp/victim-link/1.0" in result["msg"]
        assert target.sh("find /tmp/victim-link | sort").stdout == listing
    finally:
        target.sh("rm -f /var/lib/dkms/hmlink && rm -rf /tmp/victim-link")


@pytest.fixture(scope="module")
def v4l2(target, request):
    """v4l2loopback-dkms of the image's own release, unpacked into /usr/src; CONFIG_VIDEO_DEV commented out of
    the first kernel's .config, so its dkms.conf sets a BUILD_EXCLUSIVE_KERNEL that matches no kernel there."""
    deb = testbed.debian_package("v4l2loopback-dkms", target.suite)
    target.copy_in(deb, "/tmp/v4l2loopback-dkms.deb")
    target.sh("dpkg -x /tmp/v4l2loopback-dkms.deb /")
    version = target.sh("ls -d /usr/src/v4l2loopback-* | sed 's|.*/v4l2loopback-||'").stdout.strip()
    excluded, built = target.kernels
    config = "/lib/modules/%s/build/.config" % excluded
    target.sh(f"cp {config} /root/config.save && sed -i 's/^CONFIG_VIDEO_DEV=/# &/' {config} && "
              f"! grep -q '^CONFIG_VIDEO_DEV=' {config}")

    def restore():
        target.module("dkms_module", {"name": "v4l2loopback", "version": version, "state": "absent"})
        target.sh(f"cp /root/config.save {config} && rm -rf /usr/src/v4l2loopback-{version}")

    request.addfinalizer(restore)
    return {"version": version, "excluded": excluded, "built": built}


def v4l2_args(target, v4l2, **extra):
    args = {"name": "v4l2loopback", "version": v4l2["version"], "kernels": target.kernels}
    args.update(extra)
    return args


def test_v4l2loopback_check_mode_predicts_the_excluded_kernel(target, v4l2):
    result = target.module("dkms_module", v4l2_args(target, v4l2), check_mode=True, diff=True)
    assert not result.get("failed"), result.get("msg")
    assert result["diff"]["after"] == {v4l2["excluded"]: "excluded", v4l2["built"]: "installed"}
    assert "REQUIRES CONFIG_VIDEO_DEV" in result["kernels"][v4l2["excluded"]]["skipped"]
    assert result["changed_kernels"] == [v4l2["built"]]
    assert ["build", "-k", v4l2["excluded"]] not in [[c[1], c[-2], c[-1]] for c in result["commands"]]
    assert "v4l2loopback" not in status(target)


def test_v4l2loopback_excluded_kernel_then_a_rerun_changes_nothing(target, v4l2):
    first = target.module("dkms_module", v4l2_args(target, v4l2), diff=True)
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] is True
    assert first["changed_kernels"] == [v4l2["built"]]
    excluded = first["kernels"][v4l2["excluded"]]
    assert excluded["after"] == "excluded" and "BUILD_EXCLUSIVE" in excluded["skipped"]
    assert first["kernels"][v4l2["built"]]["after"] == "installed"
    assert "v4l2loopback/%s, %s, x86_64: installed" % (v4l2["version"], v4l2["built"]) in status(target)
    assert "/%s/" % v4l2["built"] in target.sh("modinfo -k %s -n v4l2loopback" % v4l2["built"]).stdout

    again = target.module("dkms_module", v4l2_args(target, v4l2), diff=True)
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False
    assert again["commands"] == []
    assert again["changed_kernels"] == []
    assert again["kernels"][v4l2["excluded"]]["before"] == again["kernels"][v4l2["excluded"]]["after"] == "excluded"

    check = target.module("dkms_module", v4l2_args(target, v4l2), check_mode=True, diff=True)
    assert check["changed"] is False
    assert check["diff"]["after"] == {v4l2["excluded"]: "excluded", v4l2["built"]: "installed"}

    built = target.module("dkms_module", v4l2_args(target, v4l2, state="built"))
    assert built["changed"] is False and built["commands"] == []


def test_kernel_facts_a_generic_module_is_not_a_stale_initramfs(target, v4l2):
    target.module("dkms_module", v4l2_args(target, v4l2))
    facts = target.module("kernel_facts", {"modules": ["v4l2loopback", "dattobd"]})["ansible_facts"][
        "hypermotion_kernel"]
    state = facts["kernels"][v4l2["built"]]["modules"]["v4l2loopback"]
    assert state["installed"] is True
    assert state["in_initramfs"] is False
    assert state["initramfs_current"] is True  # the image holds no copy of it, and need not
    assert state["initramfs_required"] is False
    assert facts["kernels"][v4l2["built"]]["modules"]["dattobd"]["initramfs_required"] is True
    # Asked to treat it as an initramfs module, it is a stale image again (dattobd's meaning).
    facts = target.module("kernel_facts", {"modules": ["v4l2loopback"], "initramfs_modules": ["v4l2loopback"]})
    state = facts["ansible_facts"]["hypermotion_kernel"]["kernels"][v4l2["built"]]["modules"]["v4l2loopback"]
    assert (state["initramfs_required"], state["initramfs_current"]) == (True, False)


def test_failed_add_reports_no_change(target, v4l2):
    """A dkms.conf DKMS refuses (no DEST_MODULE_LOCATION): the add fails before DKMS touches its tree."""
    bad = "/usr/src/v4l2loopback-0.0.1hm"
    target.sh(f"rm -rf {bad} && cp -a /usr/src/v4l2loopback-{v4l2['version']} {bad} && "
              f"sed -i -e 's/^PACKAGE_VERSION=.*/PACKAGE_VERSION=\"0.0.1hm\"/' -e '/DEST_MODULE_LOCATION/d' "
              f"{bad}/dkms.conf")
    try:
        result = target.module("dkms_module", v4l2_args(target, v4l2, version="0.0.1hm"))
        assert result.get("failed") is True, result
        assert "dkms add of v4l2loopback/0.0.1hm failed with exit code 8 (dkms.conf is not valid" in result["msg"]
        assert result["changed"] is False
        assert result["registered"] is False
        assert target.sh("test -e /var/lib/dkms/v4l2loopback/0.0.1hm", check=False).returncode != 0
        assert "0.0.1hm" not in status(target)
    finally:
        target.sh(f"rm -rf {bad}")
