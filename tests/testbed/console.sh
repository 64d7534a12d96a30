#!/usr/bin/env bash
# Start and stop a local vendor console (tests/console/console.py) for a test run.
#
#   tests/testbed/console.sh start NAME [--fail-mode 401|404|500] [--cert console|wrong-host]
#       builds the PKI and artifacts (cached), starts the console on 127.0.0.1 on a free
#       port, and prints the path of NAME's vars file (YAML, for ansible-playbook -e @FILE):
#         linux_agent_console_url        https://10.0.2.2:PORT (what a slirp4netns container sees)
#         linux_agent_console_url_local  https://127.0.0.1:PORT
#         linux_agent_console_token      a fresh random token
#         linux_agent_console_ca         the test CA (controller path)
#         hm_console_sha256              {artifact: sha256} from SHA256SUMS
#   tests/testbed/console.sh stop NAME
#
# State lives in ${HM_CACHE:-/var/cache/hypermotion-linux-agent}/work/console-NAME; the
# artifacts and PKI are shared by every NAME, one set per content of tests/console and
# tests/fixtures.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${HM_CACHE:-/var/cache/hypermotion-linux-agent}"
SHARED=""  # set by artifacts()
AGENT_VERSION=1.0.0

die() { echo "console.sh: error: $*" >&2; exit 1; }

artifacts() {
    # One artifacts+PKI directory per content hash of tests/console and tests/fixtures: a change
    # builds a new one, and a console already serving an older one keeps its files.
    local hash lock
    hash="$(cd "$REPO" && find tests/console tests/fixtures -type f ! -name '*.pyc' -print0 | sort -z |
        xargs -0 sha256sum | sha256sum | cut -c1-16)"
    SHARED="$CACHE/work/console-artifacts-$hash"
    # make test's two lanes may both start a console first on a cold cache: one builds, the other waits.
    mkdir -p "$CACHE/work"
    exec {lock}>"$CACHE/work/console-artifacts.lock"
    flock "$lock"
    if [ ! -f "$SHARED/.complete" ]; then
        rm -rf "$SHARED"
        mkdir -p "$SHARED"
        "$REPO/tests/console/make-pki.sh" "$SHARED/pki" >/dev/null
        "$REPO/tests/console/build-artifacts.sh" "$SHARED/root" "$AGENT_VERSION" --pki "$SHARED/pki" >/dev/null
        touch "$SHARED/.complete"
    fi
    # Drop artifact sets nobody used for a day.
    find "$CACHE/work" -maxdepth 1 -name 'console-artifacts-*' -mtime +1 ! -path "$SHARED" \
        -exec rm -rf {} + 2>/dev/null || true
    exec {lock}>&-
}

start() {
    local name="$1"; shift
    local fail_mode=none cert=console
    while [ $# -gt 0 ]; do
        case "$1" in
            --fail-mode) fail_mode="$2"; shift 2 ;;
            --cert) cert="$2"; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    local dir="$CACHE/work/console-$name"
    stop "$name" 2>/dev/null || true
    artifacts
    mkdir -p "$dir"
    head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$dir/token"
    chmod 600 "$dir/token"
    rm -f "$dir/port"
    setsid python3 "$REPO/tests/console/console.py" --root "$SHARED/root" --port 0 --bind 127.0.0.1 \
        --token-file "$dir/token" --cert "$SHARED/pki/$cert.crt" --key "$SHARED/pki/$cert.key" \
        --fail-mode "$fail_mode" --port-file "$dir/port" --pid-file "$dir/pid" --log-file "$dir/access.log" \
        </dev/null >"$dir/console.out" 2>&1 &
    for _ in $(seq 1 100); do
        [ -s "$dir/port" ] && break
        sleep 0.1
    done
    [ -s "$dir/port" ] || die "console did not start: $(tail -5 "$dir/console.out")"
    local port
    port="$(cat "$dir/port")"
    {
        echo "---"
        echo "linux_agent_console_url: https://10.0.2.2:$port"
        echo "linux_agent_console_url_local: https://127.0.0.1:$port"
        echo "linux_agent_console_token: $(cat "$dir/token")"
        echo "linux_agent_console_ca: $SHARED/pki/ca.crt"
        echo "hm_console_root: $SHARED/root"
        echo "hm_console_sha256:"
        while read -r sum file; do echo "  $file: $sum"; done <"$SHARED/root/SHA256SUMS"
    } >"$dir/vars.yml"
    chmod 600 "$dir/vars.yml"
    echo "$dir/vars.yml"
}

stop() {
    local dir="$CACHE/work/console-$1"
    if [ -f "$dir/pid" ]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
}

case "${1:-}" in
    start) shift; [ $# -ge 1 ] || die "usage: console.sh start NAME [options]"; start "$@" ;;
    stop) shift; [ $# -ge 1 ] || die "usage: console.sh stop NAME"; stop "$1" ;;
    *) die "usage: console.sh start|stop NAME" ;;
esac
