"""Size limits of modelgate's own metadata, checked before a policy is evaluated.

A hostile value (tens of kilobytes of free text, JSON nested thousands of levels deep) can make
an engine crash or take seconds, and the gate must neither crash nor stall. Every engine
therefore passes its input through :func:`apply_limits` first: a ``modelgate.dev/*`` value
over its byte limit or its JSON nesting limit, or metadata over the total byte limit, is
removed from ``input.workload.metadata`` and listed in ``input.limits_exceeded``; the policy
(``data.modelgate.limits``) turns each entry into a violation naming the field. The limits
live in the policy data (``data.modelgate.config.limits``).

Checking is linear in the size of the metadata and never parses a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: metadata fields the policy parses as JSON (their nesting is limited too)
JSON_FIELDS = ("metrics", "certifications")
#: at most this many entries are listed; the rest are kept out all the same
MAX_LISTED = 20


@dataclass(frozen=True)
class Limits:
    """``data.modelgate.config.limits`` (defaults: the shipped bundle's values)."""

    max_value_bytes: int = 4096
    max_value_bytes_by_field: Mapping[str, int] = field(
        default_factory=lambda: {"training-data": 8192, "certifications": 8192}
    )
    max_total_bytes: int = 32768
    max_json_depth: int = 16

    @classmethod
    def from_data(cls, data: Any) -> Limits:
        default = cls()
        if not isinstance(data, Mapping):
            return default

        def positive(key: str, fallback: int) -> int:
            value = data.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
            return fallback

        by_field = data.get("max_value_bytes_by_field")
        fields: dict[str, int] = {}
        if isinstance(by_field, Mapping):
            fields = {
                str(k): int(v)
                for k, v in by_field.items()
                if isinstance(v, int) and not isinstance(v, bool) and v > 0
            }
        return cls(
            max_value_bytes=positive("max_value_bytes", default.max_value_bytes),
            max_value_bytes_by_field=fields
            if by_field is not None
            else default.max_value_bytes_by_field,
            max_total_bytes=positive("max_total_bytes", default.max_total_bytes),
            max_json_depth=positive("max_json_depth", default.max_json_depth),
        )

    def value_limit(self, name: str) -> int:
        return self.max_value_bytes_by_field.get(name, self.max_value_bytes)


def json_depth(text: str, stop_above: int) -> int:
    """The deepest nesting of ``[``/``{`` in ``text`` outside JSON strings (a linear scan; an
    invalid document gets a depth too). Stops counting past ``stop_above``."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    return deepest
        elif ch in "]}":
            depth = max(0, depth - 1)
    return deepest


def exceeded(metadata: Mapping[str, Any], limits: Limits) -> list[dict[str, Any]]:
    """What of ``metadata`` is over a limit: one entry per field (``limit`` is
    ``value_bytes`` or ``json_depth``), or one entry with ``field == ""`` (``total_bytes``) when
    everything together is too large."""
    entries: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    total = 0
    for name, value in metadata.items():
        text = value if isinstance(value, str) else str(value)
        size = len(text.encode("utf-8", "surrogatepass"))
        sizes[name] = size
        total += size + len(name.encode("utf-8", "surrogatepass"))
        limit = limits.value_limit(name)
        if size > limit:
            entries.append(
                {"field": name, "limit": "value_bytes", "actual": size, "maximum": limit}
            )
            continue
        if name in JSON_FIELDS:
            depth = json_depth(text, limits.max_json_depth)
            if depth > limits.max_json_depth:
                entries.append(
                    {
                        "field": name,
                        "limit": "json_depth",
                        "actual": depth,
                        "maximum": limits.max_json_depth,
                    }
                )
    if total > limits.max_total_bytes:
        largest = sorted(sizes, key=lambda n: (-sizes[n], n))[:3]
        return [
            {
                "field": "",
                "limit": "total_bytes",
                "actual": total,
                "maximum": limits.max_total_bytes,
                "largest": largest,
            }
        ]
    return entries[:MAX_LISTED]


def apply_limits(policy_input: Mapping[str, Any], limits: Limits) -> Mapping[str, Any]:
    """``policy_input`` with the metadata over a limit kept out (see the module doc); the same
    object when everything is within the limits."""
    workload = policy_input.get("workload")
    if not isinstance(workload, Mapping):
        return policy_input
    metadata = workload.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata:
        return policy_input
    entries = exceeded(metadata, limits)
    if not entries:
        return policy_input
    if entries[0]["field"] == "":
        kept: dict[str, Any] = {}
    else:
        out = {e["field"] for e in entries}
        kept = {k: v for k, v in metadata.items() if k not in out}
    return {
        **policy_input,
        "workload": {**workload, "metadata": kept},
        "limits_exceeded": entries,
    }
