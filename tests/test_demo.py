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
    # recorded sign-off: the annotation "approved" is not trusted, so the model is denied...
    first, loop = out.split("6. waiting for review", 1)
    assert "✘ DENIED  Deployment ml-prod/fraud-detector" in first
    words = " ".join(first.split())  # the messages are wrapped
    assert 'model "fraud-detector" version "1.4.2" has no recorded approval' in words
    assert "modelgate approve fraud-detector 1.4.2" in words
    assert "✘ DENIED  Deployment ml-prod/churn-predictor" in first
    assert 'missing required annotation "modelgate.dev/model-version"' in first
    assert "✔ ALLOWED Deployment ml-prod/web-frontend" in first  # the non-model workload
    assert "! WARNED  Deployment ml-sandbox/support-summarizer" in first  # warn namespace
    assert "[/validate/warn]" in first
    # ... and waits for review as pending-review
    assert "- fraud-detector 1.4.2 (owner fraud-ml@example.com): pending-review" in loop
    # the owner may not approve their own model, the approver may
    owner, rest = loop.split("8. the approver", 1)
    assert "HTTP 403" in owner and "fraud-ml@example.com owns this model version" in owner
    assert "(exit 1)" in owner
    assert "approved fraud-detector 1.4.2 (approval 1, by risk-officer@example.com)" in rest
    # the same deployment is admitted now, and the decision log names the approval
    again, inventory = rest.split("10. the inventory", 1)
    assert (
        "✔ ALLOWED Deployment ml-prod/fraud-detector (01-compliant-deployment.yaml) again" in again
    )
    assert "fraud-detector" in inventory and "1.4.2" in inventory
    assert "churn-predictor" not in inventory  # no version: not registered
    assert 'names: [{"type": "approval", "id": 1}]' in inventory
