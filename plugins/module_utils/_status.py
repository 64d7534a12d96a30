# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: judge a host's snapshot-module state from kernel_facts, per kernel and overall.

Verdicts, worst first:
  ``repair needed``        the running kernel has no working module (missing, not loaded where it can be,
                           or its initramfs does not carry the installed module);
  ``will break on reboot`` the running kernel is fine, but the kernel that boots next has no module;
  ``ok``                   both have it.
"""

from __future__ import annotations

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _kernel

OK = "ok"
WILL_BREAK = "will break on reboot"
REPAIR = "repair needed"
COLUMNS = ("Kernel", "Running", "Next boot", "Headers", "Symbols", "Module", "Initramfs", "Loaded")


def _yes(value):
    if value is None:
        return "-"
    return "yes" if value else "no"


def kernel_rows(facts, module="dattobd"):
    """One dict per installed kernel, oldest first."""
    rows = []
    for release in sorted(facts.get("kernels", {}), key=_kernel.kernel_sort_key):
        info = facts["kernels"][release]
        state = info.get("modules", {}).get(module, {})
        rows.append({
            "kernel": release,
            "running": bool(info.get("running")),
            "next_boot": bool(info.get("next_boot")),
            "headers": bool(info.get("headers_present")),
            "symbol_map": info.get("symbol_map"),
            "module_installed": bool(state.get("installed")),
            "module_versions": state.get("built_versions", []),
            "in_initramfs": state.get("in_initramfs"),
            "initramfs_current": state.get("initramfs_current"),
            "loaded": bool(state.get("loaded")),
        })
    return rows


def assess(facts, module="dattobd"):
    """Verdict and reasons for one host."""
    rows = dict((row["kernel"], row) for row in kernel_rows(facts, module))
    running = facts.get("running_kernel")
    next_boot = facts.get("next_boot_kernel")
    can_load = bool(facts.get("can_load_modules"))
    reasons = []
    verdict = OK
    if can_load:
        row = rows.get(running)
        if row is None or not row["module_installed"]:
            reasons.append("the running kernel %s has no %s module installed" % (running, module))
        elif not row["loaded"]:
            reasons.append("%s is installed for the running kernel %s but not loaded" % (module, running))
        elif row["initramfs_current"] is False:
            reasons.append("the initramfs of the running kernel %s does not carry the installed %s" % (running, module))
        if reasons:
            verdict = REPAIR
    if next_boot and (next_boot != running or not can_load):
        row = rows.get(next_boot)
        if row is None or not row["module_installed"]:
            reasons.append("the next-boot kernel %s has no %s module" % (next_boot, module))
            verdict = verdict if verdict == REPAIR else WILL_BREAK
        elif row["initramfs_current"] is False:
            reasons.append("the initramfs of the next-boot kernel %s does not carry the installed %s" % (
                next_boot, module))
            verdict = verdict if verdict == REPAIR else WILL_BREAK
    return {"verdict": verdict, "reasons": reasons, "running_kernel": running, "next_boot_kernel": next_boot,
            "kernels": [rows[k] for k in sorted(rows, key=_kernel.kernel_sort_key)]}


def render(host, status):
    """A table a person reads at a glance: one line per kernel, then the verdict."""
    cells = [list(COLUMNS)]
    for row in status["kernels"]:
        cells.append([
            row["kernel"], _yes(row["running"]), _yes(row["next_boot"]), _yes(row["headers"]),
            row["symbol_map"] or "-",
            ",".join(row["module_versions"]) if row["module_installed"] and row["module_versions"]
            else _yes(row["module_installed"]),
            _yes(row["in_initramfs"]), _yes(row["loaded"]),
        ])
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip() for line in cells]
    because = " (%s)" % "; ".join(status["reasons"]) if status["reasons"] else ""
    lines.append("%s: %s%s" % (host, status["verdict"], because))
    return "\n".join(lines)
