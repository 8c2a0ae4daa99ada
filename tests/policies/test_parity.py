"""Both engines give identical decisions: every sample manifest plus generated variations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelgate.approvals import sign_off
from modelgate.policy_input import PolicyInput
from policies.config import PolicyConfig
from policies.engines.base import PolicyResult
from policies.engines.embedded import EmbeddedEngine
from policies.engines.opa import OpaEngine
from tests.policies.registry_cases import CLUSTER, registry_inputs
from tests.policies.samples import POLICY_DIR, TODAY, sample_inputs, variations

REGISTRY = registry_inputs()
CASES: dict[str, PolicyInput] = {
    **sample_inputs(),
    **variations(),
    **{name: policy_input for name, (policy_input, _) in REGISTRY.items()},
}


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


@pytest.mark.parametrize("case", sorted(REGISTRY))
def test_rego_and_the_python_sign_off_rules_agree(embedded: EmbeddedEngine, case: str) -> None:
    """The admission rule (signoff.rego) and modelgate.approvals.sign_off (API, dashboard,
    auditor) admit the same versions."""
    policy_input, (_, _, _, approvals, exemptions) = REGISTRY[case]
    md = policy_input["workload"]["metadata"]
    state = sign_off(
        model=md["model-name"],
        version=md["model-version"],
        risk_tier=md.get("risk-tier", "limited"),
        approvals=approvals,
        exemptions=exemptions,
        today=TODAY,
        config=PolicyConfig.load(POLICY_DIR),
        cluster=CLUSTER,
        namespace=policy_input["namespace"]["name"],
    )
    result = embedded.evaluate(policy_input)
    assert result.allowed == state.admitted, (result.deny, state)
