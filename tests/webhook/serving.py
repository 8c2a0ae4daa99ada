"""A real ``modelgate serve`` process for tests: started, probed, signalled, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.fixtures.tools import free_port
from webhook.tls import DevCertificates, write_dev_certificates


def modelgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelgate.cli", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    # as in the chart's pods: HOME on a read-only root filesystem, nothing writable there
    env["HOME"] = "/proc/self/no-home"
    # these servers are about serving (load, faults, hostile input): they judge the
    # compliance-status annotation; recorded sign-off has its own tests (test_signoff.py)
    env["MODELGATE_APPROVAL_SOURCE"] = "annotation"
    env.update(extra)
    return env


@dataclass
class Serve:
    """One ``modelgate serve`` (start it with :meth:`start`)."""

    workdir: Path
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    certs: DevCertificates | None = None
    proc: subprocess.Popen[bytes] | None = None
    client_cert: tuple[str, str] | None = None

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"serve-{self.port}.log"

    def start(self, timeout: float = 90.0) -> Serve:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.certs is None:
            self.certs = write_dev_certificates(self.workdir / "tls", common_name="original")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                modelgate(
                    "serve",
                    "--host", "127.0.0.1",
                    "--port", str(self.port),
                    "--tls-cert", str(self.certs.cert),
                    "--tls-key", str(self.certs.key),
                    *self.args,
                ),
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90.0, path: str = "/healthz") -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                if self.get(path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"not up in {timeout}s:\n{self.log.read_text()}"
            time.sleep(0.2)

    def _tls(self) -> dict[str, Any]:
        # per request: a session's verify loses against REQUESTS_CA_BUNDLE in the environment
        assert self.certs is not None
        return {"verify": str(self.certs.ca_cert), "cert": self.client_cert}

    def post(self, body: Any, path: str = "/validate", timeout: float = 20) -> requests.Response:
        return requests.post(self.base + path, json=body, timeout=timeout, **self._tls())

    def get(self, path: str, timeout: float = 10) -> requests.Response:
        return requests.get(self.base + path, timeout=timeout, **self._tls())

    def tls_socket(self, timeout: float = 10.0) -> ssl.SSLSocket:
        """A TLS connection to the server (handshake done, nothing sent)."""
        assert self.certs is not None
        ctx = ssl.create_default_context(cafile=str(self.certs.ca_cert))
        if self.client_cert is not None:
            ctx.load_cert_chain(*self.client_cert)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return ctx.wrap_socket(raw, server_hostname="localhost")

    def workers(self) -> set[int]:
        """The pids of the worker processes (children of the supervisor)."""
        assert self.proc is not None
        out = subprocess.run(
            ["ps", "-o", "pid=,args=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return {int(line.split()[0]) for line in out.splitlines() if "modelgate" in line}

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the supervisor and its workers (a pod killed without grace)."""
        if self.proc is None:
            return
        pids = self.workers()
        self.proc.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()


def read_http_message(sock: socket.socket, pending: bytes = b"") -> tuple[bytes, bytes]:
    """One HTTP message (head and a Content-Length body) from ``sock``, after ``pending``
    bytes already read; returns it and what followed it. Short when the peer closed."""
    data = pending
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length: int | None = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:  # no framing: what arrived with the head is all there is
        return data, b""
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body[:length], body[length:]


def http_request(sock: ssl.SSLSocket, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send ``raw`` and read one HTTP response with a Content-Length body."""
    sock.settimeout(timeout)
    sock.sendall(raw)
    return read_http_message(sock)[0]
