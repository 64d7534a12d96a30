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
#   tests/testbed/console.sh ensure NAME
#       like start, but a console of NAME that still runs is kept, and one that stopped (a reboot) is
#       started again on its port with its token: the vars file stays the same, so a host installed
#       against it still matches its install record (make deploy's second run takes the fast path).
#   tests/testbed/console.sh stop NAME
#   tests/testbed/console.sh artifacts
#       only builds the PKI and artifacts (progress on stderr: make deploy runs it before molecule,
#       which would hide the output of a first, slow build)
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
# shellcheck source=tests/testbed/lib/progress.sh
. "$HERE/lib/progress.sh"

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
    if ! flock -n "$lock"; then
        hm_progress console.sh "waiting for another console.sh building the artifacts" "" flock "$lock"
    fi
    if [ ! -f "$SHARED/.complete" ]; then
        rm -rf "$SHARED"
        mkdir -p "$SHARED"
        echo "console.sh: building the test PKI and the console's artifacts in $SHARED" >&2
        hm_progress console.sh "building the test PKI" "$SHARED/build.log" \
            "$REPO/tests/console/make-pki.sh" "$SHARED/pki" || { tail -n 20 "$SHARED/build.log" >&2; die "make-pki.sh failed"; }
        hm_progress console.sh "building the console's artifacts" "$SHARED/build.log" \
            "$REPO/tests/console/build-artifacts.sh" "$SHARED/root" "$AGENT_VERSION" --pki "$SHARED/pki" ||
            { tail -n 20 "$SHARED/build.log" >&2; die "build-artifacts.sh failed"; }
        touch "$SHARED/.complete"
    fi
    # In use: the clean-up below (of any console.sh) leaves it for another day.
    touch "$SHARED"
    # Drop artifact sets nobody used for a day.
    find "$CACHE/work" -maxdepth 1 -name 'console-artifacts-*' -mtime +1 ! -path "$SHARED" \
        -exec rm -rf {} + 2>/dev/null || true
    exec {lock}>&-
}

# Starts console.py for NAME on PORT (0: a free one) with the token in $dir/token and writes $dir/vars.yml.
launch() { # name port cert fail_mode
    local name="$1" port="$2" cert="$3" fail_mode="$4" dir="$CACHE/work/console-$1"
    rm -f "$dir/port"
    setsid python3 "$REPO/tests/console/console.py" --root "$SHARED/root" --port "$port" --bind 127.0.0.1 \
        --token-file "$dir/token" --cert "$SHARED/pki/$cert.crt" --key "$SHARED/pki/$cert.key" \
        --fail-mode "$fail_mode" --port-file "$dir/port" --pid-file "$dir/pid" --log-file "$dir/access.log" \
        </dev/null >"$dir/console.out" 2>&1 &
    for _ in $(seq 1 100); do
        [ -s "$dir/port" ] && break
        sleep 0.1
    done
    [ -s "$dir/port" ] || return 1
    port="$(cat "$dir/port")"
    # What ensure needs to start the same console again.
    printf '%s %s %s\n' "$cert" "$fail_mode" "$SHARED" >"$dir/options"
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
    rm -f "$dir/options"
    launch "$name" 0 "$cert" "$fail_mode" || die "console did not start: $(tail -5 "$dir/console.out")"
    echo "$dir/vars.yml"
}

running() { # name: its console.py is alive (a pid file can outlive a reboot and name another process)
    local pid_file="$CACHE/work/console-$1/pid" pid
    [ -f "$pid_file" ] || return 1
    pid="$(cat "$pid_file")"
    [ -n "$pid" ] && grep -qa 'tests/console/console.py' "/proc/$pid/cmdline" 2>/dev/null
}

ensure() {
    local name="$1" dir="$CACHE/work/console-$1" cert fail_mode shared port
    if [ -f "$dir/vars.yml" ] && [ -f "$dir/options" ] && [ -f "$dir/token" ]; then
        read -r cert fail_mode shared <"$dir/options"
        if running "$name"; then
            touch "$shared"   # in use: the day-old clean-up of artifact sets leaves it
            echo "$dir/vars.yml"
            return
        fi
        # Stopped: the same port, token and artifact set give the same vars file, hence the same install
        # variables. The port may have been taken meanwhile; then a fresh start is all there is.
        port="$(sed -n 's|^linux_agent_console_url_local: https://127.0.0.1:||p' "$dir/vars.yml")"
        if [ -f "$shared/.complete" ] && [ -n "$port" ]; then
            SHARED="$shared"
            touch "$SHARED"
            if launch "$name" "$port" "$cert" "$fail_mode"; then
                echo "console.sh: started the console of $name again on port $port" >&2
                echo "$dir/vars.yml"
                return
            fi
            echo "console.sh: port $port is taken: starting the console of $name on a new port" \
                "(a host installed against the old URL takes the full install path once)" >&2
        fi
    fi
    start "$name"
}

stop() {
    local dir="$CACHE/work/console-$1"
    if [ -f "$dir/pid" ]; then
        if running "$1"; then kill "$(cat "$dir/pid")" 2>/dev/null || true; fi
        rm -f "$dir/pid"
    fi
}

case "${1:-}" in
    start) shift; [ $# -ge 1 ] || die "usage: console.sh start NAME [options]"; start "$@" ;;
    ensure) shift; [ $# -eq 1 ] || die "usage: console.sh ensure NAME"; ensure "$1" ;;
    stop) shift; [ $# -ge 1 ] || die "usage: console.sh stop NAME"; stop "$1" ;;
    artifacts) artifacts; echo "$SHARED" ;;
    *) die "usage: console.sh start|ensure|stop NAME, or console.sh artifacts" ;;
esac
