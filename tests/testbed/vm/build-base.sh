#!/usr/bin/env bash
# Bake the cached Debian 12 (bookworm) base disk for VM test targets.
#
#   tests/testbed/vm/build-base.sh [--force]
#
# Result (read-only, outside the clone):
#   ${HM_CACHE:-/var/cache/hypermotion-linux-agent}/vm/bookworm-base.raw
#   .../vm/bookworm-base.raw.stamp   sha256 of this script; a changed script rebuilds
#   .../vm/bookworm-base.vmlinuz     copy of the guest kernel (used by vm.sh's KVM probe)
#   .../vm/id_ed25519{,.pub}         ssh key for root@guest (key login only)
#   .../vm/debootstrap-cache/        debootstrap --cache-dir (re-bakes do not download again)
#
# No loop devices, no mounts of the image on the host, no kernel modules on the host:
# debootstrap into a folder, `mkfs.ext4 -d` that folder into a partition of a raw disk whose
# MBR is written by Python, then one boot of the guest kernel under qemu (TCG) with a tiny
# init that runs grub-install + update-grub and powers off.
#
# Environment: HM_CACHE, HM_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# HM_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security),
# HM_VM_DISK_SIZE_MB (virtual disk size, default 8192; the raw file is sparse).
set -euo pipefail

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
CACHE=${HM_CACHE:-/var/cache/hypermotion-linux-agent}
VMDIR=$CACHE/vm
BASE=$VMDIR/bookworm-base.raw
STAMP=$BASE.stamp
KEY=$VMDIR/id_ed25519
MIRROR=${HM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SEC_MIRROR=${HM_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DISK_MB=${HM_VM_DISK_SIZE_MB:-8192}
GUEST_HOSTNAME=hm-bookworm
FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

log() { printf '[build-base %s] %s\n' "$(date +%T)" "$*" >&2; }
# shellcheck source=tests/testbed/lib/progress.sh
. "$(dirname "$SCRIPT_PATH")/../lib/progress.sh"
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap)"
for tool in debootstrap mkfs.ext4 qemu-system-x86_64 ssh-keygen python3 sha256sum flock; do
    command -v "$tool" >/dev/null || die "missing tool: $tool (tests/testbed/host-packages.sh ensure test installs it)"
done

HASH=$(sha256sum "$SCRIPT_PATH" | cut -d' ' -f1)
mkdir -p "$VMDIR"

is_current() { [[ -f $BASE && -f $STAMP && $(cat "$STAMP") == "$HASH" && -f $KEY ]]; }

exec 9>"$VMDIR/.build-base.lock"
# A concurrent bake finishes first; then we see its result.
flock -n 9 || hm_progress build-base.sh "waiting for another bake (lock $VMDIR/.build-base.lock)" "" flock 9
if [[ $FORCE == 0 ]] && is_current; then
    log "base image is current: $BASE (stamp ${HASH:0:12})"
    exit 0
fi

T0=$(date +%s)
phase_start=$T0
phase() { local now; now=$(date +%s); log "phase '$1' took $((now - phase_start)) s"; phase_start=$now; }

WORK=$(mktemp -d "$VMDIR/build.XXXXXX")
ROOTFS=$WORK/rootfs
IMG=$WORK/disk.raw

cleanup() {
    local rc=$?
    # Never rm -rf a tree with something (proc, sys, dev ...) mounted inside it.
    local m
    awk -v w="$WORK" 'index($2, w"/") == 1 {print $2}' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" || true; done
    if awk -v w="$WORK" 'index($2, w"/") == 1 {found=1} END {exit !found}' /proc/mounts; then
        log "something is still mounted under $WORK; not deleting it"
    else
        rm -rf "$WORK"
    fi
    [[ $rc == 0 ]] || log "bake FAILED (rc=$rc)"
}
trap cleanup EXIT

# --- ssh key (kept across re-bakes so existing inventories stay valid) -------------------
if [[ ! -f $KEY ]]; then
    ssh-keygen -q -t ed25519 -N '' -C hypermotion-testbed-vm -f "$KEY"
fi

# --- debootstrap -----------------------------------------------------------------------
mkdir -p "$VMDIR/debootstrap-cache"
INCLUDE=linux-image-amd64,initramfs-tools,grub-pc,systemd-sysv,udev,dbus,kmod
INCLUDE+=,openssh-server,python3,python3-apt,sudo,ca-certificates
INCLUDE+=,ifupdown,isc-dhcp-client,iproute2,procps,e2fsprogs,zstd
# The toolchain for the base kernel is baked in natively here: gcc, dkms and the base kernel's headers
# cost ~5 min of TCG (apt lists, unpacking, dkms's postinst) in every run, and the apt mechanics of the
# toolchain role are what the podman scenarios and the fault suite prove. Story 1 starts from a host
# with DKMS already there (common on real fleets); the headers of every newer kernel the stories meet
# are still installed in the guest by the collection (kernel_upgrade.yml, the unsafe order).
INCLUDE+=,gcc,make,libc6-dev,dkms,linux-headers-amd64
log "debootstrap bookworm (minbase + $INCLUDE)"
hm_progress build-base.sh "debootstrapping bookworm" "$WORK/debootstrap.log" \
    debootstrap --variant=minbase --include="$INCLUDE" --cache-dir="$VMDIR/debootstrap-cache" \
    bookworm "$ROOTFS" "$MIRROR" \
    || { tail -n 40 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
phase debootstrap

# --- configure the root filesystem -----------------------------------------------------
KVER=$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n1)
[[ -n $KVER && -f $ROOTFS/boot/initrd.img-$KVER ]] || die "no kernel/initrd in rootfs"
log "guest kernel: $KVER"

rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SEC_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

echo "$GUEST_HOSTNAME" >"$ROOTFS/etc/hostname"
cat >"$ROOTFS/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$GUEST_HOSTNAME
::1		localhost ip6-localhost ip6-loopback
EOF

cat >"$ROOTFS/etc/fstab" <<'EOF'
LABEL=root  /  ext4  errors=remount-ro  0  1
EOF

# DHCP on the (only) virtio NIC; net.ifnames=0 on the kernel command line names it eth0.
# allow-hotplug: boot does not wait for DHCP; sshd listens on all addresses anyway.
cat >"$ROOTFS/etc/network/interfaces" <<'EOF'
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp
EOF
rm -f "$ROOTFS/etc/resolv.conf"   # the host's; dhclient writes the guest's

# Initramfs for the test guests: only the modules this machine needs. With the default
# MODULES=most update-initramfs takes minutes under TCG (and the 36 MB initrd costs ~10 s of
# every boot). The guest's own update-initramfs runs use MODULES=dep. The base's initrd is
# rebuilt here natively (chroot, no mounts) with MODULES=list and the virtio/ext4 modules,
# because `dep` in a chroot would look at the host's disks.
rm -rf "$ROOTFS/tmp/itc"
cp -a "$ROOTFS/etc/initramfs-tools" "$ROOTFS/tmp/itc"
sed -i 's/^MODULES=.*/MODULES=list/' "$ROOTFS/tmp/itc/initramfs.conf"
printf '%s\n' virtio_pci virtio_blk virtio_scsi sd_mod ext4 crc32c_generic crc32c-intel \
    >>"$ROOTFS/tmp/itc/modules"
hm_progress build-base.sh "building the guest's initramfs" "$WORK/mkinitramfs.log" \
    chroot "$ROOTFS" mkinitramfs -d /tmp/itc -o "/boot/initrd.img-$KVER" "$KVER" \
    || { cat "$WORK/mkinitramfs.log" >&2; die "mkinitramfs failed"; }
rm -rf "$ROOTFS/tmp/itc"
echo 'MODULES=dep' >"$ROOTFS/etc/initramfs-tools/conf.d/hypermotion-testbed.conf"

# GRUB: serial console, 1 s menu, no "quiet" so the serial log shows the boot.
# norandmaps (no user-space ASLR): qemu 7.2's TCG keys translated code by virtual address, so
# with ASLR every exec re-translates ld.so and libc; without it fork+exec is ~4x faster
# (dpkg, apt, gcc, dkms are exec-heavy). Irrelevant to what the tests check.
sed -i \
    -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=1/' \
    -e 's/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT=""/' \
    -e 's/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX="console=ttyS0,115200 net.ifnames=0 norandmaps"/' \
    "$ROOTFS/etc/default/grub"
cat >>"$ROOTFS/etc/default/grub" <<'EOF'
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
EOF
grep -q '^GRUB_TIMEOUT=1$' "$ROOTFS/etc/default/grub" || die "GRUB_TIMEOUT not set"
grep -q '^GRUB_CMDLINE_LINUX="console=ttyS0' "$ROOTFS/etc/default/grub" || die "GRUB_CMDLINE_LINUX not set"
# grub-pc upgrades inside the guest must not ask where to install.
echo 'grub-pc grub-pc/install_devices multiselect /dev/vda' | chroot "$ROOTFS" debconf-set-selections

# root: key login only.
install -d -m 0700 "$ROOTFS/root/.ssh"
install -m 0600 "$KEY.pub" "$ROOTFS/root/.ssh/authorized_keys"
cat >"$ROOTFS/etc/ssh/sshd_config.d/hypermotion-testbed.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF

# No background apt runs that would hold the dpkg lock while a test installs packages, no
# e2scrub (24 s of every boot under TCG), no graphical.target.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service e2scrub_all.timer; do
    ln -sf /dev/null "$ROOTFS/etc/systemd/system/$unit"
done
ln -sf /lib/systemd/system/multi-user.target "$ROOTFS/etc/systemd/system/default.target"

# Each booted overlay gets its own machine-id (systemd generates one when the file is empty).
: >"$ROOTFS/etc/machine-id"
rm -f "$ROOTFS/var/lib/dbus/machine-id"

# The one-time init for the bake boot: install the boot loader and power off.
cat >"$ROOTFS/usr/local/sbin/hm-firstboot" <<'EOF'
#!/bin/sh
# PID 1 of the one-time bake boot (init=...). initramfs-tools has moved /proc /sys /dev /run.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs tmpfs /run
mount -o remount,rw /
rc=0
grub-install --target=i386-pc /dev/vda || rc=1
update-grub || rc=1
grep -q 'console=ttyS0' /boot/grub/grub.cfg || rc=1
rm -f /usr/local/sbin/hm-firstboot
sync
if [ "$rc" = 0 ]; then echo "HM-FIRSTBOOT-OK"; else echo "HM-FIRSTBOOT-FAILED"; fi
sync
echo u >/proc/sysrq-trigger   # emergency read-only remount: a clean filesystem in the base
sleep 2
echo o >/proc/sysrq-trigger   # power off
sleep 60
EOF
chmod 0755 "$ROOTFS/usr/local/sbin/hm-firstboot"

chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* \
    "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
cp "$ROOTFS/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$KVER" "$WORK/initrd.img"
phase configure

# --- raw disk: MBR (one bootable Linux partition from 1 MiB) + ext4 from the folder --------
python3 - "$IMG" "$DISK_MB" <<'EOF'
import os, struct, sys
path, size_mb = sys.argv[1], int(sys.argv[2])
total = size_mb * 1024 * 1024 // 512          # sectors
start = 2048                                    # 1 MiB gap for GRUB's core.img
with open(path, "wb") as f:
    f.truncate(total * 512)                     # sparse
    entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff",
                        start, total - start)
    mbr = bytearray(512)
    mbr[440:444] = os.urandom(4)                # disk signature
    mbr[446:462] = entry
    mbr[510:512] = b"\x55\xaa"
    f.seek(0)
    f.write(mbr)
EOF
mkfs.ext4 -q -F -L root -E offset=1048576 -d "$ROOTFS" "$IMG" "$(( (DISK_MB - 1) * 1024 ))k"
phase mkfs

# --- one boot: grub-install /dev/vda && update-grub, then power off ---------------------
log "bake boot (TCG): grub-install + update-grub"
# The guest's console goes to firstboot.log; its last line is what the progress line shows.
hm_progress build-base.sh "in the bake boot (TCG)" "<$WORK/firstboot.log" timeout 600 qemu-system-x86_64 \
    -machine q35,accel=tcg -cpu max,-erms -smp 2 -m 2048 -nodefaults -display none -no-reboot \
    -drive file="$IMG",format=raw,if=virtio,cache=writeback \
    -device virtio-rng-pci \
    -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
    -append "root=/dev/vda1 rw console=ttyS0,115200 norandmaps init=/usr/local/sbin/hm-firstboot panic=1" \
    -serial file:"$WORK/firstboot.log" \
    || { tail -n 40 "$WORK/firstboot.log" >&2; die "bake boot failed or timed out"; }
if ! grep -q HM-FIRSTBOOT-OK "$WORK/firstboot.log"; then
    tail -n 60 "$WORK/firstboot.log" >&2
    die "grub-install/update-grub failed in the bake boot"
fi
cp "$WORK/firstboot.log" "$VMDIR/bookworm-base.firstboot.log"
phase "bake boot"

# --- publish ---------------------------------------------------------------------------
chmod 0444 "$IMG"
rm -f "$STAMP"
mv -f "$IMG" "$BASE"
install -m 0444 "$WORK/vmlinuz" "$VMDIR/bookworm-base.vmlinuz"
echo "$KVER" >"$VMDIR/bookworm-base.kernel"
echo "$HASH" >"$STAMP"
log "baked $BASE (kernel $KVER, $(du -h --apparent-size "$BASE" | cut -f1) virtual," \
    "$(du -h "$BASE" | cut -f1) on disk) in $(( $(date +%s) - T0 )) s"
