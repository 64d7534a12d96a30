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
  - Works for any DKMS module (NVIDIA, ZFS, v4l2loopback, your own drivers), not only dattobd.
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
    description:
      - DKMS module name (C(PACKAGE_NAME) in dkms.conf).
      - Must be one path component, as DKMS makes paths of it (C(/var/lib/dkms/NAME/VERSION),
        C(/usr/src/NAME-VERSION)) - not empty, no C(/), no C(..) (nor C(.) alone), no whitespace or control
        character, no leading C(-). Anything else fails with a message naming the option, before any command
        runs, in check mode too. DKMS itself does not check this.
    type: str
    required: true
  version:
    description:
      - DKMS module version (C(PACKAGE_VERSION) in dkms.conf).
      - Must be one path component, by the same rules as O(name).
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
      - Every other entry must be one path component, by the same rules as O(name).
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
      - A stale registration (its source gone, which DKMS cannot remove) is cleared by the module itself. It
        deletes only C(/var/lib/dkms/NAME/VERSION), this version's C(kernel-K-ARCH) links in
        C(/var/lib/dkms/NAME) (then that directory if empty) and the module files DKMS installed from that
        tree into C(/lib/modules/K). Each path is checked on its resolved location first, and a symbolic link
        is removed as a link, never followed; when one of them resolves elsewhere (for example
        C(/var/lib/dkms/NAME) links out of the DKMS tree) the module fails and deletes nothing.
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
  - A kernel that C(BUILD_EXCLUSIVE_KERNEL), C(_ARCH), C(_CONFIG), C(_KERNEL_MIN) or C(_KERNEL_MAX) in dkms.conf
    rules out is reported per kernel in state V(excluded), with the reason in C(skipped); nothing is built or
    installed there, it is not a failure and not a change, and check mode predicts it. For DKMS 3.0.10 and
    3.2.x the module evaluates those directives as DKMS does - it sources dkms.conf and the C(/etc/dkms)
    overrides in bash with DKMS's variables (dkms.conf is a shell script, and DKMS sources it on every
    command) and applies DKMS's rules to the kernel's config - so a re-run does not run C(dkms build) for an
    excluded kernel again. With another DKMS release, or a directive it cannot evaluate exactly, DKMS decides -
    the build runs and its exit code 77 gives the same V(excluded) result, again without a change.
  - A failed command is reported with RV(ignore:changed) true only when the host differs from before it
    (registration, per-kernel states, C(/usr/src/NAME-VERSION)); a refused C(dkms add) or a registration
    rolled back after a failed build reports no change.
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
  description:
    - Per kernel, the state before and after (V(absent), V(added), V(built), V(installed), V(installed-weak),
      V(broken), or V(excluded) where BUILD_EXCLUSIVE rules the kernel out), the steps run, and in C(skipped)
      why DKMS does not build there (null otherwise).
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

import hashlib
import os
import platform
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _dkms, _host, _kernel

DKMS_TREE = "/var/lib/dkms"
USR_SRC = "/usr/src"
MODULES_ROOT = "/lib/modules"


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

    def exclusions(self, kernels, conf):
        """Per kernel, why DKMS would refuse to build there (BUILD_EXCLUSIVE, exit 77): a reason, or None.

        A kernel missing from the answer could not be told exactly (another DKMS, a directive outside what
        _dkms.build_exclusion evaluates): DKMS decides when the build runs.
        """
        found = {}
        bash = self.module.get_bin_path("bash")
        if not bash or not os.path.isfile(conf):
            return found
        for kernel in kernels:
            try:
                candidates = _dkms.kernel_config_candidates(kernel, self.dkms_version)
                config_path = next((c for c in candidates if os.path.exists(c)), candidates[-1])
                args = _dkms.exclusive_probe_args(conf, self.name, self.version, kernel, self.arch,
                                                  self.dkms_version, config_path)
            except ValueError:
                return found
            rc, out, _err = self.run_probe([bash, "-c", _dkms.EXCLUSIVE_PROBE, "dkms-conf-probe"] + args)
            if rc != 0:
                continue
            config_text = _host.read_text("/", config_path) if os.path.exists(config_path) else None
            try:
                found[kernel] = _dkms.build_exclusion(_dkms.parse_exclusive_probe(out), kernel, self.arch,
                                                      config_path, config_text, self.dkms_version)
            except ValueError:
                continue
        return found

    def run_probe(self, argv):
        # Read-only (it sources dkms.conf as DKMS does on every command), so it also runs in check mode;
        # not recorded in `commands`, which lists what changes the host.
        timeout_bin = self.module.get_bin_path("timeout")
        if timeout_bin:
            argv = [timeout_bin, "--kill-after=5", "60"] + argv
        return self.module.run_command(argv)

    def snapshot(self, kernels):
        """What a run may change, read back: registration, each kernel's DKMS state, /usr/src/NAME-VERSION."""
        _entries, registered, broken, states = self.read_state(kernels)
        return _dkms.Snapshot(registered, broken, describe(states), tree_fingerprint(self.default_source))

    def make_log(self, kernel):
        for path in _dkms.make_log_paths(self.name, self.version, kernel, self.arch, DKMS_TREE):
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    return path, handle.read().decode("utf-8", "replace")
        return None, ""


def tree_fingerprint(path):
    """Names, types, sizes, modes, times and link targets below ``path`` (links not followed), or None."""
    if not os.path.lexists(path):
        return None
    rows = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            link = os.readlink(full) if os.path.islink(full) else None
            rows.append((os.path.relpath(full, path), st.st_mode, st.st_size, st.st_mtime_ns, link))
    return hashlib.sha256(repr(rows).encode("utf-8", "surrogateescape")).hexdigest()


def validate_params(module):
    """Refuse a name, version or kernel that is not one plain path component, naming the option."""
    params = module.params
    try:
        _dkms.validate_component("name", params["name"])
        _dkms.validate_component("version", params["version"])
        for kernel in params["kernels"] or []:
            if kernel != "all":
                _dkms.validate_component("kernels", kernel)
    except ValueError as exc:
        module.fail_json(msg="%s. dkms_module acts only inside /var/lib/dkms/NAME/VERSION, /usr/src/NAME-VERSION "
                         "and /lib/modules/KERNEL: a name, version or kernel must be one path component, without "
                         "'/', '..', whitespace or a leading '-'." % exc, changed=False)


def valid_kernel_names(names):
    """The names that are valid kernel releases (one path component: see _dkms.validate_component)."""
    valid = []
    for name in names:
        try:
            valid.append(_dkms.validate_component("kernel", name))
        except ValueError:
            continue
    return valid


def registered_kernels(tree):
    """Kernel directories of a DKMS tree (names that are not a valid kernel release are left out)."""
    if not os.path.isdir(tree) or os.path.islink(tree):
        return set()
    return set(valid_kernel_names(n for n in os.listdir(tree) if n not in ("build", "source")))


def resolve_kernels(module, requested, wanted):
    # Only an omitted option takes the default: an empty list from a caller's plan means "no kernel".
    if requested is None:
        if wanted == "absent":
            return None
        return [platform.release()]
    if "all" in requested:
        found = [k for k in valid_kernel_names(_host.installed_kernels("/")) if _host.headers_present("/", k)]
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


def resolved_target(path):
    """``path`` with its directory resolved and its last component left as it is (never followed)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def deletion_roots(runner):
    return _dkms.removal_roots(runner.name, runner.version, os.path.realpath(DKMS_TREE), os.path.realpath(USR_SRC))


def checked_removal(path, roots):
    """Check one deletion before anything is deleted: its resolved path must lie within ``roots``."""
    _dkms.check_removal(path, resolved_target(path), roots)
    return path


def remove_path(path):
    """Delete a checked path without following a link: a link goes as a link, a directory with rmtree."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)


def plan_stale_removal(runner):
    """What clearing a stale registration deletes: (paths, kernels whose module files go), all checked.

    The module files DKMS installed from that tree (only when byte-identical to the built copies, so another
    version's files stay), the tree itself, and this version's kernel-K-ARCH links in /var/lib/dkms/NAME.
    Every path is checked on its resolved location (below /var/lib/dkms/NAME/VERSION, a module file below
    /lib/modules/K, a link in /var/lib/dkms/NAME); ValueError names the first that is not, before anything
    is deleted.
    """
    tree = runner.tree
    roots = deletion_roots(runner)
    if os.path.islink(tree):
        raise ValueError("refusing to delete %s: it is a symbolic link (to %s), not a DKMS tree" % (
            tree, os.readlink(tree)))
    deletions = [checked_removal(tree, roots[:1])]
    touched = []
    for kernel in sorted(registered_kernels(tree)):
        module_dir = os.path.join(tree, kernel, runner.arch, "module")
        if os.path.islink(os.path.join(tree, kernel)) or not os.path.isdir(module_dir):
            continue
        kernel_root = os.path.realpath(os.path.join(MODULES_ROOT, kernel))
        for filename in os.listdir(module_dir):
            built = os.path.join(module_dir, filename)
            name = filename.split(".ko")[0]
            installed = _host.find_module_file("/", kernel, name)
            if installed and _same_file(built, installed):
                deletions.insert(0, checked_removal(installed, (kernel_root,)))
                touched.append(kernel)
    parent = os.path.dirname(tree)
    # DKMS also keeps kernel-K-ARCH links next to the versions ("0.12.1/K/ARCH"): drop this version's.
    for name in os.listdir(parent) if os.path.isdir(parent) else []:
        link = os.path.join(parent, name)
        if name.startswith("kernel-") and os.path.islink(link):
            target = os.readlink(link)
            if target.startswith(runner.version + "/") or ("/%s/" % runner.version) in target:
                # The link itself, in /var/lib/dkms/NAME: never its target.
                deletions.append(checked_removal(link, (os.path.dirname(roots[0]),)))
    return deletions, sorted(set(touched), key=_kernel.kernel_sort_key)


def remove_stale_tree(runner, module):
    """Clear a registration whose source vanished: DKMS itself cannot (no dkms.conf to read)."""
    deletions, touched = plan_stale_removal(runner)
    for path in deletions:
        remove_path(path)
    parent = os.path.dirname(runner.tree)
    if os.path.isdir(parent) and not os.path.islink(parent) and not os.listdir(parent):
        os.rmdir(checked_removal(parent, (os.path.dirname(deletion_roots(runner)[0]),)))
    depmod = module.get_bin_path("depmod")
    for kernel in touched:
        if depmod:
            module.run_command([depmod, "-a", kernel])
    return touched


def restore_source(runner, source):
    """Copy ``source`` to /usr/src/NAME-VERSION, replacing what is there (a link there goes as a link)."""
    target = runner.default_source
    if os.path.realpath(source) == os.path.realpath(target):
        return
    if os.path.lexists(target):
        remove_path(checked_removal(target, deletion_roots(runner)[1:]))
    shutil.copytree(source, target, symlinks=True)


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
    # Before any path is built from them, in check mode too.
    validate_params(module)
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
        kernels = sorted(registered_kernels(runner.tree), key=_kernel.kernel_sort_key)

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

    # Kernels BUILD_EXCLUSIVE rules out: DKMS would exit 77 there, so nothing is planned for them.
    exclusions = {}
    if wanted in ("built", "installed") and not broken:
        conf = os.path.join(runner.tree if registered else source, "source" if registered else "", "dkms.conf")
        exclusions = runner.exclusions([k for k in kernels if states[k][0] in (_dkms.ABSENT, _dkms.ADDED)], conf)
        states = _dkms.mark_excluded(states, exclusions)

    raw_before = describe(states)
    # An excluded kernel of a registered module reads `excluded` before and after; one of a module this run
    # registers reads `absent` before.
    before = dict((k, _dkms.ABSENT if v == _dkms.EXCLUDED and not registered else v) for k, v in raw_before.items())
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
    per_kernel = dict((k, {"before": before[k], "after": before[k], "actions": [], "skipped": exclusions.get(k)})
                      for k in kernels)
    for step in steps:
        if step.kernel in per_kernel:
            per_kernel[step.kernel]["actions"].append(step.action)

    if any(s.action == "remove-stale" for s in steps):
        try:
            plan_stale_removal(runner)
        except ValueError as exc:
            module.fail_json(msg="%s. Nothing was deleted." % exc, kernels=per_kernel, commands=planned, **result)

    if module.check_mode or not steps:
        predicted = predict(raw_before, steps) if steps else raw_before
        for kernel in kernels:
            per_kernel[kernel]["after"] = predicted.get(kernel, before[kernel])
        result.update(
            changed=bool(steps), kernels=per_kernel, commands=planned,
            registered=(registered or any(s.action == "add" for s in steps))
            and not any(s.action in ("remove-all", "remove-stale") for s in steps),
            changed_kernels=sorted(_dkms.changed_kernels_of_plan(before, steps), key=_kernel.kernel_sort_key),
        )
        if module._diff:
            result["diff"] = dict(before=before, after=predicted)
        module.exit_json(**result)

    # --- Run the plan. ----------------------------------------------------------------------
    was_registered = registered
    snapshot_before = runner.snapshot(kernels)
    completed = []
    changed_kernels = set()
    skipped_kernels = set()
    for step, argv in zip(steps, planned):
        if step.kernel in skipped_kernels:
            continue
        if step.action == "restore-source":
            runner.commands.append(["copy", source, runner.default_source])
            try:
                restore_source(runner, source)
            except ValueError as exc:
                module.fail_json(msg=str(exc), commands=runner.commands, **result)
            completed.append(step)
            continue
        if step.action == "remove-stale":
            runner.commands.append(["remove-stale", runner.tree])
            try:
                changed_kernels.update(remove_stale_tree(runner, module))
            except ValueError as exc:
                module.fail_json(msg="%s. Nothing was deleted." % exc, commands=runner.commands, **result)
            completed.append(step)
            continue
        rc, out, err = runner.run(argv, timeout=params["build_timeout"] if step.action == "build" else None)
        if step.action in ("build", "install") and rc == _dkms.EXIT_BUILD_EXCLUSIVE:
            # DKMS's own verdict, where the evaluation above could not tell: it built nothing.
            said = " ".join((err or out).split())
            per_kernel[step.kernel]["skipped"] = "excluded by BUILD_EXCLUSIVE in dkms.conf (DKMS exit 77)%s" % (
                ": " + said if said else "")
            exclusions[step.kernel] = per_kernel[step.kernel]["skipped"]
            skipped_kernels.add(step.kernel)
            continue
        if rc != 0:
            fail_step(module, runner, step, rc=rc, out=out, err=err, kernels=kernels, per_kernel=per_kernel,
                      was_registered=was_registered, result=result, snapshot_before=snapshot_before,
                      completed=completed)
        completed.append(step)
        if step.kernel:
            changed_kernels.add(step.kernel)
        elif step.action == "remove-all":
            changed_kernels.update(k for k, s in before.items() if s in (_dkms.BUILT, _dkms.INSTALLED))

    snapshot_after = runner.snapshot(kernels)
    states_after = dict((k, (v, (), None)) for k, v in snapshot_after.states.items())
    if snapshot_after.registered:
        states_after = _dkms.mark_excluded(states_after, exclusions)
    after = describe(states_after)
    for kernel in kernels:
        per_kernel[kernel]["after"] = after[kernel]
    result.update(
        changed=_dkms.host_changed(snapshot_before, snapshot_after, completed), kernels=per_kernel,
        commands=runner.commands, registered=snapshot_after.registered,
        changed_kernels=sorted(changed_kernels, key=_kernel.kernel_sort_key),
    )
    if module._diff:
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)


def fail_step(module, runner, step, *, rc, out, err, kernels, per_kernel, was_registered, result, snapshot_before,
              completed):
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
    snapshot_now = runner.snapshot(kernels)
    now = snapshot_now.states
    for kernel in kernels:
        per_kernel[kernel]["after"] = now[kernel]
    still = ["%s: %s" % (k, s) for k, s in sorted(now.items()) if s == _dkms.INSTALLED]
    if still:
        msg += " Still installed: %s." % ", ".join(still)
    # A failed command that left the host as it was (a refused add, a rolled-back registration) changed nothing.
    result.update(kernels=per_kernel, commands=runner.commands, rolled_back=rolled_back,
                  registered=snapshot_now.registered,
                  changed=_dkms.host_changed(snapshot_before, snapshot_now, completed))
    module.fail_json(
        msg=msg, rc=rc, stdout=out, stderr=err, make_log=log_path,
        make_log_tail=_dkms.tail(log_text, 40) if log_text else None, **result
    )


if __name__ == "__main__":
    main()
