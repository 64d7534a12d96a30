# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: dpkg_unfinished
short_description: The packages a dpkg run left half-done, from dpkg-query output
version_added: 0.1.0
author:
  - HyperMotion Linux Agent engineers (@hypermotion)
description:
  - Takes the output of C(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${db:Status-Status}\\n') and returns
    the packages in an unfinished state (half-installed, unpacked, half-configured, triggers awaited or pending)
    or flagged reinst-required, as C(PACKAGE (STATUS)) strings.
  - C(dpkg --audit) reports the same in prose and exits 0 either way; this gives a list a task can test.
options:
  _input:
    description: The output of the C(dpkg-query) command above.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse a package database left half-done
  ansible.builtin.fail:
    msg: "dpkg has unfinished packages: {{ states.stdout | hypermotion.linux_agent.dpkg_unfinished | join(', ') }}"
  when: states.stdout | hypermotion.linux_agent.dpkg_unfinished | length > 0
"""

RETURN = r"""
_value:
  description: One C(PACKAGE (STATUS)) string per unfinished package; empty when dpkg is settled.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _packages


def dpkg_unfinished(text):
    if not isinstance(text, str):
        raise AnsibleFilterError("dpkg_unfinished expects the output of dpkg-query (a string)")
    return _packages.describe_unfinished(text)


class FilterModule(object):
    def filters(self):
        return {"dpkg_unfinished": dpkg_unfinished}
