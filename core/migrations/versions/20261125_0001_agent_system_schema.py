"""agent system schema: host tables, console users, agent tables, append-only audit log

Revision ID: 0001
Revises:
Create Date: 2026-11-25 08:52:03.335213
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import core.models.base

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent_audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_audit_head'))
    )
    op.create_table('agent_audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('actor_role', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_audit_log')),
    sa.UniqueConstraint('seq', name=op.f('uq_agent_audit_log_seq'))
    )
    with op.batch_alter_table('agent_audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_agent_audit_log_action', ['action', 'created_at'], unique=False)
        batch_op.create_index('ix_agent_audit_log_actor', ['actor', 'created_at'], unique=False)
        batch_op.create_index('ix_agent_audit_log_created', ['created_at'], unique=False)

    op.create_table('agent_db_timings',
    sa.Column('hour', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'source', 'bucket', name=op.f('pk_agent_db_timings'))
    )
    op.create_table('agent_health_probes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('url', sa.String(length=300), nullable=False),
    sa.Column('checked_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_health_probes'))
    )
    with op.batch_alter_table('agent_health_probes', schema=None) as batch_op:
        batch_op.create_index('ix_agent_health_probes_url_time', ['url', 'checked_at'], unique=False)

    op.create_table('agent_rollback_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=False),
    sa.Column('approved_by', sa.String(length=100), nullable=True),
    sa.Column('started_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('target_s', sa.Float(), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_rollback_runs'))
    )
    op.create_table('agent_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('allowed_shops', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('allowed_agent_types', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('shop_percent', sa.Integer(), nullable=True),
    sa.Column('disabled_agent_types', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('changed_by', sa.String(length=100), nullable=False),
    sa.Column('changed_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_settings'))
    )
    op.create_table('agent_workers',
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('in_flight', sa.Integer(), nullable=False),
    sa.Column('processed', sa.Integer(), nullable=False),
    sa.Column('settings_version', sa.Integer(), nullable=False),
    sa.Column('settings_seen_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claiming', sa.Boolean(), nullable=False),
    sa.Column('breaker_state', sa.String(length=16), nullable=False),
    sa.Column('rss_mb', sa.Float(), nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_workers'))
    )
    with op.batch_alter_table('agent_workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_workers_last_seen_at'), ['last_seen_at'], unique=False)

    op.create_table('agents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_type', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    sa.UniqueConstraint('agent_type', name=op.f('uq_agents_agent_type'))
    )
    op.create_table('console_login_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('attempted_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_login_attempts'))
    )
    with op.batch_alter_table('console_login_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_login_attempts_user_time', ['username', 'attempted_at'], unique=False)

    op.create_table('enterprises',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enterprises'))
    )
    op.create_table('agent_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('system_prompt', sa.Text(), nullable=False),
    sa.Column('initial_message', sa.Text(), nullable=False),
    sa.Column('follow_ups', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('required_variables', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_templates_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_templates')),
    sa.UniqueConstraint('agent_id', 'version', name=op.f('uq_agent_templates_agent_id'))
    )
    op.create_table('console_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=True),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('is_demo', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('credentials_changed_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_console_users_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_users')),
    sa.UniqueConstraint('username', name=op.f('uq_console_users_username'))
    )
    op.create_table('shops',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_shops_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shops'))
    )
    with op.batch_alter_table('shops', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shops_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('agent_instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('agent_type', sa.String(length=40), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('schedule', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_instances_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_agent_instances_shop_id_shops')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_instances')),
    sa.UniqueConstraint('agent_id', 'shop_id', name=op.f('uq_agent_instances_agent_id'))
    )
    with op.batch_alter_table('agent_instances', schema=None) as batch_op:
        batch_op.create_index('ix_agent_instances_shop', ['shop_id'], unique=False)

    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['console_users.id'], name=op.f('fk_api_tokens_user_id_console_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('barbers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_barbers_shop_id_shops')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_barbers'))
    )
    with op.batch_alter_table('barbers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_barbers_shop_id'), ['shop_id'], unique=False)

    op.create_table('clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=200), nullable=True),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_clients_shop_id_shops')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients'))
    )
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clients_shop_id'), ['shop_id'], unique=False)

    op.create_table('console_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role_at_start', sa.String(length=32), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['console_users.id'], name=op.f('fk_console_sessions_user_id_console_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('console_user_shops',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_console_user_shops_shop_id_shops'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['console_users.id'], name=op.f('fk_console_user_shops_user_id_console_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'shop_id', name=op.f('pk_console_user_shops'))
    )
    op.create_table('agent_metrics',
    sa.Column('hour', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('agent_instance_id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('agent_type', sa.String(length=40), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('opted_out', sa.Integer(), nullable=False),
    sa.Column('response_ms_sum', sa.Integer(), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Numeric(precision=14, scale=6), nullable=False),
    sa.ForeignKeyConstraint(['agent_instance_id'], ['agent_instances.id'], name=op.f('fk_agent_metrics_agent_instance_id_agent_instances'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('hour', 'agent_instance_id', name=op.f('pk_agent_metrics'))
    )
    with op.batch_alter_table('agent_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_agent_metrics_shop_hour', ['shop_id', 'hour'], unique=False)

    op.create_table('agent_response_buckets',
    sa.Column('hour', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('agent_instance_id', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('agent_type', sa.String(length=40), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['agent_instance_id'], ['agent_instances.id'], name=op.f('fk_agent_response_buckets_agent_instance_id_agent_instances'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('hour', 'agent_instance_id', 'bucket', name=op.f('pk_agent_response_buckets'))
    )
    with op.batch_alter_table('agent_response_buckets', schema=None) as batch_op:
        batch_op.create_index('ix_agent_response_buckets_shop_hour', ['shop_id', 'hour'], unique=False)

    op.create_table('appointments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('barber_id', sa.Integer(), nullable=True),
    sa.Column('service', sa.String(length=100), nullable=False),
    sa.Column('starts_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('price_usd', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['barber_id'], ['barbers.id'], name=op.f('fk_appointments_barber_id_barbers')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_appointments_client_id_clients')),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_appointments_shop_id_shops')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointments'))
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index('ix_appointments_client_start', ['client_id', 'starts_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointments_shop_id'), ['shop_id'], unique=False)

    op.create_table('agent_conversations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('agent_instance_id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('agent_type', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('response_time_ms', sa.Integer(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Numeric(precision=12, scale=6), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('provider', sa.String(length=40), nullable=True),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', core.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_instance_id'], ['agent_instances.id'], name=op.f('fk_agent_conversations_agent_instance_id_agent_instances'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_agent_conversations_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_agent_conversations_client_id_clients')),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], name=op.f('fk_agent_conversations_shop_id_shops')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_conversations'))
    )
    with op.batch_alter_table('agent_conversations', schema=None) as batch_op:
        batch_op.create_index('ix_agent_conversations_created', ['created_at'], unique=False)
        batch_op.create_index('ix_agent_conversations_instance_created', ['agent_instance_id', 'created_at'], unique=False)
        batch_op.create_index('ix_agent_conversations_lease', ['status', 'lease_expires_at'], unique=False)
        batch_op.create_index('ix_agent_conversations_shop_created', ['shop_id', 'created_at'], unique=False)
        batch_op.create_index('ix_agent_conversations_status_created', ['status', 'created_at'], unique=False)

    op.create_table('agent_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('conversation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('created_at', core.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['agent_conversations.id'], name=op.f('fk_agent_messages_conversation_id_agent_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_messages')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_agent_messages_idempotency_key'))
    )
    with op.batch_alter_table('agent_messages', schema=None) as batch_op:
        batch_op.create_index('ix_agent_messages_conversation', ['conversation_id', 'created_at'], unique=False)

    _seed_singletons()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_FUNCTION)
        op.execute(APPEND_ONLY_TRIGGER)
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(SQLITE_APPEND_ONLY.format(event=event, name=event.lower()))


# The audit log is append-only: the code has no update or delete path, and PostgreSQL refuses both.
APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION agent_audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'agent_audit_log is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql
"""
APPEND_ONLY_TRIGGER = """
CREATE TRIGGER agent_audit_log_no_change BEFORE UPDATE OR DELETE ON agent_audit_log
FOR EACH ROW EXECUTE FUNCTION agent_audit_log_append_only()
"""

SQLITE_APPEND_ONLY = """
CREATE TRIGGER agent_audit_log_no_{name} BEFORE {event} ON agent_audit_log
BEGIN SELECT RAISE(ABORT, 'agent_audit_log is append-only: {event} refused'); END
"""


def _seed_singletons() -> None:
    """The switch starts off (the checklist activates it as a step) and the audit chain starts empty."""
    op.execute("INSERT INTO agent_audit_head (id, seq, last_hash) VALUES (1, 0, '" + "0" * 64 + "')")
    op.execute(
        "INSERT INTO agent_settings (id, version, mode, allowed_shops, allowed_agent_types, "
        "disabled_agent_types, changed_by, changed_at, reason) VALUES "
        "(1, 1, 'off', '[]', '[]', '[]', 'system', CURRENT_TIMESTAMP, 'initial state')"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS agent_audit_log_no_change ON agent_audit_log")
        op.execute("DROP FUNCTION IF EXISTS agent_audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS agent_audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS agent_audit_log_no_delete")
    with op.batch_alter_table('agent_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_messages_conversation')

    op.drop_table('agent_messages')
    with op.batch_alter_table('agent_conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_conversations_status_created')
        batch_op.drop_index('ix_agent_conversations_shop_created')
        batch_op.drop_index('ix_agent_conversations_lease')
        batch_op.drop_index('ix_agent_conversations_instance_created')
        batch_op.drop_index('ix_agent_conversations_created')

    op.drop_table('agent_conversations')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appointments_shop_id'))
        batch_op.drop_index('ix_appointments_client_start')

    op.drop_table('appointments')
    with op.batch_alter_table('agent_response_buckets', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_response_buckets_shop_hour')

    op.drop_table('agent_response_buckets')
    with op.batch_alter_table('agent_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_metrics_shop_hour')

    op.drop_table('agent_metrics')
    op.drop_table('console_user_shops')
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_user_id'))

    op.drop_table('console_sessions')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clients_shop_id'))

    op.drop_table('clients')
    with op.batch_alter_table('barbers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_barbers_shop_id'))

    op.drop_table('barbers')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    with op.batch_alter_table('agent_instances', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_instances_shop')

    op.drop_table('agent_instances')
    with op.batch_alter_table('shops', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shops_enterprise_id'))

    op.drop_table('shops')
    op.drop_table('console_users')
    op.drop_table('agent_templates')
    op.drop_table('enterprises')
    with op.batch_alter_table('console_login_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempts_user_time')

    op.drop_table('console_login_attempts')
    op.drop_table('agents')
    with op.batch_alter_table('agent_workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_workers_last_seen_at'))

    op.drop_table('agent_workers')
    op.drop_table('agent_settings')
    op.drop_table('agent_rollback_runs')
    with op.batch_alter_table('agent_health_probes', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_health_probes_url_time')

    op.drop_table('agent_health_probes')
    op.drop_table('agent_db_timings')
    with op.batch_alter_table('agent_audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_audit_log_created')
        batch_op.drop_index('ix_agent_audit_log_actor')
        batch_op.drop_index('ix_agent_audit_log_action')

    op.drop_table('agent_audit_log')
    op.drop_table('agent_audit_head')
