"""a campaign's items found in id order from an index, by campaign and by campaign and status

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('review_items') as batch_op:
        batch_op.create_index('ix_review_items_campaign_order', ['campaign_id', 'id'], unique=False)
        batch_op.create_index('ix_review_items_campaign_status', ['campaign_id', 'status', 'id'], unique=False)
        batch_op.drop_index('ix_review_items_campaign_id')
        batch_op.drop_index('ix_review_items_status')


def downgrade() -> None:
    with op.batch_alter_table('review_items') as batch_op:
        batch_op.create_index('ix_review_items_status', ['status'], unique=False)
        batch_op.create_index('ix_review_items_campaign_id', ['campaign_id'], unique=False)
        batch_op.drop_index('ix_review_items_campaign_status')
        batch_op.drop_index('ix_review_items_campaign_order')
