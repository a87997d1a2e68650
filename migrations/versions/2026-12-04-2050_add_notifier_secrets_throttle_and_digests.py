"""add notifier secrets, throttle and digest columns

Revision ID: 8110db5f29fc
Revises: 5a09e1e121d6
Create Date: 2026-12-04 20:50:36.231412
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '8110db5f29fc'
down_revision: str | None = '5a09e1e121d6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fail fast instead of queueing behind long transactions on a busy database.
    op.execute("SET lock_timeout = '5s'")
    op.add_column('contact_methods', sa.Column('previous_secret_encrypted', sa.Text(), nullable=True))
    op.add_column('contact_methods', sa.Column('previous_secret_expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('contact_methods', sa.Column('secret_settings_encrypted', sa.Text(), nullable=True))
    op.add_column('notifications', sa.Column('external_ref', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('notifications', sa.Column('throttle_slot_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('notifications', sa.Column('digest_id', sa.Uuid(), nullable=True))
    op.alter_column('notifications', 'incident_id',
               existing_type=sa.UUID(),
               nullable=True)
    op.create_index('ix_notifications_contact_method_id_held', 'notifications', ['contact_method_id', 'created_at'], unique=False, postgresql_where=sa.text("status = 'throttled' AND digest_id IS NULL"))
    op.create_index('ix_notifications_contact_method_id_throttle_slot_at', 'notifications', ['contact_method_id', 'throttle_slot_at'], unique=False, postgresql_where=sa.text('throttle_slot_at IS NOT NULL'))
    op.create_foreign_key(op.f('fk_notifications_digest_id_notifications'), 'notifications', 'notifications', ['digest_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_constraint(op.f('fk_notifications_digest_id_notifications'), 'notifications', type_='foreignkey')
    op.drop_index('ix_notifications_contact_method_id_throttle_slot_at', table_name='notifications', postgresql_where=sa.text('throttle_slot_at IS NOT NULL'))
    op.drop_index('ix_notifications_contact_method_id_held', table_name='notifications', postgresql_where=sa.text("status = 'throttled' AND digest_id IS NULL"))
    # Digests belong to no incident; they cannot survive the NOT NULL constraint.
    op.execute("DELETE FROM notifications WHERE incident_id IS NULL")
    op.alter_column('notifications', 'incident_id',
               existing_type=sa.UUID(),
               nullable=False)
    op.drop_column('notifications', 'digest_id')
    op.drop_column('notifications', 'throttle_slot_at')
    op.drop_column('notifications', 'external_ref')
    op.drop_column('contact_methods', 'secret_settings_encrypted')
    op.drop_column('contact_methods', 'previous_secret_expires_at')
    op.drop_column('contact_methods', 'previous_secret_encrypted')
