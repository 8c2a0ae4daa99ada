"""What the webhook hands to the inventory for every decision (the recorder's input), and
its JSON form (one spool line)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from modelgate.workload import Workload


@dataclass(frozen=True)
class AdmissionEvent:
    """One admission decision. Dry-run requests never become events."""

    time: datetime  # UTC
    uid: str
    user: str
    operation: str  # CREATE / UPDATE / DELETE / CONNECT
    cluster: str
    kind: str
    namespace: str
    name: str
    allowed: bool
    is_model: bool
    violations: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    enforcement: str = "enforce"
    bundle_digest: str = ""
    engine: str = ""
    error: str | None = None  # set when the engine failed and the failure mode decided
    workload: Workload | None = field(default=None)
    #: True when the caller's client certificate was verified (mutual TLS), None when the
    #: webhook does not verify callers
    caller_verified: bool | None = None
    #: the recorded sign-off that admitted the model ({"type": "approval"|"exemption",
    #: "id": n}); empty when none did (annotation source, denied, not a model)
    approvals: tuple[dict[str, Any], ...] = ()

    @property
    def records_model(self) -> bool:
        """Whether this event should upsert the inventory (an admitted model)."""
        return (
            self.allowed
            and self.is_model
            and self.workload is not None
            and self.operation in ("CREATE", "UPDATE")
        )


@dataclass(frozen=True)
class SubmittedEvent:
    """An event with the id the recorder assigned when it was submitted: stored with its
    decision row, so replaying a spool or retrying never records it twice."""

    event_id: str
    event: AdmissionEvent


def utc(value: datetime) -> datetime:
    """``value`` as aware UTC (naive values are taken to be UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def event_to_json(event: AdmissionEvent) -> dict[str, Any]:
    data = dataclasses.asdict(event)
    data["time"] = utc(event.time).isoformat()
    data["violations"] = list(event.violations)
    data["warnings"] = list(event.warnings)
    data["approvals"] = [dict(a) for a in event.approvals]
    return data


def event_from_json(data: dict[str, Any]) -> AdmissionEvent:
    names = {f.name for f in dataclasses.fields(AdmissionEvent)}
    values = {k: v for k, v in data.items() if k in names}
    values["time"] = datetime.fromisoformat(str(values["time"]))
    values["violations"] = tuple(str(v) for v in values.get("violations") or ())
    values["warnings"] = tuple(str(v) for v in values.get("warnings") or ())
    values["approvals"] = tuple(
        dict(a) for a in values.get("approvals") or () if isinstance(a, dict)
    )  # (spool lines written before the field existed have none)
    workload = values.get("workload")
    values["workload"] = cast(Workload, workload) if isinstance(workload, dict) else None
    return AdmissionEvent(**values)
