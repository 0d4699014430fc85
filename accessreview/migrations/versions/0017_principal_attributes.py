"""principals carry custom attributes (a JSON object) for attribute rules, as resources do

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server default fills the rows already there (and keeps SQLite's ALTER TABLE ADD COLUMN
    # possible: a NOT NULL column needs one).
    with op.batch_alter_table('principals') as batch_op:
        batch_op.add_column(sa.Column('attributes', sa.JSON(), server_default=sa.text("'{}'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('principals') as batch_op:
        batch_op.drop_column('attributes')
