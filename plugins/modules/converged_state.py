#!/usr/bin/python
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: converged_state
short_description: Read everything the install manages in one call, and compare it with the last verified install
version_added: 0.2.0
description:
  - The install's fast path on a converged host. With O(state=check) it reads, in one call, the fingerprint of
    everything the install roles manage (O(paths), each kernel's image, module files, depmod index and initramfs,
    the matching O(packages), the enablement and state of O(services) and O(units), the loaded modules, Secure
    Boot) and compares it with the stamp the last successful install wrote. It also checks what must hold now,
    the O(services) run, nothing matches O(absent) (temporary package sources), and dpkg has no half-done package.
  - Equal, with the same install variables (O(inputs_sha256)), means the roles would find nothing to do, so the
    install playbook stops there for that host. Anything else lists the reasons and the full install runs.
  - With O(state=record), writes the stamp (mode 0600, root only). The install does this as its last step, after
    every role has verified its part.
  - The action plugin of the same name computes O(inputs_sha256) on the controller from the variables the
    collection's roles declare in their argument specs (secrets excluded) and from the collection's own files,
    so another value of any role variable, or another version of the collection, sends the run down the full path.
  - Files are compared by content (sha256), type, mode and owner, also every entry below a directory; never
    by modification time, so a host restored from an image or a backup is recognised. Only Debian-family
    package databases (dpkg) are read.
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
  state:
    description:
      - V(check) reads and compares, never writes. V(record) writes the stamp.
    type: str
    choices: [check, record]
    default: check
  stamp:
    description: The stamp file. Excluded from the directories fingerprinted in O(paths).
    type: path
    required: true
  inputs_sha256:
    description:
      - Digest of the install's variables. Set by the action plugin; with O(state=record) pass the value the
        check at the start of the run returned, so the record matches the variables the run started with.
    type: str
    required: true
  paths:
    description: Files and directories the roles manage. Missing ones are fingerprinted as absent.
    type: list
    elements: path
    default: []
  absent:
    description: Glob patterns that must match nothing (leftovers such as temporary package sources).
    type: list
    elements: str
    default: []
  packages:
    description: Glob patterns of package names whose status and version are fingerprinted.
    type: list
    elements: str
    default: []
  services:
    description: Services that must be loaded, active and enabled.
    type: list
    elements: str
    default: []
  units:
    description: Units whose enablement is fingerprinted (their activity is not, e.g. a one-shot build unit).
    type: list
    elements: str
    default: []
  modules:
    description: Kernel module names whose file is fingerprinted per installed kernel, and whose loaded state is.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Compare the host with its last verified install
  hypermotion.linux_agent.converged_state:
    stamp: /var/lib/hypermotion-linux-agent/converged.json
    paths: [/usr/src/dattobd-0.12.1, /var/lib/dkms/dattobd, /etc/modules-load.d/dattobd.conf]
    packages: [dkms, "linux-headers-*", "linux-image-*"]
    services: [egisplus-agent]
    modules: [dattobd]
  register: converged

- name: Stop on a host the last install left as it is now
  ansible.builtin.meta: end_host
  when: converged.converged
"""

RETURN = r"""
converged:
  description: Whether the host is as the last verified install left it, with the same variables.
  returned: always
  type: bool
reasons:
  description: Why not, in an operator's words (empty when converged).
  returned: always
  type: list
  elements: str
  sample:
    - service egisplus-agent is failed, not active
    - "changed since the last verified install: kernel 6.12.57+deb12-amd64 (installed or removed)"
inputs_sha256:
  description: The digest of the variables, as given.
  returned: always
  type: str
fingerprint_sha256:
  description: Digest of the host's fingerprint now.
  returned: always
  type: str
"""

import json
import os
import platform
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _converged, _host, _secure_boot

ROOT = "/"


def _read_stamp(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _packages(module):
    path = module.get_bin_path("dpkg-query")
    if not path:
        return None
    rc, out, err = module.run_command([path, "-W", "-f=" + _converged.DPKG_QUERY_FORMAT])
    if rc != 0:
        module.fail_json(msg="Cannot read the package database: dpkg-query failed (rc %d): %s. Nothing was changed. "
                             "Repair dpkg on this host (`dpkg --audit` names the problem), then re-run."
                             % (rc, err.strip()))
    return _converged.parse_dpkg_query(out)


def _units(module, names):
    if not names:
        return {}
    path = module.get_bin_path("systemctl")
    if not path:
        return {}
    argv = [path, "show", "-p", ",".join(_converged.SYSTEMCTL_PROPERTIES), "--"]
    rc, out, err = module.run_command(argv + [_converged.unit_name(name) for name in names])
    return _converged.parse_systemctl_show(out) if rc == 0 else {}


def read_host(module):
    """(fingerprint, problems that must be fixed now whatever the stamp says)."""
    params = module.params
    stamp = params["stamp"]
    problems = []
    packages = _packages(module)
    if packages is None:
        problems.append("no dpkg on this host: the fast path reads only dpkg package databases")
        packages = {}
    unfinished = _converged.unfinished_packages(packages)
    if unfinished:
        problems.append("dpkg left packages half-done: %s" % ", ".join(unfinished))
    leftovers = _converged.present_matches(ROOT, params["absent"])
    if leftovers:
        problems.append("left over from an earlier run: %s" % ", ".join(leftovers))
    units = _units(module, params["services"] + params["units"])
    problems.extend(_converged.service_problems(units, params["services"]))

    loaded = _host.loaded_modules(ROOT)
    can_load = _host.container_kind(ROOT) is None
    paths = {}
    for path in params["paths"]:
        entry = _converged.path_fingerprint(ROOT, path)
        inside = os.path.relpath(stamp, path)
        if isinstance(entry, dict) and not inside.startswith(".."):
            # The stamp lives in a managed directory (the state directory): it must not fingerprint itself.
            entry.pop(inside, None)
        paths[path] = entry
    fingerprint = {
        "running_kernel": platform.release(),
        "secure_boot": _secure_boot.read_state(module, ROOT)[0],
        "kernels": {release: _converged.kernel_fingerprint(ROOT, release, params["modules"], None)
                    for release in _host.installed_kernels(ROOT)},
        "paths": paths,
        "packages": _converged.select_packages(packages, params["packages"]),
        "units": {name: units.get(_converged.unit_name(name), {}).get("UnitFileState", "not-found")
                  for name in params["services"] + params["units"]},
        # In a container the kernel is another machine's: what is loaded there is not this host's doing.
        "loaded": {name: name in loaded for name in params["modules"]} if can_load else {},
    }
    return fingerprint, problems


def _write_stamp(module, path, document):
    directory = os.path.dirname(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".converged-")
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, sort_keys=True, indent=1)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        module.fail_json(msg="Could not write the record of this install to %s: %s. The install itself completed; "
                             "make %s writable (or free space) and re-run: the next run takes the full path "
                             "and records again." % (path, exc, directory))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["check", "record"], default="check"),
            stamp=dict(type="path", required=True),
            inputs_sha256=dict(type="str", required=True),
            paths=dict(type="list", elements="path", default=[]),
            absent=dict(type="list", elements="str", default=[]),
            packages=dict(type="list", elements="str", default=[]),
            services=dict(type="list", elements="str", default=[]),
            units=dict(type="list", elements="str", default=[]),
            modules=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LANGUAGE": "C", "LC_ALL": "C"}
    params = module.params
    stamp_path = os.path.join(ROOT, params["stamp"].lstrip("/"))
    fingerprint, problems = read_host(module)
    stamp = _read_stamp(stamp_path)
    converged, reasons = _converged.compare(stamp, params["inputs_sha256"], fingerprint, problems)
    result = dict(changed=False, converged=converged, reasons=reasons, inputs_sha256=params["inputs_sha256"],
                  fingerprint_sha256=_converged.digest(fingerprint))

    if params["state"] == "record":
        document = _converged.stamp_document(params["inputs_sha256"], fingerprint)
        if stamp != document:
            result["changed"] = True
            if module._diff:
                result["diff"] = {
                    "before_header": params["stamp"], "after_header": params["stamp"],
                    "before": "" if stamp is None else "inputs %s\nfingerprint %s\n" % (
                        stamp.get("inputs_sha256"), _converged.digest(stamp.get("fingerprint"))),
                    "after": "inputs %s\nfingerprint %s\n" % (params["inputs_sha256"], result["fingerprint_sha256"]),
                }
            if not module.check_mode:
                _write_stamp(module, stamp_path, document)
        result["msg"] = "recorded the verified state" if result["changed"] else "the record is current"
    else:
        result["msg"] = ("as the last verified install left it" if converged
                         else "the full install runs: " + "; ".join(reasons))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
