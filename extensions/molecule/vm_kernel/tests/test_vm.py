# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vm_kernel target is a real, booted Debian 12 kernel (not a container)."""

from __future__ import annotations


def test_runs_a_debian_kernel(host):
    release = host.check_output("uname -r")
    assert release.endswith("-amd64"), release
    # The running kernel is the packaged one installed on the guest's disk.
    assert host.package("linux-image-%s" % release).is_installed


def test_is_debian_12_in_a_vm(host):
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.startswith("12")
    assert host.check_output("systemd-detect-virt --vm") == "qemu"


def test_has_python3(host):
    assert host.run("python3 --version").rc == 0


def test_serial_console_and_grub_boot(host):
    cmdline = host.file("/proc/cmdline").content_string.split()
    assert any(arg == "console=ttyS0" or arg.startswith("console=ttyS0,") for arg in cmdline), cmdline
    # Booted by GRUB from the disk (not qemu -kernel): GRUB adds BOOT_IMAGE.
    assert any(arg.startswith("BOOT_IMAGE=") for arg in cmdline), cmdline


# ---- after the stories of converge.yml (install, reboot, kernel upgrade, unsafe order, repair) ----

def test_module_loaded_and_answering(host, installed):
    assert "dattobd" in host.check_output("lsmod")
    # testinfra's File has no character-device check.
    assert host.run("test -c /dev/datto-ctl").rc == 0, "/dev/datto-ctl is not a character device"
    assert '"status"' in host.file("/proc/datto-info").content_string
    assert host.run("/usr/local/bin/dbdctl info").rc == 0


def test_dbdctl_starts_with_its_library(host, installed):
    # dbdctl links libdattobd.so.1 (issue 18): installed on ld.so's path, the tool starts and finds it.
    ldd = host.run("ldd /usr/local/bin/dbdctl")
    assert ldd.rc == 0 and "not found" not in ldd.stdout + ldd.stderr, ldd.stdout + ldd.stderr
    assert "libdattobd.so.1 => /usr/local/lib/libdattobd.so.1" in ldd.stdout, ldd.stdout
    assert host.file("/usr/local/lib/libdattobd.so").linked_to == "/usr/local/lib/libdattobd.so.1"
    result = host.run("/usr/local/bin/dbdctl --help")
    assert result.rc == 0, result.stdout + result.stderr


def test_every_kernel_that_ran_has_its_module(host, installed):
    running = host.check_output("uname -r")
    assert running.startswith("6.12."), running
    installed = host.check_output("dkms status")
    # The install kernel (6.1), the safe-order upgrade and the unsafe-order kernel: three kernels.
    assert installed.count(": installed") >= 3, installed
    assert "dattobd.ko" in host.check_output("lsinitramfs /boot/initrd.img-%s" % running)


def test_services_up_after_the_reboots(host, installed):
    for name in ("egisplus-agent", "hypermotion-monitor", "hypermotion-dattobd-build"):
        service = host.service(name)
        assert service.is_enabled, name
    assert host.service("egisplus-agent").is_running
    assert host.service("hypermotion-monitor").is_running


def test_uninstall_leaves_no_module_and_no_boot_hooks(host, uninstalled):
    assert "dattobd" not in host.check_output("lsmod")
    assert "dattobd" not in host.check_output("dkms status")
    for kernel in host.check_output("ls /lib/modules").split():
        assert host.run("modinfo -k %s -n dattobd" % kernel).rc != 0, kernel
    for path in ("/etc/modules-load.d/dattobd.conf", "/etc/systemd/system/hypermotion-dattobd-build.service",
                 "/etc/initramfs-tools/hooks/hypermotion-linux-agent", "/usr/src/dattobd-0.12.1",
                 "/usr/local/bin/dbdctl", "/usr/local/lib/libdattobd.so.1", "/usr/local/lib/libdattobd.so"):
        assert not host.file(path).exists, path
    assert "libdattobd" not in host.check_output("ldconfig -p")
    running = host.check_output("uname -r")
    assert "dattobd.ko" not in host.check_output("lsinitramfs /boot/initrd.img-%s" % running)
