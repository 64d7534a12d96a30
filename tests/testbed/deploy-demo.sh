#!/usr/bin/env bash
# The main job on a local target:
#   tests/testbed/deploy-demo.sh [deploy]   make deploy
#   tests/testbed/deploy-demo.sh shell      make deploy-shell: a shell in the target
#   tests/testbed/deploy-demo.sh clean      make deploy-clean: remove the target and the console
#
# deploy creates (or finds again) a Debian 12 container with systemd and two Debian kernels, the molecule
# scenario install_bookworm, and a local console with the agent's artifacts, runs playbooks/install.yml
# against it, and leaves both running. It ends with the device table and a summary: where the target is,
# how to get a shell in it, the console's URL, how to remove both. A second deploy converges the same
# target against the same console (same URL, CA and token, so the same install variables): a target
# nobody changed takes the install's fast path and nothing changes. (KEEP=1 is gone: the target is
# always kept, `make deploy-clean` removes it.)
#
# The target lives in the project's own podman storage (tests/testbed/podman-env.sh), which plain
# `podman ps` does not see; `make deploy-shell` and the summary's command use it. Molecule's state for it
# is kept below $HM_CACHE/work/deploy-ansible-home (outside the clone: `make clean` does not orphan a
# running target, and the test lanes' molecule runs keep theirs in build/). Output that is not a terminal
# gets no colour codes.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/testbed/podman-env.sh
. tests/testbed/podman-env.sh
export PATH="$PWD/.venv/bin:$PATH"
scenario=install_bookworm
target=hm-install-bookworm   # the platform's name in extensions/molecule/install_bookworm/molecule.yml
# Molecule keeps a scenario's state in ANSIBLE_HOME/tmp/molecule.<checksum of the clone's name>.<scenario>.
export ANSIBLE_HOME="$HM_CACHE/work/deploy-ansible-home"
eph="$ANSIBLE_HOME/tmp/molecule.$(python3 -c 'import os, sys; from molecule.text import checksum
print(checksum(os.path.basename(sys.argv[1]), 4))' "$PWD").$scenario"
if [ ! -t 1 ]; then
    # molecule forces colour (ANSIBLE_FORCE_COLOR=1 for ansible-playbook too) whenever TERM names an
    # xterm, terminal or not; NO_COLOR is the one setting it gives way to.
    export NO_COLOR=1 PY_COLORS=0 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
fi

say() { printf 'deploy: %s\n' "$*"; }

container_state() { podman container inspect --format '{{.State.Status}}' "$target" 2>/dev/null || echo absent; }

# The device table through the same module the install's last role uses: one call of its own, so it is
# shown after a fast-path run too (that run ends the install play before its device_report role).
device_table() {
    local out
    out="$(ANSIBLE_CONFIG="$eph/ansible.cfg" ANSIBLE_REMOTE_TMP=/var/tmp/.ansible-tmp ANSIBLE_PIPELINING=true \
        ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_LOAD_CALLBACK_PLUGINS=1 \
        ANSIBLE_STDOUT_CALLBACK=ansible.posix.json \
        ansible "$target" -i "$eph/inventory" -m hypermotion.linux_agent.device_table 2>&1)" || true
    python3 -c '
import json, sys
try:
    result = json.loads(sys.argv[1])["plays"][0]["tasks"][0]["hosts"][sys.argv[2]]
    print(result["table"])
except Exception:
    sys.exit(1)' "$out" "$target" || { say "could not read the device table:"; printf '%s\n' "$out" | tail -n 20; }
}

deploy() {
    local t0=$SECONDS state vars url
    tests/testbed/images.sh ensure bookworm >/dev/null
    tests/testbed/console.sh artifacts >/dev/null   # a first build shows its progress here, not inside molecule

    state="$(container_state)"
    case "$state" in
        running) say "reusing the target $target" ;;
        absent)
            if [ -d "$eph" ]; then
                # Gone behind molecule's back: its state would skip create and prepare.
                say "the target $target is gone; creating it again"
                tests/testbed/console.sh stop "$scenario"
                rm -rf "$eph"
            fi ;;
        *)
            say "starting the target $target again (it was $state)"
            podman start "$target" >/dev/null ;;
    esac

    if [ -f "$eph/console-vars.yml" ]; then
        # Prepared before: the console keeps its URL, CA and token (started again on its port if it stopped),
        # so the install's variables, and with them its record, still match.
        vars="$(tests/testbed/console.sh ensure "$scenario")"
        cmp -s "$vars" "$eph/console-vars.yml" || install -m 0600 "$vars" "$eph/console-vars.yml"
    fi

    # converge = create and prepare when not done yet (molecule's state), then playbooks/install.yml. The
    # device table is printed once, below, on the full path and on the fast path alike.
    molecule converge -s "$scenario" --no-command-borders -- -e device_report_print=false

    say "device table of $target:"
    device_table
    url="$(sed -n 's/^linux_agent_console_url_local: //p' "$eph/console-vars.yml")"
    cat <<EOF

deploy: done in $(((SECONDS - t0) / 60))m$(printf '%02d' $(((SECONDS - t0) % 60)))s. Left running:
  target   $target: podman container (Debian 12, systemd), in the project's podman storage
           ($HM_PODMAN_DIR; plain \`podman ps\` does not show it)
  shell    make deploy-shell
           (or: . tests/testbed/podman-env.sh && podman exec -it $target bash)
  console  $url (the target reaches it as ${url/127.0.0.1/10.0.2.2}; its settings: $eph/console-vars.yml)
  again    make deploy      (converges the same target; unchanged, it takes the fast path)
  remove   make deploy-clean (the target and the console)
EOF
}

shell() {
    [ "$(container_state)" = running ] || { say "no running target $target: run make deploy first" >&2; exit 1; }
    if [ -t 0 ]; then exec podman exec -it "$target" bash -l; fi
    exec podman exec -i "$target" bash -l
}

clean() {
    if [ -d "$eph" ]; then
        # destroy runs the scenario's cleanup (stops the console) and removes the container.
        molecule destroy -s "$scenario" --no-command-borders --no-report >/dev/null 2>&1 ||
            say "molecule destroy failed; removing the target directly"
    fi
    podman rm -f -t 0 "$target" >/dev/null 2>&1 || true
    tests/testbed/console.sh stop "$scenario"
    rm -rf "$HM_CACHE/work/console-$scenario"   # its port, token and settings: a next deploy starts afresh
    rm -rf "$ANSIBLE_HOME"   # molecule's state of this and of the empty default scenario, ansible's temp
    if [ "$(container_state)" = absent ]; then
        say "removed the target $target and its console"
    else
        say "the target $target is still there: $(container_state)" >&2
        exit 1
    fi
}

case "${1:-deploy}" in
    deploy) deploy ;;
    shell) shell ;;
    clean) clean ;;
    *) echo "usage: $0 [deploy|shell|clean]" >&2; exit 2 ;;
esac
