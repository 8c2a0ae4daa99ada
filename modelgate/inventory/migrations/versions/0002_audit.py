"""Audit tables: scan runs, findings and which scan saw which finding.

Revision ID: 0002_audit
Revises: 0001_initial
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from modelgate.inventory.base import UTCDateTime

revision = "0002_audit"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

# frozen copies of the column types (a migration must not change when audit.py does)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _text(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "audit_scans",
        sa.Column("id", ID, nullable=False),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        _text("status"),
        _text("bundle_digest"),
        _text("engine"),
        sa.Column("sources", JSON, nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_scans")),
    )
    op.create_table(
        "audit_findings",
        sa.Column("id", ID, nullable=False),
        _text("fingerprint"),
        _text("type"),
        _text("severity"),
        _text("cluster"),
        _text("namespace"),
        _text("kind"),
        _text("name"),
        _text("model", nullable=True),
        _text("version", nullable=True),
        _text("message"),
        sa.Column("details", JSON, nullable=False),
        _text("status"),
        _ts("first_seen"),
        _ts("last_seen"),
        _ts("resolved_at", nullable=True),
        sa.Column("first_scan_id", ID, nullable=True),
        sa.Column("last_scan_id", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["first_scan_id"],
            ["audit_scans.id"],
            name=op.f("fk_audit_findings_first_scan_id_audit_scans"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["last_scan_id"],
            ["audit_scans.id"],
            name=op.f("fk_audit_findings_last_scan_id_audit_scans"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_findings")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_audit_findings_fingerprint")),
    )
    op.create_index(op.f("ix_audit_findings_type"), "audit_findings", ["type"])
    op.create_index(op.f("ix_audit_findings_last_scan_id"), "audit_findings", ["last_scan_id"])
    op.create_index(
        op.f("ix_audit_findings_cluster_status"), "audit_findings", ["cluster", "status"]
    )
    op.create_table(
        "audit_scan_findings",
        sa.Column("scan_id", ID, nullable=False),
        sa.Column("finding_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["audit_findings.id"],
            name=op.f("fk_audit_scan_findings_finding_id_audit_findings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["audit_scans.id"],
            name=op.f("fk_audit_scan_findings_scan_id_audit_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scan_id", "finding_id", name=op.f("pk_audit_scan_findings")),
    )


def downgrade() -> None:
    op.drop_table("audit_scan_findings")
    op.drop_index(op.f("ix_audit_findings_cluster_status"), table_name="audit_findings")
    op.drop_index(op.f("ix_audit_findings_last_scan_id"), table_name="audit_findings")
    op.drop_index(op.f("ix_audit_findings_type"), table_name="audit_findings")
    op.drop_table("audit_findings")
    op.drop_table("audit_scans")
