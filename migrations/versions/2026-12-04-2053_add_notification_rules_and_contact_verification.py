"""add notification rules and contact verification

Revision ID: c47d2f1b9e02
Revises: b3c1e5a70a11
Create Date: 2026-12-04 20:52:43.611727
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c47d2f1b9e02'
down_revision: str | None = 'b3c1e5a70a11'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fail fast instead of queueing behind long transactions on a busy database.
    op.execute("SET lock_timeout = '5s'")
    op.create_table('notification_rules',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('contact_method_id', sa.Uuid(), nullable=False),
    sa.Column('delay_minutes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('urgency', sa.String(length=8), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("urgency IN ('high', 'low')", name=op.f('ck_notification_rules_urgency_values')),
    sa.CheckConstraint('delay_minutes BETWEEN 0 AND 1440', name=op.f('ck_notification_rules_delay_minutes_range')),
    sa.ForeignKeyConstraint(['contact_method_id'], ['contact_methods.id'], name=op.f('fk_notification_rules_contact_method_id_contact_methods'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notification_rules_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_rules')),
    sa.UniqueConstraint('user_id', 'contact_method_id', 'urgency', 'delay_minutes', name='uq_notification_rules_user_method_urgency_delay')
    )
    op.create_index(op.f('ix_notification_rules_contact_method_id'), 'notification_rules', ['contact_method_id'], unique=False)
    op.create_index(op.f('ix_notification_rules_user_id'), 'notification_rules', ['user_id'], unique=False)
    op.add_column('contact_methods', sa.Column('verification_code_encrypted', sa.Text(), nullable=True))
    op.add_column('contact_methods', sa.Column('verification_expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('contact_methods', sa.Column('verification_attempts', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column('contact_methods', 'verification_attempts')
    op.drop_column('contact_methods', 'verification_expires_at')
    op.drop_column('contact_methods', 'verification_code_encrypted')
    op.drop_index(op.f('ix_notification_rules_user_id'), table_name='notification_rules')
    op.drop_index(op.f('ix_notification_rules_contact_method_id'), table_name='notification_rules')
    op.drop_table('notification_rules')
