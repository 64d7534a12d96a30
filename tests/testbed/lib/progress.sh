# shellcheck shell=bash
# Source me:  . tests/testbed/lib/progress.sh
#
#   hm_progress PROG WHAT LOG COMMAND [ARGS...]
#
# Runs COMMAND in the foreground with its stdout and stderr in LOG, and every HM_PROGRESS_INTERVAL seconds
# (default 25) prints to stderr
#   PROG: still WHAT (2m30s) -- <the last line of LOG>
# LOG "" leaves the output alone and shows no last line (a lock wait prints nothing); LOG "<FILE" leaves
# the output alone too and shows the last line of FILE, which COMMAND writes itself (qemu's serial log).
# Returns COMMAND's status. Nothing is printed when COMMAND ends before the first interval.
#
# Why: an image build (debootstrap, the DKMS image's apt run), the VM bake and the waits for their locks
# are silent for minutes, and a silent log reads as a hang (a CI job, or a newcomer's first `make deploy`).
# The command runs in the foreground, not in the background, so Ctrl-C and the caller's traps reach it as
# usual; the ticker is the background part and ends with the command or with the calling shell.
# Sourced into set -euo pipefail scripts: it defines this one function and changes no shell option.

hm_progress() {
    local prog="$1" what="$2" log="$3" watch="$3" rc=0 ticker parent="$BASHPID"
    shift 3
    case "$log" in "<"*) watch="${log#<}"; log="" ;; esac
    (
        local interval="${HM_PROGRESS_INTERVAL:-25}" start="$SECONDS" next last
        next=$((start + interval))
        # The caller's Ctrl-C and TERM end it too; it also ends on its own when the caller is gone.
        while kill -0 "$parent" 2>/dev/null; do
            sleep 1
            [ "$SECONDS" -ge "$next" ] || continue
            next=$((SECONDS + interval))
            last=""
            if [ -n "$watch" ] && [ -f "$watch" ]; then
                # The last line that says something; progress bars and colour codes are no use here.
                last="$(tail -c 4096 "$watch" 2>/dev/null | tr '\r' '\n' | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' |
                    grep -a '[[:alnum:]]' | tail -n 1 | cut -c1-120)" || true
            fi
            printf '%s: still %s (%dm%02ds)%s\n' "$prog" "$what" $(((SECONDS - start) / 60)) \
                $(((SECONDS - start) % 60)) "${last:+ -- $last}" >&2
        done
    ) &
    ticker=$!
    if [ -n "$log" ]; then
        "$@" >"$log" 2>&1 || rc=$?
    else
        "$@" || rc=$?
    fi
    kill "$ticker" 2>/dev/null || true
    wait "$ticker" 2>/dev/null || true
    return "$rc"
}
