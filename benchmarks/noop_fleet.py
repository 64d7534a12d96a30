# Copyright: HyperMotion Linux Agent engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet benchmark of playbooks/install.yml on converged podman targets (issue 6). `make bench` runs it.

One run measures, side by side on the same targets and the same connection (containers.podman.podman,
forks >= N, pipelining on like the molecule scenarios):

  floor      a one-play, one-task playbook (ansible.builtin.ping, gather_facts: false): Ansible's own cost
  noop       playbooks/install.yml on converged hosts, linux_agent_serial=100% (one batch, like the floor);
             every host must report changed=0, or the benchmark fails
  noop-canary  the same with the playbook's default rollout (a canary host, 10%, the rest)
  checks     benchmarks/host_checks.sh: the same checks by hand, one `podman exec` per host, all in parallel
  vendor     benchmarks/manual_install.sh re-run on one converged host: the vendor installer's steps again

for N = 1, 4, 16 hosts (--hosts), R times each (--repeats, interleaved so load drift hits every measurement
alike), and reports median and min. The controller's peak memory is the summed RSS of the ansible-playbook
process tree (polled every 100 ms through /proc/PID/task/PID/children; shared copy-on-write pages of the forks
count once per process, so this overstates what the tree really uses) and the largest single process of the
tree (wait4's ru_maxrss).

Converge overhead: playbooks/install.yml on one fresh prepared target against manual_install.sh (the same
work as raw commands) on an identical one, both from the same committed image.

Set-up: tests/testbed/images.sh's Debian 12 image, systemd as PID 1 on slirp4netns (as the molecule scenarios
and tests/integration/install_target.py), prepared with extensions/molecule/shared/prepare.yml (two Debian
kernels, a real System.map for the newest, the local console of tests/testbed/console.sh). One target is
converged, stopped and committed to an image; the fleet is N containers of that image (converging 16 hosts
with real DKMS builds on 2 cores would take an hour and end in the same state). Every container and image
the benchmark makes is named hm-bench-* and removed at the end, also on failure or Ctrl-C.

Results: benchmarks/results/<UTC date>.json and the plot docs/benchmarks.png (--plot).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parent.parent
# The test harness's helpers (podman environment, console vars), not copies of them.
sys.path.insert(0, str(REPO / "tests" / "integration"))
from install_target import read_vars  # noqa: E402  (needs the path above)
from testbed import podman_environment  # noqa: E402

BENCH = REPO / "benchmarks"
VENV_BIN = REPO / ".venv" / "bin"
TESTBED = REPO / "tests" / "testbed"
SHARED = REPO / "extensions" / "molecule" / "shared"
PREFIX = "hm-bench-"
RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s*: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)
PAGE = os.sysconf("SC_PAGE_SIZE")
PROFILE_ENV = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
               "PROFILE_TASKS_SORT_ORDER": "descending"}

FLOOR_PLAYBOOK = """---
- name: Floor
  hosts: linux_agent_targets
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- clean-up
class Cleanup:
    """Everything the run started: containers, images, the console, child processes."""

    def __init__(self, env):
        self.env = env
        self.containers = []
        self.images = []
        self.consoles = []
        self.procs = []
        self.lock = threading.Lock()
        self.keep_images = False

    def run(self):
        for proc in list(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        if self.containers:
            subprocess.run(["podman", "rm", "-f", "-t", "0", *self.containers], env=self.env,
                           capture_output=True, check=False)
            self.containers = []
        for image in self.images if not self.keep_images else []:
            subprocess.run(["podman", "rmi", "-f", image], env=self.env, capture_output=True, check=False)
        self.images = []
        for name in self.consoles:
            subprocess.run([str(TESTBED / "console.sh"), "stop", name], env=self.env, capture_output=True,
                           check=False)
            shutil.rmtree(pathlib.Path(self.env["HM_CACHE"]) / "work" / ("console-%s" % name), ignore_errors=True)
        self.consoles = []


# --------------------------------------------------------------------------- memory sampling
def _children(pid):
    try:
        text = pathlib.Path("/proc/%d/task/%d/children" % (pid, pid)).read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _rss(pid):
    try:
        return int(pathlib.Path("/proc/%d/statm" % pid).read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler(threading.Thread):
    """Peak summed RSS and peak process count of a process tree, polled every `interval` seconds."""

    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self.peak_procs = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            todo, seen = [self.pid], []
            while todo:
                pid = todo.pop()
                seen.append(pid)
                todo.extend(_children(pid))
            total = sum(_rss(pid) for pid in seen)
            self.peak_rss = max(self.peak_rss, total)
            self.peak_procs = max(self.peak_procs, len(seen))
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()


# --------------------------------------------------------------------------- the benchmark
class Bench:
    def __init__(self, args):
        self.args = args
        self.run_id = uuid.uuid4().hex[:6]
        self.env = podman_environment()
        self.cleanup = Cleanup(self.env)
        self.work = REPO / "build" / "bench" / self.run_id
        self.work.mkdir(parents=True, exist_ok=True)
        self.ansible_home = self.work / "ansible-home"
        self.console_name = PREFIX + self.run_id
        self.console = {}
        self.results = {
            "started": utc_now(),
            "run_id": self.run_id,
            "settings": {"hosts": args.hosts, "repeats": args.repeats, "forks": None,
                         "connection": "containers.podman.podman", "pipelining": True},
            "machine": machine_info(self.env),
            "load": [],
            "fleet": {},
            "converge": {},
            "notes": [],
        }

    # --- podman ---------------------------------------------------------------------------
    def podman(self, *args, check=True, timeout=600):
        result = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, check=False,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise BenchError("podman %s failed (rc %d): %s" % (" ".join(args[:3]), result.returncode,
                                                               result.stderr[-2000:]))
        return result

    def start_container(self, name, image):
        with self.cleanup.lock:
            self.cleanup.containers.append(name)
        self.podman("run", "-d", "--name", name, "--hostname", name, "--systemd=always",
                    "--network=slirp4netns:allow_host_loopback=true",
                    "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", image, "/sbin/init")
        state = ""
        for _attempt in range(240):
            state = self.podman("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return name
            time.sleep(0.5)
        raise BenchError("systemd in %s did not come up (state %r)" % (name, state))

    def start_containers(self, names, image):
        errors = []

        def one(name):
            try:
                self.start_container(name, image)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def remove_containers(self, names):
        self.podman("rm", "-f", "-t", "0", *names, check=False)
        with self.cleanup.lock:
            self.cleanup.containers = [c for c in self.cleanup.containers if c not in names]

    def commit(self, name, image):
        """Stop NAME cleanly (systemd shuts down) and commit it to IMAGE."""
        self.podman("stop", "-t", "60", name)
        self.cleanup.images.append(image)
        self.podman("commit", "-q", name, image, timeout=1800)
        return image

    def sh(self, name, script, env=None, check=True, timeout=3600):
        argv = ["podman", "exec", "-i"]
        for key, value in (env or {}).items():
            argv += ["-e", "%s=%s" % (key, value)]
        argv += [name, "bash", "-s"]
        result = subprocess.run(argv, input=script, env=self.env, capture_output=True, text=True, check=False,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise BenchError("script in %s failed (rc %d):\n%s\n%s" % (
                name, result.returncode, result.stdout[-3000:], result.stderr[-3000:]))
        return result

    # --- ansible --------------------------------------------------------------------------
    def inventory(self, hosts, name):
        path = self.work / ("inventory-%s.yml" % name)
        lines = ["all:", "  children:", "    linux_agent_targets:", "      hosts:"]
        for host in hosts:
            lines += ["        %s:" % host, "          ansible_connection: containers.podman.podman"]
        path.write_text("\n".join(lines) + "\n")
        return path

    def ansible_env(self, forks, extra=None):
        env = dict(self.env)
        env.update(
            PATH="%s:%s" % (VENV_BIN, env.get("PATH", "/usr/bin:/bin")),
            ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"),
            ANSIBLE_HOME=str(self.ansible_home),
            ANSIBLE_LOCAL_TEMP=str(self.ansible_home / "tmp"),
            # Not /tmp: systemd containers mount a tmpfs there, which the podman connection cannot copy into.
            ANSIBLE_REMOTE_TMP="/var/tmp/.ansible-tmp",
            ANSIBLE_PIPELINING="true",
            ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
            ANSIBLE_FORKS=str(forks),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            # The same environment molecule gives its scenarios: prepare.yml and console-start.yml read these.
            MOLECULE_PROJECT_DIRECTORY=str(REPO),
            MOLECULE_SCENARIO_NAME=self.console_name,
            MOLECULE_EPHEMERAL_DIRECTORY=str(self.work),
        )
        env.pop("TMPDIR", None)
        env.update(extra or {})
        return env

    def playbook(self, playbook, inventory, forks, label, extra_args=(), env_extra=None, timeout=7200):
        """Run ansible-playbook; returns dict(rc, seconds, recap, peak_rss, ...). Output in the work dir."""
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *extra_args]
        logfile = self.work / ("%s.log" % label)
        env = self.ansible_env(forks, env_extra)
        with logfile.open("w") as out:
            start = time.monotonic()
            proc = subprocess.Popen(argv, env=env, cwd=str(REPO), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            self.cleanup.procs.append(proc)
            sampler = TreeSampler(proc.pid)
            sampler.start()
            deadline = start + timeout
            while True:
                pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    os.killpg(proc.pid, signal.SIGKILL)
                time.sleep(0.02)
            seconds = time.monotonic() - start
            sampler.stop()
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.cleanup.procs.remove(proc)
        output = logfile.read_text()
        recap = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                 for m in RECAP_RE.finditer(output)}
        return {"rc": proc.returncode, "seconds": seconds, "recap": recap, "log": str(logfile),
                "peak_tree_rss_mb": round(sampler.peak_rss / 2**20, 1), "peak_procs": sampler.peak_procs,
                "max_single_rss_mb": round(rusage.ru_maxrss / 1024, 1), "output": output}

    def converge_vars(self):
        return ["-e", "@%s" % (self.work / "console-vars.yml"), "-e", "@%s" % (SHARED / "install-vars.yml")]

    @staticmethod
    def require_noop(run, hosts, what):
        bad = [h for h in hosts if run["recap"].get(h, {}).get("changed", -1) != 0
               or run["recap"].get(h, {}).get("failed", -1) != 0 or run["recap"].get(h, {}).get("unreachable", -1) != 0]
        if run["rc"] != 0 or bad:
            changed = re.findall(r"^changed: \[[^\]]+\].*$", run["output"], re.MULTILINE)[:20]
            raise BenchError("%s is not a no-op (rc %d) on %s; recap %s\nchanged tasks:\n%s\n(log %s)" % (
                what, run["rc"], bad or "some host", {h: run["recap"].get(h) for h in hosts},
                "\n".join(changed), run["log"]))

    # --- phases ---------------------------------------------------------------------------
    def ensure_collection_link(self):
        link = REPO / "build" / "collections" / "ansible_collections" / "hypermotion" / "linux_agent"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(REPO)

    def prepare_image(self):
        """A target prepared like molecule's (kernels, System.map, console started), committed."""
        base = subprocess.run([str(TESTBED / "images.sh"), "ensure", "bookworm"], env=self.env, capture_output=True,
                              text=True, check=True).stdout.strip().splitlines()[-1]
        seed = "%sseed-%s" % (PREFIX, self.run_id)
        log("starting the seed target %s from %s" % (seed, base))
        self.start_container(seed, base)
        self.cleanup.consoles.append(self.console_name)
        inv = self.inventory([seed], "seed")
        log("preparing it with extensions/molecule/shared/prepare.yml (kernels, System.map, console)")
        run = self.playbook(SHARED / "prepare.yml", inv, 1, "prepare")
        if run["rc"] != 0:
            raise BenchError("prepare.yml failed (log %s):\n%s" % (run["log"], run["output"][-4000:]))
        self.results["converge"]["prepare_seconds"] = round(run["seconds"], 1)
        self.console = read_vars(self.work / "console-vars.yml")
        image = "localhost/%sprepared:%s" % (PREFIX, self.run_id)
        self.commit(seed, image)
        self.remove_containers([seed])
        return image

    def start_console(self):
        """Only the console (for --image: the targets are prepared and converged already)."""
        self.cleanup.consoles.append(self.console_name)
        out = subprocess.run([str(TESTBED / "console.sh"), "start", self.console_name], env=self.env,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        shutil.copy(out, self.work / "console-vars.yml")
        self.console = read_vars(self.work / "console-vars.yml")

    def manual_env(self, name):
        """Environment for manual_install.sh in NAME (the console CA copied in first)."""
        self.podman("cp", self.console["linux_agent_console_ca"], "%s:/root/hm-bench-console-ca.pem" % name)
        env = {"HM_CONSOLE_URL": self.console["linux_agent_console_url"],
               "HM_CONSOLE_TOKEN": self.console["linux_agent_console_token"],
               "HM_CONSOLE_CA": "/root/hm-bench-console-ca.pem"}
        for artifact, digest in self.console.get("hm_console_sha256", {}).items():
            env["HM_SHA256_" + re.sub(r"[^A-Za-z0-9]", "_", artifact)] = digest
        return env

    def run_manual(self, name, label):
        script = (BENCH / "manual_install.sh").read_text()
        env = self.manual_env(name)
        start = time.monotonic()
        result = self.sh(name, script, env=env, check=False)
        seconds = time.monotonic() - start
        (self.work / ("%s.log" % label)).write_text(result.stdout + "\n--- stderr ---\n" + result.stderr)
        if result.returncode != 0:
            raise BenchError("manual_install.sh in %s failed (rc %d):\n%s" % (name, result.returncode,
                                                                              result.stderr[-3000:]))
        return seconds, step_times(result.stderr)

    def converge(self, prepared):
        """Full install.yml on a fresh target vs manual_install.sh on an identical one; returns the converged image."""
        target = "%sconverge-%s" % (PREFIX, self.run_id)
        manual = "%smanual-%s" % (PREFIX, self.run_id)
        self.start_containers([target, manual], prepared)
        inv = self.inventory([target], "converge")
        out = self.results["converge"]
        out["install_yml_seconds"], out["manual_seconds"], out["manual_steps"] = [], [], []
        for round_ in range(self.args.converge_repeats):
            if round_:
                # Fresh targets again for another round.
                self.remove_containers([target, manual])
                self.start_containers([target, manual], prepared)
            log("converge: playbooks/install.yml on the fresh target %s" % target)
            # -vvv: the log then names every module run, which module_runs() counts (the output to a file
            # costs little next to the runs themselves).
            run = self.playbook(REPO / "playbooks" / "install.yml", inv, 1, "converge-%d" % round_,
                                extra_args=[*self.converge_vars(), "-vvv"], env_extra=PROFILE_ENV)
            if run["rc"] != 0:
                raise BenchError("the converge failed (log %s):\n%s" % (run["log"], run["output"][-4000:]))
            out["install_yml_seconds"].append(round(run["seconds"], 1))
            out["install_yml_peak_tree_rss_mb"] = run["peak_tree_rss_mb"]
            out.setdefault("install_yml_tasks", []).append(profile_tasks(run["output"])[:25])
            out["install_yml_module_runs"] = module_runs(run["output"])
            log("converge: %d remote module runs on the fresh target (%d on the controller): %s" % (
                out["install_yml_module_runs"]["remote"], out["install_yml_module_runs"]["local"],
                out["install_yml_module_runs"]["by_module"]))
            log("converge: install.yml took %.1f s; now manual_install.sh on %s" % (run["seconds"], manual))
            seconds, steps = self.run_manual(manual, "manual-%d" % round_)
            out["manual_seconds"].append(round(seconds, 1))
            out["manual_steps"].append(steps)
            log("converge: manual_install.sh took %.1f s" % seconds)
        checks = self.sh(manual, (BENCH / "host_checks.sh").read_text(), check=False)
        out["manual_passes_host_checks"] = checks.returncode == 0
        if checks.returncode != 0:
            self.results["notes"].append("manual_install.sh's host does not pass host_checks.sh: %s" % checks.stdout)
        ratio = statistics.median(out["install_yml_seconds"]) / statistics.median(out["manual_seconds"])
        out["ratio"] = round(ratio, 3)
        log("converge overhead: %.2fx" % ratio)
        # The converged state, to be cloned: the target's second run must already be a no-op.
        image = "localhost/%sconverged:%s" % (PREFIX, self.run_id)
        self.commit(target, image)
        self.remove_containers([target, manual])
        return image

    def measure_fleet(self, image):
        hosts_max = max(self.args.hosts)
        names = ["%sfleet-%s-%02d" % (PREFIX, self.run_id, i) for i in range(1, hosts_max + 1)]
        log("starting %d targets from the converged image" % hosts_max)
        self.start_containers(names, image)
        floor_pb = self.work / "floor.yml"
        floor_pb.write_text(FLOOR_PLAYBOOK)
        install = REPO / "playbooks" / "install.yml"
        check_script = (BENCH / "host_checks.sh").read_text()
        fleet = self.results["fleet"]
        for n in self.args.hosts:
            fleet[str(n)] = {k: [] for k in ("floor", "noop", "noop_canary", "checks")}
            fleet[str(n)]["memory"] = {}
        forks = max(hosts_max, 5)
        self.results["settings"]["forks"] = "max(N, 5)"
        # Warm-up (controller caches, the images' pages): one no-op on the first host, with profile_tasks so the
        # results say where a no-op spends its time. Every measured no-op below is checked for changed=0 too.
        log("warm-up: profiled no-op install.yml on 1 host")
        self.profile(names[:1], install)
        for rep in range(self.args.repeats):
            for n in self.args.hosts:
                hosts = names[:n]
                inv = self.inventory(hosts, "n%d" % n)
                forks = max(n, 5)
                entry = fleet[str(n)]
                self.results["load"].append({"when": utc_now(), "n": n, "rep": rep, "loadavg": os.getloadavg()})
                # (a) the floor
                run = self.playbook(floor_pb, inv, forks, "floor-n%d-r%d" % (n, rep))
                if run["rc"] != 0:
                    raise BenchError("the floor playbook failed (log %s)" % run["log"])
                entry["floor"].append(round(run["seconds"], 2))
                keep_peak(entry["memory"], "floor", run)
                # (b) the no-op install, one batch
                run = self.playbook(install, inv, forks, "noop-n%d-r%d" % (n, rep),
                                    self.converge_vars() + ["-e", "linux_agent_serial=100%"])
                self.require_noop(run, hosts, "install.yml (N=%d, run %d)" % (n, rep + 1))
                entry["noop"].append(round(run["seconds"], 2))
                keep_peak(entry["memory"], "noop", run)
                # (b') the no-op install with the default canary rollout
                if n >= 3 and rep < self.args.canary_repeats:
                    run = self.playbook(install, inv, forks, "noopcanary-n%d-r%d" % (n, rep), self.converge_vars())
                    self.require_noop(run, hosts, "install.yml, default rollout (N=%d, run %d)" % (n, rep + 1))
                    entry["noop_canary"].append(round(run["seconds"], 2))
                # (c) the same checks by hand, all hosts in parallel
                seconds, failed = self.parallel_checks(hosts, check_script)
                if failed:
                    raise BenchError("host_checks.sh failed on %s" % failed)
                entry["checks"].append(round(seconds, 2))
                log("N=%d run %d: floor %.1f s, no-op %.1f s%s, checks %.1f s (load %.1f)" % (
                    n, rep + 1, entry["floor"][-1], entry["noop"][-1],
                    (", canary %.1f s" % entry["noop_canary"][-1]) if entry["noop_canary"] else "",
                    seconds, os.getloadavg()[0]))
        if self.args.profile:
            self.profile(names, install)
        self.remove_containers(names)

    def parallel_checks(self, hosts, script):
        start = time.monotonic()
        procs = []
        for host in hosts:
            proc = subprocess.Popen(["podman", "exec", "-i", host, "bash", "-s"], env=self.env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            self.cleanup.procs.append(proc)
            procs.append((host, proc))
        for _host, proc in procs:
            proc.stdin.write(script)
            proc.stdin.close()
        failed = {}
        for host, proc in procs:
            out = proc.stdout.read()
            if proc.wait() != 0:
                failed[host] = out.strip()
            self.cleanup.procs.remove(proc)
        return time.monotonic() - start, failed

    def profile(self, names, install):
        """One more no-op on every host with ansible.posix.profile_tasks: where the time goes."""
        n = len(names)
        inv = self.inventory(names, "profile")
        run = self.playbook(install, inv, max(n, 5), "profile-n%d" % n,
                            self.converge_vars() + ["-e", "linux_agent_serial=100%"],
                            env_extra=PROFILE_ENV)
        self.require_noop(run, names, "the profiled install.yml run")
        tasks = profile_tasks(run["output"])
        counts = {}
        for m in re.finditer(r"^(ok|changed|skipping|included): \[", run["output"], re.MULTILINE):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        self.results.setdefault("profile", {})[str(n)] = {
            "hosts": n, "seconds": round(run["seconds"], 2), "tasks": tasks, "task_results": counts, "log": run["log"],
            "tasks_executed": len(re.findall(r"^TASK \[", run["output"], re.MULTILINE))}
        log("profile: %d tasks, %.1f s; slowest: %s" % (len(tasks), run["seconds"], tasks[:5]))

    def measure_vendor(self, image):
        name = "%svendor-%s" % (PREFIX, self.run_id)
        self.start_container(name, image)
        out = self.results["vendor"] = {"seconds": [], "steps": [], "host": 1}
        for rep in range(self.args.repeats):
            seconds, steps = self.run_manual(name, "vendor-r%d" % rep)
            out["seconds"].append(round(seconds, 2))
            out["steps"].append(steps)
            log("vendor re-run %d: %.1f s %s" % (rep + 1, seconds, steps))
        self.remove_containers([name])

    # --- main -----------------------------------------------------------------------------
    def run(self):
        self.ensure_collection_link()
        self.cleanup.keep_images = self.args.keep_images
        if self.args.image:
            converged = self.args.image
            self.start_console()
        elif self.args.prepared:
            self.start_console()
            converged = self.converge(self.args.prepared)
        else:
            converged = self.converge(self.prepare_image())
        self.measure_fleet(converged)
        if not self.args.no_vendor:
            self.measure_vendor(converged)
        self.results["finished"] = utc_now()
        summarise(self.results)


# --------------------------------------------------------------------------- helpers
def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def step_times(stderr):
    """{step: seconds} from manual_install.sh's "@step EPOCH NAME" lines."""
    marks = [(float(m.group(1)), m.group(2)) for m in re.finditer(r"^@step (\d+\.\d+) (\S+)$", stderr, re.MULTILINE)]
    return {name: round(marks[i + 1][0] - t, 2) for i, (t, name) in enumerate(marks[:-1])}


def module_runs(output):
    """Module runs in a -vvv log: {remote, local, by_module}. Ansible prints "Using module file" once per run,
    and for a run on the controller (a stat delegated to localhost) an ESTABLISH LOCAL CONNECTION line after it."""
    by_module, counts, pending = {}, {"remote": 0, "local": 0}, None

    def commit():
        if pending:
            name, where = pending
            counts[where] += 1
            if where == "remote":
                by_module[name] = by_module.get(name, 0) + 1

    for line in output.splitlines():
        if line.startswith("Using module file "):
            commit()
            pending = [pathlib.Path(line.split()[-1]).stem, "remote"]
        elif "ESTABLISH LOCAL CONNECTION" in line and pending:
            pending[1] = "local"
        elif line.startswith("TASK [") or line.startswith("RUNNING HANDLER ["):
            commit()
            pending = None
    commit()
    return dict(counts, by_module=dict(sorted(by_module.items(), key=lambda item: (-item[1], item[0]))))


def profile_tasks(output):
    """[{task, seconds}] from profile_tasks' summary (sorted by time, descending)."""
    return [{"task": m.group(1).strip(), "seconds": float(m.group(2))}
            for m in re.finditer(r"^(.+?) -+ (\d+\.\d+)s$", output, re.MULTILINE)]


def keep_peak(memory, kind, run):
    cur = memory.setdefault(kind, {"peak_tree_rss_mb": 0, "max_single_rss_mb": 0, "peak_procs": 0})
    for key in cur:
        cur[key] = max(cur[key], run[key])


def cmd_out(argv, env=None):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False, env=env).stdout.strip()
    except OSError:
        return ""


def machine_info(env):
    lscpu = cmd_out(["lscpu"])
    model = re.search(r"^Model name:\s*(.+)$", lscpu, re.MULTILINE)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", pathlib.Path("/proc/meminfo").read_text(), re.MULTILINE)
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cpus": os.cpu_count(),
        "mem_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "kernel": platform.release(),
        "os": cmd_out(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "ansible_core": cmd_out([str(VENV_BIN / "python"), "-c", "import ansible; print(ansible.__version__)"]),
        "containers_podman": cmd_out([str(VENV_BIN / "ansible-galaxy"), "collection", "list", "containers.podman"],
                                     env=dict(env, ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections")))
        .splitlines()[-1:] or [""],
        "podman": cmd_out(["podman", "--version"], env=env),
        "python": platform.python_version(),
    }


def stats(values):
    if not values:
        return None
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "runs": values}


def summarise(results):
    for entry in results["fleet"].values():
        summary = {k: stats(entry[k]) for k in ("floor", "noop", "noop_canary", "checks")}
        if summary["floor"] and summary["noop"]:
            summary["ratio_noop_to_floor"] = round(summary["noop"]["median"] / summary["floor"]["median"], 2)
            summary["ratio_noop_to_floor_min"] = round(summary["noop"]["min"] / summary["floor"]["min"], 2)
        entry["summary"] = summary
    if results.get("vendor"):
        results["vendor"]["summary"] = stats(results["vendor"]["seconds"])
    loads = [x["loadavg"][0] for x in results["load"]]
    if loads:
        results["load_summary"] = {"min": min(loads), "max": max(loads), "median": statistics.median(loads)}


def plot(results, path):
    import matplotlib  # noqa: PLC0415 - optional, only for the plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ns = sorted(int(n) for n in results["fleet"])
    med = {k: [results["fleet"][str(n)]["summary"][k]["median"] if results["fleet"][str(n)]["summary"][k] else None
               for n in ns] for k in ("floor", "noop", "noop_canary", "checks")}
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.plot(ns, med["noop"], "o-", color="tab:red", label="no-op install.yml (one batch)")
    if any(v is not None for v in med["noop_canary"]):
        xs = [n for n, v in zip(ns, med["noop_canary"]) if v is not None]
        ax.plot(xs, [v for v in med["noop_canary"] if v is not None], "s:", color="tab:orange",
                label="no-op install.yml (default rollout: 1, 10%, rest)")
    ax.plot(ns, med["floor"], "o-", color="tab:blue", label="floor: one ping task, no facts")
    ax.plot(ns, [2 * v for v in med["floor"]], "--", color="tab:blue", alpha=0.6, label="2 x floor (target)")
    ax.plot(ns, med["checks"], "^-", color="tab:green", label="same checks by hand (podman exec, parallel)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.set_xlabel("hosts (podman containers, forks >= N)")
    ax.set_ylabel("wall time, median of %d run(s) [s], log scale" % results["settings"]["repeats"])
    # Log scale: the floor and the no-op differ by more than an order of magnitude.
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    machine = results["machine"]
    ax.set_title("No-op run on converged hosts, %s, %d cores" % (machine["cpu_model"][:40], machine["cpus"]),
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def markdown(results):
    """The tables of docs/benchmarks.md from a results JSON."""
    def cell(st, key="median"):
        return "%.1f" % st[key] if st else "-"

    lines = ["| hosts | floor (ping) | no-op install.yml | ratio | no-op, default rollout | checks by hand |"
             " controller peak RSS, tree / largest process (no-op) |", "|---|---|---|---|---|---|---|"]
    for n in sorted(results["fleet"], key=int):
        entry = results["fleet"][n]
        sm = entry["summary"]
        mem = entry["memory"].get("noop", {})
        row = "| %s | %s (min %s) | %s (min %s) | **%.1fx** | %s | %s (min %s) | %s MB / %s MB (%s processes) |"
        lines.append(row % (
            n, cell(sm["floor"]), cell(sm["floor"], "min"), cell(sm["noop"]), cell(sm["noop"], "min"),
            sm.get("ratio_noop_to_floor", 0), cell(sm["noop_canary"]), cell(sm["checks"]), cell(sm["checks"], "min"),
            mem.get("peak_tree_rss_mb", "-"), mem.get("max_single_rss_mb", "-"), mem.get("peak_procs", "-")))
    conv = results.get("converge", {})
    if conv.get("install_yml_seconds"):
        lines += ["", "| converge, 1 fresh host | seconds |", "|---|---|",
                  "| playbooks/install.yml | %s |" % ", ".join("%.1f" % x for x in conv["install_yml_seconds"]),
                  "| manual_install.sh (raw commands) | %s |" % ", ".join("%.1f" % x for x in conv["manual_seconds"]),
                  "| ratio | **%.2fx** |" % conv["ratio"]]
        runs = conv.get("install_yml_module_runs")
        if runs:
            lines += ["", "remote module runs of the fresh install: **%d** (and %d on the controller): %s" % (
                runs["remote"], runs["local"], ", ".join("%s %d" % item for item in runs["by_module"].items()))]
    if results.get("vendor"):
        lines += ["", "vendor steps re-run on 1 converged host: median %s s, min %s s" % (
            cell(results["vendor"]["summary"]), cell(results["vendor"]["summary"], "min"))]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=lambda s: sorted({int(x) for x in s.split(",")}), default=[1, 4, 16],
                        help="comma-separated fleet sizes (default 1,4,16)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--converge-repeats", type=int, default=1, help="converge-overhead rounds (default 1)")
    parser.add_argument("--image", help="skip the converge: use this converged image (e.g. a kept one)")
    parser.add_argument("--prepared", help="skip the prepare: use this prepared image (e.g. a kept one)")
    parser.add_argument("--keep-images", action="store_true",
                        help="keep the hm-bench-prepared/-converged images (for --prepared/--image later)")
    parser.add_argument("--canary-repeats", type=int, default=1,
                        help="runs of the default-rollout no-op per N >= 3 (default 1, in the first round; 0: none)")
    parser.add_argument("--no-vendor", action="store_true", help="skip the vendor-steps re-run")
    parser.add_argument("--profile", action="store_true",
                        help="one more profiled no-op on the largest fleet (one on 1 host is always made)")
    parser.add_argument("--output", type=pathlib.Path, help="results JSON (default benchmarks/results/<date>.json)")
    parser.add_argument("--plot", type=pathlib.Path, default=REPO / "docs" / "benchmarks.png",
                        help="PNG plot (default docs/benchmarks.png; '-' for none)")
    parser.add_argument("--keep-work", action="store_true", help="keep build/bench/<id> (logs) after a good run")
    parser.add_argument("--report", type=pathlib.Path, help="print the markdown tables of a results JSON and exit")
    args = parser.parse_args(argv)
    if args.report:
        results = json.loads(args.report.read_text())
        print(markdown(results))
        if str(args.plot) != "-":
            plot(results, args.plot)
        return 0
    if os.geteuid() != 0:
        parser.error("run as root (rootful podman, like the rest of the testbed)")
    bench = Bench(args)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    ok = False
    try:
        bench.run()
        ok = True
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - recorded, cleaned up, exit 1
        log("benchmark failed: %s: %s" % (type(exc).__name__, exc))
        bench.results["error"] = str(exc)[-4000:]
    finally:
        log("cleaning up (containers, images, console)")
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        bench.cleanup.run()
        if args.keep_images and bench.cleanup.images:
            log("kept images: %s" % " ".join(bench.cleanup.images))
    output = args.output or (BENCH / "results" / ("%s.json" % datetime.date.today().isoformat()))
    if not ok:
        output = output.with_name(output.stem + "-failed.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(bench.results, indent=1, sort_keys=False) + "\n")
    log("results: %s (logs: %s)" % (output, bench.work))
    if ok and str(args.plot) != "-":
        plot(bench.results, args.plot)
        log("plot: %s" % args.plot)
    if ok and not args.keep_work:
        shutil.rmtree(bench.work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
