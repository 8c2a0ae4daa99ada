"""Sign-off as the dashboard and the API show it: a version's state, history, exemptions and
recorded certifications, and the versions waiting for review (JSON-ready data)."""

from __future__ import annotations

from datetime import date
from typing import Any

from modelgate.inventory import signoff
from modelgate.inventory.db import Database
from modelgate.inventory.records import jsonable
from modelgate.inventory.signoff import VersionSignOff
from policies.config import PolicyConfig


def state_view(v: VersionSignOff) -> dict[str, Any]:
    s = v.state
    return {
        "state": s.state,
        "admitted": s.admitted,
        "reason": s.reason,
        "approvals_needed": s.needed,
        "approvers": list(s.approvers),
        "signed_off_by": [dict(r) for r in s.by],
    }


def version_view(v: VersionSignOff) -> dict[str, Any]:
    view: dict[str, Any] = jsonable(
        {
            "model": v.model,
            "version": v.version,
            "owner": v.owner,
            "risk_tier": v.risk_tier,
            "registered_by": v.registered_by,
            "sign_off": state_view(v),
            "approvals": v.approvals,
            "exemptions": v.exemptions,
            "certifications": v.certifications,
        }
    )
    return view


def version_detail(
    db: Database, model: str, version: str, today: date, config: PolicyConfig
) -> dict[str, Any]:
    return version_view(signoff.version_sign_off(db, model, version, today=today, config=config))


def waiting_for_review(db: Database, today: date, config: PolicyConfig) -> list[dict[str, Any]]:
    """Every version that is not signed off (pending review or rejected), by model."""
    return [
        {
            "model": v.model,
            "version": v.version,
            "owner": v.owner,
            "risk_tier": v.risk_tier,
            "registered_by": v.registered_by,
            "sign_off": state_view(v),
        }
        for v in signoff.sign_offs(db, today=today, config=config)
        if not v.state.admitted
    ]


def sign_off_states(
    db: Database, model: str, today: date, config: PolicyConfig
) -> dict[str, dict[str, Any]]:
    """version -> its sign-off state, for a model's page."""
    return {
        v.version: state_view(v)
        for v in signoff.sign_offs(db, today=today, config=config, model=model)
    }
