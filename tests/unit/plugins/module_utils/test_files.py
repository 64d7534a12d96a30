# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _files


@pytest.mark.parametrize("path", [
    pytest.param("/etc/modules-load.d/dattobd.conf", id="plain"),
    pytest.param("/var/lib/hypermotion-linux-agent", id="directory"),
    pytest.param("/opt/a b/c", id="space is a valid character"),
])
def test_good_paths(path):
    assert _files.check_path(path, "files[0].path") == path


@pytest.mark.parametrize("path, words", [
    pytest.param("", "required", id="empty"),
    pytest.param(None, "required", id="none"),
    pytest.param("etc/x", "absolute", id="relative"),
    pytest.param("/", "absolute path below /", id="root itself"),
    pytest.param("/etc/../tmp/x", "normalised", id="dot-dot"),
    pytest.param("/etc/./x", "normalised", id="dot"),
    pytest.param("/etc//x", "normalised", id="double slash"),
    pytest.param("//etc/x", "normalised", id="leading double slash"),
    pytest.param("/etc/x/", "normalised", id="trailing slash"),
    pytest.param("/etc/x\n", "newline", id="newline"),
])
def test_bad_paths_name_the_option(path, words):
    with pytest.raises(ValueError, match="files\\[0\\]\\.path") as info:
        _files.check_path(path, "files[0].path")
    assert words in str(info.value)


@pytest.mark.parametrize("mode, value", [("0644", 0o644), ("755", 0o755), ("0750", 0o750), ("1777", 0o1777)])
def test_good_modes(mode, value):
    assert _files.check_mode(mode, "m") == value


@pytest.mark.parametrize("mode", ["644x", "0o644", "", "0888", 420, None, "12345"])
def test_bad_modes(mode):
    with pytest.raises(ValueError, match="octal string"):
        _files.check_mode(mode, "m")


def test_normalise_defaults_and_encodes():
    dirs, files, absent = _files.normalise([{"path": "/opt/x", "mode": "0755"}],
                                           [{"path": "/opt/x/f", "mode": "0600", "content": "é\n", "owner": "daemon"}],
                                           ["/etc/old.conf"])
    assert absent == ["/etc/old.conf"]
    assert dirs == [{"path": "/opt/x", "mode": 0o755, "owner": "root", "group": "root"}]
    assert files == [{"path": "/opt/x/f", "mode": 0o600, "owner": "daemon", "group": "root",
                      "content": "é\n".encode()}]


@pytest.mark.parametrize("dirs, files, words", [
    pytest.param([{"path": "/a", "mode": "0755"}], [{"path": "/a", "mode": "0644", "content": ""}],
                 "listed twice", id="same path twice"),
    pytest.param([], [{"path": "/a", "mode": "0644"}], "content", id="file without content"),
    pytest.param([{"path": "/a", "mode": "0755", "owner": "-x"}], [], "user or group", id="bad owner"),
])
def test_normalise_refuses(dirs, files, words):
    with pytest.raises(ValueError, match=words):
        _files.normalise(dirs, files)


@pytest.mark.parametrize("absent, files, words", [
    pytest.param(["/a", "/a"], [], "absent\\[1\\]: /a is listed twice", id="absent twice"),
    pytest.param(["/a"], [{"path": "/a", "mode": "0644", "content": ""}], "files\\[0\\]: /a is listed twice",
                 id="absent and wanted"),
    pytest.param(["/usr/src/../../etc"], [], "absent\\[0\\]: .* not normalised", id="absent dot-dot"),
    pytest.param(["/"], [], "absolute path below /", id="absent root"),
])
def test_normalise_refuses_absent(absent, files, words):
    with pytest.raises(ValueError, match=words):
        _files.normalise([], files, absent)


FILE = {"path": "/etc/x", "mode": 0o644, "owner": "root", "group": "root", "content": b"x\n"}
DIRECTORY = {"path": "/opt/x", "mode": 0o750, "owner": "root", "group": "root"}


@pytest.mark.parametrize("entry, current, reasons", [
    pytest.param(FILE, None, ["absent"], id="file absent"),
    pytest.param(FILE, {"type": "file", "mode": 0o644, "uid": 0, "gid": 0, "sha256": _files.sha256(b"x\n")}, [],
                 id="file as wanted"),
    pytest.param(FILE, {"type": "file", "mode": 0o600, "uid": 0, "gid": 0, "sha256": _files.sha256(b"y\n")},
                 ["content", "mode 0600 -> 0644"], id="file content and mode differ"),
    pytest.param(FILE, {"type": "file", "mode": 0o644, "uid": 1, "gid": 0, "sha256": _files.sha256(b"x\n")},
                 ["owner"], id="file owner differs"),
    pytest.param(DIRECTORY, {"type": "directory", "mode": 0o750, "uid": 0, "gid": 0}, [], id="directory as wanted"),
    pytest.param(DIRECTORY, {"type": "directory", "mode": 0o755, "uid": 0, "gid": 0}, ["mode 0755 -> 0750"],
                 id="directory mode differs"),
])
def test_compare(entry, current, reasons):
    assert _files.compare(entry, current, 0, 0) == reasons


@pytest.mark.parametrize("entry, kind, words", [
    (FILE, "directory", "is a directory, not a file"),
    (FILE, "other", "is a symlink or special file, not a file"),
    (DIRECTORY, "file", "is a file, not a directory"),
])
def test_compare_refuses_another_kind(entry, kind, words):
    with pytest.raises(ValueError, match=words):
        _files.compare(entry, {"type": kind, "mode": 0o644, "uid": 0, "gid": 0}, 0, 0)
