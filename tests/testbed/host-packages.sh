#!/usr/bin/env bash
# The Debian packages this project needs on the machine that runs it: the one list, used by the Makefile
# (each target ensures its profile first), by .ci/run and by people.
#
#   tests/testbed/host-packages.sh check  [PROFILE]   exit 0 when all are installed, else name the missing
#   tests/testbed/host-packages.sh ensure [PROFILE]   install the missing ones (as root), else say how
#   tests/testbed/host-packages.sh list   [PROFILE]   the packages, one a line
#
# PROFILE (default test):
#   venv     the virtualenv of the pinned tools (make venv)
#   fast     make test-fast, lint, sanity, unit, role-docs
#   deploy   make deploy
#   test     everything: make test, test-containers, integration, molecule, test-faults, test-vm, bench; .ci/run
#
# When everything is there this is one dpkg-query. As root, ensure runs `apt-get update` and
# `apt-get install -y --no-install-recommends` of exactly the missing packages; as anyone else it prints the
# apt-get line to run and exits 1. HM_HOST_PACKAGES_EXTRA (words) is added to every profile: for local
# extras, and to try the missing-package path without removing anything.
set -euo pipefail
export LC_ALL=C   # comm and sort must agree on the order
PROG=host-packages.sh

# The groups, and who needs them. Packages Debian 12 installs everywhere (priority required/important:
# bash, coreutils, tar, gzip, dpkg with dpkg-deb, util-linux with flock and setsid, e2fsprogs) are left out.
declare -A GROUP=(
    # make itself, git for ansible-test (it lists the files with git), and python3-venv with the CA bundle
    # for the virtualenv of pinned tools from PyPI (requirements.txt).
    [tools]="make git ca-certificates python3-venv"
    # ansible-test sanity's shellcheck test: without it sanity only warns and skips the shell scripts.
    [shellcheck]="shellcheck"
    # Rootful podman for the targets (molecule, integration, fault suite, deploy). runc: crun refuses this
    # machine's hybrid cgroups (podman-env.sh). slirp4netns: the targets' network (molecule.yml). The rest
    # are podman's Recommends, which --no-install-recommends would leave out; CI has always had them.
    [podman]="podman runc slirp4netns fuse-overlayfs catatonit uidmap"
    # images.sh and vm/build-base.sh build their root filesystems with debootstrap.
    [images]="debootstrap"
    # The local console's PKI (tests/console/make-pki.sh); its artifacts need only dpkg-deb, tar and gzip.
    [console]="openssl"
    # system-map.sh's virtualenv (molecule's prepare runs it): vmlinux-to-elf needs minilzo, which PyPI has
    # only as source, so pip compiles it.
    [system_map]="gcc libc6-dev python3-dev"
    # The VM lane: qemu (TCG), qemu-img for the overlays, ssh into the guest, mkfs.ext4 -d of the bake.
    [vm]="qemu-system-x86 qemu-utils openssh-client e2fsprogs"
)
declare -A PROFILE=(
    [venv]="tools"
    [fast]="tools shellcheck"
    [deploy]="tools podman images console system_map"
    [test]="tools shellcheck podman images console system_map vm"
)

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 2; }

packages() { # profile -> the packages, one a line, sorted
    local group
    # shellcheck disable=SC2086  # the lists are words
    for group in ${PROFILE[$1]}; do
        printf '%s\n' ${GROUP[$group]}
    done | { cat; printf '%s\n' ${HM_HOST_PACKAGES_EXTRA:-}; } | grep . | sort -u
}

missing() { # profile -> the packages not installed, one a line
    local want
    mapfile -t want < <(packages "$1")
    # One call for all; a package dpkg has never heard of is reported on stderr and is missing too.
    # shellcheck disable=SC2016  # dpkg-query's format, not a shell expansion
    dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${want[@]}" 2>/dev/null |
        awk '$2 == "ii" {print $1}' | sort -u | comm -23 <(printf '%s\n' "${want[@]}") -
}

ensure() { # profile
    local profile="$1" lock
    local -a absent
    mapfile -t absent < <(missing "$profile")
    [ "${#absent[@]}" -gt 0 ] || return 0
    if [ "$(id -u)" -ne 0 ]; then
        printf '%s: missing host packages for %s: %s\n' "$PROG" "$profile" "${absent[*]}" >&2
        printf '%s: as root, run:  apt-get install --no-install-recommends %s\n' "$PROG" "${absent[*]}" >&2
        exit 1
    fi
    # The test lanes run make side by side: one installs, the other waits and then finds it done.
    exec {lock}>/run/lock/hm-host-packages.lock
    flock "$lock"
    mapfile -t absent < <(missing "$profile")
    if [ "${#absent[@]}" -gt 0 ]; then
        printf '%s: installing %s\n' "$PROG" "${absent[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${absent[@]}" >/dev/null
        mapfile -t absent < <(missing "$profile")
        [ "${#absent[@]}" -eq 0 ] || { printf '%s: still missing: %s\n' "$PROG" "${absent[*]}" >&2; exit 1; }
    fi
    exec {lock}>&-
}

check() { # profile
    local -a absent
    mapfile -t absent < <(missing "$1")
    [ "${#absent[@]}" -gt 0 ] || return 0
    printf '%s: missing host packages for %s: %s\n' "$PROG" "$1" "${absent[*]}" >&2
    printf '%s: install them with:  %s ensure %s   (as root), or:  apt-get install --no-install-recommends %s\n' \
        "$PROG" "$0" "$1" "${absent[*]}" >&2
    exit 1
}

profile="${2:-test}"
[ -n "${PROFILE[$profile]:-}" ] || die "unknown profile '$profile' (one of: ${!PROFILE[*]})"
case "${1:-}" in
    check) check "$profile" ;;
    ensure) ensure "$profile" ;;
    list) packages "$profile" ;;
    *) sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
