"""review items carry a version; sign-in links are tokens of their own purpose, used once

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa
import accessreview.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

UTC = accessreview.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('service_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=16), server_default='api', nullable=False))
        batch_op.add_column(sa.Column('used_at', UTC, nullable=True))
    # Tokens made before this revision told their purpose by their description alone.
    op.execute("UPDATE service_tokens SET purpose = 'sign_in_link' WHERE description = 'web sign-in link'")
    op.execute("UPDATE service_tokens SET purpose = 'web_session' WHERE description = 'web session'")


def downgrade() -> None:
    with op.batch_alter_table('service_tokens', schema=None) as batch_op:
        batch_op.drop_column('used_at')
        batch_op.drop_column('purpose')
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_column('version')
