"""add incident escalation position

Revision ID: d5e8a3c6f713
Revises: c47d2f1b9e02
Create Date: 2026-12-04 20:52:43.611727
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'd5e8a3c6f713'
down_revision: str | None = 'c47d2f1b9e02'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fail fast instead of queueing behind long transactions on a busy database.
    op.execute("SET lock_timeout = '5s'")
    op.add_column('incidents', sa.Column('escalation_position', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column('incidents', 'escalation_position')
