"""alerts: rules as data, alert state and its history, contact points with routing, silences, the notification
outbox (delivery log), the groups already notified, and the evaluator's lease

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 00:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.models.base

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent_alert_contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('min_severity', sa.String(length=10), nullable=False),
    sa.Column('matchers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('group_by', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('repeat_minutes', sa.Float(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_alert_contacts')),
    sa.UniqueConstraint('name', name=op.f('uq_agent_alert_contacts_name'))
    )
    op.create_table('agent_alert_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('contact', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('group_key', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('claimed_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_alert_deliveries'))
    )
    with op.batch_alter_table('agent_alert_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_agent_alert_deliveries_created', ['created_at'], unique=False)
        batch_op.create_index('ix_agent_alert_deliveries_status', ['status', 'id'], unique=False)

    op.create_table('agent_alert_groups',
    sa.Column('contact', sa.String(length=64), nullable=False),
    sa.Column('group_key', sa.String(length=300), nullable=False),
    sa.Column('fingerprint', sa.Text(), nullable=False),
    sa.Column('last_sent_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('contact', 'group_key', name=op.f('pk_agent_alert_groups'))
    )
    op.create_table('agent_alert_lease',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.Column('expires_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_alert_lease'))
    )
    op.create_table('agent_alert_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('metric', sa.String(length=40), nullable=False),
    sa.Column('op', sa.String(length=2), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('threshold_setting', sa.String(length=64), nullable=True),
    sa.Column('window_minutes', sa.Integer(), nullable=False),
    sa.Column('window_setting', sa.String(length=64), nullable=True),
    sa.Column('agent_type', sa.String(length=40), nullable=True),
    sa.Column('shop_id', sa.Integer(), nullable=True),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('pending_seconds', sa.Integer(), nullable=False),
    sa.Column('pending_setting', sa.String(length=64), nullable=True),
    sa.Column('keep_firing_seconds', sa.Integer(), nullable=False),
    sa.Column('no_data', sa.String(length=10), nullable=False),
    sa.Column('rollback_trigger', sa.Boolean(), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_alert_rules')),
    sa.UniqueConstraint('key', name=op.f('uq_agent_alert_rules_key'))
    )
    op.create_table('agent_alert_silences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('matchers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('starts_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expired_by', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_alert_silences'))
    )
    with op.batch_alter_table('agent_alert_silences', schema=None) as batch_op:
        batch_op.create_index('ix_agent_alert_silences_ends', ['ends_at'], unique=False)

    op.create_table('agent_alert_states',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('series', sa.String(length=300), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('pending_since', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('firing_since', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_true_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('evaluated_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acked_by', sa.String(length=100), nullable=True),
    sa.Column('acked_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ack_comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['rule_id'], ['agent_alert_rules.id'], name=op.f('fk_agent_alert_states_rule_id_agent_alert_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_alert_states')),
    sa.UniqueConstraint('rule_id', 'series', name=op.f('uq_agent_alert_states_rule_id'))
    )
    with op.batch_alter_table('agent_alert_states', schema=None) as batch_op:
        batch_op.create_index('ix_agent_alert_states_state', ['state'], unique=False)

    op.create_table('agent_alert_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('from_state', sa.String(length=10), nullable=False),
    sa.Column('to_state', sa.String(length=10), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['agent_alert_states.id'], name=op.f('fk_agent_alert_history_alert_id_agent_alert_states'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_alert_history'))
    )
    with op.batch_alter_table('agent_alert_history', schema=None) as batch_op:
        batch_op.create_index('ix_agent_alert_history_alert', ['alert_id', 'at'], unique=False)
        batch_op.create_index('ix_agent_alert_history_at', ['at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('agent_alert_history', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_alert_history_at')
        batch_op.drop_index('ix_agent_alert_history_alert')

    op.drop_table('agent_alert_history')
    with op.batch_alter_table('agent_alert_states', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_alert_states_state')

    op.drop_table('agent_alert_states')
    with op.batch_alter_table('agent_alert_silences', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_alert_silences_ends')

    op.drop_table('agent_alert_silences')
    op.drop_table('agent_alert_rules')
    op.drop_table('agent_alert_lease')
    op.drop_table('agent_alert_groups')
    with op.batch_alter_table('agent_alert_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_alert_deliveries_status')
        batch_op.drop_index('ix_agent_alert_deliveries_created')

    op.drop_table('agent_alert_deliveries')
    op.drop_table('agent_alert_contacts')
