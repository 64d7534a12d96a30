#!/usr/bin/env bash
# The main job on a disposable local target (`make deploy`): a Debian 12 container with systemd and
# two Debian kernels, a local console with the agent's artifacts, and playbooks/install.yml run
# against it end to end (it prints the device table at the end). The target and the console are
# removed afterwards; KEEP=1 leaves them running (`molecule destroy -s install_bookworm` removes them).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/testbed/podman-env.sh
. tests/testbed/podman-env.sh
export PATH="$PWD/.venv/bin:$PATH"
scenario=install_bookworm

tests/testbed/images.sh ensure bookworm >/dev/null
if [ "${KEEP:-0}" != 1 ]; then
    trap 'molecule cleanup -s "$scenario" >/dev/null 2>&1; molecule destroy -s "$scenario" >/dev/null 2>&1' EXIT
fi
molecule destroy -s "$scenario" >/dev/null 2>&1 || true
molecule converge -s "$scenario"
