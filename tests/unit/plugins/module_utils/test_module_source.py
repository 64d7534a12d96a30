# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.hypermotion.linux_agent.plugins.module_utils._module_source import plan_module_sources

RUN, NEXT, NEW = "6.1.0-50-amd64", "6.1.0-56-amd64", "6.16.3+deb13-amd64"


def facts(**maps):
    kernels = {}
    for kernel, symbol_map in maps.items():
        kernels[kernel] = {"symbol_map": symbol_map, "symbol_map_path": None, "headers_present": False,
                           "headers_package": "linux-headers-%s" % kernel}
    return {"kernels": kernels, "kernel_list": sorted(kernels)}


FACTS = facts(**{RUN: "kallsyms", NEXT: "stub", NEW: "real"})


@pytest.mark.parametrize(
    "targets, prebuilt, enable, expected, error",
    [
        pytest.param([RUN], [RUN], False, {RUN: "prebuilt"}, None, id="prebuilt needs no DKMS"),
        pytest.param([RUN], [], False, {}, "no prebuilt dattobd module", id="DKMS disabled, nothing prebuilt"),
        pytest.param([RUN, NEXT], [], True, {RUN: "dkms", NEXT: "deferred"}, None, id="stub map defers"),
        pytest.param([NEW], [], True, {}, "outside the range", id="kernel newer than supported"),
        pytest.param([NEW], [NEW], False, {NEW: "prebuilt"}, None, id="prebuilt beats the range"),
        pytest.param(["5.10.0-1-amd64"], [], True, {}, "not installed on this host", id="unknown kernel"),
    ],
)
def test_plan(targets, prebuilt, enable, expected, error):
    plan = plan_module_sources(FACTS, targets, prebuilt, enable, "3.10", "6.12")
    assert dict((k, d["source"]) for k, d in plan["kernels"].items()) == expected
    if error:
        assert len(plan["errors"]) == 1 and error in plan["errors"][0]
    else:
        assert plan["errors"] == []


def test_headers_for_dkms_and_deferred_kernels():
    plan = plan_module_sources(FACTS, [RUN, NEXT], [], True, "3.10", "6.12")
    assert plan["headers_packages"] == ["linux-headers-%s" % RUN, "linux-headers-%s" % NEXT]
    assert plan["needs_dkms"] is True
    assert plan["deferred"] == [NEXT]
    assert "first boot" in plan["kernels"][NEXT]["reason"]


def test_prebuilt_only_needs_no_dkms():
    plan = plan_module_sources(FACTS, [RUN], [RUN], True, "3.10", "6.12")
    assert plan["needs_dkms"] is False
    assert plan["headers_packages"] == []
