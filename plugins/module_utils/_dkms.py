# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure DKMS logic: parse ``dkms status`` and ``dkms --version``, plan the steps to a state.

No AnsibleModule and no system access here; ``dkms_module`` runs the commands this plans.
Every parser is table-tested against output captured from real DKMS (3.0.10 on Debian 12,
3.2.x on Debian 13) and the 2.x lines quoted in the DKMS sources.
"""

from __future__ import annotations

import re
from collections import namedtuple

# Per-kernel states, in the order a module moves through them.
ABSENT = "absent"  # not registered with DKMS at all
ADDED = "added"  # registered (source known), not built for this kernel
BUILT = "built"
INSTALLED = "installed"
INSTALLED_WEAK = "installed-weak"  # a module built for another kernel, linked in (RHEL weak-modules)
BROKEN = "broken"  # registered, but its source tree or dkms.conf vanished

WANTED_STATES = ("present", "added", "built", "installed", "absent")

_RANK = {ABSENT: 0, ADDED: 1, BROKEN: 1, INSTALLED_WEAK: 1, BUILT: 2, INSTALLED: 3}

# Status suffixes, normalised across the DKMS 3.1.3 rewording.
NOTE_ORIGINAL_MODULE = "original-module-exists"
NOTE_BUILT_MISSING = "built-modules-missing"
NOTE_DIFFERS = "built-and-installed-differ"
_NOTE_PATTERNS = (
    (re.compile(r"original_module exists|original modules exist", re.I), NOTE_ORIGINAL_MODULE),
    (re.compile(r"missing some built modules|built modules are missing", re.I), NOTE_BUILT_MISSING),
    (re.compile(r"diff between built and installed|differences between built and installed", re.I), NOTE_DIFFERS),
)

# What the DKMS exit codes mean (dkms-project/dkms, `dkms` script, die() calls).
EXIT_CODES = {
    1: "generic error (bad arguments or an unexpected failure)",
    2: "the source tree or dkms.conf is missing",
    3: "already added (and, before DKMS 3, already built)",
    4: "the DKMS tree of this module is broken",
    5: "already installed",
    6: "install or depmod failed",
    10: "the build failed (see make.log)",
    11: "autoinstall failed",
    21: "the kernel headers for this kernel are not installed",
    77: "skipped: the kernel is excluded by BUILD_EXCLUSIVE_* in dkms.conf",
    101: "the PRE_INSTALL script failed",
    124: "timed out (build_timeout) and was killed",
}
EXIT_BUILD_EXCLUSIVE = 77


def explain_exit_code(rc):
    """Human meaning of a DKMS exit code."""
    return EXIT_CODES.get(rc, "unexpected exit code %s" % rc)


StatusEntry = namedtuple("StatusEntry", "module version kernel arch state weak_from notes line")

_SLASH = re.compile(
    r"^(?P<module>[^/,:\s]+)/(?P<version>[^,:\s]+)(?:,\s*(?P<kernel>[^,:]+),\s*(?P<arch>[^,:]+))?:\s*(?P<rest>.*)$"
)
_COMMA = re.compile(
    r"^(?P<module>[^/,:\s]+),\s*(?P<version>[^,:\s]+)(?:,\s*(?P<kernel>[^,:]+),\s*(?P<arch>[^,:]+))?:\s*(?P<rest>.*)$"
)
_STATE = re.compile(r"^(?P<state>installed-weak|installed|built|added|broken)\b\s*(?P<tail>.*)$")
_WEAK_FROM = re.compile(r"^from\s+(?P<kernel>\S+)")


def parse_status_line(line):
    """Parse one ``dkms status`` line into a StatusEntry, or None for anything else.

    Both formats: ``m, v, k, a: state`` (DKMS <= 2.8.5, and installed-weak everywhere) and
    ``m/v, k, a: state`` (2.8.6+); ``m/v: added`` or ``m/v: broken`` carry no kernel.
    """
    line = line.rstrip()
    match = _SLASH.match(line) or _COMMA.match(line)
    if not match:
        return None
    state_match = _STATE.match(match.group("rest").strip())
    if not state_match:
        return None
    state = state_match.group("state")
    tail = state_match.group("tail")
    weak_from = None
    if state == INSTALLED_WEAK:
        weak = _WEAK_FROM.match(tail)
        if weak:
            weak_from = weak.group("kernel")
    notes = tuple(note for pattern, note in _NOTE_PATTERNS if pattern.search(tail))
    kernel = match.group("kernel")
    return StatusEntry(
        module=match.group("module"),
        version=match.group("version"),
        kernel=kernel.strip() if kernel else None,
        arch=match.group("arch").strip() if match.group("arch") else None,
        state=state,
        weak_from=weak_from,
        notes=notes,
        line=line,
    )


def parse_status(text):
    """All StatusEntry of a ``dkms status`` output; warnings and errors are left out."""
    entries = []
    for line in text.splitlines():
        entry = parse_status_line(line)
        if entry is not None:
            entries.append(entry)
    return entries


_DKMS_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_dkms_version(text):
    """``(3, 0, 10)`` from ``dkms --version`` output (``dkms-3.0.10`` or ``dkms: 2.8.4``)."""
    match = _DKMS_VERSION.search(text or "")
    if not match:
        raise ValueError("cannot read a DKMS version from %r" % (text,))
    return tuple(int(part or 0) for part in match.groups())


def supports_force_rebuild(dkms_version):
    """``--force`` rebuilds and reinstalls from DKMS 3.0.7; earlier ones need remove first."""
    return tuple(dkms_version) >= (3, 0, 7)


def kernel_states(entries, module, version, kernels):
    """Map each kernel to this module/version's state there, and collect its notes.

    Returns ``(registered, broken, {kernel: (state, notes, weak_from)})``. A module that is
    registered but not built for a kernel is ``added`` there; an unregistered one ``absent``.
    """
    mine = [e for e in entries if e.module == module and e.version == version]
    registered = bool(mine)
    broken = any(e.state == BROKEN for e in mine)
    result = {}
    for kernel in kernels:
        on_kernel = [e for e in mine if e.kernel == kernel]
        if on_kernel:
            best = max(on_kernel, key=lambda e: _RANK.get(e.state, 0))
            result[kernel] = (best.state, best.notes, best.weak_from)
        elif broken:
            result[kernel] = (BROKEN, (), None)
        elif registered:
            result[kernel] = (ADDED, (), None)
        else:
            result[kernel] = (ABSENT, (), None)
    return registered, broken, result


def other_versions_installed(entries, module, version, kernel):
    """Versions of ``module`` other than ``version`` installed on ``kernel`` (an upgrade)."""
    return sorted(
        {e.version for e in entries if e.module == module and e.version != version and e.kernel == kernel
         and e.state == INSTALLED}
    )


Step = namedtuple("Step", "action kernel force")


def normalise_wanted(state):
    if state not in WANTED_STATES:
        raise ValueError("state must be one of %s, not %r" % (", ".join(WANTED_STATES), state))
    return "added" if state == "present" else state


def plan_steps(wanted, registered, states, *, force=False, remove_all=False, dkms_version=(3, 0, 10)):
    """Plan the DKMS commands that move this module from ``states`` to ``wanted``.

    ``states`` maps kernel -> (state, notes, weak_from) as ``kernel_states`` returns. Returns a
    list of Step(action, kernel, force) with action in add/build/install/remove/remove-all;
    an empty list means nothing to do. Builds always come before the install of the same
    kernel, so a failed build leaves whatever was installed before in place.
    """
    wanted = normalise_wanted(wanted)
    steps = []
    if wanted == "absent":
        if remove_all:
            if registered:
                steps.append(Step("remove-all", None, False))
            return steps
        for kernel, (state, _notes, _weak) in sorted(states.items()):
            if state in (BUILT, INSTALLED, INSTALLED_WEAK):
                steps.append(Step("remove", kernel, False))
        return steps

    if not registered:
        steps.append(Step("add", None, False))
    if wanted == "added":
        return steps

    native_force = supports_force_rebuild(dkms_version)
    for kernel, (state, notes, _weak) in sorted(states.items()):
        rank = _RANK.get(state, 0) if state != INSTALLED_WEAK else 1
        needs_build = rank < 2 or force
        if wanted == "built":
            if needs_build:
                if force and rank >= 2 and not native_force:
                    steps.append(Step("remove", kernel, False))
                steps.append(Step("build", kernel, bool(force and rank >= 2 and native_force)))
            continue
        # wanted == "installed"
        differs = NOTE_DIFFERS in notes or NOTE_BUILT_MISSING in notes
        needs_install = state != INSTALLED or force or differs
        if needs_build:
            rebuild = force and rank >= 2
            if rebuild and not native_force:
                steps.append(Step("remove", kernel, False))
            steps.append(Step("build", kernel, bool(rebuild and native_force)))
        if needs_install:
            # Always --force where DKMS has it: after a failed forced rebuild DKMS reports the kernel as
            # `added` while the old .ko is still in place, and a plain install then stops with exit 5
            # ("already installed") and keeps the old module (captured on 3.0.10 and 3.2.2).
            steps.append(Step("install", kernel, native_force))
    return steps


def dkms_argv(dkms, step, module, version, *, source=None, jobs=None):
    """The argv for one Step, as a list (never a shell string)."""
    if step.action == "add":
        if source:
            return [dkms, "add", source]
        return [dkms, "add", "-m", module, "-v", version]
    if step.action == "remove-all":
        return [dkms, "remove", "-m", module, "-v", version, "--all"]
    argv = [dkms, step.action, "-m", module, "-v", version, "-k", step.kernel]
    if step.action == "build" and jobs:
        argv += ["-j", str(jobs)]
    if step.force:
        argv.append("--force")
    return argv


def make_log_paths(module, version, kernel, arch, dkms_tree="/var/lib/dkms"):
    """Where make.log lands: the build dir during/after a failure, the kernel dir after success."""
    base = "%s/%s/%s" % (dkms_tree, module, version)
    return [
        "%s/build/make.log" % base,
        "%s/%s/%s/log/make.log" % (base, kernel, arch),
    ]


def tail(text, lines=30):
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.splitlines()[-lines:])
