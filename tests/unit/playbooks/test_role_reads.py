# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reads the install hands from one role to the next (dkms_toolchain_read_state, repo_missing_packages), on
the controller: the role that is told the caller read nothing refuses, and the repo role left to itself reads the
real package database (dpkg-query) and decides from it. Check mode: nothing is written on this machine."""

from __future__ import annotations

import pathlib
import shutil
import sys

import pytest


def test_toolchain_refuses_when_the_caller_did_not_read(tmp_path, run_play):
    run = run_play(tmp_path, """
    - name: The toolchain told that the play read the kernels and packages, which it did not
      ansible.builtin.import_role:
        name: hypermotion.linux_agent.dkms_toolchain
      vars:
        dkms_toolchain_read_state: false
""")("-e", "fake_pkg_mgr=apt", "-e", "ansible_python_interpreter=" + sys.executable, "--check")
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0, out
    for word in ("dkms_toolchain_read_state is false", "/usr/src", "kernel_facts with disk_paths",
                 "tasks_from: packages", "leave dkms_toolchain_read_state at true"):
        assert word in out, "%r not in:\n%s" % (word, out)
    assert "Install dkms, gcc, make and the headers" not in out, out


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg (a Debian controller)")
@pytest.mark.parametrize(("required", "added"), [
    pytest.param(["dpkg"], False, id="everything installed: no source"),
    pytest.param(["dpkg", "hm-no-such-package"], True, id="a package missing: the source is added"),
])
def test_repo_reads_the_package_database_itself_by_default(tmp_path, run_play, required, added):
    run = run_play(tmp_path, """
    - name: The repo role without repo_missing_packages (its default)
      ansible.builtin.import_role:
        name: hypermotion.linux_agent.repo
      vars:
        repo_sources:
          - {name: test, uris: "http://deb.example.invalid/debian", suites: [bookworm], components: [main]}
        repo_required_packages: %s
        repo_update_cache: false
""" % required)("-e", "fake_pkg_mgr=apt", "-e", "ansible_python_interpreter=" + sys.executable, "--check", "-v")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "Find which required packages are missing" in out, out
    assert "dpkg-query" in out, out
    add = out[out.index("TASK [hypermotion.linux_agent.repo : Add apt sources]"):]
    add = add[:add.index("TASK [", 10)]
    assert ("changed: [localhost] => (item=test)" in add) is added, add
    assert not pathlib.Path("/etc/apt/sources.list.d/hypermotion-linux-agent-test.sources").exists()
