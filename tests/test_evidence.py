"""The evidence coverage mapping (modelgate.evidence): which item counts as held, missing or
not applicable for a model as the export has it, and the shares."""

from __future__ import annotations

from typing import Any

from modelgate.evidence import ITEMS, coverage
from policies.config import PolicyConfig


def model(name: str, **version: Any) -> dict[str, Any]:
    v: dict[str, Any] = {
        "version": "1.0",
        "owner": "risk@example.com",
        "first_admitted": "2026-01-01T00:00:00+00:00",
        "risk_tier": "limited",
        "compliance_status": "approved",
        "exempt_reason": None,
        "datasets": ["s3://d/train"],
        "metrics": {"auc": 0.9},
        "certifications": [],
        "deployments": [{"cluster": "prod", "namespace": "ml", "status": "running"}],
        "metadata": {"risk-tier": "limited"},
    }
    v.update(version)
    return {"name": name, "owner": "", "versions": [v], "history": [{"allowed": True}]}


def test_every_item_is_named_with_its_evidence_and_references() -> None:
    assert len({i.key for i in ITEMS}) == len(ITEMS) >= 13
    for item in ITEMS:
        assert item.title and item.evidence and item.references


def test_held_missing_and_not_applicable_items_and_their_shares() -> None:
    documented = model(
        "documented",
        metadata={
            "risk-tier": "high",
            "intended-purpose": "fraud review",
            "restrictions": "no credit decisions",
            "limitations": "retail only",
            "validation-date": "2026-02-01",
            "model-card": "https://m.example.com/card",
        },
        risk_tier="high",
        certifications=[{"name": "SR 11-7", "expires": "2027-01-01"}],
    )
    exempt = model("exempt", compliance_status="exempt", exempt_reason=None, metadata={})
    result = coverage(
        [documented, exempt, {"name": "empty", "versions": []}],
        PolicyConfig(),
        log_intact=True,
        sign_offs={("documented", "1.0"): {"approver": "cro@example.com", "date": "2026-02-02"}},
    )
    rows = {r["model"]: r for r in result["models"]}
    assert set(rows) == {"documented", "exempt"}  # a model without versions has nothing
    d, e = rows["documented"]["items"], rows["exempt"]["items"]
    assert all(v is True for k, v in d.items() if k != "exceptions"), d
    assert d["exceptions"] is None  # nothing exempt: not applicable
    assert rows["documented"]["share"] == 1.0
    assert e["exceptions"] is False  # exempt without a recorded reason
    assert e["certifications"] is None  # limited tier holding none
    assert e["approver"] is False and e["sign-off-date"] is False
    assert e["risk-tier"] is False  # no explicit tier
    assert e["intended-purpose"] is False
    by_key = {i["key"]: i for i in result["items"]}
    assert (by_key["approver"]["held"], by_key["approver"]["applicable"]) == (1, 2)
    assert by_key["exceptions"]["applicable"] == 1 and by_key["exceptions"]["share"] == 0.0
    assert result["held"] == rows["documented"]["held"] + rows["exempt"]["held"]
    assert result["share"] == round(result["held"] / result["applicable"], 4)


def test_a_broken_log_means_no_model_holds_tamper_evident_logs() -> None:
    result = coverage([model("m")], PolicyConfig(), log_intact=False)
    assert result["models"][0]["items"]["logs"] is False
    assert result["models"][0]["items"]["change-log"] is True
