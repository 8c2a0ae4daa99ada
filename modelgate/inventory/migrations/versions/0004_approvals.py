"""Sign-off: approvals, exemptions, recorded certifications, the append-only approval log;
who registered a version; which approval(s) admitted each decision.

Revision ID: 0004_approvals
Revises: 0002_audit
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from modelgate.inventory.base import UTCDateTime

revision = "0004_approvals"
down_revision = "0003_caller_verified"
branch_labels = None
depends_on = None

# frozen copies of the column types and triggers (a migration must not change when models.py
# does)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
LOG_MESSAGE = "the approval log is append-only"
CHANNEL = "modelgate_registry"
SIGN_OFF_TABLES = ("approvals", "exemptions", "recorded_certifications")

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER approval_log_no_{name.lower()} BEFORE {name} ON approval_log "
    f"BEGIN SELECT RAISE(ABORT, '{LOG_MESSAGE}'); END"
    for name in ("UPDATE", "DELETE")
]
POSTGRES_TRIGGERS = [
    f"""CREATE OR REPLACE FUNCTION approval_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '{LOG_MESSAGE}' USING ERRCODE = 'insufficient_privilege';
END
$$""",
    """CREATE TRIGGER approval_log_append_only BEFORE UPDATE OR DELETE ON approval_log
FOR EACH ROW EXECUTE FUNCTION approval_log_append_only()""",
    f"""CREATE OR REPLACE FUNCTION modelgate_registry_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
  RETURN NULL;
END
$$""",
    *(
        f"""CREATE TRIGGER {table}_registry_notify
AFTER INSERT OR UPDATE OR DELETE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION modelgate_registry_notify()"""
        for table in SIGN_OFF_TABLES
    ),
]


def _text(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def _version_fk(table: str) -> list[Any]:
    return [
        sa.Column("model_version_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f(f"fk_{table}_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
    ]


def _revocation() -> list[Any]:
    return [
        _ts("revoked_at", nullable=True),
        _text("revoked_by", True),
        _text("revoke_reason", True),
    ]


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("registered_by", sa.Text(), nullable=True))
    op.add_column("model_versions", sa.Column("registered_at", UTCDateTime(), nullable=True))
    op.add_column("decisions", sa.Column("approvals", JSON, nullable=True))

    op.create_table(
        "approvals",
        sa.Column("id", ID, nullable=False),
        *_version_fk("approvals"),
        _text("decision"),
        _text("approver"),
        _text("approver_email", True),
        sa.Column("approver_groups", JSON, nullable=False),
        _ts("created"),
        _text("reason"),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("expires", sa.Date(), nullable=True),
        sa.Column("scope", JSON, nullable=True),
        *_revocation(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
    )
    op.create_table(
        "exemptions",
        sa.Column("id", ID, nullable=False),
        *_version_fk("exemptions"),
        _text("granted_by"),
        sa.Column("granted_by_groups", JSON, nullable=False),
        _ts("created"),
        _text("reason"),
        sa.Column("expires", sa.Date(), nullable=False),
        *_revocation(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exemptions")),
    )
    op.create_table(
        "recorded_certifications",
        sa.Column("id", ID, nullable=False),
        *_version_fk("recorded_certifications"),
        _text("name"),
        sa.Column("expires", sa.Date(), nullable=False),
        _text("evidence", True),
        _text("recorded_by"),
        sa.Column("recorded_by_groups", JSON, nullable=False),
        _ts("created"),
        *_revocation(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recorded_certifications")),
    )
    for table in SIGN_OFF_TABLES:
        op.create_index(
            op.f(f"ix_{table}_model_version_id"), table, ["model_version_id"], unique=False
        )
    op.create_table(
        "approval_log",
        sa.Column("id", ID, nullable=False),
        _ts("time"),
        _text("action"),
        _text("actor"),
        _text("actor_groups"),
        _text("model"),
        _text("version"),
        _text("record_type"),
        sa.Column("record_id", ID, nullable=True),
        _text("reason"),
        _text("evidence"),
        _text("expires", True),
        _text("scope", True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_log")),
    )
    op.create_index(op.f("ix_approval_log_time"), "approval_log", ["time"], unique=False)
    op.create_index(
        op.f("ix_approval_log_model_version"), "approval_log", ["model", "version"], unique=False
    )
    dialect = op.get_bind().dialect.name
    statements = {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRES_TRIGGERS}
    for statement in statements.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in SIGN_OFF_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_registry_notify ON {table}")
        op.execute("DROP FUNCTION IF EXISTS modelgate_registry_notify()")
        op.execute("DROP TRIGGER IF EXISTS approval_log_append_only ON approval_log")
        op.execute("DROP FUNCTION IF EXISTS approval_log_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS approval_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS approval_log_no_delete")
    op.drop_index(op.f("ix_approval_log_model_version"), table_name="approval_log")
    op.drop_index(op.f("ix_approval_log_time"), table_name="approval_log")
    op.drop_table("approval_log")
    for table in reversed(SIGN_OFF_TABLES):
        op.drop_index(op.f(f"ix_{table}_model_version_id"), table_name=table)
        op.drop_table(table)
    # plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch rebuild of decisions would
    # drop its append-only triggers
    op.drop_column("decisions", "approvals")
    op.drop_column("model_versions", "registered_at")
    op.drop_column("model_versions", "registered_by")
