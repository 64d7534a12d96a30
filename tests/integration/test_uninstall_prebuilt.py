# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/uninstall.yml on a host whose dattobd came prebuilt from the console (no DKMS involved).

DKMS re-indexes the kernels it removes a module from; a prebuilt module in updates/hypermotion has no one
else to do it, so the role runs depmod for that module's kernel, and only that one (depmod takes a minute per
kernel on a slow host). The module file is a real kernel module of the image, placed and indexed where the
prebuilt path puts dattobd.ko.
"""

from __future__ import annotations

import re

import pytest
import testbed
from install_target import SystemdTarget

pytestmark = pytest.mark.slow

HANDLER = "Re-index the kernels whose prebuilt module was removed"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    work = tmp_path_factory.mktemp("uninstall-prebuilt")
    box = SystemdTarget(testbed.ensure_image("ensure-dkms", "bookworm"), testbed.podman_environment(), work)
    try:
        box.start()
        box.kernels = box.sh("cat /etc/hm-testbed/kernels").stdout.split()
        assert len(box.kernels) == 2, box.kernels
        yield box
    finally:
        box.stop()


def test_prebuilt_module_removed_and_only_its_kernel_reindexed(host):
    other, kernel = host.kernels
    prebuilt = "/lib/modules/%s/updates/hypermotion" % kernel
    host.sh("set -e; mkdir -p %s; cp \"$(find /lib/modules/%s/kernel -name 'erofs.ko*' | head -n 1)\" %s/dattobd.ko;"
            " depmod -a %s" % (prebuilt, kernel, prebuilt, kernel))
    assert "updates/hypermotion/dattobd.ko:" in host.sh("cat /lib/modules/%s/modules.dep" % kernel).stdout
    # depmod writes the same content again, so the file's modification time (ns) shows whether it ran.
    other_index = host.sh("stat -c %%y /lib/modules/%s/modules.dep" % other).stdout

    run = host.playbook(testbed.REPO / "playbooks" / "uninstall.yml", verbosity=1)

    assert run.rc == 0, run.tail()
    assert host.sh("test -e %s" % prebuilt, check=False).returncode != 0, "the prebuilt module is still there"
    assert "updates/hypermotion" not in host.sh("cat /lib/modules/%s/modules.dep" % kernel).stdout, \
        "the kernel's module index still lists the removed module"
    assert host.sh("stat -c %%y /lib/modules/%s/modules.dep" % other).stdout == other_index, \
        "the kernel without a prebuilt module was re-indexed"
    handler = run.output[run.output.index("RUNNING HANDLER [hypermotion.linux_agent.dattobd : %s]" % HANDLER):]
    handler = handler[:handler.index("PLAY RECAP")]
    assert re.findall(r"\(item=([^)]+)\)", handler) == [kernel], handler

    again = host.playbook(testbed.REPO / "playbooks" / "uninstall.yml", verbosity=1)
    assert again.rc == 0, again.tail()
    assert "RUNNING HANDLER [hypermotion.linux_agent.dattobd : %s]" % HANDLER not in again.output, again.tail()
