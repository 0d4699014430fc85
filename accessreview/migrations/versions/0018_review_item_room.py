"""room on each page of review items for their next version (PostgreSQL), so that remediation's updates
are heap-only

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""
from alembic import op


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

# A review item is about 1.4 kB (its frozen grant, explanation and effective permissions). Remediation
# updates every revoked item twice (applied, then verified), changing no indexed column; PostgreSQL
# keeps such an update on the same page, without touching the table's five indexes, only when the
# page has room for the new version. Full pages made every one of them a new tuple elsewhere plus
# five index entries: the largest single cost of applying and verifying revocations.
FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'ALTER TABLE review_items SET (fillfactor = {FILLFACTOR})')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE review_items RESET (fillfactor)')
