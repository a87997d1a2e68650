"""add chat identities and action link uses

Revision ID: 5a09e1e121d6
Revises: 540191986627
Create Date: 2026-12-04 20:49:30.925565
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5a09e1e121d6'
down_revision: str | None = '540191986627'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fail fast instead of queueing behind long transactions on a busy database.
    op.execute("SET lock_timeout = '5s'")
    op.create_table('chat_identities',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('team_id', sa.String(length=64), server_default='', nullable=False),
    sa.Column('external_user_id', sa.String(length=64), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_chat_identities_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_identities')),
    sa.UniqueConstraint('provider', 'team_id', 'external_user_id', name='uq_chat_identities_account')
    )
    op.create_index(op.f('ix_chat_identities_user_id'), 'chat_identities', ['user_id'], unique=False)
    op.create_table('action_link_uses',
    sa.Column('mac', sa.LargeBinary(length=16), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.Text(), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_action_link_uses_incident_id_incidents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mac', name=op.f('pk_action_link_uses'))
    )
    op.create_index('ix_action_link_uses_expires_at', 'action_link_uses', ['expires_at'], unique=False)


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index('ix_action_link_uses_expires_at', table_name='action_link_uses')
    op.drop_table('action_link_uses')
    op.drop_index(op.f('ix_chat_identities_user_id'), table_name='chat_identities')
    op.drop_table('chat_identities')
