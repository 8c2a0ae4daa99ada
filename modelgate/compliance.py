"""The compliance rules modelgate applies outside Rego, each defined once and called by the
webhook, the auditor, the reports and the dashboard alike.

- **certification state**: :func:`certification_state` (expired / expiring within the
  bundle's ``certification_warning_days`` / valid / unknown without a date);
- **live deployment**: :func:`is_live` — running per the latest successful scan of its
  cluster, or admitted since and not deleted — and :func:`is_recorded` (not deleted);
- **documentation**: :func:`documentation_gaps` — the required fields a version lacks (with
  the certified tiers' model card and certification) and the recommended ones;
- **finding types** (:data:`FINDING_TYPES`) with their severities and order from the policy
  data (:class:`policies.config.PolicyConfig`), and the **due date** of a finding
  (:func:`due_date`: first seen + the remediation window of its severity) and
  :func:`is_overdue`.

The policy data values come from :class:`~policies.config.PolicyConfig`; what Rego decides
(admission) stays in the bundle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from modelgate.inventory.parse import ParsedMetadata, parse_metadata
from policies.config import PolicyConfig

# --- certifications ---------------------------------------------------------------------

CertificationStateName = Literal["expired", "expiring", "valid", "unknown"]


@dataclass(frozen=True)
class CertificationState:
    """Where a certification stands on a given day."""

    state: CertificationStateName
    #: days from today to the expiry (negative once expired); None without a date
    days_left: int | None


def certification_state(expires: date | None, today: date, warning_days: int) -> CertificationState:
    """A certification is valid through its expiry date, ``expiring`` when that is at most
    ``warning_days`` away, ``expired`` after it and ``unknown`` without a readable date (the
    policy denies such an entry for certified tiers)."""
    if expires is None:
        return CertificationState("unknown", None)
    left = (expires - today).days
    if left < 0:
        return CertificationState("expired", left)
    if left <= warning_days:
        return CertificationState("expiring", left)
    return CertificationState("valid", left)


def certification_issues(
    certifications: Iterable[tuple[str, date | None]], today: date, warning_days: int
) -> list[str]:
    """One message per certification (name, expiry) that is expired or expiring."""
    out: list[str] = []
    for name, expires in certifications:
        state = certification_state(expires, today, warning_days)
        if expires is None:
            continue
        if state.state == "expired":
            out.append(f"certification {name!r} expired on {expires.isoformat()}")
        elif state.state == "expiring":
            out.append(
                f"certification {name!r} expires on {expires.isoformat()} "
                f"(in {state.days_left} days)"
            )
    return out


# --- deployments: recorded and live -------------------------------------------------------

#: a deployment an audit scan found running
RUNNING = "running"
#: a deployment the latest successful scan of its cluster did not find
NOT_RUNNING = "not-running"
#: a deployment whose deletion was admitted
DELETED = "deleted"
#: statuses of deployments that do not count as live (admitting one again makes it live)
NOT_LIVE_STATUSES: tuple[str, ...] = (NOT_RUNNING, DELETED)


def is_live(status: str | None) -> bool:
    """Whether a deployment with this status counts as live: running per the latest
    successful scan of its cluster, or admitted since (status ``None``) and not deleted."""
    return status not in NOT_LIVE_STATUSES


def is_recorded(status: str | None) -> bool:
    """Whether the inventory still holds the deployment as admitted (not deleted): a running
    model the inventory holds this way is not an orphan, even when not live."""
    return status != DELETED


# --- documentation ------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentationGaps:
    """What a model version's metadata lacks."""

    #: required fields (with ``model-card`` and ``certifications`` for certified tiers)
    missing_required: tuple[str, ...]
    #: recommended fields (model card, metrics, training run, source by default)
    missing_recommended: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing_required and not self.missing_recommended


def present_fields(md: ParsedMetadata) -> dict[str, bool]:
    """Which metadata fields carry a usable value: a value that could not be parsed (a
    training date that is not a date, metrics that are not a JSON object) counts as absent."""
    return {
        "model-name": bool(md.model_name),
        "model-version": bool(md.version),
        "owner": bool(md.owner),
        "training-date": md.training_date is not None,
        "training-data": bool(md.datasets),
        "compliance-status": bool(md.compliance_status),
        "risk-tier": bool(md.raw.get("risk-tier", "").strip()),
        "model-card": bool(md.model_card),
        "metrics": bool(md.metrics),
        "training-run": bool(md.training_run),
        "source": bool(md.source),
        "certifications": bool(md.certifications),
        "exempt-reason": bool(md.exempt_reason),
    }


def documentation_gaps(metadata: Mapping[str, Any], config: PolicyConfig) -> DocumentationGaps:
    """The gaps of one version's ``modelgate.dev/*`` metadata (short keys, as annotated or
    registered)."""
    md = parse_metadata(metadata)
    present = present_fields(md)
    tier = md.risk_tier or config.default_risk_tier
    required = config.required_for(tier)
    missing_required = tuple(f for f in required if not _present(present, md, f))
    missing_recommended = tuple(
        f
        for f in config.recommended_fields
        if not _present(present, md, f) and f not in missing_required
    )
    return DocumentationGaps(missing_required, missing_recommended)


def _present(present: Mapping[str, bool], md: ParsedMetadata, field: str) -> bool:
    if field in present:
        return present[field]
    return bool(md.raw.get(field, "").strip())  # a field the data file added


# --- findings -------------------------------------------------------------------------------

#: the kinds of audit finding, in report order (their severities are policy data)
FINDING_TYPES: tuple[str, ...] = (
    "orphan",
    "unapproved",
    "violation",
    "drift",
    "retired",
    "expiring-certification",
    "expiring-approval",
    "missing-metadata",
)


def worst_first(severities: Iterable[str], config: PolicyConfig) -> list[str]:
    """``severities`` ordered from the worst (unknown ones last)."""

    def rank(s: str) -> int:
        try:
            return config.severity_rank(s)
        except ValueError:
            return -1

    return sorted(severities, key=rank, reverse=True)


def due_date(
    first_seen: datetime, severity: str, remediation_days: Mapping[str, int]
) -> date | None:
    """When a finding first seen at ``first_seen`` must be remediated: its (UTC) day plus the
    policy data's window for ``severity``; None for a severity without a window."""
    days = remediation_days.get(severity)
    if days is None:
        return None
    return (first_seen.astimezone(UTC) if first_seen.tzinfo else first_seen).date() + timedelta(
        days=days
    )


def is_overdue(due: date | None, status: str, today: date) -> bool:
    """An open finding whose due date has passed."""
    return status == "open" and due is not None and due < today
