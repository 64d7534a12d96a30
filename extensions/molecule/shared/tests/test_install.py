# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an operator expects on a host after playbooks/install.yml (and after uninstall.yml)."""

from __future__ import annotations


def kernels(host):
    values = dict(line.split("=", 1) for line in host.file("/etc/hm-test-kernels").content_string.split())
    return values["built"], values["deferred"]


def explain(host):
    """What a failing assertion needs next to it: DKMS's view and the make.log."""
    return host.run("dkms status; tail -n 30 /var/lib/dkms/dattobd/*/build/make.log 2>/dev/null").stdout


def test_toolchain_and_headers_installed(host, installed):
    built, deferred = kernels(host)
    for package in ("dkms", "gcc", "make", "linux-headers-%s" % built, "linux-headers-%s" % deferred):
        assert host.package(package).is_installed, package
    # Without recommends: the headers meta-package would pull the newest headers and build for them.
    assert not host.package("linux-headers-amd64").is_installed


def test_dkms_built_for_the_kernel_with_symbols(host, installed):
    built, _deferred = kernels(host)
    status = host.check_output("dkms status")
    assert "dattobd/0.12.1, %s, x86_64: installed" % built in status, explain(host)
    assert host.check_output("modinfo -k %s -F version dattobd" % built) == "0.12.1"
    # Loadability without loading: modprobe resolves it for that kernel.
    assert "dattobd.ko" in host.check_output("modprobe --show-depends -S %s dattobd" % built)


def test_kernel_without_symbols_is_deferred_not_built(host, installed):
    _built, deferred = kernels(host)
    assert "dattobd/0.12.1, %s" % deferred not in host.check_output("dkms status")
    assert host.run("modinfo -k %s -n dattobd" % deferred).rc != 0
    unit = host.service("hypermotion-dattobd-build")
    assert unit.is_enabled
    assert host.file("/usr/local/sbin/hypermotion-dattobd-build").mode == 0o755


def test_kernel_hooks_cannot_build_without_symbols(host, installed):
    conf = host.file("/usr/src/dattobd-0.12.1/dkms.conf").content_string
    assert 'PACKAGE_VERSION="0.12.1"' in conf
    assert "@MODULE_VERSION@" not in conf
    # What a kernel package's postinst hook runs for the kernel whose symbols are unknown: DKMS itself
    # must skip dattobd (it autoinstalls any module with an AUTOINSTALL value, even "no").
    _built, deferred = kernels(host)
    hook = host.run("dkms autoinstall -k %s" % deferred)
    assert hook.rc == 0, hook.stdout + hook.stderr
    assert "dattobd/0.12.1, %s" % deferred not in host.check_output("dkms status")


def test_module_in_initramfs(host, installed):
    built, _deferred = kernels(host)
    listing = host.check_output("lsinitramfs /boot/initrd.img-%s" % built)
    assert "dattobd.ko" in listing
    assert host.file("/etc/initramfs-tools/hooks/hypermotion-linux-agent").mode == 0o755


def test_dbdctl_starts_with_its_library(host, installed):
    # dbdctl links libdattobd.so.1 (upstream's `make application`; issue 18: copying only app/dbdctl left a tool
    # that does not start). The library, named by its soname, and the linker-name symlink, on ld.so's path.
    library = host.file("/usr/local/lib/libdattobd.so.1")
    assert library.is_file and not library.is_symlink
    assert (library.mode, library.user, library.group) == (0o644, "root", "root")
    assert host.file("/usr/local/lib/libdattobd.so").linked_to == "/usr/local/lib/libdattobd.so.1"
    assert "=> /usr/local/lib/libdattobd.so.1" in host.check_output("ldconfig -p")
    ldd = host.run("ldd /usr/local/bin/dbdctl")
    assert ldd.rc == 0 and "not found" not in ldd.stdout + ldd.stderr, ldd.stdout + ldd.stderr
    assert "libdattobd.so.1 => /usr/local/lib/libdattobd.so.1" in ldd.stdout, ldd.stdout
    result = host.run("/usr/local/bin/dbdctl --help")
    assert result.rc == 0 and "usage: dbdctl" in result.stdout, result.stdout + result.stderr


def test_boot_configuration(host, installed):
    assert host.file("/etc/modules-load.d/dattobd.conf").content_string.strip().endswith("dattobd")
    assert host.file("/usr/local/bin/dbdctl").mode == 0o755
    # dbdctl runs and explains that the module is not loaded (containers never load modules).
    result = host.run("/usr/local/bin/dbdctl version")
    assert result.rc == 3 and "not loaded" in (result.stdout + result.stderr)
    # Never loaded in a container: /proc/modules (the outer machine's, when podman lets it be read at all)
    # must not list it.
    loaded = host.run("cat /proc/modules 2>/dev/null").stdout.splitlines()
    assert not [line for line in loaded if line.startswith("dattobd ")]


def test_agent_running(host, installed):
    assert host.package("egisplus-agent").is_installed
    agent = host.service("egisplus-agent")
    assert agent.is_enabled and agent.is_running
    assert "status=running" in host.file("/var/lib/egisplus-agent/heartbeat").content_string


def test_monitor_running_with_private_key(host, installed):
    monitor = host.service("hypermotion-monitor")
    assert monitor.is_enabled and monitor.is_running
    key = host.file("/opt/hypermotion-monitor/etc/server.key")
    assert (key.mode, key.user, key.group) == (0o600, "root", "root")
    assert host.file("/opt/hypermotion-monitor/etc/server.crt").mode == 0o644


def test_temporary_sources_removed(host, installed):
    assert host.run("ls /etc/apt/sources.list.d/hypermotion-linux-agent-* 2>/dev/null").stdout == ""
    assert "backports" not in host.check_output("apt-cache policy")
    # The host's own sources are untouched.
    assert host.file("/etc/apt/sources.list.d/debian.sources").exists


def test_uninstall_leaves_no_trace(host, uninstalled):
    assert "dattobd" not in host.check_output("dkms status")
    for path in ("/usr/src/dattobd-0.12.1", "/var/lib/dkms/dattobd", "/etc/modules-load.d/dattobd.conf",
                 "/usr/local/bin/dbdctl", "/usr/local/lib/libdattobd.so.1", "/usr/local/lib/libdattobd.so",
                 "/usr/local/sbin/hypermotion-dattobd-build",
                 "/etc/systemd/system/hypermotion-dattobd-build.service", "/opt/hypermotion-monitor",
                 "/etc/systemd/system/hypermotion-monitor.service", "/var/lib/hypermotion-linux-agent",
                 "/etc/initramfs-tools/hooks/hypermotion-linux-agent"):
        assert not host.file(path).exists, path
    # ... and the loader's cache forgot the library (uninstall ran ldconfig).
    assert "libdattobd" not in host.check_output("ldconfig -p")
    assert not host.package("egisplus-agent").is_installed
    built, deferred = kernels(host)
    for kernel in (built, deferred):
        assert host.run("modinfo -k %s -n dattobd" % kernel).rc != 0
    assert "dattobd.ko" not in host.check_output("lsinitramfs /boot/initrd.img-%s" % built)
