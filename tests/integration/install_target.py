# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for running playbooks/install.yml against a systemd container, like the molecule scenarios.

``SystemdTarget`` boots tests/testbed's Debian image with systemd as PID 1 on slirp4netns (the guest
reaches a console on this machine's loopback at 10.0.2.2), prepares it with molecule's own
extensions/molecule/shared/prepare.yml (two Debian kernels, a real System.map for the newest, the
local console), runs playbooks with the podman connection and takes snapshots of the host state an
install may touch. ``Console`` runs tests/console/console.py on a root of the test's choosing.
"""

from __future__ import annotations

import difflib
import json
import pathlib
import re
import shutil
import socket
import subprocess
import time
import uuid

from testbed import CACHE, REPO, TESTBED

VENV_BIN = REPO / ".venv" / "bin"
CONSOLE_SH = TESTBED / "console.sh"

# What an install may touch, read inside the target. Directory sizes and mtimes are left out on purpose:
# a file added and removed again (the temporary apt source) changes them without changing the host.
SNAPSHOT_SCRIPT = r"""
set -u
section() { printf '## %s\n' "$1"; }
section packages
dpkg-query -W -f='${Package}:${Architecture} ${Version} ${db:Status-Abbrev}\n' | sort
for p in /usr/src /var/lib/dkms /etc/apt/sources.list.d /opt /etc/systemd/system /etc/modules-load.d \
         /etc/initramfs-tools /usr/local /lib/modules/*/updates; do
    section "tree $p"
    if [ -e "$p" ]; then
        find "$p" -type d -printf '%p dir %m %U:%G\n' | sort
        # Not DKMS's own signing key: DKMS makes it on the first build it ever runs, for every module.
        find "$p" ! -type d ! -path '/var/lib/dkms/mok.*' -printf '%p %y %m %U:%G %s %l\n' | sort
    else
        echo missing
    fi
done
section "contents"
find /etc/apt/sources.list.d /etc/systemd/system /etc/modules-load.d /etc/initramfs-tools /opt /usr/local \
     /lib/modules/*/updates -type f -exec sha256sum {} + 2>/dev/null | sort
section "kernels"
ls -1 /boot /lib/modules
sha256sum /lib/modules/*/modules.dep 2>/dev/null | sort
section "initrd"
sha256sum /boot/initrd.img-* 2>/dev/null | sort
section "dkms"
if command -v dkms >/dev/null; then dkms status 2>&1 | sort; else echo "no dkms"; fi
"""


def free_port():
    """A TCP port on this machine's loopback that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_vars(path):
    """The vars file console.sh writes: flat `key: value` lines and the hm_console_sha256 map."""
    data, current = {}, None
    for line in pathlib.Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("---"):
            continue
        if line.startswith("  ") and current is not None:
            key, _sep, value = line.strip().partition(": ")
            data[current][key] = value
            continue
        key, _sep, value = line.partition(":")
        value = value.strip()
        if value:
            data[key] = value
            current = None
        else:
            data[key] = {}
            current = key
    return data


class ConsoleSh:
    """A console of tests/testbed/console.sh (started and stopped by name)."""

    def __init__(self, name, env, *options):
        self.name = name
        self.env = env
        result = subprocess.run([str(CONSOLE_SH), "start", name, *options], env=env, capture_output=True,
                                text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError("console.sh start %s failed:\n%s" % (name, result.stderr[-3000:]))
        self.vars_file = pathlib.Path(result.stdout.strip().splitlines()[-1])
        self.vars = read_vars(self.vars_file)

    def stop(self):
        stop_console(self.name, self.env)


def stop_console(name, env):
    subprocess.run([str(CONSOLE_SH), "stop", name], env=env, capture_output=True, check=False)
    shutil.rmtree(CACHE / "work" / ("console-%s" % name), ignore_errors=True)


class Console:
    """tests/console/console.py serving ROOT on a free loopback port, with the PKI of console.sh."""

    def __init__(self, root, pki, work, token):
        self.work = pathlib.Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        token_file = self.work / "token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        port_file = self.work / "port"
        port_file.unlink(missing_ok=True)
        self.log = (self.work / "console.out").open("w")
        self.process = subprocess.Popen(
            ["python3", str(REPO / "tests" / "console" / "console.py"), "--root", str(root), "--port", "0",
             "--bind", "127.0.0.1", "--token-file", str(token_file), "--cert", str(pki / "console.crt"),
             "--key", str(pki / "console.key"), "--port-file", str(port_file),
             "--log-file", str(self.work / "access.log")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        for _attempt in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("console.py did not start: %s" % (self.work / "console.out").read_text()[-2000:])
        if self.process.poll() is not None:
            raise RuntimeError("console.py exited: %s" % (self.work / "console.out").read_text()[-2000:])
        self.port = int(port_file.read_text().strip())
        self.url = "https://10.0.2.2:%d" % self.port

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# `fatal: [host]: FAILED! => {...}` for a task, `failed: [host] (item=...) => {...}` for a loop item.
FAILURE_RE = re.compile(r"^(?:fatal: \[[^\]]+\]: FAILED!|failed: \[[^\]]+\] \(item=.*?\)) => ", re.MULTILINE)


class PlaybookRun:
    def __init__(self, argv, rc, output, log):
        self.argv = argv
        self.rc = rc
        self.output = output
        self.log = log

    def failures(self):
        """The result of every failed task or loop item in the output, in order."""
        decoder = json.JSONDecoder()
        found = []
        for match in FAILURE_RE.finditer(self.output):
            try:
                value, _end = decoder.raw_decode(self.output, match.end())
            except ValueError:
                continue
            found.append(value)
        return found

    @property
    def message(self):
        """The last failure's msg: the one the run stopped on (earlier ones may have been rescued)."""
        failures = [f for f in self.failures() if f.get("msg")]
        return failures[-1]["msg"] if failures else ""

    def tail(self, chars=6000):
        return "(whole output: %s)\n...%s" % (self.log, self.output[-chars:])


class SystemdTarget:
    """A disposable Debian container with systemd as PID 1, reached with containers.podman.podman."""

    def __init__(self, image, env, work):
        self.image = image
        self.env = env
        self.work = pathlib.Path(work)
        self.name = "hm-faults-%s" % uuid.uuid4().hex[:8]
        self.inventory = self.work / "inventory.yml"
        self.runs = 0

    # --- container ---------------------------------------------------------------------------
    def podman(self, *args, check=True):
        return subprocess.run(["podman", *args], env=self.env, check=check, capture_output=True, text=True)

    def start(self):
        self.podman("run", "-d", "--name", self.name, "--hostname", self.name, "--systemd=always",
                    "--network=slirp4netns:allow_host_loopback=true",
                    "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
                    self.image, "/sbin/init")
        state = ""
        for _attempt in range(120):
            state = self.sh("systemctl is-system-running 2>/dev/null || true", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("systemd in %s did not come up (state %r)" % (self.name, state))
        self.inventory.write_text(
            "all:\n  children:\n    linux_agent_targets:\n      hosts:\n        %s:\n"
            "          ansible_connection: containers.podman.podman\n" % self.name
        )
        return self

    def stop(self):
        self.podman("rm", "-f", "-t", "0", self.name, check=False)

    def sh(self, script, check=True):
        result = self.podman("exec", self.name, "bash", "-c", script, check=False)
        if check and result.returncode != 0:
            raise AssertionError("in %s: %s\nrc=%s\nstdout:\n%s\nstderr:\n%s" % (
                self.name, script, result.returncode, result.stdout[-3000:], result.stderr[-3000:]))
        return result

    def copy_in(self, source, dest):
        self.podman("cp", str(source), "%s:%s" % (self.name, dest))

    # --- ansible -----------------------------------------------------------------------------
    def ansible_env(self, **extra):
        env = dict(self.env)
        env.update(
            PATH="%s:%s" % (VENV_BIN, env.get("PATH", "/usr/bin:/bin")),
            ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"),
            ANSIBLE_HOME=str(self.work / "ansible-home"),
            ANSIBLE_LOCAL_TEMP=str(self.work / "ansible-home" / "tmp"),
            # Not /tmp: systemd containers mount a tmpfs there, which the podman connection cannot copy into.
            ANSIBLE_REMOTE_TMP="/var/tmp/.ansible-tmp",
            ANSIBLE_PIPELINING="true",
            ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
            ANSIBLE_CALLBACK_RESULT_FORMAT="json",
            ANSIBLE_RETRY_FILES_ENABLED="0",
        )
        env.pop("TMPDIR", None)
        env.update(extra)
        return env

    def playbook_argv(self, playbook, *var_files, extra_vars=None, verbosity=3):
        """The ansible-playbook argv; extra vars go through files (mode 0600), never argv."""
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(playbook)]
        for path in var_files:
            argv += ["-e", "@%s" % path]
        if extra_vars:
            path = self.work / ("vars-%s.json" % uuid.uuid4().hex[:8])
            path.write_text(json.dumps(extra_vars))
            path.chmod(0o600)
            argv += ["-e", "@%s" % path]
        if verbosity:
            argv.append("-" + "v" * verbosity)
        return argv

    def next_log(self, playbook):
        self.runs += 1
        return self.work / ("run-%02d-%s.log" % (self.runs, pathlib.Path(playbook).stem))

    def playbook(self, playbook, *var_files, extra_vars=None, verbosity=3, env=None, timeout=3600):
        """ansible-playbook PLAYBOOK against this target, waited for."""
        argv = self.playbook_argv(playbook, *var_files, extra_vars=extra_vars, verbosity=verbosity)
        result = subprocess.run(argv, env=self.ansible_env(**(env or {})), cwd=str(REPO), capture_output=True,
                                text=True, check=False, timeout=timeout)
        output = result.stdout + "\n--- stderr ---\n" + result.stderr
        log = self.next_log(playbook)
        log.write_text(output)
        return PlaybookRun(argv, result.returncode, output, log)

    def start_playbook(self, playbook, *var_files, extra_vars=None, verbosity=3):
        """ansible-playbook in its own process group (to be killed), output to a log; returns (Popen, log)."""
        argv = self.playbook_argv(playbook, *var_files, extra_vars=extra_vars, verbosity=verbosity)
        log = self.next_log(playbook)
        with log.open("w") as out:
            process = subprocess.Popen(argv, env=self.ansible_env(), cwd=str(REPO), stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return process, log

    # --- state -------------------------------------------------------------------------------
    def snapshot(self):
        """{section: text} of everything an install may change (see SNAPSHOT_SCRIPT)."""
        out = self.sh(SNAPSHOT_SCRIPT).stdout
        sections, current = {}, None
        for line in out.splitlines():
            if line.startswith("## "):
                current = line[3:]
                sections[current] = []
            elif current is not None:
                sections[current].append(line)
        return sections


def snapshot_diff(before, after, limit=80):
    """A readable unified diff of two snapshots ('' when they are equal)."""
    lines = []
    for section in sorted(set(before) | set(after)):
        old, new = before.get(section, ["(section missing)"]), after.get(section, ["(section missing)"])
        if old != new:
            diff = list(difflib.unified_diff(old, new, "before", "after", lineterm="", n=0))
            lines.append("[%s] %d lines differ" % (section, len(diff)))
            lines.extend(diff[2:limit])
    return "\n".join(lines)
