#!/usr/bin/env bash
# The no-op install's checks done by hand on one host (benchmark (c)): run inside the target through
# `podman exec HOST bash -s <host_checks.sh`. Exits non-zero and names the check when one fails.
# Input: /etc/hm-test-kernels (built=K, deferred=K; written by extensions/molecule/shared/prepare.yml).
set -u
version="${HM_DATTOBD_VERSION:-0.12.1}"
bad=0
fail() { echo "check failed: $*"; bad=1; }
# shellcheck disable=SC1091
. /etc/hm-test-kernels
built="${built:?}" deferred="${deferred:?}"
status="$(dkms status -m dattobd -v "$version" 2>&1)"
grep -q "^dattobd/$version, $built, [^:]*: installed" <<<"$status" || fail "dkms: not installed for $built"
[ -f "/usr/src/dattobd-$version/dkms.conf" ] || fail "dkms.conf of dattobd $version missing"
# No AUTOINSTALL line at all: DKMS autoinstalls on any value, "no" included (roles/dattobd stage.yml).
! grep -q '^AUTOINSTALL=' "/usr/src/dattobd-$version/dkms.conf" || fail "dkms.conf sets AUTOINSTALL"
for k in /lib/modules/*; do
    k="${k##*/}"
    if ls "/lib/modules/$k/updates/dkms/dattobd.ko"* >/dev/null 2>&1; then
        modinfo -k "$k" -F vermagic dattobd >/dev/null 2>&1 || fail "modinfo dattobd for $k"
        ko="$(find "/lib/modules/$k/updates/dkms" -name "dattobd.ko*" | head -1)"
        [ "/boot/initrd.img-$k" -nt "$ko" ] ||
            fail "initramfs of $k older than its module"
        lsinitramfs "/boot/initrd.img-$k" | grep -q '/dattobd\.ko' || fail "dattobd not in the initramfs of $k"
    elif [ "$k" = "$built" ]; then
        fail "no dattobd module for $k"
    fi
done
[ -f /etc/modules-load.d/dattobd.conf ] || fail "modules-load.d entry missing"
[ -x /usr/local/bin/dbdctl ] || fail "dbdctl missing"
/usr/local/bin/dbdctl --help >/dev/null 2>&1 || fail "dbdctl does not start (libdattobd.so.1)"
systemctl is-enabled --quiet hypermotion-dattobd-build.service || fail "boot-time build unit not enabled ($deferred)"
[ -x /etc/initramfs-tools/hooks/hypermotion-linux-agent ] || fail "initramfs hook missing"
dpkg-query -W -f='${db:Status-Abbrev}' egisplus-agent 2>/dev/null | grep -q '^ii' || fail "agent package not installed"
systemctl is-active --quiet egisplus-agent || fail "agent not active"
systemctl is-enabled --quiet egisplus-agent || fail "agent not enabled"
for f in bin/hypermotion-monitor etc/server.crt etc/server.key; do
    [ -s "/opt/hypermotion-monitor/$f" ] || fail "monitor file $f missing"
done
systemctl is-active --quiet hypermotion-monitor || fail "monitor not active"
systemctl is-enabled --quiet hypermotion-monitor || fail "monitor not enabled"
for p in dkms gcc make "linux-headers-$built" "linux-headers-$deferred"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || fail "package $p missing"
done
! ls /etc/apt/sources.list.d/hypermotion-linux-agent-* >/dev/null 2>&1 || fail "temporary apt source left behind"
exit "$bad"
