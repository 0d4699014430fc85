"""staged rows of directory imports run as jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa
import accessreview.models


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

UTC = accessreview.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('staged_import_rows',
    sa.Column('staging_key', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('batch', sa.Integer(), nullable=False),
    sa.Column('section', sa.String(length=16), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('staged_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('staging_key', 'seq', name=op.f('pk_staged_import_rows'))
    )
    with op.batch_alter_table('staged_import_rows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staged_import_rows_staged_at'), ['staged_at'], unique=False)
        batch_op.create_index('ix_staged_import_rows_batch', ['staging_key', 'batch'], unique=False)


def downgrade() -> None:
    op.drop_table('staged_import_rows')
