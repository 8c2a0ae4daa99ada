"""``modelgate approve | reject | revoke | exempt | approvals list`` against a real
``modelgate dashboard`` process: the identity is the API's (a token, or --kube with the
kubeconfig's token), never a flag; exit codes 0 / 1 refused / 2 usage / 3 unreachable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from modelgate.identity.tokens import write_token_file
from modelgate.inventory.db import Database
from tests.fixtures.inventory import admit, deployment, metadata
from tests.fixtures.tools import free_port

MODELGATE = [sys.executable, "-m", "modelgate.cli"]


@pytest.fixture
def server(sqlite_url: str, sqlite_db: Database, tmp_path: Path) -> Iterator[str]:
    admit(sqlite_db, "prod", deployment("fraud", annotations=metadata(owner="risk-ml@example.com")))
    tokens = write_token_file(
        tmp_path / "tokens.csv",
        [
            ("t-alice", "risk-officer@example.com", ["model-risk"]),
            ("t-bob", "second-reviewer@example.com", ["model-risk"]),
            ("t-owner", "risk-ml@example.com", ["model-risk"]),
        ],
    )
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")},
        "MODELGATE_DATABASE_URL": sqlite_url,
        "MODELGATE_TOKEN_FILE": str(tokens),
        "MODELGATE_ROLE_GROUPS": "approver=model-risk",
    }
    log = (tmp_path / "dashboard.log").open("wb")
    proc = subprocess.Popen(
        [*MODELGATE, "dashboard", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def run(
    *args: str, token: str | None = None, server: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    if token is not None:
        env["MODELGATE_TOKEN"] = token
    if server is not None:
        env["MODELGATE_API_URL"] = server
    return subprocess.run([*MODELGATE, *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_sign_off_loop_from_the_command_line(server: str, tmp_path: Path) -> None:
    own = run("approve", "fraud-detector", "1.0.0", token="t-owner", server=server)
    assert own.returncode == 1
    assert "HTTP 403" in own.stderr and "owns this model version" in own.stderr

    ok = run(
        "approve",
        "fraud-detector",
        "1.0.0",
        "--reason",
        "validated",
        "--evidence",
        "https://docs.example.com/a",
        "--expires",
        "2099-01-31",
        "--namespace",
        "ml",
        token="t-alice",
        server=server,
    )
    assert ok.returncode == 0, ok.stderr
    assert "approved fraud-detector 1.0.0 (approval 1, by risk-officer@example.com)" in ok.stdout
    assert "is now approved" in ok.stdout

    listed = run("approvals", "list", "fraud-detector", "-o", "json", token="t-bob", server=server)
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["approver"], r["scope"], r["expires"]) for r in rows] == [
        (1, "risk-officer@example.com", {"namespaces": ["ml"]}, "2099-01-31")
    ]
    table = run("approvals", "list", token="t-bob", server=server)
    assert table.returncode == 0 and "risk-officer@example.com" in table.stdout

    revoked = run("revoke", "1", "--reason", "drift", token="t-bob", server=server)
    assert revoked.returncode == 0, revoked.stderr
    assert "is now pending-review" in revoked.stdout
    again = run("revoke", "1", "--reason", "drift", token="t-bob", server=server)
    assert again.returncode == 1 and "HTTP 409" in again.stderr

    rejected = run(
        "reject", "fraud-detector", "1.0.0", "--reason", "bias", token="t-bob", server=server
    )
    assert rejected.returncode == 0 and "is now rejected" in rejected.stdout

    exempt = run(
        "exempt",
        "fraud-detector",
        "1.0.0",
        "--reason",
        "pilot",
        "--expires",
        "2099-01-01",
        token="t-alice",
        server=server,
    )
    assert (
        exempt.returncode == 0 and "exempted fraud-detector 1.0.0 until 2099-01-01" in exempt.stdout
    )


def test_kube_uses_the_kubeconfig_token(server: str, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t-alice"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    ok = run("approvals", "list", "--kube", "--kubeconfig", str(kubeconfig), server=server)
    assert ok.returncode == 0, ok.stderr
    both = run(
        "approvals", "list", "--kube", "--kubeconfig", str(kubeconfig), token="t", server=server
    )
    assert both.returncode == 2


def test_usage_and_unreachable_exit_codes(server: str) -> None:
    assert run("approvals", "list", token="t-alice").returncode == 2  # no server
    no_token = run("approvals", "list", server=server)
    assert no_token.returncode == 2 and "no credentials" in no_token.stderr
    bad = run("approvals", "list", token="wrong", server=server)
    assert bad.returncode == 1 and "HTTP 401" in bad.stderr and "wrong" not in bad.stderr
    down = run("approvals", "list", token="t-alice", server=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 3 and "does not answer" in down.stderr
    missing = run("revoke", "1", token="t-alice", server=server)
    assert missing.returncode == 2  # --reason is required
