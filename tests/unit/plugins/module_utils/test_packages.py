# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pathlib

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _packages

# Captured in the Debian 12 test image (tests/testbed): as built, and after a package whose postinst
# fails (dpkg -i) and one only unpacked (dpkg --unpack). dpkg --audit exited 0 for both.
FIXTURES = pathlib.Path(__file__).parents[3] / "unit" / "fixtures" / "dpkg"
CLEAN = (FIXTURES / "bookworm-clean.txt").read_text()
HALF_DONE = (FIXTURES / "bookworm-half-done.txt").read_text()


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(CLEAN, [], id="captured-clean"),
    pytest.param(HALF_DONE, [("hm-probe-configure-fails", "half-configured", False),
                             ("hm-probe-unpacked", "unpacked", False)], id="captured-half-done"),
    # The states below were not produced here; the lines follow dpkg-query's format for them.
    pytest.param("rc  oldpkg config-files\n", [], id="removed-with-config-files"),
    pytest.param("iHR brokenpkg half-installed\n", [("brokenpkg", "half-installed", True)],
                 id="half-installed-reinst-required"),
    pytest.param("iiR flagged installed\n", [("flagged", "installed", True)], id="reinst-required-only"),
    pytest.param("it  linux-image-6.1.0-56-amd64 triggers-pending\nii  bash installed\n",
                 [("linux-image-6.1.0-56-amd64", "triggers-pending", False)], id="triggers-pending"),
    pytest.param("", [], id="empty"),
    pytest.param("ii \n\n", [], id="truncated-lines"),
])
def test_parse_unfinished(text, expected):
    found = [(e["package"], e["status"], e["reinst_required"]) for e in _packages.parse_unfinished(text)]
    assert found == expected


# (The filter plugin is this function; importing it here would load Ansible's controller code, which turns
# module warnings in the module tests of the same run into controller warnings.)
def test_describe_names_package_and_state():
    describe = _packages.describe_unfinished
    assert describe(HALF_DONE) == ["hm-probe-configure-fails (half-configured)", "hm-probe-unpacked (unpacked)"]
    assert describe("iHR brokenpkg half-installed\n") == ["brokenpkg (half-installed, reinst-required)"]
    assert describe(CLEAN) == []
