# shellcheck shell=bash
# Source me:  . tests/testbed/podman-env.sh
#
# Points rootful podman at a private configuration and storage kept in the test cache
# (${HM_CACHE:-/var/cache/hypermotion-linux-agent}), outside the clone, so images built
# by tests/testbed/images.sh survive between CI runs and never touch the machine's own
# podman storage. Idempotent and quiet: files are rewritten only when their content changes.
#
# Exports: HM_CACHE, HM_PODMAN_DIR, CONTAINERS_CONF, CONTAINERS_STORAGE_CONF.
#
# Why these settings (measured, see /work/shared/TESTBED.md "Containers"):
#  - runtime runc: crun refuses this machine's hybrid cgroup layout.
#  - cgroupfs: no systemd-managed cgroups for rootful podman here.
#  - netns host by default: podman's bridge adds iptables chains on the host. Containers
#    that boot systemd must be given `--network none` or `--network slirp4netns`, or their
#    sshd would bind the host's port 22.
#  - default_ulimits: root lacks CAP_SYS_RESOURCE, podman's default rlimits fail; nofile
#    must be <= `ulimit -Hn`, and conmon caps nproc at 32768.
#  - events_logger file: no journald dependency.
#  - runroot/tmp_dir live on /run (tmpfs), NOT in the cache: they hold mount state and
#    the "alive" marker podman uses to notice a reboot; persisting them across a reboot
#    leaves stale locks and mounts. Everything worth keeping (graphroot: layers, images,
#    libpod db) is in the cache.
#
# This file is sourced into the caller's shell: it must not change shell options
# (no set -e here) and leaves no helper functions or variables behind.

__hm_podman_env() {
    local cache dir run key nofile conf storage tmp
    cache="${HM_CACHE:-/var/cache/hypermotion-linux-agent}"
    dir="$cache/podman"
    # One runroot per cache path, so two caches (e.g. a developer's HM_CACHE) never
    # share lock state.
    key="$(printf '%s' "$cache" | sha256sum | cut -c1-12)"
    run="/run/hm-podman-$key"

    nofile=20000
    local hard
    hard="$(ulimit -Hn)"
    if [ "$hard" != unlimited ] && [ "$hard" -lt "$nofile" ]; then
        nofile="$hard"
    fi

    if ! mkdir -p "$dir/graphroot" "$dir/tmp" "$run/runroot" "$run/tmp"; then
        echo "podman-env.sh: cannot create $dir or $run (run as root?)" >&2
        return 1
    fi

    conf="[containers]
netns = \"host\"
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=32768:32768\"]
log_driver = \"k8s-file\"

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
events_logfile_path = \"$dir/events.log\"
tmp_dir = \"$run/tmp\"
image_copy_tmp_dir = \"$dir/tmp\"
"
    storage="[storage]
driver = \"overlay\"
graphroot = \"$dir/graphroot\"
runroot = \"$run/runroot\"

[storage.options.overlay]
mountopt = \"nodev\"
"
    __hm_write_if_changed() {
        # $1 file, $2 content
        if ! printf '%s' "$2" | cmp -s - "$1" 2>/dev/null; then
            tmp="$(mktemp "$1.XXXXXX")" || return 1
            printf '%s' "$2" >"$tmp" && mv -f "$tmp" "$1"
        fi
    }
    __hm_write_if_changed "$dir/containers.conf" "$conf" || return 1
    __hm_write_if_changed "$dir/storage.conf" "$storage" || return 1
    unset -f __hm_write_if_changed

    export HM_CACHE="$cache"
    export HM_PODMAN_DIR="$dir"
    export CONTAINERS_CONF="$dir/containers.conf"
    export CONTAINERS_STORAGE_CONF="$dir/storage.conf"
}

if ! __hm_podman_env; then
    unset -f __hm_podman_env
    # shellcheck disable=SC2317  # return when sourced, exit when executed
    return 1 2>/dev/null || exit 1
fi
unset -f __hm_podman_env
