#!/usr/bin/env bash
# Run test lanes side by side and fail if any fails:
#   tests/run-lanes.sh NAME='COMMAND' [NAME='COMMAND' ...]
#
# Why: the podman lane (integration, molecule, fault suite) and the VM lane (qemu without KVM) each keep
# about one core busy for most of their run, and CI has two cores and 90 minutes; one after the other
# they do not fit, side by side they do.
#
# Each lane runs in its own process group with its output in build/lanes/NAME.log. Every HEARTBEAT
# seconds (default 120) one line per lane says how long it has run and the last line it printed, so a CI
# log shows progress without interleaving two verbose outputs. When a lane fails, the others are stopped
# (their whole process group, so molecule's and qemu's children go too; their own clean-up traps run on
# SIGTERM; LANES_FAIL_FAST=0 lets them finish) and the failed lane's last lines are printed. On Ctrl-C or
# SIGTERM every lane is stopped.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
LOGS=${LANES_LOG_DIR:-build/lanes}
HEARTBEAT=${HEARTBEAT:-120}
TAIL_LINES=${TAIL_LINES:-150}
# LANES_FAIL_FAST=0 lets the other lanes finish after a failure (to learn their result in one run).
FAIL_FAST=${LANES_FAIL_FAST:-1}
mkdir -p "$LOGS"

declare -a NAMES=() PIDS=()
declare -A STARTED=() ENDED=() STATUS=()

usage() { sed -n '2,3p' "$0" >&2; exit 2; }
[ $# -gt 0 ] || usage

now() { date +%s; }
elapsed() { local s=$1; printf '%dm%02ds' $((s / 60)) $((s % 60)); }
# The last line that says something (molecule boxes its output and wraps long task names).
last_line() {
    tail -n 40 "$LOGS/$1.log" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | grep -a '[A-Za-z]' | tail -n 1 | cut -c1-160
}

stop_lanes() {
    local i
    for i in "${!PIDS[@]}"; do
        [ -n "${STATUS[${NAMES[$i]}]:-}" ] && continue
        kill -TERM -- "-${PIDS[$i]}" 2>/dev/null || true
    done
    # Give the lanes' clean-up (molecule destroy, qemu shutdown) a moment, then make sure.
    sleep 20
    for i in "${!PIDS[@]}"; do
        [ -n "${STATUS[${NAMES[$i]}]:-}" ] && continue
        kill -KILL -- "-${PIDS[$i]}" 2>/dev/null || true
    done
}
trap 'echo "lanes: interrupted, stopping every lane" >&2; stop_lanes; exit 130' INT TERM

for spec in "$@"; do
    name=${spec%%=*}
    command=${spec#*=}
    if [ -z "$name" ] || [ "$name" = "$spec" ]; then usage; fi
    NAMES+=("$name")
    # setsid: a process group of its own, so the lane can be stopped with everything it started.
    setsid bash -c "$command" </dev/null >"$LOGS/$name.log" 2>&1 &
    PIDS+=($!)
    STARTED[$name]=$(now)
    echo "lanes: started $name (pid $!): $command; output in $LOGS/$name.log"
done

failed=""
next_beat=$(( $(now) + HEARTBEAT ))
while :; do
    running=0
    for i in "${!PIDS[@]}"; do
        name=${NAMES[$i]}
        [ -n "${STATUS[$name]:-}" ] && continue
        if kill -0 "${PIDS[$i]}" 2>/dev/null; then
            running=$((running + 1))
            continue
        fi
        wait "${PIDS[$i]}"
        STATUS[$name]=$?
        ENDED[$name]=$(now)
        echo "lanes: $name ended with status ${STATUS[$name]} after $(elapsed $((ENDED[$name] - STARTED[$name])))"
        if [ "${STATUS[$name]}" != 0 ] && [ -z "$failed" ]; then
            failed=$name
        fi
    done
    if [ -n "$failed" ] && [ "$running" -gt 0 ] && [ "$FAIL_FAST" = 1 ]; then
        echo "lanes: $failed failed, stopping the other lanes"
        stop_lanes
        for i in "${!PIDS[@]}"; do
            name=${NAMES[$i]}
            [ -n "${STATUS[$name]:-}" ] && continue
            wait "${PIDS[$i]}" 2>/dev/null
            STATUS[$name]=stopped
            ENDED[$name]=$(now)
        done
        running=0
    fi
    [ "$running" -eq 0 ] && break
    if [ "$(now)" -ge "$next_beat" ]; then
        for name in "${NAMES[@]}"; do
            [ -n "${STATUS[$name]:-}" ] && continue
            echo "lanes: $name $(elapsed $(( $(now) - STARTED[$name] ))): $(last_line "$name")"
        done
        next_beat=$(( $(now) + HEARTBEAT ))
    fi
    sleep 5
done

rc=0
echo "lanes: summary"
for name in "${NAMES[@]}"; do
    echo "  $name: status ${STATUS[$name]}, $(elapsed $((ENDED[$name] - STARTED[$name]))), log $LOGS/$name.log"
    if [ "${STATUS[$name]}" != 0 ]; then
        rc=1
        if [ "${STATUS[$name]}" != stopped ]; then
            echo "----- last $TAIL_LINES lines of $name -----"
            tail -n "$TAIL_LINES" "$LOGS/$name.log"
            echo "----- end of $name -----"
        fi
    fi
done
exit $rc
