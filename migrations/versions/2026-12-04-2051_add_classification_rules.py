"""add classification rules

Revision ID: fa4a3ded2ae9
Revises: 5b1e0c7d2a94
Create Date: 2026-12-04 20:51:49.217599
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'fa4a3ded2ae9'
down_revision: str | None = '5b1e0c7d2a94'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Fail fast instead of queueing behind long transactions on a busy database.
    op.execute("SET lock_timeout = '5s'")
    # Fail fast instead of queueing behind long transactions on a busy database.
    op.create_table('priority_matrix',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('document', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_priority_matrix_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_priority_matrix'))
    )
    op.create_table('rule_audit_log',
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('entity_type', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.Uuid(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('before', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('after', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_audit_log'))
    )
    op.create_index('ix_rule_audit_log_at_id', 'rule_audit_log', ['at', 'id'], unique=False)
    op.create_index('ix_rule_audit_log_entity_id', 'rule_audit_log', ['entity_id'], unique=False)
    op.create_table('rule_revisions',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('token', sa.Uuid(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_rule_revisions_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_revisions'))
    )
    op.create_table('rules',
    sa.Column('service_id', sa.Uuid(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('continue', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('conditions', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('actions', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_rules_service_id_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rules'))
    )
    op.create_index('ix_rules_service_id_position', 'rules', ['service_id', 'position'], unique=False)
    # With the row in place from the start, every process can cache the empty rule set.
    op.execute("INSERT INTO rule_revisions (id, token) VALUES (1, gen_random_uuid())")
    op.create_table('alert_decisions',
    sa.Column('alert_id', sa.Uuid(), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('service_id', sa.Uuid(), nullable=False),
    sa.Column('escalation_policy_id', sa.Uuid(), nullable=True),
    sa.Column('impact', sa.SmallInteger(), nullable=False),
    sa.Column('urgency', sa.SmallInteger(), nullable=False),
    sa.Column('priority', sa.String(length=2), nullable=False),
    sa.Column('tags', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('suppressed', sa.Boolean(), nullable=False),
    sa.Column('silence_ids', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('maintenance_window_id', sa.Uuid(), nullable=True),
    sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_decisions_alert_id_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('alert_id', name=op.f('pk_alert_decisions'))
    )


def downgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_table('alert_decisions')
    op.drop_index('ix_rules_service_id_position', table_name='rules')
    op.drop_table('rules')
    op.drop_table('rule_revisions')
    op.drop_index('ix_rule_audit_log_entity_id', table_name='rule_audit_log')
    op.drop_index('ix_rule_audit_log_at_id', table_name='rule_audit_log')
    op.drop_table('rule_audit_log')
    op.drop_table('priority_matrix')
