"""backfill grouping of existing rows

Revision ID: 5b1e0c7d2a94
Revises: 6979aa35e42d
Create Date: 2026-12-04 20:54:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5b1e0c7d2a94"
down_revision: str | None = "6979aa35e42d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute(
        """
        UPDATE alerts SET grouping_key = incidents.grouping_key
        FROM incidents WHERE alerts.incident_id = incidents.id AND alerts.grouping_key IS NULL
        """
    )
    op.execute(
        """
        UPDATE incidents SET grouping = jsonb_build_object(
            'mode', 'intelligent', 'key', grouping_key, 'reason', 'grouped before grouping modes'
        )
        WHERE grouping = '{}'::jsonb
        """
    )


def downgrade() -> None:
    # The columns filled here are dropped by the previous revision's downgrade.
    pass
