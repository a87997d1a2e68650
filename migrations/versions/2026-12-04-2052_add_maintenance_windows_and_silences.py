"""add maintenance windows and silences

Revision ID: b71c0e5d9a42
Revises: fa4a3ded2ae9
Create Date: 2026-12-04 20:51:49.217599
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'b71c0e5d9a42'
down_revision: str | None = 'fa4a3ded2ae9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fail fast instead of queueing behind long transactions on a busy database.
    op.execute("SET lock_timeout = '5s'")
    op.create_table('maintenance_windows',
    sa.Column('service_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('rrule', sa.Text(), nullable=True),
    sa.Column('created_by', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_maintenance_windows_service_id_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_maintenance_windows'))
    )
    op.create_index(op.f('ix_maintenance_windows_service_id'), 'maintenance_windows', ['service_id'], unique=False)
    op.create_table('silences',
    sa.Column('service_id', sa.Uuid(), nullable=True),
    sa.Column('matchers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('until_resolved', sa.Boolean(), nullable=False),
    sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('ends_at IS NOT NULL OR until_resolved', name=op.f('ck_silences_has_an_end')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_silences_service_id_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_silences'))
    )
    op.create_index('ix_silences_expired_at_ends_at', 'silences', ['expired_at', 'ends_at'], unique=False)
    op.create_table('paging_holds',
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('ref_id', sa.Uuid(), nullable=True),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resume_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_paging_holds_incident_id_incidents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('incident_id', name=op.f('pk_paging_holds'))
    )
    op.create_index(op.f('ix_paging_holds_ref_id'), 'paging_holds', ['ref_id'], unique=False)
    op.create_table('silenced_alerts',
    sa.Column('silence_id', sa.Uuid(), nullable=False),
    sa.Column('alert_id', sa.Uuid(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_silenced_alerts_alert_id_alerts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['silence_id'], ['silences.id'], name=op.f('fk_silenced_alerts_silence_id_silences'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('silence_id', 'alert_id', name=op.f('pk_silenced_alerts'))
    )
    op.create_index(op.f('ix_silenced_alerts_alert_id'), 'silenced_alerts', ['alert_id'], unique=False)


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index(op.f('ix_silenced_alerts_alert_id'), table_name='silenced_alerts')
    op.drop_table('silenced_alerts')
    op.drop_index(op.f('ix_paging_holds_ref_id'), table_name='paging_holds')
    op.drop_table('paging_holds')
    op.drop_index('ix_silences_expired_at_ends_at', table_name='silences')
    op.drop_table('silences')
    op.drop_index(op.f('ix_maintenance_windows_service_id'), table_name='maintenance_windows')
    op.drop_table('maintenance_windows')
