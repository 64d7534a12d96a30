# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""make bench counts module runs in an install's -vvv log (benchmarks/noop_fleet.py, module_runs)."""

from __future__ import annotations

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
if not (ROOT / "benchmarks" / "noop_fleet.py").is_file():
    # The collection tarball leaves benchmarks/ out (galaxy.yml build_ignore): make installed-check.
    pytest.skip("benchmarks/ is not part of the installed collection", allow_module_level=True)
sys.path.insert(0, str(ROOT / "benchmarks"))

import noop_fleet  # noqa: E402  (benchmarks/ is not a package)

# A real excerpt of `install.yml -vvv` against a podman target (2026-12-01): a stat delegated to the
# controller, then managed_files and kernel_facts on the target.
EXCERPT = (ROOT / "tests" / "unit" / "fixtures" / "bench" / "install-vvv-excerpt.log").read_text()


@pytest.mark.parametrize("output, expected", [
    pytest.param(EXCERPT, {"remote": 2, "local": 1, "by_module": {"kernel_facts": 1, "managed_files": 1}},
                 id="captured excerpt: a controller stat, two target runs"),
    pytest.param("", {"remote": 0, "local": 0, "by_module": {}}, id="no run"),
    pytest.param("TASK [a] *\nUsing module file /x/command.py\nok: [h]\nRUNNING HANDLER [b] *\n"
                 "Using module file /x/command.py\n",
                 {"remote": 2, "local": 0, "by_module": {"command": 2}}, id="a task and a handler"),
])
def test_module_runs(output, expected):
    assert noop_fleet.module_runs(output) == expected
