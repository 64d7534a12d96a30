# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import pathlib

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _devices

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "unit" / "fixtures" / "devices"


def test_ci_host_capture():
    """Captured on this project's CI machine: a whole-disk ext4 root that lsblk cannot type."""
    rows = _devices.device_rows((FIXTURES / "lsblk-ci-host.json").read_text(),
                                (FIXTURES / "mounts-ci-host.txt").read_text())
    assert [r["device"] for r in rows] == ["/dev/vda"]
    row = rows[0]
    assert (row["mount"], row["type"], row["sync"]) == ("/", "ext4", "Yes")
    assert row["used"].endswith("%") and row["free"].endswith("G")


PARTITIONED = {
    "blockdevices": [{
        "name": "sda", "path": "/dev/sda", "type": "disk", "fstype": None, "mountpoints": [None],
        "fsavail": None, "fssize": None, "fsused": None,
        "children": [
            {"name": "sda1", "path": "/dev/sda1", "type": "part", "fstype": "vfat", "mountpoints": ["/boot/efi"],
             "fsavail": 535000000, "fssize": 536000000, "fsused": 1000000},
            {"name": "sda2", "path": "/dev/sda2", "type": "part", "fstype": "ext4", "mountpoints": ["/boot"],
             "fsavail": 1717986918, "fssize": 2000000000, "fsused": 220000000},
            {"name": "sda3", "path": "/dev/sda3", "type": "part", "fstype": "swap", "mountpoints": ["[SWAP]"],
             "fsavail": None, "fssize": None, "fsused": None},
        ],
    }]
}


def test_rows_and_table():
    rows = _devices.device_rows(json.dumps(PARTITIONED))
    by_device = dict((r["device"], r) for r in rows)
    assert by_device["/dev/sda2"]["free"] == "1.6G"
    assert by_device["/dev/sda2"]["used"] == "11%"
    assert by_device["/dev/sda2"]["sync"] == "Yes"
    assert by_device["/dev/sda1"]["sync"] == "No"
    table = _devices.render_table(rows).splitlines()
    assert table[0].split() == list(_devices.COLUMNS)
    assert "/dev/sda2  ext4  /boot" in _devices.render_table(rows)


@pytest.mark.parametrize("size, text", [(None, "-"), (512, "512B"), (1536, "1.5K"), (1717986918, "1.6G"),
                                        (2 * 1024 ** 4, "2T")])
def test_human_size(size, text):
    assert _devices.human_size(size) == text


def test_container_root_gets_a_row_that_cannot_sync():
    lsblk = json.dumps({"blockdevices": [{"name": "vda", "path": "/dev/vda", "type": "disk", "fstype": None,
                                          "mountpoints": [None], "fsavail": None, "fssize": None,
                                          "fsused": None}]})
    mounts = "overlay / overlay rw,relatime,lowerdir=/a,upperdir=/b,workdir=/c 0 0\nproc /proc proc rw 0 0\n"
    rows = _devices.device_rows(lsblk, mounts, root_usage=(100 * 2 ** 30, 60 * 2 ** 30, 40 * 2 ** 30))
    assert [(r["device"], r["type"], r["mount"], r["free"], r["used"], r["sync"]) for r in rows] == [
        ("overlay", "overlay", "/", "60G", "40%", "No")]


def test_block_root_is_not_duplicated():
    rows = _devices.device_rows((FIXTURES / "lsblk-ci-host.json").read_text(),
                                (FIXTURES / "mounts-ci-host.txt").read_text(), root_usage=(1, 1, 0))
    assert [r["mount"] for r in rows] == ["/"]
