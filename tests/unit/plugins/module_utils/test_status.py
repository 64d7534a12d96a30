# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _status

# facts(**{K_OLD: ...}) builds keyword names from kernel releases:
# pylint: disable=repeated-keyword

OLD, NEW = "6.1.0-50-amd64", "6.1.0-56-amd64"


def facts(running=OLD, next_boot=NEW, can_load=True, **modules):
    """modules: kernel -> (installed, loaded, initramfs_current)."""
    kernels = {}
    for kernel in (OLD, NEW):
        installed, loaded, current = modules.get(kernel.replace("-", "_").replace(".", "_"), (False, False, None))
        kernels[kernel] = {
            "running": kernel == running, "next_boot": kernel == next_boot, "headers_present": True,
            "symbol_map": "kallsyms" if kernel == running else "stub",
            "modules": {"dattobd": {"installed": installed, "loaded": loaded, "built_versions": ["0.12.1"],
                                    "in_initramfs": current, "initramfs_current": current}},
        }
    return {"kernels": kernels, "running_kernel": running, "next_boot_kernel": next_boot,
            "can_load_modules": can_load}


K_OLD, K_NEW = OLD.replace("-", "_").replace(".", "_"), NEW.replace("-", "_").replace(".", "_")


@pytest.mark.parametrize(
    "host, verdict, reason",
    [
        pytest.param(facts(**{K_OLD: (True, True, True), K_NEW: (True, False, True)}), "ok", None, id="both fine"),
        pytest.param(facts(**{K_OLD: (True, True, True)}), "will break on reboot", "next-boot kernel",
                     id="new kernel installed without a module"),
        pytest.param(facts(**{K_OLD: (True, False, True), K_NEW: (True, False, True)}), "repair needed",
                     "not loaded", id="installed but not loaded"),
        pytest.param(facts(**{K_NEW: (True, False, True)}), "repair needed", "running kernel",
                     id="running kernel lacks the module"),
        pytest.param(facts(**{K_OLD: (True, True, False), K_NEW: (True, False, True)}), "repair needed",
                     "initramfs", id="stale initramfs on the running kernel"),
        pytest.param(facts(next_boot=OLD, **{K_OLD: (True, True, True)}), "ok", None, id="same kernel next boot"),
        pytest.param(facts(can_load=False, next_boot=NEW, **{K_NEW: (True, False, True)}), "ok", None,
                     id="container: only the target kernel counts"),
    ],
)
def test_assess(host, verdict, reason):
    status = _status.assess(host)
    assert status["verdict"] == verdict
    if reason:
        assert any(reason in r for r in status["reasons"]), status["reasons"]
    else:
        assert status["reasons"] == []


def test_render_is_a_table_with_the_verdict():
    status = _status.assess(facts(**{K_OLD: (True, True, True)}))
    lines = _status.render("web1", status).splitlines()
    assert lines[0].split()[0] == "Kernel"
    assert lines[1].startswith(OLD) and "0.12.1" in lines[1]
    assert lines[2].startswith(NEW)
    assert lines[-1].startswith("web1: will break on reboot (")
