"""Initial inventory schema: models, versions, certifications, datasets, training runs,
lineage, deployments and the append-only decision log.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from modelgate.inventory.base import UTCDateTime

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

# frozen copies of the column types (a migration must not change when models.py does)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

SQLITE_APPEND_ONLY = [
    f"CREATE TRIGGER decisions_no_{op_name.lower()} BEFORE {op_name} ON decisions "
    "BEGIN SELECT RAISE(ABORT, 'the decision log is append-only'); END"
    for op_name in ("UPDATE", "DELETE")
]
POSTGRES_APPEND_ONLY = [
    """CREATE OR REPLACE FUNCTION decisions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the decision log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$""",
    """CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions
FOR EACH ROW EXECUTE FUNCTION decisions_append_only()""",
]


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _text(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", ID, nullable=False),
        _text("uri"),
        _ts("first_seen"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("uri", name=op.f("uq_datasets_uri")),
    )
    op.create_table(
        "decisions",
        sa.Column("id", ID, nullable=False),
        _text("event_id"),
        _ts("time"),
        _text("uid"),
        _text("user"),
        _text("operation"),
        _text("cluster"),
        _text("kind"),
        _text("namespace"),
        _text("name"),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("is_model", sa.Boolean(), nullable=False),
        _text("model_name", nullable=True),
        _text("model_version", nullable=True),
        sa.Column("violations", JSON, nullable=False),
        sa.Column("warnings", JSON, nullable=False),
        _text("enforcement"),
        _text("bundle_digest"),
        _text("engine"),
        _text("error", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("event_id", name=op.f("uq_decisions_event_id")),
    )
    op.create_index(
        op.f("ix_decisions_cluster_namespace_kind_name"),
        "decisions",
        ["cluster", "namespace", "kind", "name"],
    )
    op.create_index(
        op.f("ix_decisions_model_name_model_version"), "decisions", ["model_name", "model_version"]
    )
    op.create_index(op.f("ix_decisions_time"), "decisions", ["time"])

    op.create_table(
        "models",
        sa.Column("id", ID, nullable=False),
        _text("name"),
        _text("owner"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    op.create_table(
        "training_runs",
        sa.Column("id", ID, nullable=False),
        _text("run_ref"),
        _text("url", nullable=True),
        _ts("first_seen"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
        sa.UniqueConstraint("run_ref", name=op.f("uq_training_runs_run_ref")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", ID, nullable=False),
        sa.Column("model_id", ID, nullable=False),
        _text("version"),
        _text("owner"),
        _ts("training_date", nullable=True),
        _text("training_date_raw", nullable=True),
        _text("compliance_status"),
        _text("risk_tier"),
        _text("model_card", nullable=True),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("training_run_id", ID, nullable=True),
        _text("source", nullable=True),
        _text("exempt_reason", nullable=True),
        sa.Column("raw_metadata", JSON, nullable=False),
        _ts("first_admitted"),
        _ts("last_admitted"),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_versions_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_runs.id"],
            name=op.f("fk_model_versions_training_run_id_training_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_model_versions_model_id_version")),
    )
    op.create_index(op.f("ix_model_versions_model_id"), "model_versions", ["model_id"])
    op.create_index(
        op.f("ix_model_versions_training_run_id"), "model_versions", ["training_run_id"]
    )

    op.create_table(
        "training_run_datasets",
        sa.Column("training_run_id", ID, nullable=False),
        sa.Column("dataset_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_training_run_datasets_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_runs.id"],
            name=op.f("fk_training_run_datasets_training_run_id_training_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "training_run_id", "dataset_id", name=op.f("pk_training_run_datasets")
        ),
    )
    op.create_table(
        "certifications",
        sa.Column("id", ID, nullable=False),
        sa.Column("model_version_id", ID, nullable=False),
        _text("name"),
        sa.Column("expires", sa.Date(), nullable=True),
        _text("expires_raw", nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_certifications_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certifications")),
        sa.UniqueConstraint(
            "model_version_id", "name", name=op.f("uq_certifications_model_version_id_name")
        ),
    )
    op.create_index(
        op.f("ix_certifications_model_version_id"), "certifications", ["model_version_id"]
    )

    op.create_table(
        "deployments",
        sa.Column("id", ID, nullable=False),
        _text("cluster"),
        _text("namespace"),
        _text("kind"),
        _text("name"),
        sa.Column("images", JSON, nullable=False),
        sa.Column("model_version_id", ID, nullable=True),
        _ts("first_admitted", nullable=True),
        _ts("last_admitted", nullable=True),
        sa.Column("replicas", sa.Integer(), nullable=True),
        sa.Column("ready_replicas", sa.Integer(), nullable=True),
        sa.Column("resources", JSON, nullable=True),
        _ts("last_seen", nullable=True),
        _text("status", nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_deployments_model_version_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint(
            "cluster",
            "namespace",
            "kind",
            "name",
            name=op.f("uq_deployments_cluster_namespace_kind_name"),
        ),
    )
    op.create_index(op.f("ix_deployments_model_version_id"), "deployments", ["model_version_id"])

    op.create_table(
        "model_version_datasets",
        sa.Column("model_version_id", ID, nullable=False),
        sa.Column("dataset_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_model_version_datasets_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_version_datasets_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_version_id", "dataset_id", name=op.f("pk_model_version_datasets")
        ),
    )

    dialect = op.get_bind().dialect.name
    statements = {"sqlite": SQLITE_APPEND_ONLY, "postgresql": POSTGRES_APPEND_ONLY}
    for statement in statements.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS decisions_append_only ON decisions")
        op.execute("DROP FUNCTION IF EXISTS decisions_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS decisions_no_update")
        op.execute("DROP TRIGGER IF EXISTS decisions_no_delete")
    op.drop_table("model_version_datasets")
    op.drop_index(op.f("ix_deployments_model_version_id"), table_name="deployments")
    op.drop_table("deployments")
    op.drop_index(op.f("ix_certifications_model_version_id"), table_name="certifications")
    op.drop_table("certifications")
    op.drop_table("training_run_datasets")
    op.drop_index(op.f("ix_model_versions_training_run_id"), table_name="model_versions")
    op.drop_index(op.f("ix_model_versions_model_id"), table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("training_runs")
    op.drop_table("models")
    op.drop_index(op.f("ix_decisions_time"), table_name="decisions")
    op.drop_index(op.f("ix_decisions_model_name_model_version"), table_name="decisions")
    op.drop_index(op.f("ix_decisions_cluster_namespace_kind_name"), table_name="decisions")
    op.drop_table("decisions")
    op.drop_table("datasets")
