#!/usr/bin/env bash
# Boot throwaway Debian 12 VMs (real kernel, qemu) from the cached base image.
#
#   tests/testbed/vm/vm.sh start NAME        overlay + boot + wait for ssh; writes inventory
#   tests/testbed/vm/vm.sh stop NAME         kill qemu (pidfile), remove the overlay
#   tests/testbed/vm/vm.sh ssh NAME [--] CMD ssh root@guest
#   tests/testbed/vm/vm.sh status NAME       exit 0 when running (prints port and pid)
#   tests/testbed/vm/vm.sh wait NAME         wait until ssh answers (e.g. after a reboot)
#   tests/testbed/vm/vm.sh inventory NAME    print the Ansible inventory line
#   tests/testbed/vm/vm.sh dir NAME          print the instance folder
#
# The base is baked by build-base.sh (called by `start` when missing or stale).
# Environment:
#   HM_CACHE             cache root (default /var/cache/hypermotion-linux-agent)
#   HM_VM_RUN_DIR        parent of the per-instance folders (default $HM_CACHE/vm/instances)
#   HM_VM_ACCEL          tcg (default) | kvm | auto (auto = kvm only if a probe boot works)
#   HM_VM_CPU            qemu -cpu model (default max,-erms under TCG, host under KVM)
#   HM_VM_CPUS           vCPUs (default 2)
#   HM_VM_MEM_MB         memory (default 2048)
#   HM_VM_SSH_PORT       host port for guest 22 (default: a free port on 127.0.0.1)
#   HM_VM_BOOT_TIMEOUT   seconds to wait for ssh (default 300)
# Files in the instance folder: overlay.qcow2, qemu.pid, serial.log, port, inventory.ini
# (an INI inventory line), instance.json (address/user/port/identity_file), ssh_config.
set -euo pipefail

HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
CACHE=${HM_CACHE:-/var/cache/hypermotion-linux-agent}
VMDIR=$CACHE/vm
BASE=$VMDIR/bookworm-base.raw
KEY=$VMDIR/id_ed25519
RUN_DIR=${HM_VM_RUN_DIR:-$VMDIR/instances}
CPUS=${HM_VM_CPUS:-2}
MEM_MB=${HM_VM_MEM_MB:-2048}
BOOT_TIMEOUT=${HM_VM_BOOT_TIMEOUT:-300}

log() { printf '[vm %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

SSH_OPTS=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          -o LogLevel=ERROR -o IdentitiesOnly=yes -o ConnectTimeout=10
          -o ServerAliveInterval=15 -o ServerAliveCountMax=8)

instance() {
    NAME=$1
    [[ $NAME =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad instance name: $NAME"
    IDIR=$RUN_DIR/$NAME
    OVERLAY=$IDIR/overlay.qcow2
    PIDFILE=$IDIR/qemu.pid
    SERIAL=$IDIR/serial.log
}

# pid of this instance's qemu, if it runs (checked against its command line, not just the pid)
running_pid() {
    local pid
    [[ -f $PIDFILE ]] || return 1
    pid=$(tr -dc 0-9 <"$PIDFILE")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$OVERLAY" || return 1
    echo "$pid"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ssh_banner() {
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && head -c 4 <&3" 2>/dev/null | grep -q '^SSH-'
}

serial_tail() {
    log "last lines of $SERIAL:"
    tail -n "${1:-40}" "$SERIAL" >&2 2>/dev/null || true
}

# KVM only if it really runs a guest: boot the guest kernel without a root fs and expect its
# panic message on the serial port within 30 s (here /dev/kvm opens but guests hang).
kvm_works() {
    [[ -r /dev/kvm && -w /dev/kvm ]] || return 1
    local probe_log
    probe_log=$(mktemp)
    timeout 30 qemu-system-x86_64 -machine q35,accel=kvm -cpu host -m 256 -nodefaults \
        -display none -no-reboot -kernel "$VMDIR/bookworm-base.vmlinuz" \
        -append "console=ttyS0 panic=-1" -serial file:"$probe_log" >/dev/null 2>&1 || true
    if grep -q 'Kernel panic' "$probe_log"; then rm -f "$probe_log"; return 0; fi
    rm -f "$probe_log"
    return 1
}

resolve_accel() {
    case ${HM_VM_ACCEL:-tcg} in
        tcg) echo tcg ;;
        kvm) echo kvm ;;
        auto) if kvm_works; then echo kvm; else log "KVM probe failed; using TCG"; echo tcg; fi ;;
        *) die "HM_VM_ACCEL must be tcg, kvm or auto" ;;
    esac
}

write_connection_files() {
    local port=$1
    echo "$port" >"$IDIR/port"
    cat >"$IDIR/inventory.ini" <<EOF
$NAME ansible_host=127.0.0.1 ansible_port=$port ansible_user=root ansible_ssh_private_key_file=$KEY ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'
EOF
    cat >"$IDIR/instance.json" <<EOF
{"instance": "$NAME", "address": "127.0.0.1", "user": "root", "port": $port, "identity_file": "$KEY"}
EOF
    cat >"$IDIR/ssh_config" <<EOF
Host $NAME
  HostName 127.0.0.1
  Port $port
  User root
  IdentityFile $KEY
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
EOF
}

ssh_port() { [[ -f $IDIR/port ]] || die "$NAME is not running"; cat "$IDIR/port"; }

# wait_for_ssh PORT T0: until root can log in with the key, or BOOT_TIMEOUT after T0
wait_for_ssh() {
    local port=$1 t0=$2 deadline
    deadline=$((t0 + BOOT_TIMEOUT))
    # slirp accepts the host side of the forward at once; poll for sshd's banner (cheap,
    # 3 s per try) and only then log in with the key.
    until ssh_banner "$port" &&
          timeout 30 ssh "${SSH_OPTS[@]}" -i "$KEY" -p "$port" root@127.0.0.1 true 2>/dev/null; do
        if ! running_pid >/dev/null; then
            serial_tail 60
            die "$NAME: qemu exited during boot"
        fi
        if (($(date +%s) >= deadline)); then
            serial_tail 60
            die "$NAME: no ssh after ${BOOT_TIMEOUT} s (qemu still running; vm.sh stop $NAME)"
        fi
        sleep 1
    done
}

cmd_wait() {
    local t0
    t0=$(date +%s)
    running_pid >/dev/null || die "$NAME is not running"
    wait_for_ssh "$(ssh_port)" "$t0"
    log "$NAME: ssh up after $(($(date +%s) - t0)) s"
}

cmd_start() {
    local pid accel cpu port t0 t_boot
    if pid=$(running_pid); then
        log "$NAME already running (pid $pid, port $(cat "$IDIR/port"))"
        echo "$IDIR/inventory.ini"
        return 0
    fi
    "$HERE/build-base.sh"
    mkdir -p "$IDIR"
    rm -f "$OVERLAY" "$PIDFILE" "$IDIR/port" "$IDIR/inventory.ini" "$IDIR/instance.json"
    qemu-img create -q -f qcow2 -b "$BASE" -F raw "$OVERLAY"

    accel=$(resolve_accel)
    # Under TCG hide ERMS: the guest then clears/copies pages with rep stosq/movsq instead of
    # byte-wise rep stosb/movsb, which qemu 7.2 emulates one byte per iteration (measured:
    # page-touching 4x, /dev/zero reads 5x faster).
    cpu=${HM_VM_CPU:-max,-erms}
    [[ $accel == kvm ]] && cpu=${HM_VM_CPU:-host}
    t0=$(date +%s)
    for _ in 1 2 3 4 5; do
        port=${HM_VM_SSH_PORT:-$(free_port)}
        : >"$SERIAL"
        if qemu-system-x86_64 -name "$NAME" \
            -machine "q35,accel=$accel" -cpu "$cpu" -smp "$CPUS" -m "$MEM_MB" \
            -nodefaults -display none \
            -drive file="$OVERLAY",format=qcow2,if=virtio,cache=unsafe \
            -netdev user,id=n0,hostfwd=tcp:127.0.0.1:"$port"-:22 \
            -device virtio-net-pci,netdev=n0 \
            -device virtio-rng-pci \
            -serial file:"$SERIAL" -pidfile "$PIDFILE" -daemonize 2>"$IDIR/qemu.err"; then
            break
        fi
        if grep -q 'hostfwd\|host forwarding' "$IDIR/qemu.err" && [[ -z ${HM_VM_SSH_PORT:-} ]]; then
            log "port $port taken, retrying"
            continue
        fi
        cat "$IDIR/qemu.err" >&2
        die "qemu failed to start"
    done
    pid=$(running_pid) || { cat "$IDIR/qemu.err" >&2; die "qemu is not running"; }
    log "$NAME: qemu pid $pid, accel $accel, ssh on 127.0.0.1:$port; waiting for ssh"

    write_connection_files "$port"
    wait_for_ssh "$port" "$t0"
    t_boot=$(($(date +%s) - t0))
    log "$NAME: ssh up after $t_boot s ($(ssh "${SSH_OPTS[@]}" -i "$KEY" -p "$port" root@127.0.0.1 uname -r))"
    echo "$IDIR/inventory.ini"
}

cmd_stop() {
    local pid
    if pid=$(running_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            [[ -d /proc/$pid ]] || break
            sleep 0.2
        done
        if [[ -d /proc/$pid ]]; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
        log "$NAME: stopped qemu pid $pid"
    else
        log "$NAME: not running"
    fi
    # keep serial.log for post-mortems
    rm -f "$OVERLAY" "$PIDFILE" "$IDIR/port" "$IDIR/inventory.ini" "$IDIR/instance.json" \
        "$IDIR/ssh_config" "$IDIR/qemu.err"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        echo "$NAME running pid=$pid port=$(cat "$IDIR/port" 2>/dev/null || echo '?') dir=$IDIR"
        return 0
    fi
    echo "$NAME stopped"
    return 1
}

cmd_ssh() {
    local port
    port=$(ssh_port)
    [[ ${1:-} == -- ]] && shift
    exec ssh "${SSH_OPTS[@]}" -i "$KEY" -p "$port" root@127.0.0.1 "$@"
}

[[ $# -ge 2 ]] || usage
action=$1
instance "$2"
shift 2
case $action in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    wait) cmd_wait ;;
    ssh) cmd_ssh "$@" ;;
    inventory) cat "$IDIR/inventory.ini" ;;
    dir) echo "$IDIR" ;;
    *) usage ;;
esac
