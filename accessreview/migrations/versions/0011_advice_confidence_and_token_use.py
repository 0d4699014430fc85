"""advice that knows its data: the confidence of a recommendation, a definition's fallback for
undecided items whose advice is incomplete, and when each token was last used

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa
import accessreview.models


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

UTC = accessreview.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('service_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_used_at', UTC, nullable=True))
    with op.batch_alter_table('campaign_definitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_no_response_fallback', sa.String(length=16), server_default='keep',
                                      nullable=False))
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recommendation_confidence', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_column('recommendation_confidence')
    with op.batch_alter_table('campaign_definitions', schema=None) as batch_op:
        batch_op.drop_column('on_no_response_fallback')
    with op.batch_alter_table('service_tokens', schema=None) as batch_op:
        batch_op.drop_column('last_used_at')
