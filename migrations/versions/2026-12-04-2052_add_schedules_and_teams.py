"""add schedules and teams

Revision ID: b3c1e5a70a11
Revises: 8110db5f29fc
Create Date: 2026-12-04 20:52:43.611727
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'b3c1e5a70a11'
down_revision: str | None = '8110db5f29fc'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fail fast instead of queueing behind long transactions on a busy database.
    op.execute("SET lock_timeout = '5s'")
    op.create_table('schedules',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedules'))
    )
    op.create_index('uq_schedules_name', 'schedules', [sa.literal_column('lower(name)')], unique=True)
    op.create_table('schedule_layers',
    sa.Column('schedule_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('rotation_unit', sa.String(length=8), nullable=True),
    sa.Column('rotation_length', sa.Integer(), nullable=True),
    sa.Column('start_date', sa.Date(), nullable=True),
    sa.Column('handoff_time', sa.Time(), nullable=True),
    sa.Column('handoff_day', sa.Integer(), nullable=True),
    sa.Column('restrictions', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('fixed_shifts', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('rotation', 'calendar')", name=op.f('ck_schedule_layers_kind_values')),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], name=op.f('fk_schedule_layers_schedule_id_schedules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_layers')),
    sa.UniqueConstraint('schedule_id', 'position', name='uq_schedule_layers_schedule_position')
    )
    op.create_index(op.f('ix_schedule_layers_schedule_id'), 'schedule_layers', ['schedule_id'], unique=False)
    op.create_table('schedule_overrides',
    sa.Column('schedule_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('end_at > start_at', name=op.f('ck_schedule_overrides_end_after_start')),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], name=op.f('fk_schedule_overrides_schedule_id_schedules'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_schedule_overrides_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_overrides'))
    )
    op.create_index('ix_schedule_overrides_schedule_id_end_at', 'schedule_overrides', ['schedule_id', 'end_at'], unique=False)
    op.create_index(op.f('ix_schedule_overrides_user_id'), 'schedule_overrides', ['user_id'], unique=False)
    op.create_table('teams',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('schedule_id', sa.Uuid(), nullable=True),
    sa.Column('escalation_policy_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['escalation_policy_id'], ['escalation_policies.id'], name=op.f('fk_teams_escalation_policy_id_escalation_policies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], name=op.f('fk_teams_schedule_id_schedules'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams'))
    )
    op.create_index(op.f('ix_teams_escalation_policy_id'), 'teams', ['escalation_policy_id'], unique=False)
    op.create_index(op.f('ix_teams_schedule_id'), 'teams', ['schedule_id'], unique=False)
    op.create_index('uq_teams_name', 'teams', [sa.literal_column('lower(name)')], unique=True)
    op.create_table('schedule_layer_members',
    sa.Column('layer_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['layer_id'], ['schedule_layers.id'], name=op.f('fk_schedule_layer_members_layer_id_schedule_layers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_schedule_layer_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('layer_id', 'position', name=op.f('pk_schedule_layer_members'))
    )
    op.create_index(op.f('ix_schedule_layer_members_user_id'), 'schedule_layer_members', ['user_id'], unique=False)
    op.create_table('team_members',
    sa.Column('team_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('role', sa.String(length=16), server_default='member', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_team_members_team_id_teams'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_team_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('team_id', 'user_id', name=op.f('pk_team_members'))
    )
    op.create_index(op.f('ix_team_members_user_id'), 'team_members', ['user_id'], unique=False)


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index(op.f('ix_team_members_user_id'), table_name='team_members')
    op.drop_table('team_members')
    op.drop_index(op.f('ix_schedule_layer_members_user_id'), table_name='schedule_layer_members')
    op.drop_table('schedule_layer_members')
    op.drop_index('uq_teams_name', table_name='teams')
    op.drop_index(op.f('ix_teams_schedule_id'), table_name='teams')
    op.drop_index(op.f('ix_teams_escalation_policy_id'), table_name='teams')
    op.drop_table('teams')
    op.drop_index(op.f('ix_schedule_overrides_user_id'), table_name='schedule_overrides')
    op.drop_index('ix_schedule_overrides_schedule_id_end_at', table_name='schedule_overrides')
    op.drop_table('schedule_overrides')
    op.drop_index(op.f('ix_schedule_layers_schedule_id'), table_name='schedule_layers')
    op.drop_table('schedule_layers')
    op.drop_index('uq_schedules_name', table_name='schedules')
    op.drop_table('schedules')
