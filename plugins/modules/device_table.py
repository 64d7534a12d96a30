#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: device_table
short_description: The install guide's device table of a host, as text and as data
version_added: 0.1.0
description:
  - Reads the host's block devices with C(lsblk) and its mounts, and returns the table the vendor
    installer prints after an install (C(Device Type Mount Free Used Sync Path)), one row per mounted
    filesystem on a block device. C(Sync) says whether the agent can track that filesystem.
  - When C(/) is not on a block device the host can see (a container's overlay), a row for it is added
    with C(Sync) V(No), rather than an empty table.
  - Changes nothing.
author:
  - HyperMotion Linux Agent engineers (@hypermotion)
extends_documentation_fragment:
  - hypermotion.linux_agent.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options: {}
"""

EXAMPLES = r"""
- name: Read the device table
  hypermotion.linux_agent.device_table:
  register: linux_agent_devices

- name: Print it
  ansible.builtin.debug:
    msg: "{{ linux_agent_devices.table.splitlines() }}"
"""

RETURN = r"""
devices:
  description: One dict per row (device, type, mount, free, used, sync, path, free_bytes).
  returned: always
  type: list
  elements: dict
table:
  description: The rows as aligned text with the installer's header.
  returned: always
  type: str
  sample: |-
    Device     Type  Mount  Free  Used  Sync  Path
    /dev/sda2  ext4  /boot  1.6G  11%   Yes   /dev/sda2
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _devices


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.run_command_environ_update = {"LANGUAGE": "C", "LC_ALL": "C"}
    lsblk = module.get_bin_path("lsblk", required=True)
    rc, out, err = module.run_command(
        [lsblk, "-J", "-b", "-o", "NAME,PATH,TYPE,FSTYPE,MOUNTPOINTS,FSAVAIL,FSSIZE,FSUSED"])
    if rc != 0:
        module.fail_json(msg="lsblk failed: %s" % err.strip(), rc=rc, stdout=out, stderr=err)
    try:
        with open("/proc/self/mounts") as handle:
            mounts = handle.read()
    except OSError:
        mounts = ""
    stats = os.statvfs("/")
    root_usage = (stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize,
                  (stats.f_blocks - stats.f_bfree) * stats.f_frsize)
    rows = _devices.device_rows(out, mounts, root_usage)
    module.exit_json(changed=False, devices=rows, table=_devices.render_table(rows))


if __name__ == "__main__":
    main()
