#!/usr/bin/env bash
# Cached Debian test images for podman, built locally (no registry is reachable):
# debootstrap + `podman import`, kept in ${HM_CACHE:-/var/cache/hypermotion-linux-agent}
# (outside the clone) so a second run reuses them.
#
# Usage (as root):
#   tests/testbed/images.sh ensure bookworm|trixie       -> prints localhost/hm-debian:<suite>
#   tests/testbed/images.sh ensure-dkms bookworm|trixie  -> prints localhost/hm-debian-dkms:<suite>
#   tests/testbed/images.sh list                         -> images in the cache, with labels
#   tests/testbed/images.sh prune                        -> removes the cache's images
# stdout carries only the image name; progress and errors go to stderr, so
#   img="$(tests/testbed/images.sh ensure-dkms bookworm)"   is the intended use.
# The long steps (debootstrap, the DKMS image's apt run, a wait for another images.sh's lock) print a
# progress line with their last log line every 25 s (tests/testbed/lib/progress.sh); their full logs are
# shown when they fail.
#
# Measured build times (this machine: Debian 12, 2 cores, shared with other jobs, load 4-9;
# deb.debian.org; the spread is the machine's load). Cache hit (image present and current):
# ensure 0.3-0.8 s, ensure-dkms 0.9 s (plus any wait for the lock held by another images.sh).
#   ensure bookworm       106-235 s (debootstrap 95-210 s, import + systemd boot check ~13-25 s)
#   ensure trixie         106-218 s (debootstrap 94-191 s)
#   ensure-dkms bookworm  base + 187-282 s (apt: dkms, build-essential, zstd, 2x linux-image +
#                         headers, 2x update-initramfs with MODULES=list; commit; boot check); 1.55 GB
#   ensure-dkms trixie    base + 159-372 s; 1.0 GB
#   all four from scratch: ~15-19 min.
# A --cache-dir warm debootstrap was not measurably faster: unpacking dominates.
#
# An image is rebuilt when it is missing, when this script's code changed (the sha256 of
# its non-comment lines is stored in the label org.hypermotion.testbed.script-sha256, so
# fixes propagate; editing comments does not rebuild; the base images' hash leaves out the
# "DKMS image" section, so editing that rebuilds only hm-debian-dkms), when its base image was rebuilt
# (derived images), or when it is older than HM_IMAGE_MAX_AGE_DAYS (default 30; 0 = never
# expire). HM_REBUILD=1 forces a rebuild. HM_DEBIAN_MIRROR sets debootstrap's mirror; the
# images' apt sources always name deb.debian.org.
#
# Image contents (hm-debian): debootstrap minbase + python3 ca-certificates kmod sudo
# systemd systemd-sysv dbus; deb822 apt sources for <suite>, <suite>-updates,
# <suite>-security; apt lists left EMPTY on purpose (they would go stale: run
# `apt-get update` first); units that fail in containers masked; a machine-id;
# /etc/hm-testbed/image describes the build. CMD is /sbin/init, so
#   podman run -d --systemd=always --network none IMG /sbin/init
# boots systemd to "running". Do not boot systemd with the default host network (sshd
# would bind the host's port 22).
# hm-debian-dkms adds dkms, build-essential, zstd and linux-image + linux-headers for two
# real Debian kernel ABIs picked at build time with apt-cache (bookworm: the two newest
# 6.1.0-N-amd64 with both packages installable; trixie: the two newest 6.12.N+deb13-amd64,
# else the newest 6.12 plus the newest trixie-backports kernel), systemd boot-checked too, listed in /etc/hm-testbed/kernels (oldest first)
# and in the label org.hypermotion.testbed.kernels. initramfs-tools gets MODULES=list, not
# MODULES=dep: dep fails in a container (see the DKMS image section). dkms status is empty.
# Inside a container `uname -r` is the HOST's kernel: always pass the Debian ABI explicitly.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
PROG="images.sh"
# shellcheck source=tests/testbed/lib/progress.sh
. "$HERE/lib/progress.sh"

BASE_REPO="localhost/hm-debian"
DKMS_REPO="localhost/hm-debian-dkms"
LABEL_NS="org.hypermotion.testbed"
ARCHIVE="http://deb.debian.org/debian"
SECURITY="http://deb.debian.org/debian-security"
MIRROR="${HM_DEBIAN_MIRROR:-$ARCHIVE}"
BASE_PACKAGES="python3,ca-certificates,kmod,sudo,systemd,systemd-sysv,dbus"
MAX_AGE_DAYS="${HM_IMAGE_MAX_AGE_DAYS:-30}"

# Units that fail or make no sense in a container; masked so systemd reaches "running".
# systemd-modules-load is masked also because nothing in a test container may try to load a
# kernel module (podman drops CAP_SYS_MODULE, but a chroot of the same tree would not).
# apt-daily*: a background `apt-get update` would race the tests' own apt runs.
MASKED_UNITS=(
    systemd-remount-fs.service
    systemd-modules-load.service
    kmod-static-nodes.service
    systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service
    systemd-udevd-control.socket systemd-udevd-kernel.socket
    systemd-hwdb-update.service
    systemd-firstboot.service
    systemd-sysusers.service
    systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount
    systemd-journald-audit.socket
    systemd-pcrphase.service systemd-pcrphase-sysinit.service systemd-pcrphase-initrd.service
    systemd-tpm2-setup.service systemd-tpm2-setup-early.service
    dev-hugepages.mount dev-mqueue.mount
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount
    sys-fs-fuse-connections.mount
    tmp.mount
    getty.target console-getty.service getty@tty1.service serial-getty@.service
    e2scrub_all.timer e2scrub_reap.service fstrim.timer
    apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service
)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

usage() {
    awk '/^# Usage/ {on = 1} on && /^#$/ {exit} on' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

check_suite() {
    case "${1:-}" in
        bookworm|trixie) ;;
        "") die "missing suite (bookworm or trixie)" ;;
        *) die "unsupported suite '$1' (bookworm or trixie)" ;;
    esac
}

need_root_and_tools() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (rootful podman, debootstrap)"
    local t missing=()
    for t in podman runc debootstrap tar sha256sum flock; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [ "${#missing[@]}" -eq 0 ] ||
        die "missing tools: ${missing[*]} (tests/testbed/host-packages.sh ensure deploy installs them)"
}

# sha256 of this script's code, ignoring comment-only and blank lines. "base" leaves out the
# DKMS image section, so a change there rebuilds only the derived images.
script_hash() { # all|base
    awk -v part="$1" '
        /^# -+ DKMS image/ { skip = (part == "base") }
        /^# -+ commands/   { skip = 0 }
        !skip' "$SELF" |
        grep -v -E '^[[:space:]]*(#|$)' | sha256sum | cut -c1-16
}

label() { # image label -> value ("" when absent)
    podman image inspect --format "{{index .Labels \"$LABEL_NS.$2\"}}" "$1" 2>/dev/null |
        sed 's/^<no value>$//'
}

image_id() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# Why the image must be (re)built, or "" when it is current. $3: expected base image id.
stale_reason() {
    local image="$1" hash="$2" base_id="${3:-}" built now
    [ -n "$(image_id "$image")" ] || { echo "missing"; return; }
    [ "${HM_REBUILD:-0}" = 1 ] && { echo "HM_REBUILD=1"; return; }
    [ "$(label "$image" script-sha256)" = "$hash" ] || { echo "images.sh changed"; return; }
    if [ -n "$base_id" ] && [ "$(label "$image" base-id)" != "$base_id" ]; then
        echo "base image was rebuilt"; return
    fi
    built="$(label "$image" built-epoch)"
    now="$(date +%s)"
    if [ "$MAX_AGE_DAYS" -gt 0 ] && { [ -z "$built" ] || [ $((now - built)) -gt $((MAX_AGE_DAYS * 86400)) ]; }; then
        echo "older than $MAX_AGE_DAYS days"; return
    fi
    echo ""
}

write_stamp() { # image kind suite
    local image="$1" f="$HM_CACHE/images/$2-$3.stamp"
    {
        echo "image=$image"
        echo "id=$(image_id "$image")"
        echo "built=$(label "$image" built)"
        echo "script-sha256=$(label "$image" script-sha256)"
        [ "$2" = dkms ] && echo "kernels=$(label "$image" kernels)"
        true
    } >"$f"
}

# ---------------------------------------------------------------- base image
WORK=""
BUILD_CONTAINER=""
cleanup() {
    local m
    if [ -n "$BUILD_CONTAINER" ]; then
        podman rm -f -t 0 "$BUILD_CONTAINER" >/dev/null 2>&1 || true
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        # debootstrap mounts /proc, /sys, ... inside the rootfs; never rm -rf through them.
        awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done
        if awk -v w="$WORK/" 'index($2, w) == 1 {found=1} END {exit !found}' /proc/mounts; then
            log "warning: mounts left under $WORK, not removing it"
        else
            rm -rf --one-file-system "$WORK"
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

write_sources() { # rootfs suite
    local root="$1" suite="$2"
    rm -f "$root/etc/apt/sources.list"
    mkdir -p "$root/etc/apt/sources.list.d"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $ARCHIVE
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

build_base() { # suite image hash
    local suite="$1" image="$2" hash="$3" root t0 now unit
    t0="$(date +%s)"
    mkdir -p "$HM_CACHE/images-work" "$HM_CACHE/debootstrap/$suite"
    WORK="$(mktemp -d "$HM_CACHE/images-work/$suite.XXXXXX")"
    root="$WORK/rootfs"

    log "debootstrap $suite (minbase + $BASE_PACKAGES) from $MIRROR ..."
    if ! hm_progress "$PROG" "debootstrapping $suite" "$WORK/debootstrap.log" \
        debootstrap --variant=minbase --include="$BASE_PACKAGES" \
        --cache-dir="$HM_CACHE/debootstrap/$suite" "$suite" "$root" "$MIRROR"; then
        tail -n 30 "$WORK/debootstrap.log" >&2
        [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
        die "debootstrap $suite failed (log above)"
    fi
    log "debootstrap done in $(($(date +%s) - t0)) s"

    write_sources "$root" "$suite"
    # Leave the lists empty: baked lists go stale as the archive moves.
    rm -rf "$root/var/lib/apt/lists" "$root/var/cache/apt"/*.bin
    mkdir -p "$root/var/lib/apt/lists/partial"
    find "$root/var/cache/apt/archives" -name '*.deb' -delete

    for unit in "${MASKED_UNITS[@]}"; do
        ln -sfn /dev/null "$root/etc/systemd/system/$unit"
    done
    # A machine-id of its own (dbus and journald need one); random per build.
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
    echo >>"$root/etc/machine-id"
    mkdir -p "$root/var/lib/dbus"
    ln -sfn /etc/machine-id "$root/var/lib/dbus/machine-id"
    echo "hm-debian-$suite" >"$root/etc/hostname"
    : >"$root/etc/resolv.conf"   # podman provides it; do not bake the host's

    now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    mkdir -p "$root/etc/hm-testbed"
    {
        echo "image=$image"
        echo "suite=$suite"
        echo "built=$now"
        echo "script-sha256=$hash"
    } >"$root/etc/hm-testbed/image"

    log "importing $image ..."
    # --numeric-owner: the host's user database must not remap the rootfs owners.
    tar -C "$root" --numeric-owner --xattrs --xattrs-include='security.capability' -cf - . |
        podman import -q \
            --change 'CMD ["/sbin/init"]' \
            --change "LABEL $LABEL_NS.suite=$suite" \
            --change "LABEL $LABEL_NS.built=$now" \
            --change "LABEL $LABEL_NS.built-epoch=$(date +%s)" \
            --change "LABEL $LABEL_NS.script-sha256=$hash" \
            - "$image" >/dev/null ||
        die "podman import of $image failed"
    cleanup
    WORK=""

    boot_check "$image"
    log "built $image in $(($(date +%s) - t0)) s"
}

# systemd must boot to "running" (no failed units) in the image.
boot_check() {
    local image="$1" c state
    c="hm-bootcheck-$$"
    BUILD_CONTAINER="$c"
    podman run -d --name "$c" --systemd=always --network none "$image" /sbin/init >/dev/null ||
        die "cannot start $image with systemd"
    # Wait for systemd's private socket first: is-system-running --wait needs it.
    for _ in $(seq 1 60); do
        podman exec "$c" test -S /run/systemd/private 2>/dev/null && break
        sleep 0.5
    done
    state="$(podman exec "$c" timeout 90 systemctl is-system-running --wait 2>&1 || true)"
    if [ "$state" != running ]; then
        podman exec "$c" systemctl --failed --no-legend >&2 || true
        podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
        BUILD_CONTAINER=""
        if [ "${HM_KEEP_FAILED:-0}" = 1 ]; then
            die "systemd in $image reached '$state', not 'running' (failed units above); image kept (HM_KEEP_FAILED=1)"
        fi
        podman rmi -f "$image" >/dev/null 2>&1 || true
        die "systemd in $image reached '$state', not 'running' (failed units above); image removed (HM_KEEP_FAILED=1 keeps it)"
    fi
    podman rm -f -t 0 "$c" >/dev/null
    BUILD_CONTAINER=""
    log "boot check: systemd reached 'running' in $image"
}

# ---------------------------------------------------------------- DKMS image
INITRAMFS_MODULES="${HM_INITRAMFS_MODULES:-list}"

# Runs inside the build container (bash -euo pipefail); writes the ABIs to /etc/hm-testbed/kernels.
# shellcheck disable=SC2016  # expanded inside the container
DKMS_SETUP='
export DEBIAN_FRONTEND=noninteractive
suite="$1"
modules="$2"
mkdir -p /etc/initramfs-tools/conf.d /etc/hm-testbed
# The default MODULES=most makes update-initramfs slow. MODULES=dep (right for VMs, see
# TESTBED.md) cannot work in a container: mkinitramfs finds no block device behind the
# overlay root ("mkinitramfs: failed to determine device for /") and fails the kernel
# postinst. MODULES=list (only /etc/initramfs-tools/modules and what hooks add, e.g. a
# dattobd hook) works and is the fastest. HM_INITRAMFS_MODULES overrides.
printf "# hm-testbed: see tests/testbed/images.sh\nMODULES=%s\n" "$modules" >/etc/initramfs-tools/conf.d/hm-testbed-modules
apt-get update -qq

usable() { # abi: image and headers both installable
    apt-cache show "linux-image-$1" >/dev/null 2>&1 &&
    apt-cache show "linux-headers-$1" >/dev/null 2>&1 &&
    apt-get install -s -qq --no-install-recommends "linux-image-$1" "linux-headers-$1" >/dev/null 2>&1
}
candidates() { # regex over header package names -> ABIs, newest first
    apt-cache search --names-only "$1" | awk "{print \$1}" | sed "s/^linux-headers-//" | sort -V -r
}
pick() { # n regex...
    local n="$1" re abi; shift
    for re in "$@"; do
        for abi in $(candidates "$re"); do
            [ "$(wc -w <<<"$chosen")" -lt "$n" ] || return 0
            case " $chosen " in *" $abi "*) continue ;; esac
            if usable "$abi"; then chosen="$chosen $abi"; fi
        done
    done
}
chosen=""
case "$suite" in
    bookworm)
        pick 2 "^linux-headers-6\.1\.0-[0-9]+-amd64\$" ;;
    trixie)
        pick 1 "^linux-headers-6\.12\.[0-9]+\+deb13-amd64\$"
        [ -n "$chosen" ] || { echo "no usable trixie 6.12 ABI" >&2; exit 1; }
        pick 2 "^linux-headers-6\.12\.[0-9]+\+deb13-amd64\$"
        if [ "$(wc -w <<<"$chosen")" -lt 2 ]; then
            # Only one 6.12 ABI in trixie(-security): take the newest backports kernel.
            cat >>/etc/apt/sources.list.d/debian.sources <<EOF

Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
            apt-get update -qq
            pick 2 "^linux-headers-[0-9.]+\+(bpo|deb13)-amd64\$"
        fi ;;
esac
set -- $chosen
[ "$#" -eq 2 ] || { echo "found only [$chosen] usable kernel ABIs for $suite, need 2" >&2; exit 1; }
printf "%s\n" "$@" | sort -V >/etc/hm-testbed/kernels
echo "kernels: $(tr "\n" " " </etc/hm-testbed/kernels)" >&2
pkgs="dkms build-essential zstd"
for abi in "$@"; do pkgs="$pkgs linux-image-$abi linux-headers-$abi"; done
# Kernel images/headers are pinned by name on purpose; dkms is installed first in the
# same transaction, with no module registered, so its kernel hooks build nothing.
apt-get install -y -q --no-install-recommends $pkgs >/var/log/hm-testbed-apt.log 2>&1 || {
    tail -n 40 /var/log/hm-testbed-apt.log >&2; exit 1; }
dkms --version >&2
[ -z "$(dkms status 2>/dev/null)" ] || { echo "dkms status is not empty after install" >&2; exit 1; }
for abi in "$@"; do
    [ -e "/lib/modules/$abi/build/include" ] || { echo "headers for $abi not usable" >&2; exit 1; }
done
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
mkdir -p /var/lib/apt/lists/partial
'

build_dkms() { # suite image hash base_image base_id
    local suite="$1" image="$2" hash="$3" base="$4" base_id="$5" t0 c kernels now dkmsv
    t0="$(date +%s)"
    c="hm-build-dkms-$suite-$$"
    BUILD_CONTAINER="$c"
    log "building $image from $base (apt: dkms, build-essential, 2 kernels) ..."
    podman run -d --name "$c" --network host "$base" sleep infinity >/dev/null ||
        die "cannot start a build container from $base"
    mkdir -p "$HM_CACHE/images"
    if ! hm_progress "$PROG" "installing dkms and two kernels into $image" "$HM_CACHE/images/dkms-$suite.log" \
        podman exec "$c" bash -euo pipefail -c "$DKMS_SETUP" setup "$suite" "$INITRAMFS_MODULES"; then
        tail -n 40 "$HM_CACHE/images/dkms-$suite.log" >&2
        die "setting up $image failed (log above, all of it in $HM_CACHE/images/dkms-$suite.log)"
    fi
    grep -a '^kernels: ' "$HM_CACHE/images/dkms-$suite.log" | sed "s/^/$PROG: /" >&2 || true
    kernels="$(podman exec "$c" cat /etc/hm-testbed/kernels | paste -sd, -)"
    [ -n "$kernels" ] || die "no kernels recorded for $image"
    dkmsv="$(podman exec "$c" dkms --version 2>/dev/null | sed 's/^dkms[-: ]*//')"
    podman stop -t 0 "$c" >/dev/null 2>&1 || true
    now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    log "committing $image ..."
    podman commit -q \
        --change 'CMD ["/sbin/init"]' \
        --change "LABEL $LABEL_NS.suite=$suite" \
        --change "LABEL $LABEL_NS.built=$now" \
        --change "LABEL $LABEL_NS.built-epoch=$(date +%s)" \
        --change "LABEL $LABEL_NS.script-sha256=$hash" \
        --change "LABEL $LABEL_NS.base-id=$base_id" \
        --change "LABEL $LABEL_NS.kernels=$kernels" \
        --change "LABEL $LABEL_NS.dkms-version=$dkmsv" \
        --change "LABEL $LABEL_NS.initramfs-modules=$INITRAMFS_MODULES" \
        "$c" "$image" >/dev/null ||
        die "podman commit of $image failed"
    podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
    BUILD_CONTAINER=""
    boot_check "$image"
    log "built $image (kernels: $kernels; dkms $dkmsv) in $(($(date +%s) - t0)) s"
}

# ---------------------------------------------------------------- commands
lock() {
    mkdir -p "$HM_CACHE/images"
    exec 9>"$HM_CACHE/images/.lock"
    if ! flock -n 9; then
        log "waiting for another images.sh to finish (lock $HM_CACHE/images/.lock) ..."
        hm_progress "$PROG" "waiting for another images.sh (lock $HM_CACHE/images/.lock)" "" flock -w 3600 9 ||
            die "timed out waiting for the lock"
    fi
}

ensure_base() { # suite -> image name on stdout
    local suite="$1" image="$BASE_REPO:$1" hash reason
    hash="$(script_hash base)"
    reason="$(stale_reason "$image" "$hash")"
    if [ -n "$reason" ]; then
        log "building $image ($reason)"
        build_base "$suite" "$image" "$hash"
        write_stamp "$image" base "$suite"
        podman image prune -f >/dev/null 2>&1 || true   # the replaced, now untagged image
    fi
    echo "$image"
}

ensure_dkms() {
    local suite="$1" image="$DKMS_REPO:$1" base hash base_id reason
    base="$(ensure_base "$suite")"
    hash="$(script_hash all)-$INITRAMFS_MODULES"
    base_id="$(image_id "$base")"
    reason="$(stale_reason "$image" "$hash" "$base_id")"
    if [ -n "$reason" ]; then
        log "building $image ($reason)"
        build_dkms "$suite" "$image" "$hash" "$base" "$base_id"
        write_stamp "$image" dkms "$suite"
        podman image prune -f >/dev/null 2>&1 || true
    fi
    echo "$image"
}

cmd_list() {
    podman images --filter "reference=$BASE_REPO" --filter "reference=$DKMS_REPO" \
        --format '{{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}  built {{index .Labels "'"$LABEL_NS"'.built"}}  kernels {{index .Labels "'"$LABEL_NS"'.kernels"}}'
}

cmd_prune() {
    local ids
    ids="$(podman images -q --filter "reference=$BASE_REPO" --filter "reference=$DKMS_REPO" | sort -u)"
    podman ps -a -q --filter "ancestor=$BASE_REPO" --filter "ancestor=$DKMS_REPO" |
        xargs -r podman rm -f -t 0 >/dev/null
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086
        podman rmi -f $ids >/dev/null
    fi
    podman image prune -f >/dev/null
    rm -f "$HM_CACHE"/images/*.stamp
    rm -rf "$HM_CACHE/images-work"
    log "pruned images from $HM_CACHE (the debootstrap package cache is kept; rm -rf $HM_CACHE/debootstrap to drop it)"
}

main() {
    [ "$#" -ge 1 ] || usage
    need_root_and_tools
    # shellcheck disable=SC1091  # podman-env.sh is shellchecked on its own
    . "$HERE/podman-env.sh" || die "podman-env.sh failed"
    case "$1" in
        ensure) check_suite "${2:-}"; lock; ensure_base "$2" ;;
        ensure-dkms) check_suite "${2:-}"; lock; ensure_dkms "$2" ;;
        list) cmd_list ;;
        prune) lock; cmd_prune ;;
        -h|--help|help) usage ;;
        *) log "unknown command '$1'"; usage ;;
    esac
}

main "$@"
