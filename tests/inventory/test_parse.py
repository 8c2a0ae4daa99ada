"""Tolerant metadata parsing: keep what parses, never raise."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from modelgate.inventory.parse import (
    MAX_KEY_BYTES,
    clean_key,
    parse_certifications,
    parse_datasets,
    parse_datetime,
    parse_metadata,
    parse_metrics,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-11-02", datetime(2025, 11, 2, tzinfo=UTC)),
        ("2025-11-02T10:30:00Z", datetime(2025, 11, 2, 10, 30, tzinfo=UTC)),
        ("2025-11-02T12:30:00+02:00", datetime(2025, 11, 2, 10, 30, tzinfo=UTC)),
        ("2025-11-02T10:30:00", datetime(2025, 11, 2, 10, 30, tzinfo=UTC)),
        ("02/11/2025", None),
        ("", None),
        (None, None),
    ],
)
def test_training_dates(raw: str | None, expected: datetime | None) -> None:
    assert parse_datetime(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"auc": 0.9, "f1": 1}', {"auc": 0.9, "f1": 1.0}),
        ('{"auc": "0.9", "name": "x", "ok": true, "n": null}', {"auc": 0.9}),
        ('{"inf": 1e999, "nan": NaN}', {}),
        ("[1, 2]", {}),
        ("{broken", {}),
        ("", {}),
    ],
)
def test_metrics_keep_only_finite_numbers(raw: str, expected: dict[str, float]) -> None:
    assert parse_metrics(raw) == expected


def test_certifications_accept_names_and_keep_the_latest_expiry_per_name() -> None:
    certs = parse_certifications(
        '[{"name": "a", "expires": "2026-01-01"}, {"name": "a", "expires": "2027-01-01"},'
        ' "b", {"expires": "2027-01-01"}, 3, {"name": "c", "expires": "never"}]'
    )
    assert [(c.name, c.expires, c.expires_raw) for c in certs] == [
        ("a", date(2027, 1, 1), "2027-01-01"),
        ("b", None, None),
        ("c", None, "never"),
    ]
    assert parse_certifications("not json") == []
    assert [c.name for c in parse_certifications('{"name": "single"}')] == ["single"]


def test_datasets_are_split_stripped_and_deduplicated() -> None:
    assert parse_datasets(" s3://a ,s3://b,,s3://a\ngs://c ") == ["s3://a", "s3://b", "gs://c"]


def test_keys_are_cut_on_a_character_boundary() -> None:
    key = clean_key("é" * 2000)
    assert len(key.encode()) <= MAX_KEY_BYTES
    assert set(key) == {"é"}


def test_metadata_defaults_and_normalisation() -> None:
    md = parse_metadata({"model-name": " m ", "compliance-status": " Approved "})
    assert md.model_name == "m"
    assert md.version == ""
    assert md.risk_tier == "limited"
    assert md.compliance_status == "approved"
    assert parse_metadata(None).model_name is None
