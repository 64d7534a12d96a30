#!/usr/bin/env bash
# Recover a REAL System.map for a Debian kernel that is not running.
#
# Debian's /boot/System.map-K is a one-line stub ("The real System.map is in the
# linux-image-<version>-dbg package", ~1 GB). The kernel image itself carries the symbol
# table as kallsyms (Debian sets CONFIG_KALLSYMS_ALL=y); vmlinux-to-elf's kallsyms-finder
# (PyPI, pinned below) decompresses vmlinuz and decodes it. The output is nm-style
# "address type name" lines sorted by address, like a real System.map, and is what
# dattobd's genconfig.sh reads (it needs __per_cpu_start).
#
# Usage (as root or any user that can write the cache):
#   tests/testbed/system-map.sh /path/to/vmlinuz-K OUT-FILE
#   tests/testbed/system-map.sh --from-image IMAGE K OUT-FILE
#       (takes /boot/vmlinuz-K out of a podman image, e.g. localhost/hm-debian-dkms:bookworm)
# Then install it for a test, e.g.  podman cp OUT-FILE CTR:/lib/modules/K/System.map
#
# Cache: ${HM_CACHE:-/var/cache/hypermotion-linux-agent}/system-map/<sha256 of vmlinuz>.map
# and the venv ${HM_CACHE}/venv/vmlinux-to-elf (python: ${HM_PYTHON:-python3}, needs venv).
# Measured (2 cores, busy machine, load ~7): first run 43-47 s (venv + pip ~24 s, extraction
# 19-23 s); each further kernel 13-23 s (6.1.0-N: 94,266 symbols; 6.12.N+deb13: ~167,000);
# a cache hit 0.1-0.8 s.
#
# Checks before writing OUT-FILE: at least MIN_SYMBOLS symbols, __per_cpu_start and _text
# present, and the "Linux version K " banner inside the image matches K when K can be read
# from the file name (vmlinuz-K) -- a map of the wrong kernel is exactly what crashes
# dattobd (see REFERENCE.md), so a mismatch is an error.
set -euo pipefail

PROG="system-map.sh"
VMLINUX_TO_ELF="vmlinux-to-elf==1.4.0"
MIN_SYMBOLS=5000
CACHE="${HM_CACHE:-/var/cache/hypermotion-linux-agent}"
MAPS="$CACHE/system-map"
VENV="$CACHE/venv/vmlinux-to-elf"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() { awk '/^# Usage/ {on = 1} on && /^#$/ {exit} on' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

TMP=""
CTR=""
cleanup() {
    [ -z "$CTR" ] || podman rm -f -t 0 "$CTR" >/dev/null 2>&1 || true
    [ -z "$TMP" ] || rm -rf "$TMP"
}
trap cleanup EXIT

ensure_venv() {
    if [ -x "$VENV/bin/kallsyms-finder" ] &&
        [ "$(cat "$VENV/.hm-spec" 2>/dev/null)" = "$VMLINUX_TO_ELF" ]; then
        return
    fi
    log "creating venv $VENV with $VMLINUX_TO_ELF ..."
    local py="${HM_PYTHON:-python3}"
    command -v "$py" >/dev/null || die "$py not found (set HM_PYTHON)"
    rm -rf "$VENV"
    "$py" -m venv "$VENV" >&2 || die "'$py -m venv' failed (apt-get install python3-venv?)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$VMLINUX_TO_ELF" >&2 ||
        die "pip install $VMLINUX_TO_ELF failed"
    echo "$VMLINUX_TO_ELF" >"$VENV/.hm-spec"
}

extract() { # vmlinuz map-out expected-kernel-or-empty
    local vmlinuz="$1" out="$2" want="$3" raw="$TMP/kallsyms.out" err="$TMP/kallsyms.err"
    local n banner text t0
    t0="$(date +%s)"
    if ! "$VENV/bin/kallsyms-finder" "$vmlinuz" >"$raw" 2>"$err"; then
        tail -n 20 "$err" >&2
        die "kallsyms-finder could not read the symbol table of $vmlinuz"
    fi
    # Keep only well-formed symbol lines; 16 hex digits sort correctly as text.
    grep -E '^[0-9a-f]{16} [A-Za-z] [^ ]+$' "$raw" | LC_ALL=C sort -s -k1,1 >"$TMP/map"
    n="$(wc -l <"$TMP/map")"
    [ "$n" -ge "$MIN_SYMBOLS" ] || die "only $n symbols recovered from $vmlinuz (want >= $MIN_SYMBOLS)"
    grep -q -E ' __per_cpu_start$' "$TMP/map" || die "no __per_cpu_start in the map of $vmlinuz"
    text="$(awk '$3 == "_text" {print $1; exit}' "$TMP/map")"
    [ -n "$text" ] || die "no _text in the map of $vmlinuz"
    banner="$(grep -o -m1 'Linux version [^ ]*' "$err" | awk '{print $3}' || true)"
    if [ -n "$want" ] && [ -n "$banner" ] && [ "$banner" != "$want" ]; then
        die "$vmlinuz is kernel $banner, not $want (refusing to write a wrong kernel's map)"
    fi
    {
        echo "kernel=${banner:-unknown}"
        echo "symbols=$n"
        echo "_text=$text"
        echo "tool=$VMLINUX_TO_ELF"
        echo "seconds=$(($(date +%s) - t0))"
    } >"$TMP/meta"
    mv -f "$TMP/map" "$out"
    log "recovered $n symbols for kernel ${banner:-unknown} in $(($(date +%s) - t0)) s"
}

main() {
    local vmlinuz out want="" key cached
    [ "$#" -ge 1 ] || usage
    case "$1" in
        -h|--help) usage ;;
        --from-image)
            [ "$#" -eq 4 ] || usage
            local image="$2"
            want="$3"; out="$4"
            TMP="$(mktemp -d)"
            # shellcheck disable=SC1091  # podman-env.sh is shellchecked on its own
            . "$(dirname "${BASH_SOURCE[0]}")/podman-env.sh" || die "podman-env.sh failed"
            CTR="$(podman create "$image" true)" || die "cannot create a container from $image"
            podman cp "$CTR:/boot/vmlinuz-$want" "$TMP/vmlinuz-$want" ||
                die "no /boot/vmlinuz-$want in $image (see /etc/hm-testbed/kernels there)"
            vmlinuz="$TMP/vmlinuz-$want"
            ;;
        *)
            [ "$#" -eq 2 ] || usage
            vmlinuz="$1"; out="$2"
            [ -r "$vmlinuz" ] || die "cannot read $vmlinuz"
            case "$(basename "$vmlinuz")" in vmlinuz-*) want="$(basename "$vmlinuz")"; want="${want#vmlinuz-}" ;; esac
            TMP="$(mktemp -d)"
            ;;
    esac
    mkdir -p "$MAPS" "$(dirname "$out")"
    key="$(sha256sum "$vmlinuz" | cut -c1-64)"
    cached="$MAPS/$key.map"

    exec 9>"$MAPS/.lock"
    flock -w 1800 9 || die "timed out waiting for $MAPS/.lock"
    if [ ! -s "$cached" ]; then
        ensure_venv
        extract "$vmlinuz" "$TMP/new.map" "$want"
        mv -f "$TMP/meta" "$MAPS/$key.meta"
        mv -f "$TMP/new.map" "$cached"
    else
        local had
        had="$(sed -n 's/^kernel=//p' "$MAPS/$key.meta" 2>/dev/null || true)"
        if [ -n "$want" ] && [ -n "$had" ] && [ "$had" != unknown ] && [ "$had" != "$want" ]; then
            die "$vmlinuz is kernel $had, not $want (refusing to write a wrong kernel's map)"
        fi
    fi
    flock -u 9
    cp -f "$cached" "$out.tmp.$$" && mv -f "$out.tmp.$$" "$out"
    log "wrote $out ($(wc -l <"$out") symbols; cache $cached)"
}

main "$@"
