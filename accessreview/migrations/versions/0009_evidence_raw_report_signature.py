"""raw Ed25519 signature over each report workbook's bytes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reports') as batch_op:
        batch_op.add_column(sa.Column('raw_signature', sa.LargeBinary(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reports') as batch_op:
        batch_op.drop_column('raw_signature')
