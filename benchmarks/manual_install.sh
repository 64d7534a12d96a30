#!/usr/bin/env bash
# The vendor guide's install steps as a plain shell script, the way a vendor installer runs them
# (seed/dkms-build-guide: prebuilt probe, temporary sources, toolchain, source to /usr/src, dkms
# add/build/install, depmod, dbdctl, update-initramfs, agent package, monitor), plus the two small
# things the collection adds (the boot-time build unit for the deferred kernel, the initramfs hook).
# Run inside a target: `podman exec -e HM_CONSOLE_URL=... HOST bash -s <manual_install.sh`.
#   On a fresh prepared target it is the raw command sequence of the converge-overhead comparison.
#   Re-run on a converged target it is benchmark (d): what re-running the vendor installer costs.
#     dkms add of a registered version exits 3 ("already added"), tolerated as an installer would;
#     dkms >= 3.0 `build`/`install` of what is already built/installed print a notice and exit 0.
# Step timestamps go to stderr as "@step <epoch> <name>" lines (the benchmark's per-step breakdown).
# Input: HM_CONSOLE_URL, HM_CONSOLE_TOKEN, HM_CONSOLE_CA (path inside the target), HM_SHA256_<file>
# checksums (optional), /etc/hm-test-kernels (built=K, deferred=K; from the molecule prepare playbook).
set -euo pipefail
: "${HM_CONSOLE_URL:?}" "${HM_CONSOLE_TOKEN:?}" "${HM_CONSOLE_CA:?}"
version="${HM_DATTOBD_VERSION:-0.12.1}"
agent_deb=egisplus-agent_1.0.0_all.deb
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC1091
. /etc/hm-test-kernels
built="${built:?}" deferred="${deferred:?}"
work=/var/tmp/hm-manual
mkdir -p "$work"
src="/usr/src/dattobd-$version"
temp_source=/etc/apt/sources.list.d/hypermotion-linux-agent-backports.sources
step() { echo "@step $(date +%s.%N) $1" >&2; }

# GET a console URL path (relative to /hypermotion/v1/) to a file; exit 4 on HTTP 404.
fetch() { # path query dest
    python3 - "$HM_CONSOLE_URL/hypermotion/v1/$1" "$2" "$3" <<'PY'
import os, ssl, sys, urllib.error, urllib.parse, urllib.request
url, query, dest = sys.argv[1:4]
params = dict(urllib.parse.parse_qsl(query))
params["id"] = os.environ["HM_CONSOLE_TOKEN"]
ctx = ssl.create_default_context(cafile=os.environ["HM_CONSOLE_CA"])
try:
    with urllib.request.urlopen(url + "?" + urllib.parse.urlencode(params), context=ctx, timeout=60) as r:
        data = r.read()
except urllib.error.HTTPError as exc:
    sys.exit(4 if exc.code == 404 else 1)
with open(dest, "wb") as fh:
    fh.write(data)
PY
}
download() { # artifact dest: fetch and verify the checksum when one is given
    local var sum
    fetch sources/download "type=linux&name=$1" "$2"
    var="HM_SHA256_$(tr -c 'A-Za-z0-9\n' _ <<<"$1")"
    sum="${!var:-}"
    if [ -n "$sum" ]; then echo "$sum  $2" | sha256sum -c --quiet; fi
}

step probe
for k in "$built" "$deferred"; do
    rc=0; fetch "modules/$k/dattobd.ko" "" "$work/prebuilt.ko" || rc=$?
    [ "$rc" -eq 4 ] || { echo "unexpected prebuilt answer for $k (rc $rc)" >&2; exit 1; }
done

step source
download "dattobd-$version.tar.gz" "$work/dattobd.tar.gz"
rm -rf "$work/dattobd" && mkdir -p "$work/dattobd"
tar -xzf "$work/dattobd.tar.gz" --strip-components=1 -C "$work/dattobd"

step sources
cat >"$temp_source" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt-get update -qq

step toolchain
apt-get install -y -qq --no-install-recommends dkms gcc make libc6-dev \
    "linux-headers-$built" "linux-headers-$deferred" >/dev/null
rm -f "$temp_source"
apt-get update -qq

step register
mkdir -p "$src"
cp -a "$work/dattobd/src/." "$src/"
# Without an AUTOINSTALL line: DKMS autoinstalls on any value, "no" included (as roles/dattobd does).
sed -e "s/@MODULE_VERSION@/$version/" -e '/^AUTOINSTALL=/d' "$work/dattobd/dist/dattobd-dkms-conf" >"$src/dkms.conf"

step dkms
rc=0; dkms add -m dattobd -v "$version" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || exit "$rc"
dkms build -m dattobd -v "$version" -k "$built"
dkms install -m dattobd -v "$version" -k "$built"
depmod -a "$built"

step dbdctl
make -s -C "$work/dattobd" application
install -m 0644 "$work/dattobd/lib/libdattobd.so.1" /usr/local/lib/libdattobd.so.1
ln -sfn libdattobd.so.1 /usr/local/lib/libdattobd.so
ldconfig
install -m 0755 "$work/dattobd/app/dbdctl" /usr/local/bin/dbdctl
echo dattobd >/etc/modules-load.d/dattobd.conf

step boot-unit
cat >/usr/local/sbin/hypermotion-dattobd-build <<'UNITSH'
#!/bin/sh
k=$(uname -r)
modinfo -k "$k" -n dattobd >/dev/null 2>&1 && exit 0
[ -d "/lib/modules/$k/build/include" ] || exit 0
dkms build -m dattobd -v VERSION -k "$k" && dkms install -m dattobd -v VERSION -k "$k" && update-initramfs -u -k "$k"
UNITSH
sed -i "s/VERSION/$version/g" /usr/local/sbin/hypermotion-dattobd-build
chmod 0755 /usr/local/sbin/hypermotion-dattobd-build
cat >/etc/systemd/system/hypermotion-dattobd-build.service <<UNIT
[Unit]
Description=Build and load dattobd for the booting kernel
Before=egisplus-agent.service hypermotion-monitor.service
ConditionPathExists=$src/dkms.conf
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/hypermotion-dattobd-build
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable -q hypermotion-dattobd-build.service

step initramfs
cat >/etc/initramfs-tools/hooks/hypermotion-linux-agent <<'HOOK'
#!/bin/sh
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules dattobd
HOOK
chmod 0755 /etc/initramfs-tools/hooks/hypermotion-linux-agent
update-initramfs -u -k "$built"

step agent
download "$agent_deb" "$work/$agent_deb"
dpkg -i "$work/$agent_deb" >/dev/null
systemctl enable -q --now egisplus-agent

step monitor
mkdir -p /opt/hypermotion-monitor/bin /opt/hypermotion-monitor/etc /var/lib/hypermotion-monitor
chmod 0750 /opt/hypermotion-monitor/etc /var/lib/hypermotion-monitor
download hypermotion-monitor /opt/hypermotion-monitor/bin/hypermotion-monitor
download server.crt /opt/hypermotion-monitor/etc/server.crt
download server.key /opt/hypermotion-monitor/etc/server.key
chmod 0755 /opt/hypermotion-monitor/bin/hypermotion-monitor
chmod 0600 /opt/hypermotion-monitor/etc/server.key
cat >/etc/systemd/system/hypermotion-monitor.service <<'UNIT'
[Unit]
Description=HyperMotion monitor service agent
After=network-online.target
Wants=network-online.target
[Service]
Type=simple
ExecStart=/opt/hypermotion-monitor/bin/hypermotion-monitor --cert /opt/hypermotion-monitor/etc/server.crt --key /opt/hypermotion-monitor/etc/server.key --state-dir /var/lib/hypermotion-monitor
Restart=on-failure
RestartSec=5
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable -q hypermotion-monitor
systemctl restart hypermotion-monitor
systemctl is-active --quiet hypermotion-monitor

step finished
