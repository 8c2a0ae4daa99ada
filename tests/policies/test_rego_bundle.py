"""The shipped bundle under the real opa: its unit tests pass, `check --strict` and `fmt` clean."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import requests

from policies.engines.common import decode_result
from policies.engines.embedded import EmbeddedEngine
from tests.fixtures.opa import wait_for_health
from tests.fixtures.tools import free_port, tool
from tests.policies.samples import POLICY_DIR, sample_inputs

RULE_FILES = ["detection", "metadata", "compliance", "risk", "enforcement", "admission"]


def _opa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("opa"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_opa_is_the_pinned_version() -> None:
    assert "Version: 1.22.3" in _opa("version").stdout


def test_rego_unit_tests_pass_under_opa() -> None:
    proc = _opa("test", str(POLICY_DIR), "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = re.search(r"PASS: (\d+)/(\d+)", proc.stdout)
    assert passed is not None and passed.group(1) == passed.group(2)
    assert int(passed.group(1)) >= 70
    assert "FAIL" not in proc.stdout


def test_every_concern_has_tests_beside_it_named_by_situation_and_expectation() -> None:
    for concern in RULE_FILES:
        tests = POLICY_DIR / "modelgate" / concern / f"{concern}_test.rego"
        names = re.findall(r"^(test_\w+) if", tests.read_text(), re.MULTILINE)
        assert len(names) >= 5, concern
        for name in names:
            # test_<situation>_<expectation>: at least two words after test_
            assert name.count("_") >= 2, name


def test_bundle_passes_opa_check_strict() -> None:
    proc = _opa("check", "--strict", str(POLICY_DIR))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bundle_is_opa_fmt_clean() -> None:
    proc = _opa("fmt", "--list", str(POLICY_DIR))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_a_failing_rego_test_fails_opa_test(policy_copy: Path) -> None:
    target = policy_copy / "modelgate" / "metadata" / "metadata_test.rego"
    target.write_text(
        target.read_text()
        + "\ntest_deliberately_wrong_fails if {\n\tviolations_for({}) == set()\n}\n"
    )
    proc = _opa("test", str(policy_copy))
    assert proc.returncode != 0
    assert "test_deliberately_wrong_fails" in proc.stdout


def test_data_file_lands_at_data_modelgate_config_for_opa() -> None:
    proc = _opa(
        "eval", "-f", "raw", "-b", str(POLICY_DIR), "data.modelgate.config.default_risk_tier"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "limited"


def test_opa_run_serves_the_directory_with_the_same_decisions(tmp_path: Path) -> None:
    """`opa run -s policies/` (the sidecar loading the directory itself, plus the digest
    marker the engines push) decides the samples as the embedded engine does: same data path,
    same modules."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    engine = EmbeddedEngine(POLICY_DIR)
    marker = tmp_path / "marker.json"
    marker.write_text(json.dumps({"modelgate": {"bundle": {"digest": engine.bundle_digest}}}))
    proc = subprocess.Popen(
        [tool("opa"), "run", "-s", "--addr", f"127.0.0.1:{port}", str(POLICY_DIR), str(marker)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(url, proc)
        for name, policy_input in sample_inputs().items():
            answer = requests.post(
                f"{url}/v1/data/modelgate/admission", json={"input": policy_input}, timeout=10
            ).json()
            served = decode_result(answer.get("result"), engine.bundle_digest)
            assert served == engine.evaluate(policy_input), name
    finally:
        engine.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_rego_tests_cover_every_line_of_the_policy() -> None:
    proc = _opa("test", str(POLICY_DIR), "--coverage", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    uncovered = {
        path: [(r["start"]["row"], r["end"]["row"]) for r in info.get("not_covered", [])]
        for path, info in report["files"].items()
        if not path.endswith("_test.rego") and info.get("not_covered")
    }
    assert uncovered == {}
