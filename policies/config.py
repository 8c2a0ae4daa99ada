"""The policy data the rest of modelgate needs outside Rego: required fields, the
certification warning window, tiers and statuses — read from the bundle's data file
(``data.modelgate.config``), so the auditor and the dashboard use the bundle's own values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.bundle import load_bundle
from policies.engines.base import BundleError


def _strings(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return default


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
    certification_warning_days: int = 30
    risk_tiers: tuple[str, ...] = ("minimal", "limited", "high")
    compliance_statuses: tuple[str, ...] = ("approved", "pending-review", "rejected", "exempt")

    @classmethod
    def from_data(cls, config: Mapping[str, Any]) -> PolicyConfig:
        default = cls()
        days = config.get("certification_warning_days")
        return cls(
            required_fields=_strings(config.get("required_fields"), default.required_fields),
            certification_warning_days=int(days)
            if isinstance(days, int | float) and not isinstance(days, bool)
            else default.certification_warning_days,
            risk_tiers=_strings(config.get("risk_tiers"), default.risk_tiers),
            compliance_statuses=_strings(
                config.get("compliance_statuses"), default.compliance_statuses
            ),
        )

    @classmethod
    def load(cls, policy_dir: Path) -> PolicyConfig:
        """Read the bundle at ``policy_dir``; the defaults when it cannot be loaded."""
        try:
            bundle = load_bundle(policy_dir)
        except (BundleError, OSError):
            return cls()
        modelgate = bundle.data.get("modelgate")
        config = modelgate.get("config") if isinstance(modelgate, Mapping) else None
        return cls.from_data(config) if isinstance(config, Mapping) else cls()
