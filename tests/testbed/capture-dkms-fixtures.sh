#!/usr/bin/env bash
# Re-capture the REAL DKMS outputs under tests/unit/fixtures/dkms/<debian12|debian13>/.
#
# Usage (as root): tests/testbed/capture-dkms-fixtures.sh [bookworm] [trixie]   (default: both)
#
# For each suite it takes localhost/hm-debian-dkms:<suite> (tests/testbed/images.sh
# ensure-dkms; Debian 12 = dkms 3.0.10, Debian 13 = dkms 3.2.x, two real Debian kernel
# ABIs "A" < "B" from /etc/hm-testbed/kernels) and runs each scenario below in a fresh,
# throwaway container (--network none, no systemd) against a throwaway hello-world module
# named dattobd (versions 0.12.1 and 0.12.2) generated in a temp dir under /tmp. Every
# case stores the exact stdout, stderr and exit code of one command:
#   <case>.stdout  <case>.stderr  <case>.rc
# plus cases.tsv (case, command with <A>/<B> for the ABIs, what it shows) and kernels
# (A and B, one a line). README.md is regenerated from the cases.tsv files; FINDINGS.md
# is written by hand and is not touched.
# Every command passes -k explicitly: inside a container `uname -r` is the HOST's kernel.
# Nothing is loaded: building and installing a module only writes files.
# Measured: 7-10 min for both suites (15 scenarios, 132 cases per suite) on this machine
# (2 cores, shared, load 4-7), images already cached; README only: --readme-only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
FIXTURES="$REPO/tests/unit/fixtures/dkms"
PROG="capture-dkms-fixtures.sh"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

if [ "${1:-}" = --readme-only ]; then
    READMEONLY=1
    shift
fi
[ "$(id -u)" -eq 0 ] || die "must run as root"
SUITES=("$@")
[ "${#SUITES[@]}" -gt 0 ] || SUITES=(bookworm trixie)

TMP="$(mktemp -d /tmp/hm-dkms-capture.XXXXXX)"
CTR=""
cleanup() {
    [ -z "$CTR" ] || podman rm -f -t 0 "$CTR" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# ------------------------------------------------------------------ module sources
# Shaped like dattobd's own dkms.conf (PRE_BUILD genconfig.sh, MAKE with M=...build,
# DEST_MODULE_LOCATION, NO_WEAK_MODULES, AUTOINSTALL); the PRE_BUILD step is trivial here
# because a container has no real System.map for the Debian kernels.
SRC="$TMP/src"
make_variant() { # name c-body genconfig-body [extra dkms.conf lines]
    local d="$SRC/$1"
    mkdir -p "$d"
    cat >"$d/dkms.conf" <<'EOF'
PACKAGE_NAME="dattobd"
PACKAGE_VERSION="@MODULE_VERSION@"
BUILT_MODULE_NAME[0]="dattobd"
DEST_MODULE_LOCATION[0]="/kernel/drivers/block/"
PRE_BUILD="genconfig.sh ${kernelver}"
MAKE[0]="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build KVER=${kernelver} modules"
CLEAN="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build KVER=${kernelver} clean"
NO_WEAK_MODULES="yes"
AUTOINSTALL="yes"
EOF
    [ -z "${4:-}" ] || printf '%s\n' "$4" >>"$d/dkms.conf"
    printf 'obj-m := dattobd.o\n' >"$d/Makefile"
    printf '%s\n' "$2" >"$d/dattobd.c"
    printf '#!/bin/sh\n%s\n' "$3" >"$d/genconfig.sh"
    chmod 0755 "$d/genconfig.sh"
}
GOOD_C='// SPDX-License-Identifier: GPL-2.0-only
/* Throwaway stand-in for dattobd: a hello-world module for DKMS fixture captures. */
#include <linux/module.h>
#include <linux/init.h>
#include "kernel-config.h"
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("hello-world stand-in for dattobd (test fixture)");
MODULE_VERSION(HM_MODULE_VERSION);
static int __init dattobd_init(void) { pr_info("dattobd stand-in loaded\n"); return 0; }
static void __exit dattobd_exit(void) { }
module_init(dattobd_init);
module_exit(dattobd_exit);'
BROKEN_C="$GOOD_C
/* deliberate compile error */
static int broken(void) { return undeclared_symbol_for_fixture; }"
# shellcheck disable=SC2016  # expanded by the PRE_BUILD script, not here
GOOD_GENCONFIG='# Trivial stand-in for dattobd genconfig.sh: no feature tests, no System.map look-ups.
echo "generating configurations for kernel-$1"
v="$(sed -n "s/^PACKAGE_VERSION=\"\(.*\)\"/\1/p" "$(dirname "$0")/dkms.conf")"
printf "#define HM_MODULE_VERSION \"%s\"\n" "$v" > "$(dirname "$0")/kernel-config.h"'
# shellcheck disable=SC2016
FAILING_GENCONFIG='# Like dattobd genconfig.sh on a non-running kernel with a stub map: exit 1, no header.
echo "generating configurations for kernel-$1"
echo "System.map file not found" >&2
exit 1'
make_variant good "$GOOD_C" "$GOOD_GENCONFIG"
make_variant broken "$BROKEN_C" "$GOOD_GENCONFIG"
make_variant prefail "$GOOD_C" "$FAILING_GENCONFIG"
make_variant exclusive "$GOOD_C" "$GOOD_GENCONFIG" 'BUILD_EXCLUSIVE_KERNEL="^4\.19\."'

# ------------------------------------------------------------------ in-container library
cat >"$SRC/lib.sh" <<'LIB'
# Sourced in the container. A < B are the image's two Debian kernel ABIs.
export LC_ALL=C LANGUAGE=C
A="$(sed -n 1p /etc/hm-testbed/kernels)"
B="$(sed -n 2p /etc/hm-testbed/kernels)"
M=dattobd

# cap CASE "what it shows" command...  -- exact stdout/stderr/rc into /out
cap() {
    local name="$1" what="$2" shown rc
    shift 2
    [ ! -e "/out/$name.rc" ] || { echo "duplicate case $name" >&2; exit 1; }
    "$@" >"/out/$name.stdout" 2>"/out/$name.stderr" && rc=0 || rc=$?
    echo "$rc" >"/out/$name.rc"
    shown="$(printf '%q ' "$@")"
    shown="${shown% }"
    shown="${shown//$A/<A>}"
    shown="${shown//$B/<B>}"
    printf '%s\t%s\t%s\n' "$name" "$shown" "$what" >>/out/cases.tsv
}
# setup step whose output is not a fixture; abort the scenario if it fails
must() {
    local out
    out="$("$@" 2>&1)" || { printf 'setup step failed: %s\n%s\n' "$*" "$out" >&2; exit 1; }
}
# src VARIANT VERSION: the variant's tree as /usr/src/dattobd-VERSION
src() {
    rm -rf "/usr/src/$M-$2"
    cp -a "/srv/hm-src/$1" "/usr/src/$M-$2"
    sed -i "s/@MODULE_VERSION@/$2/" "/usr/src/$M-$2/dkms.conf"
}
# listing of module files and the DKMS tree (no timestamps)
tree() {
    echo "# /lib/modules/*/updates"; find /lib/modules/"$A"/updates /lib/modules/"$B"/updates 2>/dev/null | sort
    echo "# /usr/src"; find /usr/src -maxdepth 1 -name "$M*" | sort
    echo "# /var/lib/dkms"
    find /var/lib/dkms/"$M" \( -type l -printf 'l %p -> %l\n' \) -o -printf '%y %p\n' 2>/dev/null | sort
}
ko_sum() { # md5 of the installed module for a kernel, or "absent"
    local f
    for f in /lib/modules/"$1"/updates/dkms/$M.ko*; do
        [ -e "$f" ] && { echo "$(md5sum <"$f" | cut -c1-32) $f"; return; }
    done
    echo "absent /lib/modules/$1/updates/dkms/$M.ko"
}
makelogs() { find /var/lib/dkms -name make.log | sort; }
LIB

# ------------------------------------------------------------------ scenarios
# Each runs in its own fresh container. Case names are unique across scenarios.
declare -A SCEN
SCEN[version]="$(cat <<'EOF'
cap version "dkms version string" dkms --version
cap kernels-hooks "Debian kernel hooks shipped by the dkms package" sh -c 'ls /etc/kernel/*.d/*dkms* 2>/dev/null | sort'
EOF
)"

SCEN[lifecycle]="$(cat <<'EOF'
cap status-none "nothing added: empty output" dkms status
cap status-none-mv "nothing added, filtered by module/version" dkms status -m $M -v 0.12.1
cap status-none-kA "nothing added, filtered by kernel" dkms status -k $A
cap add-missing-src "add before /usr/src/dattobd-0.12.1 exists" dkms add -m $M -v 0.12.1
src good 0.12.1
cap add "first add (symlink message)" dkms add -m $M -v 0.12.1
cap status-added "added, built for no kernel" dkms status
cap status-added-mv "added, -m -v" dkms status -m $M -v 0.12.1
cap status-added-kA "added, -k A" dkms status -k $A
cap add-again "second add: already added" dkms add -m $M -v 0.12.1
cap build-kA "build for A (PRE_BUILD output, rc)" dkms build -m $M -v 0.12.1 -k $A
cap status-built-one "built for A only" dkms status
cap status-built-one-mv "built for A only, -m -v" dkms status -m $M -v 0.12.1
cap status-built-one-kA "built for A only, -k A" dkms status -k $A
cap status-built-one-kB "built for A only, -k B (not built for B)" dkms status -k $B
cap makelogs-after-build "where make.log is after a successful build" sh -c 'find /var/lib/dkms -name make.log | sort'
cap build-again-kA "build of an already built module: skip" dkms build -m $M -v 0.12.1 -k $A
cap build-force-kA "build --force of an already built module: rebuild" dkms build -m $M -v 0.12.1 -k $A --force
cap build-no-headers "build for a kernel without headers" dkms build -m $M -v 0.12.1 -k 6.0.0-99-amd64
cap install-kA "install for A (built)" dkms install -m $M -v 0.12.1 -k $A
cap status-installed-one "installed for A only" dkms status
cap status-installed-one-mv "installed for A only, -m -v" dkms status -m $M -v 0.12.1
cap status-installed-one-kA "installed for A only, -k A" dkms status -k $A
cap status-installed-one-kB "installed for A only, -k B" dkms status -k $B
cap install-again-kA "install of an already installed module" dkms install -m $M -v 0.12.1 -k $A
cap build-force-installed-kA "build --force of a module INSTALLED on A (FAQ repair step 1)" dkms build -m $M -v 0.12.1 -k $A --force
cap status-after-build-force-installed "is it still installed on A after build --force?" dkms status
cap ko-after-build-force-installed "module file on A after build --force" ko_sum $A
cap install-force-kA "install --force of an installed module (FAQ repair step 2)" dkms install -m $M -v 0.12.1 -k $A --force
cap status-after-install-force "after install --force" dkms status
cap install-kB "install for B without a prior build (builds first)" dkms install -m $M -v 0.12.1 -k $B
cap status-installed-both "installed for A and B" dkms status
cap status-installed-both-mv "installed for A and B, -m -v" dkms status -m $M -v 0.12.1
cap status-installed-both-m "installed for A and B, -m only" dkms status -m $M
cap status-installed-both-slash "installed for A and B, positional m/v" dkms status $M/0.12.1
cap status-installed-both-kA "installed for A and B, -k A" dkms status -k $A
cap status-installed-both-kB "installed for A and B, -k B" dkms status -k $B
cap tree-installed-both "files: installed modules and DKMS tree" tree
cap modinfo-kA "modinfo -k A finds the installed module (depmod ran)" modinfo -k $A -F filename $M
cap uninstall-kB "uninstall from B" dkms uninstall -m $M -v 0.12.1 -k $B
cap status-after-uninstall-kB "A installed, B back to built" dkms status
cap autoinstall-kB "autoinstall for B (what the kernel hooks run)" dkms autoinstall -k $B
cap status-after-autoinstall-kB "after autoinstall for B" dkms status
cap autoinstall-again-kB "autoinstall when already installed" dkms autoinstall -k $B
cap remove-all "remove --all" dkms remove -m $M -v 0.12.1 --all
cap status-after-remove "after remove --all" dkms status
cap tree-after-remove "files after remove --all (/usr/src kept?)" tree
cap remove-all-again "remove --all when not added" dkms remove -m $M -v 0.12.1 --all
EOF
)"

SCEN[twoversions]="$(cat <<'EOF'
src good 0.12.1
src good 0.12.2
must dkms add -m $M -v 0.12.1
must dkms install -m $M -v 0.12.1 -k $A
must dkms add -m $M -v 0.12.2
must dkms install -m $M -v 0.12.2 -k $B
cap two-status "0.12.1 installed on A, 0.12.2 installed on B" dkms status
cap two-status-m "same, -m" dkms status -m $M
cap two-status-mv1 "same, -m -v 0.12.1" dkms status -m $M -v 0.12.1
cap two-status-mv2 "same, -m -v 0.12.2" dkms status -m $M -v 0.12.2
cap two-status-kA "same, -k A" dkms status -k $A
cap two-status-kB "same, -k B" dkms status -k $B
cap two-ko-kA "module file on A before the swap" ko_sum $A
cap two-install-v2-kA "install 0.12.2 on A while 0.12.1 is installed there" dkms install -m $M -v 0.12.2 -k $A
cap two-status-after-swap "after installing 0.12.2 on A" dkms status
cap two-modinfo-kA "version of the module file on A after the swap" modinfo -k $A -F version $M
cap two-tree-after-swap "files after the swap" tree
EOF
)"

SCEN[broken]="$(cat <<'EOF'
src good 0.12.1
must dkms add -m $M -v 0.12.1
must dkms install -m $M -v 0.12.1 -k $A
rm -rf /usr/src/$M-0.12.1
cap broken-status "installed on A, then /usr/src/dattobd-0.12.1 deleted" dkms status
cap broken-status-mv "same, -m -v" dkms status -m $M -v 0.12.1
cap broken-status-kA "same, -k A" dkms status -k $A
cap broken-build-kB "build for B with the source gone" dkms build -m $M -v 0.12.1 -k $B
cap broken-install-kB "install for B with the source gone" dkms install -m $M -v 0.12.1 -k $B
cap broken-add "add with the source gone" dkms add -m $M -v 0.12.1
cap broken-remove-all "remove --all with the source gone" dkms remove -m $M -v 0.12.1 --all
cap broken-status-after-remove "after remove --all" dkms status
cap broken-tree-after-remove "files after remove --all" tree
EOF
)"

SCEN[brokenadded]="$(cat <<'EOF'
src good 0.12.1
must dkms add -m $M -v 0.12.1
rm -rf /usr/src/$M-0.12.1
cap broken-added-status "added only, then source deleted" dkms status
cap broken-added-status-kA "same, -k A" dkms status -k $A
EOF
)"

SCEN[noconf]="$(cat <<'EOF'
src good 0.12.1
must dkms add -m $M -v 0.12.1
must dkms install -m $M -v 0.12.1 -k $A
rm -f /usr/src/$M-0.12.1/dkms.conf
cap noconf-status "installed on A, then dkms.conf deleted" dkms status
cap noconf-status-mv "same, -m -v" dkms status -m $M -v 0.12.1
cap noconf-status-kA "same, -k A" dkms status -k $A
cap noconf-build-kB "build for B without dkms.conf" dkms build -m $M -v 0.12.1 -k $B
cap noconf-remove-all "remove --all without dkms.conf" dkms remove -m $M -v 0.12.1 --all
cap noconf-status-after-remove "after remove --all" dkms status
cap noconf-tree-after-remove "files after remove --all" tree
EOF
)"

SCEN[buildfail]="$(cat <<'EOF'
src broken 0.12.1
must dkms add -m $M -v 0.12.1
cap fail-build-kA "build with a compile error" dkms build -m $M -v 0.12.1 -k $A
cap fail-makelogs "where make.log is after the failed build" makelogs
f="$(makelogs | head -n1)"; [ -z "$f" ] || cp "$f" /out/fail-build-kA.make.log
cap fail-status "after the failed build" dkms status
cap fail-status-kA "after the failed build, -k A" dkms status -k $A
cap fail-build-again-kA "build again (failure not remembered?)" dkms build -m $M -v 0.12.1 -k $A
cap fail-install-kA "install of a module that fails to build" dkms install -m $M -v 0.12.1 -k $A
cap fail-autoinstall-kA "autoinstall of a module that fails to build" dkms autoinstall -k $A
cap fail-tree "files after the failures" tree
EOF
)"

SCEN[forcefail]="$(cat <<'EOF'
src good 0.12.1
must dkms add -m $M -v 0.12.1
must dkms install -m $M -v 0.12.1 -k $A
cap forcefail-ko-before "installed module before" ko_sum $A
cp /srv/hm-src/broken/dattobd.c /usr/src/$M-0.12.1/dattobd.c
cap forcefail-build-force-kA "build --force fails on an installed module" dkms build -m $M -v 0.12.1 -k $A --force
cap forcefail-ko-after-build "installed module after the failed build --force" ko_sum $A
cap forcefail-status-after-build "status after the failed build --force" dkms status
cap forcefail-status-after-build-kA "same, -k A" dkms status -k $A
cap forcefail-makelogs-after-build "make.log paths after the failed build --force" makelogs
f="$(makelogs | grep /build/make.log | head -n1)"; [ -z "$f" ] || cp "$f" /out/forcefail-build-force-kA.make.log
cap forcefail-tree-after-build "files after the failed build --force" tree
cap forcefail-install-force-kA "install --force with the compile error" dkms install -m $M -v 0.12.1 -k $A --force
cap forcefail-ko-after-install "installed module after the failed install --force" ko_sum $A
cap forcefail-status-after-install "status after the failed install --force" dkms status
cap forcefail-tree-after-install "files after the failed install --force" tree
cp /srv/hm-src/good/dattobd.c /usr/src/$M-0.12.1/dattobd.c
cap forcefail-fixed-install-kA "source fixed, then plain install for A" dkms install -m $M -v 0.12.1 -k $A
cap forcefail-fixed-status "status after it" dkms status
cap forcefail-fixed-install-force-kA "then install --force for A" dkms install -m $M -v 0.12.1 -k $A --force
cap forcefail-fixed-status-after-force "status after it" dkms status
cap forcefail-fixed-ko "module file on A at the end" ko_sum $A
EOF
)"

SCEN[exclusive]="$(cat <<'EOF'
src exclusive 0.12.1
cap excl-add "add a module whose BUILD_EXCLUSIVE_KERNEL excludes A and B" dkms add -m $M -v 0.12.1
cap excl-build-kA "build for an excluded kernel" dkms build -m $M -v 0.12.1 -k $A
cap excl-install-kA "install for an excluded kernel" dkms install -m $M -v 0.12.1 -k $A
cap excl-autoinstall-kA "autoinstall for an excluded kernel" dkms autoinstall -k $A
cap excl-status "status of the excluded module" dkms status
cap excl-status-kA "same, -k A" dkms status -k $A
EOF
)"

SCEN[prefail]="$(cat <<'EOF'
src prefail 0.12.1
must dkms add -m $M -v 0.12.1
cap prefail-build-kA "PRE_BUILD exits 1 without writing kernel-config.h" dkms build -m $M -v 0.12.1 -k $A
cap prefail-makelogs "make.log paths after it" makelogs
f="$(makelogs | head -n1)"; [ -z "$f" ] || cp "$f" /out/prefail-build-kA.make.log
cap prefail-status "status after it" dkms status
EOF
)"

SCEN[adddir]="$(cat <<'EOF'
mkdir -p /opt/other
cp -a /srv/hm-src/good /opt/other/dattobd-src
sed -i "s/@MODULE_VERSION@/0.12.1/" /opt/other/dattobd-src/dkms.conf
cap adddir-add "dkms add DIR (a tree outside /usr/src)" dkms add /opt/other/dattobd-src
cap adddir-tree "is the tree copied to /usr/src/dattobd-0.12.1?" sh -c 'ls -la /usr/src | grep dattobd; readlink /var/lib/dkms/dattobd/0.12.1/source; diff -r /opt/other/dattobd-src /usr/src/dattobd-0.12.1 && echo identical'
cap adddir-status "status after dkms add DIR" dkms status
cap adddir-add-again "dkms add DIR again" dkms add /opt/other/dattobd-src
cap adddir-build-kA "build after dkms add DIR" dkms build -m $M -v 0.12.1 -k $A
EOF
)"

SCEN[addusrsrc]="$(cat <<'EOF'
src good 0.12.1
cap addsrc-add "dkms add /usr/src/dattobd-0.12.1 (the vendor installer's layout)" dkms add /usr/src/$M-0.12.1
cap addsrc-status "status after it" dkms status
cp -a /srv/hm-src/good /opt/changed
sed -i "s/@MODULE_VERSION@/0.12.1/" /opt/changed/dkms.conf
echo '/* changed */' >>/opt/changed/dattobd.c
cap addsrc-add-other-dir "dkms add of another DIR with the same name/version" dkms add /opt/changed
cap addsrc-tree "is /usr/src/dattobd-0.12.1 overwritten by the second DIR?" sh -c 'tail -n1 /usr/src/dattobd-0.12.1/dattobd.c'
EOF
)"

SCEN[recover]="$(cat <<'EOF'
src good 0.12.1
must dkms add -m $M -v 0.12.1
must dkms install -m $M -v 0.12.1 -k $A
rm -rf /usr/src/$M-0.12.1
src good 0.12.1
cap recover-restored-status "broken, then the same source re-extracted to /usr/src/dattobd-0.12.1" dkms status
cap recover-restored-remove-all "remove --all once the source is back" dkms remove -m $M -v 0.12.1 --all
cap recover-restored-status-after "after it" dkms status
cap recover-restored-tree "files after it" tree
EOF
)"

SCEN[manualclean]="$(cat <<'EOF'
src good 0.12.1
must dkms add -m $M -v 0.12.1
must dkms install -m $M -v 0.12.1 -k $A
rm -rf /usr/src/$M-0.12.1
rm -rf /var/lib/dkms/$M/0.12.1
cap manual-status "broken, then /var/lib/dkms/dattobd/0.12.1 deleted by hand" dkms status
cap manual-tree "what is left (kernel-* symlink, installed module)" tree
src good 0.12.1
cap manual-add "add again after the manual clean-up" dkms add -m $M -v 0.12.1
cap manual-install-kA "install for A after the manual clean-up" dkms install -m $M -v 0.12.1 -k $A
cap manual-status-after "status after it" dkms status
EOF
)"

SCEN[suffixes]="$(cat <<'EOF'
src good 0.12.1
must dkms add -m $M -v 0.12.1
must dkms install -m $M -v 0.12.1 -k $A
rm -f /lib/modules/$A/updates/dkms/$M.ko*
cap suffix-installed-deleted "installed module file deleted behind DKMS's back" dkms status
must dkms install -m $M -v 0.12.1 -k $A --force
for f in /lib/modules/$A/updates/dkms/$M.ko*; do printf 'x' >>"$f"; done
cap suffix-installed-changed "installed module file differs from the built one" dkms status
must dkms install -m $M -v 0.12.1 -k $A --force
rm -f /var/lib/dkms/$M/0.12.1/$A/*/module/$M.ko*
cap suffix-built-deleted "built module in the DKMS tree deleted" dkms status
EOF
)"

SCENARIOS=(version lifecycle twoversions broken brokenadded noconf buildfail forcefail exclusive prefail adddir addusrsrc recover manualclean suffixes)

# ------------------------------------------------------------------ run
# README.md: one line per case, from the cases.tsv files.
write_readme() {
python3 - "$FIXTURES" <<'PY'
import csv, os, shlex, sys
root = sys.argv[1]
rels = [r for r in ("debian12", "debian13") if os.path.exists(os.path.join(root, r, "cases.tsv"))]
cases, rcs, kernels, versions = {}, {}, {}, {}
for rel in rels:
    d = os.path.join(root, rel)
    kernels[rel] = open(os.path.join(d, "kernels")).read().split()
    versions[rel] = open(os.path.join(d, "version.stdout")).read().strip()
    with open(os.path.join(d, "cases.tsv")) as f:
        for name, cmd, what in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            cases.setdefault(name, (cmd, what))
            rcs[(rel, name)] = open(os.path.join(d, name + ".rc")).read().strip()
out = ["# Real DKMS outputs (captured, not written by hand)", "",
       "Captured by `tests/testbed/capture-dkms-fixtures.sh` in throwaway podman containers of",
       "`localhost/hm-debian-dkms:<suite>` (`tests/testbed/images.sh ensure-dkms`), with a hello-world",
       "stand-in module named `dattobd` (versions 0.12.1, 0.12.2) whose dkms.conf is shaped like",
       "dattobd's (trivial `PRE_BUILD=genconfig.sh`). Each case is `<release>/<case>.stdout`,",
       "`.stderr`, `.rc` (exact bytes, `LC_ALL=C`); `<release>/cases.tsv` is the machine-readable index;",
       "`<release>/kernels` holds the two Debian ABIs, called `<A>` (older) and `<B>` below;",
       "`*.make.log` files are copies of DKMS's make.log. `legacy-2.x/` is NOT captured: it quotes",
       "REFERENCE.md. Surprises and exact messages: `FINDINGS.md`.",
       "`tree`, `ko_sum` and `makelogs` in the command column are helpers of the capture script",
       "(listings of /lib/modules/*/updates, /usr/src and /var/lib/dkms; md5 of the installed module;",
       "make.log paths), not DKMS commands. Re-capture: `tests/testbed/capture-dkms-fixtures.sh`;",
       "regenerate this file only: `tests/testbed/capture-dkms-fixtures.sh --readme-only`.",
       "A re-capture changes some bytes by nature: DKMS progress dots (`modules....`), dates (make.log",
       "headers, `ls -la`), and the md5 of installed modules (each throwaway container signs with a",
       "freshly generated MOK key). Tests should match those outputs by pattern.", ""]
for rel in rels:
    out.append(f"- `{rel}`: {versions[rel]}; A = `{kernels[rel][0]}`, B = `{kernels[rel][1]}`")
out += ["", "Each release column gives the exit code and the telling part of the output: for `dkms status`",
        "all stdout lines (joined by ⏎) and any `Error!` line from stderr; otherwise the first `Error!`/",
        "`Warning:` line of stderr, else the last stdout line (cut at 110 characters).", "",
        "| case | command | situation | " + " | ".join(rels) + " |",
        "|---|---|---|" + "---|" * len(rels)]


def gist(rel, name, cmd):
    d = os.path.join(root, rel)
    if not os.path.exists(os.path.join(d, name + ".rc")):
        return "-"
    def lines(ext):
        with open(os.path.join(d, f"{name}.{ext}"), errors="replace") as f:
            return [l.strip() for l in f.read().splitlines() if l.strip()]
    out_l, err_l = lines("stdout"), lines("stderr")
    errs = [l for l in err_l if l.startswith(("Error!", "Warning:"))]
    if cmd.startswith("dkms status"):
        parts = out_l or ["(empty)"]
        text = " ⏎ ".join(parts) + (f"; stderr: {errs[0]}" if errs else "")
    elif errs:
        text = "stderr: " + errs[0]
    elif out_l:
        text = out_l[-1]
    else:
        text = "(no output)"
    a, b = kernels[rel]
    text = text.replace(a, "<A>").replace(b, "<B>")
    if len(text) > 110:
        text = text[:107] + "..."
    text = text.replace("`", "'")
    return ("rc %s: `%s`" % (rcs[(rel, name)], text)).replace("|", "\\|")


for name, (cmd, what) in cases.items():
    shown = shlex.join(shlex.split(cmd)).replace("'<A>'", "<A>").replace("'<B>'", "<B>").replace("|", "\\|")
    out.append(f"| `{name}` | `{shown}` | {what} | " + " | ".join(gist(r, name, cmd) for r in rels) + " |")
open(os.path.join(root, "README.md"), "w").write("\n".join(out) + "\n")
PY
}

capture_suite() { # suite rel
    local suite="$1" rel="$2" image out scen t0
    image="$("$HERE/images.sh" ensure-dkms "$suite")" || die "images.sh ensure-dkms $suite failed"
    out="$TMP/out/$rel"
    mkdir -p "$out"
    podman run --rm "$image" cat /etc/hm-testbed/kernels >"$out/kernels"
    for scen in "${SCENARIOS[@]}"; do
        t0="$(date +%s)"
        CTR="hm-capture-$rel-$scen-$$"
        podman run -d --name "$CTR" --network none \
            -v "$SRC:/srv/hm-src:ro" -v "$out:/out" "$image" sleep infinity >/dev/null ||
            die "cannot start a container from $image"
        if ! podman exec "$CTR" bash -c ". /srv/hm-src/lib.sh; ${SCEN[$scen]}"; then
            die "scenario $scen failed on $rel (output above)"
        fi
        podman rm -f -t 0 "$CTR" >/dev/null
        CTR=""
        log "$rel: $scen done in $(($(date +%s) - t0)) s"
    done
    rm -rf "${FIXTURES:?}/$rel"
    mkdir -p "$FIXTURES"
    cp -r "$out" "$FIXTURES/$rel"
    log "$rel: $(wc -l <"$out/cases.tsv") cases written to $FIXTURES/$rel"
}

if [ "${READMEONLY:-0}" = 1 ]; then
    write_readme
    log "README.md regenerated"
    exit 0
fi
# shellcheck disable=SC1091  # podman-env.sh is shellchecked on its own
. "$HERE/podman-env.sh"
T0="$(date +%s)"
for suite in "${SUITES[@]}"; do
    case "$suite" in
        bookworm) capture_suite bookworm debian12 ;;
        trixie) capture_suite trixie debian13 ;;
        *) die "unknown suite '$suite' (bookworm or trixie)" ;;
    esac
done

write_readme
log "done in $(($(date +%s) - T0)) s; README.md regenerated; FINDINGS.md is hand-written"
