# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pathlib
import re

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _dkms

# ---------------------------------------------------------------------------------------------
# dkms status lines. The 2.x and installed-weak lines are quoted from DKMS's sources and
# issue reports (shared REFERENCE.md); the captured 3.0.10/3.2 outputs are tested further down.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [
        pytest.param(
            "dattobd, 0.12.1, 5.15.0-91-generic, x86_64: installed",
            ("dattobd", "0.12.1", "5.15.0-91-generic", "x86_64", "installed", None, ()),
            id="2.x comma form installed",
        ),
        pytest.param(
            "dattobd, 0.12.1: added",
            ("dattobd", "0.12.1", None, None, "added", None, ()),
            id="2.x comma form added",
        ),
        pytest.param(
            "dattobd/0.12.1, 6.8.0-45-generic, x86_64: installed",
            ("dattobd", "0.12.1", "6.8.0-45-generic", "x86_64", "installed", None, ()),
            id="3.x slash form installed",
        ),
        pytest.param(
            "dattobd/0.12.1: added",
            ("dattobd", "0.12.1", None, None, "added", None, ()),
            id="3.x slash form added",
        ),
        pytest.param(
            "dattobd/0.12.1: broken",
            ("dattobd", "0.12.1", None, None, "broken", None, ()),
            id="3.0.13+ broken",
        ),
        pytest.param(
            "dattobd, 0.12.1, 5.14.0-427.el9.x86_64, x86_64: installed-weak from 5.14.0-362.el9.x86_64",
            ("dattobd", "0.12.1", "5.14.0-427.el9.x86_64", "x86_64", "installed-weak", "5.14.0-362.el9.x86_64", ()),
            id="installed-weak keeps the comma form",
        ),
        pytest.param(
            "dattobd/0.12.1, 6.1.0-50-amd64, x86_64: installed (original_module exists)",
            ("dattobd", "0.12.1", "6.1.0-50-amd64", "x86_64", "installed", None, (_dkms.NOTE_ORIGINAL_MODULE,)),
            id="original module suffix",
        ),
        pytest.param(
            "dattobd/0.12.1, 6.1.0-50-amd64, x86_64: installed (WARNING! Diff between built and installed module!)",
            ("dattobd", "0.12.1", "6.1.0-50-amd64", "x86_64", "installed", None, (_dkms.NOTE_DIFFERS,)),
            id="diff warning before 3.1.3",
        ),
        pytest.param(
            "dattobd/0.12.1, 6.12.57+deb13-amd64, x86_64: installed (Differences between built and installed modules)",
            ("dattobd", "0.12.1", "6.12.57+deb13-amd64", "x86_64", "installed", None, (_dkms.NOTE_DIFFERS,)),
            id="diff warning from 3.1.3",
        ),
        pytest.param(
            "dattobd/0.12.1, 6.1.0-50-amd64, x86_64: installed (WARNING! Missing some built modules!)",
            ("dattobd", "0.12.1", "6.1.0-50-amd64", "x86_64", "installed", None, (_dkms.NOTE_BUILT_MISSING,)),
            id="missing built modules before 3.1.3",
        ),
        pytest.param(
            "dattobd/0.12.1, 6.12.57+deb13-amd64, x86_64: built "
            "(Built modules are missing in the kernel modules folder)",
            ("dattobd", "0.12.1", "6.12.57+deb13-amd64", "x86_64", "built", None, (_dkms.NOTE_BUILT_MISSING,)),
            id="missing built modules from 3.1.3",
        ),
        pytest.param(
            "nvidia/535.183.01, 6.1.0-50-amd64, x86_64: installed (Original modules exist)",
            ("nvidia", "535.183.01", "6.1.0-50-amd64", "x86_64", "installed", None, (_dkms.NOTE_ORIGINAL_MODULE,)),
            id="original modules from 3.1.3",
        ),
    ],
)
def test_parse_status_line(line, expected):
    entry = _dkms.parse_status_line(line)
    assert entry is not None
    got = (entry.module, entry.version, entry.kernel, entry.arch, entry.state, entry.weak_from, entry.notes)
    assert got == expected


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Error! Could not locate dkms.conf file.",
        "File: /var/lib/dkms/dattobd/0.12.1/source/dkms.conf does not exist.",
        "Warning! Could not locate dkms.conf file.",
        "dattobd/0.12.1, 6.1.0-50-amd64, x86_64: weird-state",
    ],
)
def test_parse_status_line_ignores_noise(line):
    assert _dkms.parse_status_line(line) is None


@pytest.mark.parametrize(
    "text, version",
    [
        ("dkms-3.0.10\n", (3, 0, 10)),
        ("dkms-3.2.0\n", (3, 2, 0)),
        ("dkms: 2.8.4\n", (2, 8, 4)),
        ("dkms-2.2\n", (2, 2, 0)),
    ],
)
def test_parse_dkms_version(text, version):
    assert _dkms.parse_dkms_version(text) == version


def test_parse_dkms_version_rejects_garbage():
    with pytest.raises(ValueError, match="DKMS version"):
        _dkms.parse_dkms_version("command not found")


def test_force_support_boundary():
    assert not _dkms.supports_force_rebuild((3, 0, 6))
    assert _dkms.supports_force_rebuild((3, 0, 7))
    assert _dkms.supports_force_rebuild((3, 2, 0))


# ---------------------------------------------------------------------------------------------
# kernel_states: status entries -> per-kernel state
# ---------------------------------------------------------------------------------------------

TWO_KERNELS = ("6.1.0-50-amd64", "6.1.0-56-amd64")


@pytest.mark.parametrize(
    "status, registered, broken, states",
    [
        pytest.param("", False, False, {"6.1.0-50-amd64": "absent", "6.1.0-56-amd64": "absent"}, id="nothing"),
        pytest.param(
            "dattobd/0.12.1: added\n", True, False, {"6.1.0-50-amd64": "added", "6.1.0-56-amd64": "added"}, id="added"
        ),
        pytest.param(
            "dattobd/0.12.1, 6.1.0-50-amd64, x86_64: installed\n",
            True,
            False,
            {"6.1.0-50-amd64": "installed", "6.1.0-56-amd64": "added"},
            id="installed on one kernel",
        ),
        pytest.param(
            "dattobd/0.12.1, 6.1.0-50-amd64, x86_64: built\ndattobd/0.12.1, 6.1.0-56-amd64, x86_64: installed\n",
            True,
            False,
            {"6.1.0-50-amd64": "built", "6.1.0-56-amd64": "installed"},
            id="built and installed",
        ),
        pytest.param(
            "dattobd/0.12.2, 6.1.0-50-amd64, x86_64: installed\n",
            False,
            False,
            {"6.1.0-50-amd64": "absent", "6.1.0-56-amd64": "absent"},
            id="another version does not count",
        ),
        pytest.param(
            "dattobd/0.12.1: broken\n",
            True,
            True,
            {"6.1.0-50-amd64": "broken", "6.1.0-56-amd64": "broken"},
            id="broken",
        ),
    ],
)
def test_kernel_states(status, registered, broken, states):
    got_registered, got_broken, got = _dkms.kernel_states(_dkms.parse_status(status), "dattobd", "0.12.1", TWO_KERNELS)
    assert (got_registered, got_broken) == (registered, broken)
    assert dict((k, v[0]) for k, v in got.items()) == states


def test_other_versions_installed():
    entries = _dkms.parse_status(
        "dattobd/0.12.1, 6.1.0-50-amd64, x86_64: installed\ndattobd/0.12.2, 6.1.0-50-amd64, x86_64: built\n"
    )
    assert _dkms.other_versions_installed(entries, "dattobd", "0.12.2", "6.1.0-50-amd64") == ["0.12.1"]
    assert _dkms.other_versions_installed(entries, "dattobd", "0.12.1", "6.1.0-50-amd64") == []


# ---------------------------------------------------------------------------------------------
# plan_steps: the table of transitions
# ---------------------------------------------------------------------------------------------

K1, K2 = TWO_KERNELS


def _st(*pairs):
    return dict((k, (v, (), None)) for k, v in pairs)


def _plan(wanted, registered, states, **kwargs):
    return [(s.action, s.kernel, s.force) for s in _dkms.plan_steps(wanted, registered, states, **kwargs)]


@pytest.mark.parametrize(
    "wanted, registered, states, kwargs, expected",
    [
        pytest.param("installed", False, _st((K1, "absent")), {}, [
            ("add", None, False), ("build", K1, False), ("install", K1, True)], id="fresh install"),
        pytest.param("installed", True, _st((K1, "installed")), {}, [], id="installed is a no-op"),
        pytest.param("installed", True, _st((K1, "built")), {}, [("install", K1, True)], id="built needs install"),
        pytest.param("installed", True, _st((K1, "built")), {"dkms_version": (2, 8, 4)}, [("install", K1, False)],
                     id="no --force before 3.0.7"),
        pytest.param("installed", True, _st((K1, "installed"), (K2, "added")), {}, [
            ("build", K2, False), ("install", K2, True)], id="only the missing kernel"),
        pytest.param("built", True, _st((K1, "installed")), {}, [], id="installed satisfies built"),
        pytest.param("present", False, _st((K1, "absent")), {}, [("add", None, False)], id="present adds only"),
        pytest.param("added", True, _st((K1, "installed")), {}, [], id="added is a no-op once registered"),
        pytest.param("installed", True, _st((K1, "installed")), {"force": True}, [
            ("build", K1, True), ("install", K1, True)], id="force on 3.x uses --force"),
        pytest.param("installed", True, _st((K1, "installed")), {"force": True, "dkms_version": (2, 8, 4)}, [
            ("remove", K1, False), ("build", K1, False), ("install", K1, False)],
            id="force before 3.0.7 removes first"),
        pytest.param("built", True, _st((K1, "built")), {"force": True}, [("build", K1, True)], id="forced rebuild"),
        pytest.param("installed", True, _st((K1, "installed-weak")), {}, [
            ("build", K1, False), ("install", K1, True)], id="weak install is not enough"),
        pytest.param("absent", True, _st((K1, "installed"), (K2, "added")), {}, [("remove", K1, False)],
                     id="absent on listed kernels"),
        pytest.param("absent", True, _st((K1, "installed")), {"remove_all": True}, [("remove-all", None, False)],
                     id="absent everywhere"),
        pytest.param("absent", False, _st((K1, "absent")), {"remove_all": True}, [], id="absent is a no-op"),
    ],
)
def test_plan_steps(wanted, registered, states, kwargs, expected):
    assert _plan(wanted, registered, states, **kwargs) == expected


def test_plan_reinstalls_when_built_and_installed_differ():
    states = {K1: ("installed", (_dkms.NOTE_DIFFERS,), None)}
    assert _plan("installed", True, states) == [("install", K1, True)]


def test_plan_rejects_unknown_state():
    with pytest.raises(ValueError, match="state must be one of"):
        _dkms.plan_steps("loaded", True, {})


def test_build_always_precedes_install_of_same_kernel():
    steps = _plan("installed", False, _st((K1, "absent"), (K2, "built")))
    assert steps.index(("build", K1, False)) < steps.index(("install", K1, True))
    assert ("build", K2, False) not in steps


@pytest.mark.parametrize(
    "step, kwargs, argv",
    [
        (_dkms.Step("add", None, False), {}, ["dkms", "add", "-m", "m", "-v", "1"]),
        (_dkms.Step("add", None, False), {"source": "/opt/src/m"}, ["dkms", "add", "/opt/src/m"]),
        (_dkms.Step("build", "K", False), {"jobs": 2}, ["dkms", "build", "-m", "m", "-v", "1", "-k", "K", "-j", "2"]),
        (_dkms.Step("install", "K", True), {}, ["dkms", "install", "-m", "m", "-v", "1", "-k", "K", "--force"]),
        (_dkms.Step("remove-all", None, False), {}, ["dkms", "remove", "-m", "m", "-v", "1", "--all"]),
    ],
)
def test_dkms_argv(step, kwargs, argv):
    assert _dkms.dkms_argv("dkms", step, "m", "1", **kwargs) == argv


def test_exit_codes_and_logs():
    assert "BUILD_EXCLUSIVE" in _dkms.explain_exit_code(77)
    assert "make.log" in _dkms.explain_exit_code(10)
    assert "unexpected" in _dkms.explain_exit_code(42)
    assert _dkms.make_log_paths("m", "1", "K", "x86_64") == [
        "/var/lib/dkms/m/1/build/make.log",
        "/var/lib/dkms/m/1/K/x86_64/log/make.log",
    ]
    assert _dkms.tail("a\nb\nc", 2) == "b\nc"


# ---------------------------------------------------------------------------------------------
# Output captured from real DKMS: 3.0.10 (Debian 12) and 3.2.2 (Debian 13); see fixtures/dkms/README.md.
# Kernels A and B are the two Debian ABIs of each capture (fixtures/dkms/<release>/kernels).
# ---------------------------------------------------------------------------------------------

CAPTURES = pathlib.Path(__file__).resolve().parents[3] / "unit" / "fixtures" / "dkms"
RELEASES = ("debian12", "debian13")


def captured(release, case, stream="stdout"):
    return (CAPTURES / release / ("%s.%s" % (case, stream))).read_text()


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize(
    "case, state_a, state_b",
    [
        ("status-none", "absent", "absent"),
        ("status-none-mv", "absent", "absent"),
        ("status-added", "added", "added"),
        ("status-added-mv", "added", "added"),
        ("status-built-one", "built", "added"),
        ("status-built-one-mv", "built", "added"),
        ("status-installed-one", "installed", "added"),
        ("status-installed-one-mv", "installed", "added"),
        ("status-installed-both", "installed", "installed"),
        ("status-installed-both-mv", "installed", "installed"),
        ("status-installed-both-m", "installed", "installed"),
        ("status-installed-both-slash", "installed", "installed"),
        ("status-after-uninstall-kB", "installed", "built"),
        ("status-after-autoinstall-kB", "installed", "installed"),
        ("status-after-remove", "absent", "absent"),
    ],
)
def test_captured_status(release, case, state_a, state_b):
    kernel_a, kernel_b = (CAPTURES / release / "kernels").read_text().split()
    entries = _dkms.parse_status(captured(release, case))
    _registered, _broken, states = _dkms.kernel_states(entries, "dattobd", "0.12.1", (kernel_a, kernel_b))
    assert (states[kernel_a][0], states[kernel_b][0]) == (state_a, state_b)


@pytest.mark.parametrize("release", RELEASES)
def test_captured_status_filtered_by_kernel(release):
    """`dkms status -k B` says `added` when the module is built for A only (REFERENCE.md)."""
    kernel_a, kernel_b = (CAPTURES / release / "kernels").read_text().split()
    entries = _dkms.parse_status(captured(release, "status-built-one-kB"))
    assert [(e.kernel, e.state) for e in entries] == [(None, "added")]
    _registered, _broken, states = _dkms.kernel_states(entries, "dattobd", "0.12.1", (kernel_b,))
    assert states[kernel_b][0] == "added"


def test_captured_broken_differs_between_releases():
    """3.2 prints `broken`; 3.0.10 prints nothing but an error, so the module checks the tree on disk."""
    assert [e.state for e in _dkms.parse_status(captured("debian13", "broken-status"))] == ["broken"]
    assert _dkms.parse_status(captured("debian12", "broken-status")) == []
    assert "Could not locate dkms.conf" in captured("debian12", "broken-status", "stderr")


@pytest.mark.parametrize("release, version", [("debian12", (3, 0, 10)), ("debian13", (3, 2, 2))])
def test_captured_versions(release, version):
    assert _dkms.parse_dkms_version(captured(release, "version")) == version
    assert _dkms.supports_force_rebuild(version)


@pytest.mark.parametrize("release", RELEASES)
def test_captured_exit_codes_match_the_table(release):
    assert int(captured(release, "add-again", "rc")) == 3
    assert "already added" in _dkms.explain_exit_code(3)
    assert int(captured(release, "broken-build-kB", "rc")) == 4
    assert "broken" in _dkms.explain_exit_code(4)


# ---------------------------------------------------------------------------------------------
# Names that become paths, and what may be deleted
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    pytest.param("dattobd", id="dattobd"),
    pytest.param("v4l2loopback", id="v4l2loopback"),
    pytest.param("nvidia-current", id="dash inside"),
    pytest.param("zfs", id="zfs"),
    pytest.param("535.183.01", id="nvidia version"),
    pytest.param("0.12.7", id="dotted version"),
    pytest.param("2.2.0-rc1", id="rc version"),
    pytest.param("1.0~beta1", id="tilde version"),
    pytest.param("6.1.0-56-amd64", id="debian kernel"),
    pytest.param("6.12.57+deb13-amd64", id="plus in kernel"),
    pytest.param("5.14.0-427.el9.x86_64", id="rhel kernel"),
    pytest.param("r8168_v1", id="underscore"),
    pytest.param("a.b", id="single dot inside"),
    pytest.param("kernel-6.1.0-56-amd64-x86_64", id="dkms kernel link name"),
])
def test_validate_component_accepts(value):
    assert _dkms.validate_component("name", value) == value


@pytest.mark.parametrize("value, message", [
    pytest.param("", "must not be empty", id="empty"),
    pytest.param(None, "must not be empty", id="none"),
    pytest.param("../../../tmp/victim", "without '/'", id="traversal"),
    pytest.param("..", "contain '..'", id="dotdot"),
    pytest.param(".", "must not be '.'", id="dot"),
    pytest.param("a..b", "contain '..'", id="dotdot inside"),
    pytest.param("dattobd/0.12.1", "without '/'", id="module slash version"),
    pytest.param("/tmp", "without '/'", id="absolute"),
    pytest.param("dat tobd", "whitespace", id="space"),
    pytest.param("dattobd\n", "whitespace", id="newline"),
    pytest.param("dattobd\t", "whitespace", id="tab"),
    pytest.param("dat\x00tobd", "control", id="nul"),
    pytest.param("dat\x1btobd", "control", id="escape"),
    pytest.param("-rf", "start with '-'", id="option-like"),
    pytest.param("--all", "start with '-'", id="dkms option"),
])
def test_validate_component_refuses(value, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        _dkms.validate_component("version", value)
    assert str(info.value).startswith("version")


@pytest.mark.parametrize("resolved, ok", [
    pytest.param("/var/lib/dkms/m/1", True, id="the tree"),
    pytest.param("/var/lib/dkms/m/1/K/x86_64/module/m.ko", True, id="inside the tree"),
    pytest.param("/usr/src/m-1", True, id="the source"),
    pytest.param("/usr/src/m-1/dkms.conf", True, id="inside the source"),
    pytest.param("/var/lib/dkms/m/10", False, id="a sibling with the same prefix"),
    pytest.param("/usr/src/m-1.bak", False, id="a source with the same prefix"),
    pytest.param("/var/lib/dkms/m", False, id="the parent"),
    pytest.param("/tmp/victim/v", False, id="outside"),
    pytest.param("/var/lib/dkms/m/1/../../../../tmp", False, id="dotdot after resolution"),
    pytest.param("relative/path", False, id="relative"),
])
def test_check_removal(resolved, ok):
    roots = _dkms.removal_roots("m", "1", "/var/lib/dkms", "/usr/src")
    if ok:
        assert _dkms.check_removal("P", resolved, roots) == resolved
    else:
        with pytest.raises(ValueError, match="refusing to delete P"):
            _dkms.check_removal("P", resolved, roots)


def test_removal_roots_follow_moved_bases_only():
    assert _dkms.removal_roots("m", "1", "/srv/dkms", "/usr/src") == ("/srv/dkms/m/1", "/usr/src/m-1")
    with pytest.raises(ValueError, match="name"):
        _dkms.removal_roots("../x", "1", "/var/lib/dkms", "/usr/src")


# ---------------------------------------------------------------------------------------------
# Whether a run changed the host
# ---------------------------------------------------------------------------------------------

def _snap(registered=True, states=None, source="fp1", broken=False):
    return _dkms.Snapshot(registered, broken, dict(states or {}), source)


@pytest.mark.parametrize("before, after, completed, changed", [
    pytest.param(_snap(False, {K1: "absent"}, None), _snap(False, {K1: "absent"}, None), [], False,
                 id="failed add left nothing"),
    pytest.param(_snap(False, {K1: "absent"}), _snap(False, {K1: "absent"}), [_dkms.Step("add", None, False)], False,
                 id="registration rolled back"),
    pytest.param(_snap(False, {K1: "absent"}, None), _snap(False, {K1: "absent"}, "fp2"), [], True,
                 id="dkms add DIR copied the source before failing"),
    pytest.param(_snap(False, {K1: "absent"}), _snap(True, {K1: "added"}), [_dkms.Step("add", None, False)], True,
                 id="added"),
    pytest.param(_snap(True, {K1: "added"}), _snap(True, {K1: "added"}), [], False,
                 id="build refused with 77"),
    pytest.param(_snap(True, {K1: "added"}), _snap(True, {K1: "installed"}),
                 [_dkms.Step("build", K1, False), _dkms.Step("install", K1, True)], True, id="installed"),
    pytest.param(_snap(True, {K1: "installed"}), _snap(True, {K1: "installed"}),
                 [_dkms.Step("build", K1, True)], True, id="forced rebuild, same state, new files"),
    pytest.param(_snap(True, {K1: "installed"}), _snap(True, {K1: "installed"}),
                 [_dkms.Step("remove", K1, False), _dkms.Step("build", K1, False), _dkms.Step("install", K1, False)],
                 True, id="remove then rebuild before DKMS 3.0.7"),
    pytest.param(_snap(True, {K1: "installed"}), _snap(True, {K1: "added"}), [], True,
                 id="failed forced build dropped the state"),
    pytest.param(_snap(True, {K1: "added"}, broken=True), _snap(False, {K1: "absent"}, broken=False),
                 [_dkms.Step("remove-stale", None, False)], True, id="stale tree cleared"),
])
def test_host_changed(before, after, completed, changed):
    assert _dkms.host_changed(before, after, completed) is changed


def test_changed_kernels_of_plan_leaves_excluded_kernels_out():
    steps = _dkms.plan_steps("installed", False, {K1: ("excluded", (), None), K2: ("absent", (), None)})
    assert [(s.action, s.kernel) for s in steps] == [("add", None), ("build", K2), ("install", K2)]
    assert _dkms.changed_kernels_of_plan({K1: "absent", K2: "absent"}, steps) == {K2}
    remove_all = [_dkms.Step("remove-all", None, False)]
    assert _dkms.changed_kernels_of_plan({K1: "excluded", K2: "installed"}, remove_all) == {K2}


@pytest.mark.parametrize("wanted, state, kwargs", [
    pytest.param("installed", "excluded", {}, id="installed"),
    pytest.param("built", "excluded", {}, id="built"),
    pytest.param("installed", "excluded", {"force": True}, id="force builds nothing either"),
    pytest.param("installed", "excluded", {"force": True, "dkms_version": (2, 8, 4)}, id="no remove on old DKMS"),
])
def test_plan_skips_excluded_kernels(wanted, state, kwargs):
    assert _plan(wanted, True, _st((K1, state)), **kwargs) == []


@pytest.mark.parametrize("states, exclusions, expected", [
    pytest.param({K1: ("added", (), None)}, {K1: "why"}, "excluded", id="added and excluded"),
    pytest.param({K1: ("absent", (), None)}, {K1: "why"}, "excluded", id="not yet registered"),
    pytest.param({K1: ("added", (), None)}, {K1: None}, "added", id="not excluded"),
    pytest.param({K1: ("installed", (), None)}, {K1: "why"}, "installed", id="built before the exclusion stays"),
    pytest.param({K1: ("added", (), None)}, {}, "added", id="not evaluated"),
])
def test_mark_excluded(states, exclusions, expected):
    assert _dkms.mark_excluded(states, exclusions)[K1][0] == expected


# ---------------------------------------------------------------------------------------------
# BUILD_EXCLUSIVE rules of DKMS 3.0.10 and 3.2.x
# ---------------------------------------------------------------------------------------------

D12, D13 = (3, 0, 10), (3, 2, 2)
CONFIG = "CONFIG_VIDEO_DEV=m\nCONFIG_X86=y\n# CONFIG_DEBUG_FOO is not set\nCONFIG_NUMBER=5\n"


def _excl(dkms_version=D13, kernel=K1, arch="x86_64", config=CONFIG, **directives):
    values = dict((name, "") for name in _dkms.EXCLUSIVE_DIRECTIVES)
    values.update(directives)
    return _dkms.build_exclusion(values, kernel, arch, "/lib/modules/K/build/.config", config, dkms_version)


@pytest.mark.parametrize("dkms_version", [D12, D13], ids=["3.0.10", "3.2.2"])
@pytest.mark.parametrize("directives, excluded", [
    pytest.param({}, None, id="no directive"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "REQUIRES CONFIG_VIDEO_DEV"}, "does not match", id="v4l2loopback"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "^6\\.1\\."}, None, id="kernel regex matches"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "^2\\.6\\."}, "does not match", id="kernel regex misses"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "amd64"}, None, id="unanchored"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "^6\\.[0-9]+\\.0-(50|56)-"}, None, id="classes and groups"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "^[[:digit:]]{1,2}\\."}, None, id="posix class and interval"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "^[^6]"}, "does not match", id="negated bracket"),
    pytest.param({"BUILD_EXCLUSIVE_ARCH": "x86_64|i.86"}, None, id="arch matches"),
    pytest.param({"BUILD_EXCLUSIVE_ARCH": "aarch64"}, "BUILD_EXCLUSIVE_ARCH", id="arch misses"),
    pytest.param({"BUILD_EXCLUSIVE_CONFIG": "CONFIG_VIDEO_DEV CONFIG_X86"}, None, id="config set y and m"),
    pytest.param({"BUILD_EXCLUSIVE_CONFIG": "CONFIG_DEBUG_FOO"}, "is not set", id="config commented out"),
    pytest.param({"BUILD_EXCLUSIVE_CONFIG": "CONFIG_VIDEO"}, "is not set", id="config prefix is not the option"),
    pytest.param({"BUILD_EXCLUSIVE_CONFIG": "CONFIG_NUMBER"}, "is not set", id="config neither y nor m"),
    pytest.param({"BUILD_EXCLUSIVE_CONFIG": "!CONFIG_X86"}, "is set", id="negated config set"),
    pytest.param({"BUILD_EXCLUSIVE_CONFIG": "!CONFIG_DEBUG_FOO"}, None, id="negated config unset"),
    pytest.param({"BUILD_EXCLUSIVE_CONFIG": "CONFIG_*", "BUILD_EXCLUSIVE_ARCH": "aarch64"}, "ARCH",
                 id="one directive excludes although another cannot be told"),
])
def test_build_exclusion(dkms_version, directives, excluded):
    reason = _excl(dkms_version, **directives)
    if excluded is None:
        assert reason is None
    else:
        assert reason.startswith("excluded by BUILD_EXCLUSIVE in dkms.conf") and excluded in reason


@pytest.mark.parametrize("directives, d12, d13", [
    pytest.param({"BUILD_EXCLUSIVE_KERNEL_MIN": "4.4"}, None, None, id="min below"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL_MIN": "6.2"}, None, "older", id="min above: 3.0.10 ignores it"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL_MIN": "6.1.0-56"}, None, None, id="min equal"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL_MAX": "6.0"}, None, "newer", id="max below"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL_MAX": "6.12"}, None, None, id="max above (6.12 > 6.1 numerically)"),
    pytest.param({"OBSOLETE_BY": "5.15"}, None, "OBSOLETE_BY", id="obsolete_by is the max on 3.2"),
    pytest.param({"OBSOLETE_BY": "5.15", "BUILD_EXCLUSIVE_KERNEL_MAX": "7.0"}, None, None,
                 id="an explicit max wins over obsolete_by"),
])
def test_build_exclusion_kernel_range(directives, d12, d13):
    for version, expected in ((D12, d12), (D13, d13)):
        reason = _excl(version, kernel="6.1.0-56-amd64", **directives)
        assert (reason is None) if expected is None else (expected in reason), (version, reason)


def test_build_exclusion_without_a_kernel_config_skips_the_config_check():
    assert _excl(BUILD_EXCLUSIVE_CONFIG="CONFIG_MISSING", config=None) is None


@pytest.mark.parametrize("directives", [
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "\\d+"}, id="GNU escape"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "^\\<6"}, id="word boundary"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "[[=a=]]"}, id="equivalence class"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "^6{"}, id="brace that is not an interval"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "*6"}, id="leading star"),
    pytest.param({"BUILD_EXCLUSIVE_KERNEL": "[6"}, id="unterminated bracket"),
    pytest.param({"BUILD_EXCLUSIVE_ARCH": "x86_64\u00e9"}, id="non-ASCII"),
    pytest.param({"BUILD_EXCLUSIVE_CONFIG": "CONFIG_V*"}, id="glob in config"),
])
def test_build_exclusion_that_cannot_be_told_is_left_to_dkms(directives):
    with pytest.raises(ValueError):
        _excl(**directives)


@pytest.mark.parametrize("version, rules", [
    pytest.param((3, 0, 10), "3.0.10", id="Debian 12"),
    pytest.param((3, 2, 2), "3.2", id="Debian 13"),
    pytest.param((3, 2, 0), "3.2", id="3.2.0"),
])
def test_exclusion_rules(version, rules):
    assert _dkms.exclusion_rules(version) == rules


@pytest.mark.parametrize("version", [(2, 8, 4), (3, 0, 11), (3, 1, 8), (3, 3, 0)])
def test_exclusion_rules_unknown(version):
    with pytest.raises(ValueError, match="not known"):
        _dkms.exclusion_rules(version)


def test_probe_args_and_config_candidates_follow_each_release():
    d12 = _dkms.exclusive_probe_args("/c", "m", "1", "K", "x86_64", D12, "/lib/modules/K/build/.config")
    d13 = _dkms.exclusive_probe_args("/c", "m", "1", "K", "x86_64", D13, "/cfg")
    assert d12[:7] == ["K", "x86_64", "m", "1", "/lib/modules/K/build", "/lib/modules/K/build/.config", ""]
    assert d12[8:] == ["/c", "/etc/dkms/m.conf", "/etc/dkms/m-1.conf", "/etc/dkms/m-1-K.conf",
                       "/etc/dkms/m-1-K-x86_64.conf"]
    assert d13[6] == "1" and "BUILD_EXCLUSIVE_KERNEL_MIN" in d13[7] and "BUILD_EXCLUSIVE_KERNEL_MIN" not in d12[7]
    assert d13[-2:] == ["/etc/dkms/m--K.conf", "/etc/dkms/m--K-x86_64.conf"]
    assert _dkms.kernel_config_candidates("K", D12) == ["/lib/modules/K/build/.config"]
    assert _dkms.kernel_config_candidates("K", D13) == ["/lib/modules/K/build/include/config/auto.conf",
                                                        "/lib/modules/K/build/.config"]


def test_parse_exclusive_probe():
    values = _dkms.parse_exclusive_probe("BUILD_EXCLUSIVE_KERNEL=REQUIRES CONFIG_VIDEO_DEV\0OBSOLETE_BY=\0junk\0")
    assert values["BUILD_EXCLUSIVE_KERNEL"] == "REQUIRES CONFIG_VIDEO_DEV"
    assert values["BUILD_EXCLUSIVE_ARCH"] == "" and set(values) == set(_dkms.EXCLUSIVE_DIRECTIVES)


@pytest.mark.parametrize("release, padded", [
    pytest.param("6.1.0-56-amd64", "006.001.000-056-amd064", id="debian"),
    pytest.param("4.4", "004.004", id="bound"),
    pytest.param("6.12.57+deb13-amd64", "006.012.057+deb013-amd064", id="plus"),
    pytest.param("2.6.9-1cvs200409091247", "002.006.009-001cvs200409091247", id="DKMS's own example"),
    pytest.param("10.0.1-rc1", "010.000.001-rc001", id="two digits"),
])
def test_dkms_ver_matches_dkms(release, padded):
    # Values produced by DKMS 3.2.2's VER() (its sed script) for the same input.
    assert _dkms.dkms_ver(release) == padded
