"""Tolerant parsing of ``modelgate.dev/*`` metadata for the inventory.

The webhook records admitted models only, but in warn-mode namespaces a model can be admitted
with odd values (a metrics annotation that is not JSON, a bad date, ...). Everything that can be
parsed is kept; what cannot is dropped from the typed columns (the raw text stays in
``ModelVersion.raw_metadata``). Nothing here raises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

#: longest key value (in UTF-8 bytes) stored in a uniquely indexed column; PostgreSQL B-tree
#: entries must stay under ~2.7 kB
MAX_KEY_BYTES = 1000


def clean(value: Any) -> str:
    """A string safe for any backend: no NUL characters (PostgreSQL rejects them) and no lone
    surrogates (JSON escapes like ``\\ud800`` decode to them; UTF-8 cannot encode them)."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def clean_key(value: Any) -> str:
    """:func:`clean`, stripped and cut to :data:`MAX_KEY_BYTES` on a character boundary."""
    text = clean(value).strip()
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_KEY_BYTES:
        return text
    return encoded[:MAX_KEY_BYTES].decode("utf-8", errors="ignore")


def optional(value: Any) -> str | None:
    text = clean(value).strip()
    return text or None


def parse_datetime(value: Any) -> datetime | None:
    """ISO 8601 date or date-time as aware UTC (a date is midnight UTC); ``None`` if bad."""
    text = clean(value).strip()
    if not text:
        return None
    try:
        if len(text) <= 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_date(value: Any) -> date | None:
    text = clean(value).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
    except ValueError:
        return None


def _json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def parse_metrics(value: Any) -> dict[str, float]:
    """The numeric entries of a JSON object (others dropped); ``{}`` for anything else."""
    loaded = _json(value)
    if not isinstance(loaded, Mapping):
        return {}
    out: dict[str, float] = {}
    for name, raw in loaded.items():
        number = _number(raw)
        key = clean(name).strip()
        if number is not None and key:
            out[key] = number
    return out


@dataclass(frozen=True)
class ParsedCertification:
    name: str
    expires: date | None
    expires_raw: str | None


def parse_certifications(value: Any) -> list[ParsedCertification]:
    """``[{"name": ..., "expires": "YYYY-MM-DD"}, ...]``; bare strings are names; one entry
    per name (the latest expiry wins)."""
    loaded = _json(value)
    if isinstance(loaded, Mapping):
        loaded = [loaded]
    if not isinstance(loaded, list):
        return []
    by_name: dict[str, ParsedCertification] = {}
    for item in loaded:
        if isinstance(item, str):
            name, raw = clean_key(item), None
        elif isinstance(item, Mapping):
            name = clean_key(item.get("name"))
            raw = optional(item.get("expires"))
        else:
            continue
        if not name:
            continue
        cert = ParsedCertification(name=name, expires=parse_date(raw), expires_raw=raw)
        previous = by_name.get(name)
        if previous is None or (
            cert.expires is not None
            and (previous.expires is None or cert.expires > previous.expires)
        ):
            by_name[name] = cert
    return [by_name[n] for n in sorted(by_name)]


def parse_datasets(value: Any) -> list[str]:
    """Comma-separated (or newline-separated) URIs, stripped, de-duplicated, in order."""
    text = clean(value)
    out: list[str] = []
    for part in text.replace("\n", ",").split(","):
        uri = clean_key(part)
        if uri and uri not in out:
            out.append(uri)
    return out


def is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class ParsedMetadata:
    """What the inventory stores for one admitted model version."""

    model_name: str | None
    version: str
    owner: str
    training_date: datetime | None
    training_date_raw: str | None
    compliance_status: str
    risk_tier: str
    model_card: str | None
    metrics: dict[str, float]
    training_run: str | None
    source: str | None
    exempt_reason: str | None
    datasets: list[str]
    certifications: list[ParsedCertification]
    raw: dict[str, str] = field(default_factory=dict)


def parse_metadata(metadata: Mapping[str, Any] | None) -> ParsedMetadata:
    """Parse the short-keyed ``modelgate.dev/*`` map of a workload (``Workload.metadata``)."""
    md: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
    name = clean_key(md.get("model-name"))
    return ParsedMetadata(
        model_name=name or None,
        version=clean_key(md.get("model-version")),
        owner=clean(md.get("owner")).strip(),
        training_date=parse_datetime(md.get("training-date")),
        training_date_raw=optional(md.get("training-date")),
        compliance_status=clean(md.get("compliance-status")).strip().lower(),
        risk_tier=clean(md.get("risk-tier")).strip().lower() or "limited",
        model_card=optional(md.get("model-card")),
        metrics=parse_metrics(md.get("metrics")),
        training_run=clean_key(md.get("training-run")) or None,
        source=optional(md.get("source")),
        exempt_reason=optional(md.get("exempt-reason")),
        datasets=parse_datasets(md.get("training-data")),
        certifications=parse_certifications(md.get("certifications")),
        raw={clean(k): clean(v) for k, v in md.items()},
    )
