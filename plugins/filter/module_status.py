# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: module_status
short_description: Judge a host's snapshot-module state - ok, will break on reboot, or repair needed
version_added: 0.1.0
author:
  - HyperMotion Linux Agent engineers (@hypermotion)
description:
  - Takes the C(hypermotion_kernel) fact of M(hypermotion.linux_agent.kernel_facts) (read with the module in
    C(modules)) and returns per kernel the module state, a verdict and its reasons, and a text table.
  - V(repair needed) when the running kernel has no working module (missing, not loaded where it can be, or
    missing from its initramfs); V(will break on reboot) when only the next-boot kernel lacks it; else V(ok).
options:
  _input:
    description: The C(hypermotion_kernel) fact.
    type: dict
    required: true
  host:
    description: Host name for the table's verdict line.
    type: str
    default: host
  module:
    description: Kernel module to judge.
    type: str
    default: dattobd
"""

EXAMPLES = r"""
- name: Judge the host
  ansible.builtin.set_fact:
    linux_agent_status: >-
      {{ ansible_facts['hypermotion_kernel'] | hypermotion.linux_agent.module_status(inventory_hostname) }}
"""

RETURN = r"""
_value:
  description:
    - C(verdict), C(reasons), C(running_kernel), C(next_boot_kernel), C(kernels) (one dict per kernel) and C(table).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _status


def module_status(facts, host="host", module="dattobd"):
    if not isinstance(facts, dict):
        raise AnsibleFilterError("module_status expects the hypermotion_kernel fact (a dict)")
    status = _status.assess(facts, module)
    status["table"] = _status.render(host, status)
    return status


class FilterModule(object):
    def filters(self):
        return {"module_status": module_status}
