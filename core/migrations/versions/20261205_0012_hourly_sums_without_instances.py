"""rollups: closed hours of agent_metrics folded into sums per hour and type / shop / shop and type

agent_metrics is keyed by hour × instance: a 24-hour health query read ~8,100 of its rows at 1M conversations and
~2,700 at 100k (one per busy instance and hour), so its cost grew with the data until every instance was busy
every hour. Closed hours now live in three tables of one row per hour and agent type, per hour and shop, per hour,
shop and type (core.rollups_sums); agent_metrics keeps what is not folded yet. Whole days get the same split
(per day and type, per day and shop: a month read ~10,800 rows per shop and type at 1M, now 270), derived from the
hourly rows like the per-shop-and-type daily sums the alerts' baseline reads; users who see some shops now read
whole days too (a month by type read ~12,700 hourly rows of one shop at 1M), with a daily histogram per shop and
type and (shop_id, day) indexes. A (shop_id, hour) index lets users who see some shops read only their shops' hourly
histograms. This migration folds a populated database (PostgreSQL and SQLite) in one set-based pass.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-05 08:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

import core.models.base

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = {
    "agent_metrics_hourly_by_type": [sa.Column("agent_type", sa.String(length=40), nullable=False)],
    "agent_metrics_hourly_by_shop": [sa.Column("shop_id", sa.Integer(), nullable=False)],
    "agent_metrics_hourly_by_shop_type": [sa.Column("shop_id", sa.Integer(), nullable=False),
                                          sa.Column("agent_type", sa.String(length=40), nullable=False)],
}
DAILY = {
    "agent_metrics_daily_by_type": lambda: sa.Column("agent_type", sa.String(length=40), nullable=False),
    "agent_metrics_daily_by_shop": lambda: sa.Column("shop_id", sa.Integer(), nullable=False),
}
# Users who see some shops read whole days too, and only their shops' rows.
SHOP_INDEXES = (("agent_metrics_daily", "day"), ("agent_metrics_daily_by_shop", "day"),
                ("agent_response_daily_by_shop", "day"), ("agent_response_daily_by_shop_type", "day"))
SUMS = ("created", "completed", "failed", "opted_out", "response_ms_sum", "prompt_tokens", "completion_tokens",
        "cost_usd")


def _sum_columns(response_ms: bool = True) -> list[sa.Column]:
    ints = [sa.Column(c, sa.Integer(), nullable=False) for c in ("created", "completed", "failed", "opted_out")]
    bigs = [sa.Column(c, sa.BigInteger(), nullable=False) for c in ("response_ms_sum", "prompt_tokens",
                                                                    "completion_tokens") if response_ms or c[0] != "r"]
    return ints + bigs + [sa.Column("cost_usd", sa.Numeric(precision=14, scale=6), nullable=False)]


def upgrade() -> None:
    for name, keys in TABLES.items():
        op.create_table(
            name, sa.Column("hour", core.models.base.UTCDateTime(timezone=True), nullable=False), *keys,
            *_sum_columns(), sa.PrimaryKeyConstraint("hour", *[k.name for k in keys], name=op.f(f"pk_{name}")))
    for name, key in DAILY.items():
        op.create_table(name, sa.Column("day", core.models.base.UTCDateTime(timezone=True), nullable=False), key(),
                        *_sum_columns(response_ms=False), sa.PrimaryKeyConstraint("day", key().name,
                                                                                  name=op.f(f"pk_{name}")))
    op.create_table(
        "agent_response_daily_by_shop_type",
        sa.Column("day", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("agent_type", sa.String(length=40), nullable=False),
        sa.Column("counts", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("day", "shop_id", "agent_type", name=op.f("pk_agent_response_daily_by_shop_type")))
    for table, column in SHOP_INDEXES:
        op.create_index(f"ix_{table}_shop_{column}", table, ["shop_id", column])
    op.create_index("ix_agent_metrics_hourly_by_shop_shop_hour", "agent_metrics_hourly_by_shop", ["shop_id", "hour"])
    op.create_index("ix_agent_metrics_hourly_by_shop_type_shop_hour", "agent_metrics_hourly_by_shop_type",
                    ["shop_id", "hour"])
    op.create_index("ix_agent_response_hourly_by_shop_shop_hour", "agent_response_hourly_by_shop", ["shop_id", "hour"])
    # The library's own fold and daily refresh (agent_metrics in, the tables made above and the daily sums out).
    from core.rollups_daily import refresh_daily

    refresh_daily(op.get_bind(), days=None)


def downgrade() -> None:
    # Folded hours lose their per-instance rows: recompute agent_metrics from the raw conversations, as
    # `rollups rebuild` does (set-based, inside the database).
    bind = op.get_bind()
    hour = ("date_trunc('hour', created_at, 'UTC')" if bind.dialect.name == "postgresql"
            else "strftime('%Y-%m-%d %H:00:00.000000', created_at)")
    done = "status IN ('completed', 'failed', 'opted_out')"

    def when(cond: str, col: str) -> str:
        return f"coalesce(sum(CASE WHEN {cond} THEN {col} ELSE 0 END), 0)"

    figures = [when("status = 'completed'", "1"), when("status = 'failed'", "1"), when("status = 'opted_out'", "1"),
               when("status = 'completed'", "response_time_ms"), when(done, "prompt_tokens"),
               when(done, "completion_tokens"), when(done, "cost_usd")]
    op.execute("DELETE FROM agent_metrics")
    op.execute(f"INSERT INTO agent_metrics (hour, agent_instance_id, shop_id, agent_type, {', '.join(SUMS)}) "
               f"SELECT {hour}, agent_instance_id, shop_id, agent_type, count(*), {', '.join(figures)} "
               "FROM agent_conversations GROUP BY 1, 2, 3, 4")
    op.drop_index("ix_agent_response_hourly_by_shop_shop_hour", table_name="agent_response_hourly_by_shop")
    op.drop_index("ix_agent_metrics_hourly_by_shop_type_shop_hour", table_name="agent_metrics_hourly_by_shop_type")
    op.drop_index("ix_agent_metrics_hourly_by_shop_shop_hour", table_name="agent_metrics_hourly_by_shop")
    for table, column in SHOP_INDEXES:
        op.drop_index(f"ix_{table}_shop_{column}", table_name=table)
    for name in reversed([*TABLES, *DAILY, "agent_response_daily_by_shop_type"]):
        op.drop_table(name)
