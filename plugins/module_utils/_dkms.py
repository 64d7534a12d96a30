# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure DKMS logic: parse ``dkms status`` and ``dkms --version``, plan the steps to a state.

No AnsibleModule and no system access here; ``dkms_module`` runs the commands this plans.
Every parser is table-tested against output captured from real DKMS (3.0.10 on Debian 12,
3.2.x on Debian 13) and the 2.x lines quoted in the DKMS sources.
"""

from __future__ import annotations

import posixpath
import re
from collections import namedtuple

# Per-kernel states, in the order a module moves through them.
ABSENT = "absent"  # not registered with DKMS at all
ADDED = "added"  # registered (source known), not built for this kernel
BUILT = "built"
INSTALLED = "installed"
INSTALLED_WEAK = "installed-weak"  # a module built for another kernel, linked in (RHEL weak-modules)
BROKEN = "broken"  # registered, but its source tree or dkms.conf vanished
EXCLUDED = "excluded"  # dkms.conf's BUILD_EXCLUSIVE_* rules out this kernel: DKMS exits 77 and builds nothing

WANTED_STATES = ("present", "added", "built", "installed", "absent")

_RANK = {ABSENT: 0, ADDED: 1, BROKEN: 1, EXCLUDED: 1, INSTALLED_WEAK: 1, BUILT: 2, INSTALLED: 3}

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
    8: "dkms.conf is not valid (DKMS: Bad conf file; its reasons are in stderr)",
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
        if state == EXCLUDED:
            # DKMS would exit 77 and build nothing, with --force too: there is nothing to run.
            continue
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


# ---------------------------------------------------------------------------------------------
# Names that become paths, and what dkms_module may delete
# ---------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_component(option, value):
    """Return ``value`` when it is a usable module name, version or kernel release; else raise ValueError.

    DKMS makes paths of all three (``/var/lib/dkms/NAME/VERSION/KERNEL``, ``/usr/src/NAME-VERSION``,
    ``/lib/modules/KERNEL``) and splits its own arguments on ``/`` and blanks, and so does dkms_module before
    it deletes a stale tree. Each must therefore be exactly one path component: not empty, no ``/``, no
    ``..`` (nor ``.`` alone), no whitespace or control character, and no leading ``-`` (DKMS would read it as
    an option). DKMS 3.0.10 checks none of this itself (``-m ../../x`` is used as given), 3.2 only some.
    """
    if not isinstance(value, str) or value == "":
        raise ValueError("%s must not be empty" % option)
    if "/" in value:
        raise ValueError("%s %r must be a single path component, without '/'" % (option, value))
    if value == "." or ".." in value:
        raise ValueError("%s %r must not be '.' or contain '..'" % (option, value))
    if any(ch.isspace() for ch in value) or _CONTROL.search(value):
        raise ValueError("%s %r must not contain whitespace or control characters" % (option, value))
    if value.startswith("-"):
        raise ValueError("%s %r must not start with '-' (DKMS would take it for an option)" % (option, value))
    return value


def within(path, root):
    """Whether absolute ``path`` is ``root`` or below it (both already resolved; compared lexically)."""
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def removal_roots(name, version, dkms_tree, usr_src):
    """The two trees of one registration that dkms_module may delete from, for resolved base directories.

    ``dkms_tree`` and ``usr_src`` are the resolved ``/var/lib/dkms`` and ``/usr/src`` (either may be a link
    on a host that moved them); the NAME and VERSION parts are never resolved: a link there must not be
    followed.
    """
    validate_component("name", name)
    validate_component("version", version)
    return (posixpath.join(dkms_tree, name, version), posixpath.join(usr_src, "%s-%s" % (name, version)))


def check_removal(path, resolved, roots):
    """Raise ValueError unless ``resolved`` (``path`` with its directory resolved) lies within one of ``roots``.

    ``resolved`` is ``realpath(dirname(path)) + basename(path)``: the last component is not followed, so a
    link is removed as a link, and a link anywhere above it that leads elsewhere is caught here.
    """
    if not posixpath.isabs(resolved):
        raise ValueError("refusing to delete %s: %s is not an absolute path" % (path, resolved))
    if not any(within(resolved, root) for root in roots):
        raise ValueError("refusing to delete %s: it resolves to %s, outside %s" % (
            path, resolved, " and ".join(roots)))
    return resolved


# ---------------------------------------------------------------------------------------------
# Did a run change the host?
# ---------------------------------------------------------------------------------------------

# What dkms_module reads before and after running DKMS: the registration, each kernel's state as DKMS
# reports it, and a fingerprint of /usr/src/NAME-VERSION (`dkms add DIR` copies there before it checks
# anything, so an add that then fails has still changed the host).
Snapshot = namedtuple("Snapshot", "registered broken states source")


def host_changed(before, after, completed):
    """Whether the commands run between two Snapshots changed the host.

    ``completed`` are the Steps that exited 0. A difference between the snapshots is a change. Without one,
    a completed step still changed the host when it rebuilt, reinstalled or removed a module that was already
    there (``--force``, or the remove-then-build of DKMS before 3.0.7): the state reads the same, the files
    are new. Anything else (a failed ``add``, a build DKMS refused with exit 77, a registration rolled back)
    left the host as it was.
    """
    if before != after:
        return True
    for step in completed:
        if step.action in ("remove-stale", "restore-source"):
            return True
        if step.kernel and step.action in ("build", "install", "remove") and \
                before.states.get(step.kernel) in (BUILT, INSTALLED, INSTALLED_WEAK):
            return True
    return False


def changed_kernels_of_plan(before, steps):
    """Kernels whose module files a plan would change (check mode's ``changed_kernels``).

    ``before`` maps kernel -> state. An excluded kernel never appears: DKMS builds nothing there.
    """
    changed = set()
    for step in steps:
        if step.kernel and step.action in ("build", "install", "remove"):
            changed.add(step.kernel)
        elif step.action == "remove-all":
            changed.update(k for k, s in before.items() if s in (BUILT, INSTALLED, INSTALLED_WEAK))
    return changed


# ---------------------------------------------------------------------------------------------
# BUILD_EXCLUSIVE: would DKMS refuse (exit 77) to build for a kernel?
#
# Why evaluate instead of remembering an earlier exit 77: check mode must predict it before any build
# ran, and a remembered verdict goes stale when the kernel's .config, dkms.conf or /etc/dkms change.
# dkms.conf is a bash script (v4l2loopback's sources the kernel's .config and sets BUILD_EXCLUSIVE_KERNEL
# to a string that matches no kernel), so the module sources it in bash exactly as DKMS's read_conf and
# safe_source do (EXCLUSIVE_PROBE) and this pure code applies DKMS's rules to the values. The rules are
# those of DKMS 3.0.10 (Debian 12) and 3.2.x (Debian 13), copied from their read_conf; for any other DKMS,
# or a directive this code cannot evaluate exactly (a regex outside the plain POSIX subset, a glob in
# BUILD_EXCLUSIVE_CONFIG), build_exclusion raises ValueError and the module lets DKMS decide: it runs the
# build, and exit 77 is reported as excluded without counting as a change.
# ---------------------------------------------------------------------------------------------

EXCLUSIVE_DIRECTIVES = ("BUILD_EXCLUSIVE_KERNEL", "BUILD_EXCLUSIVE_KERNEL_MIN", "BUILD_EXCLUSIVE_KERNEL_MAX",
                        "BUILD_EXCLUSIVE_ARCH", "BUILD_EXCLUSIVE_CONFIG", "OBSOLETE_BY")

# read_conf's dkms_conf_variables: what safe_source carries from one sourced file to the next.
_CONF_VARIABLES_30 = (
    "CLEAN PACKAGE_NAME PACKAGE_VERSION POST_ADD POST_BUILD POST_INSTALL POST_REMOVE PRE_BUILD PRE_INSTALL "
    "BUILD_DEPENDS BUILD_EXCLUSIVE_KERNEL BUILD_EXCLUSIVE_ARCH BUILD_EXCLUSIVE_CONFIG build_exclude OBSOLETE_BY "
    "MAKE MAKE_MATCH PATCH PATCH_MATCH patch_array BUILT_MODULE_NAME built_module_name BUILT_MODULE_LOCATION "
    "built_module_location DEST_MODULE_NAME dest_module_name DEST_MODULE_LOCATION dest_module_location STRIP "
    "strip AUTOINSTALL NO_WEAK_MODULES SIGN_FILE MOK_SIGNING_KEY MOK_CERTIFICATE REMAKE_INITRD MODULES_CONF "
    "MODULES_CONF_OBSOLETES MODULES_CONF_ALIAS_TYPE MODULES_CONF_OBSOLETE_ONLY"
)
_CONF_VARIABLES_32 = _CONF_VARIABLES_30.replace(
    "BUILD_EXCLUSIVE_CONFIG", "BUILD_EXCLUSIVE_CONFIG BUILD_EXCLUSIVE_KERNEL_MIN BUILD_EXCLUSIVE_KERNEL_MAX")

# Sources the conf files like DKMS's safe_source (each in a subshell whose DKMS variables are echoed and
# sourced back, the same round trip, CRs stripped on 3.2) with the variables read_conf gives dkms.conf,
# then prints the directives NUL-separated. Arguments: kernelver arch module module_version
# kernel_source_dir kernel_config strip_cr "conf variables" conf files...
EXCLUSIVE_PROBE = r'''
shopt -s extglob
kernelver=$1 arch=$2 module=$3 module_version=$4 kernel_source_dir=$5 kernel_config=$6 strip_cr=$7 vars=$8
shift 8
dkms_tree=/var/lib/dkms source_tree=/usr/src install_tree=/lib/modules
CR=$(printf '\r')
[[ $strip_cr ]] || CR=
for var in $vars; do unset "$var"; done
for file in "$@"; do
    [[ -e $file ]] || continue
    tmpfile=$(mktemp) || exit 3
    ( exec >"$tmpfile"
      . "$file" >/dev/null
      for _export_env in $vars; do
          for _i in $(eval echo \${!"${_export_env}"[@]}); do
              eval echo '$_export_env[$_i]=\"${'"${_export_env}"'[$_i]%$CR}\"'
          done
      done )
    . "$tmpfile"
    rm -f "$tmpfile"
done
for var in BUILD_EXCLUSIVE_KERNEL BUILD_EXCLUSIVE_KERNEL_MIN BUILD_EXCLUSIVE_KERNEL_MAX BUILD_EXCLUSIVE_ARCH \
           BUILD_EXCLUSIVE_CONFIG OBSOLETE_BY; do
    printf '%s=%s\0' "$var" "${!var}"
done
'''


def exclusion_rules(dkms_version):
    """Which DKMS read_conf the BUILD_EXCLUSIVE rules follow: ``"3.0.10"`` or ``"3.2"``; ValueError otherwise."""
    version = tuple(dkms_version)
    if version[:3] == (3, 0, 10):
        return "3.0.10"
    if (3, 2, 0) <= version < (3, 3, 0):
        return "3.2"
    raise ValueError("the BUILD_EXCLUSIVE rules of DKMS %s are not known here" % ".".join(str(p) for p in version))


def exclusive_probe_args(conf, module, version, kernel, arch, dkms_version, kernel_config):
    """The arguments of EXCLUSIVE_PROBE: read_conf's variables and the files it sources, in its order."""
    rules = exclusion_rules(dkms_version)
    files = [conf, "/etc/dkms/%s.conf" % module, "/etc/dkms/%s-%s.conf" % (module, version),
             "/etc/dkms/%s-%s-%s.conf" % (module, version, kernel),
             "/etc/dkms/%s-%s-%s-%s.conf" % (module, version, kernel, arch)]
    if rules == "3.2":
        files += ["/etc/dkms/%s--%s.conf" % (module, kernel), "/etc/dkms/%s--%s-%s.conf" % (module, kernel, arch)]
    variables = _CONF_VARIABLES_32 if rules == "3.2" else _CONF_VARIABLES_30
    return [kernel, arch, module, version, kernel_source_dir(kernel), kernel_config,
            "1" if rules == "3.2" else "", variables] + files


def kernel_source_dir(kernel):
    return "/lib/modules/%s/build" % kernel


def kernel_config_candidates(kernel, dkms_version):
    """The kernel config DKMS reads for BUILD_EXCLUSIVE_CONFIG: the first of these that exists.

    3.2 prefers include/config/auto.conf (what the kernel build itself reads); 3.0.10 reads .config.
    """
    base = kernel_source_dir(kernel)
    if exclusion_rules(dkms_version) == "3.2":
        return [base + "/include/config/auto.conf", base + "/.config"]
    return [base + "/.config"]


def parse_exclusive_probe(text):
    """The directives EXCLUSIVE_PROBE printed, as a dict (every name present, '' when unset)."""
    values = dict((name, "") for name in EXCLUSIVE_DIRECTIVES)
    for item in (text or "").split("\0"):
        name, sep, value = item.partition("=")
        if sep and name in values:
            values[name] = value
    return values


def dkms_ver(release):
    """DKMS's VER(): numbers padded to three digits, so that plain string order is version order."""
    text = re.sub(r"([^0-9])([0-9])", r"\1 \2", release)
    text = re.sub(r"([0-9])([^0-9])", r"\1 \2", text)
    text = " %s " % text
    text = re.sub(r" ([0-9]) ", r" 00\1 ", text)
    text = re.sub(r" ([0-9][0-9]) ", r" 0\1 ", text)
    return text.replace(" ", "")


_POSIX_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "xdigit": "0-9A-Fa-f", "space": r" \t\n\r\f\v", "blank": r" \t",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "cntrl": r"\x00-\x1f\x7f", "print": r"\x20-\x7e", "graph": r"\x21-\x7e",
}
_INTERVAL = re.compile(r"\{\d+(,\d*)?\}")


def ere_to_python(pattern):
    """A Python regex matching exactly what POSIX ERE ``pattern`` matches in the C locale (bash ``=~``).

    Only the plain subset translates: literals, ``. ^ $ | ( ) * + ?``, ``{m,n}``, bracket expressions with
    ranges and ``[:class:]``, and backslash before a special character. Anything else (GNU escapes like
    ``\\w`` or ``\\<``, ``[=a=]``, non-ASCII, constructs ERE leaves undefined) raises ValueError.
    """
    if any(ord(ch) > 126 for ch in pattern):
        raise ValueError("non-ASCII regex %r" % pattern)
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern) and pattern[i + 1] in ".[]()*+?{}|^$\\/-":
                out.append(re.escape(pattern[i + 1]))
                i += 2
                continue
            raise ValueError("regex %r: a backslash escape ERE does not define" % pattern)
        if ch == "[":
            text, i = _bracket(pattern, i)
            out.append(text)
            continue
        if ch == "{":
            match = _INTERVAL.match(pattern, i)
            if not match:
                raise ValueError("regex %r: '{' that is not an interval" % pattern)
            out.append(match.group(0))
            i = match.end()
            continue
        if ch == "(" and pattern[i + 1:i + 2] in ("?", "*", "+"):
            raise ValueError("regex %r: a repetition ERE leaves undefined" % pattern)
        if ch in ".^$|()*+?":
            out.append(ch)
        else:
            out.append(re.escape(ch))
        i += 1
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise ValueError("regex %r: %s" % (pattern, exc)) from None


def _bracket(pattern, start):
    i = start + 1
    negate = pattern[i:i + 1] == "^"
    if negate:
        i += 1
    items = []
    first = True
    while i < len(pattern) and (pattern[i] != "]" or first):
        first = False
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2:end] if end > 0 else None
            if name not in _POSIX_CLASSES:
                raise ValueError("regex %r: unknown character class" % pattern)
            items.append(_POSIX_CLASSES[name])
            i = end + 2
            continue
        if pattern.startswith("[=", i) or pattern.startswith("[.", i):
            raise ValueError("regex %r: collating elements are not evaluated" % pattern)
        low = pattern[i]
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            high = pattern[i + 2]
            if high == "[" or ord(low) > ord(high):
                raise ValueError("regex %r: invalid range" % pattern)
            items.append("%s-%s" % (re.escape(low), re.escape(high)))
            i += 3
            continue
        items.append(re.escape(low))
        i += 1
    if i >= len(pattern):
        raise ValueError("regex %r: unterminated bracket expression" % pattern)
    return "[%s%s]" % ("^" if negate else "", "".join(items)), i + 1


_CONFIG_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def build_exclusion(directives, kernel, arch, config_path, config_text, dkms_version):
    """Why DKMS would refuse to build for ``kernel`` (its exit 77), or None when it would build.

    ``directives`` is parse_exclusive_probe's dict; ``config_path``/``config_text`` the kernel config DKMS
    reads (kernel_config_candidates; text None when it does not exist). Follows read_conf of DKMS 3.0.10 or
    3.2.x (exclusion_rules). Raises ValueError when the answer cannot be told exactly and no other directive
    already excludes the kernel: DKMS then has to decide.
    """
    rules = exclusion_rules(dkms_version)
    reasons = []
    unknown = []
    kernel_re = directives.get("BUILD_EXCLUSIVE_KERNEL", "")
    arch_re = directives.get("BUILD_EXCLUSIVE_ARCH", "")
    for name, regex, subject in (("BUILD_EXCLUSIVE_KERNEL", kernel_re, kernel),
                                 ("BUILD_EXCLUSIVE_ARCH", arch_re, arch)):
        if not regex:
            continue
        try:
            if not ere_to_python(regex).search(subject):
                reasons.append('%s="%s" does not match %s' % (name, regex, subject))
        except ValueError as exc:
            unknown.append(str(exc))
    if rules == "3.2":
        minimum = directives.get("BUILD_EXCLUSIVE_KERNEL_MIN", "")
        maximum = directives.get("BUILD_EXCLUSIVE_KERNEL_MAX", "")
        source = "BUILD_EXCLUSIVE_KERNEL_MAX"
        if directives.get("OBSOLETE_BY") and not maximum:
            maximum, source = directives["OBSOLETE_BY"], "OBSOLETE_BY"
        # bash's [[ < ]] in DKMS's C locale (dkms_module runs it with LC_ALL=C): byte order.
        if minimum and dkms_ver(kernel) < dkms_ver(minimum):
            reasons.append('BUILD_EXCLUSIVE_KERNEL_MIN="%s": %s is older' % (minimum, kernel))
        if maximum and dkms_ver(kernel) > dkms_ver(maximum):
            reasons.append('%s="%s": %s is newer' % (source, maximum, kernel))
    wanted = directives.get("BUILD_EXCLUSIVE_CONFIG", "")
    if wanted and config_text is not None:
        for word in wanted.split():
            negated = word.startswith("!")
            option = word[1:] if negated else word
            if not _CONFIG_NAME.match(option):
                unknown.append('BUILD_EXCLUSIVE_CONFIG word %r is not a plain option name' % word)
                continue
            is_set = re.search(r"^%s=[ym]" % re.escape(option), config_text, re.M) is not None
            if negated and is_set:
                reasons.append('BUILD_EXCLUSIVE_CONFIG="%s": %s is set in %s' % (wanted, option, config_path))
            elif not negated and not is_set:
                reasons.append('BUILD_EXCLUSIVE_CONFIG="%s": %s is not set in %s' % (wanted, option, config_path))
    if reasons:
        return "excluded by BUILD_EXCLUSIVE in dkms.conf: %s" % "; ".join(reasons)
    if unknown:
        raise ValueError("; ".join(unknown))
    return None


def mark_excluded(states, exclusions):
    """``states`` with each kernel that has an exclusion reason and nothing built there set to EXCLUDED."""
    marked = dict(states)
    for kernel, reason in exclusions.items():
        if reason and kernel in marked and marked[kernel][0] in (ABSENT, ADDED):
            marked[kernel] = (EXCLUDED, (), None)
    return marked
