# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks at fleet size (issue 16 item 7): tags, rollout keywords, AWX surveys, the repair guard and
the monitor key's failure reason. Read from the files and from `ansible-playbook --list-tasks`: no target."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
PLAYBOOKS = ROOT / "playbooks"
ROLE_TAGS = {"repo", "dkms_toolchain", "dattobd", "initramfs", "agent", "monitor", "device_report",
             "kernel_upgrade", "linux_agent"}


class _Loader(yaml.SafeLoader):
    """Ansible's !unsafe (awx/job_templates.yml) read as the plain string."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load(path):
    return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def tasks_of(tasks):
    """Every task, with the tasks of blocks (block, rescue, always) flattened; always tasks marked."""
    for task in tasks or []:
        if "block" in task:
            yield from tasks_of(task["block"])
            yield from tasks_of(task.get("rescue"))
            for inner in tasks_of(task.get("always")):
                yield dict(inner, __always_section=True)
        else:
            yield task


def role_imports():
    for playbook in sorted(PLAYBOOKS.glob("*.yml")):
        for play in load(playbook):
            for task in tasks_of(play.get("tasks")):
                if "ansible.builtin.import_role" in task or "ansible.builtin.include_role" in task:
                    yield playbook.name, task


def test_every_role_import_has_one_role_tag():
    imports = list(role_imports())
    assert imports
    for playbook, task in imports:
        tags = set(task.get("tags") or [])
        assert tags, "%s: %r has no tags" % (playbook, task["name"])
        role = (task.get("ansible.builtin.import_role") or task["ansible.builtin.include_role"])["name"]
        role_tags = tags & ROLE_TAGS
        assert len(role_tags) <= 1 or task["name"] == "List the toolchain packages", (playbook, task["name"], tags)
        if not role_tags:
            assert "always" in tags, "%s: %r is neither a role tag nor always" % (playbook, task["name"])
        else:
            assert role.rsplit(".", 1)[-1] in role_tags or task["name"] == "List the toolchain packages"


def test_always_clean_up_runs_under_any_tag():
    found = [task for _playbook, task in role_imports() if task.get("__always_section")]
    assert found, "no always section with a role import"
    for task in found:
        assert "always" in (task.get("tags") or []), task["name"]


def collections_path():
    if ROOT.parents[1].name == "ansible_collections":
        return str(ROOT.parents[2])
    return str(ROOT / "build" / "collections")


def list_tasks(playbook, *args):
    bindir = pathlib.Path(sys.executable).parent
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1",
               PATH="%s:%s" % (bindir, os.environ.get("PATH", "")))
    run = subprocess.run([str(bindir / "ansible-playbook"), "--list-tasks", "-i", "localhost,", str(playbook),
                          *args], capture_output=True, text=True, env=env, cwd=str(ROOT), check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_tags_monitor_runs_the_monitor_and_what_it_needs_only():
    listed = list_tasks(PLAYBOOKS / "install.yml", "--tags", "monitor")
    for needed in ("Stop here, the host is as the last verified install left it",  # the fast path
                   "Gather the facts the roles use",
                   "Refuse hosts the install does not support end to end",  # the preflight
                   "monitor : Download the monitor's private key",
                   "monitor : Verify the monitor runs"):
        assert needed in listed, "%r not run with --tags monitor:\n%s" % (needed, listed)
    for skipped in ("agent : Install", "dkms_toolchain : Install", "device_report : Print"):
        assert not re.search(re.escape(skipped), listed), "%r runs with --tags monitor:\n%s" % (skipped, listed)


@pytest.mark.parametrize(("args", "records"), [
    pytest.param((), True, id="full run"),
    pytest.param(("--tags", "monitor"), False, id="--tags"),
    pytest.param(("--skip-tags", "device_report"), False, id="--skip-tags of a role"),
    # molecule's converge always skips these: every role still runs, so the host is recorded (make deploy's second
    # run takes the fast path).
    pytest.param(("--skip-tags", "molecule-notest,notest"), True, id="--skip-tags of no role (molecule)"),
])
def test_only_a_full_run_records_the_fast_path_state(tmp_path, args, records):
    """The record's own conditions, evaluated by ansible-playbook on the controller (ansible_run_tags is a
    tuple in ansible-core 2.19: a plain comparison with ['all'] never held, and no run recorded)."""
    play = load(PLAYBOOKS / "install.yml")[0]
    record = [t for t in tasks_of(play["tasks"]) if t["name"].startswith("Record the verified state")]
    assert record, "no record task in install.yml"
    when = record[0]["when"]
    playbook = tmp_path / "when.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Evaluate", "ansible.builtin.debug": {"msg": "RECORDS"}, "when": when,
         "tags": ["always"]}]}]))
    bindir = pathlib.Path(sys.executable).parent
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    run = subprocess.run([str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook), *args],
                         capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert ('"msg": "RECORDS"' in run.stdout) is records, run.stdout


def test_uninstall_rolls_out_like_install():
    install = load(PLAYBOOKS / "install.yml")[0]
    uninstall = load(PLAYBOOKS / "uninstall.yml")[0]
    assert uninstall.get("serial") == install["serial"]
    assert uninstall.get("max_fail_percentage") == install["max_fail_percentage"]


def awx_templates():
    path = ROOT / "awx" / "job_templates.yml"
    if not path.is_file():
        pytest.skip("awx/ is not part of this copy")
    play = load(path)[0]
    return play, {t["playbook"]: t for t in play["vars"]["awx_job_templates"]}


@pytest.mark.parametrize("playbook", ["playbooks/repair.yml", "playbooks/kernel_upgrade.yml"])
def test_awx_templates_ask_only_what_the_playbook_uses(playbook):
    play, templates = awx_templates()
    asked = [q.strip("{} ") for q in templates[playbook]["survey"]]
    variables = [play["vars"][q]["variable"] for q in asked]
    assert "linux_agent_console_url" not in variables and "linux_agent_console_token" not in variables, variables
    # The playbook never reads the console: its preflight sets the console up only for prebuilt or console sources.
    text = (ROOT / playbook).read_text()
    assert "dattobd_source: host" in text and "dattobd_prebuilt: false" in text


def test_awx_repair_workflow_asks_no_console():
    play, _templates = awx_templates()
    workflow = [t for t in play["tasks"] if "awx.awx.workflow_job_template" in t][0]["awx.awx.workflow_job_template"]
    spec = workflow.get("survey_spec") or {}
    assert "console" not in str(spec), spec


def test_repair_message_names_the_variable_its_guard_reads():
    play = load(PLAYBOOKS / "repair.yml")[0]
    guard = [t for t in tasks_of(play["tasks"])
             if t["name"] == "Refuse to guess between several registered versions"][0]
    named = re.findall(r"-e (\w+)=", guard["ansible.builtin.fail"]["msg"])
    assert named, guard
    assert all("%s is not defined" % name in guard["when"] for name in named), (named, guard["when"])
    chosen = [t for t in tasks_of(play["tasks"]) if t["name"] == "Repair the registered version"][0]
    assert all(name in chosen["ansible.builtin.set_fact"]["dattobd_version"] for name in named)


def test_monitor_key_failure_reason_shown_without_the_key():
    tasks = load(ROOT / "roles" / "monitor" / "tasks" / "main.yml")
    names = [t["name"] for t in tasks]
    key = tasks[names.index("Download the monitor's private key")]
    assert key.get("no_log") is True and key.get("register") == "__monitor_key"
    assert key.get("ignore_errors") is True, "a failure must reach the task that says why"
    reason = tasks[names.index("Download the monitor's private key") + 1]
    assert reason.get("when") == "__monitor_key is failed"
    msg = reason["ansible.builtin.fail"]["msg"]
    # Only the module's msg (built from status, URL without token, artifact, checksums): no other result field.
    assert set(re.findall(r"__monitor_key\.(\w+)", msg)) == {"msg"}, msg
    assert "no_log" not in reason
