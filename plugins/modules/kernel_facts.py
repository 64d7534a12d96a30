#!/usr/bin/python
# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kernel_facts
short_description: Read the kernels of a host and the state of out-of-tree modules for each
version_added: 0.1.0
description:
  - Reports the running kernel, every installed kernel (from C(/boot) and C(/lib/modules)) with its
    headers, symbol map and initramfs, the kernel that boots next, the initramfs tool, Secure Boot,
    DKMS, and for each module named in O(modules) whether it is built, installed, in the initramfs
    and loaded — per kernel.
  - Returns everything under the single fact C(hypermotion_kernel). Never changes the host and
    never uses the network.
  - Tells whether the running kernel belongs to this system. In a container or chroot it does
    not (C(uname -r) is the outer machine's kernel), so C(can_load_modules) is false and the
    target kernels default to the installed kernels that have headers.
author:
  - HyperMotion Linux Agent engineers (@hypermotion)
extends_documentation_fragment:
  - hypermotion.linux_agent.attributes
  - hypermotion.linux_agent.attributes.FACTS
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
options:
  modules:
    description:
      - Kernel module names (for example V(dattobd)) to report per kernel.
    type: list
    elements: str
    default: []
  initramfs_modules:
    description:
      - Names of O(modules) that belong in the initramfs. For these, C(initramfs_current) is true only when the
        image carries the installed module and is newer than it (or lacks a module that is not installed).
      - For every other name C(initramfs_current) is computed from presence only - true unless the image carries
        a copy of the module that is older than the installed one, or one that is no longer installed - so a
        module that never goes into the initramfs (v4l2loopback, most DKMS drivers) is not a stale image.
      - Defaults to the names of O(modules) that this collection puts into the initramfs itself, that is
        V(dattobd), whose snapshot state must be reloaded before the root filesystem is mounted read-write;
        so C(modules=[dattobd]) keeps its meaning.
    type: list
    elements: str
  disk_paths:
    description:
      - Paths whose free space to report in C(disk_free_mb) (the nearest existing parent is measured).
    type: list
    elements: path
    default: []
  check_initramfs:
    description:
      - Look inside each kernel's initramfs for the modules in O(modules) (C(lsinitramfs) or
        C(lsinitrd)). This decompresses the image and costs about a second per kernel.
    type: bool
    default: true
  mok_certificate:
    description:
      - A module-signing certificate (DER, for example DKMS's V(/var/lib/dkms/mok.pub)) to look up in the
        MOK list with C(mokutil --test-key) when Secure Boot is enabled. The answer is C(mok_enrolled);
        a certificate that is not enrolled also gives a warning, as modules it signed cannot load.
    type: path
notes:
  - The symbol map status follows dattobd's configure step. V(real) is a map listing
    C(__per_cpu_start); V(kallsyms) means no real map but the kernel is the running one, so
    C(/proc/kallsyms) serves; V(stub) is Debian's placeholder C(/boot/System.map-*) that points
    to the C(-dbg) package; V(missing) means none. Building dattobd for a kernel whose map is
    V(stub) or V(missing) produces a module with wrong symbol addresses or fails.
"""

EXAMPLES = r"""
- name: Read kernels and the dattobd module state
  hypermotion.linux_agent.kernel_facts:
    modules:
      - dattobd

- name: Show the kernel that boots next and whether dattobd is installed for it
  vars:
    kernel_info: "{{ ansible_facts['hypermotion_kernel'] }}"
  ansible.builtin.debug:
    msg: >-
      {{ kernel_info['next_boot_kernel'] }}:
      {{ kernel_info['kernels'][kernel_info['next_boot_kernel']]['modules']['dattobd']['installed'] }}
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    hypermotion_kernel:
      description: Everything this module reads.
      returned: always
      type: dict
      contains:
        running_kernel:
          description: C(uname -r) of the running kernel.
          type: str
          sample: 6.1.0-50-amd64
        arch:
          description: Machine architecture.
          type: str
          sample: x86_64
        running_kernel_installed:
          description: Whether the running kernel has a C(/lib/modules) directory on this system.
          type: bool
        container:
          description: Container or chroot type this runs in (V(podman), V(docker), V(chroot), ...), or null.
          type: str
        can_load_modules:
          description: Whether modules may be loaded here (the running kernel is this system's own).
          type: bool
        load_blocked_reason:
          description: Why modules must not be loaded here, or null.
          type: str
        distribution:
          description:
            - C(id), C(family) (V(Debian), V(RedHat), V(Suse)), C(version), C(version_major),
              C(codename), C(pretty_name).
          type: dict
        package_manager:
          description: V(apt), V(dnf), V(yum), V(zypper) or V(unknown).
          type: str
        kernel_list:
          description: Installed kernel releases, oldest first.
          type: list
          elements: str
        kernels:
          description: Per installed kernel release.
          type: dict
          contains:
            image:
              description: Path of the kernel image, or null.
              type: str
            image_present:
              description: Whether an image exists in C(/boot).
              type: bool
            modules_dir_present:
              description: Whether C(/lib/modules/RELEASE) exists.
              type: bool
            headers_present:
              description: Whether C(/lib/modules/RELEASE/build/include) exists (what DKMS needs).
              type: bool
            headers_package:
              description: Name of the package that provides this kernel's headers on this distribution.
              type: str
              sample: linux-headers-6.1.0-50-amd64
            symbol_map:
              description: V(real), V(kallsyms), V(stub) or V(missing).
              type: str
            symbol_map_path:
              description: Path of the map that was classified, or null.
              type: str
            initramfs:
              description: Path of the initramfs image (the one that exists, else where the tool would write it).
              type: str
            initramfs_present:
              description: Whether the initramfs image exists.
              type: bool
            running:
              description: Whether this is the running kernel.
              type: bool
            next_boot:
              description: Whether this is the kernel that boots next.
              type: bool
            modules:
              description:
                - Per name in O(modules) C(built_versions), C(installed_path), C(installed), C(in_modules_dep),
                  C(in_initramfs), C(loaded), C(initramfs_required) (the name is in O(initramfs_modules)) and
                  C(initramfs_current) (null when the image was not read). For a required module it says that the
                  image carries the installed module and is newer than it, or lacks a module that is not installed;
                  for any other module that the image carries no stale or removed copy of it.
              type: dict
        next_boot_kernel:
          description: The kernel that boots next, or null when no kernel is installed.
          type: str
        next_boot_source:
          description: How the next-boot kernel was found (V(grub), V(grubby), V(newest-installed)).
          type: str
        target_kernels:
          description: >-
            Kernels an out-of-tree module must be built for: the running kernel and the next-boot
            kernel on a host of its own; every installed kernel that has headers in a container or chroot.
          type: list
          elements: str
        initramfs_tool:
          description: V(update-initramfs), V(dracut), V(mkinitrd) or null.
          type: str
        secure_boot:
          description: V(enabled), V(disabled) or V(unknown).
          type: str
        secure_boot_source:
          description: Where the Secure Boot state came from (V(mokutil), V(efivars), V(none)).
          type: str
        mok_enrolled:
          description:
            - Whether O(mok_certificate) is in the MOK list (V(enrolled), V(pending), V(not-enrolled),
              V(unknown)); null when not asked, Secure Boot is not enabled or the certificate does not exist.
          type: str
        disk_free_mb:
          description: Free megabytes (for root) of the filesystem holding each path of O(disk_paths).
          type: dict
          sample: {"/usr/src": 10240, "/var/lib/dkms": 10240}
        dkms:
          description:
            - C(installed) (bool), C(version) (str or null),
              C(no_autoinstall) (bool, C(/etc/dkms/no-autoinstall) exists).
          type: dict
"""

import os
import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hypermotion.linux_agent.plugins.module_utils import _host, _kernel, _secure_boot

# Every file read goes below ROOT, so unit tests can point it at a prepared tree.
ROOT = "/"


def _command_output(module, name, args):
    path = module.get_bin_path(name)
    if not path:
        return None
    rc, out, err = module.run_command([path] + args)
    return (rc, out, err)


def _package_manager(module):
    for name in ("apt-get", "dnf", "yum", "zypper"):
        if module.get_bin_path(name):
            return "apt" if name == "apt-get" else name
    return "unknown"


def _initramfs_tool(module):
    for name in ("update-initramfs", "dracut", "mkinitrd"):
        if module.get_bin_path(name):
            return name
    return None


def _mok_enrolled(module, secure_boot, certificate):
    """mokutil --test-key CERT, only where the answer matters: Secure Boot on and the file present."""
    if not certificate or secure_boot != "enabled" or not os.path.isfile(os.path.join(ROOT, certificate.lstrip("/"))):
        return None
    result = _command_output(module, "mokutil", ["--test-key", certificate])
    if result is None:
        return "unknown"
    rc, out, err = result
    state = _kernel.parse_mokutil_test_key(out + err)
    if state == "not-enrolled":
        module.warn("MOK enrolment needed: Secure Boot is enabled and %s, the certificate modules are signed "
                    "with, is not enrolled, so they cannot load. Run `mokutil --import %s` and confirm the "
                    "enrolment in the MOK manager at the next boot." % (certificate, certificate))
    return state


def _next_boot(module, kernels):
    grub_cfg = _host.read_text(ROOT, "/boot/grub/grub.cfg") or _host.read_text(ROOT, "/boot/grub2/grub.cfg")
    if grub_cfg:
        release = _kernel.next_boot_from_grub(
            grub_cfg,
            _host.read_text(ROOT, "/boot/grub/grubenv") or _host.read_text(ROOT, "/boot/grub2/grubenv") or "",
            _kernel.grub_default_setting(_host.read_text(ROOT, "/etc/default/grub") or ""),
        )
        if release and release in kernels:
            return release, "grub"
    result = _command_output(module, "grubby", ["--default-kernel"]) if ROOT == "/" else None
    if result is not None and result[0] == 0:
        release = os.path.basename(result[1].strip()).replace("vmlinuz-", "", 1)
        if release in kernels:
            return release, "grubby"
    bootable = [k for k in kernels if _host.image_path(ROOT, k)]
    return _kernel.newest_kernel(bootable or kernels), "newest-installed"


def _initramfs_listing(module, tool, image):
    lister = "lsinitrd" if tool == "dracut" else "lsinitramfs"
    result = _command_output(module, lister, [os.path.join(ROOT, image.lstrip("/"))])
    if result is None or result[0] != 0:
        return None
    return result[1]


def _module_in_listing(listing, name):
    for suffix in _host.MODULE_SUFFIXES:
        if ("/%s%s" % (name, suffix)) in listing:
            return True
    return False


def _free_mb(path):
    probe = os.path.join(ROOT, path.lstrip("/"))
    while not os.path.exists(probe) and probe not in ("/", ""):
        probe = os.path.dirname(probe)
    stats = os.statvfs(probe or "/")
    return stats.f_bavail * stats.f_frsize // (1024 * 1024)


# Modules this collection itself puts into the initramfs (roles/initramfs): the default of initramfs_modules.
INITRAMFS_MODULES = ("dattobd",)


def _initramfs_current(release, image, installed_path, in_initramfs, required=True):
    """Whether the image matches the installed module.

    Required in the initramfs: the image carries it (and is newer) or lacks a removed one. Not required:
    the image carries no copy of it, or a copy at least as new as the installed module.
    """
    if in_initramfs is None:
        return None
    if installed_path is None:
        return not in_initramfs
    if not in_initramfs:
        return not required
    module_mtime = os.stat(os.path.join(ROOT, installed_path.lstrip("/"))).st_mtime
    return module_mtime <= os.stat(os.path.join(ROOT, image.lstrip("/"))).st_mtime


def gather(module):
    running = platform.release()
    modules = module.params["modules"]
    if module.params["initramfs_modules"] is None:
        required = set(name for name in modules if name in INITRAMFS_MODULES)
    else:
        required = set(module.params["initramfs_modules"])
    os_release = _kernel.parse_os_release(
        _host.read_text(ROOT, "/etc/os-release") or _host.read_text(ROOT, "/usr/lib/os-release") or ""
    )
    distribution = _kernel.distribution_from_os_release(os_release)
    family = distribution["family"]
    release_list = _host.installed_kernels(ROOT)
    running_installed = os.path.isdir(os.path.join(ROOT, "lib/modules", running))
    container = _host.container_kind(ROOT)
    if container:
        blocked = "running inside %s: the running kernel %s belongs to the outer machine" % (container, running)
    elif not running_installed:
        blocked = "the running kernel %s is not installed on this system (/lib/modules/%s missing)" % (running, running)
    else:
        blocked = None

    next_boot, next_source = _next_boot(module, release_list)
    initramfs_tool = _initramfs_tool(module)
    loaded = _host.loaded_modules(ROOT) if modules else set()

    kernels = {}
    for release in release_list:
        image = _host.image_path(ROOT, release)
        map_status, map_path = _host.symbol_map(ROOT, release, running if running_installed else None)
        initramfs = _host.initramfs_image(ROOT, release, family)
        info = {
            "release": release,
            "image": image,
            "image_present": image is not None,
            "modules_dir_present": os.path.isdir(os.path.join(ROOT, "lib/modules", release)),
            "headers_present": _host.headers_present(ROOT, release),
            "headers_package": _kernel.headers_package(family, release),
            "symbol_map": map_status,
            "symbol_map_path": map_path,
            "initramfs": initramfs or _kernel.initramfs_default_path(family, release),
            "initramfs_present": initramfs is not None,
            "running": release == running,
            "next_boot": release == next_boot,
            "modules": {},
        }
        listing = None
        if modules and initramfs and module.params["check_initramfs"] and initramfs_tool:
            listing = _initramfs_listing(module, initramfs_tool, initramfs)
        for name in modules:
            installed_path = _host.find_module_file(ROOT, release, name)
            in_initramfs = None if listing is None else _module_in_listing(listing, name)
            info["modules"][name] = {
                "built_versions": _host.dkms_built_versions(ROOT, name, release),
                "installed_path": installed_path,
                "installed": installed_path is not None,
                "in_modules_dep": _host.in_modules_dep(ROOT, release, name),
                "in_initramfs": in_initramfs,
                "initramfs_required": name in required,
                "initramfs_current": _initramfs_current(release, initramfs, installed_path, in_initramfs,
                                                        required=name in required),
                "loaded": bool(release == running and running_installed and blocked is None and name in loaded),
            }
        kernels[release] = info

    if blocked is None:
        targets = [running] + ([next_boot] if next_boot and next_boot != running else [])
    else:
        targets = [k for k in release_list if kernels[k]["headers_present"]] or list(release_list)

    dkms_version = None
    dkms = _command_output(module, "dkms", ["--version"])
    if dkms is not None and dkms[0] == 0:
        dkms_version = dkms[1].strip().replace("dkms-", "").replace("dkms:", "").strip() or None
    secure_boot, secure_boot_source = _secure_boot.read_state(module, ROOT)

    return {
        "running_kernel": running,
        "arch": platform.machine(),
        "running_kernel_installed": running_installed,
        "container": container,
        "can_load_modules": blocked is None,
        "load_blocked_reason": blocked,
        "distribution": distribution,
        "package_manager": _package_manager(module),
        "kernel_list": release_list,
        "kernels": kernels,
        "next_boot_kernel": next_boot,
        "next_boot_source": next_source,
        "target_kernels": targets,
        "initramfs_tool": initramfs_tool,
        "secure_boot": secure_boot,
        "secure_boot_source": secure_boot_source,
        "mok_enrolled": _mok_enrolled(module, secure_boot, module.params["mok_certificate"]),
        "disk_free_mb": dict((path, _free_mb(path)) for path in module.params["disk_paths"]),
        "dkms": {
            "installed": dkms is not None,
            "version": dkms_version,
            "no_autoinstall": os.path.exists(os.path.join(ROOT, "etc/dkms/no-autoinstall")),
        },
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            modules=dict(type="list", elements="str", default=[]),
            initramfs_modules=dict(type="list", elements="str"),
            check_initramfs=dict(type="bool", default=True),
            disk_paths=dict(type="list", elements="path", default=[]),
            mok_certificate=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LANGUAGE": "C", "LC_ALL": "C"}
    module.exit_json(changed=False, ansible_facts={"hypermotion_kernel": gather(module)})


if __name__ == "__main__":
    main()
