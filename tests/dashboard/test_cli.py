"""``modelgate dashboard`` starts a real gunicorn server that answers over plain HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from click.testing import CliRunner

from modelgate.cli import main
from modelgate.inventory.db import Database
from tests.conftest import REPO_ROOT
from tests.dashboard.conftest import seed_inventory

MODELGATE = Path(sys.executable).parent / "modelgate"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_dashboard_command_serves_pages_and_healthz(
    sqlite_db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    seed_inventory(sqlite_db)
    port = _free_port()
    env = {
        **os.environ,
        "MODELGATE_DATABASE_URL": sqlite_url,
        "MODELGATE_ALLOW_ANONYMOUS": "true",  # authentication: tests/dashboard/test_api_auth.py
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO_ROOT),
    }
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(
        [str(MODELGATE), "dashboard", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
            try:
                health = requests.get(f"{base}/healthz", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert health is not None, (tmp_path / "dashboard.log").read_text()
        assert health.status_code == 200 and health.json()["status"] == "ok"
        page = requests.get(f"{base}/models", timeout=30)
        assert page.status_code == 200
        assert "credit-scorer" in page.text and "fraud-detector" in page.text
        api = requests.get(f"{base}/api/v1/overview", timeout=30).json()
        assert api["counts"]["models"] == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_dashboard_help_and_bad_database_url() -> None:
    runner = CliRunner()
    assert "dashboard" in runner.invoke(main, ["--help"]).output
    help_text = runner.invoke(main, ["dashboard", "--help"]).output
    assert "--host" in help_text and "127.0.0.1" in help_text and "8080" in help_text
    assert "authenticated inventory API" in help_text and "MODELGATE_TOKEN_FILE" in help_text
    bad = runner.invoke(main, ["dashboard"], env={"MODELGATE_DATABASE_URL": "mysql://x/y"})
    assert bad.exit_code == 1
    assert "MODELGATE_DATABASE_URL: unsupported database 'mysql'" in bad.output
