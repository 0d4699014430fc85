"""a reviewer's queue read from one index: its counts and pages without visiting the items

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('review_items') as batch_op:
        batch_op.create_index('ix_review_items_queue',
                              ['reviewer', 'campaign_id', 'status', 'recommendation', 'role', 'id'], unique=False)
        batch_op.drop_index('ix_review_items_reviewer')


def downgrade() -> None:
    with op.batch_alter_table('review_items') as batch_op:
        batch_op.create_index('ix_review_items_reviewer', ['reviewer'], unique=False)
        batch_op.drop_index('ix_review_items_queue')
