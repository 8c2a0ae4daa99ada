"""What the webhook hands to the inventory for every decision (the recorder's input)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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

    @property
    def records_model(self) -> bool:
        """Whether this event should upsert the inventory (an admitted model)."""
        return (
            self.allowed
            and self.is_model
            and self.workload is not None
            and self.operation in ("CREATE", "UPDATE")
        )
