#!/usr/bin/python
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dkms_module
short_description: Add, build, install and remove DKMS modules, per kernel, idempotently
version_added: 0.1.0
description:
  - Brings a DKMS module/version to a wanted state on one or more kernels, running only the
    C(dkms add), C(build), C(install) and C(remove) steps needed, and reports each kernel's
    state before and after.
  - Reads C(dkms status) in every format DKMS has used (the comma form of DKMS 2.8.5 and older,
    the slash form of 2.8.6 and 3.x, C(installed-weak), C(broken) and the warning suffixes) and
    checks the DKMS tree on disk, so it also notices a stale tree whose source vanished.
  - A failed build names the kernel, the DKMS exit code and its meaning, the path of make.log and
    its last lines. Builds run before installs, so a failed build leaves whatever module was
    installed before still installed; a registration this run added is rolled back.
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
  name:
    description: DKMS module name (C(PACKAGE_NAME) in dkms.conf).
    type: str
    required: true
  version:
    description: DKMS module version (C(PACKAGE_VERSION) in dkms.conf).
    type: str
    required: true
  source:
    description:
      - Directory holding the module source and its C(dkms.conf).
      - Defaults to C(/usr/src/NAME-VERSION), where DKMS expects it. Another directory is
        registered with C(dkms add DIR), which copies it there.
      - Also used to repair a stale tree whose source vanished (DKMS status C(broken)).
    type: path
  kernels:
    description:
      - Kernel releases to act on.
      - V(all) stands for every installed kernel that has headers (C(/lib/modules/K/build/include)).
      - Defaults to the running kernel, and to every kernel (the whole registration) with O(state=absent).
      - An empty list acts on no kernel (V(present) still registers the source), so a caller whose own list
        came out empty never falls back to the running kernel.
    type: list
    elements: str
  state:
    description:
      - V(present) (alias V(added)) registers the source with DKMS.
      - V(built) also builds it for each kernel; V(installed) also installs it into C(/lib/modules).
      - V(absent) removes it from the listed kernels, or when O(kernels) is not given, removes the
        whole registration (C(dkms remove --all)). C(/usr/src/NAME-VERSION) is left alone.
    type: str
    choices: [present, added, built, installed, absent]
    default: installed
  force:
    description:
      - Rebuild and reinstall even when DKMS reports the module built or installed.
      - Uses C(--force) on DKMS 3.0.7 and newer; older DKMS has no forced rebuild, so the module is
        removed from that kernel first.
    type: bool
    default: false
  jobs:
    description: Parallel make jobs for the build (C(dkms build -j)). DKMS picks its default when unset.
    type: int
  build_timeout:
    description: Seconds a single C(dkms build) may take before it is killed and reported as failed.
    type: int
    default: 1800
notes:
  - Exit code 77 (the kernel is excluded by C(BUILD_EXCLUSIVE_*) in dkms.conf) is reported per kernel
    as skipped, not as a failure.
  - C(installed-weak) (RHEL weak modules) does not count as installed; the module is built and installed
    for that kernel, since snapshot drivers such as dattobd set C(NO_WEAK_MODULES).
  - The module never loads kernel modules; see M(community.general.modprobe).
seealso:
  - module: hypermotion.linux_agent.kernel_facts
"""

EXAMPLES = r"""
- name: Build and install dattobd for the running kernel
  hypermotion.linux_agent.dkms_module:
    name: dattobd
    version: 0.12.1

- name: Build and install for two explicit kernels, four make jobs
  hypermotion.linux_agent.dkms_module:
    name: dattobd
    version: 0.12.1
    kernels:
      - 6.1.0-50-amd64
      - 6.1.0-56-amd64
    jobs: 4

- name: Force a rebuild for the new kernel (the install guide's repair step)
  hypermotion.linux_agent.dkms_module:
    name: dattobd
    version: 0.12.1
    kernels: ["{{ new_kernel }}"]
    force: true

- name: Remove every trace of dattobd 0.12.1 from DKMS
  hypermotion.linux_agent.dkms_module:
    name: dattobd
    version: 0.12.1
    state: absent
"""

RETURN = r"""
dkms_version:
  description: Version of DKMS on the host.
  returned: always
  type: str
  sample: 3.0.10
kernels:
  description: Per kernel, the state before and after, the steps run and a skip reason.
  returned: always
  type: dict
  sample:
    6.1.0-50-amd64:
      before: added
      after: installed
      actions: [build, install]
      skipped: null
changed_kernels:
  description:
    - Kernels whose module files changed (built, installed or removed), so their initramfs needs a refresh.
  returned: always
  type: list
  elements: str
commands:
  description: DKMS command lines run (or, in check mode, that would run).
  returned: always
  type: list
  elements: list
registered:
  description: Whether NAME/VERSION is registered with DKMS after the run.
  returned: always
  type: bool
rolled_back:
  description: Whether a registration this run added was removed again after a failure.
  returned: failure
  type: bool
make_log:
  description: Path of the make.log of a failed build.
  returned: failure
  type: str
make_log_tail:
  description: Last lines of that make.log.
  returned: failure
  type: str
"""

import os
import platform
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _dkms, _host, _kernel

DKMS_TREE = "/var/lib/dkms"


class DkmsRunner:
    """Runs DKMS for one module/version and reads its state (status output plus the tree on disk)."""

    def __init__(self, module):
        self.module = module
        self.name = module.params["name"]
        self.version = module.params["version"]
        self.dkms = module.get_bin_path("dkms", required=True)
        self.arch = platform.machine()
        self.commands = []
        rc, out, err = module.run_command([self.dkms, "--version"])
        try:
            self.dkms_version = _dkms.parse_dkms_version(out + err)
        except ValueError as exc:
            module.fail_json(msg="cannot tell the DKMS version: %s" % exc, rc=rc, stdout=out, stderr=err)

    @property
    def tree(self):
        return "%s/%s/%s" % (DKMS_TREE, self.name, self.version)

    @property
    def default_source(self):
        return "/usr/src/%s-%s" % (self.name, self.version)

    def read_state(self, kernels):
        rc, out, err = self.module.run_command([self.dkms, "status", "-m", self.name, "-v", self.version])
        entries = _dkms.parse_status(out)
        registered, broken, states = _dkms.kernel_states(entries, self.name, self.version, kernels)
        # DKMS 3.0.10 prints an error instead of `broken` when the source vanished, and older
        # releases print nothing: the tree on disk is the ground truth.
        if os.path.isdir(self.tree):
            registered = True
            if not os.path.isfile(os.path.join(self.tree, "source", "dkms.conf")):
                broken = True
        if broken:
            states = dict((k, (_dkms.BROKEN, (), None)) for k in kernels)
            for entry in entries:
                if entry.kernel in states and entry.module == self.name and entry.version == self.version:
                    states[entry.kernel] = (_dkms.BROKEN, entry.notes, None)
        return entries, registered, broken, states

    def run(self, argv, timeout=None):
        self.commands.append(argv)
        if timeout:
            timeout_bin = self.module.get_bin_path("timeout")
            if timeout_bin:
                argv = [timeout_bin, "--kill-after=30", str(timeout)] + argv
        return self.module.run_command(argv)

    def make_log(self, kernel):
        for path in _dkms.make_log_paths(self.name, self.version, kernel, self.arch, DKMS_TREE):
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    return path, handle.read().decode("utf-8", "replace")
        return None, ""


def resolve_kernels(module, requested, wanted):
    # Only an omitted option takes the default: an empty list from a caller's plan means "no kernel".
    if requested is None:
        if wanted == "absent":
            return None
        return [platform.release()]
    if "all" in requested:
        found = [k for k in _host.installed_kernels("/") if _host.headers_present("/", k)]
        extra = [k for k in requested if k != "all" and k not in found]
        return found + extra
    return list(dict.fromkeys(requested))


def describe(states):
    return dict((kernel, info[0]) for kernel, info in sorted(states.items()))


def predict(before, steps):
    after = dict(before)
    for step in steps:
        if step.action == "add":
            after = dict((k, _dkms.ADDED if v in (_dkms.ABSENT, _dkms.BROKEN) else v) for k, v in after.items())
        elif step.action == "build":
            after[step.kernel] = _dkms.BUILT
        elif step.action == "install":
            after[step.kernel] = _dkms.INSTALLED
        elif step.action == "remove":
            after[step.kernel] = _dkms.ADDED
        elif step.action == "remove-all":
            after = dict((k, _dkms.ABSENT) for k in after)
    return after


def headers_hint(kernel):
    os_release = _kernel.parse_os_release(_host.read_text("/", "/etc/os-release") or "")
    family = _kernel.distribution_from_os_release(os_release)["family"]
    package = _kernel.headers_package(family, kernel)
    return package or "the kernel headers for %s" % kernel


def remove_stale_tree(runner, module):
    """Clear a registration whose source vanished: DKMS itself cannot (no dkms.conf to read).

    Removes the module files DKMS installed from that tree (only when they are byte-identical to
    the built copies, so another version's files stay) and the tree itself.
    """
    touched = []
    tree = runner.tree
    for kernel in sorted(os.listdir(tree)):
        module_dir = os.path.join(tree, kernel, runner.arch, "module")
        if kernel in ("build", "source") or not os.path.isdir(module_dir):
            continue
        for filename in os.listdir(module_dir):
            built = os.path.join(module_dir, filename)
            name = filename.split(".ko")[0]
            installed = _host.find_module_file("/", kernel, name)
            if installed and _same_file(built, installed):
                os.unlink(installed)
                touched.append(kernel)
    shutil.rmtree(tree)
    parent = os.path.dirname(tree)
    # DKMS also keeps kernel-K-ARCH links next to the versions ("0.12.1/K/ARCH"): drop this version's.
    for name in os.listdir(parent) if os.path.isdir(parent) else []:
        link = os.path.join(parent, name)
        if name.startswith("kernel-") and os.path.islink(link):
            target = os.readlink(link)
            if target.startswith(runner.version + "/") or ("/%s/" % runner.version) in target:
                os.unlink(link)
    if os.path.isdir(parent) and not os.listdir(parent):
        os.rmdir(parent)
    depmod = module.get_bin_path("depmod")
    for kernel in sorted(set(touched)):
        if depmod:
            module.run_command([depmod, "-a", kernel])
    return sorted(set(touched))


def _same_file(left, right):
    try:
        with open(left, "rb") as a, open(right, "rb") as b:
            return a.read() == b.read()
    except OSError:
        return False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            version=dict(type="str", required=True),
            source=dict(type="path"),
            kernels=dict(type="list", elements="str"),
            state=dict(type="str", default="installed", choices=["present", "added", "built", "installed", "absent"]),
            force=dict(type="bool", default=False),
            jobs=dict(type="int"),
            build_timeout=dict(type="int", default=1800),
        ),
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LANGUAGE": "C", "LC_ALL": "C"}
    params = module.params
    wanted = _dkms.normalise_wanted(params["state"])
    if params["jobs"] is not None and params["jobs"] < 1:
        module.fail_json(msg="jobs must be 1 or more, got %s" % params["jobs"])
    if params["build_timeout"] < 1:
        module.fail_json(msg="build_timeout must be at least 1 second, got %s" % params["build_timeout"])

    runner = DkmsRunner(module)
    dkms_version = ".".join(str(p) for p in runner.dkms_version)
    source = params["source"] or runner.default_source
    kernels = resolve_kernels(module, params["kernels"], wanted)
    remove_all = kernels is None
    if remove_all:
        kernels = sorted(
            set(k for k in os.listdir(runner.tree) if k not in ("build", "source"))
            if os.path.isdir(runner.tree) else set(),
            key=_kernel.kernel_sort_key,
        )

    entries, registered, broken, states = runner.read_state(kernels)
    source_ok = os.path.isfile(os.path.join(source, "dkms.conf"))
    result = dict(changed=False, dkms_version=dkms_version, name=runner.name, version=runner.version, state=wanted)

    # --- Preconditions: refuse before anything on the host changes. ---------------------------
    if wanted != "absent":
        if broken and not source_ok:
            module.fail_json(
                msg="The DKMS tree %s is stale: its source (%s/source/dkms.conf) is gone. Put the module "
                "source back at %s (or pass source= a directory with dkms.conf) and re-run, or run "
                "state=absent to clear the stale tree." % (runner.tree, runner.tree, source),
                kernels=describe(states), **result
            )
        if not registered and not source_ok:
            module.fail_json(
                msg="Cannot register %s/%s: %s has no dkms.conf. Extract the module source there or pass "
                "source= the directory that holds dkms.conf." % (runner.name, runner.version, source),
                kernels=describe(states), **result
            )
        if wanted in ("built", "installed"):
            missing = [k for k in kernels if not _host.headers_present("/", k)]
            if missing:
                module.fail_json(
                    msg="Kernel headers are missing for %s: install %s, then re-run." % (
                        ", ".join(missing), ", ".join(headers_hint(k) for k in missing)),
                    kernels=describe(states), **result
                )

    before = describe(states)
    if broken and wanted == "absent":
        steps = [_dkms.Step("remove-stale", None, False)]
    else:
        steps = _dkms.plan_steps(wanted, registered and not broken, states, force=params["force"],
                                 remove_all=remove_all, dkms_version=runner.dkms_version)
        if broken and source_ok:
            # Re-home the source where DKMS's tree points, then DKMS works on it again.
            steps.insert(0, _dkms.Step("restore-source", None, False))
            steps = [s for s in steps if s.action != "add"]

    planned = [_dkms.dkms_argv(runner.dkms, s, runner.name, runner.version,
                               source=None if source == runner.default_source else source, jobs=params["jobs"])
               if s.action not in ("remove-stale", "restore-source") else [s.action] for s in steps]
    per_kernel = dict((k, {"before": before[k], "after": before[k], "actions": [], "skipped": None}) for k in kernels)
    for step in steps:
        if step.kernel in per_kernel:
            per_kernel[step.kernel]["actions"].append(step.action)

    if module.check_mode or not steps:
        predicted = predict(before, steps) if steps else before
        for kernel in kernels:
            per_kernel[kernel]["after"] = predicted.get(kernel, before[kernel])
        result.update(
            changed=bool(steps), kernels=per_kernel, commands=planned,
            registered=(registered or any(s.action == "add" for s in steps))
            and not any(s.action in ("remove-all", "remove-stale") for s in steps),
            changed_kernels=sorted(k for k in kernels if predicted.get(k) != before[k]),
        )
        if module._diff:
            result["diff"] = dict(before=before, after=predicted)
        module.exit_json(**result)

    # --- Run the plan. ----------------------------------------------------------------------
    was_registered = registered
    changed_kernels = set()
    skipped_kernels = set()
    for step, argv in zip(steps, planned):
        if step.kernel in skipped_kernels:
            continue
        if step.action == "restore-source":
            runner.commands.append(["copy", source, runner.default_source])
            if os.path.realpath(source) != os.path.realpath(runner.default_source):
                if os.path.isdir(runner.default_source):
                    shutil.rmtree(runner.default_source)
                shutil.copytree(source, runner.default_source, symlinks=True)
            continue
        if step.action == "remove-stale":
            runner.commands.append(["remove-stale", runner.tree])
            changed_kernels.update(remove_stale_tree(runner, module))
            continue
        rc, out, err = runner.run(argv, timeout=params["build_timeout"] if step.action == "build" else None)
        if step.action == "build" and rc == _dkms.EXIT_BUILD_EXCLUSIVE:
            per_kernel[step.kernel]["skipped"] = _dkms.explain_exit_code(rc)
            skipped_kernels.add(step.kernel)
            continue
        if rc != 0:
            fail_step(module, runner, step, rc=rc, out=out, err=err, kernels=kernels, per_kernel=per_kernel,
                      was_registered=was_registered, result=result)
        if step.kernel:
            changed_kernels.add(step.kernel)
        elif step.action == "remove-all":
            changed_kernels.update(k for k, s in before.items() if s in (_dkms.BUILT, _dkms.INSTALLED))

    _entries, registered_after, _broken, states_after = runner.read_state(kernels)
    after = describe(states_after)
    for kernel in kernels:
        per_kernel[kernel]["after"] = after[kernel]
    result.update(
        changed=True, kernels=per_kernel, commands=runner.commands, registered=registered_after,
        changed_kernels=sorted(changed_kernels, key=_kernel.kernel_sort_key),
    )
    if module._diff:
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)


def fail_step(module, runner, step, *, rc, out, err, kernels, per_kernel, was_registered, result):
    """Report a failed DKMS step with its context, rolling back a registration this run made."""
    log_path, log_text = (None, "")
    if step.action == "build":
        log_path, log_text = runner.make_log(step.kernel)
    target = " for %s" % step.kernel if step.kernel else ""
    msg = "dkms %s of %s/%s%s failed with exit code %s (%s)." % (
        step.action, runner.name, runner.version, target, rc, _dkms.explain_exit_code(rc))
    if log_path:
        msg += " make.log: %s" % log_path
    rolled_back = False
    if not was_registered and step.action != "add":
        rb_rc, _o, _e = runner.run([runner.dkms, "remove", "-m", runner.name, "-v", runner.version, "--all"])
        rolled_back = rb_rc == 0
        if rolled_back:
            msg += " The registration made by this run was rolled back."
    _entries, _registered, _broken, states_now = runner.read_state(kernels)
    now = describe(states_now)
    for kernel in kernels:
        per_kernel[kernel]["after"] = now[kernel]
    still = ["%s: %s" % (k, s) for k, s in sorted(now.items()) if s == _dkms.INSTALLED]
    if still:
        msg += " Still installed: %s." % ", ".join(still)
    result.update(kernels=per_kernel, commands=runner.commands, rolled_back=rolled_back,
                  registered=_registered, changed=bool(runner.commands) and not rolled_back)
    module.fail_json(
        msg=msg, rc=rc, stdout=out, stderr=err, make_log=log_path,
        make_log_tail=_dkms.tail(log_text, 40) if log_text else None, **result
    )


if __name__ == "__main__":
    main()
