"""The policy data the rest of modelgate needs outside Rego, read from the bundle's data file
(``data.modelgate.config``): required and recommended fields (and the fields required per
risk tier), the certification warning window, tiers (and which need certifications),
statuses, the model kinds, the audit severities (their order, one per finding type,
remediation windows), the namespace label naming an accountable owner and the metadata size
limits.

This is the one reader of that data: the webhook (through its engine's serving bundle), the
auditor, the reports and the dashboard all use a :class:`PolicyConfig`, so editing
``data.yaml`` changes every one of them alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.bundle import Bundle, load_bundle
from policies.engines.base import BundleError
from policies.limits import Limits

_DEFAULT_FINDING_SEVERITIES: dict[str, str] = {
    "orphan": "high",
    "violation": "high",
    "drift": "medium",
    "expiring-certification": "medium",
    "missing-metadata": "medium",
    "retired": "low",
    "unapproved": "high",
    "expiring-approval": "medium",
}
_DEFAULT_REMEDIATION_DAYS: dict[str, int] = {
    "critical": 7,
    "high": 30,
    "medium": 90,
    "low": 180,
    "info": 365,
}


def _strings(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return default


def _int(value: Any, default: int) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return default


def _str(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value.strip() else default


def _str_map(value: Any, default: Mapping[str, str]) -> dict[str, str]:
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return {**default, **value}
    return dict(default)


def _strings_map(value: Any) -> dict[str, tuple[str, ...]]:
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(f, str) for f in v)
        for k, v in value.items()
    ):
        return {k: tuple(v) for k, v in value.items()}
    return {}


def _int_map(value: Any, default: Mapping[str, int]) -> dict[str, int]:
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        return {**default, **value}
    return dict(default)


@dataclass(frozen=True)
class PolicyConfig:
    """``data.modelgate.config`` of a bundle. The defaults are the shipped bundle's values,
    used for any key a bundle lacks or cannot provide."""

    required_fields: tuple[str, ...] = (
        "model-name",
        "model-version",
        "owner",
        "training-date",
        "training-data",
        "compliance-status",
    )
    recommended_fields: tuple[str, ...] = ("model-card", "metrics", "training-run", "source")
    certification_warning_days: int = 30
    risk_tiers: tuple[str, ...] = ("minimal", "limited", "high")
    default_risk_tier: str = "limited"
    certified_tiers: tuple[str, ...] = ("high",)
    two_approver_tiers: tuple[str, ...] = ("high",)
    compliance_statuses: tuple[str, ...] = ("approved", "pending-review", "rejected", "exempt")
    approved_statuses: tuple[str, ...] = ("approved",)
    model_kinds: tuple[str, ...] = ("InferenceService", "SeldonDeployment")
    severities: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
    finding_severities: Mapping[str, str] = field(
        default_factory=lambda: dict(_DEFAULT_FINDING_SEVERITIES)
    )
    remediation_days: Mapping[str, int] = field(
        default_factory=lambda: dict(_DEFAULT_REMEDIATION_DAYS)
    )
    #: extra required fields per risk tier (none in the shipped policy)
    tier_required_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the Namespace label naming who answers for what runs there (the owner of orphans)
    namespace_owner_label: str = "modelgate.dev/owner"
    #: size limits of the metadata, checked before evaluation (policies.limits)
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_data(cls, config: Mapping[str, Any]) -> PolicyConfig:
        default = cls()
        return cls(
            required_fields=_strings(config.get("required_fields"), default.required_fields),
            recommended_fields=_strings(
                config.get("recommended_fields"), default.recommended_fields
            ),
            certification_warning_days=_int(
                config.get("certification_warning_days"), default.certification_warning_days
            ),
            risk_tiers=_strings(config.get("risk_tiers"), default.risk_tiers),
            default_risk_tier=_str(config.get("default_risk_tier"), default.default_risk_tier),
            certified_tiers=_strings(config.get("certified_tiers"), default.certified_tiers),
            two_approver_tiers=_strings(
                config.get("two_approver_tiers"), default.two_approver_tiers
            ),
            compliance_statuses=_strings(
                config.get("compliance_statuses"), default.compliance_statuses
            ),
            approved_statuses=_strings(config.get("approved_statuses"), default.approved_statuses),
            model_kinds=_strings(config.get("model_kinds"), default.model_kinds),
            severities=_strings(config.get("severities"), default.severities),
            finding_severities=_str_map(
                config.get("finding_severities"), default.finding_severities
            ),
            remediation_days=_int_map(config.get("remediation_days"), default.remediation_days),
            tier_required_fields=_strings_map(config.get("tier_required_fields")),
            namespace_owner_label=_str(
                config.get("namespace_owner_label"), default.namespace_owner_label
            ),
            limits=Limits.from_data(config.get("limits")),
        )

    @classmethod
    def from_bundle(cls, bundle: Bundle | None) -> PolicyConfig:
        """The config of a loaded bundle (the defaults for ``None`` or a bundle without it)."""
        if bundle is None:
            return cls()
        modelgate = bundle.data.get("modelgate")
        config = modelgate.get("config") if isinstance(modelgate, Mapping) else None
        return cls.from_data(config) if isinstance(config, Mapping) else cls()

    @classmethod
    def load(cls, policy_dir: Path) -> PolicyConfig:
        """Read the bundle at ``policy_dir``; the defaults when it cannot be loaded."""
        try:
            bundle = load_bundle(policy_dir)
        except (BundleError, OSError):
            return cls()
        return cls.from_bundle(bundle)

    # -- what the values decide ------------------------------------------------------------

    def severity_rank(self, severity: str) -> int:
        """Position of ``severity`` in :attr:`severities` (lowest first); ValueError when
        unknown."""
        try:
            return self.severities.index(severity)
        except ValueError as e:
            known = ", ".join(self.severities)
            raise ValueError(f"unknown severity {severity!r} (one of {known})") from e

    def severity_of(self, finding_type: str) -> str:
        """The severity of a finding type (``info`` for a type the data does not name)."""
        return self.finding_severities.get(finding_type, "info")

    def is_certified_tier(self, risk_tier: str) -> bool:
        """Whether versions of ``risk_tier`` need a model card and a valid certification."""
        return risk_tier in self.certified_tiers

    def is_model_kind(self, kind: str) -> bool:
        """Whether objects of ``kind`` are model workloads by definition."""
        return kind in self.model_kinds

    def required_for(self, risk_tier: str) -> tuple[str, ...]:
        """The fields a version of ``risk_tier`` must carry: the required fields, plus
        ``model-card`` and ``certifications`` for certified tiers, plus the tier's
        ``tier_required_fields``."""
        extra = ("model-card", "certifications") if self.is_certified_tier(risk_tier) else ()
        fields = list(self.required_fields)
        for f in (*extra, *self.tier_required_fields.get(risk_tier, ())):
            if f not in fields:
                fields.append(f)
        return tuple(fields)

    def remediation_window(self, severity: str) -> int | None:
        """Days to remediate a finding of ``severity`` (None when the data has no window)."""
        return self.remediation_days.get(severity)
