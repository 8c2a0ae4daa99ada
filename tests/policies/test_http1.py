"""The OPA engine's HTTP/1.1 client against a scripted peer (framing, keep-alive, closes,
garbage, silence) and against a real OPA (a large, chunked answer)."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from policies.engines import http1
from policies.engines.base import EvaluationError, EvaluationTimeout
from policies.engines.opa import OpaEngine
from tests.webhook.serving import read_http_message

Handler = Callable[[socket.socket, bytes], bool]  # answers one request; False: close after


class Peer:
    """A loopback server answering each request with ``handler``; records what it read."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests: list[bytes] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            pending = b""
            while True:
                request, pending = read_http_message(conn, pending)
                if b"\r\n\r\n" not in request:
                    return  # the client closed the connection
                self.requests.append(request)
                if not self.handler(conn, request):
                    return

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def peer() -> Iterator[Callable[[Handler], Peer]]:
    made: list[Peer] = []

    def make(handler: Handler) -> Peer:
        made.append(Peer(handler))
        return made[-1]

    yield make
    for p in made:
        p.close()


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_one_send_per_request_and_the_connection_is_kept(peer: Callable[[Handler], Peer]) -> None:
    p = peer(lambda c, r: c.sendall(_ok(b'{"result": 1}')) is None)
    conn = http1.Connection("127.0.0.1", p.port, tls=False)
    try:
        for _ in range(3):
            answer = conn.request("POST", "/v1/data/x", b'{"input": {}}', "application/json", 5)
            assert (answer.status, answer.body, answer.will_close) == (200, b'{"result": 1}', False)
    finally:
        conn.close()
    assert p.connections == 1
    first = p.requests[0]
    assert first.startswith(b"POST /v1/data/x HTTP/1.1\r\n")
    assert b"Content-Type: application/json\r\n" in first
    assert b"Content-Length: 13\r\n" in first and first.endswith(b'{"input": {}}')
    assert f"Host: 127.0.0.1:{p.port}".encode() in first


def test_a_chunked_answer_is_read_whole(peer: Callable[[Handler], Peer]) -> None:
    def chunked(c: socket.socket, r: bytes) -> bool:
        c.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n"
        )
        return True

    p = peer(chunked)
    conn = http1.Connection("127.0.0.1", p.port, tls=False)
    try:
        assert conn.request("GET", "/", None, "", 5).body == b"hello world"
        assert conn.request("GET", "/", None, "", 5).body == b"hello world"  # framing kept
    finally:
        conn.close()
    assert p.connections == 1


def test_connection_close_and_http_1_0_are_honoured(peer: Callable[[Handler], Peer]) -> None:
    p = peer(lambda c, r: c.sendall(_ok(b"{}", b"Connection: close\r\n")) is None and False)
    conn = http1.Connection("127.0.0.1", p.port, tls=False)
    try:
        assert conn.request("GET", "/", None, "", 5).will_close
    finally:
        conn.close()
    p2 = peer(lambda c, r: c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}") is None)
    conn = http1.Connection("127.0.0.1", p2.port, tls=False)
    try:
        assert conn.request("GET", "/", None, "", 5).will_close
    finally:
        conn.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n",
    ],
    ids=["not-http", "bad-length", "bad-header", "truncated", "bad-chunk", "too-large"],
)
def test_an_answer_it_cannot_read_is_a_protocol_error(
    peer: Callable[[Handler], Peer], answer: bytes
) -> None:
    p = peer(lambda c, r: c.sendall(answer) is None and False)
    conn = http1.Connection("127.0.0.1", p.port, tls=False)
    try:
        with pytest.raises(http1.ProtocolError):
            conn.request("GET", "/", None, "", 5)
    finally:
        conn.close()


def test_the_engine_retries_once_when_opa_closed_an_idle_connection(
    peer: Callable[[Handler], Peer], tmp_path: Path
) -> None:
    answers = iter([True, False, True])  # the second exchange closes the connection after it

    def handler(c: socket.socket, r: bytes) -> bool:
        keep = next(answers, True)
        c.sendall(_ok(b'{"result": "x"}'))
        return keep

    p = peer(handler)
    engine = OpaEngine.__new__(OpaEngine)  # only the transport: no bundle push
    engine.opa_url = f"http://127.0.0.1:{p.port}"
    engine.timeout = 2.0
    engine._local = threading.local()
    for _ in range(3):
        status, body = engine._request("GET", "/", None, time.monotonic() + 2)
        assert (status, json.loads(body)) == (200, {"result": "x"})
        time.sleep(0.05)  # the peer's close has arrived before the next request
    assert p.connections == 2  # the closed connection was replaced, the request answered


def test_silence_is_a_timeout_and_a_refused_port_is_unreachable(
    peer: Callable[[Handler], Peer],
) -> None:
    p = peer(lambda c, r: time.sleep(3) is None and False)
    engine = OpaEngine.__new__(OpaEngine)
    engine.opa_url = f"http://127.0.0.1:{p.port}"
    engine.timeout = 0.3
    engine._local = threading.local()
    started = time.monotonic()
    with pytest.raises(EvaluationTimeout):
        engine._request("POST", "/", b"{}", time.monotonic() + 0.3)
    assert time.monotonic() - started < 1.5
    p.close()
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    engine.opa_url = f"http://127.0.0.1:{port}"
    engine._local = threading.local()
    with pytest.raises(EvaluationError, match="unreachable"):
        engine._request("GET", "/", None, time.monotonic() + 1)


def test_an_answer_that_trickles_in_is_cut_off_at_the_deadline(
    peer: Callable[[Handler], Peer],
) -> None:
    # each byte comes well within the timeout, the whole answer far past it: the deadline
    # bounds the exchange, not each read
    def trickle(c: socket.socket, r: bytes) -> bool:
        try:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
            for _ in range(200):
                time.sleep(0.05)
                c.sendall(b"x")
        except OSError:
            pass
        return False

    p = peer(trickle)
    conn = http1.Connection("127.0.0.1", p.port, tls=False)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        conn.request("POST", "/", b"{}", "application/json", 0.5)
    assert time.monotonic() - started < 1.5
    conn.close()


def test_a_large_answer_from_a_real_opa_is_read_whole(opa_server: str) -> None:
    # OPA streams an answer larger than its write buffer chunked
    doc = {"items": [f"item-{n:06d}-" + "x" * 40 for n in range(20_000)]}
    host, port = opa_server.removeprefix("http://").split(":")
    conn = http1.Connection(host, int(port), tls=False)
    try:
        put = conn.request(
            "PUT", "/v1/data/http1test", json.dumps(doc).encode(), "application/json", 10
        )
        assert put.status == 204
        got = conn.request("GET", "/v1/data/http1test", None, "", 10)
        assert got.status == 200
        assert json.loads(got.body)["result"] == doc
        missing = conn.request("GET", "/v1/data/http1test/nothing", None, "", 10)
        assert missing.status == 200 and json.loads(missing.body) == {}
    finally:
        conn.close()


def test_tls_to_a_real_opa_verifies_its_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelgate.devcerts import write_dev_certificates
    from tests.fixtures.tools import free_port, tool

    certs = write_dev_certificates(tmp_path / "tls", common_name="opa")
    port = free_port()
    proc = subprocess.Popen(
        [
            tool("opa"), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error",
            "--tls-cert-file", str(certs.cert), "--tls-private-key-file", str(certs.key),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_cert))  # trust the dev CA
        deadline = time.monotonic() + 30
        while True:
            conn = http1.Connection("127.0.0.1", port, tls=True)
            try:
                answer = conn.request("GET", "/health", None, "", 5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            finally:
                conn.close()
        assert answer.status == 200
        monkeypatch.delenv("SSL_CERT_FILE")  # an untrusted certificate is refused
        monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-cas"))
        conn = http1.Connection("127.0.0.1", port, tls=True)
        with pytest.raises(ssl.SSLCertVerificationError):
            conn.request("GET", "/health", None, "", 5)
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
