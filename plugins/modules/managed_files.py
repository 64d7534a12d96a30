#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: managed_files
short_description: Directories and small files of one role step, placed or removed in one remote call
version_added: 0.1.0
description:
  - Makes each listed directory exist and each listed file hold exactly the given content, with the given
    mode, owner and group, in one module run. The roles use it where a step writes several small files
    (a unit, its script, a modules-load entry) that would otherwise cost a module run each (two for
    M(ansible.builtin.copy) and M(ansible.builtin.template)), and on a slow target one run costs seconds.
  - Paths in O(absent) are removed first (a file or symlink is unlinked, never followed; a directory is removed
    with everything below it), then directories are handled, in their order, so a file may live in a
    directory of the same call.
    Missing parents of a listed directory are created C(0755) root:root. A file whose directory does not
    exist (and is not listed) is refused, as M(ansible.builtin.copy) refuses it; in check mode it is reported
    as a change, since an earlier task that would create the directory only predicted it.
  - Files are replaced atomically (a temporary file in the same directory, then a rename); the content is
    compared by sha256, never by modification time.
  - Paths must be absolute and normalised (no C(..), C(.), C(//) or trailing C(/)); modes are octal strings.
    A path that exists as another kind (a symlink, a directory where a file is wanted) is refused, never
    replaced. A path may be listed once in all three options together. Everything is validated before
    anything on the host changes.
  - Content is rendered on the controller (for example with the C(template) lookup); it appears in diff
    output, so do not pass secrets.
author:
  - HyperMotion Linux Agent engineers (@hypermotion)
extends_documentation_fragment:
  - hypermotion.linux_agent.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  absent:
    description:
      - Paths to remove, each only if it exists. List only paths the caller manages, since a directory goes with
        everything in it.
    type: list
    elements: str
    default: []
  directories:
    description: Directories to create or correct.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute, normalised path.
        type: str
        required: true
      mode:
        description: Octal mode as a string, such as V('0750').
        type: str
        required: true
      owner:
        description: User name.
        type: str
        default: root
      group:
        description: Group name.
        type: str
        default: root
  files:
    description: Files to write or correct.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute, normalised path.
        type: str
        required: true
      content:
        description: The whole content of the file (UTF-8 text).
        type: str
        required: true
      mode:
        description: Octal mode as a string, such as V('0644').
        type: str
        required: true
      owner:
        description: User name.
        type: str
        default: root
      group:
        description: Group name.
        type: str
        default: root
"""

EXAMPLES = r"""
- name: Install the boot-time build unit, its script and the modules-load entry
  hypermotion.linux_agent.managed_files:
    files:
      - path: /etc/modules-load.d/dattobd.conf
        content: "dattobd\n"
        mode: "0644"
      - path: /usr/local/sbin/hypermotion-dattobd-build
        content: "{{ lookup('ansible.builtin.template', 'hypermotion-dattobd-build.sh.j2') }}"
        mode: "0755"
  register: boot_files

- name: Reload systemd when the unit changed
  ansible.builtin.systemd_service:
    daemon_reload: true
  when: "'/etc/systemd/system/hypermotion-dattobd-build.service' in boot_files.changed_paths"
"""

RETURN = r"""
changed_paths:
  description: The paths that were (or in check mode would be) removed, created or corrected, in order.
  returned: always
  type: list
  elements: str
  sample: [/etc/modules-load.d/dattobd.conf]
reasons:
  description: >-
    Per changed path, what differed (V(absent), V(content), V(mode 0600 -> 0644), V(owner)), or V(removed) for a
    path of O(absent) that existed.
  returned: always
  type: dict
"""

import grp
import os
import pwd
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _files

_SPEC = dict(
    path=dict(type="str", required=True),
    mode=dict(type="str", required=True),
    owner=dict(type="str", default="root"),
    group=dict(type="str", default="root"),
)


def _current(path, want_file):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    if stat.S_ISDIR(st.st_mode):
        kind = "directory"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    state = {"type": kind, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    data = None
    if kind == "file" and want_file:
        with open(path, "rb") as handle:
            data = handle.read()
        state["sha256"] = _files.sha256(data)
    return state, data


def _ids(entry):
    try:
        return pwd.getpwnam(entry["owner"]).pw_uid, grp.getgrnam(entry["group"]).gr_gid
    except KeyError as exc:
        raise ValueError("%s: no such user or group on the host: %s" % (entry["path"], to_native(exc))) from None


def _write(module, entry, uid, gid):
    directory = os.path.dirname(entry["path"])
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".hm-managed-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(entry["content"])
            handle.flush()
            os.fsync(handle.fileno())
        module.atomic_move(tmp, entry["path"])
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    os.chown(entry["path"], uid, gid)
    os.chmod(entry["path"], entry["mode"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            absent=dict(type="list", elements="str", default=[]),
            directories=dict(type="list", elements="dict", default=[], options=_SPEC),
            files=dict(type="list", elements="dict", default=[],
                       options=dict(_SPEC, content=dict(type="str", required=True))),
        ),
        supports_check_mode=True,
    )
    try:
        directories, files, absent = _files.normalise(
            module.params["directories"], module.params["files"], module.params["absent"])
        removals = []
        for path in absent:
            current, _data = _current(path, False)
            if current is not None:
                removals.append((path, current["type"]))
        plan = []
        for entry in directories + files:
            uid, gid = _ids(entry)
            current, before = _current(entry["path"], "content" in entry)
            reasons = _files.compare(entry, current, uid, gid)
            if reasons:
                plan.append((entry, uid, gid, current, before, reasons))
        planned_dirs = {entry["path"] for entry in directories}
        for entry in files:
            parent = os.path.dirname(entry["path"])
            # In check mode an earlier task of the play may only have predicted the directory.
            if not os.path.isdir(parent) and parent not in planned_dirs and not module.check_mode:
                raise ValueError("%s: its directory %s does not exist; create it first (directories)"
                                 % (entry["path"], parent))
    except ValueError as exc:
        module.fail_json(msg="managed_files: %s. Nothing was changed." % to_native(exc))

    diff = [{"before_header": path, "after_header": path, "before": {"state": kind}, "after": {"state": "absent"}}
            for path, kind in removals]
    for entry, _uid, _gid, current, before, _reasons in plan:
        item = {"before_header": entry["path"], "after_header": entry["path"]}
        if "content" in entry:
            item["before"] = to_native(before or b"", errors="surrogate_or_replace")
            item["after"] = to_native(entry["content"], errors="surrogate_or_replace")
        else:
            item["before"] = {"state": "absent"} if current is None else {"mode": "%04o" % current["mode"]}
            item["after"] = {"state": "directory", "mode": "%04o" % entry["mode"]}
        diff.append(item)

    if not module.check_mode:
        done = []
        entry = {"path": ""}
        try:
            for path, kind in removals:
                entry = {"path": path}
                try:
                    if kind == "directory":
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                except FileNotFoundError:
                    pass  # inside a directory removed before it in the same list
                done.append(path)
            for entry, uid, gid, current, _before, reasons in plan:
                if "content" in entry:
                    if "content" in reasons or current is None:
                        _write(module, entry, uid, gid)
                    else:
                        os.chown(entry["path"], uid, gid)
                        os.chmod(entry["path"], entry["mode"])
                else:
                    if current is None:
                        parent = os.path.dirname(entry["path"])
                        if not os.path.isdir(parent):
                            os.makedirs(parent, 0o755)
                        os.mkdir(entry["path"], entry["mode"])
                    os.chown(entry["path"], uid, gid)
                    os.chmod(entry["path"], entry["mode"])
                done.append(entry["path"])
        except OSError as exc:
            module.fail_json(msg="managed_files: cannot change %s: %s. Done before the failure: %s."
                             % (entry["path"], to_native(exc), ", ".join(done) or "nothing"),
                             changed=bool(done), changed_paths=done)

    reasons = {path: ["removed"] for path, _kind in removals}
    reasons.update((item[0]["path"], item[5]) for item in plan)
    module.exit_json(
        changed=bool(plan or removals),
        changed_paths=[path for path, _kind in removals] + [item[0]["path"] for item in plan],
        reasons=reasons,
        diff=diff,
    )


if __name__ == "__main__":
    main()
