# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection digest in converged_state's inputs: a change to anything the install runs sends the next run
down the full path (issue 16, item 5: playbooks/ was left out)."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.action import converged_state

COLLECTION = pathlib.Path(__file__).resolve().parents[4]


@pytest.fixture
def collection(tmp_path):
    """A copy of what the install runs, in a fresh path (the digest is cached per path)."""
    copy = tmp_path / "linux_agent"
    for top in ("roles", "plugins", "playbooks"):
        shutil.copytree(COLLECTION / top, copy / top, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "meta").mkdir()
    shutil.copyfile(COLLECTION / "meta" / "runtime.yml", copy / "meta" / "runtime.yml")
    return copy


def digest(path):
    converged_state._CACHE.pop(str(path), None)
    return converged_state.collection_digest(str(path))


@pytest.mark.parametrize("edited", [
    "playbooks/install.yml",
    "playbooks/uninstall.yml",
    "meta/runtime.yml",
    "roles/linux_agent/vars/main.yml",
    "plugins/action/converged_state.py",
])
def test_an_edit_to_what_the_install_runs_changes_the_digest(collection, edited):
    before = digest(collection)
    with (collection / edited).open("a") as handle:
        handle.write("\n# edited\n")
    assert digest(collection) != before, "%s is not in the collection digest" % edited


def test_a_new_playbook_changes_the_digest(collection):
    before = digest(collection)
    (collection / "playbooks" / "extra.yml").write_text("---\n- hosts: all\n  tasks: []\n")
    assert digest(collection) != before


def test_the_digest_is_stable_and_ignores_bytecode(collection):
    before = digest(collection)
    cache = collection / "plugins" / "action" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "converged_state.cpython-311.pyc").write_bytes(b"\0")
    assert digest(collection) == before
