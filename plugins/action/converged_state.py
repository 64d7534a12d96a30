# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of converged_state: the digest of the install's variables, then the module on the host.

The variables are the options the install roles declare in meta/argument_specs.yml, so a new role option
is covered without a list to keep up to date. Options marked no_log (the console token) are left out: the
token authenticates downloads, it does not shape the host, and its hash should not sit in a file. The
collection's own files the install runs (roles, plugins, playbooks, meta/runtime.yml) are hashed too, so an
upgraded collection never trusts an older record.
"""

from __future__ import annotations

import hashlib
import json
import os

import yaml
from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

COLLECTION = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The roles whose options decide what install.yml leaves on a host. repo's temporary sources are gone
# after every run; kernel_upgrade and device_report are not part of the install.
INPUT_ROLES = ("linux_agent", "dattobd", "dkms_toolchain", "initramfs", "agent", "monitor")
# Options that choose how a run goes, not what it leaves on the host: a run with the fast path off or a
# forced rebuild records the same state as a normal run would.
NOT_STATE = frozenset(("linux_agent_fast_path", "linux_agent_converged_record", "dattobd_force", "dattobd_preflight"))
_CACHE = {}
# What of the collection a run executes: the roles, the plugins, the playbooks (install.yml's plays, imports and
# keywords) and meta/runtime.yml (plugin routing, the required ansible-core).
DIGESTED = ("roles", "plugins", "playbooks", os.path.join("meta", "runtime.yml"))


def role_options(collection=COLLECTION, roles=INPUT_ROLES):
    """Names of the options the roles' argument specs declare, without the no_log ones and NOT_STATE."""
    names, secret = set(), set()
    for role in roles:
        path = os.path.join(collection, "roles", role, "meta", "argument_specs.yml")
        with open(path) as handle:
            specs = yaml.safe_load(handle).get("argument_specs", {})
        for entry in specs.values():
            for name, option in (entry.get("options") or {}).items():
                names.add(name)
                if option.get("no_log"):
                    secret.add(name)
    return sorted(names - secret - NOT_STATE)


def _digested_files(collection):
    for top in DIGESTED:
        start = os.path.join(collection, top)
        if os.path.isfile(start):
            yield start
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                yield os.path.join(dirpath, name)


def collection_digest(collection=COLLECTION):
    """sha256 over what the install runs of the collection (paths and contents), cached per controller process."""
    if collection in _CACHE:
        return _CACHE[collection]
    sha = hashlib.sha256()
    for path in _digested_files(collection):
        sha.update(os.path.relpath(path, collection).encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            sha.update(handle.read())
        sha.update(b"\0")
    _CACHE[collection] = sha.hexdigest()
    return _CACHE[collection]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _inputs(self, task_vars):
        values = {}
        for name in role_options():
            if name not in task_vars:
                values[name] = {"undefined": True}
                continue
            raw = task_vars[name]
            try:
                values[name] = self._templar.template(raw)
            except AnsibleError:
                # Derived from what only exists later in the run (facts, the plan): its text stands for it.
                values[name] = {"unresolved": str(raw)}
        return values

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if not args.get("inputs_sha256"):
            document = {"collection": collection_digest(), "variables": self._inputs(task_vars or {})}
            args["inputs_sha256"] = hashlib.sha256(
                json.dumps(document, sort_keys=True, default=str).encode("utf-8")).hexdigest()
        result.update(self._execute_module(module_name="hypermotion.linux_agent.converged_state", module_args=args,
                                           task_vars=task_vars))
        return result
