# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run role task files on the controller (localhost), with the gathered pkg_mgr fact set to fake_pkg_mgr."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def collections_path():
    if ROOT.parents[1].name == "ansible_collections":
        return str(ROOT.parents[2])
    return str(ROOT / "build" / "collections")


def _run_play(tmp_path, tasks):
    playbook = tmp_path / "play.yml"
    playbook.write_text("""
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Look like a %s host
      ansible.builtin.set_fact:
        pkg_mgr: "{{ fake_pkg_mgr }}"
        cacheable: true
%s
""" % ("{{ fake_pkg_mgr }}", tasks))
    bindir = pathlib.Path(sys.executable).parent
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCALHOST_WARNING="0",
               PATH="%s:%s" % (bindir, os.environ.get("PATH", "")))
    return lambda *extra: subprocess.run(
        [str(bindir / "ansible-playbook"), "-i", "localhost,", str(playbook), *extra],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)


@pytest.fixture
def run_play():
    """run_play(tmp_path, TASKS_YAML)(*ansible_playbook_args) -> CompletedProcess."""
    return _run_play
