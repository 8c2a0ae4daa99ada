"""The serving stack of a real ``modelgate serve`` (Hypercorn workers, TLS): idle keep-alive
connections never stall anybody, slow clients are cut off, HTTP/2, mutual TLS."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from modelgate.inventory.db import Database
from modelgate.inventory.models import Decision
from tests.webhook.reviews import COMPLIANT, deployment, review
from tests.webhook.serving import Serve, clean_env, http_request, modelgate
from webhook.tls import write_dev_certificates

WORKERS, THREADS = 2, 2
#: long enough to open and use the held connections, short enough to wait for the cut-off
READ_TIMEOUT = 8.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    workdir = tmp_path_factory.mktemp("stack")
    url = f"sqlite:///{workdir / 'inventory.db'}"
    env = clean_env(
        MODELGATE_DATABASE_URL=url,
        MODELGATE_SPOOL_DIR=str(workdir / "spool"),
        MODELGATE_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
        MODELGATE_MAX_REQUEST_BYTES=str(256 * 1024),
    )
    subprocess.run(modelgate("db", "upgrade"), env=env, cwd=workdir, check=True)
    serve = Serve(workdir, env, ["--workers", str(WORKERS), "--threads", str(THREADS)]).start()
    yield serve
    serve.stop()


def _review_bytes(uid: str = "held") -> bytes:
    return json.dumps(review(deployment("fraud-detector", annotations=COMPLIANT), uid=uid)).encode()


def _raw_post(body: bytes, path: str = "/validate") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_idle_keep_alive_connections_never_stall_a_new_request(server: Serve) -> None:
    with ThreadPoolExecutor(16) as pool:  # 64 = 4 x (workers x threads) x 4, opened at once
        held = list(pool.map(lambda _: server.tls_socket(), range(4 * WORKERS * THREADS * 4)))
    try:
        # every held connection has sent one request and now idles on keep-alive
        for i, sock in enumerate(held[: len(held) // 2]):
            assert b" 200 " in http_request(sock, _raw_post(_review_bytes(f"first-{i}")))[:20]
        started = time.monotonic()
        fresh = server.post(review(deployment(annotations=COMPLIANT), uid="fresh"))
        assert fresh.status_code == 200 and fresh.json()["response"]["allowed"] is True
        assert time.monotonic() - started < 5, "a new request waited on idle connections"
        for i, sock in enumerate(held):  # and each held one is answered when it sends
            answer = http_request(sock, _raw_post(_review_bytes(f"held-{i}")))
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            assert b'"allowed":true' in answer
    finally:
        for sock in held:
            sock.close()


def _closed_by_server(sock: ssl.SSLSocket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
            if b"HTTP/1.1 408" in data or b"HTTP/1.1 400" in data:
                return True
    except TimeoutError:
        return False
    except (ssl.SSLError, OSError):
        return True


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_many_short_connections_do_not_pile_up_memory(server: Serve) -> None:
    """Clients that open a connection per review (no keep-alive) leave each connection's
    state until its keep-alive timer fires: it must be small (asyncio's 256 KiB TLS read
    buffer each made 400 of them ~115 MiB over two workers; now ~20 MiB)."""
    assert server.certs is not None
    context = ssl.create_default_context(cafile=str(server.certs.ca_cert))
    request = _raw_post(_review_bytes("short"))

    def once(_: int) -> bytes:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                answer += chunk
            return answer.split(b"\r\n", 1)[0]

    with ThreadPoolExecutor(4) as pool:  # warm up: imports, first allocations
        list(pool.map(once, range(40)))
    workers = sorted(server.workers())
    before = sum(_rss_mib(pid) for pid in workers)
    with ThreadPoolExecutor(16) as pool:
        statuses = set(pool.map(once, range(400)))
    assert statuses == {b"HTTP/1.1 200 "}, statuses
    grown = sum(_rss_mib(pid) for pid in workers) - before
    assert grown < 50, f"{len(workers)} workers grew by {grown:.0f} MiB for 400 connections"


def test_slow_clients_are_cut_off_while_others_are_answered(server: Serve) -> None:
    body = _review_bytes("slow")
    partial_headers = b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Ty"
    partial_body = _raw_post(body)[: -len(body) // 2]
    huge_length = (
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200000\r\n\r\n{"
    )

    def open_slow(i: int) -> ssl.SSLSocket:
        sock = server.tls_socket()
        sock.sendall((partial_headers, partial_body, huge_length)[i % 3])
        return sock

    with ThreadPoolExecutor(16) as pool:
        slow = list(pool.map(open_slow, range(50)))
    try:
        for n in range(5):  # while 50 slow clients are held, others are answered promptly
            started = time.monotonic()
            resp = server.post(review(deployment(annotations=COMPLIANT), uid=f"ok-{n}"))
            assert resp.status_code == 200
            assert time.monotonic() - started < 5
        # each slow one is cut off once it has sent nothing for the read timeout
        deadline = READ_TIMEOUT * 3 + 10
        assert all(_closed_by_server(sock, deadline) for sock in slow)
    finally:
        for sock in slow:
            sock.close()
    assert server.get("/healthz").status_code == 200


def test_a_malformed_chunked_body_is_a_4xx_not_a_500(server: Serve) -> None:
    with server.tls_socket() as sock:
        answer = http_request(
            sock,
            b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz-not-hex\r\n{}\r\n0\r\n\r\n",
        )
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]


def test_a_chunked_review_is_answered(server: Serve) -> None:
    body = _review_bytes("chunked")
    with server.tls_socket() as sock:
        answer = http_request(
            sock,
            b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n",
        )
    assert answer.startswith(b"HTTP/1.1 200") and b'"uid":"chunked"' in answer


def test_http2_is_offered_and_served_over_tls(server: Serve) -> None:
    assert server.certs is not None
    ctx = ssl.create_default_context(cafile=str(server.certs.ca_cert))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
    body = server.workdir / "review.json"
    body.write_bytes(_review_bytes("over-h2"))
    out = subprocess.run(
        [
            "curl", "--silent", "--show-error", "--http2", "--cacert", str(server.certs.ca_cert),
            "-H", "Content-Type: application/json", "--data-binary", f"@{body}",
            "-w", "\n%{http_version}", f"https://localhost:{server.port}/validate",
            "--resolve", f"localhost:{server.port}:127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )  # fmt: skip
    answer, version = out.stdout.rsplit("\n", 1)
    assert version == "2"
    assert json.loads(answer)["response"] == {"uid": "over-h2", "allowed": True}


def test_overload_beyond_max_pending_is_an_immediate_429(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    env = clean_env(MODELGATE_DATABASE_URL=url, MODELGATE_AUTO_MIGRATE="true")
    serve = Serve(tmp_path, env, ["--workers", "1", "--threads", "1", "--max-pending", "1"])
    serve.start()
    try:
        body = review(deployment(annotations=COMPLIANT))
        with ThreadPoolExecutor(24) as pool:
            statuses = list(pool.map(lambda _: serve.post(body).status_code, range(48)))
        assert set(statuses) <= {200, 429}
        assert 429 in statuses and 200 in statuses
        resp = next(r for r in (serve.post(body) for _ in range(3)) if r.status_code in (200, 429))
        assert resp.status_code in (200, 429)
        metrics = serve.get("/metrics").text
        assert 'modelgate_admission_overload_total{reason="backlog"}' in metrics
    finally:
        serve.stop()


def test_mutual_tls_admits_only_the_api_servers_certificate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    env = clean_env(MODELGATE_DATABASE_URL=url, MODELGATE_AUTO_MIGRATE="true")
    server_certs = write_dev_certificates(tmp_path / "tls", common_name="webhook")
    client_ca = write_dev_certificates(
        tmp_path / "apiserver", common_name="kube-apiserver", client=True
    )
    rogue = write_dev_certificates(tmp_path / "rogue", common_name="rogue", client=True)
    probe_port = Serve(tmp_path, env).port
    serve = Serve(
        tmp_path,
        env,
        ["--workers", "1", "--client-ca", str(client_ca.ca_cert), "--probe-port", str(probe_port)],
        certs=server_certs,
        client_cert=(str(client_ca.cert), str(client_ca.key)),
    )
    serve.start()
    try:
        ok = serve.post(review(deployment("verified", annotations=COMPLIANT), uid="mtls-ok"))
        assert ok.json()["response"]["allowed"] is True
        for cert in (None, (str(rogue.cert), str(rogue.key))):  # no certificate, a foreign one
            with pytest.raises(requests.exceptions.RequestException):
                requests.post(
                    serve.base + "/validate",
                    json=review(deployment("forged", annotations=COMPLIANT), uid="forged"),
                    verify=str(server_certs.ca_cert),
                    cert=cert,
                    timeout=10,
                )
        probe = f"http://127.0.0.1:{probe_port}"
        assert requests.get(probe + "/healthz", timeout=10).status_code == 200
        refused = requests.post(
            probe + "/validate",
            json=review(deployment("forged", annotations=COMPLIANT)),
            timeout=10,
        )
        assert refused.status_code == 403
    finally:
        serve.stop()
    db = Database(url)
    try:
        with db.read() as session:
            rows = {d.uid: d.caller_verified for d in session.query(Decision)}
    finally:
        db.dispose()
    assert rows == {"mtls-ok": True}
