"""The sample manifests (examples/manifests) decide as their suite file says, on both engines.

``examples/manifests/suite.yaml`` holds one case per sample object beside the samples
themselves (as gatekeeper-library keeps a suite beside its samples): whether it is a model,
whether it is admitted, and fragments of the expected denials and warnings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from policies.engines.base import PolicyEngine
from policies.engines.embedded import EmbeddedEngine
from policies.engines.inprocess import InProcessOpaEngine
from policies.engines.opa import OpaEngine
from tests.policies.samples import EXAMPLES, POLICY_DIR, sample_inputs

SUITE = EXAMPLES / "suite.yaml"


def _cases() -> list[dict[str, Any]]:
    doc = yaml.safe_load(SUITE.read_text(encoding="utf-8"))
    assert doc["kind"] == "Suite"
    cases: list[dict[str, Any]] = doc["cases"]
    return cases


def _inputs_by_file() -> dict[str, Any]:
    return {key.split("#")[0]: value for key, value in sample_inputs().items()}


@pytest.fixture(scope="module", params=["embedded", "opa", "opa-inprocess"])
def sample_engine(request: pytest.FixtureRequest) -> Iterator[PolicyEngine]:
    engine: PolicyEngine
    if request.param == "embedded":
        engine = EmbeddedEngine(POLICY_DIR)
    elif request.param == "opa-inprocess":
        engine = InProcessOpaEngine(POLICY_DIR, timeout=5)
    else:
        engine = OpaEngine(POLICY_DIR, request.getfixturevalue("opa_server"), timeout=5)
    assert engine.ready(), engine.last_error
    yield engine
    engine.close()


def test_every_sample_workload_has_one_case_and_every_case_a_sample() -> None:
    files = [c["file"] for c in _cases()]
    assert len(files) == len(set(files))
    assert set(files) == set(_inputs_by_file())
    assert all((EXAMPLES / f).is_file() for f in files)


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["file"])
def test_sample_decides_as_its_suite_case_says(
    sample_engine: PolicyEngine, case: dict[str, Any]
) -> None:
    result = sample_engine.evaluate(_inputs_by_file()[case["file"]])
    assert result.is_model is case["is_model"]
    assert result.allowed is case["allowed"]
    for fragment in case.get("deny", []):
        assert any(fragment in msg for msg in result.deny), (fragment, result.deny)
    for fragment in case.get("warn", []):
        assert any(fragment in msg for msg in result.warn), (fragment, result.warn)
    if not case.get("warn"):
        assert result.warn == ()
    if case["allowed"]:
        assert result.deny == ()
    assert result.bundle_digest == sample_engine.bundle_digest


def test_the_suite_file_is_not_a_workload() -> None:
    """`modelgate evaluate` passes over the suite: its kind is none modelgate judges."""
    from modelgate.workload import skip_reason

    assert skip_reason("Suite", {}) == "unsupported-kind"
