# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/install.yml against real faults: each row injects one, the run must fail with a message that
names the cause and the fix, and leave the host exactly as it was.

One disposable Debian 12 container with systemd as PID 1 serves every row. It is prepared once, by
molecule's own prepare playbook (two Debian kernels without headers, a real System.map for the newest,
the local console), and reached like the molecule scenarios: containers.podman.podman, slirp4netns with
the host's loopback at 10.0.2.2. A row that changed the host would spoil the next one, which is the
point: before and after every run the test takes a snapshot (packages, /usr/src, the DKMS tree, apt
sources, /opt, /etc/systemd/system, the modules in updates/, every initrd's sha256, ...) and requires
it unchanged. The last row (a module that does not compile) then removes its fault and requires the
re-run to converge. Every run is at -vvv, and no run may print a console token or the monitor's key.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import subprocess
import time

import pytest
import testbed
import yaml
from install_target import Console, ConsoleSh, SystemdTarget, free_port, read_vars, snapshot_diff, stop_console

pytestmark = pytest.mark.slow

VERSION = (testbed.FIXTURES / "dattobd" / "VERSION").read_text().strip()
TARBALL = "dattobd-%s.tar.gz" % VERSION
INSTALL = testbed.REPO / "playbooks" / "install.yml"
PREPARE = testbed.REPO / "extensions" / "molecule" / "shared" / "prepare.yml"
FAKE_KERNEL = "6.1.0-999-amd64"
SOURCES_GLOB = "/etc/apt/sources.list.d/hypermotion-linux-agent-*"
STATE_DIR = "/var/lib/hypermotion-linux-agent"
MONITOR_KEY = "/opt/hypermotion-monitor/etc/server.key"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    work = tmp_path_factory.mktemp("install-faults")
    env = testbed.podman_environment()
    image = testbed.ensure_image("ensure", "bookworm")
    box = SystemdTarget(image, env, work)
    box.console_name = "faults-%s" % box.name.rsplit("-", 1)[-1]
    try:
        box.start()
        # Exactly what the molecule scenarios run before converge (it also starts the console).
        prepare = box.playbook(PREPARE, verbosity=0, env=dict(
            MOLECULE_PROJECT_DIRECTORY=str(testbed.REPO), MOLECULE_EPHEMERAL_DIRECTORY=str(work),
            MOLECULE_SCENARIO_NAME=box.console_name))
        assert prepare.rc == 0, prepare.tail()
        box.console_vars = work / "console-vars.yml"
        box.console = read_vars(box.console_vars)
        # The PKI of the console's artifact set (the test CA, other-ca.crt, the console's certificates).
        box.pki = pathlib.Path(box.console["linux_agent_console_ca"]).parent
        kernels = dict(line.split("=", 1) for line in box.sh("cat /etc/hm-test-kernels").stdout.split())
        box.built, box.deferred = kernels["built"], kernels["deferred"]
        key = (pathlib.Path(box.console["hm_console_root"]) / "server.key").read_text()
        # What no output may ever contain: console tokens (rows add theirs) and the monitor key's lines.
        box.secrets = [box.console["linux_agent_console_token"]] + [
            line for line in key.splitlines() if len(line) >= 40 and not line.startswith("-----")]
        yield box
    finally:
        stop_console(box.console_name, env)
        box.stop()


def good_vars(host):
    """The converge scenario's variables (extensions/molecule/shared/converge.yml)."""
    sums = host.console["hm_console_sha256"]
    return {
        "dattobd_enable_dkms": True,
        "dattobd_source_sha256": sums[TARBALL],
        "agent_package_sha256": sums["egisplus-agent_1.0.0_all.deb"],
        "monitor_sha256": sums,
        # A temporary source: a run that fails after adding it must still remove it.
        "repo_sources": [{
            "name": "backports", "uris": "http://deb.debian.org/debian",
            "suites": ["{{ ansible_facts['distribution_release'] }}-backports"], "components": ["main"],
            "signed_by": "/usr/share/keyrings/debian-archive-keyring.gpg",
        }],
    }


def install(host, overrides):
    variables = good_vars(host)
    variables.update(overrides)
    return host.playbook(INSTALL, host.console_vars, extra_vars=variables)


def assert_no_secrets(host, run):
    leaked = [i for i, secret in enumerate(host.secrets) if secret in run.output]
    assert not leaked, "secret(s) %s (0 = the console token, then key lines, then row tokens) in the output" % leaked


def run_fault(host, overrides, keywords):
    """Run install.yml with OVERRIDES; require a failure whose message has every keyword, an unchanged host."""
    before = host.snapshot()
    run = install(host, overrides)
    after = host.snapshot()
    assert run.rc != 0, "the run succeeded despite the fault:\n" + run.tail()
    message = run.message
    missing = [word for word in keywords if word.lower() not in message.lower()]
    assert message and not missing, "message lacks %s:\n%s\n\noutput tail:\n%s" % (missing, message, run.tail(3000))
    changed = snapshot_diff(before, after)
    assert not changed, "the failed run changed the host:\n" + changed
    assert not host.sh("ls %s 2>/dev/null || true" % SOURCES_GLOB).stdout.strip(), "temporary source left"
    assert_no_secrets(host, run)
    return run


def usr_src_and_dkms_clean(host):
    out = host.sh("ls -d /usr/src/dattobd-* /var/lib/dkms/dattobd 2>/dev/null || true").stdout.strip()
    assert not out, "dattobd left in /usr/src or the DKMS tree: " + out


def staging_clean(host):
    out = host.sh("ls -A /var/lib/hypermotion-linux-agent/src 2>/dev/null | grep -v '^\\.' || true").stdout.strip()
    assert not out, "staged dattobd source left in the state directory: " + out


# --- the rows: each returns the variables that inject its fault (it may start what it needs, with its
# cleanup on STACK) and the checks to run after the failed run, beyond the snapshot ------------------------

def wrong_token(host, stack):
    token = secrets.token_urlsafe(24)
    host.secrets.append(token)
    return {"linux_agent_console_token": token}, []


def failing_console(*options):
    def setup(host, stack):
        console = ConsoleSh("%s-%s" % (host.console_name, "-".join(o.strip("-") for o in options)), host.env,
                            *options)
        stack.callback(console.stop)
        host.secrets.append(console.vars["linux_agent_console_token"])
        # Its own artifact set's CA: console.sh builds a new set when tests/console changes.
        return {key: console.vars[key] for key in (
            "linux_agent_console_url", "linux_agent_console_token", "linux_agent_console_ca")}, []
    return setup


def closed_port(host, stack):
    return {"linux_agent_console_url": "https://10.0.2.2:%d" % free_port()}, []


def other_ca(host, stack):
    return {"linux_agent_console_ca": str(host.pki / "other-ca.crt")}, []


def wrong_checksum(host, stack):
    return {"dattobd_source_sha256": "0" * 64}, [staging_clean, usr_src_and_dkms_clean]


def corrupt_tarball(host, stack):
    bad = host.work / "corrupt" / TARBALL
    bad.parent.mkdir(exist_ok=True)
    # A gzip header in front of garbage: it looks like a release until it is unpacked.
    bad.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + secrets.token_bytes(4096))
    return ({"dattobd_source": "controller", "dattobd_source_file": str(bad), "dattobd_source_sha256": ""},
            [staging_clean, usr_src_and_dkms_clean])


def kernel_above_max(host, stack):
    return {"dattobd_kernel_max": "5.10"}, []


def dkms_disabled(host, stack):
    return {"dattobd_enable_dkms": False}, []


def kernel_without_headers(host, stack):
    # An installed kernel (image and modules directory) whose headers package the archive does not carry.
    host.sh("head -c 4096 /dev/urandom > /boot/vmlinuz-%s && mkdir -p /lib/modules/%s/kernel"
            % (FAKE_KERNEL, FAKE_KERNEL))
    stack.callback(host.sh, "rm -rf /boot/vmlinuz-%s /lib/modules/%s" % (FAKE_KERNEL, FAKE_KERNEL))
    return {"dattobd_target_kernels": [FAKE_KERNEL]}, []


def http_url(host, stack):
    # The suite's own console, its URL in clear text: refused before any download, so its TLS never matters.
    url = host.console["linux_agent_console_url"]
    return {"linux_agent_console_url": "http://" + url.split("://", 1)[1]}, []


def full_disk(host, stack):
    return {"dkms_toolchain_min_free_mb": 99999999}, []


BUILT = "{built}"  # replaced by the kernel prepare.yml gave a real System.map

ROWS = [
    pytest.param(wrong_token, ["token", "401", "linux_agent_console_token", "fresh"], id="console-401-token"),
    pytest.param(failing_console("--fail-mode", "404"), ["HTTP 404", "no artifact", "version"], id="console-404"),
    pytest.param(failing_console("--fail-mode", "500"), ["HTTP 500", "Nothing was changed", "retry"],
                 id="console-500"),
    pytest.param(closed_port, ["Cannot reach the console", "linux_agent_console_url", "refused"],
                 id="console-unreachable"),
    pytest.param(other_ca, ["TLS", "unknown CA", "linux_agent_console_ca"], id="tls-unknown-ca"),
    pytest.param(failing_console("--cert", "wrong-host"), ["TLS", "not valid for the host",
                                                           "linux_agent_console_url"], id="tls-wrong-host"),
    pytest.param(wrong_checksum, ["Checksum mismatch", TARBALL, "0" * 64, "not used"], id="source-checksum"),
    pytest.param(corrupt_tarball, ["could not be unpacked", "corrupt", "Nothing was registered", "re-run"],
                 id="source-corrupt"),
    pytest.param(kernel_above_max, [BUILT, "outside the range", "5.10", "dattobd_kernel_max"],
                 id="kernel-out-of-range"),
    pytest.param(dkms_disabled, [BUILT, "no prebuilt", "dattobd_enable_dkms: true"], id="dkms-disabled"),
    pytest.param(kernel_without_headers, ["not available", "linux-headers-" + FAKE_KERNEL, "repo_sources",
                                          "Nothing was installed"], id="headers-missing"),
    pytest.param(full_disk, ["Not enough free disk space", "/usr/src", "dkms_toolchain_min_free_mb"],
                 id="disk-full"),
    pytest.param(http_url, ["http://", "clear text", "linux_agent_console_allow_http: true", "Nothing was changed"],
                 id="console-http-refused"),
]


@pytest.mark.parametrize(("inject", "keywords"), ROWS)
def test_fault_refused_host_unchanged(host, inject, keywords):
    with contextlib.ExitStack() as stack:
        overrides, checks = inject(host, stack)
        run_fault(host, overrides, [word.replace(BUILT, host.built) for word in keywords])
        for check in checks:
            check(host)


def test_console_http_opt_in_warns(host):
    """linux_agent_console_allow_http: true lets an http:// URL through and every download says so. Against a
    closed port, so the first download fails in the preflight and nothing is installed: the warning, then the
    refusal, on an unchanged host."""
    url = "http://10.0.2.2:%d" % free_port()
    run = run_fault(host, {"linux_agent_console_url": url, "linux_agent_console_allow_http": True},
                    ["Cannot reach the console", "refused"])
    # Ansible wraps warnings at the terminal width.
    assert "[WARNING]: The console URL is http:// (linux_agent_console_allow_http)" in " ".join(run.output.split()), \
        run.tail()


def test_repair_several_versions_names_the_working_option(host):
    """Two registered versions: repair.yml refuses to guess and names -e repair_version=...; with that option
    its guard passes (the run limited to the `always` tasks: the lookup, the guard, the choice; no rebuild)."""
    repair = testbed.REPO / "playbooks" / "repair.yml"
    host.sh("mkdir /usr/src/dattobd-0.0.1 /usr/src/dattobd-0.0.2")
    try:
        run = host.playbook(repair)
        assert run.rc != 0, run.tail()
        assert "Several dattobd sources are registered" in run.message, run.tail()
        assert "-e repair_version=" in " ".join(run.message.split()), run.message
        again = host.playbook(repair, extra_vars={"repair_version": "0.0.2"}, env={"ANSIBLE_RUN_TAGS": "always"})
        assert again.rc == 0, again.tail()
        assert "Several dattobd sources are registered" not in again.output, again.tail()
    finally:
        host.sh("rmdir /usr/src/dattobd-0.0.1 /usr/src/dattobd-0.0.2")


def test_compile_error_rolled_back_then_rerun_converges(host):
    """A module that does not compile: nothing of it stays; with the good source the next run converges.

    A compile error can only happen once the toolchain is in place, so the row starts from a host that
    has it (the packages the role would install); the failed run must leave that host as it was.
    """
    host.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dkms gcc make "
            "libc6-dev linux-headers-%s linux-headers-%s >/dev/null" % (host.built, host.deferred))
    broken_dir = host.work / "broken-compile"
    made = subprocess.run([str(testbed.FIXTURES / "make-dattobd-tarball.sh"), VERSION, str(broken_dir),
                           "--broken-compile"], check=True, capture_output=True, text=True).stdout.split()
    broken_sha = made[-1]
    root = host.work / "broken-root"
    shutil.copytree(host.console["hm_console_root"], root)
    shutil.copyfile(broken_dir / TARBALL, root / TARBALL)
    token = secrets.token_urlsafe(24)
    host.secrets.append(token)
    console = Console(root, host.pki, host.work / "broken-console", token)
    try:
        run_fault(host, {"linux_agent_console_url": console.url, "linux_agent_console_token": token,
                         "dattobd_source_sha256": broken_sha},
                  [host.built, "exit code 10", "make.log"])
    finally:
        console.stop()
    usr_src_and_dkms_clean(host)

    # The fault removed: the good release from the normal console.
    run = install(host, {})
    assert run.rc == 0, "the re-run did not converge:\n" + run.tail()
    assert_no_secrets(host, run)
    status = host.sh("dkms status").stdout
    assert "dattobd/%s, %s, x86_64: installed" % (VERSION, host.built) in status, status
    assert not host.sh("ls %s 2>/dev/null || true" % SOURCES_GLOB).stdout.strip(), "temporary source left"


# --- phase 2: a converged host. The module installed before must still be installed after each fault ------

def installed_ko(host, kernel):
    return "/lib/modules/%s/updates/dkms/dattobd.ko" % kernel


def assert_converged(host, version=VERSION):
    """VERSION installed for the built kernel and nothing else of dattobd around; no temporary source."""
    status = host.sh("dkms status dattobd").stdout
    assert "dattobd/%s, %s, x86_64: installed" % (version, host.built) in status, status
    others = [line for line in status.splitlines() if line.strip() and not line.startswith("dattobd/%s," % version)
              and not line.startswith("dattobd/%s:" % version)]
    assert not others, "other dattobd versions in DKMS: %s" % others
    found = host.sh("modinfo -F version %s" % installed_ko(host, host.built)).stdout.strip()
    assert found == version, "the installed .ko is version %r, expected %s" % (found, version)
    assert host.sh("ls -d /usr/src/dattobd-*").stdout.split() == ["/usr/src/dattobd-%s" % version]
    assert host.sh("test -f /usr/src/dattobd-%s/dkms.conf" % version, check=False).returncode == 0
    staged = sorted(host.sh("ls -A %s/src" % STATE_DIR).stdout.split())
    assert staged == ["dattobd-%s" % version, "dattobd-%s.tar.gz" % version], "staged sources: %s" % staged
    assert not host.sh("ls %s 2>/dev/null || true" % SOURCES_GLOB).stdout.strip(), "temporary source left"


def state_dir(host):
    """The agent's state directory: names, types, modes and sizes (downloads, staged sources)."""
    return host.sh("find %s -printf '%%p %%y %%m %%s\\n' | sort" % STATE_DIR).stdout


def converge(host, overrides=None):
    run = install(host, overrides or {})
    assert run.rc == 0, "the re-run did not converge:\n" + run.tail()
    assert_no_secrets(host, run)
    assert_converged(host)
    return run


@pytest.fixture(scope="module")
def converged(host):
    """The host with VERSION installed by a normal run (the compile-error row's re-run, when it ran first)."""
    status = host.sh("command -v dkms >/dev/null && dkms status dattobd || true").stdout
    if "dattobd/%s, %s, x86_64: installed" % (VERSION, host.built) not in status:
        converge(host)
    return host


def fault_on_converged(host, overrides, keywords):
    """run_fault, plus: the state directory as it was and the installed module untouched."""
    state_before = state_dir(host)
    ko_before = host.sh("sha256sum %s" % installed_ko(host, host.built)).stdout
    run = run_fault(host, overrides, keywords)
    assert state_dir(host) == state_before, "the failed run changed %s" % STATE_DIR
    assert host.sh("sha256sum %s" % installed_ko(host, host.built)).stdout == ko_before
    assert_converged(host)
    return run


def bumped(version):
    parts = version.split(".")
    return ".".join(parts[:-1] + [str(int(parts[-1]) + 1)])


RECAP_RE = re.compile(r"^\S+\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def recap(run):
    """(ok, changed, unreachable, failed) of the run's one host."""
    found = RECAP_RE.findall(run.output)
    assert len(found) == 1, "expected one PLAY RECAP line:\n" + run.tail()
    return tuple(int(n) for n in found[0])


def fast_path_taken(run):
    """The run stopped at the fast path: the converged_state check said equal and nothing else ran."""
    text = run.output
    return ("end_host conditional evaluated to True" in text or "ending play for" in text.lower()) \
        and "TASK [Gather the facts the roles use]" not in text


# --- the fast path: a converged host costs one state read, and any drift sends the run down the full path ---

def test_noop_takes_the_fast_path(converged):
    """A converged host, the same variables: the run stops after the one state read, with nothing changed."""
    host = converged
    converge(host)  # records the state with exactly these variables
    run = install(host, {})
    assert run.rc == 0, run.tail()
    assert recap(run)[1:] == (0, 0, 0), run.tail()
    assert fast_path_taken(run), "the converged host was not left alone by the fast path:\n" + run.tail()
    assert host.sh("stat -c %a " + STATE_DIR + "/converged.json").stdout.strip() == "600"


def test_full_path_noop_changes_nothing(converged):
    """The roles themselves are idempotent: with the fast path off, a converged host reports 0 changed."""
    run = install(converged, {"linux_agent_fast_path": False})
    assert run.rc == 0, run.tail()
    assert not fast_path_taken(run)
    assert recap(run)[1:] == (0, 0, 0), "the full path changed a converged host:\n" + run.tail()


def test_drift_is_repaired_by_the_full_path(converged):
    """A stopped monitor and an edited boot configuration: named as the reasons, repaired, then fast again."""
    host = converged
    host.sh("systemctl stop hypermotion-monitor && echo edited > /etc/modules-load.d/dattobd.conf")
    run = install(host, {})
    assert run.rc == 0, run.tail()
    assert not fast_path_taken(run)
    text = " ".join(run.output.split())
    assert "service hypermotion-monitor is inactive, not active" in text, run.tail()
    assert "changed since the last verified install: /etc/modules-load.d/dattobd.conf" in text, run.tail()
    assert host.sh("systemctl is-active hypermotion-monitor").stdout.strip() == "active"
    assert "dattobd" in host.sh("cat /etc/modules-load.d/dattobd.conf").stdout
    again = install(host, {})
    assert again.rc == 0 and fast_path_taken(again), again.tail()


def test_cleaned_package_lists_are_refreshed_not_refused(converged):
    """No package lists (as cloud and container images ship) and a headers package to install: the run
    refreshes the lists once, finds the headers and converges instead of refusing them as unavailable.

    No temporary source here: adding one refreshes the lists and would hide exactly this path.
    """
    host = converged
    headers = "linux-headers-" + host.built
    # Named: in a container the target kernels are those with headers (kernel_facts), so without the
    # list the kernel whose headers are removed would drop out of the plan instead of needing them.
    kernels = {"dattobd_target_kernels": [host.built, host.deferred]}
    host.sh("DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq %s >/dev/null"
            " && find /var/lib/apt/lists -maxdepth 1 -type f -delete" % headers)
    # What the role's own availability check sees before its refresh.
    assert host.sh("apt-get install -s -qq " + headers, check=False).returncode != 0, \
        "the lists were not cleaned: apt still offers " + headers
    run = converge(host, dict(kernels, repo_sources=[]))
    refresh = [part for part in run.output.split("TASK [") if re.match(r"[^]]*: Refresh the package lists\]", part)]
    assert refresh and "changed: [" in refresh[0], "the lists were not refreshed after the miss:\n" + run.tail()
    assert host.sh("dpkg-query -W -f='${db:Status-Abbrev}' %s" % headers).stdout.strip() == "ii"


def test_deferred_kernels_alone_build_nothing_now(converged):
    """Only a kernel without a real System.map to serve (as when the running kernel has a prebuilt module and
    the next one is new): the run keeps dattobd registered and the boot-time build in place, and builds for
    no kernel now (it once fell back to dkms_module's default, the running kernel, and failed on its headers).
    """
    host = converged
    dkms_before = host.sh("dkms status dattobd").stdout
    run = install(host, {"dattobd_target_kernels": [host.deferred]})
    assert run.rc == 0, "deferred kernels alone did not converge:\n" + run.tail()
    assert "Kernel headers are missing" not in run.output, run.tail()
    assert host.sh("dkms status dattobd").stdout == dkms_before, "the DKMS state changed"
    assert host.sh("systemctl is-enabled hypermotion-dattobd-build.service").stdout.strip() == "enabled"
    converge(host)


def test_failed_upgrade_keeps_installed_version(converged):
    """Version B does not compile: A stays installed (DKMS, the .ko, the initramfs), B leaves nothing."""
    host = converged
    new = bumped(VERSION)
    outdir = host.work / "upgrade-broken"
    made = subprocess.run([str(testbed.FIXTURES / "make-dattobd-tarball.sh"), new, str(outdir), "--broken-compile"],
                          check=True, capture_output=True, text=True).stdout.split()
    root = host.work / "upgrade-root"
    shutil.copytree(host.console["hm_console_root"], root)
    shutil.copyfile(outdir / ("dattobd-%s.tar.gz" % new), root / ("dattobd-%s.tar.gz" % new))
    token = secrets.token_urlsafe(24)
    host.secrets.append(token)
    console = Console(root, host.pki, host.work / "upgrade-console", token)
    try:
        fault_on_converged(host, {"linux_agent_console_url": console.url, "linux_agent_console_token": token,
                                  "dattobd_version": new, "dattobd_source_sha256": made[-1]},
                           ["dattobd/%s" % new, host.built, "exit code 10", "stays installed",
                            "%s dattobd/%s" % (host.built, VERSION)])
    finally:
        console.stop()
    out = host.sh("ls -d /usr/src/dattobd-%s /var/lib/dkms/dattobd/%s %s/src/dattobd-%s* 2>/dev/null || true"
                  % (new, new, STATE_DIR, new)).stdout.strip()
    assert not out, "the failed version left: " + out
    # The fault removed (the release that builds): the same version converges again.
    converge(host)


def test_stale_dkms_tree_repaired(converged):
    """dkms.conf deleted behind DKMS's back: the next run puts the source back and ends installed."""
    host = converged
    host.sh("rm /usr/src/dattobd-%s/dkms.conf" % VERSION)
    converge(host)


def running_command(pattern):
    """A shell test: does a process whose command line matches PATTERN run? The images are minbase: no
    pgrep or ps, so /proc is read. The pattern's [x] keeps it from matching this check's own command."""
    return ("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <\"$f\"; echo; done 2>/dev/null | grep -q '%s'"
            % pattern)


def test_killed_mid_build_then_rerun_converges(converged):
    """SIGKILL to ansible-playbook (and its process group) during a DKMS build; the re-run converges.

    The build on the host outlives the controller: podman exec, like sshd, leaves the remote command
    running. The role does not detect a concurrent orphaned build (DKMS 3.0 has no lock), so the test
    waits for it to end, as an operator re-running later would; a re-run racing it is not covered.
    """
    host = converged
    # What a killed run that had added the temporary source leaves behind (a converged host needs no
    # package, so this run would not add it): the re-run must remove it by its prefix.
    leftover = "/etc/apt/sources.list.d/hypermotion-linux-agent-backports.sources"
    host.sh("printf 'Types: deb\\nURIs: http://deb.debian.org/debian\\nSuites: bookworm-backports\\n"
            "Components: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' > %s" % leftover)
    variables = good_vars(host)
    variables["dattobd_force"] = True
    process, log = host.start_playbook(INSTALL, host.console_vars, extra_vars=variables)
    building = running_command("[d]kms build -m dattobd")
    try:
        deadline = time.monotonic() + 1200
        while host.sh(building, check=False).returncode != 0:
            assert process.poll() is None, "the run ended before the build was seen:\n" + log.read_text()[-4000:]
            assert time.monotonic() < deadline, "no DKMS build seen in 20 min"
            time.sleep(0.3)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 900
    while host.sh(running_command("[/]usr/sbin/dkms"), check=False).returncode == 0:
        assert time.monotonic() < deadline, "the orphaned DKMS build did not end in 15 min"
        time.sleep(2)
    print("after the kill: " + host.sh("dkms status dattobd; ls %s 2>/dev/null || true" % SOURCES_GLOB).stdout)
    converge(host)


def test_tls_opt_out_warns(converged):
    """linux_agent_console_validate_certs: false works against a CA the host does not trust, and says so."""
    host = converged
    run = converge(host, {"linux_agent_console_validate_certs": False,
                          "linux_agent_console_ca": str(host.pki / "other-ca.crt")})
    # Ansible wraps warnings at the terminal width.
    assert "[WARNING]: TLS verification of the console is turned off" in " ".join(run.output.split()), run.tail()
    # The next rows start from the normal settings: the console's own CA back on the host.
    converge(host)


def test_key_files_root_0600(converged):
    host = converged
    assert host.sh("stat -c '%%a %%U %%G' %s" % MONITOR_KEY).stdout.split() == ["600", "root", "root"]
    assert host.sh("stat -c '%a %U %G' /opt/hypermotion-monitor/etc").stdout.split() == ["750", "root", "root"]


def test_monitor_wrong_checksum_never_placed_nor_run(converged):
    """A monitor executable whose sha256 does not match is refused: never at its destination, never started."""
    host = converged
    sums = dict(host.console["hm_console_sha256"])
    sums["hypermotion-monitor"] = "0" * 64
    unit = "systemctl show -p InvocationID -p ExecMainPID -p NRestarts hypermotion-monitor"
    before = host.sh(unit).stdout
    fault_on_converged(host, {"monitor_sha256": sums},
                       ["Checksum mismatch", "hypermotion-monitor", "0" * 64, "not used"])
    assert host.sh(unit).stdout == before, "the monitor was restarted"
    leftovers = host.sh("find /opt/hypermotion-monitor -name '.hypermotion-monitor*'").stdout.strip()
    assert not leftovers, "partial download left: " + leftovers
    converge(host)


def test_secrets_only_at_their_destination(converged):
    """After every -vvv run: no token or key line in the host's files (but the key's own) or journal,
    nor in the controller's run logs and Ansible's local directories."""
    host = converged
    patterns = host.work / "secret-patterns"
    patterns.write_text("\n".join(host.secrets) + "\n")
    patterns.chmod(0o600)
    # /run is not searched: the pattern file sits there for the length of this check.
    host.copy_in(patterns, "/run/hm-secret-patterns")
    try:
        found = host.sh(
            "grep -rlF -f /run/hm-secret-patterns /var/lib/hypermotion-linux-agent /var/lib/hypermotion-monitor "
            "/tmp /var/tmp /var/log /root /etc /opt /usr/local /usr/src /var/lib/dkms 2>/dev/null "
            "| grep -vx %s || true" % MONITOR_KEY).stdout.strip()
        journal = host.sh("journalctl --no-pager -o cat | grep -cF -f /run/hm-secret-patterns || true").stdout.strip()
    finally:
        host.sh("rm -f /run/hm-secret-patterns")
    assert not found, "secrets in files other than their destination: " + found
    assert journal == "0", "secrets in the journal (%s lines)" % journal
    controller = [path for path in [*host.work.glob("run-*.log"), *(host.work / "ansible-home").rglob("*")]
                  if path.is_file() and any(s in path.read_text(errors="replace") for s in host.secrets)]
    assert not controller, "secrets in the controller's logs: %s" % controller


PROBE = "hm-fault-probe"
# A package whose postinst fails until a flag file exists: what a kernel install that stopped in its
# maintainer scripts leaves behind (dpkg status half-configured).
PROBE_DEB = rf"""
set -e
d=/var/tmp/{PROBE}
rm -rf "$d" && mkdir -p "$d/DEBIAN"
printf 'Package: {PROBE}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@x.invalid>\n' > "$d/DEBIAN/control"
printf 'Description: fault probe\n' >> "$d/DEBIAN/control"
printf '#!/bin/sh\n[ -e /var/tmp/{PROBE}-ok ] && exit 0\necho "{PROBE}: configure failed" >&2\n' > "$d/DEBIAN/postinst"
echo 'exit 1' >> "$d/DEBIAN/postinst"
chmod 0755 "$d/DEBIAN/postinst"
dpkg-deb --build "$d" "$d.deb" >/dev/null
dpkg -i "$d.deb" >/dev/null 2>&1 || true
dpkg-query -W -f='${{db:Status-Abbrev}}' {PROBE}
"""


def test_dpkg_half_configured_refused(converged):
    """An earlier package run left dpkg half-done: refused before anything changes, naming the package."""
    host = converged
    try:
        assert host.sh(PROBE_DEB).stdout.strip() == "iF", "the probe package is not half-configured"
        fault_on_converged(host, {}, [PROBE, "half-configured", "dpkg --configure -a", "Nothing was changed"])
        # The fault removed: the package's problem fixed, then dpkg finishes its configuration.
        host.sh("touch /var/tmp/%s-ok && dpkg --configure -a" % PROBE)
        converge(host)
    finally:
        host.sh(f"touch /var/tmp/{PROBE}-ok; dpkg --purge {PROBE} >/dev/null 2>&1; rm -rf /var/tmp/{PROBE}*",
                check=False)


# The facts source of Secure Boot, doubled: kernel_facts asks mokutil first. Secure Boot on, nothing enrolled.
FAKE_MOKUTIL = r"""#!/bin/sh
case "$1" in
--sb-state) echo "SecureBoot enabled" ;;
--test-key) echo "$2 is not enrolled" ;;
*) echo "test double of mokutil: $* not supported" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def secure_boot(converged):
    host = converged
    fake = host.work / "mokutil"
    fake.write_text(FAKE_MOKUTIL)
    fake.chmod(0o755)
    host.copy_in(fake, "/usr/local/sbin/mokutil")
    try:
        yield host
    finally:
        host.sh("rm -f /usr/local/sbin/mokutil")


def test_secure_boot_unsigned_refused(secure_boot):
    """Secure Boot on and signing not configured: refused before anything changes."""
    fault_on_converged(secure_boot, {}, ["Secure Boot is enabled", "cannot load", "dattobd_mok_signing: true",
                                         "mokutil --import /var/lib/dkms/mok.pub", "reboot", "Nothing was changed"])


def test_secure_boot_signed_enrolment_reported(secure_boot):
    """With dattobd_mok_signing DKMS signs what it builds (forced here), and the missing enrolment is reported."""
    host = secure_boot
    run = converge(host, {"dattobd_mok_signing": True, "dattobd_force": True})
    signer = host.sh("modinfo -F signer %s" % installed_ko(host, host.built)).stdout.strip()
    assert signer, "the rebuilt module carries no signature"
    text = " ".join(run.output.split())
    assert "[WARNING]: MOK enrolment needed" in text, run.tail()
    assert "MOK enrolment needed: dattobd is signed by %s" % signer in text, run.tail()
    assert "mokutil --import /var/lib/dkms/mok.pub" in text


# --- issue 16 item 5: every path a full install writes is one the fast path reads ---------------------------

SIGNING_CONF = "/etc/dkms/framework.conf.d/hypermotion-dattobd-signing.conf"
# The operator's own signing key pair (dattobd_mok_signing_key/_certificate), on the host before the install:
# with a key other than DKMS's own, the install writes SIGNING_CONF.
MOK_KEY, MOK_CERT = "/root/hm-test-mok/signing.key", "/root/hm-test-mok/signing.der"
MARKER = "/var/tmp/hm-install-marker"
# Every path on the root file system (find -xdev: not /proc, /sys, /dev, /run, /tmp, nor podman's bind mounts).
LIST_PATHS = "find / -xdev -printf '%y %p\\n'"
# What is not the install's doing, each tree with its owner. Everything else created, changed or removed by the
# install must be read by converged_state, or the test fails naming it.
OTHERS = {
    "/var/lib/dpkg": "dpkg's database (packages are fingerprinted by name and version)",
    "/var/lib/apt": "apt's lists and state",
    "/var/cache/apt": "apt's downloaded packages",
    "/var/cache/debconf": "debconf's answers (package maintainer scripts)",
    "/var/cache/man": "man-db's index (its dpkg trigger)",
    "/var/cache/ldconfig": "ldconfig's auxiliary cache",
    "/etc/ld.so.cache": "the dynamic loader's cache, rebuilt by ldconfig from the libraries the fast path reads",
    "/etc/alternatives": "update-alternatives (maintainer scripts of the toolchain packages)",
    "/var/lib/systemd": "systemd's own state and deb-systemd-helper's records of package-enabled units",
    "/var/log": "logs and the journal",
    "/var/tmp": "Ansible's remote temporary directory and this test's own files",
    "/root/.ansible": "Ansible's per-user directory on the target",
    "/var/lib/dkms/mok.key": "DKMS's own signing key, made by its first build (any module's)",
    "/var/lib/dkms/mok.pub": "DKMS's own signing certificate, made with it",
}
SERVICE_STATE = {
    # Created by the monitor role, then written by the running monitor: its contents are the service's, not
    # the install's. A missing or broken directory shows as a failed monitor, which the fast path checks.
    "/var/lib/hypermotion-monitor": "the monitor's state directory (monitor_state_dir)",
    # Written by the running agent (its heartbeat): the fast path checks that the agent service runs.
    "/var/lib/egisplus-agent": "the agent's state directory",
}
# Packages paths and the merged /usr: the same file under two names.
MERGED = ("/lib/", "/lib64/", "/bin/", "/sbin/")


def canonical(path):
    return "/usr" + path if path.startswith(MERGED) else path


def below(path, tops):
    return any(path == top or path.startswith(top.rstrip("/") + "/") for top in tops)


def listing(host):
    """{canonical path: type} of the root file system."""
    out = host.sh(LIST_PATHS + " 2>/dev/null || true").stdout
    return {canonical(line[2:]): line[0] for line in out.splitlines() if len(line) > 2}


def package_state(host):
    return dict(line.split(" ", 1) for line in host.sh(
        "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n'").stdout.splitlines())


def package_files(host):
    """{canonical path: {package}} from dpkg's file lists."""
    owners = {}
    out = host.sh("cd /var/lib/dpkg/info && grep -H '' *.list || true").stdout
    for line in out.splitlines():
        name, path = line.split(".list:", 1)
        owners.setdefault(canonical(path), set()).add(name.split(":")[0])
    return owners


def attribute(path, stamp, managed_absent, packages, owners, types=None):
    """Why the fast path sees PATH, or None. PACKAGES: {name: how} of the packages the run installed or upgraded."""
    if below(path, OTHERS):
        return "not the install's"
    if below(path, SERVICE_STATE):
        return "service state"
    if below(path, [canonical(p) for p in stamp["fingerprint"]["paths"]]):
        return "paths"
    for release, entry in stamp["fingerprint"]["kernels"].items():
        files = [canonical(module["path"]) for module in entry["modules"].values() if module["path"]]
        if path in files + ["/boot/vmlinuz-" + release, "/boot/initrd.img-" + release,
                            # depmod writes its whole index together; the fast path reads modules.dep of it.
                            ] or re.fullmatch(r"/usr/lib/modules/%s/modules\.[a-z.]+" % re.escape(release), path) \
                or path == "/var/lib/initramfs-tools/" + release:  # update-initramfs's record of that initramfs
            return "kernel " + release
    for unit in stamp["fingerprint"]["units"]:
        name = unit if "." in unit else unit + ".service"
        if re.fullmatch(r"/etc/systemd/system/[^/]+\.(wants|requires)/%s" % re.escape(name), path):
            return "unit enablement"
    if any(fnmatch.fnmatchcase(path, pattern) for pattern in managed_absent):
        return "absent"
    for owner in owners.get(path, ()):
        if owner in stamp["fingerprint"]["packages"]:
            return "package " + owner
        # Pulled in (auto) or upgraded by apt for a fingerprinted package: removing it changes that package.
        if packages.get(owner) in ("auto", "upgraded"):
            return "dependency " + owner
    # update-alternatives' links (the toolchain's maintainer scripts: cc, cpp, lzma and their manual pages).
    types = types or {}
    if types.get(path) == "l" and "/etc/alternatives/" + path.rsplit("/", 1)[-1] in types:
        return "alternative"
    return None


def unread_paths(data):
    """(packages asked for by name but not fingerprinted, paths neither read by converged_state nor excluded).

    DATA is what the test collected on the host (plain JSON: the test can dump it and this can replay it)."""
    before, after = data["before"], data["after"]
    stamp, owners = data["stamp"], {path: set(names) for path, names in data["owners"].items()}
    changed = {canonical(path) for path in data["changed"]}
    created, removed = set(after) - set(before), set(before) - set(after)
    # A directory that was there already: what changed in it is listed entry by entry.
    touched = sorted(path for path in (changed | created | removed) if path in created or after.get(path) != "d")
    new_packages = {name for name, state in data["packages_after"].items()
                    if data["packages_before"].get(name) != state}
    packages = {name: "upgraded" if name in data["packages_before"] else "auto" if name in data["auto"]
                else "manual" for name in new_packages}

    unread, read, created_dirs = {}, set(), []
    for path in touched:
        if path in created and after.get(path) == "d":
            created_dirs.append(path)
        elif attribute(path, stamp, data["managed_absent"], packages, owners, after) is None:
            unread[path] = "removed" if path in removed else "created" if path in created else "changed"
            if path in owners:
                unread[path] += ", owned by " + ",".join(sorted(owners[path]))
        else:
            read.add(path)
    # A new directory is read itself, or holds something that is.
    holding = {parent for path in read for parent in pathlib.PurePosixPath(path).parents}
    for path in created_dirs:
        if attribute(path, stamp, data["managed_absent"], packages, owners, after) is None and \
                pathlib.PurePosixPath(path) not in holding:
            unread[path] = "created directory, nothing read below it"
    asked = sorted(name for name, how in packages.items() if how == "manual"
                   and name not in stamp["fingerprint"]["packages"])
    return asked, ["%s (%s)" % item for item in sorted(unread.items())]


def test_every_path_the_install_writes_is_read_by_the_fast_path(host, tmp_path):
    """A full install (with a signing key of the operator's own, so that DKMS's signing configuration is written)
    on a host without the module: every path it creates, changes or removes outside dpkg's, apt's and DKMS's own
    trees is read by converged_state (a managed path or below one, a kernel's files, a fingerprinted package's
    or its dependency's file, a unit's enablement). Then uninstall removes the signing configuration.

    Last in the file: after the fault rows on a converged host it uninstalls first, and it leaves the host
    uninstalled. HM_PATHS_DUMP=FILE keeps what it collected, for unread_paths() to replay."""
    if "dattobd" in host.sh("command -v dkms >/dev/null && dkms status dattobd || true").stdout:
        run = host.playbook(testbed.REPO / "playbooks" / "uninstall.yml", host.console_vars)
        assert run.rc == 0, run.tail()
    subprocess.run(["openssl", "req", "-new", "-x509", "-nodes", "-days", "30", "-subj", "/CN=hm test signing",
                    "-newkey", "rsa:2048", "-keyout", str(tmp_path / "signing.key"), "-outform", "DER",
                    "-out", str(tmp_path / "signing.der")], check=True, capture_output=True)
    host.sh("mkdir -p -m 0700 %s" % os.path.dirname(MOK_KEY))
    host.copy_in(tmp_path / "signing.key", MOK_KEY)
    host.copy_in(tmp_path / "signing.der", MOK_CERT)
    host.sh("chmod 0600 %s && rm -f %s && touch %s && sleep 1" % (MOK_KEY, SIGNING_CONF, MARKER))
    data = {"before": listing(host), "packages_before": package_state(host)}

    run = install(host, {"dattobd_mok_signing": True, "dattobd_mok_signing_key": MOK_KEY,
                         "dattobd_mok_certificate": MOK_CERT})
    assert run.rc == 0, run.tail()
    assert host.sh("test -f " + SIGNING_CONF, check=False).returncode == 0, "the install did not write " + SIGNING_CONF
    stamp = host.sh("cat %s/converged.json" % STATE_DIR, check=False)
    assert stamp.returncode == 0, "the install recorded no verified state:\n" + run.tail()

    data.update(
        after=listing(host),
        changed=host.sh("find / -xdev -cnewer %s -printf '%%p\\n' 2>/dev/null || true" % MARKER).stdout.split("\n"),
        stamp=json.loads(stamp.stdout),
        managed_absent=yaml.safe_load((testbed.REPO / "roles" / "linux_agent" / "vars" / "main.yml").read_text())[
            "__linux_agent_leftovers"],
        packages_after=package_state(host),
        auto=host.sh("apt-mark showauto").stdout.split(),
        owners={path: sorted(names) for path, names in package_files(host).items()},
    )
    data["changed"] = [path for path in data["changed"] if path]
    if os.environ.get("HM_PATHS_DUMP"):
        pathlib.Path(os.environ["HM_PATHS_DUMP"]).write_text(json.dumps(data))
    asked, unread = unread_paths(data)
    assert not asked and not unread, (
        "packages the install asked for by name, not fingerprinted by converged_state: %s\n"
        "the install wrote paths converged_state does not read (%d):\n%s"
        % (asked, len(unread), "\n".join(unread[:80])))

    # Uninstall takes the signing configuration with it: DKMS would sign other modules with the key.
    run = host.playbook(testbed.REPO / "playbooks" / "uninstall.yml", host.console_vars)
    assert run.rc == 0, run.tail()
    assert host.sh("test -e " + SIGNING_CONF, check=False).returncode != 0, "uninstall left " + SIGNING_CONF
