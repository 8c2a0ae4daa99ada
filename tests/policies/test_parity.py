"""The engines give identical decisions: every sample manifest plus generated variations
(rego-cpp against an OPA server, OPA in-process against the OPA server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelgate.approvals import sign_off
from modelgate.policy_input import PolicyInput
from policies.config import PolicyConfig
from policies.engines.base import PolicyResult
from policies.engines.embedded import EmbeddedEngine
from policies.engines.inprocess import InProcessOpaEngine
from policies.engines.opa import OpaEngine
from tests.policies.registry_cases import CLUSTER, registry_inputs
from tests.policies.samples import (
    POLICY_DIR,
    TODAY,
    copy_policies,
    hidden_field_cases,
    sample,
    sample_inputs,
    to_input,
    variations,
    with_annotations,
)

REGISTRY = registry_inputs()
CASES: dict[str, PolicyInput] = {
    **sample_inputs(),
    **variations(),
    **hidden_field_cases(),
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


def test_the_engines_serve_the_same_bundle(
    embedded: EmbeddedEngine, opa_engine: OpaEngine, inprocess_engine: InProcessOpaEngine
) -> None:
    assert embedded.bundle_digest == opa_engine.bundle_digest != ""
    assert inprocess_engine.bundle_digest == opa_engine.bundle_digest


@pytest.mark.parametrize("case", sorted(CASES))
def test_engines_agree(embedded: EmbeddedEngine, opa_engine: OpaEngine, case: str) -> None:
    policy_input = CASES[case]
    ours: PolicyResult = embedded.evaluate(policy_input)
    theirs: PolicyResult = opa_engine.evaluate(policy_input)
    assert ours == theirs


@pytest.mark.parametrize("case", sorted(CASES))
def test_opa_in_process_agrees_with_the_opa_server(
    inprocess_engine: InProcessOpaEngine, opa_engine: OpaEngine, case: str
) -> None:
    assert inprocess_engine.evaluate(CASES[case]) == opa_engine.evaluate(CASES[case])


def test_engines_agree_on_fields_required_per_tier(opa_server: str, tmp_path: Path) -> None:
    """A bundle whose data requires documentation fields of high-risk models: both engines
    deny the same high-risk inputs with the same messages and leave other tiers alone."""
    policy_dir = copy_policies(tmp_path)
    data = policy_dir / "modelgate" / "config" / "data.yaml"
    data.write_text(
        data.read_text().replace(
            "tier_required_fields: {}",
            'tier_required_fields:\n  high: ["intended-purpose", "limitations", "validation-date"]',
        )
    )
    high = sample("05-high-risk-certified-deployment.yaml")
    cases = {
        "high-undocumented": to_input(high),
        "high-documented": to_input(
            with_annotations(
                high,
                intended_purpose="fraud scoring",
                limitations="retail only",
                validation_date="2025-01-01",
            )
        ),
        "limited": to_input(sample("01-compliant-deployment.yaml")),
    }
    embedded = EmbeddedEngine(policy_dir)
    opa = OpaEngine(policy_dir, opa_server, timeout=10)
    inprocess = InProcessOpaEngine(policy_dir, timeout=10)
    try:
        assert embedded.ready() and opa.ready(), (embedded.last_error, opa.last_error)
        assert inprocess.ready(), inprocess.last_error
        results = {name: embedded.evaluate(i) for name, i in cases.items()}
        for name, policy_input in cases.items():
            assert results[name] == opa.evaluate(policy_input), name
            assert results[name] == inprocess.evaluate(policy_input), name
    finally:
        embedded.close()
        opa.close()
        inprocess.close()
    assert not results["high-undocumented"].allowed
    assert sorted(results["high-undocumented"].deny) == [
        f'missing annotation "modelgate.dev/{f}" required for risk tier "high": {hint}'
        for f, hint in [
            ("intended-purpose", "set it to what the model is for and who uses its output"
             " (EU AI Act Annex IV 1(a))"),
            ("limitations", "set it to the known limitations of the model (data it was not"
             " trained on, conditions it fails in)"),
            ("validation-date", "set it to the ISO 8601 date the model was last independently"
             ' validated, e.g. "2025-04-01"'),
        ]
    ]  # fmt: skip
    assert results["high-documented"].allowed and results["limited"].allowed


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
