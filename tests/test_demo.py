"""``make demo`` end to end: ``python -m modelgate.demo`` (TLS webhook, SQLite, embedded Rego)."""

from __future__ import annotations

import os
import subprocess
import sys

from modelgate.demo import REPO_ROOT


def test_demo_prints_decisions_and_the_inventory() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    result = subprocess.run(
        [sys.executable, "-m", "modelgate.demo"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    assert "✔ ALLOWED Deployment ml-prod/fraud-detector" in out
    assert "✘ DENIED  Deployment ml-prod/churn-predictor" in out
    assert 'missing required annotation "modelgate.dev/model-version"' in out
    assert "✔ ALLOWED Deployment ml-prod/web-frontend" in out  # the non-model workload
    assert "! WARNED  Deployment ml-sandbox/support-summarizer" in out  # warn namespace
    assert "[/validate/warn]" in out
    inventory = out.split("5. the inventory", 1)[1]
    assert "fraud-detector" in inventory and "1.4.2" in inventory
    assert "churn-predictor" not in inventory  # denied models never enter the inventory
