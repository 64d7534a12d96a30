# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: module_source_plan
short_description: Decide per kernel whether dattobd comes prebuilt, from DKMS, or is deferred to first boot
version_added: 0.1.0
author:
  - HyperMotion Linux Agent engineers (@hypermotion)
description:
  - Takes the C(hypermotion_kernel) fact of M(hypermotion.linux_agent.kernel_facts) and returns, per target
    kernel, the module source, plus an C(errors) list of operator-facing refusals (no prebuilt module and
    DKMS disabled, kernel outside the supported range, kernel not installed).
  - Kernels that are not running and have no real System.map are V(deferred) to their first boot.
options:
  _input:
    description: The C(hypermotion_kernel) fact.
    type: dict
    required: true
  target_kernels:
    description: Kernel releases to plan for.
    type: list
    elements: str
    required: true
  prebuilt_kernels:
    description: Kernels the console has a prebuilt module for.
    type: list
    elements: str
    required: true
  enable_dkms:
    description: Whether DKMS builds are allowed.
    type: bool
    required: true
  kernel_min:
    description: Oldest supported MAJOR.MINOR for DKMS builds.
    type: str
    required: true
  kernel_max:
    description: Newest supported MAJOR.MINOR (or MAJOR) for DKMS builds.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Plan the dattobd module source
  ansible.builtin.set_fact:
    dattobd_plan: >-
      {{ ansible_facts['hypermotion_kernel'] | hypermotion.linux_agent.module_source_plan(
           ['6.1.0-50-amd64'], [], true, '3.10', '6.12') }}
"""

RETURN = r"""
_value:
  description: C(kernels) (per kernel C(source) and C(reason)), C(prebuilt), C(dkms), C(deferred), C(headers_packages),
    C(needs_dkms) and C(errors).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.hypermotion.linux_agent.plugins.module_utils._module_source import plan_module_sources


def module_source_plan(facts, target_kernels, prebuilt_kernels, enable_dkms, kernel_min, kernel_max):
    if not isinstance(facts, dict):
        raise AnsibleFilterError("module_source_plan expects the hypermotion_kernel fact (a dict)")
    return plan_module_sources(facts, list(target_kernels), list(prebuilt_kernels or []), bool(enable_dkms),
                               str(kernel_min), str(kernel_max))


class FilterModule(object):
    def filters(self):
        return {"module_source_plan": module_source_plan}
