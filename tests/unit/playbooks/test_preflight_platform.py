# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Non-apt hosts (issue 16 items 6 and 8), on the controller alone.

The testbed has no dnf or zypper host, and Ansible's pkg_mgr fact says apt on any Debian host whatever is
installed there. So these runs set the gathered fact (set_fact cacheable: true, which is what
ansible_facts['pkg_mgr'] reads) on localhost and run the real task files: the preflight's first task, and the
repo role with nothing missing (no source is added). The limit: a real dnf host's facts are not exercised."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("pkg_mgr", ["dnf", "zypper"])
def test_preflight_refuses_non_apt_hosts_first(tmp_path, run_play, pkg_mgr):
    run = run_play(tmp_path, """
    - name: The install's preflight
      ansible.builtin.import_role:
        name: hypermotion.linux_agent.dattobd
        tasks_from: preflight
""")("-e", "fake_pkg_mgr=" + pkg_mgr)
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0, out
    for word in ("package manager is %s" % pkg_mgr, "apt hosts only", "Debian 12 (bookworm)",
                 "Debian 13 (trixie)", "tracked", "Nothing was changed"):
        assert word in out, "%r not in:\n%s" % (word, out)
    # The first task of the preflight: nothing before it ran on the host (no console set-up, no read).
    assert "Set up the console connection" not in out and "Read kernels" not in out, out


def test_dnf_source_without_gpgkey_warns(tmp_path, run_play):
    run = run_play(tmp_path, """
    - name: The repo role, nothing missing (so no source is written)
      ansible.builtin.import_role:
        name: hypermotion.linux_agent.repo
      vars:
        repo_sources:
          - {name: epel, baseurl: "https://example.invalid/epel"}
          - {name: signed, baseurl: "https://example.invalid/signed", gpgkey: "https://example.invalid/key"}
        repo_required_packages: [dkms]
        repo_missing_packages: []
""")("-e", "fake_pkg_mgr=dnf")
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 0, out
    assert "[WARNING] repo_sources entry epel has no gpgkey" in out and "gpgcheck=0" in out, out
    assert "entry signed has no gpgkey" not in out, out
