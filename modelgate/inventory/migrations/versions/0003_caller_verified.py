"""The decision log records whether the caller was verified (mutual TLS).

Revision ID: 0003_caller_verified
Revises: 0002_audit
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_caller_verified"
down_revision = "0002_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: decisions made without client-certificate verification (and every older row)
    op.add_column("decisions", sa.Column("caller_verified", sa.Boolean(), nullable=True))


def downgrade() -> None:
    # a plain ALTER TABLE ... DROP COLUMN on both backends (SQLite >= 3.35): a batch rebuild
    # would drop the append-only triggers of the table
    op.drop_column("decisions", "caller_verified")
