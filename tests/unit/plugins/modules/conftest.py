# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest
from ansible.module_utils import _internal, basic
from ansible.module_utils.testing import patch_module_args


@pytest.fixture
def run_module(capsys, monkeypatch):
    """Run a module's main() with arguments; return (failed, result payload)."""
    # Importing controller code (tests/unit/plugins/action imports an action plugin) flips ansible-core's
    # is_controller for the whole process, and module warnings then go to the controller's display instead
    # of the result: a module's main() runs on a target, never on the controller.
    monkeypatch.setattr(_internal, "is_controller", False)

    def _run(module, args, check_mode=False, diff=False):
        args = dict(args)
        if check_mode:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
            module.main()
        result = json.loads(capsys.readouterr().out)
        return exit_info.value.code != 0 or result.get("failed", False), result

    return _run


@pytest.fixture
def bin_paths(monkeypatch):
    """Pretend these commands are installed (everything else is not)."""
    present = {}

    def get_bin_path(self, arg, required=False, opt_dirs=None):
        if arg in present:
            return present[arg]
        if required:
            self.fail_json(msg="Failed to find required executable %s" % arg)
        return None

    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    return present
