"""the decision log notes the digest of the properties and context a check's request gave

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('decisions') as batch_op:
        batch_op.add_column(sa.Column('properties_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('decisions') as batch_op:
        batch_op.drop_column('properties_sha256')
