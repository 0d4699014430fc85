"""decisions keyed by (decided_at, id), without a separate time index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

The decision log's table is read by time only (pages, reports, pruning), so its key becomes
(decided_at, id) and the index on decided_at goes: one B-tree per insert instead of two. On SQLite
the table is rebuilt (SQLite cannot change a primary key in place); ids and rows are kept.
"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _rekey(key: list[str], time_index: bool) -> None:
    # SQLite cannot change a primary key in place: batch mode rebuilds the table there (copying its
    # rows, and keeping it WITHOUT ROWID) and alters it in place elsewhere.
    with op.batch_alter_table('decisions', table_kwargs={'sqlite_with_rowid': False}) as batch_op:
        if not time_index:
            batch_op.drop_index(batch_op.f('ix_decisions_decided_at'))
        batch_op.drop_constraint(batch_op.f('pk_decisions'), type_='primary')
        batch_op.create_primary_key(batch_op.f('pk_decisions'), key)
        if time_index:
            batch_op.create_index(batch_op.f('ix_decisions_decided_at'), ['decided_at'], unique=False)


def upgrade() -> None:
    _rekey(['decided_at', 'id'], time_index=False)


def downgrade() -> None:
    _rekey(['id'], time_index=True)
