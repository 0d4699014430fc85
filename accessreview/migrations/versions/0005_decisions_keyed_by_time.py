"""decisions keyed by (decided_at, id), without a separate time index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

The decision log's table is read by time only (pages, reports, pruning), so its key becomes
(decided_at, id) and the index on decided_at goes: one B-tree per insert instead of two. On SQLite
the table is rebuilt, as SQLite cannot change a primary key in place; ids and rows are kept.
"""
from alembic import op
import sqlalchemy as sa
import accessreview.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_COLUMNS = "id, decided_at, caller, actor, action, resource, allowed, policy_version, revision, latency_us, grant_ids"


def _columns() -> list[sa.Column]:
    return [
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('decided_at', accessreview.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('caller', sa.String(length=255), nullable=False),
        sa.Column('actor', sa.String(length=255), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('resource', sa.String(length=255), nullable=False),
        sa.Column('allowed', sa.Boolean(), nullable=False),
        sa.Column('policy_version', sa.String(length=64), nullable=False),
        sa.Column('revision', sa.BigInteger(), nullable=False),
        sa.Column('latency_us', sa.Integer(), nullable=False),
        sa.Column('grant_ids', sa.JSON(), nullable=True),
    ]


def _rekey(key: list[str], time_index: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        if not time_index:
            op.drop_index(op.f('ix_decisions_decided_at'), table_name='decisions')
        op.drop_constraint(op.f('pk_decisions'), 'decisions', type_='primary')
        op.create_primary_key(op.f('pk_decisions'), 'decisions', key)
        if time_index:
            op.create_index(op.f('ix_decisions_decided_at'), 'decisions', ['decided_at'], unique=False)
        return
    op.create_table('decisions_rekeyed', *_columns(), sa.PrimaryKeyConstraint(*key, name=op.f('pk_decisions')),
                    sqlite_with_rowid=False)
    op.execute(f"INSERT INTO decisions_rekeyed ({_COLUMNS}) SELECT {_COLUMNS} FROM decisions")
    op.drop_table('decisions')  # its index on decided_at goes with it
    op.rename_table('decisions_rekeyed', 'decisions')
    if time_index:
        op.create_index(op.f('ix_decisions_decided_at'), 'decisions', ['decided_at'], unique=False)


def upgrade() -> None:
    _rekey(['decided_at', 'id'], time_index=False)


def downgrade() -> None:
    _rekey(['id'], time_index=True)
