# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by the testinfra verifiers of every scenario (pytest finds this file from the
repository's pytest.ini, above each scenario's tests/ folder).

Molecule runs the verifier twice: after converge and after the uninstall side effect, which leaves
/etc/hm-test-phase behind (extensions/molecule/shared/uninstall.yml). A test asks for the phase it
belongs to and is skipped in the other.
"""

from __future__ import annotations

import pytest

PHASE_MARKER = "/etc/hm-test-phase"


@pytest.fixture
def installed(host):
    if host.file(PHASE_MARKER).exists:
        pytest.skip("uninstalled phase")


@pytest.fixture
def uninstalled(host):
    if not host.file(PHASE_MARKER).exists:
        pytest.skip("installed phase")
