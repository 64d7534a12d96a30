#!/usr/bin/env bash
# build-artifacts.sh OUTDIR VERSION [options]
#
# Fills OUTDIR, the local console's --root, with:
#   dattobd-<dattobd-version>.tar.gz   fixture source (tests/fixtures/make-dattobd-tarball.sh)
#   egisplus-agent_<VERSION>_all.deb   real Debian package of the agent stand-in
#   hypermotion-monitor                monitor service agent stand-in (sh script)
#   server.crt, server.key             the monitor's certificate and key (from the PKI)
#   SHA256SUMS                         sha256sum of every file above
#   prebuilt/<kernel>/dattobd.ko       only with --prebuilt
# Options:
#   --pki DIR                 PKI made by make-pki.sh (default: OUTDIR.pki next to
#                             OUTDIR, made when missing; never inside OUTDIR)
#   --dattobd-version V       default: tests/fixtures/dattobd/VERSION
#   --dattobd-variant OPT     a make-dattobd-tarball.sh option, e.g. --broken-compile
#                             (repeatable)
#   --prebuilt KERNEL=FILE    copy FILE to OUTDIR/prebuilt/KERNEL/dattobd.ko (repeatable)
# Reproducible apart from the PKI: fixed mtimes ($SOURCE_DATE_EPOCH, default
# 2024-01-01), root-owned package members.
set -euo pipefail
export LC_ALL=C

usage() {
	sed -n '2,2p' "$0" | sed 's/^# /usage: /' >&2
	exit 2
}
[ $# -ge 2 ] || usage
out=$1
version=$2
shift 2

here=$(cd "$(dirname "$0")" && pwd)
fixtures=$here/../fixtures
pki=
dattobd_version=$(cat "$fixtures/dattobd/VERSION")
variants=()
prebuilt=()
while [ $# -gt 0 ]; do
	case "$1" in
	--pki) [ $# -ge 2 ] || usage; pki=$2; shift 2 ;;
	--dattobd-version) [ $# -ge 2 ] || usage; dattobd_version=$2; shift 2 ;;
	--dattobd-variant) [ $# -ge 2 ] || usage; variants+=("$2"); shift 2 ;;
	--prebuilt) [ $# -ge 2 ] || usage; prebuilt+=("$2"); shift 2 ;;
	*) echo "build-artifacts.sh: unknown option '$1'" >&2; usage ;;
	esac
done
if ! [[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]]; then
	echo "build-artifacts.sh: '$version' is not a Debian version" >&2
	exit 2
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}

mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -z "$pki" ]; then
	pki=$out.pki
fi
"$here/make-pki.sh" "$pki" >/dev/null
pki=$(cd "$pki" && pwd)
case "$pki/" in
"$out"/*) echo "build-artifacts.sh: the PKI (with the CA key) must not be inside $out" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Drop what an earlier run left (maybe for another version); keep anything else.
rm -f "$out"/dattobd-*.tar.gz "$out"/egisplus-agent_*_all.deb "$out/hypermotion-monitor" \
	"$out/server.crt" "$out/server.key" "$out/SHA256SUMS"

# ------------------------------------------------------------ dattobd source
"$fixtures/make-dattobd-tarball.sh" "$dattobd_version" "$work/tarball" ${variants[@]+"${variants[@]}"} >/dev/null
cp "$work/tarball/dattobd-$dattobd_version.tar.gz" "$out/"

# ------------------------------------------------------------ agent package
pkg=$work/pkg
install -d -m 0755 "$pkg/DEBIAN" "$pkg/opt/egisplus-agent/bin" "$pkg/lib/systemd/system" \
	"$pkg/etc/default" "$pkg/usr/share/doc/egisplus-agent"
sed "s/@VERSION@/$version/g" "$here/pkg/egisplus-agent" >"$pkg/opt/egisplus-agent/bin/egisplus-agent"
chmod 0755 "$pkg/opt/egisplus-agent/bin/egisplus-agent"
install -m 0644 "$here/pkg/egisplus-agent.service" "$pkg/lib/systemd/system/egisplus-agent.service"
install -m 0644 "$here/pkg/egisplus-agent.default" "$pkg/etc/default/egisplus-agent"
for script in postinst prerm postrm; do
	install -m 0755 "$here/pkg/$script" "$pkg/DEBIAN/$script"
done
echo /etc/default/egisplus-agent >"$pkg/DEBIAN/conffiles"
chmod 0644 "$pkg/DEBIAN/conffiles"
cat >"$pkg/usr/share/doc/egisplus-agent/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: egisplus-agent (test stand-in)
Comment: Built by tests/console/build-artifacts.sh of the hypermotion.linux_agent
 collection for its tests. Not the vendor's agent.

Files: *
Copyright: 2024 HyperMotion Linux Agent engineers
License: GPL-3.0-or-later
 On Debian systems the full text is in /usr/share/common-licenses/GPL-3.
EOF
# The vendor's agent lives in /opt; systemctl is only the fallback where
# deb-systemd-helper/-invoke are missing (non-Debian dpkg hosts).
install -d -m 0755 "$pkg/usr/share/lintian/overrides"
printf '%s\n' 'egisplus-agent: dir-or-file-in-opt [opt/*]' \
	'egisplus-agent: maintainer-script-calls-systemctl [*]' \
	>"$pkg/usr/share/lintian/overrides/egisplus-agent"
chmod 0644 "$pkg/usr/share/lintian/overrides/egisplus-agent"
changelog_date=$(date -u -d "@$SOURCE_DATE_EPOCH" -R)
printf 'egisplus-agent (%s) unstable; urgency=medium\n\n  * Test stand-in built by build-artifacts.sh.\n\n -- HyperMotion Linux Agent engineers <agent-tests@example.invalid>  %s\n' \
	"$version" "$changelog_date" | gzip -9n >"$pkg/usr/share/doc/egisplus-agent/changelog.gz"
chmod 0644 "$pkg/usr/share/doc/egisplus-agent/"*

installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: egisplus-agent
Version: $version
Architecture: all
Maintainer: HyperMotion Linux Agent engineers <agent-tests@example.invalid>
Installed-Size: $installed_size
Section: admin
Priority: optional
Description: HyperMotion Linux backup/DR agent (test stand-in)
 A small daemon that rewrites a heartbeat file under /var/lib/egisplus-agent
 until stopped, run by the systemd unit egisplus-agent.service. Built for
 the hypermotion.linux_agent collection's tests; it backs nothing up.
EOF
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
	>"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/md5sums"
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb=$out/egisplus-agent_${version}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null

# ------------------------------------------------------------ monitor
sed "s/@VERSION@/$version/g" "$here/pkg/hypermotion-monitor" >"$out/hypermotion-monitor"
chmod 0755 "$out/hypermotion-monitor"
install -m 0644 "$pki/server.crt" "$out/server.crt"
install -m 0600 "$pki/server.key" "$out/server.key"

# ------------------------------------------------------------ prebuilt modules
for spec in ${prebuilt[@]+"${prebuilt[@]}"}; do
	kernel=${spec%%=*}
	file=${spec#*=}
	if [ "$kernel" = "$spec" ] || ! [[ $kernel =~ ^[A-Za-z0-9][A-Za-z0-9._+~-]*$ ]]; then
		echo "build-artifacts.sh: --prebuilt wants KERNEL=FILE, got '$spec'" >&2
		exit 2
	fi
	install -D -m 0644 "$file" "$out/prebuilt/$kernel/dattobd.ko"
done

# ------------------------------------------------------------ checksums
(cd "$out" && find . -maxdepth 1 -type f ! -name SHA256SUMS ! -name '.*' -printf '%P\n' |
	sort | xargs sha256sum) >"$work/SHA256SUMS"
install -m 0644 "$work/SHA256SUMS" "$out/SHA256SUMS"

echo "build-artifacts.sh: filled $out (PKI in $pki)"
cat "$out/SHA256SUMS"
