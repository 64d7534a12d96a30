# -*- coding: utf-8 -*-
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's Secure Boot state, read the way kernel_facts and converged_state both need it."""

from __future__ import annotations

import os

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _kernel

SECURE_BOOT_EFIVAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def read_state(module, root="/"):
    """(state, source): mokutil --sb-state first (it is also what tests double), the EFI variable after."""
    path = module.get_bin_path("mokutil")
    if path:
        rc, out, err = module.run_command([path, "--sb-state"])
        state = _kernel.parse_mokutil_sb_state(out + err)
        if state != "unknown":
            return state, "mokutil"
    try:
        with open(os.path.join(root, SECURE_BOOT_EFIVAR.lstrip("/")), "rb") as handle:
            return _kernel.parse_efivar_secure_boot(handle.read()), "efivars"
    except OSError:
        return "unknown", "none"
