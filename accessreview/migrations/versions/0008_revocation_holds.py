"""revocation holds, the definitions' hold settings and the campaigns' follow-up findings

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa
import accessreview.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

UTC = accessreview.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('holds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('principal_key', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('resource_key', sa.String(length=255), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.JSON(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('expires_at', UTC, nullable=True),
    sa.Column('lifted_at', UTC, nullable=True),
    sa.Column('lifted_by', sa.String(length=255), nullable=True),
    sa.Column('lift_justification', sa.Text(), nullable=True),
    sa.Column('lift_until', UTC, nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_holds_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['item_id'], ['review_items.id'], name=op.f('fk_holds_item_id_review_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_identity', ['principal_key', 'resource_key', 'role'], unique=False)
        batch_op.create_index(batch_op.f('ix_holds_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_holds_item_id'), ['item_id'], unique=False)
    with op.batch_alter_table('campaign_definitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holds', sa.JSON(), nullable=True))
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('follow_up', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('follow_up')
    with op.batch_alter_table('campaign_definitions', schema=None) as batch_op:
        batch_op.drop_column('holds')
    op.drop_table('holds')
