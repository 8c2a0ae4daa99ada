"""Capacity samples: what each audit scan saw each model workload hold (replicas, restarts,
requests, limits, usage), orphans included; successive scans make the capacity trend.

Revision ID: 0006_capacity
Revises: 0002_audit
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from modelgate.inventory.base import UTCDateTime

revision = "0006_capacity"
down_revision = "0005_log_chain"
branch_labels = None
depends_on = None

# frozen copies of the column types (a migration must not change when models.py does)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "capacity_samples",
        sa.Column("id", ID, nullable=False),
        sa.Column("scan_id", ID, nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("version", sa.Text(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("registered", sa.Boolean(), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=True),
        sa.Column("ready_replicas", sa.Integer(), nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=True),
        sa.Column("requests", JSON, nullable=False),
        sa.Column("limits", JSON, nullable=False),
        sa.Column("usage", JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["audit_scans.id"],
            name=op.f("fk_capacity_samples_scan_id_audit_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_capacity_samples")),
    )
    op.create_index(op.f("ix_capacity_samples_scan_id"), "capacity_samples", ["scan_id"])
    op.create_index(
        op.f("ix_capacity_samples_cluster_scan_id"), "capacity_samples", ["cluster", "scan_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_capacity_samples_cluster_scan_id"), table_name="capacity_samples")
    op.drop_index(op.f("ix_capacity_samples_scan_id"), table_name="capacity_samples")
    op.drop_table("capacity_samples")
