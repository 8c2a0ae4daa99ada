"""The policy input document: one shape for the webhook, ``evaluate`` and the auditor.

``input`` as seen by ``data.modelgate.admission``::

    {
      "mode": "admission" | "audit" | "evaluate",
      "now": "2026-11-26T06:40:00Z",          # RFC 3339 UTC; "today" is its first 10 chars
      "today": "2026-11-26",
      "request": {...},                        # the AdmissionReview request (synthesized offline)
      "workload": {...},                       # modelgate.workload.Workload
      "namespace": {"name": "...", "labels": {...}},
      "enforcement": "enforce" | "warn" | "off" | null,  # explicit override (webhook route)
      "registry": {...}   # only with MODELGATE_APPROVAL_SOURCE=inventory: the version's
                          # recorded sign-off (modelgate.approvals.RegistryEntry)
    }
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

from modelgate.workload import Workload

Mode = Literal["admission", "audit", "evaluate"]
Enforcement = Literal["enforce", "warn", "off"]


class NamespaceInfo(TypedDict):
    name: str
    labels: dict[str, str]


class PolicyInput(TypedDict):
    mode: str
    now: str
    today: str
    request: dict[str, Any]
    workload: Workload
    namespace: NamespaceInfo
    enforcement: str | None
    registry: NotRequired[Mapping[str, Any]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def synthesize_request(obj: Mapping[str, Any], workload: Workload) -> dict[str, Any]:
    """An AdmissionReview-like request for an object seen offline (evaluate / audit)."""
    group = workload["api_version"].split("/")[0] if "/" in workload["api_version"] else ""
    version = workload["api_version"].split("/")[-1]
    return {
        "uid": "",
        "kind": {"group": group, "version": version, "kind": workload["kind"]},
        "name": workload["name"],
        "namespace": workload["namespace"],
        "operation": "CREATE",
        "userInfo": {"username": ""},
        "object": dict(obj),
        "dryRun": True,
    }


def build_input(
    *,
    request: Mapping[str, Any],
    workload: Workload,
    mode: Mode,
    namespace_labels: Mapping[str, str] | None = None,
    enforcement: Enforcement | None = None,
    now: datetime | None = None,
    registry: Mapping[str, Any] | None = None,
) -> PolicyInput:
    moment = (now or utc_now()).astimezone(UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    policy_input = PolicyInput(
        mode=mode,
        now=stamp,
        today=stamp[:10],
        request=dict(request),
        workload=workload,
        namespace=NamespaceInfo(name=workload["namespace"], labels=dict(namespace_labels or {})),
        enforcement=enforcement,
    )
    if registry is not None:
        policy_input["registry"] = registry
    return policy_input
