"""a campaign definition's sign-off settings: whether someone who decided items may sign it off

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaign_definitions') as batch_op:
        batch_op.add_column(sa.Column('sign_off', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaign_definitions') as batch_op:
        batch_op.drop_column('sign_off')
