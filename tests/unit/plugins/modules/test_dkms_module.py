# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dkms_module against a scripted DKMS: run_command is the only part replaced here.

The real-DKMS behaviour is covered by tests/integration (Debian 12 and 13 containers).
"""

from __future__ import annotations

import pathlib
import shutil

import pytest
from ansible.module_utils import basic

from ansible_collections.hypermotion.linux_agent.plugins.modules import dkms_module

K1, K2 = "6.1.0-50-amd64", "6.1.0-56-amd64"


class ScriptedDkms(object):
    """Answers DKMS command lines like DKMS 3.0.10 does, keeping per-kernel state."""

    def __init__(self, version="3.0.10"):
        self.version = version
        self.registered = False
        self.states = {}
        self.calls = []
        self.build_rc = {}
        self.add_rc = 0
        self.tree = None
        self.source = None

    def register(self, states=None):
        """Registered as DKMS leaves it: a tree whose source link points at the sources."""
        self.registered = True
        self.states = dict(states or {})
        link = self.tree / "dattobd" / "0.12.1" / "source"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(self.source)

    def status_text(self):
        if not self.registered:
            return ""
        lines = ["dattobd/0.12.1, %s, x86_64: %s" % (k, s) for k, s in sorted(self.states.items())]
        return "\n".join(lines or ["dattobd/0.12.1: added"]) + "\n"

    def __call__(self, module, argv, **kwargs):
        if argv[0].endswith("timeout"):
            argv = argv[3:]
        self.calls.append(argv)
        verb = argv[1]
        if verb == "--version":
            return 0, "dkms-%s\n" % self.version, ""
        if verb == "status":
            return 0, self.status_text(), ""
        if verb == "add":
            if self.add_rc:
                return self.add_rc, "", "dkms.conf: Error! No 'DEST_MODULE_LOCATION' directive specified.\n"
            self.register(self.states)
            return 0, "Creating symlink /var/lib/dkms/dattobd/0.12.1/source -> /usr/src/dattobd-0.12.1\n", ""
        kernel = argv[argv.index("-k") + 1] if "-k" in argv else None
        if verb == "build":
            rc = self.build_rc.get(kernel, 0)
            if rc == 10 and self.tree is not None:
                build = self.tree / "dattobd" / "0.12.1" / "build"
                build.mkdir(parents=True, exist_ok=True)
                (build / "make.log").write_text("line 1\ndattobd.c:12:1: error: expected ';' before '}' token\n")
            if rc:
                return rc, "", "Error! Bad return status for module build on kernel: %s (x86_64)\n" % kernel
            if self.states.get(kernel) != "installed":
                self.states[kernel] = "built"
            return 0, "Building module:\n", ""
        if verb == "install":
            self.states[kernel] = "installed"
            return 0, "dattobd.ko:\nInstallation\n", ""
        if verb == "remove":
            if "--all" in argv:
                self.registered = False
                self.states = {}
                shutil.rmtree(str(self.tree / "dattobd"), ignore_errors=True)
            else:
                self.states.pop(kernel, None)
            return 0, "Module dattobd-0.12.1 for kernel %s was removed\n" % kernel, ""
        raise AssertionError("unexpected command %r" % (argv,))


@pytest.fixture
def dkms(monkeypatch, bin_paths, tmp_path, source):
    fake = ScriptedDkms()
    fake.tree = tmp_path / "var-lib-dkms"
    fake.source = source
    bin_paths.update(dkms="/usr/sbin/dkms", timeout="/usr/bin/timeout")
    # A lambda, not `fake` itself: an instance set on the class would not receive the module as `self`.
    monkeypatch.setattr(basic.AnsibleModule, "run_command",
                        lambda self, argv, **kw: fake(self, argv, **kw))  # pylint: disable=unnecessary-lambda
    monkeypatch.setattr(dkms_module, "DKMS_TREE", str(fake.tree))
    monkeypatch.setattr(dkms_module._host, "headers_present", lambda root, k: k in (K1, K2))
    return fake


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src" / "dattobd-0.12.1"
    src.mkdir(parents=True)
    (src / "dkms.conf").write_text('PACKAGE_NAME="dattobd"\nPACKAGE_VERSION="0.12.1"\n')
    return str(src)


def args(source, **extra):
    base = dict(name="dattobd", version="0.12.1", source=source, kernels=[K1, K2])
    base.update(extra)
    return base


def verbs(calls):
    return [c[1] for c in calls if c[1] not in ("--version", "status")]


def test_install_then_second_run_unchanged(run_module, dkms, source):
    failed, result = run_module(dkms_module, args(source))
    assert not failed, result
    assert result["changed"] is True
    assert result["kernels"][K1] == {"before": "absent", "after": "installed",
                                     "actions": ["build", "install"], "skipped": None}
    assert result["changed_kernels"] == [K1, K2]
    assert verbs(dkms.calls) == ["add", "build", "install", "build", "install"]

    dkms.calls.clear()
    failed, again = run_module(dkms_module, args(source))
    assert not failed
    assert again["changed"] is False
    assert verbs(dkms.calls) == []
    assert again["kernels"][K2]["after"] == "installed"


@pytest.mark.parametrize("state", ["installed", "absent"])
def test_empty_kernel_list_acts_on_no_kernel(run_module, dkms, source, state):
    """An explicit [] (a caller's plan with nothing to build) is not the running kernel's default."""
    dkms.register({K1: "installed"})
    failed, result = run_module(dkms_module, args(source, kernels=[], state=state))
    assert not failed, result
    assert result["changed"] is False
    assert result["kernels"] == {}
    assert verbs(dkms.calls) == []
    assert dkms.states == {K1: "installed"}


def test_check_mode_runs_nothing_and_predicts(run_module, dkms, source):
    failed, result = run_module(dkms_module, args(source), check_mode=True, diff=True)
    assert not failed
    assert result["changed"] is True
    assert verbs(dkms.calls) == []
    assert result["diff"] == {"before": {K1: "absent", K2: "absent"}, "after": {K1: "installed", K2: "installed"}}
    assert [c[1] for c in result["commands"]] == ["add", "build", "install", "build", "install"]


def test_build_exclusive_is_skipped_not_failed(run_module, dkms, source):
    dkms.build_rc[K2] = 77
    failed, result = run_module(dkms_module, args(source))
    assert not failed, result
    assert result["kernels"][K2]["skipped"].startswith("excluded by BUILD_EXCLUSIVE")
    assert result["kernels"][K2]["after"] == "excluded"
    assert result["changed_kernels"] == [K1]
    assert result["kernels"][K1]["after"] == "installed"
    assert ["install", "-m", "dattobd", "-v", "0.12.1", "-k", K2] not in [c[1:] for c in dkms.calls]


def test_failed_build_reports_log_and_rolls_back_new_registration(run_module, dkms, source):
    dkms.build_rc[K1] = 10
    failed, result = run_module(dkms_module, args(source))
    assert failed
    assert "dkms build of dattobd/0.12.1 for %s failed with exit code 10" % K1 in result["msg"]
    assert "make.log" in result["msg"]
    assert "expected ';'" in result["make_log_tail"]
    assert result["rolled_back"] is True
    assert dkms.registered is False
    assert "install" not in verbs(dkms.calls)


def test_failed_rebuild_keeps_installed_module(run_module, dkms, source):
    dkms.register({K1: "installed", K2: "installed"})
    dkms.build_rc[K1] = 10
    failed, result = run_module(dkms_module, args(source, force=True))
    assert failed
    assert result["rolled_back"] is False
    assert "Still installed: %s: installed" % K1 in result["msg"]
    assert dkms.states[K1] == "installed"


def test_force_on_old_dkms_removes_first(run_module, dkms, source):
    dkms.version = "2.8.4"
    dkms.register({K1: "installed"})
    failed, result = run_module(dkms_module, args(source, kernels=[K1], force=True))
    assert not failed, result
    assert verbs(dkms.calls) == ["remove", "build", "install"]


def test_missing_headers_fail_before_any_change(run_module, dkms, source):
    failed, result = run_module(dkms_module, args(source, kernels=[K1, "6.1.0-99-amd64"]))
    assert failed
    assert "Kernel headers are missing for 6.1.0-99-amd64" in result["msg"]
    assert verbs(dkms.calls) == []


def test_missing_source_fails_with_hint(run_module, dkms, tmp_path):
    failed, result = run_module(dkms_module, args(str(tmp_path / "nowhere")))
    assert failed
    assert "has no dkms.conf" in result["msg"]
    assert verbs(dkms.calls) == []


def test_stale_tree_without_source_is_a_clear_error(run_module, dkms, tmp_path):
    dkms.register({K1: "installed"})
    (pathlib.Path(dkms.source) / "dkms.conf").unlink()
    failed, result = run_module(dkms_module, args(str(tmp_path / "nowhere"), kernels=[K1]))
    assert failed
    assert "is stale" in result["msg"]
    assert "state=absent" in result["msg"]
    assert verbs(dkms.calls) == []


def test_absent_removes_everything_and_is_idempotent(run_module, dkms, source):
    dkms.register({K1: "installed"})
    (dkms.tree / "dattobd" / "0.12.1" / K1).mkdir()
    failed, result = run_module(dkms_module, dict(name="dattobd", version="0.12.1", state="absent"))
    assert not failed, result
    assert [c[1:] for c in dkms.calls if c[1] == "remove"] == [["remove", "-m", "dattobd", "-v", "0.12.1", "--all"]]
    assert result["changed"] is True
    assert result["changed_kernels"] == [K1]
    assert not (dkms.tree / "dattobd").exists()

    dkms.calls.clear()
    failed, again = run_module(dkms_module, dict(name="dattobd", version="0.12.1", state="absent"))
    assert not failed
    assert again["changed"] is False


@pytest.mark.parametrize("bad, message", [({"jobs": 0}, "jobs must be 1"), ({"build_timeout": 0}, "build_timeout")])
def test_bad_numbers_are_refused(run_module, dkms, source, bad, message):
    failed, result = run_module(dkms_module, args(source, **bad))
    assert failed
    assert message in result["msg"]


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("option, value", [
    pytest.param("name", "../../../tmp/victim", id="name"),
    pytest.param("version", "../v", id="version"),
    pytest.param("kernels", ["../../etc"], id="kernel"),
    pytest.param("name", "-rf", id="option-like name"),
    pytest.param("version", "0.12.1 x", id="blank in version"),
])
def test_names_that_leave_dkms_are_refused_before_anything(run_module, dkms, source, option, value, check_mode):
    failed, result = run_module(dkms_module, args(source, state="absent", **{option: value}), check_mode=check_mode)
    assert failed
    assert result["msg"].startswith(option)
    assert result["changed"] is False
    assert dkms.calls == []


def test_failed_add_that_changed_nothing_reports_no_change(run_module, dkms, source):
    dkms.add_rc = 8
    failed, result = run_module(dkms_module, args(source))
    assert failed
    assert "dkms add of dattobd/0.12.1 failed with exit code 8" in result["msg"]
    assert result["changed"] is False
    assert result["registered"] is False
    assert verbs(dkms.calls) == ["add"]


def test_excluded_kernel_is_not_built_and_a_rerun_changes_nothing(run_module, dkms, source, monkeypatch):
    reason = 'excluded by BUILD_EXCLUSIVE in dkms.conf: BUILD_EXCLUSIVE_KERNEL="X" does not match %s' % K2
    monkeypatch.setattr(dkms_module.DkmsRunner, "exclusions", lambda self, kernels, conf: {K1: None, K2: reason})
    failed, result = run_module(dkms_module, args(source), diff=True)
    assert not failed, result
    assert verbs(dkms.calls) == ["add", "build", "install"]
    assert result["kernels"][K2] == {"before": "absent", "after": "excluded", "actions": [], "skipped": reason}
    assert result["changed_kernels"] == [K1]

    dkms.calls.clear()
    for check_mode in (True, False):
        failed, again = run_module(dkms_module, args(source), check_mode=check_mode, diff=True)
        assert not failed, again
        assert again["changed"] is False
        assert verbs(dkms.calls) == []
        states = {K1: "installed", K2: "excluded"}
        assert again["diff"] == {"before": states, "after": states}


def test_dkms_exit_77_where_it_could_not_be_predicted_is_no_change(run_module, dkms, source):
    dkms.register({K1: "installed"})
    dkms.build_rc[K2] = 77
    for _run in range(2):
        dkms.calls.clear()
        failed, result = run_module(dkms_module, args(source))
        assert not failed, result
        assert result["changed"] is False
        assert result["kernels"][K2]["after"] == "excluded"
        assert verbs(dkms.calls) == ["build"]


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "run"])
def test_stale_tree_behind_a_link_out_of_dkms_is_not_deleted(run_module, dkms, tmp_path, check_mode):
    outside = tmp_path / "victim"
    (outside / "0.12.1" / K1).mkdir(parents=True)
    (outside / "0.12.1" / "precious").write_text("keep")
    dkms.tree.mkdir(parents=True, exist_ok=True)
    (dkms.tree / "dattobd").symlink_to(outside)
    failed, result = run_module(dkms_module, dict(name="dattobd", version="0.12.1", state="absent"),
                                check_mode=check_mode)
    assert failed
    assert "refusing to delete %s/dattobd/0.12.1" % dkms.tree in result["msg"]
    assert "Nothing was deleted" in result["msg"]
    assert (outside / "0.12.1" / "precious").read_text() == "keep"


def test_stale_tree_whose_version_dir_is_a_link_is_not_followed(run_module, dkms, tmp_path):
    outside = tmp_path / "victim"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    (dkms.tree / "dattobd").mkdir(parents=True)
    (dkms.tree / "dattobd" / "0.12.1").symlink_to(outside)
    failed, result = run_module(dkms_module, dict(name="dattobd", version="0.12.1", state="absent"))
    assert failed
    assert "is a symbolic link" in result["msg"]
    assert (outside / "precious").read_text() == "keep"


def test_stale_tree_inside_dkms_is_still_cleared(run_module, dkms, tmp_path):
    (dkms.tree / "dattobd" / "0.12.1" / K1 / "x86_64").mkdir(parents=True)
    failed, result = run_module(dkms_module, dict(name="dattobd", version="0.12.1", state="absent"))
    assert not failed, result
    assert result["changed"] is True
    assert not (dkms.tree / "dattobd").exists()
