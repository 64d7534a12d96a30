# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pathlib

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
