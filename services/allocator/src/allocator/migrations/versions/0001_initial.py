"""The tables `create_all` made at start before migrations, exactly.

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-07 20:43:02.111558
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_inbox",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "event_outbox_dead_letter",
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "dead_lettered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("outbox_id"),
    )
    op.create_table(
        "allocations",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("server_id", sa.String(length=100), nullable=True),
        sa.Column("catalog_item", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("quota", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("units", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("facts", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index(
        op.f("ix_allocations_resource_id"), "allocations", ["resource_id"], unique=False
    )
    op.create_index(
        "one_live_name_per_item",
        "allocations",
        ["catalog_item", "name"],
        unique=True,
        postgresql_where=sa.text("state IN ('backordered', 'held', 'committed')"),
    )
    op.create_table(
        "pool_units",
        sa.Column("pool", sa.String(length=100), nullable=False),
        sa.Column("unit", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("pool", "unit"),
    )
    op.create_index(op.f("ix_pool_units_request_id"), "pool_units", ["request_id"], unique=False)
    op.create_table(
        "pools",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "server_capacity",
        sa.Column("server_id", sa.String(length=100), nullable=False),
        sa.Column("catalog_item", sa.String(length=100), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.CheckConstraint("used >= 0 AND used <= capacity", name="within_capacity"),
        sa.PrimaryKeyConstraint("server_id", "catalog_item"),
    )
    op.create_table(
        "tenant_quotas",
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("dimension", sa.String(length=100), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("warning", sa.Integer(), nullable=True),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("committed", sa.Integer(), nullable=False),
        sa.CheckConstraint("held >= 0 AND committed >= 0", name="no_negative_usage"),
        sa.PrimaryKeyConstraint("tenant", "dimension"),
    )


def downgrade() -> None:
    op.drop_table("tenant_quotas")
    op.drop_table("server_capacity")
    op.drop_table("pools")
    op.drop_index(op.f("ix_pool_units_request_id"), table_name="pool_units")
    op.drop_table("pool_units")
    op.drop_index(
        "one_live_name_per_item",
        table_name="allocations",
        postgresql_where=sa.text("state IN ('backordered', 'held', 'committed')"),
    )
    op.drop_index(op.f("ix_allocations_resource_id"), table_name="allocations")
    op.drop_table("allocations")
    op.drop_table("event_outbox_dead_letter")
    op.drop_table("event_outbox")
    op.drop_table("event_inbox")
