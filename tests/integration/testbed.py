# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the real-DKMS integration tests: podman targets and ad-hoc module runs."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import uuid

REPO = pathlib.Path(__file__).resolve().parents[2]
TESTBED = REPO / "tests" / "testbed"
FIXTURES = REPO / "tests" / "fixtures"
CACHE = pathlib.Path(os.environ.get("HM_CACHE", "/var/cache/hypermotion-linux-agent"))


def podman_environment():
    """The environment tests/testbed/podman-env.sh sets up (private podman config and storage)."""
    out = subprocess.run(
        ["bash", "-c", '. "$1" >/dev/null && env -0', "_", str(TESTBED / "podman-env.sh")],
        check=True, capture_output=True,
    ).stdout.decode()
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    return env


class Target:
    """A disposable container running an image of tests/testbed/images.sh, driven with podman."""

    def __init__(self, image, env, work):
        self.image = image
        self.env = env
        self.work = work
        self.name = "hm-it-%s" % uuid.uuid4().hex[:8]

    def podman(self, *args, check=True, input_text=None):
        return subprocess.run(["podman", *args], env=self.env, check=check, capture_output=True, text=True,
                              input=input_text)

    def start(self):
        self.podman("run", "-d", "--name", self.name, "--network", "none", self.image, "sleep", "infinity")
        return self

    def stop(self):
        self.podman("rm", "-f", "-t", "0", self.name, check=False)

    def sh(self, script, check=True):
        """Run a shell script inside the target; returns the CompletedProcess."""
        result = self.podman("exec", self.name, "sh", "-c", script, check=False)
        if check and result.returncode != 0:
            raise AssertionError("in %s: %s\nrc=%s\nstdout:\n%s\nstderr:\n%s" % (
                self.name, script, result.returncode, result.stdout, result.stderr))
        return result

    def copy_in(self, source, dest):
        self.podman("cp", str(source), "%s:%s" % (self.name, dest))

    def module(self, name, args, check_mode=False, diff=False):
        """Run hypermotion.linux_agent.NAME with ARGS on the target through Ansible; return its result."""
        command = [
            str(REPO / ".venv" / "bin" / "ansible"), "all", "-i", "%s," % self.name,
            "-c", "containers.podman.podman", "-m", "hypermotion.linux_agent.%s" % name,
            "-a", json.dumps(args),
        ]
        if check_mode:
            command.append("--check")
        if diff:
            command.append("--diff")
        env = dict(self.env)
        env.update(
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
            ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"),
            ANSIBLE_HOME=str(self.work / "ansible-home"),
            ANSIBLE_REMOTE_TMP="/tmp/.ansible-tmp",
            ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
            ANSIBLE_NOCOLOR="1",
        )
        env.pop("TMPDIR", None)
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        try:
            payload = json.loads(result.stdout)
            return payload["plays"][0]["tasks"][0]["hosts"][self.name]
        except (ValueError, KeyError, IndexError):
            raise AssertionError("ansible did not return a result\nstdout:\n%s\nstderr:\n%s" % (
                result.stdout, result.stderr)) from None


def ensure_image(kind, suite):
    """Build (or reuse from the cache) an image of tests/testbed/images.sh; return its name."""
    result = subprocess.run([str(TESTBED / "images.sh"), kind, suite], env=podman_environment(),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError("images.sh %s %s failed:\n%s" % (kind, suite, result.stderr[-3000:]))
    return result.stdout.strip().splitlines()[-1]


def system_map(image, kernel, out):
    """A real System.map for KERNEL, recovered from the image's vmlinuz (cached by system-map.sh)."""
    subprocess.run([str(TESTBED / "system-map.sh"), "--from-image", image, kernel, str(out)],
                   env=podman_environment(), check=True, capture_output=True, text=True)
    return out


def fixture_tree(work, version, *variants):
    """The dattobd-shaped test module at VERSION as a DKMS-layout tree on the controller."""
    outdir = work / ("tarball-%s%s" % (version, "".join(variants)))
    outdir.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(FIXTURES / "make-dattobd-tarball.sh"), version, str(outdir), "--dkms-layout", *variants],
                   check=True, capture_output=True, text=True)
    return outdir / ("dattobd-%s.tar.gz" % version)


def debian_package(package, suite):
    """A .deb of PACKAGE from Debian SUITE (main), fetched once with apt-get into the cache; its path.

    apt-get runs with a private sources list and state under the cache, so the host's own apt is left alone
    (the host is Debian 12: trixie's packages come from the same archive this way).
    """
    out = CACHE / "debs" / suite
    found = sorted(out.glob("%s_*.deb" % package))
    if found:
        return found[-1]
    state = CACHE / "debs" / ("apt-%s" % suite)
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text("deb http://deb.debian.org/debian %s main\n" % suite)
    options = [
        "-o", "Dir::Etc::sourcelist=%s" % (state / "sources.list"), "-o", "Dir::Etc::sourceparts=/nonexistent",
        "-o", "Dir::State::Lists=%s" % (state / "lists"), "-o", "Dir::Cache=%s" % (state / "cache"),
        "-o", "Dir::State::status=/dev/null", "-o", "APT::Sandbox::User=root",
    ]
    subprocess.run(["apt-get", *options, "update"], check=True, capture_output=True, text=True)
    work = out.parent / ("download-%s-%s" % (suite, uuid.uuid4().hex[:8]))
    work.mkdir(parents=True)
    subprocess.run(["apt-get", *options, "download", package], cwd=str(work), check=True, capture_output=True,
                   text=True)
    deb = next(work.glob("%s_*.deb" % package))
    out.mkdir(parents=True, exist_ok=True)
    os.replace(str(deb), str(out / deb.name))
    work.rmdir()
    return out / deb.name
