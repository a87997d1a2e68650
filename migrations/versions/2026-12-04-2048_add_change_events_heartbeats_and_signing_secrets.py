"""add change events, heartbeats and signing secrets

Revision ID: 540191986627
Revises: 633776c70fd2
Create Date: 2026-12-04 20:48:57.170691
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '540191986627'
down_revision: str | None = '633776c70fd2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fail fast instead of queueing behind long transactions on a busy database.
    op.execute("SET lock_timeout = '5s'")
    op.create_table('change_events',
    sa.Column('service_id', sa.Uuid(), nullable=False),
    sa.Column('integration_id', sa.Uuid(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('custom_details', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('links', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_change_events_integration_id_integrations'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_change_events_service_id_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_events'))
    )
    op.create_index('ix_change_events_service_id_at_id', 'change_events', ['service_id', 'at', 'id'], unique=False)
    op.create_table('heartbeats',
    sa.Column('integration_id', sa.Uuid(), nullable=False),
    sa.Column('last_ping_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('check_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('missed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_heartbeats_integration_id_integrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('integration_id', name=op.f('pk_heartbeats'))
    )
    op.add_column('integrations', sa.Column('signing_secret_encrypted', sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column('integrations', 'signing_secret_encrypted')
    op.drop_table('heartbeats')
    op.drop_index('ix_change_events_service_id_at_id', table_name='change_events')
    op.drop_table('change_events')
