"""Per-evaluation latency of the embedded engine (compiled once; no per-request setup)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from policies.engines.embedded import EmbeddedEngine
from tests.policies.samples import POLICY_DIR, sample, to_input

pytestmark = pytest.mark.benchmark


@pytest.fixture(scope="module")
def engine() -> Iterator[EmbeddedEngine]:
    engine = EmbeddedEngine(POLICY_DIR)
    assert engine.ready(), engine.last_error
    yield engine
    engine.close()


@pytest.mark.parametrize(
    "file",
    [
        "01-compliant-deployment.yaml",
        "03-bad-values-deployment.yaml",
        "04-nginx-deployment.yaml",
        "05-high-risk-certified-deployment.yaml",
    ],
)
def test_embedded_evaluation_latency(
    benchmark: BenchmarkFixture, engine: EmbeddedEngine, file: str
) -> None:
    policy_input = to_input(sample(file))
    expected = engine.evaluate(policy_input)
    result = benchmark(engine.evaluate, policy_input)
    assert result == expected
