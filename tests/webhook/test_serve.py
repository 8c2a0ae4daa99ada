"""A real ``modelgate serve`` process over TLS: gunicorn, the embedded engine, SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from modelgate.inventory import queries
from modelgate.inventory.db import Database
from modelgate.inventory.records import jsonable
from tests.fixtures.tools import free_port
from tests.webhook.reviews import COMPLIANT, P
from webhook.tls import DevCertificates, write_dev_certificates

from .reviews import deployment, review
from .test_tls import served_common_name


@dataclass
class Served:
    base: str
    certs: DevCertificates
    workdir: Path
    database_url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def post(self, body: Any, path: str = "/validate") -> requests.Response:
        return requests.post(
            self.base + path, json=body, verify=str(self.certs.ca_cert), timeout=10
        )

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, verify=str(self.certs.ca_cert), timeout=10)


def _modelgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelgate.cli", *args]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("serve")
    certs = write_dev_certificates(workdir / "tls", common_name="original")
    url = f"sqlite:///{workdir / 'inventory.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    env.update(
        # as in the chart's pods: HOME on a read-only root filesystem, nothing writable there
        HOME="/proc/self/no-home",
        MODELGATE_DATABASE_URL=url,
        MODELGATE_CLUSTER_NAME="serve-test",
        MODELGATE_SPOOL_DIR=str(workdir / "spool"),
        MODELGATE_MAX_REQUEST_BYTES=str(256 * 1024),
        MODELGATE_APPROVAL_SOURCE="annotation",  # recorded sign-off: tests/webhook/test_signoff.py
    )
    subprocess.run(_modelgate("db", "upgrade"), env=env, cwd=workdir, check=True)
    port = free_port()
    log = workdir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _modelgate(
                "serve",
                "--host", "127.0.0.1",
                "--port", str(port),
                "--tls-cert", str(certs.cert),
                "--tls-key", str(certs.key),
                "--workers", "2",
                "--threads", "2",
            ),
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    s = Served(f"https://127.0.0.1:{port}", certs, workdir, url, proc, log)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if s.get("/readyz").status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "not ready in 60s:\n" + log.read_text()
        time.sleep(0.2)
    yield s
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _decisions(url: str, name: str) -> list[dict[str, Any]]:
    db = Database(url)
    try:
        return jsonable(queries.decisions(db, name=name, limit=None))
    finally:
        db.dispose()


def test_allows_compliant_and_denies_undocumented_over_tls(served: Served) -> None:
    ok = served.post(review(deployment("fraud-detector", annotations=COMPLIANT), uid="u-ok"))
    assert ok.status_code == 200
    assert ok.json()["response"] == {"uid": "u-ok", "allowed": True}

    partial = {k: v for k, v in COMPLIANT.items() if "owner" not in k and "date" not in k}
    bad = served.post(review(deployment("bad-model", annotations=partial), uid="u-bad"))
    resp = bad.json()["response"]
    assert resp["uid"] == "u-bad"
    assert resp["allowed"] is False
    assert resp["status"]["code"] == 403
    message = resp["status"]["message"]
    assert message.startswith("modelgate denied Deployment ml/bad-model: 2 problems: (1) ")
    assert P + "owner" in message and P + "training-date" in message


def test_warn_route_admits_with_warnings(served: Served) -> None:
    resp = served.post(review(deployment("sandboxed", annotations={})), "/validate/warn")
    body = resp.json()["response"]
    assert body["allowed"] is True
    assert len(body["warnings"]) >= 6
    assert all(len(w) <= 256 for w in body["warnings"])


def test_untrusted_clients_cannot_talk_plain_http_or_skip_verification(served: Served) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(served.base + "/healthz", timeout=5)  # system CAs do not know the dev CA
    plain = served.base.replace("https://", "http://")
    with pytest.raises(requests.RequestException):
        requests.get(plain + "/healthz", timeout=5)
    assert served.get("/healthz").status_code == 200  # and it keeps serving


def test_malformed_input_is_4xx_and_the_server_keeps_serving(served: Served) -> None:
    resp = requests.post(
        served.base + "/validate",
        data=b"{broken",
        headers={"Content-Type": "application/json"},
        verify=str(served.certs.ca_cert),
        timeout=10,
    )
    assert resp.status_code == 400
    assert "not JSON" in resp.json()["error"]
    resp = requests.post(
        served.base + "/validate",
        data=b"x" * (300 * 1024),
        headers={"Content-Type": "application/json"},
        verify=str(served.certs.ca_cert),
        timeout=30,
    )
    assert resp.status_code == 413
    ok = served.post(review(deployment("fraud-detector", annotations=COMPLIANT)))
    assert ok.json()["response"]["allowed"] is True


def test_decisions_are_recorded_but_dry_runs_are_not(served: Served) -> None:
    served.post(review(deployment("recorded", annotations=COMPLIANT), uid="rec-1", user="ann"))
    served.post(review(deployment("recorded", annotations={}), uid="rec-dry", dry_run=True))
    served.post(review(deployment("recorded", annotations={}), uid="rec-2"))
    deadline = time.monotonic() + 20
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = _decisions(served.database_url, "recorded")
        if len(rows) >= 2:
            break
        time.sleep(0.2)
    by_uid = {r["uid"]: r for r in rows}
    assert set(by_uid) == {"rec-1", "rec-2"}
    assert by_uid["rec-1"]["allowed"] is True and by_uid["rec-1"]["user"] == "ann"
    assert by_uid["rec-1"]["cluster"] == "serve-test"
    assert by_uid["rec-1"]["engine"] == "embedded"
    assert by_uid["rec-1"]["bundle_digest"]
    assert by_uid["rec-2"]["allowed"] is False and len(by_uid["rec-2"]["violations"]) >= 6


def test_metrics_sum_over_gunicorn_workers(served: Served) -> None:
    for i in range(6):
        served.post(review(deployment(f"m{i}", annotations=COMPLIANT)))
    text = served.get("/metrics").text
    allowed = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("modelgate_admission_decisions_total{") and 'result="allowed"' in line
    ]
    assert sum(allowed) >= 6
    assert "modelgate_admission_duration_seconds_bucket" in text


def test_rotated_certificate_is_served_without_restart(served: Served) -> None:
    pid = served.proc.pid
    assert served_common_name(int(served.base.rsplit(":", 1)[1]), served.certs.ca_cert) == (
        "original"
    )
    write_dev_certificates(served.workdir / "tls", common_name="rotated", ca=served.certs)
    port = int(served.base.rsplit(":", 1)[1])
    deadline = time.monotonic() + 15
    names: set[str] = set()
    while time.monotonic() < deadline:
        names = {served_common_name(port, served.certs.ca_cert) for _ in range(4)}
        if names == {"rotated"}:
            break
        time.sleep(0.3)
    assert names == {"rotated"}  # every worker serves the new certificate
    assert served.proc.poll() is None and served.proc.pid == pid
    assert served.get("/healthz").json() == {"status": "ok"}
    log = served.log.read_text()
    assert "Traceback" not in log, log


def test_cli_reports_unloadable_certificate(tmp_path: Path) -> None:
    bad = tmp_path / "tls.crt"
    bad.write_text("nope")
    result = subprocess.run(
        _modelgate("serve", "--tls-cert", str(bad), "--tls-key", str(bad), "--port", "1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot load TLS certificate" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_reports_a_bad_database_url_before_starting(served: Served) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    env["MODELGATE_DATABASE_URL"] = "mysql://db/inventory"
    result = subprocess.run(
        _modelgate(
            "serve",
            "--tls-cert", str(served.certs.cert),
            "--tls-key", str(served.certs.key),
            "--port", str(free_port()),
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "MODELGATE_DATABASE_URL: unsupported database 'mysql'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unwritable_home_costs_no_error_at_start(served: Served) -> None:
    """The server needs nothing under HOME (gunicorn's runtime-control socket stays off)."""
    assert served.get("/healthz").status_code == 200
    log = served.log.read_text(errors="replace")
    assert "[ERROR]" not in log, log
    assert "control socket" not in log.lower() and "Control server" not in log
