"""A local stand-in for the HyperMotion vendor console (tests only).

Serves, over HTTPS, the artifacts in --root with the console's URL shapes:

  GET /hypermotion/v1/sources/download?type=<kind>&id=<TOKEN>&name=<file>
      -> DIR/<file>; 401 (JSON) for a wrong or missing token, 404 for an
         unknown file, 400 when type or name is missing or malformed.
  GET /hypermotion/v1/modules/<kernel-release>/dattobd.ko?id=<TOKEN>
      -> DIR/prebuilt/<kernel-release>/dattobd.ko, else 404.
  GET /hypermotion/v1/manifest?id=<TOKEN>
      -> JSON: the artifacts (name, size, sha256, download path) and the
         kernels that have a prebuilt module.

HEAD is answered like GET without a body. --fail-mode 401|404|500 answers
every /hypermotion/ request with that status (the first --fail-count
requests only, when that is > 0). The access log (stderr, or --log-file)
never shows the token: id= values are redacted.

When listening it writes the port to --port-file (if given) and prints
"console ready: port=N url=..." on stdout. SIGTERM or SIGINT stop it.
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

API = "/hypermotion/v1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")
KIND_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
KERNEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")
ID_RE = re.compile(r"((?:^|[?&;\s])id=)[^&\s\"']*")
CHUNK = 1 << 16


def redact(text: str, token: str | None) -> str:
    text = ID_RE.sub(r"\1REDACTED", text)
    if token and len(token) >= 8:  # a short token would blank unrelated text
        text = text.replace(token, "REDACTED")
    return text


def artifact_kind(name: str) -> str:
    if name.startswith("dattobd-") and name.endswith(".tar.gz"):
        return "dattobd-source"
    if name.endswith(".deb"):
        return "agent-deb"
    if name == "hypermotion-monitor":
        return "monitor"
    if name in ("server.crt", "server.key"):
        return "monitor-tls"
    if name == "SHA256SUMS":
        return "checksums"
    return "file"


class Sha256Cache:
    """sha256 of files, recomputed only when size or mtime change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, int, str]] = {}

    def get(self, path: Path) -> str:
        st = path.stat()
        key = str(path)
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                return hit[2]
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                digest.update(block)
        value = digest.hexdigest()
        with self._lock:
            self._cache[key] = (st.st_size, st.st_mtime_ns, value)
        return value


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, *, root: Path, token: str, fail_mode: str, fail_count: int, log) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.root = root
        self.token = token
        self.fail_mode = fail_mode
        self.fail_remaining = fail_count  # 0: fail every request
        self.fail_lock = threading.Lock()
        self.log = log
        self.log_lock = threading.Lock()
        self.sums = Sha256Cache()

    def should_fail(self) -> int | None:
        if self.fail_mode == "none":
            return None
        with self.fail_lock:
            if self.fail_remaining == 0:
                return int(self.fail_mode)
            if self.fail_remaining > 0:
                self.fail_remaining -= 1
                if self.fail_remaining == 0:
                    self.fail_remaining = -1  # budget spent: serve from now on
                return int(self.fail_mode)
            return None

    def handle_error(self, request, client_address) -> None:
        # TLS handshake failures (unknown CA, wrong host) and dropped clients
        # are expected in tests: one log line, no traceback.
        exc = sys.exc_info()[1]
        self.write_log(f"{client_address[0]} - connection error: {type(exc).__name__}: {exc}")

    def write_log(self, line: str) -> None:
        line = redact(line, self.token)
        with self.log_lock:
            self.log.write(line + "\n")
            self.log.flush()


class Handler(BaseHTTPRequestHandler):
    server: ConsoleServer
    server_version = "hypermotion-console-test/1.0"
    protocol_version = "HTTP/1.1"
    timeout = 30

    def version_string(self) -> str:
        return self.server_version

    # ------------------------------------------------------------ logging
    def log_message(self, format: str, *args) -> None:  # noqa: A002
        ts = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.server.write_log(f"{self.address_string()} - [{ts}] {format % args}")

    # ----------------------------------------------------------- replies
    def send_json(self, status: int, body: dict, head: bool = False) -> None:
        data = (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def send_error_json(self, status: int, message: str, head: bool = False) -> None:
        phrase = HTTPStatus(status).phrase
        self.send_json(status, {"code": status, "error": phrase, "message": message}, head)

    def send_file(self, path: Path, head: bool) -> None:
        try:
            fh = path.open("rb")
        except OSError:
            self.send_error_json(404, "artifact not found", head)
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Disposition", f'attachment; filename="{path.name}"')
            self.send_header("X-Checksum-Sha256", self.server.sums.get(path))
            self.end_headers()
            if head:
                return
            for block in iter(lambda: fh.read(CHUNK), b""):
                self.wfile.write(block)

    # ----------------------------------------------------------- routing
    def do_GET(self) -> None:  # noqa: N802
        self.route(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self.route(head=True)

    def authorised(self, query: dict[str, list[str]]) -> bool:
        given = query.get("id", [""])[-1]
        return bool(given) and hmac.compare_digest(given.encode(), self.server.token.encode())

    def route(self, head: bool) -> None:
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query, keep_blank_values=True)
        if not path.startswith(API + "/"):
            self.send_error_json(404, "no such endpoint", head)
            return
        forced = self.server.should_fail()
        if forced is not None:
            self.send_error_json(forced, f"forced by --fail-mode {forced}", head)
            return
        if not self.authorised(query):
            self.send_error_json(401, "missing or invalid id token", head)
            return
        rest = path[len(API) :]
        if rest == "/sources/download":
            self.download(query, head)
        elif rest == "/manifest":
            self.send_json(200, self.manifest(), head)
        elif m := re.fullmatch(r"/modules/([^/]+)/dattobd\.ko", rest):
            self.prebuilt(unquote(m.group(1)), head)
        else:
            self.send_error_json(404, "no such endpoint", head)

    def download(self, query: dict[str, list[str]], head: bool) -> None:
        kind = query.get("type", [""])[-1]
        name = query.get("name", [""])[-1]
        if not KIND_RE.match(kind):
            self.send_error_json(400, "missing or malformed type", head)
            return
        if not name:
            self.send_error_json(400, "missing name", head)
            return
        if not NAME_RE.match(name):
            self.send_error_json(404, "artifact not found", head)
            return
        path = self.server.root / name
        if not path.is_file():
            self.send_error_json(404, "artifact not found", head)
            return
        self.send_file(path, head)

    def prebuilt(self, kernel: str, head: bool) -> None:
        if not KERNEL_RE.match(kernel):
            self.send_error_json(404, "no prebuilt module for this kernel", head)
            return
        path = self.server.root / "prebuilt" / kernel / "dattobd.ko"
        if not path.is_file():
            self.send_error_json(404, "no prebuilt module for this kernel", head)
            return
        self.send_file(path, head)

    def manifest(self) -> dict:
        root = self.server.root
        artifacts = []
        for path in sorted(root.iterdir()):
            if not path.is_file() or not NAME_RE.match(path.name):
                continue
            artifacts.append(
                {
                    "name": path.name,
                    "kind": artifact_kind(path.name),
                    "size": path.stat().st_size,
                    "sha256": self.server.sums.get(path),
                    "path": f"{API}/sources/download?type=linux&name={path.name}",
                }
            )
        prebuilt = []
        pdir = root / "prebuilt"
        if pdir.is_dir():
            for kdir in sorted(pdir.iterdir()):
                ko = kdir / "dattobd.ko"
                if KERNEL_RE.match(kdir.name) and ko.is_file():
                    prebuilt.append(
                        {
                            "kernel": kdir.name,
                            "size": ko.stat().st_size,
                            "sha256": self.server.sums.get(ko),
                            "path": f"{API}/modules/{kdir.name}/dattobd.ko",
                        }
                    )
        return {
            "artifacts": artifacts,
            "prebuilt": prebuilt,
            "prebuilt_kernels": [p["kernel"] for p in prebuilt],
        }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--root", required=True, type=Path, help="directory with the artifacts")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--bind", default="127.0.0.1")
    tok = p.add_mutually_exclusive_group(required=True)
    tok.add_argument("--token", help="the id= token clients must present")
    tok.add_argument("--token-file", type=Path, help="read the token from this file (keeps it off ps)")
    p.add_argument("--cert", required=True, type=Path)
    p.add_argument("--key", required=True, type=Path)
    p.add_argument("--fail-mode", choices=["none", "401", "404", "500"], default="none")
    p.add_argument(
        "--fail-count", type=int, default=0, help="with --fail-mode: fail only the first N requests (0 = all)"
    )
    p.add_argument("--port-file", type=Path, help="write the chosen port here once listening")
    p.add_argument("--pid-file", type=Path)
    p.add_argument("--log-file", type=Path, help="access log (default: stderr)")
    return p.parse_args(argv)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    token = args.token
    if args.token_file:
        token = args.token_file.read_text().strip()
    if not token:
        print("console.py: empty token", file=sys.stderr)
        return 2
    root = args.root.resolve()
    if not root.is_dir():
        print(f"console.py: --root {root} is not a directory", file=sys.stderr)
        return 2

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(args.cert), str(args.key))

    log = args.log_file.open("a") if args.log_file else sys.stderr
    server = ConsoleServer(
        (args.bind, args.port),
        Handler,
        root=root,
        token=token,
        fail_mode=args.fail_mode,
        fail_count=max(args.fail_count, 0),
        log=log,
    )
    # The handshake runs in the handler thread, on first read, so a client
    # that never speaks TLS cannot block the accept loop.
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)

    def stop(signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    port = server.server_address[1]
    if args.pid_file:
        write_atomic(args.pid_file, f"{os.getpid()}\n")
    if args.port_file:
        write_atomic(args.port_file, f"{port}\n")
    host = f"[{args.bind}]" if ":" in args.bind else args.bind
    print(f"console ready: port={port} url=https://{host}:{port}{API}/", flush=True)
    server.write_log(f"serving {root} on {host}:{port} fail-mode={args.fail_mode}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        server.write_log("stopped")
        if args.pid_file:
            args.pid_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
