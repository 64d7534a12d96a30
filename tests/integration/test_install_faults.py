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
import pathlib
import secrets
import shutil
import subprocess

import pytest
import testbed
from install_target import Console, ConsoleSh, SystemdTarget, free_port, read_vars, snapshot_diff, stop_console

pytestmark = pytest.mark.slow

VERSION = (testbed.FIXTURES / "dattobd" / "VERSION").read_text().strip()
TARBALL = "dattobd-%s.tar.gz" % VERSION
INSTALL = testbed.REPO / "playbooks" / "install.yml"
PREPARE = testbed.REPO / "extensions" / "molecule" / "shared" / "prepare.yml"
FAKE_KERNEL = "6.1.0-999-amd64"
SOURCES_GLOB = "/etc/apt/sources.list.d/hypermotion-linux-agent-*"


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
]


@pytest.mark.parametrize(("inject", "keywords"), ROWS)
def test_fault_refused_host_unchanged(host, inject, keywords):
    with contextlib.ExitStack() as stack:
        overrides, checks = inject(host, stack)
        run_fault(host, overrides, [word.replace(BUILT, host.built) for word in keywords])
        for check in checks:
            check(host)


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
