"""Both engines give identical decisions: every sample manifest plus generated variations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelgate.policy_input import PolicyInput
from policies.engines.base import PolicyResult
from policies.engines.embedded import EmbeddedEngine
from policies.engines.opa import OpaEngine
from tests.policies.samples import POLICY_DIR, hidden_field_cases, sample_inputs, variations

CASES: dict[str, PolicyInput] = {**sample_inputs(), **variations(), **hidden_field_cases()}


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


@pytest.mark.parametrize("case", sorted(hidden_field_cases()))
def test_hidden_field_is_denied_naming_it_not_evaluated(
    embedded: EmbeddedEngine, case: str
) -> None:
    result = embedded.evaluate(CASES[case])
    if case == "hidden-long-owner-on-a-non-model":
        assert result.allowed and not result.is_model and not result.warn
    elif case == "certifications-at-the-entry-limit":
        assert result.allowed
    elif case.endswith("-warn"):
        assert result.allowed and any("over the limit" in w for w in result.warn)
    else:
        assert not result.allowed
        assert all("limit" in d for d in result.deny), result.deny
        assert not any("missing required annotation" in d for d in result.deny), result.deny


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
