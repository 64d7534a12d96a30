# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pathlib
import stat

import pytest
import yaml
from ansible.module_utils import basic

from ansible_collections.hypermotion.linux_agent.plugins.modules import converged_state

KERNEL = "6.1.0-41-amd64"
FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "converged"
ROLES = pathlib.Path(__file__).resolve().parents[4] / "roles"
STAMP = "/var/lib/hypermotion-linux-agent/converged.json"


def write(root, path, text=""):
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


@pytest.fixture
def host(tmp_path, monkeypatch, bin_paths):
    """A converged Debian 12 host (in a tree): the module installed and loaded, the services running."""
    root = tmp_path / "root"
    for path, text in [("/boot/vmlinuz-" + KERNEL, "k"), ("/boot/initrd.img-" + KERNEL, "initrd"),
                       ("/lib/modules/%s/modules.dep" % KERNEL, "updates/dkms/dattobd.ko:\n"),
                       ("/lib/modules/%s/updates/dkms/dattobd.ko" % KERNEL, "ko"),
                       ("/etc/modules-load.d/dattobd.conf", "dattobd\n"),
                       ("/var/lib/hypermotion-linux-agent/src/dattobd-0.12.1.tar.gz", "tar"),
                       ("/proc/modules", "dattobd 53248 0 - Live 0x0\n")]:
        write(root, path, text)
    monkeypatch.setattr(converged_state, "ROOT", str(root))
    monkeypatch.setattr(converged_state.platform, "release", lambda: KERNEL)
    bin_paths.update({"dpkg-query": "/usr/bin/dpkg-query", "systemctl": "/usr/bin/systemctl"})
    outputs = {"dpkg-query": (FIXTURES / "bookworm-dpkg-query.txt").read_text(),
               "systemctl": (FIXTURES / "bookworm-systemctl-show.txt").read_text()}

    def run_command(self, argv, **kwargs):
        return 0, outputs[pathlib.Path(argv[0]).name], ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    return root, outputs


def call(run_module, state="check", check_mode=False, diff=False, inputs="i1"):
    failed, result = run_module(converged_state, {
        "state": state, "stamp": STAMP, "inputs_sha256": inputs,
        "paths": ["/var/lib/hypermotion-linux-agent", "/etc/modules-load.d/dattobd.conf", "/usr/local/bin/dbdctl"],
        "absent": ["/etc/apt/sources.list.d/hypermotion-linux-agent-*"],
        "packages": ["dkms", "linux-image-*"], "services": ["egisplus-agent", "hypermotion-monitor"],
        "units": ["hypermotion-dattobd-build.service"], "modules": ["dattobd"]}, check_mode=check_mode, diff=diff)
    assert not failed, result
    return result


def test_check_record_check(run_module, host):
    root, _outputs = host
    first = call(run_module)
    assert first["converged"] is False and first["changed"] is False
    assert first["reasons"] == ["no record of a verified install on this host"]

    would = call(run_module, state="record", check_mode=True, diff=True)
    assert would["changed"] is True and "fingerprint" in would["diff"]["after"]
    assert not (root / STAMP.lstrip("/")).exists(), "check mode wrote the stamp"

    recorded = call(run_module, state="record")
    assert recorded["changed"] is True
    assert stat.S_IMODE((root / STAMP.lstrip("/")).stat().st_mode) == 0o600
    # The stamp sits in a fingerprinted directory: recording it again must not change the fingerprint.
    assert call(run_module, state="record")["changed"] is False
    again = call(run_module)
    assert again["converged"] is True and again["reasons"] == []
    assert again["fingerprint_sha256"] == recorded["fingerprint_sha256"]


@pytest.mark.parametrize(("drift", "reason"), [
    # Same sizes as before: only the content tells.
    pytest.param(lambda root, out: write(root, "/etc/modules-load.d/dattobd.conf", "edited!\n"),
                 "changed since the last verified install: /etc/modules-load.d/dattobd.conf", id="edited-file"),
    pytest.param(lambda root, out: write(root, "/boot/initrd.img-" + KERNEL, "INITRD"),
                 "changed since the last verified install: kernel %s initramfs" % KERNEL, id="initramfs"),
    pytest.param(lambda root, out: write(root, "/boot/vmlinuz-6.12.57+deb12-amd64", "new"),
                 "changed since the last verified install: kernel 6.12.57+deb12-amd64 (installed or removed)",
                 id="new-kernel"),
    pytest.param(lambda root, out: write(root, "/proc/modules", "ext4 1 0 - Live 0x0\n"),
                 "changed since the last verified install: dattobd loaded or not", id="unloaded"),
    pytest.param(lambda root, out: write(root, "/etc/apt/sources.list.d/hypermotion-linux-agent-backports.sources"),
                 "left over from an earlier run: /etc/apt/sources.list.d/hypermotion-linux-agent-backports.sources",
                 id="temporary-source-left"),
    pytest.param(lambda root, out: out.update(systemctl=out["systemctl"].replace(
                 "Id=hypermotion-monitor.service\nLoadState=loaded\nActiveState=active",
                 "Id=hypermotion-monitor.service\nLoadState=loaded\nActiveState=failed")),
                 "service hypermotion-monitor is failed, not active", id="monitor-failed"),
    pytest.param(lambda root, out: out.update({"dpkg-query": out["dpkg-query"] + "iF \thm-probe\t1.0\n"}),
                 "dpkg left packages half-done: hm-probe", id="dpkg-half-done"),
])
def test_drift_is_named(run_module, host, drift, reason):
    root, outputs = host
    call(run_module, state="record")
    drift(root, outputs)
    result = call(run_module)
    assert result["converged"] is False
    assert reason in result["reasons"], result["reasons"]


def test_other_variables_are_named(run_module, host):
    call(run_module, state="record", inputs="i1")
    result = call(run_module, inputs="i2")
    assert result["reasons"] == ["the install variables differ from the last verified install"]


def test_container_does_not_fingerprint_the_outer_kernels_modules(run_module, host):
    root, _outputs = host
    write(root, "/run/.containerenv")
    call(run_module, state="record")
    write(root, "/proc/modules", "")
    assert call(run_module)["converged"] is True


def test_unreadable_package_database_fails_before_anything_is_written(run_module, host, monkeypatch):
    root, _outputs = host

    def run_command(self, argv, **kwargs):
        return 2, "", "dpkg-query: error: parsing file '/var/lib/dpkg/status' near line 7"

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    failed, result = run_module(converged_state, {"state": "record", "stamp": STAMP, "inputs_sha256": "i1"})
    assert failed
    assert "dpkg-query failed (rc 2)" in result["msg"] and "/var/lib/dpkg/status" in result["msg"]
    assert "dpkg --audit" in result["msg"]
    assert not (root / STAMP.lstrip("/")).exists()


def test_unwritable_record_fails_naming_the_path_and_leaves_no_partial_file(run_module, host):
    root, _outputs = host
    # A regular file where the state directory should be: no write can succeed, even as root.
    write(root, "/var/lib/hypermotion-linux-agent-blocked", "")
    stamp = "/var/lib/hypermotion-linux-agent-blocked/converged.json"
    failed, result = run_module(converged_state, {"state": "record", "stamp": stamp, "inputs_sha256": "i1"})
    assert failed
    assert "Could not write the record of this install to %s" % (root / stamp.lstrip("/")) in result["msg"]
    assert "re-run" in result["msg"]
    assert sorted(p.name for p in (root / "var/lib").iterdir()) == [
        "hypermotion-linux-agent", "hypermotion-linux-agent-blocked"]


LIBRARY = "/usr/local/lib/libdattobd.so.1"
LIBRARY_LINK = "/usr/local/lib/libdattobd.so"


def test_the_managed_paths_cover_dbdctl_and_its_library():
    """Issue 18: dbdctl does not start without libdattobd.so.1, so the fast path reads the library and its link."""
    managed = yaml.safe_load((ROLES / "linux_agent" / "vars" / "main.yml").read_text())["__linux_agent_managed_paths"]
    dattobd = yaml.safe_load((ROLES / "dattobd" / "vars" / "main.yml").read_text())
    assert dattobd["__dattobd_dbdctl"] in managed
    for name in ("__dattobd_lib", "__dattobd_lib_link"):
        assert "%s/%s" % (dattobd["__dattobd_libdir"], dattobd[name]) in managed, name
    assert {LIBRARY, LIBRARY_LINK} <= set(managed)


@pytest.mark.parametrize(("drift", "reason"), [
    pytest.param(lambda root: (root / LIBRARY.lstrip("/")).unlink(), LIBRARY, id="library-removed"),
    # Same size: only the content tells.
    pytest.param(lambda root: write(root, LIBRARY, "ELF-B"), LIBRARY, id="library-replaced"),
    pytest.param(lambda root: (root / LIBRARY.lstrip("/")).chmod(0o600), LIBRARY, id="library-mode"),
    pytest.param(lambda root: ((root / LIBRARY_LINK.lstrip("/")).unlink(),
                               (root / LIBRARY_LINK.lstrip("/")).symlink_to("libdattobd.so.2")),
                 LIBRARY_LINK, id="link-retargeted"),
])
def test_dbdctl_library_drift_is_named(run_module, host, drift, reason):
    root, _outputs = host
    library = write(root, LIBRARY, "ELF-A")
    library.chmod(0o644)
    (root / LIBRARY_LINK.lstrip("/")).symlink_to("libdattobd.so.1")
    write(root, "/usr/local/bin/dbdctl", "dbdctl")

    def check(**kwargs):
        failed, result = run_module(converged_state, {
            "stamp": STAMP, "inputs_sha256": "i1", "paths": ["/usr/local/bin/dbdctl", LIBRARY, LIBRARY_LINK],
            **kwargs})
        assert not failed, result
        return result

    check(state="record")
    assert check()["converged"] is True
    drift(root)
    result = check()
    assert result["converged"] is False
    assert result["reasons"] == ["changed since the last verified install: %s" % reason], result["reasons"]


SIGNING = "/etc/dkms/framework.conf.d/hypermotion-dattobd-signing.conf"


def test_the_signing_configuration_is_managed_and_uninstalled():
    """Issue 16 item 5: dkms.yml writes DKMS's signing configuration; the fast path reads it, uninstall removes it."""
    dkms = yaml.safe_load((ROLES / "dattobd" / "tasks" / "dkms.yml").read_text())
    written = [task["ansible.builtin.copy"]["dest"] for task in dkms if "ansible.builtin.copy" in task]
    assert written == [SIGNING]
    managed = yaml.safe_load((ROLES / "linux_agent" / "vars" / "main.yml").read_text())["__linux_agent_managed_paths"]
    assert SIGNING in managed
    uninstall = yaml.safe_load((ROLES / "dattobd" / "tasks" / "uninstall.yml").read_text())
    removed = " ".join(str(task["hypermotion.linux_agent.managed_files"]["absent"]) for task in uninstall
                       if "hypermotion.linux_agent.managed_files" in task)
    assert "'%s'" % SIGNING in removed
