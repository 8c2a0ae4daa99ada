"""Evidence coverage: for each item that model-risk inventories are expected to hold, whether
the inventory holds it for each model — the one definition of the item → evidence mapping
(the audit report's coverage table renders it; nothing else re-derives it).

The items come from what SR 11-7 (Federal Reserve / OCC supervisory guidance on model risk
management) asks of a model inventory, the EU AI Act's technical documentation (Annex IV
§1-2, §6) and registration data (Annex VIII Section A), NIST AI RMF GOVERN 1.6 ("mechanisms
are in place to inventory AI systems") and Model Cards (Mitchell et al.). Each item names
the evidence the inventory must hold: a metadata field of the model's latest version, its
recorded deployments, its admission decisions, or a recorded sign-off.

An item can be *not applicable* to a model (exceptions for a model without one,
certifications for a tier that needs none and holds none): such cells are left out of the
shares. The share of a model is held / applicable items; the share of an item is models
holding it / models it applies to; the overall share is every held cell / every applicable
cell.

Models are given as the audit export has them (:class:`modelgate.inventory.records.ModelRecord`
as JSON, versions newest first, with ``history``: the model's admission decisions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from modelgate.compliance import is_recorded
from modelgate.inventory.parse import parse_date
from policies.config import PolicyConfig


class SignOff(TypedDict):
    """A recorded approval of a model version (from the approval log)."""

    approver: str
    date: str  # ISO 8601


@dataclass(frozen=True)
class Context:
    """What the checks need beyond the model itself."""

    config: PolicyConfig
    #: whether the tamper-evident decision log verified
    log_intact: bool
    #: recorded sign-offs of (model, version); empty without an approval log
    sign_offs: Mapping[tuple[str, str], SignOff]


#: True held, False missing, None not applicable
Check = Callable[[Mapping[str, Any], Context], bool | None]


@dataclass(frozen=True)
class EvidenceItem:
    key: str
    title: str
    #: what the inventory must hold for the item to count as held
    evidence: str
    #: where inventories are expected to hold it
    references: str
    check: Check


def _latest(model: Mapping[str, Any]) -> Mapping[str, Any]:
    versions = model.get("versions") or []
    return versions[0] if versions else {}


def _field(name: str) -> Check:
    def check(model: Mapping[str, Any], _: Context) -> bool:
        value = (_latest(model).get("metadata") or {}).get(name)
        return isinstance(value, str) and bool(value.strip())

    return check


def _identity(model: Mapping[str, Any], _: Context) -> bool:
    versions = model.get("versions") or []
    return (
        bool(model.get("name"))
        and bool(versions)
        and all(v.get("version") and v.get("first_admitted") for v in versions)
    )


def _owner(model: Mapping[str, Any], _: Context) -> bool:
    return bool(str(_latest(model).get("owner") or model.get("owner") or "").strip())


def _sign_off(model: Mapping[str, Any], ctx: Context) -> SignOff | None:
    return ctx.sign_offs.get((str(model.get("name")), str(_latest(model).get("version"))))


def _approver(model: Mapping[str, Any], ctx: Context) -> bool:
    found = _sign_off(model, ctx)
    return found is not None and bool(found["approver"].strip())


def _sign_off_date(model: Mapping[str, Any], ctx: Context) -> bool:
    found = _sign_off(model, ctx)
    return found is not None and parse_date(found["date"]) is not None


def _risk_tier(model: Mapping[str, Any], ctx: Context) -> bool:
    tier = str((_latest(model).get("metadata") or {}).get("risk-tier") or "").strip().lower()
    return tier in ctx.config.risk_tiers  # an explicit, known tier (the default is not one)


def _provenance(model: Mapping[str, Any], _: Context) -> bool:
    return bool(_latest(model).get("datasets"))


def _metrics(model: Mapping[str, Any], _: Context) -> bool:
    return bool(_latest(model).get("metrics"))


def _validation_date(model: Mapping[str, Any], _: Context) -> bool:
    value = (_latest(model).get("metadata") or {}).get("validation-date")
    return parse_date(value) is not None


def _deployments(model: Mapping[str, Any], _: Context) -> bool:
    return any(
        d.get("cluster") and d.get("namespace")
        for v in model.get("versions") or []
        for d in v.get("deployments") or []
        if is_recorded(d.get("status"))
    )


def _exceptions(model: Mapping[str, Any], _: Context) -> bool | None:
    exempt = [v for v in model.get("versions") or [] if v.get("compliance_status") == "exempt"]
    if not exempt:
        return None
    return all(str(v.get("exempt_reason") or "").strip() for v in exempt)


def _change_log(model: Mapping[str, Any], _: Context) -> bool:
    return bool(model.get("history"))


def _certifications(model: Mapping[str, Any], ctx: Context) -> bool | None:
    latest = _latest(model)
    certs = latest.get("certifications") or []
    if not certs and not ctx.config.is_certified_tier(str(latest.get("risk_tier") or "")):
        return None
    return any(c.get("expires") for c in certs)


def _logs(model: Mapping[str, Any], ctx: Context) -> bool:
    return ctx.log_intact and bool(model.get("history"))


ITEMS: tuple[EvidenceItem, ...] = (
    EvidenceItem(
        "identity",
        "Identity and version history",
        "the model's name and every version with its admission dates",
        "SR 11-7 inventory; EU AI Act Annex IV §1(a), Annex VIII §A(4); Model Cards: model "
        "details; NIST AI RMF GOVERN 1.6",
        _identity,
    ),
    EvidenceItem(
        "owner",
        "Owner",
        "the latest version's owner",
        "SR 11-7 roles and responsibilities; EU AI Act Annex VIII §A(1); NIST AI RMF GOVERN "
        "1.6, GOVERN 2.1; Model Cards: model details (contact)",
        _owner,
    ),
    EvidenceItem(
        "approver",
        "Accountable approver",
        "a recorded sign-off of the latest version naming its approver",
        "SR 11-7 governance (approval of model use); EU AI Act Annex IV §2(g) (signed by the "
        "responsible persons)",
        _approver,
    ),
    EvidenceItem(
        "intended-purpose",
        "Intended purpose",
        "modelgate.dev/intended-purpose",
        "SR 11-7 purpose and intended use; EU AI Act Annex IV §1(a), Annex VIII §A(5); Model "
        "Cards: intended use; NIST AI RMF MAP 1.1",
        _field("intended-purpose"),
    ),
    EvidenceItem(
        "restrictions",
        "Restrictions",
        "modelgate.dev/restrictions",
        "SR 11-7 restrictions on use; Model Cards: out-of-scope uses; EU AI Act Annex IV §1(h)",
        _field("restrictions"),
    ),
    EvidenceItem(
        "risk-tier",
        "Risk tier",
        "an explicit modelgate.dev/risk-tier (the default tier is not a classification)",
        "SR 11-7 risk rating; EU AI Act Art. 6 classification; NIST AI RMF GOVERN 1.6 "
        "(resourced by risk)",
        _risk_tier,
    ),
    EvidenceItem(
        "data-provenance",
        "Data provenance",
        "the training datasets (modelgate.dev/training-data)",
        "SR 11-7 data sources; EU AI Act Annex IV §2(d); Model Cards: training data",
        _provenance,
    ),
    EvidenceItem(
        "metrics",
        "Metrics",
        "modelgate.dev/metrics",
        "EU AI Act Annex IV §2(g), §3; Model Cards: metrics, quantitative analyses; NIST AI "
        "RMF MEASURE 2",
        _metrics,
    ),
    EvidenceItem(
        "limitations",
        "Limitations",
        "modelgate.dev/limitations",
        "SR 11-7 limitations; EU AI Act Annex IV §3; Model Cards: caveats and recommendations",
        _field("limitations"),
    ),
    EvidenceItem(
        "validation-date",
        "Validation date",
        "modelgate.dev/validation-date",
        "SR 11-7 validation; EU AI Act Annex IV §2(g) (dated test reports)",
        _validation_date,
    ),
    EvidenceItem(
        "sign-off-date",
        "Sign-off date",
        "the date of the latest version's recorded sign-off",
        "SR 11-7 approval; EU AI Act Annex IV §2(g) (dated and signed)",
        _sign_off_date,
    ),
    EvidenceItem(
        "deployments",
        "Deployment status and locations",
        "recorded deployments (cluster, namespace, workload) with their status",
        "SR 11-7 status of use; EU AI Act Annex VIII §A(6), §A(8); NIST AI RMF GOVERN 1.6",
        _deployments,
    ),
    EvidenceItem(
        "exceptions",
        "Exceptions",
        "for exempt versions, the recorded reason (not applicable without an exemption)",
        "SR 11-7 exceptions to policy",
        _exceptions,
    ),
    EvidenceItem(
        "change-log",
        "Change log",
        "the admission decisions of the model's changes (decision log)",
        "SR 11-7 changes; EU AI Act Annex IV §6 (changes through the lifecycle)",
        _change_log,
    ),
    EvidenceItem(
        "certifications",
        "Certifications",
        "certifications with expiry dates (applies to certified tiers and to models holding any)",
        "EU AI Act Annex VIII §A(7), §A(9); SR 11-7 validation status",
        _certifications,
    ),
    EvidenceItem(
        "model-card",
        "Model card",
        "modelgate.dev/model-card",
        "Model Cards; EU AI Act Annex VIII §A(11), Annex IV §1(h)",
        _field("model-card"),
    ),
    EvidenceItem(
        "logs",
        "Tamper-evident logs",
        "admission decisions in a decision log whose hash chain verifies",
        "EU AI Act Art. 12 and 19 (record-keeping, logs kept at least six months), Annex IV §2(g)",
        _logs,
    ),
)


class ModelCoverage(TypedDict):
    model: str
    version: str | None
    #: item key -> True (held), False (missing), None (not applicable)
    items: dict[str, bool | None]
    held: int
    applicable: int
    share: float | None  # held / applicable


class ItemCoverage(TypedDict):
    key: str
    title: str
    evidence: str
    references: str
    held: int
    applicable: int
    share: float | None


class Coverage(TypedDict):
    items: list[ItemCoverage]
    models: list[ModelCoverage]
    held: int
    applicable: int
    share: float | None


def _share(held: int, applicable: int) -> float | None:
    return round(held / applicable, 4) if applicable else None


def coverage(
    models: Sequence[Mapping[str, Any]],
    config: PolicyConfig,
    *,
    log_intact: bool,
    sign_offs: Mapping[tuple[str, str], SignOff] | None = None,
) -> Coverage:
    """The coverage of every model (with at least one version) and item."""
    ctx = Context(config=config, log_intact=log_intact, sign_offs=dict(sign_offs or {}))
    rows: list[ModelCoverage] = []
    for model in models:
        if not model.get("versions"):
            continue
        cells = {item.key: item.check(model, ctx) for item in ITEMS}
        held = sum(1 for v in cells.values() if v)
        applicable = sum(1 for v in cells.values() if v is not None)
        rows.append(
            ModelCoverage(
                model=str(model.get("name")),
                version=_latest(model).get("version"),
                items=cells,
                held=held,
                applicable=applicable,
                share=_share(held, applicable),
            )
        )
    items: list[ItemCoverage] = []
    for item in ITEMS:
        values = [r["items"][item.key] for r in rows]
        held = sum(1 for v in values if v)
        applicable = sum(1 for v in values if v is not None)
        items.append(
            ItemCoverage(
                key=item.key,
                title=item.title,
                evidence=item.evidence,
                references=item.references,
                held=held,
                applicable=applicable,
                share=_share(held, applicable),
            )
        )
    held = sum(r["held"] for r in rows)
    applicable = sum(r["applicable"] for r in rows)
    return Coverage(
        items=items, models=rows, held=held, applicable=applicable, share=_share(held, applicable)
    )
