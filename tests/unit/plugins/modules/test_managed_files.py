# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""managed_files on a real directory tree (tmp_path), as the user running the tests."""

from __future__ import annotations

import grp
import os
import pwd
import stat

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.modules import managed_files

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def mode(path):
    return "%04o" % stat.S_IMODE(os.lstat(path).st_mode)


def args(root, content="dattobd\n", file_mode="0644"):
    return {
        "directories": [{"path": str(root / "opt" / "monitor" / "etc"), "mode": "0750", "owner": USER, "group": GROUP}],
        "files": [
            {"path": str(root / "opt" / "monitor" / "etc" / "unit"), "content": content, "mode": file_mode,
             "owner": USER, "group": GROUP},
            {"path": str(root / "dattobd.conf"), "content": "x\n", "mode": "0600", "owner": USER, "group": GROUP},
        ],
    }


def test_creates_then_changes_nothing(run_module, tmp_path):
    failed, result = run_module(managed_files, args(tmp_path))
    assert not failed, result
    assert result["changed"]
    assert result["changed_paths"] == [str(tmp_path / "opt/monitor/etc"), str(tmp_path / "opt/monitor/etc/unit"),
                                       str(tmp_path / "dattobd.conf")]
    assert (tmp_path / "opt/monitor/etc/unit").read_text() == "dattobd\n"
    assert mode(tmp_path / "opt/monitor/etc") == "0750"
    assert mode(tmp_path / "opt/monitor") == "0755"  # a missing parent
    assert mode(tmp_path / "opt/monitor/etc/unit") == "0644"
    assert mode(tmp_path / "dattobd.conf") == "0600"
    assert not [p for p in os.listdir(tmp_path / "opt/monitor/etc") if p.startswith(".hm-managed-")]

    failed, again = run_module(managed_files, args(tmp_path))
    assert not failed and not again["changed"] and again["changed_paths"] == []


def test_check_mode_predicts_and_writes_nothing(run_module, tmp_path):
    failed, result = run_module(managed_files, args(tmp_path), check_mode=True, diff=True)
    assert not failed and result["changed"]
    assert len(result["changed_paths"]) == 3
    assert not (tmp_path / "opt").exists() and not (tmp_path / "dattobd.conf").exists()
    assert result["diff"][1]["after"] == "dattobd\n" and result["diff"][1]["before"] == ""


def test_only_what_differs_changes_with_its_reason_and_diff(run_module, tmp_path):
    run_module(managed_files, args(tmp_path))
    os.chmod(tmp_path / "dattobd.conf", 0o644)
    failed, result = run_module(managed_files, args(tmp_path, content="dattobd\nother\n"), diff=True)
    assert not failed
    unit, conf = str(tmp_path / "opt/monitor/etc/unit"), str(tmp_path / "dattobd.conf")
    assert result["changed_paths"] == [unit, conf]
    assert result["reasons"] == {unit: ["content"], conf: ["mode 0644 -> 0600"]}
    assert result["diff"][0]["before"] == "dattobd\n" and result["diff"][0]["after"] == "dattobd\nother\n"
    assert mode(conf) == "0600"


@pytest.mark.parametrize("mutate, words", [
    pytest.param(lambda a, r: a["files"][0].update(path=str(r / "x/../y")), "not normalised", id="dot-dot path"),
    pytest.param(lambda a, r: a["files"][1].update(mode="644x"), "octal string", id="bad mode"),
    pytest.param(lambda a, r: a["files"][1].update(owner="no-such-user-here"), "no such user", id="unknown owner"),
    pytest.param(lambda a, r: a["files"][1].update(path=str(r / "missing/f")), "does not exist", id="no directory"),
])
def test_bad_input_fails_before_anything_changes(run_module, tmp_path, mutate, words):
    wanted = args(tmp_path)
    mutate(wanted, tmp_path)
    failed, result = run_module(managed_files, wanted)
    assert failed
    assert words in result["msg"] and "Nothing was changed" in result["msg"]
    assert not (tmp_path / "opt").exists()


def test_a_symlink_is_refused_not_followed(run_module, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / "dattobd.conf").symlink_to(victim)
    failed, result = run_module(managed_files, args(tmp_path))
    assert failed
    assert "dattobd.conf is a symlink or special file, not a file" in result["msg"]
    assert victim.read_text() == "keep\n"
    assert not (tmp_path / "opt").exists()


def test_absent_removes_files_links_and_trees_never_a_link_target(run_module, tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "data").write_text("keep\n")
    (tmp_path / "old.conf").write_text("x\n")
    (tmp_path / "link").symlink_to(keep)
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_text("f\n")
    paths = [str(tmp_path / name) for name in ("old.conf", "link", "tree", "never-there")]

    failed, check = run_module(managed_files, {"absent": paths}, check_mode=True, diff=True)
    assert not failed and check["changed"] and check["changed_paths"] == paths[:3]
    assert (tmp_path / "old.conf").exists() and (tmp_path / "tree").exists()
    assert check["diff"][2] == {"before_header": paths[2], "after_header": paths[2],
                                "before": {"state": "directory"}, "after": {"state": "absent"}}

    failed, result = run_module(managed_files, {"absent": paths})
    assert not failed and result["changed_paths"] == paths[:3]
    assert result["reasons"] == {path: ["removed"] for path in paths[:3]}
    assert not (tmp_path / "old.conf").exists() and not (tmp_path / "tree").exists()
    assert not os.path.lexists(tmp_path / "link")
    assert (keep / "data").read_text() == "keep\n"

    failed, again = run_module(managed_files, {"absent": paths})
    assert not failed and not again["changed"]


def test_check_mode_predicts_a_file_whose_directory_an_earlier_task_would_create(run_module, tmp_path):
    wanted = {"files": [{"path": str(tmp_path / "usr-src" / "dkms.conf"), "content": "x\n", "mode": "0644",
                         "owner": USER, "group": GROUP}]}
    failed, result = run_module(managed_files, wanted, check_mode=True)
    assert not failed and result["changed_paths"] == [str(tmp_path / "usr-src" / "dkms.conf")]
    failed, result = run_module(managed_files, wanted)
    assert failed and "does not exist" in result["msg"]
