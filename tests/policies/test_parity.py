"""Both engines give identical decisions: every sample manifest plus generated variations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelgate.policy_input import PolicyInput
from policies.engines.base import PolicyResult
from policies.engines.embedded import EmbeddedEngine
from policies.engines.opa import OpaEngine
from tests.policies.samples import POLICY_DIR, sample_inputs, variations

CASES: dict[str, PolicyInput] = {**sample_inputs(), **variations()}


@pytest.fixture(scope="module")
def opa_engine(opa_server: str) -> Iterator[OpaEngine]:
    engine = OpaEngine(POLICY_DIR, opa_server, timeout=10)
    assert engine.ready(), engine.last_error
    yield engine
    engine.close()


def test_cases_cover_allowed_denied_warned_and_non_models(embedded: EmbeddedEngine) -> None:
    results = [embedded.evaluate(i) for i in CASES.values()]
    assert len(CASES) >= 80
    assert any(r.allowed and r.is_model and not r.warn for r in results)
    assert any(not r.allowed for r in results)
    assert any(r.allowed and r.warn for r in results)
    assert any(not r.is_model for r in results)
    assert {r.enforcement for r in results} == {"enforce", "warn", "off"}


def test_both_engines_serve_the_same_bundle(
    embedded: EmbeddedEngine, opa_engine: OpaEngine
) -> None:
    assert embedded.bundle_digest == opa_engine.bundle_digest != ""


@pytest.mark.parametrize("case", sorted(CASES))
def test_engines_agree(embedded: EmbeddedEngine, opa_engine: OpaEngine, case: str) -> None:
    policy_input = CASES[case]
    ours: PolicyResult = embedded.evaluate(policy_input)
    theirs: PolicyResult = opa_engine.evaluate(policy_input)
    assert ours == theirs
