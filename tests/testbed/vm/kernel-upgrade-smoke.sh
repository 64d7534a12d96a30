#!/usr/bin/env bash
# Throwaway check that a VM guest can install a newer bookworm kernel ABI and boot into it
# (what a kernel-upgrade scenario will do). Not part of any molecule scenario.
#
#   tests/testbed/vm/kernel-upgrade-smoke.sh [NAME]     (default NAME: kernel-upgrade-smoke)
#
# Boots NAME, picks the newest linux-image-6.1.0-N-amd64 newer than the running ABI from the
# guest's apt-cache (never a hard-coded ABI), installs it, reboots, checks `uname -r`, and
# stops the VM. Prints timings.
set -euo pipefail

HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
VM=$HERE/vm.sh
NAME=${1:-kernel-upgrade-smoke}

log() { printf '[kernel-upgrade %s] %s\n' "$(date +%T)" "$*" >&2; }
on_guest() { "$VM" ssh "$NAME" -- "$@"; }

trap '"$VM" stop "$NAME"' EXIT

t=$(date +%s)
"$VM" start "$NAME" >/dev/null
log "boot to ssh: $(($(date +%s) - t)) s"

old=$(on_guest uname -r)
t=$(date +%s)
on_guest apt-get update -qq
# shellcheck disable=SC2016  # expanded on the guest
new=$(on_guest 'apt-cache search --names-only "^linux-image-6\.1\.0-[0-9]+-amd64\$" \
                | cut -d" " -f1 | sed "s/^linux-image-//" | sort -V | tail -n1')
log "running $old, newest available $new (apt-get update $(($(date +%s) - t)) s)"
if [[ -z $new || $new == "$old" ]] || [[ $(printf '%s\n%s\n' "$old" "$new" | sort -V | tail -n1) != "$new" ]]; then
    log "no newer 6.1.0-N ABI than $old in the guest's apt sources"
    exit 1
fi

t=$(date +%s)
on_guest DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "linux-image-$new" >/dev/null
log "apt-get install linux-image-$new: $(($(date +%s) - t)) s"
on_guest grep -q "vmlinuz-$new" /boot/grub/grub.cfg

boot_id=$(on_guest cat /proc/sys/kernel/random/boot_id)
t=$(date +%s)
on_guest systemctl reboot || true
# until sshd of the *new* boot answers
for _ in $(seq 1 120); do
    sleep 5
    cur=$(timeout 30 "$VM" ssh "$NAME" -- cat /proc/sys/kernel/random/boot_id 2>/dev/null) || continue
    [[ $cur != "$boot_id" ]] && break
done
[[ ${cur:-} && $cur != "$boot_id" ]] || { log "guest did not come back"; exit 1; }
log "reboot to ssh: $(($(date +%s) - t)) s"

running=$(on_guest uname -r)
if [[ $running != "$new" ]]; then
    log "FAILED: running $running after the reboot, expected $new"
    exit 1
fi
log "OK: $old -> $running"
