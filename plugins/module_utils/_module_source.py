# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide, per target kernel, where the dattobd module comes from — before anything changes.

The installer's rules (REFERENCE.md, "What the agent install does"): a prebuilt module from the
console when one exists; else DKMS, only when enabled and only for kernels inside the supported
range; else a clear refusal. On top of that, the symbol-map guard: dattobd's configure step
resolves symbol addresses of the *target* kernel, so a kernel that is not running and has no
real System.map is deferred to its first boot instead of being built with wrong addresses.
"""

from __future__ import annotations

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _kernel

PREBUILT = "prebuilt"
DKMS = "dkms"
DEFERRED = "deferred"


def plan_module_sources(facts, target_kernels, prebuilt_kernels, enable_dkms, kernel_min, kernel_max,
                        module="dattobd"):
    """Plan the module source of every target kernel.

    ``facts`` is the ``hypermotion_kernel`` fact of kernel_facts. Returns a dict with per-kernel
    decisions (``kernels``), the lists ``prebuilt``, ``dkms`` and ``deferred``, the headers
    packages DKMS needs, and ``errors``: operator-facing messages, one per refused kernel.
    """
    kernels_info = facts.get("kernels", {})
    decisions = {}
    errors = []
    prebuilt = set(prebuilt_kernels or [])
    for kernel in target_kernels:
        info = kernels_info.get(kernel)
        if info is None:
            errors.append(
                "Target kernel %s is not installed on this host (installed: %s). Fix the target kernel list "
                "(dattobd_target_kernels) or install that kernel first." % (
                    kernel, ", ".join(facts.get("kernel_list", [])) or "none"))
            continue
        if kernel in prebuilt:
            decisions[kernel] = {"source": PREBUILT, "reason": "the console has a prebuilt %s module" % module}
            continue
        if not enable_dkms:
            errors.append(
                "Kernel %s has no prebuilt %s module on the console. Set dattobd_enable_dkms: true to build it "
                "with DKMS on the host (the installer's --enable-dkms), or ask the vendor for a prebuilt "
                "module for this kernel." % (kernel, module))
            continue
        try:
            inside = _kernel.kernel_in_range(kernel, kernel_min, kernel_max)
        except ValueError as exc:
            errors.append("Cannot check kernel %s against the supported range: %s" % (kernel, exc))
            continue
        if not inside:
            errors.append(
                "Kernel %s is outside the range DKMS builds of %s support (%s to %s): the build would fail or "
                "produce a module that crashes. Boot a supported kernel, or reinstall the agent with a "
                "release that supports it (dattobd_kernel_min/dattobd_kernel_max)." % (
                    kernel, module, kernel_min, kernel_max))
            continue
        if info.get("symbol_map") in ("real", "kallsyms"):
            decisions[kernel] = {
                "source": DKMS,
                "reason": "built with DKMS; symbols from %s" % (info.get("symbol_map_path") or "/proc/kallsyms"),
            }
        else:
            decisions[kernel] = {
                "source": DEFERRED,
                "reason": "no real System.map for %s, which is not running (symbol map: %s); it is built on its "
                          "first boot, before the agent starts" % (kernel, info.get("symbol_map")),
            }
    by_source = dict((name, sorted((k for k, d in decisions.items() if d["source"] == name),
                                   key=_kernel.kernel_sort_key)) for name in (PREBUILT, DKMS, DEFERRED))
    headers = []
    for kernel in by_source[DKMS] + by_source[DEFERRED]:
        info = kernels_info[kernel]
        if not info.get("headers_present") and info.get("headers_package"):
            headers.append(info["headers_package"])
    return {
        "kernels": decisions,
        "prebuilt": by_source[PREBUILT],
        "dkms": by_source[DKMS],
        "deferred": by_source[DEFERRED],
        "headers_packages": headers,
        "needs_dkms": bool(by_source[DKMS] or by_source[DEFERRED]),
        "errors": errors,
    }
