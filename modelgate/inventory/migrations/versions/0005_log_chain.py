"""Tamper evidence: the decision log and the approval log become hash chains (seq,
prev_hash, entry_hash, backfilled over the existing rows in insertion order), chain heads,
signed checkpoints; findings get their accountable owner and due date.

Revision ID: 0005_log_chain
Revises: 0004_approvals
Create Date: 2026-12-01

The backfill computes hashes with :func:`modelgate.inventory.chain.canonical` and
:func:`~modelgate.inventory.chain.entry_hash` — the documented canonical form, which never
changes — over every column the table has when this runs (minus ``id`` and the chain
columns; NULL values are left out, so columns added as nullable by other revisions do not
matter). The tables chained are ``CHAINED``; the downgrade removes the chain columns of
each of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from modelgate.inventory.base import UTCDateTime, utcnow
from modelgate.inventory.chain import EXCLUDED_COLUMNS, canonical, entry_hash, genesis

revision = "0005_log_chain"
down_revision = "0004_approvals"
branch_labels = None
depends_on = None

# frozen copies of the column types
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: (table, log name) of every append-only table this revision chains
CHAINED: tuple[tuple[str, str], ...] = (
    ("decisions", "decisions"),
    ("approval_log", "approval_log"),  # created by 0004_approvals
)

CHECKPOINT_TRIGGERS_SQLITE = [
    f"CREATE TRIGGER log_checkpoints_no_{name.lower()} BEFORE {name} ON log_checkpoints "
    "BEGIN SELECT RAISE(ABORT, 'the log checkpoints are append-only'); END"
    for name in ("UPDATE", "DELETE")
]
CHECKPOINT_TRIGGERS_POSTGRES = [
    """CREATE OR REPLACE FUNCTION log_checkpoints_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the log checkpoints are append-only' USING ERRCODE = 'insufficient_privilege';
END
$$""",
    """CREATE TRIGGER log_checkpoints_append_only BEFORE UPDATE OR DELETE ON log_checkpoints
FOR EACH ROW EXECUTE FUNCTION log_checkpoints_append_only()""",
]


@contextmanager
def _without_triggers(conn: Connection, table: str) -> Iterator[None]:
    """The table's (append-only) triggers out of the way: disabled on PostgreSQL; dropped on
    SQLite and created again afterwards (a batch alter recreates the table, which drops
    them anyway)."""
    if conn.dialect.name == "postgresql":
        op.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
        yield
        op.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER USER')
        return
    saved = conn.execute(
        sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
        {"t": table},
    ).all()
    for name, _sql in saved:
        op.execute(f'DROP TRIGGER "{name}"')
    yield
    for _name, sql in saved:
        op.execute(sql)


def _backfill(conn: Connection, table_name: str, log_name: str) -> tuple[int, str]:
    """Chain the existing rows in insertion (id) order; returns the head (seq, hash)."""
    table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
    logged = [c for c in table.columns if c.name not in EXCLUDED_COLUMNS]
    names = [c.name for c in logged]
    seq, prev = 0, genesis(log_name)
    updates: list[dict[str, Any]] = []
    stmt = sa.update(table).where(table.c.id == sa.bindparam("row_id"))
    query = sa.select(table.c.id, *logged).order_by(table.c.id)
    if conn.dialect.name == "sqlite":  # one cursor at a time: read first
        rows: Any = conn.execute(query).all()
    else:  # a server-side cursor, while the updates go through the same connection
        rows = conn.execute(query.execution_options(yield_per=2000))
    for values in rows:
        seq += 1
        content = canonical(dict(zip(names, values[1:], strict=True)))
        digest = entry_hash(prev, content)
        updates.append({"row_id": values[0], "seq": seq, "prev_hash": prev, "entry_hash": digest})
        prev = digest
        if len(updates) >= 2000:
            conn.execute(stmt.values(seq=sa.bindparam("seq")), updates)
            updates.clear()
    if updates:
        conn.execute(stmt.values(seq=sa.bindparam("seq")), updates)
    return seq, prev


def upgrade() -> None:
    conn = op.get_bind()
    op.create_table(
        "log_heads",
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("seq", ID, nullable=False),
        sa.Column("entry_hash", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("log", name=op.f("pk_log_heads")),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("id", ID, nullable=False),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("seq", ID, nullable=False),
        sa.Column("entry_hash", sa.Text(), nullable=False),
        sa.Column("signed_at", UTCDateTime(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("key_fingerprint", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_checkpoints")),
    )
    op.create_index(op.f("ix_log_checkpoints_log_seq"), "log_checkpoints", ["log", "seq"])
    for stmt in (
        CHECKPOINT_TRIGGERS_POSTGRES
        if conn.dialect.name == "postgresql"
        else CHECKPOINT_TRIGGERS_SQLITE
    ):
        op.execute(stmt)

    heads = sa.table(
        "log_heads",
        sa.column("log", sa.Text()),
        sa.column("seq", ID),
        sa.column("entry_hash", sa.Text()),
        sa.column("updated_at", UTCDateTime()),
    )
    for table, log_name in CHAINED:
        for name in ("seq", "prev_hash", "entry_hash"):
            op.add_column(table, sa.Column(name, ID if name == "seq" else sa.Text(), nullable=True))
        with _without_triggers(conn, table):
            seq, head = _backfill(conn, table, log_name)
            with op.batch_alter_table(table) as batch:
                for name in ("seq", "prev_hash", "entry_hash"):
                    batch.alter_column(
                        name, existing_type=ID if name == "seq" else sa.Text(), nullable=False
                    )
                batch.create_unique_constraint(op.f(f"uq_{table}_seq"), ["seq"])
        op.bulk_insert(
            heads, [{"log": log_name, "seq": seq, "entry_hash": head, "updated_at": utcnow()}]
        )

    op.add_column("audit_findings", sa.Column("owner", sa.Text(), nullable=True))
    op.add_column("audit_findings", sa.Column("due", sa.Date(), nullable=True))


def downgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("audit_findings") as batch:
        batch.drop_column("due")
        batch.drop_column("owner")
    for table, _log_name in CHAINED:
        with _without_triggers(conn, table), op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"uq_{table}_seq"), type_="unique")
            batch.drop_column("entry_hash")
            batch.drop_column("prev_hash")
            batch.drop_column("seq")
    if conn.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS log_checkpoints_append_only ON log_checkpoints")
        op.execute("DROP FUNCTION IF EXISTS log_checkpoints_append_only()")
    op.drop_index(op.f("ix_log_checkpoints_log_seq"), table_name="log_checkpoints")
    op.drop_table("log_checkpoints")
    op.drop_table("log_heads")
