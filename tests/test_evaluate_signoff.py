"""``modelgate evaluate`` judges recorded sign-off from the configured inventory (SQLite and
PostgreSQL), and with ``--approval-source annotation`` trusts the annotation (CI linting)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from modelgate.cli import main
from modelgate.identity import Identity
from modelgate.inventory import signoff
from modelgate.inventory.db import Database
from policies.config import PolicyConfig
from tests.fixtures.inventory import deployment, metadata


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["evaluate", *args], env=env, catch_exceptions=False)


def manifest(tmp_path: Path, **md: str) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(deployment("fraud", annotations=metadata(**md))))
    return path


def _register(db: Database) -> None:
    signoff.register_version(
        db,
        model="fraud-detector",
        version="1.0.0",
        metadata={
            "owner": "risk-ml@example.com",
            "training-date": "2025-03-14",
            "training-data": "s3://data/fraud/train.parquet",
        },
        actor=Identity("olivia@example.com"),
        config=PolicyConfig(),
    )


def _approve(db: Database, **kw: Any) -> dict[str, Any]:
    record: dict[str, Any] = dict(
        signoff.record_approval(
            db,
            model="fraud-detector",
            version="1.0.0",
            decision="approved",
            actor=Identity("alice@example.com", ("model-risk",)),
            reason="ok",
            config=PolicyConfig(),
            today=datetime.now(UTC).date(),
            **kw,
        )
    )
    return record


def test_the_inventory_decides_and_the_output_says_so(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    env = {"MODELGATE_DATABASE_URL": db_url, "MODELGATE_CLUSTER_NAME": "prod"}
    f = manifest(tmp_path)
    denied = run(env, "-f", str(f), "-o", "json")
    assert denied.exit_code == 1
    out = json.loads(denied.stdout)
    assert "has no recorded approval" in out[0]["violations"][0]
    assert "approval source: inventory" in denied.stderr
    _register(db)
    record = _approve(db)
    allowed = run(env, "-f", str(f))
    assert allowed.exit_code == 0, allowed.stdout
    assert "approval source: inventory" in allowed.stdout and "cluster prod" in allowed.stdout
    signoff.revoke_approval(
        db,
        record["id"],
        actor=Identity("bob@example.com"),
        reason="x",
        today=datetime.now(UTC).date(),
    )
    assert run(env, "-f", str(f)).exit_code == 1


def test_scope_is_checked_for_the_cluster_given(db_url: str, db: Database, tmp_path: Path) -> None:
    _register(db)
    _approve(db, scope={"clusters": ["prod"]})
    env = {"MODELGATE_DATABASE_URL": db_url}
    f = manifest(tmp_path)
    assert run(env, "-f", str(f), "--cluster", "prod").exit_code == 0
    staging = run(env, "-f", str(f), "--cluster", "staging", "-o", "json")
    assert staging.exit_code == 1
    assert 'cluster "staging"' in json.loads(staging.stdout)[0]["violations"][0]


def test_annotation_source_lints_without_an_inventory(tmp_path: Path) -> None:
    env = {"MODELGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'absent.db'}"}
    f = manifest(tmp_path)
    result = run(env, "-f", str(f), "--approval-source", "annotation")
    assert result.exit_code == 0
    assert "approval source: annotation" in result.stdout
    assert not (tmp_path / "absent.db").exists()


def test_a_missing_inventory_is_exit_2_with_a_hint(tmp_path: Path) -> None:
    env = {"MODELGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'absent.db'}"}
    result = run(env, "-f", str(manifest(tmp_path)))
    assert result.exit_code == 2
    assert "--approval-source annotation" in result.stderr
    assert not (tmp_path / "absent.db").exists()  # never created by a read


def test_an_unreachable_inventory_is_exit_2(tmp_path: Path) -> None:
    env = {"MODELGATE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = run(env, "-f", str(manifest(tmp_path)))
    assert result.exit_code == 2
    assert "cannot read approvals from the inventory" in result.stderr
